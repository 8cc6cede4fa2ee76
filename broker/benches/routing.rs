//! Routing cost per event: 1 trigger vs 1,000 triggers of which 1% match the event (each trigger filters
//! on a distinct exact type; 10 triggers share the event's type). With the type index the cost should
//! stay near-flat as triggers grow. Run with `cargo bench -p switchyard-broker --bench routing`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use switchyard_broker::config::{BrokerKey, TriggerConfig, TriggerKey, DEFAULT_MAX_INFLIGHT};
use switchyard_broker::event::{Event, ExtValue};
use switchyard_broker::filter::Filter;
use switchyard_broker::routing::RoutingTable;

fn trigger(i: usize, filter: Filter) -> Arc<TriggerConfig> {
    Arc::new(TriggerConfig {
        key: TriggerKey::new("default", format!("t{i}")),
        broker: BrokerKey::new("default", "default"),
        filter,
        subscriber: switchyard_broker::config::DestinationConfig::Url(format!("http://sink/{i}")),
        delivery: None,
        max_inflight: DEFAULT_MAX_INFLIGHT,
        delivery_order: Default::default(),
    })
}

fn exact_type(ty: &str) -> Filter {
    Filter::Attributes(vec![("type".to_owned(), ty.to_owned())])
}

fn event() -> Event {
    let mut e = Event::new("id-1", "/bench/source", "com.example.hit");
    e.set_extension("region", ExtValue::String("eu".into()));
    e
}

fn bench_route(c: &mut Criterion) {
    let e = event();

    let one = RoutingTable::new(vec![trigger(0, exact_type("com.example.hit"))]);
    // 1,000 triggers: 10 (1%) on the event's type, 990 on distinct other types.
    let thousand = RoutingTable::new(
        (0..1000)
            .map(|i| {
                if i % 100 == 0 {
                    trigger(i, exact_type("com.example.hit"))
                } else {
                    trigger(i, exact_type(&format!("com.example.other.{i}")))
                }
            })
            .collect(),
    );
    // Same mix, but the matching triggers also need an unindexable check (prefix on source), and 1% of
    // triggers cannot be indexed at all (prefix on type): the "always evaluate" path.
    let mixed = RoutingTable::new(
        (0..1000)
            .map(|i| match i % 100 {
                0 => trigger(
                    i,
                    Filter::All(vec![
                        Filter::Exact(vec![("type".into(), "com.example.hit".into())]),
                        Filter::Prefix(vec![("source".into(), "/bench".into())]),
                    ]),
                ),
                50 => trigger(
                    i,
                    Filter::Prefix(vec![("type".into(), format!("com.example.p{i}"))]),
                ),
                _ => trigger(i, exact_type(&format!("com.example.other.{i}"))),
            })
            .collect(),
    );

    let mut out = Vec::with_capacity(16);
    let mut group = c.benchmark_group("route");
    group.bench_function("1_trigger", |b| {
        b.iter(|| {
            out.clear();
            one.route(black_box(&e), &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("1000_triggers_1pct_match", |b| {
        b.iter(|| {
            out.clear();
            thousand.route(black_box(&e), &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("1000_triggers_mixed", |b| {
        b.iter(|| {
            out.clear();
            mixed.route(black_box(&e), &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("1000_triggers_brute_force_baseline", |b| {
        b.iter(|| {
            out.clear();
            let e = black_box(&e);
            out.extend(
                thousand
                    .triggers()
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.filter.matches(e))
                    .map(|(i, _)| i),
            );
            black_box(out.len())
        })
    });
    group.finish();
    assert_eq!(out.len(), 10);
}

criterion_group!(benches, bench_route);
criterion_main!(benches);
