//! Pass 1 for a Trigger's filters: `spec.filter.attributes` (a map of strings) and `spec.filters`
//! (a list of Subscriptions API filter objects, kept free-form as JSON as in the model: their dialects
//! nest without limit, so pass 2 checks them whole).

use crate::config::manifest::fields::*;
use crate::config::manifest::shape::Shape;
use crate::config::rules::{is_attribute_key, KEY_REGEX};
use serde_json::Value as Json;
use serde_yaml::Value;
use std::collections::BTreeMap;

/// `spec.filter.attributes`: attribute name → value (`null`: the attribute must be present, kept as
/// `""`). A value of another type is reported only under a valid key (pass 2 reports invalid keys).
pub(super) fn attributes(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: &Value,
) -> Option<BTreeMap<String, String>> {
    let Value::Mapping(m) = v else {
        let got = kind_of(v);
        ctx.err(
            path,
            format!("must be a map of attribute names to values, got {got}"),
        );
        return None;
    };
    let mut out = BTreeMap::new();
    for (k, val) in m {
        let Some(k) = k.as_str() else {
            ctx.err(
                path,
                format!("key {k:?} must be a string matching {KEY_REGEX}"),
            );
            continue;
        };
        match val {
            Value::String(s) => {
                out.insert(k.to_owned(), s.clone());
            }
            Value::Null => {
                out.insert(k.to_owned(), String::new());
            }
            _ if !is_attribute_key(k) => {
                out.insert(k.to_owned(), String::new());
            }
            other => ctx.err(
                path,
                format!(
                    "value of {k:?} must be a string (quote it), got {}",
                    kind_of(other)
                ),
            ),
        }
    }
    Some(out)
}

/// `spec.filters`: a list; each item as JSON.
pub(super) fn filters(ctx: &mut Ctx<'_>, path: &str, v: &Value, shape: &mut Shape) -> Vec<Json> {
    let Value::Sequence(items) = v else {
        ctx.err(path, format!("must be a list, got {}", kind_of(v)));
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| json(ctx, &format!("{path}[{i}]"), item, shape))
        .collect()
}

/// A YAML value as JSON. A mapping key that is not a string is reported at the mapping (filters' keys
/// are attribute names or dialects) and left out, the mapping noted as unusable; a tag is dropped.
fn json(ctx: &mut Ctx<'_>, path: &str, v: &Value, shape: &mut Shape) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::from(i)
            } else if let Some(u) = n.as_u64() {
                Json::from(u)
            } else {
                n.as_f64().map_or(Json::Null, Json::from)
            }
        }
        Value::String(s) => Json::String(s.clone()),
        Value::Sequence(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| json(ctx, &format!("{path}[{i}]"), item, shape))
                .collect(),
        ),
        Value::Mapping(m) => {
            let mut out = serde_json::Map::new();
            for (k, val) in m {
                match k.as_str() {
                    Some(k) => {
                        let child = json(ctx, &join(path, k), val, shape);
                        out.insert(k.to_owned(), child);
                    }
                    None => {
                        ctx.err(
                            path,
                            format!("key {k:?} must be a string matching {KEY_REGEX}"),
                        );
                        shape.unusable(path);
                    }
                }
            }
            Json::Object(out)
        }
        Value::Tagged(t) => json(ctx, path, &t.value, shape),
    }
}
