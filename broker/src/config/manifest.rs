//! Decoding of Knative manifests (`eventing.knative.dev/v1` Broker and Trigger, `v1` ConfigMap).
//!
//! Documents are walked as [`serde_yaml::Value`] rather than deserialized into `#[derive]` types so that
//! every problem is reported (not only the first), with the exact field path (`spec.filters[0].all[1].prefix`)
//! and a message a user can act on. Unknown fields in spec objects are errors, as with Knative's webhook.

use super::load::ConfigError;
use super::{
    BrokerKey, BrokerSpec, TriggerKey, TriggerSpec, DEFAULT_MAX_INFLIGHT, MAX_BACKLOG_ANNOTATION,
    MAX_INFLIGHT_ANNOTATION,
};
use crate::config::duration::parse_iso8601;
use crate::delivery::{BackoffPolicy, DeliverySpec, Format};
use crate::filter::Filter;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// `apiVersion` of Broker and Trigger.
pub const EVENTING_API_VERSION: &str = "eventing.knative.dev/v1";
/// Broker class annotation.
pub const BROKER_CLASS_ANNOTATION: &str = "eventing.knative.dev/broker.class";
/// The only broker class supported in standalone mode (and the default).
pub const DEFAULT_BROKER_CLASS: &str = "MTChannelBasedBroker";
/// Namespace of a manifest without `metadata.namespace`.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Path used for problems with the document as a whole (not one field).
const TOP_PATH: &str = "(document)";
const KEY_REGEX: &str = "^[a-z][a-z0-9]*$";
const REF_UNSUPPORTED: &str = "ref is resolved only in Kubernetes mode; use uri in standalone mode";
const DIALECTS: [&str; 7] = ["exact", "prefix", "suffix", "all", "any", "not", "cesql"];

/// One decoded document.
#[derive(Debug)]
pub(crate) enum Document {
    /// A Broker; `config_ref` (namespace, name) still has to be resolved against the ConfigMaps.
    Broker {
        spec: BrokerSpec,
        config_ref: Option<(String, String)>,
    },
    /// A Trigger.
    Trigger(TriggerSpec),
    /// A ConfigMap: (namespace, name) and its data.
    ConfigMap {
        key: (String, String),
        data: BTreeMap<String, String>,
    },
    /// A document of another kind/apiVersion (the warning text, without file/doc prefix).
    Skipped(String),
}

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

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn kind_of(v: &Value) -> &'static str {
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
struct Obj<'v> {
    map: &'v Mapping,
}

impl<'v> Obj<'v> {
    /// `v` must be a mapping with string keys among `allowed`; unknown fields are reported (all in one
    /// error) but the object is still returned so its known fields get checked too.
    fn new(ctx: &mut Ctx<'_>, path: &str, v: &'v Value, allowed: &[&str]) -> Option<Obj<'v>> {
        let Value::Mapping(map) = v else {
            ctx.err(path, format!("must be an object, got {}", kind_of(v)));
            return None;
        };
        let mut unknown = Vec::new();
        for k in map.keys() {
            match k.as_str() {
                Some(k) if allowed.contains(&k) => {}
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
    fn get(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }
}

fn string<'v>(ctx: &mut Ctx<'_>, path: &str, v: &'v Value) -> Option<&'v str> {
    match v {
        Value::String(s) => Some(s),
        other => {
            ctx.err(path, format!("must be a string, got {}", kind_of(other)));
            None
        }
    }
}

/// A string or an integer scalar (annotations written without quotes), as text.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// DNS-1123 label: at most 63 characters, lower-case alphanumerics and '-', alphanumeric at both ends.
fn is_dns1123_label(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            bytes.len() <= 63
                && alnum(first)
                && alnum(last)
                && bytes.iter().all(|&b| alnum(b) || b == b'-')
        }
        _ => false,
    }
}

