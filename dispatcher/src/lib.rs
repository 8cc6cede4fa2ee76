//! # switchyard-dispatcher
//!
//! Consumes each trigger's queue from the channel and delivers to its subscriber:
//!
//! - one worker task per trigger (`run_worker`) pulls entries and starts each one with an in-flight
//!   permit (`max_inflight`, default 100), so a slow subscriber only ever occupies its own trigger's
//!   permits;
//! - each entry is delivered by its own task (`deliver::deliver`): attempts, backoff from the trigger's
//!   [`RetryPolicy`], replies re-enqueued into the broker, dead-letter sink, and parking in the local
//!   dead-letter store when everything else failed — an accepted event is never dropped;
//! - a permit is held while an *attempt* runs: a delivery waiting for a retry gives it back and takes one
//!   again before its next attempt (`Slot`), so retries with long backoffs do not starve the trigger's
//!   healthy events. Entries held without a permit (waiting for a retry, or behind a busy partition key)
//!   are bounded per trigger by `WAITING_PER_PERMIT` × `max_inflight`: at the bound the worker stops
//!   pulling;
//! - shutdown stops pulling, lets in-flight attempts finish within the grace period and hands back
//!   (does not ack) whatever is still waiting for a retry, without waiting for its backoff.

#![warn(missing_docs)]

/// The HTTP client of subscriber and dead-letter deliveries (shared with the sources).
pub use switchyard_broker::http_client as client;
mod deliver;

use client::HttpClient;
use http::{HeaderValue, Uri};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard_broker::channel::{Channel, Delivery, Subscription};
use switchyard_broker::config::{
    BrokerKey, DeliveryOrder, DestinationConfig, KafkaSinkConfig, NatsSinkConfig, ObjectKey,
    Topology, TriggerKey,
};
use switchyard_broker::delivery::{Format, RetryPolicy};
#[cfg(feature = "kafka")]
use switchyard_broker::kafka::channel::Producers;
use switchyard_broker::metrics::{Metrics, TriggerMetrics};
use switchyard_broker::sink::Sink;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Dispatcher settings.
#[derive(Debug, Clone)]
pub struct DispatcherOptions {
    /// Max bytes read from a subscriber's response (a reply event).
    pub max_response_bytes: usize,
    /// Idle keep-alive connections kept per subscriber host.
    pub max_idle_per_host: usize,
    /// Extra trusted CA certificates for `https` destinations (besides the Mozilla root set).
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// KafkaSink producers, shared with the Kafka-backed brokers (`None`: a pool of the dispatcher's own,
    /// 30 s produce timeout, 2 MiB records).
    #[cfg(feature = "kafka")]
    pub kafka_producers: Option<Arc<Producers>>,
}

impl Default for DispatcherOptions {
    fn default() -> Self {
        DispatcherOptions {
            max_response_bytes: 1024 * 1024,
            max_idle_per_host: 256,
            extra_roots: Vec::new(),
            #[cfg(feature = "kafka")]
            kafka_producers: None,
        }
    }
}

/// Everything a delivery needs about its trigger, rebuilt on config change.
#[derive(Debug)]
pub(crate) struct TriggerCtx {
    pub(crate) key: TriggerKey,
    pub(crate) label: String,
    pub(crate) broker: BrokerKey,
    /// Where the deliveries go: the HTTP subscriber, a KafkaSink or a NatsSink.
    pub(crate) target: Box<dyn Sink>,
    pub(crate) subscriber_str: String,
    pub(crate) order: DeliveryOrder,
    pub(crate) dead_letter_sink: Option<(Uri, String)>,
    pub(crate) policy: RetryPolicy,
    pub(crate) format: Format,
    pub(crate) namespace_header: HeaderValue,
    pub(crate) metrics: TriggerMetrics,
    pub(crate) max_inflight: usize,
}

/// State shared by all workers and deliveries.
pub(crate) struct Shared {
    pub(crate) channel: Arc<dyn Channel>,
    pub(crate) client: HttpClient,
    /// Cancelled when shutdown starts (or the dispatcher is dropped); each worker's stop is a child.
    shutdown: CancellationToken,
}

