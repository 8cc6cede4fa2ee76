//! A real Kafka-protocol broker for tests: a `tansu` child process per test on a free loopback port.
//!
//! The binary is found like `.ci/kafka-testbed.sh` finds it: `$SWITCHYARD_TANSU`, `tansu` on `PATH`, or
//! `~/.cache/switchyard-tools/bin/tansu`. When none exists the test FAILS (panics) with install
//! instructions: Kafka tests never skip.
//!
//! Storage is `memory://` (the only engine of a `--features dynostore` build besides S3): a [`Kafka::restart`]
//! loses every record, committed offset and producer id. The harness re-creates the topics it created
//! (same names and partition counts), so a restart looks like a broker that came back empty.
//!
//! All waiting methods are `async` and run librdkafka's blocking calls on the blocking pool, so they do not
//! stall a broker running in the test's (current-thread) runtime.
//!
//! Client settings that make tansu fast for tests are in [`fast_client`] (see there for the timings).

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long `start`/`restart` wait for tansu to answer a metadata request.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long `create_topic` waits until metadata shows the topic with all its partitions.
const TOPIC_DEADLINE: Duration = Duration::from_secs(20);

/// The tansu binary: `$SWITCHYARD_TANSU`, `tansu` on `PATH`, `~/.cache/switchyard-tools/bin/tansu`.
/// Panics (the test fails) with instructions when there is none.
pub fn tansu_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHYARD_TANSU").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            is_executable(&p),
            "SWITCHYARD_TANSU={} is not an executable file",
            p.display()
        );
        return p;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("tansu");
            if is_executable(&p) {
                return p;
            }
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = Path::new(&home).join(".cache/switchyard-tools/bin/tansu");
        if is_executable(&p) {
            return p;
        }
    }
    panic!(
        "no tansu binary (Kafka-protocol broker) found: the Kafka tests need one. Run `.ci/kafka-testbed.sh` \
         (or `cargo install tansu --locked --features dynostore --root ~/.cache/switchyard-tools`, 9-15 min) \
         or set SWITCHYARD_TANSU=/path/to/tansu. See /work/shared/testbeds/kafka.md."
    )
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A unique name (for topics and consumer groups): `prefix-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A client config for `bootstrap` with the settings that make librdkafka quick against a local tansu:
/// short metadata refresh and back-offs, immediate fetch answers, the classic `range` assignor
/// (tansu implements the classic group protocol), short session timeout so a killed member is dropped fast.
pub fn fast_client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "500")
        .set("retry.backoff.ms", "10")
        .set("retry.backoff.max.ms", "200")
        .set("socket.connection.setup.timeout.ms", "5000");
    c
}

/// [`fast_client`] plus the producer settings Switchyard uses: idempotent, `acks=all`, no batching delay.
pub fn fast_producer(bootstrap: &str) -> ClientConfig {
    let mut c = fast_client(bootstrap);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "30000");
    c
}

/// [`fast_client`] plus consumer-group settings: manual commit, from earliest, quick fetches and group
/// housekeeping.
pub fn fast_consumer(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = fast_client(bootstrap);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("partition.assignment.strategy", "range")
        .set("fetch.wait.max.ms", "50")
        .set("fetch.error.backoff.ms", "50")
        .set("topic.metadata.refresh.interval.ms", "1000");
    c
}

/// A running tansu broker, killed on drop.
pub struct Kafka {
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    starts: u32,
    topics: parking_lot::Mutex<Vec<(String, i32)>>,
    producer: OnceLock<FutureProducer>,
}

impl Kafka {
    /// Starts tansu on a free loopback port with in-memory storage and waits (deadline 30 s) until it
    /// answers a metadata request. Panics when no binary exists or it does not come up.
    pub async fn start() -> Kafka {
        let bin = tansu_binary();
        let port = free_port();
        let mut k = Kafka {
            bin,
            port,
            child: None,
            dir: tempfile::tempdir().expect("temp dir for tansu logs"),
            starts: 0,
            topics: parking_lot::Mutex::new(Vec::new()),
            producer: OnceLock::new(),
        };
        k.spawn_and_wait().await;
        k
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port tansu listens on (stays the same across [`Kafka::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the tansu process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The last `max` bytes of tansu's output (all starts), for failure messages.
    pub fn log_tail(&self, max: usize) -> String {
        let mut out = String::new();
        for i in 1..=self.starts {
            let p = self.dir.path().join(format!("tansu-{i}.log"));
            if let Ok(b) = std::fs::read(&p) {
                out.push_str(&format!("--- {} ---\n", p.display()));
                out.push_str(&String::from_utf8_lossy(&b));
            }
        }
        if out.len() > max {
            let mut cut = out.len() - max;
            while !out.is_char_boundary(cut) {
                cut += 1;
            }
            out = out[cut..].to_owned();
        }
        out
    }

    /// Creates `name` with `partitions` partitions (replication 1) through the admin API and waits until
    /// metadata shows all partitions with a leader. Remembered and re-created by [`Kafka::restart`].
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        create_topic_at(&self.bootstrap(), name, partitions).await;
        let mut topics = self.topics.lock();
        if !topics.iter().any(|(n, _)| n == name) {
            topics.push((name.to_owned(), partitions));
        }
    }

    /// Produces one record (idempotent, `acks=all`) and waits for its delivery report. Returns
    /// `(partition, offset)`. Panics on a delivery error. The producer is created once and shared.
    pub async fn produce(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        headers: &[(&str, &[u8])],
        value: Option<&[u8]>,
    ) -> (i32, i64) {
        self.produce_to(topic, None, key, headers, value).await
    }

    /// Like [`Kafka::produce`] to an explicit partition (`None`: the partitioner chooses).
    pub async fn produce_to(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        headers: &[(&str, &[u8])],
        value: Option<&[u8]>,
    ) -> (i32, i64) {
        let producer = self.producer.get_or_init(|| {
            fast_producer(&self.bootstrap())
                .create()
                .expect("create producer")
        });
        let mut hs = OwnedHeaders::new_with_capacity(headers.len());
        for (k, v) in headers {
            hs = hs.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(hs);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        match producer.send(record, Duration::from_secs(10)).await {
            Ok(d) => (d.partition, d.offset),
            Err((e, _)) => panic!("produce to {topic} failed: {e}"),
        }
    }

    /// Reads `topic` from the beginning of every partition (partitions assigned directly, so no group
    /// join delay; a fresh group id that never commits) until `n` records arrived or `deadline` passed,
    /// and returns what arrived (possibly fewer than `n`: assert on it). Order: per partition.
    pub async fn consume_all(
        &self,
        topic: &str,
        n: usize,
        deadline: Duration,
    ) -> Vec<OwnedMessage> {
        let bootstrap = self.bootstrap();
        let topic = topic.to_owned();
        let partitions = partition_count(&bootstrap, &topic).await;
        let consumer: StreamConsumer = fast_consumer(&bootstrap, &unique("consume-all"))
            .create()
            .expect("create consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(&topic, p, Offset::Beginning)
                .expect("tpl");
        }
        consumer.assign(&tpl).expect("assign");
        let end = Instant::now() + deadline;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, consumer.recv()).await {
                Ok(Ok(m)) => out.push(m.detach()),
                Ok(Err(e)) => {
                    // Transient (e.g. partition EOF or a broker restart): keep polling until the deadline.
                    tracing_log(&format!("consume_all {topic}: {e}"));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(_) => break,
            }
        }
        out
    }

    /// The offset `group` committed for `topic`/`partition` (the next offset to read), or `None` when
    /// it committed none. Uses an OffsetFetch request; does not join the group.
    pub async fn committed_offset(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        let bootstrap = self.bootstrap();
        let (group, topic) = (group.to_owned(), topic.to_owned());
        tokio::task::spawn_blocking(move || {
            let c: BaseConsumer = fast_consumer(&bootstrap, &group)
                .create()
                .expect("create consumer");
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&topic, partition);
            let got = c
                .committed_offsets(tpl, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("committed offsets of {group}: {e}"));
            let offset = got
                .find_partition(&topic, partition)
                .map(|e| e.offset())
                .unwrap_or(Offset::Invalid);
            match offset {
                Offset::Offset(o) => Some(o),
                _ => None,
            }
        })
        .await
        .expect("committed_offset task")
    }

    /// Kills tansu with SIGKILL and reaps it. Clients see connection refused until [`Kafka::restart`].
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts tansu again on the same port (after [`Kafka::kill9`]; kills a running one first) and waits
    /// until it answers, then re-creates the topics created through [`Kafka::create_topic`]. With
    /// `memory://` storage all records, committed offsets and producer state are gone.
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn_and_wait().await;
        let bootstrap = self.bootstrap();
        let topics = self.topics.lock().clone();
        for (name, partitions) in topics {
            create_topic_at(&bootstrap, &name, partitions).await;
        }
    }

    async fn spawn_and_wait(&mut self) {
        self.starts += 1;
        let log_path = self.dir.path().join(format!("tansu-{}.log", self.starts));
        let log = std::fs::File::create(&log_path).expect("tansu log file");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .env_remove("CLUSTER_ID")
        .env_remove("SCHEMA_REGISTRY")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("DATA_LAKE")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log fd"))
        .stderr(log);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        self.child = Some(child);
        let started = Instant::now();
        let deadline = started + START_DEADLINE;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "tansu exited during start ({status}):\n{}",
                    self.log_tail(4000)
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && metadata_ok(&self.bootstrap()).await
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "tansu did not answer metadata on port {} within {START_DEADLINE:?}:\n{}",
                    self.port,
                    self.log_tail(4000)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn tracing_log(msg: &str) {
    if std::env::var_os("SWITCHYARD_KAFKA_TEST_DEBUG").is_some() {
        eprintln!("{msg}");
    }
}

async fn metadata_ok(bootstrap: &str) -> bool {
    let bootstrap = bootstrap.to_owned();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = match fast_client(&bootstrap).create() {
            Ok(c) => c,
            Err(_) => return false,
        };
        c.fetch_metadata(None, Duration::from_secs(2))
            .map(|m| !m.brokers().is_empty())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Partition count of `topic` (panics when the topic is unknown).
pub async fn partition_count(bootstrap: &str, topic: &str) -> i32 {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = fast_client(&bootstrap).create().expect("client");
        let md = c
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("metadata of {topic}: {e}"));
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .unwrap_or_else(|| panic!("topic {topic} not in metadata"));
        assert!(t.error().is_none(), "topic {topic}: {:?}", t.error());
        t.partitions().len() as i32
    })
    .await
    .expect("metadata task")
}

/// Creates a topic on `bootstrap` and waits until metadata shows all partitions with a leader.
pub async fn create_topic_at(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        fast_client(bootstrap).create().expect("admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&topic], &opts)
        .await
        .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
    for r in results {
        match r {
            Ok(_) => {}
            Err((t, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing_log(&format!("topic {t} already exists"));
            }
            Err((t, e)) => panic!("create topic {t}: {e}"),
        }
    }
    let (bootstrap, name) = (bootstrap.to_owned(), name.to_owned());
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = fast_client(&bootstrap).create().expect("client");
        let deadline = Instant::now() + TOPIC_DEADLINE;
        loop {
            if let Ok(md) = c.fetch_metadata(Some(&name), Duration::from_secs(2)) {
                let ready = md.topics().iter().any(|t| {
                    t.name() == name
                        && t.error().is_none()
                        && t.partitions().len() as i32 == partitions
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                });
                if ready {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!("topic {name} not in metadata after {TOPIC_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .expect("metadata task");
}
