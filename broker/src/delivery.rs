//! Delivery policy: the validated Knative `spec.delivery` ([`DeliveryConfig`]), backoff schedule and
//! response classification, and the one retry driver ([`retry`]) the dispatcher and the sources run
//! their attempts with.
//! Everything here is pure (no IO, no clock) so that timings and decisions are unit-testable: the
//! driver only decides; attempts and waits are the caller's ([`Attempts`]).

use std::future::Future;
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
pub struct DeliveryConfig {
    /// `retry`: number of retries after the first attempt.
    pub retry: Option<u32>,
    /// `backoffPolicy`.
    pub backoff_policy: Option<BackoffPolicy>,
    /// `backoffDelay`.
    pub backoff_delay: Option<Duration>,
    /// `backoffMax`: caps any single backoff wait (and, unless `retryAfterMax` is set, a Retry-After).
    /// Unset: [`DEFAULT_BACKOFF_MAX`].
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

/// Knative's broker default retry count (`config-br-defaults`), used when no delivery spec is set at all.
pub const DEFAULT_RETRY: u32 = 10;
/// Default `backoffDelay` (`PT0.2S`).
pub const DEFAULT_BACKOFF_DELAY: Duration = Duration::from_millis(200);
/// Default per-attempt timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on a single retry wait when the effective delivery spec has no `backoffMax` (1 hour).
/// Without it an exponential schedule grows toward "forever" (retry 30 with `PT1S` would wait 2^30 s).
/// It also caps a subscriber's Retry-After when `retryAfterMax` is not set.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(3600);

impl DeliveryConfig {
    /// True when no field is set (an empty `delivery: {}` counts as "no delivery spec").
    pub fn is_empty(&self) -> bool {
        self == &DeliveryConfig::default()
    }
}

/// The resolved policy for one trigger (defaults applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (total attempts = retries + 1).
    pub retries: u32,
    /// Backoff shape.
    pub backoff_policy: BackoffPolicy,
    /// Base delay of the backoff schedule.
    pub backoff_delay: Duration,
    /// Cap on any single backoff wait: `backoffMax`, or [`DEFAULT_BACKOFF_MAX`] when it is not set.
    pub backoff_max: Duration,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Cap on a subscriber's Retry-After (`retryAfterMax`); `None` = capped by `backoff_max` instead,
    /// `Some(ZERO)` = ignore Retry-After.
    pub retry_after_max: Option<Duration>,
}

impl RetryPolicy {
    /// From the effective delivery spec (None = neither trigger nor broker set one).
    ///
    /// - `None`: Knative's broker defaults: 10 retries, exponential, `PT0.2S`.
    /// - `Some(spec)`: `retry` defaults to 0; an unset `backoffPolicy` is exponential and an unset
    ///   `backoffDelay` is `PT0.2S` (Switchyard decision 1).
    ///
    /// In both cases the timeout defaults to 30 s, `backoffMax` to [`DEFAULT_BACKOFF_MAX`] (1 h), and
    /// Retry-After is honoured up to `backoffMax` unless `retryAfterMax` says otherwise.
    ///
    /// The spec is the *effective* one (`TriggerConfig::effective_delivery`): a trigger that sets any
    /// delivery field replaces the broker's as a whole, so a broker's `backoffMax` applies only to
    /// triggers without their own `delivery`.
    pub fn from_spec(spec: Option<&DeliveryConfig>) -> RetryPolicy {
        match spec {
            None => RetryPolicy {
                retries: DEFAULT_RETRY,
                backoff_policy: BackoffPolicy::Exponential,
                backoff_delay: DEFAULT_BACKOFF_DELAY,
                backoff_max: DEFAULT_BACKOFF_MAX,
                timeout: DEFAULT_TIMEOUT,
                retry_after_max: None,
            },
            Some(s) => RetryPolicy {
                retries: s.retry.unwrap_or(0),
                backoff_policy: s.backoff_policy.unwrap_or(BackoffPolicy::Exponential),
                backoff_delay: s.backoff_delay.unwrap_or(DEFAULT_BACKOFF_DELAY),
                backoff_max: s.backoff_max.unwrap_or(DEFAULT_BACKOFF_MAX),
                timeout: s.timeout.unwrap_or(DEFAULT_TIMEOUT),
                retry_after_max: s.retry_after_max,
            },
        }
    }

