//! KafkaSource runner: reads Kafka topics and POSTs every record as a CloudEvent to the source's sink
//! (a Broker of this process, through its ingress, or any http(s) URL), like Knative's KafkaSource.
//!
//! One rdkafka [`StreamConsumer`] per source, in the source's consumer group, subscribed to its topics
//! (`enable.auto.commit=false`, `auto.offset.reset` from `spec.initialOffset`).
//!
//! **Initial offset**: `earliest` starts a group without committed offsets at the beginning of each
//! partition. `latest` (Knative's default) means "records produced after the source was set up": like
//! Knative's controller, before subscribing the source commits the current end offset of every
//! partition that has no committed offset yet, so records produced while the group is still joining
//! are not skipped. [`KafkaSources::is_ready`] turns true once that is done and the consumer is
//! subscribed. Partitions of topics that do not exist yet fall back to `auto.offset.reset=latest`.
//!
//! For each record:
//!
//! - [`kafka::decode`] gives a CloudEvent (binary or structured mode), or the record is not a CloudEvent
//!   and [`kafka::wrap_raw`] builds the Knative `dev.knative.kafka.event` for it;
//! - a record that claims to be a CloudEvent but is invalid, or whose value and headers exceed
//!   [`KafkaSourceOptions::max_record_bytes`], is logged (topic, partition, offset, reason), counted in
//!   [`SourceStats::invalid`] and skipped: its offset counts as done;
//! - the event is POSTed in binary HTTP mode. A 2xx finishes it. Retryable answers (transport error,
//!   timeout, 404, 408, 409, 429, 5xx: the classification of `crate::delivery::classify`,
//!   Switchyard decision 11) are retried **forever** with exponential backoff (from
//!   [`KafkaSourceOptions::backoff_initial`], capped at [`KafkaSourceOptions::backoff_max`]), honouring
//!   `Retry-After` (capped at [`KafkaSourceOptions::retry_after_max`]), without reading further records:
//!   back-pressure, nothing is dropped. 404 is retried because the source's own Broker may not be
//!   configured yet. Any other answer (other 4xx, 3xx: redirects are not followed) means the event can
//!   never be accepted: it is logged, counted in [`SourceStats::rejected`] and skipped.
//!
//! **Ordering and concurrency**: records of one source are processed **sequentially**, one at a time,
//! in the order the consumer returns them, so the order within each partition is kept (and a failing
//! sink blocks the whole source, all partitions). Per-partition concurrency is a possible extension.
//!
//! **Offsets (at-least-once)**: only records whose processing finished (delivered, rejected or skipped)
//! are committed: `offset + 1` of the last finished record of each partition, asynchronously at most
//! every [`KafkaSourceOptions::commit_interval`], and synchronously when partitions are revoked by a
//! rebalance and when the source stops. Records consumed but not finished when the process dies are
//! delivered again by the next consumer (duplicates, never losses). A sink that keeps failing for longer
//! than the consumer's `max.poll.interval.ms` (librdkafka default 5 minutes) makes the consumer leave
//! its group; it rejoins once the record is delivered, and records after the last commit may then be
//! delivered again.
//!
//! **Lifecycle**: [`KafkaSources::apply`] starts new sources, restarts changed ones (the new consumer
//! starts only after the old one committed and closed, so the two never overlap) and stops removed
//! ones; [`KafkaSources::shutdown`] stops all of them: consuming stops at once, a send in flight may
//! finish until the deadline (a delivered record is then committed; an abandoned one will be
//! delivered again), a retry wait is abandoned, finished offsets are committed and consumers closed.

use crate::config::{InitialOffset, KafkaSourceConfig, ObjectKey, Topology};
use crate::delivery::{
    classify, parse_retry_after, retry, Attempt, Attempts, Classification, Retried, RetryAfterRule,
    SourceBackoff,
};
use crate::event::Event;
use crate::format::http::write_binary;
use crate::format::FormatError;
use crate::http_client::HttpClient;
use crate::kafka::binding::{self as kafka, Decoded, RawRecord};
use crate::source::sink_url;
use http::{HeaderMap, Uri};
use parking_lot::Mutex;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use rustls::pki_types::CertificateDer;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, error, info, warn};

