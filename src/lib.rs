//! # switchyard
//!
//! App wiring of the `switchyard` binary: the only place that reads files, environment and signals.
//!
//! - [`app`]: starts a broker process (store, ingress, dispatcher, admin) on given listeners and shuts it
//!   down in order with a deadline.
//! - [`admin`]: health, readiness, metrics and the dead-letter API.
//! - `live`: the live pieces of a data plane and how a new topology is installed in them.
//! - [`reload`]: watches the config files and applies valid changes without a restart.
//! - [`explain`]: routing dry-runs (`switchyard explain`).
//!
//! The load tools (`bench`, `soak`) are modules of the binary (`src/load/`), not of this library.

#![warn(missing_docs)]

pub mod admin;
pub mod app;
pub mod explain;
mod live;
pub mod reload;
pub mod util;
