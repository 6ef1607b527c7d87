//! Payload blobs: where they live, and streaming them in (encrypting) and out (decrypting
//! and checking), with memory bounded by one piece.

use crate::StorageError;
use crate::blob::BlobStore;
use crate::cobblestone::{Cobblestone, Decryptor, Encryptor};
use ate_core::{CoreError, ProjectId, TenantId};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use uuid::Uuid;

/// Bytes read or written at a time.
const PIECE: usize = 256 * 1024;

/// The payload blob ids of snapshot `$1`'s results (read before they are deleted with it).
pub(crate) const PAYLOADS_OF_SNAPSHOT: &str = "SELECT p.blob_id FROM analysis_payloads p \
     JOIN analysis_results r ON r.id = p.result_id WHERE r.snapshot_id = $1";

/// The folder of a project's payload blobs.
pub(crate) fn payload_dir(tenant: TenantId, project: ProjectId) -> String {
    format!("t/{tenant}/p/{project}/a")
}

/// The blob name of a payload.
pub(crate) fn payload_name(tenant: TenantId, project: ProjectId, blob: Uuid) -> String {
    format!("{}/{blob}", payload_dir(tenant, project))
}

/// The Cobblestone context of a payload: tenant, project, result, blob, key version. A
/// payload's bytes moved under another name, result or project do not decrypt.
pub(crate) fn context(
    tenant: TenantId,
    project: ProjectId,
    result: Uuid,
    blob: Uuid,
    key_version: u32,
) -> Vec<u8> {
    let mut ctx = b"ate.analysis-payload.v1\0".to_vec();
    ctx.extend_from_slice(tenant.as_bytes());
    ctx.extend_from_slice(project.as_bytes());
    ctx.extend_from_slice(result.as_bytes());
    ctx.extend_from_slice(blob.as_bytes());
    ctx.extend_from_slice(&key_version.to_be_bytes());
    ctx
}

/// What streaming a payload in produced.
pub(super) struct Written {
    pub(super) size: u64,
    pub(super) stored_bytes: u64,
    pub(super) sha256: [u8; 32],
}

/// Where a payload goes and under what.
pub(super) struct Target<'a> {
    pub(super) blobs: &'a BlobStore,
    pub(super) cipher: &'a Cobblestone,
    pub(super) dir: String,
    pub(super) blob: Uuid,
    pub(super) key: &'a [u8],
    pub(super) context: Vec<u8>,
    /// Stop with `QuotaExceeded` once the stored bytes pass this.
    pub(super) headroom: Option<u64>,
}

/// Encrypts `content` into the blob `target` names; the blob exists only if this succeeds.
pub(super) async fn write(
    target: Target<'_>,
    content: &mut (dyn AsyncRead + Unpin + Send),
) -> Result<Written, StorageError> {
    let mut writer = target.blobs.writer_in(&target.dir, target.blob).await?;
    let result = async {
        let mut enc = Some(Encryptor::new(target.cipher, target.key, &target.context)?);
        let mut hash = Sha256::new();
        let (mut size, mut stored) = (0u64, 0u64);
        let mut buf = vec![0u8; PIECE];
        loop {
            let n = content.read(&mut buf).await.map_err(StorageError::Io)?;
            let mut out = Vec::with_capacity(n + 64);
            let Some(e) = enc.as_mut() else { break };
            if n == 0 {
                enc.take().map(|e| e.finish(&mut out)).transpose()?;
            } else {
                hash.update(&buf[..n]);
                size += n as u64;
                e.update(&buf[..n], &mut out)?;
            }
            stored += out.len() as u64;
            if let Some(max) = target.headroom
                && stored > max
            {
                return Err(CoreError::QuotaExceeded(format!(
                    "the payload passed the {max} bytes the tenant may still store"
                ))
                .into());
            }
            if !out.is_empty() {
                writer.write(out).await?;
            }
            if n == 0 {
                break;
            }
        }
        Ok(Written {
            size,
            stored_bytes: stored,
            sha256: hash.finalize().into(),
        })
    }
    .await;
    match result {
        Ok(written) => {
            writer.close().await?;
            Ok(written)
        }
        Err(e) => {
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

/// Where a recorded payload is and how to check it.
pub(crate) struct Source<'a> {
    pub(crate) blobs: &'a BlobStore,
    pub(crate) cipher: &'a Cobblestone,
    pub(crate) name: String,
    pub(crate) stored_bytes: u64,
    pub(crate) key: &'a [u8],
    pub(crate) context: Vec<u8>,
    pub(crate) size: u64,
    pub(crate) sha256: &'a [u8],
}

/// Decrypts the payload `source` names into `out`, checking its length and SHA-256.
pub(crate) async fn read(
    source: Source<'_>,
    out: &mut (dyn AsyncWrite + Unpin + Send),
) -> Result<(), StorageError> {
    let (size, digest) = decrypt(&source, out).await?;
    if size != source.size || digest[..] != source.sha256[..] {
        return Err(StorageError::Integrity(format!(
            "payload {} does not match what was recorded ({size} of {} bytes read)",
            source.name, source.size
        )));
    }
    out.flush().await.map_err(StorageError::Io)?;
    Ok(())
}

/// Decrypts the payload `source` names into `out` (every piece authenticated), returning
/// the plaintext's length and SHA-256 for the caller to compare with the recorded ones.
pub(crate) async fn decrypt(
    source: &Source<'_>,
    out: &mut (dyn AsyncWrite + Unpin + Send),
) -> Result<(u64, [u8; 32]), StorageError> {
    let mut dec = Decryptor::new(source.cipher, source.key, &source.context)?;
    let mut hash = Sha256::new();
    let mut size = 0u64;
    let mut offset = 0u64;
    let mut plain = Vec::with_capacity(PIECE + 64);
    while offset < source.stored_bytes {
        let end = (offset + PIECE as u64).min(source.stored_bytes);
        let sealed = source.blobs.read_named(&source.name, offset..end).await?;
        offset = end;
        plain.clear();
        dec.update(&sealed, &mut plain)?;
        if offset == source.stored_bytes {
            dec.finish(&mut plain)?;
        }
        hash.update(&plain);
        size += plain.len() as u64;
        out.write_all(&plain).await.map_err(StorageError::Io)?;
    }
    if source.stored_bytes == 0 {
        dec.finish(&mut plain)?;
    }
    Ok((size, hash.finalize().into()))
}