/// Settings shared by every source.
#[derive(Debug, Clone)]
pub struct KafkaSourceOptions {
    /// A record whose value plus header names and values exceed this many bytes is skipped as invalid
    /// (the same default as the ingress's event limit, so it could not be accepted anyway).
    pub max_record_bytes: usize,
    /// Timeout of one HTTP attempt (connect, response and body).
    pub request_timeout: Duration,
    /// First retry wait.
    pub backoff_initial: Duration,
    /// Longest retry wait computed by the exponential backoff.
    pub backoff_max: Duration,
    /// Longest `Retry-After` honoured (a longer one is shortened to this).
    pub retry_after_max: Duration,
    /// Interval of the asynchronous offset commits.
    pub commit_interval: Duration,
    /// How long a source removed or changed by [`KafkaSources::apply`] may finish its in-flight send.
    pub stop_grace: Duration,
    /// Extra CA certificates trusted for `https` sinks (besides the Mozilla roots).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Extra librdkafka properties set on every consumer after the defaults (e.g. timeouts, security).
    pub consumer_config: Vec<(String, String)>,
}

impl Default for KafkaSourceOptions {
    fn default() -> Self {
        KafkaSourceOptions {
            max_record_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            retry_after_max: Duration::from_secs(60),
            commit_interval: Duration::from_millis(500),
            stop_grace: Duration::from_secs(5),
            extra_roots: Vec::new(),
            consumer_config: Vec::new(),
        }
    }
}

/// Why sources could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSourceError {
    /// The HTTP client for the sinks could not be built (invalid CA certificate).
    #[error("KafkaSource sink client: {0}")]
    Client(String),
    /// These sources were not started (invalid sink URL or consumer configuration); every other source
    /// of the topology was applied. A later `apply` tries them again.
    #[error("KafkaSources not started: {}", describe(.0))]
    NotStarted(Vec<(ObjectKey, String)>),
}

fn describe(failures: &[(ObjectKey, String)]) -> String {
    failures
        .iter()
        .map(|(k, e)| format!("{k}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Counters of one source (kept across restarts of the source).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Records read from Kafka.
    pub records: u64,
    /// Events the sink accepted (2xx).
    pub delivered: u64,
    /// Records skipped because they are invalid CloudEvents or too large.
    pub invalid: u64,
    /// Events skipped because the sink answered a status that is never retried (e.g. 400).
    pub rejected: u64,
    /// Attempts after the first one (retries of any event).
    pub retries: u64,
    /// Offset commits that failed (they are retried with the next commit).
    pub commit_failures: u64,
}

#[derive(Debug, Default)]
struct Counters {
    records: AtomicU64,
    delivered: AtomicU64,
    invalid: AtomicU64,
    rejected: AtomicU64,
    retries: AtomicU64,
    commit_failures: AtomicU64,
    /// Initial offsets pinned and consumer subscribed (the current incarnation).
    ready: AtomicBool,
}

impl Counters {
    fn snapshot(&self) -> SourceStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SourceStats {
            records: g(&self.records),
            delivered: g(&self.delivered),
            invalid: g(&self.invalid),
            rejected: g(&self.rejected),
            retries: g(&self.retries),
            commit_failures: g(&self.commit_failures),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The retry schedule of every event: retried forever; before retry `n` (1-based)
/// `initial × 2^(n-1)` capped at `max`, or the `Retry-After` (capped at `retry_after_max`) when that
/// is longer.
fn retry_schedule(options: &KafkaSourceOptions) -> SourceBackoff {
    SourceBackoff {
        retries: None,
        initial: options.backoff_initial,
        max: options.backoff_max,
        retry_after_max: options.retry_after_max,
        retry_after: RetryAfterRule::AtLeastBackoff,
    }
}

/// A record → the event to send: its CloudEvent, or the Knative wrapping when it is not one; an
/// invalid CloudEvent or an oversized record is an error (the record is skipped).
fn record_to_event(
    key: &ObjectKey,
    record: &RawRecord<'_>,
    max_record_bytes: usize,
) -> Result<Event, FormatError> {
    let size = record.value.map_or(0, <[u8]>::len)
        + record
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len))
            .sum::<usize>();
    if size > max_record_bytes {
        return Err(FormatError::invalid_message(format!(
            "record of {size} bytes exceeds the limit of {max_record_bytes} bytes"
        )));
    }
    match kafka::decode(record.key, record.headers, record.value)? {
        Decoded::Event(e) => Ok(e),
        Decoded::NotCloudEvent => Ok(kafka::wrap_raw(&key.namespace, &key.name, record)),
    }
}

/// Finished and committed offsets (next offset to read) per partition, shared by a source's task and
/// its consumer context (rebalance and commit callbacks).
#[derive(Debug, Default)]
struct Offsets {
    /// Topic names; partitions are keyed by index into this list (no allocation per record).
    topics: Vec<String>,
    finished: HashMap<(usize, i32), i64>,
    committed: HashMap<(usize, i32), i64>,
}

impl Offsets {
    fn topic_index(&mut self, topic: &str) -> usize {
        match self.topics.iter().position(|t| t == topic) {
            Some(i) => i,
            None => {
                self.topics.push(topic.to_owned());
                self.topics.len() - 1
            }
        }
    }

    /// Records that the record at `offset` of topic number `t` / `partition` is done.
    fn finish(&mut self, t: usize, partition: i32, offset: i64) {
        let next = self.finished.entry((t, partition)).or_insert(0);
        *next = (*next).max(offset + 1);
    }

    /// The finished offsets not committed yet (only of the partitions in `only`, when given), marked
    /// committed; `None` when there is nothing to commit.
    fn take_commit(&mut self, only: Option<&TopicPartitionList>) -> Option<TopicPartitionList> {
        let mut tpl = TopicPartitionList::new();
        let mut keys = Vec::new();
        for (&(t, p), &next) in &self.finished {
            if self.committed.get(&(t, p)) == Some(&next) {
                continue;
            }
            let topic = &self.topics[t];
            if only.is_some_and(|l| l.find_partition(topic, p).is_none()) {
                continue;
            }
            if tpl
                .add_partition_offset(topic, p, Offset::Offset(next))
                .is_ok()
            {
                keys.push(((t, p), next));
            }
        }
        for (k, next) in &keys {
            self.committed.insert(*k, *next);
        }
        (!keys.is_empty()).then_some(tpl)
    }

    /// A commit of `tpl` failed: those partitions will be committed again.
    fn commit_failed(&mut self, tpl: &TopicPartitionList) {
        for e in tpl.elements() {
            if let Some(t) = self.topics.iter().position(|t| t == e.topic()) {
                self.committed.remove(&(t, e.partition()));
            }
        }
    }

    /// Partitions revoked: their progress belongs to their next owner.
    fn forget(&mut self, tpl: &TopicPartitionList) {
        for e in tpl.elements() {
            if let Some(t) = self.topics.iter().position(|t| t == e.topic()) {
                self.finished.remove(&(t, e.partition()));
                self.committed.remove(&(t, e.partition()));
            }
        }
    }
}

/// Consumer context: synchronous commit of finished offsets on revocation, commit error accounting.
struct SourceContext {
    key: ObjectKey,
    offsets: Arc<Mutex<Offsets>>,
    counters: Arc<Counters>,
    /// Set after the final commit: the revocation librdkafka serves while closing must not commit.
    closing: std::sync::atomic::AtomicBool,
}

impl ClientContext for SourceContext {}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        if self.closing.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        // The lock is not held while committing (the commit callback takes it).
        let tpl = self.offsets.lock().take_commit(Some(revoked));
        if let Some(tpl) = tpl {
            if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                warn!(source = %self.key, error = %e, "offset commit on partition revocation failed");
                bump(&self.counters.commit_failures);
            }
        }
        self.offsets.lock().forget(revoked);
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            warn!(source = %self.key, error = %e, "offset commit failed");
            bump(&self.counters.commit_failures);
            self.offsets.lock().commit_failed(offsets);
        }
    }
}

