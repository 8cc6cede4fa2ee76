//! # switchyard-dispatcher
//!
//! Consumes each trigger's queue from the channel and delivers to its subscriber:
//!
//! - one worker task per trigger (`run_worker`) pulls entries while it holds an in-flight permit
//!   (`max_inflight`, default 100), so a slow subscriber only ever occupies its own trigger's permits;
//! - each entry is delivered by its own task (`deliver::deliver`): attempts, backoff from the trigger's
//!   [`RetryPolicy`], replies re-enqueued into the broker, dead-letter sink, and parking in the local
//!   dead-letter store when everything else failed — an accepted event is never dropped;
//! - shutdown stops pulling, lets in-flight attempts finish within the grace period and hands back
//!   (does not ack) whatever is still waiting for a retry.

#![warn(missing_docs)]

pub mod client;
mod deliver;

use client::HttpClient;
use http::{HeaderValue, Uri};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use switchyard_broker::channel::{Channel, Subscription};
use switchyard_broker::config::{BrokerKey, Topology, TriggerKey};
use switchyard_broker::delivery::{Format, RetryPolicy};
use switchyard_broker::metrics::{Metrics, TriggerMetrics};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// Dispatcher settings.
#[derive(Debug, Clone)]
pub struct DispatcherOptions {
    /// Max bytes read from a subscriber's response (a reply event).
    pub max_response_bytes: usize,
    /// Idle keep-alive connections kept per subscriber host.
    pub max_idle_per_host: usize,
    /// Extra trusted CA certificates for `https` destinations (besides the Mozilla root set).
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl Default for DispatcherOptions {
    fn default() -> Self {
        DispatcherOptions {
            max_response_bytes: 1024 * 1024,
            max_idle_per_host: 256,
            extra_roots: Vec::new(),
        }
    }
}

/// Everything a delivery needs about its trigger, rebuilt on config change.
#[derive(Debug)]
pub(crate) struct TriggerCtx {
    pub(crate) key: TriggerKey,
    pub(crate) label: String,
    pub(crate) broker: BrokerKey,
    pub(crate) subscriber: Uri,
    pub(crate) subscriber_str: String,
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
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// Sleeps for `d`; returns `false` early if shutdown starts.
    pub(crate) async fn sleep_unless_shutdown(&self, d: Duration) -> bool {
        let mut rx = self.shutdown.clone();
        if *rx.borrow() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = rx.wait_for(|s| *s) => false,
        }
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

struct Worker {
    broker: BrokerKey,
    ctx: watch::Sender<Arc<TriggerCtx>>,
    stop: watch::Sender<bool>,
    inflight: Arc<Semaphore>,
    max_inflight: usize,
    task: JoinHandle<()>,
}

/// The dispatcher: one worker per trigger.
pub struct Dispatcher {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    shutdown_tx: watch::Sender<bool>,
    workers: Mutex<HashMap<TriggerKey, Worker>>,
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
        let (shutdown_tx, shutdown) = watch::channel(false);
        Ok(Dispatcher {
            shared: Arc::new(Shared {
                channel,
                client,
                shutdown,
            }),
            metrics,
            shutdown_tx,
            workers: Mutex::new(HashMap::new()),
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
        let subscriber_str = match &spec.subscriber {
            switchyard_broker::config::Destination::Url(u) => u.clone(),
            other => return Err(err(format!("subscriber {other} is not supported yet"))),
        };
        let subscriber: Uri = subscriber_str
            .parse()
            .map_err(|e| err(format!("subscriber uri {subscriber_str:?}: {e}")))?;
        let delivery = spec.effective_delivery(broker);
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
            subscriber,
            subscriber_str,
            dead_letter_sink,
            policy: RetryPolicy::from_spec(delivery),
            format: delivery.and_then(|d| d.format).unwrap_or_default(),
            namespace_header: HeaderValue::from_str(&key.namespace)
                .map_err(|e| err(format!("namespace: {e}")))?,
            metrics: self.metrics.trigger(&label),
            max_inflight: spec.max_inflight.max(1),
            label,
        }))
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
                let _ = w.stop.send(true);
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
                    let _ = w.stop.send(true);
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
            let (stop_tx, stop_rx) = watch::channel(false);
            let task = tokio::spawn(run_worker(
                self.shared.clone(),
                sub,
                ctx_rx,
                inflight.clone(),
                stop_rx,
            ));
            workers.insert(
                ctx.key.clone(),
                Worker {
                    broker: ctx.broker.clone(),
                    ctx: ctx_tx,
                    stop: stop_tx,
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
        let _ = self.shutdown_tx.send(true);
        let workers: Vec<Worker> = self.workers.lock().drain().map(|(_, w)| w).collect();
        for w in &workers {
            let _ = w.stop.send(true);
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

async fn run_worker(
    shared: Arc<Shared>,
    mut sub: Box<dyn Subscription>,
    ctx: watch::Receiver<Arc<TriggerCtx>>,
    inflight: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let permit = tokio::select! {
            p = inflight.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let delivery = tokio::select! {
            d = sub.next() => match d {
                Some(d) => d,
                None => break,
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let ctx = ctx.borrow().clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            deliver::deliver(&shared, &ctx, delivery).await;
            drop(permit);
        });
    }
}
