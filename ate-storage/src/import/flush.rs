//! What an import writes to the database: its snapshot row, its file rows and packs in
//! batches (each renewing its lease), the commit, and the clean-up of a failed import.

use super::FileClass;
use crate::StorageError;
use crate::blob::BlobStore;
use crate::dedup::ChunkId;
use crate::dedup::pack::{ClosedPack, pack_name};
use crate::projects::{FileKind, Snapshot, SnapshotStats};
use crate::sql::{ph, ph_list};
use ate_core::audit::{NewAuditEvent, Outcome, actions};
use ate_core::db::to_micros;
use ate_core::{CoreError, CoreTx, Db, ProjectId, SnapshotId, TenantId, with_pool, with_write_tx};
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

/// A file row waiting to be written.
#[derive(Debug)]
pub(crate) struct FileRow {
    pub(crate) path: String,
    pub(crate) kind: FileKind,
    pub(crate) size: u64,
    pub(crate) mode: u32,
    pub(crate) sha256: [u8; 32],
    pub(crate) md5: [u8; 16],
    pub(crate) class: FileClass,
    pub(crate) link_target: Option<String>,
    pub(crate) quarantined: Option<String>,
    pub(crate) chunks: Vec<u8>,
    /// A file's first bytes and whether they are all of it, until it is classified.
    pub(crate) pending: Option<(Vec<u8>, bool)>,
}

/// Rows per multi-row statement (SQLite allows 32,766 parameters, PostgreSQL 65,535).
const ROWS_PER_STATEMENT: usize = 200;

/// `(…), (…)`: placeholders for `rows` rows of `cols` columns.
fn placeholders(db: &Db, rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", ph_list(db, r * cols + 1, cols)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn lease_lost(snapshot: SnapshotId) -> StorageError {
    CoreError::Conflict(format!(
        "import {snapshot} is no longer in progress: its lease ran out and garbage collection \
         removed it, or it was aborted"
    ))
    .into()
}

/// Creates the snapshot row of a new import (state `importing`) and bumps the project's
/// write epoch, after checking tenant and project.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn begin(
    db: &Db,
    tenant: TenantId,
    project: ProjectId,
    snapshot: SnapshotId,
    label: &str,
    source: &str,
    subject: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<(), StorageError> {
    with_write_tx!(db, |tx| {
        tx.lock_tenant(tenant).await?.require_active()?;
        let bumped = sqlx::query(
            "UPDATE projects SET write_epoch = write_epoch + 1 WHERE id = $1 AND tenant_id = $2 \
             AND deleted_at IS NULL",
        )
        .bind(project.as_uuid())
        .bind(tenant.as_uuid())
        .execute(&mut *tx)
        .await
        .map_err(CoreError::from)?
        .rows_affected();
        if bumped == 0 {
            return Err(CoreError::not_found("project", project).into());
        }
        sqlx::query(
            "INSERT INTO snapshots (id, tenant_id, project_id, state, label, source, created_by, \
             created_at, lease_until) VALUES ($1, $2, $3, 'importing', $4, $5, $6, $7, $8)",
        )
        .bind(snapshot.as_uuid())
        .bind(tenant.as_uuid())
        .bind(project.as_uuid())
        .bind(label)
        .bind(source)
        .bind(subject)
        .bind(to_micros(now))
        .bind(to_micros(lease_until))
        .execute(&mut *tx)
        .await
        .map_err(CoreError::from)?;
    });
    Ok(())
}

/// Renews the lease of an import still in progress, inside `tx`; `Conflict` if it is not.
macro_rules! renew {
    ($tx:ident, $snapshot:expr, $lease_until:expr) => {{
        let n = sqlx::query(
            "UPDATE snapshots SET lease_until = $2 WHERE id = $1 AND state = 'importing'",
        )
        .bind($snapshot.as_uuid())
        .bind(to_micros($lease_until))
        .execute(&mut *$tx)
        .await
        .map_err(CoreError::from)?
        .rows_affected();
        if n != 1 {
            return Err(lease_lost($snapshot));
        }
    }};
}

