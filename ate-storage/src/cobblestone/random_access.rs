//! Random-access decryption: read any byte range, decrypting only the chunks it touches.

use super::{CHUNK_LEN, Cobblestone, HEADER_LEN, Layout, MessageKeys, Pieces};
use crate::error::StorageError;
use std::io;
use std::ops::Range;

/// A source of ciphertext that can be read at any offset (a file, a buffer, a ranged reader
/// over object storage).
pub trait ReadAt {
    /// Fills `buf` from `offset`, or fails (`UnexpectedEof` if the source is too short).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .filter(|end| *end <= self.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(&self[start..end]);
        Ok(())
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
}

#[cfg(unix)]
impl ReadAt for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

/// Random access to one message.
///
/// Opening checks the header's key commitment and that the ciphertext length is one a valid
/// message can have. Reads decrypt only the chunks they touch, so a range inside the message
/// is served without reading the rest; the message length itself is only *authenticated*
/// when the final chunk is decrypted, which [`authenticated_len`](Self::authenticated_len)
/// and [`read_tail`](Self::read_tail) (seeking from the end) always do first.
pub struct RandomAccess<'a, S: ReadAt + ?Sized> {
    source: &'a S,
    cobblestone: Cobblestone,
    keys: MessageKeys,
    layout: Layout,
}

impl<S: ReadAt + ?Sized> std::fmt::Debug for RandomAccess<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomAccess")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl<'a, S: ReadAt + ?Sized> RandomAccess<'a, S> {
    /// Opens the message of `ciphertext_len` bytes held by `source`.
    pub fn new(
        cobblestone: &Cobblestone,
        key: &[u8],
        context: &[u8],
        source: &'a S,
        ciphertext_len: u64,
    ) -> Result<Self, StorageError> {
        if key.len() != super::KEY_LEN {
            return Err(StorageError::InvalidKeySize(key.len()));
        }
        let layout = Layout::of(ciphertext_len)?;
        let mut header = [0u8; HEADER_LEN];
        source.read_exact_at(&mut header, 0)?;
        let keys = cobblestone.verify_header(key, context, &header)?;
        Ok(RandomAccess {
            source,
            cobblestone: *cobblestone,
            keys,
            layout,
        })
    }

    /// The plaintext length implied by the ciphertext length, **not yet authenticated**.
    pub fn claimed_len(&self) -> u64 {
        self.layout.plaintext_len
    }

    /// Decrypts the final chunk and returns the now authenticated plaintext length.
    pub fn authenticated_len(&self) -> Result<u64, StorageError> {
        self.open_chunks(self.layout.chunks - 1, self.layout.chunks - 1)?;
        Ok(self.layout.plaintext_len)
    }

    /// Decrypts chunks `first..=last` with one contiguous read.
    fn open_chunks(&self, first: u64, last: u64) -> Result<Vec<u8>, StorageError> {
        let span = self.layout.span(first, last);
        let mut ciphertext = vec![0u8; (span.end - span.start) as usize];
        self.source.read_exact_at(&mut ciphertext, span.start)?;
        self.cobblestone.open_span(
            &self.keys,
            &self.layout,
            first,
            last,
            &Pieces::one(&ciphertext),
        )
    }

    /// The chunks a plaintext `range` needs (validated against the claimed length).
    fn chunks_for(&self, range: &Range<u64>) -> Result<Option<(u64, u64)>, StorageError> {
        self.layout.chunks_for(range)
    }

    /// The plaintext bytes in `range`. A range that ends at the end of the message also
    /// authenticates the message length.
    ///
    /// An empty range returns nothing; a reversed range or one past the end of the message
    /// is `InvalidInput`.
    pub fn read_range(&self, range: Range<u64>) -> Result<Vec<u8>, StorageError> {
        let Some((first, last)) = self.chunks_for(&range)? else {
            return Ok(Vec::new());
        };
        let plain = self.open_chunks(first, last)?;
        let skip = (range.start - first * CHUNK_LEN as u64) as usize;
        Ok(plain[skip..skip + (range.end - range.start) as usize].to_vec())
    }

    /// The last `n` bytes (all of them if the message is shorter), after authenticating the
    /// message length through its final chunk.
    pub fn read_tail(&self, n: u64) -> Result<Vec<u8>, StorageError> {
        let len = self.authenticated_len()?;
        self.read_range(len.saturating_sub(n)..len)
    }
}
