//! KafkaSource against a real Kafka-protocol broker (tansu) and real HTTP sinks: every kind of record
//! arrives with the right attributes (through a full Switchyard broker), a failing sink is retried
//! without skipping ahead, invalid CloudEvent records are skipped and counted, and a restarted source
//! resumes after its committed offset.
//!
//! Needs the tansu binary: `$TANSU_BIN`, or `~/.cache/switchyard-tools/bin/tansu` (see
//! `shared/testbeds/kafka.md`).

use crate::common;
use crate::common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use switchyard_broker::config::{
    BrokerKey, ContentMode, InitialOffset, KafkaSourceConfig, ObjectKey, SourceSinkConfig, Topology,
};
use switchyard_broker::event::{Data, Event, ExtValue};
use switchyard_broker::format::percent::decode_header_value;
use switchyard_broker::kafka::binding as kafka;
use switchyard_broker::kafka::source::{KafkaSourceOptions, KafkaSources};

// ---------------------------------------------------------------------------------------------
// A minimal private tansu harness (to be replaced by the shared one in tests/common/kafka.rs).

fn tansu_bin() -> PathBuf {
    // Found like everywhere else (fails the test, never skips, when there is none).
    common::kafka::tansu_binary()
}

/// A tansu broker on a free loopback port with in-memory storage; killed on drop.
struct Tansu {
    child: Child,
    bootstrap: String,
    _logs: tempfile::TempDir,
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tansu {
    async fn start() -> Tansu {
        let bin = tansu_bin();
        assert!(
            bin.exists(),
            "tansu not found at {} (set TANSU_BIN or build it: see shared/testbeds/kafka.md)",
            bin.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let logs = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(logs.path().join("tansu.log")).unwrap();
        let child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let t = Tansu {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
            _logs: logs,
        };
        let bootstrap = t.bootstrap.clone();
        eventually("tansu to answer a metadata request", || {
            let bootstrap = bootstrap.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    let c: BaseConsumer = client_config(&bootstrap).create().ok()?;
                    c.fetch_metadata(None, Duration::from_millis(500)).ok()
                })
                .await
                .ok()
                .flatten()
            }
        })
        .await;
        t
    }

    async fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> =
            client_config(&self.bootstrap).create().unwrap();
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        eventually(&format!("topic {name} to be created"), || async {
            match admin.create_topics([&topic], &AdminOptions::new()).await {
                Ok(results) => results.into_iter().all(|r| r.is_ok()).then_some(()),
                Err(_) => None,
            }
        })
        .await;
    }

    fn producer(&self) -> FutureProducer {
        client_config(&self.bootstrap)
            .set("message.timeout.ms", "20000")
            .create()
            .unwrap()
    }

    /// The committed offset of `group` for `topic`/`partition` (`None`: nothing committed).
    async fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        let (bootstrap, group, topic) =
            (self.bootstrap.clone(), group.to_owned(), topic.to_owned());
        tokio::task::spawn_blocking(move || {
            let c: BaseConsumer = client_config(&bootstrap)
                .set("group.id", &group)
                .create()
                .unwrap();
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&topic, partition);
            let got = c.committed_offsets(tpl, Duration::from_secs(5)).ok()?;
            match got.find_partition(&topic, partition)?.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            }
        })
        .await
        .unwrap()
    }

    /// Waits until `group` has committed `offset` for `topic`/`partition`.
    async fn wait_committed(&self, group: &str, topic: &str, partition: i32, offset: i64) {
        eventually(
            &format!("{group} to commit {topic}/{partition}@{offset}"),
            || async {
                (self.committed(group, topic, partition).await == Some(offset)).then_some(())
            },
        )
        .await;
    }
}

fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

// ---------------------------------------------------------------------------------------------

/// Produces one record and waits for its acknowledgement.
async fn produce(
    p: &FutureProducer,
    topic: &str,
    key: Option<&[u8]>,
    headers: &[(&str, &[u8])],
    value: Option<&[u8]>,
) {
    let mut h = OwnedHeaders::new();
    for (k, v) in headers {
        h = h.insert(Header {
            key: k,
            value: Some(*v),
        });
    }
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(h);
    if let Some(k) = key {
        record = record.key(k);
    }
    if let Some(v) = value {
        record = record.payload(v);
    }
    p.send(record, Duration::from_secs(10))
        .await
        .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
}

/// Produces an event in the given Kafka content mode.
async fn produce_event(p: &FutureProducer, topic: &str, e: &Event, mode: ContentMode) {
    let r = kafka::encode(e, mode);
    let headers: Vec<(&str, &[u8])> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    produce(p, topic, r.key.as_deref(), &headers, r.value.as_deref()).await;
}

