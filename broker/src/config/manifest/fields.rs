//! The decoder's building blocks: the error collector ([`Ctx`]), objects with checked field names, typed
//! scalars, DNS-1123 labels, URLs, KReferences, `metadata` and annotations, and a source's `spec.sink`.

use super::names::*;
use crate::config::error::ConfigError;
use crate::config::rules::{is_dns1123_label, topic_message};
use crate::config::{is_valid_kafka_topic, BrokerKey, ContentMode, SourceSink};
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
        Some(Obj { map })
    }

    /// Like [`Obj::new`], plus Knative fields Switchyard knows but does not support: each one present
    /// (and not null) gets its own error at its path, `(field name, reason)`.
    pub(super) fn with_unsupported(
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
        let mut unknown = Vec::new();
        for (k, val) in map {
            match k.as_str() {
                Some(k) if allowed.contains(&k) => {}
                Some(k) if unsupported.iter().any(|(u, _)| *u == k) => {
                    if !val.is_null() {
                        let why = unsupported
                            .iter()
                            .find(|(u, _)| *u == k)
                            .map_or("", |(_, why)| why);
                        ctx.err(&join(path, k), format!("not supported: {why}"));
                    }
                }
                Some(k) => unknown.push(format!("{k:?}")),
                None => unknown.push(format!("{k:?}")),
            }
        }
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
        Some(Obj { map })
    }

    /// The field, treating an explicit `null` as absent.
    pub(super) fn get(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key).filter(|v| !v.is_null())
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

/// `spec.contentMode` of a KafkaSink or NatsSink: `binary` (the default) or `structured`.
pub(super) fn decode_content_mode(ctx: &mut Ctx<'_>, v: Option<&Value>) -> Option<ContentMode> {
    let path = "spec.contentMode";
    match v {
        None => Some(ContentMode::Binary),
        Some(m) => match string(ctx, path, m) {
            Some("binary") => Some(ContentMode::Binary),
            Some("structured") => Some(ContentMode::Structured),
            Some(other) => {
                ctx.err(
                    path,
                    format!("must be \"binary\" (the default) or \"structured\", got {other:?}"),
                );
                None
            }
            None => None,
        },
    }
}

