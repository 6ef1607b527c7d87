//! Garbage collection of a project's chunks: mark what committed snapshots need, sweep the
//! rest, then the packs nothing points at.
//!
//! The sweep runs in one transaction under the tenant's lock, and only if no import of the
//! project is in progress and none began or committed since the marking began (the
//! project's write epoch is unchanged): an import that reuses a chunk has either committed
//! before the marking (so the chunk is marked) or is in progress (so nothing is swept).

use super::ChunkId;
use super::pack::{pack_dir, pack_name};
use crate::StorageError;
use crate::analysis::{payload_dir, payload_name};
use crate::blob::minted_at;
use crate::projects::{ChunkGcReport, SnapshotCore};
use crate::sql::{ph, ph_list};
use ate_core::db::to_micros;
use ate_core::{CoreError, CoreTx, ObjectId, ProjectId, TenantId, with_pool, with_write_tx};
use std::collections::HashSet;
use uuid::Uuid;

/// Rows read or deleted per statement.
const BATCH: i64 = 5000;

/// Deletes the file rows of snapshots being deleted, then their rows (resumable).
pub(crate) async fn purge_deleted_snapshots(
    core: &SnapshotCore,
    project: ProjectId,
) -> Result<(), StorageError> {
    let doomed: Vec<Uuid> = with_pool!(core.db, |pool| {
        sqlx::query_scalar("SELECT id FROM snapshots WHERE project_id = $1 AND state = 'deleting'")
            .bind(project.as_uuid())
            .fetch_all(pool)
            .await
            .map_err(CoreError::from)?
    });
    for id in doomed {
        purge_snapshot(&core.db, id).await?;
    }
    Ok(())
}

/// Deletes a snapshot's file rows in batches, then its row.
pub(crate) async fn purge_snapshot(db: &ate_core::Db, id: Uuid) -> Result<(), StorageError> {
    loop {
        let n = with_write_tx!(db, |tx| {
            sqlx::query(
                "DELETE FROM snapshot_files WHERE snapshot_id = $1 AND path IN \
                 (SELECT path FROM snapshot_files WHERE snapshot_id = $1 ORDER BY path LIMIT $2)",
            )
            .bind(id)
            .bind(BATCH)
            .execute(&mut *tx)
            .await
            .map_err(CoreError::from)?
            .rows_affected()
        });
        if n == 0 {
            break;
        }
    }
    with_write_tx!(db, |tx| {
        sqlx::query("DELETE FROM snapshots WHERE id = $1 AND state = 'deleting'")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(CoreError::from)?;
    });
    Ok(())
}

/// Every chunk id the project's snapshots (committed, or being deleted) point at.
async fn mark(core: &SnapshotCore, project: ProjectId) -> Result<HashSet<ChunkId>, StorageError> {
    let mut marked = HashSet::new();
    let snapshots: Vec<Uuid> = with_pool!(core.db, |pool| {
        sqlx::query_scalar(
            "SELECT id FROM snapshots WHERE project_id = $1 AND state IN ('committed', 'deleting')",
        )
        .bind(project.as_uuid())
        .fetch_all(pool)
        .await
        .map_err(CoreError::from)?
    });
    for snapshot in snapshots {
        let mut after = String::new();
        loop {
            let rows: Vec<(String, Vec<u8>)> = with_pool!(core.db, |pool| {
                sqlx::query_as(
                    "SELECT path, chunks FROM snapshot_files WHERE snapshot_id = $1 AND path > $2 \
                     ORDER BY path LIMIT $3",
                )
                .bind(snapshot)
                .bind(&after)
                .bind(BATCH)
                .fetch_all(pool)
                .await
                .map_err(CoreError::from)?
            });
            let Some((last, _)) = rows.last() else { break };
            after = last.clone();
            for (_, chunks) in &rows {
                marked.extend(super::decode_refs(chunks)?.into_iter().map(|r| r.id));
            }
        }
    }
    Ok(marked)
}

/// The project's committed chunks that are not in `marked`.
async fn unmarked(
    core: &SnapshotCore,
    project: ProjectId,
    marked: &HashSet<ChunkId>,
) -> Result<Vec<ChunkId>, StorageError> {
    let mut out = Vec::new();
    let mut after: Vec<u8> = Vec::new();
    loop {
        let rows: Vec<Vec<u8>> = with_pool!(core.db, |pool| {
            sqlx::query_scalar(
                "SELECT chunk_id FROM chunks WHERE project_id = $1 AND chunk_id > $2 \
                 ORDER BY chunk_id LIMIT $3",
            )
            .bind(project.as_uuid())
            .bind(&after)
            .bind(BATCH)
            .fetch_all(pool)
            .await
            .map_err(CoreError::from)?
        });
        let Some(last) = rows.last() else { break };
        after = last.clone();
        for r in &rows {
            let id = ChunkId::from_slice(r)?;
            if !marked.contains(&id) {
                out.push(id);
            }
        }
    }
    Ok(out)
}

