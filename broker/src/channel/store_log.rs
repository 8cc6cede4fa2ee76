//! EXPERIMENT (issue 12, "store as a log"): the embedded store shaped as a log under [`LogLayer`], to
//! measure it end to end against the queue tables of [`StoreChannel`] and to grow into its replacement
//! (ARCHITECTURE.md, "Decisions"). Used only when the process runs with
//! `SWITCHYARD_EXPERIMENT_STORE_LOG=1`.
//!
//! - The events live in the store's own database, one log table per broker (`store/log_tables.rs`),
//!   written by the store's writer: one group commit and one failure model (full volume, free-space
//!   reserve, reopen after an I/O error) with the queue tables.
//! - After each commit the writer hands the batch's events to the broker's consumer through a bounded
//!   channel (the "tail"); when the tail is full the batch is dropped there and the consumer reads the gap
//!   back from the table, so memory stays bounded.
//! - The consumer routes each event once ([`BrokerCommon::route`]) into the trigger windows of the log
//!   layer (overflow into the store's queue tables, as for Kafka and JetStream) and counts, per position,
//!   the triggers that still owe it.
//! - Every 10 ms the log is trimmed below the lowest owed position (one range delete, committed like the
//!   store's acks), and the positions finished above it are recorded, so that a restart delivers again
//!   only what was not finished. The last trim is committed durably at close.
//!
//! [`LogLayer`]: crate::channel::log::LogLayer

use crate::channel::log::{deref_common, BrokerCommon, LogBroker, LogDriver, NewBroker, Started};
use crate::channel::store::log_tables::{LogTrim, Tail};
use crate::channel::store::StoreChannel;
use crate::channel::{Entry, EntryId, Result};
use crate::config::{Backend, LogBackendConfig};
use crate::event::Event;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The log-shaped store as a [`LogDriver`].
pub(crate) struct StoreLogDriver {
    store: Arc<StoreChannel>,
}

impl StoreLogDriver {
    /// The log tables of `store`.
    pub(crate) fn new(store: Arc<StoreChannel>) -> StoreLogDriver {
        StoreLogDriver { store }
    }
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

/// A broker of the log-shaped store.
pub(crate) struct LogShared {
    common: BrokerCommon,
    /// Its log table (`log/{ns}/{name}`) and its table of finished positions (`done/{ns}/{name}`).
    table: Arc<str>,
    done_table: Arc<str>,
    /// Position → triggers that still owe it.
    owed: Mutex<BTreeMap<u64, u32>>,
    /// Positions every trigger finished since the last trim (recorded with it when above the lowest
    /// owed position).
    finished: Mutex<Vec<u64>>,
    /// Positions finished before the restart, above the lowest owed one then: not routed again.
    restored: Mutex<BTreeSet<u64>>,
    /// The next position the consumer routes.
    consumed: AtomicU64,
    /// Set by the writer when it dropped a batch for a full tail: read the table back.
    lagging: Arc<AtomicBool>,
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

