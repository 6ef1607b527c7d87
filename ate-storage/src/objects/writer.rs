//! Streaming puts: the [`ObjectWriter`] pipeline (hash, encrypt, upload), which hands the
//! finished blob to the commit.

use super::commit::Upload;
use super::{FORMAT_VERSION, ObjectInfo, ObjectStore, PutOptions, object_context, task_failed};
use crate::blob::BlobWriter;
use crate::cobblestone::Encryptor;
use crate::error::StorageError;
use ate_core::{ObjectId, TenantId};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// A streaming put in progress. Nothing is visible at the path until
/// [`commit`](ObjectWriter::commit) succeeds; [`abort`](ObjectWriter::abort) or dropping the
/// writer leaves the old object (if any) in place and releases the partial upload.
///
/// Each write is pipelined: the part is hashed (SHA-256) and encrypted on two blocking
/// threads at once while the previous part's ciphertext is uploaded, so a put keeps both
/// cores and the backend busy. Memory stays bounded by about two parts.
pub struct ObjectWriter {
    store: ObjectStore,
    /// The object being written, as the commit will record it.
    pub(super) upload: Upload,
    state: Option<(Encryptor, Sha256)>,
    blob: Option<BlobWriter>,
    /// Ciphertext of the previous part, uploaded while the next part is encrypted.
    pending: Vec<u8>,
}

/// Parts up to this size are hashed and encrypted on the calling task: handing them to
/// blocking threads would cost more than it saves.
const INLINE_PART: usize = 64 * 1024;

impl std::fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("tenant", &self.upload.tenant)
            .field("path", &self.upload.path)
            .field("written", &self.upload.size)
            .finish_non_exhaustive()
    }
}

impl ObjectStore {
    /// A writer for `path`, without authorization (callers have checked it).
    pub(super) async fn start_writer(
        &self,
        tenant: TenantId,
        path: &str,
        options: PutOptions,
    ) -> Result<ObjectWriter, StorageError> {
        let metadata = options.validate()?;
        let key = self.keyring.encryption_key(tenant).await?;
        let id = ObjectId::new();
        let context = object_context(tenant, id, key.version, FORMAT_VERSION);
        let encryptor = Encryptor::new(&self.cobblestone, key.expose_secret(), &context)?;
        let blob = self.blobs.writer(tenant, id).await?;
        Ok(ObjectWriter {
            store: self.clone(),
            upload: Upload {
                tenant,
                id,
                path: path.to_owned(),
                key_version: key.version,
                content_type: options.content_type,
                metadata,
                size: 0,
                replaces: None,
            },
            state: Some((encryptor, Sha256::new())),
            blob: Some(blob),
            pending: Vec::new(),
        })
    }
}

impl ObjectWriter {
    /// Appends `bytes` to the object.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.write_bytes(Bytes::copy_from_slice(bytes)).await
    }

    /// Appends `bytes` without copying them.
    pub async fn write_owned(&mut self, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.write_bytes(Bytes::from(bytes)).await
    }

    /// Appends `bytes` (a cheap, shareable buffer) without copying them. After an error the
    /// writer is failed: later writes and `commit` return `InvalidInput`.
    pub async fn write_bytes(&mut self, bytes: Bytes) -> Result<(), StorageError> {
        let (encryptor, mut hasher) = self
            .state
            .take()
            .ok_or_else(|| StorageError::invalid("object writer", "already failed or finished"))?;
        let mut blob = self
            .blob
            .take()
            .ok_or_else(|| StorageError::invalid("object writer", "already failed or finished"))?;
        let pending = std::mem::take(&mut self.pending);
        let n = bytes.len() as u64;
        let upload = async move {
            let r = if pending.is_empty() {
                Ok(())
            } else {
                blob.write(pending).await
            };
            (blob, r)
        };
        let seal = move |mut encryptor: Encryptor, bytes: Bytes| {
            let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 1024 + 64);
            encryptor
                .update(&bytes, &mut out)
                .map(|()| (encryptor, out))
        };
        let (sealed, hashed, (blob, uploaded)) = if bytes.len() <= INLINE_PART {
            hasher.update(&bytes);
            let sealed = seal(encryptor, bytes);
            (sealed, Ok(hasher), upload.await)
        } else {
            let shared = bytes.clone();
            let hash = tokio::task::spawn_blocking(move || {
                hasher.update(&shared);
                hasher
            });
            let encrypt = tokio::task::spawn_blocking(move || seal(encryptor, bytes));
            let (sealed, hashed, uploaded) = tokio::join!(encrypt, hash, upload);
            let sealed = sealed.map_err(task_failed).and_then(|r| r);
            (sealed, hashed.map_err(task_failed), uploaded)
        };
        // Keep the upload so a failed writer can still be aborted.
        self.blob = Some(blob);
        uploaded?;
        let (encryptor, out) = sealed?;
        self.state = Some((encryptor, hashed?));
        self.pending = out;
        self.upload.size += n;
        Ok(())
    }

    /// Finishes the upload and commits the object.
    pub async fn commit(mut self) -> Result<ObjectInfo, StorageError> {
        let (encryptor, hasher) = self
            .state
            .take()
            .ok_or_else(|| StorageError::invalid("object writer", "already failed or finished"))?;
        let mut out = std::mem::take(&mut self.pending);
        encryptor.finish(&mut out)?;
        let mut blob = self
            .blob
            .take()
            .ok_or_else(|| StorageError::invalid("object writer", "already finished"))?;
        let uploaded = async {
            blob.write(out).await?;
            blob.close().await
        }
        .await;
        if let Err(e) = uploaded {
            let _ = self
                .store
                .blobs
                .delete(self.upload.tenant, self.upload.id)
                .await;
            return Err(e);
        }
        let sha256: [u8; 32] = hasher.finalize().into();
        match self.store.commit(&self.upload, sha256).await {
            Ok(info) => Ok(info),
            Err(e) => {
                // Nothing becomes visible and nothing is counted: remove the new blob.
                let _ = self
                    .store
                    .blobs
                    .delete(self.upload.tenant, self.upload.id)
                    .await;
                Err(e)
            }
        }
    }

    /// Abandons the put and releases the partial upload now.
    pub async fn abort(mut self) -> Result<(), StorageError> {
        if let Some(blob) = self.blob.take() {
            let _ = blob.abort().await;
        }
        let _ = self
            .store
            .blobs
            .delete(self.upload.tenant, self.upload.id)
            .await;
        Ok(())
    }
}

impl Drop for ObjectWriter {
    /// A writer dropped mid-upload releases its partial upload in the background when a
    /// tokio runtime is at hand; otherwise garbage collection removes what is left.
    fn drop(&mut self) {
        if let Some(blob) = self.blob.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = blob.abort().await;
            });
        }
    }
}
