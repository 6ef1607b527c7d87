//! Purging a deleted project's rows in batches: each batch its own short transaction, each
//! step safe to repeat, so an interrupted purge is finished by running it again.

use crate::StorageError;
use crate::dedup::gc::purge_snapshot;
use ate_core::{CoreError, Db, ProjectId, with_pool, with_write_tx};
use uuid::Uuid;

/// Rows deleted per statement.
const BATCH: i64 = 5000;

/// The `name_key` of a deleted project: no valid name maps to it (names hold no control
/// characters), so the name is free again at once.
pub(super) fn deleted_name_key(id: ProjectId) -> String {
    format!("\u{1}deleted {id}")
}

/// Deletes `$sql` (a statement taking the project `$1` and a batch size `$2`) until it
/// deletes nothing.
macro_rules! in_batches {
    ($db:expr, $project:expr, $sql:expr) => {
        loop {
            let n = with_write_tx!($db, |tx| {
                sqlx::query($sql)
                    .bind($project)
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
    };
}

/// Purges deleted project `project`: its snapshots (file rows in batches), analysis
/// results, chunks, then its row (packs, labels and what is left go with it). Does nothing
/// for a project that is not marked deleted. Blobs are left to garbage collection.
pub(crate) async fn purge_project(db: &Db, project: ProjectId) -> Result<(), StorageError> {
    let id = project.as_uuid();
    let deleted: Option<Option<i64>> = with_pool!(db, |pool| {
        sqlx::query_scalar("SELECT deleted_at FROM projects WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(CoreError::from)?
    });
    if !matches!(deleted, Some(Some(_))) {
        return Ok(());
    }
    with_write_tx!(db, |tx| {
        sqlx::query("UPDATE snapshots SET state = 'deleting' WHERE project_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(CoreError::from)?;
    });
    let snapshots: Vec<Uuid> = with_pool!(db, |pool| {
        sqlx::query_scalar("SELECT id FROM snapshots WHERE project_id = $1")
            .bind(id)
            .fetch_all(pool)
            .await
            .map_err(CoreError::from)?
    });
    for snapshot in snapshots {
        purge_snapshot(db, snapshot).await?;
    }
    in_batches!(
        db,
        id,
        "DELETE FROM analysis_results WHERE id IN \
         (SELECT id FROM analysis_results WHERE project_id = $1 LIMIT $2)"
    );
    in_batches!(
        db,
        id,
        "DELETE FROM chunks WHERE project_id = $1 AND chunk_id IN \
         (SELECT chunk_id FROM chunks WHERE project_id = $1 LIMIT $2)"
    );
    with_write_tx!(db, |tx| {
        sqlx::query("DELETE FROM projects WHERE id = $1 AND deleted_at IS NOT NULL")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(CoreError::from)?;
    });
    Ok(())
}
