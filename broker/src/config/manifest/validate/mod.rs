//! Pass 2, validation: a structurally decoded object of the typed model (pass 1, [`super::structure`])
//! → the compiled [`Document`], with every semantic problem reported at its path (DNS-1123 names,
//! annotations, ranges, ISO-8601 durations, URLs, filters' dialects and attribute names, CESQL, what
//! standalone mode does not support). A field pass 1 found unusable (its [`Shape`]) is not checked again.
//!
//! `meta`: `metadata` (names and annotations); `broker` (and ConfigMap), `trigger`, `kafka` (KafkaSink
//! and KafkaSource), `nats` (NatsSink and NatsSource); `destination`: destinations, delivery and a
//! source's `spec.sink`; `filter`: a Trigger's filters; `values`: what the Kafka and NATS kinds share.

mod broker;
mod destination;
mod filter;
mod kafka;
mod meta;
mod nats;
mod trigger;
mod values;

use super::document::Document;
use super::fields::Ctx;
use super::structure::Typed;
use crate::model::object::Object;

/// Validates a structurally decoded object.
pub(super) fn validate(ctx: &mut Ctx<'_>, typed: &Typed) -> Option<Document> {
    let shape = &typed.shape;
    match &typed.object {
        Object::Broker(b) => broker::broker(ctx, b, shape),
        Object::ConfigMap(c) => broker::configmap(ctx, c, shape),
        Object::Trigger(t) => trigger::trigger(ctx, t, shape).map(Document::Trigger),
        Object::KafkaSink(s) => kafka::sink(ctx, s, shape).map(Document::KafkaSink),
        Object::KafkaSource(s) => kafka::source(ctx, s, shape).map(Document::KafkaSource),
        Object::NatsSink(s) => nats::sink(ctx, s, shape).map(Document::NatsSink),
        Object::NatsSource(s) => nats::source(ctx, s, shape).map(Document::NatsSource),
    }
}
