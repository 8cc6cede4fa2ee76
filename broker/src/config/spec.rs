//! The compiled (validated) objects of a configuration: keys, brokers, triggers, sinks and sources,
//! and the naming rules they follow. Free of routing, so that `routing` can use them without a cycle.

use crate::delivery::DeliveryConfig;
use crate::filter::Filter;
use std::collections::BTreeMap;
use std::fmt;

/// Annotation on a Trigger that sets its max in-flight deliveries.
pub const MAX_INFLIGHT_ANNOTATION: &str = "switchyard.dev/max-inflight";
/// Annotation on a Broker that sets its backlog limit (undelivered queue entries) before ingress answers 429.
pub const MAX_BACKLOG_ANNOTATION: &str = "switchyard.dev/max-backlog";
/// Default per-trigger in-flight deliveries.
pub const DEFAULT_MAX_INFLIGHT: usize = 100;
/// Broker class whose events live in a Kafka topic.
pub const KAFKA_BROKER_CLASS: &str = "Kafka";
/// Broker annotation naming an existing topic to use instead of `knative-broker-<ns>-<name>`.
pub const EXTERNAL_TOPIC_ANNOTATION: &str = "kafka.eventing.knative.dev/external.topic";
/// Broker class whose events live in a NATS JetStream stream.
pub const NATS_BROKER_CLASS: &str = "NatsJetStream";
/// Switchyard's own broker class (the one its Kubernetes controller reconciles). Its backend is chosen
/// by [`BACKEND_ANNOTATION`]: `embedded` (default), `kafka` or `nats-jetstream`, so that the same
/// manifest works locally and in a cluster where Knative's own `Kafka` class may be installed.
pub const SWITCHYARD_BROKER_CLASS: &str = "Switchyard";
/// Backend of a broker of class [`SWITCHYARD_BROKER_CLASS`].
pub const BACKEND_ANNOTATION: &str = "switchyard.dev/backend";
/// Trigger annotation: `ordered` or `unordered` (default).
pub const DELIVERY_ORDER_ANNOTATION: &str = "kafka.eventing.knative.dev/delivery.order";

/// Declares a `namespace/name` key type: `new` and `Display` as `namespace/name`.
macro_rules! object_key {
    ($(#[$doc:meta])* $name:ident { namespace: $namespace_doc:literal, name: $name_doc:literal }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name {
            #[doc = $namespace_doc]
            pub namespace: String,
            #[doc = $name_doc]
            pub name: String,
        }

        impl $name {
            /// Builds a key.
            pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> $name {
                $name {
                    namespace: namespace.into(),
                    name: name.into(),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}/{}", self.namespace, self.name)
            }
        }
    };
}

object_key!(
    /// `namespace/name` of a Broker.
    BrokerKey {
        namespace: "Namespace (`default` when the manifest has none).",
        name: "Broker name."
    }
);
object_key!(
    /// `namespace/name` of a Trigger (trigger names are unique per namespace, as in Kubernetes).
    TriggerKey {
        namespace: "Namespace.",
        name: "Trigger name."
    }
);
object_key!(
    /// `namespace/name` of any other object (KafkaSink, KafkaSource, ...).
    ObjectKey {
        namespace: "Namespace.",
        name: "Name."
    }
);

/// Where a broker keeps its events.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Backend {
    /// The embedded store (every class except the ones below).
    #[default]
    Embedded,
    /// A Kafka topic (`eventing.knative.dev/broker.class: Kafka`).
    Kafka(KafkaBrokerConfig),
    /// A NATS JetStream stream (`eventing.knative.dev/broker.class: NatsJetStream`).
    NatsJetStream(NatsBrokerConfig),
}

/// The settings of one log backend's brokers, as a [`Backend`] variant holds them.
pub trait LogBackendConfig {
    /// The settings if `backend` is this log's.
    fn of(backend: &Backend) -> Option<&Self>;
}

impl LogBackendConfig for KafkaBrokerConfig {
    fn of(backend: &Backend) -> Option<&KafkaBrokerConfig> {
        match backend {
            Backend::Kafka(c) => Some(c),
            Backend::Embedded | Backend::NatsJetStream(_) => None,
        }
    }
}

impl LogBackendConfig for NatsBrokerConfig {
    fn of(backend: &Backend) -> Option<&NatsBrokerConfig> {
        match backend {
            Backend::NatsJetStream(c) => Some(c),
            Backend::Embedded | Backend::Kafka(_) => None,
        }
    }
}

/// JetStream storage of a broker's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NatsStorage {
    /// On disk (default).
    #[default]
    File,
    /// In memory.
    Memory,
}

