//! The `switchyard` binary: parses the command line, installs logging, and hands over to the app.

mod load;

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use switchyard::app::{self, ServeOptions, StartError};
use switchyard::util::{self, parse_duration};
use switchyard_broker::channel::store::StoreOptions;
use switchyard_broker::kafka::config::KafkaOptions;
use switchyard_broker::nats::config::NatsOptions;
use switchyard_ingress::Limits;

/// Switchyard: a CloudEvents broker with Knative Broker/Trigger routing.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker: HTTP ingress, durable embedded store, trigger dispatcher and admin endpoints.
    Serve(Box<ServeArgs>),
    /// Routing dry-run: for every trigger of a broker, MATCH or NO MATCH for an event, and why.
    Explain(switchyard::explain::ExplainArgs),
    /// Load tool: drives the ingress with N events and measures against in-run baselines.
    Bench(load::bench::BenchArgs),
    /// Reliability tool: backlog, kill/restart cycles, slow and down subscribers against `serve` children.
    Soak(Box<load::soak::SoakArgs>),
    /// Baseline servers used by `bench` (not for users).
    #[command(hide = true)]
    Baseline(load::bench::BaselineArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Knative manifests (Broker, Trigger, ConfigMap): a YAML file (multi-document) or a directory of
    /// them. Repeatable. Changes are applied without a restart.
    #[arg(
        long = "config",
        env = "SWITCHYARD_CONFIG",
        value_delimiter = ',',
        required_unless_present = "kubernetes"
    )]
    configs: Vec<PathBuf>,
    /// Kubernetes mode: Brokers and Triggers (eventing.knative.dev/v1) come from the cluster (in-cluster
    /// service account or KUBECONFIG) instead of `--config`; see `--role`.
    #[arg(long, env = "SWITCHYARD_KUBERNETES", conflicts_with = "configs")]
    kubernetes: bool,
    /// Kubernetes mode: `all` runs controller and data plane in one process; `controller` only writes
    /// Broker/Trigger status (leader-elected); `data-plane` only serves events.
    #[arg(
        long,
        env = "SWITCHYARD_ROLE",
        value_enum,
        default_value = "all",
        requires = "kubernetes"
    )]
    role: app::Role,
    /// Kubernetes mode: namespace of Switchyard's ingress Service and leader Lease.
    #[arg(
        long,
        env = "SWITCHYARD_SYSTEM_NAMESPACE",
        default_value = "switchyard-system"
    )]
    system_namespace: String,
    /// Kubernetes mode: the Service in front of the data plane's ingress (Broker addresses point at it).
    #[arg(
        long,
        env = "SWITCHYARD_INGRESS_SERVICE",
        default_value = "switchyard-ingress"
    )]
    ingress_service: String,
    /// Kubernetes mode: the cluster's DNS domain.
    #[arg(
        long,
        env = "SWITCHYARD_CLUSTER_DOMAIN",
        default_value = "cluster.local"
    )]
    cluster_domain: String,
    /// Kubernetes mode: the `eventing.knative.dev/broker.class` this installation reconciles.
    #[arg(long, env = "SWITCHYARD_BROKER_CLASS", default_value = "Switchyard")]
    broker_class: String,
    /// Kubernetes mode: the class assumed for a Broker without the class annotation (set it to
    /// `MTChannelBasedBroker` to leave such Brokers to an installed Knative).
    #[arg(
        long,
        env = "SWITCHYARD_DEFAULT_BROKER_CLASS",
        default_value = "Switchyard"
    )]
    default_broker_class: String,
    /// Kubernetes mode: only this namespace's Brokers and Triggers (default: all namespaces).
    #[arg(long, env = "SWITCHYARD_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Kubernetes mode: name of the controller's leader-election Lease (in the system namespace).
    #[arg(
        long,
        env = "SWITCHYARD_LEASE_NAME",
        default_value = "switchyard-controller"
    )]
    lease_name: String,
    /// Kubernetes mode: how long a silent leader keeps the Lease before another replica takes over.
    #[arg(long, env = "SWITCHYARD_LEASE_DURATION", default_value = "15s", value_parser = parse_lease_duration)]
    lease_duration: Duration,
    /// Kubernetes mode: serve the validating admission webhook (HTTPS) on this address (controller
    /// processes). Its certificate is issued by Switchyard and its CA written into the
    /// ValidatingWebhookConfiguration `--webhook-configuration`.
    #[arg(long, env = "SWITCHYARD_WEBHOOK_LISTEN")]
    webhook_listen: Option<SocketAddr>,
    /// Kubernetes mode: names the webhook certificate is valid for (default
    /// `switchyard-webhook.<system namespace>.svc`).
    #[arg(long, env = "SWITCHYARD_WEBHOOK_HOST", value_delimiter = ',')]
    webhook_host: Vec<String>,
    /// Kubernetes mode: Secret (system namespace) holding the webhook's CA and certificate.
    #[arg(
        long,
        env = "SWITCHYARD_WEBHOOK_SECRET",
        default_value = "switchyard-webhook-certs"
    )]
    webhook_secret: String,
    /// Kubernetes mode: the ValidatingWebhookConfiguration whose caBundle Switchyard keeps current.
    #[arg(
        long,
        env = "SWITCHYARD_WEBHOOK_CONFIGURATION",
        default_value = "switchyard-validation"
    )]
    webhook_configuration: String,
    /// Directory of the embedded event store.
    #[arg(long, env = "SWITCHYARD_DATA_DIR", default_value = "./switchyard-data")]
    data_dir: PathBuf,
    /// Memory for the embedded store's page cache (e.g. 32MiB, 256MiB). The backlog lives on disk; a
    /// bigger cache only speeds up reading it back.
    #[arg(long, env = "SWITCHYARD_STORE_CACHE_BYTES", default_value = "32MiB", value_parser = util::parse_bytes)]
    store_cache_bytes: u64,
    /// Free space to keep on the store's volume: below it, ingress answers 507 so that deliveries, acks
    /// and parking still have room (default: 64MiB or 5% of the volume, whichever is smaller; 0 = off).
    #[arg(long, env = "SWITCHYARD_MIN_FREE_BYTES", value_parser = util::parse_bytes)]
    min_free_bytes: Option<u64>,
    /// Record redb's allocator state with every durable commit (quick repair), so that a restart after a
    /// crash does not walk the whole store file: 0.25 s instead of 2.7 s to ready with a 1,000,000-event
    /// backlog, for ~10-35% of the ingress rate (BENCHMARKS.md). `false` trades the other way.
    #[arg(long, env = "SWITCHYARD_STORE_QUICK_REPAIR", default_value_t = true, action = clap::ArgAction::Set)]
    store_quick_repair: bool,
    /// Address of the CloudEvents ingress (POST /{namespace}/{broker}).
    #[arg(long, env = "SWITCHYARD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Address of the admin endpoints (/healthz, /readyz, /metrics, /api/v1/...).
    #[arg(
        long,
        env = "SWITCHYARD_ADMIN_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    admin_listen: SocketAddr,
    /// Largest accepted event request in bytes (413 above). At least 65536.
    #[arg(long, env = "SWITCHYARD_MAX_EVENT_BYTES", default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(65536..=(256 * 1024 * 1024)))]
    max_event_bytes: u64,
    /// Largest accepted batch request in bytes.
    #[arg(long, env = "SWITCHYARD_MAX_BATCH_BYTES", default_value_t = 8 * 1024 * 1024)]
    max_batch_bytes: u64,
    /// Undelivered events per broker before ingress answers 429 (annotation
    /// `switchyard.dev/max-backlog` overrides it per broker).
    #[arg(long, env = "SWITCHYARD_MAX_BACKLOG", default_value_t = 1_000_000)]
    max_backlog: u64,
    /// Max open ingress connections; more wait in the kernel's accept queue.
    #[arg(long, env = "SWITCHYARD_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,
    /// PEM file of extra CA certificates trusted for `https` subscribers and dead-letter sinks (the
    /// Mozilla root set is always trusted).
    #[arg(long, env = "SWITCHYARD_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Deadline of the whole drain on SIGTERM/SIGINT: sources stop, open requests end, in-flight deliveries
    /// finish (e.g. 30s, 500ms); closing the store gets at least 2 s more.
    #[arg(long, env = "SWITCHYARD_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// How often the config files are checked for changes.
    #[arg(long, env = "SWITCHYARD_RELOAD_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    reload_interval: Duration,
    /// Kafka-backed brokers: in-memory queue entries per trigger before the rest overflows into the
    /// trigger's durable queue in the data dir (a slow subscriber never stops the broker's consumer).
    #[arg(long, env = "SWITCHYARD_KAFKA_TRIGGER_WINDOW", default_value_t = 1024, value_parser = parse_window)]
    kafka_trigger_window: usize,
    /// Kafka-backed brokers: consumer-group session timeout, i.e. how soon another process takes over
    /// the partitions of a process that died.
    #[arg(long, env = "SWITCHYARD_KAFKA_SESSION_TIMEOUT", default_value = "6s", value_parser = parse_duration)]
    kafka_session_timeout: Duration,
    /// JetStream-backed brokers: how soon the messages a dead process held are redelivered to the others
    /// (the consumer's `ack_wait`; live processes mark pending messages in progress).
    #[arg(long, env = "SWITCHYARD_NATS_ACK_WAIT", default_value = "10s", value_parser = parse_ack_wait)]
    nats_ack_wait: Duration,
}

