//! The object store: tenant-scoped, encrypted objects addressed by logical path.
//!
//! Every object is one Cobblestone-256 message under the tenant's current data key, stored
//! as the blob `t/<tenant>/o/<object id>`, and indexed in the `objects` table (path, size,
//! SHA-256 of the plaintext, key and format version, content type, user metadata, times).
//! The Cobblestone context binds tenant, object id, key version and format version, so a blob
//! copied or moved anywhere else (another tenant, another object, another key version) fails
//! to decrypt with `Integrity`.
//!
//! **Writes** upload the blob under a fresh object id first and commit the index row after:
//! a crash in between leaves an orphan blob that [`ObjectStore::collect_garbage`] removes,
//! never a visible broken object. Overwriting a path keeps the old object readable until the
//! new one commits; the old blob is deleted after. Quotas are checked in the commit.
//!
//! Permissions: [`STORAGE_READ`] for get/stat/list, [`STORAGE_WRITE`] for put/copy,
//! [`STORAGE_DELETE`] for delete, in the object's tenant; garbage collection is for platform
//! administrators.

mod commit; // the index row and the quotas, committed under the tenant's lock
mod gc; // garbage collection of orphan blobs and abandoned uploads
mod index; // the `objects` row, its mapping to `ObjectInfo`, lookups by path and prefix
mod listing; // flat listings by prefix and one directory level at a time
mod reader; // header check and the pipelined `ObjectReader`
mod reencrypt; // moving a tenant's objects to its newest data key
#[cfg(test)]
mod tests;
mod verify; // the operator's integrity check of one tenant's objects
mod writer; // the pipelined `ObjectWriter` (streaming puts)

pub use gc::GcReport;
pub use listing::DirEntry;
pub use reader::{FetchedRange, ObjectReader};
pub use reencrypt::ReencryptProgress;
pub(crate) use verify::uploaded_at;
pub use writer::ObjectWriter;

use crate::blob::BlobStore;
use crate::cobblestone::{Cobblestone, Layout};
use crate::error::StorageError;
use crate::keyring::TenantKeyring;
use ate_core::keys::KeyProvider;
use ate_core::{
    Clock, CoreError, Db, ObjectId, Permission, Principal, SqlTenantStore, SystemClock, TenantId,
    TenantStatus, TenantStore, with_pool,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::ops::Range;
use std::sync::Arc;
use uuid::Uuid;

/// Read objects of a tenant.
pub const STORAGE_READ: Permission = Permission::from_static("storage:read");
/// Create and overwrite objects of a tenant.
pub const STORAGE_WRITE: Permission = Permission::from_static("storage:write");
/// Delete objects of a tenant.
pub const STORAGE_DELETE: Permission = Permission::from_static("storage:delete");

/// The object format this build writes (Cobblestone-256, context v1).
pub const FORMAT_VERSION: u8 = 1;
/// Longest logical path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// Largest user metadata, as JSON bytes.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
/// Chunks fetched per ranged read when streaming an object (1 MiB of plaintext).
const CHUNKS_PER_READ: u64 = 64;
/// Plaintext bytes encrypted per blocking task when putting from memory.
const PUT_PART: usize = 8 << 20;

/// Validates a logical path: 1 to 1024 bytes, `/`-separated segments that are not empty,
/// `.` or `..`; no leading `/`, no backslash, no NUL or other control characters.
pub fn validate_path(path: &str) -> Result<(), StorageError> {
    let bad = |reason: &str| {
        Err(StorageError::invalid(
            "object path",
            format!("{:?} {reason}", path.chars().take(80).collect::<String>()),
        ))
    };
    if path.is_empty() || path.len() > MAX_PATH_BYTES {
        return Err(StorageError::invalid(
            "object path",
            format!("must be 1 to {MAX_PATH_BYTES} bytes, got {}", path.len()),
        ));
    }
    if path.starts_with('/') {
        return bad("must not start with '/'");
    }
    if path.contains('\\') {
        return bad("must not contain a backslash");
    }
    if path.chars().any(char::is_control) {
        return bad("must not contain NUL or other control characters");
    }
    if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return bad("must not contain empty, '.' or '..' segments");
    }
    Ok(())
}

