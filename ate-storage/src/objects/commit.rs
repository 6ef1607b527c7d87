//! The commit of a put: under the tenant's lock, in one transaction, the data key it was
//! encrypted with is checked to be still there, the quotas are checked and the index row is
//! written; the blob it replaced is removed after.

use super::index::object_columns;
use super::{FORMAT_VERSION, ObjectInfo, ObjectStore};
use crate::error::StorageError;
use ate_core::db::{from_micros, to_micros};
use ate_core::{CoreError, CoreTx, ObjectId, TenantId, with_write_tx};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// An uploaded blob waiting to become the object at `path`: what the commit records, apart
/// from the checksum.
#[derive(Debug)]
pub(super) struct Upload {
    pub(super) tenant: TenantId,
    pub(super) id: ObjectId,
    pub(super) path: String,
    pub(super) key_version: u32,
    pub(super) content_type: String,
    /// User metadata as validated JSON text.
    pub(super) metadata: String,
    /// Plaintext bytes written so far.
    pub(super) size: u64,
    /// Commit only if the path still holds this object (re-encryption's compare-and-swap).
    pub(super) replaces: Option<ObjectId>,
}

impl ObjectStore {
    /// Commits an uploaded blob as the object at `path` (quota-checked), then removes the
    /// blob it replaced.
    pub(super) async fn commit(
        &self,
        w: &Upload,
        sha256: [u8; 32],
    ) -> Result<ObjectInfo, StorageError> {
        let now = self.clock.now();
        let tenant = w.tenant;
        let replaced: Result<(Option<Uuid>, DateTime<Utc>), CoreError> = async {
            Ok(with_write_tx!(self.db, |tx| {
                let settings = tx.lock_tenant(tenant).await?.settings;
                // Destroying keys takes the same lock: an object written under a key destroyed
                // meanwhile (here or in another process, whatever a key cache still held) is
                // refused rather than stored unreadable.
                let key_state: Option<String> = sqlx::query_scalar(
                    "SELECT state FROM tenant_keys WHERE tenant_id = $1 AND version = $2",
                )
                .bind(tenant.as_uuid())
                .bind(i64::from(w.key_version))
                .fetch_optional(&mut *tx)
                .await?;
                if key_state.as_deref().is_none_or(|state| state == "destroyed") {
                    return Err(CoreError::Conflict(format!(
                        "tenant {tenant}'s data key version {} was destroyed while {} was \
                         being written; nothing was stored",
                        w.key_version, w.path
                    )));
                }
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
                // Projects' stored chunks count against the same byte quota.
                let project_bytes: i64 = sqlx::query_scalar(crate::projects::PROJECT_BYTES)
                    .bind(tenant.as_uuid())
                    .fetch_one(&mut *tx)
                    .await?;
                let bytes = bytes + project_bytes;
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
}
