//! Decrypting a span of chunks (consecutive chunks of one message, as fetched for a ranged
//! read) into a buffer: whole chunks straight into their place in the output, the chunks a
//! range cuts through via a scratch chunk; the output may be uninitialized memory.

use super::provider::{AeadKey, AuthenticationFailed};
use super::{
    CHUNK_LEN, Cobblestone, ENCRYPTED_CHUNK_LEN, Layout, MessageKeys, NONCE_LEN, Pieces, TAG_LEN,
    sized,
};
use crate::error::StorageError;

/// A byte of an output buffer: an initialized `u8`, or a `MaybeUninit<u8>` (a fresh
/// buffer that decryption fills without zeroing it first).
pub(crate) trait OutByte: Sized + Send {
    /// Copies `from` into `slot` (the same length) and returns it, now initialized.
    fn fill<'a>(slot: &'a mut [Self], from: &[u8]) -> &'a mut [u8];

    /// Decrypts `body` (authenticated by `tag`) into `slot` (the same length); returns the
    /// slot, now initialized, and the outcome (on failure the slot's bytes are unspecified).
    fn open<'a>(
        aead: &dyn AeadKey,
        nonce: &[u8; NONCE_LEN],
        body: &[u8],
        tag: &[u8; TAG_LEN],
        slot: &'a mut [Self],
    ) -> (&'a mut [u8], Result<(), AuthenticationFailed>);
}

impl OutByte for u8 {
    fn fill<'a>(slot: &'a mut [u8], from: &[u8]) -> &'a mut [u8] {
        slot.copy_from_slice(from);
        slot
    }

    /// One pass from `body` into `slot` where the provider can (`AeadKey::open_to`).
    fn open<'a>(
        aead: &dyn AeadKey,
        nonce: &[u8; NONCE_LEN],
        body: &[u8],
        tag: &[u8; TAG_LEN],
        slot: &'a mut [u8],
    ) -> (&'a mut [u8], Result<(), AuthenticationFailed>) {
        let result = aead.open_to(nonce, &[], body, tag, slot);
        (slot, result)
    }
}

impl OutByte for std::mem::MaybeUninit<u8> {
    fn fill<'a>(slot: &'a mut [Self], from: &[u8]) -> &'a mut [u8] {
        slot.write_copy_of_slice(from)
    }

    /// Zeroes the slot (cheap: 16 KiB that stay in the cache) so it can be decrypted into
    /// in one pass where the provider can ([`AeadKey::open_to`]).
    fn open<'a>(
        aead: &dyn AeadKey,
        nonce: &[u8; NONCE_LEN],
        body: &[u8],
        tag: &[u8; TAG_LEN],
        slot: &'a mut [Self],
    ) -> (&'a mut [u8], Result<(), AuthenticationFailed>) {
        static ZEROS: [u8; CHUNK_LEN] = [0; CHUNK_LEN];
        match ZEROS.get(..slot.len()) {
            Some(zeros) => {
                let slot = slot.write_copy_of_slice(zeros);
                let result = aead.open_to(nonce, &[], body, tag, slot);
                (slot, result)
            }
            // Longer than a chunk (not a slot Cobblestone makes): copy, then in place.
            None => {
                let slot = slot.write_copy_of_slice(body);
                let result = aead.open_in_place(nonce, &[], slot, tag);
                (slot, result)
            }
        }
    }
}

impl Cobblestone {
    /// Decrypts chunks `first..=last` from their ciphertext (see [`Layout::span`]; in one
    /// or more pieces), spreading them over this instance's threads when there are enough.
    pub(crate) fn open_span(
        &self,
        keys: &MessageKeys,
        layout: &Layout,
        first: u64,
        last: u64,
        ciphertext: &Pieces<'_>,
    ) -> Result<Vec<u8>, StorageError> {
        let mut plain = vec![0u8; layout.span_plaintext_len(first, last)];
        self.open_span_into(keys, layout, first, last, ciphertext, &mut plain)?;
        Ok(plain)
    }

    /// [`open_span`](Self::open_span) into the start of `out`; returns how many bytes it
    /// wrote. `InvalidInput` if `out` is too short. On failure `out` may hold some of the
    /// span's plaintext: callers discard it.
    pub(crate) fn open_span_into(
        &self,
        keys: &MessageKeys,
        layout: &Layout,
        first: u64,
        last: u64,
        ciphertext: &Pieces<'_>,
        out: &mut [u8],
    ) -> Result<usize, StorageError> {
        let n = layout.span_plaintext_len(first, last);
        let plain = sized(out, n, "the output buffer")?;
        check_span(layout, first, last, ciphertext)?;
        let mut slots: Vec<&mut [u8]> = plain.chunks_mut(CHUNK_LEN).collect();
        if (slots.len() as u64) < last - first + 1 {
            slots.push(&mut []); // the empty final chunk
        }
        self.for_each_parallel(slots, |i, slot| {
            open_chunk(keys, first, ciphertext, i, slot)
        })?;
        Ok(n)
    }

