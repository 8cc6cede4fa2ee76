//! Concurrency and isolation: per-trigger in-flight limits, a failing subscriber never delays another
//! trigger, and graceful shutdown finishes in-flight deliveries and hands back the rest.

use crate::common::*;
use std::time::Duration;

#[tokio::test]
async fn max_inflight_annotation_bounds_concurrent_deliveries() {
    let sub = Subscriber::start().await;
    sub.set_default(Reply::status(202).delay(Duration::from_millis(100)));
    let t = "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t\n  annotations:\n    switchyard.dev/max-inflight: \"3\"\nspec:\n  broker: default\n  subscriber:\n    uri: URL\n"
        .replace("URL", &sub.url("/s"));
    let b = TestBroker::start(&config("", &[t])).await;
    let url = b.ingress("/default/default");
    for i in 0..20 {
        let id = i.to_string();
        assert_eq!(post(&url, &ce_headers(&id, "t"), "{}").await.status, 202);
    }
    sub.wait_for("/s", 20).await;
    assert_eq!(
        sub.max_concurrency(),
        3,
        "exactly the configured in-flight limit is used"
    );
    b.shutdown().await;
}

#[tokio::test]
async fn failing_subscriber_does_not_delay_another_trigger() {
    let good = Subscriber::start().await;
    let bad = Subscriber::start().await;
    // The bad subscriber answers 503 slowly, forever; its trigger retries with a long backoff.
    bad.set_default(Reply::status(503).delay(Duration::from_millis(200)));
    let yaml = config(
        "",
        &[
            trigger(
                "bad",
                "  delivery:\n    retry: 50\n    backoffDelay: PT60S\n",
                &bad.url("/bad"),
            ),
            trigger("good", "", &good.url("/good")),
        ],
    );
    let b = TestBroker::start(&yaml).await;
    let url = b.ingress("/default/default");
    for i in 0..300 {
        let id = i.to_string();
        assert_eq!(post(&url, &ce_headers(&id, "t"), "{}").await.status, 202);
    }
    let got = good.wait_for("/good", 300).await;
    assert_eq!(got.len(), 300);
    // The bad trigger is still working through its first attempts (100 in flight at most).
    assert!(bad.received_on("/bad").len() <= 300);
    b.shutdown().await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_delivery_and_does_not_redeliver_it() {
    let dir = tempfile::tempdir().unwrap();
    let sub = Subscriber::start().await;
    sub.script([Reply::status(202).delay(Duration::from_millis(800))]);
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, config("", &[trigger("t", "", &sub.url("/s"))])).unwrap();
    let data = dir.path().join("data");
    let mut p = Process::spawn(&cfg, &data, &["--shutdown-grace", "10s"]);
    let url = format!("http://{}/default/default", p.ingress);
    assert_eq!(post(&url, &ce_headers("slow", "t"), "{}").await.status, 202);
    sub.wait_for("/s", 1).await; // the slow delivery is in flight
    let status = p.sigterm().await;
    assert!(status.success(), "{status:?}");
    // Restart: the finished delivery was acked, so only the new event arrives.
    let p2 = Process::spawn(&cfg, &data, &[]);
    let url = format!("http://{}/default/default", p2.ingress);
    assert_eq!(
        post(&url, &ce_headers("after", "t"), "{}").await.status,
        202
    );
    let got = sub.wait_for("/s", 2).await;
    let ids: Vec<String> = got.iter().filter_map(|r| r.header("ce-id")).collect();
    assert_eq!(ids, vec!["slow", "after"]);
}

#[tokio::test]
async fn shutdown_hands_back_deliveries_waiting_for_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let sub = Subscriber::start().await;
    sub.script([Reply::status(500)]);
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        config(
            "",
            &[trigger(
                "t",
                "  delivery:\n    retry: 3\n    backoffPolicy: linear\n    backoffDelay: PT30S\n",
                &sub.url("/s"),
            )],
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut p = Process::spawn(&cfg, &data, &["--shutdown-grace", "10s"]);
    let url = format!("http://{}/default/default", p.ingress);
    assert_eq!(
        post(&url, &ce_headers("retrying", "t"), "{}").await.status,
        202
    );
    sub.wait_for("/s", 1).await; // first attempt failed; now waiting 30 s for the retry
    let started = std::time::Instant::now();
    let status = p.sigterm().await;
    assert!(status.success());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "shutdown must not wait for the 30 s backoff"
    );
    // After restart the entry is delivered again (it was handed back, not dropped).
    let _p2 = Process::spawn(&cfg, &data, &[]);
    let got = sub.wait_for("/s", 2).await;
    assert_eq!(got[1].header("ce-id").as_deref(), Some("retrying"));
}
