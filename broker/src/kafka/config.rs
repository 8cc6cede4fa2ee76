//! The Kafka component's process settings ([`KafkaOptions`], from the command line) and the names it
//! gives things in a cluster ([`consumer_group`]). Always compiled, like the manifest decoding
//! (`config/manifest/kafka.rs`): a build without the `kafka` feature takes the same flags and refuses
//! Kafka-backed brokers by name when the topology is applied.

use crate::config::BrokerKey;
use std::time::Duration;

/// Settings of the Kafka backend.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    /// In-memory queue entries per trigger before new entries overflow into the embedded store.
    pub trigger_window: usize,
    /// How often finished offsets are committed.
    pub commit_interval: Duration,
    /// How long the producer keeps retrying a record (librdkafka `message.timeout.ms`); the ingress answers
    /// 503 after it.
    pub produce_timeout: Duration,
    /// Consumer group session timeout: how long a killed process keeps its partitions.
    pub session_timeout: Duration,
    /// How long `apply_topology` waits for a new broker's topic before answering (the consumer keeps
    /// retrying in the background; appends answer 503 until the topic is there).
    pub topic_wait: Duration,
    /// Largest record the producer sends (`message.max.bytes`).
    pub max_message_bytes: usize,
    /// How often each broker's topic is probed (readiness and the consumer group's lag).
    pub probe_interval: Duration,
    /// How long one probe request may take before the broker counts as down.
    pub probe_timeout: Duration,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        KafkaOptions {
            trigger_window: 1024,
            commit_interval: Duration::from_millis(200),
            produce_timeout: Duration::from_secs(30),
            session_timeout: Duration::from_secs(6),
            topic_wait: Duration::from_secs(15),
            max_message_bytes: 2 * 1024 * 1024,
            probe_interval: Duration::from_millis(500),
            probe_timeout: Duration::from_secs(2),
        }
    }
}

/// Consumer group of a Kafka-backed broker.
pub fn consumer_group(broker: &BrokerKey) -> String {
    format!("switchyard-broker-{}-{}", broker.namespace, broker.name)
}
