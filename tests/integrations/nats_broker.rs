//! JetStream-backed brokers against a real nats-server (`common::nats::Nats`, one per test with its own
//! store directory) and real HTTP subscribers. These tests fail — never skip — without nats-server.

use crate::common;

use crate::common::nats::Nats;
use crate::common::{
    ce_headers, eventually, patience, post, trigger, Reply, Subscriber, TestBroker,
};
use async_nats::jetstream;
use std::collections::HashSet;
use std::time::Duration;
use switchyard_broker::nats::config::NatsOptions;

const STREAM: &str = "KNATIVE_BROKER_default_default";

fn nats_config(servers: &str, docs: &[String]) -> String {
    nats_config_annotated(servers, "", docs)
}

/// Like [`nats_config`], with extra broker annotations (lines indented by four spaces).
fn nats_config_annotated(servers: &str, broker_annotations: &str, docs: &[String]) -> String {
    let mut s = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nats-broker-config\ndata:\n  servers: \"{servers}\"\n---\napiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: default\n  annotations:\n    eventing.knative.dev/broker.class: NatsJetStream\n{broker_annotations}spec:\n  config:\n    apiVersion: v1\n    kind: ConfigMap\n    name: nats-broker-config\n"
    );
    for d in docs {
        s.push_str("---\n");
        s.push_str(d);
    }
    s
}

async fn start(yaml: &str, options: NatsOptions) -> TestBroker {
    TestBroker::start_custom(yaml, |o| o.nats = options).await
}

async fn send(url: &str, id: &str) -> u16 {
    post(url, &ce_headers(id, "com.example.x"), "{\"n\":1}")
        .await
        .status
}

