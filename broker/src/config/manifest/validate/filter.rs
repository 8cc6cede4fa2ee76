//! Pass 2 for a Trigger's filters: attribute names, and the Subscriptions API filter objects of
//! `spec.filters` (free-form JSON in the model: exactly one dialect each, nested without limit).

use crate::config::manifest::fields::{self, join, Ctx};
use crate::config::manifest::shape::Shape;
use crate::config::rules::{is_attribute_key, KEY_REGEX};
use crate::filter::Filter;
use crate::model::eventing::TriggerSpec;
use serde_json::Value as Json;
use std::collections::BTreeMap;

const DIALECTS: [&str; 7] = ["exact", "prefix", "suffix", "all", "any", "not", "cesql"];

fn kind_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

/// `spec.filters` when non-empty, otherwise `spec.filter.attributes`, otherwise [`Filter::True`].
/// Both are validated even when `filters` wins; `None` when either has a problem (in this pass or,
/// noted as `spec.filter` in `shape`, in pass 1).
pub(super) fn trigger_filter(
    ctx: &mut Ctx<'_>,
    spec: &TriggerSpec,
    shape: &Shape,
) -> Option<Filter> {
    let errors_before = ctx.errors.len();
    let mut legacy = Filter::True;
    let attributes = spec.filter.as_ref().and_then(|f| f.attributes.as_ref());
    if let Some(kv) = attributes.and_then(|a| attribute_keys(ctx, "spec.filter.attributes", a)) {
        if !kv.is_empty() {
            legacy = Filter::Attributes(kv);
        }
    }
    let mut filters = Vec::new();
    for (i, item) in spec.filters.iter().enumerate() {
        if let Some(f) = filter(ctx, &format!("spec.filters[{i}]"), item, shape) {
            filters.push(f);
        }
    }
    if ctx.errors.len() != errors_before || shape.is_unusable("spec.filter") {
        return None;
    }
    // Invariant relied on by `explain`: a non-empty `spec.filters` always compiles to `Filter::All(list)`
    // (one element per list item), and the legacy filter to `Filter::Attributes` or `Filter::True`.
    Some(if filters.is_empty() {
        legacy
    } else {
        Filter::All(filters)
    })
}

/// The legacy attributes (sorted by key), each key matching the attribute-name regex.
fn attribute_keys(
    ctx: &mut Ctx<'_>,
    path: &str,
    attributes: &BTreeMap<String, String>,
) -> Option<Vec<(String, String)>> {
    let mut ok = true;
    for k in attributes.keys().filter(|k| !is_attribute_key(k)) {
        ctx.err(path, format!("key {k:?} must match {KEY_REGEX}"));
        ok = false;
    }
    ok.then(|| attributes.clone().into_iter().collect())
}

/// Reports the fields of `map` outside `allowed` (all in one error).
fn unknown_fields(ctx: &mut Ctx<'_>, path: &str, map: &serde_json::Map<String, Json>) {
    let unknown: Vec<String> = map
        .keys()
        .filter(|k| !DIALECTS.contains(&k.as_str()))
        .map(|k| format!("{k:?}"))
        .collect();
    fields::unknown_fields(ctx, path, &unknown, &DIALECTS);
}

/// One Subscriptions API filter object (exactly one dialect).
fn filter(ctx: &mut Ctx<'_>, path: &str, v: &Json, shape: &Shape) -> Option<Filter> {
    let Json::Object(map) = v else {
        ctx.err(path, format!("must be an object, got {}", kind_of(v)));
        return None;
    };
    unknown_fields(ctx, path, map);
    let present: Vec<&str> = DIALECTS
        .iter()
        .copied()
        .filter(|d| map.contains_key(*d))
        .collect();
    let dialect = match present.as_slice() {
        [one] => *one,
        [] => {
            // Unknown fields were already reported; only complain about the missing dialect otherwise.
            if map.is_empty() {
                ctx.err(
                    path,
                    format!("no dialect found; expected one of {}", DIALECTS.join(", ")),
                );
            }
            return None;
        }
        many => {
            ctx.err(
                path,
                format!(
                    "multiple dialects found ({}); use exactly one per filter object",
                    many.join(", ")
                ),
            );
            return None;
        }
    };
    let dpath = join(path, dialect);
    let value = map.get(dialect).unwrap_or(&Json::Null);
    match dialect {
        "exact" | "prefix" | "suffix" => {
            let kv = kv(ctx, &dpath, value, shape)?;
            if kv.is_empty() {
                ctx.err(&dpath, "must contain at least one attribute");
                return None;
            }
            Some(match dialect {
                "exact" => Filter::Exact(kv),
                "prefix" => Filter::Prefix(kv),
                _ => Filter::Suffix(kv),
            })
        }
        "all" | "any" => {
            let Json::Array(items) = value else {
                ctx.err(
                    &dpath,
                    format!(
                        "must be a non-empty list of filters, got {}",
                        kind_of(value)
                    ),
                );
                return None;
            };
            if items.is_empty() {
                ctx.err(&dpath, "must contain at least one filter");
                return None;
            }
            let mut children = Vec::with_capacity(items.len());
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                match filter(ctx, &format!("{dpath}[{i}]"), item, shape) {
                    Some(f) => children.push(f),
                    None => ok = false,
                }
            }
            if !ok {
                return None;
            }
            Some(if dialect == "all" {
                Filter::All(children)
            } else {
                Filter::Any(children)
            })
        }
        "not" => filter(ctx, &dpath, value, shape).map(|f| Filter::Not(Box::new(f))),
        _ => {
            let Json::String(text) = value else {
                ctx.err(
                    &dpath,
                    format!("must be a CESQL expression string, got {}", kind_of(value)),
                );
                return None;
            };
            match crate::cesql::Expression::parse(text) {
                Ok(e) => Some(Filter::Cesql(std::sync::Arc::new(e))),
                Err(e) => {
                    ctx.err(&dpath, format!("invalid CESQL expression: {e}"));
                    None
                }
            }
        }
    }
}

/// A dialect's map of attribute name → non-empty value, sorted by key. `None` also when pass 1 found a
/// key that is not a string (the rest is checked).
fn kv(ctx: &mut Ctx<'_>, path: &str, v: &Json, shape: &Shape) -> Option<Vec<(String, String)>> {
    let Json::Object(m) = v else {
        let got = kind_of(v);
        ctx.err(
            path,
            format!("must be a map of attribute names to values, got {got}"),
        );
        return None;
    };
    let mut out = Vec::with_capacity(m.len());
    let mut ok = true;
    for (k, val) in m {
        if !is_attribute_key(k) {
            ctx.err(path, format!("key {k:?} must match {KEY_REGEX}"));
            ok = false;
            continue;
        }
        match val {
            Json::String(s) if s.is_empty() => {
                ctx.err(path, format!("value of {k:?} must not be empty"));
                ok = false;
            }
            Json::String(s) => out.push((k.clone(), s.clone())),
            other => {
                ctx.err(
                    path,
                    format!(
                        "value of {k:?} must be a string (quote it), got {}",
                        kind_of(other)
                    ),
                );
                ok = false;
            }
        }
    }
    out.sort();
    (ok && !shape.is_unusable(path)).then_some(out)
}
