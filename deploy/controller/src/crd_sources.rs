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

use crate::crd::{custom_resource, Condition, NamespacedObject};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use switchyard_broker::model::eventing::Destination;
use switchyard_broker::model::object::{Object, ObjectMeta, Resource};
use switchyard_broker::model::sources as model;
pub use switchyard_broker::model::sources::{NatsSourceJetStream, SinkRef, SourceSink};

/// `apiVersion` of the KafkaSource CRD (Knative's storage version; the standalone loader also reads `v1`).
pub const KAFKA_SOURCE_API_VERSION: &str = "sources.knative.dev/v1beta1";

custom_resource! {
    /// `spec` of a KafkaSource: consumes Kafka topics and sends each record, as a CloudEvent, to `sink`.
    KafkaSourceSpec(model::KafkaSourceSpec) {
        group: "sources.knative.dev", version: "v1beta1",
        kind: "KafkaSource", status: "SourceStatus",
        categories: ["all", "knative", "sources"],
        columns: [
            r#"{"name":"Topics","type":"string","jsonPath":".spec.topics"}"#,
            r#"{"name":"BootstrapServers","type":"string","jsonPath":".spec.bootstrapServers"}"#,
            r#"{"name":"Sink","type":"string","jsonPath":".status.sinkUri"}"#
        ],
        age: last,
    }
}

custom_resource! {
    /// `spec` of a KafkaSink: a Trigger subscriber (`ref`) that produces each event to a Kafka topic.
    KafkaSinkSpec(model::KafkaSinkSpec) {
        group: "eventing.knative.dev", version: "v1alpha1",
        kind: "KafkaSink", status: "SinkStatus",
        categories: ["all", "knative", "eventing"],
        columns: [
            r#"{"name":"Topic","type":"string","jsonPath":".spec.topic"}"#
        ],
        age: last,
    }
}

custom_resource! {
    /// `spec` of a NatsSource: subscribes to a NATS subject (core NATS or a JetStream durable consumer) and
    /// sends each message, as a CloudEvent, to `sink`.
    NatsSourceSpec(model::NatsSourceSpec) {
        group: "sources.switchyard.dev", version: "v1alpha1",
        kind: "NatsSource", status: "SourceStatus",
        categories: ["all", "knative", "sources"],
        columns: [
            r#"{"name":"Subject","type":"string","jsonPath":".spec.subject"}"#,
            r#"{"name":"Sink","type":"string","jsonPath":".status.sinkUri"}"#
        ],
        age: last,
    }
}

custom_resource! {
    /// `spec` of a NatsSink: a Trigger subscriber (`ref`) that publishes each event to a NATS subject.
    NatsSinkSpec(model::NatsSinkSpec) {
        group: "sources.switchyard.dev", version: "v1alpha1",
        kind: "NatsSink", status: "SinkStatus",
        categories: ["all", "knative", "eventing", "sink"],
        columns: [
            r#"{"name":"Subject","type":"string","jsonPath":".spec.subject"}"#,
            r#"{"name":"JetStream","type":"boolean","jsonPath":".spec.jetstream"}"#
        ],
        age: last,
    }
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

/// What the controller and the data plane need of the four kinds, whatever their spec.
pub trait SourceOrSink: NamespacedObject + Send + Sync + 'static {
    /// `apiVersion` the standalone loader reads this kind under.
    const API_VERSION: &'static str;
    /// The kind.
    const KIND: &'static str;
    /// A source kind (its `spec.sink` may refer to a Broker), not a sink kind.
    const IS_SOURCE: bool;
    /// The object for the loader with this metadata, a source's `spec.sink` replaced by `sink`.
    fn manifest(&self, metadata: ObjectMeta, sink: Option<Destination>) -> Object;
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
    ($ty:ident, $kind:literal, $api:expr, source, $with_sink:expr) => {
        impl SourceOrSink for $ty {
            const API_VERSION: &'static str = $api;
            const KIND: &'static str = $kind;
            const IS_SOURCE: bool = true;
            fn manifest(&self, metadata: ObjectMeta, sink: Option<Destination>) -> Object {
                let mut spec = self.spec.spec.clone();
                $with_sink(&mut spec, sink);
                Object::$ty(Resource {
                    api_version: $api.to_owned(),
                    kind: $kind.to_owned(),
                    metadata,
                    spec,
                })
            }
            fn sink(&self) -> Option<Destination> {
                Some(self.spec.sink.clone().into())
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
    ($ty:ident, $kind:literal, $api:expr, sink) => {
        impl SourceOrSink for $ty {
            const API_VERSION: &'static str = $api;
            const KIND: &'static str = $kind;
            const IS_SOURCE: bool = false;
            fn manifest(&self, metadata: ObjectMeta, _sink: Option<Destination>) -> Object {
                let spec = self.spec.spec.clone();
                Object::$ty(Resource {
                    api_version: $api.to_owned(),
                    kind: $kind.to_owned(),
                    metadata,
                    spec,
                })
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

source_or_sink!(
    KafkaSource,
    "KafkaSource",
    KAFKA_SOURCE_API_VERSION,
    source,
    |spec: &mut model::KafkaSourceSpec, sink: Option<Destination>| {
        if let Some(d) = sink {
            spec.sink = d;
        }
    }
);
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
    source,
    |spec: &mut model::NatsSourceSpec, sink: Option<Destination>| {
        if let Some(d) = sink {
            spec.sink = SourceSink::from(d);
        }
    }
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
