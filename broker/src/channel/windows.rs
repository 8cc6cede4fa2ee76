//! Per-trigger windows shared by the log-backed channels (Kafka, JetStream): a bounded in-memory queue per
//! trigger, overflowing into the trigger's durable queue in the embedded store when full, and the
//! subscription that reads memory first, then the store (which keeps queue order).

use crate::channel::store::StoreChannel;
use crate::channel::{BoxFuture, Channel as _, ChannelError, Delivery, Subscription};
use crate::config::{Backend, BrokerKey, Topology, TriggerConfig, TriggerKey};
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A trigger of a broker on an external log (Kafka, JetStream): its bounded in-memory window.
pub(crate) struct TriggerQueue {
    pub(crate) key: TriggerKey,
    pub(crate) broker: BrokerKey,
    tx: Mutex<Option<mpsc::Sender<Delivery>>>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Delivery>>>,
    /// Entries handed to the queue and not yet acked or parked.
    pub(crate) in_memory: AtomicU64,
}

impl TriggerQueue {
    pub(crate) fn new(key: TriggerKey, broker: BrokerKey, window: usize) -> TriggerQueue {
        let (tx, rx) = mpsc::channel(window.max(1));
        TriggerQueue {
            key,
            broker,
            tx: Mutex::new(Some(tx)),
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
            in_memory: AtomicU64::new(0),
        }
    }

    pub(crate) fn close(&self) {
        self.tx.lock().take();
    }
}

/// The routing table of one broker with its triggers' queues (same indices as `table.triggers()`).
pub(crate) struct Routes {
    pub(crate) topology: Arc<Topology>,
    pub(crate) queues: Vec<Option<Arc<TriggerQueue>>>,
}

/// The routing table of `broker` with the queues of its triggers.
pub(crate) fn routes_for(
    topology: &Arc<Topology>,
    broker: &BrokerKey,
    queues: &HashMap<TriggerKey, Arc<TriggerQueue>>,
) -> Routes {
    let queues = topology
        .routes
        .get(broker)
        .map(|table| {
            table
                .triggers()
                .iter()
                .map(|t: &Arc<TriggerConfig>| queues.get(&t.key).cloned())
                .collect()
        })
        .unwrap_or_default();
    Routes {
        topology: topology.clone(),
        queues,
    }
}

/// A trigger's subscription: its in-memory window first, then its overflow/redrive queue in the store.
pub(crate) struct WindowSubscription {
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Delivery>>>,
    store: Box<dyn Subscription>,
}

impl WindowSubscription {
    pub(crate) fn new(queue: &TriggerQueue, store: Box<dyn Subscription>) -> WindowSubscription {
        WindowSubscription {
            rx: queue.rx.clone(),
            store,
        }
    }
}

impl Subscription for WindowSubscription {
    fn next(&mut self) -> BoxFuture<'_, Option<Delivery>> {
        Box::pin(async move {
            let mut rx = self.rx.lock().await;
            // In-memory entries are older than any overflow entry (overflow starts when memory is full and
            // continues while the store queue is non-empty), so draining memory first keeps queue order.
            tokio::select! {
                biased;
                d = rx.recv() => d,
                d = self.store.next() => d,
            }
        })
    }
}

/// What [`offer`] did with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offered {
    /// In the trigger's window: finished later by an ack or park.
    InMemory,
    /// Finished for the log: written to the trigger's store queue, or the trigger is gone.
    Finished,
}

/// Hands an entry to a trigger: its window, or (window full, or overflow already under way, so that queue
/// order is kept) its durable store queue.
pub(crate) async fn offer(
    store: &StoreChannel,
    broker: &BrokerKey,
    queue: &TriggerQueue,
    delivery: Delivery,
    stop: &CancellationToken,
) -> Offered {
    let rejected = if store.trigger_backlog(&queue.key) > 0 {
        delivery
    } else {
        let tx = queue.tx.lock();
        match tx.as_ref().map(|tx| tx.try_send(delivery)) {
            Some(Ok(())) => {
                queue.in_memory.fetch_add(1, Ordering::Relaxed);
                return Offered::InMemory;
            }
            Some(Err(mpsc::error::TrySendError::Full(d))) => d,
            // The trigger is being removed: nothing to deliver.
            Some(Err(mpsc::error::TrySendError::Closed(_))) | None => return Offered::Finished,
        }
    };
    overflow(broker, store, queue, &rejected, stop).await;
    Offered::Finished
}

