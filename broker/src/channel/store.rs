//! The embedded channel: a [redb](https://docs.rs/redb) database written by one thread with group commit.
//!
//! # Tables
//!
//! | table | key | value | meaning |
//! |---|---|---|---|
//! | `events` | `u64` seq | encoded event | every stored event, once, however many triggers it was routed to |
//! | `refs` | `u64` seq | `u32` | queue entries still referencing the event, only while ≥ 2 (no row = 1) |
//! | `queue` | `(u64 trigger id, u64 seq)` | `()` | one entry per (trigger, event) still to deliver |
//! | `triggers` | `"ns/name"` | `(u64 trigger id, "ns/broker")` | trigger identity; a new id = a fresh queue |
//! | `meta` | name | `u64` | `next_seq` (a high-water mark, see below), `next_trigger_id`, `next_deadletter_id` |
//! | `deadletters` | `u64` id | encoded record | trigger key, `parked_at_ms`, [`ParkRecord`] with its event |
//!
//! Most events go to exactly one trigger, so an append of one event costs one `events` and one `queue`
//! insert, and its ack one `queue` and one `events` delete: a `refs` row exists only for an event routed to
//! several triggers, and goes when its count would drop to 1.
//!
//! Sequence numbers are allocated by the writer in commit order, so `queue` iterated over one trigger's key
//! range is that trigger's queue in append order. An event that matches no trigger is not stored at all.
//! A trigger is identified by a numeric id rather than its name so that removing a trigger and adding one
//! with the same name (or re-pointing it to another broker) starts from an empty queue without having to
//! delete the old entries first.
//!
//! # Writer
//!
//! One `std::thread` owns the write side. Commands arrive on a bounded queue (`queue_depth`, giving
//! back-pressure to callers). The writer blocks for the first command, then drains whatever else is queued,
//! up to `max_batch_events` events / `max_batch_bytes` encoded bytes, into ONE write transaction (group
//! commit). If fewer appends are queued than the previous batch held, it lingers briefly for them (at most
//! half the last durable commit's duration, and 400 µs): without that, concurrent appenders settle into two
//! groups that alternate, each committing while the other re-sends, at twice the fsyncs. With a single
//! appender the previous batch held one append, so nothing waits. The transaction is committed with `Durability::Immediate` (fsync) if it holds an append, park,
//! redrive or flush; a batch of acks only is committed with `Durability::None` (a lost ack only causes a
//! redelivery), except that every 64th consecutive ack-only commit is made durable so that the freed pages
//! of non-durable commits are recycled and the window of acks that a crash can lose stays bounded.
//! Topology changes and close are never mixed with other commands: they run in a transaction of their own,
//! which keeps the writer's state rollback trivial.
//!
//! Every waiter is answered only after the commit; if the commit (or any storage operation in the batch)
//! fails, the transaction is aborted and every waiter of the batch gets [`ChannelError::Storage`]: nothing is
//! half-applied. Validation errors (unknown broker, unknown trigger, dead letter not found) are per command
//! and do not affect the other commands of the batch. Events are encoded by the calling task (in parallel),
//! and routing happens in the writer at commit time with the topology the writer holds, so an append is
//! ordered with respect to topology changes.
//!
//! # Consumers
//!
//! After a commit, each routed entry is pushed as a [`Delivery`] (one `Arc<Event>` shared by all the
//! triggers it was routed to) into the trigger's in-memory buffer (bounded by `trigger_buffer`). If the
//! buffer is full, the writer sets the trigger's *overflow* flag instead and pushes nothing more until the
//! consumer clears it. A subscription delivers from the buffer; when the buffer is empty and the flag is set,
//! it clears the flag (under the buffer lock, which orders it after the writer's commit) and reads the
//! `queue` table in pages (`trigger_buffer` entries, at least 64) from its next expected seq, page after page
//! until a page comes back short; buffer entries below the next expected seq are then skipped (they were
//! already delivered from the database). Each delivery therefore comes exactly once per subscription, in
//! seq order. A new subscription starts by reading the database, so it picks up entries left over from
//! before a restart. Database reads on this path are short blocking reads on the calling task; if a read
//! fails, the subscription logs it and retries with backoff (it has no error channel).
//!
//! `Subscription::next` is cancel-safe (it can be used in `tokio::select!`): an entry is taken from the
//! buffer or the page only in the same poll that returns it.
//!
//! Only one subscription per trigger is live: [`Channel::subscribe`] again ends the previous one (its `next`
//! returns `None`), and the new one starts from the oldest un-acked entry, so the previous subscription's
//! un-acked entries are delivered again. A subscription also ends when its trigger is removed (or re-pointed
//! to another broker) or the channel is closed.
//!
//! # Acks, parking, redrive
//!
//! An ack deletes the queue entry and decrements the event's `refs`; at 0 the event is deleted (space
//! reclaim). The acks of a batch are applied together, sorted by (trigger, seq), at the end of the batch
//! (or before a park in the same batch, so that ack-then-park keeps its meaning): seqs at most 64 apart
//! are removed in one `retain_in` range scan, which rewrites each B-tree leaf once rather than once per
//! removed key; the same goes for the events they free. Acking an entry that does not exist, or an entry of a trigger that no longer exists, is a no-op
//! (idempotent: redelivery after a crash may ack twice). Parking does the same removal and inserts the
//! dead-letter record in the same durable transaction; parking an entry that no longer exists is a no-op
//! (so a duplicate park does not create a second dead letter); parking for a trigger that no longer exists is
//! [`ChannelError::UnknownTrigger`]. A redrive appends the parked event as a new seq with a queue entry for
//! that trigger only, and deletes the dead letter.
//!
//! # Backlog
//!
//! Per-trigger `AtomicU64` counters, initialised at open by counting the `queue` table, +1 per routed entry
//! at commit, −1 per ack/park that removed an entry. `backlog(broker)` sums the broker's triggers.
//!
//! # Recovery
//!
//! `meta.next_seq` is not rewritten by every commit: it is a high-water mark above every seq ever allocated,
//! raised by `SEQ_RESERVE` (65 536) in the commit whose allocations would pass it. At open the next seq is
//! that mark (or the last `events` key + 1 if larger), so seqs stay unique and increasing across restarts
//! even when every event had been deleted; a restart skips at most `SEQ_RESERVE` seqs.
//!
//! At open the writer reads `meta` and `triggers`; every `queue` entry is delivered again to the trigger's
//! next subscriber (at-least-once). The first topology applied keeps the queues of triggers that still exist
//! on the same broker and drops the others.
//!
//! # Failure model
//!
//! A storage error aborts the batch and puts the writer into a *failed* state (reported as
//! [`StoreHealth::Full`] for ENOSPC/EDQUOT, [`StoreHealth::Failed`] otherwise): appends are refused at once,
//! acks are kept in memory and committed after recovery, parks wait for it. The writer closes and reopens
//! the database with backoff (redb must be reopened after an I/O error), re-reads the counters and commits
//! the deferred work durably; the first success makes it healthy again. Independently, free space on the
//! volume is measured (`space.rs`): below the reserve appends are refused ([`ChannelError::Full`]) while
//! everything else still commits. An idle writer compacts the file once entries were removed and either the
//! queues are empty or space is short. ARCHITECTURE.md ("The store's failure model") has the whole picture.
//!
//! # How future features fit
//!
//! - Retention after delivery: keep events whose `refs` reached 0, add a time index
//!   `(arrival_ms, seq)` and delete from `events` when the index says they expired.
//! - Replay from a timestamp: a time index `(broker id, arrival_ms, seq)`; a replay inserts queue entries
//!   for one trigger from that index (needs retention, above).
//! - Pausing a trigger: stop its consumer; its entries simply stay in `queue` (the backlog grows).
//! - Dedup on `source` + `id`: an index table `(hash(source, id)) → (seq, expiry)` checked in the writer at
//!   commit time, plus an expiry index swept by the writer.
//! - A delivery journal: a `(seq, trigger id) → attempts` table written with the acks.
//! - Ordered delivery per key: the queue is already in seq order per trigger; the dispatcher would hold back
//!   entries whose key has one in flight.

