//! Shared test tooling: a real HTTP subscriber that records what it receives and answers as scripted,
//! a broker started in-process (port 0) or as the real binary, and polling with a deadline.
//!
//! Each test binary of the root crate (`tests/inproc/`, `tests/integrations/`, `tests/system/`) includes this
//! module from its `main.rs` (`#[path = "../common/mod.rs"] mod common;`). The tests of a binary run in
//! parallel threads of one process, so nothing here keeps process-global state besides what is documented
//! (`k8s::ControlPlane::shared`, the Kafka harness's lock): options are passed explicitly, never through
//! `std::env::set_var`; listeners use port 0 or a free port; every broker, server and directory is per test.
#![allow(dead_code)]

pub mod k8s;
pub mod kafka;
pub mod nats;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard::app::{self, RunningApp, ServeOptions, Source};
use switchyard_ingress::Limits;

/// How long tests wait for something that should happen (env `SWITCHYARD_TEST_PATIENCE_MS`).
pub fn patience() -> Duration {
    std::env::var("SWITCHYARD_TEST_PATIENCE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(20))
}

/// Polls `f` until it returns `Some`, or panics with `what` after the patience deadline.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + patience();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One request received by a subscriber.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
    /// The status this subscriber answered (after any scripted delay).
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

/// A scripted response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Option<Duration>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: vec![],
            delay: None,
        }
    }
    /// Answer only after `d` (a slow subscriber).
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = Some(d);
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Reply {
        self.body = b.into();
        self
    }
}

#[derive(Default)]
struct SubState {
    received: Mutex<Vec<Received>>,
    inflight: std::sync::atomic::AtomicUsize,
    max_inflight: std::sync::atomic::AtomicUsize,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
}

/// A real HTTP subscriber on 127.0.0.1:0.
#[derive(Clone)]
pub struct Subscriber {
    pub addr: SocketAddr,
    state: Arc<SubState>,
}

impl Subscriber {
    pub async fn start() -> Subscriber {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener).await
    }

    pub async fn start_on(listener: tokio::net::TcpListener) -> Subscriber {
        let state = Arc::new(SubState::default());
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Subscriber { addr, state }
    }

    /// A subscriber behind TLS (certificate for `localhost` issued by a fresh self-signed CA). Returns the
    /// subscriber and the certificate to trust.
    pub async fn start_tls() -> (Subscriber, rustls::pki_types::CertificateDer<'static>) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = ck.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()),
        );
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(SubState::default());
        let app = Router::new().fallback(handle).with_state(state.clone());
        let tls = TlsListener {
            inner: listener,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        tokio::spawn(async move {
            let _ = axum::serve(tls, app).await;
        });
        (Subscriber { addr, state }, cert)
    }

    /// `https://localhost:PORT/path` for a TLS subscriber.
    pub fn tls_url(&self, path: &str) -> String {
        format!("https://localhost:{}{}", self.addr.port(), path)
    }

    /// URL of a path on this subscriber.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Next responses, in order; after them the default (202).
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().extend(replies);
    }

    /// Response used when the script is empty.
    pub fn set_default(&self, reply: Reply) {
        *self.state.default.lock() = Some(reply);
    }

    /// Highest number of requests this subscriber was handling at the same time.
    pub fn max_concurrency(&self) -> usize {
        self.state
            .max_inflight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().clone()
    }

    pub fn received_on(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits until at least `n` requests arrived on `path`.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Received> {
        let what = format!("{n} requests on {path}");
        eventually(&what, || async {
            let r = self.received_on(path);
            (r.len() >= n).then_some(r)
        })
        .await
    }
}

