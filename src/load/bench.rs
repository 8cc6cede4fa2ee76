//! The load tool: `switchyard bench`.
//!
//! It drives N binary-mode events of S bytes over C connections at an ingress, with a counting sink, and
//! reports accepted/s, delivered/s and latency percentiles (202 latency at the ingress; end-to-end from the
//! POST to the sink's arrival). In the same run it measures two baselines on the same machine:
//! - **bare-202**: an HTTP server that answers 202 without storing anything;
//! - **relay**: an HTTP server that forwards each POST to the same sink and answers after it.
//!
//! The broker and the baselines each run as a child process (this binary, `serve` or the hidden
//! `baseline` subcommand) so that their RSS can be read from `/proc`; the load generator and the sink
//! run in this process.

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `switchyard bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Events per throughput run.
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// Event data size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Concurrent connections of the load generator.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Rate (events/s) of the fixed-rate latency run.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Duration of the fixed-rate latency run, in seconds.
    #[arg(long, default_value_t = 5)]
    pub rate_seconds: u64,
    /// Trigger count of the fan-out run (each event matches 1% of them).
    #[arg(long, default_value_t = 1000)]
    pub triggers: usize,
    /// Skip the baselines (only measure Switchyard).
    #[arg(long)]
    pub no_baselines: bool,
    /// Only the baselines and the 1-trigger throughput run (skips the fixed-rate, many-trigger and
    /// fan-out runs): a quicker loop when working on the per-event cost.
    #[arg(long)]
    pub quick: bool,
    /// Kafka mode: bootstrap servers of a Kafka(-protocol) cluster. Measures a Kafka-backed broker
    /// (1 trigger: throughput and the fixed-rate latency run) next to plain rdkafka produce + consume
    /// of the same records, instead of the embedded runs.
    #[arg(long)]
    pub kafka: Option<String>,
    /// NATS mode: URL of a nats-server with JetStream. Measures a JetStream-backed broker (1 trigger)
    /// next to plain async-nats JetStream publish + consume of the same messages.
    #[arg(long)]
    pub nats: Option<String>,
}

/// Hidden `switchyard baseline` options: the servers the bench compares against.
#[derive(Debug, Clone, clap::Args)]
pub struct BaselineArgs {
    /// `ok` answers 202 to everything; `relay` forwards to `--target` first; `kafka` runs the plain
    /// rdkafka produce + consume baseline once against `--target` (bootstrap servers) and prints its result
    /// as one JSON line.
    #[arg(long)]
    pub kind: String,
    /// Relay target URL, or the Kafka bootstrap servers.
    #[arg(long)]
    pub target: Option<String>,
    /// `kafka`: the topic (created when missing).
    #[arg(long, default_value = "switchyard-baseline")]
    pub topic: String,
    /// `kafka`: records to produce and consume.
    #[arg(long, default_value_t = 1000)]
    pub events: usize,
    /// `kafka`: record size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// `kafka`: records in flight.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
}

// === the sink ===

struct Sink {
    base: Instant,
    /// Arrival time (ns since `base`, +1 so that 0 means "not yet") per event index.
    arrivals: Vec<AtomicU64>,
    count: AtomicU64,
}

async fn sink_handler(State(sink): State<Arc<Sink>>, headers: HeaderMap) -> StatusCode {
    let now = sink.base.elapsed().as_nanos() as u64 + 1;
    if let Some(i) = headers
        .get("ce-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if let Some(slot) = sink.arrivals.get(i) {
            let _ = slot.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
    sink.count.fetch_add(1, Ordering::Relaxed);
    StatusCode::ACCEPTED
}

// === baselines (child process) ===

/// `baseline --kind kafka`: the plain rdkafka produce + consume baseline, printed as JSON.
#[cfg(feature = "kafka")]
async fn kafka_baseline(args: BaselineArgs) -> anyhow::Result<()> {
    let bootstrap = args
        .target
        .context("--target (bootstrap servers) is required for the kafka baseline")?;
    let payload = vec![b'x'; args.size];
    let r = super::bench_kafka::baseline(
        &bootstrap,
        &args.topic,
        args.events,
        &payload,
        args.connections,
    )
    .await?;
    println!(
        "{}",
        serde_json::json!({
            "consumed": r.consumed,
            "events_per_sec": r.events_per_sec,
            "p50_ms": r.p50_ms,
            "p99_ms": r.p99_ms,
        })
    );
    Ok(())
}

/// `baseline --kind kafka` in a build without the Kafka component.
#[cfg(not(feature = "kafka"))]
async fn kafka_baseline(_args: BaselineArgs) -> anyhow::Result<()> {
    bail!("the kafka baseline needs the Cargo feature `kafka`, which this build does not have")
}

/// Runs a baseline server on 127.0.0.1:0 and prints its address.
pub async fn baseline(args: BaselineArgs) -> anyhow::Result<()> {
    if args.kind == "kafka" {
        return kafka_baseline(args).await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("baseline ready ingress={}", listener.local_addr()?);
    let app = match args.kind.as_str() {
        "ok" => Router::new().fallback(|_body: Bytes| async { StatusCode::ACCEPTED }),
        "relay" => {
            let target: http::Uri = args
                .target
                .context("--target is required for a relay")?
                .parse()?;
            let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(256)
                .build_http();
            let state: Arc<Relay> = Arc::new((client, target));
            Router::new()
                .fallback(
                    |State(s): State<Arc<Relay>>, headers: HeaderMap, body: Bytes| async move {
                        let mut req = http::Request::post(s.1.clone())
                            .body(Full::new(body))
                            .expect("valid request");
                        *req.headers_mut() = headers;
                        match s.0.request(req).await {
                            Ok(resp) => {
                                let _ = resp.into_body().collect().await;
                                StatusCode::ACCEPTED
                            }
                            Err(_) => StatusCode::BAD_GATEWAY,
                        }
                    },
                )
                .with_state(state)
        }
        other => bail!("unknown baseline kind {other:?}"),
    };
    axum::serve(listener, app).await?;
    Ok(())
}

type Relay = (
    Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    http::Uri,
);

struct ChildServer {
    child: Child,
    addr: SocketAddr,
}

impl ChildServer {
    fn spawn(args: &[&str]) -> anyhow::Result<ChildServer> {
        let (child, stdout) =
            super::spawn_self(|c| c.args(args), "warn", "spawning a child server")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = super::reported_addr(&line, "ingress=")
            .with_context(|| format!("child did not report its address: {line:?}"))?;
        Ok(ChildServer { child, addr })
    }

    /// CPU time (user + system, all threads) the process has used so far, in seconds.
    fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace().skip(11);
        let utime: f64 = fields.next()?.parse().ok()?;
        let stime: f64 = fields.next()?.parse().ok()?;
        // Clock ticks: USER_HZ is 100 on every Linux platform this runs on.
        Some((utime + stime) / 100.0)
    }

    /// Peak resident set size (VmHWM) in MiB.
    fn peak_rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kb / 1024.0)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// === load generation ===

#[derive(Debug, Default, Clone)]
struct RunResult {
    accepted_per_s: f64,
    delivered_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    e2e_p50_ms: f64,
    e2e_p99_ms: f64,
    errors: usize,
    /// CPU time of the server process per event sent (µs), over the run until the last delivery.
    cpu_us_per_event: f64,
}

/// The `p` percentile (0..=1) of sorted nanosecond samples, in milliseconds.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1e6
}

/// One keep-alive HTTP/1.1 connection (no Nagle) to `addr`.
pub(crate) async fn connect(
    addr: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(send)
}

/// What one run sends: `count` events to `path`, numbered from `id_offset`, their types taken in turn
/// from `types`; optionally paced at `rate` events/s in total; send times recorded in `sends`.
#[derive(Clone, Copy)]
struct Load<'a> {
    path: &'a str,
    args: &'a BenchArgs,
    count: usize,
    id_offset: usize,
    types: &'a [String],
    rate: Option<u64>,
    sink: &'a Arc<Sink>,
    sends: &'a Arc<Vec<AtomicU64>>,
}

/// Sends the `load` over `connections` connections.
async fn drive(addr: SocketAddr, load: Load<'_>) -> anyhow::Result<(Duration, Vec<u64>, usize)> {
    let Load {
        path,
        args,
        count,
        id_offset,
        types,
        rate,
        sink,
        sends,
    } = load;
    let body = Bytes::from(vec![b'x'; args.size]);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let conns = if rate.is_some() {
        args.connections.min(16)
    } else {
        args.connections
    };
    for _ in 0..conns {
        let mut send = connect(addr).await?;
        let next = next.clone();
        let body = body.clone();
        let path = path.to_owned();
        let types = types.to_vec();
        let sink = sink.clone();
        let sends = sends.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(count / conns + 1);
            let mut errors = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= count {
                    break;
                }
                if let Some(r) = rate {
                    let due = started + Duration::from_nanos(i as u64 * 1_000_000_000 / r);
                    tokio::time::sleep_until(due.into()).await;
                }
                let id = (i + id_offset).to_string();
                let req = http::Request::post(path.as_str())
                    .header("host", "bench")
                    .header("ce-specversion", "1.0")
                    .header("ce-id", &id)
                    .header("ce-source", "/bench")
                    .header("ce-type", &types[i % types.len()])
                    .header("content-type", "application/octet-stream")
                    .body(Full::new(body.clone()))
                    .expect("valid request");
                let t0 = Instant::now();
                if let Some(slot) = sends.get(i + id_offset) {
                    slot.store(sink.base.elapsed().as_nanos() as u64 + 1, Ordering::Relaxed);
                }
                match send.send_request(req).await {
                    Ok(resp) => {
                        let ok = resp.status() == StatusCode::ACCEPTED;
                        let _ = resp.into_body().collect().await;
                        if ok {
                            lat.push(t0.elapsed().as_nanos() as u64);
                        } else {
                            errors += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        match connect(addr).await {
                            Ok(s) => send = s,
                            Err(_) => break,
                        }
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::with_capacity(count);
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await?;
        all.extend(lat);
        errors += e;
    }
    Ok((started.elapsed(), all, errors))
}

/// One measured run: ingress numbers, then waits for `expect_deliveries` at the sink.
async fn run_once(
    server: &ChildServer,
    load: Load<'_>,
    expect_deliveries: u64,
) -> anyhow::Result<RunResult> {
    let Load {
        count,
        id_offset,
        sink,
        sends,
        ..
    } = load;
    let addr = server.addr;
    let cpu_before = server.cpu_seconds();
    let before = sink.count.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let (elapsed, mut lat, errors) = drive(addr, load).await?;
    let mut delivered_at = None;
    if expect_deliveries > 0 {
        let deadline = Instant::now() + Duration::from_secs(120);
        while sink.count.load(Ordering::Relaxed) - before < expect_deliveries {
            if Instant::now() > deadline {
                bail!(
                    "only {} of {expect_deliveries} deliveries arrived within 120 s",
                    sink.count.load(Ordering::Relaxed) - before
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        delivered_at = Some(t0.elapsed());
    }
    let cpu_us_per_event = match (cpu_before, server.cpu_seconds()) {
        (Some(b), Some(a)) if count > 0 => (a - b) * 1e6 / count as f64,
        _ => f64::NAN,
    };
    lat.sort_unstable();
    let mut e2e: Vec<u64> = (id_offset..id_offset + count)
        .filter_map(|i| {
            let s = sends[i].load(Ordering::Relaxed);
            let a = sink.arrivals[i].load(Ordering::Relaxed);
            (s > 0 && a >= s).then(|| a - s)
        })
        .collect();
    e2e.sort_unstable();
    Ok(RunResult {
        accepted_per_s: lat.len() as f64 / elapsed.as_secs_f64(),
        delivered_per_s: delivered_at
            .map(|d| expect_deliveries as f64 / d.as_secs_f64())
            .unwrap_or(f64::NAN),
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        e2e_p50_ms: percentile(&e2e, 0.50),
        e2e_p99_ms: percentile(&e2e, 0.99),
        errors,
        cpu_us_per_event,
    })
}

fn broker_config(
    dir: &Path,
    sink: SocketAddr,
    triggers: usize,
    types: usize,
) -> anyhow::Result<std::path::PathBuf> {
    let mut yaml = String::from(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: bench\n",
    );
    for i in 0..triggers {
        let filter = if triggers == 1 {
            String::new()
        } else {
            format!(
                "  filter:\n    attributes:\n      type: bench.type{}\n",
                i % types
            )
        };
        yaml.push_str(&format!(
            "---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t{i}\nspec:\n  broker: bench\n{filter}  subscriber:\n    uri: http://{sink}/t{i}\n"
        ));
    }
    let path = dir.join(format!("bench-{triggers}.yaml"));
    std::fs::write(&path, yaml)?;
    Ok(path)
}

fn spawn_broker(dir: &Path, config: &Path, name: &str) -> anyhow::Result<ChildServer> {
    let data = dir.join(name);
    ChildServer::spawn(&[
        "serve",
        "--config",
        config.to_str().context("utf-8 path")?,
        "--data-dir",
        data.to_str().context("utf-8 path")?,
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--max-backlog",
        "100000000",
    ])
}

/// Shared state of one `bench` invocation: the sink, the per-event timestamps, the next free event index,
/// and the table rows measured so far.
struct Runs {
    args: BenchArgs,
    sink: Arc<Sink>,
    sends: Arc<Vec<AtomicU64>>,
    offset: usize,
    rows: Vec<(String, RunResult, Option<f64>)>,
}

impl Runs {
    /// Measures one run against `server`, records it as a row named `label` and returns the result.
    #[allow(clippy::too_many_arguments)]
    async fn measure(
        &mut self,
        label: String,
        server: &ChildServer,
        path: &str,
        count: usize,
        types: &[String],
        rate: Option<u64>,
        expect_deliveries: u64,
    ) -> anyhow::Result<RunResult> {
        eprintln!("bench: {label} ...");
        let load = Load {
            path,
            args: &self.args,
            count,
            id_offset: self.offset,
            types,
            rate,
            sink: &self.sink,
            sends: &self.sends,
        };
        let r = run_once(server, load, expect_deliveries).await?;
        self.offset += count;
        self.rows.push((label, r.clone(), server.peak_rss_mib()));
        Ok(r)
    }
}

/// Runs the whole benchmark and prints Markdown tables.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let total_ids = args.events * 5 + (args.rate * args.rate_seconds) as usize + 16;
    let sink = Arc::new(Sink {
        base: Instant::now(),
        arrivals: (0..total_ids).map(|_| AtomicU64::new(0)).collect(),
        count: AtomicU64::new(0),
    });
    let sends: Arc<Vec<AtomicU64>> = Arc::new((0..total_ids).map(|_| AtomicU64::new(0)).collect());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink_addr = listener.local_addr()?;
    let app = Router::new()
        .fallback(sink_handler)
        .with_state(sink.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let dir = tempfile_dir()?;
    let one_type = vec!["bench.type0".to_owned()];
    let n = args.events;
    let path = "/default/bench";
    let mut runs = Runs {
        args: args.clone(),
        sink,
        sends,
        offset: 0,
        rows: Vec::new(),
    };

    if let Some(url) = args.nats.clone() {
        let r = run_nats(&mut runs, &dir, sink_addr, &url).await;
        let _ = std::fs::remove_dir_all(&dir);
        return r;
    }
    if let Some(bootstrap) = args.kafka.clone() {
        let r = run_kafka(&mut runs, &dir, sink_addr, &bootstrap).await;
        let _ = std::fs::remove_dir_all(&dir);
        return r;
    }

    let (bare, relay) = if args.no_baselines {
        (None, None)
    } else {
        let s = ChildServer::spawn(&["baseline", "--kind", "ok"])?;
        let bare = runs
            .measure("bare-202 baseline".into(), &s, "/", n, &one_type, None, 0)
            .await?;
        drop(s);
        let target = format!("http://{sink_addr}/relay");
        let s = ChildServer::spawn(&["baseline", "--kind", "relay", "--target", &target])?;
        let relay = runs
            .measure(
                "relay baseline".into(),
                &s,
                "/",
                n,
                &one_type,
                None,
                n as u64,
            )
            .await?;
        drop(s);
        (Some(bare), Some(relay))
    };

    let broker = spawn_broker(&dir, &broker_config(&dir, sink_addr, 1, 1)?, "data-1")?;
    let sy = runs
        .measure(
            "switchyard, 1 trigger".into(),
            &broker,
            path,
            n,
            &one_type,
            None,
            n as u64,
        )
        .await?;
    let (fixed, many) = if args.quick {
        drop(broker);
        (None, None)
    } else {
        let rate_n = (args.rate * args.rate_seconds) as usize;
        let fixed = runs
            .measure(
                format!("switchyard, 1 trigger, {} ev/s", args.rate),
                &broker,
                path,
                rate_n,
                &one_type,
                Some(args.rate),
                rate_n as u64,
            )
            .await?;
        drop(broker);

        // Many triggers, each on its own event type; the traffic uses 1% of the types, so 1% of the
        // triggers match and each event is delivered once, as in the 1-trigger run: what grows is the
        // filter work.
        let cfg_many = broker_config(&dir, sink_addr, args.triggers, args.triggers)?;
        let broker = spawn_broker(&dir, &cfg_many, "data-many")?;
        let active = (args.triggers / 100).max(1);
        let many_types: Vec<String> = (0..active)
            .map(|i| format!("bench.type{}", i * 100))
            .collect();
        let many = runs
            .measure(
                format!("switchyard, {} triggers, {active} matching", args.triggers),
                &broker,
                path,
                n,
                &many_types,
                None,
                n as u64,
            )
            .await?;
        drop(broker);

        // Fan-out: 10 triggers per type, so every event matches 1% of the triggers (10 deliveries
        // each).
        let types = (args.triggers / 10).max(1);
        let matching = (args.triggers / types) as u64;
        let cfg_fan = broker_config(&dir, sink_addr, args.triggers, types)?;
        let broker = spawn_broker(&dir, &cfg_fan, "data-fan")?;
        let fan_types: Vec<String> = (0..types).map(|i| format!("bench.type{i}")).collect();
        let fan_n = n / 4;
        runs.measure(
            format!(
                "switchyard, {} triggers, each event matches {matching} (fan-out)",
                args.triggers
            ),
            &broker,
            path,
            fan_n,
            &fan_types,
            None,
            fan_n as u64 * matching,
        )
        .await?;
        drop(broker);
        (Some(fixed), Some(many))
    };
    let _ = std::fs::remove_dir_all(&dir);
    print_results(
        &runs.rows,
        bare.as_ref(),
        relay.as_ref(),
        &sy,
        fixed.as_ref(),
        many.as_ref(),
        &args,
    );
    Ok(())
}

/// One row of the results table.
fn print_row(name: &str, r: &RunResult, rss: Option<f64>) {
    println!(
        "| {name} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {:.0} |",
        r.accepted_per_s,
        r.delivered_per_s,
        r.p50_ms,
        r.p99_ms,
        r.e2e_p50_ms,
        r.e2e_p99_ms,
        r.errors,
        rss.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into()),
        r.cpu_us_per_event
    );
}

/// Prints the Markdown tables; `fixed` and `many` are `None` in a `--quick` run.
fn print_results(
    rows: &[(String, RunResult, Option<f64>)],
    bare: Option<&RunResult>,
    relay: Option<&RunResult>,
    sy: &RunResult,
    fixed: Option<&RunResult>,
    many: Option<&RunResult>,
    args: &BenchArgs,
) {
    println!("\n| run | accepted/s | delivered/s | 202 p50 ms | 202 p99 ms | e2e p50 ms | e2e p99 ms | errors | peak RSS MiB | server CPU µs/event |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, r, rss) in rows {
        print_row(name, r, *rss);
    }
    println!("\n| ratio | value | target |");
    println!("|---|---|---|");
    if let (Some(bare), Some(relay)) = (bare, relay) {
        println!(
            "| durable ingress accepted/s ÷ bare-202 | {:.2} | ≥ 0.5 |",
            sy.accepted_per_s / bare.accepted_per_s
        );
        println!(
            "| end-to-end delivered/s ÷ relay | {:.2} | ≥ 0.5 |",
            sy.delivered_per_s / relay.delivered_per_s
        );
    }
    if let Some(fixed) = fixed {
        println!(
            "| p99 end-to-end latency at {} ev/s | {:.2} ms | ≤ 10 ms |",
            args.rate, fixed.e2e_p99_ms
        );
    }
    if let Some(many) = many {
        println!(
            "| {} triggers (1% matching) delivered events/s ÷ 1 trigger | {:.2} | ≥ 0.8 |",
            args.triggers,
            many.delivered_per_s / sy.delivered_per_s
        );
    }
}

/// Kafka mode of `bench` in a build without the Kafka component.
#[cfg(not(feature = "kafka"))]
async fn run_kafka(_: &mut Runs, _: &Path, _: SocketAddr, _: &str) -> anyhow::Result<()> {
    bail!("bench --kafka needs the Cargo feature `kafka`, which this build does not have")
}

/// Kafka mode of `bench`: plain rdkafka baseline, then a Kafka-backed broker with one trigger.
#[cfg(feature = "kafka")]
async fn run_kafka(
    runs: &mut Runs,
    dir: &Path,
    sink: SocketAddr,
    bootstrap: &str,
) -> anyhow::Result<()> {
    let args = runs.args.clone();
    let n = args.events;
    let run_id = std::process::id();
    eprintln!("bench: plain rdkafka produce + consume baseline ...");
    let payload = vec![b'x'; args.size];
    let base = super::bench_kafka::baseline(
        bootstrap,
        &format!("switchyard-bench-baseline-{run_id}"),
        n,
        &payload,
        args.connections,
    )
    .await
    .context("kafka baseline")?;

    let data = format!(
        "  bootstrap.servers: \"{bootstrap}\"\n  default.topic.partitions: \"4\"\n  default.topic.replication.factor: \"1\"\n"
    );
    measure_external(runs, dir, sink, &base, &KAFKA_BENCH, &data).await
}

/// NATS mode of `bench` in a build without the NATS component.
#[cfg(not(feature = "nats"))]
async fn run_nats(_: &mut Runs, _: &Path, _: SocketAddr, _: &str) -> anyhow::Result<()> {
    bail!("bench --nats needs the Cargo feature `nats`, which this build does not have")
}

/// NATS mode of `bench`: plain async-nats JetStream baseline, then a JetStream-backed broker with one trigger.
#[cfg(feature = "nats")]
async fn run_nats(runs: &mut Runs, dir: &Path, sink: SocketAddr, url: &str) -> anyhow::Result<()> {
    let args = runs.args.clone();
    eprintln!("bench: plain async-nats JetStream publish + consume baseline ...");
    let payload = vec![b'x'; args.size];
    let base = super::bench_nats::baseline(url, args.events, &payload, args.connections)
        .await
        .map_err(|e| anyhow::anyhow!("nats baseline: {e}"))?;
    let data = format!("  servers: \"{url}\"\n");
    measure_external(runs, dir, sink, &base, &NATS_BENCH, &data).await
}

/// How `bench` configures a broker on an external log.
#[cfg(any(feature = "kafka", feature = "nats"))]
struct ExternalLog {
    /// `eventing.knative.dev/broker.class`.
    class: &'static str,
    /// Name of the broker's ConfigMap.
    config_map: &'static str,
    /// The plain-client baseline, as the table names it.
    baseline: &'static str,
    /// The broker, as the table names it.
    label: &'static str,
}

/// A Kafka-backed broker in `bench --kafka`.
#[cfg(feature = "kafka")]
const KAFKA_BENCH: ExternalLog = ExternalLog {
    class: "Kafka",
    config_map: "bench-kafka",
    baseline: "plain rdkafka produce (acks=all, idempotent) + consume",
    label: "Kafka-backed broker",
};

/// A JetStream-backed broker in `bench --nats`.
#[cfg(feature = "nats")]
const NATS_BENCH: ExternalLog = ExternalLog {
    class: "NatsJetStream",
    config_map: "bench-nats",
    baseline: "plain async-nats JetStream publish (PubAck) + consume",
    label: "JetStream-backed broker",
};

/// Runs a broker of `log`'s class (its ConfigMap with `data`, YAML lines; broker `default/bench-<pid>`,
/// one trigger to `sink`) through the throughput and fixed-rate runs and prints them next to the
/// plain-client `base`line.
#[cfg(any(feature = "kafka", feature = "nats"))]
async fn measure_external(
    runs: &mut Runs,
    dir: &Path,
    sink: SocketAddr,
    base: &super::BaselineResult,
    log: &ExternalLog,
    data: &str,
) -> anyhow::Result<()> {
    let ExternalLog {
        class,
        config_map,
        baseline: base_label,
        label,
    } = log;
    let broker = format!("bench-{}", std::process::id());
    let yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {config_map}\ndata:\n{data}---\napiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: {broker}\n  annotations:\n    eventing.knative.dev/broker.class: {class}\nspec:\n  config:\n    apiVersion: v1\n    kind: ConfigMap\n    name: {config_map}\n---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t0\nspec:\n  broker: {broker}\n  subscriber:\n    uri: http://{sink}/t0\n"
    );
    let args = runs.args.clone();
    let n = args.events;
    let config = dir.join("bench-external.yaml");
    std::fs::write(&config, yaml)?;
    let server = spawn_broker(dir, &config, "data-kafka")?;
    let path = format!("/default/{broker}");
    let one_type = vec!["bench.type0".to_owned()];
    let sy = runs
        .measure(
            format!("switchyard, {label}, 1 trigger"),
            &server,
            &path,
            n,
            &one_type,
            None,
            n as u64,
        )
        .await?;
    let rate_n = (args.rate * args.rate_seconds) as usize;
    let fixed = runs
        .measure(
            format!("switchyard, {label}, {} ev/s", args.rate),
            &server,
            &path,
            rate_n,
            &one_type,
            Some(args.rate),
            rate_n as u64,
        )
        .await?;
    drop(server);

    println!("\n| run | accepted/s | delivered/s | 202 p50 ms | 202 p99 ms | e2e p50 ms | e2e p99 ms | errors | peak RSS MiB | server CPU µs/event |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {base_label} | {:.0} | - | - | - | {:.2} | {:.2} | {} | - | - |",
        base.events_per_sec,
        base.p50_ms,
        base.p99_ms,
        n.saturating_sub(base.consumed)
    );
    for (name, r, rss) in &runs.rows {
        print_row(name, r, *rss);
    }
    println!("\n| ratio | value |");
    println!("|---|---|");
    println!(
        "| {label} accepted/s ÷ plain client/s | {:.2} |",
        sy.accepted_per_s / base.events_per_sec
    );
    println!(
        "| {label} delivered/s ÷ plain client/s | {:.2} |",
        sy.delivered_per_s / base.events_per_sec
    );
    println!(
        "| e2e p50 (HTTP in → HTTP out) − plain client p50 | {:.2} ms |",
        sy.e2e_p50_ms - base.p50_ms
    );
    println!(
        "| e2e p99 at {} ev/s | {:.2} ms |",
        args.rate, fixed.e2e_p99_ms
    );
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("switchyard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
