//! EXPERIMENT (issue 12, "store as a log"): the embedded store shaped as a log under [`LogLayer`], to
//! measure it end to end against the queue tables of [`StoreChannel`]. Not used unless the process runs
//! with `SWITCHYARD_EXPERIMENT_STORE_LOG=1`.
//!
//! - One redb file (`store-log.redb` beside the store) with one table per broker, `u64` position →
//!   encoded event. Appends are written by one thread with group commit (fsync per batch), in the order
//!   they arrive; positions are per broker and increase.
//! - After each commit the writer hands the batch's events to the broker's consumer through a bounded
//!   channel (the "tail"); when the tail is full the batch is dropped there and the consumer reads the gap
//!   back from the table (read-back), so memory stays bounded.
//! - The consumer routes each event once ([`BrokerCommon::route`]) into the trigger windows of the log
//!   layer (overflow into the store's queue tables, as for Kafka and JetStream) and remembers how many
//!   triggers still owe each position (the out-of-order finished set).
//! - Every 10 ms the log is trimmed below the lowest position some trigger still owes (one range delete,
//!   committed without fsync like the store's acks): a restart re-delivers what was finished above it.

use crate::channel::log::{deref_common, BrokerCommon, LogBroker, LogDriver, NewBroker, Started};
use crate::channel::store::StoreChannel;
use crate::channel::{ChannelError, Entry, EntryId, Result};
use crate::config::{Backend, BrokerKey, LogBackendConfig};
use crate::event::Event;
use parking_lot::Mutex;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// File name of the log database inside the data directory.
pub const LOG_DB_FILE: &str = "store-log.redb";

/// Events handed to a consumer after a commit: positions `first..first + events.len()`.
struct Tail {
    first: u64,
    events: Vec<Event>,
}

enum Command {
    Append {
        table: Arc<str>,
        /// The encoded events, back to back; `ends[i]` is where event i ends.
        bytes: Vec<u8>,
        ends: Vec<usize>,
        events: Vec<Event>,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Removes the broker's positions below `below`, and records `done`: positions at or above it that
    /// every trigger finished (so that a restart does not deliver them again).
    Trim {
        table: Arc<str>,
        done_table: Arc<str>,
        below: u64,
        done: Vec<u64>,
    },
    /// Commit durably what is queued before it (close).
    Flush { reply: oneshot::Sender<Result<()>> },
    /// End the writer (close); answered once it let go of the database.
    Close { reply: oneshot::Sender<()> },
}

type Tails = Arc<Mutex<HashMap<Arc<str>, mpsc::Sender<Tail>>>>;

struct Inner {
    db: Arc<Database>,
    commands: std::sync::mpsc::SyncSender<Command>,
    tails: Tails,
}

/// The log-shaped store as a [`LogDriver`].
pub(crate) struct StoreLogDriver {
    inner: Arc<Inner>,
}

/// The settings of an embedded broker's log (none: it serves every embedded broker).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EmbeddedLog;

impl LogBackendConfig for EmbeddedLog {
    fn of(backend: &Backend) -> Option<&EmbeddedLog> {
        match backend {
            Backend::Embedded => Some(&EmbeddedLog),
            Backend::Kafka(_) | Backend::NatsJetStream(_) => None,
        }
    }
}

fn table_name(key: &BrokerKey) -> Arc<str> {
    Arc::from(format!("log/{key}"))
}

/// The table of a broker's positions finished above its lowest owed one.
fn done_table_name(key: &BrokerKey) -> Arc<str> {
    Arc::from(format!("done/{key}"))
}

const fn done_def(name: &str) -> TableDefinition<'_, u64, ()> {
    TableDefinition::new(name)
}

/// Each broker's next position (log table name → position), written with every append: positions never
/// go back, even when trims emptied a broker's table before a restart.
const NEXT: TableDefinition<&str, u64> = TableDefinition::new("next");

