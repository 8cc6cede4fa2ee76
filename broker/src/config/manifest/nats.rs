//! `sources.switchyard.dev/v1alpha1` NatsSink and NatsSource.

use super::fields::*;
use super::names::*;
use crate::config::rules::parse_nats_servers_csv;
use crate::config::{
    is_valid_nats_name, is_valid_nats_subject, NatsSinkConfig, NatsSourceConfig,
    NatsSourceJetStreamConfig, ObjectKey,
};
use serde_yaml::Value;

/// `spec.servers`: a non-empty list of NATS servers or one comma-separated string → one
/// comma-separated string.
pub(super) fn decode_nats_servers(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: Option<&Value>,
) -> Option<String> {
    const EXPECTED: &str =
        "a list of NATS servers (nats://host:port, tls://host:port or host:port) \
                            or a comma-separated string";
    let v = required(ctx, path, v, EXPECTED)?;
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
    joined_lists(ctx, items, parse_nats_servers_csv)
}

/// A required NATS subject (`wildcards`: `*` and a final `>` allowed).
pub(super) fn decode_nats_subject(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: Option<&Value>,
    wildcards: bool,
) -> Option<String> {
    let v = required(ctx, path, v, "a NATS subject, e.g. orders.created")?;
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
pub(super) fn decode_nats_name(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: Option<&Value>,
    what: &str,
) -> Option<String> {
    let v = required(ctx, path, v, &format!("the {what}"))?;
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

/// `spec.servers` and `spec.subject` (`wildcards`: allowed in the subject) of a NatsSink or NatsSource.
fn decode_servers_and_subject(
    ctx: &mut Ctx<'_>,
    spec: &Obj<'_>,
    wildcards: bool,
) -> (Option<String>, Option<String>) {
    let servers = decode_nats_servers(ctx, "spec.servers", spec.get("servers"));
    let subject = decode_nats_subject(ctx, "spec.subject", spec.get("subject"), wildcards);
    (servers, subject)
}

pub(super) fn decode_nats_sink(ctx: &mut Ctx<'_>, v: &Value) -> Option<NatsSinkConfig> {
    let (meta, spec) =
        metadata_and_spec(ctx, v, "servers and subject", &NATS_SINK_SPEC_FIELDS, &[])?;
    let (servers, subject) = decode_servers_and_subject(ctx, &spec, false);
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
    let content_mode = decode_content_mode(ctx, spec.get("contentMode"));
    let meta = meta?;
    Some(NatsSinkConfig {
        key: ObjectKey::new(meta.namespace, meta.name),
        servers: servers?,
        subject: subject?,
        jetstream: jetstream?,
        content_mode: content_mode?,
    })
}

pub(super) fn decode_nats_source(ctx: &mut Ctx<'_>, v: &Value) -> Option<NatsSourceConfig> {
    let expected = "servers, subject and sink";
    let (meta, spec) = metadata_and_spec(ctx, v, expected, &NATS_SOURCE_SPEC_FIELDS, &[])?;
    let (servers, subject) = decode_servers_and_subject(ctx, &spec, true);
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
                            Some(Some(NatsSourceJetStreamConfig { stream, durable }))
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
    let sink = decode_source_sink(ctx, spec.get("sink"), meta.as_ref());
    let meta = meta?;
    Some(NatsSourceConfig {
        key: ObjectKey::new(meta.namespace, meta.name),
        servers: servers?,
        subject: subject?,
        queue_group: queue_group?,
        jetstream: jetstream?,
        sink: sink?,
    })
}
