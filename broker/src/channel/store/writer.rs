//! The writer thread: group commit, routing at commit time, topology changes, recovery at open.

use super::codec::decode_park;
use super::{
    corrupt, parse_key, space, storage, trigger_row_key, Opener, Registry, Shared, StoreHealth,
    TriggerState, DEADLETTERS, EVENTS, META, QUEUE, REFS, TRIGGERS,
};
use crate::channel::{ChannelError, Delivery, EntryId, Result};
use crate::config::{BrokerKey, Topology, TriggerKey};
use crate::event::Event;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, Table, WriteTransaction};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

/// Answer channel of a command.
pub(crate) type Responder = oneshot::Sender<Result<()>>;

/// Every `DURABLE_EVERY`-th consecutive ack-only commit is made durable anyway.
const DURABLE_EVERY: u32 = 64;

/// Sequence numbers reserved in `meta` at a time: `next_seq` there is a high-water mark (every seq ever
/// allocated is below it), rewritten only once per `SEQ_RESERVE` allocations instead of every commit.
const SEQ_RESERVE: u64 = 1 << 16;

/// Upper bound of how long a batch waits for appenders of the previous batch to come back.
const MAX_LINGER: Duration = Duration::from_micros(LINGER_US);
const LINGER_US: u64 = 400;

/// Acked seqs at most this far apart are removed in one range scan rather than one by one.
const RUN_GAP: u64 = 64;

/// An ack waiting for the end of its batch: (trigger id, seq, trigger).
type PendingAck = (u64, u64, Arc<TriggerState>);

/// How often the writer measures space, considers compaction and (when healthy) looks around.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// Free space is measured again before an append batch when the last measurement is older than this.
const SPACE_CHECK: Duration = Duration::from_millis(50);
/// First and longest wait between two attempts to reopen a failed database.
const RECOVERY_FIRST: Duration = Duration::from_millis(100);
const RECOVERY_MAX: Duration = Duration::from_secs(5);
/// Acks kept in memory while the database is failed (16 bytes each plus the trigger handle); beyond,
/// acks fail and the entries are redelivered after a restart.
const MAX_DEFERRED_ACKS: usize = 1 << 20;
/// Parks waiting for the database to recover (each holds its delivery's in-flight permit).
const MAX_DEFERRED_PARKS: usize = 10_000;
/// The writer compacts only after this long without a command.
const COMPACT_IDLE: Duration = Duration::from_millis(500);
/// Minimum file size worth compacting when every queue is empty.
const COMPACT_MIN_BYTES: u64 = 4 << 20;

/// The database failed a write and must be reopened.
struct Failure {
    /// The volume was full (507 to clients) rather than some other storage error (503).
    full: bool,
    reason: String,
    retry_at: Instant,
    backoff: Duration,
}

/// What waiting for a command gave.
enum Recv {
    Command(Command),
    Timeout,
    Closed,
}

const META_NEXT_SEQ: &str = "next_seq";
const META_NEXT_TRIGGER_ID: &str = "next_trigger_id";
const META_NEXT_DEADLETTER_ID: &str = "next_deadletter_id";

/// A request to the writer.
pub(crate) enum Command {
    /// Append a batch (all-or-nothing) to a broker.
    Append {
        broker: BrokerKey,
        events: Vec<Event>,
        /// The events' storage encodings, back to back.
        encoded: Vec<u8>,
        /// End offset in `encoded` of each event.
        ends: Vec<usize>,
        respond: Responder,
    },
    /// Remove a delivered entry.
    Ack {
        trigger: Arc<TriggerState>,
        seq: u64,
        respond: Responder,
    },
    /// Move an entry to the dead letters (`record` is the encoded dead-letter record).
    Park {
        trigger: Arc<TriggerState>,
        seq: u64,
        record: Vec<u8>,
        respond: Responder,
    },
    /// Append a batch directly to one trigger's queue (no routing): overflow and redrive of other
    /// backends' triggers.
    Enqueue {
        trigger: Arc<TriggerState>,
        events: Vec<Event>,
        encoded: Vec<u8>,
        ends: Vec<usize>,
        respond: Responder,
    },
    /// Add a dead letter that has no queue entry here (parked by another backend).
    ParkDetached { record: Vec<u8>, respond: Responder },
    /// Put a dead letter back into its trigger's queue.
    Redrive { id: u64, respond: Responder },
    /// Make everything durable.
    Flush { respond: Responder },
    /// Install a topology (runs alone in its transaction).
    ApplyTopology {
        topology: Arc<Topology>,
        respond: Responder,
    },
    /// Flush and stop.
    Close { respond: Responder },
}

impl Command {
    /// (events, bytes) this command adds to a batch.
    fn weight(&self) -> (usize, usize) {
        match self {
            Command::Append {
                events, encoded, ..
            }
            | Command::Enqueue {
                events, encoded, ..
            } => (events.len(), encoded.len()),
            Command::Park { record, .. } | Command::ParkDetached { record, .. } => {
                (1, record.len())
            }
            _ => (1, 0),
        }
    }

    /// Commands that run alone (never batched with others).
    fn is_exclusive(&self) -> bool {
        matches!(self, Command::ApplyTopology { .. } | Command::Close { .. })
    }

    /// Whether a batch holding this command must be committed durably.
    fn needs_durability(&self) -> bool {
        !matches!(self, Command::Ack { .. })
    }

    fn into_responder(self) -> Responder {
        match self {
            Command::Append { respond, .. }
            | Command::Enqueue { respond, .. }
            | Command::ParkDetached { respond, .. }
            | Command::Ack { respond, .. }
            | Command::Park { respond, .. }
            | Command::Redrive { respond, .. }
            | Command::Flush { respond }
            | Command::ApplyTopology { respond, .. }
            | Command::Close { respond } => respond,
        }
    }
}

