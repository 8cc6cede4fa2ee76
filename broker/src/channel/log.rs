//! The layer shared by the brokers whose events live in an external log (Kafka, JetStream), written once:
//! starting, reconfiguring and stopping one runtime per broker, the per-trigger windows (see `windows.rs`),
//! subscriptions, finishing entries, backlog and readiness. A backend supplies a [`LogDriver`] (how its
//! brokers start, how an append reaches the log) and a [`LogBroker`] (the per-broker state its consumer
//! shares with the layer).
//!
//! # Adding a log backend
//!
//! 1. A `Backend` variant with the broker's config (`config/`, a
//!    [`LogBackendConfig`](crate::config::LogBackendConfig)), and an [`Entry`](super::Entry) variant for
//!    the handles of its consumed records.
//! 2. A [`LogBroker`]: per-broker state (config, routes, readiness, what the log still holds, and how one
//!    trigger finishing an entry reaches the log: an offset commit, a message ack).
//! 3. A [`LogDriver`]: `start` spawns the broker's consumer (decode once, route once, [`offer`] to each
//!    matching trigger's window) and probe ([`next_probe`]); `append` writes a batch durably.
//! 4. A `with_<backend>` constructor of [`CompositeChannel`](super::composite::CompositeChannel) that adds
//!    a `LogLayer` of the driver to its log backends (appends go by the broker's backend, acks by the
//!    handle's variant), behind the backend's Cargo feature.
//!
//! The whole guide, with the component layout, is in ARCHITECTURE.md ("Adding a backend").
//!
//! [`offer`]: super::windows::offer

use crate::channel::store::StoreChannel;
use crate::channel::windows::{
    offer, set_setup_failure, Offered, Reachability, Routes, TriggerQueues, WindowSubscription,
};
use crate::channel::{
    BoxFuture, ChannelError, Delivery, Done, EntryId, LogBackend, Result, Subscription,
};
use crate::config::{Backend, BrokerKey, LogBackendConfig, Topology, TriggerKey};
use crate::event::Event;
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

/// What every log-backed broker's runtime state holds, whatever its log.
pub(crate) struct BrokerCommon {
    pub(crate) key: BrokerKey,
    /// The broker's routing table with its triggers' windows.
    pub(crate) routes: ArcSwap<Routes>,
    /// `None` once the broker's topic or stream is set up; otherwise why it is not.
    pub(crate) not_ready: Mutex<Option<String>>,
    /// Whether the log answers (the broker's probe's view).
    pub(crate) outage: Reachability,
    /// Records of the log that were not valid CloudEvents (skipped).
    pub(crate) invalid: AtomicU64,
}

impl BrokerCommon {
    /// A broker that is not set up yet (`pending` says what it waits for).
    pub(crate) fn new(key: &BrokerKey, routes: Arc<Routes>, pending: String) -> BrokerCommon {
        BrokerCommon {
            key: key.clone(),
            routes: ArcSwap::new(routes),
            not_ready: Mutex::new(Some(pending)),
            outage: Reachability::default(),
            invalid: AtomicU64::new(0),
        }
    }

