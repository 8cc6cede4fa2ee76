//! Switchyard on Kubernetes.
//!
//! The only crate that depends on `kube`:
//! - [`crd`]: the `eventing.knative.dev/v1` Broker and Trigger types and their CRDs (`crdgen`);
//! - [`crd_sources`]: KafkaSource, KafkaSink (Knative's field names), NatsSource and NatsSink;
//! - [`crds`]: the CRDs rendered from those types (`crdgen`, `deploy/crds/`);
//! - [`controller`]: reconcilers that validate, resolve and report Broker and Trigger status (Knative's
//!   conditions, address, subscriber and dead-letter URIs), with Lease-based leader election ([`leader`]);
//! - [`dataplane`]: the data plane's watch that turns the cluster's Brokers, Triggers, sources and sinks (as
//!   the controller resolved them) into the same [`Topology`](switchyard_broker::config::Topology) a config file gives.
//!
//! Pure parts (condition sets, manifest translation, ownership) live in [`conditions`] and [`manifest`] and are
//! unit-tested without a cluster; the reconcilers are tested against tower-test's mock API server.

pub mod conditions;
pub mod controller;
pub mod crd;
pub mod crd_sources;
pub mod crds;
pub mod dataplane;
pub mod leader;
pub mod manifest;
pub mod metrics;
pub mod resolve;
pub mod webhook;

use std::time::Duration;

/// Errors of the Kubernetes integration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The cluster connection could not be configured (no in-cluster config, bad KUBECONFIG).
    #[error("cannot configure the Kubernetes client: {0}")]
    ClientConfig(String),
}

/// Where Switchyard is installed and what it owns.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Namespace of Switchyard's own objects (ingress Service, Lease).
    pub system_namespace: String,
    /// Service in front of the data plane's ingress; Broker addresses point at it.
    pub ingress_service: String,
    /// Cluster DNS domain (`cluster.local`).
    pub cluster_domain: String,
    /// The `eventing.knative.dev/broker.class` value Switchyard reconciles.
    pub broker_class: String,
    /// The class assumed for a Broker without the annotation.
    pub default_broker_class: String,
    /// Only this namespace's Brokers and Triggers (all namespaces when `None`).
    pub watch_namespace: Option<String>,
    /// Name of the leader-election Lease in the system namespace.
    pub lease_name: String,
    /// Lease duration: how long a silent leader keeps the lease before another replica takes over.
    pub lease_duration: Duration,
    /// This process's identity in the Lease (the pod name).
    pub identity: String,
    /// How often a Ready object is reconciled again (re-resolves referenced addresses).
    pub resync: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            system_namespace: "switchyard-system".into(),
            ingress_service: "switchyard-ingress".into(),
            cluster_domain: "cluster.local".into(),
            broker_class: switchyard_broker::config::SWITCHYARD_BROKER_CLASS.into(),
            default_broker_class: switchyard_broker::config::SWITCHYARD_BROKER_CLASS.into(),
            watch_namespace: None,
            lease_name: "switchyard-controller".into(),
            lease_duration: Duration::from_secs(15),
            identity: "switchyard".into(),
            resync: Duration::from_secs(300),
        }
    }
}

/// A client from the in-cluster service account or `KUBECONFIG` / `~/.kube/config`.
pub async fn client() -> Result<kube::Client, Error> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| Error::ClientConfig(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| Error::ClientConfig(e.to_string()))
}
