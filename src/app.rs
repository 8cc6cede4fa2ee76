//! Starting and stopping a Switchyard broker process.
//!
//! Start order: load and validate config (nothing bound yet) → open the store → install the topology in
//! channel, ingress and dispatcher → bind listeners → serve. Shutdown order: ingress answers 503 and stops
//! accepting connections → the dispatcher stops pulling and finishes in-flight deliveries within the
//! grace period → pending acks are flushed → the store is closed.

use crate::admin::{self, AdminState};
use crate::live::Live;
use crate::reload::{self, ConfigWatch};
use anyhow::Context;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard_broker::channel::composite::CompositeChannel;
use switchyard_broker::channel::store::{StoreChannel, StoreOptions};
use switchyard_broker::channel::Channel;
use switchyard_broker::config::load::{load_paths, ConfigErrors};
use switchyard_broker::config::Topology;
use switchyard_broker::kafka::config::KafkaOptions;
#[cfg(feature = "kafka")]
use switchyard_broker::kafka::source::{KafkaSourceOptions, KafkaSources};
use switchyard_broker::metrics::Metrics;
use switchyard_broker::nats::config::NatsOptions;
#[cfg(feature = "nats")]
use switchyard_broker::nats::source::{NatsSourceOptions, NatsSources};
use switchyard_dispatcher::{Dispatcher, DispatcherOptions};
use switchyard_ingress::{Ingress, Limits};
use switchyard_kube::metrics::ControllerMetrics;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where Brokers, Triggers and sources come from.
    pub source: Source,
    /// Directory of the embedded store; `None` keeps everything in memory (tests only).
    pub data_dir: Option<PathBuf>,
    /// Embedded store settings (cache size, free-space reserve).
    pub store: StoreOptions,
    /// Ingress listen address.
    pub listen: SocketAddr,
    /// Admin listen address.
    pub admin_listen: SocketAddr,
    /// Ingress limits.
    pub limits: Limits,
    /// Extra trusted CA certificates (DER) for `https` subscribers and dead-letter sinks.
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// Deadline of the whole drain from the stop request (sources, open requests, in-flight deliveries);
    /// closing the channel gets at least 2 s more.
    pub shutdown_grace: Duration,
    /// How often config files are checked for changes.
    pub reload_interval: Duration,
    /// Kafka-backed brokers' settings.
    pub kafka: KafkaOptions,
    /// JetStream-backed brokers' settings.
    pub nats: NatsOptions,
}

/// Where a process's Brokers, Triggers and sources come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// YAML files or directories, reloaded when they change.
    Files(Vec<PathBuf>),
    /// The cluster's objects (Kubernetes mode).
    Kubernetes(Box<KubeMode>),
}

/// What a process does in Kubernetes mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Controller and data plane in one process.
    All,
    /// Only the controller (status of Brokers and Triggers); no ingress, no store.
    Controller,
    /// Only the data plane (ingress, store, dispatcher), configured from the cluster.
    DataPlane,
}

/// Kubernetes mode settings.
#[derive(Debug, Clone)]
pub struct KubeMode {
    /// What this process runs.
    pub role: Role,
    /// Installation settings shared by controller and data plane.
    pub settings: switchyard_kube::Settings,
    /// The validating admission webhook (served by controller processes when set).
    pub webhook: Option<switchyard_kube::webhook::WebhookSettings>,
}

/// Binds the webhook's listener (before anything else starts, so a taken port fails the start).
async fn bind_webhook(mode: &KubeMode) -> Result<Option<(TcpListener, SocketAddr)>, StartError> {
    let Some(w) = mode
        .webhook
        .as_ref()
        .filter(|_| mode.role != Role::DataPlane)
    else {
        return Ok(None);
    };
    let listener = TcpListener::bind(w.listen)
        .await
        .with_context(|| format!("binding webhook listener {}", w.listen))?;
    let addr = listener.local_addr().context("webhook address")?;
    Ok(Some((listener, addr)))
}

