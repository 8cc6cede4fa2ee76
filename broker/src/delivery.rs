//! Delivery policy: the Knative `DeliverySpec`, backoff schedule and response classification.
//! Everything here is pure (no IO, no clock) so that timings and decisions are unit-testable.

use std::time::Duration;

/// `backoffPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackoffPolicy {
    /// `backoffDelay × n` before retry n (n from 1).
    Linear,
    /// `backoffDelay × 2^n` before retry n (n from 1).
    Exponential,
}

/// Egress content mode (`delivery.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Binary content mode (default).
    #[default]
    Binary,
    /// Structured JSON (`format: json`).
    Json,
}

/// A validated `spec.delivery`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeliverySpec {
    /// `retry`: number of retries after the first attempt.
    pub retry: Option<u32>,
    /// `backoffPolicy`.
    pub backoff_policy: Option<BackoffPolicy>,
    /// `backoffDelay`.
    pub backoff_delay: Option<Duration>,
    /// `backoffMax`: caps any single wait.
    pub backoff_max: Option<Duration>,
    /// `timeout`: per attempt.
    pub timeout: Option<Duration>,
    /// `retryAfterMax`: caps a subscriber's Retry-After (zero disables Retry-After).
    pub retry_after_max: Option<Duration>,
    /// `deadLetterSink.uri`.
    pub dead_letter_sink: Option<String>,
    /// `format`.
    pub format: Option<Format>,
}

// TEMPORARY STUB (replaced on merge).
#[allow(missing_docs, unused_variables)]
mod stub {
    use super::*;
    #[derive(Debug, Clone, PartialEq)]
    pub struct RetryPolicy {
        pub retries: u32,
        pub backoff_policy: BackoffPolicy,
        pub backoff_delay: Duration,
        pub backoff_max: Option<Duration>,
        pub timeout: Duration,
        pub retry_after_max: Option<Duration>,
    }
    impl RetryPolicy {
        pub fn from_spec(spec: Option<&DeliverySpec>) -> RetryPolicy {
            unimplemented!()
        }
        pub fn backoff(&self, n: u32) -> Duration {
            unimplemented!()
        }
        pub fn wait(&self, n: u32, retry_after: Option<Duration>) -> Duration {
            unimplemented!()
        }
    }
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Classification {
        Success,
        Retry,
        Fail,
    }
    pub fn classify(status: Option<u16>) -> Classification {
        unimplemented!()
    }
    pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
        unimplemented!()
    }
}
pub use stub::*;
