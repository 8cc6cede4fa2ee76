//! What one decoded document is.

use crate::config::{
    BrokerConfig, KafkaSinkConfig, KafkaSourceConfig, NatsSinkConfig, NatsSourceConfig,
    TriggerConfig,
};
use std::collections::BTreeMap;

/// One decoded document.
#[derive(Debug)]
pub(crate) enum Document {
    /// A Broker; `config_ref` (namespace, name) still has to be resolved against the ConfigMaps.
    /// `kafka_topic` is `Some((topic, external))` for class `Kafka`: its backend is built from the
    /// ConfigMap once resolved; likewise for class `NatsJetStream` when `nats` is set.
    Broker {
        spec: BrokerConfig,
        config_ref: Option<(String, String)>,
        kafka_topic: Option<(String, bool)>,
        nats: bool,
    },
    /// A Trigger.
    Trigger(TriggerConfig),
    /// A ConfigMap: (namespace, name) and its data.
    ConfigMap {
        key: (String, String),
        data: BTreeMap<String, String>,
    },
    /// A KafkaSink.
    KafkaSink(KafkaSinkConfig),
    /// A KafkaSource (a `Broker` sink still has to be checked against the brokers).
    KafkaSource(KafkaSourceConfig),
    /// A NatsSink.
    NatsSink(NatsSinkConfig),
    /// A NatsSource (a `Broker` sink still has to be checked against the brokers).
    NatsSource(NatsSourceConfig),
    /// A document of another kind/apiVersion (the warning text, without file/doc prefix).
    Skipped(String),
}