struct TlsListener {
    inner: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        loop {
            let Ok((tcp, addr)) = self.inner.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

async fn handle(
    State(state): State<Arc<SubState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = state
        .script
        .lock()
        .pop_front()
        .or_else(|| state.default.lock().clone())
        .unwrap_or(Reply::status(202));
    state.received.lock().push(Received {
        path: uri.path().to_owned(),
        headers,
        body,
        at: Instant::now(),
        status: reply.status,
    });
    use std::sync::atomic::Ordering::SeqCst;
    let now = state.inflight.fetch_add(1, SeqCst) + 1;
    state.max_inflight.fetch_max(now, SeqCst);
    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    state.inflight.fetch_sub(1, SeqCst);
    let mut resp = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (k, v) in reply.headers {
        resp.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    resp
}

/// Waits until the broker has parked at least one event and returns the list.
pub async fn parked(b: &TestBroker) -> Vec<serde_json::Value> {
    eventually("a parked event", || async {
        let items = b.dead_letters().await;
        (!items.is_empty()).then_some(items)
    })
    .await
}

/// A plain HTTP response seen by a test client.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

/// Sends a request with a fresh client.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Resp {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(body.into())).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let (parts, body) = resp.into_parts();
    Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

pub async fn post(url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Resp {
    request("POST", url, headers, body).await
}

/// POST that reports a connection failure or a timeout (`limit`) as `None` instead of panicking (the
/// broker may be killed mid-request).
pub async fn try_post(
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
    limit: Duration,
) -> Option<Resp> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder().method("POST").uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let fut = async {
        let resp = client
            .request(req.body(Full::new(body.into())).ok()?)
            .await
            .ok()?;
        let (parts, body) = resp.into_parts();
        Some(Resp {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: body.collect().await.ok()?.to_bytes(),
        })
    };
    tokio::time::timeout(limit, fut).await.ok().flatten()
}

/// Binary-mode headers for a simple event.
pub fn ce_headers<'a>(id: &'a str, ty: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("ce-specversion", "1.0"),
        ("ce-id", id),
        ("ce-source", "/test"),
        ("ce-type", ty),
        ("content-type", "application/json"),
    ]
}

/// A broker started in-process on port 0.
pub struct TestBroker {
    pub app: Option<RunningApp>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl TestBroker {
    pub async fn start(yaml: &str) -> TestBroker {
        Self::start_with(yaml, Limits::default()).await
    }

    pub async fn start_with(yaml: &str, limits: Limits) -> TestBroker {
        Self::start_full(yaml, limits, Vec::new()).await
    }

    pub async fn start_full(
        yaml: &str,
        limits: Limits,
        extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    ) -> TestBroker {
        Self::start_custom(yaml, |o| {
            o.limits = limits;
            o.extra_roots = extra_roots;
        })
        .await
    }

    /// Starts with default test options changed by `customize`.
    pub async fn start_custom(yaml: &str, customize: impl FnOnce(&mut ServeOptions)) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, yaml).unwrap();
        let mut opts = ServeOptions {
            source: Source::Files(vec![config.clone()]),
            data_dir: Some(dir.path().join("data")),
            store: Default::default(),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            limits: Limits::default(),
            extra_roots: Vec::new(),
            shutdown_grace: Duration::from_secs(5),
            reload_interval: Duration::from_millis(100),
            kafka: Default::default(),
            nats: Default::default(),
        };
        customize(&mut opts);
        let app = app::start(opts)
            .await
            .unwrap_or_else(|e| panic!("broker failed to start: {e}"));
        TestBroker {
            app: Some(app),
            dir,
            config,
        }
    }

    pub fn ingress(&self, path: &str) -> String {
        format!("http://{}{}", self.app.as_ref().unwrap().ingress_addr, path)
    }

    pub fn admin(&self, path: &str) -> String {
        format!("http://{}{}", self.app.as_ref().unwrap().admin_addr, path)
    }

    pub async fn metrics(&self) -> String {
        let r = request("GET", &self.admin("/metrics"), &[], Bytes::new()).await;
        String::from_utf8(r.body.to_vec()).unwrap()
    }

    /// Sends a binary-mode event `{}` to `default/default` and asserts 202.
    pub async fn send(&self, id: &str, ty: &str) {
        let r = post(&self.ingress("/default/default"), &ce_headers(id, ty), "{}").await;
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    }

    /// Waits until the metrics count `n` config reloads with `result` (`success`, `invalid`).
    pub async fn wait_reloads(&self, result: &str, n: u64) {
        let line = format!("switchyard_config_reloads_total{{result=\"{result}\"}} {n}");
        eventually(&line, || async {
            self.metrics().await.contains(&line).then_some(())
        })
        .await;
    }

    /// Parked events from the admin API.
    pub async fn dead_letters(&self) -> Vec<serde_json::Value> {
        let v = request("GET", &self.admin("/api/v1/deadletters"), &[], Bytes::new())
            .await
            .json();
        v["deadLetters"].as_array().unwrap().clone()
    }

    pub async fn shutdown(mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await.unwrap();
        }
    }
}

/// The real binary, started as a child process.
pub struct Process {
    pub child: Child,
    pub ingress: SocketAddr,
    pub admin: SocketAddr,
}

impl Process {
    pub fn spawn(config: &Path, data_dir: &Path, extra: &[&str]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn switchyard");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let mut ingress = None;
        let mut admin = None;
        for part in line.split_whitespace() {
            if let Some(a) = part.strip_prefix("ingress=") {
                ingress = a.parse().ok();
            }
            if let Some(a) = part.strip_prefix("admin=") {
                admin = a.parse().ok();
            }
        }
        let (Some(ingress), Some(admin)) = (ingress, admin) else {
            let _ = child.kill();
            panic!("switchyard did not report its addresses; first line was {line:?}");
        };
        Process {
            child,
            ingress,
            admin,
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (without blocking the test's runtime) for the exit status.
    pub async fn sigterm(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        eventually("the process to exit after SIGTERM", || {
            let status = self.child.try_wait().unwrap();
            async move { status }
        })
        .await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Config with one broker `default/default` and the given triggers (YAML documents).
pub fn config(broker_extra: &str, triggers: &[String]) -> String {
    let mut s = format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: default\n{broker_extra}"
    );
    for t in triggers {
        s.push_str("---\n");
        s.push_str(t);
    }
    s
}

/// A trigger document.
pub fn trigger(name: &str, spec_extra: &str, subscriber: &str) -> String {
    format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: {name}\nspec:\n  broker: default\n{spec_extra}  subscriber:\n    uri: {subscriber}\n"
    )
}