fn spawn_webhook(
    client: kube::Client,
    mode: &KubeMode,
    metrics: Arc<ControllerMetrics>,
    bound: Option<(TcpListener, SocketAddr)>,
    stop: CancellationToken,
) -> Option<JoinHandle<()>> {
    let (listener, addr) = bound?;
    let mut settings = mode.webhook.clone()?;
    settings.listen = addr;
    let kube_settings = mode.settings.clone();
    Some(tokio::spawn(async move {
        if let Err(e) =
            switchyard_kube::webhook::run(client, kube_settings, metrics, settings, listener, stop)
                .await
        {
            tracing::error!(error = %e, "The validating webhook stopped.");
        }
    }))
}

/// Why the process could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid (exit code 2).
    #[error("invalid configuration:\n{0}")]
    Config(#[from] ConfigErrors),
    /// Anything else (store, sockets) (exit code 1).
    #[error(transparent)]
    Init(#[from] anyhow::Error),
}

/// A running broker.
pub struct RunningApp {
    /// Bound ingress address.
    pub ingress_addr: SocketAddr,
    /// Bound admin address.
    pub admin_addr: SocketAddr,
    /// Bound webhook address (Kubernetes mode with a webhook).
    pub webhook_addr: Option<SocketAddr>,
    /// The stop request: cancelled by [`RunningApp::shutdown`], a handle's holder, or dropping the app.
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
    task: JoinHandle<anyhow::Result<()>>,
}

impl std::fmt::Debug for RunningApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningApp")
            .field("ingress_addr", &self.ingress_addr)
            .field("admin_addr", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

impl RunningApp {
    /// Starts the graceful shutdown and waits for it.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await.context("broker task panicked")?
    }

    /// A handle that triggers shutdown when cancelled.
    pub fn stop_handle(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Waits until the app stops (after a stop request).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("broker task panicked")?
    }
}

/// Serves `router` on `listener` until `stop` is cancelled (then finishes open requests).
fn spawn_server<L>(
    listener: L,
    router: axum::Router,
    stop: CancellationToken,
) -> JoinHandle<std::io::Result<()>>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                stop.cancelled().await;
            })
            .await
    })
}