mod codec;
pub mod space;
mod writer;

use crate::channel::{
    BoxFuture, Channel, ChannelError, Delivery, Done, Entry, EntryId, ParkRecord, ParkedEvent,
    Result, Subscription,
};
use crate::config::{BrokerKey, Topology, TriggerKey};
use crate::event::Event;
use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::{mpsc, oneshot, Notify};
use writer::Command;

// Until `crate::format::codec` lands, the private codec stands in for it (same names).
use codec::{decode, encode};

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const REFS: TableDefinition<u64, u32> = TableDefinition::new("refs");
const QUEUE: TableDefinition<(u64, u64), ()> = TableDefinition::new("queue");
const TRIGGERS: TableDefinition<&str, (u64, &str)> = TableDefinition::new("triggers");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const DEADLETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("deadletters");

/// File name of the database inside the directory given to [`StoreChannel::open`].
pub const DB_FILE: &str = "switchyard.redb";

/// Tuning of the embedded store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Max events per write transaction (group commit). Default 4096.
    pub max_batch_events: usize,
    /// Max encoded bytes per write transaction. Default 8 MiB.
    pub max_batch_bytes: usize,
    /// In-memory entries buffered per trigger before its consumer falls back to reading the database.
    /// Default 256 (with a page of the same size read back at a time, a trigger holds at most ~512 events).
    pub trigger_buffer: usize,
    /// Capacity of the writer's command queue (callers wait when it is full). Default 8192.
    pub queue_depth: usize,
    /// Bytes of redb's page cache (redb's own default is 1 GiB, which a large backlog fills). Default
    /// 32 MiB.
    pub cache_bytes: usize,
    /// Free bytes to keep on the store's volume: below this, appends are refused with
    /// [`ChannelError::Full`] so that deliveries, acks and parking still have room to commit. `None`:
    /// 64 MiB or 5 % of the volume, whichever is smaller. Ignored by stores without a directory.
    pub min_free_bytes: Option<u64>,
    /// Durable commits also record redb's allocator state ("quick repair"), so that opening the store
    /// after a crash does not walk the whole file (seconds with a large backlog). Default true.
    pub quick_repair: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_batch_events: 4096,
            max_batch_bytes: 8 << 20,
            trigger_buffer: 256,
            queue_depth: 8192,
            cache_bytes: 32 << 20,
            min_free_bytes: None,
            quick_repair: true,
        }
    }
}

