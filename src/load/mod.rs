//! The load and reliability tools of the `switchyard` binary (`bench`, `soak`, the hidden `baseline`).
//! They drive `switchyard serve` children over HTTP and are not part of the library: nothing in the
//! broker depends on them.
//!
//! - [`bench`]: the load tool (`switchyard bench`) with its in-run baselines.
//! - `bench_kafka` (feature `kafka`): the plain-rdkafka baseline of `switchyard bench --kafka`.
//! - `bench_nats` (feature `nats`): the plain async-nats JetStream baseline of `switchyard bench --nats`.
//! - [`soak`]: the reliability tool (`switchyard soak`): backlog, kill cycles, slow and down subscribers.

pub mod bench;
#[cfg(feature = "kafka")]
pub mod bench_kafka;
#[cfg(feature = "nats")]
pub mod bench_nats;
pub mod soak;
