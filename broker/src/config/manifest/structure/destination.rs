//! Pass 1 for destinations (`uri` or `ref`), a Broker's `spec.config` and `delivery`.

use crate::config::manifest::fields::*;
use crate::config::manifest::names::*;
use crate::config::manifest::shape::Shape;
use crate::model::eventing::{DeliverySpec, Destination, KReference};
use serde_yaml::Value;

/// Where a destination is: a Trigger's subscriber may be a KafkaSink or NatsSink `ref` (then the `ref`
/// is decoded); elsewhere only a `ref`'s kind matters (any `ref` is an error in standalone mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Context {
    Subscriber,
    DeadLetterSink,
}

/// A Destination. `CACerts` and `audience` are kept as text whatever their type (pass 2 rejects them
/// in standalone mode); a non-string `uri` is noted as unusable.
pub(super) fn destination(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: &Value,
    context: Context,
    shape: &mut Shape,
) -> Option<Destination> {
    let Some(obj) = Obj::new(ctx, path, v, &["uri", "ref", "CACerts", "audience"]) else {
        shape.unusable(path);
        return None;
    };
    let mut out = Destination {
        ca_certs: obj
            .get("CACerts")
            .map(|v| scalar_text(v).unwrap_or_default()),
        audience: obj
            .get("audience")
            .map(|v| scalar_text(v).unwrap_or_default()),
        ..Destination::default()
    };
    let sink = obj
        .get("ref")
        .and_then(ref_kind)
        .and_then(sink_kind)
        .filter(|_| context == Context::Subscriber);
    let uri_path = join(path, "uri");
    if let Some(r) = obj.get("ref") {
        out.reference = Some(match sink {
            Some((_, api_version)) => sink_ref(ctx, &join(path, "ref"), r, api_version, shape),
            None => KReference {
                kind: ref_kind(r).unwrap_or_default().to_owned(),
                ..KReference::default()
            },
        });
    }
    if let Some(u) = obj.get("uri") {
        // With a sink `ref`, any `uri` is an error (pass 2): its type does not matter.
        let checked = if sink.is_some() {
            u.as_str()
        } else {
            string(ctx, &uri_path, u)
        };
        match checked {
            Some(u) => out.uri = Some(u.to_owned()),
            None => shape.unusable(uri_path),
        }
    }
    Some(out)
}

/// A subscriber's KafkaSink or NatsSink `ref` (`apiVersion`, `kind`, `name`, `namespace`); a field with
/// a problem is noted as unusable.
fn sink_ref(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: &Value,
    api_version: &str,
    shape: &mut Shape,
) -> KReference {
    let mut out = KReference {
        kind: ref_kind(v).unwrap_or_default().to_owned(),
        ..KReference::default()
    };
    let Some(obj) = Obj::new(ctx, path, v, &["apiVersion", "kind", "name", "namespace"]) else {
        shape.unusable(path);
        return out;
    };
    let av_path = join(path, "apiVersion");
    match obj.get("apiVersion") {
        None => {
            ctx.err(&av_path, format!("required ({api_version})"));
            shape.unusable(av_path);
        }
        Some(av) => match string(ctx, &av_path, av) {
            Some(av) => out.api_version = Some(av.to_owned()),
            None => shape.unusable(av_path),
        },
    }
    let name_path = join(path, "name");
    match obj.get("name") {
        None => {
            ctx.err(&name_path, "required");
            shape.unusable(name_path);
        }
        Some(n) => match string(ctx, &name_path, n) {
            Some(n) => out.name = n.to_owned(),
            None => shape.unusable(name_path),
        },
    }
    if let Some(ns) = obj.get("namespace") {
        let ns_path = join(path, "namespace");
        match string(ctx, &ns_path, ns) {
            Some(ns) => out.namespace = Some(ns.to_owned()),
            None => shape.unusable(ns_path),
        }
    }
    out
}

/// A Broker's `spec.config`: a KReference. Only a `ConfigMap` reference is decoded further (any other
/// kind is an error in pass 2); without a usable `kind`, `spec.config` is noted as unusable (and left
/// out), and so are an unusable `name` or `namespace`.
pub(super) fn config_ref(ctx: &mut Ctx<'_>, v: &Value, shape: &mut Shape) -> Option<KReference> {
    const PATH: &str = "spec.config";
    let Some(obj) = Obj::new(
        ctx,
        PATH,
        v,
        &[
            "apiVersion",
            "kind",
            "name",
            "namespace",
            "group",
            "address",
        ],
    ) else {
        shape.unusable(PATH);
        return None;
    };
    let kind = obj
        .get("kind")
        .and_then(|k| string(ctx, "spec.config.kind", k));
    let mut out = match kind {
        Some(kind) => KReference {
            kind: kind.to_owned(),
            ..KReference::default()
        },
        None => {
            if obj.get("kind").is_none() {
                ctx.err("spec.config.kind", "required (ConfigMap)");
            }
            shape.unusable(PATH);
            return None;
        }
    };
    if out.kind != "ConfigMap" {
        return Some(out);
    }
    out.api_version = obj
        .get("apiVersion")
        .and_then(|a| string(ctx, "spec.config.apiVersion", a))
        .map(str::to_owned);
    match obj.get("name") {
        Some(n) => match string(ctx, "spec.config.name", n) {
            Some(n) => out.name = n.to_owned(),
            None => shape.unusable("spec.config.name"),
        },
        None => {
            ctx.err("spec.config.name", "required");
            shape.unusable("spec.config.name");
        }
    }
    if let Some(n) = obj.get("namespace") {
        // Checked only with a usable name (as one problem hides the next).
        if !shape.is_unusable("spec.config.name") {
            match string(ctx, "spec.config.namespace", n) {
                Some(n) => out.namespace = Some(n.to_owned()),
                None => shape.unusable("spec.config.namespace"),
            }
        }
    }
    Some(out)
}