/// Counters and table sizes, for tests and diagnostics.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Write transactions committed since open.
    pub commits: u64,
    /// Durable (`Immediate`) commits since open.
    pub durable_commits: u64,
    /// Append commands committed since open.
    pub appends: u64,
    /// Rows in `events`.
    pub events: u64,
    /// Rows in `refs`.
    pub refs: u64,
    /// Rows in `queue`.
    pub queue_entries: u64,
    /// Rows in `deadletters`.
    pub dead_letters: u64,
    /// Rows in `triggers`.
    pub triggers: u64,
}

/// Whether the embedded store can take writes (readiness, `switchyard_store_degraded`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHealth {
    /// Writes succeed.
    Healthy,
    /// The volume is full or below the free-space reserve: appends are refused ([`ChannelError::Full`],
    /// HTTP 507) until space comes back; deliveries, acks and parking go on while the database can
    /// commit. `reason` is for operators (logs, readiness), never for clients.
    Full {
        /// What was measured.
        reason: String,
    },
    /// A write failed: the database is closed and reopened with backoff until a write succeeds again;
    /// appends are refused ([`ChannelError::Storage`], HTTP 503), acks are kept in memory and committed
    /// after recovery, parks wait for it.
    Failed {
        /// The storage error, for operators.
        reason: String,
    },
}

impl StoreHealth {
    /// Whether appends are refused.
    pub fn is_degraded(&self) -> bool {
        !matches!(self, StoreHealth::Healthy)
    }
}

/// Sizes for metrics (`switchyard_store_bytes`, `switchyard_store_free_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreSpace {
    /// Size of the database file (0 in memory).
    pub file_bytes: u64,
    /// Free bytes on the volume (`None` in memory or when it cannot be measured).
    pub free_bytes: Option<u64>,
    /// The reserve in force (`None` in memory).
    pub min_free_bytes: Option<u64>,
}

const HEALTHY: u8 = 0;
const FULL: u8 = 1;
const FAILED: u8 = 2;

/// Reopens the database (after a failure): the file again, or the same storage backend.
pub(crate) type Opener =
    Box<dyn Fn(usize) -> std::result::Result<Database, redb::DatabaseError> + Send>;

/// A storage backend shared between successive `Database`s (so that a store on a custom backend can be
/// reopened after a failure like a file can).
#[derive(Debug)]
struct SharedBackend<B>(Arc<B>);

impl<B: redb::StorageBackend> redb::StorageBackend for SharedBackend<B> {
    fn len(&self) -> std::io::Result<u64> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.0.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.0.write(offset, data)
    }
}

/// The embedded redb channel. Cheap to clone (all clones share one store and one writer thread).
///
/// See the module docs for the storage layout and the consumer protocol.
#[derive(Clone)]
pub struct StoreChannel {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StoreChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreChannel")
            .field("options", &self.inner.shared.options)
            .finish_non_exhaustive()
    }
}

