//! Time, injectable for tests.

use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Mutex;

/// A source of the current time. Stores take one so tests can move time deterministically
/// (purge deadlines, token expiry) without sleeping.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time, truncated to whole microseconds (the precision ATE stores).
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate_to_micros(Utc::now())
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Mutex::new(truncate_to_micros(start)),
        }
    }

    /// Moves the clock forward (or backward, for a negative delta).
    pub fn advance(&self, by: TimeDelta) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    // Always in range: any `DateTime<Utc>` chrono can hold has a microsecond representation.
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now().timestamp_subsec_nanos(), 123_456_000);
        clock.advance(TimeDelta::days(1));
        assert_eq!(clock.now().timestamp(), 1_700_000_000 + 86_400);
    }
}
