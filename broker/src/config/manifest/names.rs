//! The `apiVersion`s, annotations, defaults and field lists of the manifests the decoder reads (the CRDs
//! in `deploy/crds/` are checked against the field lists).

/// `apiVersion` of Broker and Trigger.
pub const EVENTING_API_VERSION: &str = "eventing.knative.dev/v1";

/// Broker class annotation.
pub const BROKER_CLASS_ANNOTATION: &str = "eventing.knative.dev/broker.class";

/// The default broker class (events in the embedded store). The other supported classes are
/// [`KAFKA_BROKER_CLASS`](crate::config::KAFKA_BROKER_CLASS) and
/// [`NATS_BROKER_CLASS`](crate::config::NATS_BROKER_CLASS).
pub const DEFAULT_BROKER_CLASS: &str = "MTChannelBasedBroker";

/// `apiVersion` of KafkaSink.
pub const KAFKA_SINK_API_VERSION: &str = "eventing.knative.dev/v1alpha1";

/// Accepted `apiVersion`s of KafkaSource.
pub const KAFKA_SOURCE_API_VERSIONS: [&str; 2] =
    ["sources.knative.dev/v1beta1", "sources.knative.dev/v1"];

/// `apiVersion` of NatsSink and NatsSource.
pub const NATS_API_VERSION: &str = "sources.switchyard.dev/v1alpha1";

/// The `spec` fields a NatsSink accepts (the CRD schema in `deploy/crds/` lists exactly these).
pub const NATS_SINK_SPEC_FIELDS: [&str; 4] = ["servers", "subject", "jetstream", "contentMode"];

/// The `spec` fields a NatsSource accepts (the CRD schema in `deploy/crds/` lists exactly these).
pub const NATS_SOURCE_SPEC_FIELDS: [&str; 5] =
    ["servers", "subject", "queueGroup", "jetstream", "sink"];

/// The fields of a NatsSource's `spec.jetstream`.
pub const NATS_SOURCE_JETSTREAM_FIELDS: [&str; 2] = ["stream", "durable"];

/// The fields of a source's `spec.sink`.
pub const SOURCE_SINK_FIELDS: [&str; 2] = ["ref", "uri"];

/// Knative fields of a source's `spec.sink` that standalone mode does not support, and why.
pub(super) const SOURCE_SINK_UNSUPPORTED: [(&str, &str); 2] = [
    (
        "CACerts",
        "custom CA certificates are not supported in standalone mode",
    ),
    (
        "audience",
        "OIDC audiences are not supported in standalone mode",
    ),
];

/// The `spec` fields a KafkaSink accepts.
pub(super) const KAFKA_SINK_SPEC_FIELDS: [&str; 3] = ["topic", "bootstrapServers", "contentMode"];

/// Knative fields of a KafkaSink's `spec` that Switchyard does not support, and why.
pub(super) const KAFKA_SINK_UNSUPPORTED: [(&str, &str); 3] = [
    (
        "numPartitions",
        "Switchyard does not create KafkaSink topics; create the topic beforehand",
    ),
    (
        "replicationFactor",
        "Switchyard does not create KafkaSink topics; create the topic beforehand",
    ),
    (
        "auth",
        "Kafka authentication is not supported in standalone mode",
    ),
];

/// The `spec` fields a KafkaSource accepts.
pub(super) const KAFKA_SOURCE_SPEC_FIELDS: [&str; 5] = [
    "bootstrapServers",
    "topics",
    "consumerGroup",
    "initialOffset",
    "sink",
];

/// Knative fields of a KafkaSource's `spec` that Switchyard does not support, and why.
pub(super) const KAFKA_SOURCE_UNSUPPORTED: [(&str, &str); 5] = [
    (
        "net",
        "TLS and SASL settings are not supported in standalone mode",
    ),
    ("consumers", "Switchyard runs one consumer per KafkaSource"),
    ("ordering", "a KafkaSource delivers in order per partition"),
    (
        "delivery",
        "a KafkaSource sends to its sink without a delivery spec; use a Broker sink and the \
         triggers' delivery",
    ),
    ("ceOverrides", "CloudEvent overrides are not supported"),
];

/// Namespace of a manifest without `metadata.namespace`.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The sink kind a subscriber `ref` names, and its `apiVersion`.
pub(super) fn sink_kind(kind: &str) -> Option<(&'static str, &'static str)> {
    match kind {
        "KafkaSink" => Some(("KafkaSink", KAFKA_SINK_API_VERSION)),
        "NatsSink" => Some(("NatsSink", NATS_API_VERSION)),
        _ => None,
    }
}
