//! The NATS component's process settings ([`NatsOptions`], from the command line) and the names it gives
//! things on a server ([`consumer_name`]). Always compiled, like the manifest decoding
//! (`config/manifest/nats.rs`): a build without the `nats` feature takes the same flags and refuses
//! JetStream-backed brokers by name when the topology is applied.

use crate::config::BrokerKey;
use std::time::Duration;

/// Settings of the JetStream backend.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// In-memory queue entries per trigger before new entries overflow into the embedded store.
    pub trigger_window: usize,
    /// JetStream `ack_wait` of the broker consumers: how soon the messages a dead process held are
    /// redelivered to the others.
    pub ack_wait: Duration,
    /// Messages a process may hold unacknowledged per broker (`max_ack_pending`).
    pub max_ack_pending: usize,
    /// How long a publish waits for its PubAck (the ingress answers 503 after it).
    pub publish_timeout: Duration,
    /// How long `apply_topology` waits for a new broker's stream before answering.
    pub stream_wait: Duration,
    /// How often each broker's consumer info is read (readiness and backlog).
    pub probe_interval: Duration,
    /// How long a probe may take before the broker counts as down.
    pub probe_timeout: Duration,
}

impl Default for NatsOptions {
    fn default() -> Self {
        NatsOptions {
            trigger_window: 1024,
            ack_wait: Duration::from_secs(10),
            max_ack_pending: 10_000,
            publish_timeout: Duration::from_secs(10),
            stream_wait: Duration::from_secs(10),
            probe_interval: Duration::from_millis(500),
            probe_timeout: Duration::from_secs(2),
        }
    }
}

/// Durable consumer name of a JetStream-backed broker.
pub fn consumer_name(broker: &BrokerKey) -> String {
    let clean = |s: &str| s.replace(['.', '*', '>', ' '], "_");
    format!(
        "switchyard-broker-{}-{}",
        clean(&broker.namespace),
        clean(&broker.name)
    )
}
