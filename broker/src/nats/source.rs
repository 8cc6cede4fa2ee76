//! NatsSource runners (`sources.switchyard.dev/v1alpha1` `NatsSource`): NATS messages → a broker's ingress
//! (or a `uri` sink), one task per source.
//!
//! - **Core NATS**: subscribes to `subject` (in `queueGroup` when set, so that several processes share the
//!   messages). Each message is decoded with the CloudEvents NATS binding (binary `ce-` headers or
//!   structured JSON) and POSTed in binary HTTP mode. Up to [`NatsSourceOptions::max_inflight`] messages
//!   are handled at once (bounded). A retryable answer (429, 503, 5xx, transport error) is retried with
//!   backoff up to [`NatsSourceOptions::max_attempts`] times. If the publisher set a reply subject, it gets
//!   the verdict as a small JSON message — `{"status":202}` or `{"status":400,"error":"..."}` — so
//!   request-reply publishers get a durable acknowledgement. Invalid messages are counted and answered.
//! - **JetStream** (`jetstream: {stream, durable}`): a durable pull consumer with explicit acks. A message is
//!   acked only after the sink accepted it, `nak`ed with a delay when the sink answered 429/503/5xx or was
//!   unreachable (JetStream redelivers it: back-pressure, nothing dropped), and `term`inated when it is not a
//!   valid CloudEvent or the sink rejected it for good (4xx).

use crate::config::{NatsSourceConfig, ObjectKey, Topology};
use crate::delivery::{
    classify, parse_retry_after, retry, Attempt, Attempts, Classification, Retried, RetryAfterRule,
    SourceBackoff,
};
use crate::event::Event;
use crate::format::http::write_binary;
use crate::http_client::HttpClient;
use crate::nats::binding;
use async_nats::jetstream;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, Uri};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{info, warn};

/// Settings shared by every NATS source.
#[derive(Debug, Clone)]
pub struct NatsSourceOptions {
    /// Messages with a larger payload are answered 413-style and skipped.
    pub max_message_bytes: usize,
    /// Timeout of one HTTP attempt.
    pub request_timeout: Duration,
    /// Attempts per core NATS message before the publisher is answered with the last error.
    pub max_attempts: u32,
    /// Messages handled at once per core NATS source.
    pub max_inflight: usize,
    /// JetStream: redelivery delay after a retryable sink answer.
    pub nak_delay: Duration,
    /// Extra CA certificates trusted for `https` sinks.
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl Default for NatsSourceOptions {
    fn default() -> Self {
        NatsSourceOptions {
            max_message_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_attempts: 5,
            max_inflight: 64,
            nak_delay: Duration::from_millis(500),
            extra_roots: Vec::new(),
        }
    }
}

/// Why sources could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NatsSourceError {
    /// The HTTP client for the sinks could not be built.
    #[error("NatsSource sink client: {0}")]
    Client(String),
    /// Sources whose sink URL is invalid (the others were applied).
    #[error("NatsSources not started: {0:?}")]
    NotStarted(Vec<(ObjectKey, String)>),
}

/// Counters of one source (for tests and the admin API).
#[derive(Debug, Default)]
pub struct NatsSourceStats {
    /// Messages received.
    pub received: AtomicU64,
    /// Events the sink accepted.
    pub accepted: AtomicU64,
    /// Messages that were not valid CloudEvents.
    pub invalid: AtomicU64,
    /// Events the sink did not accept (after retries, or a non-retryable answer).
    pub failed: AtomicU64,
}

struct Running {
    spec: Arc<NatsSourceConfig>,
    url: String,
    stats: Arc<NatsSourceStats>,
    /// Stops the source; cancelled when it is dropped too.
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
    task: JoinHandle<()>,
}

/// The running NATS sources.
pub struct NatsSources {
    options: NatsSourceOptions,
    client: HttpClient,
    running: Mutex<HashMap<ObjectKey, Running>>,
}

impl std::fmt::Debug for NatsSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSources").finish_non_exhaustive()
    }
}

/// Where a source posts: `{base}/{ns}/{name}` for a broker, the URL itself otherwise.
fn sink_url(spec: &NatsSourceConfig, base: &str) -> String {
    crate::source::sink_url(&spec.sink, base)
}

