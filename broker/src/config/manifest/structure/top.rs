//! What every object has: `apiVersion` and `kind`, `metadata`, and (but a ConfigMap) a `spec` object;
//! and the structural checks of a single string field.

use crate::config::manifest::fields::*;
use crate::config::manifest::shape::Shape;
use crate::model::object::{ObjectMeta, Resource};
use serde_yaml::{Mapping, Value};

/// A top-level object with the usual fields: `apiVersion` and `kind`, `metadata`, then the spec that
/// `spec` decodes from the checked top-level mapping. `None` when `v` is not an object.
pub(super) fn resource<S>(
    ctx: &mut Ctx<'_>,
    v: &Value,
    shape: &mut Shape,
    spec: impl FnOnce(&mut Ctx<'_>, &Obj<'_>, &mut Shape) -> S,
) -> Option<Resource<S>> {
    let top = Obj::new(ctx, TOP_PATH, v, &TOP_FIELDS)?;
    let (api_version, kind) = type_meta(&top);
    let metadata = metadata(ctx, top.map, shape);
    let spec = spec(ctx, &top, shape);
    Some(Resource {
        api_version,
        kind,
        metadata,
        spec,
    })
}

/// A [`resource`] with a required [`spec_object`] (`what`, `allowed`, `unsupported`: as there), whose
/// fields `fill` decodes into the default spec (left as it is when `spec` is missing or not an object).
pub(super) fn resource_with_spec<S: Default>(
    ctx: &mut Ctx<'_>,
    v: &Value,
    shape: &mut Shape,
    what: &str,
    allowed: &[&str],
    unsupported: &[(&str, &str)],
    fill: impl FnOnce(&mut Ctx<'_>, &Obj<'_>, &mut S, &mut Shape),
) -> Option<Resource<S>> {
    resource(ctx, v, shape, |ctx, top, shape| {
        let mut spec = S::default();
        if let Some(s) = spec_object(ctx, top, what, allowed, unsupported, shape) {
            fill(ctx, &s, &mut spec, shape);
        }
        spec
    })
}

/// The `apiVersion` and `kind` of a top-level mapping (both already checked to be strings).
pub(super) fn type_meta(top: &Obj<'_>) -> (String, String) {
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
pub(super) fn metadata(ctx: &mut Ctx<'_>, top: &Mapping, shape: &mut Shape) -> ObjectMeta {
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

/// The required `spec` (`what`: its required fields, for the message), with fields among `allowed` and
/// the Knative fields Switchyard does not support (`(field name, reason)`; each one written is noted as
/// given at `spec.<field>`: pass 2 reports it). `None` (noted as unusable `spec`) when it is missing or not an
/// object.
pub(super) fn spec_object<'v>(
    ctx: &mut Ctx<'_>,
    top: &Obj<'v>,
    what: &str,
    allowed: &[&str],
    unsupported: &[(&str, &str)],
    shape: &mut Shape,
) -> Option<Obj<'v>> {
    let spec = required(ctx, "spec", top.get("spec"), what)
        .and_then(|v| Obj::with_known(ctx, "spec", v, allowed, unsupported));
    let Some(spec) = spec else {
        shape.unusable("spec");
        return None;
    };
    for (field, _) in unsupported {
        if spec.get(field).is_some() {
            shape.given(join("spec", field));
        }
    }
    Some(spec)
}

/// A string field (`None` when absent); another type is reported and noted as unusable.
pub(super) fn text(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: Option<&Value>,
    shape: &mut Shape,
) -> Option<String> {
    let s = string(ctx, path, v?);
    if s.is_none() {
        shape.unusable(path);
    }
    s.map(str::to_owned)
}

/// A required string field: missing (`required (what)`) or of another type, it is reported and noted
/// as unusable (and left as `""`).
pub(super) fn required_text(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: Option<&Value>,
    what: &str,
    shape: &mut Shape,
) -> String {
    if v.is_none() {
        ctx.err(path, format!("required ({what})"));
        shape.unusable(path);
    }
    text(ctx, path, v, shape).unwrap_or_default()
}

/// A required list of strings (`what`: what it holds, for the messages); a string item of another type
/// is reported, noted as unusable at `path[i]` and left as `""`; a missing list or another type is
/// reported and noted as unusable.
pub(super) fn string_list(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: Option<&Value>,
    required_what: &str,
    list_what: &str,
    shape: &mut Shape,
) -> Vec<String> {
    let Some(v) = required(ctx, path, v, required_what) else {
        shape.unusable(path);
        return Vec::new();
    };
    let Value::Sequence(items) = v else {
        ctx.err(
            path,
            format!("must be a list of {list_what}, got {}", kind_of(v)),
        );
        shape.unusable(path);
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let p = format!("{path}[{i}]");
            text(ctx, &p, Some(item), shape).unwrap_or_default()
        })
        .collect()
}
