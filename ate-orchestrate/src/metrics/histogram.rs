//! A small log-bucketed latency histogram with a bounded relative error.
//!
//! Bucket `i >= 1` holds the values in `[MIN·γ^(i-1), MIN·γ^i)` with
//! `γ = (1 + e) / (1 - e)`; a value is reported as `2·lo·hi / (lo + hi)`, which is within a
//! relative error `e` ([`RELATIVE_ERROR`], 2 %) of every value in the bucket. Bucket 0 holds
//! everything below [`MIN_TRACKED`] (reported as 0); values above [`MAX_TRACKED`] land in the
//! last bucket (reported as about [`MAX_TRACKED`]).

use std::time::Duration;

/// The relative error of every reported latency between [`MIN_TRACKED`] and [`MAX_TRACKED`].
pub const RELATIVE_ERROR: f64 = 0.02;
/// Latencies below this (1 µs) are reported as zero.
pub const MIN_TRACKED: Duration = Duration::from_micros(1);
/// Latencies above this (1 hour) are reported as about one hour.
pub const MAX_TRACKED: Duration = Duration::from_secs(3600);

const MIN_NANOS: f64 = 1_000.0;
const GAMMA: f64 = (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR);

/// Number of buckets, including the zero bucket: `1 + ceil(ln(MAX/MIN) / ln γ)` = 552.
pub(crate) const BUCKETS: usize = 552;

/// The bucket of a latency.
pub(crate) fn bucket_of(latency: Duration) -> u16 {
    let nanos = latency.as_nanos() as f64;
    if nanos < MIN_NANOS {
        return 0;
    }
    let i = 1.0 + ((nanos / MIN_NANOS).ln() / GAMMA.ln()).floor();
    // `i` is finite and >= 1 here; the clamp keeps it in range for huge inputs.
    (i.min((BUCKETS - 1) as f64)) as u16
}

/// The value reported for bucket `i`.
pub(crate) fn bucket_value(i: u16) -> Duration {
    if i == 0 {
        return Duration::ZERO;
    }
    let lo = MIN_NANOS * GAMMA.powi(i32::from(i) - 1);
    let hi = lo * GAMMA;
    Duration::from_nanos((2.0 * lo * hi / (lo + hi)).round() as u64)
}

/// Counts per bucket for one time slot: sparse, sorted by bucket, so a slot costs memory
/// only for the distinct buckets it saw (at most [`BUCKETS`] entries of 6 bytes).
#[derive(Debug, Clone, Default)]
pub(crate) struct SparseCounts {
    entries: Vec<(u16, u32)>,
}

impl SparseCounts {
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn add(&mut self, bucket: u16) {
        match self.entries.binary_search_by_key(&bucket, |e| e.0) {
            Ok(pos) => self.entries[pos].1 = self.entries[pos].1.saturating_add(1),
            Err(pos) => self.entries.insert(pos, (bucket, 1)),
        }
    }

    pub(crate) fn merge_into(&self, dense: &mut DenseCounts) {
        for &(b, c) in &self.entries {
            dense.counts[usize::from(b)] += u64::from(c);
        }
    }
}

/// Merged counts over a window, for quantile queries.
#[derive(Debug, Clone)]
pub(crate) struct DenseCounts {
    counts: Vec<u64>,
}

impl DenseCounts {
    pub(crate) fn new() -> Self {
        DenseCounts {
            counts: vec![0; BUCKETS],
        }
    }

    /// The nearest-rank `q` quantile (`0 < q <= 1`) of `total` samples, or `None` if empty.
    pub(crate) fn quantile(&self, q: f64, total: u64) -> Option<Duration> {
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_value(i as u16));
            }
        }
        Some(bucket_value((BUCKETS - 1) as u16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_count_covers_the_tracked_range() {
        assert_eq!(usize::from(bucket_of(MAX_TRACKED)), BUCKETS - 1);
        let needed = 1.0 + ((MAX_TRACKED.as_nanos() as f64 / MIN_NANOS).ln() / GAMMA.ln()).ceil();
        assert_eq!(needed as usize, BUCKETS);
    }

    #[test]
    fn every_value_is_reported_within_the_relative_error() {
        let mut v = 1_000u64;
        while v < 3_600_000_000_000 {
            let d = Duration::from_nanos(v);
            let got = bucket_value(bucket_of(d)).as_nanos() as f64;
            let err = (got - v as f64).abs() / v as f64;
            assert!(
                err <= RELATIVE_ERROR + 1e-6,
                "{v} ns reported as {got} ({err})"
            );
            v = v * 21 / 20 + 7;
        }
        assert_eq!(
            bucket_value(bucket_of(Duration::from_nanos(999))),
            Duration::ZERO
        );
    }

    #[test]
    fn buckets_are_monotonic() {
        let mut last = 0;
        for us in 1..20_000u64 {
            let b = bucket_of(Duration::from_micros(us));
            assert!(b >= last);
            last = b;
        }
    }
}
