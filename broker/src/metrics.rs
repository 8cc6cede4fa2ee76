//! The Prometheus metrics of a Switchyard process.
//!
//! One [`Metrics`] value is created by the app and shared (`Arc`) with ingress, dispatcher and the admin
//! server; nothing here is global. Hot paths take cached handles ([`BrokerMetrics`], [`TriggerMetrics`])
//! once per topology instead of building label sets per event.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Builds delivery latency histograms (1 ms .. ~65 s).
#[derive(Debug, Clone, Copy)]
pub struct LatencyBuckets;

impl MetricConstructor<Histogram> for LatencyBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.001, 2.0, 17))
    }
}

/// All metric families.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    accepted: Family<Labels, Counter>,
    rejected: Family<Labels, Counter>,
    deliveries: Family<Labels, Counter>,
    retries: Family<Labels, Counter>,
    dead_lettered: Family<Labels, Counter>,
    parked: Family<Labels, Counter>,
    replies: Family<Labels, Counter>,
    loops: Family<Labels, Counter>,
    backlog: Family<Labels, Gauge>,
    broker_backlog: Family<Labels, Gauge>,
    broker_ready: Family<Labels, Gauge>,
    latency: Family<Labels, Histogram, LatencyBuckets>,
    reloads: Family<Labels, Counter>,
    store_degraded: Gauge,
    store_bytes: Gauge,
    store_free_bytes: Gauge,
}

/// Cached per-broker handles for the ingress hot path.
#[derive(Debug, Clone)]
pub struct BrokerMetrics {
    /// Events accepted (202) into the broker.
    pub accepted: Counter,
}

