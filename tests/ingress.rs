//! Ingress status codes and validation over real HTTP (Switchyard decision 9), including the
//! CloudEvents JSON conformance fixtures sent in structured and batched mode.

mod common;
use common::*;
use switchyard_ingress::Limits;

fn fixtures(name: &str) -> Vec<serde_json::Value> {
    let path = format!(
        "{}/broker/tests/data/ce-conformance/format/json/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["tests"].as_array().unwrap().clone()
}

const STRUCTURED: (&str, &str) = ("content-type", "application/cloudevents+json");
const BATCH: (&str, &str) = ("content-type", "application/cloudevents-batch+json");

#[tokio::test]
async fn conformance_fixtures_in_structured_and_batch_mode() {
    let sub = Subscriber::start().await;
    let b = TestBroker::start(&config("", &[trigger("t", "", &sub.url("/s"))])).await;
    let url = b.ingress("/default/default");
    for case in fixtures("valid-events") {
        let r = post(&url, &[STRUCTURED], case["event"].to_string()).await;
        assert_eq!(
            r.status,
            202,
            "{}: {}",
            case["id"],
            String::from_utf8_lossy(&r.body)
        );
    }
    for case in fixtures("invalid-events") {
        let r = post(&url, &[STRUCTURED], case["event"].to_string()).await;
        assert_eq!(r.status, 400, "{} must be rejected", case["id"]);
        let v = r.json();
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{}",
            case["id"]
        );
    }
    let mut expected = fixtures("valid-events").len();
    for case in fixtures("valid-batches") {
        let r = post(&url, &[BATCH], case["batch"].to_string()).await;
        assert_eq!(r.status, 202, "{}", case["id"]);
        expected += case["batch"].as_array().unwrap().len();
    }
    for case in fixtures("invalid-batches") {
        let r = post(&url, &[BATCH], case["batch"].to_string()).await;
        assert_eq!(r.status, 400, "{} must be rejected", case["id"]);
    }
    // Everything accepted is delivered, nothing rejected is (invalid batches are all-or-nothing).
    sub.wait_for("/s", expected).await;
    let sentinel = ce_headers("sentinel", "t");
    assert_eq!(post(&url, &sentinel, "{}").await.status, 202);
    let got = sub.wait_for("/s", expected + 1).await;
    assert_eq!(got.len(), expected + 1);
    b.shutdown().await;
}

#[tokio::test]
async fn status_codes_follow_the_contract() {
    let b = TestBroker::start(&config("", &[])).await;
    let url = b.ingress("/default/default");

    let r = request("OPTIONS", &url, &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("allow").as_deref(), Some("POST, OPTIONS"));
    assert_eq!(r.header("webhook-allowed-origin").as_deref(), Some("*"));
    assert_eq!(r.header("webhook-allowed-rate").as_deref(), Some("*"));

    for m in ["GET", "PUT", "DELETE", "PATCH"] {
        let r = request(m, &url, &[], "").await;
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow").as_deref(), Some("POST, OPTIONS"));
    }

    let r = post(&b.ingress("/default/nope"), &ce_headers("1", "t"), "{}").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("default/nope"));
    assert_eq!(
        post(&b.ingress("/"), &ce_headers("1", "t"), "{}")
            .await
            .status,
        404
    );
    assert_eq!(
        post(&b.ingress("/a/b/c"), &ce_headers("1", "t"), "{}")
            .await
            .status,
        404
    );
    // trailing slash tolerated
    assert_eq!(
        post(&b.ingress("/default/default/"), &ce_headers("1", "t"), "{}")
            .await
            .status,
        202
    );

    // Missing ce-id → 400 naming the field.
    let r = post(
        &url,
        &[
            ("ce-specversion", "1.0"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 400);
    let v = r.json();
    assert!(v["field"].as_str().unwrap().contains("id"), "{v}");

    // Unsupported spec version.
    let mut h = ce_headers("1", "t");
    h[0] = ("ce-specversion", "19.0");
    assert_eq!(post(&url, &h, "{}").await.status, 400);

    // 0.3 is accepted.
    let mut h = ce_headers("1", "t");
    h[0] = ("ce-specversion", "0.3");
    assert_eq!(post(&url, &h, "{}").await.status, 202);

    // 415 for non-JSON structured formats.
    let r = post(
        &url,
        &[("content-type", "application/cloudevents+xml")],
        "<e/>",
    )
    .await;
    assert_eq!(r.status, 415);

    // Invalid percent-encoding (overlong UTF-8) is rejected.
    let mut h = ce_headers("1", "t");
    h.push(("ce-myext", "%C0%A0"));
    assert_eq!(post(&url, &h, "{}").await.status, 400);

    // TTL: 1 is decremented to 0 → loop → 400.
    let mut h = ce_headers("1", "t");
    h.push(("ce-knativebrokerttl", "1"));
    let r = post(&url, &h, "{}").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "knativebrokerttl");
    b.shutdown().await;
}

#[tokio::test]
async fn oversized_events_get_413() {
    let limits = Limits {
        max_event_bytes: 64 * 1024,
        ..Limits::default()
    };
    let b = TestBroker::start_with(&config("", &[]), limits).await;
    let url = b.ingress("/default/default");
    let ok = vec![b'a'; 60 * 1024];
    let mut h = ce_headers("1", "t");
    h[4] = ("content-type", "text/plain");
    assert_eq!(post(&url, &h, ok).await.status, 202);
    let big = vec![b'a'; 65 * 1024];
    let r = post(&url, &h, big).await;
    assert_eq!(r.status, 413);
    assert!(b.metrics().await.contains("reason=\"too_large\""));
    b.shutdown().await;
}

#[tokio::test]
async fn backlog_limit_gives_429_with_retry_after() {
    // Subscriber that never answers successfully: entries stay in the backlog.
    let sub = Subscriber::start().await;
    sub.set_default(Reply::status(500));
    let broker = "metadata:\n  name: default\n  annotations:\n    switchyard.dev/max-backlog: \"2\"\nspec:\n  delivery:\n    retry: 100\n    backoffDelay: PT10S\n";
    let yaml = format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\n{broker}---\n{}",
        trigger("t", "", &sub.url("/s"))
    );
    let b = TestBroker::start(&yaml).await;
    let url = b.ingress("/default/default");
    b.send("1", "t").await;
    b.send("2", "t").await;
    let r = post(&url, &ce_headers("3", "t"), "{}").await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    b.shutdown().await;
}

#[tokio::test]
async fn binary_mode_header_values_are_percent_decoded() {
    let sub = Subscriber::start().await;
    let b = TestBroker::start(&config(
        "",
        &[trigger(
            "t",
            "  delivery:\n    format: json\n",
            &sub.url("/s"),
        )],
    ))
    .await;
    let mut h = ce_headers("1", "t");
    h.push(("ce-greeting", "Euro%20%e2%82%ac%20%F0%9F%98%80"));
    h.push(("ce-quoted", "\"a \\\"b\\\"\""));
    assert_eq!(
        post(&b.ingress("/default/default"), &h, "{}").await.status,
        202
    );
    let got = sub.wait_for("/s", 1).await;
    let v: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(v["greeting"], "Euro € 😀");
    assert_eq!(v["quoted"], "a \"b\"");
    assert!(v["knativearrivaltime"].is_string());
    b.shutdown().await;
}
