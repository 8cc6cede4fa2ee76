//! Delivery of one queue entry: attempts with retries and backoff, reply handling, dead-lettering and
//! parking. The decisions are made by the pure functions of `switchyard_broker::delivery`; this module
//! only performs the IO they call for.

use crate::client::{HttpClient, Response, SendError};
use crate::{Shared, Slot, TriggerCtx};
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::time::{Duration, Instant, SystemTime};
use switchyard_broker::channel::{Delivery, EntryId, ParkRecord};
use switchyard_broker::delivery::{
    classify, parse_retry_after, retry, Attempt, Attempts, Classification, Format, Retried,
};
use switchyard_broker::event::{Event, ExtValue, DEFAULT_TTL, TTL_EXTENSION};
use switchyard_broker::format::http::{parse_response, write_binary_egress, write_structured};
use switchyard_broker::format::validate::is_valid_attribute_name;
use switchyard_broker::sink::{without_ttl, Sending, Sent, Sink, SinkError};

/// Max bytes of a response body copied into `knativeerrordata` (before base64).
const ERROR_DATA_BYTES: usize = 1024;

/// What went wrong with the last attempt, kept for the dead-letter extensions.
#[derive(Debug, Default)]
pub(crate) struct Failure {
    /// HTTP status, if there was a response.
    pub(crate) code: Option<u16>,
    /// base64 of the first 1024 body bytes, or the transport error text.
    pub(crate) data: Option<String>,
    /// `kne-*` response headers promoted to extensions.
    pub(crate) kne: Vec<(String, String)>,
    /// Retry-After from a 429/503.
    pub(crate) retry_after: Option<Duration>,
    /// Whether another attempt may succeed.
    pub(crate) retryable: bool,
    /// Short reason for logs and the parked record.
    pub(crate) reason: &'static str,
}

/// A request that got no response, as a failed attempt: only an unusable destination is not worth
/// retrying.
fn send_error(e: &SendError) -> SinkError {
    SinkError {
        message: e.to_string(),
        retryable: !matches!(e, SendError::Destination(_)),
        reason: match e {
            SendError::Timeout(_) => "timeout",
            SendError::Destination(_) => "invalid-destination",
            _ => "transport-error",
        },
    }
}

impl From<SinkError> for Failure {
    fn from(e: SinkError) -> Failure {
        Failure {
            data: Some(e.message),
            retryable: e.retryable,
            reason: e.reason,
            ..Failure::default()
        }
    }
}

impl Failure {
    fn from_response(resp: &Response, retryable: bool, reason: &'static str) -> Failure {
        let status = resp.status.as_u16();
        let data = (!resp.body.is_empty()).then(|| {
            let n = resp.body.len().min(ERROR_DATA_BYTES);
            base64::engine::general_purpose::STANDARD.encode(&resp.body[..n])
        });
        let kne = resp
            .headers
            .iter()
            .filter_map(|(name, value)| {
                let ext = name.as_str().strip_prefix("kne-")?.to_ascii_lowercase();
                let value = value.to_str().ok()?;
                is_valid_attribute_name(&ext).then(|| (ext, value.to_owned()))
            })
            .collect();
        Failure {
            code: Some(status),
            data,
            kne,
            retry_after: retry_after(resp),
            retryable,
            reason,
        }
    }

    /// This failure as the retry driver sees it.
    fn into_attempt<T>(self) -> Attempt<T, Failure> {
        if self.retryable {
            Attempt::Retryable {
                retry_after: self.retry_after,
                failure: self,
            }
        } else {
            Attempt::Fatal(self)
        }
    }
}