    /// Decrypts the plaintext bytes `skip..skip + out.len()` of chunks `first..=last` (offsets
    /// from the start of chunk `first`) straight into `out`: whole chunks in place, the one
    /// or two chunks the range cuts through via a chunk-sized scratch buffer. Every chunk of
    /// the span is authenticated. `InvalidInput` if the range does not fit in the span; on
    /// failure `out` may hold some plaintext: callers discard it.
    pub(crate) fn open_range_into<B: OutByte>(
        &self,
        keys: &MessageKeys,
        layout: &Layout,
        (first, last): (u64, u64),
        ciphertext: &Pieces<'_>,
        skip: usize,
        out: &mut [B],
    ) -> Result<(), StorageError> {
        check_span(layout, first, last, ciphertext)?;
        let span_len = layout.span_plaintext_len(first, last);
        let (a, b) = (skip, skip.saturating_add(out.len()));
        let count = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
        if b > span_len || a >= CHUNK_LEN {
            return Err(StorageError::invalid(
                "byte range",
                format!("{a}..{b} does not fit chunks {first}..={last} ({span_len} bytes)"),
            ));
        }
        let len_of = |i: usize| span_len.saturating_sub(i * CHUNK_LEN).min(CHUNK_LEN);
        let covered = |i: usize| a <= i * CHUNK_LEN && i * CHUNK_LEN + len_of(i) <= b;
        let mut head = (!covered(0)).then(|| vec![0u8; len_of(0)]);
        let mut tail = (count > 1 && !covered(count - 1)).then(|| vec![0u8; len_of(count - 1)]);
        {
            let mut slots: Vec<Slot<'_, B>> = Vec::with_capacity(count);
            let mut rest: &mut [B] = out;
            let mut at = a; // the span offset where `rest` begins
            let (mut head_slot, mut tail_slot) = (head.as_deref_mut(), tail.as_deref_mut());
            for i in 0..count {
                let start = i * CHUNK_LEN;
                if covered(i) {
                    let (_, r) = std::mem::take(&mut rest).split_at_mut(start - at);
                    let (slot, r) = r.split_at_mut(len_of(i));
                    (rest, at) = (r, start + len_of(i));
                    slots.push(Slot::Out(slot));
                } else if let Some(h) = head_slot.take().filter(|_| i == 0) {
                    slots.push(Slot::Scratch(h));
                } else if let Some(t) = tail_slot.take().filter(|_| i + 1 == count) {
                    slots.push(Slot::Scratch(t));
                } else {
                    return Err(StorageError::Integrity(format!(
                        "chunk {} of {first}..={last} is cut by the range {a}..{b}",
                        first + i as u64
                    )));
                }
            }
            self.for_each_parallel(slots, |i, slot| match slot {
                Slot::Out(out) => open_chunk(keys, first, ciphertext, i, out),
                Slot::Scratch(scratch) => open_chunk(keys, first, ciphertext, i, scratch),
            })?;
        }
        if let Some(h) = head {
            let end = b.min(h.len());
            B::fill(&mut out[..end - a], &h[a..end]);
        }
        if let Some(t) = tail {
            let start = (count - 1) * CHUNK_LEN;
            B::fill(&mut out[start - a..], &t[..b - start]);
        }
        Ok(())
    }
}

