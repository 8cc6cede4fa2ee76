//! JetStream-backed brokers (`eventing.knative.dev/broker.class: NatsJetStream`).
//!
//! Same shape as the Kafka backend (see `kafka/channel.rs`), with JetStream's per-message acks instead of offsets:
//!
//! - **Ingress** publishes each event in binary NATS mode to the broker's subject
//!   (`knative.broker.<ns>.<name>`, captured by stream `KNATIVE_BROKER_<ns>_<name>`, created or updated
//!   idempotently with the ConfigMap's replicas/maxAge/maxBytes/storage) with `Nats-Msg-Id` = the event's
//!   `source` and `id`, so a client retrying a request inside the stream's duplicate window is stored once.
//!   The append resolves only when every PubAck arrived.
//! - **One durable pull consumer per broker** (`switchyard-broker-<ns>-<name>`), explicit acks, shared by
//!   every `switchyard serve` process (JetStream spreads the messages over them): each message is decoded
//!   and routed once and handed to the matching triggers' windows (overflowing into the store, as for
//!   Kafka). It is acked when every responsible trigger finished it (delivered, dead-lettered, parked or
//!   overflowed).
//! - **JetStream's redelivery never drives retries**: the dispatcher applies the trigger's DeliverySpec; while
//!   a message is pending it is marked in progress (`+WPI`) every third of `ack_wait`, so JetStream only
//!   redelivers messages of a process that died (after `ack_wait`).
//! - Entry handles ([`EntryId`]) index the pending-message table.
//! - **Health and backlog**: a probe per broker (every `probe_interval`) reads the durable consumer's info.
//!   While the client is disconnected or the probe fails the broker is not ready and appends fail at once
//!   (503); the first successful probe makes it ready again. The probe also caches the consumer's backlog
//!   (`num_pending` + `num_ack_pending`, minus the messages this process holds, which its windows count), so
//!   the broker's backlog covers what waits in the stream for every process, not only this one's share.

use crate::channel::log::{
    deref_common, next_probe, BrokerCommon, LogBroker, LogDriver, NewBroker, RuntimeCtx, Started,
};
use crate::channel::store::StoreChannel;
use crate::channel::{ChannelError, Entry, EntryId, Result};
use crate::config::{ContentMode, NatsBrokerConfig, NatsStorage};
use crate::event::Event;
use crate::nats::binding;
use crate::nats::config::{consumer_name, NatsOptions};
use async_nats::jetstream::{self, consumer, stream, AckKind};
use futures_util::StreamExt;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The next entry handle of any JetStream-backed broker of the process.
static NEXT_ENTRY: AtomicU64 = AtomicU64::new(0);

fn nats_err(context: &str, e: impl std::fmt::Display) -> ChannelError {
    ChannelError::Storage(format!("nats: {context}: {e}"))
}