/// The Retry-After of a 429 or 503 response (decision 10); other statuses have none.
fn retry_after(resp: &Response) -> Option<Duration> {
    if resp.status != StatusCode::TOO_MANY_REQUESTS
        && resp.status != StatusCode::SERVICE_UNAVAILABLE
    {
        return None;
    }
    resp.headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// Result of one attempt.
enum Outcome {
    /// Delivered: ack the entry.
    Done,
    /// Nothing more to do: the entry was already finished (parked in place), or it is handed back
    /// unfinished because shutdown started.
    Finished,
    /// The attempt failed.
    Failed(Failure),
}

/// Encodes an event for egress: the TTL extension is removed (decision 6).
pub(crate) fn encode(event: &Event, format: Format) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    let body = match format {
        // Binary mode: write the stored event without its TTL header (no event copy).
        Format::Binary => write_binary_egress(event, &mut headers),
        Format::Json => write_structured(&without_ttl(event), &mut headers),
    };
    if let Some(ExtValue::String(tp)) = event.extension("traceparent") {
        if let Ok(v) = HeaderValue::from_str(tp) {
            headers.insert(HeaderName::from_static("traceparent"), v);
        }
    }
    if let Some(ExtValue::String(ts)) = event.extension("tracestate") {
        if let Ok(v) = HeaderValue::from_str(ts) {
            headers.insert(HeaderName::from_static("tracestate"), v);
        }
    }
    (headers, body)
}

/// The trigger's HTTP subscriber, a request-reply [`Sink`]: each attempt POSTs the event encoded in the
/// trigger's format (TTL removed), with `Prefer: reply` and `Kn-Namespace`.
#[derive(Debug)]
pub(crate) struct HttpSink {
    pub(crate) client: HttpClient,
    pub(crate) uri: http::Uri,
    pub(crate) format: Format,
    pub(crate) namespace_header: HeaderValue,
}

impl HttpSink {
    /// The request of an attempt: the event encoded in the trigger's format, `Prefer: reply` and
    /// `Kn-Namespace`.
    fn request(&self, event: &Event) -> (HeaderMap, Bytes) {
        let (mut headers, body) = encode(event, self.format);
        headers.insert(
            HeaderName::from_static("prefer"),
            HeaderValue::from_static("reply"),
        );
        headers.insert(
            HeaderName::from_static("kn-namespace"),
            self.namespace_header.clone(),
        );
        (headers, body)
    }
}

impl Sink for HttpSink {
    fn send<'a>(&'a self, event: &'a Event, timeout: Duration) -> Sending<'a> {
        Box::pin(async move {
            let (headers, body) = self.request(event);
            match self.client.send(&self.uri, headers, body, timeout).await {
                Ok(resp) => Ok(Sent::Answered(resp)),
                Err(e) => Err(send_error(&e)),
            }
        })
    }
}

/// The attempts of one delivery to the trigger's target (its [`Sink`]: HTTP subscriber, KafkaSink or
/// NatsSink); the output says whether the entry is to be acked.
struct ToSubscriber<'a> {
    shared: &'a Shared,
    ctx: &'a TriggerCtx,
    delivery: &'a Delivery,
    slot: &'a mut Slot,
}

impl Attempts for ToSubscriber<'_> {
    type Output = bool;
    type Failure = Failure;

    async fn attempt(&mut self, _retry: u32) -> Attempt<bool, Failure> {
        let outcome = attempt(self.shared, self.ctx, self.delivery, self.slot).await;
        match outcome {
            Outcome::Done => Attempt::Done(true),
            Outcome::Finished => Attempt::Done(false),
            Outcome::Failed(f) => {
                self.ctx.metrics.failed_attempts.inc();
                f.into_attempt()
            }
        }
    }

    async fn pause(&mut self, retry: u32, wait: Duration, failure: &Failure) -> bool {
        let ctx = self.ctx;
        ctx.metrics.retries.inc();
        tracing::debug!(trigger = %ctx.label, event.id = %self.delivery.event.id,
            attempt = retry + 1, reason = failure.reason, ?wait, "Retrying delivery.");
        self.slot.wait_for_retry(self.shared, wait).await
    }
}

/// Delivers one queue entry to the trigger's subscriber and finishes it: ack, dead-letter sink, or park.
/// Returns without acking if the process starts shutting down while waiting to retry (the entry is then
/// redelivered after restart).
///
/// `slot` holds an in-flight permit on entry. Waits for a retry (subscriber or dead-letter sink) give it
/// back for their duration; it holds a permit again on return unless the entry was handed back at
/// shutdown.
pub(crate) async fn deliver(
    shared: &Shared,
    ctx: &TriggerCtx,
    delivery: Delivery,
    slot: &mut Slot,
) {
    let mut attempts = ToSubscriber {
        shared,
        ctx,
        delivery: &delivery,
        slot,
    };
    let failure = match retry(&ctx.policy, &mut attempts).await {
        Retried::Done(true) => {
            finish(shared, ctx, delivery.id).await;
            return;
        }
        Retried::Done(false) | Retried::Interrupted => return,
        Retried::Failed(f) => f,
    };
    let slot = attempts.slot;
    tracing::info!(trigger = %ctx.label, event.id = %delivery.event.id, reason = failure.reason,
        code = ?failure.code, "Delivery failed; dead-lettering.");
    dead_letter(shared, ctx, &delivery, failure, slot).await;
}

