//! # switchyard-ingress
//!
//! The HTTP receiver of Switchyard brokers: `POST /{namespace}/{broker}` with a CloudEvent in binary,
//! structured (JSON) or batched mode. An event is acknowledged with 202 only after the channel reports it
//! durably stored. See `error.rs` for the status code of every failure.
//!
//! [`router`] builds the axum `Router` without binding a socket, so tests can drive it with `oneshot`.

#![warn(missing_docs)]

mod error;
pub mod listener;

pub use error::IngressError;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use switchyard_broker::channel::Channel;
use switchyard_broker::config::{BrokerKey, Topology};
use switchyard_broker::format::http::{parse_request, Message};
use switchyard_broker::metrics::{BrokerMetrics, Metrics};

/// Value of the `Allow` header on every response.
pub const ALLOW: &str = "POST, OPTIONS";

/// Ingress limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Max bytes of a single (binary or structured) event request.
    pub max_event_bytes: usize,
    /// Max bytes of a batched request body.
    pub max_batch_bytes: usize,
    /// Default per-broker backlog limit (undelivered queue entries) before 429.
    pub max_backlog: u64,
    /// Max open ingress connections (more wait in the kernel's accept backlog).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: 1024 * 1024,
            max_batch_bytes: 8 * 1024 * 1024,
            max_backlog: 1_000_000,
            max_connections: 10_000,
        }
    }
}

/// Per-broker state the handler needs, rebuilt on every topology change.
#[derive(Debug)]
struct BrokerEntry {
    key: BrokerKey,
    label: String,
    metrics: BrokerMetrics,
    max_backlog: u64,
}

/// Shared ingress state.
pub struct Ingress {
    channel: Arc<dyn Channel>,
    metrics: Arc<Metrics>,
    limits: Limits,
    /// `"namespace/name"` → broker entry.
    brokers: ArcSwap<HashMap<String, Arc<BrokerEntry>>>,
    draining: AtomicBool,
}

impl std::fmt::Debug for Ingress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingress")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Ingress {
    /// Creates the ingress over a channel.
    pub fn new(channel: Arc<dyn Channel>, metrics: Arc<Metrics>, limits: Limits) -> Arc<Ingress> {
        Arc::new(Ingress {
            channel,
            metrics,
            limits,
            brokers: ArcSwap::from_pointee(HashMap::new()),
            draining: AtomicBool::new(false),
        })
    }

    /// Installs the brokers of a (new) topology.
    pub fn apply(&self, topology: &Topology) {
        let map = topology
            .brokers
            .iter()
            .map(|(key, spec)| {
                let label = key.to_string();
                let entry = BrokerEntry {
                    key: key.clone(),
                    metrics: self.metrics.broker(&label),
                    max_backlog: spec.max_backlog.unwrap_or(self.limits.max_backlog),
                    label: label.clone(),
                };
                (label, Arc::new(entry))
            })
            .collect();
        self.brokers.store(Arc::new(map));
    }

    /// Stops accepting events: every later request gets 503.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    async fn handle(&self, req: Request) -> Result<Response, IngressError> {
        let method = req.method().clone();
        if method == Method::OPTIONS {
            return Ok(options_response());
        }
        if method != Method::POST {
            return Err(IngressError::MethodNotAllowed(method.to_string()));
        }
        if self.draining.load(Ordering::Relaxed) {
            return Err(IngressError::Unavailable(
                "the broker is shutting down; retry against another replica or later".into(),
            ));
        }
        let path = req.uri().path();
        let trimmed = path.trim_matches('/');
        let mut parts = trimmed.split('/');
        let (ns, name) = match (parts.next(), parts.next(), parts.next()) {
            (Some(ns), Some(name), None) if !ns.is_empty() && !name.is_empty() => (ns, name),
            _ => return Err(IngressError::NotFound(path.to_owned())),
        };
        // Exactly two non-empty segments: `trimmed` is `"ns/name"`, the map's key (no label built).
        debug_assert_eq!(trimmed.len(), ns.len() + 1 + name.len());
        let Some(broker) = self.brokers.load().get(trimmed).cloned() else {
            return Err(IngressError::UnknownBroker(trimmed.to_owned()));
        };
        let result = self.accept(&broker, req).await;
        match &result {
            Ok(n) => {
                broker.metrics.accepted.inc_by(*n as u64);
            }
            Err(e) => self.metrics.rejected(&broker.label, e.reason(), 1),
        }
        result.map(|_| StatusCode::ACCEPTED.into_response())
    }

    async fn accept(&self, broker: &BrokerEntry, req: Request) -> Result<usize, IngressError> {
        let (parts, body) = req.into_parts();
        let is_batch = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.len() >= 29 && ct[..29].eq_ignore_ascii_case("application/cloudevents-batch")
            });
        let limit = if is_batch {
            self.limits.max_batch_bytes
        } else {
            self.limits.max_event_bytes
        };
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(IngressError::TooLarge { limit });
        }
        let bytes = match Limited::new(body, limit).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(IngressError::TooLarge { limit })
            }
            Err(e) => return Err(IngressError::BodyRead(e.to_string())),
        };
        let mut events = match parse_request(&parts.headers, bytes)? {
            Message::Single(e) => vec![e],
            Message::Batch(v) => v,
        };
        if events.is_empty() {
            return Ok(0);
        }
        if is_batch {
            for e in &events {
                if e.approx_size() > self.limits.max_event_bytes {
                    return Err(IngressError::TooLarge {
                        limit: self.limits.max_event_bytes,
                    });
                }
            }
        }
        let arrival = switchyard_broker::time::now_rfc3339();
        for e in &mut events {
            if !e.stamp_ingress(&arrival) {
                return Err(IngressError::TtlExhausted);
            }
        }
        let backlog = self.channel.backlog(&broker.key);
        if backlog >= broker.max_backlog {
            return Err(IngressError::Backlog {
                broker: broker.label.clone(),
                backlog,
                limit: broker.max_backlog,
            });
        }
        let n = events.len();
        self.channel.append(&broker.key, events).await?;
        Ok(n)
    }
}

fn options_response() -> Response {
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    h.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    h.insert("webhook-allowed-origin", HeaderValue::from_static("*"));
    h.insert("webhook-allowed-rate", HeaderValue::from_static("*"));
    resp
}

async fn handler(State(ingress): State<Arc<Ingress>>, req: Request<Body>) -> Response {
    match ingress.handle(req).await {
        Ok(mut resp) => {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
            resp
        }
        Err(e) => {
            // Not logged above debug per request: a failing store or backend logs its transitions.
            tracing::debug!(error = %e, "Ingress rejected a request.");
            // The body may be partly unread: hyper ends the connection after this response (and
            // `listener` closes it lingering, so the client can read the response). Saying so keeps
            // clients from sending their next request on it.
            let unread_body =
                matches!(e, IngressError::TooLarge { .. } | IngressError::BodyRead(_));
            let mut resp = e.into_response();
            if unread_body {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            resp
        }
    }
}

/// The ingress router: every path and method goes through one handler so that status codes follow the
/// Knative/Switchyard contract exactly (404/405/OPTIONS included).
pub fn router(ingress: Arc<Ingress>) -> Router {
    Router::new().fallback(handler).with_state(ingress)
}
