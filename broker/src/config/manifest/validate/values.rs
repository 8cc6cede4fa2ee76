//! Pass 2 for what the Kafka and NATS kinds share: fields Switchyard does not support, `contentMode`,
//! lists of servers.

use crate::config::manifest::fields::{join, Ctx};
use crate::config::manifest::shape::Shape;
use crate::config::ContentMode;

/// The Knative fields of `spec` Switchyard does not support (`(field name, reason)`) that are written:
/// `set` says whether the typed field holds a value (pass 1 notes every one written as given).
pub(super) fn unsupported(
    ctx: &mut Ctx<'_>,
    fields: &[(&str, &str)],
    set: impl Fn(&str) -> bool,
    shape: &Shape,
) {
    for (field, why) in fields {
        let path = join("spec", field);
        if set(field) || shape.is_given(&path) {
            ctx.err(&path, format!("not supported: {why}"));
        }
    }
}

/// `spec.contentMode` of a KafkaSink or NatsSink: `binary` (the default) or `structured`.
pub(super) fn content_mode(
    ctx: &mut Ctx<'_>,
    mode: Option<&str>,
    shape: &Shape,
) -> Option<ContentMode> {
    const PATH: &str = "spec.contentMode";
    if shape.is_unusable(PATH) {
        return None;
    }
    match mode {
        None | Some("binary") => Some(ContentMode::Binary),
        Some("structured") => Some(ContentMode::Structured),
        Some(other) => {
            ctx.err(
                PATH,
                format!("must be \"binary\" (the default) or \"structured\", got {other:?}"),
            );
            None
        }
    }
}

/// Strings at (path, value), each parsed as a comma-separated list (problems reported at its path) →
/// one comma-separated string. An item pass 1 found unusable (already reported) makes it `None`.
pub(super) fn joined_lists<'s>(
    ctx: &mut Ctx<'_>,
    items: impl IntoIterator<Item = (String, &'s str)>,
    parse: fn(&str) -> Result<String, Vec<String>>,
    shape: &Shape,
) -> Option<String> {
    let mut out = Vec::new();
    let mut ok = true;
    for (p, item) in items {
        if shape.is_unusable(&p) {
            ok = false;
            continue;
        }
        match parse(item) {
            Ok(list) => out.push(list),
            Err(problems) => {
                for m in problems {
                    ctx.err(&p, m);
                }
                ok = false;
            }
        }
    }
    ok.then(|| out.join(","))
}

/// An optional string field: `Some(None)` when absent, `Some(Some(_))` when `valid`; `None` when pass 1
/// found it unusable or it is not valid (then `message` of the value is reported at `path`).
pub(super) fn optional_text(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: Option<&String>,
    valid: impl Fn(&str) -> bool,
    message: impl Fn(&str) -> String,
    shape: &Shape,
) -> Option<Option<String>> {
    match v {
        _ if shape.is_unusable(path) => None,
        None => Some(None),
        Some(s) if valid(s) => Some(Some(s.clone())),
        Some(s) => {
            ctx.err(path, message(s));
            None
        }
    }
}
