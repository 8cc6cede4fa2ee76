//! Knative-style condition sets: a list of dependent conditions and `Ready` as their AND.
//!
//! `Ready` is `False` when any dependent is `False` (with the first such condition's reason and message),
//! `Unknown` when any is `Unknown`, else `True`. `lastTransitionTime` changes only when a condition's
//! status changes, so a reconcile that finds nothing new writes nothing.

use crate::crd::Condition;

/// `True`.
pub const TRUE: &str = "True";
/// `False`.
pub const FALSE: &str = "False";
/// `Unknown`.
pub const UNKNOWN: &str = "Unknown";

/// One dependent condition's new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Condition type.
    pub type_: &'static str,
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// CamelCase reason (may be empty for `True`).
    pub reason: String,
    /// Details.
    pub message: String,
}

impl Observed {
    /// A `True` condition.
    pub fn ok(type_: &'static str, reason: &str, message: impl Into<String>) -> Observed {
        Observed {
            type_,
            status: TRUE,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    /// A `False` condition.
    pub fn failed(type_: &'static str, reason: &str, message: impl Into<String>) -> Observed {
        Observed {
            type_,
            status: FALSE,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    /// An `Unknown` condition.
    pub fn unknown(type_: &'static str, reason: &str, message: impl Into<String>) -> Observed {
        Observed {
            type_,
            status: UNKNOWN,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// The new condition list: `Ready` first, then the dependents in the given order, keeping each
/// condition's `lastTransitionTime` from `previous` when its status did not change (`now` otherwise).
pub fn with_ready(previous: &[Condition], dependents: Vec<Observed>, now: &str) -> Vec<Condition> {
    let ready = match dependents.iter().find(|c| c.status == FALSE) {
        Some(f) => Observed {
            type_: "Ready",
            status: FALSE,
            reason: f.reason.clone(),
            message: f.message.clone(),
        },
        None => match dependents.iter().find(|c| c.status == UNKNOWN) {
            Some(u) => Observed {
                type_: "Ready",
                status: UNKNOWN,
                reason: u.reason.clone(),
                message: u.message.clone(),
            },
            None => Observed::ok("Ready", "", ""),
        },
    };
    std::iter::once(ready)
        .chain(dependents)
        .map(|o| {
            let since = previous
                .iter()
                .find(|p| p.type_ == o.type_ && p.status == o.status)
                .and_then(|p| p.last_transition_time.clone())
                .unwrap_or_else(|| now.to_owned());
            Condition {
                type_: o.type_.to_owned(),
                status: o.status.to_owned(),
                severity: None,
                last_transition_time: Some(since),
                reason: (!o.reason.is_empty()).then_some(o.reason),
                message: (!o.message.is_empty()).then_some(o.message),
            }
        })
        .collect()
}

/// The status of condition `type_` in `conditions`, if present.
pub fn status_of<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when condition `type_` is present and `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    status_of(conditions, type_).is_some_and(|c| c.status == TRUE)
}

/// True when condition `type_` is present and `False`.
pub fn is_false(conditions: &[Condition], type_: &str) -> bool {
    status_of(conditions, type_).is_some_and(|c| c.status == FALSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_is_the_and_of_the_dependents() {
        let all_true = with_ready(
            &[],
            vec![
                Observed::ok("Addressable", "", ""),
                Observed::ok(
                    "DeadLetterSinkResolved",
                    "DeadLetterSinkNotConfigured",
                    "none",
                ),
            ],
            "t0",
        );
        assert_eq!(all_true[0].type_, "Ready");
        assert_eq!(all_true[0].status, TRUE);
        assert_eq!(all_true.len(), 3);
        assert_eq!(
            all_true[2].reason.as_deref(),
            Some("DeadLetterSinkNotConfigured")
        );

        let one_unknown_one_false = with_ready(
            &[],
            vec![
                Observed::unknown("BrokerReady", "BrokerNotReconciled", "wait"),
                Observed::failed(
                    "SubscriberResolved",
                    "Unresolved",
                    "Service default/x not found",
                ),
            ],
            "t0",
        );
        let ready = &one_unknown_one_false[0];
        assert_eq!(ready.status, FALSE, "False wins over Unknown");
        assert_eq!(ready.reason.as_deref(), Some("Unresolved"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Service default/x not found")
        );

        let unknown = with_ready(&[], vec![Observed::unknown("BrokerReady", "R", "m")], "t");
        assert_eq!(unknown[0].status, UNKNOWN);
    }

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let first = with_ready(&[], vec![Observed::ok("Addressable", "", "")], "t0");
        let same = with_ready(&first, vec![Observed::ok("Addressable", "", "")], "t1");
        assert_eq!(
            first, same,
            "nothing changed: identical conditions, nothing to write"
        );
        let changed = with_ready(
            &same,
            vec![Observed::failed("Addressable", "NoAddress", "x")],
            "t2",
        );
        assert_eq!(changed[0].last_transition_time.as_deref(), Some("t2"));
        assert_eq!(changed[1].last_transition_time.as_deref(), Some("t2"));
        // A new reason with the same status keeps the time (Knative does the same).
        let reason_only = with_ready(
            &changed,
            vec![Observed::failed("Addressable", "Other", "y")],
            "t3",
        );
        assert_eq!(reason_only[1].last_transition_time.as_deref(), Some("t2"));
        assert_eq!(reason_only[1].reason.as_deref(), Some("Other"));
    }
}