type SourceConsumer = StreamConsumer<SourceContext>;

/// A source task's side of its stop request: `requested` is cancelled when the source is asked to stop
/// (no more records are read, a retry wait ends), `deadline` once the request's deadline passed (a send
/// in flight is abandoned). Both are also cancelled when the owner's [`StopHandle`] is dropped.
#[derive(Clone)]
struct StopSignal {
    requested: CancellationToken,
    deadline: CancellationToken,
}

/// The owner's side of a source task's stop request.
struct StopHandle {
    signal: StopSignal,
    _requested_on_drop: DropGuard,
    _deadline_on_drop: DropGuard,
}

impl StopHandle {
    fn new() -> (StopHandle, StopSignal) {
        let signal = StopSignal {
            requested: CancellationToken::new(),
            deadline: CancellationToken::new(),
        };
        let handle = StopHandle {
            _requested_on_drop: signal.requested.clone().drop_guard(),
            _deadline_on_drop: signal.deadline.clone().drop_guard(),
            signal: signal.clone(),
        };
        (handle, signal)
    }

    /// Asks the source to stop; a send in flight may finish until `deadline`. A later request with an
    /// earlier deadline moves it earlier. Must be called within a Tokio runtime.
    fn stop(&self, deadline: Instant) {
        self.signal.requested.cancel();
        let passed = self.signal.deadline.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = passed.cancelled() => {}
                () = tokio::time::sleep_until(deadline) => passed.cancel(),
            }
        });
    }
}

struct Stopping {
    key: ObjectKey,
    stop: StopHandle,
    task: JoinHandle<()>,
}

struct Running {
    spec: Arc<KafkaSourceConfig>,
    url: String,
    stop: StopHandle,
    task: JoinHandle<()>,
}