    /// Wait before retry n (n = 1 for the first retry): linear delay×n, exponential delay×2^n, capped by
    /// backoff_max (`backoffMax`, default 1 h). Saturating, never panics.
    pub fn backoff(&self, n: u32) -> Duration {
        let raw = match self.backoff_policy {
            BackoffPolicy::Linear => self.backoff_delay.saturating_mul(n),
            BackoffPolicy::Exponential => match 2u32.checked_pow(n) {
                Some(factor) => self.backoff_delay.saturating_mul(factor),
                None if self.backoff_delay.is_zero() => Duration::ZERO,
                None => Duration::MAX,
            },
        };
        raw.min(self.backoff_max)
    }

    /// Wait before retry n given an optional Retry-After from a 429/503 (decision 10):
    /// `max(Retry-After capped, backoff(n))`, where Retry-After is capped by `retryAfterMax` when set
    /// (`PT0S` disables Retry-After) and otherwise by `backoff_max`.
    ///
    /// So no single wait exceeds `max(backoffMax, retryAfterMax)`; with neither set, 1 hour. A subscriber
    /// answering `Retry-After: 99999999` cannot park a delivery for years unless the trigger asks for it.
    pub fn wait(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.backoff(n);
        let retry_after = match (retry_after, self.retry_after_max) {
            (None, _) => return backoff,
            (Some(_), Some(max)) if max.is_zero() => return backoff,
            (Some(ra), Some(max)) => ra.min(max),
            (Some(ra), None) => ra.min(self.backoff_max),
        };
        retry_after.max(backoff)
    }
}

/// How often and after which waits a failed attempt is retried.
pub trait RetrySchedule {
    /// Retries allowed after the first attempt; `None`: retried as long as the attempts fail
    /// retryably (until the caller's [`Attempts::pause`] is interrupted).
    fn max_retries(&self) -> Option<u32>;
    /// The wait before retry `n` (1 for the first retry), given a Retry-After from the failed attempt.
    fn wait(&self, n: u32, retry_after: Option<Duration>) -> Duration;
}

/// A trigger's deliveries (subscriber and dead-letter sink): `retries` retries, waits from
/// [`RetryPolicy::wait`] (decision 10).
impl RetrySchedule for RetryPolicy {
    fn max_retries(&self) -> Option<u32> {
        Some(self.retries)
    }

    fn wait(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        RetryPolicy::wait(self, n, retry_after)
    }
}

/// How a [`SourceBackoff`] treats a Retry-After.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfterRule {
    /// The longer of the backoff and the Retry-After capped at `retry_after_max` (as decision 10 does
    /// for deliveries): KafkaSource.
    AtLeastBackoff,
    /// The Retry-After instead of the backoff (even when shorter), capped at `retry_after_max`: core
    /// NatsSource.
    Replaces,
}

/// The sources' exponential schedule: `initial × 2^(n-1)` before retry n, capped at `max`, with a
/// Retry-After handled by `retry_after`. Saturating, never panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceBackoff {
    /// Retries after the first attempt; `None`: forever.
    pub retries: Option<u32>,
    /// The wait before the first retry.
    pub initial: Duration,
    /// Longest backoff wait.
    pub max: Duration,
    /// Longest Retry-After honoured (a longer one is shortened to this).
    pub retry_after_max: Duration,
    /// What a Retry-After does to the wait.
    pub retry_after: RetryAfterRule,
}

impl RetrySchedule for SourceBackoff {
    fn max_retries(&self) -> Option<u32> {
        self.retries
    }

    fn wait(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        let backoff = self.initial.saturating_mul(factor).min(self.max);
        match (retry_after, self.retry_after) {
            (None, _) => backoff,
            (Some(ra), RetryAfterRule::AtLeastBackoff) => backoff.max(ra.min(self.retry_after_max)),
            (Some(ra), RetryAfterRule::Replaces) => ra.min(self.retry_after_max),
        }
    }
}

/// The outcome of one attempt, as the caller classified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<T, F> {
    /// Finished (delivered, or nothing more to do): no retry.
    Done(T),
    /// Failed; another attempt may succeed. `retry_after` is the Retry-After the caller honours for
    /// this failure, if any.
    Retryable {
        /// What went wrong.
        failure: F,
        /// Retry-After of the answer, when the caller honours one.
        retry_after: Option<Duration>,
    },
    /// Failed for good: no retry.
    Fatal(F),
}

