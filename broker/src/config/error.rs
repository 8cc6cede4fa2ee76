//! Config problems: each one names the file, the document and the field path.

use std::fmt;

/// One config problem: file (as given by the user, or the file inside a given directory), 1-based document
/// index in a multi-document YAML, field path, message. Display is exactly
/// `{file} doc {doc}: {path}: {message}`, e.g.
/// `triggers.yaml doc 2: spec.filter.attributes: key "Type" must match ^[a-z][a-z0-9]*$`
///
/// Problems that are not about one document (a file that cannot be read) have `doc` 0 and path `(file)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file} doc {doc}: {path}: {message}")]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// 1-based index of the YAML document in the file.
    pub doc: usize,
    /// Field path inside the document (`spec.delivery.backoffDelay`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// All problems found (report them all, not just the first). Display: one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