impl Shared {
    /// Sleeps for `d`; returns `false` early if shutdown starts.
    pub(crate) async fn sleep_unless_shutdown(&self, d: Duration) -> bool {
        if self.shutdown.is_cancelled() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.shutdown.cancelled() => false,
        }
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Resolves once shutdown has started.
    async fn shutdown_started(&self) {
        self.shutdown.cancelled().await;
    }
}

/// Entries a trigger's worker holds without an in-flight permit: waiting for a retry, or (ordered
/// delivery) waiting behind a busy partition key. The worker stops pulling while there are
/// [`WAITING_PER_PERMIT`] × `max_inflight` of them, which bounds a trigger's memory.
#[derive(Default)]
pub(crate) struct Waiting {
    count: AtomicUsize,
    /// Signalled whenever an entry stops waiting.
    progressed: Notify,
}

impl Waiting {
    fn add(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    fn done(&self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
        self.progressed.notify_waiters();
    }

    fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }
}

/// A delivery's share of its trigger's in-flight limit: a permit while an attempt runs. While the delivery
/// waits for a retry the permit is given back (other entries of the trigger go on) and the entry counts
/// as [`Waiting`]; a permit is taken again (in FIFO order with everyone else) before the next attempt.
pub(crate) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    semaphore: Arc<Semaphore>,
    waiting: Arc<Waiting>,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, semaphore: Arc<Semaphore>, waiting: Arc<Waiting>) -> Slot {
        Slot {
            permit: Some(permit),
            semaphore,
            waiting,
        }
    }

    /// Waits `d` before a retry without holding a permit (a zero wait keeps it), then takes one again.
    /// Returns `false` if shutdown starts first: the caller then returns without finishing its entry
    /// (handed back: it stays queued and is redelivered after restart) and holds no permit, so
    /// [`Dispatcher::shutdown`], which counts unfinished deliveries through the permits, neither waits
    /// for the backoff nor counts the entry.
    pub(crate) async fn wait_for_retry(&mut self, shared: &Shared, d: Duration) -> bool {
        if d.is_zero() {
            return !shared.is_shutting_down();
        }
        self.permit = None;
        self.waiting.add();
        let ok = shared.sleep_unless_shutdown(d).await && self.reacquire(shared).await;
        self.waiting.done();
        ok
    }

    async fn reacquire(&mut self, shared: &Shared) -> bool {
        let permit = tokio::select! {
            p = self.semaphore.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return false,
            },
            _ = shared.shutdown_started() => return false,
        };
        // Once shutdown started, a delivery that held no permit never starts another attempt: shutdown
        // may already have counted the permits.
        if shared.is_shutting_down() {
            return false;
        }
        self.permit = Some(permit);
        true
    }
}

struct Worker {
    broker: BrokerKey,
    ctx: watch::Sender<Arc<TriggerCtx>>,
    /// Stops the worker (a child of the dispatcher's shutdown); cancelled when it is dropped too.
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
    inflight: Arc<Semaphore>,
    max_inflight: usize,
    task: JoinHandle<()>,
}

/// The dispatcher: one worker per trigger.
pub struct Dispatcher {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    /// Cancels `Shared::shutdown` when the dispatcher is dropped without [`Dispatcher::shutdown`].
    _shutdown_on_drop: DropGuard,
    workers: Mutex<HashMap<TriggerKey, Worker>>,
    /// KafkaSink producers by bootstrap servers.
    #[cfg(feature = "kafka")]
    producers: Arc<Producers>,
    /// NatsSink connections by servers.
    #[cfg(feature = "nats")]
    nats_clients: switchyard_broker::nats::sink::NatsClients,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

/// A trigger that cannot be dispatched (its URL does not parse).
#[derive(Debug, thiserror::Error)]
#[error("trigger {trigger}: {message}")]
pub struct DispatchError {
    /// The trigger.
    pub trigger: TriggerKey,
    /// What is wrong.
    pub message: String,
}

/// The delivery client could not be built (invalid TLS roots).
#[derive(Debug, thiserror::Error)]
#[error("delivery client: {0}")]
pub struct ClientConfigError(pub String);

impl Dispatcher {
    /// Creates a dispatcher over a channel. Call [`Dispatcher::apply`] after the channel has the topology.
    pub fn new(
        channel: Arc<dyn Channel>,
        metrics: Arc<Metrics>,
        options: DispatcherOptions,
    ) -> Result<Dispatcher, ClientConfigError> {
        let client = HttpClient::new(
            options.max_idle_per_host,
            options.max_response_bytes,
            &options.extra_roots,
        )
        .map_err(ClientConfigError)?;
        let shutdown = CancellationToken::new();
        Ok(Dispatcher {
            _shutdown_on_drop: shutdown.clone().drop_guard(),
            shared: Arc::new(Shared {
                channel,
                client,
                shutdown,
            }),
            metrics,
            workers: Mutex::new(HashMap::new()),
            #[cfg(feature = "kafka")]
            producers: options.kafka_producers.clone().unwrap_or_else(|| {
                Arc::new(Producers::new(Duration::from_secs(30), 2 * 1024 * 1024))
            }),
            #[cfg(feature = "nats")]
            nats_clients: Default::default(),
        })
    }

