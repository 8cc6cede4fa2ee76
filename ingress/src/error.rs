//! Ingress errors and their HTTP mapping — the one place where errors become status codes.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use switchyard_broker::channel::ChannelError;
use switchyard_broker::format::{FormatError, FormatErrorKind};

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// The body is not a valid CloudEvent (or batch).
    #[error("{0}")]
    Invalid(FormatError),
    /// A structured/batched format other than JSON.
    #[error("{0}")]
    UnsupportedMediaType(FormatError),
    /// The TTL reached zero: an event loop was detected.
    #[error(
        "knativebrokerttl exhausted: the event has been routed through brokers too many times"
    )]
    TtlExhausted,
    /// The path does not name a broker.
    #[error("no broker at {0}: the path must be /{{namespace}}/{{broker}}")]
    NotFound(String),
    /// The broker does not exist.
    #[error("broker {0} does not exist")]
    UnknownBroker(String),
    /// Method other than POST/OPTIONS.
    #[error("method {0} is not allowed; use POST")]
    MethodNotAllowed(String),
    /// The body is larger than the limit.
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body could not be read.
    #[error("failed to read the request body: {0}")]
    BodyRead(String),
    /// The broker's backlog limit is reached.
    #[error("broker {broker} has {backlog} undelivered events (limit {limit}); retry later")]
    Backlog {
        /// Broker.
        broker: String,
        /// Current backlog.
        backlog: u64,
        /// Limit.
        limit: u64,
    },
    /// The broker's store is full (or below its free-space reserve).
    #[error("the broker's store is full")]
    StoreFull,
    /// Storage failed or the process is shutting down.
    #[error("{0}")]
    Unavailable(String),
}

impl IngressError {
    /// Status code for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            IngressError::Invalid(_) | IngressError::TtlExhausted | IngressError::BodyRead(_) => {
                StatusCode::BAD_REQUEST
            }
            IngressError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngressError::NotFound(_) | IngressError::UnknownBroker(_) => StatusCode::NOT_FOUND,
            IngressError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            IngressError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngressError::Backlog { .. } => StatusCode::TOO_MANY_REQUESTS,
            IngressError::StoreFull => StatusCode::INSUFFICIENT_STORAGE,
            IngressError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Metric label for rejections.
    pub fn reason(&self) -> &'static str {
        match self {
            IngressError::Invalid(_) | IngressError::BodyRead(_) => "invalid",
            IngressError::UnsupportedMediaType(_) => "unsupported_media_type",
            IngressError::TtlExhausted => "ttl_exhausted",
            IngressError::NotFound(_) | IngressError::UnknownBroker(_) => "unknown_broker",
            IngressError::MethodNotAllowed(_) => "method_not_allowed",
            IngressError::TooLarge { .. } => "too_large",
            IngressError::Backlog { .. } => "backlog",
            IngressError::StoreFull => "store_full",
            IngressError::Unavailable(_) => "unavailable",
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            IngressError::Invalid(e) | IngressError::UnsupportedMediaType(e) => e.field.as_deref(),
            IngressError::TtlExhausted => Some("knativebrokerttl"),
            _ => None,
        }
    }
}

impl From<FormatError> for IngressError {
    fn from(e: FormatError) -> Self {
        match e.kind {
            FormatErrorKind::Invalid => IngressError::Invalid(e),
            FormatErrorKind::UnsupportedMediaType => IngressError::UnsupportedMediaType(e),
        }
    }
}

impl From<ChannelError> for IngressError {
    fn from(e: ChannelError) -> Self {
        // Clients get the project's own words; the store's wording goes to the logs (the store logs its
        // state transitions once, so this is only a debug line per request).
        match e {
            ChannelError::UnknownBroker(b) => IngressError::UnknownBroker(b.to_string()),
            ChannelError::Full => IngressError::StoreFull,
            ChannelError::Closed => IngressError::Unavailable(
                "the broker is shutting down; retry against another replica or later".into(),
            ),
            other => {
                tracing::debug!(error = %other, "Event not stored.");
                IngressError::Unavailable(
                    "the broker could not store the event; retry later".into(),
                )
            }
        }
    }
}

impl IntoResponse for IngressError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({ "error": self.to_string(), "field": self.field() });
        let mut resp = (status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert(header::ALLOW, HeaderValue::from_static(crate::ALLOW));
        match self {
            IngressError::Backlog { .. } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            IngressError::Unavailable(_) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            IngressError::StoreFull => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            }
            _ => {}
        }
        resp
    }
}