/// `http://ADDR` of a bound listener as seen from this host (an unspecified address becomes loopback).
#[cfg(any(feature = "kafka", feature = "nats"))]
fn local_base_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Loads config, opens the store, binds the listeners and starts serving.
pub async fn start(opts: ServeOptions) -> Result<RunningApp, StartError> {
    let (topology, files, kube) = match &opts.source {
        Source::Files(configs) => {
            let loaded = load_paths(configs)?;
            for w in &loaded.warnings {
                tracing::warn!("{w}");
            }
            (loaded.topology, loaded.files, None)
        }
        Source::Kubernetes(mode) => {
            if mode.role == Role::Controller {
                return Err(StartError::Init(anyhow::anyhow!(
                    "role controller runs no data plane; use start_controller"
                )));
            }
            let client = switchyard_kube::client()
                .await
                .context("connecting to the Kubernetes API")?;
            let webhook = bind_webhook(mode).await?;
            (
                Topology::default(),
                Vec::new(),
                Some((client, (**mode).clone(), webhook)),
            )
        }
    };
    let store = match &opts.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating data dir {}", dir.display()))?;
            StoreChannel::open(dir, opts.store.clone())
                .with_context(|| format!("opening the store in {}", dir.display()))?
        }
        None => StoreChannel::in_memory(opts.store.clone()).context("in-memory store")?,
    };
    let channel = Arc::new(
        CompositeChannel::new(Arc::new(store))
            .with_kafka(opts.kafka.clone())
            .with_nats(opts.nats.clone()),
    );
    let dyn_channel: Arc<dyn Channel> = channel.clone();
    let metrics = Arc::new(Metrics::new());
    let dispatcher = Dispatcher::new(
        dyn_channel.clone(),
        metrics.clone(),
        DispatcherOptions {
            max_response_bytes: opts.limits.max_event_bytes,
            extra_roots: opts.extra_roots.clone(),
            #[cfg(feature = "kafka")]
            kafka_producers: channel.kafka_producers(),
            ..DispatcherOptions::default()
        },
    )
    .context("building the delivery client")?;
    // Bound before the topology is applied, so that KafkaSources know where the ingress is.
    let ingress_listener = TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("binding ingress listener {}", opts.listen))?;
    let admin_listener = TcpListener::bind(opts.admin_listen)
        .await
        .with_context(|| format!("binding admin listener {}", opts.admin_listen))?;
    let ingress_addr = ingress_listener.local_addr().context("ingress address")?;
    let admin_addr = admin_listener.local_addr().context("admin address")?;
    #[cfg(feature = "kafka")]
    let sources = KafkaSources::new(KafkaSourceOptions {
        max_record_bytes: opts.limits.max_event_bytes,
        extra_roots: opts.extra_roots.clone(),
        ..KafkaSourceOptions::default()
    })
    .context("KafkaSource client")?;
    #[cfg(feature = "nats")]
    let nats_sources = NatsSources::new(NatsSourceOptions {
        max_message_bytes: opts.limits.max_event_bytes,
        extra_roots: opts.extra_roots.clone(),
        ..NatsSourceOptions::default()
    })
    .context("NatsSource client")?;
    let live = Arc::new(Live {
        ingress: Ingress::new(dyn_channel, metrics.clone(), opts.limits.clone()),
        dispatcher,
        channel,
        topology: ArcSwap::from_pointee(Topology::default()),
        metrics,
        ready: AtomicBool::new(false),
        #[cfg(feature = "kafka")]
        sources,
        #[cfg(feature = "nats")]
        nats_sources,
        #[cfg(any(feature = "kafka", feature = "nats"))]
        ingress_base: local_base_url(ingress_addr),
        controller_metrics: kube
            .as_ref()
            .filter(|(_, mode, _)| mode.role == Role::All)
            .map(|_| Arc::new(ControllerMetrics::default())),
    });
    live.apply(topology).await?;
    let stop = CancellationToken::new();
    let webhook_addr = kube
        .as_ref()
        .and_then(|(_, _, w)| w.as_ref().map(|(_, addr)| *addr));
    let kube = match kube {
        // Ready once the cluster's configuration is applied (readiness gates the ingress Endpoints).
        Some((client, mode, webhook)) => Some(KubeTasks::start(
            client,
            mode,
            webhook,
            live.clone(),
            stop.child_token(),
        )),
        None => {
            live.ready.store(true, Ordering::SeqCst);
            None
        }
    };
    let configs = match &opts.source {
        Source::Files(configs) => configs.clone(),
        Source::Kubernetes(_) => Vec::new(),
    };
    let watch = ConfigWatch::new(configs, files);
    let task = tokio::spawn(run(
        live,
        ingress_listener,
        admin_listener,
        watch,
        kube,
        opts,
        stop.clone(),
    ));
    Ok(RunningApp {
        ingress_addr,
        admin_addr,
        webhook_addr,
        _stop_on_drop: stop.clone().drop_guard(),
        stop,
        task,
    })
}

