//! NatsSink: a trigger's deliveries published to a NATS subject, a [`Sink`] of the dispatcher.
//!
//! Each attempt encodes the event with the NATS binding in the sink's content mode (TTL removed). Core
//! NATS: delivered once the server has the message (flush); JetStream: on the PubAck. Anything else,
//! including a timeout, is a retryable failed attempt (`nats-publish-failed`). The connection is made on
//! first use and shared by the sinks on the same servers ([`NatsClients`]).

use crate::config::{ContentMode, NatsSinkConfig};
use crate::event::Event;
use crate::sink::{stored_within, without_ttl, Sending, Sink};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// NatsSink connections by servers, each made on first use.
#[derive(Default)]
pub struct NatsClients {
    clients: Mutex<HashMap<String, Arc<OnceCell<async_nats::Client>>>>,
}

impl std::fmt::Debug for NatsClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsClients").finish_non_exhaustive()
    }
}

/// A resolved NatsSink.
pub struct NatsSink {
    servers: String,
    client: Arc<OnceCell<async_nats::Client>>,
    subject: String,
    jetstream: bool,
    content_mode: ContentMode,
}

impl NatsSink {
    /// The sink of `spec`, sharing the connection to its servers through `clients`.
    pub fn new(clients: &NatsClients, spec: &NatsSinkConfig) -> NatsSink {
        let client = clients
            .clients
            .lock()
            .entry(spec.servers.clone())
            .or_default()
            .clone();
        NatsSink {
            servers: spec.servers.clone(),
            client,
            subject: spec.subject.clone(),
            jetstream: spec.jetstream,
            content_mode: spec.content_mode,
        }
    }

    async fn publish(&self, event: &Event) -> Result<(), String> {
        let client = self
            .client
            .get_or_try_init(|| async {
                async_nats::ConnectOptions::new()
                    .retry_on_initial_connect()
                    .connect(self.servers.as_str())
                    .await
                    .map_err(|e| format!("connect {}: {e}", self.servers))
            })
            .await?;
        let message = crate::nats::binding::encode(&without_ttl(event), self.content_mode);
        let mut headers = async_nats::HeaderMap::new();
        for (name, value) in &message.headers {
            headers.insert(name.as_ref(), value.as_str());
        }
        let subject = self.subject.clone();
        if self.jetstream {
            let js = async_nats::jetstream::new(client.clone());
            js.publish_with_headers(subject, headers, message.payload)
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
        } else {
            client
                .publish_with_headers(subject, headers, message.payload)
                .await
                .map_err(|e| e.to_string())?;
            client.flush().await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSink")
            .field("subject", &self.subject)
            .field("jetstream", &self.jetstream)
            .finish_non_exhaustive()
    }
}

impl Sink for NatsSink {
    fn send<'a>(&'a self, event: &'a Event, timeout: Duration) -> Sending<'a> {
        Box::pin(async move {
            let what = ("nats publish", self.subject.as_str());
            stored_within(timeout, self.publish(event), what, "nats-publish-failed").await
        })
    }
}