/// The next position of `table` as last committed (0 for a broker that never had an event).
fn committed_next(txn: &redb::ReadTransaction, table: &str) -> u64 {
    txn.open_table(NEXT)
        .ok()
        .and_then(|t| t.get(table).ok().flatten().map(|v| v.value()))
        .unwrap_or(0)
}

fn storage(e: impl std::fmt::Display) -> ChannelError {
    ChannelError::Storage(format!("store log: {e}"))
}

impl StoreLogDriver {
    /// Opens (or creates) the log in `dir`, or in memory without one.
    pub(crate) fn open(dir: Option<&Path>) -> Result<StoreLogDriver> {
        let builder = {
            let mut b = Database::builder();
            b.set_cache_size(32 << 20);
            b
        };
        let db = match dir {
            Some(dir) => builder.create(dir.join(LOG_DB_FILE)).map_err(storage)?,
            None => builder
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .map_err(storage)?,
        };
        let db = Arc::new(db);
        let (commands, rx) = std::sync::mpsc::sync_channel(8192);
        let tails = Tails::default();
        let (writer_db, writer_tails) = (db.clone(), tails.clone());
        std::thread::Builder::new()
            .name("store-log-writer".into())
            .spawn(move || write_loop(writer_db, &writer_tails, rx))
            .map_err(storage)?;
        let inner = Arc::new(Inner {
            db,
            commands,
            tails,
        });
        Ok(StoreLogDriver { inner })
    }
}

/// The writer thread: group commit of everything queued.
fn write_loop(db: Arc<Database>, tails: &Tails, rx: std::sync::mpsc::Receiver<Command>) {
    let mut next: HashMap<Arc<str>, u64> = HashMap::new();
    let mut lazy_commits = 0u32;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let durable = batch
            .iter()
            .any(|c| matches!(c, Command::Append { .. } | Command::Flush { .. }));
        let result = commit(&db, &mut next, &batch, durable, &mut lazy_commits);
        if result.is_err() {
            // Allocations of the aborted transaction are void.
            next.clear();
        }
        for (i, command) in batch.into_iter().enumerate() {
            if let Command::Flush { reply } = command {
                let _ = reply.send(result.as_ref().map(|_| ()).map_err(storage));
                continue;
            }
            if let Command::Close { reply } = command {
                drop(db);
                let _ = reply.send(());
                return;
            }
            if let Command::Append {
                table,
                events,
                reply,
                ..
            } = command
            {
                match &result {
                    Ok(firsts) => {
                        let first = firsts[i];
                        let _ = reply.send(Ok(()));
                        if let Some(tail) = tails.lock().get(&table) {
                            // A full tail drops the batch: the consumer reads the gap back.
                            let _ = tail.try_send(Tail { first, events });
                        }
                    }
                    Err(e) => {
                        let _ = reply.send(Err(storage(e)));
                    }
                }
            }
        }
    }
}

