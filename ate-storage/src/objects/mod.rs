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

use crate::blob::{BlobStore, BlobWriter, minted_at};
use crate::cobblestone::{Cobblestone, Encryptor, Layout, MessageKeys};
use crate::error::StorageError;
use crate::keyring::TenantKeyring;
use ate_core::db::{from_micros, to_micros};
use ate_core::keys::KeyProvider;
use ate_core::{
    Clock, CoreError, CoreTx, Cursor, Db, ObjectId, Page, Permission, Principal, SqlTenantStore,
    SystemClock, TenantId, TenantStatus, TenantStore, with_pool, with_write_tx,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::future::Future;
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

/// Progress of [`ObjectStore::reencrypt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReencryptProgress {
    /// Objects rewritten under the current key in this call.
    pub reencrypted: u64,
    /// Objects skipped because they changed meanwhile (they were rewritten anyway).
    pub skipped: u64,
    /// Objects still under an older key version.
    pub remaining: u64,
    /// The key version everything is being moved to.
    pub key_version: u32,
}

/// What a garbage-collection pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Blobs with no index row, older than the grace period, that were deleted.
    pub deleted: u64,
    /// Orphan blobs younger than the grace period (possibly uploads in progress), kept.
    pub kept_young: u64,
    /// Leftovers of interrupted `fs` uploads (any tenant), older than the grace period,
    /// that were deleted.
    pub staging_deleted: u64,
}

#[derive(Debug, sqlx::FromRow)]
struct ObjectRow {
    id: Uuid,
    tenant_id: Uuid,
    logical_path: String,
    size: i64,
    sha256: Vec<u8>,
    key_version: i64,
    format_version: i64,
    content_type: String,
    user_metadata: String,
    created_at: i64,
    updated_at: i64,
}

macro_rules! object_columns {
    () => {
        "id, tenant_id, logical_path, size, sha256, key_version, format_version, content_type, \
         user_metadata, created_at, updated_at"
    };
}
const BY_PATH: &str = concat!(
    "SELECT ",
    object_columns!(),
    " FROM objects WHERE tenant_id = $1 AND logical_path = $2"
);
/// `$2` prefix (bytewise), `$3` cursor (exclusive), `$4` limit.
const LIST: &str = concat!(
    "SELECT ",
    object_columns!(),
    " FROM objects WHERE tenant_id = $1 AND substr(logical_path, 1, length($2)) = $2 \
     AND ($3 IS NULL OR logical_path > $3) ORDER BY logical_path LIMIT $4"
);
const CURSOR_KIND: &str = "objects";