    /// Runs `setup` (connect, create the topic or stream...) until it succeeds, with backoff from 200 ms
    /// to 5 s; while it fails the broker is not ready for that reason (one warning per new reason).
    /// `None` when `stop` was cancelled first.
    pub(crate) async fn set_up<T, F, Fut>(
        &self,
        stop: &CancellationToken,
        mut setup: F,
    ) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, String>>,
    {
        let mut backoff = Duration::from_millis(200);
        loop {
            if stop.is_cancelled() {
                return None;
            }
            match setup().await {
                Ok(v) => return Some(v),
                Err(reason) => {
                    set_setup_failure(&self.key, &self.not_ready, reason);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.cancelled() => return None,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Routes one consumed event with the broker's current table and offers it to each matching trigger's
    /// window. `track(n)` is called once, before the first offer, with the number of matching triggers
    /// (n ≥ 1) and returns the entry's handle; `finished()` is called for each trigger that finished the
    /// entry at once (overflowed into the store, or the trigger is being removed). Returns `false`, having
    /// called neither, when no trigger matched: the log may forget the entry.
    pub(crate) async fn route(
        &self,
        store: &StoreChannel,
        event: Event,
        scratch: &mut Vec<usize>,
        stop: &CancellationToken,
        track: impl FnOnce(u32) -> EntryId,
        finished: impl Fn(),
    ) -> bool {
        let routes = self.routes.load();
        scratch.clear();
        if let Some(table) = routes.topology.routes.get(&self.key) {
            table.route(&event, scratch);
        }
        scratch.dedup();
        scratch.retain(|&i| matches!(routes.queues.get(i), Some(Some(_))));
        if scratch.is_empty() {
            return false;
        }
        let id = track(scratch.len() as u32);
        let event = Arc::new(event);
        for &i in scratch.iter() {
            let Some(Some(queue)) = routes.queues.get(i) else {
                continue;
            };
            let delivery = Delivery {
                id,
                event: event.clone(),
            };
            if offer(store, &self.key, queue, delivery, stop).await == Offered::Finished {
                finished();
            }
        }
        true
    }

    /// Logs a failure to read the log: once at warn level, at debug level while the probe already reported
    /// the log as down (no line per retry).
    pub(crate) fn consume_failed(&self, e: &dyn std::fmt::Display) {
        if self.outage.is_down() {
            tracing::debug!(broker = %self.key, "consume: {e}");
        } else {
            tracing::warn!(broker = %self.key, "consume: {e}");
        }
    }
}
/// Implements `Deref<Target = BrokerCommon>`, which [`LogBroker`] requires, for a broker type through
/// its `common` field.
macro_rules! deref_common {
    ($broker:ty) => {
        impl std::ops::Deref for $broker {
            type Target = $crate::channel::log::BrokerCommon;

            fn deref(&self) -> &Self::Target {
                &self.common
            }
        }
    };
}
pub(crate) use deref_common;

/// The state of one log-backed broker that its consumer task shares with the layer: what every
/// log-backed broker has (its [`BrokerCommon`], through `Deref`) and what its log needs.
pub(crate) trait LogBroker:
    std::ops::Deref<Target = BrokerCommon> + Send + Sync + 'static
{
    /// The broker's backend configuration; a change restarts the broker's runtime.
    type Config: LogBackendConfig + PartialEq + Clone + Send + Sync + 'static;

    /// The configuration the runtime was started with.
    fn config(&self) -> &Self::Config;

    /// Installs the broker's routing table with its triggers' windows (topology change, same config).
    fn set_routes(&self, routes: Arc<Routes>) {
        self.routes.store(routes);
    }

    /// Why the broker's topic or stream is not set up yet, if it is not.
    fn setup_pending(&self) -> Option<String> {
        self.not_ready.lock().clone()
    }

    /// Why the broker cannot take events now (setup pending, or its log does not answer), if it cannot.
    fn not_ready(&self) -> Option<String> {
        self.setup_pending().or_else(|| self.outage.reason())
    }

    /// One trigger finished entry `id` (delivered, dead-lettered or parked); a handle of another backend
    /// or of an earlier assignment is ignored.
    fn finish(&self, id: EntryId);

    /// Entries the log still holds for the broker that this process's windows do not (consumed by no
    /// process yet, or held by another), from the broker's probe.
    fn remote_backlog(&self) -> u64;

    /// Records of the broker's log that were not valid CloudEvents (skipped).
    fn invalid(&self) -> u64 {
        self.invalid.load(Ordering::Relaxed)
    }
}

/// What the tasks of a broker runtime run with: the store (overflow, parking) and the runtime's stop
/// token (they end when it is cancelled).
#[derive(Clone)]
pub(crate) struct RuntimeCtx {
    pub(crate) store: Arc<StoreChannel>,
    pub(crate) stop: CancellationToken,
}

/// A broker runtime for [`LogDriver::start`] to start.
pub(crate) struct NewBroker<'a, C> {
    /// The broker.
    pub(crate) key: &'a BrokerKey,
    /// Its backend's settings.
    pub(crate) config: &'a C,
    /// Its routing table, with its triggers' windows.
    pub(crate) routes: Arc<Routes>,
    /// What its tasks run with.
    pub(crate) ctx: RuntimeCtx,
}

/// A started broker runtime: its state and its task.
pub(crate) type Started<B> = Result<(Arc<B>, JoinHandle<()>)>;

/// The settings of the brokers of layer `D`.
type ConfigOf<D> = <<D as LogDriver>::Broker as LogBroker>::Config;

/// Waits one probe `interval`: `false` once `stop` is cancelled (the probe ends then).
pub(crate) async fn next_probe(stop: &CancellationToken, interval: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(interval) => {}
        _ = stop.cancelled() => return false,
    }
    !stop.is_cancelled()
}

/// How the brokers of one log backend start and take appends.
pub(crate) trait LogDriver: Send + Sync + 'static {
    /// The per-broker state.
    type Broker: LogBroker;

    /// The backend's name (`kafka`, `nats`), as in the admin API.
    const NAME: &'static str;

    /// Starts a broker's runtime: its state and its background tasks (consumer, probe), which end when
    /// `new.ctx.stop` is cancelled.
    fn start(&self, new: NewBroker<'_, ConfigOf<Self>>) -> Started<Self::Broker>;

    /// Writes a batch to the broker's log; resolves once every record is durable there.
    fn append<'a>(
        &'a self,
        broker: &'a Arc<Self::Broker>,
        events: Vec<Event>,
    ) -> impl Future<Output = Result<()>> + Send + 'a;

    /// Called at close after every runtime stopped (flush producers...).
    fn closed(&self, _deadline: Duration) -> impl Future<Output = ()> + Send + '_ {
        async {}
    }
}