/// Options for a put.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PutOptions {
    /// The MIME type recorded with the object (default `application/octet-stream`).
    pub content_type: String,
    /// User metadata: a JSON object of at most 8 KiB.
    pub metadata: serde_json::Value,
}

impl Default for PutOptions {
    fn default() -> Self {
        PutOptions {
            content_type: "application/octet-stream".into(),
            metadata: serde_json::json!({}),
        }
    }
}

impl PutOptions {
    /// Sets the content type.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = content_type.into();
        self
    }

    /// Sets the user metadata.
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }

    fn validate(&self) -> Result<String, StorageError> {
        let ct = &self.content_type;
        if ct.is_empty() || ct.len() > 255 || !ct.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(StorageError::invalid(
                "content type",
                "must be 1 to 255 printable ASCII characters",
            ));
        }
        if !self.metadata.is_object() {
            return Err(StorageError::invalid(
                "object metadata",
                "must be a JSON object",
            ));
        }
        let text = self.metadata.to_string();
        if text.len() > MAX_METADATA_BYTES {
            return Err(StorageError::invalid(
                "object metadata",
                format!("is {} bytes; the limit is {MAX_METADATA_BYTES}", text.len()),
            ));
        }
        Ok(text)
    }
}

/// An object's index entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// The tenant.
    pub tenant: TenantId,
    /// The object id (changes when the path is overwritten).
    pub id: ObjectId,
    /// The logical path.
    pub path: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// SHA-256 of the plaintext.
    pub sha256: [u8; 32],
    /// The data-key version it is encrypted under.
    pub key_version: u32,
    /// The object format version.
    pub format_version: u8,
    /// MIME type.
    pub content_type: String,
    /// User metadata.
    pub metadata: serde_json::Value,
    /// When the path was first written.
    pub created_at: DateTime<Utc>,
    /// When the current content was committed.
    pub updated_at: DateTime<Utc>,
}

/// The Cobblestone context of an object: binds tenant, object id, key version and format.
fn object_context(tenant: TenantId, id: ObjectId, key_version: u32, format: u8) -> Vec<u8> {
    let mut ctx = b"ate.object.v1\0".to_vec();
    ctx.extend_from_slice(tenant.as_bytes());
    ctx.extend_from_slice(id.as_bytes());
    ctx.extend_from_slice(&key_version.to_be_bytes());
    ctx.push(format);
    ctx
}

/// A blocking encryption or decryption task that panicked or was cancelled.
fn task_failed(e: tokio::task::JoinError) -> StorageError {
    StorageError::Io(std::io::Error::other(format!(
        "an encryption task failed: {e}"
    )))
}

/// Encrypted objects of every tenant: a [`Db`] index over a [`BlobStore`].
#[derive(Debug, Clone)]
pub struct ObjectStore {
    db: Db,
    blobs: BlobStore,
    keyring: TenantKeyring,
    tenants: SqlTenantStore,
    cobblestone: Cobblestone,
    clock: Arc<dyn Clock>,
}

impl ObjectStore {
    /// An object store over `db` (running `ate-storage`'s migrations) and `blobs`, with data
    /// keys wrapped by `master`.
    pub async fn open(
        db: Db,
        blobs: BlobStore,
        master: Arc<dyn KeyProvider>,
    ) -> Result<Self, StorageError> {
        let keyring = TenantKeyring::open(db.clone(), master).await?;
        Ok(ObjectStore {
            tenants: SqlTenantStore::new(db.clone()),
            db,
            blobs,
            keyring,
            cobblestone: Cobblestone::default(),
            clock: Arc::new(SystemClock),
        })
    }

