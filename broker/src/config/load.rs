//! Loading manifests from files, directories or in-memory sources into a validated [`Topology`].
//!
//! Every problem is collected (not only the first) and reported as `{file} doc {doc}: {path}: {message}`.
//! Cross-document checks (duplicate names, `spec.config` references, triggers whose broker is missing) run
//! after all documents are decoded.

use super::manifest::{decode_document, Ctx, Document};
use super::{BrokerKey, BrokerSpec, Topology, TriggerKey, TriggerSpec};
use serde::Deserialize as _;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;

/// One config problem: file (as given by the user, or the file inside a given directory), 1-based document
/// index in a multi-document YAML, field path, message. Display is exactly
/// `{file} doc {doc}: {path}: {message}`, e.g.
/// `triggers.yaml doc 2: spec.filter.attributes: key "Type" must match ^[a-z][a-z0-9]*$`
///
/// Problems that are not about one document (a file that cannot be read) have `doc` 0 and path `(file)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file} doc {doc}: {path}: {message}")]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// 1-based index of the YAML document in the file.
    pub doc: usize,
    /// Field path inside the document (`spec.delivery.backoffDelay`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// All problems found (report them all, not just the first). Display: one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

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

/// Where a decoded object came from, for cross-document messages.
struct Origin {
    file: usize,
    doc: usize,
}

/// A decoded Broker whose `spec.config` reference (namespace, name) is not resolved yet.
struct PendingBroker {
    origin: Origin,
    spec: BrokerSpec,
    config_ref: Option<(String, String)>,
}

/// Same from in-memory sources (name, text) — for tests and the future Kubernetes mode.
pub fn load_sources(sources: &[(String, String)]) -> Result<LoadedConfig, ConfigErrors> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut brokers: Vec<PendingBroker> = Vec::new();
    let mut triggers: Vec<(Origin, TriggerSpec)> = Vec::new();
    let mut configmaps: HashMap<(String, String), BTreeMap<String, String>> = HashMap::new();

    for (file_idx, (name, text)) in sources.iter().enumerate() {
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let doc_no = i + 1;
            let mut ctx = Ctx {
                file: name,
                doc: doc_no,
                errors: &mut errors,
            };
            let value = match serde_yaml::Value::deserialize(doc) {
                Ok(v) => v,
                Err(e) => {
                    ctx.err("(yaml)", format!("invalid YAML: {e}"));
                    // The parser cannot resynchronise after a syntax error.
                    break;
                }
            };
            if value.is_null() {
                continue;
            }
            let origin = Origin {
                file: file_idx,
                doc: doc_no,
            };
            match decode_document(&mut ctx, &value) {
                None => {}
                Some(Document::Skipped(w)) => warnings.push(format!("{name} doc {doc_no}: {w}")),
                Some(Document::Broker { spec, config_ref }) => brokers.push(PendingBroker {
                    origin,
                    spec,
                    config_ref,
                }),
                Some(Document::Trigger(t)) => triggers.push((origin, t)),
                Some(Document::ConfigMap { key, data }) => match configmaps.entry(key) {
                    Entry::Occupied(e) => {
                        let (ns, name) = e.key();
                        ctx.err("metadata.name", format!("duplicate ConfigMap {ns}/{name}"));
                    }
                    Entry::Vacant(e) => {
                        e.insert(data);
                    }
                },
            }
        }
    }

    let err_at = |errors: &mut Vec<ConfigError>, o: &Origin, path: &str, message: String| {
        errors.push(ConfigError {
            file: sources[o.file].0.clone(),
            doc: o.doc,
            path: path.to_owned(),
            message,
        });
    };
    let place = |o: &Origin| format!("{} doc {}", sources[o.file].0, o.doc);

    let mut seen_brokers: HashMap<BrokerKey, Origin> = HashMap::new();
    let mut broker_specs = Vec::with_capacity(brokers.len());
    for PendingBroker {
        origin,
        mut spec,
        config_ref,
    } in brokers
    {
        if let Some((ns, name)) = config_ref {
            match configmaps.get(&(ns.clone(), name.clone())) {
                Some(data) => spec.config = data.clone(),
                None => err_at(
                    &mut errors,
                    &origin,
                    "spec.config",
                    format!("ConfigMap {ns}/{name} is not defined in the configuration"),
                ),
            }
        }
        if let Some(first) = seen_brokers.get(&spec.key) {
            let msg = format!(
                "duplicate Broker {} (first defined at {})",
                spec.key,
                place(first)
            );
            err_at(&mut errors, &origin, "metadata.name", msg);
            continue;
        }
        seen_brokers.insert(spec.key.clone(), origin);
        broker_specs.push(spec);
    }

    let mut seen_triggers: HashMap<TriggerKey, Origin> = HashMap::new();
    let mut trigger_specs = Vec::with_capacity(triggers.len());
    for (origin, t) in triggers {
        if let Some(first) = seen_triggers.get(&t.key) {
            let msg = format!(
                "duplicate Trigger {} (first defined at {})",
                t.key,
                place(first)
            );
            err_at(&mut errors, &origin, "metadata.name", msg);
            continue;
        }
        if !seen_brokers.contains_key(&t.broker) {
            warnings.push(format!(
                "{}: trigger {} refers to broker {}, which is not defined; it routes nothing until \
                 the broker exists",
                place(&origin),
                t.key,
                t.broker
            ));
        }
        seen_triggers.insert(t.key.clone(), origin);
        trigger_specs.push(t);
    }

    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(LoadedConfig {
        topology: Topology::new(broker_specs, trigger_specs),
        warnings,
        files: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{BackoffPolicy, DeliverySpec, Format, RetryPolicy};
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

    fn only_trigger(c: &LoadedConfig) -> &TriggerSpec {
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
            crate::config::Destination::Url("http://sink.example/path".into())
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
            Some(DeliverySpec {
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
    fn broker_class_and_config_errors() {
        let broker = |meta_extra: &str, spec: &str| {
            format!("apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: b\n{meta_extra}{spec}")
        };
        assert_eq!(
            errs(&broker(
                "  annotations:\n    eventing.knative.dev/broker.class: Kafka\n",
                ""
            )),
            vec!["c.yaml doc 1: metadata.annotations: broker class \"Kafka\" is not supported in standalone mode"]
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
}