/// One attempt to the trigger's sink and the interpretation of what it got back: a one-way sink has the
/// event or failed; an HTTP response is classified and may carry a reply.
async fn attempt(
    shared: &Shared,
    ctx: &TriggerCtx,
    delivery: &Delivery,
    slot: &mut Slot,
) -> Outcome {
    let started = Instant::now();
    let result = ctx.target.send(&delivery.event, ctx.policy.timeout).await;
    ctx.metrics.latency.observe(started.elapsed().as_secs_f64());
    let resp = match result {
        Ok(Sent::Answered(r)) => r,
        Ok(Sent::Stored) => {
            ctx.metrics.delivered.inc();
            return Outcome::Done;
        }
        Err(e) => return Outcome::Failed(e.into()),
    };
    match classify(Some(resp.status.as_u16())) {
        Classification::Retry => {
            return Outcome::Failed(Failure::from_response(&resp, true, "retryable-status"))
        }
        Classification::Fail => {
            return Outcome::Failed(Failure::from_response(&resp, false, "non-retryable-status"))
        }
        Classification::Success => {}
    }
    ctx.metrics.delivered.inc();
    // Decision 4: a 202 body is never a reply.
    if resp.status == StatusCode::ACCEPTED {
        return Outcome::Done;
    }
    match parse_response(&resp.headers, resp.body.clone()) {
        Ok(None) => Outcome::Done,
        Ok(Some(reply)) => handle_reply(shared, ctx, delivery, reply, slot).await,
        Err(e) => {
            let mut f = Failure::from_response(&resp, true, "invalid-reply");
            if f.data.is_none() {
                f.data = Some(format!("invalid reply: {e}"));
            }
            Outcome::Failed(f)
        }
    }
}

/// Re-enqueues a reply into the trigger's broker with the original TTL, decremented (decision 5/6).
async fn handle_reply(
    shared: &Shared,
    ctx: &TriggerCtx,
    delivery: &Delivery,
    mut reply: Event,
    slot: &mut Slot,
) -> Outcome {
    let original = &delivery.event;
    let ttl = original.ttl().unwrap_or(DEFAULT_TTL);
    reply.set_extension(TTL_EXTENSION, ExtValue::Int(ttl));
    let arrival = switchyard_broker::time::now_rfc3339();
    if !reply.stamp_ingress(&arrival) {
        ctx.metrics.loops.inc();
        tracing::warn!(trigger = %ctx.label, event.id = %original.id, reply.id = %reply.id,
            "Reply dropped to the dead-letter path: knativebrokerttl exhausted (event loop).");
        let failure = Failure {
            data: Some("ttl-exhausted".to_owned()),
            reason: "ttl-exhausted",
            ..Failure::default()
        };
        match send_to_dead_letter_sink(shared, ctx, &reply, &failure, slot).await {
            DeadLetter::Accepted => return Outcome::Done,
            // Shutdown during the sink's backoff: no permit; the original is redelivered after restart.
            DeadLetter::HandedBack => return Outcome::Finished,
            DeadLetter::Refused => {}
        }
        // The original delivery is done; the looping reply takes its place in the dead-letter store.
        park(shared, ctx, delivery.id, reply, &failure).await;
        return Outcome::Finished;
    }
    match shared.channel.append(&ctx.broker, vec![reply]).await {
        Ok(()) => {
            ctx.metrics.replies.inc();
            Outcome::Done
        }
        Err(e) => Outcome::Failed(Failure {
            data: Some(format!("reply could not be stored: {e}")),
            retryable: true,
            reason: "reply-storage-failed",
            ..Failure::default()
        }),
    }
}