/// Server URLs without credentials (`nats://user:pass@host` → `nats://host`), for logs and reasons.
fn redact(servers: &str) -> String {
    servers
        .split(',')
        .map(|s| {
            let s = s.trim();
            let (scheme, rest) = s.split_once("://").map_or(("", s), |(a, b)| (a, b));
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            if scheme.is_empty() {
                host.to_owned()
            } else {
                format!("{scheme}://{host}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A message some triggers still work on.
struct Pending {
    remaining: u32,
    message: jetstream::Message,
}

pub(crate) struct BrokerShared {
    /// Key, routes, readiness, invalid-message count (also reachable through `Deref`).
    common: BrokerCommon,
    config: NatsBrokerConfig,
    /// Set once connected and the stream exists.
    js: Mutex<Option<jetstream::Context>>,
    /// Messages of the durable consumer not yet delivered or not yet acked (any process), from the last
    /// probe.
    waiting: AtomicU64,
    pending: Mutex<HashMap<u64, Pending>>,
}

deref_common!(BrokerShared);

impl BrokerShared {
    /// One trigger finished entry `seq`; acks the message when it was the last.
    fn finish_message(&self, seq: u64) {
        let done = {
            let mut pending = self.pending.lock();
            match pending.get_mut(&seq) {
                Some(p) if p.remaining > 1 => {
                    p.remaining -= 1;
                    None
                }
                Some(_) => pending.remove(&seq),
                None => None,
            }
        };
        if let Some(p) = done {
            let key = self.key.clone();
            tokio::spawn(async move {
                // A lost ack only means a redelivery (at-least-once).
                if let Err(e) = p.message.ack().await {
                    tracing::debug!(broker = %key, "ack: {e}");
                }
            });
        }
    }
}

impl LogBroker for BrokerShared {
    type Config = NatsBrokerConfig;

    fn config(&self) -> &NatsBrokerConfig {
        &self.config
    }

    fn finish(&self, id: EntryId) {
        if let Entry::Nats(seq) = id.0 {
            self.finish_message(seq);
        }
    }

    /// Messages of the durable consumer not yet delivered or not yet acked by any process (from the last
    /// probe), minus the messages this process holds (its windows count them).
    fn remote_backlog(&self) -> u64 {
        // Subtracted live, so a message moving from the stream into a window between two probes is not
        // counted twice.
        let held = self.pending.lock().len() as u64;
        self.waiting.load(Ordering::Relaxed).saturating_sub(held)
    }
}

/// How JetStream-backed brokers start (stream, durable consumer, probe) and take appends (publish).
pub(crate) struct NatsDriver {
    options: NatsOptions,
}

impl NatsDriver {
    pub(crate) fn new(options: NatsOptions) -> NatsDriver {
        NatsDriver { options }
    }
}

impl LogDriver for NatsDriver {
    type Broker = BrokerShared;
    const NAME: &'static str = "nats";

    fn start(&self, new: NewBroker<'_, NatsBrokerConfig>) -> Started<BrokerShared> {
        let not_ready = format!("stream {} is not ready yet", new.config.stream);
        let shared = Arc::new(BrokerShared {
            common: BrokerCommon::new(new.key, new.routes, not_ready),
            config: new.config.clone(),
            js: Mutex::new(None),
            waiting: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
        });
        let probe = run_probe(shared.clone(), self.options.clone(), new.ctx.stop.clone());
        tokio::spawn(probe);
        let task = tokio::spawn(run_consumer(shared.clone(), self.options.clone(), new.ctx));
        Ok((shared, task))
    }

    /// Publishes a batch to the broker's stream; resolves once every PubAck arrived.
    async fn append(&self, shared: &Arc<BrokerShared>, events: Vec<Event>) -> Result<()> {
        let js = shared
            .js
            .lock()
            .clone()
            .ok_or_else(|| ChannelError::Unavailable("nats: not connected".into()))?;
        // A disconnected client would buffer the publish until the PubAck timeout: answer at once instead.
        if js.client().connection_state() != async_nats::connection::State::Connected {
            return Err(ChannelError::Unavailable("nats: not connected".into()));
        }
        let mut acks = Vec::with_capacity(events.len());
        for event in &events {
            let message = binding::encode(event, ContentMode::Binary);
            let mut headers = async_nats::HeaderMap::new();
            for (name, value) in &message.headers {
                headers.insert(name.as_ref(), value.as_str());
            }
            headers.insert(
                "Nats-Msg-Id",
                format!("{}/{}", event.source, event.id).as_str(),
            );
            let ack = tokio::time::timeout(
                self.options.publish_timeout,
                js.publish_with_headers(shared.config.subject.clone(), headers, message.payload),
            )
            .await
            .map_err(|_| nats_err("publish", "timed out"))?
            .map_err(|e| nats_err("publish", e))?;
            acks.push(ack);
        }
        for ack in acks {
            tokio::time::timeout(self.options.publish_timeout, ack)
                .await
                .map_err(|_| nats_err("publish", "no PubAck in time"))?
                .map_err(|e| nats_err("publish", e))?;
        }
        Ok(())
    }
}

fn stream_config(config: &NatsBrokerConfig) -> stream::Config {
    stream::Config {
        name: config.stream.clone(),
        subjects: vec![config.subject.clone()],
        num_replicas: config.replicas,
        max_age: config.max_age.unwrap_or_default(),
        max_bytes: config.max_bytes.unwrap_or(-1),
        storage: match config.storage {
            NatsStorage::File => stream::StorageType::File,
            NatsStorage::Memory => stream::StorageType::Memory,
        },
        ..Default::default()
    }
}

/// Connects, creates or updates the stream and the broker's durable consumer.
async fn setup(
    shared: &BrokerShared,
    options: &NatsOptions,
) -> std::result::Result<(jetstream::Context, consumer::PullConsumer), String> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(shared.config.servers.as_str())
        .await
        .map_err(|e| format!("connect {}: {e}", redact(&shared.config.servers)))?;
    let js = jetstream::new(client);
    let config = stream_config(&shared.config);
    if js.get_stream(&config.name).await.is_ok() {
        if let Err(e) = js.update_stream(config.clone()).await {
            tracing::warn!(broker = %shared.key, "updating stream {}: {e}; using it as it is", config.name);
        }
    } else {
        js.create_stream(config.clone())
            .await
            .map_err(|e| format!("creating stream {}: {e}", config.name))?;
    }
    let name = consumer_name(&shared.key);
    let consumer = js
        .get_stream(&config.name)
        .await
        .map_err(|e| format!("stream {}: {e}", config.name))?
        .get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: options.ack_wait,
                max_ack_pending: i64::try_from(options.max_ack_pending).unwrap_or(10_000),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("consumer {name}: {e}"))?;
    Ok((js, consumer))
}

async fn run_consumer(shared: Arc<BrokerShared>, options: NatsOptions, ctx: RuntimeCtx) {
    let RuntimeCtx { store, stop } = ctx;
    loop {
        let Some((js, consumer)) = shared.set_up(&stop, || setup(&shared, &options)).await else {
            return;
        };
        *shared.js.lock() = Some(js);
        if shared.not_ready.lock().take().is_some() {
            tracing::info!(broker = %shared.key, stream = %shared.config.stream, "consuming");
        }
        let ended = consume(&shared, &store, &options, consumer, &stop).await;
        if ended {
            return;
        }
        // The message stream broke (server restart...): set up again.
    }
}

/// Consumes until `stop` is cancelled (`true`) or until the message stream fails (`false`).
async fn consume(
    shared: &BrokerShared,
    store: &StoreChannel,
    options: &NatsOptions,
    consumer: consumer::PullConsumer,
    stop: &CancellationToken,
) -> bool {
    let mut messages = match consumer.messages().await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(broker = %shared.key, "messages: {e}");
            return false;
        }
    };
    let mut progress =
        tokio::time::interval((options.ack_wait / 3).max(Duration::from_millis(100)));
    progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut scratch = Vec::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return true,
            _ = progress.tick() => {
                // Still working on these: keep JetStream from redelivering them.
                let held: Vec<jetstream::Message> =
                    shared.pending.lock().values().map(|p| p.message.clone()).collect();
                for m in held {
                    let _ = m.ack_with(AckKind::Progress).await;
                }
            }
            m = messages.next() => match m {
                Some(Ok(m)) => handle_message(shared, store, m, &mut scratch, stop).await,
                Some(Err(e)) => {
                    shared.consume_failed(&e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None => return false,
            },
        }
    }
}

/// Reads the broker's consumer info every `probe_interval`: readiness (the client is connected and the
/// server answers within `probe_timeout`) and the backlog JetStream holds for every process.
async fn run_probe(shared: Arc<BrokerShared>, options: NatsOptions, stop: CancellationToken) {
    let name = consumer_name(&shared.key);
    while next_probe(&stop, options.probe_interval).await {
        // Before the first setup the consumer task's reason says why the broker is not ready.
        let Some(js) = shared.js.lock().clone() else {
            continue;
        };
        if js.client().connection_state() != async_nats::connection::State::Connected {
            shared.outage.set_down(
                &shared.key,
                format!("nats: not connected to {}", redact(&shared.config.servers)),
            );
            continue;
        }
        let info = tokio::time::timeout(
            options.probe_timeout,
            js.get_consumer_from_stream::<consumer::pull::Config, _, _>(
                name.as_str(),
                shared.config.stream.as_str(),
            ),
        )
        .await;
        match info {
            Ok(Ok(c)) => {
                let info = c.cached_info();
                let waiting = info.num_pending + info.num_ack_pending as u64;
                shared.waiting.store(waiting, Ordering::Relaxed);
                shared.outage.set_up(&shared.key);
            }
            Ok(Err(e)) => shared
                .outage
                .set_down(&shared.key, format!("nats: consumer {name}: {e}")),
            Err(_) => shared.outage.set_down(
                &shared.key,
                format!(
                    "nats: consumer {name}: no answer within {:?}",
                    options.probe_timeout
                ),
            ),
        }
    }
}

async fn handle_message(
    shared: &BrokerShared,
    store: &StoreChannel,
    message: jetstream::Message,
    scratch: &mut Vec<usize>,
    stop: &CancellationToken,
) {
    let pairs: Vec<(&str, &[u8])> = message
        .headers
        .as_ref()
        .map(|h| {
            h.iter()
                .filter_map(|(name, values)| {
                    let name: &str = name.as_ref();
                    if name.starts_with("Nats-") {
                        return None;
                    }
                    values.first().map(|v| (name, v.as_str().as_bytes()))
                })
                .collect()
        })
        .unwrap_or_default();
    let event = match binding::decode(&pairs, &message.payload) {
        Ok(e) => e,
        Err(e) => {
            shared.invalid.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(broker = %shared.key, "terminating a message that is not a valid CloudEvent: {e}");
            drop(pairs);
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    drop(pairs);
    // Handles are unique in the process, not per broker runtime: a delivery still in flight from a runtime
    // that a reconfiguration replaced must not finish a message of the new runtime.
    let seq = NEXT_ENTRY.fetch_add(1, Ordering::Relaxed);
    let mut message = Some(message);
    let routed = shared
        .route(
            store,
            event,
            scratch,
            stop,
            |remaining| {
                if let Some(message) = message.take() {
                    shared
                        .pending
                        .lock()
                        .insert(seq, Pending { remaining, message });
                }
                EntryId(Entry::Nats(seq))
            },
            || shared.finish_message(seq),
        )
        .await;
    if !routed {
        if let Some(message) = message {
            let _ = message.ack().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerKey;

    #[test]
    fn entry_ids_do_not_collide() {
        let nats = EntryId(Entry::Nats(5));
        assert_eq!(nats.as_seq(), None);
        assert_ne!(nats, EntryId::seq(5));
        assert_ne!(
            nats,
            EntryId(Entry::Kafka {
                generation: 0,
                partition: 0,
                offset: 5
            })
        );
    }

    #[test]
    fn credentials_are_not_shown() {
        assert_eq!(
            redact("nats://u:p@a:4222, tls://b:4222,c:1"),
            "nats://a:4222,tls://b:4222,c:1"
        );
    }

    #[test]
    fn consumer_names_are_valid() {
        assert_eq!(
            consumer_name(&BrokerKey::new("ns.a", "b")),
            "switchyard-broker-ns_a-b"
        );
    }
}
