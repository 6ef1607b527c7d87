//! [`SqlSnapshotStore`]: snapshots in a [`Db`], contents in deduplicated chunks.

use super::snapshots::{
    ChunkGcReport, FileEntry, FileKind, FileQuery, MAX_READ_BYTES, ProjectStats, RepackOptions,
    RepackReport, Snapshot, SnapshotDiff, SnapshotQuery, SnapshotStats, SnapshotStore, TenantUsage,
};
use super::sql::may_read;
use super::{PROJECTS_DELETE, PROJECTS_READ, ProjectKeyring, delete_snapshot};
use crate::StorageError;
use crate::blob::BlobStore;
use crate::cobblestone::Cobblestone;
use crate::dedup::{gc, read};
use crate::import::{ArchiveFormat, ImportOptions, Importer, LineCounts, import_archive, walk_dir};
use crate::sql::ph;
use ate_core::db::from_micros;
use ate_core::{
    Clock, CoreError, CoreTx, Cursor, Db, Page, Principal, ProjectId, SnapshotId, SqlTenantStore,
    SystemClock, TenantId, TenantStore, with_pool, with_write_tx,
};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use uuid::Uuid;

/// What the store and its importers share.
#[derive(Debug)]
pub(crate) struct SnapshotCore {
    pub(crate) db: Db,
    pub(crate) blobs: BlobStore,
    pub(crate) keys: ProjectKeyring,
    pub(crate) cipher: Cobblestone,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) tenants: SqlTenantStore,
}

impl SnapshotCore {
    /// Runs `ate-storage`'s migrations in `db`.
    pub(crate) async fn open(
        db: Db,
        blobs: BlobStore,
        keys: ProjectKeyring,
    ) -> Result<Self, StorageError> {
        db.migrate(&crate::migrations()).await?;
        Ok(SnapshotCore {
            tenants: SqlTenantStore::new(db.clone()),
            db,
            blobs,
            keys,
            cipher: Cobblestone::default(),
            clock: Arc::new(SystemClock),
        })
    }

    /// The same, with `clock` for every time it records.
    pub(crate) fn with_clock(&self, clock: Arc<dyn Clock>) -> Self {
        SnapshotCore {
            db: self.db.clone(),
            blobs: self.blobs.clone(),
            keys: self.keys.clone().with_clock(clock.clone()),
            cipher: self.cipher,
            tenants: self.tenants.clone().with_clock(clock.clone()),
            clock,
        }
    }
}

/// Snapshots in a [`Db`] (SQLite or PostgreSQL), their contents in a [`BlobStore`] as
/// deduplicated chunks under per-project keys; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqlSnapshotStore {
    core: Arc<SnapshotCore>,
}

const CURSOR_FILES: &str = "snapshot-files";
const CURSOR_SNAPSHOTS: &str = "snapshots";

macro_rules! snapshot_columns {
    () => {
        "id, tenant_id, project_id, label, source, created_by, created_at, committed_at, files, \
         logical_bytes, new_bytes, stats"
    };
}

macro_rules! file_columns {
    () => {
        "path, kind, size, mode, sha256, md5, language, is_vendored, is_generated, is_binary, \
         lines_code, lines_comments, lines_blank, link_target, quarantined"
    };
}

#[derive(sqlx::FromRow)]
struct SnapshotRow {
    id: Uuid,
    tenant_id: Uuid,
    project_id: Uuid,
    label: String,
    source: String,
    created_by: String,
    created_at: i64,
    committed_at: Option<i64>,
    files: i64,
    logical_bytes: i64,
    new_bytes: i64,
    stats: String,
}

impl SnapshotRow {
    fn snapshot(self) -> Result<Snapshot, StorageError> {
        let stats: SnapshotStats = serde_json::from_str(&self.stats).map_err(|e| {
            StorageError::Integrity(format!("stored statistics of snapshot {}: {e}", self.id))
        })?;
        Ok(Snapshot {
            id: SnapshotId::from_uuid(self.id)?,
            tenant: TenantId::from_uuid(self.tenant_id)?,
            project: ProjectId::from_uuid(self.project_id)?,
            label: self.label,
            source: self.source,
            created_by: self.created_by,
            created_at: from_micros(self.created_at)?,
            committed_at: from_micros(self.committed_at.unwrap_or(self.created_at))?,
            files: self.files.max(0) as u64,
            logical_bytes: self.logical_bytes.max(0) as u64,
            new_bytes: self.new_bytes.max(0) as u64,
            stats,
        })
    }
}

