//! Pass 2 for destinations (an absolute URL, or a subscriber's KafkaSink or NatsSink `ref`), `delivery`
//! (ranges, policies, ISO-8601 durations, formats) and a source's `spec.sink` (a Broker `ref` or an
//! absolute URL).

use crate::config::duration::parse_iso8601;
use crate::config::manifest::fields::{check_url, join, Ctx};
use crate::config::manifest::names::{sink_kind, EVENTING_API_VERSION, SOURCE_SINK_UNSUPPORTED};
use crate::config::manifest::shape::Shape;
use crate::config::rules::is_dns1123_label;
use crate::config::{BrokerKey, DestinationConfig, ObjectKey, SourceSinkConfig};
use crate::delivery::{BackoffPolicy, DeliveryConfig, Format};
use crate::model::eventing::{self as model, KReference};
use std::time::Duration;

pub(super) const REF_UNSUPPORTED: &str =
    "ref is resolved only in Kubernetes mode; use uri in standalone mode";

/// A Destination: `uri`, or (for a trigger subscriber, `sink_ns` = the trigger's namespace) a `ref` to a
/// KafkaSink or a NatsSink of the same namespace. Other refs are resolved only in Kubernetes mode.
pub(super) fn destination(
    ctx: &mut Ctx<'_>,
    path: &str,
    d: &model::Destination,
    sink_ns: Option<&str>,
    shape: &Shape,
) -> Option<DestinationConfig> {
    if shape.is_unusable(path) {
        return None;
    }
    let mut ok = true;
    for (field, value) in [("CACerts", &d.ca_certs), ("audience", &d.audience)] {
        if value.is_some() {
            ctx.err(
                &join(path, field),
                format!("{field} is not supported in standalone mode"),
            );
            ok = false;
        }
    }
    let uri_path = join(path, "uri");
    let ref_path = join(path, "ref");
    let sink = d
        .reference
        .as_ref()
        .and_then(|r| Some((r, sink_kind(&r.kind)?)));
    match (&d.reference, sink, sink_ns) {
        (None, _, _) => {}
        (Some(_), None, _) => {
            ctx.err(&ref_path, REF_UNSUPPORTED);
            ok = false;
        }
        (Some(_), Some((_, (kind, _))), None) => {
            ctx.err(
                &ref_path,
                format!("a {kind} ref is supported only as a trigger subscriber; use uri"),
            );
            ok = false;
        }
        (Some(_), Some(_), Some(_)) => {}
    }
    if let (Some((r, (kind, api_version))), Some(trigger_ns)) = (sink, sink_ns) {
        if d.uri.is_some() || shape.is_unusable(&uri_path) {
            ctx.err(
                path,
                "set either uri or ref, not both (a uri relative to a ref is not supported in \
                 standalone mode)",
            );
            ok = false;
        }
        let (name, namespace) = sink_ref(ctx, &ref_path, r, kind, api_version, shape)?;
        if let Some(ns) = &namespace {
            if ns != trigger_ns {
                ctx.err(
                    &join(&ref_path, "namespace"),
                    format!(
                        "a {kind} subscriber must be in the trigger's namespace {trigger_ns:?}, \
                         got {ns:?}"
                    ),
                );
                ok = false;
            }
        }
        let key = ObjectKey::new(trigger_ns, name);
        let destination = match kind {
            "NatsSink" => DestinationConfig::NatsSink(key),
            _ => DestinationConfig::KafkaSink(key),
        };
        return ok.then_some(destination);
    }
    match &d.uri {
        Some(u) => {
            let url = check_url(ctx, &uri_path, u)?;
            ok.then_some(DestinationConfig::Url(url))
        }
        None if shape.is_unusable(&uri_path) => None,
        None => {
            if ok {
                let what = if sink_ns.is_some() {
                    "required: uri (an absolute http or https URL) or ref (a KafkaSink or a NatsSink)"
                } else {
                    "required (an absolute http or https URL)"
                };
                ctx.err(&uri_path, what);
            }
            None
        }
    }
}

/// A subscriber's sink `ref` → (name, namespace if set).
fn sink_ref(
    ctx: &mut Ctx<'_>,
    path: &str,
    r: &KReference,
    kind: &str,
    api_version: &str,
    shape: &Shape,
) -> Option<(String, Option<String>)> {
    if shape.is_unusable(path) {
        return None;
    }
    let api_version_unusable = shape.is_unusable(&join(path, "apiVersion"));
    let mut ok = !api_version_unusable;
    if let Some(av) = r
        .api_version
        .as_deref()
        .filter(|av| !api_version_unusable && *av != api_version)
    {
        ctx.err(
            &join(path, "apiVersion"),
            format!("a {kind} has apiVersion {api_version:?}, got {av:?}"),
        );
        ok = false;
    }
    let name = label(ctx, &join(path, "name"), Some(&r.name), shape);
    let namespace = match &r.namespace {
        None if shape.is_unusable(&join(path, "namespace")) => return None,
        None => None,
        Some(ns) => Some(label(ctx, &join(path, "namespace"), Some(ns), shape)?),
    };
    let name = name?;
    ok.then_some((name, namespace))
}

