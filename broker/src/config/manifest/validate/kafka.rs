//! Pass 2 for a KafkaSink (topic, bootstrap servers, content mode) and a KafkaSource (bootstrap
//! servers, topics, consumer group, initial offset, sink).

use super::destination::source_sink;
use super::meta::{metadata_with_spec, namespace_or_default};
use super::values::{content_mode, joined_lists, optional_text, unsupported};
use crate::config::manifest::fields::{check_topic, Ctx};
use crate::config::manifest::names::*;
use crate::config::manifest::shape::Shape;
use crate::config::rules::parse_bootstrap_csv;
use crate::config::{InitialOffset, KafkaSinkConfig, KafkaSourceConfig, ObjectKey};
use crate::model::object::Resource;
use crate::model::sources as model;

/// `spec.bootstrapServers`: a non-empty list of `host:port` strings (an item may itself be a
/// comma-separated list, as Knative joins them with `,`) → one comma-separated string.
fn bootstrap_servers(ctx: &mut Ctx<'_>, list: &[String], shape: &Shape) -> Option<String> {
    const PATH: &str = "spec.bootstrapServers";
    if shape.is_unusable(PATH) {
        return None;
    }
    if list.is_empty() {
        ctx.err(PATH, "must contain at least one host:port");
        return None;
    }
    let items = list
        .iter()
        .enumerate()
        .map(|(i, item)| (format!("{PATH}[{i}]"), item.as_str()));
    joined_lists(ctx, items, parse_bootstrap_csv, shape)
}

/// `spec.topics`: a non-empty list of distinct, valid topic names.
fn topics(ctx: &mut Ctx<'_>, list: &[String], shape: &Shape) -> Option<Vec<String>> {
    const PATH: &str = "spec.topics";
    if shape.is_unusable(PATH) {
        return None;
    }
    if list.is_empty() {
        ctx.err(PATH, "must contain at least one topic");
        return None;
    }
    let mut topics: Vec<String> = Vec::with_capacity(list.len());
    let mut ok = true;
    for (i, t) in list.iter().enumerate() {
        let p = format!("{PATH}[{i}]");
        if shape.is_unusable(&p) || !check_topic(ctx, &p, t) {
            ok = false;
        } else if topics.contains(t) {
            ctx.err(&p, format!("duplicate topic {t:?}"));
            ok = false;
        } else {
            topics.push(t.clone());
        }
    }
    ok.then_some(topics)
}

pub(super) fn sink(
    ctx: &mut Ctx<'_>,
    s: &Resource<model::KafkaSinkSpec>,
    shape: &Shape,
) -> Option<KafkaSinkConfig> {
    let meta = metadata_with_spec(ctx, &s.metadata, shape)?;
    let spec = &s.spec;
    unsupported(
        ctx,
        &KAFKA_SINK_UNSUPPORTED,
        |field| match field {
            "numPartitions" => spec.num_partitions.is_some(),
            "replicationFactor" => spec.replication_factor.is_some(),
            _ => spec.auth.is_some(),
        },
        shape,
    );
    let topic = (!shape.is_unusable("spec.topic") && check_topic(ctx, "spec.topic", &spec.topic))
        .then(|| spec.topic.clone());
    let bootstrap_servers = bootstrap_servers(ctx, &spec.bootstrap_servers, shape);
    let content_mode = content_mode(ctx, spec.content_mode.as_deref(), shape);
    let meta = meta?;
    Some(KafkaSinkConfig {
        key: ObjectKey::new(meta.namespace, meta.name),
        topic: topic?,
        bootstrap_servers: bootstrap_servers?,
        content_mode: content_mode?,
    })
}

pub(super) fn source(
    ctx: &mut Ctx<'_>,
    s: &Resource<model::KafkaSourceSpec>,
    shape: &Shape,
) -> Option<KafkaSourceConfig> {
    let meta = metadata_with_spec(ctx, &s.metadata, shape)?;
    let spec = &s.spec;
    unsupported(
        ctx,
        &KAFKA_SOURCE_UNSUPPORTED,
        |field| match field {
            "net" => spec.net.is_some(),
            "consumers" => spec.consumers.is_some(),
            "ordering" => spec.ordering.is_some(),
            "delivery" => spec.delivery.is_some(),
            _ => spec.ce_overrides.is_some(),
        },
        shape,
    );
    let bootstrap_servers = bootstrap_servers(ctx, &spec.bootstrap_servers, shape);
    let topics = topics(ctx, &spec.topics, shape);
    let consumer_group = optional_text(
        ctx,
        "spec.consumerGroup",
        spec.consumer_group.as_ref(),
        |g| !g.trim().is_empty() && g.len() <= 255,
        |_| "must be a non-empty group id of at most 255 characters".to_owned(),
        shape,
    );
    let initial_offset = match spec.initial_offset.as_deref() {
        _ if shape.is_unusable("spec.initialOffset") => None,
        None | Some("latest") => Some(InitialOffset::Latest),
        Some("earliest") => Some(InitialOffset::Earliest),
        Some(other) => {
            ctx.err(
                "spec.initialOffset",
                format!("must be \"earliest\" or \"latest\" (the default), got {other:?}"),
            );
            None
        }
    };
    let source_ns = namespace_or_default(&meta);
    let sink = source_sink(ctx, &spec.sink, source_ns, shape);
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
