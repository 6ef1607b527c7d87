//! Blob backends over Apache OpenDAL: any OpenDAL operator, or one named by URL.
//!
//! A host brings any OpenDAL service (GCS, Azure Blob, HDFS, a local directory with its own
//! layers, …) through [`BlobStore::from_operator`]; the URL constructors are conveniences
//! built on it:
//!
//! | URL | backend |
//! | --- | --- |
//! | `memory://` | process memory (tests) |
//! | `fs:///absolute/path` | a local directory (created if missing) |
//! | `s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1` | any S3-compatible store (feature `s3`) |
//!
//! Blob names are derived from tenant and object ids only (`t/<tenant>/o/<object>`), never
//! from user-supplied paths, so no logical path can escape its tenant's prefix.
//!
//! # What ATE needs of a backend
//!
//! [`BlobStore::from_operator`] reads the operator's
//! [`capability`](opendal::OperatorInfo::capability) and refuses, with
//! [`StorageError::UnsupportedBackend`] (kind `Unsupported`) naming every missing field, an
//! operator that cannot:
//!
//! * `read` (ranged reads: every object read is one), `write` (uploads, streamed in parts),
//!   `stat` (blob sizes), `delete` (overwrites, deletes, aborted uploads, garbage
//!   collection), `list` (garbage collection of orphan blobs and staged uploads; blobs sit
//!   one level under their tenant's prefix, so no recursive listing is needed).
//!
//! An upload must never be visible under its blob name before it completes. Object stores
//! (S3, GCS, Azure Blob, OpenDAL's memory service, …) publish a write only when it closes.
//! File systems write in place, so on a backend that can `rename` (OpenDAL's `fs`, `hdfs`,
//! `sftp`, `webdav`, …) the store writes each upload to `.ate-staging/<object id>.<random>`
//! under the operator's root and renames it into place when it completes; an aborted upload
//! removes its staged file, and [garbage collection](crate::ObjectStore::collect_garbage)
//! removes the ones a crash left behind. On OpenDAL's `fs` service the store also syncs the
//! file and its directories, so a completed upload survives a power loss. A backend that
//! writes in place but cannot rename cannot be detected from its capabilities: do not use
//! one.
//!
//! The limits a backend declares (`write_total_max_size`, say) are the backend's: an upload
//! past them fails with the backend's error.

mod requirements;
mod url;
mod writer;

pub use url::S3Credentials;
pub use writer::BlobWriter;

use crate::error::StorageError;
use ate_core::{ErrorKind, ObjectId, TenantId};
use opendal::Operator;
use writer::Staged;

/// Which kind of backend a [`BlobStore`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobBackend {
    /// Process memory.
    Memory,
    /// A local directory.
    Fs,
    /// An S3-compatible object store.
    S3,
    /// Any other OpenDAL service, given to [`BlobStore::from_operator`]; its name is
    /// [`BlobStore::scheme`].
    Other,
}

/// How an upload is kept invisible until it completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publish {
    /// The backend publishes a write only when it closes.
    OnClose,
    /// The store writes to its staging area and renames the upload into place.
    Rename,
}

/// Encrypted blobs of every tenant, in one backend.
#[derive(Debug, Clone)]
pub struct BlobStore {
    op: Operator,
    backend: BlobBackend,
    publish: Publish,
    /// The directory of a local (`fs`) store, for the directory syncs that make uploads
    /// durable.
    fs_root: Option<std::path::PathBuf>,
}

/// Where uploads in progress live on backends that write in place (inside the root).
const STAGING_DIR: &str = ".ate-staging";

/// The moment before which something minted is older than `grace`: `now - grace`, or the
/// earliest representable time when `grace` reaches further back (never a panic).
pub(crate) fn grace_cutoff(
    now: chrono::DateTime<chrono::Utc>,
    grace: chrono::TimeDelta,
) -> chrono::DateTime<chrono::Utc> {
    now.checked_sub_signed(grace)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}

/// Refuses a negative grace period: it would put the cutoff in the future and take
/// uploads still in progress for garbage.
pub(crate) fn check_grace(grace: chrono::TimeDelta) -> Result<(), StorageError> {
    if grace < chrono::TimeDelta::zero() {
        return Err(StorageError::invalid(
            "grace period",
            format!("must not be negative, got {grace}"),
        ));
    }
    Ok(())
}

