//! Garbage collection: blobs without an index row, and staged uploads that never completed.

use super::ObjectStore;
use crate::blob::{grace_cutoff, minted_at};
use crate::error::StorageError;
use ate_core::{CoreError, Principal, TenantId, TenantStore, with_pool};
use chrono::{DateTime, Utc};
use uuid::Uuid;

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

impl ObjectStore {
    /// Deletes blobs of `tenant` that have no index row and are older than `grace` (judged by
    /// the time inside their UUIDv7 id, so uploads in progress are left alone). On `fs` it
    /// also deletes staged files of uploads that never completed and are older than `grace`
    /// (a crash between write and rename), whatever their tenant.
    ///
    /// For a tenant that no longer exists (purged by
    /// [`TenantStore::purge_due`], which drops its keys and
    /// index rows with it), every remaining blob is garbage whatever its age: run this for
    /// each purged id to reclaim the space.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` for anyone but a platform administrator; `InvalidInput` for a
    /// negative `grace`; backend errors.
    pub async fn collect_garbage(
        &self,
        actor: &Principal,
        tenant: TenantId,
        grace: chrono::TimeDelta,
    ) -> Result<GcReport, StorageError> {
        actor.require_platform_admin("collecting storage garbage")?;
        crate::blob::check_grace(grace)?;
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
            grace_cutoff(self.clock.now(), grace)
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