async fn finish(shared: &Shared, ctx: &TriggerCtx, id: EntryId) {
    if let Err(e) = shared.channel.ack(&ctx.key, id).await {
        tracing::warn!(trigger = %ctx.label, entry = %id, error = %e, "Ack failed; the event will be redelivered.");
    }
}

/// Builds the dead-letter event: the original plus `knativeerror*` and promoted `kne-*` extensions.
pub(crate) fn dead_letter_event(event: &Event, dest: &str, failure: &Failure) -> Event {
    let mut e = event.clone();
    e.remove_extension(TTL_EXTENSION);
    for (k, v) in &failure.kne {
        e.set_extension(k, ExtValue::String(v.clone()));
    }
    e.set_extension("knativeerrordest", ExtValue::String(dest.to_owned()));
    match failure.code {
        Some(code) => e.set_extension("knativeerrorcode", ExtValue::String(code.to_string())),
        None => {
            e.remove_extension("knativeerrorcode");
        }
    }
    match &failure.data {
        Some(d) => e.set_extension("knativeerrordata", ExtValue::String(d.clone())),
        None => {
            e.remove_extension("knativeerrordata");
        }
    }
    e
}

/// What the dead-letter sink did with an event.
enum DeadLetter {
    /// Accepted (2xx).
    Accepted,
    /// No sink, a non-retryable answer, or retries exhausted.
    Refused,
    /// Shutdown started while waiting to retry the sink: the entry is handed back (no permit held).
    HandedBack,
}

/// The attempts of one event to the trigger's dead-letter sink (no metrics: the subscriber's count).
struct ToDeadLetterSink<'a> {
    shared: &'a Shared,
    ctx: &'a TriggerCtx,
    uri: &'a http::Uri,
    headers: HeaderMap,
    body: Bytes,
    slot: &'a mut Slot,
}

impl Attempts for ToDeadLetterSink<'_> {
    type Output = ();
    type Failure = ();

    async fn attempt(&mut self, _retry: u32) -> Attempt<(), ()> {
        let ctx = self.ctx;
        let started = Instant::now();
        let result = self
            .shared
            .client
            .post(
                self.uri,
                &self.headers,
                self.body.clone(),
                ctx.policy.timeout,
            )
            .await;
        ctx.metrics.latency.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(resp) => match classify(Some(resp.status.as_u16())) {
                Classification::Success => Attempt::Done(()),
                Classification::Retry => Attempt::Retryable {
                    failure: (),
                    retry_after: retry_after(&resp),
                },
                Classification::Fail => Attempt::Fatal(()),
            },
            // As `Failure::from_send`: only an unusable destination is not worth retrying.
            Err(SendError::Destination(_)) => Attempt::Fatal(()),
            Err(_) => Attempt::Retryable {
                failure: (),
                retry_after: None,
            },
        }
    }

    async fn pause(&mut self, _retry: u32, wait: Duration, _failure: &()) -> bool {
        self.slot.wait_for_retry(self.shared, wait).await
    }
}

/// Sends to the dead-letter sink with the trigger's retry policy (waits give the permit back, as for the
/// subscriber).
async fn send_to_dead_letter_sink(
    shared: &Shared,
    ctx: &TriggerCtx,
    event: &Event,
    failure: &Failure,
    slot: &mut Slot,
) -> DeadLetter {
    let Some((dls_uri, _)) = &ctx.dead_letter_sink else {
        return DeadLetter::Refused;
    };
    let dl = dead_letter_event(event, &ctx.subscriber_str, failure);
    let (mut headers, body) = encode(&dl, ctx.format);
    headers.insert("kn-namespace", ctx.namespace_header.clone());
    let mut attempts = ToDeadLetterSink {
        shared,
        ctx,
        uri: dls_uri,
        headers,
        body,
        slot,
    };
    match retry(&ctx.policy, &mut attempts).await {
        Retried::Done(()) => DeadLetter::Accepted,
        Retried::Failed(()) => DeadLetter::Refused,
        Retried::Interrupted => DeadLetter::HandedBack,
    }
}

