//! What the structural pass knows about a document beyond its typed object, for the validation pass:
//! fields that were written but could not be kept in the typed object (the wrong JSON type, already
//! reported; or a value the loader only needs to know is there), and fields whose typed default cannot
//! tell "absent" from "empty".

use std::collections::{BTreeMap, BTreeSet};

/// Per-document notes of the structural pass, by field path (`spec.subscriber.uri`).
#[derive(Debug, Default)]
pub(super) struct Shape {
    unusable: BTreeSet<String>,
    given: BTreeSet<String>,
    wide: BTreeMap<String, i64>,
}

impl Shape {
    /// The field at `path` was written but is not in the typed object (its problem, if it has one the
    /// structural pass can name, is reported).
    pub(super) fn unusable(&mut self, path: impl Into<String>) {
        self.unusable.insert(path.into());
    }

    pub(super) fn is_unusable(&self, path: &str) -> bool {
        self.unusable.contains(path)
    }

    /// The field at `path` was written (its typed value may be the type's default).
    pub(super) fn given(&mut self, path: impl Into<String>) {
        self.given.insert(path.into());
    }

    pub(super) fn is_given(&self, path: &str) -> bool {
        self.given.contains(path)
    }

    /// An integer written at `path` that the typed field (`i32`) cannot hold.
    pub(super) fn wide(&mut self, path: impl Into<String>, n: i64) {
        self.wide.insert(path.into(), n);
    }

    pub(super) fn wide_at(&self, path: &str) -> Option<i64> {
        self.wide.get(path).copied()
    }
}
