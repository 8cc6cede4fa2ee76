//! Kafka-backed brokers (`eventing.knative.dev/broker.class: Kafka`).
//!
//! # Design
//!
//! Knative's Kafka broker gives every Trigger its own consumer group that re-reads the whole broker topic,
//! so the cost grows with triggers × events. Switchyard reads each broker topic **once per broker**:
//!
//! - **Ingress** produces each event in binary content mode to `knative-broker-<ns>-<name>` (or the
//!   external topic) with an idempotent `acks=all` producer; `partitionkey` becomes the record key. The
//!   append resolves only when every record of the batch is acknowledged.
//! - **One consumer group per broker** (`switchyard-broker-<ns>-<name>`, shared by every `switchyard serve`
//!   process configured with the broker, so partitions are spread over the processes). Its task decodes each
//!   record once, evaluates the broker's routing table once and hands the event (one shared allocation) to
//!   each matching trigger's bounded in-memory queue.
//! - **Per-trigger retry state stays out of the consumer's way.** A trigger whose queue is full (a slow or
//!   failing subscriber) does not stop the consumer: its entries *overflow* into the trigger's durable queue
//!   in the embedded store (the same redb queue an embedded broker uses) and keep being delivered from there,
//!   in order, by the same dispatcher. Once overflowed, an entry counts as done for Kafka.
//! - **Offsets**: each partition tracks, per consumed offset, how many triggers still have to finish it
//!   (deliver, dead-letter or park). The consumer commits the lowest unfinished offset (everything before it
//!   is finished) every `commit_interval`, on partition revocation (synchronously) and at shutdown.
//!   A crash redelivers from the last commit: at-least-once.
//! - **Entry handles** ([`EntryId`]) carry the partition, offset and an assignment generation: an ack after
//!   a rebalance that took the partition away is recognised as stale and ignored (the new owner redelivers).
//! - Parked events go to the embedded store's dead-letter table; a redrive puts them into the trigger's
//!   store queue, which the trigger's subscription also reads.
//! - **Health and backlog**: a probe per broker (every `probe_interval`, on a blocking thread, through the
//!   broker's group member) reads the topic's metadata and high watermarks; every fourth probe, while this
//!   process reads some but not all partitions, also the group's committed offsets of the others. While a
//!   probe fails the broker is not ready and appends fail at once (503); the
//!   first successful probe makes it ready again. The backlog combines the probe's watermarks and
//!   committed offsets with the live consumer positions: records no process finished, without those this
//!   process consumed (which its windows and the store count): for a partition this process owns, high
//!   watermark − next offset to consume; for the others, high watermark − committed offset (the consumer
//!   group's lag).

use crate::channel::log::{
    deref_common, next_probe, BrokerCommon, LogBroker, LogDriver, NewBroker, RuntimeCtx, Started,
};
use crate::channel::store::StoreChannel;
use crate::channel::{ChannelError, Entry, EntryId, Result};
use crate::config::{ContentMode, KafkaBrokerConfig};
use crate::event::Event;
use crate::kafka::binding::{self, Decoded};
use crate::kafka::config::{consumer_group, KafkaOptions};
use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The handle of a consumed record: its partition and offset under one assignment `generation` of the
/// partition (full `i32`/`i64` range; nothing is packed into bits).
fn entry_id(generation: u8, partition: i32, offset: i64) -> EntryId {
    EntryId(Entry::Kafka {
        generation,
        partition,
        offset,
    })
}

/// Minimum time between two leave-and-rejoin repairs of the consumer group.
const REJOIN_COOLDOWN: Duration = Duration::from_secs(30);

fn kafka_err(context: &str, e: impl std::fmt::Display) -> ChannelError {
    ChannelError::Storage(format!("kafka: {context}: {e}"))
}

/// Client settings shared by producers, consumers and admin clients.
pub fn client_config(bootstrap_servers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap_servers)
        .set("client.id", "switchyard")
        .set("topic.metadata.refresh.interval.ms", "10000")
        .set("socket.keepalive.enable", "true")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "1000");
    c
}

