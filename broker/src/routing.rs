//! Per-broker routing: which triggers an event matches, evaluated once per broker.
//!
//! Most triggers filter on an exact event `type`. The table indexes those by type, so routing an event
//! evaluates only the triggers of its type plus the ones that cannot be indexed ("always evaluate"): the
//! cost does not grow with the number of triggers that filter on other types.

use crate::config::spec::TriggerConfig;
use crate::event::Event;
use crate::filter::Filter;
use std::collections::HashMap;
use std::sync::Arc;

/// The compiled set of a broker's triggers with an index on exact keys.
#[derive(Debug, Default)]
pub struct RoutingTable {
    triggers: Vec<Arc<TriggerConfig>>,
    /// Exact `type` value → indices (increasing) of the triggers that require it.
    by_type: HashMap<String, Vec<usize>>,
    /// Indices (increasing) of the triggers that must be evaluated for every event.
    always: Vec<usize>,
}

impl RoutingTable {
    /// Builds the table.
    pub fn new(triggers: Vec<Arc<TriggerConfig>>) -> RoutingTable {
        let mut by_type: HashMap<String, Vec<usize>> = HashMap::new();
        let mut always = Vec::new();
        for (i, t) in triggers.iter().enumerate() {
            match required_type(&t.filter) {
                Some(ty) => by_type.entry(ty.to_owned()).or_default().push(i),
                None => always.push(i),
            }
        }
        RoutingTable {
            triggers,
            by_type,
            always,
        }
    }

    /// All triggers of the broker, in a stable order; `route` returns indices into this slice.
    pub fn triggers(&self) -> &[Arc<TriggerConfig>] {
        &self.triggers
    }

    /// Number of triggers reached through the exact-`type` index (the rest are evaluated for every
    /// event). For metrics and tests.
    pub fn indexed_len(&self) -> usize {
        self.triggers.len() - self.always.len()
    }

    /// Appends to `out` the indices (into [`RoutingTable::triggers`]) of the triggers matching `event`,
    /// in increasing order.
    pub fn route(&self, event: &Event, out: &mut Vec<usize>) {
        let bucket: &[usize] = self
            .by_type
            .get(event.ty.as_str())
            .map_or(&[], Vec::as_slice);
        let always = self.always.as_slice();
        // Merge two increasing, disjoint lists.
        let (mut i, mut j) = (0, 0);
        loop {
            let next = match (bucket.get(i), always.get(j)) {
                (Some(&b), Some(&a)) if b < a => {
                    i += 1;
                    b
                }
                (_, Some(&a)) => {
                    j += 1;
                    a
                }
                (Some(&b), None) => {
                    i += 1;
                    b
                }
                (None, None) => break,
            };
            if self.triggers[next].filter.matches(event) {
                out.push(next);
            }
        }
    }
}

