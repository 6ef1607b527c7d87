//! Round robin: each pick takes the next endpoint in order, ignoring weights.
//!
//! One shared atomic cursor: a pick is one `fetch_add`, no lock. Unavailable endpoints
//! (breaker open, ejected) are skipped in order.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The next available position of `0..n`, starting at the cursor.
pub(crate) fn pick(cursor: &AtomicUsize, n: usize, ok: impl Fn(usize) -> bool) -> Option<usize> {
    let start = cursor.fetch_add(1, Ordering::Relaxed);
    first_available(start, n, ok)
}

/// The first position of `0..n` at or after `start` (cyclically) for which `ok` holds.
pub(crate) fn first_available(start: usize, n: usize, ok: impl Fn(usize) -> bool) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let start = start % n;
    (0..n).map(|k| (start + k) % n).find(|&p| ok(p))
}