fn is_attribute_key(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// An absolute `http`/`https` URL.
fn check_url(ctx: &mut Ctx<'_>, path: &str, s: &str) -> Option<String> {
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
        ("Broker", EVENTING_API_VERSION) => decode_broker(ctx, v),
        ("Trigger", EVENTING_API_VERSION) => decode_trigger(ctx, v).map(Document::Trigger),
        ("ConfigMap", "v1") => decode_configmap(ctx, v),
        _ => Some(Document::Skipped(format!(
            "skipped kind {kind:?} (apiVersion {api_version:?}): only Broker and Trigger \
             ({EVENTING_API_VERSION}) and ConfigMap (v1) are read"
        ))),
    }
}

/// `metadata` → (namespace, name, annotations).
struct Meta<'v> {
    namespace: String,
    name: String,
    annotations: Option<&'v Mapping>,
}

fn decode_metadata<'v>(ctx: &mut Ctx<'_>, top: &'v Mapping) -> Option<Meta<'v>> {
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
    let annotations = match meta.get("annotations").filter(|v| !v.is_null()) {
        None => None,
        Some(Value::Mapping(m)) => Some(m),
        Some(other) => {
            ctx.err(
                "metadata.annotations",
                format!("must be an object, got {}", kind_of(other)),
            );
            None
        }
    };
    Some(Meta {
        namespace: namespace?,
        name: name?,
        annotations,
    })
}

fn annotation(meta: &Meta<'_>, key: &str) -> Option<Option<String>> {
    meta.annotations.and_then(|m| m.get(key)).map(scalar_text)
}

fn positive_annotation(ctx: &mut Ctx<'_>, meta: &Meta<'_>, key: &str) -> Option<u64> {
    match annotation(meta, key)? {
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

const TOP_FIELDS: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];

fn decode_broker(ctx: &mut Ctx<'_>, v: &Value) -> Option<Document> {
    let top = Obj::new(ctx, TOP_PATH, v, &TOP_FIELDS)?;
    let meta = decode_metadata(ctx, top.map);

    let mut class = DEFAULT_BROKER_CLASS.to_owned();
    let mut max_backlog = None;
    if let Some(meta) = &meta {
        match annotation(meta, BROKER_CLASS_ANNOTATION) {
            None => {}
            Some(Some(c)) if c == DEFAULT_BROKER_CLASS => class = c,
            Some(c) => ctx.err(
                "metadata.annotations",
                format!(
                    "broker class {:?} is not supported in standalone mode",
                    c.unwrap_or_default()
                ),
            ),
        }
        max_backlog = positive_annotation(ctx, meta, MAX_BACKLOG_ANNOTATION);
    }

    let mut delivery = None;
    let mut config_ref = None;
    if let Some(spec) = top.get("spec") {
        if let Some(spec) = Obj::new(ctx, "spec", spec, &["config", "delivery"]) {
            if let Some(d) = spec.get("delivery") {
                delivery = decode_delivery(ctx, "spec.delivery", d);
            }
            if let Some(c) = spec.get("config") {
                let ns = meta.as_ref().map_or(DEFAULT_NAMESPACE, |m| &m.namespace);
                config_ref = decode_config_ref(ctx, c, ns);
            }
        }
    }
    let meta = meta?;
    Some(Document::Broker {
        spec: BrokerSpec {
            key: BrokerKey::new(meta.namespace, meta.name),
            class,
            delivery,
            max_backlog,
            config: BTreeMap::new(),
            backend: crate::config::Backend::Embedded,
        },
        config_ref,
    })
}

/// `spec.config`: a KReference to a ConfigMap → (namespace, name).
fn decode_config_ref(ctx: &mut Ctx<'_>, v: &Value, default_ns: &str) -> Option<(String, String)> {
    const PATH: &str = "spec.config";
    let obj = Obj::new(
        ctx,
        PATH,
        v,
        &[
            "apiVersion",
            "kind",
            "name",
            "namespace",
            "group",
            "address",
        ],
    )?;
    let kind = obj
        .get("kind")
        .and_then(|k| string(ctx, "spec.config.kind", k));
    match kind {
        Some("ConfigMap") => {}
        Some(other) => {
            ctx.err(
                "spec.config.kind",
                format!(
                    "only ConfigMap references are supported in standalone mode, got {other:?}"
                ),
            );
            return None;
        }
        None => {
            if obj.get("kind").is_none() {
                ctx.err("spec.config.kind", "required (ConfigMap)");
            }
            return None;
        }
    }
    if let Some(av) = obj
        .get("apiVersion")
        .and_then(|a| string(ctx, "spec.config.apiVersion", a))
    {
        if av != "v1" {
            ctx.err(
                "spec.config.apiVersion",
                format!("a ConfigMap has apiVersion \"v1\", got {av:?}"),
            );
        }
    }
    let name = match obj.get("name") {
        Some(n) => string(ctx, "spec.config.name", n)?.to_owned(),
        None => {
            ctx.err("spec.config.name", "required");
            return None;
        }
    };
    let namespace = match obj.get("namespace") {
        Some(n) => string(ctx, "spec.config.namespace", n)?.to_owned(),
        None => default_ns.to_owned(),
    };
    Some((namespace, name))
}

fn decode_configmap(ctx: &mut Ctx<'_>, v: &Value) -> Option<Document> {
    let top = Obj::new(
        ctx,
        TOP_PATH,
        v,
        &[
            "apiVersion",
            "kind",
            "metadata",
            "data",
            "binaryData",
            "immutable",
        ],
    )?;
    let meta = decode_metadata(ctx, top.map);
    let mut data = BTreeMap::new();
    match top.get("data") {
        None => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let Some(k) = k.as_str() else {
                    ctx.err("data", format!("keys must be strings, got {k:?}"));
                    continue;
                };
                match v {
                    Value::String(s) => {
                        data.insert(k.to_owned(), s.clone());
                    }
                    other => ctx.err(
                        &join("data", k),
                        format!("must be a string (quote it), got {}", kind_of(other)),
                    ),
                }
            }
        }
        Some(other) => ctx.err("data", format!("must be an object, got {}", kind_of(other))),
    }
    let meta = meta?;
    Some(Document::ConfigMap {
        key: (meta.namespace, meta.name),
        data,
    })
}