async fn dead_letter(
    shared: &Shared,
    ctx: &TriggerCtx,
    delivery: &Delivery,
    failure: Failure,
    slot: &mut Slot,
) {
    match send_to_dead_letter_sink(shared, ctx, &delivery.event, &failure, slot).await {
        DeadLetter::Accepted => {
            ctx.metrics.dead_lettered.inc();
            finish(shared, ctx, delivery.id).await;
            return;
        }
        DeadLetter::HandedBack => return,
        DeadLetter::Refused => {}
    }
    if shared.is_shutting_down() && ctx.dead_letter_sink.is_some() {
        // Handed back: the entry stays queued and is retried after restart.
        return;
    }
    let reason = if ctx.dead_letter_sink.is_some() {
        "dead-letter-sink-failed"
    } else if failure.retryable {
        "retries-exhausted"
    } else {
        "non-retryable"
    };
    let f = Failure { reason, ..failure };
    park(shared, ctx, delivery.id, (*delivery.event).clone(), &f).await;
}

/// Parks an event in the local dead-letter store, removing queue entry `id` atomically.
async fn park(shared: &Shared, ctx: &TriggerCtx, id: EntryId, event: Event, failure: &Failure) {
    let record = ParkRecord {
        reason: failure.reason.to_owned(),
        error_dest: Some(ctx.subscriber_str.clone()),
        error_code: failure.code,
        error_data: failure.data.clone(),
        event,
    };
    match shared.channel.park(&ctx.key, id, record).await {
        Ok(()) => {
            ctx.metrics.parked.inc();
        }
        Err(e) => tracing::error!(trigger = %ctx.label, error = %e,
            "Could not park a dead-lettered event; it stays queued and will be redelivered."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        let mut e = Event::new("1", "/s", "t");
        e.set_extension(TTL_EXTENSION, ExtValue::Int(9));
        e.set_extension("traceparent", ExtValue::String("00-abc-def-01".into()));
        e
    }

    #[test]
    fn egress_removes_ttl_and_propagates_traceparent() {
        let (headers, _) = encode(&event(), Format::Binary);
        assert!(headers.get("ce-knativebrokerttl").is_none());
        assert_eq!(headers.get("ce-id").unwrap(), "1");
        assert_eq!(headers.get("traceparent").unwrap(), "00-abc-def-01");
        let (headers, body) = encode(&event(), Format::Json);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v.get("knativebrokerttl").is_none());
        assert_eq!(
            headers.get("content-type").unwrap(),
            "application/cloudevents+json"
        );
    }

    #[test]
    fn failure_from_response_keeps_code_truncated_base64_body_and_kne_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("kne-Reason", HeaderValue::from_static("bad"));
        headers.insert("kne-not_valid", HeaderValue::from_static("x"));
        headers.insert("retry-after", HeaderValue::from_static("3"));
        let resp = Response {
            status: StatusCode::SERVICE_UNAVAILABLE,
            headers,
            body: Bytes::from(vec![b'a'; 2000]),
        };
        let f = Failure::from_response(&resp, true, "retryable-status");
        assert_eq!(f.code, Some(503));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(f.data.as_ref().unwrap())
            .unwrap();
        assert_eq!(decoded.len(), ERROR_DATA_BYTES);
        assert_eq!(f.kne, vec![("reason".to_owned(), "bad".to_owned())]);
        assert_eq!(f.retry_after, Some(Duration::from_secs(3)));

        let dl = dead_letter_event(&event(), "http://sub/", &f);
        assert_eq!(
            dl.extension("knativeerrordest"),
            Some(&ExtValue::String("http://sub/".into()))
        );
        assert_eq!(
            dl.extension("knativeerrorcode"),
            Some(&ExtValue::String("503".into()))
        );
        assert_eq!(
            dl.extension("reason"),
            Some(&ExtValue::String("bad".into()))
        );
        assert!(dl.extension(TTL_EXTENSION).is_none());
    }

    #[test]
    fn transport_failure_has_no_code_and_error_text_as_data() {
        let f = Failure::from(send_error(&SendError::Transport(
            "connection refused".into(),
        )));
        assert!(f.retryable);
        let dl = dead_letter_event(&event(), "http://sub/", &f);
        assert!(dl.extension("knativeerrorcode").is_none());
        assert_eq!(
            dl.extension("knativeerrordata"),
            Some(&ExtValue::String(
                "dispatch error: connection refused".into()
            ))
        );
    }
}