/// Cached per-trigger handles for the dispatcher hot path.
#[derive(Debug, Clone)]
pub struct TriggerMetrics {
    /// Successful deliveries.
    pub delivered: Counter,
    /// Failed attempts (any reason).
    pub failed_attempts: Counter,
    /// Retries scheduled.
    pub retries: Counter,
    /// Events sent to the dead-letter sink.
    pub dead_lettered: Counter,
    /// Events parked in the local dead-letter store.
    pub parked: Counter,
    /// Replies appended to the broker.
    pub replies: Counter,
    /// Reply loops stopped by TTL.
    pub loops: Counter,
    /// Delivery attempt latency (seconds).
    pub latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates and registers every family.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("switchyard");
        let m = Metrics {
            accepted: Family::default(),
            rejected: Family::default(),
            deliveries: Family::default(),
            retries: Family::default(),
            dead_lettered: Family::default(),
            parked: Family::default(),
            replies: Family::default(),
            loops: Family::default(),
            backlog: Family::default(),
            broker_backlog: Family::default(),
            broker_ready: Family::default(),
            latency: Family::new_with_constructor(LatencyBuckets),
            reloads: Family::default(),
            store_degraded: Gauge::default(),
            store_bytes: Gauge::default(),
            store_free_bytes: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "events_accepted",
            "Events accepted by ingress (durably stored), per broker",
            m.accepted.clone(),
        );
        registry.register(
            "events_rejected",
            "Events rejected by ingress, per broker and reason",
            m.rejected.clone(),
        );
        registry.register(
            "deliveries",
            "Delivery attempts per trigger and outcome (success, failure)",
            m.deliveries.clone(),
        );
        registry.register(
            "delivery_retries",
            "Retries scheduled per trigger",
            m.retries.clone(),
        );
        registry.register(
            "dead_lettered",
            "Events delivered to a dead-letter sink, per trigger",
            m.dead_lettered.clone(),
        );
        registry.register(
            "parked",
            "Events parked in the local dead-letter store, per trigger",
            m.parked.clone(),
        );
        registry.register(
            "replies",
            "Reply events appended to the broker, per trigger",
            m.replies.clone(),
        );
        registry.register(
            "reply_loops",
            "Replies dropped to the dead-letter path because their TTL was exhausted, per trigger",
            m.loops.clone(),
        );
        registry.register(
            "trigger_backlog",
            "Undelivered queue entries per trigger",
            m.backlog.clone(),
        );
        registry.register(
            "broker_backlog",
            "Undelivered events per broker, as used for the 429 limit (Kafka/JetStream brokers: what the topic or stream holds for every process plus this process's windows and overflow)",
            m.broker_backlog.clone(),
        );
        registry.register(
            "broker_ready",
            "1 while the broker takes events, 0 while its Kafka cluster or NATS server does not answer (or, for embedded brokers, while the store is degraded)",
            m.broker_ready.clone(),
        );
        registry.register(
            "delivery_latency_seconds",
            "Subscriber delivery attempt latency per trigger",
            m.latency.clone(),
        );
        registry.register(
            "config_reloads",
            "Config reloads by result (success, invalid)",
            m.reloads.clone(),
        );
        registry.register(
            "store_degraded",
            "1 while the embedded store refuses events (volume full or below --min-free-bytes, or recovering from a write failure), else 0",
            m.store_degraded.clone(),
        );
        registry.register(
            "store_bytes",
            "Size of the embedded store's database file in bytes",
            m.store_bytes.clone(),
        );
        registry.register(
            "store_free_bytes",
            "Free bytes on the embedded store's volume (-1 when unknown)",
            m.store_free_bytes.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Sets the embedded store's gauges (done at scrape time).
    pub fn set_store(&self, degraded: bool, file_bytes: u64, free_bytes: Option<u64>) {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.store_degraded.set(i64::from(degraded));
        self.store_bytes.set(clamp(file_bytes));
        self.store_free_bytes.set(free_bytes.map_or(-1, clamp));
    }

    /// Handles for one broker.
    pub fn broker(&self, broker: &str) -> BrokerMetrics {
        BrokerMetrics {
            accepted: self
                .accepted
                .get_or_create_owned(&vec![("broker", broker.to_owned())]),
        }
    }

    /// Counts a rejected event (not a hot path).
    pub fn rejected(&self, broker: &str, reason: &'static str, n: u64) {
        self.rejected
            .get_or_create(&vec![
                ("broker", broker.to_owned()),
                ("reason", reason.to_owned()),
            ])
            .inc_by(n);
    }

    /// Handles for one trigger.
    pub fn trigger(&self, trigger: &str) -> TriggerMetrics {
        let l = |outcome: Option<&str>| {
            let mut v = vec![("trigger", trigger.to_owned())];
            if let Some(o) = outcome {
                v.push(("outcome", o.to_owned()));
            }
            v
        };
        TriggerMetrics {
            delivered: self.deliveries.get_or_create_owned(&l(Some("success"))),
            failed_attempts: self.deliveries.get_or_create_owned(&l(Some("failure"))),
            retries: self.retries.get_or_create_owned(&l(None)),
            dead_lettered: self.dead_lettered.get_or_create_owned(&l(None)),
            parked: self.parked.get_or_create_owned(&l(None)),
            replies: self.replies.get_or_create_owned(&l(None)),
            loops: self.loops.get_or_create_owned(&l(None)),
            latency: self.latency.get_or_create_owned(&l(None)),
        }
    }

    /// Sets a trigger's backlog gauge (done at scrape time).
    pub fn set_backlog(&self, trigger: &str, value: u64) {
        self.backlog
            .get_or_create(&vec![("trigger", trigger.to_owned())])
            .set(i64::try_from(value).unwrap_or(i64::MAX));
    }

    /// Sets the per-broker gauges (done at scrape time): `brokers` replaces the previous set, so removed
    /// brokers disappear.
    pub fn set_brokers(&self, brokers: impl IntoIterator<Item = (String, bool, u64)>) {
        self.broker_ready.clear();
        self.broker_backlog.clear();
        for (broker, ready, backlog) in brokers {
            let labels = vec![("broker", broker)];
            self.broker_ready
                .get_or_create(&labels)
                .set(i64::from(ready));
            self.broker_backlog
                .get_or_create(&labels)
                .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        }
    }

    /// Counts a config reload.
    pub fn reload(&self, result: &'static str) {
        self.reloads
            .get_or_create(&vec![("result", result.to_owned())])
            .inc();
    }

    /// Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::new();
        m.broker("default/b").accepted.inc_by(3);
        m.rejected("default/b", "invalid", 2);
        m.trigger("default/t").delivered.inc();
        let text = m.render();
        assert!(
            text.contains("switchyard_events_accepted_total{broker=\"default/b\"} 3"),
            "{text}"
        );
        assert!(text.contains(
            "switchyard_events_rejected_total{broker=\"default/b\",reason=\"invalid\"} 2"
        ));
        assert!(text
            .contains("switchyard_deliveries_total{trigger=\"default/t\",outcome=\"success\"} 1"));
    }
}
