//! The decoder's building blocks: the error collector ([`Ctx`]), objects with checked field names, typed
//! scalars, a `ref`'s kind, URLs and Kafka topic names.

use crate::config::error::ConfigError;
use crate::config::is_valid_kafka_topic;
use crate::config::rules::topic_message;
use serde_yaml::{Mapping, Value};

/// Path used for problems with the document as a whole (not one field).
pub(super) const TOP_PATH: &str = "(document)";

pub(super) const TOP_FIELDS: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];

/// Collects the errors of one document.
pub(crate) struct Ctx<'a> {
    pub(crate) file: &'a str,
    pub(crate) doc: usize,
    pub(crate) errors: &'a mut Vec<ConfigError>,
}

impl Ctx<'_> {
    pub(crate) fn err(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            doc: self.doc,
            path: path.to_owned(),
            message: message.into(),
        });
    }
}

pub(super) fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

pub(super) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "an object",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A mapping whose fields have been checked against the allowed names.
pub(super) struct Obj<'v> {
    pub(super) map: &'v Mapping,
}

impl<'v> Obj<'v> {
    /// `v` must be a mapping with string keys among `allowed`; unknown fields are reported (all in one
    /// error) but the object is still returned so its known fields get checked too.
    pub(super) fn new(
        ctx: &mut Ctx<'_>,
        path: &str,
        v: &'v Value,
        allowed: &[&str],
    ) -> Option<Obj<'v>> {
        Obj::with_known(ctx, path, v, allowed, &[])
    }

    /// Like [`Obj::new`], plus the Knative fields Switchyard knows but does not support, `(field name,
    /// reason)`: accepted without being listed in `allowed` (the validation pass reports them).
    pub(super) fn with_known(
        ctx: &mut Ctx<'_>,
        path: &str,
        v: &'v Value,
        allowed: &[&str],
        unsupported: &[(&str, &str)],
    ) -> Option<Obj<'v>> {
        let Value::Mapping(map) = v else {
            ctx.err(path, format!("must be an object, got {}", kind_of(v)));
            return None;
        };
        let unknown: Vec<String> = map
            .keys()
            .filter(|k| {
                k.as_str().is_none_or(|k| {
                    !allowed.contains(&k) && unsupported.iter().all(|(u, _)| *u != k)
                })
            })
            .map(|k| match k.as_str() {
                Some(k) => format!("{k:?}"),
                None => format!("{k:?}"),
            })
            .collect();
        unknown_fields(ctx, path, &unknown, allowed);
        Some(Obj { map })
    }

    /// The field, treating an explicit `null` as absent.
    pub(super) fn get(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }
}

/// Reports the `unknown` fields (already quoted) of the object at `path`, all in one error naming the
/// `allowed` ones; nothing when there are none.
pub(super) fn unknown_fields(ctx: &mut Ctx<'_>, path: &str, unknown: &[String], allowed: &[&str]) {
    if !unknown.is_empty() {
        let s = if unknown.len() == 1 { "" } else { "s" };
        ctx.err(
            path,
            format!(
                "unknown field{s} {}; allowed: {}",
                unknown.join(", "),
                allowed.join(", ")
            ),
        );
    }
}

/// A required field's value, or `None` with "required (`what`)" reported at `path`.
pub(super) fn required<'v>(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: Option<&'v Value>,
    what: &str,
) -> Option<&'v Value> {
    if v.is_none() {
        ctx.err(path, format!("required ({what})"));
    }
    v
}

pub(super) fn string<'v>(ctx: &mut Ctx<'_>, path: &str, v: &'v Value) -> Option<&'v str> {
    match v {
        Value::String(s) => Some(s),
        other => {
            ctx.err(path, format!("must be a string, got {}", kind_of(other)));
            None
        }
    }
}

/// A string or an integer scalar (annotations written without quotes), as text.
pub(super) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An absolute `http`/`https` URL.
pub(super) fn check_url(ctx: &mut Ctx<'_>, path: &str, s: &str) -> Option<String> {
    match s.parse::<http::Uri>() {
        Ok(uri)
            if matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.host().is_some_and(|h| !h.is_empty()) =>
        {
            Some(s.to_owned())
        }
        Ok(_) => {
            ctx.err(path, format!("{s:?} must be an absolute http or https URL"));
            None
        }
        Err(e) => {
            ctx.err(path, format!("{s:?} is not a valid URL: {e}"));
            None
        }
    }
}

/// A Kafka topic name; reports an error naming the rule otherwise.
pub(super) fn check_topic(ctx: &mut Ctx<'_>, path: &str, s: &str) -> bool {
    let ok = is_valid_kafka_topic(s);
    if !ok {
        ctx.err(path, topic_message(s));
    }
    ok
}

/// The `kind` of a `ref` object, if it is an object with a string `kind`.
pub(super) fn ref_kind(v: &Value) -> Option<&str> {
    v.as_mapping()?.get("kind")?.as_str()
}

/// A scalar as a message shows it (strings quoted), or its JSON type.
pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        other => kind_of(other).to_owned(),
    }
}
