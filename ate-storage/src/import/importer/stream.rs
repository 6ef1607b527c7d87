//! Streaming one file's bytes: hashing, chunking, chunk ids and deduplication, and the
//! guess that a file the previous snapshot held is unchanged.

use super::{Importer, READ_BUF, SPECULATE_BYTES, SPECULATE_FILES};
use crate::StorageError;
use crate::dedup::{self, ChunkRef};
use crate::import::CLASSIFY_BYTES;
use crate::import::flush;
use md5::{Digest as _, Md5};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// What streaming one file's content produced.
pub(super) struct Streamed {
    pub(super) size: u64,
    pub(super) sha256: [u8; 32],
    pub(super) md5: [u8; 16],
    pub(super) head: Vec<u8>,
    pub(super) refs: Vec<ChunkRef>,
}

impl Importer {
    /// Streams one file's content through hashing, chunking, deduplication and the
    /// scanner (when `scan` is given; a scanner that stops reading is left alone).
    pub(super) async fn stream(
        &mut self,
        path: &str,
        content: &mut (dyn AsyncRead + Unpin + Send),
        mut scan: Option<tokio::io::DuplexStream>,
    ) -> Result<Streamed, StorageError> {
        let limits = self.options.limits.clone();
        let mut sha = Sha256::new();
        let mut md5 = Md5::new();
        let mut head = Vec::new();
        let mut size = 0u64;
        let mut refs = Vec::new();
        let mut buf = vec![0u8; READ_BUF];
        // The previous snapshot held this path: guess it unchanged, hash only and hold the
        // bytes; MD5, chunking and chunk ids are done only if the guess was wrong.
        let guess = self.prior(path).await?;
        let mut held: Option<Vec<u8>> = guess
            .as_ref()
            .map(|g| Vec::with_capacity(usize::try_from(g.size).unwrap_or(0)));
        loop {
            let n = content.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            let data = &buf[..n];
            size += n as u64;
            if size > limits.max_file_bytes {
                return Err(StorageError::refused(
                    Some(path),
                    format!("a file over {} bytes", limits.max_file_bytes),
                ));
            }
            if self.logical + size > limits.max_total_bytes {
                return Err(StorageError::refused(
                    Some(path),
                    format!("more than {} bytes in all", limits.max_total_bytes),
                ));
            }
            sha.update(data);
            if head.len() <= CLASSIFY_BYTES {
                let room = CLASSIFY_BYTES + 1 - head.len();
                head.extend_from_slice(&data[..n.min(room)]);
            }
            if let Some(tx) = &mut scan
                && tx.write_all(data).await.is_err()
            {
                scan = None; // the scanner has its verdict (or its error) already
            }
            match (&mut held, &guess) {
                (Some(kept), Some(g)) if size <= g.size => kept.extend_from_slice(data),
                _ => {
                    if let Some(kept) = held.take() {
                        self.feed(&mut md5, &mut refs, &kept).await?;
                    }
                    self.feed(&mut md5, &mut refs, data).await?;
                }
            }
        }
        drop(scan); // end of the scanner's stream
        let sha256: [u8; 32] = sha.finalize().into();
        if let (Some(kept), Some(g)) = (held.take(), guess) {
            if g.size == size && g.sha256 == sha256 {
                head.truncate(CLASSIFY_BYTES);
                return Ok(Streamed {
                    size,
                    sha256,
                    md5: g.md5,
                    head,
                    refs: dedup::decode_refs(&g.chunks)?,
                });
            }
            self.feed(&mut md5, &mut refs, &kept).await?;
        }
        let mut tail = Vec::new();
        let _ = self.chunker.finish(&mut |c: &[u8]| {
            tail.push(c.to_vec());
            Ok::<(), std::convert::Infallible>(())
        });
        let single = refs.is_empty() && tail.len() == 1;
        for c in tail {
            // A file of one chunk: the chunk's SHA-256 is the file's, computed already.
            let id = if single {
                self.dedup.chunk_id(&sha256)
            } else {
                self.dedup.chunk_id(&dedup::sha256(&c))
            };
            self.offer(&mut refs, id, c).await?;
        }
        head.truncate(CLASSIFY_BYTES);
        Ok(Streamed {
            size,
            sha256,
            md5: md5.finalize().into(),
            head,
            refs,
        })
    }

    /// MD5s, chunks and offers `data`, the next bytes of the file being streamed.
    async fn feed(
        &mut self,
        md5: &mut Md5,
        refs: &mut Vec<ChunkRef>,
        data: &[u8],
    ) -> Result<(), StorageError> {
        md5.update(data);
        let mut cut = Vec::new();
        let _ = self.chunker.push(data, &mut |c: &[u8]| {
            cut.push(c.to_vec());
            Ok::<(), std::convert::Infallible>(())
        });
        for c in cut {
            let id = self.dedup.chunk_id(&dedup::sha256(&c));
            self.offer(refs, id, c).await?;
        }
        Ok(())
    }

    /// What the previous snapshot held at `path`, if worth guessing it unchanged.
    async fn prior(&mut self, path: &str) -> Result<Option<flush::Prior>, StorageError> {
        if !self.priors_loaded {
            self.priors_loaded = true;
            if let Some(parent) = self.parent {
                self.priors =
                    flush::prior_files(&self.core.db, parent, SPECULATE_BYTES, SPECULATE_FILES)
                        .await?;
            }
        }
        Ok(self.priors.as_mut().and_then(|p| p.remove(path)))
    }
}
