//! The CRDs in `deploy/crds/` describe exactly what the manifest decoder accepts: the `spec` property
//! names of each schema equal the decoder's field lists (no drift in either direction), the required
//! fields are the ones the decoder requires, and the group/version/kind match the decoder's apiVersion.

use serde_yaml::Value;
use std::collections::BTreeSet;
use switchyard_broker::config::load::load_sources;
use switchyard_broker::config::manifest::{
    NATS_API_VERSION, NATS_SINK_SPEC_FIELDS, NATS_SOURCE_JETSTREAM_FIELDS, NATS_SOURCE_SPEC_FIELDS,
    SOURCE_SINK_FIELDS,
};

fn crd(file: &str) -> Value {
    let path = format!("{}/../deploy/crds/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn at<'v>(v: &'v Value, path: &[&str]) -> &'v Value {
    path.iter().fold(v, |v, k| match v.get(*k) {
        Some(next) => next,
        None => panic!("missing {k:?} (path {path:?})"),
    })
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_mapping()
        .expect("an object")
        .keys()
        .map(|k| k.as_str().expect("string keys").to_owned())
        .collect()
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_sequence()
        .expect("a list")
        .iter()
        .map(|s| s.as_str().expect("strings").to_owned())
        .collect()
}

fn set(fields: &[&str]) -> BTreeSet<String> {
    fields.iter().map(|f| (*f).to_owned()).collect()
}

/// The one version's schema, after checking the CRD's identity and shape.
fn checked_version<'v>(crd: &'v Value, kind: &str, plural: &str) -> &'v Value {
    let (group, version) = NATS_API_VERSION.split_once('/').expect("group/version");
    assert_eq!(
        at(crd, &["apiVersion"]).as_str(),
        Some("apiextensions.k8s.io/v1")
    );
    assert_eq!(
        at(crd, &["kind"]).as_str(),
        Some("CustomResourceDefinition")
    );
    assert_eq!(
        at(crd, &["metadata", "name"]).as_str(),
        Some(format!("{plural}.{group}").as_str())
    );
    assert_eq!(at(crd, &["spec", "group"]).as_str(), Some(group));
    assert_eq!(at(crd, &["spec", "scope"]).as_str(), Some("Namespaced"));
    assert_eq!(at(crd, &["spec", "names", "kind"]).as_str(), Some(kind));
    assert_eq!(at(crd, &["spec", "names", "plural"]).as_str(), Some(plural));
    let versions = at(crd, &["spec", "versions"])
        .as_sequence()
        .expect("a list");
    assert_eq!(versions.len(), 1);
    let v = &versions[0];
    assert_eq!(at(v, &["name"]).as_str(), Some(version));
    assert_eq!(at(v, &["served"]).as_bool(), Some(true));
    assert_eq!(at(v, &["storage"]).as_bool(), Some(true));
    assert!(at(v, &["subresources", "status"]).is_mapping());
    let schema = at(v, &["schema", "openAPIV3Schema"]);
    // apiVersion, kind and metadata are implicit in every Kubernetes object (the generated schemas leave
    // them out); spec and status are the kind's own.
    let top = keys(at(schema, &["properties"]));
    assert!(
        top.is_superset(&set(&["spec", "status"]))
            && top.is_subset(&set(&["apiVersion", "kind", "metadata", "spec", "status"])),
        "{top:?}"
    );
    schema
}

#[test]
fn nats_sink_crd_matches_the_decoder() {
    let crd = crd("natssinks.sources.switchyard.dev.yaml");
    let schema = checked_version(&crd, "NatsSink", "natssinks");
    let spec = at(schema, &["properties", "spec"]);
    assert_eq!(keys(at(spec, &["properties"])), set(&NATS_SINK_SPEC_FIELDS));
    assert_eq!(
        strings(at(spec, &["required"])),
        set(&["servers", "subject"])
    );
    assert_eq!(
        strings(at(spec, &["properties", "contentMode", "enum"])),
        set(&["binary", "structured"])
    );
}

#[test]
fn nats_source_crd_matches_the_decoder() {
    let crd = crd("natssources.sources.switchyard.dev.yaml");
    let schema = checked_version(&crd, "NatsSource", "natssources");
    let spec = at(schema, &["properties", "spec"]);
    assert_eq!(
        keys(at(spec, &["properties"])),
        set(&NATS_SOURCE_SPEC_FIELDS)
    );
    assert_eq!(
        strings(at(spec, &["required"])),
        set(&["servers", "subject", "sink"])
    );
    let js = at(spec, &["properties", "jetstream"]);
    assert_eq!(
        keys(at(js, &["properties"])),
        set(&NATS_SOURCE_JETSTREAM_FIELDS)
    );
    assert_eq!(
        strings(at(js, &["required"])),
        set(&NATS_SOURCE_JETSTREAM_FIELDS)
    );
    let sink = at(spec, &["properties", "sink"]);
    assert_eq!(keys(at(sink, &["properties"])), set(&SOURCE_SINK_FIELDS));
    assert_eq!(
        keys(at(sink, &["properties", "ref", "properties"])),
        set(&["apiVersion", "kind", "name", "namespace"])
    );
}

/// A manifest that uses every field of both schemas is accepted by the decoder.
#[test]
fn a_manifest_using_every_crd_field_loads() {
    let text = "\
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
---
apiVersion: sources.switchyard.dev/v1alpha1
kind: NatsSink
metadata: {name: sink}
spec: {servers: [nats://n:4222], subject: a.b, jetstream: true, contentMode: structured}
---
apiVersion: sources.switchyard.dev/v1alpha1
kind: NatsSource
metadata: {name: core}
spec:
  servers: nats://n:4222
  subject: a.*
  queueGroup: q
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default, namespace: default}}
---
apiVersion: sources.switchyard.dev/v1alpha1
kind: NatsSource
metadata: {name: js}
spec:
  servers: nats://n:4222
  subject: a.>
  jetstream: {stream: S, durable: d}
  sink: {uri: 'http://x/'}
";
    let c = load_sources(&[("all.yaml".to_owned(), text.to_owned())]).expect("valid");
    assert_eq!(c.topology.nats_sinks.len(), 1);
    assert_eq!(c.topology.nats_sources.len(), 2);
}
