//! Trigger filters: legacy `filter.attributes` and the Subscriptions API dialects (`spec.filters`).
//!
//! Matching is a pure function of the filter and the event: no IO, no allocation for string attributes.
//! CESQL expressions ([`Filter::Cesql`]) are compiled once at config load and evaluated per event.

use crate::event::{AttrValue, Event};
use std::io::Write as _;

/// A compiled filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Matches every event (no filter configured).
    True,
    /// Legacy `spec.filter.attributes`: every key must be present; a non-empty value must be equal;
    /// an empty value matches any value (Switchyard decision 3).
    Attributes(Vec<(String, String)>),
    /// `exact`: every attribute present and equal.
    Exact(Vec<(String, String)>),
    /// `prefix`: every attribute present and starting with the value.
    Prefix(Vec<(String, String)>),
    /// `suffix`: every attribute present and ending with the value.
    Suffix(Vec<(String, String)>),
    /// `all`: every child matches (non-empty).
    All(Vec<Filter>),
    /// `any`: at least one child matches (non-empty).
    Any(Vec<Filter>),
    /// `not`: the child does not match.
    Not(Box<Filter>),
    /// `cesql`: a CESQL v1 expression, parsed when the config loads; matches only on Boolean `true`
    /// with no evaluation error.
    Cesql(std::sync::Arc<crate::cesql::Expression>),
}

impl Filter {
    /// Whether `event` passes the filter.
    ///
    /// - `Attributes`: every key present; a non-empty value must be equal, an empty one matches any value.
    /// - `Exact` / `Prefix` / `Suffix`: every key present and its canonical string equal to / starting
    ///   with / ending with the value (case-sensitive). A missing attribute never matches.
    /// - `All` / `Any` / `Not`: as usual. `True` matches everything; `Cesql` only on Boolean `true` without error.
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Filter::True => true,
            Filter::Attributes(kv) => kv.iter().all(|(k, v)| match event.attribute(k) {
                None => false,
                Some(_) if v.is_empty() => true,
                Some(a) => with_canonical(&a, |s| s == v),
            }),
            Filter::Exact(kv) => all_attrs(event, kv, |a, v| a == v),
            Filter::Prefix(kv) => all_attrs(event, kv, |a, v| a.starts_with(v)),
            Filter::Suffix(kv) => all_attrs(event, kv, |a, v| a.ends_with(v)),
            Filter::All(fs) => fs.iter().all(|f| f.matches(event)),
            Filter::Any(fs) => fs.iter().any(|f| f.matches(event)),
            Filter::Not(f) => !f.matches(event),
            Filter::Cesql(e) => e.matches(event),
        }
    }
}

/// Every `(key, value)` names a present attribute whose canonical string satisfies `pred(attr, value)`.
fn all_attrs(event: &Event, kv: &[(String, String)], pred: impl Fn(&str, &str) -> bool) -> bool {
    kv.iter().all(|(k, v)| match event.attribute(k) {
        None => false,
        Some(a) => with_canonical(&a, |s| pred(s, v)),
    })
}

