//! Router tests without a socket (`oneshot`), with a channel that fails on demand: storage failures
//! give 503, shutting down gives 503, a batch is appended as one call (all-or-nothing).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use switchyard_broker::channel::{
    BoxFuture, Channel, ChannelError, EntryId, ParkRecord, ParkedEvent, Result, Subscription,
};
use switchyard_broker::config::{BrokerConfig, BrokerKey, Topology, TriggerKey};
use switchyard_broker::event::Event;
use switchyard_broker::metrics::Metrics;
use switchyard_ingress::{router, Ingress, Limits};
use tower::ServiceExt;

#[derive(Default)]
struct FakeChannel {
    fail: AtomicBool,
    full: AtomicBool,
    appended: Mutex<Vec<Vec<Event>>>,
}

impl Channel for FakeChannel {
    fn apply_topology(&self, _t: Arc<Topology>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    fn append<'a>(&'a self, _b: &'a BrokerKey, events: Vec<Event>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if self.fail.load(Ordering::SeqCst) {
                return Err(ChannelError::Storage(
                    "I/O error: Previous I/O error occurred. Please close and re-open the database."
                        .into(),
                ));
            }
            if self.full.load(Ordering::SeqCst) {
                return Err(ChannelError::Full);
            }
            self.appended.lock().push(events);
            Ok(())
        })
    }
    fn subscribe(&self, t: &TriggerKey) -> Result<Box<dyn Subscription>> {
        Err(ChannelError::UnknownTrigger(t.clone()))
    }
    fn ack<'a>(&'a self, _t: &'a TriggerKey, _s: EntryId) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    fn park<'a>(
        &'a self,
        _t: &'a TriggerKey,
        _s: EntryId,
        _r: ParkRecord,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    fn backlog(&self, _b: &BrokerKey) -> u64 {
        0
    }
    fn trigger_backlog(&self, _t: &TriggerKey) -> u64 {
        0
    }
    fn dead_letters(&self, _l: usize) -> Result<Vec<ParkedEvent>> {
        Ok(vec![])
    }
    fn redrive(&self, id: u64) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { Err(ChannelError::DeadLetterNotFound(id)) })
    }
    fn flush(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

fn setup() -> (Arc<FakeChannel>, Arc<Ingress>) {
    let channel = Arc::new(FakeChannel::default());
    let ingress = Ingress::new(channel.clone(), Arc::new(Metrics::new()), Limits::default());
    let broker = BrokerConfig {
        key: BrokerKey::new("default", "b"),
        class: "MTChannelBasedBroker".into(),
        delivery: None,
        max_backlog: None,
        config: Default::default(),
        backend: Default::default(),
    };
    ingress.apply(&Topology::new(vec![broker], vec![]));
    (channel, ingress)
}

fn event_request() -> Request<Body> {
    Request::post("/default/b")
        .header("ce-specversion", "1.0")
        .header("ce-id", "1")
        .header("ce-source", "/s")
        .header("ce-type", "t")
        .body(Body::from("hello"))
        .unwrap()
}

async fn json_body(resp: axum::response::Response) -> serde_json::Value {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn storage_failure_is_503_with_retry_after_and_nothing_is_acknowledged() {
    let (channel, ingress) = setup();
    channel.fail.store(true, Ordering::SeqCst);
    let resp = router(ingress).oneshot(event_request()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().get("retry-after").is_some());
    let v = json_body(resp).await;
    // The project's own words, never the storage library's.
    assert_eq!(
        v["error"], "the broker could not store the event; retry later",
        "{v}"
    );
    assert!(!v.to_string().contains("I/O"), "{v}");
    assert!(channel.appended.lock().is_empty());
}

#[tokio::test]
async fn full_store_is_507_with_retry_after_in_our_words() {
    let (channel, ingress) = setup();
    channel.full.store(true, Ordering::SeqCst);
    let resp = router(ingress).oneshot(event_request()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(resp.headers()["retry-after"], "10");
    let v = json_body(resp).await;
    assert_eq!(
        v,
        serde_json::json!({"error": "the broker's store is full", "field": null})
    );
    assert!(channel.appended.lock().is_empty());
}

#[tokio::test]
async fn draining_ingress_answers_503() {
    let (channel, ingress) = setup();
    ingress.start_draining();
    let resp = router(ingress).oneshot(event_request()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(channel.appended.lock().is_empty());
}

#[tokio::test]
async fn accepted_event_carries_ttl_and_arrival_time() {
    let (channel, ingress) = setup();
    let resp = router(ingress).oneshot(event_request()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let appended = channel.appended.lock();
    let e = &appended[0][0];
    assert_eq!(e.ttl(), Some(255));
    assert!(e.extension("knativearrivaltime").is_some());
    assert_eq!(e.data.bytes().map(|b| &b[..]), Some(&b"hello"[..]));
}

#[tokio::test]
async fn batch_is_one_append_and_an_invalid_member_rejects_all() {
    let (channel, ingress) = setup();
    let app = router(ingress);
    let ok = r#"[{"specversion":"1.0","id":"a","source":"/s","type":"t"},{"specversion":"1.0","id":"b","source":"/s","type":"t"}]"#;
    let req = Request::post("/default/b")
        .header("content-type", "application/cloudevents-batch+json")
        .body(Body::from(ok))
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(channel.appended.lock().len(), 1);
    assert_eq!(channel.appended.lock()[0].len(), 2);
    let bad = r#"[{"specversion":"1.0","id":"a","source":"/s","type":"t"},{"specversion":"1.0","source":"/s","type":"t"}]"#;
    let req = Request::post("/default/b")
        .header("content-type", "application/cloudevents-batch+json")
        .body(Body::from(bad))
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v = json_body(resp).await;
    assert_eq!(v["field"], "[1].id", "{v}");
    assert_eq!(
        channel.appended.lock().len(),
        1,
        "nothing of the invalid batch is stored"
    );
}

#[tokio::test]
async fn declared_content_length_over_limit_is_413_before_reading() {
    let (_channel, ingress) = setup();
    let req = Request::post("/default/b")
        .header("ce-specversion", "1.0")
        .header("ce-id", "1")
        .header("ce-source", "/s")
        .header("ce-type", "t")
        .header("content-length", "999999999")
        .body(Body::empty())
        .unwrap();
    let resp = router(ingress).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
