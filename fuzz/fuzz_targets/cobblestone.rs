//! Cobblestone-256 opened every way (one-shot, push streaming with arbitrary splits,
//! `std::io` reader, random access with arbitrary ranges) on ciphertexts the fuzzer picks.
//!
//! Two kinds of input: raw bytes taken as a ciphertext (exercises the length, layout and
//! header checks: without the key the commitment never matches), and a genuine message of
//! up to ~4 chunks that the fuzzer then edits (flips, truncates, extends, or leaves alone).
//! Every way of opening must then agree: an untouched message opens to its plaintext
//! everywhere, an edited one never opens whole, and any range random access does return
//! equals the original plaintext at that range (a changed chunk never authenticates).
#![no_main]

use arbitrary::Arbitrary;
use ate_storage::cobblestone::{CHUNK_LEN, Cobblestone, DecryptReader, Decryptor, RandomAccess};
use libfuzzer_sys::fuzz_target;
use std::io::Read;

const KEY: [u8; 32] = [0x42; 32];
const CONTEXT: &[u8] = b"tenant:fuzz/object:1";

#[derive(Debug, Arbitrary)]
enum Edit {
    /// XOR the byte at `at` (modulo the length) with `with` (0 becomes 1).
    Flip { at: u32, with: u8 },
    /// Cut the ciphertext to `to` bytes (modulo its length).
    Truncate { to: u32 },
    /// Append bytes.
    Append(Vec<u8>),
    /// Splice a copy of one chunk-sized window over another (chunk reordering).
    Move { from: u8, to: u8 },
}

#[derive(Debug, Arbitrary)]
enum Input {
    Raw {
        ciphertext: Vec<u8>,
        key_len: u8,
        splits: Vec<u16>,
        ranges: Vec<(u32, u32)>,
    },
    Edited {
        /// The plaintext: `seed` repeated to `len` bytes (so a small input makes a
        /// multi-chunk message).
        seed: Vec<u8>,
        len: u16,
        chunks_extra: u8,
        edits: Vec<Edit>,
        splits: Vec<u16>,
        ranges: Vec<(u32, u32)>,
        tail: u32,
    },
}

fn plaintext(seed: &[u8], len: usize) -> Vec<u8> {
    if seed.is_empty() {
        return vec![0; len];
    }
    seed.iter().copied().cycle().take(len).collect()
}

/// Opens `ciphertext` with the streaming decryptor, fed in pieces cut at `splits`.
fn open_streaming(
    c: &Cobblestone,
    key: &[u8],
    ciphertext: &[u8],
    splits: &[u16],
) -> Option<Vec<u8>> {
    let mut d = Decryptor::new(c, key, CONTEXT).ok()?;
    let mut out = Vec::new();
    let mut rest = ciphertext;
    for &s in splits {
        let n = (s as usize).min(rest.len());
        let (piece, after) = rest.split_at(n);
        if d.update(piece, &mut out).is_err() {
            // A failed decryptor stays failed.
            assert!(d.update(b"x", &mut Vec::new()).is_err());
            return None;
        }
        rest = after;
    }
    d.update(rest, &mut out).ok()?;
    d.finish(&mut out).ok()?;
    Some(out)
}

fn open_reader(c: &Cobblestone, key: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
    let mut r = DecryptReader::new(c, key, CONTEXT, ciphertext).ok()?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).ok()?;
    Some(out)
}

