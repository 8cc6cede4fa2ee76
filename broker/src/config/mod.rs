//! Knative manifests (Broker, Trigger, ConfigMap) → a validated, compiled [`Topology`].
//!
//! - `manifest`: serde types for the YAML a user applies to a cluster (`eventing.knative.dev/v1`).
//! - `load`: reading files / directories of multi-document YAML, with errors that name the file, the
//!   document index and the field path.
//! - `duration`: ISO-8601 durations (`PT0.2S`).
//!
//! The compiled topology is immutable and shared behind an `Arc`; a hot reload builds a new one and swaps it.

pub mod duration;
pub mod load;
pub mod manifest;

use crate::delivery::DeliverySpec;
use crate::filter::Filter;
use crate::routing::RoutingTable;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Annotation on a Trigger that sets its max in-flight deliveries.
pub const MAX_INFLIGHT_ANNOTATION: &str = "switchyard.dev/max-inflight";
/// Annotation on a Broker that sets its backlog limit (undelivered queue entries) before ingress answers 429.
pub const MAX_BACKLOG_ANNOTATION: &str = "switchyard.dev/max-backlog";
/// Default per-trigger in-flight deliveries.
pub const DEFAULT_MAX_INFLIGHT: usize = 100;

/// `namespace/name` of a Broker.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BrokerKey {
    /// Namespace (`default` when the manifest has none).
    pub namespace: String,
    /// Broker name.
    pub name: String,
}

impl BrokerKey {
    /// Builds a key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> BrokerKey {
        BrokerKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for BrokerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `namespace/name` of a Trigger (trigger names are unique per namespace, as in Kubernetes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TriggerKey {
    /// Namespace.
    pub namespace: String,
    /// Trigger name.
    pub name: String,
}

impl TriggerKey {
    /// Builds a key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> TriggerKey {
        TriggerKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for TriggerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A validated Broker.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerSpec {
    /// Identity.
    pub key: BrokerKey,
    /// `eventing.knative.dev/broker.class` (defaults to `MTChannelBasedBroker`).
    pub class: String,
    /// `spec.delivery`: the default for triggers that set no delivery of their own.
    pub delivery: Option<DeliverySpec>,
    /// Backlog limit (undelivered queue entries across the broker's triggers); `None` = the process default.
    pub max_backlog: Option<u64>,
    /// Data of the ConfigMap named by `spec.config`, if any (used by non-default broker classes).
    pub config: BTreeMap<String, String>,
}

/// A validated Trigger with its filter compiled.
#[derive(Debug, Clone)]
pub struct TriggerSpec {
    /// Identity.
    pub key: TriggerKey,
    /// The broker (same namespace) this trigger consumes from.
    pub broker: BrokerKey,
    /// Compiled filter (`spec.filters` when non-empty, otherwise `spec.filter.attributes`).
    pub filter: Filter,
    /// Absolute subscriber URL.
    pub subscriber: String,
    /// The trigger's own `spec.delivery` (replaces the broker's as a whole when present).
    pub delivery: Option<DeliverySpec>,
    /// Max concurrent deliveries for this trigger.
    pub max_inflight: usize,
}

impl TriggerSpec {
    /// The delivery spec in force: the trigger's if it set any field, otherwise the broker's.
    pub fn effective_delivery<'a>(&'a self, broker: &'a BrokerSpec) -> Option<&'a DeliverySpec> {
        self.delivery.as_ref().or(broker.delivery.as_ref())
    }
}

/// Everything the data plane needs: brokers, triggers and, per broker, a routing table.
#[derive(Debug, Default)]
pub struct Topology {
    /// Brokers by key.
    pub brokers: BTreeMap<BrokerKey, Arc<BrokerSpec>>,
    /// Triggers by key.
    pub triggers: BTreeMap<TriggerKey, Arc<TriggerSpec>>,
    /// Per-broker routing table (built from the triggers that name the broker).
    pub routes: BTreeMap<BrokerKey, RoutingTable>,
}

impl Topology {
    /// Builds the topology (and routing tables) from validated brokers and triggers.
    /// Triggers whose broker does not exist are kept (they are "not ready") but route nothing.
    pub fn new(brokers: Vec<BrokerSpec>, triggers: Vec<TriggerSpec>) -> Topology {
        let brokers: BTreeMap<_, _> = brokers
            .into_iter()
            .map(|b| (b.key.clone(), Arc::new(b)))
            .collect();
        let triggers: BTreeMap<_, _> = triggers
            .into_iter()
            .map(|t| (t.key.clone(), Arc::new(t)))
            .collect();
        let mut routes = BTreeMap::new();
        for key in brokers.keys() {
            let ts: Vec<Arc<TriggerSpec>> = triggers
                .values()
                .filter(|t| &t.broker == key)
                .cloned()
                .collect();
            routes.insert(key.clone(), RoutingTable::new(ts));
        }
        Topology {
            brokers,
            triggers,
            routes,
        }
    }
}
