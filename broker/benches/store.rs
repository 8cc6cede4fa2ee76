//! Append throughput of the embedded store on a temp dir (durable commits, group commit).
//!
//! Each iteration: `APPENDERS` tasks each append one batch of `batch` ~1 KiB events concurrently;
//! throughput is reported in events/s. Run: `cargo bench -p switchyard-broker --bench store`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_broker::channel::store::{StoreChannel, StoreOptions};
use switchyard_broker::channel::Channel;
use switchyard_broker::config::{BrokerConfig, BrokerKey, Topology, TriggerConfig, TriggerKey};
use switchyard_broker::event::{Data, Event};
use switchyard_broker::filter::Filter;

const APPENDERS: usize = 16;

fn topology() -> Arc<Topology> {
    let broker = BrokerKey::new("default", "b");
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
            key: TriggerKey::new("default", "t"),
            broker,
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

fn event() -> Event {
    let mut e = Event::new("id-0", "/bench", "com.example.bench");
    e.datacontenttype = Some("application/octet-stream".into());
    e.data = Data::Binary(bytes::Bytes::from(vec![b'x'; 1000]));
    e
}

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let ch = StoreChannel::open(dir.path(), StoreOptions::default()).expect("open");
    rt.block_on(ch.apply_topology(topology()))
        .expect("topology");
    let broker = BrokerKey::new("default", "b");
    let template = event();

    let mut group = c.benchmark_group("store_append");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for batch in [1usize, 16, 256] {
        group.throughput(Throughput::Elements((batch * APPENDERS) as u64));
        group.bench_with_input(
            BenchmarkId::new(format!("{APPENDERS}_appenders_batch"), batch),
            &batch,
            |b, &batch| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        let tasks: Vec<_> = (0..APPENDERS)
                            .map(|_| {
                                let ch = ch.clone();
                                let broker = broker.clone();
                                let template = template.clone();
                                tokio::spawn(async move {
                                    for _ in 0..iters {
                                        // Cheap: the 1 KiB payload is a shared `Bytes`.
                                        let events = vec![template.clone(); batch];
                                        ch.append(&broker, events).await.expect("append");
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.expect("task");
                        }
                        start.elapsed()
                    })
                });
            },
        );
    }
    group.finish();
    rt.block_on(ch.close()).expect("close");
}

criterion_group!(benches, append);
criterion_main!(benches);
