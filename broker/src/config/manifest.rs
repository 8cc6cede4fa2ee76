//! Decoding of Knative manifests (`eventing.knative.dev/v1` Broker and Trigger, `v1` ConfigMap,
//! `eventing.knative.dev/v1alpha1` KafkaSink, `sources.knative.dev/v1beta1` (or `v1`) KafkaSource,
//! `sources.switchyard.dev/v1alpha1` NatsSink and NatsSource).
//!
//! Documents are walked as [`serde_yaml::Value`] rather than deserialized into `#[derive]` types so that
//! every problem is reported (not only the first), with the exact field path (`spec.filters[0].all[1].prefix`)
//! and a message a user can act on. Unknown fields in spec objects are errors, as with Knative's webhook.

use super::error::ConfigError;
use super::rules::{
    is_attribute_key, is_dns1123_label, parse_bootstrap_csv, parse_nats_servers_csv, topic_message,
};
use super::{
    is_valid_kafka_topic, is_valid_nats_name, is_valid_nats_subject, BrokerKey, BrokerSpec,
    ContentMode, DeliveryOrder, Destination, InitialOffset, KafkaSinkSpec, KafkaSourceSpec,
    NatsSinkSpec, NatsSourceJetStream, NatsSourceSpec, ObjectKey, SourceSink, TriggerKey,
    TriggerSpec, BACKEND_ANNOTATION, DEFAULT_MAX_INFLIGHT, DELIVERY_ORDER_ANNOTATION,
    EXTERNAL_TOPIC_ANNOTATION, KAFKA_BROKER_CLASS, MAX_BACKLOG_ANNOTATION, MAX_INFLIGHT_ANNOTATION,
    NATS_BROKER_CLASS, SWITCHYARD_BROKER_CLASS,
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
/// The default broker class (events in the embedded store). The other supported classes are
/// [`KAFKA_BROKER_CLASS`] and [`NATS_BROKER_CLASS`].
pub const DEFAULT_BROKER_CLASS: &str = "MTChannelBasedBroker";
/// `apiVersion` of KafkaSink.
pub const KAFKA_SINK_API_VERSION: &str = "eventing.knative.dev/v1alpha1";
/// Accepted `apiVersion`s of KafkaSource.
pub const KAFKA_SOURCE_API_VERSIONS: [&str; 2] =
    ["sources.knative.dev/v1beta1", "sources.knative.dev/v1"];
/// `apiVersion` of NatsSink and NatsSource.
pub const NATS_API_VERSION: &str = "sources.switchyard.dev/v1alpha1";
/// The `spec` fields a NatsSink accepts (the CRD schema in `deploy/crds/` lists exactly these).
pub const NATS_SINK_SPEC_FIELDS: [&str; 4] = ["servers", "subject", "jetstream", "contentMode"];
/// The `spec` fields a NatsSource accepts (the CRD schema in `deploy/crds/` lists exactly these).
pub const NATS_SOURCE_SPEC_FIELDS: [&str; 5] =
    ["servers", "subject", "queueGroup", "jetstream", "sink"];
/// The fields of a NatsSource's `spec.jetstream`.
pub const NATS_SOURCE_JETSTREAM_FIELDS: [&str; 2] = ["stream", "durable"];
/// The fields of a source's `spec.sink`.
pub const SOURCE_SINK_FIELDS: [&str; 2] = ["ref", "uri"];
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
    /// `kafka_topic` is `Some((topic, external))` for class `Kafka`: its backend is built from the
    /// ConfigMap once resolved; likewise for class `NatsJetStream` when `nats` is set.
    Broker {
        spec: BrokerSpec,
        config_ref: Option<(String, String)>,
        kafka_topic: Option<(String, bool)>,
        nats: bool,
    },
    /// A Trigger.
    Trigger(TriggerSpec),
    /// A ConfigMap: (namespace, name) and its data.
    ConfigMap {
        key: (String, String),
        data: BTreeMap<String, String>,
    },
    /// A KafkaSink.
    KafkaSink(KafkaSinkSpec),
    /// A KafkaSource (a `Broker` sink still has to be checked against the brokers).
    KafkaSource(KafkaSourceSpec),
    /// A NatsSink.
    NatsSink(NatsSinkSpec),
    /// A NatsSource (a `Broker` sink still has to be checked against the brokers).
    NatsSource(NatsSourceSpec),
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
        Obj::with_unsupported(ctx, path, v, allowed, &[])
    }

    /// Like [`Obj::new`], plus Knative fields Switchyard knows but does not support: each one present
    /// (and not null) gets its own error at its path, `(field name, reason)`.
    fn with_unsupported(
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

/// A Kafka topic name; reports an error naming the rule otherwise.
fn check_topic(ctx: &mut Ctx<'_>, path: &str, s: &str) -> bool {
    let ok = is_valid_kafka_topic(s);
    if !ok {
        ctx.err(path, topic_message(s));
    }
    ok
}

/// `spec.bootstrapServers`: a non-empty list of `host:port` strings (an item may itself be a
/// comma-separated list, as Knative joins them with `,`) → one comma-separated string.
fn decode_bootstrap_list(ctx: &mut Ctx<'_>, path: &str, v: Option<&Value>) -> Option<String> {
    let Some(v) = v else {
        ctx.err(path, "required (a list of host:port)");
        return None;
    };
    let Value::Sequence(items) = v else {
        ctx.err(
            path,
            format!("must be a list of host:port strings, got {}", kind_of(v)),
        );
        return None;
    };
    if items.is_empty() {
        ctx.err(path, "must contain at least one host:port");
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match string(ctx, &p, item).map(parse_bootstrap_csv) {
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

/// A required, non-empty DNS-1123 label.
fn label(ctx: &mut Ctx<'_>, path: &str, v: Option<&Value>) -> Option<String> {
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
struct Ref {
    name: String,
    /// `None` when not set (the caller applies its default).
    namespace: Option<String>,
}

/// A KReference (`apiVersion`, `kind`, `name`, `namespace`) whose `kind` the caller already checked.
/// `apiVersion` is required and must be one of `api_versions`.
fn decode_ref(
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
fn ref_kind(v: &Value) -> Option<&str> {
    v.as_mapping()?.get("kind")?.as_str()
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
        ("KafkaSink", KAFKA_SINK_API_VERSION) => decode_kafka_sink(ctx, v).map(Document::KafkaSink),
        ("KafkaSource", av) if KAFKA_SOURCE_API_VERSIONS.contains(&av) => {
            decode_kafka_source(ctx, v).map(Document::KafkaSource)
        }
        ("NatsSink", NATS_API_VERSION) => decode_nats_sink(ctx, v).map(Document::NatsSink),
        ("NatsSource", NATS_API_VERSION) => decode_nats_source(ctx, v).map(Document::NatsSource),
        _ => Some(Document::Skipped(format!(
            "skipped kind {kind:?} (apiVersion {api_version:?}): only Broker and Trigger \
             ({EVENTING_API_VERSION}), ConfigMap (v1), KafkaSink ({KAFKA_SINK_API_VERSION}), \
             KafkaSource ({}), NatsSink and NatsSource ({NATS_API_VERSION}) are read",
            KAFKA_SOURCE_API_VERSIONS.join(" or ")
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
        spec: BrokerSpec {
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

fn decode_kafka_sink(ctx: &mut Ctx<'_>, v: &Value) -> Option<KafkaSinkSpec> {
    let top = Obj::new(ctx, TOP_PATH, v, &TOP_FIELDS)?;
    let meta = decode_metadata(ctx, top.map);
    let Some(spec_v) = top.get("spec") else {
        ctx.err("spec", "required (topic and bootstrapServers)");
        return None;
    };
    let spec = Obj::with_unsupported(
        ctx,
        "spec",
        spec_v,
        &["topic", "bootstrapServers", "contentMode"],
        &[
            (
                "numPartitions",
                "Switchyard does not create KafkaSink topics; create the topic beforehand",
            ),
            (
                "replicationFactor",
                "Switchyard does not create KafkaSink topics; create the topic beforehand",
            ),
            (
                "auth",
                "Kafka authentication is not supported in standalone mode",
            ),
        ],
    )?;
    let topic = match spec.get("topic") {
        Some(t) => string(ctx, "spec.topic", t)
            .filter(|t| check_topic(ctx, "spec.topic", t))
            .map(str::to_owned),
        None => {
            ctx.err("spec.topic", "required (the topic events are produced to)");
            None
        }
    };
    let bootstrap_servers =
        decode_bootstrap_list(ctx, "spec.bootstrapServers", spec.get("bootstrapServers"));
    let content_mode = match spec.get("contentMode") {
        None => Some(ContentMode::Binary),
        Some(m) => match string(ctx, "spec.contentMode", m) {
            Some("binary") => Some(ContentMode::Binary),
            Some("structured") => Some(ContentMode::Structured),
            Some(other) => {
                ctx.err(
                    "spec.contentMode",
                    format!("must be \"binary\" (the default) or \"structured\", got {other:?}"),
                );
                None
            }
            None => None,
        },
    };
    let meta = meta?;
    Some(KafkaSinkSpec {
        key: ObjectKey::new(meta.namespace, meta.name),
        topic: topic?,
        bootstrap_servers: bootstrap_servers?,
        content_mode: content_mode?,
    })
}

fn decode_kafka_source(ctx: &mut Ctx<'_>, v: &Value) -> Option<KafkaSourceSpec> {
    let top = Obj::new(ctx, TOP_PATH, v, &TOP_FIELDS)?;
    let meta = decode_metadata(ctx, top.map);
    let Some(spec_v) = top.get("spec") else {
        ctx.err("spec", "required (bootstrapServers, topics and sink)");
        return None;
    };
    let spec = Obj::with_unsupported(
        ctx,
        "spec",
        spec_v,
        &[
            "bootstrapServers",
            "topics",
            "consumerGroup",
            "initialOffset",
            "sink",
        ],
        &[
            (
                "net",
                "TLS and SASL settings are not supported in standalone mode",
            ),
            ("consumers", "Switchyard runs one consumer per KafkaSource"),
            ("ordering", "a KafkaSource delivers in order per partition"),
            (
                "delivery",
                "a KafkaSource sends to its sink without a delivery spec; use a Broker sink and \
                 the triggers' delivery",
            ),
            ("ceOverrides", "CloudEvent overrides are not supported"),
        ],
    )?;
    let bootstrap_servers =
        decode_bootstrap_list(ctx, "spec.bootstrapServers", spec.get("bootstrapServers"));
    let topics = decode_topics(ctx, "spec.topics", spec.get("topics"));
    let consumer_group = match spec.get("consumerGroup") {
        None => Some(None),
        Some(g) => match string(ctx, "spec.consumerGroup", g) {
            Some(g) if !g.trim().is_empty() && g.len() <= 255 => Some(Some(g.to_owned())),
            Some(_) => {
                ctx.err(
                    "spec.consumerGroup",
                    "must be a non-empty group id of at most 255 characters",
                );
                None
            }
            None => None,
        },
    };
    let initial_offset = match spec.get("initialOffset") {
        None => Some(InitialOffset::Latest),
        Some(o) => match string(ctx, "spec.initialOffset", o) {
            Some("earliest") => Some(InitialOffset::Earliest),
            Some("latest") => Some(InitialOffset::Latest),
            Some(other) => {
                ctx.err(
                    "spec.initialOffset",
                    format!("must be \"earliest\" or \"latest\" (the default), got {other:?}"),
                );
                None
            }
            None => None,
        },
    };
    let sink = match spec.get("sink") {
        Some(s) => {
            let ns = meta.as_ref().map_or(DEFAULT_NAMESPACE, |m| &m.namespace);
            decode_source_sink(ctx, "spec.sink", s, ns)
        }
        None => {
            ctx.err("spec.sink", "required: ref (a Broker) or uri");
            None
        }
    };
    let meta = meta?;
    let consumer_group = consumer_group?
        .unwrap_or_else(|| format!("knative-kafka-source-{}-{}", meta.namespace, meta.name));
    Some(KafkaSourceSpec {
        key: ObjectKey::new(meta.namespace, meta.name),
        bootstrap_servers: bootstrap_servers?,
        topics: topics?,
        consumer_group,
        sink: sink?,
        initial_offset: initial_offset?,
    })
}

/// `spec.topics`: a non-empty list of distinct, valid topic names.
fn decode_topics(ctx: &mut Ctx<'_>, path: &str, v: Option<&Value>) -> Option<Vec<String>> {
    let Some(v) = v else {
        ctx.err(path, "required (a list of topic names)");
        return None;
    };
    let Value::Sequence(items) = v else {
        ctx.err(
            path,
            format!("must be a list of topic names, got {}", kind_of(v)),
        );
        return None;
    };
    if items.is_empty() {
        ctx.err(path, "must contain at least one topic");
        return None;
    }
    let mut topics: Vec<String> = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match string(ctx, &p, item) {
            Some(t) if !check_topic(ctx, &p, t) => ok = false,
            Some(t) if topics.iter().any(|x| x == t) => {
                ctx.err(&p, format!("duplicate topic {t:?}"));
                ok = false;
            }
            Some(t) => topics.push(t.to_owned()),
            None => ok = false,
        }
    }
    ok.then_some(topics)
}

/// `spec.servers`: a non-empty list of NATS servers or one comma-separated string → one
/// comma-separated string.
fn decode_nats_servers(ctx: &mut Ctx<'_>, path: &str, v: Option<&Value>) -> Option<String> {
    const EXPECTED: &str =
        "a list of NATS servers (nats://host:port, tls://host:port or host:port) \
                            or a comma-separated string";
    let Some(v) = v else {
        ctx.err(path, format!("required ({EXPECTED})"));
        return None;
    };
    let items: Vec<(String, &Value)> = match v {
        Value::String(_) => vec![(path.to_owned(), v)],
        Value::Sequence(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, item)| (format!("{path}[{i}]"), item))
            .collect(),
        Value::Sequence(_) => {
            ctx.err(path, "must contain at least one server");
            return None;
        }
        other => {
            ctx.err(path, format!("must be {EXPECTED}, got {}", kind_of(other)));
            return None;
        }
    };
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (p, item) in items {
        match string(ctx, &p, item).map(parse_nats_servers_csv) {
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

/// A required NATS subject (`wildcards`: `*` and a final `>` allowed).
fn decode_nats_subject(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: Option<&Value>,
    wildcards: bool,
) -> Option<String> {
    let Some(v) = v else {
        ctx.err(path, "required (a NATS subject, e.g. orders.created)");
        return None;
    };
    let s = string(ctx, path, v)?;
    if is_valid_nats_subject(s, wildcards) {
        return Some(s.to_owned());
    }
    let rule = if wildcards {
        "non-empty '.'-separated tokens without whitespace, at most 255 bytes; a token may be the \
         wildcard '*' and the last token may be '>'"
    } else {
        "non-empty '.'-separated tokens without whitespace, at most 255 bytes, and no wildcards \
         ('*' or '>')"
    };
    ctx.err(path, format!("{s:?} is not a valid NATS subject: {rule}"));
    None
}

/// A required JetStream stream or consumer name.
fn decode_nats_name(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: Option<&Value>,
    what: &str,
) -> Option<String> {
    let Some(v) = v else {
        ctx.err(path, format!("required (the {what})"));
        return None;
    };
    let s = string(ctx, path, v)?;
    if is_valid_nats_name(s) {
        Some(s.to_owned())
    } else {
        ctx.err(
            path,
            format!(
                "{s:?} is not a valid {what}: 1 to 255 characters without whitespace, '.', '*', \
                 '>', '/' or '\\'"
            ),
        );
        None
    }
}

fn decode_nats_sink(ctx: &mut Ctx<'_>, v: &Value) -> Option<NatsSinkSpec> {
    let top = Obj::new(ctx, TOP_PATH, v, &TOP_FIELDS)?;
    let meta = decode_metadata(ctx, top.map);
    let Some(spec_v) = top.get("spec") else {
        ctx.err("spec", "required (servers and subject)");
        return None;
    };
    let spec = Obj::new(ctx, "spec", spec_v, &NATS_SINK_SPEC_FIELDS)?;
    let servers = decode_nats_servers(ctx, "spec.servers", spec.get("servers"));
    let subject = decode_nats_subject(ctx, "spec.subject", spec.get("subject"), false);
    let jetstream = match spec.get("jetstream") {
        None => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            ctx.err(
                "spec.jetstream",
                format!(
                    "must be a boolean (true: publish through JetStream and wait for the \
                     acknowledgement), got {}",
                    kind_of(other)
                ),
            );
            None
        }
    };
    let content_mode = match spec.get("contentMode") {
        None => Some(ContentMode::Binary),
        Some(m) => match string(ctx, "spec.contentMode", m) {
            Some("binary") => Some(ContentMode::Binary),
            Some("structured") => Some(ContentMode::Structured),
            Some(other) => {
                ctx.err(
                    "spec.contentMode",
                    format!("must be \"binary\" (the default) or \"structured\", got {other:?}"),
                );
                None
            }
            None => None,
        },
    };
    let meta = meta?;
    Some(NatsSinkSpec {
        key: ObjectKey::new(meta.namespace, meta.name),
        servers: servers?,
        subject: subject?,
        jetstream: jetstream?,
        content_mode: content_mode?,
    })
}

fn decode_nats_source(ctx: &mut Ctx<'_>, v: &Value) -> Option<NatsSourceSpec> {
    let top = Obj::new(ctx, TOP_PATH, v, &TOP_FIELDS)?;
    let meta = decode_metadata(ctx, top.map);
    let Some(spec_v) = top.get("spec") else {
        ctx.err("spec", "required (servers, subject and sink)");
        return None;
    };
    let spec = Obj::new(ctx, "spec", spec_v, &NATS_SOURCE_SPEC_FIELDS)?;
    let servers = decode_nats_servers(ctx, "spec.servers", spec.get("servers"));
    let subject = decode_nats_subject(ctx, "spec.subject", spec.get("subject"), true);
    let queue_group = match spec.get("queueGroup") {
        None => Some(None),
        Some(g) => match string(ctx, "spec.queueGroup", g) {
            Some(g) if is_valid_nats_subject(g, false) => Some(Some(g.to_owned())),
            Some(g) => {
                ctx.err(
                    "spec.queueGroup",
                    format!(
                        "{g:?} is not a valid queue group: non-empty '.'-separated tokens without \
                         whitespace, '*' or '>', at most 255 bytes"
                    ),
                );
                None
            }
            None => None,
        },
    };
    let jetstream = match spec.get("jetstream") {
        None => Some(None),
        Some(js) => {
            let path = "spec.jetstream";
            match Obj::new(ctx, path, js, &NATS_SOURCE_JETSTREAM_FIELDS) {
                Some(obj) => {
                    let stream = decode_nats_name(
                        ctx,
                        "spec.jetstream.stream",
                        obj.get("stream"),
                        "stream name",
                    );
                    let durable = decode_nats_name(
                        ctx,
                        "spec.jetstream.durable",
                        obj.get("durable"),
                        "durable consumer name",
                    );
                    match (stream, durable) {
                        (Some(stream), Some(durable)) => {
                            Some(Some(NatsSourceJetStream { stream, durable }))
                        }
                        _ => None,
                    }
                }
                None => None,
            }
        }
    };
    if let (Some(Some(_)), Some(Some(_))) = (&jetstream, &queue_group) {
        ctx.err(
            "spec.queueGroup",
            "a queue group applies to core NATS only; JetStream consumers share the messages of \
             their durable consumer (remove queueGroup or jetstream)",
        );
    }
    let sink = match spec.get("sink") {
        Some(s) => {
            let ns = meta.as_ref().map_or(DEFAULT_NAMESPACE, |m| &m.namespace);
            decode_source_sink(ctx, "spec.sink", s, ns)
        }
        None => {
            ctx.err("spec.sink", "required: ref (a Broker) or uri");
            None
        }
    };
    let meta = meta?;
    Some(NatsSourceSpec {
        key: ObjectKey::new(meta.namespace, meta.name),
        servers: servers?,
        subject: subject?,
        queue_group: queue_group?,
        jetstream: jetstream?,
        sink: sink?,
    })
}

/// A KafkaSource's or NatsSource's `spec.sink`: `ref` to a Broker (namespace defaults to the source's)
/// or `uri`.
fn decode_source_sink(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: &Value,
    source_ns: &str,
) -> Option<SourceSink> {
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

fn decode_trigger(ctx: &mut Ctx<'_>, v: &Value) -> Option<TriggerSpec> {
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
    Some(TriggerSpec {
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
fn decode_destination(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: &Value,
    kafka_sink_ns: Option<&str>,
) -> Option<Destination> {
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
            "NatsSink" => Destination::NatsSink(key),
            _ => Destination::KafkaSink(key),
        };
        return ok.then_some(destination);
    }
    match obj.get("uri") {
        Some(u) => {
            let u = string(ctx, &uri_path, u)?;
            let url = check_url(ctx, &uri_path, u)?;
            ok.then_some(Destination::Url(url))
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
        d.dead_letter_sink = match decode_destination(ctx, &join(path, "deadLetterSink"), dls, None)
        {
            Some(Destination::Url(u)) => Some(u),
            // Only a trigger subscriber may be a KafkaSink (`kafka_sink_ns` is None here).
            Some(Destination::KafkaSink(_) | Destination::NatsSink(_)) | None => None,
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

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        other => kind_of(other).to_owned(),
    }
}
