//! Pass 1, structural decoding: one document ([`Value`]) → a typed [`Object`] of the shared model, with
//! every structural problem reported at its path (not an object, unknown fields, the wrong JSON type, a
//! missing required field). Semantic rules (names, ranges, durations, URLs, filters' dialects...) are
//! pass 2's ([`super::validate`]).
//!
//! The walker is tolerant: a field with a problem is left out of the typed object (noted in the
//! [`Shape`]) and the rest is still decoded, so that every problem of a document is reported.
//!
//! `eventing`: Broker and Trigger specs; `destination`: destinations and delivery; `filter`: a Trigger's
//! filters.

mod destination;
mod eventing;
mod filter;

use super::fields::{kind_of, scalar_text, string, Ctx, Obj};
use super::shape::Shape;
use crate::model::object::{Object, ObjectMeta};
use serde_yaml::{Mapping, Value};

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
}

/// Decodes a document of `kind` (its `apiVersion` and `kind` already checked); `None` when it is not
/// an object with known top-level fields... (then nothing else can be said about it).
pub(super) fn decode(ctx: &mut Ctx<'_>, kind: Kind, v: &Value) -> Option<Typed> {
    let mut shape = Shape::default();
    let object = match kind {
        Kind::Broker => eventing::broker(ctx, v, &mut shape).map(Object::Broker),
        Kind::Trigger => eventing::trigger(ctx, v, &mut shape).map(Object::Trigger),
        Kind::ConfigMap => eventing::configmap(ctx, v, &mut shape).map(Object::ConfigMap),
    }?;
    Some(Typed { object, shape })
}

/// The `apiVersion` and `kind` of a top-level mapping (both already checked to be strings).
fn type_meta(top: &Obj<'_>) -> (String, String) {
    let text = |k: &str| {
        top.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (text("apiVersion"), text("kind"))
}

/// `metadata`: name and namespace (strings), annotations (scalars, as text). A missing or unusable
/// name or metadata is noted as `metadata.name` / `metadata` in `shape`; an annotation that is not a
/// scalar as `metadata.annotations.<key>` (what it must be depends on the annotation: pass 2 says).
fn metadata(ctx: &mut Ctx<'_>, top: &Mapping, shape: &mut Shape) -> ObjectMeta {
    let mut out = ObjectMeta::default();
    let Some(meta) = top.get("metadata").filter(|v| !v.is_null()) else {
        ctx.err("metadata.name", "required");
        shape.unusable("metadata");
        return out;
    };
    let Value::Mapping(meta) = meta else {
        ctx.err(
            "metadata",
            format!("must be an object, got {}", kind_of(meta)),
        );
        shape.unusable("metadata");
        return out;
    };
    match meta.get("name").filter(|v| !v.is_null()) {
        None => {
            ctx.err("metadata.name", "required");
            shape.unusable("metadata.name");
        }
        Some(v) => match string(ctx, "metadata.name", v) {
            Some(s) => out.name = s.to_owned(),
            None => shape.unusable("metadata.name"),
        },
    }
    if let Some(v) = meta.get("namespace").filter(|v| !v.is_null()) {
        match string(ctx, "metadata.namespace", v) {
            Some(s) => out.namespace = Some(s.to_owned()),
            None => shape.unusable("metadata.namespace"),
        }
    }
    match meta.get("annotations").filter(|v| !v.is_null()) {
        None => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let Some(k) = k.as_str() else { continue };
                match scalar_text(v) {
                    Some(text) => {
                        out.annotations.insert(k.to_owned(), text);
                    }
                    None => shape.unusable(format!("metadata.annotations.{k}")),
                }
            }
        }
        Some(other) => ctx.err(
            "metadata.annotations",
            format!("must be an object, got {}", kind_of(other)),
        ),
    }
    out
}