/// Writes an entry into the trigger's durable store queue, retrying on storage trouble (the consumer waits:
/// the event must not be lost) until it succeeds, the trigger is gone, or shutdown.
async fn overflow(
    broker: &BrokerKey,
    store: &StoreChannel,
    queue: &TriggerQueue,
    delivery: &Delivery,
    stop: &CancellationToken,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match store
            .enqueue(&queue.key, vec![(*delivery.event).clone()])
            .await
        {
            Ok(()) => return,
            Err(ChannelError::UnknownTrigger(_)) => return,
            Err(e) => {
                tracing::warn!(broker = %broker, trigger = %queue.key, "overflow to the store failed: {e}");
                if stop.is_cancelled() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Whether a broker's external log (Kafka cluster, NATS server) answers, as seen by the broker's background
/// probe: ingress refuses appends at once (503) while it is down. Each transition is logged once.
#[derive(Default)]
pub(crate) struct Reachability {
    down: Mutex<Option<String>>,
}

impl Reachability {
    /// The probe failed: the broker is down (logged when it was up).
    pub(crate) fn set_down(&self, broker: &BrokerKey, reason: String) {
        let mut down = self.down.lock();
        if down.is_none() {
            tracing::warn!(broker = %broker, "broker not ready: {reason}; its ingress answers 503 until it is reachable again");
        }
        *down = Some(reason);
    }

    /// The probe succeeded: the broker is up (logged when it was down).
    pub(crate) fn set_up(&self, broker: &BrokerKey) {
        if self.down.lock().take().is_some() {
            tracing::info!(broker = %broker, "broker ready again");
        }
    }

    /// Why the broker is down, if it is.
    pub(crate) fn reason(&self) -> Option<String> {
        self.down.lock().clone()
    }

    /// Whether the broker is down.
    pub(crate) fn is_down(&self) -> bool {
        self.down.lock().is_some()
    }
}

/// Records a setup failure reason, logging it only when it changed (not on every retry).
pub(crate) fn set_setup_failure(broker: &BrokerKey, slot: &Mutex<Option<String>>, reason: String) {
    let mut slot = slot.lock();
    if slot.as_deref() != Some(reason.as_str()) {
        tracing::warn!(broker = %broker, "{reason}; retrying in the background");
    } else {
        tracing::debug!(broker = %broker, "{reason}; retrying in the background");
    }
    *slot = Some(reason);
}

/// The trigger windows of one log-backed backend, replaced as a whole on each topology.
pub(crate) struct TriggerQueues {
    window: usize,
    queues: ArcSwap<HashMap<TriggerKey, Arc<TriggerQueue>>>,
}

impl TriggerQueues {
    pub(crate) fn new(window: usize) -> TriggerQueues {
        TriggerQueues {
            window,
            queues: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    /// Installs the windows of the triggers whose broker's backend is `ours`: a trigger keeps its window
    /// while it stays on the same broker; windows of removed or moved triggers are closed.
    pub(crate) fn rebuild(
        &self,
        topology: &Topology,
        ours: impl Fn(&Backend) -> bool,
    ) -> Arc<HashMap<TriggerKey, Arc<TriggerQueue>>> {
        let old = self.queues.load_full();
        let mut queues = HashMap::new();
        for (key, spec) in &topology.triggers {
            if !topology
                .brokers
                .get(&spec.broker)
                .is_some_and(|b| ours(&b.backend))
            {
                continue;
            }
            let q = match old.get(key) {
                Some(q) if q.broker == spec.broker => q.clone(),
                _ => Arc::new(TriggerQueue::new(
                    key.clone(),
                    spec.broker.clone(),
                    self.window,
                )),
            };
            queues.insert(key.clone(), q);
        }
        for (key, q) in old.iter() {
            if queues.get(key).is_none_or(|n| !Arc::ptr_eq(n, q)) {
                q.close();
            }
        }
        let queues = Arc::new(queues);
        self.queues.store(queues.clone());
        queues
    }

    pub(crate) fn get(&self, trigger: &TriggerKey) -> Option<Arc<TriggerQueue>> {
        self.queues.load().get(trigger).cloned()
    }

    /// One entry of `trigger` left its window (acked or parked); returns the trigger's broker.
    pub(crate) fn release(&self, trigger: &TriggerKey) -> Option<BrokerKey> {
        let queue = self.get(trigger)?;
        let _ = queue
            .in_memory
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
        Some(queue.broker.clone())
    }

    /// In-memory entries of the broker's triggers (overflow is counted by the store).
    pub(crate) fn backlog(&self, broker: &BrokerKey) -> u64 {
        self.queues
            .load()
            .values()
            .filter(|q| &q.broker == broker)
            .map(|q| q.in_memory.load(Ordering::Relaxed))
            .sum()
    }

    /// In-memory entries of one trigger.
    pub(crate) fn trigger_backlog(&self, trigger: &TriggerKey) -> u64 {
        self.get(trigger)
            .map_or(0, |q| q.in_memory.load(Ordering::Relaxed))
    }

    /// Ends every subscription.
    pub(crate) fn close_all(&self) {
        for q in self.queues.load().values() {
            q.close();
        }
    }
}