/// The idempotent `acks=all` producer used for broker topics and KafkaSinks.
pub fn producer(
    bootstrap_servers: &str,
    timeout: Duration,
    max_message_bytes: usize,
) -> std::result::Result<FutureProducer, KafkaError> {
    client_config(bootstrap_servers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", timeout.as_millis().to_string())
        .set("message.max.bytes", max_message_bytes.to_string())
        .set("retry.backoff.ms", "50")
        .set("retry.backoff.max.ms", "1000")
        .create()
}

/// Produces one event to `topic` and waits for the acknowledgement.
pub async fn produce_event(
    producer: &FutureProducer,
    topic: &str,
    event: &Event,
    mode: ContentMode,
) -> std::result::Result<(), KafkaError> {
    let record = binding::encode(event, mode);
    let future = enqueue(producer, topic, &record).await?;
    match future.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e),
        Err(_) => Err(KafkaError::Canceled),
    }
}

/// Hands a record to the producer's queue, waiting (briefly, repeatedly) while the queue is full.
async fn enqueue(
    producer: &FutureProducer,
    topic: &str,
    record: &binding::KafkaRecord<'_>,
) -> std::result::Result<rdkafka::producer::DeliveryFuture, KafkaError> {
    let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
    for (key, value) in &record.headers {
        headers = headers.insert(Header {
            key: key.as_ref(),
            value: Some(value.as_ref()),
        });
    }
    let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
    if let Some(key) = &record.key {
        fr = fr.key(key.as_ref());
    }
    if let Some(value) = &record.value {
        fr = fr.payload(value.as_ref());
    }
    let mut waited = Duration::ZERO;
    loop {
        match producer.send_result(fr) {
            Ok(f) => return Ok(f),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                if waited < Duration::from_secs(5) =>
            {
                fr = back;
                tokio::time::sleep(Duration::from_millis(2)).await;
                waited += Duration::from_millis(2);
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Per-partition bookkeeping of what the triggers still have to finish.
#[derive(Debug)]
struct PartitionTrack {
    generation: u8,
    /// Offset → triggers that have not finished it yet.
    pending: BTreeMap<i64, u32>,
    /// Highest consumed offset + 1.
    next: Option<i64>,
    /// Last committed offset (next offset to read).
    committed: i64,
}

impl PartitionTrack {
    fn new(generation: u8) -> PartitionTrack {
        PartitionTrack {
            generation,
            pending: BTreeMap::new(),
            next: None,
            committed: -1,
        }
    }

    /// The offset to commit (everything before it is finished), if it moved.
    fn committable(&self) -> Option<i64> {
        let next = self.next?;
        let low = self.pending.keys().next().copied().unwrap_or(next);
        (low > self.committed).then_some(low)
    }
}

#[derive(Debug, Default)]
struct Tracker {
    next_generation: u8,
    partitions: HashMap<i32, PartitionTrack>,
}

impl Tracker {
    fn assign(&mut self, partition: i32) {
        self.next_generation = self.next_generation.wrapping_add(1) & 0x7f;
        let generation = self.next_generation;
        self.partitions
            .insert(partition, PartitionTrack::new(generation));
    }

    fn finish(&mut self, generation: u8, partition: i32, offset: i64) {
        if let Some(p) = self.partitions.get_mut(&partition) {
            if p.generation != generation {
                return;
            }
            if let std::collections::btree_map::Entry::Occupied(mut e) = p.pending.entry(offset) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
    }

    /// Commit list for `partitions` (all when `None`); marks them committed.
    fn take_commits(&mut self, topic: &str, only: Option<&[i32]>) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for (&partition, p) in &mut self.partitions {
            if only.is_some_and(|o| !o.contains(&partition)) {
                continue;
            }
            if let Some(offset) = p.committable() {
                if list
                    .add_partition_offset(topic, partition, Offset::Offset(offset))
                    .is_ok()
                {
                    p.committed = offset;
                }
            }
        }
        list
    }
}

/// State of one Kafka-backed broker shared by its consumer task, ingress and acks.
pub(crate) struct BrokerShared {
    /// Key, routes, readiness, invalid-record count (also reachable through `Deref`).
    common: BrokerCommon,
    config: KafkaBrokerConfig,
    /// Replaced when librdkafka reports a fatal error (an idempotent producer whose state the cluster
    /// lost cannot continue).
    producer: Mutex<(u64, FutureProducer)>,
    /// Watermarks and committed offsets from the last probe; the backlog combines them with the tracker's
    /// live consumer positions.
    marks: Mutex<Vec<PartitionMarks>>,
    tracker: Mutex<Tracker>,
    /// Partitions of the topic (from metadata when the consumer started).
    partitions: std::sync::atomic::AtomicUsize,
}

deref_common!(BrokerShared);

impl LogBroker for BrokerShared {
    type Config = KafkaBrokerConfig;

    fn config(&self) -> &KafkaBrokerConfig {
        &self.config
    }

    fn finish(&self, id: EntryId) {
        if let Entry::Kafka {
            generation,
            partition,
            offset,
        } = id.0
        {
            self.tracker.lock().finish(generation, partition, offset);
        }
    }

    /// Records no process finished, without those this process consumed (its windows and the store count
    /// them): the consumer group's lag from the last probe, combined with the live consumer positions.
    fn remote_backlog(&self) -> u64 {
        let marks = self.marks.lock();
        remote_backlog(&marks, &self.tracker.lock())
    }
}

/// Kafka producers by bootstrap servers: one per cluster, shared by the Kafka-backed brokers and the
/// dispatcher's KafkaSinks (librdkafka producers are thread-safe and batch internally).
pub struct Producers {
    produce_timeout: Duration,
    max_message_bytes: usize,
    map: Mutex<HashMap<String, FutureProducer>>,
}

impl std::fmt::Debug for Producers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producers")
            .field("clusters", &self.map.lock().len())
            .finish_non_exhaustive()
    }
}

impl Producers {
    /// An empty pool; producers are made on first use with these settings.
    pub fn new(produce_timeout: Duration, max_message_bytes: usize) -> Producers {
        Producers {
            produce_timeout,
            max_message_bytes,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The producer for these bootstrap servers (made on first use).
    pub fn get(&self, bootstrap_servers: &str) -> KafkaResult<FutureProducer> {
        let mut producers = self.map.lock();
        if let Some(p) = producers.get(bootstrap_servers) {
            return Ok(p.clone());
        }
        let p = producer(
            bootstrap_servers,
            self.produce_timeout,
            self.max_message_bytes,
        )?;
        producers.insert(bootstrap_servers.to_owned(), p.clone());
        Ok(p)
    }

    /// Flushes every producer (at shutdown), each for at most `deadline`.
    pub async fn flush(&self, deadline: Duration) {
        let producers: Vec<FutureProducer> = self.map.lock().values().cloned().collect();
        for p in producers {
            let _ = tokio::task::spawn_blocking(move || p.flush(deadline)).await;
        }
    }
}

/// How Kafka-backed brokers start (topic, consumer group, probe) and take appends (produce).
pub(crate) struct KafkaDriver {
    options: KafkaOptions,
    producers: Arc<Producers>,
}

impl KafkaDriver {
    pub(crate) fn new(options: KafkaOptions) -> KafkaDriver {
        KafkaDriver {
            producers: Arc::new(Producers::new(
                options.produce_timeout,
                options.max_message_bytes,
            )),
            options,
        }
    }

    /// The producer pool (shared with KafkaSinks).
    pub(crate) fn producers(&self) -> &Arc<Producers> {
        &self.producers
    }

    /// After a fatal error or a record that timed out (e.g. a cluster that came back without the idempotent
    /// producer's state, which leaves the producer stuck), builds a new producer so that the next request
    /// can succeed. Only the first failure of a producer generation replaces it.
    fn replace_producer(
        &self,
        shared: &BrokerShared,
        failed_generation: u64,
        fatal: Option<(RDKafkaErrorCode, String)>,
    ) {
        let mut current = shared.producer.lock();
        if current.0 != failed_generation {
            return;
        }
        tracing::warn!(broker = %shared.key, ?fatal, "kafka producer failed; creating a new producer");
        let Ok(fresh) = producer(
            &shared.config.bootstrap_servers,
            self.options.produce_timeout,
            self.options.max_message_bytes,
        ) else {
            return;
        };
        // Sinks and brokers started later on the same cluster get the new one too.
        self.producers
            .map
            .lock()
            .insert(shared.config.bootstrap_servers.clone(), fresh.clone());
        *current = (failed_generation + 1, fresh);
    }
}

impl LogDriver for KafkaDriver {
    type Broker = BrokerShared;
    const NAME: &'static str = "kafka";

    fn start(&self, new: NewBroker<'_, KafkaBrokerConfig>) -> Started<BrokerShared> {
        let producer = self
            .producers
            .get(&new.config.bootstrap_servers)
            .map_err(|e| kafka_err("producer", e))?;
        let not_ready = format!("topic {} is not ready yet", new.config.topic);
        let shared = Arc::new(BrokerShared {
            common: BrokerCommon::new(new.key, new.routes, not_ready),
            config: new.config.clone(),
            producer: Mutex::new((0, producer)),
            marks: Mutex::new(Vec::new()),
            tracker: Mutex::new(Tracker::default()),
            partitions: std::sync::atomic::AtomicUsize::new(0),
        });
        let task = tokio::spawn(run_consumer(shared.clone(), self.options.clone(), new.ctx));
        Ok((shared, task))
    }

    /// Produces a batch to the broker's topic; resolves once every record is acknowledged.
    async fn append(&self, shared: &Arc<BrokerShared>, events: Vec<Event>) -> Result<()> {
        let topic = shared.config.topic.as_str();
        let (generation, producer) = shared.producer.lock().clone();
        let mut futures = Vec::with_capacity(events.len());
        let mut failure = None;
        let mut timed_out = false;
        for event in &events {
            let record = binding::encode(event, ContentMode::Binary);
            match enqueue(&producer, topic, &record).await {
                Ok(f) => futures.push(f),
                Err(e) => {
                    failure = Some(kafka_err("produce", e));
                    break;
                }
            }
        }
        for f in futures {
            match f.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    timed_out |= matches!(
                        e,
                        KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
                    );
                    failure = Some(kafka_err("produce", e));
                }
                Err(_) => failure = Some(kafka_err("produce", "cancelled")),
            }
        }
        if failure.is_some() {
            let fatal = producer.client().fatal_error();
            if fatal.is_some() || timed_out {
                self.replace_producer(shared, generation, fatal);
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Flushes the producers (the brokers' and the KafkaSinks').
    async fn closed(&self, deadline: Duration) {
        self.producers.flush(deadline).await;
    }
}

/// The consumer group's context: commits finished offsets of revoked partitions and starts fresh
/// bookkeeping for assigned ones.
struct GroupContext {
    shared: Arc<BrokerShared>,
    /// Partitions revoked by the last rebalance.
    last_revoked: Mutex<Vec<i32>>,
    /// Set when a rebalance looks like the coordinator forgot a dead member's partitions (see
    /// `post_rebalance`); the consumer loop then leaves and rejoins the group.
    rejoin: std::sync::atomic::AtomicBool,
    /// Set once the final commit is done and the consumer is being closed: the revocation that closing
    /// triggers (served inside librdkafka's close, from the dropping thread) must not commit again.
    closing: std::sync::atomic::AtomicBool,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let mut revoked: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
            revoked.sort_unstable();
            self.last_revoked.lock().clone_from(&revoked);
            let commits = {
                let mut tracker = self.shared.tracker.lock();
                let commits = tracker.take_commits(&self.shared.config.topic, Some(&revoked));
                for p in &revoked {
                    tracker.partitions.remove(p);
                }
                commits
            };
            let closing = self.closing.load(std::sync::atomic::Ordering::Acquire);
            if commits.count() > 0 && !closing {
                if let Err(e) = consumer.commit(&commits, CommitMode::Sync) {
                    tracing::warn!(broker = %self.shared.key, "commit on revocation failed: {e}");
                }
            }
            tracing::info!(broker = %self.shared.key, partitions = ?revoked, "partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let mut tracker = self.shared.tracker.lock();
            let mut assigned = Vec::new();
            for e in list.elements() {
                tracker.assign(e.partition());
                assigned.push(e.partition());
            }
            assigned.sort_unstable();
            tracing::info!(broker = %self.shared.key, partitions = ?assigned, "partitions assigned");
            // Some coordinators (tansu 0.6) drop a member whose session expired without a new group
            // generation and hand every survivor its old assignment: the dead member's partitions then
            // belong to nobody. A rebalance that gives back exactly what it revoked while partitions are
            // missing is treated as that case: the consumer leaves and rejoins as a new member, which
            // makes the coordinator form a new generation. On a correct coordinator this costs at most
            // one extra rebalance (rate-limited by the consumer loop).
            let total = self
                .shared
                .partitions
                .load(std::sync::atomic::Ordering::Relaxed);
            if !assigned.is_empty()
                && assigned.len() < total
                && *self.last_revoked.lock() == assigned
            {
                self.rejoin
                    .store(true, std::sync::atomic::Ordering::Release);
            }
        }
    }
}

/// Creates the broker topic if needed and waits until its metadata is visible; returns its partition count.
async fn ensure_topic(
    config: &KafkaBrokerConfig,
    options: &KafkaOptions,
) -> std::result::Result<usize, String> {
    let admin: AdminClient<DefaultClientContext> = client_config(&config.bootstrap_servers)
        .create()
        .map_err(|e| format!("kafka admin client: {e}"))?;
    let timeout = Some(Duration::from_secs(10));
    if !config.external_topic {
        let topic = NewTopic::new(
            &config.topic,
            config.partitions,
            TopicReplication::Fixed(i32::from(config.replication_factor)),
        );
        let opts = AdminOptions::new()
            .request_timeout(timeout)
            .operation_timeout(timeout);
        let results = admin
            .create_topics([&topic], &opts)
            .await
            .map_err(|e| format!("creating topic {}: {e}", config.topic))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => return Err(format!("creating topic {t}: {code}")),
            }
        }
    }
    // Wait until the topic's metadata is visible (and, for an external topic, that it exists).
    let topic = config.topic.clone();
    let bootstrap = config.bootstrap_servers.clone();
    let wait = options.topic_wait;
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + wait;
        let admin: AdminClient<DefaultClientContext> = client_config(&bootstrap)
            .create()
            .map_err(|e| format!("kafka admin client: {e}"))?;
        loop {
            let found = admin
                .inner()
                .fetch_metadata(Some(&topic), Duration::from_secs(5))
                .map_err(|e| format!("metadata of topic {topic}: {e}"))
                .map(|m| {
                    m.topics()
                        .iter()
                        .find(|t| {
                            t.name() == topic && t.error().is_none() && !t.partitions().is_empty()
                        })
                        .map(|t| t.partitions().len())
                });
            match found {
                Ok(Some(n)) => return Ok(n),
                Ok(None) if std::time::Instant::now() >= deadline => {
                    return Err(format!("topic {topic} does not exist"))
                }
                Err(e) if std::time::Instant::now() >= deadline => return Err(e),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    })
    .await
    .map_err(|e| format!("metadata task: {e}"))?
}

async fn run_consumer(shared: Arc<BrokerShared>, options: KafkaOptions, ctx: RuntimeCtx) {
    let RuntimeCtx { store, stop } = ctx;
    // 1. The topic.
    let Some(partitions) = shared
        .set_up(&stop, || ensure_topic(&shared.config, &options))
        .await
    else {
        return;
    };
    shared
        .partitions
        .store(partitions, std::sync::atomic::Ordering::Relaxed);
    *shared.not_ready.lock() = None;

    // 2. The broker's consumer group.
    let consumer: StreamConsumer<GroupContext> =
        match client_config(&shared.config.bootstrap_servers)
            .set("group.id", consumer_group(&shared.key))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "session.timeout.ms",
                options.session_timeout.as_millis().to_string(),
            )
            .set("heartbeat.interval.ms", "500")
            .set("max.poll.interval.ms", "30000")
            .set("fetch.wait.max.ms", "10")
            .set("enable.partition.eof", "false")
            .create_with_context(GroupContext {
                shared: shared.clone(),
                last_revoked: Mutex::new(Vec::new()),
                rejoin: std::sync::atomic::AtomicBool::new(false),
                closing: std::sync::atomic::AtomicBool::new(false),
            }) {
            Ok(c) => c,
            Err(e) => {
                *shared.not_ready.lock() = Some(format!("kafka consumer: {e}"));
                tracing::error!(broker = %shared.key, "cannot create consumer: {e}");
                return;
            }
        };
    if let Err(e) = consumer.subscribe(&[&shared.config.topic]) {
        tracing::error!(broker = %shared.key, "cannot subscribe: {e}");
        return;
    }
    tracing::info!(broker = %shared.key, topic = %shared.config.topic, "consuming");

    // 3. The probe (readiness, lag), through the group member itself: no second client of the group.
    let consumer = Arc::new(consumer);
    let probe_task = tokio::spawn(run_probe(
        shared.clone(),
        consumer.clone(),
        options.clone(),
        stop.clone(),
    ));

    let mut tick = tokio::time::interval(options.commit_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut scratch = Vec::new();
    let mut last_rejoin: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {
                commit(&consumer, &shared, CommitMode::Async);
                let due = last_rejoin.is_none_or(|t| t.elapsed() >= REJOIN_COOLDOWN);
                if due && consumer.context().rejoin.swap(false, std::sync::atomic::Ordering::AcqRel) {
                    tracing::warn!(broker = %shared.key,
                        "rebalance left partitions unassigned; leaving and rejoining the consumer group");
                    last_rejoin = Some(tokio::time::Instant::now());
                    commit(&consumer, &shared, CommitMode::Sync);
                    consumer.unsubscribe();
                    if let Err(e) = consumer.subscribe(&[&shared.config.topic]) {
                        tracing::error!(broker = %shared.key, "cannot resubscribe: {e}");
                    }
                }
            }
            m = consumer.recv() => match m {
                Ok(msg) => handle_record(&shared, &store, &msg, &mut scratch, &stop).await,
                Err(e) => {
                    shared.consume_failed(&e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    commit(&consumer, &shared, CommitMode::Sync);
    consumer
        .context()
        .closing
        .store(true, std::sync::atomic::Ordering::Release);
    consumer.unsubscribe();
    // Let a probe in flight end (each request is bounded), so that the consumer closes here.
    let _ = tokio::time::timeout(options.probe_timeout * 4, probe_task).await;
}

/// One partition as seen by the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PartitionMarks {
    partition: i32,
    low: i64,
    high: i64,
    /// The consumer group's committed offset, if any.
    committed: Option<i64>,
}

/// Metadata and watermarks of `topic` (blocking; every request bounded by `timeout`), read through the
/// broker's group member. Only partition leaders are asked, never the group coordinator: this is the
/// liveness check.
fn probe<C: ConsumerContext>(
    client: &impl Consumer<C>,
    topic: &str,
    timeout: Duration,
) -> std::result::Result<Vec<PartitionMarks>, String> {
    let metadata = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("kafka: metadata of topic {topic}: {e}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if partitions.is_empty() {
        return Err(format!("kafka: topic {topic} does not exist"));
    }
    let mut marks = Vec::with_capacity(partitions.len());
    for &partition in &partitions {
        let (low, high) = client
            .fetch_watermarks(topic, partition, timeout)
            .map_err(|e| format!("kafka: watermarks of {topic}/{partition}: {e}"))?;
        marks.push(PartitionMarks {
            partition,
            low,
            high,
            committed: None,
        });
    }
    Ok(marks)
}

/// The group's committed offsets of `partitions` (blocking, bounded by `timeout`).
fn committed<C: ConsumerContext>(
    client: &impl Consumer<C>,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> KafkaResult<Vec<(i32, i64)>> {
    let mut list = TopicPartitionList::new();
    for &p in partitions {
        list.add_partition(topic, p);
    }
    let list = client.committed_offsets(list, timeout)?;
    Ok(list
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect())
}

/// Records no process finished yet and this process did not consume: for partitions this process reads,
/// high watermark − next offset it will consume (live, so a record moving into a window is never counted
/// twice); for the others, high watermark − committed offset (the group's lag). A partition whose position
/// is unknown (not consumed here yet, no committed offset known) counts 0 rather than a guess. The
/// watermarks are from the last probe, so records produced since are counted from the next probe on.
fn remote_backlog(marks: &[PartitionMarks], tracker: &Tracker) -> u64 {
    marks
        .iter()
        .map(|m| {
            let next = tracker.partitions.get(&m.partition).and_then(|p| p.next);
            let Some(consumed_to) = next.or(m.committed) else {
                return 0;
            };
            u64::try_from(m.high - consumed_to.max(m.low)).unwrap_or(0)
        })
        .sum()
}

/// How many probes apart the committed offsets of other processes' partitions are read.
const COMMITTED_EVERY: u32 = 4;

/// Probes the broker's topic every `probe_interval`: readiness, and the lag no process holds.
async fn run_probe(
    shared: Arc<BrokerShared>,
    client: Arc<StreamConsumer<GroupContext>>,
    options: KafkaOptions,
    stop: CancellationToken,
) {
    // Committed offsets of partitions other processes read (last known; kept when a read fails).
    let mut known: HashMap<i32, i64> = HashMap::new();
    let mut round: u32 = 0;
    while next_probe(&stop, options.probe_interval).await {
        let (c, topic, timeout) = (
            client.clone(),
            shared.config.topic.clone(),
            options.probe_timeout,
        );
        let result = tokio::task::spawn_blocking(move || probe(&*c, &topic, timeout))
            .await
            .unwrap_or_else(|e| Err(format!("kafka: probe task: {e}")));
        let mut marks = match result {
            Ok(marks) => {
                shared.outage.set_up(&shared.key);
                marks
            }
            Err(reason) => {
                shared.outage.set_down(&shared.key, reason);
                continue;
            }
        };
        // The lag of partitions this process does not read needs the group coordinator (OffsetFetch).
        // Asked less often, only while this process is a settled member reading some partitions (not
        // during a rebalance, when it reads none), and never for liveness: a failure keeps the last values.
        round = round.wrapping_add(1);
        let (owned, others): (Vec<i32>, Vec<i32>) = {
            let tracker = shared.tracker.lock();
            marks
                .iter()
                .map(|m| m.partition)
                .partition(|p| tracker.partitions.contains_key(p))
        };
        if !owned.is_empty() && !others.is_empty() && round % COMMITTED_EVERY == 0 {
            let (c, topic) = (client.clone(), shared.config.topic.clone());
            match tokio::task::spawn_blocking(move || committed(&*c, &topic, &others, timeout))
                .await
            {
                Ok(Ok(offsets)) => known.extend(offsets),
                Ok(Err(e)) => tracing::debug!(broker = %shared.key, "committed offsets: {e}"),
                Err(e) => tracing::debug!(broker = %shared.key, "committed offsets task: {e}"),
            }
        }
        for m in &mut marks {
            m.committed = known.get(&m.partition).copied();
        }
        *shared.marks.lock() = marks;
    }
}

fn commit(consumer: &StreamConsumer<GroupContext>, shared: &BrokerShared, mode: CommitMode) {
    let list = shared
        .tracker
        .lock()
        .take_commits(&shared.config.topic, None);
    if list.count() == 0 {
        return;
    }
    if let Err(e) = consumer.commit(&list, mode) {
        // A failed commit only means redelivery after a crash; make the next tick try again.
        if !matches!(
            e,
            KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)
                | KafkaError::ConsumerCommit(RDKafkaErrorCode::RebalanceInProgress)
        ) {
            tracing::warn!(broker = %shared.key, "commit: {e}");
        }
        let mut tracker = shared.tracker.lock();
        for e in list.elements() {
            if let Some(p) = tracker.partitions.get_mut(&e.partition()) {
                p.committed = -1;
            }
        }
    }
}

/// Decodes, routes and hands one record to the matching triggers.
async fn handle_record(
    shared: &BrokerShared,
    store: &StoreChannel,
    msg: &rdkafka::message::BorrowedMessage<'_>,
    scratch: &mut Vec<usize>,
    stop: &CancellationToken,
) {
    let partition = msg.partition();
    let offset = msg.offset();
    let generation = {
        let mut tracker = shared.tracker.lock();
        if !tracker.partitions.contains_key(&partition) {
            tracker.assign(partition);
        }
        let p = tracker
            .partitions
            .get_mut(&partition)
            .expect("just inserted");
        p.next = Some(p.next.map_or(offset + 1, |n| n.max(offset + 1)));
        p.generation
    };
    let Some(event) = decode_record(shared, msg) else {
        return;
    };
    shared
        .route(
            store,
            event,
            scratch,
            stop,
            |n| {
                let mut tracker = shared.tracker.lock();
                if let Some(p) = tracker.partitions.get_mut(&partition) {
                    p.pending.insert(offset, n);
                }
                entry_id(generation, partition, offset)
            },
            || shared.tracker.lock().finish(generation, partition, offset),
        )
        .await;
}

fn decode_record(
    shared: &BrokerShared,
    msg: &rdkafka::message::BorrowedMessage<'_>,
) -> Option<Event> {
    let mut headers: Vec<(&str, Option<&[u8]>)> = Vec::new();
    if let Some(h) = msg.headers() {
        headers.reserve(h.count());
        for header in h.iter() {
            headers.push((header.key, header.value));
        }
    }
    match binding::decode(msg.key(), &headers, msg.payload()) {
        Ok(Decoded::Event(event)) => Some(event),
        Ok(Decoded::NotCloudEvent) => Some(binding::wrap_raw(
            &shared.key.namespace,
            &shared.key.name,
            &binding::RawRecord {
                topic: &shared.config.topic,
                partition: msg.partition(),
                offset: msg.offset(),
                timestamp_ms: msg.timestamp().to_millis(),
                key: msg.key(),
                headers: &headers,
                value: msg.payload(),
            },
        )),
        Err(e) => {
            shared.invalid.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                broker = %shared.key,
                topic = %shared.config.topic,
                partition = msg.partition(),
                offset = msg.offset(),
                "skipping a record that is not a valid CloudEvent: {e}"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_round_trip_and_never_look_like_store_entries() {
        for (g, p, o) in [
            (0u8, 0i32, 0i64),
            (127, 65535, (1 << 40) - 1),
            (5, 3, 123_456),
            (255, i32::MAX, i64::MAX),
        ] {
            let id = entry_id(g, p, o);
            assert_eq!(
                id.0,
                Entry::Kafka {
                    generation: g,
                    partition: p,
                    offset: o
                }
            );
            assert_eq!(id.as_seq(), None);
        }
        assert_ne!(entry_id(0, 0, 12345), EntryId::seq(12345));
    }

    #[test]
    fn remote_backlog_counts_what_no_one_consumed_once() {
        let mut t = Tracker::default();
        t.assign(0);
        t.partitions.get_mut(&0).unwrap().next = Some(40);
        let marks = [
            // Ours: 40 consumed of 100 (those are in windows or the store): 60 left.
            PartitionMarks {
                partition: 0,
                low: 0,
                high: 100,
                committed: Some(10),
            },
            // Another process's: lag 50 - 20.
            PartitionMarks {
                partition: 1,
                low: 0,
                high: 50,
                committed: Some(20),
            },
            // Position unknown (not read here, no committed offset known): not guessed.
            PartitionMarks {
                partition: 2,
                low: 5,
                high: 8,
                committed: None,
            },
            // A committed offset below the low watermark (records deleted): from the low watermark.
            PartitionMarks {
                partition: 3,
                low: 5,
                high: 8,
                committed: Some(1),
            },
        ];
        assert_eq!(remote_backlog(&marks, &t), 60 + 30 + 3);
        // A watermark read before the consumer moved on never makes it negative.
        t.partitions.get_mut(&0).unwrap().next = Some(120);
        assert_eq!(remote_backlog(&marks, &t), 30 + 3);
    }

    #[test]
    fn commits_lowest_unfinished_offset() {
        let mut t = Tracker::default();
        t.assign(0);
        let g = t.partitions[&0].generation;
        {
            let p = t.partitions.get_mut(&0).unwrap();
            p.next = Some(13);
            p.pending.insert(10, 2);
            p.pending.insert(12, 1);
        }
        let list = t.take_commits("t", None);
        assert_eq!(list.elements()[0].offset(), Offset::Offset(10));
        t.finish(g, 0, 10);
        assert!(
            t.take_commits("t", None).count() == 0,
            "10 still has one trigger"
        );
        t.finish(g, 0, 10);
        assert_eq!(
            t.take_commits("t", None).elements()[0].offset(),
            Offset::Offset(12)
        );
        // A stale generation is ignored.
        t.finish(g.wrapping_add(1), 0, 12);
        assert!(t.take_commits("t", None).count() == 0);
        t.finish(g, 0, 12);
        assert_eq!(
            t.take_commits("t", None).elements()[0].offset(),
            Offset::Offset(13)
        );
    }
}
