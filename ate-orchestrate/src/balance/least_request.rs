//! Least outstanding requests with the power of two random choices (Envoy's
//! `LEAST_REQUEST`, tower's `p2c`).
//!
//! Each pick draws two distinct endpoints at random and takes the one with fewer requests
//! in flight *relative to its weight*: `a` wins when `(in_flight(a) + 1) / weight(a) <=
//! (in_flight(b) + 1) / weight(b)`, so an endpoint of weight 2 is expected to carry about
//! twice the concurrent requests of one of weight 1. Two random choices avoid the herd
//! behaviour of "always the global minimum" (every client rushing to the same idle
//! endpoint) at `O(1)` cost and no lock: the in-flight counts are per-endpoint atomics
//! maintained by [`PickGuard`](super::PickGuard).

use super::round_robin::first_available;

/// Picks between two random positions of `0..n` by load; falls back to the other one, then
/// to a scan, when the preferred one is unavailable.
pub(crate) fn pick(
    n: usize,
    weight: impl Fn(usize) -> u32,
    in_flight: impl Fn(usize) -> u64,
    ok: impl Fn(usize) -> bool,
) -> Option<usize> {
    match n {
        0 => return None,
        1 => return ok(0).then_some(0),
        _ => {}
    }
    let a = fastrand::usize(..n);
    let mut b = fastrand::usize(..n - 1);
    if b >= a {
        b += 1;
    }
    let load = |p: usize| u128::from(in_flight(p)) + 1;
    // (la / wa) <= (lb / wb)  <=>  la * wb <= lb * wa, in u128 so it cannot overflow.
    let a_first = load(a) * u128::from(weight(b)) <= load(b) * u128::from(weight(a));
    let (first, second) = if a_first { (a, b) } else { (b, a) };
    if ok(first) {
        return Some(first);
    }
    if ok(second) {
        return Some(second);
    }
    first_available(fastrand::usize(..n), n, ok)
}