    fn build_ctx(
        &self,
        topology: &Topology,
        key: &TriggerKey,
    ) -> Result<Option<TriggerCtx>, DispatchError> {
        let Some(spec) = topology.triggers.get(key) else {
            return Ok(None);
        };
        let Some(broker) = topology.brokers.get(&spec.broker) else {
            return Ok(None);
        };
        let err = |message: String| DispatchError {
            trigger: key.clone(),
            message,
        };
        let subscriber_str = spec.subscriber.to_string();
        let delivery = spec.effective_delivery(broker);
        let format = delivery.and_then(|d| d.format).unwrap_or_default();
        let namespace_header =
            HeaderValue::from_str(&key.namespace).map_err(|e| err(format!("namespace: {e}")))?;
        let target: Box<dyn Sink> = match &spec.subscriber {
            DestinationConfig::Url(u) => Box::new(deliver::HttpSink {
                client: self.shared.client.clone(),
                uri: u
                    .parse()
                    .map_err(|e| err(format!("subscriber uri {u:?}: {e}")))?,
                format,
                namespace_header: namespace_header.clone(),
            }),
            DestinationConfig::NatsSink(key) => {
                let sink = defined(&topology.nats_sinks, "NatsSink", key).map_err(&err)?;
                self.nats_sink(sink).map_err(&err)?
            }
            DestinationConfig::KafkaSink(key) => {
                let sink = defined(&topology.kafka_sinks, "KafkaSink", key).map_err(&err)?;
                self.kafka_sink(sink).map_err(&err)?
            }
        };
        let dead_letter_sink = match delivery.and_then(|d| d.dead_letter_sink.as_ref()) {
            Some(s) => Some((
                s.parse::<Uri>()
                    .map_err(|e| err(format!("deadLetterSink uri {s:?}: {e}")))?,
                s.clone(),
            )),
            None => None,
        };
        let label = key.to_string();
        Ok(Some(TriggerCtx {
            key: key.clone(),
            broker: spec.broker.clone(),
            target,
            subscriber_str,
            order: spec.delivery_order,
            dead_letter_sink,
            policy: RetryPolicy::from_spec(delivery),
            format,
            namespace_header,
            metrics: self.metrics.trigger(&label),
            max_inflight: spec.max_inflight.max(1),
            label,
        }))
    }

    #[cfg(feature = "kafka")]
    fn kafka_sink(&self, sink: &KafkaSinkConfig) -> Result<Box<dyn Sink>, String> {
        let sink = switchyard_broker::kafka::sink::KafkaSink::new(&self.producers, sink)?;
        Ok(Box::new(sink))
    }

    #[cfg(not(feature = "kafka"))]
    fn kafka_sink(&self, sink: &KafkaSinkConfig) -> Result<Box<dyn Sink>, String> {
        Err(not_compiled("KafkaSink", &sink.key, "Kafka", "kafka"))
    }

    #[cfg(feature = "nats")]
    fn nats_sink(&self, sink: &NatsSinkConfig) -> Result<Box<dyn Sink>, String> {
        let sink = switchyard_broker::nats::sink::NatsSink::new(&self.nats_clients, sink);
        Ok(Box::new(sink))
    }

