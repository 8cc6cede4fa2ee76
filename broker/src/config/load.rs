//! Loading manifests from files, directories or in-memory sources into a validated [`Topology`].
//!
//! Every problem is collected (not only the first) and reported as `{file} doc {doc}: {path}: {message}`.
//! Cross-document checks (duplicate names, `spec.config` references and the Kafka or NATS broker settings
//! of the referenced ConfigMap, KafkaSink/NatsSink subscribers and KafkaSource/NatsSource Broker sinks
//! that must exist, triggers whose broker is missing) run after all documents are decoded.

pub use super::build::Tolerant;
use super::build::{self, Decoded, Origin};
pub use super::error::{ConfigError, ConfigErrors};
use super::manifest::{decode_document, Ctx};
use super::Topology;
use serde::Deserialize as _;
use std::path::PathBuf;

/// A validated configuration.
#[derive(Debug)]
pub struct LoadedConfig {
    /// The compiled topology.
    pub topology: Topology,
    /// Non-fatal notes (unknown kinds skipped, trigger whose broker does not exist, ...).
    pub warnings: Vec<String>,
    /// Every file that was read (the app watches these, plus the directories given, for hot reload).
    pub files: Vec<PathBuf>,
}

fn file_error(file: &str, message: String) -> ConfigError {
    ConfigError {
        file: file.to_owned(),
        doc: 0,
        path: "(file)".to_owned(),
        message,
    }
}

fn is_yaml(p: &std::path::Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// Each path is a YAML file (multi-document) or a directory (its *.yaml / *.yml files, sorted, not recursive).
pub fn load_paths(paths: &[PathBuf]) -> Result<LoadedConfig, ConfigErrors> {
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        let shown = path.display().to_string();
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => match std::fs::read_dir(path) {
                Ok(entries) => {
                    let mut found: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok())
                        .map(|e| e.path())
                        .filter(|p| is_yaml(p) && p.is_file())
                        .collect();
                    found.sort();
                    files.extend(found);
                }
                Err(e) => errors.push(file_error(&shown, format!("cannot list directory: {e}"))),
            },
            Ok(_) => files.push(path.clone()),
            Err(e) => errors.push(file_error(&shown, format!("cannot read: {e}"))),
        }
    }
    let mut sources = Vec::with_capacity(files.len());
    for file in &files {
        let shown = file.display().to_string();
        match std::fs::read_to_string(file) {
            Ok(text) => sources.push((shown, text)),
            Err(e) => errors.push(file_error(&shown, format!("cannot read: {e}"))),
        }
    }
    let loaded = load_sources(&sources);
    match loaded {
        Ok(loaded) if errors.is_empty() => Ok(LoadedConfig { files, ..loaded }),
        Ok(_) => Err(ConfigErrors(errors)),
        Err(ConfigErrors(more)) => {
            errors.extend(more);
            Err(ConfigErrors(errors))
        }
    }
}

/// One parsed YAML document: the unit the loader decodes. Files give one per document; in Kubernetes
/// mode each cluster object is one (its `source` names the object, e.g. `Trigger ns/name`), built
/// directly as a value, without YAML text.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Where it came from (a file, or an object), as [`ConfigError::file`] names it.
    pub source: String,
    /// 1-based index of the document in its source.
    pub doc: usize,
    /// The document.
    pub value: serde_yaml::Value,
}

impl Manifest {
    /// The only document of `source`.
    pub fn new(source: impl Into<String>, value: serde_yaml::Value) -> Manifest {
        Manifest {
            source: source.into(),
            doc: 1,
            value,
        }
    }

    /// A typed object as the only document of `source` (what the Kubernetes crate feeds).
    pub fn from_object(
        source: impl Into<String>,
        object: &crate::model::object::Object,
    ) -> Result<Manifest, ConfigError> {
        let source = source.into();
        match serde_yaml::to_value(object) {
            Ok(value) => Ok(Manifest::new(source, value)),
            Err(e) => Err(ConfigError {
                file: source,
                doc: 1,
                path: "(document)".to_owned(),
                message: format!("cannot be represented as a manifest: {e}"),
            }),
        }
    }
}

/// The documents of one YAML text, in order; a syntax error ends the text (the parser cannot
/// resynchronise) and takes the place of the document it was found in.
fn parse_source(name: &str, text: &str) -> Vec<Result<Manifest, ConfigError>> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        match serde_yaml::Value::deserialize(doc) {
            Ok(value) => out.push(Ok(Manifest {
                source: name.to_owned(),
                doc: i + 1,
                value,
            })),
            Err(e) => {
                out.push(Err(ConfigError {
                    file: name.to_owned(),
                    doc: i + 1,
                    path: "(yaml)".to_owned(),
                    message: format!("invalid YAML: {e}"),
                }));
                break;
            }
        }
    }
    out
}

/// Same from in-memory sources (name, text) — for tests and the future Kubernetes mode.
pub fn load_sources(sources: &[(String, String)]) -> Result<LoadedConfig, ConfigErrors> {
    let items: Vec<Result<Manifest, ConfigError>> = sources
        .iter()
        .flat_map(|(name, text)| parse_source(name, text))
        .collect();
    strict(build(items.iter().map(Result::as_ref), false))
}

/// Same from parsed documents: every problem reported, nothing applied when there is one.
pub fn load_manifests(manifests: &[Manifest]) -> Result<LoadedConfig, ConfigErrors> {
    strict(build(manifests.iter().map(Ok), false))
}

/// A strict build's outcome: every problem, or the topology with the warnings.
fn strict(built: Tolerant) -> Result<LoadedConfig, ConfigErrors> {
    if !built.errors.is_empty() {
        return Err(ConfigErrors(built.errors));
    }
    Ok(LoadedConfig {
        topology: built.topology,
        warnings: built.warnings,
        files: Vec::new(),
    })
}

/// Loads what can be loaded, in one pass: a document with a problem is left out, and so is what
/// depends on it (a Broker whose ConfigMap is left out or invalid, a Trigger whose KafkaSink or NatsSink
/// is left out, a source whose Broker is left out); a Trigger whose Broker is left out is kept (it
/// routes nothing, as in a file). For the Kubernetes data plane, where one bad object must not stop the
/// others.
pub fn load_tolerant(manifests: &[Manifest]) -> Tolerant {
    let built = build(manifests.iter().map(Ok), true);
    Tolerant {
        topology: built.topology,
        warnings: built.warnings,
        errors: built.errors,
    }
}

