//! JetStream baseline for `switchyard bench --nats <url>`: what plain async-nats achieves against the same
//! nats-server, without Switchyard in between.
//!
//! [`baseline`] publishes `events` messages with the binary-mode CloudEvent headers a JetStream-backed broker
//! writes (`ce-specversion`, `ce-id`, `ce-source`, `ce-type`, `ce-datacontenttype`, `Nats-Msg-Id`) to a
//! stream of its own, from `concurrency` tasks that each wait for every PubAck, while a durable pull consumer
//! reads them back and acks them. It reports the publish throughput and the latency from the publish call
//! to the message's arrival at the consumer.

use super::BaselineResult;
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs the baseline; errors are returned as text (it is a benchmark helper).
pub async fn baseline(
    url: &str,
    events: usize,
    payload: &[u8],
    concurrency: usize,
) -> Result<BaselineResult, String> {
    let client = async_nats::connect(url)
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    let js = jetstream::new(client);
    let name = format!("SWITCHYARD_BENCH_BASELINE_{}", std::process::id());
    let subject = format!("switchyard.bench.baseline.{}", std::process::id());
    let _ = js.delete_stream(&name).await;
    let s = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await
        .map_err(|e| format!("stream: {e}"))?;
    let consumer: consumer::PullConsumer = s
        .create_consumer(consumer::pull::Config {
            durable_name: Some("bench".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("consumer: {e}"))?;
    let base = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..events).map(|_| AtomicU64::new(0)).collect());
    let consumed = Arc::new(AtomicUsize::new(0));
    let mut latencies = Vec::with_capacity(events);
    let reader = {
        let sent = sent.clone();
        let consumed = consumed.clone();
        tokio::spawn(async move {
            let mut lat = Vec::with_capacity(events);
            let mut messages = match consumer.messages().await {
                Ok(m) => m,
                Err(_) => return lat,
            };
            while consumed.load(Ordering::Relaxed) < events {
                let Ok(Some(Ok(m))) =
                    tokio::time::timeout(Duration::from_secs(30), messages.next()).await
                else {
                    break;
                };
                let now = base.elapsed().as_nanos() as u64;
                let i = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("ce-id"))
                    .and_then(|v| v.as_str().parse::<usize>().ok());
                if let Some(t0) = i
                    .and_then(|i| sent.get(i))
                    .map(|s| s.load(Ordering::Relaxed))
                {
                    if t0 > 0 && now >= t0 {
                        lat.push(now - t0);
                    }
                }
                let _ = m.ack().await;
                consumed.fetch_add(1, Ordering::Relaxed);
            }
            lat
        })
    };
    let next = Arc::new(AtomicUsize::new(0));
    let payload = bytes::Bytes::copy_from_slice(payload);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (js, next, sent, payload, subject) = (
            js.clone(),
            next.clone(),
            sent.clone(),
            payload.clone(),
            subject.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= events {
                    return Ok::<(), String>(());
                }
                let id = i.to_string();
                let mut h = async_nats::HeaderMap::new();
                h.insert("ce-specversion", "1.0");
                h.insert("ce-id", id.as_str());
                h.insert("ce-source", "/bench");
                h.insert("ce-type", "bench.type0");
                h.insert("ce-datacontenttype", "application/octet-stream");
                h.insert("Nats-Msg-Id", format!("/bench/{id}").as_str());
                sent[i].store(base.elapsed().as_nanos() as u64 + 1, Ordering::Relaxed);
                js.publish_with_headers(subject.clone(), h, payload.clone())
                    .await
                    .map_err(|e| e.to_string())?
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let elapsed = started.elapsed();
    latencies.extend(reader.await.map_err(|e| e.to_string())?);
    latencies.sort_unstable();
    let pct = |p: f64| {
        if latencies.is_empty() {
            f64::NAN
        } else {
            latencies[((latencies.len() as f64 - 1.0) * p).round() as usize] as f64 / 1e6
        }
    };
    let _ = js.delete_stream(&name).await;
    Ok(BaselineResult {
        events_per_sec: events as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        consumed: consumed.load(Ordering::Relaxed),
    })
}