    /// Uses `clock` for object times (and the keyring's).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.keyring = self.keyring.with_clock(clock.clone());
        self.tenants = self.tenants.with_clock(clock.clone());
        self.clock = clock;
        self
    }

    /// Keeps unwrapped data keys for at most `ttl` ([`crate::key_cache`]; one second by
    /// default, zero turns the cache off): how long a key destroyed, or a tenant suspended,
    /// by another process may still be used here.
    pub fn with_key_cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.keyring = self.keyring.with_key_cache_ttl(ttl);
        self
    }

    /// The blob backend under this store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The keyring this store encrypts with.
    pub fn keyring(&self) -> &TenantKeyring {
        &self.keyring
    }

    /// Authorizes `actor` for `permission` in `tenant` and checks the tenant's state: writes
    /// need an active tenant; reads are refused for a suspended tenant's own principals.
    async fn authorize(
        &self,
        actor: &Principal,
        tenant: TenantId,
        permission: &Permission,
        write: bool,
    ) -> Result<(), StorageError> {
        actor.require(tenant, permission)?;
        // An active tenant is remembered for the key cache's TTL (see
        // `TenantKeyring::require_active`), so this is usually no query at all.
        match self.keyring.require_active(tenant).await {
            Ok(()) => Ok(()),
            Err(e) if write || !actor.is_platform_admin() => Err(e),
            // A platform administrator may still read a suspended tenant's objects.
            Err(_) => {
                let t = self.tenants.get(actor, tenant).await?;
                if t.status == TenantStatus::Deleted {
                    return Err(CoreError::not_found("tenant", tenant).into());
                }
                Ok(())
            }
        }
    }

    /// Stores `bytes` at `path`, replacing any object there once the new one is committed.
    pub async fn put(
        &self,
        actor: &Principal,
        tenant: TenantId,
        path: &str,
        bytes: Vec<u8>,
        options: PutOptions,
    ) -> Result<ObjectInfo, StorageError> {
        let mut writer = self.writer(actor, tenant, path, options).await?;
        let mut rest = Bytes::from(bytes);
        while !rest.is_empty() {
            let part = rest.split_to(rest.len().min(PUT_PART));
            writer.write_bytes(part).await?;
        }
        writer.commit().await
    }

    /// Starts a streaming put: write the content with [`ObjectWriter::write`], then
    /// [`ObjectWriter::commit`]. Memory stays bounded by the largest single write.
    pub async fn writer(
        &self,
        actor: &Principal,
        tenant: TenantId,
        path: &str,
        options: PutOptions,
    ) -> Result<ObjectWriter, StorageError> {
        validate_path(path)?;
        self.authorize(actor, tenant, &STORAGE_WRITE, true).await?;
        self.start_writer(tenant, path, options).await
    }

    /// The object's index entry.
    pub async fn stat(
        &self,
        actor: &Principal,
        tenant: TenantId,
        path: &str,
    ) -> Result<ObjectInfo, StorageError> {
        validate_path(path)?;
        self.authorize(actor, tenant, &STORAGE_READ, false).await?;
        self.row(tenant, path).await
    }

    /// Opens the object for streaming reads.
    pub async fn get(
        &self,
        actor: &Principal,
        tenant: TenantId,
        path: &str,
    ) -> Result<ObjectReader, StorageError> {
        let info = self.stat(actor, tenant, path).await?;
        self.reader(info).await
    }

    /// The plaintext bytes in `range`, decrypting only the chunks it touches (fetched with
    /// one ranged read). Empty ranges return nothing; reversed or past-the-end ranges are
    /// `InvalidInput`.
    pub async fn get_range(
        &self,
        actor: &Principal,
        tenant: TenantId,
        path: &str,
        range: Range<u64>,
    ) -> Result<Vec<u8>, StorageError> {
        self.fetch_range(actor, tenant, path, range)
            .await?
            .decrypt()
            .await
    }

    /// The I/O half of [`get_range`](Self::get_range): checks access and the range, fetches
    /// the header and the covering chunks' ciphertext, and verifies the header. What is left
    /// is CPU work ([`FetchedRange::open_into`]), into a buffer of [`FetchedRange::len`]
    /// bytes the caller allocates, e.g. a Python `bytes` object (no intermediate copy).
    pub async fn fetch_range(
        &self,
        actor: &Principal,
        tenant: TenantId,
        path: &str,
        range: Range<u64>,
    ) -> Result<FetchedRange, StorageError> {
        let info = self.stat(actor, tenant, path).await?;
        self.fetch_info_range(&info, range).await
    }

    /// [`fetch_range`](Self::fetch_range) of the very object `info` describes (from
    /// [`stat`](Self::stat), a listing or a put), without looking its path up again: every
    /// read of a file held open sees the version that was opened, never a mix of two.
    /// `Conflict` once that version has been replaced or deleted (its bytes are gone).
    pub async fn fetch_range_of(
        &self,
        actor: &Principal,
        info: &ObjectInfo,
        range: Range<u64>,
    ) -> Result<FetchedRange, StorageError> {
        self.authorize(actor, info.tenant, &STORAGE_READ, false)
            .await?;
        self.fetch_info_range(info, range).await.map_err(|e| {
            if ate_core::Classify::kind(&e) == ate_core::ErrorKind::NotFound {
                StorageError::Core(CoreError::Conflict(format!(
                    "object {:?} changed since it was opened: version {} is gone",
                    info.path, info.id
                )))
            } else {
                e
            }
        })
    }

    async fn fetch_info_range(
        &self,
        info: &ObjectInfo,
        range: Range<u64>,
    ) -> Result<FetchedRange, StorageError> {
        let layout = Layout::for_plaintext(info.size)?;
        let Some((first, last)) = layout.chunks_for(&range)? else {
            return Ok(FetchedRange::empty(self.cobblestone));
        };
        let (keys, layout, ciphertext) = self
            .open_message(info, Some(layout.span(first, last)))
            .await?;
        Ok(FetchedRange::new(
            self.cobblestone,
            keys,
            layout,
            (first, last),
            ciphertext,
            range,
        ))
    }

    /// Deletes the object at `path`: the index row first (so it disappears at once), then
    /// the blob.
    pub async fn delete(
        &self,
        actor: &Principal,
        tenant: TenantId,
        path: &str,
    ) -> Result<(), StorageError> {
        validate_path(path)?;
        self.authorize(actor, tenant, &STORAGE_DELETE, true).await?;
        let id: Option<Uuid> = with_pool!(self.db, |pool| {
            sqlx::query_scalar(
                "DELETE FROM objects WHERE tenant_id = $1 AND logical_path = $2 RETURNING id",
            )
            .bind(tenant.as_uuid())
            .bind(path)
            .fetch_optional(pool)
            .await
            .map_err(CoreError::from)?
        });
        let id = id.ok_or_else(|| StorageError::from(CoreError::not_found("object", path)))?;
        let _ = self.blobs.delete(tenant, ObjectId::from_uuid(id)?).await;
        Ok(())
    }

    /// Copies the object at `from` to `to` within the tenant (re-encrypted under a new object
    /// id, since the context binds it).
    pub async fn copy(
        &self,
        actor: &Principal,
        tenant: TenantId,
        from: &str,
        to: &str,
    ) -> Result<ObjectInfo, StorageError> {
        validate_path(to)?;
        let mut reader = self.get(actor, tenant, from).await?;
        let options = PutOptions::default()
            .content_type(reader.info().content_type.clone())
            .metadata(reader.info().metadata.clone());
        let mut writer = self.writer(actor, tenant, to, options).await?;
        while let Some(chunk) = reader.next_chunk().await? {
            writer.write_owned(chunk).await?;
        }
        writer.commit().await
    }
}