/// When an object id was minted (the time inside its UUIDv7).
pub(crate) fn minted_at(id: ObjectId) -> Option<chrono::DateTime<chrono::Utc>> {
    id.as_uuid()
        .get_timestamp()
        .map(|ts| ts.to_unix())
        .and_then(|(s, n)| chrono::DateTime::from_timestamp(s as i64, n))
}

/// Maps an OpenDAL error to a typed one, keeping its message.
pub(crate) fn backend_error(what: &str, e: opendal::Error) -> StorageError {
    use opendal::ErrorKind as K;
    let (kind, retryable) = match e.kind() {
        K::NotFound => (ErrorKind::NotFound, false),
        K::PermissionDenied => (ErrorKind::PermissionDenied, false),
        K::ConfigInvalid | K::RangeNotSatisfied => (ErrorKind::InvalidInput, false),
        K::RateLimited => (ErrorKind::RateLimited, true),
        K::Unsupported => (ErrorKind::Unsupported, false),
        K::AlreadyExists | K::ConditionNotMatch => (ErrorKind::Conflict, false),
        // Connection failures, timeouts and server errors: the backend is unavailable.
        _ => (ErrorKind::Unavailable, true),
    };
    StorageError::Backend {
        kind,
        retryable: retryable || e.is_temporary(),
        message: format!("{what}: {e}"),
    }
}