/// The exact `type` value every event passing `filter` must have, if the filter states one directly
/// (`Attributes` with a non-empty `type`, `Exact` with `type`, or one of those inside a top-level `All`).
fn required_type(filter: &Filter) -> Option<&str> {
    match filter {
        Filter::Attributes(kv) => kv
            .iter()
            .find(|(k, v)| k == "type" && !v.is_empty())
            .map(|(_, v)| v.as_str()),
        Filter::Exact(kv) => kv
            .iter()
            .find(|(k, _)| k == "type")
            .map(|(_, v)| v.as_str()),
        Filter::All(children) => children.iter().find_map(required_type),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::spec::{BrokerKey, TriggerKey, DEFAULT_MAX_INFLIGHT};
    use crate::event::ExtValue;

    fn trigger(name: &str, filter: Filter) -> Arc<TriggerConfig> {
        Arc::new(TriggerConfig {
            key: TriggerKey::new("default", name),
            broker: BrokerKey::new("default", "b"),
            filter,
            subscriber: crate::config::DestinationConfig::Url(format!("http://sink/{name}")),
            delivery: None,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            delivery_order: Default::default(),
        })
    }

    fn kv(k: &str, v: &str) -> Vec<(String, String)> {
        vec![(k.to_owned(), v.to_owned())]
    }

    fn brute_force(table: &RoutingTable, e: &Event) -> Vec<usize> {
        (0..table.triggers().len())
            .filter(|&i| table.triggers()[i].filter.matches(e))
            .collect()
    }

    #[test]
    fn indexes_exact_type_filters() {
        let table = RoutingTable::new(vec![
            trigger("a", Filter::Attributes(kv("type", "t1"))),
            trigger("b", Filter::Exact(kv("type", "t2"))),
            trigger(
                "c",
                Filter::All(vec![
                    Filter::Prefix(kv("source", "/x")),
                    Filter::Exact(kv("type", "t1")),
                ]),
            ),
            trigger("d", Filter::True),
            trigger("e", Filter::Attributes(kv("type", ""))),
            trigger("f", Filter::Any(vec![Filter::Exact(kv("type", "t1"))])),
            trigger("g", Filter::Prefix(kv("type", "t1"))),
        ]);
        assert_eq!(table.indexed_len(), 3);
        assert_eq!(table.by_type.get("t1"), Some(&vec![0, 2]));
        assert_eq!(table.by_type.get("t2"), Some(&vec![1]));
        assert_eq!(table.always, vec![3, 4, 5, 6]);

        let mut out = Vec::new();
        table.route(&Event::new("1", "/x/y", "t1"), &mut out);
        assert_eq!(out, vec![0, 2, 3, 4, 5, 6]);
        out.clear();
        table.route(&Event::new("1", "/z", "t2"), &mut out);
        assert_eq!(out, vec![1, 3, 4]);
        out.clear();
        table.route(&Event::new("1", "/z", "other"), &mut out);
        assert_eq!(out, vec![3, 4]);
    }

    #[test]
    fn route_appends_without_clearing() {
        let table = RoutingTable::new(vec![trigger("a", Filter::True)]);
        let mut out = vec![99];
        table.route(&Event::new("1", "/s", "t"), &mut out);
        assert_eq!(out, vec![99, 0]);
        let empty = RoutingTable::default();
        out.clear();
        empty.route(&Event::new("1", "/s", "t"), &mut out);
        assert!(out.is_empty());
    }

    /// Small deterministic PRNG (xorshift) so the equivalence test needs no extra dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    fn random_leaf(rng: &mut Rng) -> Filter {
        const KEYS: [&str; 4] = ["type", "source", "region", "missing"];
        const VALUES: [&str; 6] = ["t0", "t1", "t2", "/s0", "eu", ""];
        let key = KEYS[rng.next(KEYS.len())];
        let value = VALUES[rng.next(VALUES.len())];
        match rng.next(5) {
            0 => Filter::Attributes(kv(key, value)),
            1 => Filter::Exact(kv(key, value)),
            2 => Filter::Prefix(kv(key, &value[..value.len().min(1)])),
            3 => Filter::Suffix(kv(key, value)),
            _ => Filter::True,
        }
    }

    fn random_filter(rng: &mut Rng, depth: u32) -> Filter {
        if depth == 0 {
            return random_leaf(rng);
        }
        match rng.next(6) {
            0 => Filter::All(
                (0..1 + rng.next(3))
                    .map(|_| random_filter(rng, depth - 1))
                    .collect(),
            ),
            1 => Filter::Any(
                (0..1 + rng.next(3))
                    .map(|_| random_filter(rng, depth - 1))
                    .collect(),
            ),
            2 => Filter::Not(Box::new(random_filter(rng, depth - 1))),
            _ => random_leaf(rng),
        }
    }

    #[test]
    fn route_equals_brute_force_matches() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..50 {
            let n = 1 + rng.next(40);
            let triggers = (0..n)
                .map(|i| trigger(&format!("t{i}"), random_filter(&mut rng, 2)))
                .collect();
            let table = RoutingTable::new(triggers);
            for _ in 0..40 {
                let ty = ["t0", "t1", "t2", "t3"][rng.next(4)];
                let source = ["/s0", "/s1"][rng.next(2)];
                let mut e = Event::new("id", source, ty);
                if rng.next(2) == 0 {
                    e.set_extension("region", ExtValue::String(["eu", "us"][rng.next(2)].into()));
                }
                let mut out = Vec::new();
                table.route(&e, &mut out);
                assert_eq!(out, brute_force(&table, &e), "round {round}, event {e:?}");
            }
        }
    }
}