async fn run(
    live: Arc<Live>,
    ingress_listener: TcpListener,
    admin_listener: TcpListener,
    watch: ConfigWatch,
    kube: Option<KubeTasks>,
    opts: ServeOptions,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    // The servers and the reloader stop in their own phase, after the sources (not a child of `stop`).
    let server_stop = CancellationToken::new();
    let _server_stop_on_drop = server_stop.clone().drop_guard();
    let ingress_router = switchyard_ingress::router(live.ingress.clone());
    let ingress_listener = switchyard_ingress::listener::LimitedListener::new(
        ingress_listener,
        opts.limits.max_connections,
    )
    .with_linger(switchyard_ingress::listener::Linger::for_max_request(
        opts.limits.max_batch_bytes.max(opts.limits.max_event_bytes),
    ));
    let ingress_server = spawn_server(ingress_listener, ingress_router, server_stop.clone());
    let admin_router = admin::router(AdminState { live: live.clone() });
    let admin_server = spawn_server(admin_listener, admin_router, server_stop.clone());
    let reloader = match &kube {
        None => tokio::spawn(reload::run(
            live.clone(),
            watch,
            opts.reload_interval,
            server_stop.clone(),
        )),
        Some(_) => tokio::spawn(async {}),
    };

    stop.cancelled().await;
    // One absolute deadline for the whole drain, from the stop request: each phase gets what the earlier
    // ones left.
    let drain = Drain::new(opts.shutdown_grace);
    if let Some(kube) = kube {
        // The controller first (it gives up its Lease so another replica takes over at once), then the
        // cluster watch: nothing changes the topology while the data plane drains.
        kube.shutdown().await;
    }
    tracing::info!("Shutting down: sources stop, then ingress stops accepting events.");
    live.shutdown_sources(drain.sources()).await;
    live.ready.store(false, Ordering::SeqCst);
    live.ingress.start_draining();
    server_stop.cancel();
    let _ = tokio::time::timeout(drain.remaining(), ingress_server).await;
    let _ = reloader.await;
    let unfinished = live.dispatcher.shutdown(drain.remaining()).await;
    if unfinished > 0 {
        tracing::warn!(
            unfinished,
            "Shutdown grace period over; unfinished deliveries stay queued and are redelivered at restart."
        );
    }
    if let Err(e) = live.channel.flush().await {
        // A failed store cannot commit the last acks: those deliveries are made again after a restart.
        tracing::error!(error = %e, "Flushing acknowledgements failed.");
    }
    live.channel
        .close(drain.closing())
        .await
        .context("closing the channel")?;
    let _ = tokio::time::timeout(Duration::from_secs(1), admin_server).await;
    tracing::info!("Shutdown complete.");
    Ok(())
}

/// The drain's absolute deadline (`--shutdown-grace` from the stop request), shared by its phases.
#[derive(Debug, Clone, Copy)]
struct Drain {
    until: std::time::Instant,
}

impl Drain {
    /// Sources may take at most this long of the grace to stop.
    const SOURCES_MAX: Duration = Duration::from_secs(10);
    /// Closing the channel (committing the last acks, stopping the log consumers) always gets this long,
    /// even after deliveries used the whole grace: what is closed in it is not lost otherwise.
    const CLOSING_MIN: Duration = Duration::from_secs(2);

    fn new(grace: Duration) -> Drain {
        Drain {
            until: std::time::Instant::now() + grace,
        }
    }

    /// Time left until the deadline (zero once past).
    fn remaining(&self) -> Duration {
        self.until
            .saturating_duration_since(std::time::Instant::now())
    }

    /// The deadline for stopping the sources.
    fn sources(&self) -> std::time::Instant {
        std::time::Instant::now() + self.remaining().min(Self::SOURCES_MAX)
    }

    /// The time the channel's close may take.
    fn closing(&self) -> Duration {
        self.remaining().max(Self::CLOSING_MIN)
    }
}

/// The Kubernetes-mode tasks of a data-plane process: the cluster watch feeding topologies to [`Live`],
/// and (role `all`) the controller.
struct KubeTasks {
    /// A child of the app's stop request (cancelled with it, or when the tasks are dropped).
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
    controller: Option<JoinHandle<()>>,
    webhook: Option<JoinHandle<()>>,
    watch: JoinHandle<()>,
    apply: JoinHandle<()>,
}

