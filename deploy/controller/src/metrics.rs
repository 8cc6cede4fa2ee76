//! The controller's own metrics (`/metrics` on a controller process's admin listener).
//!
//! - `switchyard_controller_reconciles_total{kind, result="ok"|"error"}`
//! - `switchyard_controller_leader` (1 while this process holds the Lease)
//! - `switchyard_webhook_reviews_total{kind, allowed="true"|"false"}`

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Counters and the leader gauge; cheap to clone handles into tasks via `Arc`.
#[derive(Debug)]
pub struct ControllerMetrics {
    registry: Registry,
    reconciles: Family<Labels, Counter>,
    leader: Gauge,
    reviews: Family<Labels, Counter>,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("switchyard");
        let reconciles = Family::<Labels, Counter>::default();
        let leader = Gauge::default();
        let reviews = Family::<Labels, Counter>::default();
        registry.register(
            "controller_reconciles",
            "Reconciles by kind and result",
            reconciles.clone(),
        );
        registry.register(
            "controller_leader",
            "1 while this process holds the leader Lease",
            leader.clone(),
        );
        registry.register(
            "webhook_reviews",
            "Admission reviews by kind and verdict",
            reviews.clone(),
        );
        ControllerMetrics {
            registry,
            reconciles,
            leader,
            reviews,
        }
    }
}

impl ControllerMetrics {
    /// Counts one reconcile.
    pub fn reconciled(&self, kind: &str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reconciles
            .get_or_create(&vec![
                ("kind", kind.to_owned()),
                ("result", result.to_owned()),
            ])
            .inc();
    }

    /// Records whether this process leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Counts one admission review.
    pub fn reviewed(&self, kind: &str, allowed: bool) {
        self.reviews
            .get_or_create(&vec![
                ("kind", kind.to_owned()),
                ("allowed", allowed.to_string()),
            ])
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_and_labels() {
        let m = ControllerMetrics::default();
        m.reconciled("Broker", true);
        m.reconciled("Broker", true);
        m.reconciled("Trigger", false);
        m.set_leader(true);
        m.reviewed("Trigger", false);
        let text = m.encode();
        assert!(
            text.contains(
                "switchyard_controller_reconciles_total{kind=\"Broker\",result=\"ok\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "switchyard_controller_reconciles_total{kind=\"Trigger\",result=\"error\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("switchyard_controller_leader 1"), "{text}");
        assert!(
            text.contains("switchyard_webhook_reviews_total{kind=\"Trigger\",allowed=\"false\"} 1"),
            "{text}"
        );
    }
}