fn decode_trigger(ctx: &mut Ctx<'_>, v: &Value) -> Option<TriggerSpec> {
    let top = Obj::new(ctx, TOP_PATH, v, &TOP_FIELDS)?;
    let meta = decode_metadata(ctx, top.map);
    let max_inflight = meta
        .as_ref()
        .and_then(|m| positive_annotation(ctx, m, MAX_INFLIGHT_ANNOTATION))
        .map_or(DEFAULT_MAX_INFLIGHT, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });

    let Some(spec_v) = top.get("spec") else {
        ctx.err("spec", "required (broker and subscriber)");
        return None;
    };
    let spec = Obj::new(
        ctx,
        "spec",
        spec_v,
        &[
            "broker",
            "brokerRef",
            "filter",
            "filters",
            "subscriber",
            "delivery",
        ],
    )?;

    let broker = match spec.get("broker") {
        Some(b) => match string(ctx, "spec.broker", b) {
            Some(s) if is_dns1123_label(s) => Some(s.to_owned()),
            Some(s) => {
                ctx.err("spec.broker", format!("{s:?} is not a valid broker name"));
                None
            }
            None => None,
        },
        None => {
            if spec.get("brokerRef").is_some() {
                ctx.err(
                    "spec.brokerRef",
                    "cross-namespace brokerRef is not supported in standalone mode; use broker",
                );
            } else {
                ctx.err("spec.broker", "required");
            }
            None
        }
    };
    if spec.get("broker").is_some() && spec.get("brokerRef").is_some() {
        ctx.err(
            "spec.brokerRef",
            "broker and brokerRef are mutually exclusive",
        );
    }

    let filter = decode_trigger_filter(ctx, &spec);

    let subscriber = match spec.get("subscriber") {
        Some(s) => decode_destination(ctx, "spec.subscriber", s),
        None => {
            ctx.err("spec.subscriber", "required (uri)");
            None
        }
    };

    let delivery = spec
        .get("delivery")
        .and_then(|d| decode_delivery(ctx, "spec.delivery", d));

    let meta = meta?;
    Some(TriggerSpec {
        broker: BrokerKey::new(meta.namespace.clone(), broker?),
        key: TriggerKey::new(meta.namespace, meta.name),
        filter: filter?,
        subscriber: crate::config::Destination::Url(subscriber?),
        delivery,
        max_inflight,
        delivery_order: crate::config::DeliveryOrder::Unordered,
    })
}

