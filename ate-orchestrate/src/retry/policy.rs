//! When and how long to wait before retrying.

use super::sleep::{Sleeper, TokioSleeper};
use crate::OrchestrateError;
use ate_core::Classify;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How the wait before a retry is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Jitter {
    /// "Full jitter" (AWS architecture blog): uniformly random in `0..=ceiling`. Spreads the
    /// retries of many clients that failed together, so they do not return in lockstep.
    Full,
    /// Exactly the ceiling (deterministic; for tests and single clients).
    None,
}

/// Decides which errors are worth retrying.
pub type RetryPredicate = Arc<dyn Fn(&dyn Classify) -> bool + Send + Sync>;

/// Exponential backoff with jitter, for errors that may succeed when retried.
///
/// The `n`-th retry (n = 1, 2, …) waits a random time up to
/// `min(max_delay, base_delay × 2^(n-1))` ([`Jitter::Full`]). An error is retried only if
/// the predicate allows it; the default is [`Classify::is_retryable`] (kinds `Unavailable`
/// and `RateLimited`, plus errors that refine it, like a serialization conflict).
///
/// Defaults: 3 attempts in all, base 50 ms, max 2 s, full jitter, tokio's timer.
#[derive(Clone)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retries).
    pub max_attempts: u32,
    /// The first retry's ceiling.
    pub base_delay: Duration,
    /// The largest ceiling.
    pub max_delay: Duration,
    /// How waits are randomised.
    pub jitter: Jitter,
    /// Which errors are retried.
    pub retry_if: RetryPredicate,
    /// How waits are waited.
    pub sleeper: Arc<dyn Sleeper>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            jitter: Jitter::Full,
            retry_if: Arc::new(|e: &dyn Classify| e.is_retryable()),
            sleeper: Arc::new(TokioSleeper),
        }
    }
}

impl RetryPolicy {
    /// A policy of `max_attempts` attempts in all with delays from `base_delay` up to
    /// `max_delay`.
    ///
    /// Behavior: [`OrchestrateError::InvalidInput`] when `max_attempts` is 0 or `base_delay`
    /// is longer than `max_delay`.
    pub fn new(
        max_attempts: u32,
        base_delay: Duration,
        max_delay: Duration,
    ) -> Result<Self, OrchestrateError> {
        let policy = RetryPolicy {
            max_attempts,
            base_delay,
            max_delay,
            ..RetryPolicy::default()
        };
        policy.validate()?;
        Ok(policy)
    }

    /// Sets the jitter.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets which errors are retried.
    pub fn with_predicate(
        mut self,
        retry_if: impl Fn(&dyn Classify) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.retry_if = Arc::new(retry_if);
        self
    }

    /// Sets how waits are waited (tests record them instead).
    pub fn sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }

    /// Checks the settings (see [`RetryPolicy::new`]).
    pub fn validate(&self) -> Result<(), OrchestrateError> {
        if self.max_attempts == 0 {
            return Err(OrchestrateError::invalid(
                "retry policy",
                "max attempts must be at least 1 (the first attempt counts)",
            ));
        }
        if self.base_delay > self.max_delay {
            return Err(OrchestrateError::invalid(
                "retry policy",
                format!(
                    "base delay {:?} is longer than max delay {:?}",
                    self.base_delay, self.max_delay
                ),
            ));
        }
        Ok(())
    }

    /// Whether `error` is worth retrying under this policy.
    pub fn should_retry(&self, error: &dyn Classify) -> bool {
        (self.retry_if)(error)
    }

    /// The ceiling of the `retry`-th retry's wait (`retry` ≥ 1):
    /// `min(max_delay, base_delay × 2^(retry-1))`, without overflow.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let shift = retry.saturating_sub(1).min(63);
        let factor = 1u64 << shift;
        let nanos = self
            .base_delay
            .as_nanos()
            .saturating_mul(u128::from(factor));
        let max = self.max_delay.as_nanos();
        Duration::from_nanos(u64::try_from(nanos.min(max)).unwrap_or(u64::MAX))
    }

    /// The wait before the `retry`-th retry (`retry` ≥ 1), jittered.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => {
                let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(fastrand::u64(0..=nanos))
            }
        }
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("base_delay", &self.base_delay)
            .field("max_delay", &self.max_delay)
            .field("jitter", &self.jitter)
            .field("sleeper", &self.sleeper)
            .finish_non_exhaustive()
    }
}
