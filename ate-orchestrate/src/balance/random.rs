//! Random: each pick draws an endpoint at random, in proportion to its weight.
//!
//! Uniform when every weight is equal (one draw); otherwise one draw and a binary search
//! over cumulative weights (`O(log n)`). No shared mutable state at all: each thread uses
//! its own `fastrand` generator.

use super::round_robin::first_available;

/// Attempts at drawing an available endpoint before scanning for one.
const DRAWS: usize = 3;

/// Cumulative weights, or `None` when every weight is equal.
#[derive(Debug)]
pub(crate) struct WeightedIndex {
    cumulative: Option<Vec<u64>>,
    n: usize,
}

impl WeightedIndex {
    pub(crate) fn new(weights: &[u32]) -> Self {
        let uniform = weights.windows(2).all(|w| w[0] == w[1]);
        let cumulative = (!uniform).then(|| {
            weights
                .iter()
                .scan(0u64, |acc, &w| {
                    *acc += u64::from(w);
                    Some(*acc)
                })
                .collect()
        });
        WeightedIndex {
            cumulative,
            n: weights.len(),
        }
    }

    fn draw(&self) -> usize {
        match &self.cumulative {
            None => fastrand::usize(..self.n),
            Some(cumulative) => {
                let total = cumulative.last().copied().unwrap_or(0);
                if total == 0 {
                    return 0;
                }
                let r = fastrand::u64(..total);
                cumulative.partition_point(|&c| c <= r)
            }
        }
    }

    /// A random available position, weighted; `None` when none is available.
    pub(crate) fn pick(&self, ok: impl Fn(usize) -> bool) -> Option<usize> {
        if self.n == 0 {
            return None;
        }
        for _ in 0..DRAWS {
            let p = self.draw();
            if ok(p) {
                return Some(p);
            }
        }
        first_available(fastrand::usize(..self.n), self.n, ok)
    }
}
