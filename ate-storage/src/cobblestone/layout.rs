//! Where things are in a Cobblestone message: chunk counts, the ciphertext range of a chunk,
//! and the chunks a plaintext byte range needs.

use super::{CHUNK_LEN, ENCRYPTED_CHUNK_LEN, HEADER_LEN, MAX_CHUNKS, TAG_LEN};
use crate::error::StorageError;

/// `InvalidInput` for a message longer than Cobblestone allows.
pub(super) fn check_chunk_count(chunks: u64) -> Result<(), StorageError> {
    if chunks > MAX_CHUNKS {
        return Err(StorageError::invalid(
            "message",
            format!("needs {chunks} chunks; Cobblestone allows at most 2^38 (4 PiB)"),
        ));
    }
    Ok(())
}

/// Where things are in a ciphertext of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Number of chunks, including the final short one.
    pub chunks: u64,
    /// Plaintext length the ciphertext length implies (authenticated only once the final
    /// chunk is).
    pub plaintext_len: u64,
    /// Ciphertext length.
    pub ciphertext_len: u64,
}

impl Layout {
    /// The layout of a ciphertext of `len` bytes, or `Integrity` if no valid message has
    /// that length.
    pub(crate) fn of(len: u64) -> Result<Layout, StorageError> {
        if len < (HEADER_LEN + TAG_LEN) as u64 {
            return Err(StorageError::Integrity(format!(
                "ciphertext is {len} bytes; the shortest message is {} bytes",
                HEADER_LEN + TAG_LEN
            )));
        }
        let body = len - HEADER_LEN as u64;
        let full = body / ENCRYPTED_CHUNK_LEN as u64;
        let last = body % ENCRYPTED_CHUNK_LEN as u64;
        if last < TAG_LEN as u64 {
            return Err(StorageError::Integrity(format!(
                "ciphertext of {len} bytes is truncated: it does not end with a short final chunk"
            )));
        }
        let chunks = full + 1;
        check_chunk_count(chunks)?;
        Ok(Layout {
            chunks,
            plaintext_len: body - chunks * TAG_LEN as u64,
            ciphertext_len: len,
        })
    }

    /// The layout of the message that encrypts `plaintext_len` bytes.
    pub(crate) fn for_plaintext(plaintext_len: u64) -> Result<Layout, StorageError> {
        let chunks = plaintext_len / CHUNK_LEN as u64 + 1;
        check_chunk_count(chunks)?;
        Ok(Layout {
            chunks,
            plaintext_len,
            ciphertext_len: HEADER_LEN as u64 + plaintext_len + chunks * TAG_LEN as u64,
        })
    }

    /// Ciphertext byte range of chunk `k`.
    pub(crate) fn chunk_range(&self, k: u64) -> std::ops::Range<u64> {
        let start = HEADER_LEN as u64 + k * ENCRYPTED_CHUNK_LEN as u64;
        let end = (start + ENCRYPTED_CHUNK_LEN as u64).min(self.ciphertext_len);
        start..end
    }

    /// Plaintext bytes in chunks `first..=last` (the final chunk may be short or empty).
    pub(crate) fn span_plaintext_len(&self, first: u64, last: u64) -> usize {
        let start = first
            .saturating_mul(CHUNK_LEN as u64)
            .min(self.plaintext_len);
        let end = last
            .saturating_add(1)
            .saturating_mul(CHUNK_LEN as u64)
            .min(self.plaintext_len);
        usize::try_from(end - start).unwrap_or(usize::MAX)
    }

    /// Ciphertext byte range of chunks `first..=last`.
    pub(crate) fn span(&self, first: u64, last: u64) -> std::ops::Range<u64> {
        self.chunk_range(first).start..self.chunk_range(last).end
    }

    /// Validates a plaintext `range` and returns the chunks it needs (`None` for an empty
    /// range). A range that reaches the end also claims where the message ends, so it
    /// includes the final chunk (empty when the length is a multiple of the chunk size) to
    /// authenticate it.
    pub(crate) fn chunks_for(
        &self,
        range: &std::ops::Range<u64>,
    ) -> Result<Option<(u64, u64)>, StorageError> {
        let len = self.plaintext_len;
        if range.start > range.end {
            return Err(StorageError::invalid(
                "byte range",
                format!("{}..{} is reversed", range.start, range.end),
            ));
        }
        if range.end > len {
            return Err(StorageError::invalid(
                "byte range",
                format!(
                    "{}..{} runs past the end of the {len}-byte object",
                    range.start, range.end
                ),
            ));
        }
        if range.start == range.end {
            return Ok(None);
        }
        let first = range.start / CHUNK_LEN as u64;
        let last = if range.end == len {
            self.chunks - 1
        } else {
            (range.end - 1) / CHUNK_LEN as u64
        };
        Ok(Some((first, last)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cobblestone::Cobblestone;

    #[test]
    fn layout_matches_the_specification_examples() {
        // Empty: one empty chunk. 1 KiB: one chunk. 16 KiB: a full chunk and an empty one.
        let c = Cobblestone::default();
        for (len, chunks) in [
            (0usize, 1u64),
            (1024, 1),
            (16384, 2),
            (20480, 2),
            (32768, 3),
        ] {
            let sealed = c.seal(&[1; 32], &vec![0u8; len], b"").unwrap();
            assert_eq!(sealed.len(), HEADER_LEN + len + chunks as usize * TAG_LEN);
            let layout = Layout::of(sealed.len() as u64).unwrap();
            assert_eq!((layout.chunks, layout.plaintext_len), (chunks, len as u64));
        }
    }

    #[test]
    fn invalid_lengths_are_integrity_errors() {
        for len in [
            0u64,
            55,
            56,
            71,
            56 + 16400,
            56 + 16400 + 15,
            56 + 2 * 16400,
        ] {
            assert!(Layout::of(len).is_err(), "{len}");
        }
        assert!(Layout::of(72).is_ok());
        assert!(Layout::of(56 + 16400 + 16).is_ok());
    }
}
