//! Consistent hashing on a key (tenant affinity): a ring hash with virtual nodes.
//!
//! Each endpoint puts `vnodes_per_weight × weight` points on a 64-bit ring, at hashes of
//! `(endpoint id, point number)`; a key goes to the first point at or after its own hash.
//! A point's place depends only on its endpoint's id, so when an endpoint joins only the keys
//! that now fall just before its points move (to it), and when one leaves only its own keys
//! move: about `1/n` of the keys, the minimum possible.
//!
//! Lookups: the ring's hashes are kept apart from their endpoints (the search touches only
//! the hashes), and an index by the top bits of the hash (about eight points per bucket)
//! narrows the search to one bucket: one index read and a few steps within a cache line or
//! two, instead of a binary search over the whole ring (21 steps, most of them cache misses,
//! at 10,000 endpoints).
//!
//! Why a ring and not Maglev: Maglev's table gives `O(1)` lookups and a more even spread, but a change of
//! the set reshuffles a small share of keys between endpoints that stayed, and its table
//! must be rebuilt whole. Tenant affinity is about keeping caches warm, so this module
//! prefers strictly minimal movement and simple weights (a weight is a number of points).
//!
//! Hashes are FNV-1a followed by the SplitMix64 finalizer: fixed, so every process of every
//! version agrees on where a key goes, which matters when several hosts balance the same
//! service.
//!
//! An unavailable endpoint (breaker open, ejected) is skipped by walking the ring onwards to
//! the next available endpoint, so its keys spread over its neighbours and come back
//! when it does.

/// Default points per unit of weight.
pub const DEFAULT_VNODES_PER_WEIGHT: u32 = 100;
/// Most points on one ring; larger sets get proportionally fewer points per endpoint.
pub const MAX_RING_POINTS: u64 = 1 << 21;

/// Points per bucket of the index, about.
const POINTS_PER_BUCKET: usize = 8;

/// Sorted points: `hashes[i]` belongs to the endpoint at `positions[i]`.
#[derive(Debug)]
pub(crate) struct Ring {
    hashes: Vec<u64>,
    positions: Vec<u32>,
    /// `buckets[b]` is the first point whose hash's top `bits` bits are `b` or more (one
    /// more entry than buckets, the last being the number of points).
    buckets: Vec<u32>,
    bits: u32,
}

impl Ring {
    /// A ring over endpoints `(id, weight)` at positions `0..len`.
    pub(crate) fn new<'a>(
        endpoints: impl ExactSizeIterator<Item = (&'a str, u32)> + Clone,
        vnodes_per_weight: u32,
    ) -> Self {
        let wanted: u64 = endpoints
            .clone()
            .map(|(_, w)| u64::from(w) * u64::from(vnodes_per_weight))
            .sum();
        let mut points = Vec::with_capacity(wanted.min(MAX_RING_POINTS) as usize);
        for (position, (id, weight)) in endpoints.enumerate() {
            let want = u64::from(weight) * u64::from(vnodes_per_weight);
            let count = if wanted > MAX_RING_POINTS {
                (want * MAX_RING_POINTS / wanted).max(1)
            } else {
                want
            };
            let base = fnv1a(id.as_bytes());
            for vnode in 0..count {
                // Positions fit in u32: checked on update.
                points.push((
                    mix(base ^ mix(vnode.wrapping_add(0x9E37_79B9))),
                    position as u32,
                ));
            }
        }
        points.sort_unstable();
        let bits = (points.len() / POINTS_PER_BUCKET)
            .max(1)
            .next_power_of_two()
            .trailing_zeros();
        let mut buckets = Vec::with_capacity((1usize << bits) + 1);
        let mut next = 0usize;
        for b in 0..(1u64 << bits) {
            while next < points.len() && bucket_of(points[next].0, bits) < b {
                next += 1;
            }
            // Fits: a ring holds at most MAX_RING_POINTS points (plus one per endpoint).
            buckets.push(next as u32);
        }
        buckets.push(points.len() as u32);
        let (hashes, positions) = points.into_iter().unzip();
        Ring {
            hashes,
            positions,
            buckets,
            bits,
        }
    }

    /// The hash of a key, as placed on the ring.
    pub(crate) fn hash_key(key: &[u8]) -> u64 {
        mix(fnv1a(key))
    }

    /// The position owning `hash`, walking on past unavailable endpoints; `None` when the
    /// ring is empty or no endpoint is available.
    pub(crate) fn pick(&self, hash: u64, ok: impl Fn(usize) -> bool) -> Option<usize> {
        let len = self.hashes.len();
        if len == 0 {
            return None;
        }
        // Every point of an earlier bucket is below `hash`, every one of a later bucket
        // above it: the first point at or after `hash` is found within its bucket, or is
        // the next bucket's first.
        let b = bucket_of(hash, self.bits) as usize;
        let (lo, hi) = (self.buckets[b] as usize, self.buckets[b + 1] as usize);
        let start = lo + self.hashes[lo..hi].partition_point(|&h| h < hash);
        let mut rejected: Option<u32> = None;
        for k in 0..len {
            let position = self.positions[(start + k) % len];
            if rejected == Some(position) {
                continue;
            }
            if ok(position as usize) {
                return Some(position as usize);
            }
            rejected = Some(position);
        }
        None
    }
}

