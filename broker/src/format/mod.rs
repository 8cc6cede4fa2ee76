//! CloudEvents encodings: the JSON event format ([`json`]), the HTTP protocol binding ([`http`]),
//! header value percent-encoding ([`percent`]), attribute validation ([`validate`]), the compact binary
//! storage encoding ([`codec`]) and the binary content mode shared by the HTTP, Kafka and NATS bindings
//! (`binary.rs`; the Kafka and NATS bindings live in their components, [`crate::kafka::binding`] and
//! [`crate::nats::binding`]).
//!
//! Every parser validates the CloudEvents MUST rules (see `cloudevents-rules.md` Part A) and returns a
//! [`FormatError`] naming the offending attribute or field; nothing here panics on bad input.

pub(crate) mod binary;
pub mod codec;
pub mod http;
pub mod json;
pub mod percent;
pub mod validate;

/// What kind of problem; the ingress maps Invalid→400, UnsupportedMediaType→415.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatErrorKind {
    /// The message is not a valid CloudEvent (or batch) in a supported encoding.
    Invalid,
    /// The message uses a structured or batch format other than JSON.
    UnsupportedMediaType,
}

/// An encoding/validation error naming the problem and, where there is one, the attribute/field
/// (e.g. field `time`, `ce-id`, `[2].source` for the third event of a batch, `data_base64`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FormatError {
    /// What kind of problem.
    pub kind: FormatErrorKind,
    /// Human-readable description of the problem (safe to return to the client).
    pub message: String,
    /// The attribute, header or member concerned, if there is one.
    pub field: Option<String>,
}

impl FormatError {
    /// An [`FormatErrorKind::Invalid`] error about `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> FormatError {
        FormatError {
            kind: FormatErrorKind::Invalid,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// An [`FormatErrorKind::Invalid`] error that concerns no single field.
    pub fn invalid_message(message: impl Into<String>) -> FormatError {
        FormatError {
            kind: FormatErrorKind::Invalid,
            message: message.into(),
            field: None,
        }
    }

    /// An [`FormatErrorKind::UnsupportedMediaType`] error.
    pub fn unsupported(message: impl Into<String>) -> FormatError {
        FormatError {
            kind: FormatErrorKind::UnsupportedMediaType,
            message: message.into(),
            field: Some("content-type".to_owned()),
        }
    }

    /// Prefixes the field (e.g. `"[2]."` for a batch element); an error without a field gets the bare
    /// prefix without its trailing dot.
    pub(crate) fn prefixed(mut self, prefix: &str) -> FormatError {
        self.field = Some(match self.field.take() {
            Some(f) => format!("{prefix}.{f}"),
            None => prefix.to_owned(),
        });
        self.message = format!("{prefix}: {}", self.message);
        self
    }
}
