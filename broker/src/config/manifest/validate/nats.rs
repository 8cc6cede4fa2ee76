//! Pass 2 for a NatsSink (servers, subject, content mode) and a NatsSource (servers, subject with
//! wildcards, queue group or JetStream durable consumer, sink).

use super::destination::source_sink;
use super::meta::{metadata_with_spec, namespace_or_default};
use super::values::{content_mode, joined_lists, optional_text};
use crate::config::manifest::fields::Ctx;
use crate::config::manifest::shape::Shape;
use crate::config::rules::parse_nats_servers_csv;
use crate::config::{
    is_valid_nats_name, is_valid_nats_subject, NatsSinkConfig, NatsSourceConfig,
    NatsSourceJetStreamConfig, ObjectKey,
};
use crate::model::eventing::Destination;
use crate::model::object::Resource;
use crate::model::sources as model;
use serde_json::Value as Json;

/// `spec.servers`: a non-empty list of NATS servers or one comma-separated string → one
/// comma-separated string.
fn servers(ctx: &mut Ctx<'_>, servers: &Json, shape: &Shape) -> Option<String> {
    const PATH: &str = "spec.servers";
    if shape.is_unusable(PATH) {
        return None;
    }
    let items: Vec<(String, &str)> = match servers {
        Json::String(s) => vec![(PATH.to_owned(), s.as_str())],
        Json::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            // A non-string item is unusable (pass 1 reported it).
            .map(|(i, item)| (format!("{PATH}[{i}]"), item.as_str().unwrap_or_default()))
            .collect(),
        Json::Array(_) => {
            ctx.err(PATH, "must contain at least one server");
            return None;
        }
        // Pass 1 keeps only a string or a list.
        _ => return None,
    };
    joined_lists(ctx, items, parse_nats_servers_csv, shape)
}

/// `spec.subject` (`wildcards`: `*` and a final `>` allowed).
fn subject(ctx: &mut Ctx<'_>, s: &str, wildcards: bool, shape: &Shape) -> Option<String> {
    const PATH: &str = "spec.subject";
    if shape.is_unusable(PATH) {
        return None;
    }
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
    ctx.err(PATH, format!("{s:?} is not a valid NATS subject: {rule}"));
    None
}

/// A JetStream stream or consumer name.
fn name(ctx: &mut Ctx<'_>, path: &str, s: &str, what: &str, shape: &Shape) -> Option<String> {
    if shape.is_unusable(path) {
        return None;
    }
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

pub(super) fn sink(
    ctx: &mut Ctx<'_>,
    s: &Resource<model::NatsSinkSpec>,
    shape: &Shape,
) -> Option<NatsSinkConfig> {
    let meta = metadata_with_spec(ctx, &s.metadata, shape)?;
    let spec = &s.spec;
    let servers = servers(ctx, &spec.servers, shape);
    let subject = subject(ctx, &spec.subject, false, shape);
    let jetstream = (!shape.is_unusable("spec.jetstream")).then(|| spec.jetstream.unwrap_or(false));
    let content_mode = content_mode(ctx, spec.content_mode.as_deref(), shape);
    let meta = meta?;
    Some(NatsSinkConfig {
        key: ObjectKey::new(meta.namespace, meta.name),
        servers: servers?,
        subject: subject?,
        jetstream: jetstream?,
        content_mode: content_mode?,
    })
}

pub(super) fn source(
    ctx: &mut Ctx<'_>,
    s: &Resource<model::NatsSourceSpec>,
    shape: &Shape,
) -> Option<NatsSourceConfig> {
    let meta = metadata_with_spec(ctx, &s.metadata, shape)?;
    let spec = &s.spec;
    let servers = servers(ctx, &spec.servers, shape);
    let subject = subject(ctx, &spec.subject, true, shape);
    let queue_group = optional_text(
        ctx,
        "spec.queueGroup",
        spec.queue_group.as_ref(),
        |g| is_valid_nats_subject(g, false),
        |g| {
            format!(
                "{g:?} is not a valid queue group: non-empty '.'-separated tokens without \
                 whitespace, '*' or '>', at most 255 bytes"
            )
        },
        shape,
    );
    let jetstream = match &spec.jetstream {
        _ if shape.is_unusable("spec.jetstream") => None,
        None => Some(None),
        Some(js) => {
            let stream = name(
                ctx,
                "spec.jetstream.stream",
                &js.stream,
                "stream name",
                shape,
            );
            let durable = name(
                ctx,
                "spec.jetstream.durable",
                &js.durable,
                "durable consumer name",
                shape,
            );
            match (stream, durable) {
                (Some(stream), Some(durable)) => {
                    Some(Some(NatsSourceJetStreamConfig { stream, durable }))
                }
                _ => None,
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
    let source_ns = namespace_or_default(&meta);
    let sink = source_sink(ctx, &Destination::from(&spec.sink), source_ns, shape);
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