/// The events of a batch with their encodings: `encoded` holds them back to back, `ends[i]` is where
/// event `i`'s ends; a frame outside `encoded` is a `what` corruption.
fn framed<'a>(
    events: Vec<Event>,
    encoded: &'a [u8],
    ends: &'a [usize],
    what: &'static str,
) -> impl Iterator<Item = Result<(Event, &'a [u8])>> + 'a {
    let starts = std::iter::once(0).chain(ends.iter().copied());
    events
        .into_iter()
        .zip(starts.zip(ends))
        .map(move |(event, (start, &end))| {
            let bytes = encoded.get(start..end).ok_or_else(|| corrupt(what))?;
            Ok((event, bytes))
        })
}

/// Stores an event's encoding under the next seq, which it returns.
fn insert_event(t: &mut Tables<'_>, counters: &mut Counters, bytes: &[u8]) -> Result<u64> {
    let seq = counters.seq;
    counters.seq += 1;
    t.events.insert(seq, bytes).map_err(storage)?;
    Ok(seq)
}

/// Persistent counters (mirrored in `meta`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counters {
    /// Next seq to allocate.
    seq: u64,
    /// The high-water mark persisted as `next_seq` in `meta`: every allocated seq is below it.
    seq_limit: u64,
    trigger_id: u64,
    deadletter_id: u64,
}

/// What [`recover`] found in the database.
pub(crate) struct Recovered {
    pub counters: Counters,
    pub triggers: Vec<Arc<TriggerState>>,
}

/// The tables of one write transaction.
struct Tables<'t> {
    events: Table<'t, u64, &'static [u8]>,
    refs: Table<'t, u64, u32>,
    queue: Table<'t, (u64, u64), ()>,
    triggers: Table<'t, &'static str, (u64, &'static str)>,
    meta: Table<'t, &'static str, u64>,
    deadletters: Table<'t, u64, &'static [u8]>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Tables<'t>> {
        Ok(Tables {
            events: txn.open_table(EVENTS).map_err(storage)?,
            refs: txn.open_table(REFS).map_err(storage)?,
            queue: txn.open_table(QUEUE).map_err(storage)?,
            triggers: txn.open_table(TRIGGERS).map_err(storage)?,
            meta: txn.open_table(META).map_err(storage)?,
            deadletters: txn.open_table(DEADLETTERS).map_err(storage)?,
        })
    }

    /// Persists what changed between `old` and `new` (raising the seq high-water mark when needed).
    fn write_counters(&mut self, old: Counters, new: &mut Counters) -> Result<()> {
        if new.seq > new.seq_limit {
            new.seq_limit = new.seq.saturating_add(SEQ_RESERVE);
        }
        if new.seq_limit != old.seq_limit {
            self.meta
                .insert(META_NEXT_SEQ, new.seq_limit)
                .map_err(storage)?;
        }
        if new.trigger_id != old.trigger_id {
            self.meta
                .insert(META_NEXT_TRIGGER_ID, new.trigger_id)
                .map_err(storage)?;
        }
        if new.deadletter_id != old.deadletter_id {
            self.meta
                .insert(META_NEXT_DEADLETTER_ID, new.deadletter_id)
                .map_err(storage)?;
        }
        Ok(())
    }

    /// Drops one reference to event `seq`; `true` if none is left (the event must go). A missing `refs`
    /// row means one reference.
    fn drop_ref(&mut self, seq: u64) -> Result<bool> {
        let refs = self.refs.get(seq).map_err(storage)?.map(|g| g.value());
        match refs {
            Some(n) if n > 2 => {
                self.refs.insert(seq, n - 1).map_err(storage)?;
                Ok(false)
            }
            // Down to one reference: the row goes (absent = 1).
            Some(2) => {
                self.refs.remove(seq).map_err(storage)?;
                Ok(false)
            }
            Some(_) => {
                self.refs.remove(seq).map_err(storage)?;
                Ok(true)
            }
            None => Ok(true),
        }
    }

    /// Drops one reference to event `seq`; deletes the event when none is left.
    fn release(&mut self, seq: u64) -> Result<()> {
        if self.drop_ref(seq)? {
            self.events.remove(seq).map_err(storage)?;
        }
        Ok(())
    }

    /// Applies the acks gathered in `acks` (emptied): removes the queue entries that exist (one
    /// `removals` push each) and the events no entry references any more. Acks are sorted so that nearby
    /// seqs go in one range scan, which rewrites each B-tree leaf once instead of once per key.
    fn remove_entries(
        &mut self,
        acks: &mut Vec<PendingAck>,
        removals: &mut Vec<Arc<TriggerState>>,
        removed: &mut Vec<u64>,
        dead: &mut Vec<u64>,
    ) -> Result<()> {
        if acks.is_empty() {
            return Ok(());
        }
        acks.sort_unstable_by_key(|&(id, seq, _)| (id, seq));
        acks.dedup_by_key(|&mut (id, seq, _)| (id, seq));
        removed.clear();
        dead.clear();
        let mut start = 0;
        while let Some((id, lo, state)) = acks.get(start) {
            let (id, lo) = (*id, *lo);
            let mut end = start + 1;
            while let (Some(prev), Some(next)) = (acks.get(end - 1), acks.get(end)) {
                if next.0 != id || next.1 - prev.1 > RUN_GAP {
                    break;
                }
                end += 1;
            }
            let run = acks.get(start..end).unwrap_or_default();
            let before = removed.len();
            match run {
                [_] => {
                    if self.queue.remove((id, lo)).map_err(storage)?.is_some() {
                        removed.push(lo);
                    }
                }
                [.., (_, hi, _)] => {
                    let mut i = 0;
                    self.queue
                        .retain_in((id, lo)..=(id, *hi), |(_, seq), ()| {
                            while run.get(i).is_some_and(|a| a.1 < seq) {
                                i += 1;
                            }
                            let acked = run.get(i).is_some_and(|a| a.1 == seq);
                            if acked {
                                removed.push(seq);
                            }
                            !acked
                        })
                        .map_err(storage)?;
                }
                [] => {}
            }
            for _ in before..removed.len() {
                removals.push(state.clone());
            }
            start = end;
        }
        acks.clear();
        for &seq in removed.iter() {
            if self.drop_ref(seq)? {
                dead.push(seq);
            }
        }
        dead.sort_unstable();
        dead.dedup();
        let mut start = 0;
        while let Some(&lo) = dead.get(start) {
            let mut end = start + 1;
            while let (Some(prev), Some(next)) = (dead.get(end - 1), dead.get(end)) {
                if next - prev > RUN_GAP {
                    break;
                }
                end += 1;
            }
            match dead.get(start..end).unwrap_or_default() {
                [_] => {
                    self.events.remove(lo).map_err(storage)?;
                }
                run @ [.., hi] => {
                    let mut i = 0;
                    self.events
                        .retain_in(lo..=*hi, |seq, _| {
                            while run.get(i).is_some_and(|&d| d < seq) {
                                i += 1;
                            }
                            run.get(i) != Some(&seq)
                        })
                        .map_err(storage)?;
                }
                [] => {}
            }
            start = end;
        }
        Ok(())
    }

    /// Removes a queue entry (and its reference); `false` if there was none.
    fn remove_entry(&mut self, trigger_id: u64, seq: u64) -> Result<bool> {
        if self
            .queue
            .remove((trigger_id, seq))
            .map_err(storage)?
            .is_none()
        {
            return Ok(false);
        }
        self.release(seq)?;
        Ok(true)
    }

    /// Removes every queue entry of a trigger, reclaiming events no other trigger references.
    fn purge(&mut self, trigger_id: u64) -> Result<()> {
        let mut seqs = Vec::new();
        for item in self
            .queue
            .extract_from_if((trigger_id, 0)..=(trigger_id, u64::MAX), |_, _| true)
            .map_err(storage)?
        {
            let (key, _) = item.map_err(storage)?;
            seqs.push(key.value().1);
        }
        for seq in seqs {
            self.release(seq)?;
        }
        Ok(())
    }
}

