//! The reliability tool: `switchyard soak` (issue 11, "Reliability under load and faults").
//!
//! Every scenario runs the real `switchyard serve` as a child process (this binary) on a data dir in a
//! temporary directory, with a real HTTP subscriber and the load generator in this process, and prints a
//! small Markdown table: measured values next to their goals. Goals are reported, not enforced; the
//! **invariants** (no acknowledged event lost, 429 reached, every phase within its deadline) are: a
//! violated invariant makes the command exit non-zero.
//!
//! - **backlog**: a subscriber that accepts connections but never answers (trigger annotation
//!   `switchyard.dev/max-inflight: "1"`), N events of S bytes over C connections; ingress rate over the
//!   first vs the last 10%, peak/current RSS, data size; then SIGKILL, restart on the same data dir with
//!   the subscriber answering at once: restart→ready, restart→first delivery, drain rate vs the same
//!   broker's steady-state delivery rate with an empty backlog, peak RSS during the drain.
//! - **kill-cycles**: K SIGKILL/restart cycles under concurrent senders, a subscriber failing a fraction
//!   of requests with 503: every acknowledged event delivered at least once; duplicates, restart→ready.
//! - **slow-subscriber**: triggers A and B on one broker; B's end-to-end latency at a fixed rate with A
//!   healthy, then with A answering after 10 s; R rounds of both phases (A's backlog drains between
//!   rounds), latencies pooled per condition.
//! - **subscriber-down**: connection refused until ingress answers 429 at `--max-backlog`; then the
//!   subscriber comes back: time to drain, nothing lost.
//!
//! Every wait has a deadline, every request a timeout; a timeout is reported as a failure.

use super::bench::{connect, percentile};
use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Router;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use switchyard::util::parse_duration;

/// The scenarios of `switchyard soak`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Every scenario below, in this order.
    All,
    /// Backlog of N behind a hung subscriber, then SIGKILL, restart and drain.
    Backlog,
    /// SIGKILL/restart cycles under load with a partly failing subscriber.
    KillCycles,
    /// One slow trigger must not slow down another trigger of the same broker.
    SlowSubscriber,
    /// Subscriber refusing connections until the backlog limit (429), then back.
    SubscriberDown,
}

/// `switchyard soak` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// Scenarios to run (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    pub scenario: Vec<Scenario>,
    /// backlog: events to accept behind the hung subscriber (the backlog N).
    #[arg(long, default_value_t = 1_000_000)]
    pub backlog: u64,
    /// backlog: trigger counts, one run each (comma-separated). With more than one trigger, each trigger
    /// filters on its own `type` and the events cycle through the types, so the backlog is still N
    /// entries (N/T per trigger); see `--backlog-match-all`.
    #[arg(long, value_delimiter = ',', default_value = "1,10")]
    pub backlog_triggers: Vec<usize>,
    /// backlog: every trigger matches every event instead (N × T queue entries, T deliveries per event).
    #[arg(long)]
    pub backlog_match_all: bool,
    /// backlog: events of the steady-state run with an empty backlog (default: N/10, at least 5,000 and at
    /// most 100,000).
    #[arg(long)]
    pub steady_events: Option<u64>,
    /// Event data size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Keep-alive connections of the unpaced load generator (backlog, subscriber-down).
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// kill-cycles: SIGKILL/restart cycles.
    #[arg(long, default_value_t = 20)]
    pub cycles: usize,
    /// kill-cycles: concurrent senders.
    #[arg(long, default_value_t = 8)]
    pub senders: usize,
    /// kill-cycles: fraction of subscriber requests answered 503.
    #[arg(long, default_value_t = 0.1)]
    pub fail_fraction: f64,
    /// kill-cycles: load time between a broker being ready and its SIGKILL (e.g. 1500ms).
    #[arg(long, default_value = "1500ms", value_parser = parse_duration)]
    pub cycle_load: Duration,
    /// slow-subscriber: fixed rate in events/s of each phase.
    #[arg(long, default_value_t = 500)]
    pub rate: u64,
    /// slow-subscriber: duration of each phase (baseline, then A slow).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub rate_duration: Duration,
    /// slow-subscriber: rounds of (A healthy, A slow) phases; the latencies of each condition are pooled
    /// over the rounds, so drift in the machine's load hits both conditions alike. Between rounds A is
    /// healthy again and its backlog drains before the next baseline starts.
    #[arg(long, default_value_t = 6)]
    pub slow_rounds: u32,
    /// slow-subscriber: how long trigger A's subscriber takes to answer in the second phase.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub slow_delay: Duration,
    /// slow-subscriber: `switchyard.dev/max-inflight` of trigger A.
    #[arg(long, default_value_t = 4)]
    pub slow_inflight: usize,
    /// subscriber-down: the broker's `--max-backlog`.
    #[arg(long, default_value_t = 5_000)]
    pub down_max_backlog: u64,
    /// Deadline of each phase (building a backlog, a drain, ...); passing it is a failure.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub phase_timeout: Duration,
    /// Extra argument for every `switchyard serve` child, after the ones the tool sets
    /// (`--config`, `--data-dir`, `--listen`, `--admin-listen`, `--max-backlog`); repeatable, e.g.
    /// `--serve-arg=--store-cache-bytes=16777216`.
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
    /// Parent directory of the temporary data dirs (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

// === the subscriber ===

/// How the subscriber answers a path.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// 202 at once.
    Ok,
    /// Accepts the request and never answers it successfully (503 once the mode changes or after 1 h).
    Hang,
    /// 202 after this long.
    Delay(Duration),
    /// 503 for this fraction of requests (pseudo-random), 202 otherwise.
    Fail(f64),
}

/// The subscriber: per-id success counts and first-success times (ids are the events' `ce-id` numbers).
struct Sink {
    base: Instant,
    modes: Mutex<(Mode, HashMap<String, Mode>)>,
    changed: tokio::sync::watch::Sender<u64>,
    /// Only successes on this path are counted (others are answered but ignored).
    count_path: Option<String>,
    /// Successful deliveries an id needs to count as delivered (the triggers it matches).
    need: u32,
    /// Successful deliveries per id.
    ok: Vec<AtomicU32>,
    /// When the id reached `need` deliveries (ns since `base` + 1).
    first_ok: Vec<AtomicU64>,
    /// Send time per id (ns since `base` + 1), filled by the load generator when latency is measured.
    sent_at: Vec<AtomicU64>,
    /// Ids that reached `need` deliveries.
    unique: AtomicU64,
    total_ok: AtomicU64,
    requests: AtomicU64,
    /// Earliest counted success (ns since `base` + 1; `u64::MAX` = none yet).
    first_any: AtomicU64,
    /// Ids outside `0..capacity` or without a numeric `ce-id`.
    foreign: AtomicU64,
}