#[derive(sqlx::FromRow)]
struct FileRowOut {
    path: String,
    kind: String,
    size: i64,
    mode: i64,
    sha256: Vec<u8>,
    md5: Vec<u8>,
    language: Option<String>,
    is_vendored: i64,
    is_generated: i64,
    is_binary: i64,
    lines_code: Option<i64>,
    lines_comments: Option<i64>,
    lines_blank: Option<i64>,
    link_target: Option<String>,
    quarantined: Option<String>,
}

impl FileRowOut {
    fn entry(self) -> Result<FileEntry, StorageError> {
        let kind = match self.kind.as_str() {
            "file" => FileKind::File,
            "symlink" => FileKind::Symlink,
            other => {
                return Err(StorageError::Integrity(format!(
                    "stored file kind {other:?} is unknown"
                )));
            }
        };
        let lines =
            LineCounts::from_columns(self.lines_code, self.lines_comments, self.lines_blank);
        Ok(FileEntry {
            path: self.path,
            kind,
            size: self.size.max(0) as u64,
            mode: self.mode.clamp(0, 0o7777) as u32,
            sha256: hex::encode(&self.sha256),
            md5: hex::encode(&self.md5),
            language: self.language,
            vendored: self.is_vendored != 0,
            generated: self.is_generated != 0,
            binary: self.is_binary != 0,
            lines,
            link_target: self.link_target,
            quarantined: self.quarantined,
        })
    }
}

/// The upper bound of the paths starting with `prefix` (bytewise).
fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.to_owned();
    end.push(char::MAX);
    end
}

impl SqlSnapshotStore {
    /// Snapshots in `db` (running `ate-storage`'s migrations), contents in `blobs`, keys
    /// from `keys`.
    pub async fn open(
        db: Db,
        blobs: BlobStore,
        keys: ProjectKeyring,
    ) -> Result<Self, StorageError> {
        Ok(SqlSnapshotStore {
            core: Arc::new(SnapshotCore::open(db, blobs, keys).await?),
        })
    }

