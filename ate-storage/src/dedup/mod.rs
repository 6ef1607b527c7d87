//! Deduplicated, compressed, encrypted chunks: how a project's file contents are stored.
//!
//! A file's content is cut into chunks by content-defined chunking ([FastCDC], 2020
//! version: 16 KiB minimum, 64 KiB average, 256 KiB maximum), so an edit changes only
//! the chunks around it. Each chunk is named by a **chunk id**: an HMAC-SHA-256, under the
//! tenant's **dedup key**, of the chunk's SHA-256. The dedup key is a random key of the
//! tenant's own (sealed under the tenant's data key, [`ProjectKeyring`]), so equal content
//! in two tenants has unrelated ids and nothing about one tenant's content can be learned
//! from another's. The chunker's gear table is seeded from the same key, so even the chunk
//! boundaries (and so the sizes an operator sees) depend on a tenant secret.
//!
//! A chunk is compressed with zstd (kept as it is when that does not make it smaller),
//! then encrypted with [`crate::Cobblestone`] under the **project key**, bound
//! to tenant, project and chunk id. Chunks are appended to **pack** blobs
//! (`t/<tenant>/p/<project>/k/<pack id>`, a few MiB each, as restic and borg do), so an
//! import of thousands of small files writes a handful of blobs; the database records
//! where each chunk is. A chunk is stored once per project: a project's key protects it,
//! so deleting the project (its keys) makes all of it unrecoverable.
//!
//! **Crash safety.** Blobs are written before the rows that point at them, and rows are
//! deleted before the blobs, so a crash leaves at most blobs nothing points at. An import's
//! chunks join the project's chunks only in the transaction that commits its snapshot;
//! garbage collection removes what no committed snapshot needs (see
//! [`SnapshotStore::collect_garbage`](crate::projects::SnapshotStore::collect_garbage)),
//! and never a chunk a snapshot points at.
//!
//! [FastCDC]: https://www.usenix.org/conference/atc16/technical-sessions/presentation/xia
//! [`ProjectKeyring`]: crate::projects::ProjectKeyring

mod chunker;
pub(crate) mod gc;
pub(crate) mod pack;
pub(crate) mod read;
pub(crate) mod repack;

pub(crate) use chunker::Chunker;

use crate::StorageError;
use crate::cobblestone::Cobblestone;
use ate_core::{ProjectId, TenantId};
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Chunks are at least this long (except a file's last, or a file shorter than this).
pub const CHUNK_MIN: usize = 16 * 1024;
/// The average chunk length the chunker aims for.
pub const CHUNK_AVG: usize = 64 * 1024;
/// Chunks are at most this long.
pub const CHUNK_MAX: usize = 256 * 1024;

/// The zstd level chunks are compressed at.
const ZSTD_LEVEL: i32 = 3;

/// How a chunk's plaintext was encoded before encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// As it was (compression did not make it smaller).
    Stored = 0,
    /// zstd.
    Zstd = 1,
}

impl Encoding {
    pub(crate) fn from_i64(v: i64) -> Result<Self, StorageError> {
        match v {
            0 => Ok(Encoding::Stored),
            1 => Ok(Encoding::Zstd),
            other => Err(StorageError::Integrity(format!(
                "stored chunk encoding {other} is unknown"
            ))),
        }
    }
}

/// A chunk's id: HMAC-SHA-256 under the tenant's dedup key. Meaningless outside its tenant.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub(crate) [u8; 32]);

impl ChunkId {
    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Result<Self, StorageError> {
        bytes
            .try_into()
            .map(ChunkId)
            .map_err(|_| StorageError::Integrity(format!("a chunk id of {} bytes", bytes.len())))
    }
}

impl std::fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkId(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// One chunk of a file's content: its id and plaintext length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkRef {
    pub(crate) id: ChunkId,
    pub(crate) len: u32,
}

/// Bytes per entry of an encoded chunk list.
const REF_LEN: usize = 36;

