//! Pass 1 for `sources.switchyard.dev/v1alpha1` NatsSink and NatsSource.

use super::destination::source_sink;
use super::top::{required_text, resource_with_spec, text};
use crate::config::manifest::fields::*;
use crate::config::manifest::names::*;
use crate::config::manifest::shape::Shape;
use crate::model::object::Resource;
use crate::model::sources::{NatsSinkSpec, NatsSourceJetStream, NatsSourceSpec, SourceSink};
use serde_json::Value as Json;
use serde_yaml::Value;

/// What `spec.servers` must be.
const SERVERS_EXPECTED: &str =
    "a list of NATS servers (nats://host:port, tls://host:port or host:port) or a comma-separated \
     string";

/// `spec.servers`: a string, or a list (a string item of another type is reported, noted as unusable
/// at `spec.servers[i]` and left as `null`); missing or of another type, it is reported and noted as
/// unusable.
fn servers(ctx: &mut Ctx<'_>, v: Option<&Value>, shape: &mut Shape) -> Json {
    const PATH: &str = "spec.servers";
    let Some(v) = required(ctx, PATH, v, SERVERS_EXPECTED) else {
        shape.unusable(PATH);
        return Json::Null;
    };
    match v {
        Value::String(s) => Json::String(s.clone()),
        Value::Sequence(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let p = format!("{PATH}[{i}]");
                    text(ctx, &p, Some(item), shape).map_or(Json::Null, Json::String)
                })
                .collect(),
        ),
        other => {
            ctx.err(
                PATH,
                format!("must be {SERVERS_EXPECTED}, got {}", kind_of(other)),
            );
            shape.unusable(PATH);
            Json::Null
        }
    }
}

/// `spec.subject`, required.
fn subject(ctx: &mut Ctx<'_>, spec: &Obj<'_>, shape: &mut Shape) -> String {
    required_text(
        ctx,
        "spec.subject",
        spec.get("subject"),
        "a NATS subject, e.g. orders.created",
        shape,
    )
}

pub(super) fn sink(
    ctx: &mut Ctx<'_>,
    v: &Value,
    shape: &mut Shape,
) -> Option<Resource<NatsSinkSpec>> {
    resource_with_spec(
        ctx,
        v,
        shape,
        "servers and subject",
        &NATS_SINK_SPEC_FIELDS,
        &[],
        |ctx, s, spec: &mut NatsSinkSpec, shape| {
            spec.servers = servers(ctx, s.get("servers"), shape);
            spec.subject = subject(ctx, s, shape);
            spec.jetstream = match s.get("jetstream") {
                None => None,
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
                    shape.unusable("spec.jetstream");
                    None
                }
            };
            spec.content_mode = text(ctx, "spec.contentMode", s.get("contentMode"), shape);
        },
    )
}

pub(super) fn source(
    ctx: &mut Ctx<'_>,
    v: &Value,
    shape: &mut Shape,
) -> Option<Resource<NatsSourceSpec>> {
    resource_with_spec(
        ctx,
        v,
        shape,
        "servers, subject and sink",
        &NATS_SOURCE_SPEC_FIELDS,
        &[],
        |ctx, s, spec: &mut NatsSourceSpec, shape| {
            spec.servers = servers(ctx, s.get("servers"), shape);
            spec.subject = subject(ctx, s, shape);
            spec.queue_group = text(ctx, "spec.queueGroup", s.get("queueGroup"), shape);
            spec.jetstream = s.get("jetstream").and_then(|js| jetstream(ctx, js, shape));
            spec.sink = SourceSink::from(source_sink(ctx, s.get("sink"), shape));
        },
    )
}

/// A NatsSource's `spec.jetstream` (not an object: reported and noted as unusable).
fn jetstream(ctx: &mut Ctx<'_>, v: &Value, shape: &mut Shape) -> Option<NatsSourceJetStream> {
    const PATH: &str = "spec.jetstream";
    let Some(obj) = Obj::new(ctx, PATH, v, &NATS_SOURCE_JETSTREAM_FIELDS) else {
        shape.unusable(PATH);
        return None;
    };
    let mut name = |field: &str, what: &str| {
        required_text(
            ctx,
            &join(PATH, field),
            obj.get(field),
            &format!("the {what}"),
            shape,
        )
    };
    Some(NatsSourceJetStream {
        stream: name("stream", "stream name"),
        durable: name("durable", "durable consumer name"),
    })
}