/// Whether a blob named by `id` was minted before `cutoff` (or does not say when).
pub(crate) fn older_than(id: Uuid, cutoff: chrono::DateTime<chrono::Utc>) -> bool {
    ObjectId::from_uuid(id)
        .ok()
        .and_then(minted_at)
        .is_none_or(|born| born <= cutoff)
}

/// Deletes the project's pack blobs that have no row and were minted before `cutoff`:
/// written by an import that died before recording them (a younger one may belong to an
/// import just begun). Returns how many.
pub(crate) async fn sweep_orphan_packs(
    core: &SnapshotCore,
    tenant: TenantId,
    project: ProjectId,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> Result<u64, StorageError> {
    let known: HashSet<Uuid> = with_pool!(core.db, |pool| {
        sqlx::query_scalar("SELECT id FROM packs WHERE project_id = $1")
            .bind(project.as_uuid())
            .fetch_all(pool)
            .await
            .map_err(CoreError::from)?
    })
    .into_iter()
    .collect();
    let mut deleted = 0;
    for id in core.blobs.list_in(&pack_dir(tenant, project)).await? {
        if !known.contains(&id) && older_than(id, cutoff) {
            core.blobs
                .delete_named(&pack_name(tenant, project, id))
                .await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Deletes the project's payload blobs that no analysis result records and that were
/// minted before `cutoff` (a younger one may be a payload being uploaded). Returns how many.
pub(crate) async fn sweep_payloads(
    core: &SnapshotCore,
    tenant: TenantId,
    project: ProjectId,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> Result<u64, StorageError> {
    let blobs = core.blobs.list_in(&payload_dir(tenant, project)).await?;
    if blobs.is_empty() {
        return Ok(0);
    }
    let old: Vec<Uuid> = blobs
        .into_iter()
        .filter(|id| older_than(*id, cutoff))
        .collect();
    if old.is_empty() {
        return Ok(0);
    }
    // Under the tenant's lock, which recording a payload takes too: a payload recorded
    // before is known here; one recorded after finds its blob gone and fails.
    let deleted = with_write_tx!(core.db, |tx| {
        tx.lock_tenant(tenant).await?;
        let known: HashSet<Uuid> = sqlx::query_scalar(
            "SELECT p.blob_id FROM analysis_payloads p \
             JOIN analysis_results r ON r.id = p.result_id WHERE r.project_id = $1",
        )
        .bind(project.as_uuid())
        .fetch_all(&mut *tx)
        .await
        .map_err(CoreError::from)?
        .into_iter()
        .collect();
        let mut deleted = 0;
        for id in old.iter().filter(|id| !known.contains(id)) {
            core.blobs
                .delete_named(&payload_name(tenant, project, *id))
                .await?;
            deleted += 1;
        }
        deleted
    });
    Ok(deleted)
}

/// One pass over a project (see the [module docs](self)).
pub(crate) async fn collect(
    core: &SnapshotCore,
    tenant: TenantId,
    project: ProjectId,
    grace: chrono::TimeDelta,
) -> Result<ChunkGcReport, StorageError> {
    let now = core.clock.now();
    let mut report = ChunkGcReport::default();
    // A deleted project whose purge was interrupted: finish it first.
    crate::projects::purge_project(&core.db, project).await?;
    let epoch: Option<i64> = with_pool!(core.db, |pool| {
        sqlx::query_scalar("SELECT write_epoch FROM projects WHERE id = $1 AND tenant_id = $2")
            .bind(project.as_uuid())
            .bind(tenant.as_uuid())
            .fetch_optional(pool)
            .await
            .map_err(CoreError::from)?
    });
    let Some(epoch) = epoch else {
        // The project is gone, and its keys with it: every pack and payload blob left is
        // garbage.
        for id in core.blobs.list_in(&pack_dir(tenant, project)).await? {
            core.blobs
                .delete_named(&pack_name(tenant, project, id))
                .await?;
            report.packs_deleted += 1;
        }
        for id in core.blobs.list_in(&payload_dir(tenant, project)).await? {
            core.blobs
                .delete_named(&payload_name(tenant, project, id))
                .await?;
            report.payloads_deleted += 1;
        }
        return Ok(report);
    };
    let cutoff = crate::blob::grace_cutoff(now, grace);
    report.payloads_deleted = sweep_payloads(core, tenant, project, cutoff).await?;
    // Imports whose lease ran out: removed with their file rows and pending chunks (their
    // packs go below). One that is merely slow fails at its next write.
    report.expired_imports = with_write_tx!(core.db, |tx| {
        sqlx::query(
            "DELETE FROM snapshots WHERE project_id = $1 AND state = 'importing' \
             AND lease_until < $2",
        )
        .bind(project.as_uuid())
        .bind(to_micros(now))
        .execute(&mut *tx)
        .await
        .map_err(CoreError::from)?
        .rows_affected()
    });
    purge_deleted_snapshots(core, project).await?;
    let marked = mark(core, project).await?;
    let garbage = unmarked(core, project, &marked).await?;
    let swept: Option<(u64, u64, Vec<Uuid>)> = with_write_tx!(core.db, |tx| {
        tx.lock_tenant(tenant).await?;
        let (current, importing): (i64, i64) = sqlx::query_as(
            "SELECT write_epoch, (SELECT COUNT(*) FROM snapshots WHERE project_id = $1 \
             AND state = 'importing') FROM projects WHERE id = $1",
        )
        .bind(project.as_uuid())
        .fetch_one(&mut *tx)
        .await
        .map_err(CoreError::from)?;
        if current != epoch || importing > 0 {
            None
        } else {
            let (mut chunks, mut bytes) = (0u64, 0i64);
            for batch in garbage.chunks(500) {
                let sql = format!(
                    "DELETE FROM chunks WHERE project_id = {} AND chunk_id IN ({}) \
                     RETURNING stored_len",
                    ph(&core.db, 1),
                    ph_list(&core.db, 2, batch.len())
                );
                let mut q =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str())).bind(project.as_uuid());
                for id in batch {
                    q = q.bind(&id.as_bytes()[..]);
                }
                let freed: Vec<i64> = q.fetch_all(&mut *tx).await.map_err(CoreError::from)?;
                chunks += freed.len() as u64;
                bytes += freed.iter().sum::<i64>();
            }
            sqlx::query("UPDATE projects SET stored_bytes = stored_bytes - $2 WHERE id = $1")
                .bind(project.as_uuid())
                .bind(bytes)
                .execute(&mut *tx)
                .await
                .map_err(CoreError::from)?;
            let packs: Vec<Uuid> = sqlx::query_scalar(
                "DELETE FROM packs WHERE project_id = $1 \
                 AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.pack_id = packs.id) \
                 AND NOT EXISTS (SELECT 1 FROM pending_chunks p WHERE p.pack_id = packs.id) \
                 RETURNING id",
            )
            .bind(project.as_uuid())
            .fetch_all(&mut *tx)
            .await
            .map_err(CoreError::from)?;
            Some((chunks, bytes as u64, packs))
        }
    });
    let Some((chunks, bytes, packs)) = swept else {
        report.busy = true;
        return Ok(report);
    };
    report.chunks_deleted = chunks;
    report.bytes_freed = bytes;
    for pack in &packs {
        core.blobs
            .delete_named(&pack_name(tenant, project, *pack))
            .await?;
    }
    report.packs_deleted =
        packs.len() as u64 + sweep_orphan_packs(core, tenant, project, cutoff).await?;
    let dead: i64 = with_pool!(core.db, |pool| {
        sqlx::query_scalar(
            "SELECT CAST(COALESCE((SELECT SUM(size) FROM packs WHERE project_id = $1), 0) \
             - COALESCE((SELECT SUM(stored_len) FROM chunks WHERE project_id = $1), 0) AS BIGINT)",
        )
        .bind(project.as_uuid())
        .fetch_one(pool)
        .await
        .map_err(CoreError::from)?
    });
    report.dead_bytes_in_live_packs = dead.max(0) as u64;
    Ok(report)
}

/// Finishes purging the tenant's deleted projects and deletes every blob of projects that
/// no longer exist: their keys went with them, so whatever is left is garbage, whatever its
/// age. A project's folder is only touched once its row is gone or marked deleted (a live
/// project's row exists before any of its blobs).
pub(crate) async fn collect_deleted(
    core: &SnapshotCore,
    tenant: TenantId,
) -> Result<ChunkGcReport, StorageError> {
    // Folders first: a project created after this listing has a live row.
    let folders = core.blobs.list_dirs_in(&format!("t/{tenant}/p")).await?;
    let rows: Vec<(Uuid, Option<i64>)> = with_pool!(core.db, |pool| {
        sqlx::query_as("SELECT id, deleted_at FROM projects WHERE tenant_id = $1")
            .bind(tenant.as_uuid())
            .fetch_all(pool)
            .await
            .map_err(CoreError::from)?
    });
    let live: HashSet<Uuid> = rows
        .iter()
        .filter(|(_, deleted)| deleted.is_none())
        .map(|(id, _)| *id)
        .collect();
    let mut doomed: Vec<Uuid> = rows
        .iter()
        .filter(|(_, deleted)| deleted.is_some())
        .map(|(id, _)| *id)
        .chain(folders.into_iter().filter(|id| !live.contains(id)))
        .collect();
    doomed.sort();
    doomed.dedup();
    let mut report = ChunkGcReport::default();
    for id in doomed {
        // Purges what is left of it, then (its row gone) deletes all its blobs.
        let r = collect(
            core,
            tenant,
            ProjectId::from_uuid(id)?,
            chrono::TimeDelta::zero(),
        )
        .await?;
        report.packs_deleted += r.packs_deleted;
        report.payloads_deleted += r.payloads_deleted;
    }
    Ok(report)
}