impl NatsSources {
    /// Sources with these settings (none running yet).
    pub fn new(options: NatsSourceOptions) -> Result<NatsSources, NatsSourceError> {
        let client =
            crate::source::sink_client(&options.extra_roots).map_err(NatsSourceError::Client)?;
        Ok(NatsSources {
            options,
            client,
            running: Mutex::new(HashMap::new()),
        })
    }

    /// Starts new sources, restarts changed ones, stops removed ones. Must run inside a Tokio runtime.
    pub fn apply(&self, topology: &Topology, broker_base_url: &str) -> Result<(), NatsSourceError> {
        let mut running = self.running.lock();
        running.retain(|key, r| {
            let keep = topology.nats_sources.get(key).is_some_and(|s| {
                **s == *r.spec && sink_url(s, broker_base_url) == r.url && !r.task.is_finished()
            });
            if !keep {
                r.stop.cancel();
            }
            keep
        });
        let mut failures = Vec::new();
        for (key, spec) in &topology.nats_sources {
            if running.contains_key(key) {
                continue;
            }
            let url = sink_url(spec, broker_base_url);
            let uri: Uri = match url.parse() {
                Ok(u) => u,
                Err(e) => {
                    failures.push((key.clone(), format!("sink URL {url:?}: {e}")));
                    continue;
                }
            };
            let stop = CancellationToken::new();
            let stats = Arc::new(NatsSourceStats::default());
            let ctx = Arc::new(SourceCtx {
                spec: spec.clone(),
                uri,
                client: self.client.clone(),
                options: self.options.clone(),
                stats: stats.clone(),
            });
            let task = tokio::spawn(run_source(ctx, stop.clone()));
            running.insert(
                key.clone(),
                Running {
                    spec: spec.clone(),
                    url,
                    stats,
                    _stop_on_drop: stop.clone().drop_guard(),
                    stop,
                    task,
                },
            );
        }
        crate::source::started(failures, NatsSourceError::NotStarted)
    }

    /// The counters of a running source.
    pub fn stats(&self, key: &ObjectKey) -> Option<Arc<NatsSourceStats>> {
        self.running.lock().get(key).map(|r| r.stats.clone())
    }

    /// Stops every source; in-flight messages may finish until `deadline`.
    pub async fn shutdown(&self, deadline: std::time::Instant) {
        let running: Vec<Running> = self.running.lock().drain().map(|(_, r)| r).collect();
        for r in &running {
            r.stop.cancel();
        }
        for r in running {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let _ = tokio::time::timeout(left, r.task).await;
        }
    }
}

struct SourceCtx {
    spec: Arc<NatsSourceConfig>,
    uri: Uri,
    client: HttpClient,
    options: NatsSourceOptions,
    stats: Arc<NatsSourceStats>,
}

/// The verdict of one message.
enum Verdict {
    Accepted,
    /// Worth retrying later (429, 503, 5xx, transport).
    Retry(String),
    /// Never acceptable (invalid event, 4xx).
    Rejected(u16, String),
}

async fn run_source(ctx: Arc<SourceCtx>, stop: CancellationToken) {
    let key = &ctx.spec.key;
    let client = match async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(ctx.spec.servers.as_str())
        .await
    {
        Ok(c) => c,
        Err(e) => {
            warn!(source = %key, "cannot connect to {}: {e}", ctx.spec.servers);
            return;
        }
    };
    match &ctx.spec.jetstream {
        Some(js) => run_jetstream(&ctx, client, &js.stream, &js.durable, &stop).await,
        None => run_core(&ctx, client, &stop).await,
    }
}