/// Writes one batch; returns the first position of each command's events (0 for a trim).
fn commit(
    db: &Database,
    next: &mut HashMap<Arc<str>, u64>,
    batch: &[Command],
    durable: bool,
    lazy_commits: &mut u32,
) -> std::result::Result<Vec<u64>, String> {
    let mut txn = db.begin_write().map_err(|e| e.to_string())?;
    if durable {
        *lazy_commits = 0;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| e.to_string())?;
    } else {
        *lazy_commits += 1;
        let d = if *lazy_commits % 64 == 0 {
            Durability::Immediate
        } else {
            Durability::None
        };
        txn.set_durability(d).map_err(|e| e.to_string())?;
    }
    let mut firsts = Vec::with_capacity(batch.len());
    for command in batch {
        match command {
            Command::Append {
                table, bytes, ends, ..
            } => {
                let def: TableDefinition<u64, &[u8]> = TableDefinition::new(table);
                let mut t = txn.open_table(def).map_err(|e| e.to_string())?;
                let pos = match next.get(table) {
                    Some(&p) => p,
                    None => {
                        let last = t
                            .last()
                            .map_err(|e| e.to_string())?
                            .map_or(0, |(k, _)| k.value() + 1);
                        let meta = txn.open_table(NEXT).map_err(|e| e.to_string())?;
                        let recorded = meta
                            .get(&**table)
                            .map_err(|e| e.to_string())?
                            .map_or(0, |v| v.value());
                        last.max(recorded)
                    }
                };
                let mut start = 0;
                for (i, &end) in ends.iter().enumerate() {
                    t.insert(pos + i as u64, &bytes[start..end])
                        .map_err(|e| e.to_string())?;
                    start = end;
                }
                let end = pos + ends.len() as u64;
                next.insert(table.clone(), end);
                drop(t);
                txn.open_table(NEXT)
                    .map_err(|e| e.to_string())?
                    .insert(&**table, end)
                    .map_err(|e| e.to_string())?;
                firsts.push(pos);
            }
            Command::Trim {
                table,
                done_table,
                below,
                done,
            } => {
                let def: TableDefinition<u64, &[u8]> = TableDefinition::new(table);
                let mut t = txn.open_table(def).map_err(|e| e.to_string())?;
                t.retain_in(..*below, |_, _| false)
                    .map_err(|e| e.to_string())?;
                drop(t);
                let mut d = txn
                    .open_table(done_def(done_table))
                    .map_err(|e| e.to_string())?;
                d.retain_in(..*below, |_, _| false)
                    .map_err(|e| e.to_string())?;
                for &pos in done.iter().filter(|&&p| p >= *below) {
                    d.insert(pos, ()).map_err(|e| e.to_string())?;
                }
                firsts.push(0);
            }
            Command::Flush { .. } | Command::Close { .. } => firsts.push(0),
        }
    }
    txn.commit().map_err(|e| e.to_string())?;
    Ok(firsts)
}

/// A broker of the log-shaped store.
pub(crate) struct LogShared {
    common: BrokerCommon,
    table: Arc<str>,
    done_table: Arc<str>,
    /// Position → triggers that still owe it.
    owed: Mutex<BTreeMap<u64, u32>>,
    /// Positions every trigger finished since the last trim (recorded with it when above the lowest
    /// owed position).
    finished: Mutex<Vec<u64>>,
    /// Positions finished before the restart, above the lowest owed one then: not routed again.
    restored: Mutex<std::collections::BTreeSet<u64>>,
    /// The next position the consumer routes.
    consumed: AtomicU64,
    /// Entries that overflowed into the store's queue tables (experiment diagnostics).
    overflowed: AtomicU64,
}

impl LogShared {
    fn low(&self) -> u64 {
        let consumed = self.consumed.load(Ordering::Acquire);
        self.owed
            .lock()
            .first_key_value()
            .map_or(consumed, |(&k, _)| k.min(consumed))
    }

    fn finish_position(&self, pos: u64) {
        let mut owed = self.owed.lock();
        if let Some(n) = owed.get_mut(&pos) {
            if *n > 1 {
                *n -= 1;
            } else {
                owed.remove(&pos);
                self.finished.lock().push(pos);
            }
        }
    }

    /// The trim to send now, if there is anything to trim or record (`trimmed`: the last `below` sent).
    fn trim(&self, trimmed: u64) -> Option<Command> {
        let low = self.low();
        let mut done = std::mem::take(&mut *self.finished.lock());
        done.retain(|&p| p >= low);
        if low <= trimmed && done.is_empty() {
            return None;
        }
        Some(Command::Trim {
            table: self.table.clone(),
            done_table: self.done_table.clone(),
            below: low,
            done,
        })
    }
}

deref_common!(LogShared);

impl LogBroker for LogShared {
    type Config = EmbeddedLog;

    fn config(&self) -> &EmbeddedLog {
        &EmbeddedLog
    }

