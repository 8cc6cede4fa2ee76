//! Rust types of the event source and sink kinds Switchyard runs itself:
//!
//! - `sources.knative.dev/v1beta1` **KafkaSource** and `eventing.knative.dev/v1alpha1` **KafkaSink**, with
//!   Knative Eventing Kafka's field names (`bootstrapServers`, `topics`, `consumerGroup`, `initialOffset`,
//!   `sink`; `topic`, `numPartitions`, `replicationFactor`, `contentMode`, ...). Knative fields Switchyard
//!   does not implement (`net`, `consumers`, `ordering`, `delivery`, `ceOverrides`, `auth`,
//!   `numPartitions`, `replicationFactor`) are kept in the schema, so that the API server does not prune
//!   them silently: the controller reports them in `SpecValid`, like the standalone loader does;
//! - `sources.switchyard.dev/v1alpha1` **NatsSource** and **NatsSink**, whose `spec` fields are exactly
//!   the ones the standalone decoder accepts (`broker/tests/integration/crds.rs` checks that they do not
//!   drift apart).
//!
//! A source's status carries `SinkProvided`, `SpecValid`, `Ready` and the resolved `sinkUri`; a sink's
//! `SpecValid` and `Ready`. `crdgen` renders all of them into `deploy/crds/` with the Broker and Trigger.

use crate::crd::{Condition, DeliverySpec, Destination};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `apiVersion` of the KafkaSource CRD (Knative's storage version; the standalone loader also reads `v1`).
pub const KAFKA_SOURCE_API_VERSION: &str = "sources.knative.dev/v1beta1";

/// `spec` of a KafkaSource: consumes Kafka topics and sends each record, as a CloudEvent, to `sink`.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sources.knative.dev",
    version = "v1beta1",
    kind = "KafkaSource",
    namespaced,
    status = "SourceStatus",
    category = "all",
    category = "knative",
    category = "sources",
    printcolumn = r#"{"name":"Topics","type":"string","jsonPath":".spec.topics"}"#,
    printcolumn = r#"{"name":"BootstrapServers","type":"string","jsonPath":".spec.bootstrapServers"}"#,
    printcolumn = r#"{"name":"Sink","type":"string","jsonPath":".status.sinkUri"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSourceSpec {
    /// Kafka bootstrap servers (`host:port`; an item may itself be comma-separated).
    pub bootstrap_servers: Vec<String>,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Consumer group (default `knative-kafka-source-<namespace>-<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_group: Option<String>,
    /// Where a new consumer group starts: `earliest` or `latest` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "initial_offset")]
    pub initial_offset: Option<String>,
    /// Where the events go: a Broker `ref` (delivered by this installation's data plane directly), any
    /// addressable `ref`, or an absolute `uri`.
    pub sink: Destination,
    /// Knative's TLS / SASL settings (not supported: reported in `SpecValid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::crd::free_form_object")]
    pub net: Option<serde_json::Value>,
    /// Knative's consumer count (not supported: reported in `SpecValid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumers: Option<i32>,
    /// Knative's delivery ordering (not supported: reported in `SpecValid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering: Option<String>,
    /// Knative's delivery spec toward the sink (not supported: reported in `SpecValid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
    /// Knative's CloudEvent overrides (not supported: reported in `SpecValid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::crd::free_form_object")]
    pub ce_overrides: Option<serde_json::Value>,
}

/// `spec` of a KafkaSink: a Trigger subscriber (`ref`) that produces each event to a Kafka topic.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "eventing.knative.dev",
    version = "v1alpha1",
    kind = "KafkaSink",
    namespaced,
    status = "SinkStatus",
    category = "all",
    category = "knative",
    category = "eventing",
    printcolumn = r#"{"name":"Topic","type":"string","jsonPath":".spec.topic"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSinkSpec {
    /// Topic the events are produced to (it must exist: Switchyard does not create topics).
    pub topic: String,
    /// Kafka bootstrap servers (`host:port`).
    pub bootstrap_servers: Vec<String>,
    /// Kafka binding content mode: `binary` (the default) or `structured`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "content_mode")]
    pub content_mode: Option<String>,
    /// Knative's topic creation setting (not supported: reported in `SpecValid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_partitions: Option<i32>,
    /// Knative's topic creation setting (not supported: reported in `SpecValid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i32>,
    /// Knative's authentication settings (not supported: reported in `SpecValid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::crd::free_form_object")]
    pub auth: Option<serde_json::Value>,
}

