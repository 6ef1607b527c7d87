//! Pack blobs: sealed chunks written one after another into one blob.

use super::{ChunkId, Encoding, SealedChunk};
use crate::StorageError;
use crate::blob::{BlobStore, BlobWriter};
use ate_core::{ProjectId, TenantId};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A pack is closed once it holds this many bytes.
pub(crate) const PACK_TARGET: u64 = 16 << 20;

/// The directory of a project's packs.
pub(crate) fn pack_dir(tenant: TenantId, project: ProjectId) -> String {
    format!("t/{tenant}/p/{project}/k")
}

/// The blob name of a pack.
pub(crate) fn pack_name(tenant: TenantId, project: ProjectId, pack: Uuid) -> String {
    format!("{}/{pack}", pack_dir(tenant, project))
}

/// Where a chunk is in its pack, and how to open it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PackEntry {
    pub(crate) id: ChunkId,
    pub(crate) offset: u64,
    pub(crate) stored_len: u32,
    pub(crate) raw_len: u32,
    pub(crate) key_version: u32,
    pub(crate) encoding: Encoding,
}

/// A pack that was written and closed.
#[derive(Debug)]
pub(crate) struct ClosedPack {
    pub(crate) id: Uuid,
    pub(crate) size: u64,
    pub(crate) sha256: [u8; 32],
    pub(crate) entries: Vec<PackEntry>,
}

/// A pack being written.
#[derive(Debug)]
pub(crate) struct PackWriter {
    id: Uuid,
    writer: BlobWriter,
    size: u64,
    hash: Sha256,
    entries: Vec<PackEntry>,
}

impl PackWriter {
    /// Starts a new pack of the project.
    pub(crate) async fn start(
        blobs: &BlobStore,
        tenant: TenantId,
        project: ProjectId,
    ) -> Result<Self, StorageError> {
        let id = Uuid::now_v7();
        let writer = blobs.writer_in(&pack_dir(tenant, project), id).await?;
        Ok(PackWriter {
            id,
            writer,
            size: 0,
            hash: Sha256::new(),
            entries: Vec::new(),
        })
    }

    /// Bytes written so far.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Appends a sealed chunk.
    pub(crate) async fn append(
        &mut self,
        chunk: SealedChunk,
        key_version: u32,
    ) -> Result<(), StorageError> {
        let stored_len = u32::try_from(chunk.bytes.len())
            .map_err(|_| StorageError::invalid("chunk", "a sealed chunk over 4 GiB"))?;
        self.hash.update(&chunk.bytes);
        self.entries.push(PackEntry {
            id: chunk.id,
            offset: self.size,
            stored_len,
            raw_len: chunk.raw_len,
            key_version,
            encoding: chunk.encoding,
        });
        self.size += u64::from(stored_len);
        self.writer.write(chunk.bytes).await
    }

    /// Completes the blob (durable on `fs`).
    pub(crate) async fn close(self) -> Result<ClosedPack, StorageError> {
        self.writer.close().await?;
        Ok(ClosedPack {
            id: self.id,
            size: self.size,
            sha256: self.hash.finalize().into(),
            entries: self.entries,
        })
    }

    /// Abandons the pack: nothing is published.
    pub(crate) async fn abort(self) -> Result<(), StorageError> {
        self.writer.abort().await
    }
}
