//! Kafka baseline for `switchyard bench --kafka <bootstrap>`: what plain rdkafka achieves against the
//! same Kafka cluster, without Switchyard in between.
//!
//! [`baseline`] produces `events` records (idempotent, `acks=all`) with the binary-mode CloudEvent headers
//! a Kafka-backed broker writes (`ce_id`, `ce_source`, `ce_type`, `ce_specversion`, `content-type`), from
//! `concurrency` tasks that each keep one record in flight, while a consumer group (joined before the first
//! record is sent) reads them back. It reports the produce throughput and the end-to-end latency from the
//! call to `send` to the record's arrival at the consumer.

use super::BaselineResult;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Message;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Partitions of the topic when [`baseline`] has to create it.
pub const BASELINE_PARTITIONS: i32 = 4;
/// How long the consumer may take to join its group.
const JOIN_DEADLINE: Duration = Duration::from_secs(60);
/// How long the consumer may lag behind the last delivery report.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);

/// Why a Kafka baseline run failed.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// A producer, consumer or admin client could not be created.
    #[error("creating a Kafka client: {0}")]
    Client(#[source] KafkaError),
    /// The topic could not be created.
    #[error("creating topic {topic}: {source}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        #[source]
        source: KafkaError,
    },
    /// Subscribing the consumer failed.
    #[error("subscribing to {topic}: {source}")]
    Subscribe {
        /// The topic.
        topic: String,
        /// The client's answer.
        #[source]
        source: KafkaError,
    },
    /// The consumer got no partitions within the join deadline.
    #[error("the consumer group did not get an assignment within {0:?}")]
    JoinTimeout(Duration),
    /// The warm-up record (sent before the measurement) was not acknowledged.
    #[error("producing the warm-up record: {0}")]
    Warmup(#[source] KafkaError),
    /// A record was not acknowledged.
    #[error("producing record {index}: {source}")]
    Produce {
        /// Index of the record in the run.
        index: usize,
        /// The delivery error.
        #[source]
        source: KafkaError,
    },
}

fn client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("retry.backoff.ms", "10")
        .set("retry.backoff.max.ms", "200")
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "500");
    c
}