struct Inner {
    shared: Arc<Shared>,
    /// `None` only during drop.
    tx: Option<mpsc::Sender<Command>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the command queue makes the writer finish (durably) and release the database file.
        self.tx = None;
        if let Some(handle) = self.thread.lock().take() {
            if handle.join().is_err() {
                tracing::error!("channel store writer thread panicked");
            }
        }
    }
}

/// State shared by the handle, the writer thread and the subscriptions.
pub(crate) struct Shared {
    /// The database for readers; `None` once closed, and briefly while it is reopened or compacted.
    db: ArcSwapOption<Database>,
    /// The data directory and database file (`None` for stores without a file).
    dir: Option<PathBuf>,
    file: Option<PathBuf>,
    /// `HEALTHY`, `FULL` or `FAILED`, with the reason in `health`.
    health_code: AtomicU8,
    health: Mutex<StoreHealth>,
    file_bytes: AtomicU64,
    /// `u64::MAX` = unknown.
    free_bytes: AtomicU64,
    min_free_bytes: AtomicU64,
    /// Triggers known to the store (replaced by the writer on topology changes).
    registry: ArcSwap<Registry>,
    closed: AtomicBool,
    options: StoreOptions,
    /// Entries read from the database per page by a consumer.
    page: usize,
    commits: AtomicU64,
    durable_commits: AtomicU64,
    appends: AtomicU64,
}

impl Shared {
    fn all_triggers(&self) -> Vec<Arc<TriggerState>> {
        self.registry.load().by_key.values().cloned().collect()
    }

    /// The database for a read; an error while it is being reopened or compacted (retry later).
    fn reader(&self) -> Result<Arc<Database>> {
        match self.db.load_full() {
            Some(db) => Ok(db),
            None if self.closed.load(Ordering::Acquire) => Err(ChannelError::Closed),
            None => Err(ChannelError::Unavailable(
                "the store is being reopened or compacted".into(),
            )),
        }
    }

    /// Records a health transition and logs it (once per transition, never per request).
    fn set_health(&self, health: StoreHealth) {
        let code = match &health {
            StoreHealth::Healthy => HEALTHY,
            StoreHealth::Full { .. } => FULL,
            StoreHealth::Failed { .. } => FAILED,
        };
        let mut current = self.health.lock();
        if *current == health {
            return;
        }
        let was = self.health_code.swap(code, Ordering::AcqRel);
        match &health {
            StoreHealth::Healthy => {
                tracing::info!("The store accepts events again.");
            }
            StoreHealth::Full { reason } if was != FULL => {
                tracing::error!(reason = %reason, "The store is full: events are refused (507) until space comes back.");
            }
            StoreHealth::Failed { reason } if was != FAILED => {
                tracing::error!(reason = %reason, "The store failed: events are refused (503) while it reopens.");
            }
            _ => {}
        }
        *current = health;
    }

    /// The error an append gets while the store is degraded, if it is.
    fn refusal(&self) -> Option<ChannelError> {
        match self.health_code.load(Ordering::Acquire) {
            FULL => Some(ChannelError::Full),
            FAILED => Some(ChannelError::Storage(
                "the store is recovering from a write failure".into(),
            )),
            _ => None,
        }
    }
}

#[derive(Default)]
pub(crate) struct Registry {
    by_key: HashMap<TriggerKey, Arc<TriggerState>>,
    by_broker: HashMap<BrokerKey, Vec<Arc<TriggerState>>>,
}

impl Registry {
    fn new(by_key: HashMap<TriggerKey, Arc<TriggerState>>) -> Registry {
        let mut by_broker: HashMap<BrokerKey, Vec<Arc<TriggerState>>> = HashMap::new();
        for state in by_key.values() {
            by_broker
                .entry(state.broker.clone())
                .or_default()
                .push(state.clone());
        }
        Registry { by_key, by_broker }
    }
}

/// In-memory side of one trigger's queue.
pub(crate) struct TriggerState {
    id: u64,
    key: TriggerKey,
    broker: BrokerKey,
    buffer: Mutex<Buffer>,
    notify: Notify,
    backlog: AtomicU64,
    removed: AtomicBool,
    /// Bumped by every `subscribe`; older subscriptions see a different value and end.
    generation: AtomicU64,
}

#[derive(Default)]
struct Buffer {
    entries: VecDeque<Delivery>,
    /// Entries were committed without being buffered: the consumer must read the database.
    overflow: bool,
}

impl TriggerState {
    fn new(id: u64, key: TriggerKey, broker: BrokerKey, backlog: u64) -> TriggerState {
        TriggerState {
            id,
            key,
            broker,
            buffer: Mutex::new(Buffer::default()),
            notify: Notify::new(),
            backlog: AtomicU64::new(backlog),
            removed: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        }
    }

