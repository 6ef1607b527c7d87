//! Content-defined chunking over a stream: bytes go in as they arrive, chunks come out
//! when their end is known, with at most [`CHUNK_MAX`](super::CHUNK_MAX) bytes held back.

use super::{CHUNK_AVG, CHUNK_MAX, CHUNK_MIN};
use fastcdc::v2020::{Normalization, cut_gear, get_gear_with_seed, select_masks};
use std::borrow::Cow;

/// Cuts a stream into chunks (FastCDC 2020, normalization level 1, a seeded gear table).
pub(crate) struct Chunker {
    gear: Cow<'static, [u64]>,
    gear_ls: Cow<'static, [u64]>,
    mask_s: u64,
    mask_l: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chunker({} bytes held)", self.buf.len())
    }
}

impl Chunker {
    /// A chunker whose gear table is seeded with `seed` (the tenant's, from its dedup key).
    pub(crate) fn new(seed: u64) -> Self {
        let (gear, gear_ls) = get_gear_with_seed(seed);
        let (mask_s, mask_l) = select_masks(CHUNK_AVG, Normalization::Level1);
        Chunker {
            gear,
            gear_ls,
            mask_s,
            mask_l,
            buf: Vec::with_capacity(2 * CHUNK_MAX),
        }
    }

    /// The length of the first chunk of `data`.
    fn cut(&self, data: &[u8]) -> usize {
        let window = &data[..data.len().min(CHUNK_MAX)];
        let (_, len) = cut_gear(
            window,
            CHUNK_MIN,
            CHUNK_AVG,
            CHUNK_MAX,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        len.clamp(1, window.len())
    }

    /// Adds `data`; calls `emit` with every chunk whose end is now known, in order.
    pub(crate) fn push<E>(
        &mut self,
        mut data: &[u8],
        emit: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        // Whole chunks straight from the input while nothing is held back.
        while self.buf.is_empty() && data.len() >= CHUNK_MAX {
            let n = self.cut(data);
            emit(&data[..n])?;
            data = &data[n..];
        }
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while self.buf.len() - start >= CHUNK_MAX {
            let n = self.cut(&self.buf[start..]);
            emit(&self.buf[start..start + n])?;
            start += n;
        }
        self.buf.drain(..start);
        Ok(())
    }

    /// Ends the stream: emits what is held back, in chunks. The chunker is then empty and
    /// ready for the next stream.
    pub(crate) fn finish<E>(
        &mut self,
        emit: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut start = 0;
        while start < self.buf.len() {
            let n = self.cut(&self.buf[start..]);
            emit(&self.buf[start..start + n])?;
            start += n;
        }
        self.buf.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, mut x: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn chunks(c: &mut Chunker, data: &[u8], piece: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut emit = |b: &[u8]| -> Result<(), ()> {
            out.push(b.to_vec());
            Ok(())
        };
        for p in data.chunks(piece.max(1)) {
            let _ = c.push(p, &mut emit);
        }
        let _ = c.finish(&mut emit);
        out
    }

    #[test]
    fn cuts_do_not_depend_on_how_the_stream_arrives() {
        let data = noise(3 << 20, 42);
        let mut c = Chunker::new(7);
        let whole = chunks(&mut c, &data, data.len());
        assert_eq!(whole.concat(), data);
        assert!(whole.len() > 10, "{} chunks", whole.len());
        for piece in [1, 4096, 100_000, CHUNK_MAX + 1] {
            assert_eq!(chunks(&mut c, &data, piece), whole, "pieces of {piece}");
        }
        for (i, ch) in whole.iter().enumerate() {
            assert!(ch.len() <= CHUNK_MAX);
            if i + 1 < whole.len() {
                assert!(ch.len() >= CHUNK_MIN);
            }
        }
    }

    #[test]
    fn an_insertion_changes_only_nearby_chunks() {
        let data = noise(2 << 20, 9);
        let mut edited = data[..1 << 20].to_vec();
        edited.extend_from_slice(b"an insertion in the middle");
        edited.extend_from_slice(&data[1 << 20..]);
        let mut c = Chunker::new(1);
        let a = chunks(&mut c, &data, 65_536);
        let b = chunks(&mut c, &edited, 65_536);
        let shared = b.iter().filter(|ch| a.contains(ch)).count();
        assert!(
            shared + 3 >= a.len(),
            "{shared} of {} chunks shared",
            a.len()
        );
    }

    #[test]
    fn the_seed_moves_the_cuts() {
        let data = noise(2 << 20, 5);
        let a = chunks(&mut Chunker::new(1), &data, data.len());
        let b = chunks(&mut Chunker::new(2), &data, data.len());
        assert_ne!(a, b);
    }

    #[test]
    fn short_and_empty_streams() {
        let mut c = Chunker::new(3);
        assert!(chunks(&mut c, b"", 10).is_empty());
        assert_eq!(chunks(&mut c, b"tiny", 1), vec![b"tiny".to_vec()]);
    }
}
