//! Deleting a snapshot: marked deleted with its analysis results in one transaction (unless
//! a legal hold forbids it), its payload blobs and rows removed after.

use super::SnapshotCore;
use crate::StorageError;
use crate::analysis::{PAYLOADS_OF_SNAPSHOT, payload_name};
use crate::dedup::gc;
use ate_core::audit::{NewAuditEvent, Outcome, actions};
use ate_core::db::to_micros;
use ate_core::{CoreError, CoreTx, Principal, ProjectId, SnapshotId, TenantId, with_write_tx};
use uuid::Uuid;

/// Deletes committed snapshot `id` (its analysis results with it) as `actor`, whose
/// permission the caller checked, for `reason` (in the audit event; `None` when asked for
/// directly). `Conflict` under a legal hold, `NotFound` for no committed snapshot.
pub(crate) async fn delete_snapshot(
    core: &SnapshotCore,
    actor: &Principal,
    tenant: TenantId,
    id: SnapshotId,
    reason: Option<&str>,
) -> Result<(), StorageError> {
    let now = core.clock.now();
    let event = NewAuditEvent::new(
        tenant,
        actor.subject(),
        actions::SNAPSHOT_DELETED,
        Outcome::Success,
    )
    .target(format!("snapshot:{id}"))
    .metadata(serde_json::json!({ "reason": reason }))
    .validate()?;
    let found: Option<(Uuid, Vec<Uuid>)> = with_write_tx!(core.db, |tx| {
        tx.lock_tenant(tenant).await?.require_active()?;
        let owner: Option<Uuid> = sqlx::query_scalar(
            "SELECT project_id FROM snapshots WHERE id = $1 AND tenant_id = $2 \
             AND state = 'committed'",
        )
        .bind(id.as_uuid())
        .bind(tenant.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(CoreError::from)?;
        if let Some(owner) = owner {
            crate::retention::refuse_if_held!(tx, tenant, owner);
        }
        let project: Option<Uuid> = sqlx::query_scalar(
            "UPDATE snapshots SET state = 'deleting', committed_at = $3 \
             WHERE id = $1 AND tenant_id = $2 AND state = 'committed' RETURNING project_id",
        )
        .bind(id.as_uuid())
        .bind(tenant.as_uuid())
        .bind(to_micros(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(CoreError::from)?;
        match project {
            None => None,
            Some(project) => {
                // Its analysis results go with it, now (their payload blobs below).
                let payloads: Vec<Uuid> = sqlx::query_scalar(PAYLOADS_OF_SNAPSHOT)
                    .bind(id.as_uuid())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(CoreError::from)?;
                sqlx::query("DELETE FROM analysis_results WHERE snapshot_id = $1")
                    .bind(id.as_uuid())
                    .execute(&mut *tx)
                    .await
                    .map_err(CoreError::from)?;
                tx.append_audit(&event, now).await?;
                Some((project, payloads))
            }
        }
    });
    let Some((project, payloads)) = found else {
        return Err(CoreError::not_found("snapshot", id).into());
    };
    let project = ProjectId::from_uuid(project)?;
    for blob in payloads {
        // One left behind is unrecorded: garbage collection removes it.
        let _ = core
            .blobs
            .delete_named(&payload_name(tenant, project, blob))
            .await;
    }
    // The rows go now; if this is interrupted, garbage collection finishes it.
    gc::purge_snapshot(&core.db, id.as_uuid()).await
}
