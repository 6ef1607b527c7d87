//! Re-encryption of a tenant's objects under its newest data key (after a rotation).

use super::index::{ObjectRow, object_columns};
use super::{ObjectStore, PutOptions};
use crate::error::StorageError;
use ate_core::{CoreError, Principal, TenantId, TenantStore, with_pool};

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

impl ObjectStore {
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
            writer.upload.replaces = Some(info.id);
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
}
