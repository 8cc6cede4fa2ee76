//! # switchyard-broker
//!
//! The core of Switchyard, free of servers and clusters:
//!
//! - [`event`]: the CloudEvent model.
//! - [`format`](mod@format): CloudEvents JSON format, HTTP binding (binary/structured/batch), validation and the
//!   storage codec.
//! - [`model`]: the Knative objects as typed serde structs (Knative's field names), shared with the CRDs.
//! - [`config`]: Knative manifests → validated, compiled [`config::Topology`].
//! - [`cesql`]: the CESQL v1 expression engine (parse once, evaluate per event).
//! - [`filter`] and [`routing`]: trigger filters and per-broker routing tables (evaluate each event once per
//!   broker).
//! - [`delivery`]: `DeliveryConfig`, backoff schedule, response classification (pure).
//! - [`channel`]: the channel trait and the embedded redb backend.
//! - [`sink`]: the `Sink` trait, where a trigger's deliveries go (HTTP, KafkaSink, NatsSink).
//! - [`metrics`]: the Prometheus metrics every component records into.
//! - `http_client` (feature `http-client`): the outgoing HTTP client of the dispatcher and the sources.
//! - The integrations, one component each with the same files (config, binding, channel backend, sink,
//!   source): [`kafka`] and [`nats`]; their bindings are always compiled, what talks to the external
//!   system only with the feature of the same name. `source` (with either feature): what the sources share.

#![warn(missing_docs)]

pub mod cesql;
pub mod channel;
pub mod config;
pub mod delivery;
pub mod event;
pub mod explain;
pub mod filter;
pub mod format;
#[cfg(feature = "http-client")]
pub mod http_client;
pub mod kafka;
pub mod metrics;
pub mod model;
pub mod nats;
pub mod routing;
pub mod sink;
#[cfg(any(feature = "kafka", feature = "nats"))]
pub mod source;
pub mod time;