impl Sink {
    fn new(capacity: u64, count_path: Option<&str>, latency: bool, mode: Mode) -> Arc<Sink> {
        let n = capacity as usize;
        Arc::new(Sink {
            base: Instant::now(),
            modes: Mutex::new((mode, HashMap::new())),
            changed: tokio::sync::watch::channel(0).0,
            count_path: count_path.map(str::to_owned),
            need: 1,
            ok: (0..n).map(|_| AtomicU32::new(0)).collect(),
            first_ok: (0..n).map(|_| AtomicU64::new(0)).collect(),
            sent_at: (0..if latency { n } else { 0 })
                .map(|_| AtomicU64::new(0))
                .collect(),
            unique: AtomicU64::new(0),
            total_ok: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            first_any: AtomicU64::new(u64::MAX),
            foreign: AtomicU64::new(0),
        })
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64 + 1
    }

    fn ns_of(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_nanos() as u64 + 1
    }

    fn set_default(&self, mode: Mode) {
        self.modes.lock().0 = mode;
        self.changed.send_modify(|g| *g += 1);
    }

    fn set_path(&self, path: &str, mode: Mode) {
        self.modes.lock().1.insert(path.to_owned(), mode);
        self.changed.send_modify(|g| *g += 1);
    }

    fn mode(&self, path: &str) -> Mode {
        let m = self.modes.lock();
        m.1.get(path).copied().unwrap_or(m.0)
    }

    fn record(&self, path: &str, headers: &HeaderMap) {
        if self.count_path.as_deref().is_some_and(|p| p != path) {
            return;
        }
        let id = headers
            .get("ce-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let Some(i) = id.filter(|i| *i < self.ok.len()) else {
            self.foreign.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let now = self.now_ns();
        self.total_ok.fetch_add(1, Ordering::Relaxed);
        if self.ok[i].fetch_add(1, Ordering::Relaxed) + 1 == self.need {
            self.first_ok[i].store(now, Ordering::Relaxed);
            self.unique.fetch_add(1, Ordering::Relaxed);
        }
        self.first_any.fetch_min(now, Ordering::Relaxed);
    }

    fn delivered(&self, id: u64) -> bool {
        self.ok[id as usize].load(Ordering::Relaxed) >= self.need
    }

    /// Ids of `ids` not delivered yet.
    fn missing(&self, ids: &[u64]) -> usize {
        ids.iter().filter(|&&i| !self.delivered(i)).count()
    }

    /// Latest first-delivery time (ns since base) among `ids`.
    fn last_first_ok(&self, ids: &[u64]) -> u64 {
        ids.iter()
            .map(|&i| self.first_ok[i as usize].load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }
}

/// splitmix64: a cheap, well-spread pseudo-random number from a counter.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

async fn sink_handler(
    State(s): State<Arc<Sink>>,
    uri: Uri,
    headers: HeaderMap,
    _body: Bytes,
) -> StatusCode {
    let n = s.requests.fetch_add(1, Ordering::Relaxed);
    let path = uri.path();
    let mut changed = s.changed.subscribe();
    match s.mode(path) {
        Mode::Ok => {}
        Mode::Hang => {
            let _ = tokio::time::timeout(Duration::from_secs(3600), changed.changed()).await;
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        Mode::Delay(d) => tokio::time::sleep(d).await,
        Mode::Fail(f) => {
            if ((mix(n) >> 11) as f64 / (1u64 << 53) as f64) < f {
                return StatusCode::SERVICE_UNAVAILABLE;
            }
        }
    }
    s.record(path, &headers);
    StatusCode::ACCEPTED
}

/// Serves the sink on `listener` until the returned task is aborted.
fn serve_sink(sink: Arc<Sink>, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
    let app = Router::new().fallback(sink_handler).with_state(sink);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

// === the broker child process ===

/// How a broker child is started.
#[derive(Clone)]
struct BrokerLaunch {
    config: PathBuf,
    data: PathBuf,
    /// Arguments the scenario sets (e.g. `--max-backlog`).
    args: Vec<String>,
    /// The user's `--serve-arg`s.
    serve_args: Vec<String>,
}

impl BrokerLaunch {
    /// Writes the configuration `yaml` into the scenario's work directory `dir` (`soak.yaml`) and
    /// describes a broker serving it, its data in `dir` too, started with the scenario's `extra`
    /// arguments and the user's `--serve-arg`s.
    fn write(
        args: &SoakArgs,
        dir: &Path,
        yaml: String,
        extra: Vec<String>,
    ) -> anyhow::Result<BrokerLaunch> {
        let config = dir.join("soak.yaml");
        std::fs::write(&config, yaml)?;
        Ok(BrokerLaunch {
            config,
            data: dir.join("data"),
            args: extra,
            serve_args: args.serve_args.clone(),
        })
    }
}

/// A `switchyard serve` child; SIGKILLed when dropped.
struct Broker {
    child: Child,
    ingress: SocketAddr,
    admin: SocketAddr,
    /// From spawning the process to `/readyz` answering 200.
    ready_after: Duration,
}

type AdminClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

fn admin_client() -> AdminClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// GET `url`: status and body, within `timeout`.
async fn get(client: &AdminClient, url: &str, timeout: Duration) -> Option<(u16, Bytes)> {
    let uri: http::Uri = url.parse().ok()?;
    let fut = async {
        let resp = client.get(uri).await.ok()?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some((status, body))
    };
    tokio::time::timeout(timeout, fut).await.ok().flatten()
}

impl Broker {
    /// Spawns the broker and waits (deadline `within`) until its `/readyz` answers 200, polling every 2 ms.
    async fn start(spec: &BrokerLaunch, within: Duration) -> anyhow::Result<Broker> {
        let deadline = Instant::now() + within;
        let spawned = Instant::now();
        let (mut child, stdout) = super::spawn_self(
            |c| {
                c.arg("serve")
                    .arg("--config")
                    .arg(&spec.config)
                    .arg("--data-dir")
                    .arg(&spec.data)
                    .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
                    .args(&spec.args)
                    .args(&spec.serve_args)
            },
            "error",
            "spawning switchyard serve",
        )?;
        let reader = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        });
        let line = match tokio::time::timeout(within, reader).await {
            Ok(Ok(Ok(line))) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("switchyard serve did not report its addresses within {within:?}: {other:?}");
            }
        };
        let addr = |key| super::reported_addr(&line, key);
        let (Some(ingress), Some(admin)) = (addr("ingress="), addr("admin=")) else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("switchyard serve exited or printed an unexpected first line: {line:?}");
        };
        let mut broker = Broker {
            child,
            ingress,
            admin,
            ready_after: Duration::ZERO,
        };
        let client = admin_client();
        let url = format!("http://{admin}/readyz");
        loop {
            if let Some((200, _)) = get(&client, &url, Duration::from_secs(1)).await {
                broker.ready_after = spawned.elapsed();
                return Ok(broker);
            }
            if Instant::now() > deadline {
                bail!("/readyz did not answer 200 within {within:?}");
            }
            if let Ok(Some(status)) = broker.child.try_wait() {
                bail!("switchyard serve exited with {status} before it was ready");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `/proc/<pid>/status` field in MiB (`VmHWM:` = peak RSS, `VmRSS:` = current RSS).
    fn mem_mib(&self, field: &str) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with(field))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kb / 1024.0)
    }