/// Where one chunk of a ranged read is decrypted: its place in the output, or a scratch
/// chunk for a chunk the range cuts through.
enum Slot<'a, B> {
    Out(&'a mut [B]),
    Scratch(&'a mut [u8]),
}

/// Decrypts chunk `first + i` of `ciphertext` (consecutive chunks from `first`) into `slot`,
/// which is that chunk's plaintext length.
fn open_chunk<B: OutByte>(
    keys: &MessageKeys,
    first: u64,
    ciphertext: &Pieces<'_>,
    i: usize,
    slot: &mut [B],
) -> Result<(), StorageError> {
    // Every chunk but the final one is full, so chunk i starts at i full chunks.
    let start = i * ENCRYPTED_CHUNK_LEN;
    let chunk = first + i as u64;
    let sealed = ciphertext
        .get(start..start + slot.len() + TAG_LEN)
        .ok_or_else(|| {
            StorageError::Integrity(format!("chunk {chunk} is missing its ciphertext"))
        })?;
    keys.open_into(chunk, &sealed, slot)
}

/// `Integrity` unless `ciphertext` is exactly chunks `first..=last` of `layout`.
fn check_span(
    layout: &Layout,
    first: u64,
    last: u64,
    ciphertext: &Pieces<'_>,
) -> Result<(), StorageError> {
    let expected = layout.span(first, last);
    if ciphertext.len() as u64 != expected.end - expected.start {
        return Err(StorageError::Integrity(format!(
            "chunks {first}..={last} need {} bytes of ciphertext, got {}",
            expected.end - expected.start,
            ciphertext.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{HEADER_LEN, KEY_LEN};
    use super::*;

    /// `open_span_into` writes a span's plaintext at the start of a larger buffer, agrees
    /// with `open_span` for a span in the middle and one that ends with the (empty) final
    /// chunk, and refuses a short buffer.
    #[test]
    fn spans_open_into_a_buffer() {
        let c = Cobblestone::default();
        let key = [3u8; KEY_LEN];
        let plain: Vec<u8> = (0..5 * CHUNK_LEN).map(|i| (i % 253) as u8).collect();
        let sealed = c.seal(&key, &plain, b"ctx").unwrap();
        let keys = c
            .verify_header(&key, b"ctx", &sealed[..HEADER_LEN])
            .unwrap();
        let layout = Layout::for_plaintext(plain.len() as u64).unwrap();
        assert_eq!(layout.chunks, 6, "five full chunks and the empty final one");
        for (first, last) in [(1, 2), (3, 5), (0, 5)] {
            let span = layout.span(first, last);
            let ct = &sealed[span.start as usize..span.end as usize];
            let end = ((last as usize + 1) * CHUNK_LEN).min(plain.len());
            let want = &plain[first as usize * CHUNK_LEN..end];
            let ct = &Pieces::one(ct);
            assert_eq!(c.open_span(&keys, &layout, first, last, ct).unwrap(), want);
            let mut out = vec![0xEEu8; want.len() + 7];
            let n = c
                .open_span_into(&keys, &layout, first, last, ct, &mut out)
                .unwrap();
            assert_eq!((n, &out[..n]), (want.len(), want));
            assert_eq!(&out[n..], &[0xEE; 7]);
            if !want.is_empty() {
                let short = c.open_span_into(&keys, &layout, first, last, ct, &mut vec![0; n - 1]);
                assert!(matches!(short, Err(StorageError::InvalidInput { .. })));
            }
        }
    }

    /// `open_range_into` writes exactly the bytes of any range (inside one chunk, across
    /// chunk edges, whole chunks, to the end of messages with and without a partial final
    /// chunk, enough chunks to go parallel), refuses ranges that do not fit its span, and
    /// fails on a flipped bit in a chunk the range only cuts through.
    #[test]
    fn ranges_open_straight_into_a_buffer() {
        let c = Cobblestone::default();
        let key = [5u8; KEY_LEN];
        for len in [3 * CHUNK_LEN, 40 * CHUNK_LEN + 100] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = c.seal(&key, &plain, b"ctx").unwrap();
            let keys = c
                .verify_header(&key, b"ctx", &sealed[..HEADER_LEN])
                .unwrap();
            let layout = Layout::for_plaintext(len as u64).unwrap();
            let cl = CHUNK_LEN as u64;
            let n = len as u64;
            for range in [
                5..9,
                0..cl,
                cl - 3..cl + 3,
                1..n,
                0..n,
                cl..2 * cl,
                n - 1..n,
                7..n - 5,
                2 * cl + 1..3 * cl - 1,
            ] {
                let (first, last) = layout.chunks_for(&range).unwrap().unwrap();
                let span = layout.span(first, last);
                let ct = &sealed[span.start as usize..span.end as usize];
                let skip = (range.start - first * cl) as usize;
                // In one piece, and cut in several places (inside a chunk's body, inside
                // a tag, one byte pieces) as a backend may hand a long read back.
                let mid = ct.len() / 2;
                let cuts = [
                    vec![ct],
                    vec![&ct[..mid], &ct[mid..]],
                    vec![&ct[..1], &ct[1..ct.len() - 1], &ct[ct.len() - 1..]],
                    vec![
                        &ct[..(CHUNK_LEN + 3).min(ct.len())],
                        &ct[(CHUNK_LEN + 3).min(ct.len())..],
                    ],
                ];
                for parts in cuts {
                    let mut out = vec![0xEE; (range.end - range.start) as usize];
                    let pieces = Pieces::new(parts);
                    c.open_range_into(&keys, &layout, (first, last), &pieces, skip, &mut out)
                        .unwrap();
                    assert!(
                        out == plain[range.start as usize..range.end as usize],
                        "{range:?}"
                    );
                }
                // A flipped bit in the first chunk of the span is caught even when the range
                // only cuts through it.
                let mut bad = ct.to_vec();
                bad[0] ^= 1;
                let mut out = vec![0; (range.end - range.start) as usize];
                let bad = Pieces::one(&bad);
                let err = c.open_range_into(&keys, &layout, (first, last), &bad, skip, &mut out);
                assert!(matches!(err, Err(StorageError::Integrity(_))), "{range:?}");
            }
            let span = layout.span(0, 0);
            let ct = &Pieces::one(&sealed[span.start as usize..span.end as usize]);
            for (skip, want) in [(CHUNK_LEN, 1), (0, CHUNK_LEN + 1), (CHUNK_LEN - 1, 2)] {
                let err = c.open_range_into(&keys, &layout, (0, 0), ct, skip, &mut vec![0; want]);
                assert!(
                    matches!(err, Err(StorageError::InvalidInput { .. })),
                    "{skip} {want}"
                );
            }
        }
    }
}
