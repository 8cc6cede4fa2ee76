//! Pass 1 for `eventing.knative.dev/v1alpha1` KafkaSink and `sources.knative.dev/v1beta1` (or `v1`)
//! KafkaSource.

use super::destination::source_sink;
use super::top::{required_text, resource_with_spec, string_list, text};
use crate::config::manifest::fields::*;
use crate::config::manifest::names::*;
use crate::config::manifest::shape::Shape;
use crate::model::object::Resource;
use crate::model::sources::{KafkaSinkSpec, KafkaSourceSpec};
use serde::de::DeserializeOwned;
use serde_yaml::Value;

/// A field Switchyard does not support (noted as given by [`spec_object`]), kept in the typed object
/// when its value fits the model's type.
fn unsupported<T: DeserializeOwned>(spec: &Obj<'_>, field: &str) -> Option<T> {
    serde_yaml::from_value(spec.get(field)?.clone()).ok()
}

/// `spec.bootstrapServers`: a list of strings.
fn bootstrap_servers(ctx: &mut Ctx<'_>, spec: &Obj<'_>, shape: &mut Shape) -> Vec<String> {
    string_list(
        ctx,
        "spec.bootstrapServers",
        spec.get("bootstrapServers"),
        "a list of host:port",
        "host:port strings",
        shape,
    )
}

pub(super) fn sink(
    ctx: &mut Ctx<'_>,
    v: &Value,
    shape: &mut Shape,
) -> Option<Resource<KafkaSinkSpec>> {
    resource_with_spec(
        ctx,
        v,
        shape,
        "topic and bootstrapServers",
        &KAFKA_SINK_SPEC_FIELDS,
        &KAFKA_SINK_UNSUPPORTED,
        |ctx, s, spec: &mut KafkaSinkSpec, shape| {
            spec.topic = required_text(
                ctx,
                "spec.topic",
                s.get("topic"),
                "the topic events are produced to",
                shape,
            );
            spec.bootstrap_servers = bootstrap_servers(ctx, s, shape);
            spec.content_mode = text(ctx, "spec.contentMode", s.get("contentMode"), shape);
            spec.num_partitions = unsupported(s, "numPartitions");
            spec.replication_factor = unsupported(s, "replicationFactor");
            spec.auth = unsupported(s, "auth");
        },
    )
}

pub(super) fn source(
    ctx: &mut Ctx<'_>,
    v: &Value,
    shape: &mut Shape,
) -> Option<Resource<KafkaSourceSpec>> {
    resource_with_spec(
        ctx,
        v,
        shape,
        "bootstrapServers, topics and sink",
        &KAFKA_SOURCE_SPEC_FIELDS,
        &KAFKA_SOURCE_UNSUPPORTED,
        |ctx, s, spec: &mut KafkaSourceSpec, shape| {
            spec.bootstrap_servers = bootstrap_servers(ctx, s, shape);
            spec.topics = string_list(
                ctx,
                "spec.topics",
                s.get("topics"),
                "a list of topic names",
                "topic names",
                shape,
            );
            spec.consumer_group = text(ctx, "spec.consumerGroup", s.get("consumerGroup"), shape);
            spec.initial_offset = text(ctx, "spec.initialOffset", s.get("initialOffset"), shape);
            spec.sink = source_sink(ctx, s.get("sink"), shape);
            spec.net = unsupported(s, "net");
            spec.consumers = unsupported(s, "consumers");
            spec.ordering = unsupported(s, "ordering");
            spec.delivery = unsupported(s, "delivery");
            spec.ce_overrides = unsupported(s, "ceOverrides");
        },
    )
}