    /// Wakes the consumer so that it notices it has ended.
    fn wake_to_end(&self) {
        self.notify.notify_waiters();
        self.notify.notify_one();
    }
}

/// The events' storage encodings back to back, and the end offset of each (encoded on the caller's task,
/// so that encoding runs in parallel with the writer).
fn encode_batch(events: &[Event]) -> (Vec<u8>, Vec<usize>) {
    let size: usize = events.iter().map(|e| e.approx_size() + 64).sum();
    let mut encoded = Vec::with_capacity(size);
    let mut ends = Vec::with_capacity(events.len());
    for event in events {
        encode(event, &mut encoded);
        ends.push(encoded.len());
    }
    (encoded, ends)
}

/// A redb error as a channel error: a full volume is [`ChannelError::Full`], the rest `Storage`.
/// The number of rows of `table`.
fn rows<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    table: TableDefinition<K, V>,
) -> Result<u64> {
    txn.open_table(table)
        .map_err(storage)?
        .len()
        .map_err(storage)
}

fn storage<E: Into<redb::Error>>(e: E) -> ChannelError {
    let e = e.into();
    if let redb::Error::Io(io) = &e {
        if space::is_full(io) {
            return ChannelError::Full;
        }
    }
    ChannelError::Storage(e.to_string())
}

fn corrupt(what: impl std::fmt::Display) -> ChannelError {
    ChannelError::Corrupt(format!("corrupt store: {what}"))
}

fn trigger_row_key(key: &TriggerKey) -> String {
    format!("{}/{}", key.namespace, key.name)
}