/// Writes file rows of an import in progress, renewing its lease.
pub(crate) async fn insert_rows(
    db: &Db,
    snapshot: SnapshotId,
    rows: &[FileRow],
    lease_until: DateTime<Utc>,
) -> Result<(), StorageError> {
    const COLS: usize = 17;
    with_write_tx!(db, |tx| {
        renew!(tx, snapshot, lease_until);
        for batch in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO snapshot_files (snapshot_id, path, kind, size, mode, sha256, md5, \
                 language, is_vendored, is_generated, is_binary, lines_code, lines_comments, \
                 lines_blank, link_target, quarantined, chunks) VALUES {}",
                placeholders(db, batch.len(), COLS)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for r in batch {
                let lines = r.class.lines;
                q = q
                    .bind(snapshot.as_uuid())
                    .bind(&r.path)
                    .bind(r.kind.as_str())
                    .bind(r.size as i64)
                    .bind(i64::from(r.mode))
                    .bind(&r.sha256[..])
                    .bind(&r.md5[..])
                    .bind(r.class.language.as_deref())
                    .bind(i64::from(r.class.vendored))
                    .bind(i64::from(r.class.generated))
                    .bind(i64::from(r.class.binary))
                    .bind(lines.map(|l| l.code as i64))
                    .bind(lines.map(|l| l.comments as i64))
                    .bind(lines.map(|l| l.blanks as i64))
                    .bind(r.link_target.as_deref())
                    .bind(r.quarantined.as_deref())
                    .bind(&r.chunks[..]);
            }
            q.execute(&mut *tx).await.map_err(|e| {
                if ate_core::db::is_unique_violation(&e) {
                    StorageError::refused(None, "the same path came twice")
                } else {
                    CoreError::from(e).into()
                }
            })?;
        }
    });
    Ok(())
}

/// Records a closed pack and its chunks as pending for the import, renewing its lease.
pub(crate) async fn record_pack(
    db: &Db,
    tenant: TenantId,
    project: ProjectId,
    snapshot: SnapshotId,
    pack: &ClosedPack,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<(), StorageError> {
    const COLS: usize = 8;
    with_write_tx!(db, |tx| {
        renew!(tx, snapshot, lease_until);
        sqlx::query(
            "INSERT INTO packs (id, tenant_id, project_id, size, sha256, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(pack.id)
        .bind(tenant.as_uuid())
        .bind(project.as_uuid())
        .bind(pack.size as i64)
        .bind(&pack.sha256[..])
        .bind(to_micros(now))
        .execute(&mut *tx)
        .await
        .map_err(CoreError::from)?;
        for batch in pack.entries.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO pending_chunks (snapshot_id, chunk_id, pack_id, pack_offset, \
                 stored_len, raw_len, key_version, encoding) VALUES {} \
                 ON CONFLICT (snapshot_id, chunk_id) DO NOTHING",
                placeholders(db, batch.len(), COLS)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for e in batch {
                q = q
                    .bind(snapshot.as_uuid())
                    .bind(&e.id.as_bytes()[..])
                    .bind(pack.id)
                    .bind(e.offset as i64)
                    .bind(i64::from(e.stored_len))
                    .bind(i64::from(e.raw_len))
                    .bind(i64::from(e.key_version))
                    .bind(e.encoding as i64);
            }
            q.execute(&mut *tx).await.map_err(CoreError::from)?;
        }
    });
    Ok(())
}

/// Which of `ids` the project already holds (committed).
pub(crate) async fn existing_chunks(
    db: &Db,
    project: ProjectId,
    ids: &[ChunkId],
) -> Result<Vec<ChunkId>, StorageError> {
    let mut found = Vec::new();
    for batch in ids.chunks(500) {
        let mut list = String::new();
        for i in 0..batch.len() {
            if i > 0 {
                list.push_str(", ");
            }
            list.push('$');
            list.push_str(&(i + 2).to_string());
        }
        let sql =
            format!("SELECT chunk_id FROM chunks WHERE project_id = $1 AND chunk_id IN ({list})");
        let rows: Vec<Vec<u8>> = with_pool!(db, |pool| {
            let mut q =
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str())).bind(project.as_uuid());
            for id in batch {
                q = q.bind(&id.as_bytes()[..]);
            }
            q.fetch_all(pool).await.map_err(CoreError::from)?
        });
        for r in rows {
            found.push(ChunkId::from_slice(&r)?);
        }
    }
    Ok(found)
}

/// What a commit records.
#[derive(Debug)]
pub(crate) struct Totals {
    pub(crate) files: u64,
    pub(crate) logical_bytes: u64,
    pub(crate) stats: SnapshotStats,
}

