//! The scheduler's queue of due work ([`DueQueue`]) and the timing rules it is fed with
//! (first run within the jitter, next run one interval after the last start).

use crate::health::CheckId;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DueKind {
    Run,
    TtlExpiry,
    Deregister,
}

#[derive(Debug)]
pub(super) struct Due {
    pub(super) at: Instant,
    pub(super) seq: u64,
    pub(super) check: CheckId,
    pub(super) generation: u64,
    pub(super) what: DueKind,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Due work ordered by time (ties in the order it was queued): one heap for every check's
/// runs, TTL expiries and deregistration deadlines, instead of one timer per check.
#[derive(Default)]
pub(super) struct DueQueue {
    heap: BinaryHeap<Reverse<Due>>,
    next_seq: u64,
}

impl DueQueue {
    /// Queues `what` for `check` (of `generation`) at `at`.
    pub(super) fn push(&mut self, at: Instant, check: &CheckId, generation: u64, what: DueKind) {
        self.next_seq += 1;
        self.heap.push(Reverse(Due {
            at,
            seq: self.next_seq,
            check: check.clone(),
            generation,
            what,
        }));
    }

    /// When the earliest entry is due.
    pub(super) fn next_at(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(due)| due.at)
    }

    /// Takes the earliest entry.
    pub(super) fn pop(&mut self) -> Option<Due> {
        self.heap.pop().map(|Reverse(due)| due)
    }
}

/// `t + d`, saturating at `t`. Every duration is validated to at most
/// [`MAX_CHECK_PERIOD`](crate::health::MAX_CHECK_PERIOD), so the fallback is never reached;
/// it only keeps the arithmetic panic-free.
pub(super) fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or(t)
}

/// A random delay in `0..=jitter`.
pub(super) fn random_jitter(jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return Duration::ZERO;
    }
    let max = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=max))
}

/// When the run after one started at `started` is due.
pub(super) fn next_run(
    started: Instant,
    interval: Duration,
    jitter: Duration,
    now: Instant,
) -> Instant {
    after(after(started, interval), random_jitter(jitter)).max(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_run_spreads_within_the_jitter() {
        let start = Instant::now();
        let interval = Duration::from_millis(100);
        let jitter = Duration::from_millis(50);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let due = next_run(start, interval, jitter, start);
            let delay = due - start;
            assert!(delay >= interval && delay <= interval + jitter, "{delay:?}");
            seen.insert(delay);
        }
        assert!(seen.len() > 10, "jitter does not spread runs: {seen:?}");
        // Without jitter, exactly one interval; never in the past.
        assert_eq!(
            next_run(start, interval, Duration::ZERO, start),
            start + interval
        );
        let late = start + Duration::from_secs(1);
        assert_eq!(next_run(start, interval, Duration::ZERO, late), late);
    }

    #[test]
    fn queue_pops_earliest_first() {
        let mut queue = DueQueue::default();
        let t = Instant::now();
        let id = CheckId::new("a").unwrap();
        queue.push(t + Duration::from_secs(3), &id, 1, DueKind::Run);
        queue.push(t + Duration::from_secs(1), &id, 1, DueKind::Deregister);
        queue.push(t + Duration::from_secs(2), &id, 1, DueKind::TtlExpiry);
        let order: Vec<_> = std::iter::from_fn(|| queue.pop().map(|d| d.what)).collect();
        assert_eq!(
            order,
            [DueKind::Deregister, DueKind::TtlExpiry, DueKind::Run]
        );
    }
}
