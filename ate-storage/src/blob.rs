//! Blob backends over Apache OpenDAL, chosen by URL.
//!
//! | URL | backend |
//! | --- | --- |
//! | `memory://` | process memory (tests) |
//! | `fs:///absolute/path` | a local directory (created on first write) |
//! | `s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1` | any S3-compatible store (feature `s3`) |
//!
//! Blob names are derived from tenant and object ids only (`t/<tenant>/o/<object>`), never
//! from user-supplied paths, so no logical path can escape its tenant's prefix.
//!
//! S3 credentials come from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and
//! `AWS_SESSION_TOKEN`), read once when the store is opened, or from
//! [`BlobStore::open_s3_with_credentials`]. ATE never reads AWS profile files or queries the
//! EC2 instance-metadata service on its own: a host that wants instance credentials adds
//! `ec2_metadata=true` to the URL.

use crate::error::StorageError;
use ate_core::{ErrorKind, ObjectId, TenantId};
use opendal::Operator;

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
}

/// Static S3 credentials.
#[derive(Clone)]
pub struct S3Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: zeroize::Zeroizing<String>,
    /// Session token, for temporary credentials.
    pub session_token: Option<zeroize::Zeroizing<String>>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl S3Credentials {
    /// Reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`; `None` if
    /// the first two are not both set.
    pub fn from_env() -> Option<Self> {
        let id = std::env::var("AWS_ACCESS_KEY_ID").ok()?;
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok()?;
        Some(S3Credentials {
            access_key_id: id,
            secret_access_key: zeroize::Zeroizing::new(secret),
            session_token: std::env::var("AWS_SESSION_TOKEN")
                .ok()
                .map(zeroize::Zeroizing::new),
        })
    }
}

/// Encrypted blobs of every tenant, in one backend.
#[derive(Debug, Clone)]
pub struct BlobStore {
    op: Operator,
    backend: BlobBackend,
    /// The directory of an `fs` store, for the directory syncs that make uploads durable.
    fs_root: Option<std::path::PathBuf>,
}

/// Where an `fs` store keeps uploads in progress (inside its root).
const STAGING_DIR: &str = ".ate-staging";

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

fn invalid_url(reason: impl Into<String>) -> StorageError {
    StorageError::invalid("blob storage URL", reason)
}

impl BlobStore {
    /// Opens the backend named by `url` (see the module docs). No request is made yet.
    pub fn open(url: &str) -> Result<Self, StorageError> {
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
        match scheme {
            "memory" => Self::memory(),
            "fs" => Self::fs(url),
            "s3" => Self::s3(url, S3Credentials::from_env()),
            _ => Err(invalid_url(format!(
                "unknown scheme {:?}; expected memory://, fs:///path or s3://bucket/prefix",
                scheme.chars().take(32).collect::<String>()
            ))),
        }
    }

    /// Opens an `s3://` URL with explicit credentials.
    pub fn open_s3_with_credentials(
        url: &str,
        credentials: S3Credentials,
    ) -> Result<Self, StorageError> {
        if !url.starts_with("s3://") {
            return Err(invalid_url("expected an s3:// URL"));
        }
        Self::s3(url, Some(credentials))
    }

    fn memory() -> Result<Self, StorageError> {
        let op = Operator::new(opendal::services::Memory::default())
            .map_err(|e| backend_error("memory backend", e))?;
        Ok(BlobStore {
            op,
            backend: BlobBackend::Memory,
            fs_root: None,
        })
    }

    fn fs(url: &str) -> Result<Self, StorageError> {
        let parsed = url::Url::parse(url).map_err(|e| invalid_url(e.to_string()))?;
        if parsed.host_str().is_some_and(|h| !h.is_empty()) || !parsed.path().starts_with('/') {
            return Err(invalid_url(
                "fs URLs name an absolute directory: fs:///absolute/path",
            ));
        }
        let path = percent_decode(parsed.path())?;
        // Uploads go to a staging directory and are renamed into place on close, so a
        // half-written blob is never visible and an upload can be aborted.
        let staging = format!("{}/{STAGING_DIR}", path.trim_end_matches('/'));
        let op = Operator::new(
            opendal::services::Fs::default()
                .root(&path)
                .atomic_write_dir(&staging),
        )
        .map_err(|e| backend_error("fs backend", e))?;
        Ok(BlobStore {
            op,
            backend: BlobBackend::Fs,
            fs_root: Some(std::path::PathBuf::from(path)),
        })
    }