/// Encodes a file's chunk list: per chunk, its id then its length (u32, big-endian).
pub(crate) fn encode_refs(refs: &[ChunkRef]) -> Vec<u8> {
    let mut out = Vec::with_capacity(refs.len() * REF_LEN);
    for r in refs {
        out.extend_from_slice(&r.id.0);
        out.extend_from_slice(&r.len.to_be_bytes());
    }
    out
}

/// Reads back what [`encode_refs`] wrote.
pub(crate) fn decode_refs(bytes: &[u8]) -> Result<Vec<ChunkRef>, StorageError> {
    if !bytes.len().is_multiple_of(REF_LEN) {
        return Err(StorageError::Integrity(format!(
            "a stored chunk list of {} bytes is not a whole number of entries",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(REF_LEN)
        .map(|e| {
            let mut id = [0u8; 32];
            id.copy_from_slice(&e[..32]);
            let mut len = [0u8; 4];
            len.copy_from_slice(&e[32..]);
            ChunkRef {
                id: ChunkId(id),
                len: u32::from_be_bytes(len),
            }
        })
        .collect())
}

/// A tenant's dedup key, unwrapped: names chunks and seeds the chunker. Zeroized on drop.
pub(crate) struct DedupKey {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for DedupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DedupKey([REDACTED])")
    }
}

type HmacSha256 = hmac::Hmac<Sha256>;

impl DedupKey {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        DedupKey {
            key: Zeroizing::new(*key),
        }
    }

    /// The key's bytes (to keep it in a [`crate::key_cache::KeyCache`]).
    pub(crate) fn expose_secret(&self) -> &[u8; 32] {
        &self.key
    }

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(&self.key[..])
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"))
    }

    /// The id of a chunk whose SHA-256 is `sha256`.
    pub(crate) fn chunk_id(&self, sha256: &[u8; 32]) -> ChunkId {
        let mut mac = self.mac();
        mac.update(b"ate.chunk-id.v1\0");
        mac.update(sha256);
        ChunkId(mac.finalize().into_bytes().into())
    }

    /// The chunker's gear seed.
    pub(crate) fn gear_seed(&self) -> u64 {
        let mut mac = self.mac();
        mac.update(b"ate.chunk-gear.v1\0");
        let out: [u8; 32] = mac.finalize().into_bytes().into();
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&out[..8]);
        u64::from_be_bytes(seed)
    }
}

/// The SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The Cobblestone context of a chunk: tenant, project, chunk id.
fn chunk_context(tenant: TenantId, project: ProjectId, id: &ChunkId) -> Vec<u8> {
    let mut ctx = b"ate.chunk.v1\0".to_vec();
    ctx.extend_from_slice(tenant.as_bytes());
    ctx.extend_from_slice(project.as_bytes());
    ctx.extend_from_slice(&id.0);
    ctx
}

/// A chunk compressed (when that helps) and sealed.
pub(crate) struct SealedChunk {
    pub(crate) id: ChunkId,
    pub(crate) bytes: Vec<u8>,
    pub(crate) raw_len: u32,
    pub(crate) encoding: Encoding,
}