    fn finish(&self, id: EntryId) {
        if let Entry::StoreLog(pos) = id.0 {
            self.finish_position(pos);
        }
    }

    fn remote_backlog(&self) -> u64 {
        0
    }
}

impl LogDriver for StoreLogDriver {
    type Broker = LogShared;
    const NAME: &'static str = "embedded";

    fn start(&self, new: NewBroker<'_, EmbeddedLog>) -> Started<LogShared> {
        let key = new.key;
        let routes = new.routes;
        let table = table_name(key);
        let common = BrokerCommon::new(key, routes, String::new());
        *common.not_ready.lock() = None;
        let shared = Arc::new(LogShared {
            common,
            table: table.clone(),
            done_table: done_table_name(key),
            owed: Mutex::new(BTreeMap::new()),
            finished: Mutex::new(Vec::new()),
            restored: Mutex::new(Default::default()),
            consumed: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel(64);
        self.inner.tails.lock().insert(table, tx);
        let task = tokio::spawn(consume(
            shared.clone(),
            self.inner.clone(),
            new.ctx.store,
            rx,
            new.ctx.stop,
        ));
        Ok((shared, task))
    }

    /// Commits the consumers' last trims durably (they were queued when their runtimes stopped).
    async fn closed(&self, deadline: Duration) {
        let (reply, answer) = oneshot::channel();
        if send(&self.inner, Command::Flush { reply }).await.is_ok() {
            match tokio::time::timeout(deadline, answer).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!("store log: flush at close: {e}"),
                Ok(Err(_)) | Err(_) => tracing::warn!("store log: flush at close did not finish"),
            }
        }
        let (reply, answer) = oneshot::channel();
        if send(&self.inner, Command::Close { reply }).await.is_ok() {
            let _ = tokio::time::timeout(deadline, answer).await;
        }
    }

    async fn append(&self, broker: &Arc<LogShared>, events: Vec<Event>) -> Result<()> {
        let mut bytes = Vec::with_capacity(events.iter().map(|e| e.approx_size() + 64).sum());
        let mut ends = Vec::with_capacity(events.len());
        for e in &events {
            crate::format::codec::encode(e, &mut bytes);
            ends.push(bytes.len());
        }
        let (reply, answer) = oneshot::channel();
        let command = Command::Append {
            table: broker.table.clone(),
            bytes,
            ends,
            events,
            reply,
        };
        send(&self.inner, command).await?;
        answer.await.map_err(|_| ChannelError::Closed)?
    }
}

/// Queues a command for the writer. The queue is bounded: when it is full the wait happens off the
/// runtime's worker threads.
async fn send(inner: &Inner, command: Command) -> Result<()> {
    let commands = inner.commands.clone();
    match commands.try_send(command) {
        Ok(()) => Ok(()),
        Err(std::sync::mpsc::TrySendError::Full(c)) => {
            tokio::task::spawn_blocking(move || commands.send(c))
                .await
                .map_err(storage)?
                .map_err(|_| ChannelError::Closed)
        }
        Err(std::sync::mpsc::TrySendError::Disconnected(_)) => Err(ChannelError::Closed),
    }
}

/// Reads positions `from..to` (to the end when `to` is `None`) back from the broker's table.
fn read_back(db: &Database, table: &str, from: u64, to: Option<u64>) -> Result<Vec<(u64, Event)>> {
    let txn = db.begin_read().map_err(storage)?;
    let def: TableDefinition<u64, &[u8]> = TableDefinition::new(table);
    let t = match txn.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(storage(e)),
    };
    let mut out = Vec::new();
    let range = match to {
        Some(to) => t.range(from..to),
        None => t.range(from..),
    }
    .map_err(storage)?;
    for row in range.take(256) {
        let (k, v) = row.map_err(storage)?;
        let event = crate::format::codec::decode(v.value())
            .map_err(|e| ChannelError::Corrupt(format!("store log {table}@{}: {e}", k.value())))?;
        out.push((k.value(), event));
    }
    Ok(out)
}

