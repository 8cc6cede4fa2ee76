//! Delivery behaviour against real HTTP subscribers: headers, retries and their timing, Retry-After,
//! dead-letter sinks and their extensions, parking and redrive, replies and loop termination.

use crate::common::*;
use base64::Engine;
use std::time::Duration;

fn ingress_url(b: &TestBroker) -> String {
    b.ingress("/default/default")
}

#[tokio::test]
async fn subscriber_gets_knative_headers_and_no_ttl() {
    let sub = Subscriber::start().await;
    let b = TestBroker::start(&config("", &[trigger("t", "", &sub.url("/s"))])).await;
    let mut h = ce_headers("1", "t");
    h.push((
        "ce-traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ));
    h.push(("ce-knativebrokerttl", "10"));
    assert_eq!(post(&ingress_url(&b), &h, "{}").await.status, 202);
    let got = sub.wait_for("/s", 1).await;
    let r = &got[0];
    assert_eq!(r.header("prefer").as_deref(), Some("reply"));
    assert_eq!(r.header("kn-namespace").as_deref(), Some("default"));
    assert_eq!(
        r.header("traceparent").as_deref(),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
    assert!(
        r.header("ce-knativebrokerttl").is_none(),
        "TTL must be removed before delivery"
    );
    assert!(r.header("ce-knativearrivaltime").is_some());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(r.header("ce-datacontenttype").is_none());
    b.shutdown().await;
}

#[tokio::test]
async fn format_json_delivers_structured_mode() {
    let sub = Subscriber::start().await;
    let t = trigger("t", "  delivery:\n    format: json\n", &sub.url("/s"));
    let b = TestBroker::start(&config("", &[t])).await;
    assert_eq!(
        post(&ingress_url(&b), &ce_headers("1", "t"), "{\"a\":1}")
            .await
            .status,
        202
    );
    let got = sub.wait_for("/s", 1).await;
    assert!(got[0]
        .header("content-type")
        .unwrap()
        .starts_with("application/cloudevents+json"));
    let v: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(v["id"], "1");
    assert_eq!(v["data"]["a"], 1);
    assert!(v.get("knativebrokerttl").is_none());
    // The official Rust SDK reads what we send.
    use cloudevents::AttributesReader;
    let ce: cloudevents::Event = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(ce.id(), "1");
    assert_eq!(ce.ty(), "t");
    assert_eq!(ce.source().as_str(), "/test");
    b.shutdown().await;
}

/// Linear backoff PT0.2S with 3 retries: waits 200, 400, 600 ms (decision 1).
#[tokio::test]
async fn retry_timings_follow_linear_backoff() {
    let sub = Subscriber::start().await;
    sub.script([Reply::status(503), Reply::status(500), Reply::status(429)]);
    let t = trigger(
        "t",
        "  delivery:\n    retry: 3\n    backoffPolicy: linear\n    backoffDelay: PT0.2S\n",
        &sub.url("/s"),
    );
    let b = TestBroker::start(&config("", &[t])).await;
    b.send("1", "t").await;
    let got = sub.wait_for("/s", 4).await;
    let gaps: Vec<Duration> = got.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (gap, expected_ms) in gaps.iter().zip([200u64, 400, 600]) {
        let expected = Duration::from_millis(expected_ms);
        assert!(*gap >= expected, "gap {gap:?} shorter than {expected:?}");
        assert!(
            *gap < expected + Duration::from_millis(300),
            "gap {gap:?} much longer than {expected:?}"
        );
    }
    b.shutdown().await;
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let sub = Subscriber::start().await;
    sub.script([Reply::status(429).header("retry-after", "1")]);
    let t = trigger(
        "t",
        "  delivery:\n    retry: 1\n    backoffPolicy: linear\n    backoffDelay: PT0.01S\n",
        &sub.url("/s"),
    );
    let b = TestBroker::start(&config("", &[t])).await;
    b.send("1", "t").await;
    let got = sub.wait_for("/s", 2).await;
    assert!(got[1].at - got[0].at >= Duration::from_secs(1));
    b.shutdown().await;
}

#[tokio::test]
async fn non_retryable_status_goes_to_dead_letter_sink_with_extensions() {
    let sub = Subscriber::start().await;
    sub.script([Reply::status(422)
        .header("kne-reason", "Bad order")
        .body("order is invalid")]);
    let t = trigger(
        "t",
        &format!(
            "  delivery:\n    retry: 5\n    backoffDelay: PT0.01S\n    deadLetterSink:\n      uri: {}\n",
            sub.url("/dls")
        ),
        &sub.url("/s"),
    );
    let b = TestBroker::start(&config("", &[t])).await;
    b.send("1", "t").await;
    let dl = sub.wait_for("/dls", 1).await;
    assert_eq!(sub.received_on("/s").len(), 1, "422 is not retried");
    let d = &dl[0];
    assert_eq!(d.header("ce-id").as_deref(), Some("1"));
    assert_eq!(d.header("ce-knativeerrordest"), Some(sub.url("/s")));
    assert_eq!(d.header("ce-knativeerrorcode").as_deref(), Some("422"));
    let data = base64::engine::general_purpose::STANDARD.encode("order is invalid");
    assert_eq!(d.header("ce-knativeerrordata"), Some(data));
    assert_eq!(d.header("ce-reason").as_deref(), Some("Bad%20order"));
    assert!(d.header("ce-knativebrokerttl").is_none());
    b.shutdown().await;
}

#[tokio::test]
async fn unreachable_subscriber_dead_letters_without_error_code() {
    let sub = Subscriber::start().await;
    // A port with nothing listening.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/nowhere", dead.local_addr().unwrap());
    drop(dead);
    let t = trigger(
        "t",
        &format!(
            "  delivery:\n    retry: 1\n    backoffDelay: PT0.01S\n    deadLetterSink:\n      uri: {}\n",
            sub.url("/dls")
        ),
        &dead_url,
    );
    let b = TestBroker::start(&config("", &[t])).await;
    b.send("1", "t").await;
    let dl = sub.wait_for("/dls", 1).await;
    assert_eq!(dl[0].header("ce-knativeerrordest"), Some(dead_url));
    assert!(dl[0].header("ce-knativeerrorcode").is_none());
    assert!(dl[0].header("ce-knativeerrordata").is_some());
    b.shutdown().await;
}

#[tokio::test]
async fn trigger_delivery_replaces_broker_delivery_as_a_whole() {
    let sub = Subscriber::start().await;
    sub.set_default(Reply::status(500));
    let broker_delivery = format!(
        "spec:\n  delivery:\n    retry: 0\n    deadLetterSink:\n      uri: {}\n",
        sub.url("/broker-dls")
    );
    let t = trigger(
        "t",
        &format!(
            "  delivery:\n    retry: 2\n    backoffDelay: PT0.01S\n    deadLetterSink:\n      uri: {}\n",
            sub.url("/trigger-dls")
        ),
        &sub.url("/s"),
    );
    let b = TestBroker::start(&config(&broker_delivery, &[t])).await;
    b.send("1", "t").await;
    sub.wait_for("/trigger-dls", 1).await;
    assert_eq!(
        sub.received_on("/s").len(),
        3,
        "1 attempt + 2 retries from the trigger spec"
    );
    assert!(sub.received_on("/broker-dls").is_empty());
    b.shutdown().await;
}

#[tokio::test]
async fn without_sink_event_is_parked_listed_and_redriven() {
    let sub = Subscriber::start().await;
    sub.script([Reply::status(400).body("nope")]);
    let t = trigger("t", "  delivery:\n    retry: 0\n", &sub.url("/s"));
    let b = TestBroker::start(&config("", &[t])).await;
    assert_eq!(
        post(&ingress_url(&b), &ce_headers("parked-1", "t"), "{\"k\":1}")
            .await
            .status,
        202
    );
    let list = parked(&b).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["trigger"], "default/t");
    assert_eq!(list[0]["errorCode"], 400);
    assert_eq!(list[0]["reason"], "non-retryable");
    assert_eq!(list[0]["event"]["id"], "parked-1");
    assert!(b
        .metrics()
        .await
        .contains("switchyard_parked_total{trigger=\"default/t\"} 1"));
    // Redrive: the subscriber now accepts (script exhausted → 202).
    let id = list[0]["id"].as_u64().unwrap();
    let r = post(
        &b.admin(&format!("/api/v1/deadletters/{id}/redrive")),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 202);
    let got = sub.wait_for("/s", 2).await;
    assert_eq!(got[1].header("ce-id").as_deref(), Some("parked-1"));
    assert_eq!(&got[1].body[..], b"{\"k\":1}");
    assert!(b.dead_letters().await.is_empty());
    let r = post(
        &b.admin(&format!("/api/v1/deadletters/{id}/redrive")),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 404);
    b.shutdown().await;
}

#[tokio::test]
async fn dead_letter_sink_failing_too_parks_the_event() {
    let sub = Subscriber::start().await;
    sub.set_default(Reply::status(500));
    let t = trigger(
        "t",
        &format!(
            "  delivery:\n    retry: 1\n    backoffDelay: PT0.01S\n    deadLetterSink:\n      uri: {}\n",
            sub.url("/dls")
        ),
        &sub.url("/s"),
    );
    let b = TestBroker::start(&config("", &[t])).await;
    b.send("1", "t").await;
    let list = parked(&b).await;
    assert_eq!(list[0]["reason"], "dead-letter-sink-failed");
    assert_eq!(sub.received_on("/dls").len(), 2);
    b.shutdown().await;
}

#[tokio::test]
async fn body_of_202_is_not_a_reply_and_invalid_reply_is_a_failure() {
    let sub = Subscriber::start().await;
    let ce_reply = |status: u16| {
        Reply::status(status)
            .header("ce-specversion", "1.0")
            .header("ce-id", "r")
            .header("ce-source", "/r")
            .header("ce-type", "reply.type")
            .body("x")
    };
    sub.script([
        ce_reply(202),                           // event 1: 202 body ignored
        Reply::status(200).body("not an event"), // event 2: invalid reply → retried
        Reply::status(200),                      // event 2 retry: ok, no reply
    ]);
    let yaml = config(
        "",
        &[
            trigger(
                "t",
                "  filter:\n    attributes:\n      type: t\n  delivery:\n    retry: 2\n    backoffDelay: PT0.01S\n",
                &sub.url("/s"),
            ),
            trigger(
                "replies",
                "  filter:\n    attributes:\n      type: reply.type\n",
                &sub.url("/replies"),
            ),
        ],
    );
    let b = TestBroker::start(&yaml).await;
    b.send("1", "t").await;
    sub.wait_for("/s", 1).await;
    b.send("2", "t").await;
    let got = sub.wait_for("/s", 3).await;
    assert_eq!(got[2].header("ce-id").as_deref(), Some("2"));
    // A sentinel through the replies trigger proves no reply of event 1 was routed before it.
    let sentinel = ce_headers("sentinel", "reply.type");
    assert_eq!(post(&ingress_url(&b), &sentinel, "{}").await.status, 202);
    let replies = sub.wait_for("/replies", 1).await;
    assert_eq!(replies[0].header("ce-id").as_deref(), Some("sentinel"));
    b.shutdown().await;
}

#[tokio::test]
async fn reply_loop_is_stopped_by_ttl_and_parked() {
    let sub = Subscriber::start().await;
    // Always reply with an event the same trigger matches: a loop.
    sub.set_default(
        Reply::status(200)
            .header("ce-specversion", "1.0")
            .header("ce-id", "again")
            .header("ce-source", "/loop")
            .header("ce-type", "loop"),
    );
    let t = trigger(
        "t",
        "  filter:\n    attributes:\n      type: loop\n",
        &sub.url("/s"),
    );
    let b = TestBroker::start(&config("", &[t])).await;
    let mut h = ce_headers("1", "loop");
    h.push(("ce-knativebrokerttl", "5"));
    assert_eq!(post(&ingress_url(&b), &h, "{}").await.status, 202);
    let list = parked(&b).await;
    assert_eq!(list[0]["reason"], "ttl-exhausted");
    // ttl 5 → stored 4, replies stored with 3, 2, 1; the reply that would get 0 is the loop.
    assert_eq!(sub.received_on("/s").len(), 4);
    assert!(b
        .metrics()
        .await
        .contains("switchyard_reply_loops_total{trigger=\"default/t\"} 1"));
    b.shutdown().await;
}

#[tokio::test]
async fn slow_subscriber_times_out_and_is_retried_then_dead_lettered() {
    let sub = Subscriber::start().await;
    sub.script([
        Reply::status(202).delay(Duration::from_secs(3)),
        Reply::status(202).delay(Duration::from_secs(3)),
    ]);
    let t = trigger(
        "t",
        &format!(
            "  delivery:\n    retry: 1\n    backoffDelay: PT0.01S\n    timeout: PT0.3S\n    deadLetterSink:\n      uri: {}\n",
            sub.url("/dls")
        ),
        &sub.url("/s"),
    );
    let b = TestBroker::start(&config("", &[t])).await;
    b.send("1", "t").await;
    let dl = sub.wait_for("/dls", 1).await;
    assert_eq!(sub.received_on("/s").len(), 2, "a timeout is retried");
    assert!(dl[0].header("ce-knativeerrorcode").is_none());
    let data = dl[0].header("ce-knativeerrordata").unwrap();
    assert!(data.contains("no%20response%20within"), "{data}");
    // The dead letter arrived long before the subscriber's 3 s answer would have.
    assert!(dl[0].at - sub.received_on("/s")[0].at < Duration::from_secs(2));
    b.shutdown().await;
}

#[tokio::test]
async fn https_subscriber_with_a_trusted_private_ca() {
    let (sub, cert) = Subscriber::start_tls().await;
    let plain = Subscriber::start().await;
    let yaml = config(
        "",
        &[
            trigger("secure", "", &sub.tls_url("/s")),
            trigger(
                "untrusted",
                &format!(
                    "  delivery:\n    retry: 0\n    deadLetterSink:\n      uri: {}\n",
                    plain.url("/dls")
                ),
                // Same TLS server, but reached through a name the certificate does not cover.
                &format!("https://127.0.0.1:{}/x", sub.addr.port()),
            ),
        ],
    );
    let b = TestBroker::start_full(&yaml, switchyard_ingress::Limits::default(), vec![cert]).await;
    b.send("tls-1", "t").await;
    let got = sub.wait_for("/s", 1).await;
    assert_eq!(got[0].header("ce-id").as_deref(), Some("tls-1"));
    // Certificate verification is on: the IP-addressed destination fails and is dead-lettered.
    let dl = plain.wait_for("/dls", 1).await;
    assert!(dl[0].header("ce-knativeerrordata").is_some());
    assert!(sub.received_on("/x").is_empty());
    b.shutdown().await;
}

/// A trigger document with `switchyard.dev/max-inflight`.
fn trigger_with_max_inflight(name: &str, max_inflight: u32, delivery: &str, url: &str) -> String {
    format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: {name}\n  annotations:\n    switchyard.dev/max-inflight: \"{max_inflight}\"\nspec:\n  broker: default\n{delivery}  subscriber:\n    uri: {url}\n"
    )
}

fn ids(got: &[Received]) -> Vec<String> {
    got.iter().filter_map(|r| r.header("ce-id")).collect()
}

/// A delivery waiting for its retry gives its in-flight permit back: with `max-inflight: 1`, event B
/// (sent after A failed) is delivered at once, not after A's 5 s backoff. A keeps its schedule.
#[tokio::test]
async fn waiting_retry_does_not_hold_the_triggers_only_permit() {
    let sub = Subscriber::start().await;
    sub.script([Reply::status(503)]);
    let t = trigger_with_max_inflight(
        "t",
        1,
        "  delivery:\n    retry: 1\n    backoffPolicy: linear\n    backoffDelay: PT5S\n",
        &sub.url("/s"),
    );
    let b = TestBroker::start(&config("", &[t])).await;
    b.send("A", "t").await;
    let first = sub.wait_for("/s", 1).await;
    assert_eq!(ids(&first), ["A"]);
    let a_failed = first[0].at;
    for id in ["B1", "B2", "B3"] {
        b.send(id, "t").await;
    }
    let got = eventually("B1..B3 delivered", || async {
        let got = sub.received_on("/s");
        (ids(&got).iter().filter(|id| id.starts_with('B')).count() == 3).then_some(got)
    })
    .await;
    let last_b = got.iter().map(|r| r.at).max().unwrap();
    assert!(
        last_b - a_failed < Duration::from_millis(2500),
        "B1..B3 waited {:?} behind A's 5 s backoff: {:?}",
        last_b - a_failed,
        ids(&got)
    );
    assert_eq!(ids(&got), ["A", "B1", "B2", "B3"], "A's retry came early");
    // A's retry still comes, on schedule, once it has a permit again.
    let got = sub.wait_for("/s", 5).await;
    assert_eq!(ids(&got), ["A", "B1", "B2", "B3", "A"]);
    assert!(got[4].at - a_failed >= Duration::from_secs(5));
    assert_eq!(
        sub.max_concurrency(),
        1,
        "max-inflight still bounds attempts"
    );
    b.shutdown().await;
}

/// Shutdown does not wait for a retry's backoff, and the entry waiting for it (holding no permit) is
/// handed back, not acked: after a restart on the same data directory it is delivered again, while an
/// event delivered during the wait is not.
#[tokio::test]
async fn waiting_retry_without_a_permit_is_handed_back_at_shutdown() {
    let sub = Subscriber::start().await;
    sub.script([Reply::status(503)]);
    let t = trigger_with_max_inflight(
        "t",
        1,
        "  delivery:\n    retry: 3\n    backoffPolicy: linear\n    backoffDelay: PT30S\n",
        &sub.url("/s"),
    );
    let yaml = config("", &[t]);
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let b = TestBroker::start_custom(&yaml, |o| o.data_dir = Some(dir.clone())).await;
    b.send("A", "t").await;
    sub.wait_for("/s", 1).await; // A failed; now waiting 30 s for its retry, without a permit
    b.send("B", "t").await;
    let got = sub.wait_for("/s", 2).await;
    assert_eq!(ids(&got), ["A", "B"]);
    let started = std::time::Instant::now();
    b.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "shutdown waited {:?} (grace 5 s, backoff 30 s)",
        started.elapsed()
    );
    let b = TestBroker::start_custom(&yaml, |o| o.data_dir = Some(dir.clone())).await;
    let got = sub.wait_for("/s", 3).await;
    assert_eq!(ids(&got), ["A", "B", "A"], "A handed back, B acked");
    b.send("C", "t").await;
    let got = sub.wait_for("/s", 4).await;
    assert_eq!(ids(&got), ["A", "B", "A", "C"]);
    b.shutdown().await;
}

