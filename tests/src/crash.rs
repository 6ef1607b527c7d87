//! What the crash-consistency helper (`src/bin/storage-crasher.rs`) does, shared with the
//! test that kills it (`tests/crash_consistency.rs`) so both agree on every operation.

/// The master key both the helper and the test use.
pub const MASTER: [u8; 32] = [0x5a; 32];

/// What operation `i` of a run seeded with `seed` does: `(op, path, len)`, where `op` is
/// `put`, `delete`, `rotate` or `reencrypt`.
pub fn operation(seed: u64, i: u64) -> (&'static str, String, usize) {
    let mut rng =
        fastrand::Rng::with_seed(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(i));
    let path = format!("p{}", rng.u8(0..6));
    let len = [0, 100, 20_000, 70_000][rng.usize(0..4)];
    match rng.u8(0..20) {
        0..=11 => ("put", path, len),
        12..=16 => ("delete", path, 0),
        17 => ("rotate", String::new(), 0),
        _ => ("reencrypt", String::new(), 0),
    }
}

/// The bytes operation `i` puts.
pub fn data(i: u64, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(i);
    (0..len).map(|_| rng.u8(..)).collect()
}
