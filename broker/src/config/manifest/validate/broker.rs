//! Pass 2 for a Broker (class and backend annotations, `spec.config`, delivery) and a ConfigMap.

use super::destination::delivery;
use super::meta::{metadata, namespace_or_default, Meta};
use crate::config::manifest::document::Document;
use crate::config::manifest::fields::Ctx;
use crate::config::manifest::names::*;
use crate::config::manifest::shape::Shape;
use crate::config::rules::topic_message;
use crate::config::{
    is_valid_kafka_topic, BrokerConfig, BrokerKey, BACKEND_ANNOTATION, EXTERNAL_TOPIC_ANNOTATION,
    KAFKA_BROKER_CLASS, MAX_BACKLOG_ANNOTATION, NATS_BROKER_CLASS, SWITCHYARD_BROKER_CLASS,
};
use crate::model::eventing::{self as model, KReference};
use crate::model::object::{ConfigMap, Resource};
use std::collections::BTreeMap;

/// The class and the annotations that depend on it: (class, max backlog, external topic).
fn class(ctx: &mut Ctx<'_>, meta: &Meta<'_>) -> (String, Option<u64>, Option<String>) {
    let mut class = DEFAULT_BROKER_CLASS.to_owned();
    match meta.annotation(BROKER_CLASS_ANNOTATION) {
        None => {}
        Some(Some(c))
            if c == DEFAULT_BROKER_CLASS || c == KAFKA_BROKER_CLASS || c == NATS_BROKER_CLASS =>
        {
            class = c
        }
        Some(Some(c)) if c == SWITCHYARD_BROKER_CLASS => {
            class = match meta.annotation(BACKEND_ANNOTATION) {
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
    if meta.annotation(BACKEND_ANNOTATION).is_some()
        && meta
            .annotation(BROKER_CLASS_ANNOTATION)
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
    let max_backlog = meta.positive_annotation(ctx, MAX_BACKLOG_ANNOTATION);
    let mut external_topic = None;
    match meta.annotation(EXTERNAL_TOPIC_ANNOTATION) {
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
    (class, max_backlog, external_topic)
}

pub(super) fn broker(
    ctx: &mut Ctx<'_>,
    b: &Resource<model::BrokerSpec>,
    shape: &Shape,
) -> Option<Document> {
    let meta = metadata(ctx, &b.metadata, shape);
    let (class, max_backlog, external_topic) = match &meta {
        Some(meta) => class(ctx, meta),
        None => (DEFAULT_BROKER_CLASS.to_owned(), None, None),
    };
    let kafka = class == KAFKA_BROKER_CLASS;
    let nats = class == NATS_BROKER_CLASS;

    let delivery = b
        .spec
        .delivery
        .as_ref()
        .and_then(|d| delivery(ctx, "spec.delivery", d, shape));
    let has_config = b.spec.config.is_some() || shape.is_unusable("spec.config");
    let config_ref = b
        .spec
        .config
        .as_ref()
        .and_then(|c| config_ref(ctx, c, namespace_or_default(&meta), shape));
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

/// `spec.config`: a reference to a ConfigMap → (namespace, name).
fn config_ref(
    ctx: &mut Ctx<'_>,
    c: &KReference,
    default_ns: &str,
    shape: &Shape,
) -> Option<(String, String)> {
    if c.kind != "ConfigMap" {
        ctx.err(
            "spec.config.kind",
            format!(
                "only ConfigMap references are supported in standalone mode, got {:?}",
                c.kind
            ),
        );
        return None;
    }
    if let Some(av) = &c.api_version {
        if av != "v1" {
            ctx.err(
                "spec.config.apiVersion",
                format!("a ConfigMap has apiVersion \"v1\", got {av:?}"),
            );
        }
    }
    if shape.is_unusable("spec.config.name") || shape.is_unusable("spec.config.namespace") {
        return None;
    }
    let namespace = c.namespace.as_deref().unwrap_or(default_ns).to_owned();
    Some((namespace, c.name.clone()))
}

pub(super) fn configmap(ctx: &mut Ctx<'_>, c: &ConfigMap, shape: &Shape) -> Option<Document> {
    let meta = metadata(ctx, &c.metadata, shape)?;
    Some(Document::ConfigMap {
        key: (meta.namespace, meta.name),
        data: c.data.clone(),
    })
}
