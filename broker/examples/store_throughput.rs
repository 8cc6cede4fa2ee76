//! Append throughput of the embedded store with N concurrent single-event appenders.
//!
//! `cargo run --release -p switchyard-broker --example store_throughput -- [TASKS] [consume] [SECONDS]`
//!
//! Each of TASKS tasks appends one ~1 KiB event at a time in a loop for SECONDS (default 5) against a
//! store on a temp dir; with `consume`, one subscriber acks every delivery. Prints appends/s, commits and
//! events per commit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_broker::channel::store::{StoreChannel, StoreOptions};
use switchyard_broker::channel::Channel;
use switchyard_broker::config::{BrokerConfig, BrokerKey, Topology, TriggerConfig, TriggerKey};
use switchyard_broker::event::{Data, Event};
use switchyard_broker::filter::Filter;

fn topology(broker: &BrokerKey, trigger: &TriggerKey) -> Arc<Topology> {
    Arc::new(Topology::new(
        vec![BrokerConfig {
            key: broker.clone(),
            class: "MTChannelBasedBroker".into(),
            delivery: None,
            max_backlog: None,
            config: BTreeMap::new(),
            backend: Default::default(),
        }],
        vec![TriggerConfig {
            key: trigger.clone(),
            broker: broker.clone(),
            filter: Filter::True,
            subscriber: switchyard_broker::config::DestinationConfig::Url(
                "http://sink.example".into(),
            ),
            delivery: None,
            max_inflight: 100,
            delivery_order: Default::default(),
        }],
    ))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tasks: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(32);
    let consume = args.iter().any(|a| a == "consume");
    let seconds: u64 = args
        .iter()
        .skip(1)
        .find_map(|s| s.parse().ok())
        .unwrap_or(5);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let ch = StoreChannel::open(dir.path(), StoreOptions::default()).expect("open");
    let broker = BrokerKey::new("default", "b");
    let trigger = TriggerKey::new("default", "t");
    rt.block_on(ch.apply_topology(topology(&broker, &trigger)))
        .expect("topology");
    let mut template = Event::new("id-0", "/bench", "com.example.bench");
    template.datacontenttype = Some("application/octet-stream".into());
    template.data = Data::Binary(bytes::Bytes::from(vec![b'x'; 1024]));

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let before = ch.stats().expect("stats");
    let (appended, elapsed) = rt.block_on(async {
        let consumer = consume.then(|| {
            let ch = ch.clone();
            let stop = stop.clone();
            let acked = acked.clone();
            let trigger = trigger.clone();
            tokio::spawn(async move {
                let mut sub = ch.subscribe(&trigger).expect("subscribe");
                while !stop.load(Ordering::Relaxed) {
                    let next = tokio::time::timeout(Duration::from_millis(100), sub.next()).await;
                    match next {
                        Ok(Some(d)) => {
                            let ch = ch.clone();
                            let trigger = trigger.clone();
                            let acked = acked.clone();
                            // Acks run concurrently, as the dispatcher's would.
                            tokio::spawn(async move {
                                // The run may end (and the store close) with acks in flight.
                                if ch.ack(&trigger, d.id).await.is_ok() {
                                    acked.fetch_add(1, Ordering::Relaxed);
                                }
                            });
                        }
                        Ok(None) => break,
                        Err(_) => {}
                    }
                }
            })
        });
        let start = Instant::now();
        let deadline = start + Duration::from_secs(seconds);
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let ch = ch.clone();
                let broker = broker.clone();
                let template = template.clone();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        ch.append(&broker, vec![template.clone()])
                            .await
                            .expect("append");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for h in handles {
            total += h.await.expect("task");
        }
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        if let Some(c) = consumer {
            c.await.expect("consumer");
        }
        (total, elapsed)
    });
    let after = ch.stats().expect("stats");
    let commits = after.commits - before.commits;
    let durable = after.durable_commits - before.durable_commits;
    let batches = after.appends - before.appends;
    println!(
        "tasks={tasks} consume={consume} appends/s={:.0} appends={appended} acked={} commits={commits} durable={durable} events/durable-commit={:.1} ms/commit={:.3} left(events={} queue={})",
        appended as f64 / elapsed.as_secs_f64(),
        acked.load(Ordering::Relaxed),
        batches as f64 / durable.max(1) as f64,
        elapsed.as_secs_f64() * 1000.0 / commits.max(1) as f64,
        after.events,
        after.queue_entries,
    );
    rt.block_on(ch.close()).expect("close");
}
