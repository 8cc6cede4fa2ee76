//! Cluster objects → the manifests Switchyard's config loader reads (pure functions).
//!
//! Kubernetes mode reuses the standalone loader ([`load_manifests`], fed values, not YAML text) for validation and for building the
//! data plane's topology, so a Broker or Trigger means exactly the same thing in a file and in a cluster.
//! The translation keeps `apiVersion`, `kind`, name, namespace, labels, annotations and `spec`, maps the
//! installation's broker class to [`SWITCHYARD_BROKER_CLASS`], and replaces destinations by the URIs the
//! controller resolved (`ref`s exist only in a cluster).

use crate::crd::{Broker, DeliverySpec, Destination, KReference, Trigger};
use crate::crd_sources::SourceOrSink;
use crate::Settings;
use kube::ResourceExt;
use std::collections::BTreeMap;
use switchyard_broker::config::load::{load_manifests, ConfigError, Manifest};
use switchyard_broker::config::manifest::{BROKER_CLASS_ANNOTATION, EVENTING_API_VERSION};
use switchyard_broker::config::SWITCHYARD_BROKER_CLASS;
use switchyard_broker::model::eventing as model;
use switchyard_broker::model::object::{ConfigMap, Object, ObjectMeta, Resource};

/// Placeholder URL for destinations during validation (their resolution is checked separately).
pub const PLACEHOLDER_URL: &str = "http://destination.switchyard.invalid/";

/// The broker class of `b` (its annotation, or the installation's default class).
pub fn broker_class<'a>(b: &'a Broker, settings: &'a Settings) -> &'a str {
    b.annotations()
        .get(BROKER_CLASS_ANNOTATION)
        .map(String::as_str)
        .unwrap_or(&settings.default_broker_class)
}

/// Whether this installation reconciles and serves `b`.
pub fn owns_broker(b: &Broker, settings: &Settings) -> bool {
    broker_class(b, settings) == settings.broker_class
}

/// Whether the trigger's delivery sets any field (then it replaces the broker's delivery as a whole).
pub fn delivery_is_set(d: Option<&DeliverySpec>) -> bool {
    d.is_some_and(|d| *d != DeliverySpec::default())
}

fn metadata(obj: &impl ResourceExt, is_broker: bool) -> ObjectMeta {
    let mut annotations: BTreeMap<String, String> = obj.annotations().clone();
    // Knative and kubectl bookkeeping means nothing to the loader.
    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    if is_broker {
        annotations.insert(
            BROKER_CLASS_ANNOTATION.to_owned(),
            SWITCHYARD_BROKER_CLASS.to_owned(),
        );
    }
    ObjectMeta {
        name: obj.name_any(),
        namespace: Some(obj.namespace().unwrap_or_else(|| "default".into())),
        annotations,
    }
}

fn resource<S>(api_version: &str, kind: &str, metadata: ObjectMeta, spec: S) -> Resource<S> {
    Resource {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        metadata,
        spec,
    }
}

/// A destination that is this absolute `uri`.
pub fn destination_as_uri(uri: &str) -> Destination {
    Destination {
        uri: Some(uri.to_owned()),
        ..Destination::default()
    }
}

fn delivery(d: &DeliverySpec, dls_uri: Option<&str>) -> DeliverySpec {
    let mut d = d.clone();
    if d.dead_letter_sink.is_some() {
        d.dead_letter_sink = Some(destination_as_uri(dls_uri.unwrap_or(PLACEHOLDER_URL)));
    }
    d
}

/// The Broker as a standalone manifest, its dead-letter sink replaced by `dls_uri`.
pub fn broker_manifest(b: &Broker, dls_uri: Option<&str>) -> Object {
    let spec = model::BrokerSpec {
        config: b.spec.config.clone(),
        delivery: b.spec.delivery.as_ref().map(|d| delivery(d, dls_uri)),
    };
    Object::Broker(resource(
        EVENTING_API_VERSION,
        "Broker",
        metadata(b, true),
        spec,
    ))
}

/// The Trigger as a standalone manifest with the resolved subscriber and dead-letter sink URIs.
pub fn trigger_manifest(t: &Trigger, subscriber_uri: &str, dls_uri: Option<&str>) -> Object {
    trigger_manifest_with(t, destination_as_uri(subscriber_uri), dls_uri)
}

/// The `subscriber` of a Trigger whose subscriber refs a KafkaSink or NatsSink: the `ref` as is (the
/// standalone loader reads it the same way), without Knative's `group` / `address`.
pub fn sink_ref_subscriber(r: &KReference) -> Destination {
    Destination {
        reference: Some(KReference {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            namespace: r.namespace.clone(),
            ..KReference::default()
        }),
        ..Destination::default()
    }
}

