//! What a cluster change costs the data plane, against the same change from a config file.
//!
//! 1 Broker + 1,000 Triggers (exact `type` filters, resolved subscribers), as the controller leaves them.
//! - `file_reload/1000`: the standalone hot-reload path, `load_sources` over the equivalent YAML file
//!   (the baseline);
//! - `cluster_rebuild/1000`: the Kubernetes path for a change that alters the topology: `select` (accepted
//!   versions, translation to manifests) + `load_tolerant`;
//! - `cluster_no_change/1000`: the common case of a status-only update: `select`, whose result equals the
//!   previous one, so nothing is loaded or applied.
//!
//! Run with `cargo bench -p switchyard-kube --bench dataplane`; compare the ratios, not the absolute times.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use switchyard_broker::config::load::load_sources;
use switchyard_kube::crd::{
    Broker, BrokerSpec, BrokerStatus, Condition, Destination, Trigger, TriggerFilter, TriggerStatus,
};
use switchyard_kube::dataplane::{load_tolerant, select, Accepted, Others};
use switchyard_kube::Settings;

const N: usize = 1000;

fn cond(t: &str) -> Condition {
    Condition {
        type_: t.into(),
        status: "True".into(),
        ..Condition::default()
    }
}

fn cluster() -> (Vec<Arc<Broker>>, Vec<Arc<Trigger>>) {
    let mut b = Broker::new("default", BrokerSpec::default());
    b.metadata.namespace = Some("default".into());
    b.metadata.generation = Some(1);
    b.metadata.resource_version = Some("1".into());
    b.status = Some(BrokerStatus {
        observed_generation: Some(1),
        conditions: vec![cond("Ready"), cond("SpecValid")],
        ..BrokerStatus::default()
    });
    let triggers = (0..N)
        .map(|i| {
            let mut t = Trigger::new(
                &format!("t{i}"),
                switchyard_broker::model::eventing::TriggerSpec {
                    broker: "default".into(),
                    filter: Some(TriggerFilter {
                        attributes: Some([("type".to_owned(), format!("com.example.t{i}"))].into()),
                    }),
                    subscriber: Destination {
                        uri: Some(format!("http://sink-{i}.default.svc.cluster.local/")),
                        ..Destination::default()
                    },
                    ..Default::default()
                }
                .into(),
            );
            t.metadata.namespace = Some("default".into());
            t.metadata.generation = Some(1);
            t.metadata.resource_version = Some(format!("{}", 100 + i));
            t.status = Some(TriggerStatus {
                observed_generation: Some(1),
                conditions: vec![cond("Ready"), cond("SubscriberResolved"), cond("SpecValid")],
                subscriber_uri: Some(format!("http://sink-{i}.default.svc.cluster.local/")),
                ..TriggerStatus::default()
            });
            Arc::new(t)
        })
        .collect();
    (vec![Arc::new(b)], triggers)
}

fn file() -> Vec<(String, String)> {
    let mut text = String::from(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default, namespace: default}\n",
    );
    for i in 0..N {
        text.push_str(&format!(
            "---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {{name: t{i}, namespace: default}}\n\
             spec:\n  broker: default\n  filter: {{attributes: {{type: com.example.t{i}}}}}\n  \
             subscriber: {{uri: 'http://sink-{i}.default.svc.cluster.local/'}}\n"
        ));
    }
    vec![("config.yaml".to_owned(), text)]
}

fn bench(c: &mut Criterion) {
    let settings = Settings::default();
    let others = Others::default();
    let (brokers, triggers) = cluster();
    let sources = file();
    assert_eq!(load_sources(&sources).unwrap().topology.triggers.len(), N);
    let mut g = c.benchmark_group("dataplane");
    g.sample_size(20);
    g.bench_function("file_reload/1000", |b| {
        b.iter(|| black_box(load_sources(black_box(&sources)).unwrap()))
    });
    g.bench_function("cluster_rebuild/1000", |b| {
        b.iter(|| {
            let mut accepted = Accepted::default();
            let selected = select(&brokers, &triggers, &others, &settings, &mut accepted);
            black_box(load_tolerant(selected))
        })
    });
    let mut accepted = Accepted::default();
    let previous = select(&brokers, &triggers, &others, &settings, &mut accepted);
    assert_eq!(load_tolerant(previous.clone()).triggers.len(), N);
    g.bench_function("cluster_no_change/1000", |b| {
        b.iter(|| {
            let selected = select(&brokers, &triggers, &others, &settings, &mut accepted);
            black_box(selected == previous)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