    /// The trim to write now, if there is anything to trim or record (`trimmed`: the last `below`).
    fn trim(&self, trimmed: u64) -> Option<LogTrim> {
        let low = self.low();
        let mut done = std::mem::take(&mut *self.finished.lock());
        done.retain(|&p| p >= low);
        if low <= trimmed && done.is_empty() {
            return None;
        }
        Some(LogTrim {
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
        let table: Arc<str> = Arc::from(format!("log/{key}"));
        let common = BrokerCommon::new(key, new.routes, String::new());
        *common.not_ready.lock() = None;
        let shared = Arc::new(LogShared {
            common,
            table: table.clone(),
            done_table: Arc::from(format!("done/{key}")),
            owed: Mutex::new(BTreeMap::new()),
            finished: Mutex::new(Vec::new()),
            restored: Mutex::new(BTreeSet::new()),
            consumed: AtomicU64::new(0),
            lagging: Arc::new(AtomicBool::new(false)),
            overflowed: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel(64);
        self.store.log_register(table, tx, shared.lagging.clone());
        let task = tokio::spawn(consume(shared.clone(), new.ctx.store, rx, new.ctx.stop));
        Ok((shared, task))
    }

    /// Makes the consumers' last trims durable (they were written when their runtimes stopped).
    async fn closed(&self, _deadline: Duration) {
        if let Err(e) = crate::channel::Channel::flush(&*self.store).await {
            tracing::warn!("store log: flush at close: {e}");
        }
    }

    async fn append(&self, broker: &Arc<LogShared>, events: Vec<Event>) -> Result<()> {
        self.store.log_append(broker.table.clone(), events).await
    }
}

async fn consume(
    shared: Arc<LogShared>,
    store: Arc<StoreChannel>,
    mut tail: mpsc::Receiver<Tail>,
    stop: CancellationToken,
) {
    let mut scratch = Vec::new();
    let mut trimmed = 0u64;
    let mut ticks = 0u64;
    // What the table holds from before: route it all, except what was finished before.
    match store.log_start(&shared.table, &shared.done_table) {
        Ok((start, done)) => {
            shared.consumed.store(start, Ordering::Release);
            *shared.restored.lock() = done;
        }
        Err(e) => shared.consume_failed(&e),
    }
    catch_up(&shared, &store, None, &mut scratch, &stop).await;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            t = tail.recv() => {
                let Some(t) = t else { break };
                let next = shared.consumed.load(Ordering::Acquire);
                if t.first > next {
                    catch_up(&shared, &store, Some(t.first), &mut scratch, &stop).await;
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
                // Batches dropped while the tail was full, with none after them to show the gap.
                if tail.is_empty() && shared.lagging.swap(false, Ordering::AcqRel) {
                    catch_up(&shared, &store, None, &mut scratch, &stop).await;
                }
                if let Some(trim) = shared.trim(trimmed) {
                    let below = trim.below;
                    match store.log_trim(trim) {
                        Ok(()) => trimmed = below,
                        // The writer is busy: record these with the next trim.
                        Err(trim) => shared.finished.lock().extend(trim.done),
                    }
                }
            }
        }
    }
    // The last trim is committed before the driver's `closed` makes it durable.
    if let Some(trim) = shared.trim(trimmed) {
        if let Err(e) = store.log_trim_now(trim).await {
            tracing::debug!(broker = %shared.key, "store log: last trim: {e}");
        }
    }
}

/// Routes what the table holds from the next position up to `to` (or its end).
async fn catch_up(
    shared: &LogShared,
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
        let page = match store.log_read(&shared.table, from, to) {
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
    use crate::channel::composite::CompositeChannel;
    use crate::channel::store::log_tables::{LogTrim, Tail};
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
        let store = StoreChannel::open(dir, StoreOptions::default()).unwrap();
        let channel = CompositeChannel::new(Arc::new(store))
            .with_store_log()
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

    #[tokio::test]
    async fn positions_never_go_back_when_trims_emptied_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let (table, done_table): (Arc<str>, Arc<str>) =
            ("log/default/b".into(), "done/default/b".into());
        let event = |id| vec![Event::new(id, "/s", "t")];

        let store = StoreChannel::open(dir.path(), StoreOptions::default()).unwrap();
        store.log_append(table.clone(), event("a")).await.unwrap();
        store.log_append(table.clone(), event("b")).await.unwrap();
        store.close().await.unwrap();
        drop(store);

        // A new writer (nothing cached) whose first command empties the table.
        let store = StoreChannel::open(dir.path(), StoreOptions::default()).unwrap();
        let trim = LogTrim {
            table: table.clone(),
            done_table,
            below: 2,
            done: Vec::new(),
        };
        store.log_trim_now(trim).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Tail>(4);
        store.log_register(table.clone(), tx, Default::default());
        store.log_append(table.clone(), event("c")).await.unwrap();
        let rows = store.log_read(&table, 0, None).unwrap();
        let positions: Vec<(u64, &str)> = rows.iter().map(|(p, e)| (*p, e.id.as_str())).collect();
        assert_eq!(positions, [(2, "c")]);
        // The consumer was handed the batch after its commit, at the same position.
        let tail = rx.recv().await.unwrap();
        assert_eq!((tail.first, tail.events[0].id.as_str()), (2, "c"));
        store.close().await.unwrap();
    }
}