    #[cfg(not(feature = "nats"))]
    fn nats_sink(&self, sink: &NatsSinkConfig) -> Result<Box<dyn Sink>, String> {
        Err(not_compiled("NatsSink", &sink.key, "NATS", "nats"))
    }

    /// Starts workers for new triggers, updates changed ones, stops removed ones. The channel must
    /// already have `topology` applied.
    pub fn apply(&self, topology: &Topology) -> Result<(), DispatchError> {
        let mut ctxs = Vec::new();
        for key in topology.triggers.keys() {
            if let Some(ctx) = self.build_ctx(topology, key)? {
                ctxs.push(ctx);
            }
        }
        let mut workers = self.workers.lock();
        let keep: std::collections::HashSet<TriggerKey> =
            ctxs.iter().map(|c| c.key.clone()).collect();
        workers.retain(|key, w| {
            let keep = keep.contains(key);
            if !keep {
                w.stop.cancel();
            }
            keep
        });
        for ctx in ctxs {
            let ctx = Arc::new(ctx);
            // A trigger re-pointed to another broker has a new, empty queue in the channel (its old
            // subscription ended); a worker whose subscription ended for any other reason is replaced too.
            let stale = workers
                .get(&ctx.key)
                .is_some_and(|w| w.broker != ctx.broker || w.task.is_finished());
            if stale {
                if let Some(w) = workers.remove(&ctx.key) {
                    w.stop.cancel();
                }
            }
            if let Some(w) = workers.get_mut(&ctx.key) {
                if ctx.max_inflight > w.max_inflight {
                    w.inflight.add_permits(ctx.max_inflight - w.max_inflight);
                } else if ctx.max_inflight < w.max_inflight {
                    w.inflight.forget_permits(w.max_inflight - ctx.max_inflight);
                }
                w.max_inflight = ctx.max_inflight;
                let _ = w.ctx.send(ctx);
                continue;
            }
            let sub = self
                .shared
                .channel
                .subscribe(&ctx.key)
                .map_err(|e| DispatchError {
                    trigger: ctx.key.clone(),
                    message: e.to_string(),
                })?;
            let inflight = Arc::new(Semaphore::new(ctx.max_inflight));
            let (ctx_tx, ctx_rx) = watch::channel(ctx.clone());
            let stop = self.shared.shutdown.child_token();
            let task = tokio::spawn(run_worker(
                self.shared.clone(),
                sub,
                ctx_rx,
                inflight.clone(),
                stop.clone(),
            ));
            workers.insert(
                ctx.key.clone(),
                Worker {
                    broker: ctx.broker.clone(),
                    ctx: ctx_tx,
                    _stop_on_drop: stop.clone().drop_guard(),
                    stop,
                    inflight,
                    max_inflight: ctx.max_inflight,
                    task,
                },
            );
        }
        Ok(())
    }

    /// Stops pulling, waits up to `grace` for in-flight deliveries, and hands back the rest (they stay
    /// queued and are redelivered after restart). Returns the number of deliveries still running at the
    /// deadline.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        self.shared.shutdown.cancel();
        let workers: Vec<Worker> = self.workers.lock().drain().map(|(_, w)| w).collect();
        for w in &workers {
            w.stop.cancel();
        }
        let deadline = tokio::time::Instant::now() + grace;
        let mut unfinished = 0;
        for w in workers {
            let _ = tokio::time::timeout_at(deadline, w.task).await;
            let max = u32::try_from(w.max_inflight).unwrap_or(u32::MAX);
            match tokio::time::timeout_at(deadline, w.inflight.acquire_many(max)).await {
                Ok(_) => {}
                Err(_) => unfinished += w.max_inflight - w.inflight.available_permits(),
            }
        }
        unfinished
    }
}

/// The `kind` object `key` of `objects`, or why not: it does not exist.
fn defined<'a, T>(
    objects: &'a std::collections::BTreeMap<ObjectKey, Arc<T>>,
    kind: &str,
    key: &ObjectKey,
) -> Result<&'a T, String> {
    objects
        .get(key)
        .map(|o| &**o)
        .ok_or_else(|| format!("{kind} {key} does not exist"))
}