/// The bucket of `hash` in an index of `2^bits` buckets: its top `bits` bits.
fn bucket_of(hash: u64, bits: u32) -> u64 {
    hash.checked_shr(64 - bits).unwrap_or(0)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64's finalizer: spreads FNV's weak low bits over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(ids: &[String]) -> Ring {
        Ring::new(
            ids.iter().map(|s| (s.as_str(), 1)),
            DEFAULT_VNODES_PER_WEIGHT,
        )
    }

    fn owners(ring: &Ring, ids: &[String], keys: usize) -> Vec<String> {
        (0..keys)
            .map(|k| {
                let p = ring
                    .pick(Ring::hash_key(format!("tenant-{k}").as_bytes()), |_| true)
                    .unwrap();
                ids[p].clone()
            })
            .collect()
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:8080")).collect()
    }

    #[test]
    fn adding_an_endpoint_moves_about_one_nth_of_keys_and_only_to_it() {
        let before_ids = ids(20);
        let mut after_ids = before_ids.clone();
        after_ids.push("10.0.1.99:8080".into());
        let before = owners(&ring(&before_ids), &before_ids, 10_000);
        let after = owners(&ring(&after_ids), &after_ids, 10_000);
        let moved: Vec<_> = before.iter().zip(&after).filter(|(a, b)| a != b).collect();
        for (_, to) in &moved {
            assert_eq!(to.as_str(), "10.0.1.99:8080");
        }
        // Expected 10,000 / 21 ≈ 476; allow for the spread of 100 points per endpoint.
        assert!(
            (200..=900).contains(&moved.len()),
            "{} keys moved",
            moved.len()
        );
    }

    #[test]
    fn removing_an_endpoint_moves_only_its_keys() {
        let before_ids = ids(20);
        let after_ids: Vec<String> = before_ids
            .iter()
            .filter(|s| *s != "10.0.0.7:8080")
            .cloned()
            .collect();
        let before = owners(&ring(&before_ids), &before_ids, 10_000);
        let after = owners(&ring(&after_ids), &after_ids, 10_000);
        let mut moved = 0;
        for (a, b) in before.iter().zip(&after) {
            if a != b {
                assert_eq!(a, "10.0.0.7:8080");
                moved += 1;
            }
        }
        assert!((200..=900).contains(&moved), "{moved} keys moved");
    }

    #[test]
    fn weights_scale_the_share_of_keys() {
        let ids = ids(3);
        let ring = Ring::new(
            ids.iter().zip([1, 1, 4]).map(|(s, w)| (s.as_str(), w)),
            DEFAULT_VNODES_PER_WEIGHT,
        );
        let owners = owners(&ring, &ids, 12_000);
        let heavy = owners.iter().filter(|o| **o == ids[2]).count();
        // Expected 8,000 of 12,000.
        assert!((6_500..=9_500).contains(&heavy), "{heavy}");
    }

    #[test]
    fn unavailable_owner_sends_keys_to_a_neighbour_and_back() {
        let ids = ids(5);
        let ring = ring(&ids);
        let h = Ring::hash_key(b"tenant-acme");
        let owner = ring.pick(h, |_| true).unwrap();
        let fallback = ring.pick(h, |p| p != owner).unwrap();
        assert_ne!(fallback, owner);
        assert_eq!(ring.pick(h, |_| true), Some(owner));
        assert_eq!(ring.pick(h, |_| false), None);
    }

    #[test]
    fn oversized_rings_are_capped() {
        let ids = ids(10);
        let ring = Ring::new(ids.iter().map(|s| (s.as_str(), 10_000)), 100);
        assert!(ring.hashes.len() as u64 <= MAX_RING_POINTS);
        assert!(ring.hashes.len() as u64 >= MAX_RING_POINTS - 10);
    }

    /// The bucket index finds exactly what a binary search of the whole ring finds: for
    /// random hashes, the ring's own points, their neighbours and both ends, on rings of
    /// every size from empty-ish to thousands of points.
    #[test]
    fn indexed_lookup_matches_a_search_of_the_whole_ring() {
        let mut rng = fastrand::Rng::with_seed(7);
        for n in [1, 2, 3, 7, 50, 1_000] {
            let ids = ids(n);
            let ring = Ring::new(
                ids.iter().map(|s| (s.as_str(), 1 + (s.len() % 3) as u32)),
                5,
            );
            let whole = |hash: u64| {
                let start = ring.hashes.partition_point(|&h| h < hash);
                ring.positions[start % ring.hashes.len()] as usize
            };
            let mut probes: Vec<u64> = vec![0, 1, u64::MAX, u64::MAX - 1, 1 << 63];
            for &h in &ring.hashes {
                probes.extend([h, h.wrapping_sub(1), h.wrapping_add(1)]);
            }
            probes.extend((0..2_000).map(|_| rng.u64(..)));
            for hash in probes {
                assert_eq!(
                    ring.pick(hash, |_| true),
                    Some(whole(hash)),
                    "n={n} hash={hash}"
                );
            }
            assert_eq!(
                ring.buckets.len(),
                (1 << ring.bits) + 1,
                "one entry per bucket and the end"
            );
        }
    }
}
