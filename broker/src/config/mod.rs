//! Knative manifests (Broker, Trigger, ConfigMap, KafkaSink, KafkaSource, NatsSink, NatsSource) → a
//! validated, compiled [`Topology`].
//!
//! - `manifest`: decoding of the YAML a user applies to a cluster (`eventing.knative.dev/v1` Broker and
//!   Trigger, `v1` ConfigMap, `eventing.knative.dev/v1alpha1` KafkaSink, `sources.knative.dev/v1beta1`
//!   KafkaSource, `sources.switchyard.dev/v1alpha1` NatsSink and NatsSource).
//! - `load`: reading files / directories of multi-document YAML (or parsed documents, or typed objects),
//!   with errors that name the file, the document index and the field path; `build` (private): the
//!   topology builder over the decoded objects (cross-document checks, strict or tolerant); `rules`
//!   (private): the value rules the decoder and the builder apply.
//! - `duration`: ISO-8601 durations (`PT0.2S`).
//! - `error`: [`ConfigError`](error::ConfigError) (file, document, field path, message) and the list of them.
//! - `spec`: the compiled objects (keys, [`BrokerConfig`], [`TriggerConfig`], sinks, sources); `routing`
//!   builds on them, and this module builds the [`Topology`] from both.
//!
//! The compiled topology is immutable and shared behind an `Arc`; a hot reload builds a new one and swaps it.

mod build;
pub mod duration;
pub mod error;
pub mod load;
pub mod manifest;
mod rules;
pub mod spec;

pub use spec::*;

use crate::routing::RoutingTable;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Everything the data plane needs: brokers, triggers and, per broker, a routing table.
#[derive(Debug, Default)]
pub struct Topology {
    /// Brokers by key.
    pub brokers: BTreeMap<BrokerKey, Arc<BrokerConfig>>,
    /// Triggers by key.
    pub triggers: BTreeMap<TriggerKey, Arc<TriggerConfig>>,
    /// Per-broker routing table (built from the triggers that name the broker).
    pub routes: BTreeMap<BrokerKey, RoutingTable>,
    /// KafkaSinks by key.
    pub kafka_sinks: BTreeMap<ObjectKey, Arc<KafkaSinkConfig>>,
    /// KafkaSources by key.
    pub kafka_sources: BTreeMap<ObjectKey, Arc<KafkaSourceConfig>>,
    /// NatsSinks by key.
    pub nats_sinks: BTreeMap<ObjectKey, Arc<NatsSinkConfig>>,
    /// NatsSources by key.
    pub nats_sources: BTreeMap<ObjectKey, Arc<NatsSourceConfig>>,
}

impl Topology {
    /// Builds the topology (and routing tables) from validated brokers and triggers.
    /// Triggers whose broker does not exist are kept (they are "not ready") but route nothing.
    pub fn new(brokers: Vec<BrokerConfig>, triggers: Vec<TriggerConfig>) -> Topology {
        let brokers = by_key(brokers, |b| &b.key);
        let triggers = by_key(triggers, |t| &t.key);
        let mut routes = BTreeMap::new();
        for key in brokers.keys() {
            let ts: Vec<Arc<TriggerConfig>> = triggers
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
            ..Topology::default()
        }
    }

    /// Sets the KafkaSinks, KafkaSources, NatsSinks and NatsSources (validated, names unique per
    /// namespace; a later duplicate replaces an earlier one).
    pub(crate) fn with_components(mut self, components: Components) -> Topology {
        self.kafka_sinks = by_key(components.kafka_sinks, |s| &s.key);
        self.kafka_sources = by_key(components.kafka_sources, |s| &s.key);
        self.nats_sinks = by_key(components.nats_sinks, |s| &s.key);
        self.nats_sources = by_key(components.nats_sources, |s| &s.key);
        self
    }
}

/// The objects of the Kafka and NATS components, for [`Topology::with_components`].
#[derive(Debug, Default)]
pub(crate) struct Components {
    /// KafkaSinks.
    pub(crate) kafka_sinks: Vec<KafkaSinkConfig>,
    /// KafkaSources.
    pub(crate) kafka_sources: Vec<KafkaSourceConfig>,
    /// NatsSinks.
    pub(crate) nats_sinks: Vec<NatsSinkConfig>,
    /// NatsSources.
    pub(crate) nats_sources: Vec<NatsSourceConfig>,
}

/// `items` by their key (a later item replaces an earlier one with the same key).
fn by_key<K: Ord + Clone, T>(items: Vec<T>, key: fn(&T) -> &K) -> BTreeMap<K, Arc<T>> {
    items
        .into_iter()
        .map(|item| (key(&item).clone(), Arc::new(item)))
        .collect()
}
