//! `eventing.knative.dev/v1` Broker (and the `v1` ConfigMap it references) and Trigger: filters,
//! destinations and delivery.

use super::document::Document;
use super::fields::*;
use super::names::*;
use crate::config::duration::parse_iso8601;
use crate::config::rules::{is_attribute_key, is_dns1123_label, topic_message};
use crate::config::{
    is_valid_kafka_topic, BrokerConfig, BrokerKey, DeliveryOrder, DestinationConfig, ObjectKey,
    TriggerConfig, TriggerKey, BACKEND_ANNOTATION, DEFAULT_MAX_INFLIGHT, DELIVERY_ORDER_ANNOTATION,
    EXTERNAL_TOPIC_ANNOTATION, KAFKA_BROKER_CLASS, MAX_BACKLOG_ANNOTATION, MAX_INFLIGHT_ANNOTATION,
    NATS_BROKER_CLASS, SWITCHYARD_BROKER_CLASS,
};
use crate::delivery::{BackoffPolicy, DeliveryConfig, Format};
use crate::filter::Filter;
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::time::Duration;

pub(super) const KEY_REGEX: &str = "^[a-z][a-z0-9]*$";

pub(super) const REF_UNSUPPORTED: &str =
    "ref is resolved only in Kubernetes mode; use uri in standalone mode";

pub(super) const DIALECTS: [&str; 7] = ["exact", "prefix", "suffix", "all", "any", "not", "cesql"];

pub(super) fn decode_broker(ctx: &mut Ctx<'_>, v: &Value) -> Option<Document> {
    let top = Obj::new(ctx, TOP_PATH, v, &TOP_FIELDS)?;
    let meta = decode_metadata(ctx, top.map);

    let mut class = DEFAULT_BROKER_CLASS.to_owned();
    let mut max_backlog = None;
    let mut external_topic = None;
    if let Some(meta) = &meta {
        match annotation(meta, BROKER_CLASS_ANNOTATION) {
            None => {}
            Some(Some(c))
                if c == DEFAULT_BROKER_CLASS
                    || c == KAFKA_BROKER_CLASS
                    || c == NATS_BROKER_CLASS =>
            {
                class = c
            }
            Some(Some(c)) if c == SWITCHYARD_BROKER_CLASS => {
                class = match annotation(meta, BACKEND_ANNOTATION) {
                    None => DEFAULT_BROKER_CLASS.to_owned(),
                    Some(Some(b)) if b == "embedded" => DEFAULT_BROKER_CLASS.to_owned(),
                    Some(Some(b)) if b == "kafka" => KAFKA_BROKER_CLASS.to_owned(),
                    Some(Some(b)) if b == "nats-jetstream" => NATS_BROKER_CLASS.to_owned(),
                    Some(b) => {
                        ctx.err(
                            "metadata.annotations",
                            format!(
                                "{BACKEND_ANNOTATION:?} is {:?}; supported: embedded, kafka, \
                                 nats-jetstream",
                                b.unwrap_or_default()
                            ),
                        );
                        DEFAULT_BROKER_CLASS.to_owned()
                    }
                }
            }
            Some(c) => ctx.err(
                "metadata.annotations",
                format!(
                    "broker class {:?} is not supported (supported: {SWITCHYARD_BROKER_CLASS}, \
                     {DEFAULT_BROKER_CLASS}, {KAFKA_BROKER_CLASS}, {NATS_BROKER_CLASS})",
                    c.unwrap_or_default()
                ),
            ),
        }
        if annotation(meta, BACKEND_ANNOTATION).is_some()
            && annotation(meta, BROKER_CLASS_ANNOTATION)
                .flatten()
                .as_deref()
                != Some(SWITCHYARD_BROKER_CLASS)
        {
            ctx.err(
                "metadata.annotations",
                format!(
                    "{BACKEND_ANNOTATION:?} only applies to brokers of class \
                     {SWITCHYARD_BROKER_CLASS} (set {BROKER_CLASS_ANNOTATION}: \
                     {SWITCHYARD_BROKER_CLASS})"
                ),
            );
        }
        max_backlog = positive_annotation(ctx, meta, MAX_BACKLOG_ANNOTATION);
        match annotation(meta, EXTERNAL_TOPIC_ANNOTATION) {
            None => {}
            Some(Some(t)) if class != KAFKA_BROKER_CLASS => ctx.err(
                "metadata.annotations",
                format!(
                    "{EXTERNAL_TOPIC_ANNOTATION:?} ({t:?}) only applies to brokers of class \
                     {KAFKA_BROKER_CLASS} (set {BROKER_CLASS_ANNOTATION}: {KAFKA_BROKER_CLASS})"
                ),
            ),
            Some(Some(t)) if is_valid_kafka_topic(&t) => external_topic = Some(t),
            Some(Some(t)) => ctx.err(
                "metadata.annotations",
                format!("{EXTERNAL_TOPIC_ANNOTATION:?}: {}", topic_message(&t)),
            ),
            Some(None) => ctx.err(
                "metadata.annotations",
                format!("{EXTERNAL_TOPIC_ANNOTATION:?} must be a topic name (a string)"),
            ),
        }
    }
    let kafka = class == KAFKA_BROKER_CLASS;
    let nats = class == NATS_BROKER_CLASS;

    let mut delivery = None;
    let mut config_ref = None;
    let mut has_config = false;
    if let Some(spec) = top.get("spec") {
        if let Some(spec) = Obj::new(ctx, "spec", spec, &["config", "delivery"]) {
            if let Some(d) = spec.get("delivery") {
                delivery = decode_delivery(ctx, "spec.delivery", d);
            }
            if let Some(c) = spec.get("config") {
                has_config = true;
                let ns = meta.as_ref().map_or(DEFAULT_NAMESPACE, |m| &m.namespace);
                config_ref = decode_config_ref(ctx, c, ns);
            }
        }
    }
    if kafka && !has_config {
        ctx.err(
            "spec.config",
            format!(
                "required for broker class {KAFKA_BROKER_CLASS}: a reference to a ConfigMap with \
                 bootstrap.servers (like Knative's kafka-broker-config), e.g. \
                 {{apiVersion: v1, kind: ConfigMap, name: kafka-broker-config}}"
            ),
        );
    }
    if nats && !has_config {
        ctx.err(
            "spec.config",
            format!(
                "required for broker class {NATS_BROKER_CLASS}: a reference to a ConfigMap with \
                 servers (and optionally stream.replicas, stream.maxAge, stream.maxBytes, \
                 stream.storage), e.g. {{apiVersion: v1, kind: ConfigMap, name: nats-broker-config}}"
            ),
        );
    }
    let meta = meta?;
    // Namespace and name are DNS-1123 labels, so the default topic is always a valid topic name.
    let kafka_topic = kafka.then(|| match external_topic {
        Some(t) => (t, true),
        None => (
            format!("knative-broker-{}-{}", meta.namespace, meta.name),
            false,
        ),
    });
    Some(Document::Broker {
        spec: BrokerConfig {
            key: BrokerKey::new(meta.namespace, meta.name),
            class,
            delivery,
            max_backlog,
            config: BTreeMap::new(),
            backend: crate::config::Backend::Embedded,
        },
        config_ref,
        kafka_topic,
        nats,
    })
}