/// Strings at (path, value), each parsed as a comma-separated list (problems reported at its path) →
/// one comma-separated string.
pub(super) fn joined_lists<'v>(
    ctx: &mut Ctx<'_>,
    items: impl IntoIterator<Item = (String, &'v Value)>,
    parse: fn(&str) -> Result<String, Vec<String>>,
) -> Option<String> {
    let mut out = Vec::new();
    let mut ok = true;
    for (p, item) in items {
        match string(ctx, &p, item).map(parse) {
            Some(Ok(list)) => out.push(list),
            Some(Err(problems)) => {
                for m in problems {
                    ctx.err(&p, m);
                }
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then(|| out.join(","))
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

/// A required, non-empty DNS-1123 label.
pub(super) fn label(ctx: &mut Ctx<'_>, path: &str, v: Option<&Value>) -> Option<String> {
    let Some(v) = v else {
        ctx.err(path, "required");
        return None;
    };
    let s = string(ctx, path, v)?;
    if is_dns1123_label(s) {
        Some(s.to_owned())
    } else {
        ctx.err(path, format!("{s:?} must be a DNS-1123 label"));
        None
    }
}

/// A decoded KReference.
pub(super) struct Ref {
    pub(super) name: String,
    /// `None` when not set (the caller applies its default).
    pub(super) namespace: Option<String>,
}

/// A KReference (`apiVersion`, `kind`, `name`, `namespace`) whose `kind` the caller already checked.
/// `apiVersion` is required and must be one of `api_versions`.
pub(super) fn decode_ref(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: &Value,
    kind: &str,
    api_versions: &[&str],
) -> Option<Ref> {
    let obj = Obj::new(ctx, path, v, &["apiVersion", "kind", "name", "namespace"])?;
    let av_path = join(path, "apiVersion");
    let mut ok = true;
    match obj.get("apiVersion") {
        None => {
            ctx.err(&av_path, format!("required ({})", api_versions[0]));
            ok = false;
        }
        Some(av) => match string(ctx, &av_path, av) {
            Some(av) if api_versions.contains(&av) => {}
            Some(av) => {
                ctx.err(
                    &av_path,
                    format!(
                        "a {kind} has apiVersion {}, got {av:?}",
                        api_versions
                            .iter()
                            .map(|a| format!("{a:?}"))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                );
                ok = false;
            }
            None => ok = false,
        },
    }
    let name = label(ctx, &join(path, "name"), obj.get("name"));
    let ns_path = join(path, "namespace");
    let namespace = match obj.get("namespace") {
        None => None,
        Some(v) => Some(label(ctx, &ns_path, Some(v))?),
    };
    let name = name?;
    ok.then_some(Ref { name, namespace })
}

/// The `kind` of a `ref` object, if it is an object with a string `kind`.
pub(super) fn ref_kind(v: &Value) -> Option<&str> {
    v.as_mapping()?.get("kind")?.as_str()
}

/// `metadata` → (namespace, name).
pub(super) struct Meta {
    pub(super) namespace: String,
    pub(super) name: String,
}

pub(super) fn decode_metadata(ctx: &mut Ctx<'_>, top: &Mapping) -> Option<Meta> {
    let Some(meta) = top.get("metadata").filter(|v| !v.is_null()) else {
        ctx.err("metadata.name", "required");
        return None;
    };
    let Value::Mapping(meta) = meta else {
        ctx.err(
            "metadata",
            format!("must be an object, got {}", kind_of(meta)),
        );
        return None;
    };
    let name = match meta.get("name").filter(|v| !v.is_null()) {
        None => {
            ctx.err("metadata.name", "required");
            None
        }
        Some(v) => match string(ctx, "metadata.name", v) {
            Some(s) if is_dns1123_label(s) => Some(s.to_owned()),
            Some(s) => {
                ctx.err(
                    "metadata.name",
                    format!(
                        "{s:?} must be a DNS-1123 label: at most 63 lower-case letters, digits or '-', \
                         starting and ending with a letter or digit"
                    ),
                );
                None
            }
            None => None,
        },
    };
    let namespace = match meta.get("namespace").filter(|v| !v.is_null()) {
        None => Some(DEFAULT_NAMESPACE.to_owned()),
        Some(v) => match string(ctx, "metadata.namespace", v) {
            Some(s) if is_dns1123_label(s) => Some(s.to_owned()),
            Some(s) => {
                ctx.err(
                    "metadata.namespace",
                    format!("{s:?} must be a DNS-1123 label"),
                );
                None
            }
            None => None,
        },
    };
    // Sources and sinks read no annotation, but they must be an object.
    if let Some(other) = meta
        .get("annotations")
        .filter(|v| !v.is_null() && !v.is_mapping())
    {
        ctx.err(
            "metadata.annotations",
            format!("must be an object, got {}", kind_of(other)),
        );
    }
    Some(Meta {
        namespace: namespace?,
        name: name?,
    })
}

/// A KafkaSource's or NatsSource's required `spec.sink`: `ref` to a Broker (namespace defaults to the
/// source's, from `meta`) or `uri`.
pub(super) fn decode_source_sink(
    ctx: &mut Ctx<'_>,
    v: Option<&Value>,
    meta: Option<&Meta>,
) -> Option<SourceSink> {
    let path = "spec.sink";
    let Some(v) = v else {
        ctx.err(path, "required: ref (a Broker) or uri");
        return None;
    };
    let source_ns = meta.map_or(DEFAULT_NAMESPACE, |m| &m.namespace);
    let obj = Obj::with_unsupported(
        ctx,
        path,
        v,
        &SOURCE_SINK_FIELDS,
        &[
            (
                "CACerts",
                "custom CA certificates are not supported in standalone mode",
            ),
            (
                "audience",
                "OIDC audiences are not supported in standalone mode",
            ),
        ],
    )?;
    let uri_path = join(path, "uri");
    match (obj.get("ref"), obj.get("uri")) {
        (Some(_), Some(_)) => {
            ctx.err(
                path,
                "set either uri or ref, not both (a uri relative to a ref is not supported in \
                 standalone mode)",
            );
            None
        }
        (Some(r), None) => {
            let ref_path = join(path, "ref");
            let kind_path = join(&ref_path, "kind");
            match ref_kind(r) {
                Some("Broker") => {}
                Some(other) => {
                    ctx.err(
                        &kind_path,
                        format!(
                            "only Broker refs are resolved in standalone mode, got {other:?}; use \
                             uri for other destinations"
                        ),
                    );
                    return None;
                }
                None => {
                    // Not an object: let decode_ref report it; otherwise kind is missing or not a string.
                    if r.is_mapping() {
                        ctx.err(&kind_path, "required (Broker)");
                        return None;
                    }
                }
            }
            let r = decode_ref(ctx, &ref_path, r, "Broker", &[EVENTING_API_VERSION])?;
            let ns = r.namespace.unwrap_or_else(|| source_ns.to_owned());
            Some(SourceSink::Broker(BrokerKey::new(ns, r.name)))
        }
        (None, Some(u)) => {
            let u = string(ctx, &uri_path, u)?;
            check_url(ctx, &uri_path, u).map(SourceSink::Url)
        }
        (None, None) => {
            ctx.err(path, "required: ref (a Broker) or uri");
            None
        }
    }
}

/// A scalar as a message shows it (strings quoted), or its JSON type.
pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        other => kind_of(other).to_owned(),
    }
}
