//! [`BlobWriter`]: a streaming upload that becomes visible whole, or not at all.

use super::backend_error;
use crate::error::StorageError;
use opendal::Operator;

/// An upload written under a staging name, renamed into place when it completes.
#[derive(Debug)]
pub(super) struct Staged {
    pub(super) op: Operator,
    /// Where the bytes go while the upload runs (`.ate-staging/<object id>.<random>`).
    pub(super) staged: String,
    /// The blob name it is renamed to on close.
    pub(super) target: String,
}

/// A streaming blob upload. Dropping it without [`close`](BlobWriter::close) leaves no blob
/// under the name (call [`abort`](BlobWriter::abort) to also release partial uploads now).
pub struct BlobWriter {
    writer: opendal::Writer,
    written: u64,
    /// Directories to sync after the upload is in place (local file systems only).
    sync_dirs: Vec<std::path::PathBuf>,
    /// Set when the store stages uploads itself (file-system-like backends).
    staged: Option<Staged>,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("written", &self.written)
            .field("staged", &self.staged.as_ref().map(|s| &s.staged))
            .finish_non_exhaustive()
    }
}

impl BlobWriter {
    pub(super) fn new(
        writer: opendal::Writer,
        sync_dirs: Vec<std::path::PathBuf>,
        staged: Option<Staged>,
    ) -> Self {
        BlobWriter {
            writer,
            written: 0,
            sync_dirs,
            staged,
        }
    }

    /// Appends `bytes`.
    pub async fn write(&mut self, bytes: Vec<u8>) -> Result<(), StorageError> {
        let n = bytes.len() as u64;
        self.writer
            .write(bytes)
            .await
            .map_err(|e| backend_error("uploading a blob", e))?;
        self.written += n;
        Ok(())
    }

    /// Completes the upload; returns the blob size.
    pub async fn close(mut self) -> Result<u64, StorageError> {
        self.writer
            .close()
            .await
            .map_err(|e| backend_error("completing a blob upload", e))?;
        if let Some(staged) = self.staged.take()
            && let Err(e) = staged.op.rename(&staged.staged, &staged.target).await
        {
            // Nothing was published: do not leave the staged copy behind either.
            let _ = staged.op.delete(&staged.staged).await;
            return Err(backend_error("publishing a blob upload", e));
        }
        if !self.sync_dirs.is_empty() {
            let dirs = std::mem::take(&mut self.sync_dirs);
            tokio::task::spawn_blocking(move || {
                dirs.iter()
                    .try_for_each(|d| std::fs::File::open(d).and_then(|f| f.sync_all()))
            })
            .await
            .map_err(|e| StorageError::Io(std::io::Error::other(e.to_string())))??;
        }
        Ok(self.written)
    }

    /// Abandons the upload. A staged upload is aborted by removing its staged copy, which
    /// works whether or not the backend can abort a write in place (OpenDAL's `fs` cannot
    /// without an `atomic_write_dir`).
    pub async fn abort(self) -> Result<(), StorageError> {
        let BlobWriter {
            mut writer, staged, ..
        } = self;
        let aborted = writer.abort().await;
        // Release the backend's handle on the staged file before removing it.
        drop(writer);
        match staged {
            None => aborted.map_err(|e| backend_error("aborting a blob upload", e)),
            Some(staged) => staged
                .op
                .delete(&staged.staged)
                .await
                .map_err(|e| backend_error("removing an aborted blob upload", e)),
        }
    }
}