/// Creates the tables if needed and loads counters, triggers and backlog counts.
pub(crate) fn recover(db: &Database) -> Result<Recovered> {
    let txn = db.begin_write().map_err(storage)?;
    let mut counters = Counters::default();
    {
        let t = Tables::open(&txn)?;
        let get = |name: &str| -> Result<u64> {
            Ok(t.meta.get(name).map_err(storage)?.map_or(0, |g| g.value()))
        };
        counters.seq = get(META_NEXT_SEQ)?;
        counters.seq_limit = counters.seq;
        counters.trigger_id = get(META_NEXT_TRIGGER_ID)?;
        counters.deadletter_id = get(META_NEXT_DEADLETTER_ID)?;
        // Defensive: never reuse a key that is still present.
        let last_event = t.events.last().map_err(storage)?.map(|(k, _)| k.value());
        if let Some(k) = last_event {
            counters.seq = counters.seq.max(k + 1);
        }
        let last_deadletter = t
            .deadletters
            .last()
            .map_err(storage)?
            .map(|(k, _)| k.value());
        if let Some(k) = last_deadletter {
            counters.deadletter_id = counters.deadletter_id.max(k + 1);
        }
    }
    txn.commit().map_err(storage)?;

    let txn = db.begin_read().map_err(storage)?;
    let mut counts: HashMap<u64, u64> = HashMap::new();
    let queue = txn.open_table(QUEUE).map_err(storage)?;
    for item in queue.iter().map_err(storage)? {
        let (key, _) = item.map_err(storage)?;
        *counts.entry(key.value().0).or_default() += 1;
    }
    let mut triggers = Vec::new();
    let table = txn.open_table(TRIGGERS).map_err(storage)?;
    for item in table.iter().map_err(storage)? {
        let (key, value) = item.map_err(storage)?;
        let key = key.value();
        let (id, broker) = value.value();
        let (Some((ns, name)), Some((bns, bname))) = (parse_key(key), parse_key(broker)) else {
            return Err(corrupt(format_args!("trigger row {key:?} → {broker:?}")));
        };
        counters.trigger_id = counters.trigger_id.max(id + 1);
        triggers.push(Arc::new(TriggerState::new(
            id,
            TriggerKey::new(ns, name),
            BrokerKey::new(bns, bname),
            counts.get(&id).copied().unwrap_or(0),
        )));
    }
    Ok(Recovered { counters, triggers })
}

/// Owns the write side of the database; see the module docs of `store`.
pub(crate) struct Writer {
    /// `None` only while a failed database could not be reopened yet.
    db: Option<Arc<Database>>,
    opener: Opener,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Command>,
    counters: Counters,
    topology: Arc<Topology>,
    triggers: HashMap<TriggerKey, Arc<TriggerState>>,
    /// Per broker, the trigger states aligned with `RoutingTable::triggers()`.
    routes: HashMap<BrokerKey, Vec<Option<Arc<TriggerState>>>>,
    /// An exclusive command drained while filling a batch, to run next.
    pending: Option<Command>,
    nondurable_streak: u32,
    /// Append commands in the previous batch: how many appenders are likely to come back.
    last_appends: usize,
    /// How long the last durable commit took.
    last_commit: Duration,
    /// Wakes this thread when a command arrives while lingering.
    waker: Option<Waker>,
    // Reused per batch.
    batch: Vec<Command>,
    scratch: Vec<usize>,
    pushes: Vec<(Arc<TriggerState>, Delivery)>,
    removals: Vec<Arc<TriggerState>>,
    replies: Vec<(Responder, Result<()>)>,
    acks: Vec<PendingAck>,
    removed: Vec<u64>,
    dead: Vec<u64>,
    // Failure model (see the module docs of `store`).
    failure: Option<Failure>,
    /// Acks received while failed, committed after recovery.
    deferred_acks: Vec<PendingAck>,
    /// Parks received while failed, applied (and answered) after recovery.
    deferred_parks: Vec<Command>,
    /// Free space is below the reserve: appends are refused.
    low_space: bool,
    /// The reserve in force (0 for stores without a directory).
    reserve: u64,
    free: Option<u64>,
    space_checked: Instant,
    last_housekeeping: Instant,
    last_activity: Instant,
    /// Queue entries removed (acked, parked) since the last compaction: whether one could give back
    /// anything.
    freed_since_compaction: u64,
    /// Earliest time of the next compaction attempt.
    compact_after: Instant,
    compact_backoff: Duration,
}

