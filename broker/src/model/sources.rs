//! The `spec`s of the source and sink kinds Switchyard runs itself: `sources.knative.dev/v1beta1`
//! KafkaSource and `eventing.knative.dev/v1alpha1` KafkaSink (Knative Eventing Kafka's field names), and
//! `sources.switchyard.dev/v1alpha1` NatsSource and NatsSink.

use super::eventing::{DeliverySpec, Destination, KReference};
use serde::{Deserialize, Serialize};

/// `spec` of a KafkaSource: consumes Kafka topics and sends each record, as a CloudEvent, to `sink`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::model::schema::initial_offset")
    )]
    pub initial_offset: Option<String>,
    /// Where the events go: a Broker `ref` (delivered by this installation's data plane directly), any
    /// addressable `ref`, or an absolute `uri`.
    pub sink: Destination,
    /// Knative's TLS / SASL settings (not supported: reported in `SpecValid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::model::schema::free_form_object")
    )]
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
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::model::schema::free_form_object")
    )]
    pub ce_overrides: Option<serde_json::Value>,
}

/// `spec` of a KafkaSink: a Trigger subscriber (`ref`) that produces each event to a Kafka topic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct KafkaSinkSpec {
    /// Topic the events are produced to (it must exist: Switchyard does not create topics).
    pub topic: String,
    /// Kafka bootstrap servers (`host:port`).
    pub bootstrap_servers: Vec<String>,
    /// Kafka binding content mode: `binary` (the default) or `structured`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::model::schema::content_mode")
    )]
    pub content_mode: Option<String>,
    /// Knative's topic creation setting (not supported: reported in `SpecValid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_partitions: Option<i32>,
    /// Knative's topic creation setting (not supported: reported in `SpecValid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i32>,
    /// Knative's authentication settings (not supported: reported in `SpecValid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::model::schema::free_form_object")
    )]
    pub auth: Option<serde_json::Value>,
}

/// `spec` of a NatsSource: subscribes to a NATS subject (core NATS or a JetStream durable consumer) and
/// sends each message, as a CloudEvent, to `sink`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct NatsSourceSpec {
    /// NATS servers: a list of `nats://host:port`, `tls://host:port` or `host:port` (an item may itself be
    /// comma-separated), or one comma-separated string.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::model::schema::list_or_string")
    )]
    pub servers: serde_json::Value,
    /// Subject to subscribe to; a token may be the wildcard `*` and the last token may be `>`.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::model::schema::nats_subject_with_wildcards")
    )]
    pub subject: String,
    /// Core NATS queue group shared by the processes that run this source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::model::schema::nats_queue_group")
    )]
    pub queue_group: Option<String>,
    /// Consume a JetStream stream with a durable consumer instead of core NATS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<NatsSourceJetStream>,
    /// Where the events go: a Broker `ref` or an absolute `uri`.
    pub sink: SourceSink,
}

/// `spec.jetstream` of a NatsSource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NatsSourceJetStream {
    /// Stream to consume.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::model::schema::nats_name")
    )]
    pub stream: String,
    /// Durable consumer name.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::model::schema::nats_name")
    )]
    pub durable: String,
}

/// A NatsSource's `spec.sink`: `ref` (a Broker, or any addressable) or an absolute `uri`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SourceSink {
    /// Reference to the destination.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<SinkRef>,
    /// Absolute URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// `spec.sink.ref` of a NatsSource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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

/// A NatsSource's `spec.sink` for a destination: its `ref` without Knative's `group` and `address`, and
/// its `uri` (`CACerts` and `audience` are dropped).
impl From<Destination> for SourceSink {
    fn from(d: Destination) -> SourceSink {
        SourceSink {
            reference: d.reference.map(|r| SinkRef {
                api_version: r.api_version.unwrap_or_default(),
                kind: r.kind,
                name: r.name,
                namespace: r.namespace,
            }),
            uri: d.uri,
        }
    }
}

impl From<SourceSink> for Destination {
    fn from(s: SourceSink) -> Destination {
        Destination::from(&s)
    }
}

impl From<&SourceSink> for Destination {
    fn from(s: &SourceSink) -> Destination {
        Destination {
            reference: s.reference.as_ref().map(|r| KReference {
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct NatsSinkSpec {
    /// NATS servers: a list of `nats://host:port`, `tls://host:port` or `host:port` (an item may itself be
    /// comma-separated), or one comma-separated string.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::model::schema::list_or_string")
    )]
    pub servers: serde_json::Value,
    /// Subject the events are published to (no wildcards).
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::model::schema::nats_subject")
    )]
    pub subject: String,
    /// Publish through JetStream and wait for the acknowledgement (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<bool>,
    /// CloudEvents NATS binding content mode: `binary` (the default) or `structured`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::model::schema::content_mode")
    )]
    pub content_mode: Option<String>,
}