/// `spec` of a NatsSource: subscribes to a NATS subject (core NATS or a JetStream durable consumer) and
/// sends each message, as a CloudEvent, to `sink`.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sources.switchyard.dev",
    version = "v1alpha1",
    kind = "NatsSource",
    namespaced,
    status = "SourceStatus",
    category = "all",
    category = "knative",
    category = "sources",
    printcolumn = r#"{"name":"Subject","type":"string","jsonPath":".spec.subject"}"#,
    printcolumn = r#"{"name":"Sink","type":"string","jsonPath":".status.sinkUri"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NatsSourceSpec {
    /// NATS servers: a list of `nats://host:port`, `tls://host:port` or `host:port` (an item may itself be
    /// comma-separated), or one comma-separated string.
    #[schemars(schema_with = "list_or_string")]
    pub servers: serde_json::Value,
    /// Subject to subscribe to; a token may be the wildcard `*` and the last token may be `>`.
    #[schemars(schema_with = "nats_subject_with_wildcards")]
    pub subject: String,
    /// Core NATS queue group shared by the processes that run this source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "nats_queue_group")]
    pub queue_group: Option<String>,
    /// Consume a JetStream stream with a durable consumer instead of core NATS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<NatsSourceJetStream>,
    /// Where the events go: a Broker `ref` or an absolute `uri`.
    pub sink: SourceSink,
}

/// `spec.jetstream` of a NatsSource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NatsSourceJetStream {
    /// Stream to consume.
    #[schemars(schema_with = "nats_name")]
    pub stream: String,
    /// Durable consumer name.
    #[schemars(schema_with = "nats_name")]
    pub durable: String,
}

/// A NatsSource's `spec.sink`: `ref` (a Broker, or any addressable) or an absolute `uri`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SourceSink {
    /// Reference to the destination.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<SinkRef>,
    /// Absolute URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// `spec.sink.ref` of a NatsSource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SinkRef {
    /// API version of the referent (`eventing.knative.dev/v1` for a Broker).
    pub api_version: String,
    /// Kind of the referent.
    pub kind: String,
    /// Name of the referent.
    pub name: String,
    /// Namespace of the referent (defaults to the source's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl From<&SourceSink> for Destination {
    fn from(s: &SourceSink) -> Destination {
        Destination {
            reference: s.reference.as_ref().map(|r| crate::crd::KReference {
                kind: r.kind.clone(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                api_version: Some(r.api_version.clone()),
                ..Default::default()
            }),
            uri: s.uri.clone(),
            ..Default::default()
        }
    }
}

/// `spec` of a NatsSink: a Trigger subscriber (`ref`) that publishes each event to a NATS subject.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sources.switchyard.dev",
    version = "v1alpha1",
    kind = "NatsSink",
    namespaced,
    status = "SinkStatus",
    category = "all",
    category = "knative",
    category = "eventing",
    category = "sink",
    printcolumn = r#"{"name":"Subject","type":"string","jsonPath":".spec.subject"}"#,
    printcolumn = r#"{"name":"JetStream","type":"boolean","jsonPath":".spec.jetstream"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NatsSinkSpec {
    /// NATS servers: a list of `nats://host:port`, `tls://host:port` or `host:port` (an item may itself be
    /// comma-separated), or one comma-separated string.
    #[schemars(schema_with = "list_or_string")]
    pub servers: serde_json::Value,
    /// Subject the events are published to (no wildcards).
    #[schemars(schema_with = "nats_subject")]
    pub subject: String,
    /// Publish through JetStream and wait for the acknowledgement (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<bool>,
    /// CloudEvents NATS binding content mode: `binary` (the default) or `structured`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "content_mode")]
    pub content_mode: Option<String>,
}