impl Writer {
    pub(crate) fn new(
        db: Arc<Database>,
        opener: Opener,
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Command>,
        counters: Counters,
        triggers: HashMap<TriggerKey, Arc<TriggerState>>,
    ) -> Writer {
        let now = Instant::now();
        Writer {
            db: Some(db),
            opener,
            shared,
            rx,
            counters,
            topology: Arc::new(Topology::default()),
            triggers,
            routes: HashMap::new(),
            pending: None,
            nondurable_streak: 0,
            last_appends: 0,
            last_commit: Duration::ZERO,
            waker: None,
            batch: Vec::new(),
            scratch: Vec::new(),
            pushes: Vec::new(),
            removals: Vec::new(),
            replies: Vec::new(),
            acks: Vec::new(),
            removed: Vec::new(),
            dead: Vec::new(),
            failure: None,
            deferred_acks: Vec::new(),
            deferred_parks: Vec::new(),
            low_space: false,
            reserve: 0,
            free: None,
            space_checked: now,
            last_housekeeping: now,
            last_activity: now,
            freed_since_compaction: 0,
            compact_after: now,
            compact_backoff: Duration::from_secs(5),
        }
    }

    /// The thread's main loop.
    pub(crate) fn run(mut self) {
        self.measure_space();
        self.update_health();
        loop {
            let first = match self.pending.take() {
                Some(cmd) => cmd,
                None => match self.recv_deadline(self.next_tick()) {
                    Recv::Command(cmd) => cmd,
                    Recv::Timeout => {
                        self.housekeeping();
                        continue;
                    }
                    // Every handle is gone.
                    Recv::Closed => return self.finish(None),
                },
            };
            if Instant::now() >= self.next_tick() {
                self.housekeeping();
            }
            self.last_activity = Instant::now();
            match first {
                Command::Close { respond } => return self.finish(Some(respond)),
                cmd if self.failure.is_some() => self.while_failed(cmd),
                Command::ApplyTopology { topology, respond } => {
                    let result = self.apply_topology(topology);
                    let _ = respond.send(result);
                }
                first => {
                    let mut batch = std::mem::take(&mut self.batch);
                    self.fill_batch(&mut batch, first);
                    self.run_batch(&mut batch);
                    self.batch = batch;
                }
            }
        }
    }

    /// When the next housekeeping (or recovery attempt) is due.
    fn next_tick(&self) -> Instant {
        match &self.failure {
            Some(f) => f.retry_at,
            None => self.last_housekeeping + HOUSEKEEPING,
        }
    }

    /// Measures space, retries a failed database, compacts when worthwhile.
    fn housekeeping(&mut self) {
        self.last_housekeeping = Instant::now();
        self.measure_space();
        if self.failure.is_some() {
            if Instant::now() >= self.next_tick() {
                self.try_recover();
            }
        } else if self.should_compact() {
            self.compact();
        }
        self.update_health();
    }

    /// Refreshes free space and file size (shared with metrics) and the low-space state.
    fn measure_space(&mut self) {
        self.space_checked = Instant::now();
        let (Some(dir), Some(file)) = (self.shared.dir.as_deref(), self.shared.file.as_deref())
        else {
            return;
        };
        let len = space::file_len(file);
        self.shared.file_bytes.store(len, Ordering::Relaxed);
        let Some(volume) = space::volume(dir) else {
            return;
        };
        self.reserve = space::reserve(self.shared.options.min_free_bytes, volume.total);
        self.free = Some(volume.free);
        self.shared.free_bytes.store(volume.free, Ordering::Relaxed);
        self.shared
            .min_free_bytes
            .store(self.reserve, Ordering::Relaxed);
        self.low_space = space::next_low(self.low_space, volume.free, self.reserve);
    }

    /// Publishes the current health (logged by `Shared::set_health` at transitions only).
    fn update_health(&self) {
        let health = match (&self.failure, self.low_space) {
            (Some(f), _) if f.full => StoreHealth::Full {
                reason: f.reason.clone(),
            },
            (Some(f), _) => StoreHealth::Failed {
                reason: f.reason.clone(),
            },
            (None, true) => StoreHealth::Full {
                reason: format!(
                    "{} bytes free on the store's volume, below the reserve of {} bytes (--min-free-bytes)",
                    self.free.unwrap_or(0),
                    self.reserve
                ),
            },
            (None, false) => StoreHealth::Healthy,
        };
        self.shared.set_health(health);
    }

    /// Enters (or stays in) the failed state after a storage error.
    fn fail(&mut self, error: &ChannelError) {
        let full = matches!(error, ChannelError::Full);
        let reason = match error {
            ChannelError::Full => "no space left on the store's volume".to_owned(),
            ChannelError::Storage(m) | ChannelError::Corrupt(m) | ChannelError::Unavailable(m) => {
                m.clone()
            }
            other => other.to_string(),
        };
        let backoff = self
            .failure
            .as_ref()
            .map_or(RECOVERY_FIRST, |f| (f.backoff * 2).min(RECOVERY_MAX));
        self.failure = Some(Failure {
            full,
            reason,
            retry_at: Instant::now() + backoff,
            backoff,
        });
        self.update_health();
    }

    /// The error a write gets while the database is failed.
    fn failed_error(&self) -> ChannelError {
        match &self.failure {
            Some(f) if f.full => ChannelError::Full,
            _ => ChannelError::Storage("the store is recovering from a write failure".into()),
        }
    }

    /// A command while the database is failed: acks are kept, parks wait, the rest is refused.
    fn while_failed(&mut self, cmd: Command) {
        match cmd {
            Command::Ack {
                trigger,
                seq,
                respond,
            } => {
                if self.deferred_acks.len() < MAX_DEFERRED_ACKS {
                    self.deferred_acks.push((trigger.id, seq, trigger));
                    let _ = respond.send(Ok(()));
                } else {
                    let _ = respond.send(Err(self.failed_error()));
                }
            }
            cmd @ (Command::Park { .. } | Command::ParkDetached { .. })
                if self.deferred_parks.len() < MAX_DEFERRED_PARKS =>
            {
                self.deferred_parks.push(cmd);
            }
            Command::ApplyTopology { topology, respond } => {
                self.try_recover();
                let result = match self.failure {
                    None => self.apply_topology(topology),
                    Some(_) => Err(self.failed_error()),
                };
                let _ = respond.send(result);
            }
            Command::Flush { respond } => {
                self.try_recover();
                if self.failure.is_none() {
                    let mut batch = std::mem::take(&mut self.batch);
                    batch.push(Command::Flush { respond });
                    self.run_batch(&mut batch);
                    self.batch = batch;
                } else {
                    let _ = respond.send(Err(self.failed_error()));
                }
            }
            other => {
                let _ = other.into_responder().send(Err(self.failed_error()));
            }
        }
    }