/// Why a trigger to a sink of a component this build does not have (`system`, Cargo feature `feature`)
/// is refused.
#[cfg(not(all(feature = "kafka", feature = "nats")))]
fn not_compiled(kind: &str, key: &impl std::fmt::Display, system: &str, feature: &str) -> String {
    format!("{kind} {key}: this build has no {system} support (Cargo feature `{feature}`)")
}

/// Entries waiting behind a busy partition key, per trigger (ordered delivery).
#[derive(Default)]
struct KeyQueues {
    /// Key → entries waiting for the key's in-flight delivery to finish. A key is present while it has a
    /// delivery in flight.
    /// Entries waiting in `map` (not counting the in-flight ones) are counted in the worker's [`Waiting`].
    map: Mutex<HashMap<String, std::collections::VecDeque<Delivery>>>,
}

/// How many entries may wait without a permit — for a retry, or behind busy keys — per in-flight permit
/// before the worker stops pulling.
pub(crate) const WAITING_PER_PERMIT: usize = 10;

fn partition_key(delivery: &Delivery) -> Option<String> {
    delivery
        .event
        .extension("partitionkey")
        .map(|v| v.to_canonical().into_owned())
}

async fn run_worker(
    shared: Arc<Shared>,
    mut sub: Box<dyn Subscription>,
    ctx: watch::Receiver<Arc<TriggerCtx>>,
    inflight: Arc<Semaphore>,
    stop: CancellationToken,
) {
    let keys = Arc::new(KeyQueues::default());
    let waiting = Arc::new(Waiting::default());
    loop {
        // Stop pulling while too many entries wait without a permit (for a retry or behind busy keys).
        loop {
            let limit = ctx.borrow().max_inflight * WAITING_PER_PERMIT;
            let progressed = waiting.progressed.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            if waiting.len() < limit {
                break;
            }
            tokio::select! {
                _ = progressed => {}
                _ = stop.cancelled() => return,
            }
        }
        // The entry first, then a permit: a worker never sits on a permit while the queue is empty, so a
        // delivery back from its backoff can always get one.
        let delivery = tokio::select! {
            d = sub.next() => match d {
                Some(d) => d,
                None => break,
            },
            _ = stop.cancelled() => break,
        };
        let ctx = ctx.borrow().clone();
        let key = match ctx.order {
            DeliveryOrder::Ordered => partition_key(&delivery),
            DeliveryOrder::Unordered => None,
        };
        if let Some(key) = &key {
            let mut map = keys.map.lock();
            if let Some(queue) = map.get_mut(key) {
                // The key is busy: wait behind it without holding a permit, so other keys go on.
                queue.push_back(delivery);
                waiting.add();
                continue;
            }
        }
        // (Only this loop marks keys busy, so a free key stays free while the permit is awaited.)
        let permit = tokio::select! {
            p = inflight.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            // The entry is dropped unfinished: redelivered after restart (or its trigger is gone).
            _ = stop.cancelled() => break,
        };
        let mut slot = Slot::new(permit, inflight.clone(), waiting.clone());
        let shared = shared.clone();
        let Some(key) = key else {
            tokio::spawn(async move {
                deliver::deliver(&shared, &ctx, delivery, &mut slot).await;
            });
            continue;
        };
        keys.map
            .lock()
            .insert(key.clone(), std::collections::VecDeque::new());
        let keys = keys.clone();
        let waiting = waiting.clone();
        tokio::spawn(async move {
            // One task per busy key delivers its entries one after the other, in queue order. While an
            // entry waits for a retry the key stays busy (its later entries keep waiting behind it) but
            // the permit is free for other keys.
            let mut next = Some(delivery);
            while let Some(delivery) = next.take() {
                deliver::deliver(&shared, &ctx, delivery, &mut slot).await;
                if shared.is_shutting_down() {
                    // The rest stays queued (not acked) and is redelivered after restart.
                    keys.map.lock().remove(&key);
                    break;
                }
                let mut map = keys.map.lock();
                next = map.get_mut(&key).and_then(|q| q.pop_front());
                if next.is_some() {
                    waiting.done();
                } else {
                    map.remove(&key);
                }
            }
            drop(slot);
        });
    }
}
