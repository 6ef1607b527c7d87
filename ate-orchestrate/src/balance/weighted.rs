//! Smooth weighted round robin (nginx's `ngx_http_upstream_get_peer`).
//!
//! The algorithm: every endpoint has a `current` weight, initially 0. On each pick every
//! available endpoint's `current` grows by its weight, the endpoint with the largest
//! `current` (the first one on ties) is chosen, and its `current` drops by the total weight.
//! Over one cycle of `total weight` picks each endpoint is chosen exactly `weight` times,
//! spread out rather than in bursts: weights 5, 1, 1 give `a a b a c a a`.
//!
//! Cost. The textbook form touches every endpoint on every pick (`O(n)` under a lock). The
//! sequence from the all-zero start is periodic with period `total weight`, so when the set
//! is updated this module computes one whole cycle up front (the *schedule*) and picks
//! become one atomic `fetch_add` and an array read, like plain round robin. Computing the
//! cycle groups endpoints of equal weight (they are chosen in index order among themselves),
//! so it costs `O(total weight × distinct weights)`. Sets whose cycle would be too long or too
//! costly to precompute ([`MAX_SCHEDULE`], [`MAX_SCHEDULE_WORK`]) fall back to the textbook
//! form under a per-balancer mutex.
//!
//! Unavailable endpoints (breaker open, ejected): the schedule skips to the next available
//! entry; the textbook form leaves them out of the pick, as nginx does with failed peers.

use super::round_robin::first_available;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Longest cycle (sum of weights) precomputed.
pub const MAX_SCHEDULE: u64 = 1 << 20;
/// Most work (cycle length × distinct weights) spent precomputing a cycle.
pub const MAX_SCHEDULE_WORK: u64 = 1 << 26;

/// Smooth weighted round robin over positions `0..weights.len()`.
#[derive(Debug)]
pub(crate) enum Smooth {
    /// One precomputed cycle of positions.
    Schedule(Vec<u32>),
    /// nginx's per-pick scan; `current` weights behind a lock.
    Scan {
        weights: Vec<u32>,
        current: Mutex<Vec<i64>>,
    },
}

impl Smooth {
    pub(crate) fn new(weights: &[u32]) -> Self {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut classes: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (p, &w) in weights.iter().enumerate() {
            // Positions fit in u32: a set holds at most u32::MAX endpoints (checked on update).
            classes.entry(w).or_default().push(p as u32);
        }
        let work = total.saturating_mul(classes.len() as u64);
        if total <= MAX_SCHEDULE && work <= MAX_SCHEDULE_WORK {
            Smooth::Schedule(schedule(total, classes))
        } else {
            Smooth::Scan {
                weights: weights.to_vec(),
                current: Mutex::new(vec![0; weights.len()]),
            }
        }
    }

    /// The next available position.
    pub(crate) fn pick(&self, cursor: &AtomicUsize, ok: impl Fn(usize) -> bool) -> Option<usize> {
        match self {
            Smooth::Schedule(schedule) => {
                let start = cursor.fetch_add(1, Ordering::Relaxed);
                first_available(start, schedule.len(), |i| ok(schedule[i] as usize))
                    .map(|i| schedule[i] as usize)
            }
            Smooth::Scan { weights, current } => {
                let mut current = current
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let mut total = 0i64;
                let mut best: Option<usize> = None;
                for (p, &w) in weights.iter().enumerate() {
                    if !ok(p) {
                        continue;
                    }
                    current[p] += i64::from(w);
                    total += i64::from(w);
                    if best.is_none_or(|b| current[p] > current[b]) {
                        best = Some(p);
                    }
                }
                let best = best?;
                current[best] -= total;
                Some(best)
            }
        }
    }
}