    /// Closes and reopens the database, then commits what waited for it (acks, parks) durably. On
    /// success the store is healthy again (or full, if space is still short); on failure the next
    /// attempt is scheduled with backoff.
    fn try_recover(&mut self) {
        if self.failure.is_none() {
            return;
        }
        if let Err(e) = self.reopen() {
            self.fail(&e);
            return;
        }
        // The probe: what waited for recovery, in one durable commit. A failure re-enters `fail`.
        let failure = self.failure.take();
        let mut batch = std::mem::take(&mut self.batch);
        batch.append(&mut self.deferred_parks);
        batch.push(Command::Flush {
            respond: oneshot::channel().0,
        });
        self.run_batch(&mut batch);
        self.batch = batch;
        if let (Some(old), Some(new)) = (failure, self.failure.as_mut()) {
            // Still failing: keep backing off from where we were.
            new.backoff = (old.backoff * 2).min(RECOVERY_MAX);
            new.retry_at = Instant::now() + new.backoff;
        }
        self.measure_space();
        self.update_health();
    }

    /// Releases the database (waiting briefly for readers) and opens it again; re-reads the counters so
    /// that a commit that reached the disk although it reported a failure is not overwritten.
    fn reopen(&mut self) -> Result<()> {
        if let Some(db) = self.db.take() {
            self.shared.db.store(None);
            match unwrap_db(db, Duration::from_secs(1)) {
                // Closing a failed database reports the failure again; the reopen repairs the file.
                Ok(db) => drop(db.close()),
                Err(db) => {
                    self.shared.db.store(Some(db.clone()));
                    self.db = Some(db);
                    return Err(ChannelError::Storage(
                        "the store is still in use by a reader".into(),
                    ));
                }
            }
        }
        let db = (self.opener)(self.shared.options.cache_bytes).map_err(storage)?;
        let recovered = recover(&db)?;
        let db = Arc::new(db);
        self.db = Some(db.clone());
        self.shared.db.store(Some(db));
        let found = recovered.counters;
        if found.seq > self.counters.seq {
            // A batch reported as failed did reach the disk: count its entries and let every consumer
            // read its queue from the database again (its waiters were told it failed; a retry by the
            // client duplicates it, which at-least-once allows).
            self.counters.seq = found.seq;
            self.counters.seq_limit = self.counters.seq_limit.max(found.seq_limit);
            let backlog: HashMap<u64, u64> = recovered
                .triggers
                .iter()
                .map(|t| (t.id, t.backlog.load(Ordering::Relaxed)))
                .collect();
            for state in self.triggers.values() {
                if let Some(&n) = backlog.get(&state.id) {
                    state.backlog.store(n, Ordering::Relaxed);
                }
                state.buffer.lock().overflow = true;
                state.notify.notify_one();
            }
        }
        self.counters.trigger_id = self.counters.trigger_id.max(found.trigger_id);
        self.counters.deadletter_id = self.counters.deadletter_id.max(found.deadletter_id);
        Ok(())
    }

    /// Compaction gives space back to the volume once a backlog has drained (redb files never shrink
    /// on their own): when idle, entries were removed since the last compaction, and either every
    /// queue is empty and the file is bigger than `COMPACT_MIN_BYTES` (compacting an empty store takes
    /// milliseconds), or appends are refused for space.
    fn should_compact(&self) -> bool {
        let now = Instant::now();
        if self.shared.file.is_none()
            || self.freed_since_compaction == 0
            || now < self.compact_after
            || now.duration_since(self.last_activity) < COMPACT_IDLE
        {
            return false;
        }
        let len = self.shared.file_bytes.load(Ordering::Relaxed);
        let empty = self
            .triggers
            .values()
            .all(|t| t.backlog.load(Ordering::Relaxed) == 0);
        (empty && len > COMPACT_MIN_BYTES) || self.low_space
    }

    fn compact(&mut self) {
        let Some(db) = self.db.take() else {
            return;
        };
        self.shared.db.store(None);
        let mut db = match unwrap_db(db, Duration::from_secs(1)) {
            Ok(db) => db,
            Err(db) => {
                self.shared.db.store(Some(db.clone()));
                self.db = Some(db);
                return;
            }
        };
        let before = self.shared.file_bytes.load(Ordering::Relaxed);
        let started = Instant::now();
        let result = db.compact();
        let db = Arc::new(db);
        self.db = Some(db.clone());
        self.shared.db.store(Some(db));
        self.measure_space();
        let after = self.shared.file_bytes.load(Ordering::Relaxed);
        match result {
            Ok(_) => {
                tracing::info!(
                    before_bytes = before,
                    after_bytes = after,
                    ms = started.elapsed().as_millis() as u64,
                    "Compacted the store."
                );
                // A compaction that gave little back is not retried soon.
                self.compact_backoff = if after.saturating_mul(10) > before.saturating_mul(9) {
                    (self.compact_backoff * 2).min(Duration::from_secs(300))
                } else {
                    Duration::from_secs(5)
                };
            }
            Err(e) => {
                tracing::warn!(error = %e, "Compacting the store failed.");
                self.compact_backoff = (self.compact_backoff * 2).min(Duration::from_secs(300));
                if let redb::CompactionError::Storage(e) = e {
                    self.fail(&storage(e));
                }
            }
        }
        self.freed_since_compaction = 0;
        self.compact_after = Instant::now() + self.compact_backoff;
    }

