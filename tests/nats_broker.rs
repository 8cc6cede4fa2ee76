//! JetStream-backed brokers against a real nats-server (`common::nats::Nats`, one per test with its own
//! store directory) and real HTTP subscribers. These tests fail — never skip — without nats-server.

mod common;

use async_nats::jetstream;
use common::nats::Nats;
use common::{ce_headers, eventually, patience, post, trigger, Reply, Subscriber, TestBroker};
use std::collections::HashSet;
use std::time::Duration;
use switchyard_broker::channel::nats::NatsOptions;

const STREAM: &str = "KNATIVE_BROKER_default_default";

fn nats_config(servers: &str, docs: &[String]) -> String {
    let mut s = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nats-broker-config\ndata:\n  servers: \"{servers}\"\n---\napiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: default\n  annotations:\n    eventing.knative.dev/broker.class: NatsJetStream\nspec:\n  config:\n    apiVersion: v1\n    kind: ConfigMap\n    name: nats-broker-config\n"
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
    let yaml = nats_config(&nats.url(), &[trigger("t", "", &sub.url("/t"))]);
    let options = NatsOptions {
        publish_timeout: Duration::from_secs(3),
        ..NatsOptions::default()
    };
    let b = start(&yaml, options).await;
    let url = b.ingress("/default/default");
    let mut accepted = Vec::new();
    for i in 0..10 {
        let id = format!("before-{i}");
        assert_eq!(send(&url, &id).await, 202);
        accepted.push(id);
    }
    nats.kill9();
    // While the server is down requests are answered 503 (never 202 without a PubAck).
    for i in 0..3 {
        let status = send(&url, &format!("down-{i}")).await;
        assert_eq!(status, 503, "a request while nats-server is down");
    }
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
    b.shutdown().await;
}
