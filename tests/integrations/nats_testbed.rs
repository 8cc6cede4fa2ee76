//! The NATS testbed: a nats-server with JetStream per test (`common::nats::Nats`) and the async-nats client
//! features Switchyard relies on: headers on core NATS, JetStream publish with PubAck and message-id
//! de-duplication, durable pull consumers with explicit ack, and a JetStream store that survives a restart.

use crate::common::nats::Nats;
use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy};
use futures_util::StreamExt;
use std::time::Duration;

#[tokio::test]
async fn core_nats_carries_headers() {
    let nats = Nats::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut sub = client.subscribe("events.a").await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("ce-id", "1");
    client
        .publish_with_headers("events.a", headers, "data".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("message in time")
        .expect("subscription open");
    assert_eq!(msg.headers.unwrap().get("ce-id").unwrap().as_str(), "1");
    assert_eq!(&msg.payload[..], b"data");
}

#[tokio::test]
async fn jetstream_dedups_acks_and_survives_a_restart() {
    let mut nats = Nats::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: "T".into(),
            subjects: vec!["t.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    for _ in 0..2 {
        // The same message id twice: stored once.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", "m-1");
        let ack = js
            .publish_with_headers("t.x", headers, "one".into())
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(ack.sequence, 1);
    }
    let consumer = stream
        .get_or_create_consumer(
            "d",
            pull::Config {
                durable_name: Some("d".into()),
                ack_policy: AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut msgs = consumer
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .unwrap();
    let m = msgs.next().await.unwrap().unwrap();
    assert_eq!(&m.payload[..], b"one");
    m.ack().await.unwrap();
    assert!(msgs.next().await.is_none(), "the duplicate was not stored");
    drop(msgs);
    drop(client);

    // A second message, then a restart: the stream and the unacked message are still there.
    let ack = js
        .publish("t.y", "two".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.sequence, 2);
    nats.restart().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let consumer: jetstream::consumer::PullConsumer = js
        .get_stream("T")
        .await
        .unwrap()
        .get_consumer("d")
        .await
        .unwrap();
    let mut msgs = consumer
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .unwrap();
    let m = msgs.next().await.unwrap().unwrap();
    assert_eq!(&m.payload[..], b"two");
    m.ack().await.unwrap();
}
