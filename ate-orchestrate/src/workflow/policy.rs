//! Retries and timeouts of a node's attempts, with Temporal's activity defaults as the
//! reference: as written ([`RetrySpec`], [`NodeTimeouts`]) and validated ([`NodeRetry`]).

use crate::OrchestrateError;
use crate::name::validate_token;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Longest error kind in [`RetrySpec::non_retryable`].
pub const MAX_ERROR_KIND_LEN: usize = 64;
/// Most entries in [`RetrySpec::non_retryable`].
pub const MAX_NON_RETRYABLE: usize = 32;

/// How a failed step is retried, as written; every field is optional and the defaults are
/// Temporal's: first retry after 1 s, each wait ×2, no wait longer than 100 × the first,
/// attempts unlimited (bound them with `max_attempts` or a schedule-to-close timeout).
/// Unlike Temporal, waits are jittered by default (±20%, [`RetrySpec::jitter`]) so that the
/// retries of many runs that failed together spread out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetrySpec {
    /// Attempts in all, the first included; absent means unlimited. 1 means no retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The wait before the first retry, in milliseconds (default 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_interval_ms: Option<u64>,
    /// Each wait is the previous one times this (default 2.0; at least 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_coefficient: Option<f64>,
    /// The longest wait, in milliseconds (default 100 × the initial interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_interval_ms: Option<u64>,
    /// The fraction a wait is shortened by at random, from 0.0 (none) to 1.0 (default 0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<f64>,
    /// Error kinds that are never retried, besides the errors a handler marks as not
    /// retryable itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_retryable: Vec<String>,
}

impl RetrySpec {
    /// Sets [`RetrySpec::max_attempts`].
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// Sets [`RetrySpec::initial_interval_ms`].
    pub fn initial_interval_ms(mut self, ms: u64) -> Self {
        self.initial_interval_ms = Some(ms);
        self
    }

    /// Sets [`RetrySpec::backoff_coefficient`].
    pub fn backoff_coefficient(mut self, c: f64) -> Self {
        self.backoff_coefficient = Some(c);
        self
    }

    /// Sets [`RetrySpec::max_interval_ms`].
    pub fn max_interval_ms(mut self, ms: u64) -> Self {
        self.max_interval_ms = Some(ms);
        self
    }

    /// Sets [`RetrySpec::jitter`].
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = Some(fraction);
        self
    }

    /// Adds an error kind that is never retried.
    pub fn non_retryable(mut self, kind: impl Into<String>) -> Self {
        self.non_retryable.push(kind.into());
        self
    }

    /// The validated policy; `node` names the node in error messages.
    pub(crate) fn validate(&self, node: &str) -> Result<NodeRetry, OrchestrateError> {
        let bad = |reason: String| {
            OrchestrateError::invalid("retry policy", format!("node {node}: {reason}"))
        };
        if self.max_attempts == Some(0) {
            return Err(bad(
                "max_attempts must be at least 1 (leave it out for unlimited)".into(),
            ));
        }
        let initial = self.initial_interval_ms.unwrap_or(1_000);
        if initial == 0 {
            return Err(bad("initial_interval_ms must be positive".into()));
        }
        let coefficient = self.backoff_coefficient.unwrap_or(2.0);
        if !(1.0..=100.0).contains(&coefficient) {
            return Err(bad(format!(
                "backoff_coefficient {coefficient} is not between 1 and 100"
            )));
        }
        let max = self.max_interval_ms.unwrap_or(initial.saturating_mul(100));
        if max < initial {
            return Err(bad(format!(
                "max_interval_ms {max} is shorter than initial_interval_ms {initial}"
            )));
        }
        let jitter = self.jitter.unwrap_or(0.2);
        if !(0.0..=1.0).contains(&jitter) {
            return Err(bad(format!("jitter {jitter} is not between 0 and 1")));
        }
        if self.non_retryable.len() > MAX_NON_RETRYABLE {
            return Err(bad(format!(
                "{} non_retryable kinds, at most {MAX_NON_RETRYABLE}",
                self.non_retryable.len()
            )));
        }
        for kind in &self.non_retryable {
            validate_token("non-retryable error kind", kind, MAX_ERROR_KIND_LEN)?;
        }
        Ok(NodeRetry {
            max_attempts: self.max_attempts,
            initial: Duration::from_millis(initial),
            coefficient,
            max: Duration::from_millis(max),
            jitter,
            non_retryable: self.non_retryable.clone(),
        })
    }
}

/// A validated retry policy (from [`RetrySpec`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRetry {
    max_attempts: Option<u32>,
    initial: Duration,
    coefficient: f64,
    max: Duration,
    jitter: f64,
    non_retryable: Vec<String>,
}