/// `GET /api/v1/brokers`: the entry of broker `default/{name}`.
async fn broker_status(b: &TestBroker, name: &str) -> serde_json::Value {
    let v = common::request("GET", &b.admin("/api/v1/brokers"), &[], "")
        .await
        .json();
    v["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["namespace"] == "default" && x["name"] == name)
        .unwrap_or_else(|| panic!("broker default/{name} in {v}"))
        .clone()
}

fn ids(sub: &Subscriber, path: &str) -> HashSet<String> {
    sub.received_on(path)
        .iter()
        .map(|r| r.header("ce-id").unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_stored_in_the_broker_stream_deduplicated_and_delivered() {
    let nats = Nats::start().await;
    let sub = Subscriber::start().await;
    let yaml = nats_config(&nats.url(), &[trigger("t", "", &sub.url("/t"))]);
    let b = start(&yaml, NatsOptions::default()).await;
    let url = b.ingress("/default/default");
    for i in 0..10 {
        assert_eq!(send(&url, &format!("e{i}")).await, 202);
    }
    // A client retry of the same event (same source and id) is stored once.
    assert_eq!(send(&url, "e0").await, 202);
    let got = sub.wait_for("/t", 10).await;
    assert_eq!(got[0].header("ce-type").as_deref(), Some("com.example.x"));
    assert!(got[0].header("ce-knativebrokerttl").is_none());
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let mut stream = js.get_stream(STREAM).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.state.messages, 10,
        "the retried event was de-duplicated"
    );
    assert_eq!(
        info.config.subjects,
        vec!["knative.broker.default.default".to_owned()]
    );
    // Every message gets acked once delivered.
    eventually("all messages acked", || {
        let js = js.clone();
        async move {
            let mut c: jetstream::consumer::PullConsumer = js
                .get_stream(STREAM)
                .await
                .ok()?
                .get_consumer("switchyard-broker-default-default")
                .await
                .ok()?;
            let i = c.info().await.ok()?;
            (i.num_ack_pending == 0 && i.num_pending == 0).then_some(())
        }
    })
    .await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_trigger_never_blocks_another_and_dead_letters_work() {
    let nats = Nats::start().await;
    let slow = Subscriber::start().await;
    let fast = Subscriber::start().await;
    let dls = Subscriber::start().await;
    slow.set_default(Reply::status(503));
    let yaml = nats_config(
        &nats.url(),
        &[
            format!(
                "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: slow\n  annotations:\n    switchyard.dev/max-inflight: \"1\"\nspec:\n  broker: default\n  delivery:\n    retry: 2\n    backoffPolicy: linear\n    backoffDelay: PT0.2S\n    deadLetterSink:\n      uri: {}\n  subscriber:\n    uri: {}\n",
                dls.url("/dls"),
                slow.url("/slow")
            ),
            trigger("fast", "", &fast.url("/fast")),
        ],
    );
    let options = NatsOptions {
        trigger_window: 4,
        ..NatsOptions::default()
    };
    let b = start(&yaml, options).await;
    let url = b.ingress("/default/default");
    let n = 30;
    for i in 0..n {
        assert_eq!(send(&url, &format!("e{i}")).await, 202);
    }
    fast.wait_for("/fast", n).await;
    assert_eq!(ids(&fast, "/fast").len(), n);
    // The slow trigger dead-letters every event after its retries; none is lost.
    let deadline = std::time::Instant::now() + patience() + Duration::from_secs(20);
    while ids(&dls, "/dls").len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} dead-lettered",
            ids(&dls, "/dls").len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_work_and_one_killed_loses_nothing() {
    let nats = Nats::start().await;
    let sub = Subscriber::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        nats_config(&nats.url(), &[trigger("t", "", &sub.url("/t"))]),
    )
    .unwrap();
    let args = ["--nats-ack-wait", "2s", "--shutdown-grace", "2s"];
    let a = common::Process::spawn(&config, &dir.path().join("a"), &args);
    let mut b = common::Process::spawn(&config, &dir.path().join("b"), &args);
    let url_a = format!("http://{}/default/default", a.ingress);
    let total = 300;
    for i in 0..100 {
        assert_eq!(send(&url_a, &format!("e{i}")).await, 202);
    }
    b.kill9();
    for i in 100..total {
        assert_eq!(send(&url_a, &format!("e{i}")).await, 202);
    }
    let want: HashSet<String> = (0..total).map(|i| format!("e{i}")).collect();
    let deadline = std::time::Instant::now() + patience() + Duration::from_secs(10);
    loop {
        let got = ids(&sub, "/t");
        if want.is_subset(&got) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {total} events never delivered after the kill",
            want.difference(&got).count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_restart_mid_stream_loses_nothing_acknowledged() {
    let mut nats = Nats::start().await;
    let sub = Subscriber::start().await;
    // An embedded broker `local` in the same process must not notice the NATS outage.
    let local = format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: local\n---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: lt\nspec:\n  broker: local\n  subscriber:\n    uri: {}\n",
        sub.url("/local")
    );
    let yaml = nats_config(&nats.url(), &[trigger("t", "", &sub.url("/t")), local]);
    // The default publish timeout (10 s): requests while the server is down must not wait for it.
    let b = start(&yaml, NatsOptions::default()).await;
    let url = b.ingress("/default/default");
    let local_url = b.ingress("/default/local");
    let mut accepted = Vec::new();
    for i in 0..10 {
        let id = format!("before-{i}");
        assert_eq!(send(&url, &id).await, 202);
        accepted.push(id);
    }
    assert_eq!(broker_status(&b, "default").await["ready"], true);
    assert_eq!(broker_status(&b, "default").await["backend"], "nats");
    nats.kill9();
    // The broker is reported not ready (the probe or the client notices within a second or two)...
    eventually("default/default reported not ready", || async {
        (broker_status(&b, "default").await["ready"] == false).then_some(())
    })
    .await;
    let status = broker_status(&b, "default").await;
    assert!(
        status["notReadyReason"]
            .as_str()
            .is_some_and(|r| r.contains("nats")),
        "{status}"
    );
    let metrics = b.metrics().await;
    assert!(
        metrics.contains("switchyard_broker_ready{broker=\"default/default\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchyard_broker_ready{broker=\"default/local\"} 1"),
        "{metrics}"
    );
    // ... while the server is down requests are answered 503 with Retry-After at once (never 202 without
    // a PubAck, never after the publish timeout) ...
    for i in 0..3 {
        let t0 = std::time::Instant::now();
        let r = post(
            &url,
            &ce_headers(&format!("down-{i}"), "com.example.x"),
            "{\"n\":1}",
        )
        .await;
        assert_eq!(r.status, 503, "a request while nats-server is down");
        assert!(r.header("retry-after").is_some(), "503 without Retry-After");
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "503 took {:?}",
            t0.elapsed()
        );
    }
    // ... the embedded broker of the same process keeps accepting and delivering, and the process stays
    // ready (its other brokers work).
    for i in 0..5 {
        assert_eq!(send(&local_url, &format!("local-{i}")).await, 202);
    }
    sub.wait_for("/local", 5).await;
    assert_eq!(broker_status(&b, "local").await["ready"], true);
    let readyz = common::request("GET", &b.admin("/readyz"), &[], "").await;
    assert_eq!(
        readyz.status, 200,
        "one NATS broker down keeps /readyz ready"
    );
    nats.restart().await;
    // The broker reconnects; new events are accepted again (retry while it reconnects).
    for i in 0..10 {
        let id = format!("after-{i}");
        eventually(&format!("{id} accepted"), || {
            let (url, id) = (url.clone(), id.clone());
            async move { (send(&url, &id).await == 202).then_some(()) }
        })
        .await;
        accepted.push(id);
    }
    let want: HashSet<String> = accepted.into_iter().collect();
    eventually("every accepted event delivered", || async {
        want.is_subset(&ids(&sub, "/t")).then_some(())
    })
    .await;
    // Recovery is automatic: ready again, without the reason.
    eventually("default/default ready again", || async {
        (broker_status(&b, "default").await["ready"] == true).then_some(())
    })
    .await;
    assert!(broker_status(&b, "default").await["notReadyReason"].is_null());
    assert!(b
        .metrics()
        .await
        .contains("switchyard_broker_ready{broker=\"default/default\"} 1"));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_limit_counts_what_waits_in_the_stream_not_only_what_this_process_holds() {
    // A subscriber that never answers, and a process that may hold only 8 unacknowledged messages: the
    // rest of the accepted events wait in the stream, where this process's windows do not see them.
    let nats = Nats::start().await;
    let sub = Subscriber::start().await;
    sub.set_default(Reply::status(200).delay(Duration::from_secs(3600)));
    let limit = 200;
    let held = 8;
    let yaml = nats_config_annotated(
        &nats.url(),
        &format!("    switchyard.dev/max-backlog: \"{limit}\"\n"),
        &[
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t\n  annotations:\n    switchyard.dev/max-inflight: \"1\"\nspec:\n  broker: default\n  subscriber:\n    uri: SUB\n"
                .replace("SUB", &sub.url("/t")),
        ],
    );
    let options = NatsOptions {
        max_ack_pending: held,
        ..NatsOptions::default()
    };
    let b = start(&yaml, options).await;
    let url = b.ingress("/default/default");
    let mut accepted = 0u64;
    let cap = 3000;
    let rejected = loop {
        assert!(
            accepted < cap,
            "{accepted} events accepted and never a 429 (limit {limit}): the backlog only counts what \
             this process holds ({} in /api/v1/brokers)",
            broker_status(&b, "default").await["backlog"]
        );
        let r = post(
            &url,
            &ce_headers(&format!("e{accepted}"), "com.example.x"),
            "{\"n\":1}",
        )
        .await;
        match r.status {
            202 => accepted += 1,
            429 => break r,
            s => panic!("unexpected {s}: {}", String::from_utf8_lossy(&r.body)),
        }
    };
    assert_eq!(rejected.header("retry-after").as_deref(), Some("1"));
    // No double counting: the limit is not reached before that many events exist (up to what moved
    // into this process's windows since the last probe).
    assert!(
        accepted + held as u64 >= limit,
        "429 after only {accepted} accepted events (limit {limit})"
    );
    let status = broker_status(&b, "default").await;
    let backlog = status["backlog"].as_u64().unwrap();
    assert!(
        backlog >= limit && backlog <= accepted + held as u64,
        "backlog {backlog} (accepted {accepted}): {status}"
    );
    let metrics = b.metrics().await;
    assert!(
        metrics.contains("switchyard_broker_backlog{broker=\"default/default\"}"),
        "{metrics}"
    );
    assert_eq!(
        sub.received_on("/t").len(),
        1,
        "one delivery in flight, never answered"
    );
    b.shutdown().await;
}
