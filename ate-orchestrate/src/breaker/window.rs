//! Sliding windows of call outcomes (count- or time-based), with running totals.

use super::config::SlidingWindow;
use std::time::Duration;

/// Calls, failures and slow calls in a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

impl Totals {
    fn add(&mut self, failed: bool, slow: bool) {
        self.calls += 1;
        self.failures += u64::from(failed);
        self.slow += u64::from(slow);
    }

    fn sub(&mut self, other: Totals) {
        self.calls -= other.calls;
        self.failures -= other.failures;
        self.slow -= other.slow;
    }
}

#[derive(Debug)]
pub(crate) enum Window {
    /// The last `outcomes.len()` calls in a ring; bit 0 failed, bit 1 slow.
    Count {
        outcomes: Vec<u8>,
        next: usize,
        filled: usize,
        totals: Totals,
    },
    /// One bucket per second; `buckets[s % len]` holds second `s` when `seconds[..]` says so.
    Time {
        buckets: Vec<(u64, Totals)>,
        totals: Totals,
    },
}

impl Window {
    pub(crate) fn new(kind: SlidingWindow) -> Self {
        match kind {
            SlidingWindow::Count { calls } => Window::Count {
                outcomes: vec![0; calls.max(1) as usize],
                next: 0,
                filled: 0,
                totals: Totals::default(),
            },
            SlidingWindow::Time { seconds } => Window::Time {
                buckets: vec![(u64::MAX, Totals::default()); seconds.max(1) as usize],
                totals: Totals::default(),
            },
        }
    }

    pub(crate) fn record(&mut self, now: Duration, failed: bool, slow: bool) {
        match self {
            Window::Count {
                outcomes,
                next,
                filled,
                totals,
            } => {
                if *filled == outcomes.len() {
                    let old = outcomes[*next];
                    totals.sub(Totals {
                        calls: 1,
                        failures: u64::from(old & 1),
                        slow: u64::from(old >> 1 & 1),
                    });
                } else {
                    *filled += 1;
                }
                outcomes[*next] = u8::from(failed) | u8::from(slow) << 1;
                totals.add(failed, slow);
                *next = (*next + 1) % outcomes.len();
            }
            Window::Time { .. } => {
                self.evict(now);
                if let Window::Time { buckets, totals } = self {
                    let second = now.as_secs();
                    let len = buckets.len() as u64;
                    let bucket = &mut buckets[(second % len) as usize];
                    bucket.0 = second;
                    bucket.1.add(failed, slow);
                    totals.add(failed, slow);
                }
            }
        }
    }

    /// Drops the buckets older than the window (time windows only).
    fn evict(&mut self, now: Duration) {
        if let Window::Time { buckets, totals } = self {
            let second = now.as_secs();
            let len = buckets.len() as u64;
            for (s, bucket) in buckets.iter_mut() {
                if *s != u64::MAX && (*s > second || second - *s >= len) {
                    totals.sub(*bucket);
                    *s = u64::MAX;
                    *bucket = Totals::default();
                }
            }
        }
    }

    pub(crate) fn totals(&mut self, now: Duration) -> Totals {
        self.evict(now);
        match self {
            Window::Count { totals, .. } | Window::Time { totals, .. } => *totals,
        }
    }

    /// The window's capacity in calls, if bounded (count windows).
    pub(crate) fn capacity(&self) -> Option<u64> {
        match self {
            Window::Count { outcomes, .. } => Some(outcomes.len() as u64),
            Window::Time { .. } => None,
        }
    }

    pub(crate) fn clear(&mut self) {
        match self {
            Window::Count {
                outcomes,
                next,
                filled,
                totals,
            } => {
                outcomes.fill(0);
                *next = 0;
                *filled = 0;
                *totals = Totals::default();
            }
            Window::Time { buckets, totals } => {
                buckets.fill((u64::MAX, Totals::default()));
                *totals = Totals::default();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_forgets_the_oldest_call() {
        let mut w = Window::new(SlidingWindow::Count { calls: 3 });
        let t = Duration::ZERO;
        w.record(t, true, false);
        w.record(t, false, true);
        w.record(t, false, false);
        assert_eq!(
            w.totals(t),
            Totals {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        w.record(t, false, false);
        assert_eq!(
            w.totals(t),
            Totals {
                calls: 3,
                failures: 0,
                slow: 1
            }
        );
    }

    #[test]
    fn time_window_forgets_calls_older_than_its_length() {
        let mut w = Window::new(SlidingWindow::Time { seconds: 10 });
        w.record(Duration::from_secs(1), true, false);
        w.record(Duration::from_secs(5), false, false);
        assert_eq!(w.totals(Duration::from_secs(10)).calls, 2);
        assert_eq!(
            w.totals(Duration::from_secs(11)),
            Totals {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
        assert_eq!(w.totals(Duration::from_secs(100)), Totals::default());
        w.record(Duration::from_secs(101), true, true);
        assert_eq!(w.totals(Duration::from_secs(101)).failures, 1);
    }
}