impl ObjectRow {
    fn info(self) -> Result<ObjectInfo, StorageError> {
        let corrupt = |what: &str| {
            StorageError::Integrity(format!("object index row has an unreadable {what}"))
        };
        Ok(ObjectInfo {
            tenant: TenantId::from_uuid(self.tenant_id)?,
            id: ObjectId::from_uuid(self.id)?,
            path: self.logical_path,
            size: u64::try_from(self.size).map_err(|_| corrupt("size"))?,
            sha256: self
                .sha256
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("checksum"))?,
            key_version: u32::try_from(self.key_version).map_err(|_| corrupt("key version"))?,
            format_version: u8::try_from(self.format_version)
                .map_err(|_| corrupt("format version"))?,
            content_type: self.content_type,
            metadata: serde_json::from_str(&self.user_metadata).map_err(|_| corrupt("metadata"))?,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
        })
    }
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
        if write || !actor.is_platform_admin() {
            self.tenants.require_active(tenant).await?;
        } else {
            let t = self.tenants.get(actor, tenant).await?;
            if t.status == TenantStatus::Deleted {
                return Err(CoreError::not_found("tenant", tenant).into());
            }
        }
        Ok(())
    }

    async fn row(&self, tenant: TenantId, path: &str) -> Result<ObjectInfo, StorageError> {
        let row: Option<ObjectRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(BY_PATH)
                .bind(tenant.as_uuid())
                .bind(path)
                .fetch_optional(pool)
                .await
                .map_err(CoreError::from)?
        });
        row.ok_or_else(|| CoreError::not_found("object", path).into())
            .and_then(ObjectRow::info)
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

    /// A writer for `path`, without authorization (callers have checked it).
    async fn start_writer(
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
            tenant,
            id,
            path: path.to_owned(),
            key_version: key.version,
            content_type: options.content_type,
            metadata,
            state: Some((encryptor, Sha256::new())),
            blob: Some(blob),
            pending: Vec::new(),
            size: 0,
            replaces: None,
        })
    }

    /// Commits an uploaded blob as the object at `path` (quota-checked), then removes the
    /// blob it replaced.
    async fn commit(&self, w: &ObjectWriter, sha256: [u8; 32]) -> Result<ObjectInfo, StorageError> {
        let now = self.clock.now();
        let tenant = w.tenant;
        let replaced: Result<(Option<Uuid>, DateTime<Utc>), CoreError> = async {
            Ok(with_write_tx!(self.db, |tx| {
                let settings = tx.lock_tenant(tenant).await?.settings;
                let existing: Option<(Uuid, i64, i64)> = sqlx::query_as(
                    "SELECT id, size, created_at FROM objects WHERE tenant_id = $1 AND logical_path = $2",
                )
                .bind(tenant.as_uuid())
                .bind(&w.path)
                .fetch_optional(&mut *tx)
                .await?;
                let (count, bytes): (i64, i64) = sqlx::query_as(
                    "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM objects WHERE tenant_id = $1",
                )
                .bind(tenant.as_uuid())
                .fetch_one(&mut *tx)
                .await?;
                if let Some(expected) = w.replaces
                    && existing.map(|(id, _, _)| id) != Some(expected.as_uuid())
                {
                    return Err(CoreError::Conflict(format!(
                        "object {} changed while it was being re-encrypted",
                        w.path
                    )));
                }
                let (new_count, new_bytes) = match existing {
                    Some((_, old_size, _)) => (count, bytes - old_size + w.size as i64),
                    None => (count + 1, bytes + w.size as i64),
                };
                if let Some(max) = settings.quotas.max_objects
                    && new_count as u64 > max
                {
                    return Err(CoreError::QuotaExceeded(format!(
                        "tenant {tenant} may store at most {max} objects"
                    )));
                }
                if let Some(max) = settings.quotas.max_storage_bytes
                    && new_bytes as u64 > max
                {
                    return Err(CoreError::QuotaExceeded(format!(
                        "tenant {tenant} may store at most {max} bytes; this put would make {new_bytes}"
                    )));
                }
                let created_at = existing.map_or(now, |(_, _, c)| from_micros(c).unwrap_or(now));
                if let Some((old, _, _)) = existing {
                    sqlx::query("DELETE FROM objects WHERE id = $1")
                        .bind(old)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(concat!(
                    "INSERT INTO objects (",
                    object_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ))
                .bind(w.id.as_uuid())
                .bind(tenant.as_uuid())
                .bind(&w.path)
                .bind(w.size as i64)
                .bind(&sha256[..])
                .bind(i64::from(w.key_version))
                .bind(i64::from(FORMAT_VERSION))
                .bind(&w.content_type)
                .bind(&w.metadata)
                .bind(to_micros(created_at))
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await?;
                (existing.map(|(old, _, _)| old), created_at)
            }))
        }
        .await;
        let (old, created_at) = replaced?;
        if let Some(old) = old.and_then(|u| ObjectId::from_uuid(u).ok()) {
            // Best effort: if this fails the old blob is an orphan for garbage collection.
            let _ = self.blobs.delete(tenant, old).await;
        }
        Ok(ObjectInfo {
            tenant,
            id: w.id,
            path: w.path.clone(),
            size: w.size,
            sha256,
            key_version: w.key_version,
            format_version: FORMAT_VERSION,
            content_type: w.content_type.clone(),
            metadata: serde_json::from_str(&w.metadata).unwrap_or_default(),
            created_at,
            updated_at: now,
        })
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

    /// Fetches the object's key and header and checks the header (key commitment), reading
    /// `span` of the blob at the same time.
    async fn open_message(
        &self,
        info: &ObjectInfo,
        span: Option<Range<u64>>,
    ) -> Result<(MessageKeys, Layout, Vec<u8>), StorageError> {
        let layout = Layout::for_plaintext(info.size)?;
        let key = self.keyring.decryption_key(info.tenant, info.key_version);
        let header = self.blobs.read_range(
            info.tenant,
            info.id,
            0..crate::cobblestone::HEADER_LEN as u64,
        );
        let body = async {
            match span {
                Some(span) => self.blobs.read_range(info.tenant, info.id, span).await,
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

    async fn reader(&self, info: ObjectInfo) -> Result<ObjectReader, StorageError> {
        let layout = Layout::for_plaintext(info.size)?;
        let first_last = (CHUNKS_PER_READ - 1).min(layout.chunks - 1);
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
            prefetch: Some((0, Prefetch::Ready(first_piece))),
            failed: None,
        })
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
        let info = self.stat(actor, tenant, path).await?;
        let layout = Layout::for_plaintext(info.size)?;
        let Some((first, last)) = layout.chunks_for(&range)? else {
            return Ok(Vec::new());
        };
        let (keys, layout, ciphertext) = self
            .open_message(&info, Some(layout.span(first, last)))
            .await?;
        let plain = if last - first < CHUNKS_PER_READ {
            self.cobblestone
                .open_span(&keys, &layout, first, last, &ciphertext)?
        } else {
            let cobblestone = self.cobblestone;
            tokio::task::spawn_blocking(move || {
                cobblestone.open_span(&keys, &layout, first, last, &ciphertext)
            })
            .await
            .map_err(task_failed)??
        };
        let skip = (range.start - first * crate::cobblestone::CHUNK_LEN as u64) as usize;
        Ok(plain[skip..skip + (range.end - range.start) as usize].to_vec())
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

    /// Lists objects whose path starts with `prefix`, in bytewise path order.
    pub async fn list(
        &self,
        actor: &Principal,
        tenant: TenantId,
        prefix: &str,
        limit: Option<u32>,
        cursor: Option<Cursor>,
    ) -> Result<Page<ObjectInfo>, StorageError> {
        if prefix.len() > MAX_PATH_BYTES || prefix.contains('\0') {
            return Err(StorageError::invalid(
                "list prefix",
                "must be at most 1024 bytes without NUL",
            ));
        }
        let limit = match limit {
            None => ate_core::page::DEFAULT_PAGE_SIZE,
            Some(n) if (1..=ate_core::page::MAX_PAGE_SIZE).contains(&n) => n,
            Some(n) => {
                return Err(StorageError::invalid(
                    "page size",
                    format!("must be 1 to 1000, got {n}"),
                ));
            }
        };
        let after = cursor.map(|c| c.decode(CURSOR_KIND)).transpose()?;
        self.authorize(actor, tenant, &STORAGE_READ, false).await?;
        let rows: Vec<ObjectRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(LIST)
                .bind(tenant.as_uuid())
                .bind(prefix)
                .bind(after.clone())
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await
                .map_err(CoreError::from)?
        });
        let more = rows.len() > limit as usize;
        let items = rows
            .into_iter()
            .take(limit as usize)
            .map(ObjectRow::info)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = match (more, items.last()) {
            (true, Some(last)) => Some(Cursor::encode(CURSOR_KIND, &last.path)),
            _ => None,
        };
        Ok(Page { items, next_cursor })
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

    /// Re-encrypts up to `batch` of the tenant's objects that are still under an older key
    /// version with its current key, and reports what is left. Resumable: call it again
    /// until `remaining` is 0; an interrupted call loses nothing, because each object is
    /// rewritten under a new id and swapped in only if it did not change meanwhile. Needs
    /// [`KEY_ROTATE`](crate::keyring::KEY_ROTATE).
    pub async fn reencrypt(
        &self,
        actor: &Principal,
        tenant: TenantId,
        batch: u32,
    ) -> Result<ReencryptProgress, StorageError> {
        actor.require(tenant, &crate::keyring::KEY_ROTATE)?;
        if batch == 0 || batch > 10_000 {
            return Err(StorageError::invalid("batch size", "must be 1 to 10000"));
        }
        self.tenants.require_active(tenant).await?;
        let current = self.keyring.encryption_key(tenant).await?.version;
        let outdated = |limit: i64| async move {
            let rows: Vec<ObjectRow> = with_pool!(self.db, |pool| {
                sqlx::query_as(concat!(
                    "SELECT ",
                    object_columns!(),
                    " FROM objects WHERE tenant_id = $1 AND key_version < $2 ORDER BY logical_path LIMIT $3"
                ))
                .bind(tenant.as_uuid())
                .bind(i64::from(current))
                .bind(limit)
                .fetch_all(pool)
                .await
                .map_err(CoreError::from)?
            });
            rows.into_iter()
                .map(ObjectRow::info)
                .collect::<Result<Vec<_>, StorageError>>()
        };
        let mut progress = ReencryptProgress {
            reencrypted: 0,
            skipped: 0,
            remaining: 0,
            key_version: current,
        };
        for info in outdated(i64::from(batch)).await? {
            let mut reader = self.reader(info.clone()).await?;
            let options = PutOptions::default()
                .content_type(info.content_type.clone())
                .metadata(info.metadata.clone());
            let mut writer = self.start_writer(tenant, &info.path, options).await?;
            writer.replaces = Some(info.id);
            while let Some(chunk) = reader.next_chunk().await? {
                writer.write_owned(chunk).await?;
            }
            match writer.commit().await {
                Ok(_) => progress.reencrypted += 1,
                Err(e) if ate_core::Classify::kind(&e) == ate_core::ErrorKind::Conflict => {
                    progress.skipped += 1
                }
                Err(e) => return Err(e),
            }
        }
        let count: i64 = with_pool!(self.db, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM objects WHERE tenant_id = $1 AND key_version < $2",
            )
            .bind(tenant.as_uuid())
            .bind(i64::from(current))
            .fetch_one(pool)
            .await
            .map_err(CoreError::from)?
        });
        progress.remaining = count as u64;
        Ok(progress)
    }

    /// Deletes blobs of `tenant` that have no index row and are older than `grace` (judged by
    /// the time inside their UUIDv7 id, so uploads in progress are left alone). On `fs` it
    /// also deletes staged files of uploads that never completed and are older than `grace`
    /// (a crash between write and rename), whatever their tenant.
    ///
    /// For a tenant that no longer exists (purged by
    /// [`TenantStore::purge_due`], which drops its keys and
    /// index rows with it), every remaining blob is garbage whatever its age: run this for
    /// each purged id to reclaim the space.
    pub async fn collect_garbage(
        &self,
        actor: &Principal,
        tenant: TenantId,
        grace: chrono::TimeDelta,
    ) -> Result<GcReport, StorageError> {
        actor.require_platform_admin("collecting storage garbage")?;
        let blobs = self.blobs.list(tenant).await?;
        let indexed: Vec<Uuid> = with_pool!(self.db, |pool| {
            sqlx::query_scalar("SELECT id FROM objects WHERE tenant_id = $1")
                .bind(tenant.as_uuid())
                .fetch_all(pool)
                .await
                .map_err(CoreError::from)?
        });
        let indexed: std::collections::HashSet<Uuid> = indexed.into_iter().collect();
        let exists = self.tenants.status(tenant).await?.is_some();
        // A purged tenant can have no upload in progress worth keeping: its keys are gone.
        let cutoff = if exists {
            self.clock.now() - grace
        } else {
            DateTime::<Utc>::MAX_UTC
        };
        let mut report = GcReport {
            deleted: 0,
            kept_young: 0,
            staging_deleted: self.blobs.collect_staging(cutoff).await?.0,
        };
        for id in blobs {
            if indexed.contains(&id.as_uuid()) {
                continue;
            }
            match minted_at(id) {
                Some(born) if born > cutoff => report.kept_young += 1,
                _ => {
                    self.blobs.delete(tenant, id).await?;
                    report.deleted += 1;
                }
            }
        }
        Ok(report)
    }
}

