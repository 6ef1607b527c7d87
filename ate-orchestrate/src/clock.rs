//! Monotonic time, injectable for tests.
//!
//! Breakers, outlier ejection, retry budgets and pick guards measure durations and
//! deadlines, never wall-clock dates, so they read a [`MonotonicClock`]: the real one in
//! production ([`SystemMonotonicClock`]), a [`ManualMonotonicClock`] in tests so that no
//! test sleeps or asserts timings. (Wall-clock dates, as the registry and the metrics
//! windows record them, come from [`ate_core::Clock`] instead.)

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A monotonic source of time.
///
/// Behavior: [`MonotonicClock::now`] returns the time elapsed since the clock's own fixed
/// origin; successive readings never decrease. Readings of different clocks are not
/// comparable.
pub trait MonotonicClock: Send + Sync + fmt::Debug {
    /// Time since this clock's origin.
    fn now(&self) -> Duration;
}

/// The process's monotonic clock ([`Instant`]), with its origin at construction.
#[derive(Debug, Clone, Copy)]
pub struct SystemMonotonicClock {
    origin: Instant,
}

impl SystemMonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        SystemMonotonicClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemMonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl MonotonicClock for SystemMonotonicClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that only moves when told to (for tests).
#[derive(Debug, Default)]
pub struct ManualMonotonicClock {
    nanos: AtomicU64,
}

impl ManualMonotonicClock {
    /// A clock stopped at its origin.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by` (saturating at about 584 years).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            });
    }
}

impl MonotonicClock for ManualMonotonicClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

/// `d` in whole nanoseconds, saturating (for storing deadlines in atomics).
pub(crate) fn as_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualMonotonicClock::new();
        assert_eq!(clock.now(), Duration::ZERO);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), Duration::from_millis(1500));
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn system_clock_never_goes_back() {
        let clock = SystemMonotonicClock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
    }
}