async fn run_core(ctx: &Arc<SourceCtx>, client: async_nats::Client, stop: &CancellationToken) {
    let key = &ctx.spec.key;
    let subject = ctx.spec.subject.clone();
    let sub = match &ctx.spec.queue_group {
        Some(q) => client.queue_subscribe(subject, q.clone()).await,
        None => client.subscribe(subject).await,
    };
    let mut sub = match sub {
        Ok(s) => s,
        Err(e) => {
            warn!(source = %key, "cannot subscribe: {e}");
            return;
        }
    };
    info!(source = %key, subject = %ctx.spec.subject, "NATS source subscribed");
    let permits = Arc::new(Semaphore::new(ctx.options.max_inflight.max(1)));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.cancelled() => break,
        };
        let msg = tokio::select! {
            m = sub.next() => match m { Some(m) => m, None => break },
            _ = stop.cancelled() => break,
        };
        let ctx = ctx.clone();
        let client = client.clone();
        tokio::spawn(async move {
            let verdict = handle_core(&ctx, &msg).await;
            if let Some(reply) = msg.reply.clone() {
                let body = match &verdict {
                    Verdict::Accepted => "{\"status\":202}".to_owned(),
                    Verdict::Retry(e) => serde_json::json!({"status": 503, "error": e}).to_string(),
                    Verdict::Rejected(code, e) => {
                        serde_json::json!({"status": code, "error": e}).to_string()
                    }
                };
                let _ = client.publish(reply, body.into()).await;
            }
            drop(permit);
        });
    }
    let _ = sub.unsubscribe().await;
    // Let in-flight messages finish (they hold permits).
    let max = u32::try_from(ctx.options.max_inflight.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(ctx.options.request_timeout, permits.acquire_many(max)).await;
    let _ = client.flush().await;
}

fn decode(
    ctx: &SourceCtx,
    headers: Option<&async_nats::HeaderMap>,
    payload: &Bytes,
) -> Result<Event, Verdict> {
    ctx.stats.received.fetch_add(1, Ordering::Relaxed);
    if payload.len() > ctx.options.max_message_bytes {
        ctx.stats.invalid.fetch_add(1, Ordering::Relaxed);
        return Err(Verdict::Rejected(
            413,
            format!(
                "message of {} bytes is larger than the limit of {}",
                payload.len(),
                ctx.options.max_message_bytes
            ),
        ));
    }
    let pairs: Vec<(&str, &[u8])> = headers
        .map(|h| {
            h.iter()
                .filter_map(|(name, values)| {
                    values
                        .first()
                        .map(|v| (name.as_ref(), v.as_str().as_bytes()))
                })
                .collect()
        })
        .unwrap_or_default();
    binding::decode(&pairs, payload).map_err(|e| {
        ctx.stats.invalid.fetch_add(1, Ordering::Relaxed);
        warn!(source = %ctx.spec.key, "invalid CloudEvent message: {e}");
        Verdict::Rejected(400, e.to_string())
    })
}

/// The retry schedule of a core NATS message: `max_attempts` attempts in all; before retry n
/// 100 ms × 2^(n-1), or the sink's Retry-After instead (even a shorter one), at most 5 s. Waits are
/// not interrupted by a stop (in-flight messages finish, bounded by the source's drain).
fn core_schedule(options: &NatsSourceOptions) -> SourceBackoff {
    SourceBackoff {
        retries: Some(options.max_attempts.max(1) - 1),
        initial: Duration::from_millis(100),
        max: Duration::from_secs(5),
        retry_after_max: Duration::from_secs(5),
        retry_after: RetryAfterRule::Replaces,
    }
}

/// The attempts of one core NATS message's event; a failure is the text of the retryable verdict.
struct ToSink<'a> {
    ctx: &'a SourceCtx,
    event: &'a Event,
}

impl Attempts for ToSink<'_> {
    type Output = Verdict;
    type Failure = String;

    async fn attempt(&mut self, _retry: u32) -> Attempt<Verdict, String> {
        match post(self.ctx, self.event).await {
            (Verdict::Retry(e), retry_after) => Attempt::Retryable {
                failure: e,
                retry_after,
            },
            (other, _) => Attempt::Done(other),
        }
    }

    async fn pause(&mut self, retry: u32, wait: Duration, e: &String) -> bool {
        tracing::debug!(source = %self.ctx.spec.key, attempt = retry, error = %e, "sink busy; retrying");
        tokio::time::sleep(wait).await;
        true
    }
}