    /// Drains queued commands after `first` into `batch`, up to the batch limits. If the previous batch
    /// held more appends than are queued now, waits a little (at most half the last durable commit, and
    /// `MAX_LINGER`) for those appenders to come back, so that concurrent appenders share one fsync
    /// instead of splitting into groups that alternate.
    fn fill_batch(&mut self, batch: &mut Vec<Command>, first: Command) {
        let max_events = self.shared.options.max_batch_events;
        let max_bytes = self.shared.options.max_batch_bytes;
        let (mut events, mut bytes) = first.weight();
        let mut appends = usize::from(matches!(first, Command::Append { .. }));
        batch.push(first);
        let target = self.last_appends;
        let mut deadline = None;
        while events < max_events && bytes < max_bytes {
            let cmd = match self.rx.try_recv() {
                Ok(cmd) => cmd,
                Err(TryRecvError::Empty) if appends < target => {
                    let linger = (self.last_commit / 2).min(MAX_LINGER);
                    let deadline = *deadline.get_or_insert_with(|| Instant::now() + linger);
                    match self.recv_until(deadline) {
                        Some(cmd) => cmd,
                        None => break,
                    }
                }
                Err(_) => break,
            };
            if cmd.is_exclusive() {
                self.pending = Some(cmd);
                break;
            }
            let (e, b) = cmd.weight();
            events += e;
            bytes += b;
            appends += usize::from(matches!(cmd, Command::Append { .. }));
            batch.push(cmd);
        }
        self.last_appends = appends;
    }

    /// The next command, waiting until `deadline` at most (`None` on timeout or when every sender is gone).
    fn recv_until(&mut self, deadline: Instant) -> Option<Command> {
        match self.recv_deadline(deadline) {
            Recv::Command(cmd) => Some(cmd),
            Recv::Timeout | Recv::Closed => None,
        }
    }

    /// The next command, waiting until `deadline` at most.
    fn recv_deadline(&mut self, deadline: Instant) -> Recv {
        let waker = self
            .waker
            .get_or_insert_with(|| Waker::from(Arc::new(ThreadWaker(std::thread::current()))))
            .clone();
        let mut cx = Context::from_waker(&waker);
        loop {
            match self.rx.poll_recv(&mut cx) {
                Poll::Ready(Some(cmd)) => return Recv::Command(cmd),
                Poll::Ready(None) => return Recv::Closed,
                Poll::Pending => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Recv::Timeout;
            }
            std::thread::park_timeout(deadline - now);
        }
    }

    /// Applies a batch in one transaction, then publishes its effects and answers its waiters.
    fn run_batch(&mut self, batch: &mut Vec<Command>) {
        if self.shared.dir.is_some()
            && self.space_checked.elapsed() >= SPACE_CHECK
            && batch.iter().any(|c| matches!(c, Command::Append { .. }))
        {
            self.measure_space();
            self.update_health();
        }
        let durable = self.nondurable_streak + 1 >= DURABLE_EVERY
            || batch.iter().any(Command::needs_durability);
        let mut counters = self.counters;
        let mut appends = 0u64;
        let started = Instant::now();
        let outcome = self.apply_batch(batch, &mut counters, durable, &mut appends);
        if durable {
            self.last_commit = started.elapsed();
        }
        match outcome {
            Ok(()) => {
                self.counters = counters;
                self.count_commit(durable);
                self.shared.appends.fetch_add(appends, Ordering::Relaxed);
                self.publish();
                for (respond, result) in self.replies.drain(..) {
                    let _ = respond.send(result);
                }
            }
            Err(e) => {
                // Logged once by the health transition, not per batch.
                tracing::debug!(error = %e, "channel store batch failed; aborted");
                self.pushes.clear();
                self.removals.clear();
                // The batch's acks are kept and committed after recovery (their senders are told it
                // failed; acking twice is a no-op).
                self.deferred_acks.append(&mut self.acks);
                self.deferred_acks.truncate(MAX_DEFERRED_ACKS);
                // The state first: whoever gets an error below sees the store degraded.
                self.fail(&e);
                let mut replies = std::mem::take(&mut self.replies);
                for (respond, result) in replies.drain(..) {
                    let _ = respond.send(result.and(Err(self.failed_error())));
                }
                self.replies = replies;
            }
        }
    }

    fn count_commit(&mut self, durable: bool) {
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        if durable {
            self.nondurable_streak = 0;
            self.shared.durable_commits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.nondurable_streak += 1;
        }
    }

    /// Writes the batch into one transaction and commits it. Every command's responder ends up in
    /// `self.replies`; an `Err` means nothing was committed.
    fn apply_batch(
        &mut self,
        batch: &mut Vec<Command>,
        counters: &mut Counters,
        durable: bool,
        appends: &mut u64,
    ) -> Result<()> {
        let txn = match self.begin(durable) {
            Ok(txn) => txn,
            Err(e) => {
                self.replies
                    .extend(batch.drain(..).map(|c| (c.into_responder(), Ok(()))));
                return Err(e);
            }
        };
        let mut failure = None;
        self.acks.clear();
        // Acks that waited for the database to recover go with the first batch after it.
        self.acks.append(&mut self.deferred_acks);
        {
            let mut t = match Tables::open(&txn) {
                Ok(t) => t,
                Err(e) => {
                    self.replies
                        .extend(batch.drain(..).map(|c| (c.into_responder(), Ok(()))));
                    return Err(e);
                }
            };
            for cmd in batch.drain(..) {
                if failure.is_some() {
                    self.replies.push((cmd.into_responder(), Ok(())));
                    continue;
                }
                let (respond, outcome) = self.apply_command(&mut t, counters, cmd, appends);
                match outcome {
                    Ok(answer) => self.replies.push((respond, answer)),
                    Err(e) => {
                        self.replies.push((respond, Ok(())));
                        failure = Some(e);
                    }
                }
            }
            if failure.is_none() {
                if let Err(e) = self
                    .flush_acks(&mut t)
                    .and_then(|()| t.write_counters(self.counters, counters))
                {
                    failure = Some(e);
                }
            }
        }
        if let Some(e) = failure {
            let _ = txn.abort();
            return Err(e);
        }
        txn.commit().map_err(storage)
    }

    /// Applies the acks gathered so far in this batch.
    fn flush_acks(&mut self, t: &mut Tables<'_>) -> Result<()> {
        t.remove_entries(
            &mut self.acks,
            &mut self.removals,
            &mut self.removed,
            &mut self.dead,
        )
    }