/// Shared by every source task.
struct Shared {
    options: KafkaSourceOptions,
    client: HttpClient,
}

/// The KafkaSources of a topology (see the module documentation).
pub struct KafkaSources {
    shared: Arc<Shared>,
    running: Mutex<BTreeMap<ObjectKey, Running>>,
    /// Tasks of removed sources that may still be finishing.
    stopping: Mutex<Vec<Stopping>>,
    counters: Mutex<BTreeMap<ObjectKey, Arc<Counters>>>,
}

impl std::fmt::Debug for KafkaSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSources")
            .field("running", &self.running.lock().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KafkaSources {
    /// No sources yet; [`KafkaSources::apply`] starts them.
    pub fn new(options: KafkaSourceOptions) -> Result<KafkaSources, KafkaSourceError> {
        let client =
            crate::source::sink_client(&options.extra_roots).map_err(KafkaSourceError::Client)?;
        Ok(KafkaSources {
            shared: Arc::new(Shared { options, client }),
            running: Mutex::new(BTreeMap::new()),
            stopping: Mutex::new(Vec::new()),
            counters: Mutex::new(BTreeMap::new()),
        })
    }

    /// Makes the running sources those of `topology`: starts new ones, restarts those whose spec or
    /// sink URL changed, stops removed ones (each may finish its in-flight send for
    /// [`KafkaSourceOptions::stop_grace`]). Broker sinks are POSTed to `{broker_base_url}/{ns}/{name}`
    /// (e.g. `http://127.0.0.1:8080`). Must be called within a Tokio runtime.
    ///
    /// A source whose sink URL or consumer configuration is invalid is not started (and is reported
    /// in the error); the others are applied regardless.
    pub fn apply(
        &self,
        topology: &Topology,
        broker_base_url: &str,
    ) -> Result<(), KafkaSourceError> {
        let mut running = self.running.lock();
        let mut stopping = self.stopping.lock();
        stopping.retain(|s| !s.task.is_finished());
        let grace = self.shared.options.stop_grace;
        // Removed sources.
        let removed: Vec<ObjectKey> = running
            .keys()
            .filter(|k| !topology.kafka_sources.contains_key(*k))
            .cloned()
            .collect();
        for key in removed {
            if let Some(r) = running.remove(&key) {
                info!(source = %key, "stopping KafkaSource (removed)");
                r.stop.stop(Instant::now() + grace);
                stopping.push(Stopping {
                    key,
                    stop: r.stop,
                    task: r.task,
                });
            }
        }
        let mut failures = Vec::new();
        for (key, spec) in &topology.kafka_sources {
            let url = sink_url(&spec.sink, broker_base_url);
            if let Some(r) = running.get(key) {
                if *r.spec == **spec && r.url == url {
                    continue;
                }
            }
            let counters = self.counters.lock().entry(key.clone()).or_default().clone();
            // Not ready until the new incarnation subscribed (the old one may still be closing).
            counters.ready.store(false, Ordering::Release);
            let prepared = match self.prepare(spec, &url, counters) {
                Ok(p) => p,
                Err(e) => {
                    error!(source = %key, error = %e, "KafkaSource not started");
                    failures.push((key.clone(), e));
                    continue;
                }
            };
            // The source's previous consumers (changed now, or removed earlier and still finishing)
            // close before the new one subscribes.
            let mut previous = Vec::new();
            if let Some(r) = running.remove(key) {
                info!(source = %key, "restarting KafkaSource (changed)");
                r.stop.stop(Instant::now() + grace);
                previous.push(Stopping {
                    key: key.clone(),
                    stop: r.stop,
                    task: r.task,
                });
            }
            let mut i = 0;
            while i < stopping.len() {
                if stopping[i].key == *key {
                    previous.push(stopping.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            let (stop, signal) = StopHandle::new();
            let task = tokio::spawn(run_source(prepared, signal, previous));
            running.insert(
                key.clone(),
                Running {
                    spec: spec.clone(),
                    url,
                    stop,
                    task,
                },
            );
        }
        crate::source::started(failures, KafkaSourceError::NotStarted)
    }

    fn prepare(
        &self,
        spec: &Arc<KafkaSourceConfig>,
        url: &str,
        counters: Arc<Counters>,
    ) -> Result<Prepared, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("invalid sink URL '{url}': {e}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!(
                "invalid sink URL '{url}': must be an absolute http:// or https:// URL"
            ));
        }
        if spec.topics.is_empty() {
            return Err("no topics".to_owned());
        }
        let key = &spec.key;
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &spec.bootstrap_servers)
            .set("group.id", &spec.consumer_group)
            .set(
                "client.id",
                format!("switchyard-kafkasource-{}-{}", key.namespace, key.name),
            )
            .set("enable.auto.commit", "false")
            .set(
                "auto.offset.reset",
                match spec.initial_offset {
                    InitialOffset::Earliest => "earliest",
                    InitialOffset::Latest => "latest",
                },
            )
            .set("enable.partition.eof", "false")
            // Bounds the records prefetched per partition (KiB); librdkafka's default is 64 MiB.
            .set("queued.max.messages.kbytes", "16384");
        for (k, v) in &self.shared.options.consumer_config {
            config.set(k, v);
        }
        let offsets = Arc::new(Mutex::new(Offsets {
            topics: spec.topics.clone(),
            ..Offsets::default()
        }));
        let context = SourceContext {
            key: key.clone(),
            offsets: offsets.clone(),
            counters: counters.clone(),
            closing: std::sync::atomic::AtomicBool::new(false),
        };
        let consumer: SourceConsumer = config
            .create_with_context(context)
            .map_err(|e| format!("invalid consumer configuration: {e}"))?;
        Ok(Prepared {
            shared: self.shared.clone(),
            spec: spec.clone(),
            uri,
            consumer: Arc::new(consumer),
            offsets,
            counters,
        })
    }

    /// Counters of a source (also after it stopped), `None` for a source never started.
    pub fn stats(&self, key: &ObjectKey) -> Option<SourceStats> {
        self.counters.lock().get(key).map(|c| c.snapshot())
    }

    /// Whether the source runs and is subscribed (for `latest`, after its initial offsets were pinned):
    /// every record produced from then on will be delivered.
    pub fn is_ready(&self, key: &ObjectKey) -> bool {
        self.running.lock().contains_key(key)
            && self
                .counters
                .lock()
                .get(key)
                .is_some_and(|c| c.ready.load(Ordering::Acquire))
    }

    /// Keys of the running sources.
    pub fn running(&self) -> Vec<ObjectKey> {
        self.running.lock().keys().cloned().collect()
    }

    /// Stops every source: no more records are read, a send in flight may finish until `deadline`
    /// (a retry wait is abandoned at once), finished offsets are committed synchronously and the
    /// consumers closed. Returns when all sources are done, or a few seconds after `deadline` at the
    /// latest (a commit that hangs on an unreachable Kafka is not waited for).
    pub async fn shutdown(&self, deadline: std::time::Instant) {
        let deadline = Instant::from_std(deadline);
        let mut tasks = Vec::new();
        let running = std::mem::take(&mut *self.running.lock());
        let stopping = std::mem::take(&mut *self.stopping.lock());
        for (_, r) in running {
            r.stop.stop(deadline);
            tasks.push((r.stop, r.task));
        }
        for Stopping { stop, task, .. } in stopping {
            stop.stop(deadline);
            tasks.push((stop, task));
        }
        let limit = deadline + COMMIT_GRACE;
        for (_stop, task) in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(limit, task).await.is_err() {
                warn!("a KafkaSource did not stop in time; abandoning it");
                abort.abort();
            }
        }
    }
}

