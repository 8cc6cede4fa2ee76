//! NatsSource against a real nats-server (`common::nats::Nats`) and a real broker + subscriber: core NATS
//! messages (binary and structured) reach the trigger's subscriber, request-reply publishers get the
//! verdict, invalid messages are answered 400 and counted; a JetStream source acks only what the sink
//! accepted and gets the rest redelivered.

use crate::common;

use crate::common::nats::Nats;
use crate::common::{eventually, trigger, Reply, Subscriber, TestBroker};
use async_nats::jetstream;
use std::time::Duration;

fn source(name: &str, servers: &str, subject: &str, extra: &str, sink: &str) -> String {
    format!(
        "apiVersion: sources.switchyard.dev/v1alpha1\nkind: NatsSource\nmetadata:\n  name: {name}\nspec:\n  servers: {servers}\n  subject: \"{subject}\"\n{extra}  sink:\n{sink}"
    )
}

const BROKER_SINK: &str =
    "    ref:\n      apiVersion: eventing.knative.dev/v1\n      kind: Broker\n      name: default\n";

fn binary_headers(id: &str) -> async_nats::HeaderMap {
    let mut h = async_nats::HeaderMap::new();
    h.insert("ce-specversion", "1.0");
    h.insert("ce-id", id);
    h.insert("ce-source", "/sensors");
    h.insert("ce-type", "com.example.reading");
    h.insert("ce-datacontenttype", "application/json");
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_nats_messages_reach_the_broker_and_request_reply_gets_the_verdict() {
    let nats = Nats::start().await;
    let sub = Subscriber::start().await;
    let yaml = common::config(
        "",
        &[
            trigger("t", "", &sub.url("/t")),
            source(
                "src",
                &nats.url(),
                "sensors.>",
                "  queueGroup: sy\n",
                BROKER_SINK,
            ),
        ],
    );
    let b = TestBroker::start(&yaml).await;
    let client = async_nats::connect(nats.url()).await.unwrap();

    // Request-reply: the answer comes after the broker stored the event (the source may still be
    // subscribing right after start, so ask until someone answers).
    let reply = eventually("the source answers a request", || {
        let client = client.clone();
        async move {
            tokio::time::timeout(
                Duration::from_secs(1),
                client.request_with_headers(
                    "sensors.a",
                    binary_headers("bin-1"),
                    "{\"t\":21}".into(),
                ),
            )
            .await
            .ok()?
            .ok()
        }
    })
    .await;
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(v["status"], 202, "{v}");

    // Structured mode, fire and forget.
    let mut h = async_nats::HeaderMap::new();
    h.insert("Content-Type", "application/cloudevents+json");
    client
        .publish_with_headers(
            "sensors.b",
            h,
            "{\"specversion\":\"1.0\",\"id\":\"st-1\",\"source\":\"/s\",\"type\":\"com.example.reading\",\"data\":{\"t\":22}}".into(),
        )
        .await
        .unwrap();
    client.flush().await.unwrap();

    // Invalid: no ce-id. Answered 400, not delivered, the source keeps going.
    let mut bad = async_nats::HeaderMap::new();
    bad.insert("ce-specversion", "1.0");
    bad.insert("ce-source", "/sensors");
    bad.insert("ce-type", "com.example.reading");
    let reply = client
        .request_with_headers("sensors.c", bad, "{}".into())
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(v["status"], 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("id"), "{v}");

    let got = sub.wait_for("/t", 2).await;
    let ids: Vec<String> = got.iter().map(|r| r.header("ce-id").unwrap()).collect();
    assert!(
        ids.contains(&"bin-1".to_owned()) && ids.contains(&"st-1".to_owned()),
        "{ids:?}"
    );
    let bin = got
        .iter()
        .find(|r| r.header("ce-id").as_deref() == Some("bin-1"))
        .unwrap();
    assert_eq!(&bin.body[..], b"{\"t\":21}");
    assert_eq!(
        bin.header("content-type").as_deref(),
        Some("application/json")
    );
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_source_acks_after_acceptance_and_redelivers_after_a_503() {
    let nats = Nats::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client.clone());
    js.get_or_create_stream(jetstream::stream::Config {
        name: "PAYMENTS".into(),
        subjects: vec!["payments.*".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let sink = Subscriber::start().await;
    // The sink is busy twice, then accepts.
    sink.script([Reply::status(503), Reply::status(503)]);
    let yaml = common::config(
        "",
        &[source(
            "pay",
            &nats.url(),
            "payments.*",
            "  jetstream:\n    stream: PAYMENTS\n    durable: sy\n",
            &format!("    uri: {}\n", sink.url("/pay")),
        )],
    );
    let b = TestBroker::start(&yaml).await;
    js.publish_with_headers("payments.eu", binary_headers("p-1"), "{\"a\":1}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let got = sink.wait_for("/pay", 3).await;
    assert!(got
        .iter()
        .all(|r| r.header("ce-id").as_deref() == Some("p-1")));
    // Acked once accepted: nothing pending on the durable consumer.
    let mut stream = js.get_stream("PAYMENTS").await.unwrap();
    let _ = stream.info().await.unwrap();
    eventually("message acked", || {
        let js = js.clone();
        async move {
            let mut c: jetstream::consumer::PullConsumer = js
                .get_stream("PAYMENTS")
                .await
                .ok()?
                .get_consumer("sy")
                .await
                .ok()?;
            let info = c.info().await.ok()?;
            (info.num_ack_pending == 0
                && info.num_pending == 0
                && info.delivered.stream_sequence == 1)
                .then_some(())
        }
    })
    .await;
    b.shutdown().await;
}
