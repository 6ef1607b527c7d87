//! Reads: fetching and checking an object's header, and the pipelined [`ObjectReader`].

use super::{CHUNKS_PER_READ, ObjectInfo, ObjectStore, object_context, task_failed};
use crate::blob::BlobStore;
use crate::cobblestone::{Cobblestone, Layout, MessageKeys, OutByte, Pieces};
use crate::error::StorageError;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::Arc;

impl ObjectStore {
    /// Fetches the object's key and header and checks the header (key commitment), reading
    /// `span` of the blob at the same time.
    pub(super) async fn open_message(
        &self,
        info: &ObjectInfo,
        span: Option<Range<u64>>,
    ) -> Result<(MessageKeys, Layout, Vec<Bytes>), StorageError> {
        let layout = Layout::for_plaintext(info.size)?;
        let key = self.keyring.decryption_key(info.tenant, info.key_version);
        let header = self.blobs.read_range(
            info.tenant,
            info.id,
            0..crate::cobblestone::HEADER_LEN as u64,
        );
        let body = async {
            match span {
                Some(span) => {
                    self.blobs
                        .read_range_pieces(info.tenant, info.id, span)
                        .await
                }
                None => Ok(Vec::new()),
            }
        };
        let (key, header, body) = tokio::try_join!(key, header, body)?;
        let context = object_context(info.tenant, info.id, info.key_version, info.format_version);
        let keys = self
            .cobblestone
            .verify_header(key.expose_secret(), &context, &header)?;
        Ok((keys, layout, body))
    }

    /// A reader of `info`'s object, without authorization (callers have checked it); the
    /// first piece is fetched along with the header.
    pub(super) async fn reader(&self, info: ObjectInfo) -> Result<ObjectReader, StorageError> {
        let layout = Layout::for_plaintext(info.size)?;
        let first_last = piece_last(&layout, 0);
        let (keys, layout, first_piece) = self
            .open_message(&info, Some(layout.span(0, first_last)))
            .await?;
        Ok(ObjectReader {
            blobs: self.blobs.clone(),
            cobblestone: self.cobblestone,
            info,
            keys: Arc::new(keys),
            layout,
            next_chunk: 0,
            hasher: None,
            prefetch: Some((0, Prefetch::Ready(gather(first_piece)))),
            failed: None,
        })
    }
}

/// `pieces` as one `Vec` (without a copy when there is one uniquely owned piece).
fn gather(mut pieces: Vec<Bytes>) -> Vec<u8> {
    if pieces.len() == 1 {
        return pieces.pop().map(Vec::from).unwrap_or_default();
    }
    pieces.concat()
}

/// A streaming read of one object: authenticated plaintext, about 1 MiB at a time.
///
/// Reads are pipelined: while one piece is decrypted (on a blocking thread, its chunks
/// spread over the store's threads), the next piece is already being fetched.
pub struct ObjectReader {
    blobs: BlobStore,
    cobblestone: Cobblestone,
    info: ObjectInfo,
    keys: Arc<MessageKeys>,
    layout: Layout,
    next_chunk: u64,
    /// SHA-256 of what has been read, when asked for with [`with_checksum`](Self::with_checksum).
    hasher: Option<Sha256>,
    /// The ciphertext of the piece starting at this chunk, fetched or being fetched.
    prefetch: Option<(u64, Prefetch)>,
    failed: Option<StorageError>,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("info", &self.info)
            .field("next_chunk", &self.next_chunk)
            .finish_non_exhaustive()
    }
}

/// The last chunk of the piece that starts at chunk `first`.
fn piece_last(layout: &Layout, first: u64) -> u64 {
    (first + CHUNKS_PER_READ - 1).min(layout.chunks - 1)
}

/// A piece of ciphertext read ahead.
enum Prefetch {
    /// Read along with the header.
    Ready(Vec<u8>),
    /// Being read.
    Running(tokio::task::JoinHandle<Result<Vec<u8>, StorageError>>),
}