/// A KafkaSource's or NatsSource's `spec.sink`: `ref` to a Broker (its namespace defaults to the
/// source's, `source_ns`) or `uri`. `CACerts` and `audience` are not supported.
pub(super) fn source_sink(
    ctx: &mut Ctx<'_>,
    d: &model::Destination,
    source_ns: &str,
    shape: &Shape,
) -> Option<SourceSinkConfig> {
    const PATH: &str = "spec.sink";
    if shape.is_unusable(PATH) {
        return None;
    }
    for (field, why) in SOURCE_SINK_UNSUPPORTED {
        let p = join(PATH, field);
        let value = if field == "CACerts" {
            &d.ca_certs
        } else {
            &d.audience
        };
        if value.is_some() || shape.is_given(&p) {
            ctx.err(&p, format!("not supported: {why}"));
        }
    }
    let ref_path = join(PATH, "ref");
    let uri_path = join(PATH, "uri");
    let has_ref = d.reference.is_some() || shape.is_unusable(&ref_path);
    let has_uri = d.uri.is_some() || shape.is_unusable(&uri_path);
    match (has_ref, has_uri) {
        (true, true) => {
            ctx.err(
                PATH,
                "set either uri or ref, not both (a uri relative to a ref is not supported in \
                 standalone mode)",
            );
            None
        }
        (true, false) => {
            if shape.is_unusable(&ref_path) {
                return None;
            }
            let r = d.reference.as_ref()?;
            if r.kind != "Broker" {
                ctx.err(
                    &join(&ref_path, "kind"),
                    format!(
                        "only Broker refs are resolved in standalone mode, got {:?}; use uri for \
                         other destinations",
                        r.kind
                    ),
                );
                return None;
            }
            let (name, namespace) =
                sink_ref(ctx, &ref_path, r, "Broker", EVENTING_API_VERSION, shape)?;
            let namespace = namespace.unwrap_or_else(|| source_ns.to_owned());
            Some(SourceSinkConfig::Broker(BrokerKey::new(namespace, name)))
        }
        (false, true) => {
            let u = d.uri.as_ref()?;
            check_url(ctx, &uri_path, u).map(SourceSinkConfig::Url)
        }
        (false, false) => {
            ctx.err(PATH, "required: ref (a Broker) or uri");
            None
        }
    }
}

/// A DNS-1123 label (`None`, or unusable in pass 1: already reported).
fn label(ctx: &mut Ctx<'_>, path: &str, s: Option<&String>, shape: &Shape) -> Option<String> {
    if shape.is_unusable(path) {
        return None;
    }
    let s = s?;
    if is_dns1123_label(s) {
        Some(s.clone())
    } else {
        ctx.err(path, format!("{s:?} must be a DNS-1123 label"));
        None
    }
}

/// `delivery`. With no field set it is `None` (it does not replace the broker's delivery).
pub(super) fn delivery(
    ctx: &mut Ctx<'_>,
    path: &str,
    m: &model::DeliverySpec,
    shape: &Shape,
) -> Option<DeliveryConfig> {
    let mut d = DeliveryConfig::default();
    let retry_path = join(path, "retry");
    if let Some(n) = m.retry.map(i64::from).or(shape.wide_at(&retry_path)) {
        match u32::try_from(n) {
            _ if n < 0 => ctx.err(&retry_path, format!("must be >= 0, got {n}")),
            Ok(n) => d.retry = Some(n),
            Err(_) => ctx.err(&retry_path, format!("{n} is too large")),
        }
    }
    if let Some(b) = &m.backoff_policy {
        match b.as_str() {
            "linear" => d.backoff_policy = Some(BackoffPolicy::Linear),
            "exponential" => d.backoff_policy = Some(BackoffPolicy::Exponential),
            other => ctx.err(
                &join(path, "backoffPolicy"),
                format!("must be \"linear\" or \"exponential\", got {other:?}"),
            ),
        }
    }
    let duration = |ctx: &mut Ctx<'_>, field: &str, s: &Option<String>, positive: bool| {
        let s = s.as_deref()?;
        let p = join(path, field);
        match parse_iso8601(s) {
            Ok(dur) if positive && dur.is_zero() => {
                ctx.err(&p, format!("must be greater than zero, got {s:?}"));
                None
            }
            Ok(dur) => Some(dur),
            Err(e) => {
                ctx.err(&p, e);
                None::<Duration>
            }
        }
    };
    d.backoff_delay = duration(ctx, "backoffDelay", &m.backoff_delay, false);
    d.backoff_max = duration(ctx, "backoffMax", &m.backoff_max, false);
    d.timeout = duration(ctx, "timeout", &m.timeout, true);
    d.retry_after_max = duration(ctx, "retryAfterMax", &m.retry_after_max, false);
    if let Some(dls) = &m.dead_letter_sink {
        d.dead_letter_sink = match destination(ctx, &join(path, "deadLetterSink"), dls, None, shape)
        {
            Some(DestinationConfig::Url(u)) => Some(u),
            // Only a trigger subscriber may be a KafkaSink or a NatsSink (`sink_ns` is None here).
            Some(DestinationConfig::KafkaSink(_) | DestinationConfig::NatsSink(_)) | None => None,
        };
    }
    if let Some(f) = &m.format {
        match f.as_str() {
            "json" => d.format = Some(Format::Json),
            "binary" => d.format = Some(Format::Binary),
            other => ctx.err(
                &join(path, "format"),
                format!("must be \"json\" or \"binary\", got {other:?}"),
            ),
        }
    }
    (!d.is_empty()).then_some(d)
}