async fn consume(
    shared: Arc<LogShared>,
    inner: Arc<Inner>,
    store: Arc<StoreChannel>,
    mut tail: mpsc::Receiver<Tail>,
    stop: CancellationToken,
) {
    let mut scratch = Vec::new();
    let mut trimmed = 0u64;
    let mut ticks = 0u64;
    // What the table holds from before: route it all (an emptied table starts at the next position).
    let start = inner.db.begin_read().ok().map_or(0, |txn| {
        txn.open_table(TableDefinition::<u64, &[u8]>::new(&shared.table))
            .ok()
            .and_then(|t| t.first().ok().flatten().map(|(k, _)| k.value()))
            .unwrap_or_else(|| committed_next(&txn, &shared.table))
    });
    shared.consumed.store(start, Ordering::Release);
    if let Ok(txn) = inner.db.begin_read() {
        if let Ok(t) = txn.open_table(done_def(&shared.done_table)) {
            if let Ok(rows) = t.range(start..) {
                let mut restored = shared.restored.lock();
                restored.extend(rows.filter_map(|r| r.ok()).map(|(k, _)| k.value()));
            }
        }
    }
    catch_up(&shared, &inner, &store, None, &mut scratch, &stop).await;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            t = tail.recv() => {
                let Some(t) = t else { break };
                let next = shared.consumed.load(Ordering::Acquire);
                if t.first > next {
                    catch_up(&shared, &inner, &store, Some(t.first), &mut scratch, &stop).await;
                }
                for (i, event) in t.events.into_iter().enumerate() {
                    let pos = t.first + i as u64;
                    if pos < shared.consumed.load(Ordering::Acquire) {
                        continue;
                    }
                    route(&shared, &store, pos, event, &mut scratch, &stop).await;
                }
            }
            _ = tick.tick() => {
                ticks += 1;
                if ticks % 100 == 0 {
                    report(&shared);
                }
                if let Some(trim) = shared.trim(trimmed) {
                    let Command::Trim { below, .. } = &trim else { unreachable!() };
                    let below = *below;
                    match inner.commands.try_send(trim) {
                        Ok(()) => trimmed = below,
                        // The writer is busy: record these with the next trim.
                        Err(std::sync::mpsc::TrySendError::Full(Command::Trim { done, .. })) => {
                            shared.finished.lock().extend(done);
                        }
                        Err(_) => {}
                    }
                }
            }
        }
    }
    // The last trim is not dropped: the driver's `closed` commits it durably.
    if let Some(trim) = shared.trim(trimmed) {
        let _ = send(&inner, trim).await;
    }
}

/// Routes what the table holds from the next position up to `to` (or its end).
async fn catch_up(
    shared: &LogShared,
    inner: &Inner,
    store: &StoreChannel,
    to: Option<u64>,
    scratch: &mut Vec<usize>,
    stop: &CancellationToken,
) {
    loop {
        let from = shared.consumed.load(Ordering::Acquire);
        if to.is_some_and(|to| from >= to) {
            return;
        }
        let page = match read_back(&inner.db, &shared.table, from, to) {
            Ok(p) => p,
            Err(e) => {
                shared.consume_failed(&e);
                return;
            }
        };
        if page.is_empty() {
            return;
        }
        for (pos, event) in page {
            route(shared, store, pos, event, scratch, stop).await;
        }
    }
}

async fn route(
    shared: &LogShared,
    store: &StoreChannel,
    pos: u64,
    event: Event,
    scratch: &mut Vec<usize>,
    stop: &CancellationToken,
) {
    if shared.restored.lock().remove(&pos) {
        // Finished before the restart: every trigger is done with it.
        shared.consumed.store(pos + 1, Ordering::Release);
        return;
    }
    let routed = shared
        .common
        .route(
            store,
            event,
            scratch,
            stop,
            |n| {
                shared.owed.lock().insert(pos, n);
                EntryId(Entry::StoreLog(pos))
            },
            || {
                shared.overflowed.fetch_add(1, Ordering::Relaxed);
                shared.finish_position(pos)
            },
        )
        .await;
    if !routed {
        // No trigger wanted it: finished at once.
        shared.finished.lock().push(pos);
    }
    shared.consumed.store(pos + 1, Ordering::Release);
}