/// A simple binary-mode record `{id}`.
async fn produce_simple(p: &FutureProducer, topic: &str, id: &str) {
    let mut e = Event::new(id, "/test", "com.example.kafka");
    e.datacontenttype = Some("text/plain".into());
    e.data = Data::Text(bytes::Bytes::from(format!("data of {id}")));
    produce_event(p, topic, &e, ContentMode::Binary).await;
}

fn source(
    name: &str,
    kafka: &Tansu,
    topics: &[&str],
    group: &str,
    sink: SourceSinkConfig,
) -> Arc<KafkaSourceConfig> {
    Arc::new(KafkaSourceConfig {
        key: ObjectKey::new("default", name),
        bootstrap_servers: kafka.bootstrap.clone(),
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        consumer_group: group.to_owned(),
        sink,
        initial_offset: InitialOffset::Earliest,
    })
}

fn topology(spec: &Arc<KafkaSourceConfig>) -> Topology {
    let mut t = Topology::default();
    t.kafka_sources.insert(spec.key.clone(), spec.clone());
    t
}

fn options() -> KafkaSourceOptions {
    KafkaSourceOptions {
        commit_interval: Duration::from_millis(200),
        ..KafkaSourceOptions::default()
    }
}

/// A decoded `ce-` header of a received request.
fn ce(r: &Received, name: &str) -> Option<String> {
    r.headers
        .get(name)
        .map(|v| decode_header_value(v.as_bytes()).unwrap())
}

fn ids(rs: &[Received]) -> Vec<String> {
    rs.iter()
        .map(|r| ce(r, "ce-id").unwrap_or_default())
        .collect()
}

