//! Random: each pick draws an endpoint at random, in proportion to its weight.
//!
//! Uniform when every weight is equal (one draw); otherwise Walker's alias method (Vose's
//! construction, in integers, so the odds are exactly the weights'): two draws and two
//! table reads, `O(1)` whatever the number of endpoints. No shared mutable state at all:
//! each thread uses its own `fastrand` generator.

use super::round_robin::first_available;

/// Attempts at drawing an available endpoint before scanning for one.
const DRAWS: usize = 3;

/// Weighted draws of positions `0..n`.
#[derive(Debug)]
pub(crate) struct WeightedIndex {
    /// `None` when every weight is equal.
    alias: Option<Alias>,
    n: usize,
}

/// An alias table: draw a column `i` uniformly and `u` in `0..total`; the result is `i` if
/// `u < keep[i]`, else `other[i]`. Column `i` gives `keep[i]` of its `total` to itself and
/// the rest to `other[i]`; every position's share over all columns is `weight × n`.
#[derive(Debug)]
struct Alias {
    total: u64,
    keep: Vec<u64>,
    other: Vec<u32>,
}

impl Alias {
    /// `None` when the weights add up to zero.
    fn new(weights: &[u32]) -> Option<Self> {
        let n = weights.len() as u128;
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        if total == 0 {
            return None;
        }
        // Shares in units where each column holds `total`.
        let mut share: Vec<u128> = weights.iter().map(|&w| u128::from(w) * n).collect();
        let capacity = u128::from(total);
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..weights.len()).partition(|&i| share[i] < capacity);
        let mut keep = vec![total; weights.len()];
        let mut other: Vec<u32> = (0..weights.len() as u32).collect();
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            // share[s] < capacity == total, so it fits in u64.
            keep[s] = share[s] as u64;
            other[s] = l as u32;
            share[l] -= capacity - share[s];
            if share[l] < capacity {
                large.pop();
                small.push(l);
            }
        }
        // What is left (in either list) keeps its whole column: its share is `capacity`
        // exactly, up to nothing (the arithmetic is exact).
        Some(Alias { total, keep, other })
    }

    fn draw(&self) -> usize {
        let column = fastrand::usize(..self.keep.len());
        if fastrand::u64(..self.total) < self.keep[column] {
            column
        } else {
            self.other[column] as usize
        }
    }
}

impl WeightedIndex {
    pub(crate) fn new(weights: &[u32]) -> Self {
        let uniform = weights.windows(2).all(|w| w[0] == w[1]);
        WeightedIndex {
            alias: if uniform { None } else { Alias::new(weights) },
            n: weights.len(),
        }
    }

    fn draw(&self) -> usize {
        match &self.alias {
            None => fastrand::usize(..self.n),
            Some(alias) => alias.draw(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each position's exact share of the `n × total` (column, draw) outcomes.
    fn shares(alias: &Alias) -> Vec<u64> {
        let mut got = vec![0u64; alias.keep.len()];
        for (column, (&keep, &other)) in alias.keep.iter().zip(&alias.other).enumerate() {
            got[column] += keep;
            got[other as usize] += alias.total - keep;
        }
        got
    }

    /// The table gives every position exactly `weight × n` of the `n × total` outcomes:
    /// the odds are the weights', with no rounding.
    #[test]
    fn alias_tables_are_exact() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut cases: Vec<Vec<u32>> = vec![
            vec![1, 2],
            vec![1, 2, 3],
            vec![0, 5, 0, 1],
            vec![u32::MAX, 1, u32::MAX - 7],
            vec![7; 5].into_iter().chain([8]).collect(),
        ];
        cases.extend((0..50).map(|_| {
            let n = rng.usize(2..300);
            (0..n).map(|_| rng.u32(0..1_000)).collect()
        }));
        for weights in cases {
            let Some(alias) = Alias::new(&weights) else {
                assert!(weights.iter().all(|&w| w == 0));
                continue;
            };
            let n = weights.len() as u64;
            let want: Vec<u64> = weights.iter().map(|&w| u64::from(w) * n).collect();
            assert_eq!(shares(&alias), want, "{weights:?}");
        }
        assert!(Alias::new(&[0, 0]).is_none());
    }

    /// Draws follow the weights (a loose statistical check of the drawing itself).
    #[test]
    fn draws_follow_the_weights() {
        let index = WeightedIndex::new(&[1, 3, 0, 4]);
        let mut counts = [0u32; 4];
        for _ in 0..80_000 {
            counts[index.draw()] += 1;
        }
        assert_eq!(counts[2], 0, "weight 0 is never drawn");
        for (i, want) in [(0, 10_000.0), (1, 30_000.0), (3, 40_000.0)] {
            let got = f64::from(counts[i]);
            assert!((got - want).abs() < want * 0.05, "{counts:?}");
        }
    }
}