/// Experiment diagnostics: what the consumer routed and how much overflowed into the store, written to
/// `$SWITCHYARD_EXPERIMENT_STORE_LOG_REPORT` every second.
fn report(shared: &LogShared) {
    if let Ok(path) = std::env::var("SWITCHYARD_EXPERIMENT_STORE_LOG_REPORT") {
        let line = format!(
            "{} consumed {} overflowed {}\n",
            shared.table,
            shared.consumed.load(Ordering::Relaxed),
            shared.overflowed.load(Ordering::Relaxed)
        );
        let _ = std::fs::write(path, line);
    }
}

#[cfg(test)]
mod tests {
    use super::{done_table_name, read_back, send, table_name, Command, StoreLogDriver};
    use crate::channel::composite::CompositeChannel;
    use crate::channel::log::LogDriver as _;
    use crate::channel::store::{StoreChannel, StoreOptions};
    use crate::channel::{Channel, Delivery, Subscription};
    use crate::config::{
        BrokerConfig, BrokerKey, DestinationConfig, Topology, TriggerConfig, TriggerKey,
    };
    use crate::event::Event;
    use crate::filter::Filter;
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::oneshot;

    const DEADLINE: Duration = Duration::from_secs(10);

    fn topology() -> Arc<Topology> {
        let broker = BrokerConfig {
            key: BrokerKey::new("default", "b"),
            class: "MTChannelBasedBroker".into(),
            delivery: None,
            max_backlog: None,
            config: BTreeMap::new(),
            backend: Default::default(),
        };
        let trigger = TriggerConfig {
            key: TriggerKey::new("default", "t"),
            broker: BrokerKey::new("default", "b"),
            filter: Filter::True,
            subscriber: DestinationConfig::Url("http://t.example".into()),
            delivery: None,
            max_inflight: 10,
            delivery_order: Default::default(),
        };
        Arc::new(Topology::new(vec![broker], vec![trigger]))
    }

    async fn open(dir: &std::path::Path) -> CompositeChannel {
        let store = StoreChannel::in_memory(StoreOptions::default()).unwrap();
        let channel = CompositeChannel::new(Arc::new(store))
            .with_store_log(Some(dir))
            .unwrap();
        channel.apply_topology(topology()).await.unwrap();
        channel
    }

    async fn next_n(sub: &mut Box<dyn Subscription>, n: usize) -> Vec<Delivery> {
        let mut out = Vec::new();
        for _ in 0..n {
            let d = tokio::time::timeout(DEADLINE, sub.next()).await;
            out.push(d.expect("a delivery in time").expect("subscription live"));
        }
        out
    }

    fn ids(deliveries: &[Delivery]) -> Vec<&str> {
        deliveries.iter().map(|d| d.event.id.as_str()).collect()
    }

    #[tokio::test]
    async fn only_unfinished_entries_come_again_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (b, t) = (
            BrokerKey::new("default", "b"),
            TriggerKey::new("default", "t"),
        );
        let events = ["a", "b", "c"].map(|id| Event::new(id, "/s", "t")).to_vec();

        let channel = open(dir.path()).await;
        channel.append(&b, events).await.unwrap();
        let mut sub = channel.subscribe(&t).unwrap();
        let got = next_n(&mut sub, 3).await;
        assert_eq!(ids(&got), ["a", "b", "c"]);
        // Finished out of order: "b" is still owed, "c" is finished above it.
        channel.ack(&t, got[0].id).await.unwrap();
        channel.ack(&t, got[2].id).await.unwrap();
        channel.close(DEADLINE).await.unwrap();
        drop((sub, channel));