/// A streaming put in progress. Nothing is visible at the path until
/// [`commit`](ObjectWriter::commit) succeeds; [`abort`](ObjectWriter::abort) or dropping the
/// writer leaves the old object (if any) in place and releases the partial upload.
///
/// Each write is pipelined: the part is hashed (SHA-256) and encrypted on two blocking
/// threads at once while the previous part's ciphertext is uploaded, so a put keeps both
/// cores and the backend busy. Memory stays bounded by about two parts.
pub struct ObjectWriter {
    store: ObjectStore,
    tenant: TenantId,
    id: ObjectId,
    path: String,
    key_version: u32,
    content_type: String,
    metadata: String,
    state: Option<(Encryptor, Sha256)>,
    blob: Option<BlobWriter>,
    /// Ciphertext of the previous part, uploaded while the next part is encrypted.
    pending: Vec<u8>,
    size: u64,
    /// Commit only if the path still holds this object (re-encryption's compare-and-swap).
    replaces: Option<ObjectId>,
}

/// Parts up to this size are hashed and encrypted on the calling task: handing them to
/// blocking threads would cost more than it saves.
const INLINE_PART: usize = 64 * 1024;

impl std::fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("tenant", &self.tenant)
            .field("path", &self.path)
            .field("written", &self.size)
            .finish_non_exhaustive()
    }
}

