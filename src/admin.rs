//! The admin listener: `/healthz`, `/readyz`, `/metrics`, and the dead-letter API
//! (`GET /api/v1/deadletters`, `POST /api/v1/deadletters/{id}/redrive`), plus `GET /api/v1/brokers`.

use crate::live::Live;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use switchyard_broker::channel::store::StoreHealth;
use switchyard_broker::channel::{Channel, ChannelError};
use switchyard_broker::config::Backend;
use switchyard_broker::format::json::write_event;
use switchyard_broker::kafka::config::consumer_group;
use switchyard_broker::nats::config::consumer_name as nats_consumer_name;

/// State of the admin server.
#[derive(Clone)]
pub(crate) struct AdminState {
    pub(crate) live: Arc<Live>,
}

/// Builds the admin router.
pub(crate) fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/brokers", get(brokers))
        .route("/api/v1/brokers/{namespace}/{name}/explain", post(explain))
        .route("/api/v1/deadletters", get(dead_letters))
        .route("/api/v1/deadletters/{id}/redrive", post(redrive))
        .with_state(state)
}

/// Ready once the configuration is applied, and while the embedded store takes events: a full or
/// failed store makes the process not ready (with the reason) until it recovers by itself. A Kafka- or
/// JetStream-backed broker whose cluster is down does NOT make the process unready: its other brokers still
/// take events (that broker's readiness is in `/api/v1/brokers` and `switchyard_broker_ready`).
async fn readyz(State(s): State<AdminState>) -> Response {
    if !s.live.ready.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response();
    }
    match s.live.channel.store().health() {
        StoreHealth::Healthy => (StatusCode::OK, "ready").into_response(),
        StoreHealth::Full { reason } => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the broker's store is full ({reason})"),
        )
            .into_response(),
        StoreHealth::Failed { reason } => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the broker's store is recovering from a write failure ({reason})"),
        )
            .into_response(),
    }
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let topology = s.live.topology.load_full();
    for key in topology.triggers.keys() {
        s.live
            .metrics
            .set_backlog(&key.to_string(), s.live.channel.trigger_backlog(key));
    }
    let channel = &s.live.channel;
    s.live.metrics.set_brokers(topology.brokers.keys().map(|b| {
        (
            b.to_string(),
            channel.broker_not_ready(b).is_none(),
            channel.backlog(b),
        )
    }));
    let store = s.live.channel.store();
    let space = store.space();
    s.live.metrics.set_store(
        store.health().is_degraded(),
        space.file_bytes,
        space.free_bytes,
    );
    let mut text = s.live.metrics.render();
    if let Some(c) = &s.live.controller_metrics {
        // One exposition: the first one's `# EOF` terminator goes, the controller's ends it.
        if let Some(stripped) = text.strip_suffix("# EOF\n") {
            text.truncate(stripped.len());
        }
        text.push_str(&c.encode());
    }
    openmetrics(text)
}

/// An OpenMetrics text response.
pub(crate) fn openmetrics(text: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn brokers(State(s): State<AdminState>) -> Json<Value> {
    let topology = s.live.topology.load_full();
    let brokers: Vec<Value> = topology
        .brokers
        .keys()
        .map(|b| {
            let triggers: Vec<Value> = topology
                .triggers
                .values()
                .filter(|t| &t.broker == b)
                .map(|t| {
                    let mut v = json!({
                        "name": t.key.name,
                        "subscriber": t.subscriber.to_string(),
                        "backlog": s.live.channel.trigger_backlog(&t.key),
                    });
                    if s.live.channel.trigger_on_log(&t.key) {
                        // Entries kept in the data dir because the trigger's in-memory window was full.
                        v["overflowBacklog"] =
                            json!(s.live.channel.store().trigger_backlog(&t.key));
                    }
                    v
                })
                .collect();
            let not_ready = s.live.channel.broker_not_ready(b);
            let mut v = json!({
                "namespace": b.namespace,
                "name": b.name,
                "backlog": s.live.channel.backlog(b),
                "ready": not_ready.is_none(),
                "triggers": triggers,
            });
            if let Some(reason) = not_ready {
                v["notReadyReason"] = json!(reason);
            }
            match topology.brokers.get(b).map(|spec| &spec.backend) {
                Some(Backend::Kafka(k)) => {
                    v["backend"] = json!("kafka");
                    v["topic"] = json!(k.topic);
                    v["consumerGroup"] = json!(consumer_group(b));
                    v["invalidRecords"] = json!(s.live.channel.invalid_records(b));
                }
                Some(Backend::NatsJetStream(n)) => {
                    v["backend"] = json!("nats");
                    v["stream"] = json!(n.stream);
                    v["consumer"] = json!(nats_consumer_name(b));
                    v["invalidMessages"] = json!(s.live.channel.invalid_records(b));
                }
                Some(Backend::Embedded) | None => v["backend"] = json!("embedded"),
            }
            v
        })
        .collect();
    Json(json!({ "brokers": brokers }))
}

async fn explain(
    State(s): State<AdminState>,
    Path((namespace, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let (event, _) = match crate::explain::event_from_json(&body) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let topology = s.live.topology.load_full();
    let key = switchyard_broker::config::BrokerKey::new(namespace, name);
    match switchyard_broker::explain::explain(&topology, &key, &event) {
        Some(x) => Json(x).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("broker {key} does not exist"),
        ),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn dead_letters(State(s): State<AdminState>, Query(q): Query<ListQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).min(10_000);
    match s.live.channel.dead_letters(limit) {
        Ok(list) => {
            let items: Vec<Value> = list
                .into_iter()
                .map(|p| {
                    let mut buf = Vec::new();
                    write_event(&p.record.event, &mut buf);
                    let event: Value = serde_json::from_slice(&buf).unwrap_or(Value::Null);
                    json!({
                        "id": p.id,
                        "trigger": p.trigger.to_string(),
                        "parkedAtMs": p.parked_at_ms,
                        "reason": p.record.reason,
                        "errorDest": p.record.error_dest,
                        "errorCode": p.record.error_code,
                        "errorData": p.record.error_data,
                        "event": event,
                    })
                })
                .collect();
            Json(json!({ "deadLetters": items })).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn redrive(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("dead letter id {id:?} is not a number"),
        );
    };
    match s.live.channel.redrive(id).await {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({ "redriven": id }))).into_response(),
        Err(e @ ChannelError::DeadLetterNotFound(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ ChannelError::UnknownTrigger(_)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