fn parse_key(s: &str) -> Option<(String, String)> {
    let (ns, name) = s.split_once('/')?;
    Some((ns.to_owned(), name.to_owned()))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl StoreChannel {
    /// Opens (creating) `dir/switchyard.redb`. Spawns the writer thread.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<StoreChannel, ChannelError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ChannelError::Storage(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join(DB_FILE);
        let file = path.clone();
        let opener: Opener =
            Box::new(move |cache| Database::builder().set_cache_size(cache).create(&file));
        let db = opener(options.cache_bytes)
            .map_err(|e| ChannelError::Storage(format!("opening {}: {e}", path.display())))?;
        StoreChannel::start(db, opener, Some(dir.to_path_buf()), options)
    }

    /// Same store in memory (redb `InMemoryBackend`) — identical semantics, for unit tests.
    pub fn in_memory(options: StoreOptions) -> Result<StoreChannel, ChannelError> {
        StoreChannel::with_backend(redb::backends::InMemoryBackend::new(), options)
    }

    /// Same store on any redb storage backend (used by tests to inject IO failures).
    #[doc(hidden)]
    pub fn with_backend(
        backend: impl redb::StorageBackend,
        options: StoreOptions,
    ) -> Result<StoreChannel, ChannelError> {
        let backend = Arc::new(backend);
        let opener: Opener = Box::new(move |cache| {
            Database::builder()
                .set_cache_size(cache)
                .create_with_backend(SharedBackend(backend.clone()))
        });
        let db = opener(options.cache_bytes).map_err(storage)?;
        StoreChannel::start(db, opener, None, options)
    }

    fn start(
        db: Database,
        opener: Opener,
        dir: Option<PathBuf>,
        options: StoreOptions,
    ) -> Result<StoreChannel> {
        let options = StoreOptions {
            max_batch_events: options.max_batch_events.max(1),
            max_batch_bytes: options.max_batch_bytes.max(1),
            trigger_buffer: options.trigger_buffer.max(1),
            queue_depth: options.queue_depth.max(1),
            ..options
        };
        let recovered = writer::recover(&db)?;
        let by_key: HashMap<_, _> = recovered
            .triggers
            .iter()
            .map(|t| (t.key.clone(), t.clone()))
            .collect();
        let db = Arc::new(db);
        let file = dir.as_ref().map(|d| d.join(DB_FILE));
        let shared = Arc::new(Shared {
            db: ArcSwapOption::from(Some(db.clone())),
            dir,
            file,
            health_code: AtomicU8::new(HEALTHY),
            health: Mutex::new(StoreHealth::Healthy),
            file_bytes: AtomicU64::new(0),
            free_bytes: AtomicU64::new(u64::MAX),
            min_free_bytes: AtomicU64::new(u64::MAX),
            registry: ArcSwap::from_pointee(Registry::new(by_key.clone())),
            closed: AtomicBool::new(false),
            page: options.trigger_buffer.clamp(64, 4096),
            options,
            commits: AtomicU64::new(0),
            durable_commits: AtomicU64::new(0),
            appends: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel(shared.options.queue_depth);
        let writer =
            writer::Writer::new(db, opener, shared.clone(), rx, recovered.counters, by_key);
        let thread = std::thread::Builder::new()
            .name("switchyard-store".into())
            .spawn(move || writer.run())
            .map_err(|e| ChannelError::Storage(format!("spawning the store writer: {e}")))?;
        Ok(StoreChannel {
            inner: Arc::new(Inner {
                shared,
                tx: Some(tx),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Stops the writer after flushing (idempotent). Subscriptions then return None.
    pub fn close(&self) -> Done<'_> {
        Box::pin(async move {
            match self.call(|respond| Command::Close { respond }).await {
                Ok(()) | Err(ChannelError::Closed) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    /// Commit counters and table sizes (for tests and diagnostics).
    #[doc(hidden)]
    pub fn stats(&self) -> Result<StoreStats> {
        let shared = &self.inner.shared;
        let mut stats = StoreStats {
            commits: shared.commits.load(Ordering::Relaxed),
            durable_commits: shared.durable_commits.load(Ordering::Relaxed),
            appends: shared.appends.load(Ordering::Relaxed),
            ..StoreStats::default()
        };
        let db = shared.reader()?;
        let txn = db.begin_read().map_err(storage)?;
        stats.events = rows(&txn, EVENTS)?;
        stats.refs = rows(&txn, REFS)?;
        stats.queue_entries = rows(&txn, QUEUE)?;
        stats.dead_letters = rows(&txn, DEADLETTERS)?;
        stats.triggers = rows(&txn, TRIGGERS)?;
        Ok(stats)
    }

    /// Sends a command built around a fresh responder and waits for the writer's answer.
    async fn call(&self, build: impl FnOnce(oneshot::Sender<Result<()>>) -> Command) -> Result<()> {
        if self.inner.shared.closed.load(Ordering::Acquire) {
            return Err(ChannelError::Closed);
        }
        let tx = self.inner.tx.as_ref().ok_or(ChannelError::Closed)?;
        let (respond, response) = oneshot::channel();
        tx.send(build(respond))
            .await
            .map_err(|_| ChannelError::Closed)?;
        response.await.unwrap_or(Err(ChannelError::Closed))
    }

    /// Appends events to one trigger's queue, durably, without routing (the trigger must exist in the
    /// applied topology). Used by other backends to keep a trigger's overflow and redriven events here.
    pub async fn enqueue(&self, trigger: &TriggerKey, events: Vec<Event>) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let state = self
            .trigger(trigger)
            .ok_or_else(|| ChannelError::UnknownTrigger(trigger.clone()))?;
        let (encoded, ends) = encode_batch(&events);
        self.call(move |respond| Command::Enqueue {
            trigger: state,
            events,
            encoded,
            ends,
            respond,
        })
        .await
    }

    /// Stores a dead letter for `trigger` that has no queue entry in this store (parked by another
    /// backend). It is listed and redriven like any other; a redrive puts it into this store's queue of
    /// the trigger.
    pub async fn park_detached(&self, trigger: &TriggerKey, record: ParkRecord) -> Result<()> {
        let mut encoded = Vec::with_capacity(record.event.approx_size() + 256);
        codec::encode_park(trigger, now_ms(), &record, &mut encoded);
        self.call(move |respond| Command::ParkDetached {
            record: encoded,
            respond,
        })
        .await
    }

    fn trigger(&self, key: &TriggerKey) -> Option<Arc<TriggerState>> {
        self.inner.shared.registry.load().by_key.get(key).cloned()
    }

    /// Whether the store takes writes; see [`StoreHealth`].
    pub fn health(&self) -> StoreHealth {
        self.inner.shared.health.lock().clone()
    }

    /// File size and free space, as last measured by the writer (about once a second).
    pub fn space(&self) -> StoreSpace {
        let s = &self.inner.shared;
        let known = |v: u64| (v != u64::MAX).then_some(v);
        StoreSpace {
            file_bytes: s.file_bytes.load(Ordering::Relaxed),
            free_bytes: known(s.free_bytes.load(Ordering::Relaxed)),
            min_free_bytes: known(s.min_free_bytes.load(Ordering::Relaxed)),
        }
    }
}

impl Channel for StoreChannel {
    fn apply_topology(&self, topology: Arc<Topology>) -> Done<'_> {
        Box::pin(self.call(move |respond| Command::ApplyTopology { topology, respond }))
    }

    fn append<'a>(&'a self, broker: &'a BrokerKey, mut events: Vec<Event>) -> Done<'a> {
        Box::pin(async move {
            if events.is_empty() {
                return Ok(());
            }
            // Refused at once while degraded (the writer would refuse it too, after queueing).
            if let Some(e) = self.inner.shared.refusal() {
                return Err(e);
            }
            for e in &mut events {
                // Buffered deliveries must not pin the request's network buffer (memory bound).
                e.data.detach();
            }
            let (encoded, ends) = encode_batch(&events);
            self.call(move |respond| Command::Append {
                broker: broker.clone(),
                events,
                encoded,
                ends,
                respond,
            })
            .await
        })
    }

    fn subscribe(&self, trigger: &TriggerKey) -> Result<Box<dyn Subscription>> {
        let shared = &self.inner.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(ChannelError::Closed);
        }
        let state = self
            .trigger(trigger)
            .ok_or_else(|| ChannelError::UnknownTrigger(trigger.clone()))?;
        let generation = state.generation.fetch_add(1, Ordering::AcqRel) + 1;
        // End the previous subscription, if one is waiting.
        state.notify.notify_waiters();
        Ok(Box::new(StoreSubscription {
            shared: shared.clone(),
            state,
            generation,
            next_seq: 0,
            local: VecDeque::new(),
            db_mode: true,
            read_failures: 0,
        }))
    }

    fn ack<'a>(&'a self, trigger: &'a TriggerKey, id: EntryId) -> Done<'a> {
        Box::pin(async move {
            let Entry::Store(seq) = id.0 else {
                // Not one of ours: no such entry here.
                return Ok(());
            };
            match self.trigger(trigger) {
                // The trigger's queue is gone with it: nothing left to ack.
                None => Ok(()),
                Some(trigger) => {
                    self.call(move |respond| Command::Ack {
                        trigger,
                        seq,
                        respond,
                    })
                    .await
                }
            }
        })
    }

    fn park<'a>(&'a self, trigger: &'a TriggerKey, id: EntryId, record: ParkRecord) -> Done<'a> {
        Box::pin(async move {
            let Entry::Store(seq) = id.0 else {
                // Not one of ours: parking an entry that does not exist is a no-op.
                return Ok(());
            };
            let state = self
                .trigger(trigger)
                .ok_or_else(|| ChannelError::UnknownTrigger(trigger.clone()))?;
            let mut encoded = Vec::with_capacity(record.event.approx_size() + 256);
            codec::encode_park(trigger, now_ms(), &record, &mut encoded);
            self.call(move |respond| Command::Park {
                trigger: state,
                seq,
                record: encoded,
                respond,
            })
            .await
        })
    }

    fn backlog(&self, broker: &BrokerKey) -> u64 {
        self.inner
            .shared
            .registry
            .load()
            .by_broker
            .get(broker)
            .map_or(0, |ts| {
                ts.iter().map(|t| t.backlog.load(Ordering::Relaxed)).sum()
            })
    }

    fn trigger_backlog(&self, trigger: &TriggerKey) -> u64 {
        self.inner
            .shared
            .registry
            .load()
            .by_key
            .get(trigger)
            .map_or(0, |t| t.backlog.load(Ordering::Relaxed))
    }

    fn dead_letters(&self, limit: usize) -> Result<Vec<ParkedEvent>> {
        let db = self.inner.shared.reader()?;
        let txn = db.begin_read().map_err(storage)?;
        let table = txn.open_table(DEADLETTERS).map_err(storage)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(storage)? {
            if out.len() >= limit {
                break;
            }
            let (id, bytes) = item.map_err(storage)?;
            let id = id.value();
            let entry = match codec::decode_park(bytes.value()) {
                Ok(entry) => entry,
                // One bad record must not hide the others from the admin API.
                Err(e) => {
                    tracing::error!(id, error = %e, "undecodable dead letter; not listed");
                    continue;
                }
            };
            out.push(ParkedEvent {
                id,
                trigger: entry.trigger,
                parked_at_ms: entry.parked_at_ms,
                record: entry.record,
            });
        }
        Ok(out)
    }

    fn redrive(&self, id: u64) -> Done<'_> {
        Box::pin(self.call(move |respond| Command::Redrive { id, respond }))
    }

    fn flush(&self) -> Done<'_> {
        Box::pin(async move {
            match self.call(|respond| Command::Flush { respond }).await {
                // Closing flushed everything.
                Err(ChannelError::Closed) if self.inner.shared.closed.load(Ordering::Acquire) => {
                    Ok(())
                }
                r => r,
            }
        })
    }
}

/// A trigger's consumer; see the module docs for the protocol.
/// The sequence number of an entry this store handed out (it hands out no other kind; 0 sorts before
/// every real entry, so a foreign id would be skipped).
fn store_seq(id: EntryId) -> u64 {
    match id.0 {
        Entry::Store(seq) => seq,
        _ => 0,
    }
}

struct StoreSubscription {
    shared: Arc<Shared>,
    state: Arc<TriggerState>,
    generation: u64,
    /// Smallest seq not yet delivered by this subscription.
    next_seq: u64,
    /// Entries read from the database, not yet delivered.
    local: VecDeque<Delivery>,
    /// Reading the database page by page until a page comes back short.
    db_mode: bool,
    read_failures: u32,
}

impl StoreSubscription {
    fn ended(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
            || self.state.removed.load(Ordering::Acquire)
            || self.state.generation.load(Ordering::Acquire) != self.generation
    }

    /// Reads up to one page of this trigger's queue from `next_seq`; returns how many entries it saw.
    fn read_page(&mut self) -> Result<usize> {
        let db = self.shared.reader()?;
        let txn = db.begin_read().map_err(storage)?;
        let queue = txn.open_table(QUEUE).map_err(storage)?;
        let events = txn.open_table(EVENTS).map_err(storage)?;
        let id = self.state.id;
        let mut seen = 0;
        for item in queue
            .range((id, self.next_seq)..=(id, u64::MAX))
            .map_err(storage)?
            .take(self.shared.page)
        {
            let (key, _) = item.map_err(storage)?;
            let (_, seq) = key.value();
            seen += 1;
            let event = match events.get(seq).map_err(storage)? {
                Some(bytes) => decode(bytes.value()),
                None => {
                    tracing::error!(trigger = %self.state.key, seq, "queue entry without event; skipped");
                    continue;
                }
            };
            match event {
                Ok(event) => self.local.push_back(Delivery {
                    id: EntryId::seq(seq),
                    event: Arc::new(event),
                }),
                // A corrupt entry stays in the queue (and in the backlog) but must not block the others.
                Err(e) => {
                    tracing::error!(trigger = %self.state.key, seq, error = %e, "undecodable event; skipped")
                }
            }
        }
        Ok(seen)
    }

    async fn next_delivery(&mut self) -> Option<Delivery> {
        loop {
            if self.ended() {
                return None;
            }
            if let Some(d) = next_unseen(&mut self.local, &mut self.next_seq) {
                return Some(d);
            }
            if self.db_mode {
                match self.read_page() {
                    Ok(seen) => {
                        self.read_failures = 0;
                        if seen < self.shared.page {
                            self.db_mode = false;
                        }
                    }
                    Err(e) => {
                        // Storage trouble: back off and retry (the subscription has no error channel).
                        self.read_failures = self.read_failures.saturating_add(1);
                        let wait_ms = 20u64 << self.read_failures.min(5);
                        // The store reports its own failures (once per transition): one line per streak here.
                        if self.read_failures == 1 && self.shared.refusal().is_none() {
                            tracing::warn!(trigger = %self.state.key, error = %e, wait_ms, "queue read failed; retrying");
                        } else {
                            tracing::debug!(trigger = %self.state.key, error = %e, wait_ms, "queue read failed; retrying");
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
                    }
                }
                continue;
            }
            let notified = self.state.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut buffer = self.state.buffer.lock();
                if let Some(d) = next_unseen(&mut buffer.entries, &mut self.next_seq) {
                    return Some(d);
                }
                if buffer.overflow {
                    buffer.overflow = false;
                    self.db_mode = true;
                    continue;
                }
            }
            if self.ended() {
                return None;
            }
            notified.await;
        }
    }
}

/// The first of `queue`'s deliveries at or after `next_seq` (the ones before it were handed out
/// already), moving `next_seq` past it.
fn next_unseen(queue: &mut VecDeque<Delivery>, next_seq: &mut u64) -> Option<Delivery> {
    while let Some(d) = queue.pop_front() {
        let seq = store_seq(d.id);
        if seq >= *next_seq {
            *next_seq = seq + 1;
            return Some(d);
        }
    }
    None
}

impl Subscription for StoreSubscription {
    fn next(&mut self) -> BoxFuture<'_, Option<Delivery>> {
        Box::pin(self.next_delivery())
    }
}