    /// Uses `clock` for the times it records (and import leases).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        SqlSnapshotStore {
            core: Arc::new(self.core.with_clock(clock)),
        }
    }

    /// The committed snapshot `id` of the tenant: its project.
    async fn project_of(
        &self,
        tenant: TenantId,
        id: SnapshotId,
    ) -> Result<ProjectId, StorageError> {
        let project: Option<Uuid> = with_pool!(self.core.db, |pool| {
            sqlx::query_scalar(
                "SELECT project_id FROM snapshots WHERE id = $1 AND tenant_id = $2 \
                 AND state = 'committed'",
            )
            .bind(id.as_uuid())
            .bind(tenant.as_uuid())
            .fetch_optional(pool)
            .await
            .map_err(CoreError::from)?
        });
        let project = project.ok_or_else(|| CoreError::not_found("snapshot", id))?;
        Ok(ProjectId::from_uuid(project)?)
    }

    async fn file_row(
        &self,
        id: SnapshotId,
        path: &str,
    ) -> Result<(FileRowOut, Vec<u8>), StorageError> {
        #[derive(sqlx::FromRow)]
        struct Full {
            #[sqlx(flatten)]
            row: FileRowOut,
            chunks: Vec<u8>,
        }
        let row: Option<Full> = with_pool!(self.core.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                file_columns!(),
                ", chunks FROM snapshot_files WHERE snapshot_id = $1 AND path = $2"
            ))
            .bind(id.as_uuid())
            .bind(path)
            .fetch_optional(pool)
            .await
            .map_err(CoreError::from)?
        });
        let full = row.ok_or_else(|| CoreError::not_found("file", path))?;
        Ok((full.row, full.chunks))
    }

    /// One page of file rows after `after`, with only the filters `query` sets in the SQL
    /// (so the planner can use the language index), at most `limit` rows.
    async fn file_page(
        &self,
        id: SnapshotId,
        prefix: &str,
        end: &str,
        after: &str,
        query: &FileQuery,
        limit: u32,
    ) -> Result<Vec<FileRowOut>, StorageError> {
        enum Bind<'a> {
            Id(Uuid),
            Text(&'a str),
            Int(i64),
        }
        let db = &self.core.db;
        let mut binds = vec![Bind::Id(id.as_uuid()), Bind::Text(after)];
        let mut sql = format!(
            concat!(
                "SELECT ",
                file_columns!(),
                " FROM snapshot_files WHERE snapshot_id = {} AND path > {}"
            ),
            ph(db, 1),
            ph(db, 2)
        );
        let mut conds: Vec<(&str, Bind<'_>)> = Vec::new();
        if !prefix.is_empty() {
            conds.push(("path >=", Bind::Text(prefix)));
            conds.push(("path <", Bind::Text(end)));
        }
        if let Some(language) = &query.language {
            conds.push(("language =", Bind::Text(language)));
        }
        for (column, flag) in [
            ("is_vendored =", query.vendored),
            ("is_generated =", query.generated),
            ("is_binary =", query.binary),
        ] {
            if let Some(flag) = flag {
                conds.push((column, Bind::Int(i64::from(flag))));
            }
        }
        for (text, bind) in conds {
            binds.push(bind);
            sql.push_str(&format!(" AND {text} {}", ph(db, binds.len())));
        }
        binds.push(Bind::Int(i64::from(limit)));
        sql.push_str(&format!(" ORDER BY path LIMIT {}", ph(db, binds.len())));
        Ok(with_pool!(self.core.db, |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
            for b in &binds {
                q = match b {
                    Bind::Id(u) => q.bind(*u),
                    Bind::Text(t) => q.bind(*t),
                    Bind::Int(i) => q.bind(*i),
                };
            }
            q.fetch_all(pool).await.map_err(CoreError::from)?
        }))
    }

    /// (path, kind, sha256, mode, link target) of every entry of a snapshot, by path.
    async fn signatures(
        &self,
        id: SnapshotId,
    ) -> Result<Vec<(String, String, Vec<u8>, i64, Option<String>)>, StorageError> {
        Ok(with_pool!(self.core.db, |pool| {
            sqlx::query_as(
                "SELECT path, kind, sha256, mode, link_target FROM snapshot_files \
                 WHERE snapshot_id = $1 ORDER BY path",
            )
            .bind(id.as_uuid())
            .fetch_all(pool)
            .await
            .map_err(CoreError::from)?
        }))
    }
}

#[async_trait::async_trait]
impl SnapshotStore for SqlSnapshotStore {
    async fn begin_import(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        options: ImportOptions,
    ) -> Result<Importer, StorageError> {
        Importer::start(self.core.clone(), actor, tenant, project, options).await
    }

    async fn import_dir(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        dir: &Path,
        options: ImportOptions,
    ) -> Result<Snapshot, StorageError> {
        let options = options.source_or("directory");
        let mut importer = self.begin_import(actor, tenant, project, options).await?;
        let fed = walk_dir(&mut importer, dir).await;
        importer.commit_if(fed).await
    }

    async fn import_archive(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        mut archive: Box<dyn AsyncRead + Send + Unpin>,
        format: Option<ArchiveFormat>,
        options: ImportOptions,
    ) -> Result<Snapshot, StorageError> {
        let format = match format {
            Some(f) => f,
            None => {
                // Read the first bytes to tell the format, then hand them back in front.
                let mut head = Vec::with_capacity(512);
                (&mut archive).take(512).read_to_end(&mut head).await?;
                let format = ArchiveFormat::detect(&head).ok_or_else(|| {
                    StorageError::invalid(
                        "archive",
                        "its first bytes are not those of a tar, tar.gz, tar.zst or zip",
                    )
                })?;
                archive = Box::new(std::io::Cursor::new(head).chain(archive));
                format
            }
        };
        let options = options.source_or(format.as_str());
        let limits = options.limits.clone();
        let mut importer = self.begin_import(actor, tenant, project, options).await?;
        let fed = import_archive(&mut importer, archive, format, &limits).await;
        importer.commit_if(fed).await
    }

