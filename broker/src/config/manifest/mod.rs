//! Decoding of Knative manifests (`eventing.knative.dev/v1` Broker and Trigger, `v1` ConfigMap,
//! `eventing.knative.dev/v1alpha1` KafkaSink, `sources.knative.dev/v1beta1` (or `v1`) KafkaSource,
//! `sources.switchyard.dev/v1alpha1` NatsSink and NatsSource).
//!
//! Documents are walked as [`serde_yaml::Value`] rather than deserialized into `#[derive]` types so that
//! every problem is reported (not only the first), with the exact field path (`spec.filters[0].all[1].prefix`)
//! and a message a user can act on. Unknown fields in spec objects are errors, as with Knative's webhook.
//!
//! Every kind is read in two passes over the typed model ([`crate::model`]): `structure` (the document →
//! a typed object, with every structural problem) then `validate` (the typed object → a `Document`,
//! with every semantic problem); `shape` is what the first tells the second. `fields` holds the shared
//! building blocks, `names` the public constants, re-exported here.

mod document;
mod fields;
mod names;
mod shape;
mod structure;
mod validate;

pub(crate) use document::Document;
pub(crate) use fields::Ctx;
pub use names::{
    BROKER_CLASS_ANNOTATION, DEFAULT_BROKER_CLASS, DEFAULT_NAMESPACE, EVENTING_API_VERSION,
    KAFKA_SINK_API_VERSION, KAFKA_SOURCE_API_VERSIONS, NATS_API_VERSION, NATS_SINK_SPEC_FIELDS,
    NATS_SOURCE_JETSTREAM_FIELDS, NATS_SOURCE_SPEC_FIELDS, SOURCE_SINK_FIELDS,
};

use fields::{kind_of, TOP_PATH};
use serde_yaml::Value;
use structure::Kind;

/// A document read through the typed model: pass 1 (structure), then pass 2 (validation).
fn typed(ctx: &mut Ctx<'_>, kind: Kind, v: &Value) -> Option<Document> {
    let typed = structure::decode(ctx, kind, v)?;
    validate::validate(ctx, &typed)
}

/// Decodes one non-empty document.
pub(crate) fn decode_document(ctx: &mut Ctx<'_>, v: &Value) -> Option<Document> {
    let Value::Mapping(map) = v else {
        ctx.err(
            TOP_PATH,
            format!(
                "must be an object (a Kubernetes manifest), got {}",
                kind_of(v)
            ),
        );
        return None;
    };
    let text = |k: &str| map.get(k).and_then(Value::as_str);
    let (Some(api_version), Some(kind)) = (text("apiVersion"), text("kind")) else {
        if text("apiVersion").is_none() {
            ctx.err("apiVersion", "required (a string)");
        }
        if text("kind").is_none() {
            ctx.err("kind", "required (a string)");
        }
        return None;
    };
    match (kind, api_version) {
        ("Broker", EVENTING_API_VERSION) => typed(ctx, Kind::Broker, v),
        ("Trigger", EVENTING_API_VERSION) => typed(ctx, Kind::Trigger, v),
        ("ConfigMap", "v1") => typed(ctx, Kind::ConfigMap, v),
        ("KafkaSink", KAFKA_SINK_API_VERSION) => typed(ctx, Kind::KafkaSink, v),
        ("KafkaSource", av) if KAFKA_SOURCE_API_VERSIONS.contains(&av) => {
            typed(ctx, Kind::KafkaSource, v)
        }
        ("NatsSink", NATS_API_VERSION) => typed(ctx, Kind::NatsSink, v),
        ("NatsSource", NATS_API_VERSION) => typed(ctx, Kind::NatsSource, v),
        _ => Some(Document::Skipped(format!(
            "skipped kind {kind:?} (apiVersion {api_version:?}): only Broker and Trigger \
             ({EVENTING_API_VERSION}), ConfigMap (v1), KafkaSink ({KAFKA_SINK_API_VERSION}), \
             KafkaSource ({}), NatsSink and NatsSource ({NATS_API_VERSION}) are read",
            KAFKA_SOURCE_API_VERSIONS.join(" or ")
        ))),
    }
}