/// A duration of at least `min` (a smaller value is an error, not silently raised).
fn duration_at_least(s: &str, min: Duration, why: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < min {
        return Err(format!("{s:?} is too short: at least {min:?} ({why})"));
    }
    Ok(d)
}

fn parse_lease_duration(s: &str) -> Result<Duration, String> {
    duration_at_least(
        s,
        Duration::from_secs(3),
        "the leader renews the Lease every third of it",
    )
}

fn parse_ack_wait(s: &str) -> Result<Duration, String> {
    duration_at_least(
        s,
        Duration::from_secs(1),
        "pending messages are marked in progress every third of it",
    )
}

fn parse_window(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("0 is too small: a trigger window holds at least 1 entry".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{s:?} is not a whole number of entries: {e}")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(*args)),
        Command::Explain(args) => match switchyard::explain::run(&args) {
            Ok(out) => {
                print!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Baseline(args) => match runtime.block_on(load::bench::baseline(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Bench(args) => match runtime.block_on(load::bench::run(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Soak(args) => match runtime.block_on(load::soak::run(*args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let extra_roots = match &args.ca_file {
        None => Vec::new(),
        Some(path) => match switchyard::util::read_pem_certificates(path) {
            Ok(certs) => certs,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let kubernetes = args.kubernetes.then(|| app::KubeMode {
        role: args.role,
        settings: switchyard_kube::Settings {
            system_namespace: args.system_namespace.clone(),
            ingress_service: args.ingress_service.clone(),
            cluster_domain: args.cluster_domain.clone(),
            broker_class: args.broker_class.clone(),
            default_broker_class: args.default_broker_class.clone(),
            watch_namespace: args.watch_namespace.clone(),
            lease_name: args.lease_name.clone(),
            lease_duration: args.lease_duration,
            identity: identity(),
            ..switchyard_kube::Settings::default()
        },
        webhook: args
            .webhook_listen
            .map(|listen| switchyard_kube::webhook::WebhookSettings {
                listen,
                hosts: if args.webhook_host.is_empty() {
                    vec![format!("switchyard-webhook.{}.svc", args.system_namespace)]
                } else {
                    args.webhook_host.clone()
                },
                secret: args.webhook_secret.clone(),
                configuration: args.webhook_configuration.clone(),
            }),
    });
    let source = match kubernetes {
        Some(mode) => app::Source::Kubernetes(Box::new(mode)),
        None => app::Source::Files(args.configs),
    };
    let opts = ServeOptions {
        source,
        extra_roots,
        data_dir: Some(args.data_dir),
        store: StoreOptions {
            cache_bytes: usize::try_from(args.store_cache_bytes).unwrap_or(usize::MAX),
            min_free_bytes: args.min_free_bytes,
            quick_repair: args.store_quick_repair,
            ..StoreOptions::default()
        },
        listen: args.listen,
        admin_listen: args.admin_listen,
        limits: Limits {
            max_event_bytes: args.max_event_bytes as usize,
            max_batch_bytes: args.max_batch_bytes as usize,
            max_backlog: args.max_backlog,
            max_connections: args.max_connections,
        },
        shutdown_grace: args.shutdown_grace,
        reload_interval: args.reload_interval,
        kafka: KafkaOptions {
            trigger_window: args.kafka_trigger_window,
            session_timeout: args.kafka_session_timeout,
            ..KafkaOptions::default()
        },
        nats: NatsOptions {
            ack_wait: args.nats_ack_wait,
            ..NatsOptions::default()
        },
    };
    if matches!(&opts.source, app::Source::Kubernetes(k) if k.role == app::Role::Controller) {
        return serve_controller(opts).await;
    }
    let running = match app::start(opts).await {
        Ok(r) => r,
        Err(e @ StartError::Config(_)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Err(StartError::Init(e)) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    };
    // Machine-readable line for scripts and tests; logs go to stderr.
    let webhook = webhook_field(running.webhook_addr);
    println!(
        "switchyard ready ingress={} admin={}{webhook}",
        running.ingress_addr, running.admin_addr
    );
    tracing::info!(ingress = %running.ingress_addr, admin = %running.admin_addr, "Switchyard is serving.");
    run_until_signal(running.stop_handle(), running.wait()).await
}

/// Sends stop on SIGTERM/SIGINT, then waits for the orderly shutdown and maps its outcome to the exit code.
async fn run_until_signal(
    stop: tokio_util::sync::CancellationToken,
    finished: impl std::future::Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    tokio::spawn(async move {
        wait_for_signal().await;
        stop.cancel();
    });
    match finished.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error during shutdown: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// This process's name in the leader Lease: `POD_NAME` (set from the downward API), else host and pid.
fn identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "switchyard".into());
            format!("{host}-{}", std::process::id())
        })
}

/// ` webhook=ADDR` for the ready line, when the webhook serves.
fn webhook_field(addr: Option<SocketAddr>) -> String {
    addr.map(|w| format!(" webhook={w}")).unwrap_or_default()
}

async fn serve_controller(opts: ServeOptions) -> ExitCode {
    let running = match app::start_controller(opts).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    };
    let webhook = webhook_field(running.webhook_addr);
    println!(
        "switchyard ready admin={} role=controller{webhook}",
        running.admin_addr
    );
    tracing::info!(admin = %running.admin_addr, "Switchyard controller is running.");
    run_until_signal(running.stop_handle(), running.wait()).await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