/// Decodes the documents (a parse error stands for its document) and builds the topology. Strict
/// (`tolerant` false): every problem is reported; the caller applies nothing when there is one.
/// Tolerant: objects with problems and what depends on them are left out of the topology.
fn build<'a>(
    items: impl Iterator<Item = Result<&'a Manifest, &'a ConfigError>>,
    tolerant: bool,
) -> Tolerant {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut decoded = Decoded::default();
    for item in items {
        let m = match item {
            Ok(m) => m,
            Err(e) => {
                errors.push(e.clone());
                continue;
            }
        };
        if m.value.is_null() {
            continue;
        }
        let (name, doc_no) = (m.source.as_str(), m.doc);
        let before = errors.len();
        let mut ctx = Ctx {
            file: name,
            doc: doc_no,
            errors: &mut errors,
        };
        let document = decode_document(&mut ctx, &m.value);
        // Tolerant: a document with a problem is left out, even when it decoded to something.
        if tolerant && errors.len() != before {
            continue;
        }
        if let Some(document) = document {
            let mut ctx = Ctx {
                file: name,
                doc: doc_no,
                errors: &mut errors,
            };
            let origin = Origin {
                source: name,
                doc: doc_no,
            };
            decoded.add(origin, &mut ctx, document, &mut warnings);
        }
    }
    build::topology(decoded, tolerant, errors, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::*;
    use crate::delivery::{BackoffPolicy, DeliveryConfig, Format, RetryPolicy};
    use crate::event::{Event, ExtValue};
    use crate::filter::Filter;
    use std::time::Duration;

    fn load(files: &[(&str, &str)]) -> Result<LoadedConfig, ConfigErrors> {
        let sources: Vec<(String, String)> = files
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect();
        load_sources(&sources)
    }

    fn ok(text: &str) -> LoadedConfig {
        match load(&[("c.yaml", text)]) {
            Ok(c) => c,
            Err(e) => panic!("unexpected errors:\n{e}"),
        }
    }

    /// The Display lines of the errors of a config that must fail.
    fn errs(text: &str) -> Vec<String> {
        match load(&[("c.yaml", text)]) {
            Ok(c) => panic!("expected errors, got {:?}", c.topology),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    fn assert_err(text: &str, path: &str, message_part: &str) {
        let errors = match load(&[("c.yaml", text)]) {
            Ok(_) => panic!("expected an error at {path}"),
            Err(e) => e.0,
        };
        assert!(
            errors
                .iter()
                .any(|e| e.path == path && e.message.contains(message_part)),
            "no error at {path} containing {message_part:?}; got:\n{}",
            ConfigErrors(errors.clone())
        );
    }

    const BROKER: &str =
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: default\n";

    fn trigger_with(spec_extra: &str) -> String {
        format!(
            "{BROKER}---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t\n\
             spec:\n  broker: default\n  subscriber:\n    uri: http://sink.example/path\n{spec_extra}"
        )
    }

    fn only_trigger(c: &LoadedConfig) -> &TriggerConfig {
        c.topology.triggers.values().next().expect("one trigger")
    }

    #[test]
    fn minimal_broker_and_trigger() {
        let c = ok(&trigger_with(""));
        let b = c
            .topology
            .brokers
            .get(&BrokerKey::new("default", "default"))
            .expect("broker");
        assert_eq!(b.class, "MTChannelBasedBroker");
        assert_eq!(b.delivery, None);
        assert_eq!(b.max_backlog, None);
        let t = only_trigger(&c);
        assert_eq!(t.key, TriggerKey::new("default", "t"));
        assert_eq!(t.broker, BrokerKey::new("default", "default"));
        assert_eq!(t.filter, Filter::True);
        assert_eq!(
            t.subscriber,
            crate::config::DestinationConfig::Url("http://sink.example/path".into())
        );
        assert_eq!(t.max_inflight, 100);
        assert_eq!(t.delivery, None);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let routes = &c.topology.routes[&BrokerKey::new("default", "default")];
        assert_eq!(routes.triggers().len(), 1);
    }

    #[test]
    fn full_broker_with_configmap_and_annotations() {
        let c = ok(r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: team}
data:
  channel-template-spec: "apiVersion: messaging.knative.dev/v1"
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: orders
  namespace: team
  annotations:
    eventing.knative.dev/broker.class: MTChannelBasedBroker
    switchyard.dev/max-backlog: "5000"
spec:
  config: {apiVersion: v1, kind: ConfigMap, name: cfg}
  delivery:
    retry: 3
    backoffPolicy: linear
    backoffDelay: PT0.5S
    backoffMax: PT10S
    timeout: PT2S
    retryAfterMax: PT30S
    format: json
    deadLetterSink: {uri: "http://dls.example/dead"}
"#);
        let b = &c.topology.brokers[&BrokerKey::new("team", "orders")];
        assert_eq!(b.max_backlog, Some(5000));
        assert_eq!(
            b.config.get("channel-template-spec").map(String::as_str),
            Some("apiVersion: messaging.knative.dev/v1")
        );
        assert_eq!(
            b.delivery,
            Some(DeliveryConfig {
                retry: Some(3),
                backoff_policy: Some(BackoffPolicy::Linear),
                backoff_delay: Some(Duration::from_millis(500)),
                backoff_max: Some(Duration::from_secs(10)),
                timeout: Some(Duration::from_secs(2)),
                retry_after_max: Some(Duration::from_secs(30)),
                dead_letter_sink: Some("http://dls.example/dead".into()),
                format: Some(Format::Json),
            })
        );
    }

    #[test]
    fn example_error_display_is_exact() {
        let text = trigger_with("  filter:\n    attributes:\n      Type: com.example\n");
        let e = load(&[("triggers.yaml", &text)]).expect_err("invalid key");
        assert_eq!(
            e.to_string(),
            "triggers.yaml doc 2: spec.filter.attributes: key \"Type\" must match ^[a-z][a-z0-9]*$"
        );
        assert_eq!(
            e.0,
            vec![ConfigError {
                file: "triggers.yaml".into(),
                doc: 2,
                path: "spec.filter.attributes".into(),
                message: "key \"Type\" must match ^[a-z][a-z0-9]*$".into(),
            }]
        );
    }

    #[test]
    fn reports_every_error_one_per_line() {
        let text = trigger_with(
            "  delivery:\n    retry: -1\n    backoffPolicy: random\n    backoffDelay: 200ms\n",
        );
        let e = load(&[("t.yaml", &text)]).expect_err("three errors");
        assert_eq!(
            e.to_string(),
            "t.yaml doc 2: spec.delivery.retry: must be >= 0, got -1\n\
             t.yaml doc 2: spec.delivery.backoffPolicy: must be \"linear\" or \"exponential\", got \"random\"\n\
             t.yaml doc 2: spec.delivery.backoffDelay: invalid ISO-8601 duration \"200ms\": must start with \"P\" (e.g. PT0.2S)"
        );
        let as_error: &dyn std::error::Error = &e;
        assert!(as_error.to_string().lines().count() == 3);
    }

    #[test]
    fn errors_across_files_and_documents() {
        let bad_trigger = "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: x}\nspec:\n  subscriber: {uri: 'http://a'}\n";
        let e = load(&[
            ("a.yaml", BROKER),
            ("b.yaml", &format!("---\n---\n{bad_trigger}")),
        ])
        .expect_err("missing broker");
        // Empty documents count in the numbering; a leading `---` opens document 1.
        assert_eq!(e.to_string(), "b.yaml doc 2: spec.broker: required");
    }

    #[test]
    fn empty_documents_and_sources_are_fine() {
        let c = ok("");
        assert!(c.topology.brokers.is_empty());
        let c = ok("---\n---\n# just a comment\n");
        assert!(c.topology.triggers.is_empty());
    }

    #[test]
    fn unknown_kinds_are_skipped_with_a_warning() {
        let c = ok(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\n---\n{BROKER}---\n\
             apiVersion: eventing.knative.dev/v1beta1\nkind: Broker\nmetadata: {{name: old}}\n"
        ));
        assert_eq!(c.topology.brokers.len(), 1);
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(
            c.warnings[0].starts_with("c.yaml doc 1: skipped kind \"Service\" (apiVersion \"v1\")")
        );
        assert!(c.warnings[1].starts_with("c.yaml doc 3: skipped kind \"Broker\""));
    }

    #[test]
    fn document_shape_errors() {
        assert_eq!(
            errs("kind: Broker\n"),
            vec!["c.yaml doc 1: apiVersion: required (a string)"]
        );
        assert_err("- a\n- b\n", "(document)", "must be an object");
        assert_err("a: [1\n", "(yaml)", "invalid YAML");
        assert_err(
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\n",
            "metadata.name",
            "required",
        );
        assert_err(
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: Bad_Name}\n",
            "metadata.name",
            "DNS-1123",
        );
        assert_err(
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: b, namespace: -x}\n",
            "metadata.namespace",
            "DNS-1123",
        );
        assert_err(
            &format!("{BROKER}extra: 1\n"),
            "(document)",
            "unknown field \"extra\"",
        );
    }

    #[test]
    fn namespace_defaults_and_trigger_uses_its_namespace_for_the_broker() {
        let c = ok("apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: t, namespace: ns1}\nspec:\n  broker: b\n  subscriber: {uri: 'http://x'}\n");
        let t = only_trigger(&c);
        assert_eq!(t.broker, BrokerKey::new("ns1", "b"));
        // Broker not defined: a warning, the trigger is kept but routes nothing.
        assert_eq!(c.warnings.len(), 1);
        assert!(
            c.warnings[0].starts_with(
                "c.yaml doc 1: trigger ns1/t refers to broker ns1/b, which is not defined"
            ),
            "{}",
            c.warnings[0]
        );
        assert_eq!(c.topology.triggers.len(), 1);
        assert!(c.topology.routes.is_empty());
    }

    #[test]
    fn switchyard_class_picks_the_backend_by_annotation() {
        let broker = |annotations: &str, spec: &str| {
            format!(
                "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: b\n  \
                 annotations:\n{annotations}{spec}"
            )
        };
        const CLASS: &str = "    eventing.knative.dev/broker.class: Switchyard\n";
        let t = ok(&broker(CLASS, "")).topology;
        assert!(matches!(
            t.brokers.values().next().expect("a broker").backend,
            Backend::Embedded
        ));
        let t = ok(&broker(
            &format!("{CLASS}    switchyard.dev/backend: embedded\n"),
            "",
        ))
        .topology;
        assert!(matches!(
            t.brokers.values().next().expect("a broker").backend,
            Backend::Embedded
        ));
        let kafka = format!(
            "{}spec:\n  config: {{kind: ConfigMap, name: k}}\n---\napiVersion: v1\nkind: ConfigMap\n\
             metadata: {{name: k}}\ndata: {{bootstrap.servers: 'k:9092'}}\n",
            ""
        );
        let t = ok(&broker(
            &format!("{CLASS}    switchyard.dev/backend: kafka\n"),
            &kafka,
        ))
        .topology;
        assert!(matches!(
            t.brokers.values().next().expect("a broker").backend,
            Backend::Kafka(_)
        ));
        assert_eq!(
            errs(&broker(
                &format!("{CLASS}    switchyard.dev/backend: redis\n"),
                ""
            )),
            vec!["c.yaml doc 1: metadata.annotations: \"switchyard.dev/backend\" is \"redis\"; supported: embedded, kafka, nats-jetstream"]
        );
        assert_eq!(
            errs(&broker("    switchyard.dev/backend: kafka\n", "")),
            vec!["c.yaml doc 1: metadata.annotations: \"switchyard.dev/backend\" only applies to brokers of class Switchyard (set eventing.knative.dev/broker.class: Switchyard)"]
        );
    }

    #[test]
    fn broker_class_and_config_errors() {
        let broker = |meta_extra: &str, spec: &str| {
            format!("apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: b\n{meta_extra}{spec}")
        };
        assert_eq!(
            errs(&broker(
                "  annotations:\n    eventing.knative.dev/broker.class: KafkaNamespaced\n",
                ""
            )),
            vec!["c.yaml doc 1: metadata.annotations: broker class \"KafkaNamespaced\" is not supported (supported: Switchyard, MTChannelBasedBroker, Kafka, NatsJetStream)"]
        );
        assert_eq!(
            errs(&broker("", "spec:\n  config: {kind: ConfigMap, name: nope}\n")),
            vec!["c.yaml doc 1: spec.config: ConfigMap default/nope is not defined in the configuration"]
        );
        // The ConfigMap's namespace defaults to the broker's.
        let e = errs(&broker(
            "  namespace: ns\n",
            "spec:\n  config: {kind: ConfigMap, name: cfg}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n",
        ));
        assert_eq!(
            e,
            vec!["c.yaml doc 1: spec.config: ConfigMap ns/cfg is not defined in the configuration"]
        );
        assert_err(
            &broker("", "spec:\n  config: {kind: Secret, name: s}\n"),
            "spec.config.kind",
            "only ConfigMap",
        );
        for bad in ["0", "-3", "lots", "1.5"] {
            assert_err(
                &broker(
                    &format!("  annotations:\n    switchyard.dev/max-backlog: \"{bad}\"\n"),
                    "",
                ),
                "metadata.annotations",
                "\"switchyard.dev/max-backlog\" must be a positive integer",
            );
        }
        assert_err(
            &broker("", "spec:\n  delivery: {retry: 1}\n  channel: x\n"),
            "spec",
            "unknown field \"channel\"",
        );
    }

    #[test]
    fn trigger_errors() {
        assert_err(
            &trigger_with("").replace("uri: http://sink.example/path", "uri: /relative"),
            "spec.subscriber.uri",
            "must be an absolute http or https URL",
        );
        assert_err(
            &trigger_with("").replace("uri: http://sink.example/path", "uri: ftp://x/y"),
            "spec.subscriber.uri",
            "must be an absolute http or https URL",
        );
        assert_err(
            &trigger_with("").replace("uri: http://sink.example/path", "uri: 'http://a b'"),
            "spec.subscriber.uri",
            "is not a valid URL",
        );
        assert_eq!(
            errs(&trigger_with("").replace(
                "uri: http://sink.example/path",
                "ref: {apiVersion: v1, kind: Service, name: svc}"
            )),
            vec!["c.yaml doc 2: spec.subscriber.ref: ref is resolved only in Kubernetes mode; use uri in standalone mode"]
        );
        assert_eq!(
            errs(&trigger_with("  delivery:\n    deadLetterSink:\n      ref: {kind: Service, name: dls}\n")),
            vec!["c.yaml doc 2: spec.delivery.deadLetterSink.ref: ref is resolved only in Kubernetes mode; use uri in standalone mode"]
        );
        assert_err(
            &trigger_with("").replace("  subscriber:\n    uri: http://sink.example/path\n", ""),
            "spec.subscriber",
            "required",
        );
        assert_err(
            &trigger_with("  subscribr: {uri: 'http://x'}\n"),
            "spec",
            "unknown field \"subscribr\"",
        );
        for bad in ["0", "-1", "many"] {
            let text = trigger_with("").replace(
                "  name: t\n",
                &format!("  name: t\n  annotations:\n    switchyard.dev/max-inflight: \"{bad}\"\n"),
            );
            assert_err(
                &text,
                "metadata.annotations",
                "\"switchyard.dev/max-inflight\" must be a positive integer",
            );
        }
        let text = trigger_with("").replace(
            "  name: t\n",
            "  name: t\n  annotations:\n    switchyard.dev/max-inflight: \"7\"\n",
        );
        assert_eq!(only_trigger(&ok(&text)).max_inflight, 7);
    }

    #[test]
    fn duplicates_are_errors_on_the_second() {
        let e = load(&[("a.yaml", BROKER), ("b.yaml", &format!("---\n{BROKER}"))])
            .expect_err("duplicate broker");
        assert_eq!(
            e.to_string(),
            "b.yaml doc 1: metadata.name: duplicate Broker default/default (first defined at a.yaml doc 1)"
        );
        let trig = "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: t}\nspec: {broker: default, subscriber: {uri: 'http://x'}}\n";
        let e = load(&[("a.yaml", &format!("{BROKER}---\n{trig}---\n{trig}"))])
            .expect_err("duplicate trigger");
        assert_eq!(
            e.to_string(),
            "a.yaml doc 3: metadata.name: duplicate Trigger default/t (first defined at a.yaml doc 2)"
        );
        // Same name in another namespace is fine.
        ok(&format!(
            "{BROKER}---\n{trig}---\n{}",
            trig.replace("{name: t}", "{name: t, namespace: other}")
        ));
    }

    #[test]
    fn delivery_errors() {
        let cases: &[(&str, &str, &str)] = &[
            ("retry: -1", "spec.delivery.retry", "must be >= 0"),
            (
                "retry: abc",
                "spec.delivery.retry",
                "must be an integer >= 0, got \"abc\"",
            ),
            ("retry: 99999999999", "spec.delivery.retry", "too large"),
            (
                "backoffPolicy: fibonacci",
                "spec.delivery.backoffPolicy",
                "must be \"linear\" or \"exponential\"",
            ),
            (
                "backoffDelay: 5s",
                "spec.delivery.backoffDelay",
                "invalid ISO-8601 duration",
            ),
            ("backoffMax: -PT1S", "spec.delivery.backoffMax", "negative"),
            (
                "timeout: PT0S",
                "spec.delivery.timeout",
                "must be greater than zero",
            ),
            ("timeout: 30", "spec.delivery.timeout", "must be a string"),
            (
                "retryAfterMax: P1Y",
                "spec.delivery.retryAfterMax",
                "years are not supported",
            ),
            (
                "format: xml",
                "spec.delivery.format",
                "must be \"json\" or \"binary\"",
            ),
            (
                "deadLetterSink: {uri: 'not a url'}",
                "spec.delivery.deadLetterSink.uri",
                "not a valid URL",
            ),
            (
                "deadLetterSink: {}",
                "spec.delivery.deadLetterSink.uri",
                "required",
            ),
            ("retries: 3", "spec.delivery", "unknown field \"retries\""),
        ];
        for (line, path, msg) in cases {
            assert_err(
                &trigger_with(&format!("  delivery:\n    {line}\n")),
                path,
                msg,
            );
        }
        assert_eq!(
            errs(&trigger_with("  delivery:\n    timeout: PT0S\n")),
            vec!["c.yaml doc 2: spec.delivery.timeout: must be greater than zero, got \"PT0S\""]
        );
    }

    #[test]
    fn delivery_precedence_trigger_replaces_broker_as_a_whole() {
        let text = concat!(
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n",
            "spec:\n  delivery: {retry: 5, backoffPolicy: linear, deadLetterSink: {uri: 'http://dls'}}\n---\n",
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: own}\n",
            "spec: {broker: default, subscriber: {uri: 'http://x'}, delivery: {retry: 1}}\n---\n",
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: inherits}\n",
            "spec: {broker: default, subscriber: {uri: 'http://x'}, delivery: {}}\n"
        );
        let c = ok(text);
        let broker = &c.topology.brokers[&BrokerKey::new("default", "default")];
        let own = &c.topology.triggers[&TriggerKey::new("default", "own")];
        let inherits = &c.topology.triggers[&TriggerKey::new("default", "inherits")];
        // The trigger's spec replaces the broker's entirely: no DLS, exponential default.
        let eff = own.effective_delivery(broker).expect("trigger delivery");
        assert_eq!(eff.dead_letter_sink, None);
        let p = RetryPolicy::from_spec(Some(eff));
        assert_eq!(p.retries, 1);
        assert_eq!(p.backoff_policy, BackoffPolicy::Exponential);
        // `delivery: {}` sets nothing: the broker's applies.
        assert_eq!(inherits.delivery, None);
        let eff = inherits
            .effective_delivery(broker)
            .expect("broker delivery");
        assert_eq!(eff.dead_letter_sink.as_deref(), Some("http://dls"));
        let p = RetryPolicy::from_spec(Some(eff));
        assert_eq!((p.retries, p.backoff_policy), (5, BackoffPolicy::Linear));
        // Neither set: Knative's broker defaults.
        let plain = ok(&trigger_with(""));
        let t = only_trigger(&plain);
        let b = &plain.topology.brokers[&t.broker];
        assert_eq!(RetryPolicy::from_spec(t.effective_delivery(b)).retries, 10);
    }

    /// `backoffMax` follows the same precedence: the effective spec's value, else the 1 h default. A
    /// trigger with its own `delivery` does not inherit the broker's `backoffMax`.
    #[test]
    fn backoff_max_comes_from_the_effective_delivery_spec_or_the_default() {
        use crate::delivery::DEFAULT_BACKOFF_MAX;
        let text = concat!(
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n",
            "spec:\n  delivery: {retry: 40, backoffMax: PT2H}\n---\n",
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: inherits}\n",
            "spec: {broker: default, subscriber: {uri: 'http://x'}}\n---\n",
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: own}\n",
            "spec: {broker: default, subscriber: {uri: 'http://x'}, delivery: {retry: 40}}\n---\n",
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: own-max}\n",
            "spec: {broker: default, subscriber: {uri: 'http://x'}, delivery: {retry: 40, backoffMax: PT30M}}\n"
        );
        let c = ok(text);
        let broker = &c.topology.brokers[&BrokerKey::new("default", "default")];
        let policy = |name: &str| {
            let t = &c.topology.triggers[&TriggerKey::new("default", name)];
            RetryPolicy::from_spec(t.effective_delivery(broker))
        };
        let hour = Duration::from_secs(3600);
        assert_eq!(policy("inherits").backoff_max, hour * 2);
        assert_eq!(policy("inherits").backoff(40), hour * 2);
        assert_eq!(policy("own").backoff_max, DEFAULT_BACKOFF_MAX);
        assert_eq!(policy("own").backoff(40), hour);
        assert_eq!(policy("own-max").backoff(40), hour / 2);
        // Neither sets one: the default.
        let plain = ok(&trigger_with(""));
        let t = only_trigger(&plain);
        let b = &plain.topology.brokers[&t.broker];
        assert_eq!(
            RetryPolicy::from_spec(t.effective_delivery(b)).backoff_max,
            hour
        );
    }

    fn filter_of(spec_extra: &str) -> Filter {
        only_trigger(&ok(&trigger_with(spec_extra))).filter.clone()
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn legacy_filter_compiles_to_attributes() {
        assert_eq!(
            filter_of("  filter:\n    attributes:\n      type: t1\n      source: ''\n      abcdefghijklmnopqrst: x\n"),
            Filter::Attributes(kv(&[("abcdefghijklmnopqrst", "x"), ("source", ""), ("type", "t1")]))
        );
        assert_eq!(filter_of("  filter: {}\n"), Filter::True);
        assert_eq!(filter_of("  filter:\n    attributes: {}\n"), Filter::True);
    }

    #[test]
    fn legacy_filter_key_validation() {
        for bad in ["SOURCE", "s-pace-s", "123", "ünicode", "type_x", "Type"] {
            let e = errs(&trigger_with(&format!(
                "  filter:\n    attributes:\n      \"{bad}\": x\n"
            )));
            assert_eq!(
                e,
                vec![format!(
                    "c.yaml doc 2: spec.filter.attributes: key {bad:?} must match ^[a-z][a-z0-9]*$"
                )]
            );
        }
        assert_err(
            &trigger_with("  filter:\n    attributes:\n      count: 5\n"),
            "spec.filter.attributes",
            "value of \"count\" must be a string (quote it)",
        );
        assert_err(
            &trigger_with("  filter:\n    attribute: {type: x}\n"),
            "spec.filter",
            "unknown field \"attribute\"",
        );
    }

    #[test]
    fn filters_dialects_compile() {
        let f = filter_of(
            "  filters:\n    - exact: {type: t1}\n    - prefix: {source: /orders}\n    - suffix: {subject: .png}\n",
        );
        assert_eq!(
            f,
            Filter::All(vec![
                Filter::Exact(kv(&[("type", "t1")])),
                Filter::Prefix(kv(&[("source", "/orders")])),
                Filter::Suffix(kv(&[("subject", ".png")])),
            ])
        );
        // A single item stays inside the top-level `all` (explain relies on it).
        assert_eq!(
            filter_of("  filters:\n    - exact: {type: t1}\n"),
            Filter::All(vec![Filter::Exact(kv(&[("type", "t1")]))])
        );
        let f = filter_of(
            "  filters:\n    - any:\n        - exact: {type: a}\n        - not:\n            prefix: {type: b}\n    - all:\n        - suffix: {type: c}\n",
        );
        assert_eq!(
            f,
            Filter::All(vec![
                Filter::Any(vec![
                    Filter::Exact(kv(&[("type", "a")])),
                    Filter::Not(Box::new(Filter::Prefix(kv(&[("type", "b")])))),
                ]),
                Filter::All(vec![Filter::Suffix(kv(&[("type", "c")]))]),
            ])
        );
    }

    #[test]
    fn filters_validation_errors() {
        let f = |body: &str| trigger_with(&format!("  filters:\n{body}"));
        assert_eq!(
            errs(&f("    - exact: {type: a}\n      prefix: {type: b}\n")),
            vec!["c.yaml doc 2: spec.filters[0]: multiple dialects found (exact, prefix); use exactly one per filter object"]
        );
        assert_eq!(
            errs(&f("    - {}\n")),
            vec!["c.yaml doc 2: spec.filters[0]: no dialect found; expected one of exact, prefix, suffix, all, any, not, cesql"]
        );
        assert_eq!(
            errs(&f("    - exact: {type: a}\n    - cesql: \"type = 'a' AND source LIKE 123\"\n")),
            vec!["c.yaml doc 2: spec.filters[1].cesql: invalid CESQL expression: at 27: expected a string literal after LIKE, found 123"]
        );
        assert_eq!(
            errs(&f("    - cesql: 42\n")),
            vec!["c.yaml doc 2: spec.filters[0].cesql: must be a CESQL expression string, got a number"]
        );
        assert_eq!(
            errs(&f("    - all:\n        - exact: {type: a}\n        - prefix: {Type: b}\n")),
            vec!["c.yaml doc 2: spec.filters[0].all[1].prefix: key \"Type\" must match ^[a-z][a-z0-9]*$"]
        );
        assert_err(
            &f("    - exact: {}\n"),
            "spec.filters[0].exact",
            "at least one attribute",
        );
        assert_err(
            &f("    - exact:\n"),
            "spec.filters[0].exact",
            "must be a map",
        );
        assert_err(
            &f("    - suffix: {type: ''}\n"),
            "spec.filters[0].suffix",
            "value of \"type\" must not be empty",
        );
        assert_err(
            &f("    - any: []\n"),
            "spec.filters[0].any",
            "at least one filter",
        );
        assert_err(
            &f("    - all: {exact: {type: a}}\n"),
            "spec.filters[0].all",
            "non-empty list",
        );
        assert_err(
            &f("    - not: [{exact: {type: a}}]\n"),
            "spec.filters[0].not",
            "must be an object",
        );
        assert_err(
            &f("    - not: {}\n"),
            "spec.filters[0].not",
            "no dialect found",
        );
        assert_err(
            &f("    - regex: {type: a}\n"),
            "spec.filters[0]",
            "unknown field \"regex\"",
        );
        assert_err(
            &trigger_with("  filters: {exact: {type: a}}\n"),
            "spec.filters",
            "must be a list",
        );
        // Every error is reported, deep ones included.
        let e = errs(&f(
            "    - exact: {A: x}\n    - any: []\n    - not: {cesql: \"x LIKE\"}\n",
        ));
        assert_eq!(e.len(), 3, "{e:?}");
    }

    /// Knative conformance (`new_trigger_filters/feature.go`).
    #[test]
    fn conformance_filters_override_filter() {
        let f = filter_of(
            "  filter:\n    attributes: {type: legacy}\n  filters:\n    - exact: {type: new}\n",
        );
        assert_eq!(f, Filter::All(vec![Filter::Exact(kv(&[("type", "new")]))]));
        assert!(f.matches(&Event::new("1", "/s", "new")));
        assert!(!f.matches(&Event::new("1", "/s", "legacy")));
    }

    #[test]
    fn conformance_empty_filters_keeps_filter() {
        let f = filter_of("  filter:\n    attributes: {type: legacy}\n  filters: []\n");
        assert_eq!(f, Filter::Attributes(kv(&[("type", "legacy")])));
        assert!(f.matches(&Event::new("1", "/s", "legacy")));
        assert!(!f.matches(&Event::new("1", "/s", "new")));
    }

    #[test]
    fn conformance_implicit_and_across_list_items() {
        let f = filter_of(
            "  filters:\n    - exact: {type: t}\n    - exact: {source: /a}\n    - prefix: {myext: v}\n",
        );
        let mut e = Event::new("1", "/a", "t");
        assert!(!f.matches(&e), "missing extension fails");
        e.set_extension("myext", ExtValue::String("value".into()));
        assert!(f.matches(&e));
        e.source = "/b".into();
        assert!(!f.matches(&e));
    }

    #[test]
    fn filter_is_validated_even_when_filters_wins() {
        assert_err(
            &trigger_with(
                "  filter:\n    attributes: {Bad: x}\n  filters:\n    - exact: {type: t}\n",
            ),
            "spec.filter.attributes",
            "must match",
        );
    }

    #[test]
    fn load_paths_reads_files_and_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("conf");
        std::fs::create_dir(&sub).expect("mkdir");
        std::fs::write(sub.join("b.yml"), trigger_with("").replace(BROKER, "")).expect("write");
        std::fs::write(sub.join("a.yaml"), BROKER).expect("write");
        std::fs::write(sub.join("notes.txt"), "not yaml").expect("write");
        std::fs::create_dir(sub.join("nested.yaml")).expect("mkdir");
        let single = dir.path().join("single.yaml");
        std::fs::write(
            &single,
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {k: v}\n",
        )
        .expect("write");
        let c = load_paths(&[sub.clone(), single.clone()]).expect("valid");
        assert_eq!(
            c.files,
            vec![sub.join("a.yaml"), sub.join("b.yml"), single.clone()]
        );
        assert_eq!(c.topology.brokers.len(), 1);
        assert_eq!(c.topology.triggers.len(), 1);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);

        // Errors name the file inside the directory.
        std::fs::write(sub.join("c.yaml"), "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: z}\nspec: {broker: default}\n").expect("write");
        let e = load_paths(std::slice::from_ref(&sub)).expect_err("missing subscriber");
        assert_eq!(
            e.to_string(),
            format!(
                "{} doc 1: spec.subscriber: required (uri)",
                sub.join("c.yaml").display()
            )
        );

        let missing = dir.path().join("missing.yaml");
        let e = load_paths(std::slice::from_ref(&missing)).expect_err("missing file");
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].file, missing.display().to_string());
        assert!(e.0[0].message.starts_with("cannot read"), "{}", e.0[0]);
    }

    // ---- Kafka ----

    use crate::config::{
        Backend, ContentMode, DeliveryOrder, DestinationConfig, InitialOffset, KafkaBrokerConfig,
        ObjectKey, SourceSinkConfig,
    };

    const KAFKA_CM: &str =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kafka-broker-config}\n\
                            data:\n  bootstrap.servers: \"k1:9092\"\n";

    /// A Kafka broker `default/kb` (doc 2) whose ConfigMap (doc 1) has `data` (YAML lines at indent 2),
    /// plus `extra_annotations` (YAML lines at indent 4).
    fn kafka_broker(data: &str, extra_annotations: &str) -> String {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: kafka-broker-config}}\ndata:\n{data}---\n\
             apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: kb\n  annotations:\n\
             \x20   eventing.knative.dev/broker.class: Kafka\n{extra_annotations}\
             spec:\n  config: {{apiVersion: v1, kind: ConfigMap, name: kafka-broker-config}}\n"
        )
    }

    fn backend_of(c: &LoadedConfig, ns: &str, name: &str) -> Backend {
        c.topology.brokers[&BrokerKey::new(ns, name)]
            .backend
            .clone()
    }

    #[test]
    fn kafka_broker_from_configmap() {
        let c = ok(&kafka_broker(
            "  bootstrap.servers: \"k1:9092, k2.example:9093,[::1]:9094\"\n  default.topic.partitions: \"3\"\n  \
             default.topic.replication.factor: \"2\"\n  default.topic.config.retention.ms: \"1000\"\n",
            "",
        ));
        let b = &c.topology.brokers[&BrokerKey::new("default", "kb")];
        assert_eq!(b.class, "Kafka");
        assert_eq!(
            b.backend,
            Backend::Kafka(KafkaBrokerConfig {
                bootstrap_servers: "k1:9092,k2.example:9093,[::1]:9094".into(),
                topic: "knative-broker-default-kb".into(),
                external_topic: false,
                partitions: 3,
                replication_factor: 2,
            })
        );
        // The raw ConfigMap data is kept too (other keys are for whoever creates the topic).
        assert_eq!(
            b.config
                .get("default.topic.config.retention.ms")
                .map(String::as_str),
            Some("1000")
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn kafka_broker_defaults_external_topic_and_namespaces() {
        let c = ok(&kafka_broker("  bootstrap.servers: \"k1:9092\"\n", ""));
        assert_eq!(
            backend_of(&c, "default", "kb"),
            Backend::Kafka(KafkaBrokerConfig {
                bootstrap_servers: "k1:9092".into(),
                topic: "knative-broker-default-kb".into(),
                external_topic: false,
                partitions: 10,
                replication_factor: 1,
            })
        );
        let c = ok(&kafka_broker(
            "  bootstrap.servers: \"k1:9092\"\n",
            "    kafka.eventing.knative.dev/external.topic: my_Topic.v1-x\n",
        ));
        match backend_of(&c, "default", "kb") {
            Backend::Kafka(k) => {
                assert_eq!(k.topic, "my_Topic.v1-x");
                assert!(k.external_topic);
            }
            other => panic!("expected a Kafka backend, got {other:?}"),
        }
        // Topic from the broker's namespace; the ConfigMap is looked up in that namespace too, and a
        // ConfigMap shared by two Kafka brokers is fine.
        let text = format!(
            "{}---\n{}",
            KAFKA_CM.replace("{name: kafka-broker-config}", "{name: kafka-broker-config, namespace: team}"),
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: a\n  namespace: team\n  \
             annotations: {eventing.knative.dev/broker.class: Kafka}\n\
             spec: {config: {kind: ConfigMap, name: kafka-broker-config}}\n---\n\
             apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: b\n  namespace: other\n  \
             annotations: {eventing.knative.dev/broker.class: Kafka}\n\
             spec: {config: {kind: ConfigMap, name: kafka-broker-config, namespace: team}}\n"
        );
        let c = ok(&text);
        for (ns, name) in [("team", "a"), ("other", "b")] {
            match backend_of(&c, ns, name) {
                Backend::Kafka(k) => {
                    assert_eq!(k.topic, format!("knative-broker-{ns}-{name}"));
                    assert_eq!(k.bootstrap_servers, "k1:9092");
                }
                other => panic!("expected a Kafka backend, got {other:?}"),
            }
        }
        // Other classes stay embedded, with or without a ConfigMap.
        assert_eq!(
            backend_of(&ok(BROKER), "default", "default"),
            Backend::Embedded
        );
        let c = ok(&format!(
            "{KAFKA_CM}---\n{BROKER}spec: {{config: {{kind: ConfigMap, name: kafka-broker-config}}}}\n"
        ));
        assert_eq!(backend_of(&c, "default", "default"), Backend::Embedded);
    }

    #[test]
    fn kafka_broker_errors() {
        // No spec.config at all.
        let no_config =
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: kb\n  \
                         annotations: {eventing.knative.dev/broker.class: Kafka}\n";
        assert_eq!(
            errs(no_config),
            vec!["c.yaml doc 1: spec.config: required for broker class Kafka: a reference to a ConfigMap \
                  with bootstrap.servers (like Knative's kafka-broker-config), e.g. {apiVersion: v1, kind: \
                  ConfigMap, name: kafka-broker-config}"]
        );
        assert_err(
            &format!("{no_config}spec: {{delivery: {{retry: 1}}}}\n"),
            "spec.config",
            "required for broker class Kafka",
        );
        // The ConfigMap must exist.
        assert_eq!(
            errs(kafka_broker("", "").split("---\n").nth(1).expect("broker document")),
            vec!["c.yaml doc 1: spec.config: ConfigMap default/kafka-broker-config is not defined in the configuration"]
        );
        // bootstrap.servers problems are reported in the ConfigMap's document.
        assert_eq!(
            errs(&kafka_broker("  other: x\n", "")),
            vec!["c.yaml doc 1: data.bootstrap.servers: required by Kafka broker default/kb: a \
                  comma-separated list of host:port (e.g. \"kafka-0.example:9092,kafka-1.example:9092\")"]
        );
        assert_err(
            &kafka_broker("  bootstrap.servers: \" \"\n", ""),
            "data.bootstrap.servers",
            "required by Kafka broker default/kb",
        );
        assert_eq!(
            errs(&kafka_broker("  bootstrap.servers: \"k1:9092,k2,k3:0,\"\n", "")),
            vec![
                "c.yaml doc 1: data.bootstrap.servers: \"k2\" is not a valid host:port: missing \":port\"",
                "c.yaml doc 1: data.bootstrap.servers: \"k3:0\" is not a valid host:port: port \"0\" must be an integer from 1 to 65535",
                "c.yaml doc 1: data.bootstrap.servers: \"k1:9092,k2,k3:0,\" has an empty entry; expected a comma-separated list of host:port",
            ]
        );
        for (key, value, msg) in [
            ("default.topic.partitions", "0", "must be an integer from 1 to 2147483647, got \"0\""),
            ("default.topic.partitions", "ten", "must be an integer from 1 to 2147483647, got \"ten\""),
            ("default.topic.partitions", "3000000000", "must be an integer from 1 to 2147483647"),
            ("default.topic.replication.factor", "-1", "must be an integer from 1 to 32767, got \"-1\""),
            ("default.topic.replication.factor", "40000", "must be an integer from 1 to 32767"),
            ("auth.secret.ref.name", "kafka-secret", "Kafka authentication is not supported in standalone mode (Kafka broker default/kb)"),
        ] {
            let text = kafka_broker(&format!("  bootstrap.servers: \"k:1\"\n  {key}: \"{value}\"\n"), "");
            let e = load(&[("c.yaml", &text)]).expect_err(key);
            assert_eq!(e.0.len(), 1, "{e}");
            assert_eq!((e.0[0].doc, e.0[0].path.as_str()), (1, format!("data.{key}").as_str()));
            assert!(e.0[0].message.contains(msg), "{}", e.0[0]);
        }
        // A bad ConfigMap shared by two Kafka brokers is reported once.
        let text = format!(
            "{}---\napiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: kb2\n  \
             annotations: {{eventing.knative.dev/broker.class: Kafka}}\n\
             spec: {{config: {{kind: ConfigMap, name: kafka-broker-config}}}}\n",
            kafka_broker("  bootstrap.servers: nope\n", "")
        );
        assert_eq!(
            errs(&text),
            vec!["c.yaml doc 1: data.bootstrap.servers: \"nope\" is not a valid host:port: missing \":port\""]
        );
        // External topic: validated, and only for class Kafka.
        assert_eq!(
            errs(&kafka_broker(
                "  bootstrap.servers: \"k:1\"\n",
                "    kafka.eventing.knative.dev/external.topic: \"a/b\"\n"
            )),
            vec!["c.yaml doc 2: metadata.annotations: \"kafka.eventing.knative.dev/external.topic\": \"a/b\" \
                  is not a valid Kafka topic name: 1 to 249 characters of a-z, A-Z, 0-9, '.', '_' or '-', and \
                  not \".\" or \"..\""]
        );
        assert_err(
            &kafka_broker(
                "  bootstrap.servers: \"k:1\"\n",
                "    kafka.eventing.knative.dev/external.topic: [x]\n",
            ),
            "metadata.annotations",
            "must be a topic name",
        );
        assert_eq!(
            errs(&BROKER.replace(
                "  name: default\n",
                "  name: default\n  annotations: {kafka.eventing.knative.dev/external.topic: t}\n"
            )),
            vec!["c.yaml doc 1: metadata.annotations: \"kafka.eventing.knative.dev/external.topic\" (\"t\") \
                  only applies to brokers of class Kafka (set eventing.knative.dev/broker.class: Kafka)"]
        );
    }

    #[test]
    fn host_port_and_topic_rules() {
        use crate::config::is_valid_kafka_topic;
        use crate::config::rules::parse_bootstrap_csv;
        for good in [
            "k:9092",
            "10.0.0.1:1",
            "[::1]:65535",
            "a-b.c_d.example:9092",
            " k:1 , j:2 ",
        ] {
            assert!(parse_bootstrap_csv(good).is_ok(), "{good}");
        }
        assert_eq!(parse_bootstrap_csv(" k:1 , j:2 ").as_deref(), Ok("k:1,j:2"));
        for (bad, why) in [
            ("k", "missing \":port\""),
            (":9092", "empty host"),
            ("k:", "port \"\" must be"),
            ("k:65536", "port \"65536\" must be"),
            ("k:x", "port \"x\" must be"),
            ("a b:1", "host \"a b\" must be a DNS name"),
            ("::1:9092", "host \"::1\" must be a DNS name"),
            ("[::1]9092", "missing \":port\""),
            ("[::1:9092", "missing ']'"),
            ("[zz]:1", "\"zz\" is not an IPv6 address"),
        ] {
            let e = parse_bootstrap_csv(bad).expect_err(bad);
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(e[0].contains(why), "{bad}: {}", e[0]);
        }
        for good in ["a", "A.b_c-9", &"x".repeat(249), "..."] {
            assert!(is_valid_kafka_topic(good), "{good}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "tópico", &"x".repeat(250)] {
            assert!(!is_valid_kafka_topic(bad), "{bad}");
        }
    }

    #[test]
    fn trigger_delivery_order_annotation() {
        let with = |value: &str| {
            trigger_with("").replace(
                "  name: t\n",
                &format!("  name: t\n  annotations:\n    kafka.eventing.knative.dev/delivery.order: {value}\n"),
            )
        };
        assert_eq!(
            only_trigger(&ok(&trigger_with(""))).delivery_order,
            DeliveryOrder::Unordered
        );
        assert_eq!(
            only_trigger(&ok(&with("ordered"))).delivery_order,
            DeliveryOrder::Ordered
        );
        assert_eq!(
            only_trigger(&ok(&with("unordered"))).delivery_order,
            DeliveryOrder::Unordered
        );
        assert_eq!(
            errs(&with("fifo")),
            vec!["c.yaml doc 2: metadata.annotations: \"kafka.eventing.knative.dev/delivery.order\" must be \
                  \"ordered\" or \"unordered\" (the default), got \"fifo\""]
        );
        assert_err(&with("Ordered"), "metadata.annotations", "got \"Ordered\"");
        assert_err(
            &with("[a]"),
            "metadata.annotations",
            "got a non-string value",
        );
    }

    const SINK: &str =
        "apiVersion: eventing.knative.dev/v1alpha1\nkind: KafkaSink\nmetadata: {name: audit}\n\
                        spec: {topic: audit, bootstrapServers: ['k:9092']}\n";

    /// BROKER, a trigger (doc 2) whose subscriber is `subscriber` (YAML at indent 4), then SINK (doc 3).
    fn sink_trigger(subscriber: &str) -> String {
        format!(
            "{BROKER}---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t\n\
             spec:\n  broker: default\n  subscriber:\n{subscriber}---\n{SINK}"
        )
    }

    #[test]
    fn trigger_subscriber_kafka_sink_ref() {
        let sink_key = ObjectKey::new("default", "audit");
        for subscriber in [
            "    ref: {apiVersion: eventing.knative.dev/v1alpha1, kind: KafkaSink, name: audit}\n",
            "    ref:\n      apiVersion: eventing.knative.dev/v1alpha1\n      kind: KafkaSink\n      name: audit\n      namespace: default\n",
        ] {
            let c = ok(&sink_trigger(subscriber));
            assert_eq!(only_trigger(&c).subscriber, DestinationConfig::KafkaSink(sink_key.clone()));
            assert_eq!(c.topology.kafka_sinks.len(), 1);
        }
        let r = |fields: &str| sink_trigger(&format!("    ref: {{kind: KafkaSink, {fields}}}\n"));
        let av = "apiVersion: eventing.knative.dev/v1alpha1";
        assert_eq!(
            errs(&r(&format!("{av}, name: other"))),
            vec!["c.yaml doc 2: spec.subscriber.ref: KafkaSink default/other is not defined in the configuration"]
        );
        assert_eq!(
            errs(&r(&format!("{av}, name: audit, namespace: elsewhere"))),
            vec!["c.yaml doc 2: spec.subscriber.ref.namespace: a KafkaSink subscriber must be in the \
                  trigger's namespace \"default\", got \"elsewhere\""]
        );
        assert_eq!(
            errs(&r("apiVersion: eventing.knative.dev/v1, name: audit")),
            vec![
                "c.yaml doc 2: spec.subscriber.ref.apiVersion: a KafkaSink has apiVersion \
                  \"eventing.knative.dev/v1alpha1\", got \"eventing.knative.dev/v1\""
            ]
        );
        assert_err(
            &r("name: audit"),
            "spec.subscriber.ref.apiVersion",
            "required (eventing.knative.dev/v1alpha1)",
        );
        assert_err(&r(av), "spec.subscriber.ref.name", "required");
        assert_err(
            &r(&format!("{av}, name: Audit")),
            "spec.subscriber.ref.name",
            "DNS-1123",
        );
        assert_err(
            &r(&format!("{av}, name: audit, group: x")),
            "spec.subscriber.ref",
            "unknown field \"group\"",
        );
        assert_eq!(
            errs(&sink_trigger(&format!(
                "    uri: http://x\n    ref: {{kind: KafkaSink, {av}, name: audit}}\n"
            ))),
            vec!["c.yaml doc 2: spec.subscriber: set either uri or ref, not both (a uri relative to a ref is \
                  not supported in standalone mode)"]
        );
        // Other kinds keep the standalone-mode error, and a dead-letter sink stays uri-only.
        assert_eq!(
            errs(&sink_trigger("    ref: {apiVersion: v1, kind: Service, name: audit}\n")),
            vec!["c.yaml doc 2: spec.subscriber.ref: ref is resolved only in Kubernetes mode; use uri in standalone mode"]
        );
        assert_eq!(
            errs(&sink_trigger(&format!(
                "    uri: http://x\n  delivery:\n    deadLetterSink:\n      ref: {{kind: KafkaSink, {av}, name: audit}}\n"
            ))),
            vec!["c.yaml doc 2: spec.delivery.deadLetterSink.ref: a KafkaSink ref is supported only as a \
                  trigger subscriber; use uri"]
        );
        assert_err(
            &sink_trigger("    {}\n"),
            "spec.subscriber.uri",
            "required: uri (an absolute http or https URL) or ref (a KafkaSink",
        );
    }

    #[test]
    fn kafka_sink_documents() {
        let c = ok(&format!(
            "{SINK}---\napiVersion: eventing.knative.dev/v1alpha1\nkind: KafkaSink\n\
             metadata: {{name: s2, namespace: team}}\nspec:\n  topic: t.2\n  contentMode: structured\n  \
             bootstrapServers: ['a:1,b:2', ' c:3']\n"
        ));
        assert_eq!(
            *c.topology.kafka_sinks[&ObjectKey::new("default", "audit")],
            crate::config::KafkaSinkConfig {
                key: ObjectKey::new("default", "audit"),
                topic: "audit".into(),
                bootstrap_servers: "k:9092".into(),
                content_mode: ContentMode::Binary,
            }
        );
        let s2 = &c.topology.kafka_sinks[&ObjectKey::new("team", "s2")];
        assert_eq!(s2.topic, "t.2");
        assert_eq!(s2.bootstrap_servers, "a:1,b:2,c:3");
        assert_eq!(s2.content_mode, ContentMode::Structured);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);

        let sink = |spec: &str| {
            format!("apiVersion: eventing.knative.dev/v1alpha1\nkind: KafkaSink\nmetadata: {{name: s}}\n{spec}")
        };
        let cases: &[(&str, &str, &str)] = &[
            ("", "spec", "required (topic and bootstrapServers)"),
            (
                "spec: {bootstrapServers: ['k:1']}",
                "spec.topic",
                "required (the topic events are produced to)",
            ),
            (
                "spec: {topic: 'a b', bootstrapServers: ['k:1']}",
                "spec.topic",
                "\"a b\" is not a valid Kafka topic name",
            ),
            (
                "spec: {topic: 5, bootstrapServers: ['k:1']}",
                "spec.topic",
                "must be a string, got a number",
            ),
            (
                "spec: {topic: t}",
                "spec.bootstrapServers",
                "required (a list of host:port)",
            ),
            (
                "spec: {topic: t, bootstrapServers: []}",
                "spec.bootstrapServers",
                "must contain at least one host:port",
            ),
            (
                "spec: {topic: t, bootstrapServers: 'k:1'}",
                "spec.bootstrapServers",
                "must be a list of host:port strings, got a string",
            ),
            (
                "spec: {topic: t, bootstrapServers: ['k:1', 'k2']}",
                "spec.bootstrapServers[1]",
                "\"k2\" is not a valid host:port: missing \":port\"",
            ),
            (
                "spec: {topic: t, bootstrapServers: [9092]}",
                "spec.bootstrapServers[0]",
                "must be a string",
            ),
            (
                "spec: {topic: t, bootstrapServers: ['k:1'], contentMode: json}",
                "spec.contentMode",
                "must be \"binary\" (the default) or \"structured\", got \"json\"",
            ),
            (
                "spec: {topic: t, bootstrapServers: ['k:1'], partitions: 3}",
                "spec",
                "unknown field \"partitions\"; allowed: topic, bootstrapServers, contentMode",
            ),
            (
                "spec: {topic: t, bootstrapServers: ['k:1'], numPartitions: 3}",
                "spec.numPartitions",
                "not supported: Switchyard does not create KafkaSink topics",
            ),
            (
                "spec: {topic: t, bootstrapServers: ['k:1'], auth: {secret: {ref: {name: s}}}}",
                "spec.auth",
                "not supported: Kafka authentication",
            ),
        ];
        for (spec, path, msg) in cases {
            assert_err(&sink(spec), path, msg);
        }
        // Explicit nulls of unsupported fields are fine (as for every optional field).
        ok(&sink(
            "spec: {topic: t, bootstrapServers: ['k:1'], replicationFactor: null}",
        ));
        let e = load(&[("a.yaml", SINK), ("b.yaml", SINK)]).expect_err("duplicate sink");
        assert_eq!(
            e.to_string(),
            "b.yaml doc 1: metadata.name: duplicate KafkaSink default/audit (first defined at a.yaml doc 1)"
        );
        // Another apiVersion is skipped with a warning, as for any unknown kind.
        let c = ok(&SINK.replace("v1alpha1", "v1beta1"));
        assert!(c.topology.kafka_sinks.is_empty());
        assert!(
            c.warnings[0].contains("skipped kind \"KafkaSink\""),
            "{:?}",
            c.warnings
        );
    }

    /// BROKER (doc 1) and a KafkaSource `src` (doc 2) with `spec` (YAML lines at indent 2).
    fn source(spec: &str) -> String {
        format!(
            "{BROKER}---\napiVersion: sources.knative.dev/v1beta1\nkind: KafkaSource\nmetadata: {{name: src}}\n\
             spec:\n{spec}"
        )
    }

    const SOURCE_BASE: &str = "  bootstrapServers: ['k:9092']\n  topics: [t1]\n";

    #[test]
    fn kafka_source_documents() {
        let c = ok(&source(&format!(
            "{SOURCE_BASE}  sink:\n    ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}\n"
        )));
        assert_eq!(
            *c.topology.kafka_sources[&ObjectKey::new("default", "src")],
            crate::config::KafkaSourceConfig {
                key: ObjectKey::new("default", "src"),
                bootstrap_servers: "k:9092".into(),
                topics: vec!["t1".into()],
                consumer_group: "knative-kafka-source-default-src".into(),
                sink: SourceSinkConfig::Broker(BrokerKey::new("default", "default")),
                initial_offset: InitialOffset::Latest,
            }
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        // v1, explicit group and offset, uri sink, several topics.
        let text = source(
            "  bootstrapServers: ['a:1', 'b:2']\n  topics: [t1, t.2]\n  consumerGroup: my-group\n  \
             initialOffset: earliest\n  sink: {uri: 'https://sink.example/in'}\n",
        )
        .replace("sources.knative.dev/v1beta1", "sources.knative.dev/v1");
        let c = ok(&text);
        let s = &c.topology.kafka_sources[&ObjectKey::new("default", "src")];
        assert_eq!(s.bootstrap_servers, "a:1,b:2");
        assert_eq!(s.topics, vec!["t1".to_owned(), "t.2".to_owned()]);
        assert_eq!(s.consumer_group, "my-group");
        assert_eq!(s.initial_offset, InitialOffset::Earliest);
        assert_eq!(
            s.sink,
            SourceSinkConfig::Url("https://sink.example/in".into())
        );
        // The Broker ref's namespace defaults to the source's and may name another one.
        let text = format!(
            "{}---\napiVersion: sources.knative.dev/v1beta1\nkind: KafkaSource\n\
             metadata: {{name: src, namespace: team}}\nspec:\n{SOURCE_BASE}  sink:\n    ref: {{apiVersion: \
             eventing.knative.dev/v1, kind: Broker, name: default, namespace: default}}\n",
            BROKER
        );
        let c = ok(&text);
        let s = &c.topology.kafka_sources[&ObjectKey::new("team", "src")];
        assert_eq!(
            s.sink,
            SourceSinkConfig::Broker(BrokerKey::new("default", "default"))
        );
        assert_eq!(s.consumer_group, "knative-kafka-source-team-src");
    }

    #[test]
    fn kafka_source_errors() {
        let broker_ref =
            "  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}\n";
        assert_eq!(
            errs(&source(&format!("{SOURCE_BASE}  sink: {{ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: nope}}}}\n"))),
            vec!["c.yaml doc 2: spec.sink.ref: Broker default/nope is not defined in the configuration"]
        );
        let cases: &[(&str, &str, &str)] = &[
            ("  topics: [t1]\n", "spec.bootstrapServers", "required (a list of host:port)"),
            ("  bootstrapServers: ['k:1']\n", "spec.topics", "required (a list of topic names)"),
            ("  bootstrapServers: ['k:1']\n  topics: []\n", "spec.topics", "must contain at least one topic"),
            ("  bootstrapServers: ['k:1']\n  topics: t1\n", "spec.topics", "must be a list of topic names, got a string"),
            ("  bootstrapServers: ['k:1']\n  topics: [t1, '..']\n", "spec.topics[1]", "\"..\" is not a valid Kafka topic name"),
            ("  bootstrapServers: ['k:1']\n  topics: [t1, t1]\n", "spec.topics[1]", "duplicate topic \"t1\""),
            ("  bootstrapServers: ['k']\n  topics: [t1]\n", "spec.bootstrapServers[0]", "missing \":port\""),
            ("  consumerGroup: ''\n", "spec.consumerGroup", "must be a non-empty group id"),
            ("  initialOffset: newest\n", "spec.initialOffset", "must be \"earliest\" or \"latest\" (the default), got \"newest\""),
            ("  net: {tls: {enable: true}}\n", "spec.net", "not supported: TLS and SASL settings"),
            ("  consumers: 3\n", "spec.consumers", "not supported"),
            ("  ordering: ordered\n", "spec.ordering", "not supported"),
            ("  delivery: {retry: 3}\n", "spec.delivery", "not supported"),
            ("  ceOverrides: {extensions: {a: b}}\n", "spec.ceOverrides", "not supported"),
            ("  topic: t1\n", "spec", "unknown field \"topic\"; allowed: bootstrapServers, topics, consumerGroup, initialOffset, sink"),
        ];
        for (extra, path, msg) in cases {
            let spec = if extra.contains("topics") || extra.contains("bootstrapServers") {
                format!("{extra}{broker_ref}")
            } else {
                format!("{SOURCE_BASE}{extra}{broker_ref}")
            };
            assert_err(&source(&spec), path, msg);
        }
        let sink_cases: &[(&str, &str, &str)] = &[
            ("", "spec.sink", "required: ref (a Broker) or uri"),
            ("  sink: {}\n", "spec.sink", "required: ref (a Broker) or uri"),
            ("  sink: {uri: 'http://x', ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}\n", "spec.sink", "set either uri or ref, not both"),
            ("  sink: {uri: /relative}\n", "spec.sink.uri", "must be an absolute http or https URL"),
            ("  sink: {ref: {apiVersion: v1, kind: Service, name: svc}}\n", "spec.sink.ref.kind", "only Broker refs are resolved in standalone mode, got \"Service\""),
            ("  sink: {ref: {apiVersion: eventing.knative.dev/v1, name: default}}\n", "spec.sink.ref.kind", "required (Broker)"),
            ("  sink: {ref: [x]}\n", "spec.sink.ref", "must be an object, got a list"),
            ("  sink: {ref: {apiVersion: eventing.knative.dev/v1beta1, kind: Broker, name: default}}\n", "spec.sink.ref.apiVersion", "a Broker has apiVersion \"eventing.knative.dev/v1\", got \"eventing.knative.dev/v1beta1\""),
            ("  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker}}\n", "spec.sink.ref.name", "required"),
            ("  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default, namespace: Bad}}\n", "spec.sink.ref.namespace", "DNS-1123"),
            ("  sink: {uri: 'http://x', audience: a}\n", "spec.sink.audience", "not supported: OIDC audiences"),
        ];
        for (sink, path, msg) in sink_cases {
            assert_err(&source(&format!("{SOURCE_BASE}{sink}")), path, msg);
        }
        assert_err(
            "apiVersion: sources.knative.dev/v1beta1\nkind: KafkaSource\nmetadata: {name: s}\n",
            "spec",
            "required (bootstrapServers, topics and sink)",
        );
        let one = source(&format!("{SOURCE_BASE}{broker_ref}"));
        let second = one.replace(BROKER, "").replacen("---\n", "", 1);
        let e = load(&[("a.yaml", &one), ("b.yaml", &second)]).expect_err("duplicate source");
        assert_eq!(
            e.to_string(),
            "b.yaml doc 1: metadata.name: duplicate KafkaSource default/src (first defined at a.yaml doc 2)"
        );
    }

    #[test]
    fn kafka_example_is_a_valid_config() {
        let c = ok(include_str!("../../../examples/kafka.yaml"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let key = BrokerKey::new("default", "orders");
        assert_eq!(
            backend_of(&c, "default", "orders"),
            Backend::Kafka(KafkaBrokerConfig {
                bootstrap_servers: "127.0.0.1:9092".into(),
                topic: "knative-broker-default-orders".into(),
                external_topic: false,
                partitions: 3,
                replication_factor: 1,
            })
        );
        let ordered = &c.topology.triggers[&TriggerKey::new("default", "orders-ordered")];
        assert_eq!(ordered.delivery_order, DeliveryOrder::Ordered);
        assert_eq!(ordered.broker, key);
        let audit = &c.topology.triggers[&TriggerKey::new("default", "audit")];
        assert_eq!(audit.delivery_order, DeliveryOrder::Unordered);
        assert_eq!(
            audit.subscriber,
            DestinationConfig::KafkaSink(ObjectKey::new("default", "audit"))
        );
        let sink = &c.topology.kafka_sinks[&ObjectKey::new("default", "audit")];
        assert_eq!(
            (sink.topic.as_str(), sink.content_mode),
            ("audit", ContentMode::Structured)
        );
        let src = &c.topology.kafka_sources[&ObjectKey::new("default", "payments")];
        assert_eq!(src.sink, SourceSinkConfig::Broker(key));
        assert_eq!(src.topics, vec!["payments".to_owned()]);
        assert_eq!(src.initial_offset, InitialOffset::Earliest);
        assert_eq!(
            c.topology.routes[&BrokerKey::new("default", "orders")]
                .triggers()
                .len(),
            2
        );
    }

    // ---- NATS ----

    mod nats {
        use super::*;
        use crate::config::{
            nats_broker_stream, nats_broker_subject, NatsBrokerConfig, NatsSinkConfig,
            NatsSourceConfig, NatsSourceJetStreamConfig, NatsStorage,
        };

        /// A NatsJetStream broker `default/nb` (doc 2) whose ConfigMap (doc 1) has `data` (YAML lines at
        /// indent 2).
        fn nats_broker(data: &str) -> String {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: nats-broker-config}}\ndata:\n{data}---\n\
                 apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: nb\n  annotations:\n\
                 \x20   eventing.knative.dev/broker.class: NatsJetStream\n\
                 spec:\n  config: {{apiVersion: v1, kind: ConfigMap, name: nats-broker-config}}\n"
            )
        }

        fn nats_backend(c: &LoadedConfig) -> NatsBrokerConfig {
            match backend_of(c, "default", "nb") {
                Backend::NatsJetStream(n) => n,
                other => panic!("expected a NatsJetStream backend, got {other:?}"),
            }
        }

        #[test]
        fn nats_broker_from_configmap() {
            let c = ok(&nats_broker(
                "  servers: \"nats://n1:4222, tls://n2.example:4443,n3:4222,nats://[::1]:4222,NATS://n4\"\n  \
                 stream.replicas: \"3\"\n  stream.maxAge: PT1H\n  stream.maxBytes: \"1048576\"\n  \
                 stream.storage: memory\n",
            ));
            let b = &c.topology.brokers[&BrokerKey::new("default", "nb")];
            assert_eq!(b.class, "NatsJetStream");
            assert_eq!(
                nats_backend(&c),
                NatsBrokerConfig {
                    servers:
                        "nats://n1:4222,tls://n2.example:4443,n3:4222,nats://[::1]:4222,NATS://n4"
                            .into(),
                    stream: "KNATIVE_BROKER_default_nb".into(),
                    subject: "knative.broker.default.nb".into(),
                    replicas: 3,
                    max_age: Some(Duration::from_secs(3600)),
                    max_bytes: Some(1_048_576),
                    storage: NatsStorage::Memory,
                }
            );
            assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        }

        #[test]
        fn nats_broker_defaults_and_durations() {
            let n = nats_backend(&ok(&nats_broker("  servers: \"127.0.0.1:4222\"\n")));
            assert_eq!(
                (n.replicas, n.max_age, n.max_bytes, n.storage),
                (1, None, None, NatsStorage::File)
            );
            for (text, secs) in [
                ("1h", 3600),
                ("30m", 1800),
                ("10s", 10),
                ("1h30m", 5400),
                ("PT10S", 10),
                ("P1D", 86_400),
            ] {
                let n = nats_backend(&ok(&nats_broker(&format!(
                    "  servers: n:4222\n  stream.maxAge: \"{text}\"\n  stream.storage: file\n"
                ))));
                assert_eq!(n.max_age, Some(Duration::from_secs(secs)), "{text}");
                assert_eq!(n.storage, NatsStorage::File);
            }
        }

        #[test]
        fn nats_stream_and_subject_names_are_sanitized() {
            assert_eq!(nats_broker_stream("ns", "b"), "KNATIVE_BROKER_ns_b");
            assert_eq!(nats_broker_subject("ns", "b"), "knative.broker.ns.b");
            assert_eq!(
                nats_broker_stream("a.b", "c*d> e/f\\g"),
                "KNATIVE_BROKER_a_b_c_d__e_f_g"
            );
            assert_eq!(
                nats_broker_subject("a.b", "c*d> e"),
                "knative.broker.a_b.c_d__e"
            );
            assert!(crate::config::is_valid_nats_subject(
                &nats_broker_subject("x.y.z", ">"),
                false
            ));
            assert!(crate::config::is_valid_nats_name(&nats_broker_stream(
                "x.y", "a b"
            )));
        }

        #[test]
        fn nats_broker_config_errors() {
            let cases: &[(&str, &str, &str)] = &[
                (
                    "  other: x\n",
                    "data.servers",
                    "required by NATS JetStream broker default/nb",
                ),
                (
                    "  servers: \" \"\n",
                    "data.servers",
                    "required by NATS JetStream broker",
                ),
                (
                    "  servers: \"n1\"\n",
                    "data.servers",
                    "\"n1\" is not a valid NATS server: missing \":port\"",
                ),
                (
                    "  servers: \"nats://n1:4222,\"\n",
                    "data.servers",
                    "has an empty entry",
                ),
                (
                    "  servers: \"http://n1:4222\"\n",
                    "data.servers",
                    "unsupported scheme",
                ),
                (
                    "  servers: \"nats://user:pw@n1:4222\"\n",
                    "data.servers",
                    "credentials in server URLs are not supported",
                ),
                (
                    "  servers: \"nats://n1:99999\"\n",
                    "data.servers",
                    "port \"99999\" must be an integer from 1 to 65535",
                ),
                (
                    "  servers: n:1\n  stream.replicas: \"6\"\n",
                    "data.stream.replicas",
                    "must be an integer from 1 to 5, got \"6\"",
                ),
                (
                    "  servers: n:1\n  stream.replicas: \"0\"\n",
                    "data.stream.replicas",
                    "must be an integer from 1 to 5",
                ),
                (
                    "  servers: n:1\n  stream.maxAge: \"1d\"\n",
                    "data.stream.maxAge",
                    "must be a positive duration",
                ),
                (
                    "  servers: n:1\n  stream.maxAge: \"0s\"\n",
                    "data.stream.maxAge",
                    "must be a positive duration",
                ),
                (
                    "  servers: n:1\n  stream.maxAge: \"PTXS\"\n",
                    "data.stream.maxAge",
                    "must be a positive duration",
                ),
                (
                    "  servers: n:1\n  stream.maxBytes: \"0\"\n",
                    "data.stream.maxBytes",
                    "must be a positive integer (bytes), got \"0\"",
                ),
                (
                    "  servers: n:1\n  stream.maxBytes: \"1GB\"\n",
                    "data.stream.maxBytes",
                    "must be a positive integer",
                ),
                (
                    "  servers: n:1\n  stream.storage: disk\n",
                    "data.stream.storage",
                    "must be \"file\" (the default) or \"memory\", got \"disk\"",
                ),
            ];
            for (data, path, message) in cases {
                assert_err(&nats_broker(data), path, message);
            }
            // Every problem of the ConfigMap is reported, at the ConfigMap (doc 1).
            let e = load(&[(
                "c.yaml",
                &nats_broker("  servers: x\n  stream.replicas: a\n  stream.storage: b\n"),
            )])
            .expect_err("invalid");
            assert_eq!(e.0.len(), 3, "{e}");
            assert!(e.0.iter().all(|e| e.doc == 1), "{e}");
            // spec.config is required.
            assert_err(
                "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: nb\n  \
                 annotations: {eventing.knative.dev/broker.class: NatsJetStream}\n",
                "spec.config",
                "required for broker class NatsJetStream",
            );
        }

        const SOURCE_BROKER: &str =
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: default\n---\n";
        const NATS_SINK: &str = "apiVersion: sources.switchyard.dev/v1alpha1\nkind: NatsSink\n\
            metadata: {name: audit}\nspec: {servers: 'nats://n:4222', subject: audit.all}\n";

        fn nats_sink(spec: &str) -> String {
            format!(
                "apiVersion: sources.switchyard.dev/v1alpha1\nkind: NatsSink\nmetadata: {{name: s}}\n{spec}"
            )
        }

        fn nats_source(spec: &str) -> String {
            format!(
                "{SOURCE_BROKER}apiVersion: sources.switchyard.dev/v1alpha1\nkind: NatsSource\n\
                 metadata: {{name: src}}\n{spec}"
            )
        }

        #[test]
        fn nats_sink_documents() {
            let c = ok(&format!(
                "{NATS_SINK}---\napiVersion: sources.switchyard.dev/v1alpha1\nkind: NatsSink\n\
                 metadata: {{name: s2, namespace: team}}\nspec:\n  subject: a.b.c\n  jetstream: true\n  \
                 contentMode: structured\n  servers: ['nats://a:1,b:2', ' tls://c:3']\n"
            ));
            assert_eq!(
                *c.topology.nats_sinks[&ObjectKey::new("default", "audit")],
                NatsSinkConfig {
                    key: ObjectKey::new("default", "audit"),
                    servers: "nats://n:4222".into(),
                    subject: "audit.all".into(),
                    jetstream: false,
                    content_mode: ContentMode::Binary,
                }
            );
            let s2 = &c.topology.nats_sinks[&ObjectKey::new("team", "s2")];
            assert_eq!(s2.servers, "nats://a:1,b:2,tls://c:3");
            assert_eq!(s2.subject, "a.b.c");
            assert!(s2.jetstream);
            assert_eq!(s2.content_mode, ContentMode::Structured);
            assert!(c.warnings.is_empty(), "{:?}", c.warnings);

            let cases: &[(&str, &str, &str)] = &[
                ("", "spec", "required (servers and subject)"),
                (
                    "spec: {subject: a}",
                    "spec.servers",
                    "required (a list of NATS servers",
                ),
                (
                    "spec: {servers: [], subject: a}",
                    "spec.servers",
                    "must contain at least one server",
                ),
                (
                    "spec: {servers: 4222, subject: a}",
                    "spec.servers",
                    "got a number",
                ),
                (
                    "spec: {servers: ['n:1', 'n2'], subject: a}",
                    "spec.servers[1]",
                    "\"n2\" is not a valid NATS server",
                ),
                (
                    "spec: {servers: [5], subject: a}",
                    "spec.servers[0]",
                    "must be a string",
                ),
                (
                    "spec: {servers: 'n:1'}",
                    "spec.subject",
                    "required (a NATS subject",
                ),
                (
                    "spec: {servers: 'n:1', subject: 'a.*'}",
                    "spec.subject",
                    "no wildcards",
                ),
                (
                    "spec: {servers: 'n:1', subject: 'a.>'}",
                    "spec.subject",
                    "no wildcards",
                ),
                (
                    "spec: {servers: 'n:1', subject: 'a..b'}",
                    "spec.subject",
                    "is not a valid NATS subject",
                ),
                (
                    "spec: {servers: 'n:1', subject: 'a b'}",
                    "spec.subject",
                    "is not a valid NATS subject",
                ),
                (
                    "spec: {servers: 'n:1', subject: '.a'}",
                    "spec.subject",
                    "is not a valid NATS subject",
                ),
                (
                    "spec: {servers: 'n:1', subject: 'a', jetstream: 'yes'}",
                    "spec.jetstream",
                    "must be a boolean",
                ),
                (
                    "spec: {servers: 'n:1', subject: a, contentMode: json}",
                    "spec.contentMode",
                    "must be \"binary\" (the default) or \"structured\", got \"json\"",
                ),
                (
                    "spec: {servers: 'n:1', subject: a, topic: t}",
                    "spec",
                    "unknown field \"topic\"; allowed: servers, subject, jetstream, contentMode",
                ),
            ];
            for (spec, path, message) in cases {
                assert_err(&nats_sink(spec), path, message);
            }
            let e = load(&[("a.yaml", NATS_SINK), ("b.yaml", NATS_SINK)]).expect_err("duplicate");
            assert_eq!(
                e.to_string(),
                "b.yaml doc 1: metadata.name: duplicate NatsSink default/audit (first defined at a.yaml doc 1)"
            );
        }

        #[test]
        fn trigger_subscriber_nats_sink_ref() {
            let av = "apiVersion: sources.switchyard.dev/v1alpha1";
            let trigger = |subscriber: &str| {
                format!(
                    "{SOURCE_BROKER}{NATS_SINK}---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\n\
                     metadata: {{name: t}}\nspec:\n  broker: default\n  subscriber:\n{subscriber}"
                )
            };
            let c = ok(&trigger(&format!(
                "    ref: {{{av}, kind: NatsSink, name: audit}}\n"
            )));
            assert_eq!(
                c.topology.triggers[&TriggerKey::new("default", "t")].subscriber,
                DestinationConfig::NatsSink(ObjectKey::new("default", "audit"))
            );
            let c = ok(&trigger(&format!(
                "    ref: {{{av}, kind: NatsSink, name: audit, namespace: default}}\n"
            )));
            assert_eq!(c.topology.triggers.len(), 1);
            assert_err(
                &trigger(&format!(
                    "    ref: {{{av}, kind: NatsSink, name: missing}}\n"
                )),
                "spec.subscriber.ref",
                "NatsSink default/missing is not defined in the configuration",
            );
            assert_err(
                &trigger(&format!(
                    "    ref: {{{av}, kind: NatsSink, name: audit, namespace: other}}\n"
                )),
                "spec.subscriber.ref.namespace",
                "a NatsSink subscriber must be in the trigger's namespace \"default\"",
            );
            assert_err(
                &trigger("    ref: {apiVersion: eventing.knative.dev/v1alpha1, kind: NatsSink, name: audit}\n"),
                "spec.subscriber.ref.apiVersion",
                "a NatsSink has apiVersion \"sources.switchyard.dev/v1alpha1\"",
            );
            assert_err(
                &trigger("    ref: {kind: NatsSink, name: audit}\n    uri: http://x\n"),
                "spec.subscriber",
                "set either uri or ref, not both",
            );
            assert_err(
                &trigger(&format!(
                    "    uri: http://x\n  delivery:\n    deadLetterSink:\n      ref: {{{av}, kind: NatsSink, name: audit}}\n"
                )),
                "spec.delivery.deadLetterSink.ref",
                "a NatsSink ref is supported only as a trigger subscriber; use uri",
            );
        }

        #[test]
        fn nats_source_documents() {
            let c = ok(&nats_source(
                "spec:\n  servers: nats://n:4222\n  subject: 'orders.*.created'\n  queueGroup: workers\n  \
                 sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}\n",
            ));
            assert_eq!(
                *c.topology.nats_sources[&ObjectKey::new("default", "src")],
                NatsSourceConfig {
                    key: ObjectKey::new("default", "src"),
                    servers: "nats://n:4222".into(),
                    subject: "orders.*.created".into(),
                    queue_group: Some("workers".into()),
                    jetstream: None,
                    sink: SourceSinkConfig::Broker(BrokerKey::new("default", "default")),
                }
            );
            let c = ok(&nats_source(
                "spec:\n  servers: [n:4222]\n  subject: '>'\n  jetstream: {stream: ORDERS, durable: sy-1}\n  \
                 sink: {uri: 'http://x/y'}\n",
            ));
            let s = &c.topology.nats_sources[&ObjectKey::new("default", "src")];
            assert_eq!(
                s.jetstream,
                Some(NatsSourceJetStreamConfig {
                    stream: "ORDERS".into(),
                    durable: "sy-1".into()
                })
            );
            assert_eq!(s.queue_group, None);
            assert_eq!(s.sink, SourceSinkConfig::Url("http://x/y".into()));

            let sink = "  sink: {uri: 'http://x'}\n";
            let cases: Vec<(String, &str, &str)> = vec![
                (String::new(), "spec", "required (servers, subject and sink)"),
                (format!("spec:\n  subject: a\n{sink}"), "spec.servers", "required"),
                (format!("spec:\n  servers: n:1\n{sink}"), "spec.subject", "required"),
                (
                    format!("spec:\n  servers: n:1\n  subject: 'a.>.b'\n{sink}"),
                    "spec.subject",
                    "the last token may be '>'",
                ),
                (
                    format!("spec:\n  servers: n:1\n  subject: 'a.b*'\n{sink}"),
                    "spec.subject",
                    "is not a valid NATS subject",
                ),
                (
                    format!("spec:\n  servers: n:1\n  subject: a\n  queueGroup: 'a b'\n{sink}"),
                    "spec.queueGroup",
                    "is not a valid queue group",
                ),
                (
                    format!("spec:\n  servers: n:1\n  subject: a\n  queueGroup: ''\n{sink}"),
                    "spec.queueGroup",
                    "is not a valid queue group",
                ),
                (
                    format!("spec:\n  servers: n:1\n  subject: a\n  jetstream: {{stream: S}}\n{sink}"),
                    "spec.jetstream.durable",
                    "required (the durable consumer name)",
                ),
                (
                    format!("spec:\n  servers: n:1\n  subject: a\n  jetstream: {{durable: d}}\n{sink}"),
                    "spec.jetstream.stream",
                    "required (the stream name)",
                ),
                (
                    format!("spec:\n  servers: n:1\n  subject: a\n  jetstream: {{stream: a.b, durable: d}}\n{sink}"),
                    "spec.jetstream.stream",
                    "is not a valid stream name",
                ),
                (
                    format!("spec:\n  servers: n:1\n  subject: a\n  jetstream: {{stream: S, durable: 'd d'}}\n{sink}"),
                    "spec.jetstream.durable",
                    "is not a valid durable consumer name",
                ),
                (
                    format!("spec:\n  servers: n:1\n  subject: a\n  jetstream: true\n{sink}"),
                    "spec.jetstream",
                    "must be an object, got a boolean",
                ),
                (
                    format!("spec:\n  servers: n:1\n  subject: a\n  jetstream: {{stream: S, durable: d, ack: x}}\n{sink}"),
                    "spec.jetstream",
                    "unknown field \"ack\"; allowed: stream, durable",
                ),
                (
                    format!("spec:\n  servers: n:1\n  subject: a\n  queueGroup: q\n  jetstream: {{stream: S, durable: d}}\n{sink}"),
                    "spec.queueGroup",
                    "a queue group applies to core NATS only",
                ),
                ("spec:\n  servers: n:1\n  subject: a\n".to_owned(), "spec.sink", "required: ref (a Broker) or uri"),
                (
                    "spec:\n  servers: n:1\n  subject: a\n  sink: {uri: 'ftp://x'}\n".to_owned(),
                    "spec.sink.uri",
                    "must be an absolute http or https URL",
                ),
                (
                    "spec:\n  servers: n:1\n  subject: a\n  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: nope}}\n".to_owned(),
                    "spec.sink.ref",
                    "Broker default/nope is not defined in the configuration",
                ),
                (
                    "spec:\n  servers: n:1\n  subject: a\n  sink: {ref: {apiVersion: v1, kind: Service, name: x}}\n".to_owned(),
                    "spec.sink.ref.kind",
                    "only Broker refs are resolved in standalone mode",
                ),
                (
                    format!("spec:\n  servers: n:1\n  subject: a\n  topics: [a]\n{sink}"),
                    "spec",
                    "unknown field \"topics\"; allowed: servers, subject, queueGroup, jetstream, sink",
                ),
            ];
            for (spec, path, message) in &cases {
                assert_err(&nats_source(spec), path, message);
            }
            let one = nats_source(&format!("spec:\n  servers: n:1\n  subject: a\n{sink}"));
            let second = one.replace(SOURCE_BROKER, "");
            let e = load(&[("a.yaml", &one), ("b.yaml", &second)]).expect_err("duplicate source");
            assert_eq!(
                e.to_string(),
                "b.yaml doc 1: metadata.name: duplicate NatsSource default/src (first defined at a.yaml doc 2)"
            );
        }

        #[test]
        fn nats_example_is_a_valid_config() {
            let c = ok(include_str!("../../../examples/nats.yaml"));
            assert!(c.warnings.is_empty(), "{:?}", c.warnings);
            let key = BrokerKey::new("default", "orders");
            assert_eq!(
                backend_of(&c, "default", "orders"),
                Backend::NatsJetStream(NatsBrokerConfig {
                    servers: "nats://127.0.0.1:4222".into(),
                    stream: "KNATIVE_BROKER_default_orders".into(),
                    subject: "knative.broker.default.orders".into(),
                    replicas: 1,
                    max_age: Some(Duration::from_secs(86_400)),
                    max_bytes: Some(1_073_741_824),
                    storage: NatsStorage::File,
                })
            );
            let audit = &c.topology.triggers[&TriggerKey::new("default", "audit")];
            assert_eq!(
                audit.subscriber,
                DestinationConfig::NatsSink(ObjectKey::new("default", "audit"))
            );
            let sink = &c.topology.nats_sinks[&ObjectKey::new("default", "audit")];
            assert_eq!(
                (sink.subject.as_str(), sink.jetstream, sink.content_mode),
                ("audit.orders", true, ContentMode::Structured)
            );
            let sensors = &c.topology.nats_sources[&ObjectKey::new("default", "sensors")];
            assert_eq!(sensors.sink, SourceSinkConfig::Broker(key));
            assert_eq!(sensors.subject, "sensors.>");
            assert_eq!(sensors.queue_group.as_deref(), Some("switchyard"));
            let payments = &c.topology.nats_sources[&ObjectKey::new("default", "payments")];
            assert_eq!(
                payments
                    .jetstream
                    .as_ref()
                    .map(|j| (j.stream.as_str(), j.durable.as_str())),
                Some(("PAYMENTS", "switchyard"))
            );
            assert_eq!(
                payments.sink,
                SourceSinkConfig::Url("http://127.0.0.1:8081/payments".into())
            );
        }
    }

    /// Each object as its own manifest, as the Kubernetes data plane feeds them.
    fn objects(docs: &[(&str, &str)]) -> Vec<Manifest> {
        docs.iter()
            .map(|(name, text)| {
                let value = serde_yaml::from_str(text).expect("a YAML document");
                Manifest::new(*name, value)
            })
            .collect()
    }

    #[test]
    fn manifests_load_like_the_same_text() {
        let text = trigger_with("");
        let from_text = ok(&text);
        let docs: Vec<(String, String)> = text
            .split("---\n")
            .enumerate()
            .map(|(i, d)| (format!("o{i}"), d.to_owned()))
            .collect();
        let docs: Vec<(&str, &str)> = docs.iter().map(|(n, d)| (n.as_str(), d.as_str())).collect();
        let loaded = load_manifests(&objects(&docs)).expect("valid");
        assert_eq!(
            loaded.topology.triggers.keys().collect::<Vec<_>>(),
            from_text.topology.triggers.keys().collect::<Vec<_>>()
        );
        assert_eq!(loaded.topology.brokers, from_text.topology.brokers);
        // Strict: a bad manifest fails the whole load, naming it.
        let bad = "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: t2}\n\
                   spec: {broker: default, subscriber: {uri: 'not a url'}}\n";
        let mut docs = docs;
        docs.push(("Trigger default/t2", bad));
        let e = load_manifests(&objects(&docs)).expect_err("invalid");
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].file, "Trigger default/t2");
        assert_eq!(e.0[0].path, "spec.subscriber.uri");
    }

    #[test]
    fn tolerant_load_leaves_out_bad_objects_and_their_dependents_in_one_pass() {
        let kafka_cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kcfg}\n\
                        data: {bootstrap.servers: 'k1:0'}\n";
        let kafka_broker =
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: kb\n  \
                            annotations: {eventing.knative.dev/broker.class: Kafka}\n\
                            spec: {config: {apiVersion: v1, kind: ConfigMap, name: kcfg}}\n";
        let kb_trigger =
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: on-kb}\n\
                          spec: {broker: kb, subscriber: {uri: 'http://x'}}\n";
        let kb_source = "apiVersion: sources.knative.dev/v1beta1\nkind: KafkaSource\nmetadata: {name: src}\n\
                         spec: {bootstrapServers: ['k:9092'], topics: [t], sink: {ref: {apiVersion: \
                         eventing.knative.dev/v1, kind: Broker, name: kb}}}\n";
        let bad_sink =
            "apiVersion: eventing.knative.dev/v1alpha1\nkind: KafkaSink\nmetadata: {name: audit}\n\
                        spec: {topic: 'bad topic', bootstrapServers: ['k:9092']}\n";
        let sink_trigger =
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: to-sink}\n\
                            spec: {broker: default, subscriber: {ref: {apiVersion: \
                            eventing.knative.dev/v1alpha1, kind: KafkaSink, name: audit}}}\n";
        let good_trigger =
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: good}\n\
                            spec: {broker: default, subscriber: {uri: 'http://x'}}\n";
        let docs = [
            ("Broker default/default", BROKER),
            ("ConfigMap default/kcfg", kafka_cm),
            ("Broker default/kb", kafka_broker),
            ("Trigger default/on-kb", kb_trigger),
            ("KafkaSource default/src", kb_source),
            ("KafkaSink default/audit", bad_sink),
            ("Trigger default/to-sink", sink_trigger),
            ("Trigger default/good", good_trigger),
        ];
        let loaded = load_tolerant(&objects(&docs));
        let t = &loaded.topology;
        assert_eq!(
            t.brokers.keys().collect::<Vec<_>>(),
            [&BrokerKey::new("default", "default")]
        );
        // A trigger whose broker is left out stays (it routes nothing), as in a file without the broker.
        assert_eq!(
            t.triggers.keys().collect::<Vec<_>>(),
            [
                &TriggerKey::new("default", "good"),
                &TriggerKey::new("default", "on-kb")
            ]
        );
        assert!(t.kafka_sinks.is_empty() && t.kafka_sources.is_empty());
        let named: Vec<(&str, &str)> = loaded
            .errors
            .iter()
            .map(|e| (e.file.as_str(), e.path.as_str()))
            .collect();
        assert_eq!(
            named,
            [
                ("KafkaSink default/audit", "spec.topic"),
                ("ConfigMap default/kcfg", "data.bootstrap.servers"),
                ("Broker default/kb", "spec.config"),
                ("Trigger default/to-sink", "spec.subscriber.ref"),
                ("KafkaSource default/src", "spec.sink.ref"),
            ]
        );
        // The same objects loaded strictly: the same problems of the objects themselves, nothing applied.
        let strict = load_manifests(&objects(&docs)).expect_err("invalid");
        assert!(strict.0.iter().all(|e| e.path != "spec.config"), "{strict}");
    }

    #[test]
    fn typed_objects_load_like_their_yaml() {
        use crate::model::eventing::{BrokerSpec, Destination, TriggerFilter, TriggerSpec};
        use crate::model::object::{Object, ObjectMeta, Resource};
        let meta = |name: &str| ObjectMeta {
            name: name.into(),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        };
        let broker = Object::Broker(Resource {
            api_version: "eventing.knative.dev/v1".into(),
            kind: "Broker".into(),
            metadata: meta("default"),
            spec: BrokerSpec::default(),
        });
        let trigger = Object::Trigger(Resource {
            api_version: "eventing.knative.dev/v1".into(),
            kind: "Trigger".into(),
            metadata: meta("t"),
            spec: TriggerSpec {
                broker: "default".into(),
                filter: Some(TriggerFilter {
                    attributes: Some([("type".to_owned(), "a".to_owned())].into()),
                }),
                subscriber: Destination {
                    uri: Some("http://sink.example/path".into()),
                    ..Destination::default()
                },
                ..TriggerSpec::default()
            },
        });
        let manifests: Vec<Manifest> = [
            ("Broker default/default", &broker),
            ("Trigger default/t", &trigger),
        ]
        .into_iter()
        .map(|(name, o)| Manifest::from_object(name, o).expect("representable"))
        .collect();
        let typed = load_manifests(&manifests).expect("valid");
        let text = ok(&trigger_with("  filter:\n    attributes: {type: a}\n"));
        assert_eq!(typed.topology.brokers, text.topology.brokers);
        let (a, b) = (only_trigger(&typed), only_trigger(&text));
        assert_eq!(
            (&a.key, &a.broker, &a.filter, &a.subscriber),
            (&b.key, &b.broker, &b.filter, &b.subscriber)
        );
    }
}