/// How long after the shutdown deadline the final commits are waited for.
const COMMIT_GRACE: Duration = Duration::from_secs(5);

/// Everything a source task needs.
struct Prepared {
    shared: Arc<Shared>,
    spec: Arc<KafkaSourceConfig>,
    uri: Uri,
    consumer: Arc<SourceConsumer>,
    offsets: Arc<Mutex<Offsets>>,
    counters: Arc<Counters>,
}

enum Outcome {
    /// The sink accepted it, or rejected it for good: the record is done.
    Done,
    /// Stopped before the event was delivered: the record is not done.
    Stopped,
}

async fn run_source(p: Prepared, stop: StopSignal, previous: Vec<Stopping>) {
    let key = &p.spec.key;
    for prev in previous {
        // The old consumer commits and leaves the group first, so the two never process together
        // (its stop handle is kept alive meanwhile: dropping it would cut its grace period short).
        let _ = prev.task.await;
        drop(prev.stop);
    }
    if p.spec.initial_offset == InitialOffset::Latest && !stop.requested.is_cancelled() {
        let (consumer, topics) = (p.consumer.clone(), p.spec.topics.clone());
        let pinned = tokio::task::spawn_blocking(move || pin_latest(&consumer, &topics)).await;
        match pinned {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => info!(source = %key, partitions = n, "initial offsets set to latest"),
            Ok(Err(e)) => warn!(
                source = %key, error = %e,
                "could not set the initial offsets; new partitions start at their end when assigned"
            ),
            Err(_) => {}
        }
    }
    if !stop.requested.is_cancelled() {
        let topics: Vec<&str> = p.spec.topics.iter().map(String::as_str).collect();
        match p.consumer.subscribe(&topics) {
            Ok(()) => {
                info!(source = %key, topics = ?p.spec.topics, group = %p.spec.consumer_group, "KafkaSource started");
                p.counters.ready.store(true, Ordering::Release);
                consume(&p, &stop).await;
            }
            Err(e) => {
                error!(source = %key, error = %e, "KafkaSource could not subscribe");
                stop.requested.cancelled().await;
            }
        }
    }
    // Final commit and close: blocking librdkafka calls, off the async workers.
    let Prepared {
        consumer,
        offsets,
        counters,
        spec,
        ..
    } = p;
    let closed = tokio::task::spawn_blocking(move || {
        let tpl = offsets.lock().take_commit(None);
        if let Some(tpl) = tpl {
            if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                warn!(source = %spec.key, error = %e, "final offset commit failed");
                bump(&counters.commit_failures);
            }
        }
        consumer
            .context()
            .closing
            .store(true, std::sync::atomic::Ordering::Release);
        consumer.unsubscribe();
        drop(consumer);
        spec
    })
    .await;
    if let Ok(spec) = closed {
        info!(source = %spec.key, "KafkaSource stopped");
    }
}