/// Calls `f` with the canonical string of `a` without allocating (integers are formatted on the stack).
fn with_canonical<R>(a: &AttrValue<'_>, f: impl FnOnce(&str) -> R) -> R {
    match a {
        AttrValue::Str(s) => f(s),
        AttrValue::Bool(true) => f("true"),
        AttrValue::Bool(false) => f("false"),
        AttrValue::Int(i) => {
            // "-2147483648" is 11 bytes.
            let mut buf = [0u8; 12];
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            match write!(cursor, "{i}") {
                Ok(()) => {
                    let len = usize::try_from(cursor.position()).unwrap_or(0);
                    f(std::str::from_utf8(&buf[..len]).unwrap_or_default())
                }
                Err(_) => f(&a.to_canonical()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ExtValue;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn event() -> Event {
        let mut e = Event::new("id-1", "/orders/eu", "com.example.order.created");
        e.subject = Some("order-42".into());
        e.set_extension("region", ExtValue::String("eu-west".into()));
        e.set_extension("count", ExtValue::Int(-17));
        e.set_extension("urgent", ExtValue::Bool(true));
        e
    }

    #[test]
    fn true_matches_and_cesql_matches_only_on_true() {
        assert!(Filter::True.matches(&event()));
        let cesql = |s: &str| {
            Filter::Cesql(std::sync::Arc::new(
                crate::cesql::Expression::parse(s).unwrap(),
            ))
        };
        assert!(cesql("TRUE").matches(&event()));
        assert!(!cesql("missing = 'x'").matches(&event()));
        assert!(
            !cesql("42").matches(&event()),
            "a non-Boolean result does not match"
        );
    }

    #[test]
    fn legacy_attributes() {
        let e = event();
        let f = |p: &[(&str, &str)]| Filter::Attributes(kv(p)).matches(&e);
        assert!(f(&[]));
        assert!(f(&[("type", "com.example.order.created")]));
        assert!(f(&[
            ("type", "com.example.order.created"),
            ("source", "/orders/eu")
        ]));
        assert!(!f(&[
            ("type", "com.example.order.created"),
            ("source", "/other")
        ]));
        assert!(!f(&[("type", "com.example.order")]), "exact, not prefix");
        assert!(
            !f(&[("type", "COM.EXAMPLE.ORDER.CREATED")]),
            "case-sensitive"
        );
        // Empty value: present with any value (decision 3).
        assert!(f(&[("region", "")]));
        assert!(f(&[("subject", "")]));
        assert!(
            !f(&[("missing", "")]),
            "empty value still requires presence"
        );
        assert!(!f(&[("missing", "x")]));
        // Non-string extensions compare on their canonical string.
        assert!(f(&[("count", "-17")]));
        assert!(f(&[("urgent", "true")]));
        assert!(!f(&[("urgent", "True")]));
        let mut no_subject = event();
        no_subject.subject = None;
        assert!(!Filter::Attributes(kv(&[("subject", "")])).matches(&no_subject));
    }

    #[test]
    fn exact_prefix_suffix() {
        let e = event();
        assert!(Filter::Exact(kv(&[("type", "com.example.order.created")])).matches(&e));
        assert!(!Filter::Exact(kv(&[("type", "com.example.order")])).matches(&e));
        assert!(Filter::Prefix(kv(&[("type", "com.example."), ("source", "/orders")])).matches(&e));
        assert!(!Filter::Prefix(kv(&[("type", "com.example."), ("source", "/users")])).matches(&e));
        assert!(Filter::Suffix(kv(&[("type", ".created"), ("region", "-west")])).matches(&e));
        assert!(!Filter::Suffix(kv(&[("type", ".deleted")])).matches(&e));
        assert!(Filter::Exact(kv(&[("count", "-17")])).matches(&e));
        assert!(Filter::Prefix(kv(&[("count", "-1")])).matches(&e));
        assert!(Filter::Suffix(kv(&[("urgent", "ue")])).matches(&e));
        assert!(Filter::Exact(kv(&[("specversion", "1.0")])).matches(&e));
    }

    #[test]
    fn missing_attribute_fails_every_dialect_until_present() {
        let mut e = event();
        let filters = [
            Filter::Exact(kv(&[("myext", "v")])),
            Filter::Prefix(kv(&[("myext", "v")])),
            Filter::Suffix(kv(&[("myext", "v")])),
            Filter::Attributes(kv(&[("myext", "v")])),
        ];
        for f in &filters {
            assert!(!f.matches(&e), "{f:?}");
        }
        e.set_extension("myext", ExtValue::String("v".into()));
        for f in &filters {
            assert!(f.matches(&e), "{f:?}");
        }
    }

    #[test]
    fn all_any_not() {
        let e = event();
        let yes = Filter::Exact(kv(&[("region", "eu-west")]));
        let no = Filter::Exact(kv(&[("region", "us-east")]));
        assert!(Filter::All(vec![yes.clone(), yes.clone()]).matches(&e));
        assert!(!Filter::All(vec![yes.clone(), no.clone()]).matches(&e));
        assert!(Filter::Any(vec![no.clone(), yes.clone()]).matches(&e));
        assert!(!Filter::Any(vec![no.clone(), no.clone()]).matches(&e));
        assert!(Filter::Not(Box::new(no.clone())).matches(&e));
        assert!(!Filter::Not(Box::new(yes.clone())).matches(&e));
        // not(missing attribute) passes.
        assert!(Filter::Not(Box::new(Filter::Exact(kv(&[("missing", "x")])))).matches(&e));
        let nested = Filter::All(vec![
            Filter::Any(vec![no.clone(), Filter::Prefix(kv(&[("type", "com.")]))]),
            Filter::Not(Box::new(Filter::Suffix(kv(&[("type", ".deleted")])))),
        ]);
        assert!(nested.matches(&e));
    }

    #[test]
    fn int_canonical_on_stack_matches_to_canonical() {
        for i in [0, 7, -1, 42, i32::MIN, i32::MAX] {
            let a = AttrValue::Int(i);
            assert_eq!(with_canonical(&a, |s| s.to_owned()), a.to_canonical());
        }
    }
}