/// The Trigger as a standalone manifest with this `subscriber` and the resolved dead-letter sink URI
/// (`brokerRef` is not carried: the loader reads `broker`).
pub fn trigger_manifest_with(
    t: &Trigger,
    subscriber: Destination,
    dls_uri: Option<&str>,
) -> Object {
    let spec = model::TriggerSpec {
        broker: t.spec.broker.clone(),
        broker_ref: None,
        filter: t.spec.filter.clone(),
        filters: t.spec.filters.clone(),
        subscriber,
        delivery: t.spec.delivery.as_ref().map(|d| delivery(d, dls_uri)),
    };
    Object::Trigger(resource(
        EVENTING_API_VERSION,
        "Trigger",
        metadata(t, false),
        spec,
    ))
}

/// A source's `spec.sink` for the loader: the `ref` as is when `keep_ref` (a Broker this installation
/// serves: the loader resolves it to the process's own ingress), else `uri: sink_uri` (the controller's
/// resolution; [`PLACEHOLDER_URL`] while there is none). `CACerts` / `audience` are kept, so that the
/// loader reports them as unsupported.
pub fn source_sink(dest: &Destination, keep_ref: bool, sink_uri: Option<&str>) -> Destination {
    if keep_ref {
        return dest.clone();
    }
    Destination {
        ca_certs: dest.ca_certs.clone(),
        audience: dest.audience.clone(),
        ..destination_as_uri(sink_uri.unwrap_or(PLACEHOLDER_URL))
    }
}

/// A KafkaSource, KafkaSink, NatsSource or NatsSink as a standalone manifest; a source's `spec.sink`
/// replaced by `sink` (see [`source_sink`]).
pub fn object_manifest<K: SourceOrSink>(o: &K, sink: Option<Destination>) -> Object {
    o.manifest(metadata(o, false), sink)
}

/// A minimal Broker manifest: validating a source whose sink refs a Broker needs the Broker defined.
pub fn stub_broker_manifest(namespace: &str, name: &str) -> Object {
    let metadata = ObjectMeta {
        name: name.to_owned(),
        namespace: Some(namespace.to_owned()),
        ..ObjectMeta::default()
    };
    Object::Broker(resource(
        EVENTING_API_VERSION,
        "Broker",
        metadata,
        model::BrokerSpec::default(),
    ))
}