    fn begin(&self, durable: bool) -> Result<WriteTransaction> {
        let db = self
            .db
            .as_ref()
            .ok_or_else(|| ChannelError::Unavailable("the store is not open".into()))?;
        let mut txn = db.begin_write().map_err(storage)?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })
        .map_err(storage)?;
        // Durable commits record redb's allocator state (quick repair): after a crash the database
        // opens in milliseconds instead of walking the whole file (seconds for a large backlog).
        txn.set_quick_repair(durable && self.shared.options.quick_repair);
        Ok(txn)
    }

    /// Applies one command. The outer `Err` aborts the batch; the inner result is the command's answer.
    fn apply_command(
        &mut self,
        t: &mut Tables<'_>,
        counters: &mut Counters,
        cmd: Command,
        appends: &mut u64,
    ) -> (Responder, Result<Result<()>>) {
        match cmd {
            Command::Append {
                broker,
                events,
                encoded,
                ends,
                respond,
            } => {
                if self.low_space {
                    return (respond, Ok(Err(ChannelError::Full)));
                }
                *appends += 1;
                let r = self.append(t, counters, &broker, events, &encoded, &ends);
                (respond, r)
            }
            Command::Ack {
                trigger,
                seq,
                respond,
            } => {
                // Applied with the batch's other acks (before any park, and at the end).
                self.acks.push((trigger.id, seq, trigger));
                (respond, Ok(Ok(())))
            }
            Command::Park {
                trigger,
                seq,
                record,
                respond,
            } => {
                let r = (|| {
                    // Earlier acks of the batch first, so that ack-then-park stays a no-op park.
                    self.flush_acks(t)?;
                    if t.remove_entry(trigger.id, seq)? {
                        t.deadletters
                            .insert(counters.deadletter_id, record.as_slice())
                            .map_err(storage)?;
                        counters.deadletter_id += 1;
                        self.removals.push(trigger);
                    }
                    Ok(Ok(()))
                })();
                (respond, r)
            }
            Command::Enqueue {
                trigger,
                events,
                encoded,
                ends,
                respond,
            } => {
                let r = self.enqueue(t, counters, &trigger, events, &encoded, &ends);
                (respond, r)
            }
            Command::ParkDetached { record, respond } => {
                let r = t
                    .deadletters
                    .insert(counters.deadletter_id, record.as_slice())
                    .map_err(storage)
                    .map(|_| {
                        counters.deadletter_id += 1;
                        Ok(())
                    });
                (respond, r)
            }
            Command::Redrive { id, respond } => {
                let r = self.redrive(t, counters, id);
                (respond, r)
            }
            Command::Flush { respond } => (respond, Ok(Ok(()))),
            // Exclusive commands never reach a batch; answer them sensibly anyway.
            Command::ApplyTopology { respond, .. } | Command::Close { respond } => (
                respond,
                Ok(Err(ChannelError::Storage(
                    "internal: exclusive command in a batch".into(),
                ))),
            ),
        }
    }

    fn append(
        &mut self,
        t: &mut Tables<'_>,
        counters: &mut Counters,
        broker: &BrokerKey,
        events: Vec<Event>,
        encoded: &[u8],
        ends: &[usize],
    ) -> Result<Result<()>> {
        let Writer {
            topology,
            routes,
            scratch,
            pushes,
            ..
        } = self;
        let (true, Some(table), Some(states)) = (
            topology.brokers.contains_key(broker),
            topology.routes.get(broker),
            routes.get(broker),
        ) else {
            return Ok(Err(ChannelError::UnknownBroker(broker.clone())));
        };
        for framed in framed(events, encoded, ends, "append framing") {
            let (event, bytes) = framed?;
            scratch.clear();
            table.route(&event, scratch);
            scratch.dedup();
            scratch.retain(|&i| matches!(states.get(i), Some(Some(_))));
            if scratch.is_empty() {
                // Nothing to deliver: not stored.
                continue;
            }
            let seq = insert_event(t, counters, bytes)?;
            if scratch.len() > 1 {
                let refs = u32::try_from(scratch.len()).unwrap_or(u32::MAX);
                t.refs.insert(seq, refs).map_err(storage)?;
            }
            let event = Arc::new(event);
            for state in scratch.iter().filter_map(|&i| states.get(i)).flatten() {
                t.queue.insert((state.id, seq), ()).map_err(storage)?;
                pushes.push((
                    state.clone(),
                    Delivery {
                        id: EntryId::seq(seq),
                        event: event.clone(),
                    },
                ));
            }
        }
        Ok(Ok(()))
    }

    fn enqueue(
        &mut self,
        t: &mut Tables<'_>,
        counters: &mut Counters,
        trigger: &Arc<TriggerState>,
        events: Vec<Event>,
        encoded: &[u8],
        ends: &[usize],
    ) -> Result<Result<()>> {
        // The trigger may have been removed (or re-created) since the caller looked it up.
        match self.triggers.get(&trigger.key) {
            Some(current) if Arc::ptr_eq(current, trigger) => {}
            _ => return Ok(Err(ChannelError::UnknownTrigger(trigger.key.clone()))),
        }
        for framed in framed(events, encoded, ends, "enqueue framing") {
            let (event, bytes) = framed?;
            let seq = insert_event(t, counters, bytes)?;
            t.queue.insert((trigger.id, seq), ()).map_err(storage)?;
            self.pushes.push((
                trigger.clone(),
                Delivery {
                    id: EntryId::seq(seq),
                    event: Arc::new(event),
                },
            ));
        }
        Ok(Ok(()))
    }

    fn redrive(
        &mut self,
        t: &mut Tables<'_>,
        counters: &mut Counters,
        id: u64,
    ) -> Result<Result<()>> {
        let Some(bytes) = t
            .deadletters
            .get(id)
            .map_err(storage)?
            .map(|g| g.value().to_vec())
        else {
            return Ok(Err(ChannelError::DeadLetterNotFound(id)));
        };
        let entry = match decode_park(&bytes) {
            Ok(entry) => entry,
            Err(e) => return Ok(Err(corrupt(format_args!("dead letter {id}: {e}")))),
        };
        let Some(state) = self.triggers.get(&entry.trigger) else {
            return Ok(Err(ChannelError::UnknownTrigger(entry.trigger)));
        };
        let seq = insert_event(t, counters, entry.event_bytes)?;
        t.queue.insert((state.id, seq), ()).map_err(storage)?;
        t.deadletters.remove(id).map_err(storage)?;
        self.pushes.push((
            state.clone(),
            Delivery {
                id: EntryId::seq(seq),
                event: Arc::new(entry.record.event),
            },
        ));
        Ok(Ok(()))
    }

    /// After a commit: buffers new entries for the consumers and updates the backlog counters.
    fn publish(&mut self) {
        let cap = self.shared.options.trigger_buffer;
        for (state, delivery) in self.pushes.drain(..) {
            state.backlog.fetch_add(1, Ordering::Relaxed);
            {
                let mut buffer = state.buffer.lock();
                if buffer.overflow || buffer.entries.len() >= cap {
                    buffer.overflow = true;
                } else {
                    buffer.entries.push_back(delivery);
                }
            }
            state.notify.notify_one();
        }
        self.freed_since_compaction += self.removals.len() as u64;
        for state in self.removals.drain(..) {
            let _ = state
                .backlog
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(1))
                });
        }
    }

    /// Installs a topology in a transaction of its own (see `Channel::apply_topology`).
    fn apply_topology(&mut self, topology: Arc<Topology>) -> Result<()> {
        let mut counters = self.counters;
        let mut next: HashMap<TriggerKey, Arc<TriggerState>> =
            HashMap::with_capacity(topology.triggers.len());
        let mut removed = Vec::new();
        let txn = self.begin(true)?;
        let written = (|| {
            let mut t = Tables::open(&txn)?;
            for (key, spec) in &topology.triggers {
                match self.triggers.get(key) {
                    Some(state) if state.broker == spec.broker => {
                        next.insert(key.clone(), state.clone());
                    }
                    old => {
                        if let Some(state) = old {
                            // Re-pointed to another broker: start fresh.
                            t.purge(state.id)?;
                            removed.push(state.clone());
                        }
                        let id = counters.trigger_id;
                        counters.trigger_id += 1;
                        let broker = format!("{}/{}", spec.broker.namespace, spec.broker.name);
                        t.triggers
                            .insert(trigger_row_key(key).as_str(), (id, broker.as_str()))
                            .map_err(storage)?;
                        next.insert(
                            key.clone(),
                            Arc::new(TriggerState::new(id, key.clone(), spec.broker.clone(), 0)),
                        );
                    }
                }
            }
            for (key, state) in &self.triggers {
                if !topology.triggers.contains_key(key) {
                    t.purge(state.id)?;
                    t.triggers
                        .remove(trigger_row_key(key).as_str())
                        .map_err(storage)?;
                    removed.push(state.clone());
                }
            }
            t.write_counters(self.counters, &mut counters)
        })();
        if let Err(e) = written {
            let _ = txn.abort();
            return Err(e);
        }
        txn.commit().map_err(storage)?;
        self.counters = counters;
        self.count_commit(true);

        self.routes = topology
            .routes
            .iter()
            .map(|(broker, table)| {
                let states = table
                    .triggers()
                    .iter()
                    .map(|spec| next.get(&spec.key).cloned())
                    .collect();
                (broker.clone(), states)
            })
            .collect();
        self.shared
            .registry
            .store(Arc::new(Registry::new(next.clone())));
        self.triggers = next;
        self.topology = topology;
        for state in removed {
            state.removed.store(true, Ordering::Release);
            state.wake_to_end();
        }
        Ok(())
    }

    /// Makes everything durable, ends the subscriptions, releases the database and answers `respond`.
    fn finish(mut self, respond: Option<Responder>) {
        let mut result = Ok(());
        if self.failure.is_some() {
            // Nothing can be committed; what was acknowledged is on disk already.
            result = Err(self.failed_error());
        } else if self.nondurable_streak > 0 {
            result = self
                .begin(true)
                .and_then(|txn| txn.commit().map_err(storage));
            if result.is_ok() {
                self.count_commit(true);
            }
        }
        self.shared.closed.store(true, Ordering::Release);
        // Answer whatever is still queued.
        self.rx.close();
        if let Some(cmd) = self.pending.take() {
            let _ = cmd.into_responder().send(Err(ChannelError::Closed));
        }
        for cmd in self.deferred_parks.drain(..) {
            let _ = cmd.into_responder().send(Err(ChannelError::Closed));
        }
        if !self.deferred_acks.is_empty() {
            tracing::warn!(
                acks = self.deferred_acks.len(),
                "The store closed before it recovered: these deliveries will be made again after a restart."
            );
        }
        while let Ok(cmd) = self.rx.try_recv() {
            let _ = cmd.into_responder().send(Err(ChannelError::Closed));
        }
        for state in self.shared.all_triggers() {
            state.wake_to_end();
        }
        self.shared.db.store(None);
        // Readers hold the database only for the length of a read; wait for them to finish so that the
        // file is released when `close` returns.
        if let Some(db) = self.db.take() {
            match unwrap_db(db, Duration::from_secs(5)) {
                Ok(db) => {
                    if let Err(e) = db.close() {
                        result = result.and(Err(storage(e)));
                    }
                }
                Err(_) => tracing::warn!("channel store still in use by a reader at close"),
            }
        }
        if let Some(respond) = respond {
            let _ = respond.send(result);
        }
    }
}

/// The database itself once no reader holds it any more (readers hold it only for one read), or the
/// shared handle back after `patience`.
fn unwrap_db(
    mut db: Arc<Database>,
    patience: Duration,
) -> std::result::Result<Database, Arc<Database>> {
    let deadline = Instant::now() + patience;
    loop {
        match Arc::try_unwrap(db) {
            Ok(db) => return Ok(db),
            Err(shared) if Instant::now() < deadline => {
                db = shared;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(shared) => return Err(shared),
        }
    }
}

/// Unparks the writer thread (the waker of [`Writer::recv_until`]).
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}
