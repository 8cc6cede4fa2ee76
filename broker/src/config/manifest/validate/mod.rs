//! Pass 2, validation: a structurally decoded object of the typed model (pass 1, [`super::structure`])
//! → the compiled [`Document`], with every semantic problem reported at its path (DNS-1123 names,
//! annotations, ranges, ISO-8601 durations, URLs, filters' dialects and attribute names, CESQL, what
//! standalone mode does not support). A field pass 1 found unusable (its [`Shape`]) is not checked again.
//!
//! `broker` (and ConfigMap), `trigger`, `destination` (destinations and delivery), `filter`.

mod broker;
mod destination;
mod filter;
mod trigger;

use super::document::Document;
use super::fields::Ctx;
use super::names::DEFAULT_NAMESPACE;
use super::shape::Shape;
use super::structure::Typed;
use crate::config::rules::is_dns1123_label;
use crate::model::object::{Object, ObjectMeta};

/// Validates a structurally decoded Broker, Trigger or ConfigMap.
pub(super) fn validate(ctx: &mut Ctx<'_>, typed: &Typed) -> Option<Document> {
    let shape = &typed.shape;
    match &typed.object {
        Object::Broker(b) => broker::broker(ctx, b, shape),
        Object::ConfigMap(c) => broker::configmap(ctx, c, shape),
        Object::Trigger(t) => trigger::trigger(ctx, t, shape).map(Document::Trigger),
        // Read by the decoders of `kafka` and `nats`, not through the typed model yet.
        Object::KafkaSink(_)
        | Object::KafkaSource(_)
        | Object::NatsSink(_)
        | Object::NatsSource(_) => None,
    }
}

/// Validated `metadata`: namespace (defaulted) and name, with the annotations.
struct Meta<'o> {
    namespace: String,
    name: String,
    meta: &'o ObjectMeta,
    shape: &'o Shape,
}

impl Meta<'_> {
    /// `None`: not set; `Some(None)`: set to a value that is not a scalar.
    fn annotation(&self, key: &str) -> Option<Option<String>> {
        match self.meta.annotations.get(key) {
            Some(v) => Some(Some(v.clone())),
            None => self
                .shape
                .is_unusable(&format!("metadata.annotations.{key}"))
                .then_some(None),
        }
    }

    fn positive_annotation(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<u64> {
        match self.annotation(key)? {
            Some(s) => match s.trim().parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    ctx.err(
                        "metadata.annotations",
                        format!("{key:?} must be a positive integer, got {s:?}"),
                    );
                    None
                }
            },
            None => {
                ctx.err(
                    "metadata.annotations",
                    format!("{key:?} must be a positive integer"),
                );
                None
            }
        }
    }
}

/// Name and namespace must be DNS-1123 labels; `None` when they are not (or pass 1 found `metadata`
/// unusable).
fn metadata<'o>(ctx: &mut Ctx<'_>, meta: &'o ObjectMeta, shape: &'o Shape) -> Option<Meta<'o>> {
    if shape.is_unusable("metadata") {
        return None;
    }
    let name = if shape.is_unusable("metadata.name") {
        None
    } else if is_dns1123_label(&meta.name) {
        Some(meta.name.clone())
    } else {
        ctx.err(
            "metadata.name",
            format!(
                "{:?} must be a DNS-1123 label: at most 63 lower-case letters, digits or '-', \
                 starting and ending with a letter or digit",
                meta.name
            ),
        );
        None
    };
    let namespace = if shape.is_unusable("metadata.namespace") {
        None
    } else {
        match &meta.namespace {
            None => Some(DEFAULT_NAMESPACE.to_owned()),
            Some(s) if is_dns1123_label(s) => Some(s.clone()),
            Some(s) => {
                ctx.err(
                    "metadata.namespace",
                    format!("{s:?} must be a DNS-1123 label"),
                );
                None
            }
        }
    };
    Some(Meta {
        namespace: namespace?,
        name: name?,
        meta,
        shape,
    })
}
