//! Routing dry-runs: for every trigger of a broker, whether an event matches and, if not, the failing leaf
//! of its filter (`filters[0].all[1].prefix: source "https://a" does not start with "https://b"`).
//!
//! Pure functions over a [`Topology`] and an [`Event`]; used by `switchyard explain` and by the admin API.

use crate::config::{BrokerKey, Topology};
use crate::event::{AttrValue, Event};
use crate::filter::Filter;
use std::fmt::Write as _;

/// The decision for one trigger.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TriggerExplanation {
    /// Trigger name (same namespace as the broker).
    pub name: String,
    /// Whether the event would be delivered to this trigger's subscriber.
    pub matched: bool,
    /// Why: the failing filter leaf, or what matched.
    pub reason: String,
}

/// The decisions for all triggers of a broker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Explanation {
    /// `namespace/name` of the broker.
    pub broker: String,
    /// One entry per trigger of the broker, in name order.
    pub triggers: Vec<TriggerExplanation>,
}

/// Explains how `event` is routed by `broker`; `None` when the broker does not exist.
pub fn explain(topology: &Topology, broker: &BrokerKey, event: &Event) -> Option<Explanation> {
    topology.brokers.get(broker)?;
    let triggers = topology
        .triggers
        .values()
        .filter(|t| &t.broker == broker)
        .map(|t| match explain_filter(&t.filter, event) {
            Ok(reason) => TriggerExplanation {
                name: t.key.name.clone(),
                matched: true,
                reason,
            },
            Err(reason) => TriggerExplanation {
                name: t.key.name.clone(),
                matched: false,
                reason,
            },
        })
        .collect();
    Some(Explanation {
        broker: broker.to_string(),
        triggers,
    })
}

impl Explanation {
    /// Human-readable form: one line per trigger.
    pub fn to_text(&self) -> String {
        let mut out = format!("broker {}\n", self.broker);
        if self.triggers.is_empty() {
            out.push_str("  (no triggers)\n");
        }
        for t in &self.triggers {
            let verdict = if t.matched { "MATCH" } else { "NO MATCH" };
            let _ = writeln!(out, "  {verdict:<8} {}: {}", t.name, t.reason);
        }
        out
    }
}

/// `Ok(what matched)` or `Err(the failing leaf)` for a trigger's compiled filter.
pub fn explain_filter(filter: &Filter, event: &Event) -> Result<String, String> {
    match filter {
        Filter::True => Ok("no filter: every event matches".to_owned()),
        Filter::Attributes(_) => check(filter, "filter.attributes", event)
            .map(|()| "filter.attributes matched".to_owned()),
        // `spec.filters` always compiles to a top-level `All` (see config::manifest).
        Filter::All(items) => {
            for (i, f) in items.iter().enumerate() {
                check(f, &format!("filters[{i}]"), event)?;
            }
            Ok(format!("all {} filters matched", items.len()))
        }
        other => check(other, "filters[0]", event).map(|()| "filters matched".to_owned()),
    }
}

fn describe(a: &AttrValue<'_>) -> String {
    match a {
        AttrValue::Str(s) => format!("{s:?}"),
        other => other.to_canonical().into_owned(),
    }
}

/// A key-value filter dialect: its field, the test of an attribute's value against the filter's, and
/// what a failed test says.
struct KvDialect {
    field: &'static str,
    ok: fn(&str, &str) -> bool,
    verb: &'static str,
}

const EXACT: KvDialect = KvDialect {
    field: ".exact",
    ok: |a, v| a == v,
    verb: "!=",
};
const PREFIX: KvDialect = KvDialect {
    field: ".prefix",
    ok: |a, v| a.starts_with(v),
    verb: "does not start with",
};
const SUFFIX: KvDialect = KvDialect {
    field: ".suffix",
    ok: |a, v| a.ends_with(v),
    verb: "does not end with",
};

