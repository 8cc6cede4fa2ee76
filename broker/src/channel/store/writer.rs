//! The writer thread: group commit, routing at commit time, topology changes, recovery at open.

use super::codec::decode_park;
use super::{
    corrupt, parse_key, storage, trigger_row_key, Registry, Shared, TriggerState, DEADLETTERS,
    EVENTS, META, QUEUE, REFS, TRIGGERS,
};
use crate::channel::{ChannelError, Delivery, Result};
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
    db: Arc<Database>,
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
}

impl Writer {
    pub(crate) fn new(
        db: Arc<Database>,
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Command>,
        counters: Counters,
        triggers: HashMap<TriggerKey, Arc<TriggerState>>,
    ) -> Writer {
        Writer {
            db,
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
        }
    }

    /// The thread's main loop.
    pub(crate) fn run(mut self) {
        loop {
            let first = match self.pending.take() {
                Some(cmd) => cmd,
                None => match self.rx.blocking_recv() {
                    Some(cmd) => cmd,
                    // Every handle is gone.
                    None => return self.finish(None),
                },
            };
            match first {
                Command::Close { respond } => return self.finish(Some(respond)),
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
        let waker = self
            .waker
            .get_or_insert_with(|| Waker::from(Arc::new(ThreadWaker(std::thread::current()))))
            .clone();
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(cmd) = self.rx.poll_recv(&mut cx) {
                return cmd;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            std::thread::park_timeout(deadline - now);
        }
    }

    /// Applies a batch in one transaction, then publishes its effects and answers its waiters.
    fn run_batch(&mut self, batch: &mut Vec<Command>) {
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
                let message = match e {
                    ChannelError::Storage(m) => m,
                    other => other.to_string(),
                };
                tracing::error!(error = %message, "channel store batch failed; aborted");
                self.pushes.clear();
                self.removals.clear();
                self.acks.clear();
                for (respond, result) in self.replies.drain(..) {
                    let _ = respond.send(result.and(Err(ChannelError::Storage(message.clone()))));
                }
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
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })
        .map_err(storage)?;
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
        let mut start = 0;
        for (event, &end) in events.into_iter().zip(ends) {
            let bytes = encoded
                .get(start..end)
                .ok_or_else(|| corrupt("append framing"))?;
            start = end;
            scratch.clear();
            table.route(&event, scratch);
            scratch.dedup();
            scratch.retain(|&i| matches!(states.get(i), Some(Some(_))));
            if scratch.is_empty() {
                // Nothing to deliver: not stored.
                continue;
            }
            let seq = counters.seq;
            counters.seq += 1;
            t.events.insert(seq, bytes).map_err(storage)?;
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
                        seq,
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
        let mut start = 0;
        for (event, &end) in events.into_iter().zip(ends) {
            let bytes = encoded
                .get(start..end)
                .ok_or_else(|| corrupt("enqueue framing"))?;
            start = end;
            let seq = counters.seq;
            counters.seq += 1;
            t.events.insert(seq, bytes).map_err(storage)?;
            t.queue.insert((trigger.id, seq), ()).map_err(storage)?;
            self.pushes.push((
                trigger.clone(),
                Delivery {
                    seq,
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
        let seq = counters.seq;
        counters.seq += 1;
        t.events.insert(seq, entry.event_bytes).map_err(storage)?;
        t.queue.insert((state.id, seq), ()).map_err(storage)?;
        t.deadletters.remove(id).map_err(storage)?;
        self.pushes.push((
            state.clone(),
            Delivery {
                seq,
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
        if self.nondurable_streak > 0 {
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
        while let Ok(cmd) = self.rx.try_recv() {
            let _ = cmd.into_responder().send(Err(ChannelError::Closed));
        }
        for state in self.shared.all_triggers() {
            state.wake_to_end();
        }
        self.shared.db.store(None);
        // Readers hold the database only for the length of a read; wait for them to finish so that the
        // file is released when `close` returns.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut db = self.db;
        loop {
            match Arc::try_unwrap(db) {
                Ok(db) => {
                    if let Err(e) = db.close() {
                        result = result.and(Err(storage(e)));
                    }
                    break;
                }
                Err(shared) if Instant::now() < deadline => {
                    db = shared;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => {
                    tracing::warn!("channel store still in use by a reader at close");
                    break;
                }
            }
        }
        if let Some(respond) = respond {
            let _ = respond.send(result);
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