/// `status` of a KafkaSource or NatsSource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `SinkProvided` and `SpecValid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The resolved `spec.sink`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_uri: Option<String>,
}

/// `status` of a KafkaSink or NatsSink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SinkStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and `SpecValid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

fn list_or_string(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    // A list or a string: no structural type fits both, so the decoder validates it (SpecValid).
    schemars::json_schema!({
        "description": "NATS servers: a list of `nats://host:port`, `tls://host:port` or `host:port` \
                        (an item may itself be comma-separated), or one comma-separated string.",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

fn content_mode(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Content mode: `binary` (the default) or `structured`.",
        "type": "string",
        "enum": ["binary", "structured"]
    })
}

fn initial_offset(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Where a new consumer group starts: `earliest` or `latest` (the default).",
        "type": "string",
        "enum": ["earliest", "latest"]
    })
}

fn nats_subject(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Subject the events are published to (no wildcards).",
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^[^.*>\\s]+(\\.[^.*>\\s]+)*$"
    })
}

fn nats_subject_with_wildcards(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Subject to subscribe to; a token may be the wildcard `*` and the last token may be `>`.",
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^([^.*>\\s]+|\\*)(\\.([^.*>\\s]+|\\*))*(\\.>)?$|^>$"
    })
}

fn nats_queue_group(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Core NATS queue group shared by the processes that run this source.",
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^[^.*>\\s]+(\\.[^.*>\\s]+)*$"
    })
}

fn nats_name(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "A JetStream stream or consumer name.",
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^[^.*>/\\\\\\s]+$"
    })
}

/// What the controller and the data plane need of the four kinds, whatever their spec.
pub trait SourceOrSink:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + Serialize
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// `apiVersion` the standalone loader reads this kind under.
    const API_VERSION: &'static str;
    /// The kind.
    const KIND: &'static str;
    /// `spec` as JSON (unset optional fields left out).
    fn spec_json(&self) -> serde_json::Value;
    /// `spec.sink` of a source (`None` for a sink kind).
    fn sink(&self) -> Option<Destination>;
    /// `status.observedGeneration`.
    fn observed_generation(&self) -> Option<i64>;
    /// `status.conditions`.
    fn conditions(&self) -> &[Condition];
    /// `status.sinkUri` (always `None` for a sink kind).
    fn sink_uri(&self) -> Option<&str>;
    /// This object with its status replaced (`sink_uri` is ignored by the sink kinds).
    fn with_status(
        &self,
        observed_generation: Option<i64>,
        conditions: Vec<Condition>,
        sink_uri: Option<String>,
    ) -> Self;
}

macro_rules! source_or_sink {
    ($ty:ty, $kind:literal, $api:expr, source) => {
        impl SourceOrSink for $ty {
            const API_VERSION: &'static str = $api;
            const KIND: &'static str = $kind;
            fn spec_json(&self) -> serde_json::Value {
                serde_json::to_value(&self.spec).unwrap_or_default()
            }
            fn sink(&self) -> Option<Destination> {
                Some((&self.spec.sink).into())
            }
            fn observed_generation(&self) -> Option<i64> {
                self.status.as_ref().and_then(|s| s.observed_generation)
            }
            fn conditions(&self) -> &[Condition] {
                self.status
                    .as_ref()
                    .map_or(&[], |s| s.conditions.as_slice())
            }
            fn sink_uri(&self) -> Option<&str> {
                self.status.as_ref().and_then(|s| s.sink_uri.as_deref())
            }
            fn with_status(
                &self,
                observed_generation: Option<i64>,
                conditions: Vec<Condition>,
                sink_uri: Option<String>,
            ) -> Self {
                let mut o = self.clone();
                o.status = Some(SourceStatus {
                    observed_generation,
                    conditions,
                    sink_uri,
                });
                o
            }
        }
    };
    ($ty:ty, $kind:literal, $api:expr, sink) => {
        impl SourceOrSink for $ty {
            const API_VERSION: &'static str = $api;
            const KIND: &'static str = $kind;
            fn spec_json(&self) -> serde_json::Value {
                serde_json::to_value(&self.spec).unwrap_or_default()
            }
            fn sink(&self) -> Option<Destination> {
                None
            }
            fn observed_generation(&self) -> Option<i64> {
                self.status.as_ref().and_then(|s| s.observed_generation)
            }
            fn conditions(&self) -> &[Condition] {
                self.status
                    .as_ref()
                    .map_or(&[], |s| s.conditions.as_slice())
            }
            fn sink_uri(&self) -> Option<&str> {
                None
            }
            fn with_status(
                &self,
                observed_generation: Option<i64>,
                conditions: Vec<Condition>,
                _sink_uri: Option<String>,
            ) -> Self {
                let mut o = self.clone();
                o.status = Some(SinkStatus {
                    observed_generation,
                    conditions,
                });
                o
            }
        }
    };
}