/// Every range that random access returns must equal `expected` there (when given).
fn random_access(
    c: &Cobblestone,
    key: &[u8],
    ciphertext: &[u8],
    ranges: &[(u32, u32)],
    tail: u32,
    expected: Option<&[u8]>,
) {
    let Ok(ra) = RandomAccess::new(c, key, CONTEXT, ciphertext, ciphertext.len() as u64) else {
        return;
    };
    let claimed = ra.claimed_len();
    for &(a, b) in ranges.iter().take(8) {
        let (start, end) = (u64::from(a) % (claimed + 2), u64::from(b) % (claimed + 2));
        match ra.read_range(start..end) {
            Ok(bytes) => {
                assert!(
                    start <= end && end <= claimed,
                    "served {start}..{end} of {claimed}"
                );
                assert_eq!(bytes.len() as u64, end - start);
                // An empty range is answered without decrypting anything.
                if let Some(expected) = expected.filter(|_| start < end) {
                    assert!(
                        end as usize <= expected.len(),
                        "served {start}..{end} past the original"
                    );
                    assert_eq!(
                        bytes,
                        expected[start as usize..end as usize],
                        "range {start}..{end}"
                    );
                }
            }
            Err(e) => {
                // An untouched message serves every valid range.
                let untouched = UNTOUCHED.with(|u| u.get());
                assert!(
                    !(untouched && start <= end && end <= claimed),
                    "valid range {start}..{end} refused on an untouched message: {e}"
                );
            }
        }
    }
    if let Ok(bytes) = ra.read_tail(u64::from(tail)) {
        let len = ra
            .authenticated_len()
            .expect("a served tail authenticated the length");
        if let Some(expected) = expected {
            assert_eq!(
                len as usize,
                expected.len(),
                "authenticated a different length"
            );
            assert_eq!(bytes, expected[expected.len() - bytes.len()..]);
        }
    }
}

thread_local! {
    /// Whether the message under test is exactly as sealed.
    static UNTOUCHED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fuzz_target!(|input: Input| {
    let c = Cobblestone::default().with_max_threads(2);
    match input {
        Input::Raw {
            ciphertext,
            key_len,
            splits,
            ranges,
        } => {
            let key = vec![0x42; usize::from(key_len % 40)];
            assert!(c.open(&key, &ciphertext, CONTEXT).is_err());
            assert!(open_streaming(&c, &key, &ciphertext, &splits).is_none());
            assert!(open_reader(&c, &key, &ciphertext).is_none());
            UNTOUCHED.with(|u| u.set(false));
            random_access(&c, &key, &ciphertext, &ranges, 0, None);
        }
        Input::Edited {
            seed,
            len,
            chunks_extra,
            edits,
            splits,
            ranges,
            tail,
        } => {
            let len = usize::from(len) + usize::from(chunks_extra % 4) * CHUNK_LEN;
            let plain = plaintext(&seed, len);
            let original = c.seal(&KEY, &plain, CONTEXT).expect("seal");
            let mut ct = original.clone();
            for edit in edits.into_iter().take(4) {
                match edit {
                    Edit::Flip { at, with } if !ct.is_empty() => {
                        let at = at as usize % ct.len();
                        ct[at] ^= with.max(1);
                    }
                    Edit::Truncate { to } if !ct.is_empty() => ct.truncate(to as usize % ct.len()),
                    Edit::Append(bytes) => ct.extend_from_slice(&bytes),
                    Edit::Move { from, to } => {
                        let w = CHUNK_LEN + 16;
                        let (from, to) =
                            (56 + usize::from(from % 4) * w, 56 + usize::from(to % 4) * w);
                        if from + w <= ct.len() && to + w <= ct.len() && from != to {
                            let window = ct[from..from + w].to_vec();
                            ct[to..to + w].copy_from_slice(&window);
                        }
                    }
                    _ => {}
                }
            }
            let untouched = ct == original;
            UNTOUCHED.with(|u| u.set(untouched));
            let whole = c.open(&KEY, &ct, CONTEXT);
            let streamed = open_streaming(&c, &KEY, &ct, &splits);
            let read = open_reader(&c, &KEY, &ct);
            if untouched {
                assert_eq!(whole.expect("an untouched message opens"), plain);
                assert_eq!(streamed.as_deref(), Some(&plain[..]), "streaming open");
                assert_eq!(read.as_deref(), Some(&plain[..]), "reader open");
            } else {
                assert!(whole.is_err(), "an edited message opened whole");
                assert!(streamed.is_none(), "an edited message opened streaming");
                assert!(
                    read.is_none(),
                    "an edited message opened through the reader"
                );
            }
            random_access(&c, &KEY, &ct, &ranges, tail, Some(&plain));
            // A different context never opens.
            assert!(c.open(&KEY, &original, b"tenant:other/object:1").is_err());
        }
    }
});
