//! Pass 1, structural decoding: one document ([`Value`]) → a typed [`Object`] of the shared model, with
//! every structural problem reported at its path (not an object, unknown fields, the wrong JSON type, a
//! missing required field). Semantic rules (names, ranges, durations, URLs, filters' dialects...) are
//! pass 2's ([`super::validate`]).
//!
//! The walker is tolerant: a field with a problem is left out of the typed object (noted in the
//! [`Shape`]) and the rest is still decoded, so that every problem of a document is reported.
//!
//! `top`: what every object has (`apiVersion` and `kind`, `metadata`, a `spec` object); `eventing`:
//! Broker, Trigger and ConfigMap; `kafka`: KafkaSink and KafkaSource; `nats`: NatsSink and NatsSource;
//! `destination`: destinations, delivery and a source's `spec.sink`; `filter`: a Trigger's filters.

mod destination;
mod eventing;
mod filter;
mod kafka;
mod nats;
mod top;

use super::fields::Ctx;
use super::shape::Shape;
use crate::model::object::Object;
use serde_yaml::Value;

/// A structurally decoded document.
pub(super) struct Typed {
    pub(super) object: Object,
    pub(super) shape: Shape,
}

/// Kinds read through the typed model.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Broker,
    Trigger,
    ConfigMap,
    KafkaSink,
    KafkaSource,
    NatsSink,
    NatsSource,
}

/// Decodes a document of `kind` (its `apiVersion` and `kind` already checked); `None` when it is not
/// an object with known top-level fields... (then nothing else can be said about it).
pub(super) fn decode(ctx: &mut Ctx<'_>, kind: Kind, v: &Value) -> Option<Typed> {
    let mut shape = Shape::default();
    let object = match kind {
        Kind::Broker => eventing::broker(ctx, v, &mut shape).map(Object::Broker),
        Kind::Trigger => eventing::trigger(ctx, v, &mut shape).map(Object::Trigger),
        Kind::ConfigMap => eventing::configmap(ctx, v, &mut shape).map(Object::ConfigMap),
        Kind::KafkaSink => kafka::sink(ctx, v, &mut shape).map(Object::KafkaSink),
        Kind::KafkaSource => kafka::source(ctx, v, &mut shape).map(Object::KafkaSource),
        Kind::NatsSink => nats::sink(ctx, v, &mut shape).map(Object::NatsSink),
        Kind::NatsSource => nats::source(ctx, v, &mut shape).map(Object::NatsSource),
    }?;
    Some(Typed { object, shape })
}