struct Runtime<B> {
    shared: Arc<B>,
    /// Stops the runtime's tasks; cancelled when the runtime is dropped too.
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
    task: JoinHandle<()>,
}

/// One log backend: its driver, its broker runtimes and its trigger windows.
pub(crate) struct LogLayer<D: LogDriver> {
    driver: D,
    store: Arc<StoreChannel>,
    brokers: Mutex<HashMap<BrokerKey, Runtime<D::Broker>>>,
    queues: TriggerQueues,
    /// How long `apply_topology` waits for a new broker's setup before answering (the runtime keeps
    /// retrying in the background; appends answer 503 until it is done).
    setup_wait: Duration,
}

impl<D: LogDriver> std::fmt::Debug for LogLayer<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogLayer")
            .field("brokers", &self.brokers.lock().len())
            .finish_non_exhaustive()
    }
}

impl<D: LogDriver> LogLayer<D> {
    /// A layer that keeps overflow and dead letters in `store`, with `window` in-memory entries per
    /// trigger, waiting up to `setup_wait` for a new broker's setup when a topology is applied.
    pub(crate) fn new(
        store: Arc<StoreChannel>,
        driver: D,
        window: usize,
        setup_wait: Duration,
    ) -> LogLayer<D> {
        LogLayer {
            queues: TriggerQueues::new(window),
            driver,
            store,
            brokers: Mutex::new(HashMap::new()),
            setup_wait,
        }
    }

    /// The broker's config if `backend` is this layer's.
    fn config_of(backend: &Backend) -> Option<&ConfigOf<D>> {
        LogBackendConfig::of(backend)
    }

    /// Starts, restarts (config changed) and stops broker runtimes and trigger windows for a new topology.
    /// The store must already have the topology (overflow and parking need the triggers there).
    async fn apply(&self, topology: Arc<Topology>) -> Result<()> {
        // Trigger windows: a trigger keeps its window while it stays on the same broker.
        let queues = self
            .queues
            .rebuild(&topology, |b| Self::config_of(b).is_some());
        let mut started = Vec::new();
        {
            let mut brokers = self.brokers.lock();
            let wanted: HashMap<&BrokerKey, &ConfigOf<D>> = topology
                .brokers
                .iter()
                .filter_map(|(k, b)| Self::config_of(&b.backend).map(|c| (k, c)))
                .collect();
            brokers.retain(|key, rt| {
                let keep = wanted.get(key).is_some_and(|c| *c == rt.shared.config());
                if !keep {
                    rt.stop.cancel();
                }
                keep
            });
            for (key, config) in wanted {
                let routes = Arc::new(crate::channel::windows::routes_for(&topology, key, &queues));
                if let Some(rt) = brokers.get(key) {
                    rt.shared.set_routes(routes);
                    continue;
                }
                let stop = CancellationToken::new();
                let ctx = RuntimeCtx {
                    store: self.store.clone(),
                    stop: stop.clone(),
                };
                let new = NewBroker {
                    key,
                    config,
                    routes,
                    ctx,
                };
                let (shared, task) = self.driver.start(new)?;
                started.push((key.clone(), shared.clone()));
                let runtime = Runtime {
                    shared,
                    _stop_on_drop: stop.clone().drop_guard(),
                    stop,
                    task,
                };
                brokers.insert(key.clone(), runtime);
            }
        }

        // Give new brokers a moment to set up, so that the first event after start-up is accepted.
        let deadline = tokio::time::Instant::now() + self.setup_wait;
        for (key, shared) in started {
            while shared.setup_pending().is_some() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if let Some(reason) = shared.setup_pending() {
                tracing::warn!(broker = %key, "{reason}; retrying in the background");
            }
        }
        Ok(())
    }

