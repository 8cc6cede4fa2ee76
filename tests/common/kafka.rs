//! A real Kafka-protocol broker for tests: a `tansu` child process per test on a free loopback port
//! (tansu: an Apache-2.0, Kafka-protocol-compatible broker written in Rust).
//!
//! The binary is found like `.ci/kafka-testbed.sh` finds it: `$SWITCHYARD_TANSU`, `tansu` on `PATH`, or
//! `~/.cache/switchyard-tools/bin/tansu`. When none exists the test FAILS (panics) with install
//! instructions: Kafka tests never skip.
//!
//! Clients reach tansu through a small TCP proxy owned by the harness (`bootstrap()` is the proxy; tansu
//! advertises the proxy's address). Two kinds of outage:
//! - [`Kafka::network_down`] / [`Kafka::network_up`]: the proxy drops every connection and refuses new ones;
//!   tansu keeps running with all its state. From a client's point of view this is a broker that crashed and
//!   came back with its data (what a real Kafka restart looks like): use it for "Kafka was unavailable" tests.
//! - [`Kafka::kill9`] / [`Kafka::restart`]: the tansu process itself. Storage is `memory://` (the only engine
//!   of a `--features dynostore` build besides `s3://`; no file-backed engine), so a restart loses every
//!   record, committed offset, group and producer id. The harness re-creates the topics it created (same
//!   names and partition counts). An idempotent producer that existed before the restart never recovers
//!   (tansu answers `UNKNOWN_PRODUCER_ID`, then `UNKNOWN_SERVER_ERROR` to librdkafka's epoch bump, and the
//!   records time out); a producer created after the restart works.
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
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
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
         or set SWITCHYARD_TANSU=/path/to/tansu."
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
/// short metadata refresh, reconnect and retry back-offs (a broker outage ends within ~tens of ms of the
/// broker coming back).
///
/// Measured against tansu 0.6 (debug test build, 2 shared cores):
/// - tansu start until metadata answers: ~30 ms; topic creation until in metadata: ~100 ms;
/// - first delivery of a new idempotent producer: ~505 ms, whatever the settings (librdkafka asks for a
///   producer id before the first connection is up and retries on a fixed 500 ms timer): create producers
///   once, not per event or per test step;
/// - `linger.ms=0`: ~0.5-0.9 ms per awaited record vs ~7.5 ms with the default `linger.ms=5`;
/// - tansu holds every fetch for the full `fetch.wait.max.ms` even when records arrive, so produce→consume
///   latency ≈ `fetch.wait.max.ms` (default 500 → ~480 ms, 50 → ~50 ms, 10 → ~14 ms, 1 → ~7 ms);
/// - group join of a first member: 10-60 ms; a second member joining takes ~3 s whatever the settings
///   (tansu pauses a follower's JoinGroup for 3 s); with `heartbeat.interval.ms=500` the existing member
///   sees that rebalance after ~0.5 s and gets all partitions back ~0.4 s after the other one leaves
///   (defaults: ~3 s for each);
/// - do not set `group.instance.id` (static membership): tansu pauses those joins for 3 s too.
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

/// [`fast_client`] plus consumer-group settings: manual commit, from earliest, `fetch.wait.max.ms=10`,
/// `heartbeat.interval.ms=500`, `session.timeout.ms=6000`, the classic `range` assignor (tansu implements
/// the classic group protocol; `cooperative-sticky` also works but is not faster).
pub fn fast_consumer(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = fast_client(bootstrap);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("partition.assignment.strategy", "range")
        .set("fetch.wait.max.ms", "10")
        .set("fetch.error.backoff.ms", "50")
        .set("topic.metadata.refresh.interval.ms", "1000");
    c
}

/// A running tansu broker behind a TCP proxy, both stopped on drop.
pub struct Kafka {
    bin: PathBuf,
    /// Where tansu listens (only the proxy connects there).
    tansu_port: u16,
    proxy: Proxy,
    child: Option<Child>,
    dir: tempfile::TempDir,
    starts: u32,
    topics: parking_lot::Mutex<Vec<(String, i32)>>,
    producer: OnceLock<FutureProducer>,
    /// The tests of one test binary (`tests/integrations/`) that use this harness run one at a time (held
    /// until after the Drop above ran): fewer librdkafka instances starting and tearing down at once on 2
    /// cores. Declared last, released last.
    _serial: std::sync::MutexGuard<'static, ()>,
}