/// How [`retry`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried<T, F> {
    /// An attempt finished.
    Done(T),
    /// The last attempt failed for good, or retryably with no retry left.
    Failed(F),
    /// A wait was interrupted ([`Attempts::pause`] returned false, e.g. shutdown).
    Interrupted,
}

/// One retried operation: how to make an attempt and how to wait before the next one. The future of
/// each method is `Send`, so a driver runs in spawned tasks.
pub trait Attempts {
    /// What a finished attempt gives.
    type Output;
    /// What a failed attempt gives.
    type Failure;
    /// Makes attempt number `retry` + 1 (`retry` = 0 for the first attempt).
    fn attempt(
        &mut self,
        retry: u32,
    ) -> impl Future<Output = Attempt<Self::Output, Self::Failure>> + Send;
    /// Waits `wait` before retry `retry` (1-based) after `failure`; false when the wait was
    /// interrupted (the driver then stops: [`Retried::Interrupted`]). Metrics and logs of a retry
    /// belong here.
    fn pause(
        &mut self,
        retry: u32,
        wait: Duration,
        failure: &Self::Failure,
    ) -> impl Future<Output = bool> + Send;
}

/// The retry driver: attempts until one finishes or fails for good, the schedule allows no more
/// retries, or a wait is interrupted; retry n waits `schedule.wait(n, retry_after)` (through
/// [`Attempts::pause`]).
pub async fn retry<S, A>(schedule: &S, attempts: &mut A) -> Retried<A::Output, A::Failure>
where
    S: RetrySchedule + ?Sized,
    A: Attempts,
{
    let mut retry = 0u32;
    loop {
        match attempts.attempt(retry).await {
            Attempt::Done(t) => return Retried::Done(t),
            Attempt::Fatal(f) => return Retried::Failed(f),
            Attempt::Retryable {
                failure,
                retry_after,
            } => {
                if schedule.max_retries().is_some_and(|max| retry >= max) {
                    return Retried::Failed(failure);
                }
                retry = retry.saturating_add(1);
                let wait = schedule.wait(retry, retry_after);
                if !attempts.pause(retry, wait, &failure).await {
                    return Retried::Interrupted;
                }
            }
        }
    }
}

/// What to do with a delivery attempt's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classification {
    /// Delivered (2xx).
    Success,
    /// Retryable failure: retry if attempts remain, then dead-letter.
    Retry,
    /// Permanent failure: dead-letter without retrying.
    Fail,
}

/// status None = transport error/timeout. 2xx Success; 404, 408, 409, 429, 5xx, transport → Retry; other
/// (1xx, 3xx, other 4xx) → Fail.
///
/// Codes outside 100–599 are not in the Knative status table, which says they SHOULD be treated as
/// retriable: they are classified `Retry`.
pub fn classify(status: Option<u16>) -> Classification {
    match status {
        None => Classification::Retry,
        Some(200..=299) => Classification::Success,
        Some(404 | 408 | 409 | 429) => Classification::Retry,
        Some(100..=499) => Classification::Fail,
        Some(_) => Classification::Retry,
    }
}