/// Timeout of each metadata / offset request made while pinning initial offsets.
const PIN_TIMEOUT: Duration = Duration::from_secs(10);

/// `initialOffset: latest`: commits the end offset of every partition of `topics` that has no
/// committed offset yet (blocking). Returns how many partitions were pinned.
fn pin_latest(consumer: &SourceConsumer, topics: &[String]) -> KafkaResult<usize> {
    let mut all = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), PIN_TIMEOUT)?;
        for t in metadata.topics() {
            if t.name() == topic && t.error().is_none() {
                for partition in t.partitions() {
                    all.add_partition(topic, partition.id());
                }
            }
        }
    }
    if all.count() == 0 {
        return Ok(0);
    }
    let committed = consumer.committed_offsets(all, PIN_TIMEOUT)?;
    let mut pin = TopicPartitionList::new();
    for e in committed.elements() {
        if matches!(e.offset(), Offset::Offset(_)) {
            continue;
        }
        let (_low, high) = consumer.fetch_watermarks(e.topic(), e.partition(), PIN_TIMEOUT)?;
        pin.add_partition_offset(e.topic(), e.partition(), Offset::Offset(high))?;
    }
    if pin.count() > 0 {
        consumer.commit(&pin, CommitMode::Sync)?;
    }
    Ok(pin.count())
}

async fn consume(p: &Prepared, stop: &StopSignal) {
    let key = &p.spec.key;
    let options = &p.shared.options;
    let mut next_commit = Instant::now() + options.commit_interval;
    loop {
        let message = tokio::select! {
            biased;
            () = stop.requested.cancelled() => return,
            () = tokio::time::sleep_until(next_commit) => {
                commit_async(p);
                next_commit = Instant::now() + options.commit_interval;
                continue;
            }
            m = p.consumer.recv() => m,
        };
        let (topic_offset, event) = match message {
            Err(e) => {
                warn!(source = %key, error = %e, "Kafka consumer error");
                tokio::select! {
                    () = stop.requested.cancelled() => return,
                    () = tokio::time::sleep(options.backoff_initial) => continue,
                }
            }
            Ok(m) => {
                bump(&p.counters.records);
                prepare_record(p, &m)
            }
        };
        let (t, partition, offset) = topic_offset;
        if let Some(event) = event {
            match deliver(p, &event, stop, (t, partition, offset)).await {
                Outcome::Done => {}
                Outcome::Stopped => return,
            }
        }
        p.offsets.lock().finish(t, partition, offset);
        if Instant::now() >= next_commit {
            commit_async(p);
            next_commit = Instant::now() + options.commit_interval;
        }
    }
}

/// Decodes a consumed record (the borrowed message is released before any await); `None` when it
/// is skipped as invalid.
fn prepare_record(p: &Prepared, m: &BorrowedMessage<'_>) -> ((usize, i32, i64), Option<Event>) {
    let mut headers = Vec::new();
    if let Some(h) = m.headers() {
        headers.reserve(h.count());
        for header in h.iter() {
            headers.push((header.key, header.value));
        }
    }
    let record = RawRecord {
        topic: m.topic(),
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis(),
        key: m.key(),
        headers: &headers,
        value: m.payload(),
    };
    let at = (
        p.offsets.lock().topic_index(m.topic()),
        m.partition(),
        m.offset(),
    );
    match record_to_event(&p.spec.key, &record, p.shared.options.max_record_bytes) {
        Ok(event) => (at, Some(event)),
        Err(e) => {
            warn!(
                source = %p.spec.key,
                topic = m.topic(),
                partition = m.partition(),
                offset = m.offset(),
                field = e.field.as_deref().unwrap_or(""),
                reason = %e,
                "skipping an invalid record"
            );
            bump(&p.counters.invalid);
            (at, None)
        }
    }
}