impl Prefetch {
    fn cancel(self) {
        if let Prefetch::Running(fetch) = self {
            fetch.abort();
        }
    }
}

impl Drop for ObjectReader {
    fn drop(&mut self) {
        if let Some((_, fetch)) = self.prefetch.take() {
            fetch.cancel();
        }
    }
}

impl ObjectReader {
    /// The object's index entry.
    pub fn info(&self) -> &ObjectInfo {
        &self.info
    }

    /// Also computes the SHA-256 of the plaintext as it is read, for
    /// [`verify_checksum`](Self::verify_checksum). Call before the first read.
    pub fn with_checksum(mut self) -> Self {
        if self.next_chunk == 0 {
            self.hasher = Some(Sha256::new());
        }
        self
    }

    fn fetch(
        &self,
        first: u64,
        last: u64,
    ) -> impl Future<Output = Result<Vec<u8>, StorageError>> + use<> {
        let (blobs, tenant, id) = (self.blobs.clone(), self.info.tenant, self.info.id);
        let span = self.layout.span(first, last);
        async move { blobs.read_range(tenant, id, span).await }
    }

    /// The next piece of plaintext, or `None` at the end (reached only once the final chunk
    /// authenticated). After an error, every call returns it again.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        let len = if self.failed.is_none() && self.next_chunk < self.layout.chunks {
            let first = self.next_chunk;
            self.layout
                .span_plaintext_len(first, piece_last(&self.layout, first))
        } else {
            0
        };
        let (mut piece, n) = self.decrypt_next(vec![0; len], 0).await?;
        Ok(n.map(|n| {
            piece.truncate(n);
            piece
        }))
    }

    /// Decrypts the next piece into `buf[at..]` and returns the buffer with the piece's
    /// length, or with `None` at the end. The piece after it is fetched meanwhile. After an
    /// error, every call returns it again (and `buf` is gone).
    async fn decrypt_next(
        &mut self,
        buf: Vec<u8>,
        at: usize,
    ) -> Result<(Vec<u8>, Option<usize>), StorageError> {
        if let Some(e) = &self.failed {
            return Err(crate::error::replay(e));
        }
        if self.next_chunk >= self.layout.chunks {
            return Ok((buf, None));
        }
        let first = self.next_chunk;
        let last = piece_last(&self.layout, first);
        let prefetched = match self.prefetch.take() {
            Some((start, fetch)) if start == first => Some(fetch),
            Some((_, fetch)) => {
                fetch.cancel();
                None
            }
            None => None,
        };
        let id = self.info.id;
        let result = async {
            let ciphertext = match prefetched {
                Some(Prefetch::Ready(bytes)) => bytes,
                Some(Prefetch::Running(fetch)) => fetch.await.map_err(task_failed)??,
                None => self.fetch(first, last).await?,
            };
            // Fetch the next piece while this one is decrypted.
            if last + 1 < self.layout.chunks {
                let next_last = piece_last(&self.layout, last + 1);
                let fetch = tokio::spawn(self.fetch(last + 1, next_last));
                self.prefetch = Some((last + 1, Prefetch::Running(fetch)));
            }
            let (cobblestone, keys, layout) = (self.cobblestone, self.keys.clone(), self.layout);
            tokio::task::spawn_blocking(move || {
                let mut buf = buf;
                let out = buf.get_mut(at..).ok_or_else(|| {
                    StorageError::Integrity(format!("object {id} holds more than its size"))
                })?;
                let n = cobblestone.open_span_into(
                    &keys,
                    &layout,
                    first,
                    last,
                    &Pieces::one(&ciphertext),
                    out,
                )?;
                Ok((buf, n))
            })
            .await
            .map_err(task_failed)?
        }
        .await;
        match result {
            Ok((buf, n)) => {
                if let Some(hasher) = &mut self.hasher {
                    hasher.update(&buf[at..at + n]);
                }
                self.next_chunk = last + 1;
                Ok((buf, Some(n)))
            }
            Err(e) => {
                if let Some((_, fetch)) = self.prefetch.take() {
                    fetch.cancel();
                }
                let copy = crate::error::replay(&e);
                self.failed = Some(e);
                Err(copy)
            }
        }
    }

    /// Reads the rest of the object. With `verify_checksum`, also compares the SHA-256 of
    /// everything read through this reader with the one recorded at put time. Each piece is
    /// decrypted straight into the returned buffer.
    pub async fn read_to_end(self, verify_checksum: bool) -> Result<Vec<u8>, StorageError> {
        let mut this = if verify_checksum {
            self.with_checksum()
        } else {
            self
        };
        // Zeroed pages come from the allocator untouched: the decrypting threads fault
        // them in as they write.
        let mut out = vec![0u8; this.remaining_len() as usize];
        let mut at = 0;
        loop {
            let (buf, n) = this.decrypt_next(out, at).await?;
            out = buf;
            match n {
                Some(n) => at += n,
                None => break,
            }
        }
        out.truncate(at);
        if verify_checksum {
            this.verify_checksum()?;
        }
        Ok(out)
    }

    /// How many plaintext bytes are left to read (all of them before the first read), as the
    /// stored ciphertext's length says.
    pub fn remaining_len(&self) -> u64 {
        let done =
            (self.next_chunk * crate::cobblestone::CHUNK_LEN as u64).min(self.layout.plaintext_len);
        self.layout.plaintext_len - done
    }

    /// Reads the rest of the object into `out` (from its start) and returns how many bytes
    /// that was; `InvalidInput`, reading nothing, if `out` is shorter. With
    /// `verify_checksum`, also compares the SHA-256 like [`read_to_end`](Self::read_to_end).
    /// If the read fails, `out[..n]` (`n` the bytes that were left to read) is zeroed: a
    /// caller's buffer never holds part of an object that did not read back whole.
    pub async fn read_into(
        self,
        out: &mut [u8],
        verify_checksum: bool,
    ) -> Result<usize, StorageError> {
        let rest = self.remaining_len() as usize;
        if out.len() < rest {
            return Err(StorageError::invalid(
                "the output buffer",
                format!("{} bytes, {rest} are needed", out.len()),
            ));
        }
        let mut this = if verify_checksum {
            self.with_checksum()
        } else {
            self
        };
        let mut at = 0;
        let read = async {
            while let Some(piece) = this.next_chunk().await? {
                let end = at + piece.len();
                let slot = out.get_mut(at..end).ok_or_else(|| {
                    StorageError::Integrity(format!(
                        "object {} holds more than its {rest} remaining bytes",
                        this.info.id
                    ))
                })?;
                slot.copy_from_slice(&piece);
                at = end;
            }
            if verify_checksum {
                this.verify_checksum()?;
            }
            Ok(())
        }
        .await;
        match read {
            Ok(()) => Ok(at),
            Err(e) => {
                out[..rest].fill(0);
                Err(e)
            }
        }
    }

    /// Once every chunk has been read, compares the SHA-256 of the plaintext read with the
    /// one recorded at put time (`Integrity` on a mismatch). The AEAD already authenticates
    /// every byte; this also catches a wrong index entry. `InvalidInput` before the end or
    /// without [`with_checksum`](Self::with_checksum).
    pub fn verify_checksum(&self) -> Result<(), StorageError> {
        let Some(hasher) = &self.hasher else {
            return Err(StorageError::invalid(
                "checksum verification",
                "needs the reader to be opened with with_checksum() before reading",
            ));
        };
        if self.next_chunk < self.layout.chunks || self.failed.is_some() {
            return Err(StorageError::invalid(
                "checksum verification",
                "needs the whole object to have been read",
            ));
        }
        let digest: [u8; 32] = hasher.clone().finalize().into();
        if digest != self.info.sha256 {
            return Err(StorageError::Integrity(format!(
                "object {} does not match its recorded SHA-256",
                self.info.path
            )));
        }
        Ok(())
    }
}