fn deadline() -> std::time::Instant {
    std::time::Instant::now() + Duration::from_secs(5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_structured_and_plain_records_reach_the_subscriber_through_a_broker() {
    let kafka = Tansu::start().await;
    kafka.create_topic("orders", 1).await;
    let sub = Subscriber::start().await;
    let b = TestBroker::start(&config("", &[trigger("t", "", &sub.url("/s"))])).await;
    let sources = KafkaSources::new(options()).unwrap();
    let spec = source(
        "orders-source",
        &kafka,
        &["orders"],
        "group-a",
        SourceSinkConfig::Broker(BrokerKey::new("default", "default")),
    );
    sources.apply(&topology(&spec), &b.ingress("")).unwrap();

    let p = kafka.producer();
    let mut bin = Event::new("bin-1", "/orders", "com.example.binary");
    bin.subject = Some("s 100%".into());
    bin.set_extension("myext", ExtValue::String("x".into()));
    bin.datacontenttype = Some("text/plain".into());
    bin.data = Data::Text(bytes::Bytes::from_static(b"hello"));
    produce_event(&p, "orders", &bin, ContentMode::Binary).await;
    let mut st = Event::new("st-1", "/orders", "com.example.structured");
    st.datacontenttype = Some("application/json".into());
    st.data = Data::Json(bytes::Bytes::from_static(br#"{"a":1}"#));
    st.set_extension("partitionkey", ExtValue::String("pk".into()));
    produce_event(&p, "orders", &st, ContentMode::Structured).await;
    produce(
        &p,
        "orders",
        Some(b"user-1"),
        &[("content-type", b"application/json"), ("other", b"x")],
        Some(br#"{"n":1}"#),
    )
    .await;

    let got = sub.wait_for("/s", 3).await;
    let find = |id: &str| {
        got.iter()
            .find(|r| ce(r, "ce-id").as_deref() == Some(id))
            .unwrap_or_else(|| panic!("{id} not received; got {:?}", ids(&got)))
    };
    let r = find("bin-1");
    assert_eq!(ce(r, "ce-type").as_deref(), Some("com.example.binary"));
    assert_eq!(ce(r, "ce-source").as_deref(), Some("/orders"));
    assert_eq!(ce(r, "ce-subject").as_deref(), Some("s 100%"));
    assert_eq!(ce(r, "ce-myext").as_deref(), Some("x"));
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    assert_eq!(&r.body[..], b"hello");

    let r = find("st-1");
    assert_eq!(ce(r, "ce-type").as_deref(), Some("com.example.structured"));
    assert_eq!(ce(r, "ce-partitionkey").as_deref(), Some("pk"));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(&r.body[..], br#"{"a":1}"#);

    let r = find("partition:0/offset:2");
    assert_eq!(ce(r, "ce-type").as_deref(), Some("dev.knative.kafka.event"));
    assert_eq!(
        ce(r, "ce-source").as_deref(),
        Some("/apis/v1/namespaces/default/kafkasources/orders-source#orders")
    );
    assert_eq!(ce(r, "ce-subject").as_deref(), Some("partition:0#2"));
    assert_eq!(ce(r, "ce-key").as_deref(), Some("user-1"));
    assert_eq!(ce(r, "ce-partitionkey").as_deref(), Some("user-1"));
    assert!(
        ce(r, "ce-time").is_some(),
        "the record timestamp is the time"
    );
    assert!(
        ce(r, "ce-other").is_none(),
        "other record headers are not mapped"
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(&r.body[..], br#"{"n":1}"#);

    kafka.wait_committed("group-a", "orders", 0, 3).await;
    let stats = sources.stats(&spec.key).unwrap();
    assert_eq!((stats.records, stats.delivered, stats.invalid), (3, 3, 0));
    assert_eq!(stats.commit_failures, 0);
    sources.shutdown(deadline()).await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_is_retried_without_skipping_ahead() {
    let kafka = Tansu::start().await;
    kafka.create_topic("retry", 1).await;
    let sub = Subscriber::start().await;
    // r-0 is refused three times (the last with Retry-After: 2), then everything is accepted.
    sub.script([
        Reply::status(503),
        Reply::status(500),
        Reply::status(429).header("retry-after", "2"),
    ]);
    let p = kafka.producer();
    for i in 0..4 {
        produce_simple(&p, "retry", &format!("r-{i}")).await;
    }
    let sources = KafkaSources::new(options()).unwrap();
    let spec = source(
        "retrying",
        &kafka,
        &["retry"],
        "group-b",
        SourceSinkConfig::Url(sub.url("/sink")),
    );
    sources.apply(&topology(&spec), "http://unused").unwrap();

    // While r-0 waits out its Retry-After, nothing after it was sent and nothing is committed.
    let first = sub.wait_for("/sink", 3).await;
    assert_eq!(ids(&first), ["r-0", "r-0", "r-0"]);
    assert_eq!(kafka.committed("group-b", "retry", 0).await, None);

    let got = sub.wait_for("/sink", 7).await;
    assert_eq!(
        ids(&got),
        ["r-0", "r-0", "r-0", "r-0", "r-1", "r-2", "r-3"],
        "the same event is retried until accepted, then the next ones in order"
    );
    let gap = got[3].at - got[2].at;
    assert!(
        gap >= Duration::from_millis(1900),
        "Retry-After honoured: {gap:?}"
    );
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(90),
        "backoff before the first retry: {gap:?}"
    );
    kafka.wait_committed("group-b", "retry", 0, 4).await;
    let stats = sources.stats(&spec.key).unwrap();
    assert_eq!((stats.delivered, stats.retries, stats.rejected), (4, 3, 0));
    assert_eq!(stats.commit_failures, 0);

    // A status that is never retried skips the event (and it is counted).
    sub.script([Reply::status(400)]);
    produce_simple(&p, "retry", "r-4").await;
    produce_simple(&p, "retry", "r-5").await;
    let got = sub.wait_for("/sink", 9).await;
    assert_eq!(ids(&got[7..]), ["r-4", "r-5"]);
    kafka.wait_committed("group-b", "retry", 0, 6).await;
    assert_eq!(sources.stats(&spec.key).unwrap().rejected, 1);
    sources.shutdown(deadline()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_cloudevent_records_are_skipped_and_counted() {
    let kafka = Tansu::start().await;
    kafka.create_topic("mixed", 1).await;
    let sub = Subscriber::start().await;
    let p = kafka.producer();
    produce_simple(&p, "mixed", "v-0").await;
    // ce_specversion says CloudEvent, but ce_source is missing.
    produce(
        &p,
        "mixed",
        None,
        &[
            ("ce_specversion", b"1.0"),
            ("ce_id", b"x"),
            ("ce_type", b"t"),
        ],
        Some(b"x"),
    )
    .await;
    // A header value that is not UTF-8.
    produce(
        &p,
        "mixed",
        None,
        &[
            ("ce_specversion", b"1.0"),
            ("ce_id", b"y"),
            ("ce_source", b"/s"),
            ("ce_type", b"t"),
            ("ce_subject", b"\xff\xfe"),
        ],
        None,
    )
    .await;
    // Structured mode in a format other than JSON.
    produce(
        &p,
        "mixed",
        None,
        &[("content-type", b"application/cloudevents+avro")],
        Some(b"\x00"),
    )
    .await;
    produce_simple(&p, "mixed", "v-4").await;

    let sources = KafkaSources::new(options()).unwrap();
    let spec = source(
        "mixed",
        &kafka,
        &["mixed"],
        "group-c",
        SourceSinkConfig::Url(sub.url("/sink")),
    );
    sources.apply(&topology(&spec), "http://unused").unwrap();
    let got = sub.wait_for("/sink", 2).await;
    assert_eq!(ids(&got), ["v-0", "v-4"]);
    kafka.wait_committed("group-c", "mixed", 0, 5).await;
    let stats = sources.stats(&spec.key).unwrap();
    assert_eq!(
        (stats.records, stats.invalid, stats.delivered),
        (5, 3, 2),
        "{stats:?}"
    );
    assert_eq!(sub.received().len(), 2);
    sources.shutdown(deadline()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_source_resumes_after_its_committed_offset() {
    let kafka = Tansu::start().await;
    kafka.create_topic("resume", 2).await;
    let sub = Subscriber::start().await;
    let p = kafka.producer();
    for i in 0..4 {
        produce_simple(&p, "resume", &format!("d-{i}")).await;
    }
    let spec = source(
        "resume",
        &kafka,
        &["resume"],
        "group-d",
        SourceSinkConfig::Url(sub.url("/s1")),
    );
    let first = KafkaSources::new(options()).unwrap();
    first.apply(&topology(&spec), "http://unused").unwrap();
    sub.wait_for("/s1", 4).await;
    first.shutdown(deadline()).await;
    assert!(first.running().is_empty());
    let committed = kafka.committed("group-d", "resume", 0).await.unwrap_or(0)
        + kafka.committed("group-d", "resume", 1).await.unwrap_or(0);
    assert_eq!(committed, 4, "shutdown commits every delivered record");

    // A new process (new KafkaSources) in the same group reads only what came after.
    for i in 4..6 {
        produce_simple(&p, "resume", &format!("d-{i}")).await;
    }
    let second = KafkaSources::new(options()).unwrap();
    second.apply(&topology(&spec), "http://unused").unwrap();
    let got = sub.wait_for("/s1", 6).await;
    let mut seen = ids(&got);
    seen.sort();
    assert_eq!(
        seen,
        ["d-0", "d-1", "d-2", "d-3", "d-4", "d-5"],
        "no re-delivery"
    );

    // A changed spec (new sink) restarts the source: the old consumer commits before the new one
    // starts, so nothing is delivered twice.
    let moved = source(
        "resume",
        &kafka,
        &["resume"],
        "group-d",
        SourceSinkConfig::Url(sub.url("/s2")),
    );
    second.apply(&topology(&moved), "http://unused").unwrap();
    produce_simple(&p, "resume", "d-6").await;
    let got = sub.wait_for("/s2", 1).await;
    assert_eq!(ids(&got), ["d-6"]);
    assert_eq!(sub.received_on("/s1").len(), 6);

    // Removing it stops it; its counters stay readable.
    second.apply(&Topology::default(), "http://unused").unwrap();
    assert!(second.running().is_empty());
    second.shutdown(deadline()).await;
    assert_eq!(sub.received().len(), 7, "nothing delivered twice");
    let stats = second.stats(&moved.key).unwrap();
    assert_eq!(stats.delivered, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_offset_latest_starts_from_when_the_source_was_set_up() {
    let kafka = Tansu::start().await;
    kafka.create_topic("late", 1).await;
    let sub = Subscriber::start().await;
    let p = kafka.producer();
    produce_simple(&p, "late", "old").await;
    let spec = Arc::new(KafkaSourceConfig {
        initial_offset: InitialOffset::Latest,
        ..(*source(
            "late",
            &kafka,
            &["late"],
            "group-e",
            SourceSinkConfig::Url(sub.url("/s")),
        ))
        .clone()
    });
    let sources = KafkaSources::new(options()).unwrap();
    sources.apply(&topology(&spec), "http://unused").unwrap();
    eventually("the source to be ready", || async {
        sources.is_ready(&spec.key).then_some(())
    })
    .await;
    assert_eq!(
        kafka.committed("group-e", "late", 0).await,
        Some(1),
        "the end offset is committed before the consumer subscribes"
    );
    // Produced right away, possibly before the group join finished: still delivered.
    produce_simple(&p, "late", "new").await;
    let got = sub.wait_for("/s", 1).await;
    assert_eq!(
        ids(&got),
        ["new"],
        "records from before the setup are not read"
    );
    kafka.wait_committed("group-e", "late", 0, 2).await;
    sources.shutdown(deadline()).await;
}
