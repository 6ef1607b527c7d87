//! A retry budget (Finagle's `RetryBudget`, tower's `TpsBudget`): retries may add at most a
//! fixed share to the traffic, so during an outage they cannot multiply the load.

use crate::OrchestrateError;
use crate::clock::{MonotonicClock, SystemMonotonicClock};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Slots the TTL window is divided into.
const SLOTS: u32 = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Which slot period (`now / slot_length`) the counts belong to.
    period: u64,
    requests: u64,
    retries: u64,
}

/// How many retries may be made: within any `ttl`, at most
/// `min_per_sec × ttl + retry_ratio × requests` retries, where `requests` are the original
/// (first-attempt) requests of the same `ttl`.
///
/// Each request [`deposit`](Self::deposit)s, each retry [`try_withdraw`](Self::try_withdraw)s
/// (and fails once the budget is spent). Counts are kept in 10 slots of `ttl / 10` each, so
/// they expire gradually. One budget is shared by every call to a service; a mutex guards
/// the slots (held for a few additions, never across an await).
///
/// Example: `ttl` 10 s, `min_per_sec` 10, `retry_ratio` 0.2 allows 100 retries in any 10 s
/// plus one per five requests: when every request fails, retries add at most 20% (plus the
/// floor) to the load, instead of `max_attempts - 1` times it.
pub struct RetryBudget {
    ttl: Duration,
    min_per_sec: u32,
    retry_ratio: f64,
    clock: Arc<dyn MonotonicClock>,
    slots: Mutex<Vec<Slot>>,
}

impl RetryBudget {
    /// A budget on the system's monotonic clock.
    ///
    /// Behavior: [`OrchestrateError::InvalidInput`] when `ttl` is not within 1 s..=60 s or
    /// `retry_ratio` is not within 0.0..=1000.0.
    pub fn new(
        ttl: Duration,
        min_per_sec: u32,
        retry_ratio: f64,
    ) -> Result<Self, OrchestrateError> {
        Self::with_clock(
            ttl,
            min_per_sec,
            retry_ratio,
            Arc::new(SystemMonotonicClock::new()),
        )
    }

    /// A budget on the given clock.
    pub fn with_clock(
        ttl: Duration,
        min_per_sec: u32,
        retry_ratio: f64,
        clock: Arc<dyn MonotonicClock>,
    ) -> Result<Self, OrchestrateError> {
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&ttl) {
            return Err(OrchestrateError::invalid(
                "retry budget",
                format!("ttl {ttl:?} is outside 1 s..=60 s"),
            ));
        }
        if !(0.0..=1000.0).contains(&retry_ratio) {
            return Err(OrchestrateError::invalid(
                "retry budget",
                format!("retry ratio {retry_ratio} is outside 0.0..=1000.0"),
            ));
        }
        Ok(RetryBudget {
            ttl,
            min_per_sec,
            retry_ratio,
            clock,
            slots: Mutex::new(vec![Slot::default(); SLOTS as usize]),
        })
    }

    /// Finagle's defaults: 10 s TTL, 10 retries per second, 20% of requests.
    pub fn default_budget() -> Self {
        RetryBudget {
            ttl: Duration::from_secs(10),
            min_per_sec: 10,
            retry_ratio: 0.2,
            clock: Arc::new(SystemMonotonicClock::new()),
            slots: Mutex::new(vec![Slot::default(); SLOTS as usize]),
        }
    }

    fn slot_nanos(&self) -> u128 {
        (self.ttl.as_nanos() / u128::from(SLOTS)).max(1)
    }

    /// Runs `f` on the live slots (older ones zeroed) and the current slot's index.
    fn with_slots<R>(&self, f: impl FnOnce(&mut [Slot], usize) -> R) -> R {
        let period = (self.clock.now().as_nanos() / self.slot_nanos()) as u64;
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for s in slots.iter_mut() {
            if s.period + u64::from(SLOTS) <= period || s.period > period {
                *s = Slot::default();
            }
        }
        let i = (period % u64::from(SLOTS)) as usize;
        if slots[i].period != period {
            slots[i] = Slot {
                period,
                ..Slot::default()
            };
        }
        f(&mut slots, i)
    }

    fn allowance(&self, requests: u64) -> f64 {
        f64::from(self.min_per_sec) * self.ttl.as_secs_f64() + self.retry_ratio * requests as f64
    }

    /// Counts one original request (not a retry).
    pub fn deposit(&self) {
        self.with_slots(|slots, i| slots[i].requests += 1);
    }

    /// Takes one retry from the budget; `false` (and nothing taken) when it is spent.
    pub fn try_withdraw(&self) -> bool {
        self.with_slots(|slots, i| {
            let requests: u64 = slots.iter().map(|s| s.requests).sum();
            let retries: u64 = slots.iter().map(|s| s.retries).sum();
            if (retries + 1) as f64 <= self.allowance(requests) {
                slots[i].retries += 1;
                true
            } else {
                false
            }
        })
    }

    /// Retries still allowed right now (rounded down).
    pub fn remaining(&self) -> u64 {
        self.with_slots(|slots, _| {
            let requests: u64 = slots.iter().map(|s| s.requests).sum();
            let retries: u64 = slots.iter().map(|s| s.retries).sum();
            (self.allowance(requests) - retries as f64).max(0.0) as u64
        })
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("ttl", &self.ttl)
            .field("min_per_sec", &self.min_per_sec)
            .field("retry_ratio", &self.retry_ratio)
            .finish_non_exhaustive()
    }
}