    fn peak_rss(&self) -> f64 {
        self.mem_mib("VmHWM:").unwrap_or(f64::NAN)
    }

    fn rss(&self) -> f64 {
        self.mem_mib("VmRSS:").unwrap_or(f64::NAN)
    }

    /// Sum of the trigger backlog gauges from `/metrics`.
    async fn backlog(&self) -> Option<u64> {
        let (_, body) = get(
            &admin_client(),
            &format!("http://{}/metrics", self.admin),
            Duration::from_secs(10),
        )
        .await?;
        let text = String::from_utf8_lossy(&body);
        Some(
            text.lines()
                .filter(|l| l.starts_with("switchyard_trigger_backlog{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64,
        )
    }

    /// SIGKILL, and reap the process.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Total size of the files under `dir`, in MiB.
fn dir_mib(dir: &Path) -> f64 {
    fn walk(p: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(p) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    }
    walk(dir) as f64 / (1024.0 * 1024.0)
}

// === the load generator ===

/// Where the senders send; `None` while the broker is down (kill cycles).
#[derive(Clone, Default)]
struct Target(Arc<RwLock<Option<SocketAddr>>>);

impl Target {
    /// A target that stays `addr`.
    fn at(addr: SocketAddr) -> Target {
        Target(Arc::new(RwLock::new(Some(addr))))
    }
    fn set(&self, addr: Option<SocketAddr>) {
        *self.0.write() = addr;
    }
    fn get(&self) -> Option<SocketAddr> {
        *self.0.read()
    }
}

/// Acknowledged-event count with the times at which given counts were reached.
struct Progress {
    acked: AtomicU64,
    marks: Vec<(u64, OnceLock<Instant>)>,
}

impl Progress {
    fn new(marks: &[u64]) -> Arc<Progress> {
        Arc::new(Progress {
            acked: AtomicU64::new(0),
            marks: marks.iter().map(|&m| (m, OnceLock::new())).collect(),
        })
    }
    fn mark(&self, count: u64) -> Option<Instant> {
        self.marks
            .iter()
            .find(|(m, _)| *m == count)
            .and_then(|(_, t)| t.get().copied())
    }
}

/// One load phase.
struct Load {
    target: Target,
    path: String,
    types: Vec<String>,
    body: Bytes,
    next_id: Arc<AtomicU64>,
    /// First id of this phase (pacing counts from it).
    first_id: u64,
    /// Ids must stay below this (the sink's capacity).
    id_end: u64,
    stop: Arc<AtomicBool>,
    /// Stop once this many events were acknowledged in this phase.
    until_acked: Option<u64>,
    /// Paced at this many events/s from the phase start.
    rate: Option<(Instant, u64)>,
    stop_on_429: bool,
    progress: Arc<Progress>,
    /// Record send times here (latency).
    sink: Arc<Sink>,
    deadline: Instant,
}

impl Load {
    /// A phase sending `soak.type` events of the configured size to `target`, ids from 0 up to
    /// `id_end`, unpaced, until `deadline` (or stopped); send times recorded in `sink`.
    fn new(
        args: &SoakArgs,
        target: Target,
        sink: &Arc<Sink>,
        id_end: u64,
        deadline: Instant,
    ) -> Load {
        Load {
            target,
            path: PATH.into(),
            types: vec!["soak.type".into()],
            body: body(args),
            next_id: Arc::new(AtomicU64::new(0)),
            first_id: 0,
            id_end,
            stop: Arc::new(AtomicBool::new(false)),
            until_acked: None,
            rate: None,
            stop_on_429: false,
            progress: Progress::new(&[]),
            sink: sink.clone(),
            deadline,
        }
    }
}

/// What the senders of a phase saw.
#[derive(Debug, Default)]
struct Sent {
    acked: Vec<u64>,
    /// Transport errors and timeouts (the event's fate is unknown: "in doubt").
    errors: u64,
    /// Answers other than 202, by status.
    statuses: BTreeMap<u16, u64>,
    retry_after: Option<String>,
    ids_exhausted: bool,
    deadline_passed: bool,
}

impl Sent {
    fn merge(&mut self, o: Sent) {
        self.acked.extend(o.acked);
        self.errors += o.errors;
        for (k, v) in o.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        if self.retry_after.is_none() {
            self.retry_after = o.retry_after;
        }
        self.ids_exhausted |= o.ids_exhausted;
        self.deadline_passed |= o.deadline_passed;
    }
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

async fn sender(load: Arc<Load>) -> Sent {
    let mut out = Sent::default();
    let mut conn: Option<(
        SocketAddr,
        hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    )> = None;
    loop {
        if load.stop.load(Ordering::Relaxed) {
            break;
        }
        if Instant::now() > load.deadline {
            out.deadline_passed = true;
            break;
        }
        if load
            .until_acked
            .is_some_and(|n| load.progress.acked.load(Ordering::Relaxed) >= n)
        {
            break;
        }
        let Some(addr) = load.target.get() else {
            conn = None;
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        };
        if conn.as_ref().is_none_or(|(a, _)| *a != addr) {
            match tokio::time::timeout(Duration::from_secs(5), connect(addr)).await {
                Ok(Ok(c)) => conn = Some((addr, c)),
                _ => {
                    conn = None;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            }
        }
        let Some((_, send)) = conn.as_mut() else {
            continue;
        };
        let i = load.next_id.fetch_add(1, Ordering::Relaxed);
        if i >= load.id_end {
            out.ids_exhausted = true;
            break;
        }
        if let Some((start, rate)) = load.rate {
            let due = start + Duration::from_nanos((i - load.first_id) * 1_000_000_000 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let req = http::Request::post(load.path.as_str())
            .header("host", "soak")
            .header("ce-specversion", "1.0")
            .header("ce-id", i.to_string())
            .header("ce-source", "/soak")
            .header("ce-type", &load.types[i as usize % load.types.len()])
            .header("content-type", "application/octet-stream")
            .body(Full::new(load.body.clone()))
            .expect("valid request");
        if let Some(slot) = load.sink.sent_at.get(i as usize) {
            slot.store(load.sink.now_ns(), Ordering::Relaxed);
        }
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let resp = send.send_request(req).await?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            resp.into_body().collect().await?;
            anyhow::Ok((status, retry_after))
        })
        .await;
        match answer {
            Ok(Ok((202, _))) => {
                out.acked.push(i);
                let k = load.progress.acked.fetch_add(1, Ordering::Relaxed) + 1;
                for (m, t) in &load.progress.marks {
                    if *m == k {
                        let _ = t.set(Instant::now());
                    }
                }
            }
            Ok(Ok((status, retry_after))) => {
                *out.statuses.entry(status).or_default() += 1;
                if status == 429 {
                    if out.retry_after.is_none() {
                        out.retry_after = retry_after;
                    }
                    if load.stop_on_429 {
                        load.stop.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            }
            _ => {
                out.errors += 1;
                conn = None;
            }
        }
    }
    out
}

/// Runs `n` senders of `load` to completion (each stops at the phase deadline, plus one request timeout).
async fn run_senders(load: Arc<Load>, n: usize) -> anyhow::Result<Sent> {
    let handles: Vec<_> = (0..n).map(|_| tokio::spawn(sender(load.clone()))).collect();
    collect_senders(handles, load.deadline).await
}

async fn collect_senders(
    handles: Vec<tokio::task::JoinHandle<Sent>>,
    deadline: Instant,
) -> anyhow::Result<Sent> {
    let mut sent = Sent::default();
    let limit = deadline + REQUEST_TIMEOUT + Duration::from_secs(10);
    for h in handles {
        let abort = h.abort_handle();
        match tokio::time::timeout_at(limit.into(), h).await {
            Ok(r) => sent.merge(r?),
            Err(_) => {
                abort.abort();
                bail!("a sender did not finish by its deadline");
            }
        }
    }
    Ok(sent)
}

/// Waits until every id of `ids` was delivered; returns how many are still missing at the deadline.
async fn wait_delivered(sink: &Sink, ids: &[u64], deadline: Instant) -> usize {
    let target = ids.len() as u64;
    loop {
        // Cheap check first (the unique count may include ids not in `ids`), then the exact one.
        if sink.unique.load(Ordering::Relaxed) >= target {
            let missing = sink.missing(ids);
            if missing == 0 {
                return 0;
            }
            if Instant::now() > deadline {
                return missing;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        if Instant::now() > deadline {
            return sink.missing(ids);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Prints a progress line to stderr every 10 s until aborted.
fn progress_printer(
    what: String,
    progress: Arc<Progress>,
    sink: Arc<Sink>,
    pid: Option<u32>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let rss = pid
                .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
                })
                .unwrap_or_else(|| "?".into());
            eprintln!(
                "soak: {what}: {:.0}s acked {} delivered {} broker RSS {rss} kB",
                start.elapsed().as_secs_f64(),
                progress.acked.load(Ordering::Relaxed),
                sink.unique.load(Ordering::Relaxed),
            );
        }
    })
}

// === reporting ===

/// One scenario's table: measure, value, goal, and whether the goal was met.
struct Table {
    title: String,
    rows: Vec<(String, String, String)>,
    failures: Vec<String>,
}

impl Table {
    fn new(title: impl Into<String>) -> Table {
        Table {
            title: title.into(),
            rows: Vec::new(),
            failures: Vec::new(),
        }
    }
    fn row(&mut self, measure: &str, value: impl Into<String>) {
        self.rows
            .push((measure.to_owned(), value.into(), String::new()));
    }
    fn goal(&mut self, measure: &str, value: impl Into<String>, goal: &str, met: bool) {
        let goal = format!("{goal} ({})", if met { "met" } else { "missed" });
        self.rows.push((measure.to_owned(), value.into(), goal));
    }
    /// An invariant: recorded as a row, and as a failure when violated.
    fn invariant(&mut self, measure: &str, value: impl Into<String>, holds: bool, rule: &str) {
        let value = value.into();
        if !holds {
            self.failures
                .push(format!("{}: {measure} = {value} ({rule})", self.title));
        }
        let verdict = format!(
            "invariant: {rule} ({})",
            if holds { "ok" } else { "VIOLATED" }
        );
        self.rows.push((measure.to_owned(), value, verdict));
    }
    fn fail(&mut self, what: String) {
        self.failures.push(format!("{}: {what}", self.title));
        self.rows
            .push(("failure".into(), what, "invariant violated".into()));
    }
    fn print(&self) {
        println!("\n#### {}\n", self.title);
        println!("| measure | value | goal / invariant |");
        println!("|---|---|---|");
        for (m, v, g) in &self.rows {
            println!("| {m} | {v} | {g} |");
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn mib(v: f64) -> String {
    format!("{v:.1} MiB")
}

const MB64_IN_MIB: f64 = 64.0 * 1_000_000.0 / (1024.0 * 1024.0);

/// Broker YAML: broker `default/soak` with `broker_spec` (indented under `spec:`), then the triggers as
/// `(name, annotations, filter type, subscriber URL)`.
fn config_yaml(
    broker_spec: &str,
    triggers: &[(String, Option<String>, Option<String>, String)],
) -> String {
    let mut y = String::from(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: soak\n  namespace: default\n",
    );
    if !broker_spec.is_empty() {
        y.push_str("spec:\n");
        y.push_str(broker_spec);
    }
    for (name, inflight, ty, uri) in triggers {
        y.push_str(&format!(
            "---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: {name}\n  namespace: default\n"
        ));
        if let Some(n) = inflight {
            y.push_str(&format!(
                "  annotations:\n    switchyard.dev/max-inflight: \"{n}\"\n"
            ));
        }
        y.push_str("spec:\n  broker: soak\n");
        if let Some(t) = ty {
            y.push_str(&format!("  filter:\n    attributes:\n      type: {t}\n"));
        }
        y.push_str(&format!("  subscriber:\n    uri: {uri}\n"));
    }
    y
}

/// Quick linear retries (so a recovered subscriber is retried within half a second) and many of them
/// (so nothing is dead-lettered while the subscriber is down or failing).
const QUICK_RETRIES: &str =
    "  delivery:\n    retry: 100000\n    backoffPolicy: linear\n    backoffDelay: PT0.05S\n    backoffMax: PT0.5S\n";

const PATH: &str = "/default/soak";

/// A fresh work directory for one scenario run.
/// Serves `sink` on a free local port and makes the scenario's work directory `name`: (the sink's
/// address, the serving task, the directory).
async fn stage(
    args: &SoakArgs,
    sink: &Arc<Sink>,
    name: &str,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>, PathBuf)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink_addr = listener.local_addr()?;
    let server = serve_sink(sink.clone(), listener);
    let dir = work_dir(args, name)?;
    Ok((sink_addr, server, dir))
}

/// Stops serving the sink and removes the scenario's work directory (once its broker is gone).
fn clean_up(server: tokio::task::JoinHandle<()>, dir: &Path) {
    server.abort();
    let _ = std::fs::remove_dir_all(dir);
}

fn work_dir(args: &SoakArgs, name: &str) -> anyhow::Result<PathBuf> {
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = parent.join(format!("switchyard-soak-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn body(args: &SoakArgs) -> Bytes {
    Bytes::from(vec![b'x'; args.size])
}

/// Runs the chosen scenarios, prints their tables, and fails if an invariant was violated.
pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    let all = args.scenario.contains(&Scenario::All);
    let wants = |s: Scenario| all || args.scenario.contains(&s);
    println!(
        "switchyard soak: {} (serve args: {:?})",
        chrono_like_now(),
        args.serve_args
    );
    let mut tables = Vec::new();
    if wants(Scenario::Backlog) {
        for &t in &args.backlog_triggers {
            tables.push(
                scenario_table(
                    format!("backlog: N = {}, {t} trigger(s)", args.backlog),
                    backlog(&args, t.max(1)),
                )
                .await,
            );
        }
    }
    if wants(Scenario::KillCycles) {
        tables.push(scenario_table(
            format!(
                "kill cycles: {} SIGKILL/restart cycles, {} senders, {:.0}% of deliveries answered 503",
                args.cycles,
                args.senders,
                args.fail_fraction * 100.0
            ),
            kill_cycles(&args),
        )
        .await);
    }
    if wants(Scenario::SlowSubscriber) {
        tables.push(
            scenario_table(
                format!(
                    "slow subscriber isolation: {} ev/s for {:?} per phase, A answers after {:?}",
                    args.rate, args.rate_duration, args.slow_delay
                ),
                slow_subscriber(&args),
            )
            .await,
        );
    }
    if wants(Scenario::SubscriberDown) {
        tables.push(
            scenario_table(
                format!("subscriber down: --max-backlog {}", args.down_max_backlog),
                subscriber_down(&args),
            )
            .await,
        );
    }
    let failures: Vec<String> = tables.iter().flat_map(|t| t.failures.clone()).collect();
    println!();
    if failures.is_empty() {
        println!("all invariants held");
        Ok(())
    } else {
        for f in &failures {
            println!("FAILED: {f}");
        }
        bail!("{} invariant(s) violated", failures.len())
    }
}

/// Awaits a scenario; an error becomes a failure row. Prints the table.
async fn scenario_table(
    title: String,
    fut: impl std::future::Future<Output = anyhow::Result<Table>>,
) -> Table {
    eprintln!("soak: {title} ...");
    let started = Instant::now();
    let mut table = match fut.await {
        Ok(t) => t,
        Err(e) => {
            let mut t = Table::new(title.clone());
            t.fail(format!("{e:#}"));
            t
        }
    };
    table.title = title;
    let failures = std::mem::take(&mut table.failures);
    table.failures = failures
        .into_iter()
        .map(|f| {
            // Failures recorded before the title was set carry an empty prefix.
            f.strip_prefix(": ")
                .map(|r| format!("{}: {r}", table.title))
                .unwrap_or(f)
        })
        .collect();
    table.row(
        "scenario wall time",
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    );
    table.print();
    table
}

/// UTC date and time of now, `YYYY-MM-DD HH:MM UTC` (no calendar crate needed).
fn chrono_like_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
}

// === scenario 1: backlog ===

async fn backlog(args: &SoakArgs, triggers: usize) -> anyhow::Result<Table> {
    let mut table = Table::new("");
    let n = args.backlog.max(10);
    let steady = args.steady_events.unwrap_or((n / 10).clamp(5_000, 100_000));
    let match_all = args.backlog_match_all && triggers > 1;
    let entries_per_event = if match_all { triggers as u64 } else { 1 };
    let capacity = n + steady + 100_000 + n / 100;
    let mut sink = Sink::new(capacity, None, false, Mode::Hang);
    if let Some(s) = Arc::get_mut(&mut sink) {
        s.need = entries_per_event as u32;
    }
    let (sink_addr, server, dir) = stage(args, &sink, &format!("backlog-{triggers}")).await?;
    let types: Vec<String> = if match_all || triggers == 1 {
        vec!["soak.type".into()]
    } else {
        (0..triggers).map(|i| format!("soak.type{i}")).collect()
    };
    let trigger_list = |inflight: bool| -> Vec<_> {
        (0..triggers)
            .map(|i| {
                let ty = (triggers > 1 && !match_all).then(|| format!("soak.type{i}"));
                (
                    format!("t{i}"),
                    inflight.then(|| "1".to_owned()),
                    ty,
                    format!("http://{sink_addr}/t{i}"),
                )
            })
            .collect()
    };
    let max_backlog = n * entries_per_event + 10 * args.connections as u64 + 1000;
    let spec = BrokerLaunch::write(
        args,
        &dir,
        config_yaml(QUICK_RETRIES, &trigger_list(true)),
        vec!["--max-backlog".into(), max_backlog.to_string()],
    )?;
    let config = spec.config.clone();
    table.row(
        "setup",
        format!(
            "{triggers} trigger(s){}, {} B events, {} connections, --max-backlog {max_backlog}",
            if triggers == 1 {
                String::new()
            } else if match_all {
                ", every trigger matches every event".into()
            } else {
                ", each trigger its own type (events cycle through the types)".into()
            },
            args.size,
            args.connections
        ),
    );

    // Phase 1: the backlog behind a subscriber that never answers.
    let mut broker = Broker::start(&spec, Duration::from_secs(60)).await?;
    table.row("cold start to ready", ms(broker.ready_after));
    let target = Target::default();
    target.set(Some(broker.ingress));
    let marks = [n / 10, n - n / 10, n];
    let progress = Progress::new(&marks);
    let next_id = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let load = Arc::new(Load {
        types: types.clone(),
        next_id: next_id.clone(),
        until_acked: Some(n),
        progress: progress.clone(),
        ..Load::new(
            args,
            target.clone(),
            &sink,
            capacity,
            started + args.phase_timeout,
        )
    });
    let printer = progress_printer(
        format!("backlog {triggers} trigger(s), building"),
        progress.clone(),
        sink.clone(),
        Some(broker.pid()),
    );
    let sent = run_senders(load, args.connections).await;
    printer.abort();
    let sent = sent?;
    let built = started.elapsed();
    let acked = sent.acked.len() as u64;
    table.invariant(
        "events acknowledged (202)",
        format!("{acked} in {:.1} s", built.as_secs_f64()),
        acked >= n,
        &format!("reaches N = {n} within --phase-timeout"),
    );
    table.row(
        "ingress errors / non-202 answers",
        format!("{} / {:?}", sent.errors, sent.statuses),
    );
    let (t10, t90, t100) = (
        progress.mark(marks[0]),
        progress.mark(marks[1]),
        progress.mark(marks[2]),
    );
    if let (Some(t10), Some(t90), Some(t100)) = (t10, t90, t100) {
        let first = marks[0] as f64 / (t10 - started).as_secs_f64();
        let last = (n - marks[1]) as f64 / (t100 - t90).as_secs_f64();
        table.row("ingress accepted/s, first 10%", format!("{first:.0}"));
        table.row("ingress accepted/s, last 10%", format!("{last:.0}"));
        table.goal(
            "last 10% ÷ first 10%",
            format!("{:.2}", last / first),
            "≥ 0.8",
            last / first >= 0.8,
        );
    }
    let backlog_gauge = broker.backlog().await;
    table.row(
        "trigger backlog gauge (sum, /metrics)",
        backlog_gauge.map_or("?".into(), |b| b.to_string()),
    );
    let peak = broker.peak_rss();
    table.goal(
        "peak RSS while building the backlog (VmHWM)",
        mib(peak),
        "≤ 64 MB (61.0 MiB)",
        peak <= MB64_IN_MIB,
    );
    table.row("RSS at the end (VmRSS)", mib(broker.rss()));
    table.row("data dir size", mib(dir_mib(&spec.data)));

    // Phase 2: SIGKILL, restart on the same data dir; the subscriber now answers at once.
    broker.kill9();
    drop(broker);
    // The restart drops the max-inflight annotation (the default applies), so the drain and the steady
    // state below run with the same dispatcher settings.
    std::fs::write(&config, config_yaml(QUICK_RETRIES, &trigger_list(false)))?;
    sink.set_default(Mode::Ok);
    let restart_at = Instant::now();
    let restart_ns = sink.ns_of(restart_at);
    let broker = Broker::start(&spec, Duration::from_secs(300)).await?;
    table.goal(
        "restart to ready (/readyz 200)",
        ms(broker.ready_after),
        "< 1 s",
        broker.ready_after < Duration::from_secs(1),
    );
    let printer = progress_printer(
        format!("backlog {triggers} trigger(s), draining"),
        progress.clone(),
        sink.clone(),
        Some(broker.pid()),
    );
    let missing = wait_delivered(&sink, &sent.acked, Instant::now() + args.phase_timeout).await;
    printer.abort();
    let first = sink.first_any.load(Ordering::Relaxed);
    if first != u64::MAX {
        let to_first = Duration::from_nanos(first.saturating_sub(restart_ns));
        table.goal(
            "restart to first delivery",
            ms(to_first),
            "< 1 s",
            to_first < Duration::from_secs(1),
        );
    }
    table.invariant(
        "acknowledged events not delivered after the restart",
        missing.to_string(),
        missing == 0,
        "0 within --phase-timeout",
    );
    let drain_rate = if missing == 0 && !sent.acked.is_empty() {
        let last = sink.last_first_ok(&sent.acked);
        let rate =
            acked as f64 * entries_per_event as f64 / (last.saturating_sub(first) as f64 / 1e9);
        table.row(
            "drain: deliveries/s (first to last delivery after the restart)",
            format!("{rate:.0}"),
        );
        Some(rate)
    } else {
        None
    };
    let drain_peak = broker.peak_rss();
    table.row(
        "peak RSS of the restarted broker, through the drain",
        mib(drain_peak),
    );

    // Phase 3: steady state of the same broker with an empty backlog.
    let progress = Progress::new(&[]);
    let first_id = next_id.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let load = Arc::new(Load {
        types,
        next_id: next_id.clone(),
        first_id,
        until_acked: Some(steady),
        progress,
        ..Load::new(
            args,
            Target::at(broker.ingress),
            &sink,
            capacity,
            t0 + args.phase_timeout,
        )
    });
    let steady_sent = run_senders(load, args.connections).await?;
    let missing = wait_delivered(
        &sink,
        &steady_sent.acked,
        Instant::now() + args.phase_timeout,
    )
    .await;
    table.invariant(
        "steady-state events not delivered",
        missing.to_string(),
        missing == 0,
        "0",
    );
    if missing == 0 && !steady_sent.acked.is_empty() {
        let last = sink.last_first_ok(&steady_sent.acked);
        let rate = steady_sent.acked.len() as f64 * entries_per_event as f64
            / (last.saturating_sub(sink.ns_of(t0)) as f64 / 1e9);
        table.row(
            &format!(
                "steady state: deliveries/s with an empty backlog ({} events, same broker)",
                steady_sent.acked.len()
            ),
            format!("{rate:.0}"),
        );
        if let Some(d) = drain_rate {
            table.goal(
                "drain rate ÷ steady-state rate",
                format!("{:.2}", d / rate),
                "≥ 0.8",
                d / rate >= 0.8,
            );
        }
    }
    table.row(
        "peak RSS of the restarted broker, end",
        mib(broker.peak_rss()),
    );
    drop(broker);
    clean_up(server, &dir);
    Ok(table)
}

// === scenario 2: kill cycles ===

async fn kill_cycles(args: &SoakArgs) -> anyhow::Result<Table> {
    let mut table = Table::new("");
    let capacity = (args.cycles as f64 * args.cycle_load.as_secs_f64() * 50_000.0) as u64 + 200_000;
    let sink = Sink::new(capacity, None, false, Mode::Fail(args.fail_fraction));
    let (sink_addr, server, dir) = stage(args, &sink, "kill").await?;
    let yaml = config_yaml(
        QUICK_RETRIES,
        &[("t0".into(), None, None, format!("http://{sink_addr}/t0"))],
    );
    let spec = BrokerLaunch::write(args, &dir, yaml, Vec::new())?;
    table.row(
        "setup",
        format!(
            "1 trigger, {} B events, load for {:?} per cycle then SIGKILL; retries: linear 50 ms..500 ms",
            args.size, args.cycle_load
        ),
    );
    let target = Target::default();
    let progress = Progress::new(&[]);
    let deadline = Instant::now() + args.phase_timeout;
    let load = Arc::new(Load {
        progress: progress.clone(),
        ..Load::new(args, target.clone(), &sink, capacity, deadline)
    });
    let handles: Vec<_> = (0..args.senders.max(1))
        .map(|_| tokio::spawn(sender(load.clone())))
        .collect();
    let mut restarts = Vec::new();
    let mut result = Ok(());
    for cycle in 0..=args.cycles {
        let mut broker = match Broker::start(&spec, Duration::from_secs(60)).await {
            Ok(b) => b,
            Err(e) => {
                result = Err(e.context(format!("cycle {cycle}")));
                break;
            }
        };
        if cycle > 0 {
            restarts.push(broker.ready_after);
        }
        target.set(Some(broker.ingress));
        if cycle == args.cycles {
            // The final broker: stop the load, keep it running for the delivery check.
            let before = progress.acked.load(Ordering::Relaxed);
            let until = Instant::now() + args.cycle_load;
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            load.stop.store(true, Ordering::Relaxed);
            let sent = collect_senders(handles, deadline).await;
            eprintln!(
                "soak: kill cycles: final broker accepted {} more",
                progress.acked.load(Ordering::Relaxed) - before
            );
            let sent = match sent {
                Ok(s) => s,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            let acked = sent.acked.len();
            let missing = wait_delivered(
                &sink,
                &sent.acked,
                Instant::now() + Duration::from_secs(300),
            )
            .await;
            table.row("events acknowledged (202)", acked.to_string());
            table.row(
                "sends in doubt (connection lost or timed out) / non-202 answers",
                format!("{} / {:?}", sent.errors, sent.statuses),
            );
            table.invariant(
                "acknowledged events lost",
                missing.to_string(),
                missing == 0,
                "0 (all delivered within 300 s after the last restart)",
            );
            let mut dups = 0u64;
            let mut in_doubt_delivered = 0u64;
            let acked_set: std::collections::HashSet<u64> = sent.acked.iter().copied().collect();
            let sent_ids = load.next_id.load(Ordering::Relaxed).min(capacity);
            for i in 0..sent_ids {
                let c = u64::from(sink.ok[i as usize].load(Ordering::Relaxed));
                dups += c.saturating_sub(1);
                if c > 0 && !acked_set.contains(&i) {
                    in_doubt_delivered += 1;
                }
            }
            table.row(
                "duplicate deliveries (successful deliveries beyond the first)",
                dups.to_string(),
            );
            table.row(
                "delivered events whose send was in doubt",
                in_doubt_delivered.to_string(),
            );
            table.row(
                "subscriber requests (incl. 503s) / with an unknown ce-id",
                format!(
                    "{} / {}",
                    sink.requests.load(Ordering::Relaxed),
                    sink.foreign.load(Ordering::Relaxed)
                ),
            );
            if sent.ids_exhausted || sent.deadline_passed {
                table.fail("the senders ran out of ids or time".into());
            }
            drop(broker);
            break;
        }
        let until = Instant::now() + args.cycle_load;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        broker.kill9();
        target.set(None);
        eprintln!(
            "soak: kill cycles: cycle {}/{} killed, {} acknowledged so far",
            cycle + 1,
            args.cycles,
            progress.acked.load(Ordering::Relaxed)
        );
    }
    load.stop.store(true, Ordering::Relaxed);
    result?;
    restarts.sort();
    if let Some(max) = restarts.last() {
        table.row(
            "restart to ready (SIGKILL → /readyz 200): median / slowest",
            format!("{} / {}", ms(restarts[restarts.len() / 2]), ms(*max)),
        );
    }
    table.invariant(
        "restarts",
        restarts.len().to_string(),
        restarts.len() == args.cycles,
        &format!("{} completed", args.cycles),
    );
    clean_up(server, &dir);
    Ok(table)
}

// === scenario 3: slow subscriber isolation ===

async fn slow_subscriber(args: &SoakArgs) -> anyhow::Result<Table> {
    let mut table = Table::new("");
    let per_phase = args.rate.max(1) * args.rate_duration.as_secs().max(1);
    let rounds = args.slow_rounds.max(1);
    let capacity = per_phase * 2 * u64::from(rounds) + 1000;
    let sink = Sink::new(capacity, Some("/b"), true, Mode::Ok);
    let (sink_addr, server, dir) = stage(args, &sink, "slow").await?;
    let yaml = config_yaml(
        "",
        &[
            (
                "a".into(),
                Some(args.slow_inflight.to_string()),
                None,
                format!("http://{sink_addr}/a"),
            ),
            ("b".into(), None, None, format!("http://{sink_addr}/b")),
        ],
    );
    let spec = BrokerLaunch::write(args, &dir, yaml, Vec::new())?;
    table.row(
        "setup",
        format!(
            "triggers A (max-inflight {}) and B, both matching every event; {} B events, 16 connections",
            args.slow_inflight, args.size
        ),
    );
    let broker = Broker::start(&spec, Duration::from_secs(60)).await?;
    let next_id = Arc::new(AtomicU64::new(0));
    // Latencies per condition (false = A healthy, true = A slow), pooled over the rounds.
    let mut pooled: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    let mut round_ratios = Vec::new();
    for round in 1..=rounds {
        let mut p99s = [0.0; 2];
        for (phase, slow) in [("A healthy (baseline)", false), ("A slow", true)] {
            let phase = format!("round {round}, {phase}");
            if slow {
                sink.set_path("/a", Mode::Delay(args.slow_delay));
            } else if round > 1 {
                // A is healthy again: its backlog from the previous slow phase drains first.
                sink.set_path("/a", Mode::Ok);
                let deadline = Instant::now() + args.phase_timeout;
                while broker.backlog().await != Some(0) {
                    if Instant::now() > deadline {
                        table.fail(format!("{phase}: A's backlog did not drain"));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            let first_id = next_id.load(Ordering::Relaxed);
            let start = Instant::now() + Duration::from_millis(20);
            let load = Arc::new(Load {
                next_id: next_id.clone(),
                first_id,
                rate: Some((start, args.rate.max(1))),
                ..Load::new(
                    args,
                    Target::at(broker.ingress),
                    &sink,
                    first_id + per_phase,
                    start + args.rate_duration * 3 + Duration::from_secs(30),
                )
            });
            let sent = run_senders(load, 16).await?;
            next_id.store(first_id + per_phase, Ordering::Relaxed);
            let missing = wait_delivered(
                &sink,
                &sent.acked,
                Instant::now() + Duration::from_secs(120),
            )
            .await;
            table.invariant(
                &format!("{phase}: B's acknowledged events not delivered"),
                format!("{missing} of {}", sent.acked.len()),
                missing == 0,
                "0 within 120 s",
            );
            if sent.errors > 0 || !sent.statuses.is_empty() {
                table.row(
                    &format!("{phase}: ingress errors / non-202 answers"),
                    format!("{} / {:?}", sent.errors, sent.statuses),
                );
            }
            let mut lat: Vec<u64> = sent
                .acked
                .iter()
                .filter_map(|&i| {
                    let s = sink.sent_at[i as usize].load(Ordering::Relaxed);
                    let a = sink.first_ok[i as usize].load(Ordering::Relaxed);
                    (s > 0 && a >= s).then(|| a - s)
                })
                .collect();
            lat.sort_unstable();
            let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
            table.row(
                &format!("{phase}: B e2e latency p50 / p99"),
                format!("{p50:.2} / {p99:.2} ms"),
            );
            p99s[usize::from(slow)] = p99;
            pooled[usize::from(slow)].extend_from_slice(&lat);
        }
        round_ratios.push(p99s[1] / p99s[0]);
    }
    if rounds > 1 {
        table.row(
            "p99 ratio of each round",
            round_ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    let [mut base, mut slow] = pooled;
    base.sort_unstable();
    slow.sort_unstable();
    for (name, lat) in [("A healthy", &base), ("A slow", &slow)] {
        table.row(
            &format!(
                "{name}, all rounds: B e2e latency p50 / p99 ({} events)",
                lat.len()
            ),
            format!(
                "{:.2} / {:.2} ms",
                percentile(lat, 0.5),
                percentile(lat, 0.99)
            ),
        );
    }
    let ratio = percentile(&slow, 0.99) / percentile(&base, 0.99);
    table.goal(
        "B p99 with A slow ÷ B p99 with A healthy (all rounds)",
        format!("{ratio:.2}"),
        "≤ 1.2",
        ratio <= 1.2,
    );
    table.row(
        "A's backlog at the end (trigger backlog gauges, sum)",
        broker.backlog().await.map_or("?".into(), |b| b.to_string()),
    );
    table.row("peak RSS", mib(broker.peak_rss()));
    drop(broker);
    clean_up(server, &dir);
    Ok(table)
}

// === scenario 4: subscriber down ===

async fn subscriber_down(args: &SoakArgs) -> anyhow::Result<Table> {
    let mut table = Table::new("");
    let limit = args.down_max_backlog.max(1);
    let capacity = limit * 4 + 100_000;
    let sink = Sink::new(capacity, None, false, Mode::Ok);
    // Reserve a port for the subscriber and close it: connections are refused until it comes back.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = work_dir(args, "down")?;
    let yaml = config_yaml(
        QUICK_RETRIES,
        &[(
            "t0".into(),
            None,
            None,
            format!("http://127.0.0.1:{port}/t0"),
        )],
    );
    let spec = BrokerLaunch::write(
        args,
        &dir,
        yaml,
        vec!["--max-backlog".into(), limit.to_string()],
    )?;
    table.row(
        "setup",
        format!(
            "1 trigger, subscriber refusing connections, {} B events, {} connections; retries: linear 50 ms..500 ms",
            args.size, args.connections
        ),
    );
    let broker = Broker::start(&spec, Duration::from_secs(60)).await?;
    let started = Instant::now();
    let load = Arc::new(Load {
        stop_on_429: true,
        ..Load::new(
            args,
            Target::at(broker.ingress),
            &sink,
            capacity,
            started + args.phase_timeout,
        )
    });
    let sent = run_senders(load, args.connections).await?;
    let got_429 = sent.statuses.get(&429).copied().unwrap_or(0);
    table.row(
        "events acknowledged before the first 429",
        format!(
            "{} in {:.2} s",
            sent.acked.len(),
            started.elapsed().as_secs_f64()
        ),
    );
    table.invariant(
        "ingress answered 429 at the backlog limit",
        format!("{got_429} × 429"),
        got_429 > 0 && sent.acked.len() as u64 >= limit,
        &format!("429 reached, after ≥ {limit} acknowledged events"),
    );
    table.invariant(
        "Retry-After on the 429",
        sent.retry_after.clone().unwrap_or_else(|| "missing".into()),
        sent.retry_after.is_some() || got_429 == 0,
        "present",
    );
    table.row(
        "other answers / sends in doubt",
        format!("{:?} / {}", sent.statuses, sent.errors),
    );
    table.row(
        "trigger backlog gauge at the limit",
        broker.backlog().await.map_or("?".into(), |b| b.to_string()),
    );
    // The subscriber comes back on the same port.
    let bind_deadline = Instant::now() + Duration::from_secs(10);
    let listener = loop {
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => break l,
            Err(e) if Instant::now() > bind_deadline => {
                bail!("rebinding the subscriber port {port}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let back = Instant::now();
    let server = serve_sink(sink.clone(), listener);
    let missing = wait_delivered(&sink, &sent.acked, back + args.phase_timeout).await;
    table.invariant(
        "acknowledged events lost",
        missing.to_string(),
        missing == 0,
        "0 within --phase-timeout",
    );
    if missing == 0 && !sent.acked.is_empty() {
        let last = sink.last_first_ok(&sent.acked);
        let drain = Duration::from_nanos(last.saturating_sub(sink.ns_of(back)));
        table.row(
            "time to drain (subscriber back → last event delivered)",
            format!(
                "{} ({:.0} deliveries/s)",
                ms(drain),
                sent.acked.len() as f64 / drain.as_secs_f64()
            ),
        );
        let first = sink.first_any.load(Ordering::Relaxed);
        table.row(
            "subscriber back → first delivery",
            ms(Duration::from_nanos(first.saturating_sub(sink.ns_of(back)))),
        );
    }
    table.row(
        "duplicate deliveries",
        (sink.total_ok.load(Ordering::Relaxed) - sink.unique.load(Ordering::Relaxed)).to_string(),
    );
    // Ingress accepts again once the backlog is below the limit.
    let recovered_deadline = Instant::now() + Duration::from_secs(30);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut recovered = None;
    while Instant::now() < recovered_deadline {
        let req = http::Request::post(format!("http://{}{PATH}", broker.ingress))
            .header("ce-specversion", "1.0")
            .header("ce-id", (capacity - 1).to_string())
            .header("ce-source", "/soak")
            .header("ce-type", "soak.type")
            .body(Full::new(Bytes::from_static(b"x")))?;
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(5), client.request(req)).await {
            if r.status() == StatusCode::ACCEPTED {
                recovered = Some(back.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    table.invariant(
        "ingress accepts again after the drain",
        recovered.map_or("no 202 within 30 s".into(), ms),
        recovered.is_some(),
        "202",
    );
    table.row("peak RSS", mib(broker.peak_rss()));
    drop(broker);
    clean_up(server, &dir);
    Ok(table)
}