/// See `Kafka::_serial`.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Kafka {
    /// Starts tansu on a free loopback port with in-memory storage and waits (deadline 30 s) until it
    /// answers a metadata request. Panics when no binary exists or it does not come up.
    pub async fn start() -> Kafka {
        // A test that panicked while holding it only poisons the lock; the next test may go on.
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let bin = tansu_binary();
        let tansu_port = free_port();
        let proxy = Proxy::start(tansu_port);
        let mut k = Kafka {
            bin,
            tansu_port,
            proxy,
            child: None,
            dir: tempfile::tempdir().expect("temp dir for tansu logs"),
            starts: 0,
            topics: parking_lot::Mutex::new(Vec::new()),
            producer: OnceLock::new(),
            _serial: serial,
        };
        k.spawn_and_wait().await;
        k
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.proxy.port)
    }

    /// The port clients connect to (stays the same across outages and restarts).
    pub fn port(&self) -> u16 {
        self.proxy.port
    }

    /// Simulates a broker crash that keeps its data: closes every client connection and refuses new ones
    /// until [`Kafka::network_up`]. tansu keeps running.
    pub fn network_down(&self) {
        self.proxy.down();
    }

    /// Ends [`Kafka::network_down`]: connections are accepted again (on the same port).
    pub fn network_up(&self) {
        self.proxy.up();
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

    /// Freezes tansu (SIGSTOP): connections stay open but nothing is answered — a hung broker that
    /// keeps its data. [`Kafka::thaw`] resumes it.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a frozen tansu (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("tansu is running")
            .id()
            .to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid}");
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
        let listen = format!("tcp://127.0.0.1:{}", self.tansu_port);
        let advertised = format!("tcp://127.0.0.1:{}", self.proxy.port);
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "broker",
            "--listener-url",
            &listen,
            "--advertised-listener-url",
            &advertised,
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
            if std::net::TcpStream::connect(("127.0.0.1", self.tansu_port)).is_ok()
                && metadata_ok(&self.bootstrap()).await
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "tansu did not answer metadata on port {} (proxy {}) within {START_DEADLINE:?}:\n{}",
                    self.tansu_port,
                    self.proxy.port,
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

/// A TCP proxy on its own runtime thread (so that blocking librdkafka calls in a test's current-thread
/// runtime cannot stall it): `127.0.0.1:port` → `127.0.0.1:target`.
struct Proxy {
    port: u16,
    target: u16,
    rt: Option<tokio::runtime::Runtime>,
    /// Bumped by `down`: every task of an older generation ends (closing its sockets).
    generation: tokio::sync::watch::Sender<u64>,
    is_up: parking_lot::Mutex<bool>,
    /// Whether the current accept loop still holds its listener.
    listening: Arc<AtomicBool>,
}

impl Proxy {
    fn start(target: u16) -> Proxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kafka-test-proxy")
            .enable_all()
            .build()
            .expect("proxy runtime");
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
        let port = listener.local_addr().expect("proxy addr").port();
        let p = Proxy {
            port,
            target,
            rt: Some(rt),
            generation,
            is_up: parking_lot::Mutex::new(true),
            listening: Arc::new(AtomicBool::new(false)),
        };
        p.serve(listener);
        p
    }

    fn serve(&self, listener: TcpListener) {
        listener.set_nonblocking(true).expect("nonblocking");
        let mut gen_rx = self.generation.subscribe();
        let generation = *gen_rx.borrow_and_update();
        let target = self.target;
        let gens = self.generation.clone();
        let listening = self.listening.clone();
        listening.store(true, Ordering::SeqCst);
        self.rt.as_ref().expect("proxy runtime").spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = gen_rx.wait_for(|g| *g != generation) => {
                        drop(listener);
                        listening.store(false, Ordering::SeqCst);
                        return;
                    }
                };
                let Ok((mut client, _)) = accepted else {
                    continue;
                };
                let mut gen_rx = gens.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return; // tansu is down: close the client's connection.
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = gen_rx.wait_for(|g| *g != generation) => {}
                    }
                });
            }
        });
    }

    fn down(&self) {
        let mut up = self.is_up.lock();
        if *up {
            *up = false;
            self.generation.send_modify(|g| *g += 1);
            // Refuse new connections from now on: wait until the accept loop dropped its listener.
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.listening.load(Ordering::SeqCst) {
                assert!(Instant::now() < deadline, "proxy listener did not close");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    fn up(&self) {
        let mut up = self.is_up.lock();
        if !*up {
            // The old listener is closed once its task saw the new generation; binding may need a moment.
            let deadline = Instant::now() + Duration::from_secs(5);
            let listener = loop {
                match TcpListener::bind(("127.0.0.1", self.port)) {
                    Ok(l) => break l,
                    Err(e) if Instant::now() > deadline => {
                        panic!("proxy could not listen on {} again: {e}", self.port)
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            };
            self.serve(listener);
            *up = true;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
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