        // "a" was trimmed, "c" was recorded as finished: only "b" comes again, then new events.
        let channel = open(dir.path()).await;
        channel
            .append(&b, vec![Event::new("d", "/s", "t")])
            .await
            .unwrap();
        let mut sub = channel.subscribe(&t).unwrap();
        let got = next_n(&mut sub, 2).await;
        assert_eq!(ids(&got), ["b", "d"]);
        for d in &got {
            channel.ack(&t, d.id).await.unwrap();
        }
        channel.close(DEADLINE).await.unwrap();
        drop((sub, channel));

        // Everything was finished: only a new event comes.
        let channel = open(dir.path()).await;
        channel
            .append(&b, vec![Event::new("e", "/s", "t")])
            .await
            .unwrap();
        let mut sub = channel.subscribe(&t).unwrap();
        assert_eq!(ids(&next_n(&mut sub, 1).await), ["e"]);
        channel.close(DEADLINE).await.unwrap();
    }

    #[tokio::test]
    async fn after_a_restart_new_events_follow_the_entries_that_come_again() {
        let dir = tempfile::tempdir().unwrap();
        let (b, t) = (
            BrokerKey::new("default", "b"),
            TriggerKey::new("default", "t"),
        );
        let events = ["a", "b"].map(|id| Event::new(id, "/s", "t")).to_vec();

        let channel = open(dir.path()).await;
        channel.append(&b, events).await.unwrap();
        let mut sub = channel.subscribe(&t).unwrap();
        let got = next_n(&mut sub, 2).await;
        channel.ack(&t, got[1].id).await.unwrap();
        channel.close(DEADLINE).await.unwrap();
        drop((sub, channel));

        let channel = open(dir.path()).await;
        let mut sub = channel.subscribe(&t).unwrap();
        let got = next_n(&mut sub, 1).await;
        assert_eq!(ids(&got), ["a"]);
        channel.ack(&t, got[0].id).await.unwrap();
        channel
            .append(&b, vec![Event::new("c", "/s", "t")])
            .await
            .unwrap();
        assert_eq!(ids(&next_n(&mut sub, 1).await), ["c"]);
        channel.close(DEADLINE).await.unwrap();
    }

    /// Writes one event to `table` through the driver's writer and waits for its commit.
    async fn append_raw(driver: &StoreLogDriver, table: &Arc<str>, id: &str) {
        let event = Event::new(id, "/s", "t");
        let mut bytes = Vec::new();
        crate::format::codec::encode(&event, &mut bytes);
        let (reply, answer) = oneshot::channel();
        let ends = vec![bytes.len()];
        let command = Command::Append {
            table: table.clone(),
            bytes,
            ends,
            events: vec![event],
            reply,
        };
        send(&driver.inner, command).await.unwrap();
        answer.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn positions_never_go_back_when_trims_emptied_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let key = BrokerKey::new("default", "b");
        let (table, done_table) = (table_name(&key), done_table_name(&key));

        let driver = StoreLogDriver::open(Some(dir.path())).unwrap();
        append_raw(&driver, &table, "a").await;
        append_raw(&driver, &table, "b").await;
        driver.closed(DEADLINE).await;
        drop(driver);

        // A new writer (nothing cached) whose first command empties the table.
        let driver = StoreLogDriver::open(Some(dir.path())).unwrap();
        let trim = Command::Trim {
            table: table.clone(),
            done_table,
            below: 2,
            done: Vec::new(),
        };
        send(&driver.inner, trim).await.unwrap();
        append_raw(&driver, &table, "c").await;
        let rows = read_back(&driver.inner.db, &table, 0, None).unwrap();
        let positions: Vec<(u64, &str)> = rows.iter().map(|(p, e)| (*p, e.id.as_str())).collect();
        assert_eq!(positions, [(2, "c")]);
        driver.closed(DEADLINE).await;
    }
}