/// Entries waiting for a retry hold no permit but are bounded: with `max-inflight: 1` the worker stops
/// pulling once 10 (10 × max-inflight) wait, so of 25 queued events at most 11 are attempted (the one it
/// had already taken) before the first backoff ends; the rest follow as retries free room.
#[tokio::test]
async fn entries_waiting_for_a_retry_are_bounded_per_trigger() {
    let sub = Subscriber::start().await;
    // The first 11 attempts fail (whatever event they carry); everything after succeeds.
    sub.script((0..11).map(|_| Reply::status(503)));
    let t = trigger_with_max_inflight(
        "t",
        1,
        "  delivery:\n    retry: 2\n    backoffPolicy: linear\n    backoffDelay: PT3S\n",
        &sub.url("/s"),
    );
    let b = TestBroker::start(&config("", &[t])).await;
    // One batch: all 25 entries are queued at once, so only the bound limits what the worker takes.
    let batch: Vec<serde_json::Value> = (0..25)
        .map(|i| serde_json::json!({"specversion": "1.0", "id": format!("e{i:02}"), "source": "/test", "type": "t"}))
        .collect();
    let r = post(
        &ingress_url(&b),
        &[("content-type", "application/cloudevents-batch+json")],
        serde_json::to_vec(&batch).unwrap(),
    )
    .await;
    assert_eq!(r.status, 202);
    let got = eventually("all 25 delivered", || async {
        let got = sub.received_on("/s");
        let ok = got.len() >= 25 + 10 && (0..25).all(|i| ids(&got).contains(&format!("e{i:02}")));
        ok.then_some(got)
    })
    .await;
    let ids = ids(&got);
    let first_retry = (0..ids.len())
        .find(|&i| ids[..i].contains(&ids[i]))
        .expect("a retry");
    assert!(
        (10..=11).contains(&first_retry),
        "{first_retry} entries attempted before the first retry: {ids:?}"
    );
    assert!(
        got[first_retry].at - got[0].at >= Duration::from_secs(3),
        "the first retry came before its backoff"
    );
    assert_eq!(sub.max_concurrency(), 1);
    b.shutdown().await;
}