async fn handle_core(ctx: &SourceCtx, msg: &async_nats::Message) -> Verdict {
    let event = match decode(ctx, msg.headers.as_ref(), &msg.payload) {
        Ok(e) => e,
        Err(v) => return v,
    };
    let mut attempts = ToSink { ctx, event: &event };
    let verdict = match retry(&core_schedule(&ctx.options), &mut attempts).await {
        Retried::Done(v) => v,
        Retried::Failed(e) => Verdict::Retry(e),
        // Never: the waits are not interrupted.
        Retried::Interrupted => Verdict::Retry("interrupted".to_owned()),
    };
    count(ctx, &verdict);
    verdict
}

fn count(ctx: &SourceCtx, v: &Verdict) {
    let c = match v {
        Verdict::Accepted => &ctx.stats.accepted,
        _ => &ctx.stats.failed,
    };
    c.fetch_add(1, Ordering::Relaxed);
}

/// One POST of the event to the sink, classified.
async fn post(ctx: &SourceCtx, event: &Event) -> (Verdict, Option<Duration>) {
    let mut headers = HeaderMap::new();
    let body = write_binary(event, &mut headers);
    match ctx
        .client
        .send_for_status(&ctx.uri, headers, body, ctx.options.request_timeout)
        .await
    {
        Ok((status, resp_headers)) => {
            let retry_after = resp_headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            let verdict = match classify(Some(status)) {
                Classification::Success => Verdict::Accepted,
                Classification::Retry => Verdict::Retry(format!("sink answered {status}")),
                Classification::Fail => {
                    Verdict::Rejected(status, format!("sink answered {status}"))
                }
            };
            (verdict, retry_after)
        }
        Err(e) => (Verdict::Retry(e.into_detail()), None),
    }
}

async fn run_jetstream(
    ctx: &Arc<SourceCtx>,
    client: async_nats::Client,
    stream: &str,
    durable: &str,
    stop: &CancellationToken,
) {
    let key = &ctx.spec.key;
    let js = jetstream::new(client);
    // The stream belongs to the publisher side; the durable consumer is created (idempotently) here.
    let consumer: jetstream::consumer::PullConsumer = loop {
        let attempt = async {
            js.get_stream(stream)
                .await
                .map_err(|e| e.to_string())?
                .get_or_create_consumer(
                    durable,
                    jetstream::consumer::pull::Config {
                        durable_name: Some(durable.to_owned()),
                        filter_subject: ctx.spec.subject.clone(),
                        ack_policy: jetstream::consumer::AckPolicy::Explicit,
                        ack_wait: ctx.options.request_timeout * 2,
                        max_ack_pending: i64::try_from(ctx.options.max_inflight.max(1))
                            .unwrap_or(64),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| e.to_string())
        };
        match attempt.await {
            Ok(c) => break c,
            Err(e) => {
                warn!(source = %key, "JetStream consumer {stream}/{durable}: {e}; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.cancelled() => return,
                }
            }
        }
    };
    let mut messages = match consumer.messages().await {
        Ok(m) => m,
        Err(e) => {
            warn!(source = %key, "JetStream messages: {e}");
            return;
        }
    };
    info!(source = %key, stream, durable, "NATS JetStream source consuming");
    loop {
        let msg = tokio::select! {
            m = messages.next() => match m {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    warn!(source = %key, "JetStream: {e}");
                    continue;
                }
                None => break,
            },
            _ = stop.cancelled() => break,
        };
        let verdict = match decode(ctx, msg.headers.as_ref(), &msg.payload) {
            Err(v) => v,
            Ok(event) => post(ctx, &event).await.0,
        };
        count(ctx, &verdict);
        let ack = match verdict {
            Verdict::Accepted => jetstream::AckKind::Ack,
            Verdict::Retry(e) => {
                tracing::debug!(source = %key, error = %e, "sink busy; message redelivered later");
                jetstream::AckKind::Nak(Some(ctx.options.nak_delay))
            }
            Verdict::Rejected(code, e) => {
                warn!(source = %key, code, "message rejected for good: {e}");
                jetstream::AckKind::Term
            }
        };
        if let Err(e) = msg.ack_with(ack).await {
            warn!(source = %key, "JetStream ack: {e}");
        }
    }
}