/// A JetStream-backed broker's settings, from its `spec.config` ConfigMap (`servers`, `stream.replicas`,
/// `stream.maxAge`, `stream.maxBytes`, `stream.storage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsBrokerConfig {
    /// Comma-separated NATS server URLs (`nats://host:port`).
    pub servers: String,
    /// Stream name: `KNATIVE_BROKER_<namespace>_<name>` (characters JetStream forbids become `_`).
    pub stream: String,
    /// The one subject the stream captures: `knative.broker.<namespace>.<name>` (`.` in names become `_`).
    pub subject: String,
    /// `stream.replicas` (default 1).
    pub replicas: usize,
    /// `stream.maxAge` (default: unlimited).
    pub max_age: Option<std::time::Duration>,
    /// `stream.maxBytes` (default: unlimited).
    pub max_bytes: Option<i64>,
    /// `stream.storage` (`file` default, or `memory`).
    pub storage: NatsStorage,
}

/// A validated `sources.switchyard.dev/v1alpha1` NatsSink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSinkConfig {
    /// Identity.
    pub key: ObjectKey,
    /// Comma-separated NATS server URLs.
    pub servers: String,
    /// Subject the events are published to.
    pub subject: String,
    /// Publish through JetStream and wait for the PubAck.
    pub jetstream: bool,
    /// `spec.contentMode` (`binary` default, or `structured`).
    pub content_mode: ContentMode,
}

/// JetStream part of a NatsSource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSourceJetStreamConfig {
    /// Stream to consume.
    pub stream: String,
    /// Durable consumer name.
    pub durable: String,
}

/// A validated `sources.switchyard.dev/v1alpha1` NatsSource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSourceConfig {
    /// Identity.
    pub key: ObjectKey,
    /// Comma-separated NATS server URLs.
    pub servers: String,
    /// Subject (wildcards allowed).
    pub subject: String,
    /// Queue group (core NATS), so that several processes share the messages.
    pub queue_group: Option<String>,
    /// Consume a JetStream stream with a durable consumer instead of core NATS.
    pub jetstream: Option<NatsSourceJetStreamConfig>,
    /// `spec.sink`.
    pub sink: SourceSinkConfig,
}

/// A Kafka-backed broker's settings, from its `spec.config` ConfigMap (keys as Knative's
/// `kafka-broker-config`) and annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaBrokerConfig {
    /// `bootstrap.servers` (comma-separated host:port list).
    pub bootstrap_servers: String,
    /// `knative-broker-<namespace>-<name>`, or the external topic.
    pub topic: String,
    /// `kafka.eventing.knative.dev/external.topic` was set: the topic must exist and is never created.
    pub external_topic: bool,
    /// `default.topic.partitions` (default 10, as Knative).
    pub partitions: i32,
    /// `default.topic.replication.factor` (default 1 here; Knative's default is 3).
    pub replication_factor: i16,
}

/// Trigger delivery order (`kafka.eventing.knative.dev/delivery.order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryOrder {
    /// Any order, full concurrency (default).
    #[default]
    Unordered,
    /// Events with the same `partitionkey` are delivered one at a time, in channel order.
    Ordered,
}

/// A subscriber (or sink) a delivery goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationConfig {
    /// An absolute http(s) URL.
    Url(String),
    /// `ref` to a `KafkaSink` in the same configuration.
    KafkaSink(ObjectKey),
    /// `ref` to a `NatsSink` in the same configuration.
    NatsSink(ObjectKey),
}

impl fmt::Display for DestinationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DestinationConfig::Url(u) => f.write_str(u),
            DestinationConfig::KafkaSink(k) => write!(f, "kafkasink:{k}"),
            DestinationConfig::NatsSink(k) => write!(f, "natssink:{k}"),
        }
    }
}

/// How an event is written into a Kafka record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentMode {
    /// Attributes in `ce_` headers, data as the value (default).
    #[default]
    Binary,
    /// The whole event as `application/cloudevents+json` in the value.
    Structured,
}

/// A validated `eventing.knative.dev/v1alpha1` KafkaSink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSinkConfig {
    /// Identity.
    pub key: ObjectKey,
    /// Topic the events are produced to.
    pub topic: String,
    /// Comma-separated bootstrap servers.
    pub bootstrap_servers: String,
    /// `spec.contentMode`.
    pub content_mode: ContentMode,
}

/// Where a source sends what it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSinkConfig {
    /// `ref` to a Broker in the configuration: sent through this process's ingress.
    Broker(BrokerKey),
    /// An absolute http(s) URL.
    Url(String),
}

