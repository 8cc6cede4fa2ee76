//! Where a trigger's deliveries go: the [`Sink`] trait of the dispatcher, implemented by its HTTP
//! subscriber (request-reply, in `switchyard-dispatcher`) and by the components' one-way sinks
//! (`kafka::sink::KafkaSink`, `nats::sink::NatsSink`, each behind its feature).
//!
//! A sink makes **one attempt**; the dispatcher owns everything around it: the retry driver
//! ([`crate::delivery::retry`]) with the trigger's policy, metrics, replies, the dead-letter sink and
//! parking. Every sink removes the TTL extension on egress (decision 6; [`without_ttl`]).

use crate::channel::BoxFuture;
use crate::event::{Event, TTL_EXTENSION};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use std::borrow::Cow;
use std::time::Duration;

/// A destination of a trigger's deliveries.
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// One attempt to hand `event` over, within `timeout`. The event still carries its TTL extension;
    /// the sink leaves it out of what it sends.
    fn send<'a>(&'a self, event: &'a Event, timeout: Duration) -> Sending<'a>;
}

/// An attempt of [`Sink::send`] in flight.
pub type Sending<'a> = BoxFuture<'a, Result<Sent, SinkError>>;

/// What an attempt that reached the destination got back.
#[derive(Debug)]
pub enum Sent {
    /// A one-way sink has the event (Kafka acknowledged the record; NATS flushed or JetStream sent its
    /// PubAck): delivered.
    Stored,
    /// A request-reply destination answered (HTTP): the dispatcher classifies the status and reads a
    /// reply from the body.
    Answered(Response),
}

/// A response (body bounded by the client's limit).
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body.
    pub body: Bytes,
}

/// An attempt that got no answer: a transport failure, a timeout, a refused produce or publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkError {
    /// What happened, naming the destination (kept as `knativeerrordata` when dead-lettered).
    pub message: String,
    /// Short reason for logs and the parked record (`timeout`, `kafka-produce-failed`, ...).
    pub reason: &'static str,
    /// Whether another attempt may succeed.
    pub retryable: bool,
}

impl SinkError {
    /// A failure another attempt may overcome.
    pub fn retryable(message: String, reason: &'static str) -> SinkError {
        SinkError {
            message,
            reason,
            retryable: true,
        }
    }
}

/// `event` without its TTL extension (decision 6): borrowed when it has none, else a copy.
pub fn without_ttl(event: &Event) -> Cow<'_, Event> {
    if event.extension(TTL_EXTENSION).is_some() {
        let mut e = event.clone();
        e.remove_extension(TTL_EXTENSION);
        Cow::Owned(e)
    } else {
        Cow::Borrowed(event)
    }
}

/// A one-way sink's attempt: `write` (a produce, a publish) within `t`. [`Sent::Stored`] when it
/// succeeds, otherwise a retryable failure with `reason` and the message `{action} to {target}: {error}`
/// (the error is `timeout after {t:?}` when `t` passed).
pub async fn stored_within<E: std::fmt::Display>(
    t: Duration,
    write: impl std::future::Future<Output = Result<(), E>>,
    (action, target): (&str, &str),
    reason: &'static str,
) -> Result<Sent, SinkError> {
    let error = match tokio::time::timeout(t, write).await {
        Ok(Ok(())) => return Ok(Sent::Stored),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("timeout after {t:?}"),
    };
    Err(SinkError::retryable(
        format!("{action} to {target}: {error}"),
        reason,
    ))
}
