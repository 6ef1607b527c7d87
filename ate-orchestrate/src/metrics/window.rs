//! One series' recent history: a ring of per-second slots over the longest window.

use super::histogram::{DenseCounts, SparseCounts, bucket_of};
use std::time::Duration;

#[derive(Debug, Clone, Default)]
struct Slot {
    /// The Unix second this slot holds; `i64::MIN` for a never-used slot.
    second: i64,
    count: u64,
    errors: u64,
    latencies: SparseCounts,
}

/// Per-second counts and latency buckets for the last `len` seconds.
#[derive(Debug)]
pub(crate) struct Ring {
    slots: Vec<Slot>,
}

/// Sums over a window, before quantiles are taken.
#[derive(Debug)]
pub(crate) struct Merged {
    pub(crate) count: u64,
    pub(crate) errors: u64,
    pub(crate) latencies: DenseCounts,
}

impl Merged {
    pub(crate) fn new() -> Self {
        Merged {
            count: 0,
            errors: 0,
            latencies: DenseCounts::new(),
        }
    }
}

impl Ring {
    /// A ring of `seconds` slots (at least one).
    pub(crate) fn new(seconds: usize) -> Self {
        let empty = Slot {
            second: i64::MIN,
            ..Slot::default()
        };
        Ring {
            slots: vec![empty; seconds.max(1)],
        }
    }

    /// Adds one observation at Unix second `second`. Observations older than the ring (a
    /// clock that stepped back further than the longest window) are dropped: returns
    /// `false` for them.
    pub(crate) fn add(&mut self, second: i64, latency: Duration, error: bool) -> bool {
        let len = self.slots.len() as i64;
        let slot = &mut self.slots[second.rem_euclid(len) as usize];
        if slot.second != second {
            if slot.second > second {
                return false;
            }
            slot.second = second;
            slot.count = 0;
            slot.errors = 0;
            slot.latencies.clear();
        }
        slot.count += 1;
        if error {
            slot.errors += 1;
        }
        slot.latencies.add(bucket_of(latency));
        true
    }

    /// Adds the slots of seconds `(now - window, now]` to `into`.
    pub(crate) fn merge(&self, now: i64, window_secs: i64, into: &mut Merged) {
        for slot in &self.slots {
            if slot.second <= now && slot.second > now - window_secs {
                into.count += slot.count;
                into.errors += slot.errors;
                slot.latencies.merge_into(&mut into.latencies);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_and_stale_observations_dropped() {
        let mut ring = Ring::new(3);
        assert!(ring.add(10, Duration::from_millis(1), false));
        assert!(ring.add(13, Duration::from_millis(1), true));
        // Second 10 shared slot 1 with 13 and was overwritten; 10 is now too old.
        assert!(!ring.add(10, Duration::from_millis(1), false));
        let mut m = Merged::new();
        ring.merge(13, 3, &mut m);
        assert_eq!((m.count, m.errors), (1, 1));
    }
}