impl Default for NodeRetry {
    fn default() -> Self {
        // The defaults always validate.
        match RetrySpec::default().validate("") {
            Ok(retry) => retry,
            Err(_) => unreachable!("the default retry policy is valid"),
        }
    }
}

impl NodeRetry {
    /// Whether attempt `attempt` (1 = the first) that failed with an error of `kind`
    /// (`retryable` as the handler said) may be followed by another.
    pub fn retries_after(&self, attempt: u32, kind: &str, retryable: bool) -> bool {
        retryable
            && !self.non_retryable.iter().any(|k| k == kind)
            && self.max_attempts.is_none_or(|max| attempt < max)
    }

    /// The wait after failed attempt `attempt` (1 = the first), with `random` uniform in
    /// `[0, 1)`: `min(max, initial × coefficient^(attempt-1))`, shortened by up to the
    /// jitter fraction.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let ceiling = self.initial.as_secs_f64() * self.coefficient.powi(exponent);
        let ceiling = ceiling.min(self.max.as_secs_f64());
        let random = if random.is_finite() {
            random.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Duration::from_secs_f64(ceiling * (1.0 - self.jitter * random))
    }

    /// Attempts in all (`None`: unlimited).
    pub fn max_attempts(&self) -> Option<u32> {
        self.max_attempts
    }
}

/// Timeouts of a step node, in milliseconds, as written (Temporal's three; a run's own
/// timeout is set on the run).
///
/// * `start_to_close_ms`: one attempt, from its start to its result (default 10 minutes).
///   An attempt that overruns is abandoned, its lease is gone, and it counts as a
///   retryable failure.
/// * `schedule_to_close_ms`: the node, from its first schedule to its result, retries
///   included (default: none).
/// * `heartbeat_ms`: the longest silence between two heartbeats of a running attempt
///   (default: none, then the lease is renewed by the worker alone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct NodeTimeouts {
    /// One attempt's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_to_close_ms: Option<u64>,
    /// The whole node's limit, retries included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_to_close_ms: Option<u64>,
    /// The longest time between heartbeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ms: Option<u64>,
}

/// The default start-to-close timeout: 10 minutes.
pub const DEFAULT_START_TO_CLOSE: Duration = Duration::from_secs(600);

impl NodeTimeouts {
    /// Sets [`NodeTimeouts::start_to_close_ms`].
    pub fn start_to_close_ms(mut self, ms: u64) -> Self {
        self.start_to_close_ms = Some(ms);
        self
    }

    /// Sets [`NodeTimeouts::schedule_to_close_ms`].
    pub fn schedule_to_close_ms(mut self, ms: u64) -> Self {
        self.schedule_to_close_ms = Some(ms);
        self
    }

    /// Sets [`NodeTimeouts::heartbeat_ms`].
    pub fn heartbeat_ms(mut self, ms: u64) -> Self {
        self.heartbeat_ms = Some(ms);
        self
    }

    /// Checks that every timeout given is positive and that they nest (a heartbeat within
    /// an attempt, an attempt within the node).
    pub(crate) fn validate(&self, node: &str) -> Result<ValidTimeouts, OrchestrateError> {
        let bad = |reason: String| {
            OrchestrateError::invalid("timeouts", format!("node {node}: {reason}"))
        };
        for (name, value) in [
            ("start_to_close_ms", self.start_to_close_ms),
            ("schedule_to_close_ms", self.schedule_to_close_ms),
            ("heartbeat_ms", self.heartbeat_ms),
        ] {
            if value == Some(0) {
                return Err(bad(format!("{name} must be positive")));
            }
        }
        let start_to_close = self
            .start_to_close_ms
            .map_or(DEFAULT_START_TO_CLOSE, Duration::from_millis);
        let schedule_to_close = self.schedule_to_close_ms.map(Duration::from_millis);
        let heartbeat = self.heartbeat_ms.map(Duration::from_millis);
        if let Some(h) = heartbeat
            && h > start_to_close
        {
            return Err(bad(format!(
                "heartbeat_ms {} is longer than start_to_close_ms {}",
                h.as_millis(),
                start_to_close.as_millis()
            )));
        }
        if let (Some(s2c), Some(explicit)) = (schedule_to_close, self.start_to_close_ms)
            && Duration::from_millis(explicit) > s2c
        {
            return Err(bad(format!(
                "start_to_close_ms {explicit} is longer than schedule_to_close_ms {}",
                s2c.as_millis()
            )));
        }
        Ok(ValidTimeouts {
            start_to_close,
            schedule_to_close,
            heartbeat,
        })
    }
}

