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
            kafka_sinks: BTreeMap::new(),
            kafka_sources: BTreeMap::new(),
            nats_sinks: BTreeMap::new(),
            nats_sources: BTreeMap::new(),
        }
    }

    /// Sets the NatsSinks and NatsSources (validated, names unique per namespace).
    pub fn with_nats(
        mut self,
        sinks: Vec<NatsSinkConfig>,
        sources: Vec<NatsSourceConfig>,
    ) -> Topology {
        self.nats_sinks = sinks
            .into_iter()
            .map(|s| (s.key.clone(), Arc::new(s)))
            .collect();
        self.nats_sources = sources
            .into_iter()
            .map(|s| (s.key.clone(), Arc::new(s)))
            .collect();
        self
    }

    /// Sets the KafkaSinks and KafkaSources (validated, names unique per namespace; a later duplicate
    /// replaces an earlier one).
    pub fn with_kafka(
        mut self,
        sinks: Vec<KafkaSinkConfig>,
        sources: Vec<KafkaSourceConfig>,
    ) -> Topology {
        self.kafka_sinks = sinks
            .into_iter()
            .map(|s| (s.key.clone(), Arc::new(s)))
            .collect();
        self.kafka_sources = sources
            .into_iter()
            .map(|s| (s.key.clone(), Arc::new(s)))
            .collect();
        self
    }
}