fn commit_async(p: &Prepared) {
    let tpl = p.offsets.lock().take_commit(None);
    if let Some(tpl) = tpl {
        if let Err(e) = p.consumer.commit(&tpl, CommitMode::Async) {
            warn!(source = %p.spec.key, error = %e, "offset commit failed");
            bump(&p.counters.commit_failures);
            p.offsets.lock().commit_failed(&tpl);
        }
    }
}

/// Sends one event until the sink accepts or rejects it for good, or the source stops.
/// The attempts of one record's event to the sink; a failure is the sink's status (`None`: no
/// answer).
struct ToSink<'a> {
    p: &'a Prepared,
    event: &'a Event,
    stop: &'a StopSignal,
    headers: HeaderMap,
    body: bytes::Bytes,
    /// Topic number, partition and offset of the record (for logs).
    at: (usize, i32, i64),
}

impl ToSink<'_> {
    fn topic(&self) -> &str {
        self.p.spec.topics.get(self.at.0).map_or("", String::as_str)
    }
}

impl Attempts for ToSink<'_> {
    type Output = Outcome;
    type Failure = Option<u16>;

    async fn attempt(&mut self, retry: u32) -> Attempt<Outcome, Option<u16>> {
        let p = self.p;
        let key = &p.spec.key;
        if retry > 0 {
            bump(&p.counters.retries);
        }
        let attempt = p.shared.client.send_for_status(
            &p.uri,
            self.headers.clone(),
            self.body.clone(),
            p.shared.options.request_timeout,
        );
        // An attempt in flight may finish after a stop request, until its deadline.
        let result = tokio::select! {
            r = attempt => r,
            () = self.stop.deadline.cancelled() => return Attempt::Done(Outcome::Stopped),
        };
        let (status, retry_after) = match result {
            Ok((status, resp_headers)) => {
                let ra = resp_headers
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                (Some(status), ra)
            }
            Err(e) => {
                let e = e.into_detail();
                debug!(source = %key, error = %e, "sink request failed");
                (None, None)
            }
        };
        match classify(status) {
            Classification::Success => {
                bump(&p.counters.delivered);
                Attempt::Done(Outcome::Done)
            }
            Classification::Fail => {
                let (_, partition, offset) = self.at;
                warn!(
                    source = %key, topic = self.topic(), partition, offset,
                    status = status.unwrap_or(0), event.id = %self.event.id,
                    "sink rejected the event; skipping it"
                );
                bump(&p.counters.rejected);
                Attempt::Done(Outcome::Done)
            }
            Classification::Retry => Attempt::Retryable {
                failure: status,
                retry_after,
            },
        }
    }

    async fn pause(&mut self, retry: u32, wait: Duration, status: &Option<u16>) -> bool {
        if retry == 1 || retry % 10 == 0 {
            let (_, partition, offset) = self.at;
            warn!(
                source = %self.p.spec.key, topic = self.topic(), partition, offset,
                status = status.unwrap_or(0), retry, wait_ms = wait.as_millis() as u64,
                "sink did not accept the event; retrying"
            );
        }
        tokio::select! {
            () = self.stop.requested.cancelled() => false,
            () = tokio::time::sleep(wait) => true,
        }
    }
}