/// Validated timeouts of a step node (from [`NodeTimeouts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidTimeouts {
    /// One attempt's limit.
    pub start_to_close: Duration,
    /// The node's limit, retries included.
    pub schedule_to_close: Option<Duration>,
    /// The longest silence between heartbeats.
    pub heartbeat: Option<Duration>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn retry_defaults_are_temporals_with_jitter() {
        let r = NodeRetry::default();
        assert_eq!(r.max_attempts(), None);
        assert_eq!(r.delay(1, 0.0), Duration::from_secs(1));
        assert_eq!(r.delay(2, 0.0), Duration::from_secs(2));
        assert_eq!(r.delay(4, 0.0), Duration::from_secs(8));
        assert_eq!(
            r.delay(20, 0.0),
            Duration::from_secs(100),
            "capped at 100 × initial"
        );
        assert_eq!(r.delay(u32::MAX, 0.0), Duration::from_secs(100));
        assert_eq!(
            r.delay(1, 1.0),
            Duration::from_millis(800),
            "jitter shortens by ≤ 20%"
        );
        assert_eq!(r.delay(1, f64::NAN), Duration::from_secs(1));
        assert!(r.retries_after(1_000, "unavailable", true));
        assert!(!r.retries_after(1, "unavailable", false));
    }

    #[test]
    fn retry_limits_and_kinds() {
        let r = RetrySpec::default()
            .max_attempts(3)
            .initial_interval_ms(100)
            .backoff_coefficient(3.0)
            .max_interval_ms(500)
            .jitter(0.0)
            .non_retryable("invalid_input")
            .validate("n")
            .unwrap();
        assert!(r.retries_after(2, "unavailable", true));
        assert!(!r.retries_after(3, "unavailable", true));
        assert!(!r.retries_after(1, "invalid_input", true));
        assert_eq!(r.delay(2, 0.9), Duration::from_millis(300));
        assert_eq!(r.delay(3, 0.9), Duration::from_millis(500));
    }

    #[test]
    fn bad_retry_policies_name_the_problem() {
        for (spec, says) in [
            (
                RetrySpec::default().max_attempts(0),
                "max_attempts must be at least 1",
            ),
            (
                RetrySpec::default().initial_interval_ms(0),
                "initial_interval_ms must be positive",
            ),
            (
                RetrySpec::default().backoff_coefficient(0.5),
                "backoff_coefficient 0.5",
            ),
            (
                RetrySpec::default().backoff_coefficient(f64::NAN),
                "backoff_coefficient NaN",
            ),
            (
                RetrySpec::default().backoff_coefficient(f64::INFINITY),
                "backoff_coefficient inf",
            ),
            (
                RetrySpec::default()
                    .initial_interval_ms(10)
                    .max_interval_ms(5),
                "max_interval_ms 5 is shorter than initial_interval_ms 10",
            ),
            (RetrySpec::default().jitter(1.5), "jitter 1.5"),
            (RetrySpec::default().jitter(-0.1), "jitter -0.1"),
            (
                RetrySpec::default().non_retryable("no spaces"),
                "not allowed",
            ),
            (RetrySpec::default().non_retryable(""), "must not be empty"),
        ] {
            let e = spec.validate("scan").unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
        }
        let many = (0..=MAX_NON_RETRYABLE).fold(RetrySpec::default(), |s, i| {
            s.non_retryable(format!("k{i}"))
        });
        assert!(
            many.validate("n")
                .unwrap_err()
                .to_string()
                .contains("at most 32")
        );
    }

    #[test]
    fn timeouts_are_positive_and_nest() {
        let t = NodeTimeouts::default().validate("n").unwrap();
        assert_eq!(t.start_to_close, DEFAULT_START_TO_CLOSE);
        assert_eq!((t.schedule_to_close, t.heartbeat), (None, None));
        let t = NodeTimeouts::default()
            .start_to_close_ms(1_000)
            .schedule_to_close_ms(5_000)
            .heartbeat_ms(200)
            .validate("n")
            .unwrap();
        assert_eq!(t.heartbeat, Some(Duration::from_millis(200)));
        for (spec, says) in [
            (
                NodeTimeouts::default().start_to_close_ms(0),
                "start_to_close_ms must be positive",
            ),
            (
                NodeTimeouts::default().schedule_to_close_ms(0),
                "schedule_to_close_ms must be positive",
            ),
            (
                NodeTimeouts::default().heartbeat_ms(0),
                "heartbeat_ms must be positive",
            ),
            (
                NodeTimeouts::default()
                    .start_to_close_ms(100)
                    .heartbeat_ms(200),
                "heartbeat_ms 200 is longer than start_to_close_ms 100",
            ),
            (
                NodeTimeouts::default()
                    .start_to_close_ms(900)
                    .schedule_to_close_ms(500),
                "start_to_close_ms 900 is longer than schedule_to_close_ms 500",
            ),
        ] {
            let e = spec.validate("build").unwrap_err();
            assert!(
                e.to_string().contains(says) && e.to_string().contains("node build"),
                "{e}"
            );
        }
    }
}