/// `delivery`: every field's JSON type (the values are pass 2's). An integer `retry` that does not fit
/// the model's `i32` is noted in `shape` (pass 2 applies the range rules).
pub(super) fn delivery(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: &Value,
    shape: &mut Shape,
) -> Option<DeliverySpec> {
    let Some(obj) = Obj::new(
        ctx,
        path,
        v,
        &[
            "deadLetterSink",
            "retry",
            "backoffPolicy",
            "backoffDelay",
            "backoffMax",
            "timeout",
            "retryAfterMax",
            "format",
        ],
    ) else {
        shape.unusable(path);
        return None;
    };
    let mut d = DeliverySpec::default();
    if let Some(r) = obj.get("retry") {
        let p = join(path, "retry");
        match r.as_i64() {
            Some(n) => match i32::try_from(n) {
                Ok(n) => d.retry = Some(n),
                Err(_) => shape.wide(p, n),
            },
            None => ctx.err(&p, format!("must be an integer >= 0, got {}", describe(r))),
        }
    }
    let text = |ctx: &mut Ctx<'_>, field: &str| -> Option<String> {
        let s = string(ctx, &join(path, field), obj.get(field)?)?;
        Some(s.to_owned())
    };
    d.backoff_policy = text(ctx, "backoffPolicy");
    d.backoff_delay = text(ctx, "backoffDelay");
    d.backoff_max = text(ctx, "backoffMax");
    d.timeout = text(ctx, "timeout");
    d.retry_after_max = text(ctx, "retryAfterMax");
    if let Some(dls) = obj.get("deadLetterSink") {
        let p = join(path, "deadLetterSink");
        d.dead_letter_sink = destination(ctx, &p, dls, Context::DeadLetterSink, shape);
    }
    d.format = text(ctx, "format");
    Some(d)
}

/// A KafkaSource's or NatsSource's `spec.sink` (`None` when absent: reported, and noted as unusable
/// `spec.sink`, as is a sink that is not an object). `CACerts` and `audience` are noted as given (pass
/// 2 rejects them). With both `ref` and `uri` (an error of pass 2) neither is decoded further; a `ref`
/// is decoded when it names a Broker (other kinds are an error of pass 2); a `ref` without a string
/// `kind`, or a field with a problem, is noted as unusable.
pub(super) fn source_sink(ctx: &mut Ctx<'_>, v: Option<&Value>, shape: &mut Shape) -> Destination {
    const PATH: &str = "spec.sink";
    let mut out = Destination::default();
    let Some(v) = v else {
        ctx.err(PATH, "required: ref (a Broker) or uri");
        shape.unusable(PATH);
        return out;
    };
    let Some(obj) = Obj::with_known(ctx, PATH, v, &SOURCE_SINK_FIELDS, &SOURCE_SINK_UNSUPPORTED)
    else {
        shape.unusable(PATH);
        return out;
    };
    for (field, _) in SOURCE_SINK_UNSUPPORTED {
        if obj.get(field).is_some() {
            shape.given(join(PATH, field));
        }
    }
    out.ca_certs = obj
        .get("CACerts")
        .map(|v| scalar_text(v).unwrap_or_default());
    out.audience = obj
        .get("audience")
        .map(|v| scalar_text(v).unwrap_or_default());
    let ref_path = join(PATH, "ref");
    let uri_path = join(PATH, "uri");
    match (obj.get("ref"), obj.get("uri")) {
        (Some(r), Some(u)) => {
            out.reference = Some(KReference {
                kind: ref_kind(r).unwrap_or_default().to_owned(),
                ..KReference::default()
            });
            out.uri = Some(u.as_str().unwrap_or_default().to_owned());
        }
        (Some(r), None) => match ref_kind(r) {
            Some("Broker") => {
                out.reference = Some(sink_ref(ctx, &ref_path, r, EVENTING_API_VERSION, shape));
            }
            Some(kind) => {
                out.reference = Some(KReference {
                    kind: kind.to_owned(),
                    ..KReference::default()
                });
            }
            None if r.is_mapping() => {
                ctx.err(&join(&ref_path, "kind"), "required (Broker)");
                shape.unusable(ref_path);
            }
            None => {
                ctx.err(&ref_path, format!("must be an object, got {}", kind_of(r)));
                shape.unusable(ref_path);
            }
        },
        (None, Some(u)) => match string(ctx, &uri_path, u) {
            Some(u) => out.uri = Some(u.to_owned()),
            None => shape.unusable(uri_path),
        },
        (None, None) => {}
    }
    out
}