/// Commits an import: its pending chunks join the project's (those another import
/// committed meanwhile are kept as they are), the new stored bytes are checked against
/// the tenant's `max_storage_bytes` and charged, the snapshot becomes visible, audited.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn commit(
    db: &Db,
    tenant: TenantId,
    project: ProjectId,
    snapshot: SnapshotId,
    subject: &str,
    totals: &Totals,
    now: DateTime<Utc>,
) -> Result<u64, StorageError> {
    let stats = serde_json::to_string(&totals.stats)
        .map_err(|e| StorageError::Integrity(format!("snapshot statistics: {e}")))?;
    let event = NewAuditEvent::new(tenant, subject, actions::SNAPSHOT_CREATED, Outcome::Success)
        .target(format!("snapshot:{snapshot}"))
        .metadata(json!({
            "project": project,
            "files": totals.files,
            "logical_bytes": totals.logical_bytes,
        }))
        .validate()?;
    let new_bytes: u64 = with_write_tx!(db, |tx| {
        let settings = tx.lock_tenant(tenant).await?.settings;
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM snapshots WHERE id = $1 AND tenant_id = $2")
                .bind(snapshot.as_uuid())
                .bind(tenant.as_uuid())
                .fetch_optional(&mut *tx)
                .await
                .map_err(CoreError::from)?;
        if state.as_deref() != Some("importing") {
            return Err(lease_lost(snapshot));
        }
        // Destroying the tenant's keys takes the same lock: chunks sealed under a project
        // key that is gone, or sealed under a tenant key destroyed meanwhile, would be
        // committed unreadable. Refused instead (GC reclaims what the import wrote).
        let unusable: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT DISTINCT key_version FROM pending_chunks \
             WHERE snapshot_id = $1) v \
             LEFT JOIN project_keys k ON k.project_id = $2 AND k.version = v.key_version \
             LEFT JOIN tenant_keys t ON t.tenant_id = $3 AND t.version = k.tenant_key_version \
             WHERE k.version IS NULL OR t.state IS NULL OR t.state = 'destroyed'",
        )
        .bind(snapshot.as_uuid())
        .bind(project.as_uuid())
        .bind(tenant.as_uuid())
        .fetch_one(&mut *tx)
        .await
        .map_err(CoreError::from)?;
        if unusable > 0 {
            return Err(CoreError::Conflict(format!(
                "the keys this import's data is sealed under were destroyed while snapshot \
                 {snapshot} was being imported; nothing was committed"
            ))
            .into());
        }
        let added: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO chunks (project_id, chunk_id, pack_id, pack_offset, stored_len, \
             raw_len, key_version, encoding) \
             SELECT $2, chunk_id, pack_id, pack_offset, stored_len, raw_len, key_version, \
             encoding FROM pending_chunks WHERE snapshot_id = $1 \
             ON CONFLICT (project_id, chunk_id) DO NOTHING RETURNING stored_len",
        )
        .bind(snapshot.as_uuid())
        .bind(project.as_uuid())
        .fetch_all(&mut *tx)
        .await
        .map_err(CoreError::from)?;
        let new_bytes: i64 = added.iter().sum();
        if let Some(max) = settings.quotas.max_storage_bytes {
            let used: i64 = sqlx::query_scalar(crate::projects::TENANT_BYTES_USED)
                .bind(tenant.as_uuid())
                .fetch_one(&mut *tx)
                .await
                .map_err(CoreError::from)?;
            if (used + new_bytes) as u64 > max {
                return Err(CoreError::QuotaExceeded(format!(
                    "tenant {tenant} may store at most {max} bytes; this import would make {}",
                    used + new_bytes
                ))
                .into());
            }
        }
        sqlx::query(
            "UPDATE projects SET stored_bytes = stored_bytes + $2, write_epoch = write_epoch + 1 \
             WHERE id = $1",
        )
        .bind(project.as_uuid())
        .bind(new_bytes)
        .execute(&mut *tx)
        .await
        .map_err(CoreError::from)?;
        sqlx::query("DELETE FROM pending_chunks WHERE snapshot_id = $1")
            .bind(snapshot.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(CoreError::from)?;
        sqlx::query(
            "UPDATE snapshots SET state = 'committed', committed_at = $2, lease_until = NULL, \
             files = $3, logical_bytes = $4, new_bytes = $5, stats = $6 WHERE id = $1",
        )
        .bind(snapshot.as_uuid())
        .bind(to_micros(now))
        .bind(totals.files as i64)
        .bind(totals.logical_bytes as i64)
        .bind(new_bytes)
        .bind(&stats)
        .execute(&mut *tx)
        .await
        .map_err(CoreError::from)?;
        tx.append_audit(&event, now).await?;
        new_bytes as u64
    });
    Ok(new_bytes)
}

