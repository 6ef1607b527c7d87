//! Cobblestone behaviour beyond the published vectors: sizes at chunk boundaries, every way in
//! agreeing with the others, tampering, bad keys and ranges, and providers interoperating.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ate_core::{Classify, ErrorKind};
use ate_storage::cobblestone::{
    CHUNK_LEN, Cobblestone, CryptoProvider, DecryptReader, Decryptor, ENCRYPTED_CHUNK_LEN,
    EncryptWriter, Encryptor, HEADER_LEN, RandomAccess,
};
use std::io::{Read, Write};

const KEY: [u8; 32] = [0x42; 32];
const CTX: &[u8] = b"tenant:t/object:o/v1";

/// Deterministic, non-repeating test data.
fn data(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

const SIZES: &[usize] = &[
    0,
    1,
    CHUNK_LEN - 1,
    CHUNK_LEN,
    CHUNK_LEN + 1,
    2 * CHUNK_LEN,
    3 * CHUNK_LEN + 7,
    40 * CHUNK_LEN,
    40 * CHUNK_LEN + 123,
];

#[test]
fn every_way_in_agrees_at_chunk_boundaries() {
    for provider in CryptoProvider::all() {
        let c = Cobblestone::new(provider);
        for &len in SIZES {
            let plain = data(len);
            let sealed = c.seal(&KEY, &plain, CTX).unwrap();
            assert_eq!(
                sealed.len(),
                HEADER_LEN + len + (len / CHUNK_LEN + 1) * 16,
                "{len}"
            );
            assert_eq!(c.open(&KEY, &sealed, CTX).unwrap(), plain, "{len}");

            // Streaming encryption in uneven writes produces a message the others open.
            let mut w = EncryptWriter::new(&c, &KEY, CTX, Vec::new()).unwrap();
            for piece in plain.chunks(7_777) {
                w.write_all(piece).unwrap();
            }
            let streamed = w.finish().unwrap();
            assert_eq!(streamed.len(), sealed.len());
            assert_eq!(c.open(&KEY, &streamed, CTX).unwrap(), plain);

            let mut r = DecryptReader::new(&c, &KEY, CTX, &sealed[..]).unwrap();
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, plain);

            let ra = RandomAccess::new(&c, &KEY, CTX, &sealed, sealed.len() as u64).unwrap();
            assert_eq!(ra.authenticated_len().unwrap(), len as u64);
            assert_eq!(ra.read_range(0..len as u64).unwrap(), plain);
        }
    }
}

#[test]
fn providers_and_thread_counts_interoperate() {
    let plain = data(64 * CHUNK_LEN + 5);
    let all = CryptoProvider::all();
    for a in &all {
        for b in &all {
            let sealed = Cobblestone::new(a).seal(&KEY, &plain, CTX).unwrap();
            let single = Cobblestone::new(b).with_max_threads(1);
            assert_eq!(
                single.open(&KEY, &sealed, CTX).unwrap(),
                plain,
                "{} -> {}",
                a.name,
                b.name
            );
            let many = Cobblestone::new(b).with_max_threads(4);
            assert_eq!(many.open(&KEY, &sealed, CTX).unwrap(), plain);
        }
    }
}

#[test]
fn memory_stays_bounded_while_streaming() {
    // The push decryptor never holds more than the unprocessed tail of its input: feed a
    // large message and check that each update releases all complete chunks at once.
    let c = Cobblestone::default();
    let plain = data(200 * CHUNK_LEN);
    let sealed = c.seal(&KEY, &plain, CTX).unwrap();
    let mut d = Decryptor::new(&c, &KEY, CTX).unwrap();
    let mut released = 0;
    for piece in sealed.chunks(ENCRYPTED_CHUNK_LEN * 3 + 11) {
        let mut out = Vec::new();
        d.update(piece, &mut out).unwrap();
        assert!(out.len() <= 4 * CHUNK_LEN);
        released += out.len();
    }
    let mut out = Vec::new();
    d.finish(&mut out).unwrap();
    assert_eq!(released + out.len(), plain.len());
    let mut e = Encryptor::new(&c, &KEY, CTX).unwrap();
    let mut out = Vec::new();
    e.update(&plain[..100], &mut out).unwrap();
    assert_eq!(
        out.len(),
        HEADER_LEN,
        "nothing but the header until a chunk fills"
    );
}

#[test]
fn wrong_key_sizes_are_rejected_everywhere() {
    let c = Cobblestone::default();
    let sealed = c.seal(&KEY, b"x", CTX).unwrap();
    for len in [0usize, 16, 24, 31, 33, 64] {
        let key = vec![1u8; len];
        let kind = |e: ate_storage::StorageError| e.kind();
        assert_eq!(
            kind(c.seal(&key, b"x", CTX).unwrap_err()),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(c.open(&key, &sealed, CTX).unwrap_err()),
            ErrorKind::InvalidInput
        );
        assert!(Encryptor::new(&c, &key, CTX).is_err());
        assert!(Decryptor::new(&c, &key, CTX).is_err());
        assert!(RandomAccess::new(&c, &key, CTX, &sealed, sealed.len() as u64).is_err());
        let msg = c.seal(&key, b"x", CTX).unwrap_err().to_string();
        assert!(msg.contains(&format!("got {len}")), "{msg}");
    }
}