/// POSTs the event in binary mode until the sink accepts or rejects it for good (retried forever, see
/// the module documentation), or the source stops.
async fn deliver(p: &Prepared, event: &Event, stop: &StopSignal, at: (usize, i32, i64)) -> Outcome {
    let mut headers = HeaderMap::new();
    let body = write_binary(event, &mut headers);
    let mut attempts = ToSink {
        p,
        event,
        stop,
        headers,
        body,
        at,
    };
    match retry(&retry_schedule(&p.shared.options), &mut attempts).await {
        Retried::Done(outcome) => outcome,
        // Retried forever and no answer is fatal: only a stop ends the retries.
        Retried::Failed(_) | Retried::Interrupted => Outcome::Stopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BrokerKey, SourceSinkConfig};
    use crate::delivery::RetrySchedule;
    use crate::event::{Data, ExtValue};

    #[test]
    fn sink_urls() {
        let b = SourceSinkConfig::Broker(BrokerKey::new("ns", "orders"));
        assert_eq!(
            sink_url(&b, "http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080/ns/orders"
        );
        assert_eq!(
            sink_url(&b, "http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/ns/orders"
        );
        let u = SourceSinkConfig::Url("https://example.com/hook".into());
        assert_eq!(sink_url(&u, "http://x"), "https://example.com/hook");
    }

    #[test]
    fn backoff_is_exponential_capped_and_honours_retry_after() {
        let o = KafkaSourceOptions::default();
        let ms = Duration::from_millis;
        let schedule = retry_schedule(&o);
        let retry_wait = |_: &KafkaSourceOptions, n, ra| schedule.wait(n, ra);
        assert_eq!(schedule.max_retries(), None, "retried forever");
        let waits: Vec<_> = (1..=8).map(|n| retry_wait(&o, n, None)).collect();
        assert_eq!(
            waits,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(3200),
                ms(5000),
                ms(5000)
            ]
        );
        assert_eq!(retry_wait(&o, u32::MAX, None), ms(5000));
        assert_eq!(retry_wait(&o, 1, Some(ms(2000))), ms(2000));
        assert_eq!(retry_wait(&o, 6, Some(ms(2000))), ms(3200));
        assert_eq!(
            retry_wait(&o, 1, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
    }

    fn record<'a>(
        headers: &'a [(&'a str, Option<&'a [u8]>)],
        value: Option<&'a [u8]>,
    ) -> RawRecord<'a> {
        RawRecord {
            topic: "t",
            partition: 1,
            offset: 7,
            timestamp_ms: None,
            key: Some(b"k"),
            headers,
            value,
        }
    }

    #[test]
    fn records_become_events_or_are_skipped() {
        let key = ObjectKey::new("ns", "src");
        let ce = [
            ("ce_specversion", Some(&b"1.0"[..])),
            ("ce_id", Some(b"1")),
            ("ce_source", Some(b"/s")),
            ("ce_type", Some(b"t")),
            ("ce_ext", Some(b"v")),
        ];
        let e = record_to_event(&key, &record(&ce, Some(b"x")), 1024).unwrap();
        assert_eq!(e.id, "1");
        assert_eq!(e.extension("ext"), Some(&ExtValue::String("v".into())));
        assert_eq!(
            e.extension("key"),
            None,
            "a CloudEvent record is not wrapped"
        );
        let plain = record_to_event(&key, &record(&[], Some(b"hello")), 1024).unwrap();
        assert_eq!(plain.ty, kafka::KAFKA_EVENT_TYPE);
        assert_eq!(plain.id, "partition:1/offset:7");
        assert_eq!(plain.data, Data::Text(bytes::Bytes::from_static(b"hello")));
        let bad = [("ce_specversion", Some(&b"1.0"[..])), ("ce_id", Some(b"1"))];
        let err = record_to_event(&key, &record(&bad, None), 1024).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("ce_source"));
        let big = vec![b'x'; 1025];
        assert!(record_to_event(&key, &record(&[], Some(&big)), 1024).is_err());
        let e = record_to_event(&key, &record(&ce, Some(&big[..1000])), 1024).unwrap_err();
        assert!(e.message.contains("exceeds"), "{e}");
    }

    #[test]
    fn offsets_commit_only_progress_and_forget_revoked_partitions() {
        let mut o = Offsets {
            topics: vec!["a".into()],
            ..Offsets::default()
        };
        assert!(o.take_commit(None).is_none());
        let (a, b) = (o.topic_index("a"), o.topic_index("b"));
        assert_eq!((a, b), (0, 1));
        o.finish(a, 0, 4);
        o.finish(b, 2, 9);
        let tpl = o.take_commit(None).unwrap();
        assert_eq!(
            tpl.find_partition("a", 0).unwrap().offset(),
            Offset::Offset(5)
        );
        assert_eq!(
            tpl.find_partition("b", 2).unwrap().offset(),
            Offset::Offset(10)
        );
        assert!(o.take_commit(None).is_none(), "nothing new");
        o.commit_failed(&tpl);
        assert_eq!(
            o.take_commit(None).unwrap().count(),
            2,
            "retried after a failure"
        );
        o.finish(a, 0, 5);
        o.finish(a, 1, 0);
        let mut only = TopicPartitionList::new();
        only.add_partition("a", 1);
        let tpl = o.take_commit(Some(&only)).unwrap();
        assert_eq!(tpl.count(), 1);
        assert_eq!(
            tpl.find_partition("a", 1).unwrap().offset(),
            Offset::Offset(1)
        );
        o.forget(&only);
        let tpl = o.take_commit(None).unwrap();
        assert_eq!(tpl.count(), 1);
        assert_eq!(
            tpl.find_partition("a", 0).unwrap().offset(),
            Offset::Offset(6)
        );
    }
}