/// Removes what a failed or aborted import wrote: its snapshot row (with its file rows and
/// pending chunks), then its packs nothing else points at, rows first, blobs after.
pub(crate) async fn discard(
    db: &Db,
    blobs: &BlobStore,
    tenant: TenantId,
    project: ProjectId,
    snapshot: SnapshotId,
    packs: &[Uuid],
) -> Result<(), StorageError> {
    let gone: Vec<Uuid> = with_write_tx!(db, |tx| {
        sqlx::query("DELETE FROM snapshots WHERE id = $1 AND state = 'importing'")
            .bind(snapshot.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(CoreError::from)?;
        let mut gone = Vec::new();
        for pack in packs {
            let deleted: Option<Uuid> = sqlx::query_scalar(
                "DELETE FROM packs WHERE id = $1 \
                 AND NOT EXISTS (SELECT 1 FROM chunks WHERE pack_id = $1) \
                 AND NOT EXISTS (SELECT 1 FROM pending_chunks WHERE pack_id = $1) RETURNING id",
            )
            .bind(pack)
            .fetch_optional(&mut *tx)
            .await
            .map_err(CoreError::from)?;
            let kept: Option<Uuid> = sqlx::query_scalar("SELECT id FROM packs WHERE id = $1")
                .bind(pack)
                .fetch_optional(&mut *tx)
                .await
                .map_err(CoreError::from)?;
            // Deleted now, or never recorded (written, then the import failed): the blob goes.
            if deleted.is_some() || kept.is_none() {
                gone.push(*pack);
            }
        }
        gone
    });
    for pack in gone {
        blobs
            .delete_named(&pack_name(tenant, project, pack))
            .await?;
    }
    Ok(())
}

/// A committed snapshot as returned by a commit.
#[allow(clippy::too_many_arguments)]
pub(crate) fn committed(
    tenant: TenantId,
    project: ProjectId,
    snapshot: SnapshotId,
    label: &str,
    source: &str,
    subject: &str,
    created_at: DateTime<Utc>,
    committed_at: DateTime<Utc>,
    totals: Totals,
    new_bytes: u64,
) -> Snapshot {
    Snapshot {
        id: snapshot,
        tenant,
        project,
        label: label.to_owned(),
        source: source.to_owned(),
        created_by: subject.to_owned(),
        created_at,
        committed_at,
        files: totals.files,
        logical_bytes: totals.logical_bytes,
        new_bytes,
        stats: totals.stats,
    }
}

/// What a copied row was, for the statistics.
pub(crate) struct Copied {
    pub(crate) kind: FileKind,
    pub(crate) size: u64,
    pub(crate) class: FileClass,
}

type CopiedRow = (
    String,
    i64,
    Option<String>,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// Copies the import's entry at `target` to `path` (a hard link: the same content, already
/// stored), renewing the lease; `None` if the import has no entry at `target` (yet).
pub(crate) async fn copy_row(
    db: &Db,
    snapshot: SnapshotId,
    target: &str,
    path: &str,
    lease_until: DateTime<Utc>,
) -> Result<Option<Copied>, StorageError> {
    let row: Option<CopiedRow> = with_write_tx!(db, |tx| {
        renew!(tx, snapshot, lease_until);
        sqlx::query_as(
            "INSERT INTO snapshot_files (snapshot_id, path, kind, size, mode, sha256, md5, \
             language, is_vendored, is_generated, is_binary, lines_code, lines_comments, \
             lines_blank, link_target, quarantined, chunks) \
             SELECT snapshot_id, $3, kind, size, mode, sha256, md5, language, is_vendored, \
             is_generated, is_binary, lines_code, lines_comments, lines_blank, link_target, \
             quarantined, chunks FROM snapshot_files WHERE snapshot_id = $1 AND path = $2 \
             RETURNING kind, size, language, is_vendored, is_generated, is_binary, lines_code, \
             lines_comments, lines_blank",
        )
        .bind(snapshot.as_uuid())
        .bind(target)
        .bind(path)
        .fetch_optional(&mut *tx)
        .await
        .map_err(CoreError::from)?
    });
    Ok(row.map(|r| Copied {
        kind: if r.0 == "symlink" {
            FileKind::Symlink
        } else {
            FileKind::File
        },
        size: r.1.max(0) as u64,
        class: class_of(r.2, r.3, r.4, r.5, r.6, r.7, r.8),
    }))
}

/// A classification from its stored columns.
fn class_of(
    language: Option<String>,
    vendored: i64,
    generated: i64,
    binary: i64,
    code: Option<i64>,
    comments: Option<i64>,
    blanks: Option<i64>,
) -> FileClass {
    FileClass {
        language,
        vendored: vendored != 0,
        generated: generated != 0,
        binary: binary != 0,
        lines: super::LineCounts::from_columns(code, comments, blanks),
    }
}

/// The project's latest committed snapshot, if any.
pub(crate) async fn latest_snapshot(
    db: &Db,
    tenant: TenantId,
    project: ProjectId,
) -> Result<Option<SnapshotId>, StorageError> {
    let id: Option<Uuid> = with_pool!(db, |pool| {
        sqlx::query_scalar(
            "SELECT id FROM snapshots WHERE tenant_id = $1 AND project_id = $2 \
             AND state = 'committed' ORDER BY id DESC LIMIT 1",
        )
        .bind(tenant.as_uuid())
        .bind(project.as_uuid())
        .fetch_optional(pool)
        .await
        .map_err(CoreError::from)?
    });
    Ok(id.map(SnapshotId::from_uuid).transpose()?)
}

/// A file of the previous snapshot, for an import to recognize it unchanged.
#[derive(Debug, Clone)]
pub(crate) struct Prior {
    pub(crate) size: u64,
    pub(crate) sha256: [u8; 32],
    pub(crate) md5: [u8; 16],
    /// Its encoded chunk list.
    pub(crate) chunks: Vec<u8>,
}

/// A row of [`prior_files`]: path, size, SHA-256, MD5, chunk list.
type PriorRow = (String, i64, Vec<u8>, Vec<u8>, Vec<u8>);

/// The regular files of snapshot `parent` of at most `max_size` bytes, by path; `None` if
/// it holds more than `max_files` of them (then an import does without).
pub(crate) async fn prior_files(
    db: &Db,
    parent: SnapshotId,
    max_size: u64,
    max_files: usize,
) -> Result<Option<std::collections::HashMap<String, Prior>>, StorageError> {
    let rows: Vec<PriorRow> = with_pool!(db, |pool| {
        sqlx::query_as(
            "SELECT path, size, sha256, md5, chunks FROM snapshot_files WHERE snapshot_id = $1 \
             AND kind = 'file' AND quarantined IS NULL AND size <= $2 LIMIT $3",
        )
        .bind(parent.as_uuid())
        .bind(i64::try_from(max_size).unwrap_or(i64::MAX))
        .bind(
            i64::try_from(max_files)
                .unwrap_or(i64::MAX)
                .saturating_add(1),
        )
        .fetch_all(pool)
        .await
        .map_err(CoreError::from)?
    });
    if rows.len() > max_files {
        return Ok(None);
    }
    let mut out = std::collections::HashMap::with_capacity(rows.len());
    for (path, size, sha256, md5, chunks) in rows {
        let (Ok(sha256), Ok(md5), Ok(size)) = (
            <[u8; 32]>::try_from(&sha256[..]),
            <[u8; 16]>::try_from(&md5[..]),
            u64::try_from(size),
        ) else {
            continue;
        };
        out.insert(
            path,
            Prior {
                size,
                sha256,
                md5,
                chunks,
            },
        );
    }
    Ok(Some(out))
}

type ClassRow = (
    String,
    Vec<u8>,
    Option<String>,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// The SHA-256 and classification of the files at `paths` in snapshot `parent`.
pub(crate) async fn parent_classes(
    db: &Db,
    parent: SnapshotId,
    paths: &[&str],
) -> Result<std::collections::HashMap<String, ([u8; 32], FileClass)>, StorageError> {
    let mut out = std::collections::HashMap::with_capacity(paths.len());
    for batch in paths.chunks(500) {
        let sql = format!(
            "SELECT path, sha256, language, is_vendored, is_generated, is_binary, lines_code, \
             lines_comments, lines_blank FROM snapshot_files WHERE snapshot_id = {} \
             AND kind = 'file' AND path IN ({})",
            ph(db, 1),
            ph_list(db, 2, batch.len())
        );
        let rows: Vec<ClassRow> = with_pool!(db, |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(parent.as_uuid());
            for p in batch {
                q = q.bind(*p);
            }
            q.fetch_all(pool).await.map_err(CoreError::from)?
        });
        for r in rows {
            let Ok(sha256) = <[u8; 32]>::try_from(&r.1[..]) else {
                continue;
            };
            out.insert(r.0, (sha256, class_of(r.2, r.3, r.4, r.5, r.6, r.7, r.8)));
        }
    }
    Ok(out)
}