/// A validated `sources.knative.dev/v1beta1` KafkaSource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSourceConfig {
    /// Identity.
    pub key: ObjectKey,
    /// Comma-separated bootstrap servers (`spec.bootstrapServers` joined).
    pub bootstrap_servers: String,
    /// `spec.topics`.
    pub topics: Vec<String>,
    /// `spec.consumerGroup` (default: `knative-kafka-source-<namespace>-<name>`).
    pub consumer_group: String,
    /// `spec.sink`.
    pub sink: SourceSinkConfig,
    /// `spec.initialOffset`: where a consumer group without committed offsets starts.
    pub initial_offset: InitialOffset,
}

/// `spec.initialOffset` of a KafkaSource (Knative's values; default `latest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitialOffset {
    /// Start at the beginning of each partition.
    Earliest,
    /// Start at the end: only records produced after the group first joined (default).
    #[default]
    Latest,
}

/// Kafka's topic name rule: 1 to 249 characters of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn is_valid_kafka_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A NATS subject: non-empty `.`-separated tokens without whitespace; with `wildcards`, a token may be
/// `*` (one token) and the last token may be `>` (one or more tokens), otherwise `*` and `>` are not
/// allowed anywhere. At most 255 bytes.
pub fn is_valid_nats_subject(subject: &str, wildcards: bool) -> bool {
    if subject.is_empty() || subject.len() > 255 {
        return false;
    }
    let count = subject.split('.').count();
    subject.split('.').enumerate().all(|(i, token)| {
        !token.is_empty()
            && !token
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            && match token {
                "*" => wildcards,
                ">" => wildcards && i + 1 == count,
                t => !t.contains(['*', '>']),
            }
    })
}

/// A JetStream stream or consumer name: 1 to 255 characters, none of them whitespace, a control
/// character, `.`, `*`, `>`, `/` or `\`.
pub fn is_valid_nats_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
        })
}

/// `s` with the characters that are special in NATS subjects and stream names (`.`, `*`, `>`,
/// whitespace, and `/`, `\` for stream names) replaced by `_`.
fn nats_sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Stream name of a JetStream-backed broker: `KNATIVE_BROKER_<namespace>_<name>` (sanitized).
pub fn nats_broker_stream(namespace: &str, name: &str) -> String {
    format!(
        "KNATIVE_BROKER_{}_{}",
        nats_sanitize(namespace),
        nats_sanitize(name)
    )
}

/// Subject of a JetStream-backed broker: `knative.broker.<namespace>.<name>` (sanitized, so exactly
/// four tokens).
pub fn nats_broker_subject(namespace: &str, name: &str) -> String {
    format!(
        "knative.broker.{}.{}",
        nats_sanitize(namespace),
        nats_sanitize(name)
    )
}

/// A validated Broker.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// Identity.
    pub key: BrokerKey,
    /// `eventing.knative.dev/broker.class` (defaults to `MTChannelBasedBroker`).
    pub class: String,
    /// `spec.delivery`: the default for triggers that set no delivery of their own.
    pub delivery: Option<DeliveryConfig>,
    /// Backlog limit (undelivered queue entries across the broker's triggers); `None` = the process default.
    pub max_backlog: Option<u64>,
    /// Data of the ConfigMap named by `spec.config`, if any (used by non-default broker classes).
    pub config: BTreeMap<String, String>,
    /// Where its events are stored (from the class and `config`).
    pub backend: Backend,
}

/// A validated Trigger with its filter compiled.
#[derive(Debug, Clone)]
pub struct TriggerConfig {
    /// Identity.
    pub key: TriggerKey,
    /// The broker (same namespace) this trigger consumes from.
    pub broker: BrokerKey,
    /// Compiled filter (`spec.filters` when non-empty, otherwise `spec.filter.attributes`).
    pub filter: Filter,
    /// The subscriber.
    pub subscriber: DestinationConfig,
    /// The trigger's own `spec.delivery` (replaces the broker's as a whole when present).
    pub delivery: Option<DeliveryConfig>,
    /// Max concurrent deliveries for this trigger.
    pub max_inflight: usize,
    /// `kafka.eventing.knative.dev/delivery.order` (honoured on every backend).
    pub delivery_order: DeliveryOrder,
}

impl TriggerConfig {
    /// The delivery spec in force: the trigger's if it set any field, otherwise the broker's.
    pub fn effective_delivery<'a>(
        &'a self,
        broker: &'a BrokerConfig,
    ) -> Option<&'a DeliveryConfig> {
        self.delivery.as_ref().or(broker.delivery.as_ref())
    }
}