/// A Destination: only `uri` in standalone mode.
fn decode_destination(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> Option<String> {
    let obj = Obj::new(ctx, path, v, &["uri", "ref", "CACerts", "audience"])?;
    let mut ok = true;
    if obj.get("ref").is_some() {
        ctx.err(&join(path, "ref"), REF_UNSUPPORTED);
        ok = false;
    }
    for field in ["CACerts", "audience"] {
        if obj.get(field).is_some() {
            ctx.err(
                &join(path, field),
                format!("{field} is not supported in standalone mode"),
            );
            ok = false;
        }
    }
    let uri_path = join(path, "uri");
    match obj.get("uri") {
        Some(u) => {
            let u = string(ctx, &uri_path, u)?;
            let url = check_url(ctx, &uri_path, u)?;
            ok.then_some(url)
        }
        None => {
            if ok {
                ctx.err(&uri_path, "required (an absolute http or https URL)");
            }
            None
        }
    }
}

/// `spec.filters` when non-empty, otherwise `spec.filter.attributes`, otherwise [`Filter::True`].
/// Both are validated even when `filters` wins.
fn decode_trigger_filter(ctx: &mut Ctx<'_>, spec: &Obj<'_>) -> Option<Filter> {
    let errors_before = ctx.errors.len();
    let mut legacy = Filter::True;
    if let Some(f) = spec.get("filter") {
        if let Some(obj) = Obj::new(ctx, "spec.filter", f, &["attributes"]) {
            if let Some(attrs) = obj.get("attributes") {
                if let Some(kv) = decode_kv(ctx, "spec.filter.attributes", attrs, false) {
                    if !kv.is_empty() {
                        legacy = Filter::Attributes(kv);
                    }
                }
            }
        }
    }
    let mut filters = Vec::new();
    if let Some(list) = spec.get("filters") {
        match list {
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(f) = decode_filter(ctx, &format!("spec.filters[{i}]"), item) {
                        filters.push(f);
                    }
                }
            }
            other => ctx.err(
                "spec.filters",
                format!("must be a list, got {}", kind_of(other)),
            ),
        }
    }
    if ctx.errors.len() != errors_before {
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

/// One Subscriptions API filter object (exactly one dialect).
fn decode_filter(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> Option<Filter> {
    let obj = Obj::new(ctx, path, v, &DIALECTS)?;
    let present: Vec<&str> = DIALECTS
        .iter()
        .copied()
        .filter(|d| obj.map.contains_key(*d))
        .collect();
    let dialect = match present.as_slice() {
        [one] => *one,
        [] => {
            // Unknown fields were already reported; only complain about the missing dialect otherwise.
            if obj.map.is_empty() {
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
    let value = obj.map.get(dialect).unwrap_or(&Value::Null);
    match dialect {
        "exact" | "prefix" | "suffix" => {
            let kv = decode_kv(ctx, &dpath, value, true)?;
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
            let Value::Sequence(items) = value else {
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
                match decode_filter(ctx, &format!("{dpath}[{i}]"), item) {
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
        "not" => decode_filter(ctx, &dpath, value).map(|f| Filter::Not(Box::new(f))),
        _ => {
            let Value::String(text) = value else {
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

/// A map of attribute name → value; keys must match the attribute-name regex, and with
/// `non_empty_values` values must not be empty. Sorted by key.
fn decode_kv(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: &Value,
    non_empty_values: bool,
) -> Option<Vec<(String, String)>> {
    let Value::Mapping(m) = v else {
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
        let Some(k) = k.as_str() else {
            ctx.err(
                path,
                format!("key {k:?} must be a string matching {KEY_REGEX}"),
            );
            ok = false;
            continue;
        };
        if !is_attribute_key(k) {
            ctx.err(path, format!("key {k:?} must match {KEY_REGEX}"));
            ok = false;
            continue;
        }
        match val {
            Value::String(s) if non_empty_values && s.is_empty() => {
                ctx.err(path, format!("value of {k:?} must not be empty"));
                ok = false;
            }
            Value::String(s) => out.push((k.to_owned(), s.clone())),
            Value::Null if !non_empty_values => out.push((k.to_owned(), String::new())),
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
    ok.then_some(out)
}

/// `spec.delivery`. An object with no field set is `None` (it does not replace the broker's delivery).
fn decode_delivery(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> Option<DeliverySpec> {
    let obj = Obj::new(
        ctx,
        path,
        v,
        &[
            "deadLetterSink",
            "retry",
            "backoffPolicy",
            "backoffDelay",
            "backoffMax",
            "timeout",
            "retryAfterMax",
            "format",
        ],
    )?;
    let mut d = DeliverySpec::default();
    if let Some(r) = obj.get("retry") {
        let p = join(path, "retry");
        match r.as_i64() {
            Some(n) if n < 0 => ctx.err(&p, format!("must be >= 0, got {n}")),
            Some(n) => match u32::try_from(n) {
                Ok(n) => d.retry = Some(n),
                Err(_) => ctx.err(&p, format!("{n} is too large")),
            },
            None => ctx.err(&p, format!("must be an integer >= 0, got {}", describe(r))),
        }
    }
    if let Some(b) = obj.get("backoffPolicy") {
        let p = join(path, "backoffPolicy");
        match string(ctx, &p, b) {
            Some("linear") => d.backoff_policy = Some(BackoffPolicy::Linear),
            Some("exponential") => d.backoff_policy = Some(BackoffPolicy::Exponential),
            Some(other) => ctx.err(
                &p,
                format!("must be \"linear\" or \"exponential\", got {other:?}"),
            ),
            None => {}
        }
    }
    let duration = |ctx: &mut Ctx<'_>, field: &str, positive: bool| -> Option<Duration> {
        let p = join(path, field);
        let s = string(ctx, &p, obj.get(field)?)?;
        match parse_iso8601(s) {
            Ok(dur) if positive && dur.is_zero() => {
                ctx.err(&p, format!("must be greater than zero, got {s:?}"));
                None
            }
            Ok(dur) => Some(dur),
            Err(e) => {
                ctx.err(&p, e);
                None
            }
        }
    };
    d.backoff_delay = duration(ctx, "backoffDelay", false);
    d.backoff_max = duration(ctx, "backoffMax", false);
    d.timeout = duration(ctx, "timeout", true);
    d.retry_after_max = duration(ctx, "retryAfterMax", false);
    if let Some(dls) = obj.get("deadLetterSink") {
        d.dead_letter_sink = decode_destination(ctx, &join(path, "deadLetterSink"), dls);
    }
    if let Some(f) = obj.get("format") {
        let p = join(path, "format");
        match string(ctx, &p, f) {
            Some("json") => d.format = Some(Format::Json),
            Some("binary") => d.format = Some(Format::Binary),
            Some(other) => ctx.err(&p, format!("must be \"json\" or \"binary\", got {other:?}")),
            None => {}
        }
    }
    (!d.is_empty()).then_some(d)
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        other => kind_of(other).to_owned(),
    }
}