    /// The runtime state of a broker of this backend.
    fn broker(&self, key: &BrokerKey) -> Option<Arc<D::Broker>> {
        self.brokers.lock().get(key).map(|rt| rt.shared.clone())
    }
}

impl<D: LogDriver> LogBackend for LogLayer<D> {
    fn name(&self) -> &'static str {
        D::NAME
    }

    fn serves(&self, backend: &Backend) -> bool {
        Self::config_of(backend).is_some()
    }

    fn apply_topology(&self, topology: Arc<Topology>) -> Done<'_> {
        Box::pin(self.apply(topology))
    }

    /// While the broker is not ready the answer comes at once.
    fn append<'a>(&'a self, broker: &'a BrokerKey, events: Vec<Event>) -> Done<'a> {
        Box::pin(async move {
            let shared = self
                .broker(broker)
                .ok_or_else(|| ChannelError::UnknownBroker(broker.clone()))?;
            if let Some(reason) = shared.not_ready() {
                return Err(ChannelError::Unavailable(reason));
            }
            self.driver.append(&shared, events).await
        })
    }

    fn has_trigger(&self, trigger: &TriggerKey) -> bool {
        self.queues.get(trigger).is_some()
    }

    fn subscribe(&self, trigger: &TriggerKey) -> Result<Box<dyn Subscription>> {
        let queue = self
            .queues
            .get(trigger)
            .ok_or_else(|| ChannelError::UnknownTrigger(trigger.clone()))?;
        let store = crate::channel::Channel::subscribe(&*self.store, trigger)?;
        Ok(Box::new(WindowSubscription::new(&queue, store)))
    }

    fn finish(&self, trigger: &TriggerKey, id: EntryId) {
        let Some(broker) = self.queues.release(trigger) else {
            return;
        };
        if let Some(shared) = self.broker(&broker) {
            shared.finish(id);
        }
    }

    /// Without double counting: what the log still holds beyond this process's windows, plus the
    /// windows. Entries overflowed into the store are finished for the log and counted by the store.
    fn backlog(&self, broker: &BrokerKey) -> u64 {
        let remote = self.broker(broker).map_or(0, |b| b.remote_backlog());
        remote + self.queues.backlog(broker)
    }

    fn trigger_backlog(&self, trigger: &TriggerKey) -> u64 {
        self.queues.trigger_backlog(trigger)
    }

    fn not_ready(&self, broker: &BrokerKey) -> Option<String> {
        self.broker(broker).and_then(|b| b.not_ready())
    }

    fn invalid(&self, broker: &BrokerKey) -> u64 {
        self.broker(broker).map_or(0, |b| b.invalid())
    }

    /// Stops every runtime (each finishes what it must, e.g. committing offsets), ends the subscriptions,
    /// then lets the driver finish (flushing producers).
    fn close(&self, deadline: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let runtimes: Vec<Runtime<D::Broker>> =
                self.brokers.lock().drain().map(|(_, r)| r).collect();
            for rt in &runtimes {
                rt.stop.cancel();
            }
            for rt in runtimes {
                let _ = tokio::time::timeout(deadline, rt.task).await;
            }
            self.queues.close_all();
            self.driver.closed(deadline).await;
        })
    }
}