/// One cycle of nginx's sequence from the all-zero start, computed per weight class.
///
/// After `t` picks, endpoint `i` chosen `c_i` times has `current_i = t·w_i − T·c_i`. Within a
/// class of equal weight the member with the fewest picks (lowest index on ties) has the
/// largest `current`, and members are chosen in index order, so the class's candidate after
/// `P` picks of the class is member `P mod m`, with `current = t·w − T·⌊P/m⌋`. The pick is
/// the class with the largest candidate `current`, ties to the lowest position: exactly
/// nginx's choice.
fn schedule(total: u64, classes: BTreeMap<u32, Vec<u32>>) -> Vec<u32> {
    let total_i = i64::try_from(total).unwrap_or(i64::MAX);
    let mut classes: Vec<(i64, Vec<u32>, usize)> = classes
        .into_iter()
        .map(|(w, members)| (i64::from(w), members, 0usize))
        .collect();
    // Capacity bounded by MAX_SCHEDULE (checked by the caller).
    let mut out = Vec::with_capacity(total as usize);
    for t in 1..=total_i {
        let mut best: Option<(i64, u32, usize)> = None;
        for (c, (w, members, picks)) in classes.iter().enumerate() {
            let m = members.len();
            let current = t * w - total_i * (*picks / m) as i64;
            let position = members[*picks % m];
            let better = match best {
                None => true,
                Some((bc, bp, _)) => current > bc || (current == bc && position < bp),
            };
            if better {
                best = Some((current, position, c));
            }
        }
        if let Some((_, position, c)) = best {
            classes[c].2 += 1;
            out.push(position);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nginx's loop, verbatim.
    fn naive(weights: &[u32], picks: usize) -> Vec<usize> {
        let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
        let mut current = vec![0i64; weights.len()];
        let mut out = Vec::new();
        for _ in 0..picks {
            let mut best = 0;
            for p in 0..weights.len() {
                current[p] += i64::from(weights[p]);
                if current[p] > current[best] {
                    best = p;
                }
            }
            current[best] -= total;
            out.push(best);
        }
        out
    }

    fn run(smooth: &Smooth, picks: usize) -> Vec<usize> {
        let cursor = AtomicUsize::new(0);
        (0..picks)
            .map(|_| smooth.pick(&cursor, |_| true).unwrap())
            .collect()
    }

    #[test]
    fn weights_5_1_1_give_nginx_sequence() {
        let smooth = Smooth::new(&[5, 1, 1]);
        assert!(matches!(smooth, Smooth::Schedule(_)));
        assert_eq!(run(&smooth, 7), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn schedule_matches_nginx_loop_for_varied_weights() {
        for weights in [
            vec![1, 1, 1],
            vec![3, 2, 1],
            vec![2, 7, 2, 7, 1],
            vec![10, 1, 10, 3, 3, 3],
            (1..=20).map(|i| (i * 7) % 11 + 1).collect(),
        ] {
            let total: usize = weights.iter().map(|&w| w as usize).sum();
            let smooth = Smooth::new(&weights);
            assert_eq!(
                run(&smooth, 3 * total),
                naive(&weights, 3 * total),
                "{weights:?}"
            );
        }
    }

    #[test]
    fn every_cycle_gives_each_endpoint_exactly_its_weight() {
        let weights = [4, 1, 3, 2];
        let smooth = Smooth::new(&weights);
        let picks = run(&smooth, 10 * 2);
        for cycle in picks.chunks(10) {
            for (p, &w) in weights.iter().enumerate() {
                assert_eq!(cycle.iter().filter(|&&x| x == p).count(), w as usize);
            }
        }
    }

    #[test]
    fn scan_fallback_matches_nginx_loop() {
        let weights = [5, 1, 1];
        let smooth = Smooth::Scan {
            weights: weights.to_vec(),
            current: Mutex::new(vec![0; 3]),
        };
        assert_eq!(run(&smooth, 21), naive(&weights, 21));
    }

    #[test]
    fn huge_cycles_fall_back_to_scan() {
        let weights = vec![10_000; 200];
        assert!(matches!(Smooth::new(&weights), Smooth::Scan { .. }));
    }

    #[test]
    fn unavailable_endpoints_are_skipped() {
        for smooth in [
            Smooth::new(&[5, 1, 1]),
            Smooth::Scan {
                weights: vec![5, 1, 1],
                current: Mutex::new(vec![0; 3]),
            },
        ] {
            let cursor = AtomicUsize::new(0);
            for _ in 0..20 {
                assert_ne!(smooth.pick(&cursor, |p| p != 0), Some(0));
            }
            assert_eq!(smooth.pick(&cursor, |_| false), None);
        }
    }
}