/// Runs the baseline against `bootstrap`: `events` records of `payload` to `topic` (created with
/// [`BASELINE_PARTITIONS`] partitions when missing) from `concurrency` concurrent senders, consumed by a
/// fresh consumer group. Records of other runs in the same topic are ignored (matched by `ce_source`).
pub async fn baseline(
    bootstrap: &str,
    topic: &str,
    events: usize,
    payload: &[u8],
    concurrency: usize,
) -> Result<BaselineResult, BaselineError> {
    ensure_topic(bootstrap, topic).await?;
    let run = format!(
        "switchyard-bench/{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );

    let producer: FutureProducer = client(bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", "30000")
        .create()
        .map_err(BaselineError::Client)?;
    // An idempotent producer gets its producer id only after its first broker connection (librdkafka
    // retries every 500 ms): warm it up with a record the consumer ignores (no `ce_id`).
    let warmup = {
        let (producer, topic, run) = (producer.clone(), topic.to_owned(), run.clone());
        tokio::spawn(async move {
            let record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&topic).headers(OwnedHeaders::new().insert(Header {
                    key: "ce_source",
                    value: Some(run.as_bytes()),
                }));
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map(|_| ())
                .map_err(|(source, _)| BaselineError::Warmup(source))
        })
    };

    let consumer: Arc<StreamConsumer> = Arc::new(
        client(bootstrap)
            .set("group.id", &run)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .set("partition.assignment.strategy", "range")
            .set("fetch.wait.max.ms", "10")
            .create()
            .map_err(BaselineError::Client)?,
    );
    consumer
        .subscribe(&[topic])
        .map_err(|source| BaselineError::Subscribe {
            topic: topic.to_owned(),
            source,
        })?;

    let origin = Instant::now();
    // Send time of record i in ns since `origin` (+1, so 0 means "not sent yet").
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..events).map(|_| AtomicU64::new(0)).collect());
    // Produce→consume latencies in ns, one per record of this run received.
    let latencies = Arc::new(parking_lot::Mutex::new(Vec::with_capacity(events)));
    let reader = {
        let (consumer, sent, latencies, run) = (
            consumer.clone(),
            sent.clone(),
            latencies.clone(),
            run.clone(),
        );
        tokio::spawn(async move {
            loop {
                let m = match consumer.recv().await {
                    Ok(m) => m,
                    Err(_) => {
                        // Transient (a broker hiccup): the client retries by itself.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let now = origin.elapsed().as_nanos() as u64;
                let Some(hs) = m.headers() else { continue };
                let (mut id, mut ours) = (None, false);
                for h in hs.iter() {
                    match h.key {
                        "ce_id" => {
                            id = h
                                .value
                                .and_then(|v| std::str::from_utf8(v).ok())
                                .and_then(|v| v.parse::<usize>().ok())
                        }
                        "ce_source" => ours = h.value == Some(run.as_bytes()),
                        _ => {}
                    }
                }
                let Some(i) = id.filter(|_| ours) else {
                    continue;
                };
                let Some(at) = sent.get(i).map(|s| s.load(Ordering::Acquire)) else {
                    continue;
                };
                if at > 0 {
                    latencies.lock().push(now.saturating_sub(at - 1));
                }
            }
        })
    };

    // Join the group before producing, so the latency does not include the join.
    let join_deadline = Instant::now() + JOIN_DEADLINE;
    while consumer.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
        if Instant::now() > join_deadline {
            reader.abort();
            return Err(BaselineError::JoinTimeout(JOIN_DEADLINE));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if let Ok(Err(e)) = warmup.await {
        reader.abort();
        return Err(e);
    }

    let next = Arc::new(AtomicUsize::new(0));
    let payload: Arc<[u8]> = payload.into();
    let started = Instant::now();
    let mut senders = Vec::with_capacity(concurrency.max(1));
    for _ in 0..concurrency.max(1) {
        let (producer, next, sent, payload, topic, run) = (
            producer.clone(),
            next.clone(),
            sent.clone(),
            payload.clone(),
            topic.to_owned(),
            run.clone(),
        );
        senders.push(tokio::spawn(async move {
            let mut id = String::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= events {
                    return Ok(());
                }
                id.clear();
                {
                    use std::fmt::Write;
                    let _ = write!(id, "{i}");
                }
                let headers = OwnedHeaders::new_with_capacity(5)
                    .insert(Header {
                        key: "ce_id",
                        value: Some(id.as_bytes()),
                    })
                    .insert(Header {
                        key: "ce_source",
                        value: Some(run.as_bytes()),
                    })
                    .insert(Header {
                        key: "ce_type",
                        value: Some(b"dev.switchyard.bench".as_slice()),
                    })
                    .insert(Header {
                        key: "ce_specversion",
                        value: Some(b"1.0".as_slice()),
                    })
                    .insert(Header {
                        key: "content-type",
                        value: Some(b"application/octet-stream".as_slice()),
                    });
                let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic)
                    .payload(&payload[..])
                    .headers(headers);
                sent[i].store(origin.elapsed().as_nanos() as u64 + 1, Ordering::Release);
                if let Err((source, _)) = producer.send(record, Duration::from_secs(30)).await {
                    return Err(BaselineError::Produce { index: i, source });
                }
            }
        }));
    }
    let mut first_err = None;
    for s in senders {
        match s.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {}
        }
    }
    let produce_secs = started.elapsed().as_secs_f64();
    if let Some(e) = first_err {
        reader.abort();
        return Err(e);
    }

    let drain_deadline = Instant::now() + DRAIN_DEADLINE;
    while latencies.lock().len() < events && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    reader.abort();
    let latencies = std::mem::take(&mut *latencies.lock());
    let consumed = latencies.len();
    let (p50_ms, p99_ms) = percentiles(latencies);
    Ok(BaselineResult {
        events_per_sec: if produce_secs > 0.0 {
            events as f64 / produce_secs
        } else {
            0.0
        },
        p50_ms,
        p99_ms,
        consumed,
    })
}

/// p50 and p99 in ms of latencies in ns (0 for an empty set).
fn percentiles(mut ns: Vec<u64>) -> (f64, f64) {
    if ns.is_empty() {
        return (0.0, 0.0);
    }
    ns.sort_unstable();
    let at = |q: f64| {
        let i = ((ns.len() as f64 * q).ceil() as usize).clamp(1, ns.len()) - 1;
        ns[i] as f64 / 1e6
    };
    (at(0.50), at(0.99))
}

async fn ensure_topic(bootstrap: &str, topic: &str) -> Result<(), BaselineError> {
    let admin: AdminClient<DefaultClientContext> =
        client(bootstrap).create().map_err(BaselineError::Client)?;
    let new = NewTopic::new(topic, BASELINE_PARTITIONS, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let err = |source| BaselineError::CreateTopic {
        topic: topic.to_owned(),
        source,
    };
    for r in admin.create_topics([&new], &opts).await.map_err(err)? {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(err(KafkaError::AdminOp(code))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::percentiles;

    #[test]
    fn percentiles_of_a_known_set() {
        let ns: Vec<u64> = (1..=100).map(|i| i * 1_000_000).collect();
        assert_eq!(percentiles(ns), (50.0, 99.0));
        assert_eq!(percentiles(vec![]), (0.0, 0.0));
        assert_eq!(percentiles(vec![3_000_000]), (3.0, 3.0));
    }
}
