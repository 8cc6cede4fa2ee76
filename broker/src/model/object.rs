//! Whole objects as the loader reads them: `apiVersion`, `kind`, the metadata it uses and the `spec`
//! (or a ConfigMap's `data`). The Kubernetes crate builds these from the cluster's custom resources and
//! hands them to `config::load` as they are (no YAML text in between).

use super::eventing::{BrokerSpec, TriggerSpec};
use super::sources::{KafkaSinkSpec, KafkaSourceSpec, NatsSinkSpec, NatsSourceSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The metadata the loader reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Name (a DNS-1123 label).
    pub name: String,
    /// Namespace (`default` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Annotations (broker class, backend, Switchyard's tuning annotations).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An object with a `spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource<S> {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata`.
    pub metadata: ObjectMeta,
    /// `spec`.
    pub spec: S,
}

/// A `v1` ConfigMap (its `data`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMap {
    /// `apiVersion` (`v1`).
    pub api_version: String,
    /// `kind` (`ConfigMap`).
    pub kind: String,
    /// `metadata`.
    pub metadata: ObjectMeta,
    /// `data`.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

/// One object of any kind the loader reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    /// `eventing.knative.dev/v1` Broker.
    Broker(Resource<BrokerSpec>),
    /// `eventing.knative.dev/v1` Trigger.
    Trigger(Resource<TriggerSpec>),
    /// `v1` ConfigMap.
    ConfigMap(ConfigMap),
    /// `eventing.knative.dev/v1alpha1` KafkaSink.
    KafkaSink(Resource<KafkaSinkSpec>),
    /// `sources.knative.dev/v1beta1` KafkaSource.
    KafkaSource(Resource<KafkaSourceSpec>),
    /// `sources.switchyard.dev/v1alpha1` NatsSink.
    NatsSink(Resource<NatsSinkSpec>),
    /// `sources.switchyard.dev/v1alpha1` NatsSource.
    NatsSource(Resource<NatsSourceSpec>),
}
