//! Circuit-breaker configuration (Resilience4j's settings and defaults).

use crate::OrchestrateError;
use ate_core::ErrorKind;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Which recent calls the failure and slow-call rates are computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SlidingWindow {
    /// The last `calls` calls.
    Count {
        /// Window size, at least 1.
        calls: u32,
    },
    /// The calls of the last `seconds` seconds (aggregated per second).
    Time {
        /// Window length, 1 to 3,600.
        seconds: u32,
    },
}

/// Longest time window, in seconds.
pub const MAX_WINDOW_SECONDS: u32 = 3_600;

/// Which error kinds count as failures.
pub type FailurePredicate = Arc<dyn Fn(ErrorKind) -> bool + Send + Sync>;

/// A circuit breaker's settings.
///
/// Defaults follow Resilience4j where it has one (count window of 100, 50% failure rate,
/// 100% slow-call rate over 60 s, 100 minimum calls, 60 s open, 10 half-open probes), plus a
/// probe timeout of 30 s (Resilience4j waits forever by default; here a stuck probe must
/// not freeze the breaker) and failures = retryable kinds
/// ([`ErrorKind::is_retryable`]: `Unavailable`, `RateLimited`). Errors of other kinds (a
/// `NotFound`, an `InvalidInput`) mean the endpoint answered, so they count as successful
/// calls.
#[derive(Clone)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// The window rates are computed over.
    pub window: SlidingWindow,
    /// Open when at least this percentage (0 < x ≤ 100) of the window's calls failed.
    pub failure_rate_threshold: f64,
    /// Open when at least this percentage (0 < x ≤ 100) of the window's calls were slow.
    pub slow_call_rate_threshold: f64,
    /// A call taking at least this long is slow.
    pub slow_call_duration: Duration,
    /// Rates are not evaluated before the window holds this many calls (capped at a count
    /// window's size).
    pub minimum_calls: u32,
    /// How long the breaker stays open before letting probes through.
    pub wait_in_open: Duration,
    /// How many probe calls half-open lets through.
    pub half_open_permits: u32,
    /// A probe not completed within this time counts as a failed probe and its permit is
    /// reclaimed.
    pub probe_timeout: Duration,
    /// Which error kinds count as failures.
    pub is_failure: FailurePredicate,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window: SlidingWindow::Count { calls: 100 },
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: Duration::from_secs(60),
            minimum_calls: 100,
            wait_in_open: Duration::from_secs(60),
            half_open_permits: 10,
            probe_timeout: Duration::from_secs(30),
            is_failure: Arc::new(ErrorKind::is_retryable),
        }
    }
}

impl BreakerConfig {
    /// Sets [`BreakerConfig::window`].
    pub fn window(mut self, window: SlidingWindow) -> Self {
        self.window = window;
        self
    }

    /// Sets [`BreakerConfig::failure_rate_threshold`] (percent).
    pub fn failure_rate_threshold(mut self, percent: f64) -> Self {
        self.failure_rate_threshold = percent;
        self
    }

    /// Sets [`BreakerConfig::slow_call_rate_threshold`] (percent) and
    /// [`BreakerConfig::slow_call_duration`].
    pub fn slow_calls(mut self, percent: f64, duration: Duration) -> Self {
        self.slow_call_rate_threshold = percent;
        self.slow_call_duration = duration;
        self
    }

    /// Sets [`BreakerConfig::minimum_calls`].
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.minimum_calls = calls;
        self
    }

    /// Sets [`BreakerConfig::wait_in_open`].
    pub fn wait_in_open(mut self, wait: Duration) -> Self {
        self.wait_in_open = wait;
        self
    }

    /// Sets [`BreakerConfig::half_open_permits`] and [`BreakerConfig::probe_timeout`].
    pub fn half_open(mut self, permits: u32, probe_timeout: Duration) -> Self {
        self.half_open_permits = permits;
        self.probe_timeout = probe_timeout;
        self
    }

    /// Sets [`BreakerConfig::is_failure`].
    pub fn with_failure_predicate(
        mut self,
        is_failure: impl Fn(ErrorKind) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.is_failure = Arc::new(is_failure);
        self
    }

    /// Checks every setting.
    ///
    /// Behavior: [`OrchestrateError::InvalidInput`] naming the setting when a threshold is
    /// not within (0, 100], a window, minimum or permit count is 0, a time window is longer
    /// than [`MAX_WINDOW_SECONDS`], or a duration is zero.
    pub fn validate(&self) -> Result<(), OrchestrateError> {
        for (what, value) in [
            ("failure rate threshold", self.failure_rate_threshold),
            ("slow call rate threshold", self.slow_call_rate_threshold),
        ] {
            if !(value > 0.0 && value <= 100.0) {
                return Err(OrchestrateError::invalid(
                    what,
                    format!("{value} is not a percentage within (0, 100]"),
                ));
            }
        }
        match self.window {
            SlidingWindow::Count { calls: 0 } => {
                return Err(OrchestrateError::invalid(
                    "sliding window",
                    "a count window needs at least 1 call",
                ));
            }
            SlidingWindow::Time { seconds } if seconds == 0 || seconds > MAX_WINDOW_SECONDS => {
                return Err(OrchestrateError::invalid(
                    "sliding window",
                    format!("{seconds} s is outside 1..={MAX_WINDOW_SECONDS}"),
                ));
            }
            _ => {}
        }
        for (what, value) in [
            ("minimum calls", self.minimum_calls),
            ("half-open permits", self.half_open_permits),
        ] {
            if value == 0 {
                return Err(OrchestrateError::invalid(what, "must be at least 1"));
            }
        }
        for (what, value) in [
            ("slow call duration", self.slow_call_duration),
            ("wait in open", self.wait_in_open),
            ("probe timeout", self.probe_timeout),
        ] {
            if value.is_zero() {
                return Err(OrchestrateError::invalid(what, "must be longer than zero"));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for BreakerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerConfig")
            .field("window", &self.window)
            .field("failure_rate_threshold", &self.failure_rate_threshold)
            .field("slow_call_rate_threshold", &self.slow_call_rate_threshold)
            .field("slow_call_duration", &self.slow_call_duration)
            .field("minimum_calls", &self.minimum_calls)
            .field("wait_in_open", &self.wait_in_open)
            .field("half_open_permits", &self.half_open_permits)
            .field("probe_timeout", &self.probe_timeout)
            .finish_non_exhaustive()
    }
}