    async fn export_tar(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: SnapshotId,
        out: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<u64, StorageError> {
        let snapshot = self.get(actor, tenant, id).await?;
        super::export::write_tar(&self.core, &snapshot, out).await
    }

    async fn get(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: SnapshotId,
    ) -> Result<Snapshot, StorageError> {
        may_read(&self.core.tenants, actor, tenant, &PROJECTS_READ).await?;
        let row: Option<SnapshotRow> = with_pool!(self.core.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                snapshot_columns!(),
                " FROM snapshots WHERE id = $1 AND tenant_id = $2 AND state = 'committed'"
            ))
            .bind(id.as_uuid())
            .bind(tenant.as_uuid())
            .fetch_optional(pool)
            .await
            .map_err(CoreError::from)?
        });
        row.ok_or_else(|| CoreError::not_found("snapshot", id))?
            .snapshot()
    }

    async fn list(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        query: &SnapshotQuery,
    ) -> Result<Page<Snapshot>, StorageError> {
        let limit = ate_core::page::page_size(query.limit)?;
        let before = match &query.cursor {
            Some(c) => Some(
                c.decode(CURSOR_SNAPSHOTS)?
                    .parse::<SnapshotId>()
                    .map_err(|_| CoreError::invalid("cursor", "not a snapshot position"))?,
            ),
            None => None,
        };
        may_read(&self.core.tenants, actor, tenant, &PROJECTS_READ).await?;
        let rows: Vec<SnapshotRow> = with_pool!(self.core.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                snapshot_columns!(),
                " FROM snapshots WHERE tenant_id = $1 AND project_id = $2 AND state = 'committed' \
                 AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
            ))
            .bind(tenant.as_uuid())
            .bind(project.as_uuid())
            .bind(before.map(|b| b.as_uuid()))
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await
            .map_err(CoreError::from)?
        });
        ate_core::page::page_from_rows(rows, limit, SnapshotRow::snapshot, CURSOR_SNAPSHOTS, |s| {
            s.id.to_string()
        })
    }

    async fn list_files(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: SnapshotId,
        query: &FileQuery,
    ) -> Result<Page<FileEntry>, StorageError> {
        let limit = ate_core::page::page_size(query.limit)?;
        let glob = match &query.glob {
            Some(g) => Some(
                globset::GlobBuilder::new(g)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| StorageError::invalid("glob", e.to_string()))?
                    .compile_matcher(),
            ),
            None => None,
        };
        let mut after = query
            .cursor
            .as_ref()
            .map(|c: &Cursor| c.decode(CURSOR_FILES))
            .transpose()?
            .unwrap_or_default();
        let prefix = query.path_prefix.clone().unwrap_or_default();
        let end = prefix_end(&prefix);
        if after < prefix {
            // Start at the prefix: a path equal to it is the first that can match.
            after = String::new();
        }
        may_read(&self.core.tenants, actor, tenant, &PROJECTS_READ).await?;
        self.project_of(tenant, id).await?;
        // With a glob, rows are read in larger batches and filtered here.
        let fetch = if glob.is_some() {
            4 * limit + 1
        } else {
            limit + 1
        };
        let mut items: Vec<FileEntry> = Vec::new();
        let mut more = false;
        loop {
            let rows: Vec<FileRowOut> = self
                .file_page(id, &prefix, &end, &after, query, fetch)
                .await?;
            let exhausted = rows.len() < fetch as usize;
            for row in rows {
                after = row.path.clone();
                if glob.as_ref().is_none_or(|g| g.is_match(&row.path)) {
                    if items.len() == limit as usize {
                        more = true;
                        break;
                    }
                    items.push(row.entry()?);
                }
            }
            if more || exhausted {
                break;
            }
        }
        let next_cursor = match (more, items.last()) {
            (true, Some(last)) => Some(Cursor::encode(CURSOR_FILES, &last.path)),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    async fn file(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: SnapshotId,
        path: &str,
    ) -> Result<FileEntry, StorageError> {
        may_read(&self.core.tenants, actor, tenant, &PROJECTS_READ).await?;
        self.project_of(tenant, id).await?;
        self.file_row(id, path).await?.0.entry()
    }

    async fn read_file(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: SnapshotId,
        path: &str,
        range: Option<Range<u64>>,
    ) -> Result<Vec<u8>, StorageError> {
        if let Some(r) = &range
            && r.start > r.end
        {
            return Err(StorageError::invalid("byte range", "reversed"));
        }
        may_read(&self.core.tenants, actor, tenant, &PROJECTS_READ).await?;
        let project = self.project_of(tenant, id).await?;
        let (row, chunks) = self.file_row(id, path).await?;
        let size = row.size.max(0) as u64;
        let range = range.unwrap_or(0..size);
        let (start, end) = (range.start.min(size), range.end.min(size));
        if end - start > MAX_READ_BYTES {
            return Err(StorageError::invalid(
                "byte range",
                format!("at most {MAX_READ_BYTES} bytes at once; read large files in ranges"),
            ));
        }
        if let Some(target) = row.link_target {
            return Ok(target.as_bytes()[start as usize..end as usize].to_vec());
        }
        read::read_range(&self.core, tenant, project, &chunks, size, start, end).await
    }

    async fn diff(
        &self,
        actor: &Principal,
        tenant: TenantId,
        from: SnapshotId,
        to: SnapshotId,
    ) -> Result<SnapshotDiff, StorageError> {
        may_read(&self.core.tenants, actor, tenant, &PROJECTS_READ).await?;
        self.project_of(tenant, from).await?;
        self.project_of(tenant, to).await?;
        let a = self.signatures(from).await?;
        let b = self.signatures(to).await?;
        let mut diff = SnapshotDiff::default();
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    if x != y {
                        diff.changed.push(x.0.clone());
                    }
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x.0 < y.0 => {
                    diff.removed.push(x.0.clone());
                    i += 1;
                }
                (Some(_), Some(y)) => {
                    diff.added.push(y.0.clone());
                    j += 1;
                }
                (Some(x), None) => {
                    diff.removed.push(x.0.clone());
                    i += 1;
                }
                (None, Some(y)) => {
                    diff.added.push(y.0.clone());
                    j += 1;
                }
                (None, None) => break,
            }
        }
        Ok(diff)
    }

    async fn delete(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: SnapshotId,
    ) -> Result<(), StorageError> {
        actor.require(tenant, &PROJECTS_DELETE)?;
        delete_snapshot(&self.core, actor, tenant, id, None).await
    }

    async fn project_stats(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
    ) -> Result<ProjectStats, StorageError> {
        may_read(&self.core.tenants, actor, tenant, &PROJECTS_READ).await?;
        let row: Option<(i64, i64, i64)> = with_pool!(self.core.db, |pool| {
            sqlx::query_as(
                "SELECT p.stored_bytes, \
                 (SELECT COUNT(*) FROM snapshots s WHERE s.project_id = p.id \
                  AND s.state = 'committed'), \
                 (SELECT CAST(COALESCE(SUM(s.logical_bytes), 0) AS BIGINT) FROM snapshots s \
                  WHERE s.project_id = p.id AND s.state = 'committed') \
                 FROM projects p WHERE p.id = $1 AND p.tenant_id = $2 AND p.deleted_at IS NULL",
            )
            .bind(project.as_uuid())
            .bind(tenant.as_uuid())
            .fetch_optional(pool)
            .await
            .map_err(CoreError::from)?
        });
        let (stored, snapshots, logical) =
            row.ok_or_else(|| CoreError::not_found("project", project))?;
        let latest = self
            .list(actor, tenant, project, &SnapshotQuery::new().limit(1))
            .await?
            .items
            .into_iter()
            .next();
        Ok(ProjectStats {
            project,
            snapshots: snapshots.max(0) as u64,
            logical_bytes: logical.max(0) as u64,
            stored_bytes: stored.max(0) as u64,
            latest,
        })
    }

    async fn tenant_usage(
        &self,
        actor: &Principal,
        tenant: TenantId,
    ) -> Result<TenantUsage, StorageError> {
        may_read(&self.core.tenants, actor, tenant, &PROJECTS_READ).await?;
        let counts: (i64, i64, i64, i64, i64, i64, i64, i64) = with_pool!(self.core.db, |pool| {
            sqlx::query_as(
                "SELECT \
                 (SELECT COUNT(*) FROM projects WHERE tenant_id = $1 AND deleted_at IS NULL), \
                 (SELECT CAST(COALESCE(SUM(stored_bytes), 0) AS BIGINT) FROM projects \
                  WHERE tenant_id = $1), \
                 (SELECT COUNT(*) FROM snapshots WHERE tenant_id = $1 AND state = 'committed'), \
                 (SELECT CAST(COALESCE(SUM(logical_bytes), 0) AS BIGINT) FROM snapshots \
                  WHERE tenant_id = $1 AND state = 'committed'), \
                 (SELECT COUNT(*) FROM objects WHERE tenant_id = $1), \
                 (SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM objects WHERE tenant_id = $1), \
                 (SELECT COUNT(*) FROM analysis_results WHERE tenant_id = $1), \
                 (SELECT CAST(COALESCE(SUM(stored_bytes), 0) AS BIGINT) FROM analysis_payloads \
                  WHERE tenant_id = $1)",
            )
            .bind(tenant.as_uuid())
            .fetch_one(pool)
            .await
            .map_err(CoreError::from)?
        });
        // The quotas as the writes that enforce them read them: under the tenant's lock.
        let quotas = with_write_tx!(self.core.db, |tx| tx
            .lock_tenant(tenant)
            .await?
            .settings
            .quotas);
        let (projects, stored, snapshots, logical, objects, object_bytes, results, payload_bytes) =
            counts;
        let n = |v: i64| v.max(0) as u64;
        Ok(TenantUsage {
            tenant,
            projects: n(projects),
            snapshots: n(snapshots),
            snapshot_logical_bytes: n(logical),
            project_stored_bytes: n(stored),
            objects: n(objects),
            object_bytes: n(object_bytes),
            analysis_results: n(results),
            analysis_payload_bytes: n(payload_bytes),
            storage_bytes: n(stored) + n(object_bytes) + n(payload_bytes),
            users: None,
            quotas,
        })
    }

    async fn collect_garbage(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        grace: chrono::TimeDelta,
    ) -> Result<ChunkGcReport, StorageError> {
        actor.require_platform_admin("collecting a project's garbage")?;
        crate::blob::check_grace(grace)?;
        gc::collect(&self.core, tenant, project, grace).await
    }

    async fn collect_deleted_projects(
        &self,
        actor: &Principal,
        tenant: TenantId,
    ) -> Result<ChunkGcReport, StorageError> {
        actor.require_platform_admin("collecting the garbage of deleted projects")?;
        gc::collect_deleted(&self.core, tenant).await
    }

    async fn verify(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: Option<ProjectId>,
        options: &crate::verify::VerifyOptions,
    ) -> Result<crate::verify::VerifyReport, StorageError> {
        actor.require_platform_admin("verifying codebase projects")?;
        super::verify::verify(&self.core, tenant, project, options).await
    }

    async fn repack(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        options: RepackOptions,
    ) -> Result<RepackReport, StorageError> {
        actor.require(tenant, &crate::keyring::KEY_ROTATE)?;
        if options.min_dead_share.is_nan() || options.min_dead_share < 0.0 {
            return Err(StorageError::invalid(
                "repack options",
                format!(
                    "min_dead_share must be 0 or more, got {}",
                    options.min_dead_share
                ),
            ));
        }
        self.core.tenants.require_active(tenant).await?;
        let mut report = crate::dedup::repack::repack(
            &self.core,
            tenant,
            project,
            options.reencrypt,
            options.min_dead_share,
        )
        .await?;
        if options.reencrypt {
            report.payloads_reencrypted =
                crate::analysis::reencrypt_payloads(&self.core, tenant, project).await?;
        }
        Ok(report)
    }
}
