//! One typed model of the Knative objects Switchyard reads: serde structs with Knative's field names
//! (camelCase), shared by the standalone loader and the Kubernetes CRDs (`switchyard-kube` wraps these
//! specs in its custom resources; with the Cargo feature `schema` they derive `schemars::JsonSchema`,
//! which `crdgen` renders into `deploy/crds/`).
//!
//! - [`eventing`]: Broker and Trigger specs, `KReference`, `Destination`, `DeliverySpec`;
//! - [`sources`]: KafkaSource, KafkaSink, NatsSource and NatsSink specs;
//! - [`object`]: whole objects (`apiVersion`, `kind`, metadata, spec) of every kind, as the loader takes them;
//! - `schema` (feature `schema`): the hand-written schemas of fields `schemars` cannot derive.
//!
//! These types describe what a user writes; what it means (validated, defaults applied, references
//! resolved) is [`crate::config`]'s compiled objects.

pub mod eventing;
pub mod object;
#[cfg(feature = "schema")]
pub mod schema;
pub mod sources;