impl KubeTasks {
    fn start(
        client: kube::Client,
        mode: KubeMode,
        webhook: Option<(TcpListener, SocketAddr)>,
        live: Arc<Live>,
        stop: CancellationToken,
    ) -> KubeTasks {
        let metrics = live.controller_metrics.clone().unwrap_or_default();
        let webhook = spawn_webhook(
            client.clone(),
            &mode,
            metrics.clone(),
            webhook,
            stop.clone(),
        );
        let controller = (mode.role == Role::All).then(|| {
            tokio::spawn(switchyard_kube::controller::run(
                client.clone(),
                mode.settings.clone(),
                metrics,
                stop.clone(),
            ))
        });
        // Capacity 1: a newer topology waits while one is being applied (bounded, never piles up).
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let watch = tokio::spawn(switchyard_kube::dataplane::run(
            client,
            mode.settings,
            tx,
            stop.clone(),
        ));
        let apply = tokio::spawn(async move {
            while let Some(topology) = rx.recv().await {
                match live.apply(topology).await {
                    Ok(()) => {
                        live.metrics.reload("success");
                        if !live.ready.swap(true, Ordering::SeqCst) {
                            tracing::info!("Cluster configuration applied; ready.");
                        }
                    }
                    Err(e) => {
                        live.metrics.reload("failed");
                        tracing::error!(error = %format!("{e:#}"), "Cluster configuration could not be applied.");
                    }
                }
            }
        });
        KubeTasks {
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
            controller,
            webhook,
            watch,
            apply,
        }
    }

    async fn shutdown(self) {
        self.stop.cancel();
        let deadline = Duration::from_secs(10);
        if let Some(c) = self.controller {
            let _ = tokio::time::timeout(deadline, c).await;
        }
        if let Some(w) = self.webhook {
            let _ = tokio::time::timeout(deadline, w).await;
        }
        let _ = tokio::time::timeout(deadline, self.watch).await;
        let _ = tokio::time::timeout(deadline, self.apply).await;
    }
}

/// A running controller-only process (`--kubernetes --role controller`).
pub struct RunningController {
    /// Bound admin address (`/healthz`, `/readyz`).
    pub admin_addr: SocketAddr,
    /// Bound webhook address, when the webhook is enabled.
    pub webhook_addr: Option<SocketAddr>,
    /// The stop request: cancelled by a handle's holder or by dropping the controller.
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningController {
    /// A handle that triggers shutdown when cancelled.
    pub fn stop_handle(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Waits until the controller stops (after a stop request); the Lease is released on the way out.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("controller task panicked")?
    }
}

/// Starts the controller alone: connects to the cluster, binds the admin listener, runs the controllers
/// while this process holds the leader Lease.
pub async fn start_controller(opts: ServeOptions) -> Result<RunningController, StartError> {
    let Source::Kubernetes(mode) = opts.source else {
        return Err(anyhow::anyhow!("start_controller needs Kubernetes mode").into());
    };
    let client = switchyard_kube::client()
        .await
        .context("connecting to the Kubernetes API")?;
    let admin_listener = TcpListener::bind(opts.admin_listen)
        .await
        .with_context(|| format!("binding admin listener {}", opts.admin_listen))?;
    let admin_addr = admin_listener.local_addr().context("admin address")?;
    let webhook = bind_webhook(&mode).await?;
    let webhook_addr = webhook.as_ref().map(|(_, a)| *a);
    let stop = CancellationToken::new();
    let metrics = Arc::new(ControllerMetrics::default());
    let webhook = spawn_webhook(
        client.clone(),
        &mode,
        metrics.clone(),
        webhook,
        stop.child_token(),
    );
    let controller = tokio::spawn(switchyard_kube::controller::run(
        client,
        mode.settings,
        metrics.clone(),
        stop.child_token(),
    ));
    let router = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        // Standby replicas are ready too: they serve the webhook, and a PodDisruptionBudget counts them.
        .route("/readyz", axum::routing::get(|| async { "ready" }))
        .route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = metrics.clone();
                async move { crate::admin::openmetrics(metrics.encode()) }
            }),
        );
    let admin = spawn_server(admin_listener, router, stop.child_token());
    let requested = stop.clone();
    let task = tokio::spawn(async move {
        requested.cancelled().await;
        tracing::info!("Shutting down: the controller stops and releases its Lease.");
        let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
        if let Some(w) = webhook {
            let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), admin).await;
        tracing::info!("Shutdown complete.");
        Ok(())
    });
    Ok(RunningController {
        admin_addr,
        webhook_addr,
        _stop_on_drop: stop.clone().drop_guard(),
        stop,
        task,
    })
}