#[test]
fn tampering_is_always_detected() {
    let c = Cobblestone::default();
    let plain = data(3 * CHUNK_LEN + 100);
    let sealed = c.seal(&KEY, &plain, CTX).unwrap();
    let integrity = |ct: &[u8]| {
        let e = c.open(&KEY, ct, CTX).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    };
    // Any flipped bit: salt, commitment, bodies, tags.
    for pos in (0..sealed.len())
        .step_by(997)
        .chain([0, 23, 24, 55, 56, sealed.len() - 1])
    {
        let mut t = sealed.clone();
        t[pos] ^= 0x80;
        integrity(&t);
    }
    // Truncated anywhere, including exactly at a chunk boundary.
    for cut in [
        0,
        10,
        HEADER_LEN,
        HEADER_LEN + ENCRYPTED_CHUNK_LEN,
        sealed.len() - 1,
    ] {
        integrity(&sealed[..cut]);
    }
    // Extended by garbage or by a copy of a valid chunk.
    let mut extended = sealed.clone();
    extended.extend_from_slice(&[0; 17]);
    integrity(&extended);
    let mut dup = sealed.clone();
    dup.extend_from_slice(&sealed[HEADER_LEN..HEADER_LEN + ENCRYPTED_CHUNK_LEN]);
    integrity(&dup);
    // Two full chunks swapped.
    let mut swapped = sealed.clone();
    let (a, b) = (HEADER_LEN, HEADER_LEN + ENCRYPTED_CHUNK_LEN);
    swapped[a..b].copy_from_slice(&sealed[b..b + ENCRYPTED_CHUNK_LEN]);
    swapped[b..b + ENCRYPTED_CHUNK_LEN].copy_from_slice(&sealed[a..b]);
    integrity(&swapped);
    // Wrong context or key: rejected by the commitment, before any chunk.
    assert!(c.open(&KEY, &sealed, b"tenant:other/object:o/v1").is_err());
    assert!(c.open(&[0x43; 32], &sealed, CTX).is_err());
}

#[test]
fn ranges_are_validated_and_served_from_the_chunks_they_touch() {
    let c = Cobblestone::default();
    let plain = data(5 * CHUNK_LEN + 321);
    let sealed = c.seal(&KEY, &plain, CTX).unwrap();
    let len = plain.len() as u64;
    let ra = RandomAccess::new(&c, &KEY, CTX, &sealed, sealed.len() as u64).unwrap();
    assert_eq!(ra.claimed_len(), len);
    assert!(ra.read_range(7..7).unwrap().is_empty());
    assert!(ra.read_range(len..len).unwrap().is_empty());
    for (start, end) in [
        (10u64, 5u64),
        (0, len + 1),
        (len + 1, len + 2),
        (u64::MAX - 1, u64::MAX),
    ] {
        let e = ra.read_range(start..end).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{start}..{end}: {e}");
    }
    for (start, end) in [
        (0, 1),
        (16383, 16385),
        (3 * 16384 - 1, 3 * 16384 + 1),
        (len - 1, len),
    ] {
        assert_eq!(
            ra.read_range(start..end).unwrap(),
            &plain[start as usize..end as usize]
        );
    }
    // Corrupting chunk 4 breaks reads of chunk 4 and of the tail, not of chunk 1.
    let mut bad = sealed.clone();
    bad[HEADER_LEN + 4 * ENCRYPTED_CHUNK_LEN + 5] ^= 1;
    let ra = RandomAccess::new(&c, &KEY, CTX, &bad, bad.len() as u64).unwrap();
    assert!(
        ra.read_range(CHUNK_LEN as u64..2 * CHUNK_LEN as u64)
            .is_ok()
    );
    assert!(
        ra.read_range(4 * CHUNK_LEN as u64..4 * CHUNK_LEN as u64 + 1)
            .is_err()
    );
    assert!(ra.read_range(0..len).is_err());
    // A truncated final chunk is caught when the length is authenticated.
    let short = &sealed[..sealed.len() - 1];
    let ra = RandomAccess::new(&c, &KEY, CTX, short, short.len() as u64).unwrap();
    assert_eq!(
        ra.authenticated_len().unwrap_err().kind(),
        ErrorKind::Integrity
    );
    assert!(ra.read_tail(10).is_err());
}

#[test]
fn files_work_as_random_access_sources() {
    let c = Cobblestone::default();
    let plain = data(2 * CHUNK_LEN + 9);
    let sealed = c.seal(&KEY, &plain, CTX).unwrap();
    let dir = std::env::temp_dir().join(format!("ate-cobblestone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("object.bin");
    std::fs::write(&path, &sealed).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let ra = RandomAccess::new(&c, &KEY, CTX, &file, sealed.len() as u64).unwrap();
    assert_eq!(ra.read_range(16380..16390).unwrap(), &plain[16380..16390]);
    // A length that does not match the file fails rather than reading garbage.
    let ra = RandomAccess::new(&c, &KEY, CTX, &file, sealed.len() as u64 + 16).unwrap();
    assert!(ra.authenticated_len().is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
