//! Pass 2 for `metadata`: name and namespace, annotations.

use crate::config::manifest::fields::Ctx;
use crate::config::manifest::names::DEFAULT_NAMESPACE;
use crate::config::manifest::shape::Shape;
use crate::config::rules::is_dns1123_label;
use crate::model::object::ObjectMeta;

/// Validated `metadata`: namespace (defaulted) and name, with the annotations.
pub(super) struct Meta<'o> {
    pub(super) namespace: String,
    pub(super) name: String,
    meta: &'o ObjectMeta,
    shape: &'o Shape,
}

impl Meta<'_> {
    /// `None`: not set; `Some(None)`: set to a value that is not a scalar.
    pub(super) fn annotation(&self, key: &str) -> Option<Option<String>> {
        match self.meta.annotations.get(key) {
            Some(v) => Some(Some(v.clone())),
            None => self
                .shape
                .is_unusable(&format!("metadata.annotations.{key}"))
                .then_some(None),
        }
    }

    pub(super) fn positive_annotation(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<u64> {
        match self.annotation(key)? {
            Some(s) => match s.trim().parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    ctx.err(
                        "metadata.annotations",
                        format!("{key:?} must be a positive integer, got {s:?}"),
                    );
                    None
                }
            },
            None => {
                ctx.err(
                    "metadata.annotations",
                    format!("{key:?} must be a positive integer"),
                );
                None
            }
        }
    }
}

/// Name and namespace must be DNS-1123 labels; `None` when they are not (or pass 1 found `metadata`
/// unusable).
pub(super) fn metadata<'o>(
    ctx: &mut Ctx<'_>,
    meta: &'o ObjectMeta,
    shape: &'o Shape,
) -> Option<Meta<'o>> {
    if shape.is_unusable("metadata") {
        return None;
    }
    let name = if shape.is_unusable("metadata.name") {
        None
    } else if is_dns1123_label(&meta.name) {
        Some(meta.name.clone())
    } else {
        ctx.err(
            "metadata.name",
            format!(
                "{:?} must be a DNS-1123 label: at most 63 lower-case letters, digits or '-', \
                 starting and ending with a letter or digit",
                meta.name
            ),
        );
        None
    };
    let namespace = if shape.is_unusable("metadata.namespace") {
        None
    } else {
        match &meta.namespace {
            None => Some(DEFAULT_NAMESPACE.to_owned()),
            Some(s) if is_dns1123_label(s) => Some(s.clone()),
            Some(s) => {
                ctx.err(
                    "metadata.namespace",
                    format!("{s:?} must be a DNS-1123 label"),
                );
                None
            }
        }
    };
    Some(Meta {
        namespace: namespace?,
        name: name?,
        meta,
        shape,
    })
}

/// The namespace of validated `metadata`, [`DEFAULT_NAMESPACE`] when it is not valid (so that what
/// depends on it is still checked).
pub(super) fn namespace_or_default<'m>(meta: &'m Option<Meta<'_>>) -> &'m str {
    meta.as_ref().map_or(DEFAULT_NAMESPACE, |m| &m.namespace)
}

/// [`metadata`] for a kind whose `spec` is required (problems in `metadata` are reported first);
/// `None` when pass 1 found `spec` unusable (then nothing in it is checked).
pub(super) fn metadata_with_spec<'o>(
    ctx: &mut Ctx<'_>,
    meta: &'o ObjectMeta,
    shape: &'o Shape,
) -> Option<Option<Meta<'o>>> {
    let meta = metadata(ctx, meta, shape);
    (!shape.is_unusable("spec")).then_some(meta)
}