/// A ConfigMap manifest.
pub fn configmap_manifest(namespace: &str, name: &str, data: &BTreeMap<String, String>) -> Object {
    Object::ConfigMap(ConfigMap {
        api_version: "v1".to_owned(),
        kind: "ConfigMap".to_owned(),
        metadata: ObjectMeta {
            name: name.to_owned(),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        data: data.clone(),
    })
}

/// YAML text of a manifest (for logs and tests; the loader is fed the objects themselves).
pub fn to_yaml(v: &impl serde::Serialize) -> String {
    serde_yaml::to_string(v).unwrap_or_default()
}

/// The loader's documents for these objects (name, object); an object that cannot be represented is
/// reported as its problem.
pub fn manifests(objects: &[(String, Object)]) -> (Vec<Manifest>, Vec<ConfigError>) {
    let mut out = Vec::with_capacity(objects.len());
    let mut problems = Vec::new();
    for (name, o) in objects {
        match Manifest::from_object(name.clone(), o) {
            Ok(m) => out.push(m),
            Err(e) => problems.push(e),
        }
    }
    (out, problems)
}

/// Runs the standalone loader on these objects (name, object: no YAML text); the problems of object
/// `subject`, as `path: message` lines.
pub fn problems_of(subject: &str, objects: &[(String, Object)]) -> Vec<String> {
    let (manifests, mut errors) = manifests(objects);
    if let Err(more) = load_manifests(&manifests) {
        errors.extend(more.0);
    }
    errors
        .iter()
        .filter(|e: &&ConfigError| e.file == subject)
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect()
}

/// A destination's fields as given (`ref` kind/name or `uri`), for messages.
pub fn describe_destination(d: &Destination) -> String {
    match (&d.reference, &d.uri) {
        (Some(r), Some(u)) => format!("{} {} + {u}", r.kind, r.name),
        (Some(r), None) => format!("{} {}", r.kind, r.name),
        (None, Some(u)) => u.clone(),
        (None, None) => "(empty)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{BrokerSpec, KReference, TriggerFilter};
    use serde_json::json;

    fn broker(class: Option<&str>) -> Broker {
        let mut b = Broker::new("b", BrokerSpec::default());
        b.metadata.namespace = Some("ns".into());
        if let Some(c) = class {
            b.annotations_mut()
                .insert(BROKER_CLASS_ANNOTATION.into(), c.into());
        }
        b
    }

    #[test]
    fn ownership_follows_the_class_and_the_default_class() {
        let s = Settings::default();
        assert!(owns_broker(&broker(Some("Switchyard")), &s));
        assert!(
            owns_broker(&broker(None), &s),
            "default class is Switchyard"
        );
        assert!(!owns_broker(&broker(Some("MTChannelBasedBroker")), &s));
        let knative_default = Settings {
            default_broker_class: "MTChannelBasedBroker".into(),
            ..Settings::default()
        };
        assert!(!owns_broker(&broker(None), &knative_default));
        let custom = Settings {
            broker_class: "Acme".into(),
            ..Settings::default()
        };
        assert!(owns_broker(&broker(Some("Acme")), &custom));
        // A custom class is shown to the loader as Switchyard's own class.
        let m = serde_json::to_value(broker_manifest(&broker(Some("Acme")), None)).expect("JSON");
        assert_eq!(
            m["metadata"]["annotations"][BROKER_CLASS_ANNOTATION],
            "Switchyard"
        );
    }

    #[test]
    fn trigger_translation_uses_resolved_uris_and_validates_like_a_file() {
        let mut t = Trigger::new(
            "t",
            switchyard_broker::model::eventing::TriggerSpec {
                broker: "b".into(),
                filter: Some(TriggerFilter {
                    attributes: Some([("type".to_owned(), "a".to_owned())].into()),
                }),
                subscriber: Destination {
                    reference: Some(KReference {
                        kind: "Service".into(),
                        name: "svc".into(),
                        api_version: Some("v1".into()),
                        ..KReference::default()
                    }),
                    ..Destination::default()
                },
                delivery: Some(DeliverySpec {
                    retry: Some(2),
                    dead_letter_sink: Some(Destination {
                        uri: Some("http://dls".into()),
                        ..Destination::default()
                    }),
                    ..DeliverySpec::default()
                }),
                ..Default::default()
            }
            .into(),
        );
        t.metadata.namespace = Some("ns".into());
        let obj = trigger_manifest(&t, "http://svc.ns.svc.cluster.local", Some("http://dls2"));
        let m = serde_json::to_value(&obj).expect("JSON");
        assert_eq!(
            m["spec"]["subscriber"],
            json!({"uri": "http://svc.ns.svc.cluster.local"})
        );
        assert_eq!(
            m["spec"]["delivery"]["deadLetterSink"],
            json!({"uri": "http://dls2"})
        );
        assert_eq!(m["spec"]["delivery"]["retry"], 2);
        let sources = vec![("Trigger ns/t".to_owned(), obj)];
        assert!(problems_of("Trigger ns/t", &sources).is_empty());

        t.spec.filter = Some(TriggerFilter {
            attributes: Some([("Type".to_owned(), "a".to_owned())].into()),
        });
        let m = trigger_manifest(&t, PLACEHOLDER_URL, None);
        let p = problems_of("Trigger ns/t", &[("Trigger ns/t".to_owned(), m)]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("spec.filter.attributes"), "{p:?}");
    }

    #[test]
    fn the_typed_translation_carries_exactly_what_the_loader_reads() {
        let mut t = Trigger::new(
            "t",
            switchyard_broker::model::eventing::TriggerSpec {
                broker: "b".into(),
                // Not carried: the loader reads `broker` (the controller reports brokerRef itself).
                broker_ref: Some(KReference {
                    kind: "Broker".into(),
                    name: "other".into(),
                    ..KReference::default()
                }),
                subscriber: Destination {
                    reference: Some(KReference {
                        kind: "NatsSink".into(),
                        name: "out".into(),
                        api_version: Some("sources.switchyard.dev/v1alpha1".into()),
                        group: Some("sources.switchyard.dev".into()),
                        address: Some("main".into()),
                        ..KReference::default()
                    }),
                    ..Destination::default()
                },
                ..Default::default()
            }
            .into(),
        );
        t.metadata.namespace = Some("ns".into());
        t.annotations_mut().insert(
            "kubectl.kubernetes.io/last-applied-configuration".into(),
            "{}".into(),
        );
        let r = t.spec.subscriber.reference.clone().expect("a ref");
        let m = serde_json::to_value(trigger_manifest_with(&t, sink_ref_subscriber(&r), None))
            .expect("JSON");
        assert_eq!(
            m,
            json!({
                "apiVersion": "eventing.knative.dev/v1",
                "kind": "Trigger",
                "metadata": {"name": "t", "namespace": "ns"},
                "spec": {
                    "broker": "b",
                    "subscriber": {"ref": {
                        "apiVersion": "sources.switchyard.dev/v1alpha1",
                        "kind": "NatsSink",
                        "name": "out"
                    }}
                }
            })
        );
        let cm =
            serde_json::to_value(configmap_manifest("ns", "c", &BTreeMap::new())).expect("JSON");
        assert_eq!(
            cm,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"}, "data": {}})
        );
    }
}
