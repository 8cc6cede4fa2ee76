//! CESQL evaluation cost per event for typical trigger filters (parse once, evaluate many times), plus
//! the one-off parse cost. Run with `cargo bench -p switchyard-broker --bench cesql`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use switchyard_broker::cesql::Expression;
use switchyard_broker::event::{Event, ExtValue};

/// A typical order event: core attributes, a time, and a few extensions.
fn event() -> Event {
    let mut e = Event::new(
        "4f6e1c2a-8d7b-4c1e-9a53-2b1f0e7d9c11",
        "https://shop/orders/eu-west",
        "com.example.order",
    );
    e.time = Some("2024-05-01T12:34:56.789Z".into());
    e.datacontenttype = Some("application/json".into());
    e.set_extension("myext", ExtValue::String("b".into()));
    e.set_extension("region", ExtValue::String("eu".into()));
    e.set_extension("priority", ExtValue::Int(3));
    e
}

const EXPRESSIONS: &[(&str, &str)] = &[
    (
        "type_eq_and_source_like",
        "type = 'com.example.order' AND source LIKE 'https://shop/%'",
    ),
    (
        "in_and_not_exists",
        "myext IN ('a','b','c') AND NOT EXISTS subject",
    ),
];

fn bench_cesql(c: &mut Criterion) {
    let e = event();
    for (name, text) in EXPRESSIONS {
        let expr = Expression::parse(text).expect("bench expression parses");
        assert!(expr.matches(&e), "{text} must match the bench event");
        c.bench_function(&format!("cesql/matches/{name}"), |b| {
            b.iter(|| black_box(&expr).matches(black_box(&e)))
        });
        c.bench_function(&format!("cesql/parse/{name}"), |b| {
            b.iter(|| Expression::parse(black_box(text)))
        });
    }
    // Floor: the cheapest possible expression.
    let literal = Expression::parse("TRUE").expect("parses");
    c.bench_function("cesql/matches/literal_true", |b| {
        b.iter(|| black_box(&literal).matches(black_box(&e)))
    });
    // A miss on a missing attribute: the error path must stay allocation-free too.
    let missing = Expression::parse("nosuchext = 'x'").expect("parses");
    c.bench_function("cesql/matches/missing_attribute", |b| {
        b.iter(|| black_box(&missing).matches(black_box(&e)))
    });
}

criterion_group!(benches, bench_cesql);
criterion_main!(benches);
