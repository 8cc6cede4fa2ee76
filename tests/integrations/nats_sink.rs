//! NatsSink delivery against a real nats-server (`common::nats::Nats`, one per test): a Trigger whose
//! subscriber is a NatsSink publishes each event (core NATS, or JetStream waiting for the PubAck); a publish
//! that cannot succeed is a failed delivery (retries, then the dead-letter sink).

use crate::common;

use crate::common::nats::Nats;
use crate::common::{ce_headers, post, Subscriber, TestBroker};
use async_nats::jetstream;
use futures_util::StreamExt;
use std::time::Duration;

fn sink(name: &str, servers: &str, subject: &str, extra: &str) -> String {
    format!(
        "apiVersion: sources.switchyard.dev/v1alpha1\nkind: NatsSink\nmetadata:\n  name: {name}\nspec:\n  servers:\n    - {servers}\n  subject: {subject}\n{extra}"
    )
}

fn sink_trigger(name: &str, sink: &str, ty: &str, delivery: &str) -> String {
    format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: {name}\nspec:\n  broker: default\n  filter:\n    attributes:\n      type: {ty}\n{delivery}  subscriber:\n    ref:\n      apiVersion: sources.switchyard.dev/v1alpha1\n      kind: NatsSink\n      name: {sink}\n"
    )
}

async fn send(b: &TestBroker, id: &str, ty: &str) {
    let mut headers = ce_headers(id, ty);
    headers.push(("ce-partitionkey", "k1"));
    let r = post(&b.ingress("/default/default"), &headers, "{\"n\":1}").await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_sinks_publish_binary_and_structured_and_failures_are_dead_lettered() {
    let nats = Nats::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut core = client.subscribe("out.core").await.unwrap();
    client.flush().await.unwrap();
    let js = jetstream::new(client.clone());
    js.get_or_create_stream(jetstream::stream::Config {
        name: "OUT".into(),
        subjects: vec!["out.js".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let dls = Subscriber::start().await;
    let yaml = common::config(
        "",
        &[
            sink("core", &nats.url(), "out.core", ""),
            sink(
                "js",
                &nats.url(),
                "out.js",
                "  jetstream: true\n  contentMode: structured\n",
            ),
            // Nothing listens on port 1: every publish times out.
            sink("dead", "nats://127.0.0.1:1", "out.dead", ""),
            sink_trigger("to-core", "core", "com.example.core", ""),
            sink_trigger("to-js", "js", "com.example.js", ""),
            sink_trigger(
                "to-dead",
                "dead",
                "com.example.dead",
                &format!(
                    "  delivery:\n    retry: 1\n    backoffDelay: PT0.01S\n    timeout: PT1S\n    deadLetterSink:\n      uri: {}\n",
                    dls.url("/dls")
                ),
            ),
        ],
    );
    let b = TestBroker::start(&yaml).await;

    send(&b, "c-1", "com.example.core").await;
    let msg = tokio::time::timeout(Duration::from_secs(10), core.next())
        .await
        .expect("core NATS message in time")
        .unwrap();
    let headers = msg.headers.expect("binary mode has headers");
    assert_eq!(headers.get("ce-id").unwrap().as_str(), "c-1");
    assert_eq!(
        headers.get("ce-datacontenttype").unwrap().as_str(),
        "application/json"
    );
    assert_eq!(headers.get("ce-partitionkey").unwrap().as_str(), "k1");
    assert!(
        headers.get("ce-knativebrokerttl").is_none(),
        "TTL does not leave the broker"
    );
    assert_eq!(&msg.payload[..], b"{\"n\":1}");

    send(&b, "j-1", "com.example.js").await;
    let stream = js.get_stream("OUT").await.unwrap();
    common::eventually("JetStream message stored", || {
        let mut stream = stream.clone();
        async move {
            let info = stream.info().await.ok()?;
            (info.state.messages == 1).then_some(())
        }
    })
    .await;
    let raw = stream.get_raw_message(1).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&raw.payload).unwrap();
    assert_eq!(v["id"], "j-1");
    assert_eq!(v["data"]["n"], 1);

    send(&b, "d-1", "com.example.dead").await;
    let got = dls.wait_for("/dls", 1).await;
    assert_eq!(got[0].header("ce-id").as_deref(), Some("d-1"));
    assert!(got[0]
        .header("ce-knativeerrordest")
        .unwrap()
        .contains("natssink:default/dead"));
    b.shutdown().await;
}