/// Lets the macro below treat both sink types alike.
impl From<&Destination> for Destination {
    fn from(d: &Destination) -> Destination {
        d.clone()
    }
}

source_or_sink!(KafkaSource, "KafkaSource", KAFKA_SOURCE_API_VERSION, source);
source_or_sink!(
    KafkaSink,
    "KafkaSink",
    switchyard_broker::config::manifest::KAFKA_SINK_API_VERSION,
    sink
);
source_or_sink!(
    NatsSource,
    "NatsSource",
    switchyard_broker::config::manifest::NATS_API_VERSION,
    source
);
source_or_sink!(
    NatsSink,
    "NatsSink",
    switchyard_broker::config::manifest::NATS_API_VERSION,
    sink
);

/// The sink kind (`KafkaSink` or `NatsSink`) a Trigger subscriber `ref` names (by kind and apiVersion):
/// such a subscriber is not an address, the dispatcher produces / publishes to it directly.
pub fn sink_kind_of(d: &Destination) -> Option<&'static str> {
    let r = d.reference.as_ref()?;
    let av = r.api_version.as_deref()?;
    match (r.kind.as_str(), av) {
        ("KafkaSink", a) if a == switchyard_broker::config::manifest::KAFKA_SINK_API_VERSION => {
            Some("KafkaSink")
        }
        ("NatsSink", a) if a == switchyard_broker::config::manifest::NATS_API_VERSION => {
            Some("NatsSink")
        }
        _ => None,
    }
}

/// Whether `d` is a `ref` (without a relative `uri`) to an `eventing.knative.dev/v1` Broker.
pub fn is_broker_ref(d: &Destination) -> bool {
    d.uri.is_none()
        && d.reference.as_ref().is_some_and(|r| {
            r.kind == "Broker" && r.api_version.as_deref() == Some("eventing.knative.dev/v1")
        })
}

fn servers_of(v: &serde_json::Value) -> Vec<String> {
    let items: Vec<&str> = match v {
        serde_json::Value::String(s) => vec![s.as_str()],
        serde_json::Value::Array(a) => a.iter().filter_map(|i| i.as_str()).collect(),
        _ => Vec::new(),
    };
    items
        .iter()
        .flat_map(|i| i.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_start_matches("nats://")
                .trim_start_matches("tls://")
                .to_owned()
        })
        .collect()
}

/// The descriptive `status.subscriberUri` of a Trigger whose subscriber is this KafkaSink:
/// `kafka://<bootstrap servers, comma-separated>/<topic>` (not an HTTP address: informational).
pub fn kafka_sink_uri(s: &KafkaSink) -> String {
    format!(
        "kafka://{}/{}",
        s.spec.bootstrap_servers.join(","),
        s.spec.topic
    )
}

/// The descriptive `status.subscriberUri` of a Trigger whose subscriber is this NatsSink:
/// `nats://<servers, comma-separated, without scheme>/<subject>` (informational).
pub fn nats_sink_uri(s: &NatsSink) -> String {
    format!(
        "nats://{}/{}",
        servers_of(&s.spec.servers).join(","),
        s.spec.subject
    )
}