    #[cfg(feature = "s3")]
    fn s3(url: &str, credentials: Option<S3Credentials>) -> Result<Self, StorageError> {
        let parsed = url::Url::parse(url).map_err(|e| invalid_url(e.to_string()))?;
        let bucket = parsed
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| invalid_url("s3 URLs name a bucket: s3://bucket/prefix"))?;
        let mut builder = opendal::services::S3::default()
            .bucket(bucket)
            .root(&percent_decode(parsed.path())?)
            .region("us-east-1")
            .disable_config_load();
        let mut ec2_metadata = false;
        for (key, value) in parsed.query_pairs() {
            match &*key {
                "endpoint" => {
                    url::Url::parse(&value)
                        .map_err(|e| invalid_url(format!("endpoint {value:?}: {e}")))?;
                    builder = builder.endpoint(&value);
                }
                "region" => builder = builder.region(&value),
                "ec2_metadata" => ec2_metadata = value == "true",
                other => {
                    return Err(invalid_url(format!(
                        "unknown s3 parameter {other:?} (known: endpoint, region, ec2_metadata)"
                    )));
                }
            }
        }
        if !ec2_metadata {
            builder = builder.disable_ec2_metadata();
        }
        if let Some(c) = credentials {
            builder = builder
                .access_key_id(&c.access_key_id)
                .secret_access_key(&c.secret_access_key);
            if let Some(token) = &c.session_token {
                builder = builder.session_token(token);
            }
        }
        // The HTTP client is attached to this operator only; ATE installs no process-wide
        // default transport.
        let transport = opendal::HttpTransporter::new(
            opendal_http_transport_reqwest::ReqwestTransport::default(),
        );
        let op = Operator::new(builder)
            .map_err(|e| backend_error("s3 backend", e))?
            .with_context(opendal::OperationContext::new().with_http_transport(transport));
        Ok(BlobStore {
            op,
            backend: BlobBackend::S3,
            fs_root: None,
        })
    }

    #[cfg(not(feature = "s3"))]
    fn s3(_url: &str, _credentials: Option<S3Credentials>) -> Result<Self, StorageError> {
        Err(StorageError::Core(ate_core::CoreError::Unsupported(
            "this build of ate-storage has no S3 support (enable the `s3` feature)".into(),
        )))
    }

    /// The backend kind.
    pub fn backend(&self) -> BlobBackend {
        self.backend
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
        let name = Self::blob_name(tenant, object);
        let sync_dirs = match &self.fs_root {
            Some(root) => {
                let dir = root.join(format!("t/{tenant}/o"));
                let new_dir = !tokio::fs::try_exists(&dir).await.unwrap_or(false);
                let mut dirs = vec![dir];
                if new_dir {
                    dirs.push(root.join(format!("t/{tenant}")));
                    dirs.push(root.join("t"));
                    dirs.push(root.clone());
                }
                dirs
            }
            None => Vec::new(),
        };
        let writer = self
            .op
            .writer(&name)
            .await
            .map_err(|e| backend_error("starting a blob upload", e))?;
        Ok(BlobWriter {
            writer,
            written: 0,
            sync_dirs,
        })
    }

    /// Reads `range` of the blob of `object` (a ranged request on every backend).
    pub async fn read_range(
        &self,
        tenant: TenantId,
        object: ObjectId,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u8>, StorageError> {
        if range.start > range.end {
            return Err(StorageError::invalid("byte range", "reversed"));
        }
        if range.start == range.end {
            return Ok(Vec::new());
        }
        let name = Self::blob_name(tenant, object);
        let buf = self
            .op
            .read_with(&name)
            .range(range.clone())
            .await
            .map_err(|e| backend_error("reading a blob", e))?;
        let bytes = buf.to_vec();
        if bytes.len() as u64 != range.end - range.start {
            return Err(StorageError::Integrity(format!(
                "blob {name} is shorter than expected ({} of {} bytes from offset {})",
                bytes.len(),
                range.end - range.start,
                range.start
            )));
        }
        Ok(bytes)
    }

    /// The size of the blob of `object`.
    pub async fn size(&self, tenant: TenantId, object: ObjectId) -> Result<u64, StorageError> {
        let name = Self::blob_name(tenant, object);
        let meta = self
            .op
            .stat(&name)
            .await
            .map_err(|e| backend_error("reading blob metadata", e))?;
        Ok(meta.content_length())
    }

    /// Deletes the blob of `object`; deleting a missing blob succeeds.
    pub async fn delete(&self, tenant: TenantId, object: ObjectId) -> Result<(), StorageError> {
        let name = Self::blob_name(tenant, object);
        self.op
            .delete(&name)
            .await
            .map_err(|e| backend_error("deleting a blob", e))
    }

    /// Deletes the leftovers of `fs` uploads that never completed (a crash between write and
    /// rename) whose object id was minted before `cutoff`. Returns (deleted, kept). Other
    /// backends have no staging area: an S3 bucket should carry a lifecycle rule that aborts
    /// incomplete multipart uploads (see the crate docs).
    pub(crate) async fn collect_staging(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> Result<(u64, u64), StorageError> {
        if self.backend != BlobBackend::Fs {
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
                .and_then(crate::objects::minted_at)
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
        let prefix = format!("t/{tenant}/o/");
        let entries = match self.op.list_with(&prefix).recursive(true).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(backend_error("listing blobs", e)),
        };
        let mut ids: Vec<ObjectId> = entries
            .iter()
            .filter_map(|entry| entry.path().strip_prefix(&prefix))
            .filter_map(|rest| rest.parse().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

fn percent_decode(path: &str) -> Result<String, StorageError> {
    percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map(|p| p.into_owned())
        .map_err(|_| invalid_url("path is not UTF-8 after percent-decoding"))
}

/// A streaming blob upload. Dropping it without [`close`](BlobWriter::close) leaves no blob
/// under the name (call [`abort`](BlobWriter::abort) to also release partial uploads now).
pub struct BlobWriter {
    writer: opendal::Writer,
    written: u64,
    /// Directories to sync after the rename (fs only).
    sync_dirs: Vec<std::path::PathBuf>,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl BlobWriter {
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

    /// Abandons the upload.
    pub async fn abort(mut self) -> Result<(), StorageError> {
        self.writer
            .abort()
            .await
            .map_err(|e| backend_error("aborting a blob upload", e))
    }
}