/// `spec.config`: a KReference to a ConfigMap → (namespace, name).
pub(super) fn decode_config_ref(
    ctx: &mut Ctx<'_>,
    v: &Value,
    default_ns: &str,
) -> Option<(String, String)> {
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

pub(super) fn decode_configmap(ctx: &mut Ctx<'_>, v: &Value) -> Option<Document> {
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

pub(super) fn decode_trigger(ctx: &mut Ctx<'_>, v: &Value) -> Option<TriggerConfig> {
    let top = Obj::new(ctx, TOP_PATH, v, &TOP_FIELDS)?;
    let meta = decode_metadata(ctx, top.map);
    let max_inflight = meta
        .as_ref()
        .and_then(|m| positive_annotation(ctx, m, MAX_INFLIGHT_ANNOTATION))
        .map_or(DEFAULT_MAX_INFLIGHT, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
    let delivery_order = match meta
        .as_ref()
        .and_then(|m| annotation(m, DELIVERY_ORDER_ANNOTATION))
    {
        None => DeliveryOrder::Unordered,
        Some(Some(o)) if o == "unordered" => DeliveryOrder::Unordered,
        Some(Some(o)) if o == "ordered" => DeliveryOrder::Ordered,
        Some(other) => {
            let got = other.map_or_else(|| "a non-string value".to_owned(), |o| format!("{o:?}"));
            ctx.err(
                "metadata.annotations",
                format!(
                    "{DELIVERY_ORDER_ANNOTATION:?} must be \"ordered\" or \"unordered\" (the default), \
                     got {got}"
                ),
            );
            DeliveryOrder::Unordered
        }
    };

    let spec_v = required(ctx, "spec", top.get("spec"), "broker and subscriber")?;
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
        Some(s) => {
            let ns = meta.as_ref().map_or(DEFAULT_NAMESPACE, |m| &m.namespace);
            decode_destination(ctx, "spec.subscriber", s, Some(ns))
        }
        None => {
            ctx.err("spec.subscriber", "required (uri)");
            None
        }
    };

    let delivery = spec
        .get("delivery")
        .and_then(|d| decode_delivery(ctx, "spec.delivery", d));

    let meta = meta?;
    Some(TriggerConfig {
        broker: BrokerKey::new(meta.namespace.clone(), broker?),
        key: TriggerKey::new(meta.namespace, meta.name),
        filter: filter?,
        subscriber: subscriber?,
        delivery,
        max_inflight,
        delivery_order,
    })
}

/// A Destination: `uri`, or (for a trigger subscriber, `kafka_sink_ns` = the trigger's namespace) a `ref`
/// to a KafkaSink or a NatsSink of the same namespace. Other refs are resolved only in Kubernetes mode.
pub(super) fn decode_destination(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: &Value,
    kafka_sink_ns: Option<&str>,
) -> Option<DestinationConfig> {
    let obj = Obj::new(ctx, path, v, &["uri", "ref", "CACerts", "audience"])?;
    let mut ok = true;
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
    let sink_kind = obj.get("ref").and_then(ref_kind).and_then(|k| match k {
        "KafkaSink" => Some(("KafkaSink", KAFKA_SINK_API_VERSION)),
        "NatsSink" => Some(("NatsSink", NATS_API_VERSION)),
        _ => None,
    });
    let sink_ref = obj.get("ref").filter(|_| sink_kind.is_some());
    match (obj.get("ref"), sink_ref, kafka_sink_ns) {
        (None, _, _) => {}
        (Some(_), None, _) => {
            ctx.err(&join(path, "ref"), REF_UNSUPPORTED);
            ok = false;
        }
        (Some(_), Some(_), None) => {
            let kind = sink_kind.map_or("KafkaSink", |(k, _)| k);
            ctx.err(
                &join(path, "ref"),
                format!("a {kind} ref is supported only as a trigger subscriber; use uri"),
            );
            ok = false;
        }
        (Some(_), Some(_), Some(_)) => {}
    }
    if let (Some(r), Some(trigger_ns), Some((kind, api_version))) =
        (sink_ref, kafka_sink_ns, sink_kind)
    {
        let ref_path = join(path, "ref");
        if obj.get("uri").is_some() {
            ctx.err(
                path,
                "set either uri or ref, not both (a uri relative to a ref is not supported in \
                 standalone mode)",
            );
            ok = false;
        }
        let r = decode_ref(ctx, &ref_path, r, kind, &[api_version])?;
        if let Some(ns) = &r.namespace {
            if ns != trigger_ns {
                ctx.err(
                    &join(&ref_path, "namespace"),
                    format!(
                        "a {kind} subscriber must be in the trigger's namespace {trigger_ns:?}, \
                         got {ns:?}"
                    ),
                );
                ok = false;
            }
        }
        let key = ObjectKey::new(trigger_ns, r.name);
        let destination = match kind {
            "NatsSink" => DestinationConfig::NatsSink(key),
            _ => DestinationConfig::KafkaSink(key),
        };
        return ok.then_some(destination);
    }
    match obj.get("uri") {
        Some(u) => {
            let u = string(ctx, &uri_path, u)?;
            let url = check_url(ctx, &uri_path, u)?;
            ok.then_some(DestinationConfig::Url(url))
        }
        None => {
            if ok {
                let what = if kafka_sink_ns.is_some() {
                    "required: uri (an absolute http or https URL) or ref (a KafkaSink or a NatsSink)"
                } else {
                    "required (an absolute http or https URL)"
                };
                ctx.err(&uri_path, what);
            }
            None
        }
    }
}

/// `spec.filters` when non-empty, otherwise `spec.filter.attributes`, otherwise [`Filter::True`].
/// Both are validated even when `filters` wins.
pub(super) fn decode_trigger_filter(ctx: &mut Ctx<'_>, spec: &Obj<'_>) -> Option<Filter> {
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
pub(super) fn decode_filter(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> Option<Filter> {
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
pub(super) fn decode_kv(
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
pub(super) fn decode_delivery(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> Option<DeliveryConfig> {
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
    let mut d = DeliveryConfig::default();
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
        d.dead_letter_sink = match decode_destination(ctx, &join(path, "deadLetterSink"), dls, None)
        {
            Some(DestinationConfig::Url(u)) => Some(u),
            // Only a trigger subscriber may be a KafkaSink (`kafka_sink_ns` is None here).
            Some(DestinationConfig::KafkaSink(_) | DestinationConfig::NatsSink(_)) | None => None,
        };
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

pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        other => kind_of(other).to_owned(),
    }
}