fn task_failed(e: tokio::task::JoinError) -> StorageError {
    StorageError::Io(std::io::Error::other(format!(
        "an encryption task failed: {e}"
    )))
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
        self.size += n;
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
            let _ = self.store.blobs.delete(self.tenant, self.id).await;
            return Err(e);
        }
        let sha256: [u8; 32] = hasher.finalize().into();
        match self.store.commit(&self, sha256).await {
            Ok(info) => Ok(info),
            Err(e) => {
                // Nothing becomes visible and nothing is counted: remove the new blob.
                let _ = self.store.blobs.delete(self.tenant, self.id).await;
                Err(e)
            }
        }
    }

    /// Abandons the put and releases the partial upload now.
    pub async fn abort(mut self) -> Result<(), StorageError> {
        if let Some(blob) = self.blob.take() {
            let _ = blob.abort().await;
        }
        let _ = self.store.blobs.delete(self.tenant, self.id).await;
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
        if let Some(e) = &self.failed {
            return Err(crate::error::replay(e));
        }
        if self.next_chunk >= self.layout.chunks {
            return Ok(None);
        }
        let first = self.next_chunk;
        let last = (first + CHUNKS_PER_READ - 1).min(self.layout.chunks - 1);
        let prefetched = match self.prefetch.take() {
            Some((start, fetch)) if start == first => Some(fetch),
            Some((_, fetch)) => {
                fetch.cancel();
                None
            }
            None => None,
        };
        let result = async {
            let ciphertext = match prefetched {
                Some(Prefetch::Ready(bytes)) => bytes,
                Some(Prefetch::Running(fetch)) => fetch.await.map_err(task_failed)??,
                None => self.fetch(first, last).await?,
            };
            // Fetch the next piece while this one is decrypted.
            if last + 1 < self.layout.chunks {
                let next_last = (last + CHUNKS_PER_READ).min(self.layout.chunks - 1);
                let fetch = tokio::spawn(self.fetch(last + 1, next_last));
                self.prefetch = Some((last + 1, Prefetch::Running(fetch)));
            }
            let (cobblestone, keys, layout) = (self.cobblestone, self.keys.clone(), self.layout);
            tokio::task::spawn_blocking(move || {
                cobblestone.open_span(&keys, &layout, first, last, &ciphertext)
            })
            .await
            .map_err(task_failed)?
        }
        .await;
        match result {
            Ok(plain) => {
                if let Some(hasher) = &mut self.hasher {
                    hasher.update(&plain);
                }
                self.next_chunk = last + 1;
                Ok(Some(plain))
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
    /// everything read through this reader with the one recorded at put time.
    pub async fn read_to_end(self, verify_checksum: bool) -> Result<Vec<u8>, StorageError> {
        let mut this = if verify_checksum {
            self.with_checksum()
        } else {
            self
        };
        let mut out = Vec::with_capacity(this.info.size as usize);
        while let Some(chunk) = this.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        if verify_checksum {
            this.verify_checksum()?;
        }
        Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use ate_core::keys::{LocalKeyProvider, SecretKey};
    use ate_core::{Classify, ErrorKind, NewTenant};

    #[tokio::test]
    async fn a_stale_replacement_never_overwrites_newer_content() {
        let db = Db::open("sqlite::memory:").await.unwrap();
        let admin = Principal::platform_admin("system:test").unwrap();
        let tenant = SqlTenantStore::new(db.clone())
            .create(&admin, NewTenant::new("acme", "Acme"))
            .await
            .unwrap()
            .id;
        let master = Arc::new(LocalKeyProvider::new(SecretKey::from_bytes([1; 32])));
        let store = ObjectStore::open(db, BlobStore::open("memory://").unwrap(), master)
            .await
            .unwrap();
        let v1 = store
            .put(&admin, tenant, "f", b"v1".to_vec(), PutOptions::default())
            .await
            .unwrap();
        // A re-encryption reads v1 and prepares its replacement...
        let mut stale = store
            .start_writer(tenant, "f", PutOptions::default())
            .await
            .unwrap();
        stale.replaces = Some(v1.id);
        stale.write(b"v1").await.unwrap();
        // ...while a user writes v2...
        store
            .put(&admin, tenant, "f", b"v2".to_vec(), PutOptions::default())
            .await
            .unwrap();
        // ...so the stale replacement must not commit, and must leave no blob behind.
        let err = stale.commit().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        let now = store
            .get(&admin, tenant, "f")
            .await
            .unwrap()
            .read_to_end(true)
            .await
            .unwrap();
        assert_eq!(now, b"v2");
        assert_eq!(store.blobs.list(tenant).await.unwrap().len(), 1);
    }
}
