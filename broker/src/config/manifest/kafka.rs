//! `eventing.knative.dev/v1alpha1` KafkaSink and `sources.knative.dev/v1beta1` (or `v1`) KafkaSource.

use super::fields::*;
use crate::config::rules::parse_bootstrap_csv;
use crate::config::{InitialOffset, KafkaSinkConfig, KafkaSourceConfig, ObjectKey};
use serde_yaml::Value;

pub(super) fn decode_kafka_sink(ctx: &mut Ctx<'_>, v: &Value) -> Option<KafkaSinkConfig> {
    let (meta, spec) = metadata_and_spec(
        ctx,
        v,
        "topic and bootstrapServers",
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
    let content_mode = decode_content_mode(ctx, spec.get("contentMode"));
    let meta = meta?;
    Some(KafkaSinkConfig {
        key: ObjectKey::new(meta.namespace, meta.name),
        topic: topic?,
        bootstrap_servers: bootstrap_servers?,
        content_mode: content_mode?,
    })
}

pub(super) fn decode_kafka_source(ctx: &mut Ctx<'_>, v: &Value) -> Option<KafkaSourceConfig> {
    let (meta, spec) = metadata_and_spec(
        ctx,
        v,
        "bootstrapServers, topics and sink",
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
    let sink = decode_source_sink(ctx, spec.get("sink"), meta.as_ref());
    let meta = meta?;
    let consumer_group = consumer_group?
        .unwrap_or_else(|| format!("knative-kafka-source-{}-{}", meta.namespace, meta.name));
    Some(KafkaSourceConfig {
        key: ObjectKey::new(meta.namespace, meta.name),
        bootstrap_servers: bootstrap_servers?,
        topics: topics?,
        consumer_group,
        sink: sink?,
        initial_offset: initial_offset?,
    })
}

/// `spec.topics`: a non-empty list of distinct, valid topic names.
pub(super) fn decode_topics(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: Option<&Value>,
) -> Option<Vec<String>> {
    let what = ("a list of topic names", "a list of topic names", "topic");
    let items = non_empty_list(ctx, path, v, what)?;
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

/// `spec.bootstrapServers`: a non-empty list of `host:port` strings (an item may itself be a
/// comma-separated list, as Knative joins them with `,`) → one comma-separated string.
pub(super) fn decode_bootstrap_list(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: Option<&Value>,
) -> Option<String> {
    let what = (
        "a list of host:port",
        "a list of host:port strings",
        "host:port",
    );
    let items = non_empty_list(ctx, path, v, what)?;
    let items = items
        .iter()
        .enumerate()
        .map(|(i, item)| (format!("{path}[{i}]"), item));
    joined_lists(ctx, items, parse_bootstrap_csv)
}