/// Retry-After: delta-seconds or HTTP-date (relative to `now`). A date in the past gives zero; anything
/// unparsable gives `None`.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits to fit u64: saturate rather than ignore the header.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// No cap at all: exercises the saturating arithmetic of the raw schedule.
    const NO_CAP: Duration = Duration::MAX;
    const HOUR: Duration = Duration::from_secs(3600);

    fn policy(p: BackoffPolicy, delay: Duration, max: Duration) -> RetryPolicy {
        RetryPolicy {
            retries: 5,
            backoff_policy: p,
            backoff_delay: delay,
            backoff_max: max,
            timeout: DEFAULT_TIMEOUT,
            retry_after_max: None,
        }
    }

    #[test]
    fn defaults_without_any_spec_are_knative_broker_defaults() {
        let p = RetryPolicy::from_spec(None);
        assert_eq!(
            p,
            RetryPolicy {
                retries: 10,
                backoff_policy: BackoffPolicy::Exponential,
                backoff_delay: ms(200),
                backoff_max: HOUR,
                timeout: Duration::from_secs(30),
                retry_after_max: None,
            }
        );
    }

    #[test]
    fn defaults_with_a_spec() {
        // An empty-ish spec (only a DLS): no retries.
        let spec = DeliveryConfig {
            dead_letter_sink: Some("http://dls".into()),
            ..Default::default()
        };
        let p = RetryPolicy::from_spec(Some(&spec));
        assert_eq!(p.retries, 0);
        assert_eq!(p.timeout, Duration::from_secs(30));
        assert_eq!(p.backoff_max, DEFAULT_BACKOFF_MAX);
        // retry only: exponential, PT0.2S.
        let spec = DeliveryConfig {
            retry: Some(3),
            ..Default::default()
        };
        let p = RetryPolicy::from_spec(Some(&spec));
        assert_eq!(p.retries, 3);
        assert_eq!(p.backoff_policy, BackoffPolicy::Exponential);
        assert_eq!(p.backoff_delay, ms(200));
        // Everything set: taken as is.
        let spec = DeliveryConfig {
            retry: Some(2),
            backoff_policy: Some(BackoffPolicy::Linear),
            backoff_delay: Some(ms(50)),
            backoff_max: Some(ms(120)),
            timeout: Some(ms(700)),
            retry_after_max: Some(Duration::from_secs(5)),
            dead_letter_sink: None,
            format: Some(Format::Json),
        };
        let p = RetryPolicy::from_spec(Some(&spec));
        assert_eq!(
            p,
            RetryPolicy {
                retries: 2,
                backoff_policy: BackoffPolicy::Linear,
                backoff_delay: ms(50),
                backoff_max: ms(120),
                timeout: ms(700),
                retry_after_max: Some(Duration::from_secs(5)),
            }
        );
        assert!(DeliveryConfig::default().is_empty());
        assert!(!spec.is_empty());
    }

    #[test]
    fn linear_schedule() {
        let p = policy(BackoffPolicy::Linear, ms(200), NO_CAP);
        let waits: Vec<_> = (1..=4).map(|n| p.backoff(n)).collect();
        assert_eq!(waits, vec![ms(200), ms(400), ms(600), ms(800)]);
    }

    #[test]
    fn exponential_schedule_and_knative_default_total() {
        let p = RetryPolicy::from_spec(None);
        let waits: Vec<_> = (1..=4).map(|n| p.backoff(n)).collect();
        assert_eq!(waits, vec![ms(400), ms(800), ms(1600), ms(3200)]);
        // 10 retries with the defaults: 0.2 × (2 + 4 + … + 1024) = 409.2 s.
        let total: Duration = (1..=p.retries).map(|n| p.backoff(n)).sum();
        assert_eq!(total, ms(409_200));
    }

    #[test]
    fn backoff_max_caps_every_wait() {
        let p = policy(BackoffPolicy::Exponential, ms(200), ms(1000));
        let waits: Vec<_> = (1..=5).map(|n| p.backoff(n)).collect();
        assert_eq!(waits, vec![ms(400), ms(800), ms(1000), ms(1000), ms(1000)]);
        let p = policy(BackoffPolicy::Linear, ms(300), ms(500));
        assert_eq!(p.backoff(1), ms(300));
        assert_eq!(p.backoff(2), ms(500));
    }

    #[test]
    fn backoff_saturates() {
        let p = policy(BackoffPolicy::Exponential, ms(200), NO_CAP);
        assert_eq!(p.backoff(u32::MAX), Duration::MAX);
        assert_eq!(p.backoff(40), Duration::MAX);
        let p = policy(BackoffPolicy::Exponential, ms(200), Duration::from_secs(60));
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(60));
        let p = policy(BackoffPolicy::Linear, Duration::MAX, NO_CAP);
        assert_eq!(p.backoff(u32::MAX), Duration::MAX);
        let p = policy(BackoffPolicy::Exponential, Duration::ZERO, NO_CAP);
        assert_eq!(p.backoff(100), Duration::ZERO);
        // The same overflowing schedules under the default cap: one hour, not "forever".
        let p = policy(BackoffPolicy::Exponential, ms(200), DEFAULT_BACKOFF_MAX);
        assert_eq!(p.backoff(u32::MAX), HOUR);
        assert_eq!(p.backoff(40), HOUR);
        let p = policy(BackoffPolicy::Linear, Duration::MAX, DEFAULT_BACKOFF_MAX);
        assert_eq!(p.backoff(u32::MAX), HOUR);
    }

    #[test]
    fn retry_after_is_max_of_header_and_backoff() {
        let mut p = policy(BackoffPolicy::Linear, ms(200), DEFAULT_BACKOFF_MAX);
        assert_eq!(p.wait(1, None), ms(200));
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(p.wait(1, Some(ms(100))), ms(200));
        // Capped by retryAfterMax.
        p.retry_after_max = Some(Duration::from_secs(2));
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(3))),
            Duration::from_secs(2)
        );
        // Cap below the backoff: backoff wins.
        p.retry_after_max = Some(ms(100));
        assert_eq!(p.wait(2, Some(Duration::from_secs(3))), ms(400));
        // PT0S disables Retry-After.
        p.retry_after_max = Some(Duration::ZERO);
        assert_eq!(p.wait(1, Some(Duration::from_secs(3))), ms(200));
    }

    /// The default cap (no `backoffMax` anywhere): the schedule grows as before until it reaches one hour,
    /// then stays there.
    #[test]
    fn default_cap_is_one_hour() {
        assert_eq!(DEFAULT_BACKOFF_MAX, HOUR);
        // Only `retry: 40`: exponential, PT0.2S. 0.2 s × 2^14 = 3276.8 s is the last uncapped wait.
        let spec = DeliveryConfig {
            retry: Some(40),
            ..Default::default()
        };
        let p = RetryPolicy::from_spec(Some(&spec));
        assert_eq!(p.backoff_max, HOUR);
        assert_eq!(p.backoff(1), ms(400));
        assert_eq!(p.backoff(14), ms(3_276_800));
        assert_eq!(p.backoff(15), HOUR);
        assert_eq!(p.backoff(40), HOUR);
        assert_eq!(p.wait(40, None), HOUR);
        // The whole schedule of 40 retries: 0.2 s × (2 + 4 + … + 2^14) + 26 h.
        let total: Duration = (1..=40).map(|n| p.backoff(n)).sum();
        assert_eq!(total, ms(6_553_200) + HOUR * 26);
        // Retry 30 with PT1S (2^30 s uncapped): one hour.
        let spec = DeliveryConfig {
            retry: Some(30),
            backoff_delay: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        let p = RetryPolicy::from_spec(Some(&spec));
        assert_eq!(p.backoff(11), Duration::from_secs(2048));
        assert_eq!(p.backoff(12), HOUR);
        assert_eq!(p.backoff(30), HOUR);
        // Linear grows more slowly but is capped the same way.
        let spec = DeliveryConfig {
            retry: Some(1000),
            backoff_policy: Some(BackoffPolicy::Linear),
            backoff_delay: Some(Duration::from_secs(10)),
            ..Default::default()
        };
        let p = RetryPolicy::from_spec(Some(&spec));
        assert_eq!(p.backoff(359), Duration::from_secs(3590));
        assert_eq!(p.backoff(360), HOUR);
        assert_eq!(p.backoff(1000), HOUR);
        // No delivery spec at all (Knative's broker defaults, 10 retries): the cap never bites.
        let p = RetryPolicy::from_spec(None);
        assert_eq!(p.backoff_max, HOUR);
        assert_eq!(p.backoff(10), ms(204_800));
    }

    /// An explicit `backoffMax` wins over the default, above or below it.
    #[test]
    fn explicit_backoff_max_wins_over_the_default() {
        let spec = DeliveryConfig {
            retry: Some(40),
            backoff_max: Some(HOUR * 2),
            ..Default::default()
        };
        let p = RetryPolicy::from_spec(Some(&spec));
        assert_eq!(p.backoff_max, HOUR * 2);
        assert_eq!(p.backoff(15), ms(6_553_600));
        assert_eq!(p.backoff(16), HOUR * 2);
        assert_eq!(p.backoff(40), HOUR * 2);
        let spec = DeliveryConfig {
            retry: Some(40),
            backoff_max: Some(Duration::from_secs(10)),
            ..Default::default()
        };
        let p = RetryPolicy::from_spec(Some(&spec));
        assert_eq!(p.backoff(5), ms(6400));
        assert_eq!(p.backoff(6), Duration::from_secs(10));
        assert_eq!(p.backoff(40), Duration::from_secs(10));
    }

    /// Retry-After is capped by `retryAfterMax` when set, otherwise by the effective `backoffMax`; the wait
    /// is never shorter than the backoff.
    #[test]
    fn retry_after_is_capped_by_backoff_max_unless_retry_after_max_is_set() {
        let ten_hours = HOUR * 10;
        // Nothing configured: at most the default cap.
        let p = RetryPolicy::from_spec(None);
        assert_eq!(p.wait(1, Some(ten_hours)), HOUR);
        assert_eq!(p.wait(1, Some(Duration::from_secs(u64::MAX))), HOUR);
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(90))),
            Duration::from_secs(90)
        );
        // An explicit backoffMax raises (or lowers) the Retry-After cap too.
        let spec = DeliveryConfig {
            retry: Some(3),
            backoff_max: Some(HOUR * 2),
            ..Default::default()
        };
        let p = RetryPolicy::from_spec(Some(&spec));
        assert_eq!(p.wait(1, Some(ten_hours)), HOUR * 2);
        let spec = DeliveryConfig {
            retry: Some(3),
            backoff_max: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        let p = RetryPolicy::from_spec(Some(&spec));
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(60))),
            Duration::from_secs(5)
        );
        // An explicit retryAfterMax is the Retry-After cap, whatever backoffMax is.
        let spec = DeliveryConfig {
            retry: Some(3),
            backoff_max: Some(Duration::from_secs(5)),
            retry_after_max: Some(Duration::from_secs(86_400)),
            ..Default::default()
        };
        let p = RetryPolicy::from_spec(Some(&spec));
        assert_eq!(p.wait(1, Some(ten_hours)), ten_hours);
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(u64::MAX))),
            Duration::from_secs(86_400)
        );
        // The backoff itself is still a floor.
        assert_eq!(p.wait(40, Some(Duration::ZERO)), Duration::from_secs(5));
    }

    #[test]
    fn parses_retry_after() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("date");
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        // A date in the past: retry now.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in ["", "-5", "1.5", "soon", "Sun, 06 Nov 1994"] {
            assert_eq!(
                parse_retry_after(bad, SystemTime::UNIX_EPOCH),
                None,
                "{bad:?}"
            );
        }
    }

    /// A scripted operation: each attempt takes the next outcome; waits are recorded, and the wait
    /// before retry `interrupt_at` is interrupted.
    struct Script {
        outcomes: Vec<Attempt<&'static str, u32>>,
        attempts: Vec<u32>,
        waits: Vec<(u32, Duration, u32)>,
        interrupt_at: Option<u32>,
    }

    impl Script {
        fn new(outcomes: Vec<Attempt<&'static str, u32>>) -> Script {
            Script {
                outcomes,
                attempts: Vec::new(),
                waits: Vec::new(),
                interrupt_at: None,
            }
        }
    }

    impl Attempts for Script {
        type Output = &'static str;
        type Failure = u32;

        async fn attempt(&mut self, retry: u32) -> Attempt<&'static str, u32> {
            self.attempts.push(retry);
            self.outcomes.remove(0)
        }

        async fn pause(&mut self, retry: u32, wait: Duration, failure: &u32) -> bool {
            self.waits.push((retry, wait, *failure));
            self.interrupt_at != Some(retry)
        }
    }

    fn retryable(failure: u32, retry_after: Option<Duration>) -> Attempt<&'static str, u32> {
        Attempt::Retryable {
            failure,
            retry_after,
        }
    }

    fn run<S: RetrySchedule>(schedule: &S, script: &mut Script) -> Retried<&'static str, u32> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(retry(schedule, script))
    }

    #[test]
    fn driver_retries_with_the_policy_waits_until_done() {
        let p = policy(BackoffPolicy::Exponential, ms(200), DEFAULT_BACKOFF_MAX);
        let mut s = Script::new(vec![
            retryable(503, None),
            retryable(429, Some(Duration::from_secs(3))),
            Attempt::Done("ok"),
        ]);
        assert_eq!(run(&p, &mut s), Retried::Done("ok"));
        assert_eq!(s.attempts, vec![0, 1, 2]);
        assert_eq!(
            s.waits,
            vec![(1, ms(400), 503), (2, Duration::from_secs(3), 429)]
        );
    }

    #[test]
    fn driver_gives_up_after_the_last_retry_or_a_fatal_failure() {
        let mut p = policy(BackoffPolicy::Linear, ms(100), DEFAULT_BACKOFF_MAX);
        p.retries = 2;
        let mut s = Script::new(vec![
            retryable(1, None),
            retryable(2, None),
            retryable(3, None),
        ]);
        assert_eq!(run(&p, &mut s), Retried::Failed(3));
        assert_eq!(s.attempts, vec![0, 1, 2]);
        assert_eq!(s.waits, vec![(1, ms(100), 1), (2, ms(200), 2)]);
        // No retries at all: one attempt.
        p.retries = 0;
        let mut s = Script::new(vec![retryable(1, None)]);
        assert_eq!(run(&p, &mut s), Retried::Failed(1));
        assert!(s.waits.is_empty());
        // A fatal failure is never retried.
        p.retries = 5;
        let mut s = Script::new(vec![retryable(1, None), Attempt::Fatal(400)]);
        assert_eq!(run(&p, &mut s), Retried::Failed(400));
        assert_eq!(s.attempts, vec![0, 1]);
    }

    #[test]
    fn driver_stops_when_a_wait_is_interrupted() {
        let p = policy(BackoffPolicy::Linear, ms(100), DEFAULT_BACKOFF_MAX);
        let mut s = Script::new(vec![retryable(1, None), retryable(2, None)]);
        s.interrupt_at = Some(2);
        assert_eq!(run(&p, &mut s), Retried::Interrupted);
        assert_eq!(s.attempts, vec![0, 1]);
        assert_eq!(s.waits.len(), 2);
    }

    #[test]
    fn source_backoff_schedules() {
        let forever = SourceBackoff {
            retries: None,
            initial: ms(100),
            max: ms(5000),
            retry_after_max: Duration::from_secs(60),
            retry_after: RetryAfterRule::AtLeastBackoff,
        };
        assert_eq!(forever.max_retries(), None);
        assert_eq!(forever.wait(1, None), ms(100));
        assert_eq!(forever.wait(7, None), ms(5000));
        assert_eq!(forever.wait(u32::MAX, None), ms(5000));
        assert_eq!(forever.wait(6, Some(ms(2000))), ms(3200));
        assert_eq!(forever.wait(1, Some(HOUR)), Duration::from_secs(60));
        // Retry-After replaces the backoff, shorter or longer, and everything is capped.
        let replaces = SourceBackoff {
            retries: Some(4),
            initial: ms(100),
            max: ms(5000),
            retry_after_max: ms(5000),
            retry_after: RetryAfterRule::Replaces,
        };
        assert_eq!(replaces.max_retries(), Some(4));
        assert_eq!(replaces.wait(3, None), ms(400));
        assert_eq!(replaces.wait(3, Some(ms(10))), ms(10));
        assert_eq!(replaces.wait(3, Some(HOUR)), ms(5000));
        assert_eq!(replaces.wait(40, None), ms(5000));
        // A retry forever keeps counting (saturating) and keeps waiting.
        let mut s = Script::new(vec![retryable(1, None); 12]);
        s.outcomes.push(Attempt::Done("ok"));
        assert_eq!(run(&forever, &mut s), Retried::Done("ok"));
        assert_eq!(s.waits.len(), 12);
        assert_eq!(s.waits[11].1, ms(5000));
    }

    #[test]
    fn classification_table() {
        use Classification::*;
        let table: &[(Option<u16>, Classification)] = &[
            (None, Retry),
            (Some(100), Fail),
            (Some(199), Fail),
            (Some(200), Success),
            (Some(201), Success),
            (Some(202), Success),
            (Some(204), Success),
            (Some(299), Success),
            (Some(301), Fail),
            (Some(304), Fail),
            (Some(400), Fail),
            (Some(401), Fail),
            (Some(403), Fail),
            (Some(404), Retry),
            (Some(405), Fail),
            (Some(408), Retry),
            (Some(409), Retry),
            (Some(410), Fail),
            (Some(413), Fail),
            (Some(422), Fail),
            (Some(429), Retry),
            (Some(499), Fail),
            (Some(500), Retry),
            (Some(502), Retry),
            (Some(503), Retry),
            (Some(504), Retry),
            (Some(599), Retry),
            (Some(600), Retry),
            (Some(0), Retry),
        ];
        for (status, want) in table {
            assert_eq!(classify(*status), *want, "status {status:?}");
        }
    }
}
