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

use std::process::Command;

/// Spawns this binary with the arguments `args` adds and `SWITCHYARD_LOG=log`, stderr inherited; returns
/// the child and its stdout (a `serve` child prints its addresses as the first line: [`reported_addr`]).
/// `what` names the spawn in the error.
fn spawn_self(
    args: impl FnOnce(&mut Command) -> &mut Command,
    log: &str,
    what: &'static str,
) -> anyhow::Result<(std::process::Child, std::process::ChildStdout)> {
    use anyhow::Context;
    use std::process::Stdio;
    let exe = std::env::current_exe().context("locating the switchyard binary")?;
    let mut child = args(&mut Command::new(exe))
        .env("SWITCHYARD_LOG", log)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context(what)?;
    let stdout = child.stdout.take().context("child stdout")?;
    Ok((child, stdout))
}

/// The address after `key` (`ingress=`, `admin=`) in a child's address line.
fn reported_addr(line: &str, key: &str) -> Option<std::net::SocketAddr> {
    line.split_whitespace()
        .find_map(|p| p.strip_prefix(key))
        .and_then(|a| a.parse().ok())
}

/// Result of one baseline run on an external log (plain rdkafka or async-nats).
#[cfg(any(feature = "kafka", feature = "nats"))]
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineResult {
    /// Records acknowledged per second (first `send` to last delivery report).
    pub events_per_sec: f64,
    /// Median produce→consume latency in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile produce→consume latency in milliseconds.
    pub p99_ms: f64,
    /// Records of this run the consumer received (equals `events` unless some were lost or late).
    pub consumed: usize,
}