/// A reusable zstd compression context (one per thread).
pub(crate) struct Compressor(zstd::bulk::Compressor<'static>);

impl Compressor {
    pub(crate) fn new() -> Result<Self, StorageError> {
        zstd::bulk::Compressor::new(ZSTD_LEVEL)
            .map(Compressor)
            .map_err(StorageError::Io)
    }
}

/// Compresses and seals `raw` as chunk `id` of the project.
pub(crate) fn seal_chunk(
    cipher: &Cobblestone,
    z: &mut Compressor,
    key: &[u8; 32],
    tenant: TenantId,
    project: ProjectId,
    id: ChunkId,
    raw: &[u8],
) -> Result<SealedChunk, StorageError> {
    let compressed = z.0.compress(raw).map_err(StorageError::Io)?;
    let (encoding, plain) = if compressed.len() < raw.len() {
        (Encoding::Zstd, &compressed[..])
    } else {
        (Encoding::Stored, raw)
    };
    let bytes = cipher.seal(key, plain, &chunk_context(tenant, project, &id))?;
    Ok(SealedChunk {
        id,
        bytes,
        raw_len: raw.len() as u32,
        encoding,
    })
}

/// Opens a chunk sealed by [`seal_chunk`] and checks that it is the chunk `id` names.
#[allow(clippy::too_many_arguments)]
pub(crate) fn open_chunk(
    cipher: &Cobblestone,
    key: &[u8; 32],
    dedup: &DedupKey,
    tenant: TenantId,
    project: ProjectId,
    id: ChunkId,
    sealed: &[u8],
    encoding: Encoding,
    raw_len: u32,
) -> Result<Vec<u8>, StorageError> {
    let plain = cipher.open(key, sealed, &chunk_context(tenant, project, &id))?;
    let raw = match encoding {
        Encoding::Stored => plain,
        // The stored length bounds the output: a hostile frame cannot inflate past it.
        Encoding::Zstd => zstd::bulk::decompress(&plain, raw_len as usize).map_err(|e| {
            StorageError::Integrity(format!("chunk {id:?} does not decompress: {e}"))
        })?,
    };
    if raw.len() != raw_len as usize || dedup.chunk_id(&sha256(&raw)) != id {
        return Err(StorageError::Integrity(format!(
            "chunk {id:?} does not hold the content its id names"
        )));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_lists_round_trip_and_reject_torn_bytes() {
        let refs = vec![
            ChunkRef {
                id: ChunkId([7; 32]),
                len: 65_536,
            },
            ChunkRef {
                id: ChunkId([9; 32]),
                len: 3,
            },
        ];
        let bytes = encode_refs(&refs);
        assert_eq!(bytes.len(), 72);
        assert_eq!(decode_refs(&bytes).ok(), Some(refs));
        assert!(matches!(
            decode_refs(&bytes[..71]),
            Err(StorageError::Integrity(_))
        ));
    }

    #[test]
    fn chunk_ids_depend_on_the_dedup_key() {
        let a = DedupKey::new(&[1; 32]);
        let b = DedupKey::new(&[2; 32]);
        let h = sha256(b"same content");
        assert_ne!(a.chunk_id(&h), b.chunk_id(&h));
        assert_eq!(a.chunk_id(&h), DedupKey::new(&[1; 32]).chunk_id(&h));
        assert_ne!(a.gear_seed(), b.gear_seed());
        assert_eq!(format!("{a:?}"), "DedupKey([REDACTED])");
    }

    #[test]
    fn chunks_seal_compressed_and_open_only_as_themselves() -> Result<(), StorageError> {
        let cipher = Cobblestone::default();
        let dedup = DedupKey::new(&[3; 32]);
        let (tenant, project) = (TenantId::new(), ProjectId::new());
        let key = [4u8; 32];
        let text = b"fn main() { println!(\"hello\"); }\n".repeat(200);
        let id = dedup.chunk_id(&sha256(&text));
        let mut z = Compressor::new()?;
        let sealed = seal_chunk(&cipher, &mut z, &key, tenant, project, id, &text)?;
        assert_eq!(sealed.encoding, Encoding::Zstd);
        assert!(sealed.bytes.len() < text.len() / 4);
        let open = |id, project, enc, len| {
            open_chunk(
                &cipher,
                &key,
                &dedup,
                tenant,
                project,
                id,
                &sealed.bytes,
                enc,
                len,
            )
        };
        assert_eq!(
            open(id, project, sealed.encoding, sealed.raw_len)?,
            text.clone()
        );
        // Moved to another project, or named as another chunk: refused.
        assert!(open(id, ProjectId::new(), sealed.encoding, sealed.raw_len).is_err());
        let other = dedup.chunk_id(&sha256(b"other"));
        assert!(open(other, project, sealed.encoding, sealed.raw_len).is_err());
        // A wrong recorded length cannot make the decompressor run past it.
        assert!(open(id, project, sealed.encoding, 10).is_err());
        // Incompressible bytes are kept as they are.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let nid = dedup.chunk_id(&sha256(&noise));
        let stored = seal_chunk(&cipher, &mut z, &key, tenant, project, nid, &noise)?;
        assert_eq!(stored.encoding, Encoding::Stored);
        Ok(())
    }
}