fn kv_check(
    path: &str,
    dialect: &KvDialect,
    event: &Event,
    kv: &[(String, String)],
) -> Result<(), String> {
    let KvDialect {
        field: dialect,
        ok,
        verb,
    } = dialect;
    for (k, v) in kv {
        match event.attribute(k) {
            None => return Err(format!("{path}{dialect}: attribute {k:?} is missing")),
            Some(a) => {
                if !ok(&a.to_canonical(), v) {
                    return Err(format!(
                        "{path}{dialect}: {k} {} {verb} {v:?}",
                        describe(&a)
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check(filter: &Filter, path: &str, event: &Event) -> Result<(), String> {
    match filter {
        Filter::True => Ok(()),
        Filter::Attributes(kv) => {
            for (k, v) in kv {
                match event.attribute(k) {
                    None => return Err(format!("{path}: attribute {k:?} is missing")),
                    Some(a) if !v.is_empty() && a.to_canonical() != v.as_str() => {
                        return Err(format!("{path}: {k} {} != {v:?}", describe(&a)))
                    }
                    Some(_) => {}
                }
            }
            Ok(())
        }
        Filter::Exact(kv) => kv_check(path, &EXACT, event, kv),
        Filter::Prefix(kv) => kv_check(path, &PREFIX, event, kv),
        Filter::Suffix(kv) => kv_check(path, &SUFFIX, event, kv),
        Filter::All(items) => {
            for (i, f) in items.iter().enumerate() {
                check(f, &format!("{path}.all[{i}]"), event)?;
            }
            Ok(())
        }
        Filter::Any(items) => {
            let mut reasons = Vec::new();
            for (i, f) in items.iter().enumerate() {
                match check(f, &format!("{path}.any[{i}]"), event) {
                    Ok(()) => return Ok(()),
                    Err(r) => reasons.push(r),
                }
            }
            Err(format!(
                "{path}.any: no filter matched ({})",
                reasons.join("; ")
            ))
        }
        Filter::Not(inner) => match check(inner, &format!("{path}.not"), event) {
            Ok(()) => Err(format!("{path}.not: the negated filter matched")),
            Err(_) => Ok(()),
        },
        Filter::Cesql(e) => match e.evaluate(event) {
            (_, Some(err)) => Err(format!("{path}.cesql: {err}")),
            (crate::cesql::Value::Bool(true), None) => Ok(()),
            (crate::cesql::Value::Bool(false), None) => {
                Err(format!("{path}.cesql: {:?} evaluated to false", e.source()))
            }
            (other, None) => Err(format!(
                "{path}.cesql: {:?} evaluated to {other:?}, not a Boolean",
                e.source()
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::load_sources;

    fn topology(triggers: &str) -> Topology {
        let yaml = format!(
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: b\n{triggers}"
        );
        load_sources(&[("t.yaml".into(), yaml)]).unwrap().topology
    }

    fn trigger(name: &str, filter: &str) -> String {
        format!("---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: {name}\nspec:\n  broker: b\n{filter}  subscriber:\n    uri: http://x/\n")
    }

    #[test]
    fn explains_every_trigger_down_to_the_failing_leaf() {
        let t = topology(&[
            trigger("a-legacy", "  filter:\n    attributes:\n      type: y\n"),
            trigger("b-prefix", "  filters:\n    - exact:\n        type: x\n    - all:\n      - exact:\n          type: x\n      - prefix:\n          source: https://b\n"),
            trigger("c-any", "  filters:\n    - any:\n      - exact:\n          type: nope\n      - suffix:\n          source: /a\n"),
            trigger("d-none", ""),
            trigger("e-not", "  filters:\n    - not:\n        exact:\n          type: x\n"),
            trigger("f-missing", "  filters:\n    - exact:\n        myext: v\n"),
            trigger("g-cesql", "  filters:\n    - cesql: \"myext = 'v'\"\n"),
            trigger("h-cesql", "  filters:\n    - any:\n      - cesql: \"type = 'nope'\"\n      - cesql: \"source LIKE 'https://%'\"\n"),
        ].concat());
        let mut e = Event::new("1", "https://a", "x");
        e.subject = Some("s".into());
        let x = explain(&t, &BrokerKey::new("default", "b"), &e).unwrap();
        let r: Vec<(&str, bool, &str)> = x
            .triggers
            .iter()
            .map(|t| (t.name.as_str(), t.matched, t.reason.as_str()))
            .collect();
        assert_eq!(
            r[0],
            ("a-legacy", false, "filter.attributes: type \"x\" != \"y\"")
        );
        assert_eq!(
            r[1],
            (
                "b-prefix",
                false,
                "filters[1].all[1].prefix: source \"https://a\" does not start with \"https://b\""
            )
        );
        assert!(r[2].1, "{:?}", r[2]);
        assert_eq!(r[3], ("d-none", true, "no filter: every event matches"));
        assert_eq!(
            r[4],
            ("e-not", false, "filters[0].not: the negated filter matched")
        );
        assert_eq!(
            r[5],
            (
                "f-missing",
                false,
                "filters[0].exact: attribute \"myext\" is missing"
            )
        );
        assert_eq!(
            r[6],
            (
                "g-cesql",
                false,
                "filters[0].cesql: missing attribute \"myext\""
            )
        );
        assert!(r[7].1, "{:?}", r[7]);
        assert!(x.to_text().contains("NO MATCH a-legacy: filter.attributes"));
        assert!(explain(&t, &BrokerKey::new("default", "nope"), &e).is_none());
    }

    #[test]
    fn explain_agrees_with_matching() {
        let t = topology(&[
            trigger("a", "  filters:\n    - any:\n      - exact:\n          type: x\n      - not:\n          prefix:\n            source: /q\n"),
            trigger("b", "  filter:\n    attributes:\n      subject: \"\"\n"),
        ].concat());
        for (ty, src, subj) in [("x", "/q", None), ("y", "/q", Some("s")), ("y", "/r", None)] {
            let mut e = Event::new("1", src, ty);
            e.subject = subj.map(str::to_owned);
            for tr in t.triggers.values() {
                assert_eq!(
                    explain_filter(&tr.filter, &e).is_ok(),
                    tr.filter.matches(&e),
                    "{} on {ty} {src} {subj:?}",
                    tr.key
                );
            }
        }
    }
}