/// A ranged read fetched and ready to decrypt ([`ObjectStore::fetch_range`]): the covering
/// chunks' ciphertext under a verified header. [`open_into`](Self::open_into) decrypts it on
/// the calling thread (spread over the store's decryption threads for large ranges); nothing
/// is returned that has not been authenticated.
pub struct FetchedRange {
    cobblestone: Cobblestone,
    /// `None` for an empty range.
    span: Option<Span>,
    /// Where the range starts in its first chunk.
    skip: usize,
    len: usize,
}

/// The covering chunks of a fetched range: their keys, layout, indexes and ciphertext.
struct Span {
    keys: MessageKeys,
    layout: Layout,
    chunks: (u64, u64),
    /// As the backend returned it: decrypted where it lies.
    ciphertext: Vec<Bytes>,
}

impl std::fmt::Debug for FetchedRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedRange")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl FetchedRange {
    pub(super) fn empty(cobblestone: Cobblestone) -> Self {
        FetchedRange {
            cobblestone,
            span: None,
            skip: 0,
            len: 0,
        }
    }

    pub(super) fn new(
        cobblestone: Cobblestone,
        keys: MessageKeys,
        layout: Layout,
        chunks: (u64, u64),
        ciphertext: Vec<Bytes>,
        range: Range<u64>,
    ) -> Self {
        let skip = (range.start - chunks.0 * crate::cobblestone::CHUNK_LEN as u64) as usize;
        FetchedRange {
            cobblestone,
            span: Some(Span {
                keys,
                layout,
                chunks,
                ciphertext,
            }),
            skip,
            len: usize::try_from(range.end - range.start).unwrap_or(usize::MAX),
        }
    }

    /// The range's length in bytes: what [`open_into`](Self::open_into) writes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many chunks the range covers.
    fn chunk_count(&self) -> u64 {
        self.span
            .as_ref()
            .map_or(0, |s| s.chunks.1 - s.chunks.0 + 1)
    }

    /// Decrypts the range into `out`, which must be exactly [`len`](Self::len) bytes
    /// (`InvalidInput` otherwise). `Integrity` if any covering chunk fails to authenticate;
    /// then `out` may hold part of the plaintext and must be discarded.
    pub fn open_into(&self, out: &mut [u8]) -> Result<(), StorageError> {
        self.open_into_any(out)
    }

    /// [`open_into`](Self::open_into) a buffer that need not be initialized, so a fresh
    /// allocation is filled by the decrypting threads without being zeroed first. On `Ok`,
    /// every byte of `out` has been written (the same code path as `open_into`, which
    /// writes the whole range); on an error, some bytes may not have been.
    pub fn open_into_uninit(&self, out: &mut [MaybeUninit<u8>]) -> Result<(), StorageError> {
        self.open_into_any(out)
    }

    fn open_into_any<B: OutByte>(&self, out: &mut [B]) -> Result<(), StorageError> {
        if out.len() != self.len {
            return Err(StorageError::invalid(
                "the output buffer",
                format!("{} bytes, the range is {}", out.len(), self.len),
            ));
        }
        match &self.span {
            None => Ok(()),
            Some(s) => self.cobblestone.open_range_into(
                &s.keys,
                &s.layout,
                s.chunks,
                &Pieces::new(s.ciphertext.iter().map(|b| &b[..])),
                self.skip,
                out,
            ),
        }
    }

    /// Decrypts the range into a new `Vec` from async code: on the calling task for up to
    /// 1 MiB of chunks, on a blocking thread beyond (a runtime worker is not held up).
    pub async fn decrypt(self) -> Result<Vec<u8>, StorageError> {
        if self.chunk_count() < CHUNKS_PER_READ {
            self.open()
        } else {
            tokio::task::spawn_blocking(move || self.open())
                .await
                .map_err(task_failed)?
        }
    }

    /// Decrypts the range into a new `Vec`.
    pub fn open(&self) -> Result<Vec<u8>, StorageError> {
        let mut out = vec![0; self.len];
        self.open_into(&mut out)?;
        Ok(out)
    }
}
