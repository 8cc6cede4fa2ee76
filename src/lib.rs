//! # switchyard
//!
//! App wiring of the `switchyard` binary: the only place that reads files, environment and signals.
//!
//! - [`app`]: starts a broker process (store, ingress, dispatcher, admin) on given listeners and shuts it
//!   down in order with a deadline.
//! - [`admin`]: health, readiness, metrics and the dead-letter API.
//! - [`reload`]: watches the config files and applies valid changes without a restart.
//! - [`bench`](mod@bench): the load tool (`switchyard bench`) with its in-run baselines.
//! - [`bench_kafka`]: the plain-rdkafka baseline of `switchyard bench --kafka`.
//! - [`explain`]: routing dry-runs (`switchyard explain`).
//! - [`soak`]: the reliability tool (`switchyard soak`): backlog, kill cycles, slow and down subscribers.

#![warn(missing_docs)]

pub mod admin;
pub mod app;
pub mod bench;
pub mod bench_kafka;
pub mod bench_nats;
pub mod explain;
pub mod reload;
pub mod soak;
pub mod util;