impl BlobStore {
    /// Uses an OpenDAL operator the host built, with whatever service and layers it chose
    /// (retries, timeouts, metrics, …). No request is made.
    ///
    /// Fails with [`StorageError::UnsupportedBackend`] (kind `Unsupported`) when the operator
    /// lacks a capability ATE needs (see the [module docs](self)); the error names each one.
    ///
    /// ```
    /// use ate_storage::BlobStore;
    /// use opendal::{Operator, services};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let op = Operator::new(services::Fs::default().root(&dir.path().to_string_lossy()))?;
    /// let blobs = BlobStore::from_operator(op)?;
    /// assert_eq!(blobs.scheme(), "fs");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_operator(op: Operator) -> Result<Self, StorageError> {
        let info = op.info();
        let capability = info.capability();
        requirements::check(info.scheme(), &capability)?;
        let backend = match info.scheme() {
            "memory" => BlobBackend::Memory,
            "fs" => BlobBackend::Fs,
            "s3" => BlobBackend::S3,
            _ => BlobBackend::Other,
        };
        let publish = if capability.rename {
            Publish::Rename
        } else {
            Publish::OnClose
        };
        let fs_root = (backend == BlobBackend::Fs).then(|| std::path::PathBuf::from(info.root()));
        Ok(BlobStore {
            op,
            backend,
            publish,
            fs_root,
        })
    }

    /// The backend kind.
    pub fn backend(&self) -> BlobBackend {
        self.backend
    }

    /// The OpenDAL operator beneath: raw access to the stored ciphertexts, for tools that
    /// copy or inspect blobs (backups, migrations, damage drills in tests). Nothing written
    /// through it is indexed or encrypted: a blob ATE did not write is an orphan to
    /// [`verify`](crate::ObjectStore::verify) and garbage collection.
    pub fn operator(&self) -> &Operator {
        &self.op
    }

    /// The OpenDAL scheme of the operator (`"memory"`, `"fs"`, `"s3"`, `"gcs"`, …).
    pub fn scheme(&self) -> &'static str {
        self.op.info().scheme()
    }

    /// The blob name of an object: derived from ids only.
    pub fn blob_name(tenant: TenantId, object: ObjectId) -> String {
        format!("t/{tenant}/o/{object}")
    }

    /// Stores `bytes` as the blob of `object`, replacing any previous one.
    pub async fn put(
        &self,
        tenant: TenantId,
        object: ObjectId,
        bytes: Vec<u8>,
    ) -> Result<(), StorageError> {
        if self.publish == Publish::Rename {
            let mut w = self.writer(tenant, object).await?;
            w.write(bytes).await?;
            return w.close().await.map(|_| ());
        }
        let name = Self::blob_name(tenant, object);
        self.op
            .write(&name, bytes)
            .await
            .map(|_| ())
            .map_err(|e| backend_error("writing a blob", e))
    }

    /// Starts a streaming upload of the blob of `object`. Nothing is visible under that name
    /// until [`BlobWriter::close`] succeeds. On `fs`, a closed blob is durable: the file is
    /// synced before it is renamed into place, and its directory (plus any directories the
    /// upload created) after.
    pub async fn writer(
        &self,
        tenant: TenantId,
        object: ObjectId,
    ) -> Result<BlobWriter, StorageError> {
        self.writer_in(&format!("t/{tenant}/o"), object.as_uuid())
            .await
    }

    /// Starts a streaming upload of the blob `<dir>/<id>` (`dir` made of ids only, like
    /// `t/<tenant>/o`), published only when it closes, as [`writer`](Self::writer) does.
    pub(crate) async fn writer_in(
        &self,
        dir: &str,
        id: uuid::Uuid,
    ) -> Result<BlobWriter, StorageError> {
        let name = format!("{dir}/{id}");
        let sync_dirs = match &self.fs_root {
            Some(root) => {
                let leaf = root.join(dir);
                let new_dir = !tokio::fs::try_exists(&leaf).await.unwrap_or(false);
                let mut dirs = vec![leaf.clone()];
                if new_dir {
                    // Every directory the upload may create, up to the root.
                    let mut up = leaf.parent();
                    while let Some(d) = up {
                        dirs.push(d.to_path_buf());
                        if d == root.as_path() {
                            break;
                        }
                        up = d.parent();
                    }
                }
                dirs
            }
            None => Vec::new(),
        };
        let (path, staged) = match self.publish {
            Publish::OnClose => (name, None),
            Publish::Rename => {
                let suffix = getrandom::u64().map_err(|e| {
                    StorageError::Io(std::io::Error::other(format!(
                        "the operating system's random number generator failed: {e}"
                    )))
                })?;
                // `<id>.<random>`: garbage collection reads the id back from the name.
                let staged = format!("{STAGING_DIR}/{id}.{suffix:016x}");
                let target = Staged {
                    op: self.op.clone(),
                    staged: staged.clone(),
                    target: name,
                };
                (staged, Some(target))
            }
        };
        let writer = self
            .op
            .writer(&path)
            .await
            .map_err(|e| backend_error("starting a blob upload", e))?;
        Ok(BlobWriter::new(writer, sync_dirs, staged))
    }

    /// Reads `range` of the blob of `object` (a ranged request on every backend).
    pub async fn read_range(
        &self,
        tenant: TenantId,
        object: ObjectId,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u8>, StorageError> {
        self.read_named(&Self::blob_name(tenant, object), range)
            .await
    }

    /// [`read_range`](Self::read_range) in the pieces the backend returned (OpenDAL's `fs`
    /// service reads at most 2 MiB at a time), for callers that can use them where they
    /// lie instead of gathering them into one buffer.
    pub async fn read_range_pieces(
        &self,
        tenant: TenantId,
        object: ObjectId,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<bytes::Bytes>, StorageError> {
        let buf = self
            .read_buffer(&Self::blob_name(tenant, object), range)
            .await?;
        Ok(buf.collect())
    }

    /// Reads `range` of the blob called `name`.
    pub(crate) async fn read_named(
        &self,
        name: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u8>, StorageError> {
        let buf = self.read_buffer(name, range).await?;
        // One contiguous, uniquely owned piece (the usual shape of a read) becomes the
        // `Vec` without a copy; anything else is gathered once.
        Ok(buf.to_bytes().into())
    }

    /// Reads `range` of the blob called `name`, exactly that long (`Integrity` if the blob
    /// ends sooner).
    async fn read_buffer(
        &self,
        name: &str,
        range: std::ops::Range<u64>,
    ) -> Result<opendal::Buffer, StorageError> {
        if range.start > range.end {
            return Err(StorageError::invalid("byte range", "reversed"));
        }
        if range.start == range.end {
            return Ok(opendal::Buffer::new());
        }
        let buf = self
            .op
            .read_with(name)
            .range(range.clone())
            .await
            .map_err(|e| backend_error("reading a blob", e))?;
        if buf.len() as u64 != range.end - range.start {
            return Err(StorageError::Integrity(format!(
                "blob {name} is shorter than expected ({} of {} bytes from offset {})",
                buf.len(),
                range.end - range.start,
                range.start
            )));
        }
        Ok(buf)
    }

    /// Checks that the backend answers (for a host's readiness probe): one cheap request
    /// (a listing of at most one entry). Fails with the backend's error, `Unavailable` when
    /// it cannot be reached.
    pub async fn check(&self) -> Result<(), StorageError> {
        self.op
            .check()
            .await
            .map_err(|e| backend_error("checking the blob store", e))
    }

    /// The size of the blob of `object`.
    pub async fn size(&self, tenant: TenantId, object: ObjectId) -> Result<u64, StorageError> {
        self.size_named(&Self::blob_name(tenant, object)).await
    }

    /// The size of the blob called `name`.
    pub(crate) async fn size_named(&self, name: &str) -> Result<u64, StorageError> {
        let meta = self
            .op
            .stat(name)
            .await
            .map_err(|e| backend_error("reading blob metadata", e))?;
        Ok(meta.content_length())
    }

    /// Deletes the blob of `object`; deleting a missing blob succeeds.
    pub async fn delete(&self, tenant: TenantId, object: ObjectId) -> Result<(), StorageError> {
        self.delete_named(&Self::blob_name(tenant, object)).await
    }

    /// Deletes the blob called `name`; deleting a missing blob succeeds.
    pub(crate) async fn delete_named(&self, name: &str) -> Result<(), StorageError> {
        self.op
            .delete(name)
            .await
            .map_err(|e| backend_error("deleting a blob", e))
    }

    /// Deletes the leftovers of staged uploads that never completed (a crash between write
    /// and rename) whose object id was minted before `cutoff`. Returns (deleted, kept).
    /// Backends that publish on close have no staging area: an S3 bucket should carry a
    /// lifecycle rule that aborts incomplete multipart uploads (see the crate docs).
    pub(crate) async fn collect_staging(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> Result<(u64, u64), StorageError> {
        if self.publish != Publish::Rename {
            return Ok((0, 0));
        }
        let prefix = format!("{STAGING_DIR}/");
        let entries = match self.op.list(&prefix).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => return Err(backend_error("listing staged uploads", e)),
        };
        let (mut deleted, mut kept) = (0, 0);
        for entry in entries {
            // Staged files are named `<object id>.<random suffix>`.
            let Some(born) = entry
                .name()
                .split_once('.')
                .and_then(|(id, _)| id.parse::<ObjectId>().ok())
                .and_then(minted_at)
            else {
                continue;
            };
            if born > cutoff {
                kept += 1;
            } else {
                self.op
                    .delete(entry.path())
                    .await
                    .map_err(|e| backend_error("deleting a staged upload", e))?;
                deleted += 1;
            }
        }
        Ok((deleted, kept))
    }

    /// Every object id with a blob under `tenant` (for garbage collection). Names that are
    /// not ATE blob names are ignored.
    pub async fn list(&self, tenant: TenantId) -> Result<Vec<ObjectId>, StorageError> {
        let ids = self.list_in(&format!("t/{tenant}/o")).await?;
        Ok(ids
            .into_iter()
            .filter_map(|id| ObjectId::from_uuid(id).ok())
            .collect())
    }

    /// The ids of the folders directly under `dir` (named `<dir>/<uuid>/`), sorted. Other
    /// names are ignored.
    pub(crate) async fn list_dirs_in(&self, dir: &str) -> Result<Vec<uuid::Uuid>, StorageError> {
        let prefix = format!("{dir}/");
        let entries = match self.op.list(&prefix).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(backend_error("listing blob folders", e)),
        };
        let mut ids: Vec<uuid::Uuid> = entries
            .iter()
            .filter_map(|entry| entry.path().strip_prefix(&prefix))
            .filter_map(|rest| rest.strip_suffix('/'))
            .filter_map(|name| name.parse().ok())
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// The ids of the blobs directly under `dir` (named `<dir>/<uuid>`), sorted. Other
    /// names are ignored.
    pub(crate) async fn list_in(&self, dir: &str) -> Result<Vec<uuid::Uuid>, StorageError> {
        let prefix = format!("{dir}/");
        // Blobs sit directly under the prefix: a flat listing sees them all, on every
        // backend, without relying on recursive listing (or its simulation).
        let entries = match self.op.list(&prefix).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(backend_error("listing blobs", e)),
        };
        let mut ids: Vec<uuid::Uuid> = entries
            .iter()
            .filter_map(|entry| entry.path().strip_prefix(&prefix))
            .filter_map(|rest| rest.parse().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ate_core::Classify;
    use opendal::layers::CapabilityOverrideLayer;

    fn memory() -> Operator {
        Operator::new(opendal::services::Memory::default()).unwrap()
    }

    #[test]
    fn an_operator_without_a_needed_capability_is_refused() {
        let op = memory().layer(CapabilityOverrideLayer::new(|mut c| {
            c.list = false;
            c
        }));
        let err = BlobStore::from_operator(op).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        match &err {
            StorageError::UnsupportedBackend {
                scheme, missing, ..
            } => assert_eq!(
                (scheme.as_str(), missing.as_slice()),
                ("memory", &["list"][..])
            ),
            other => panic!("expected UnsupportedBackend, got {other:?}"),
        }
        assert!(err.to_string().contains("garbage collection"), "{err}");
    }

    #[test]
    fn backends_are_recognised_and_staging_follows_rename() {
        let m = BlobStore::from_operator(memory()).unwrap();
        assert_eq!((m.backend(), m.scheme()), (BlobBackend::Memory, "memory"));
        assert_eq!((m.publish, m.fs_root.as_ref()), (Publish::OnClose, None));

        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_string_lossy().into_owned();
        let fs = Operator::new(opendal::services::Fs::default().root(&root)).unwrap();
        let f = BlobStore::from_operator(fs).unwrap();
        assert_eq!((f.backend(), f.publish), (BlobBackend::Fs, Publish::Rename));
        assert_eq!(
            f.fs_root
                .as_deref()
                .map(std::fs::canonicalize)
                .unwrap()
                .unwrap(),
            dir.path().canonicalize().unwrap()
        );

        // A memory operator that claims `rename` is staged like a file system.
        let renaming = memory().layer(CapabilityOverrideLayer::new(|mut c| {
            c.rename = true;
            c
        }));
        assert_eq!(
            BlobStore::from_operator(renaming).unwrap().publish,
            Publish::Rename
        );
    }

    /// A long read comes back in the pieces the backend read (`fs`: at most 2 MiB each),
    /// which together are exactly the range; `read_range` gathers them; a range past the
    /// end or a reversed one is `InvalidInput`.
    #[tokio::test]
    async fn long_reads_come_back_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_string_lossy().into_owned();
        let store = BlobStore::from_operator(
            Operator::new(opendal::services::Fs::default().root(&root)).unwrap(),
        )
        .unwrap();
        let (t, o) = (TenantId::new(), ObjectId::new());
        let data: Vec<u8> = (0..5 * 1024 * 1024 + 77).map(|i| (i % 251) as u8).collect();
        store.put(t, o, data.clone()).await.unwrap();
        let n = data.len() as u64;
        for range in [0..n, 3..n - 5, 2_000_000..2_200_000, 9..9] {
            let pieces = store.read_range_pieces(t, o, range.clone()).await.unwrap();
            let want = &data[range.start as usize..range.end as usize];
            assert_eq!(pieces.concat(), want, "{range:?}");
            if want.len() > 2 * 1024 * 1024 {
                assert!(pieces.len() > 1, "{range:?}: {} piece(s)", pieces.len());
            }
            assert!(store.read_range(t, o, range.clone()).await.unwrap() == want);
        }
        let past = store
            .read_range_pieces(t, o, n - 1..n + 1)
            .await
            .unwrap_err();
        assert_eq!(past.kind(), ErrorKind::InvalidInput, "{past}");
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = store.read_range_pieces(t, o, 5..4).await.unwrap_err();
        assert_eq!(reversed.kind(), ErrorKind::InvalidInput, "{reversed}");
    }

    #[tokio::test]
    async fn staged_uploads_stay_hidden_until_close_and_vanish_on_abort() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_string_lossy().into_owned();
        // A hand-built fs operator with no atomic_write_dir: OpenDAL writes in place.
        let op = Operator::new(opendal::services::Fs::default().root(&root)).unwrap();
        let store = BlobStore::from_operator(op).unwrap();
        let (t, o) = (TenantId::new(), ObjectId::new());
        let staging = dir.path().join(STAGING_DIR);
        let staged_files = || std::fs::read_dir(&staging).map_or(0, |d| d.count());

        let mut w = store.writer(t, o).await.unwrap();
        w.write(vec![1; 1000]).await.unwrap();
        assert_eq!(
            store.size(t, o).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(w.close().await.unwrap(), 1000);
        assert_eq!(store.size(t, o).await.unwrap(), 1000);
        assert_eq!(staged_files(), 0);

        let aborted = ObjectId::new();
        let mut w = store.writer(t, aborted).await.unwrap();
        w.write(vec![2; 1000]).await.unwrap();
        assert_eq!(staged_files(), 1);
        w.abort().await.unwrap();
        assert_eq!(staged_files(), 0);
        assert_eq!(
            store.size(t, aborted).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(store.list(t).await.unwrap(), vec![o]);
    }
}
