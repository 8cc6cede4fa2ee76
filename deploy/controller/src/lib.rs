//! Switchyard on Kubernetes.
//!
//! The only crate that depends on `kube`: the `eventing.knative.dev/v1` Broker and Trigger types and their
//! CRDs ([`crd`]), the controller that resolves and reports their status ([`controller`]), and the
//! data plane's watch that turns the cluster's Brokers, Triggers and ConfigMaps into the same
//! [`Topology`](switchyard_broker::config::Topology) a config file gives ([`dataplane`]).

pub mod crd;
