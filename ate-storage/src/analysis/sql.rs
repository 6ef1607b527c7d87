//! [`SqlAnalysisStore`]: results in the `analysis_results` and `analysis_payloads` tables
//! of a [`Db`], payload contents in a [`BlobStore`].
//!
//! Every write takes the tenant's lock ([`CoreTx::lock_tenant`]) first, as snapshot imports
//! and deletions do: a result is never recorded on a snapshot being deleted, and payload
//! bytes are checked against the quota with every other writer's bytes in view.

use super::payload::{self, Source, Target};
use super::rows::{
    GET, PAYLOADS, PayloadRow, ResultRow, check_revision, created_event, event, unfinished,
};
use super::{
    ANALYSIS_DELETE, ANALYSIS_READ, ANALYSIS_WRITE, AnalysisBatch, AnalysisQuery, AnalysisResult,
    AnalysisSpec, AnalysisStatus, AnalysisStore, AnalysisUpdate, MAX_PAYLOADS, Payload, valid,
};
use crate::StorageError;
use crate::blob::BlobStore;
use crate::projects::{ProjectKeyring, SnapshotCore, TENANT_BYTES_USED};
use crate::sql::ph_list;
use ate_core::audit::actions;
use ate_core::db::to_micros;
use ate_core::{
    AnalysisId, Classify, CoreError, CoreTx, Db, ErrorKind, Page, Principal, ProjectId, TenantId,
    with_pool, with_write_tx,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use uuid::Uuid;

const CURSOR_KIND: &str = "analysis";

/// A row if project `$1` of tenant `$2` exists and is not deleted.
pub(super) const LIVE_PROJECT: &str = "SELECT CAST(1 AS BIGINT) FROM projects WHERE id = $1 \
     AND tenant_id = $2 AND deleted_at IS NULL";

/// A listing: tenant `$1`, project `$2`, each filter `$3`..`$7` ignored when NULL, before
/// id `$8`, at most `$9`, newest first.
const LIST: &str = concat!(
    "SELECT ",
    result_columns!(),
    " FROM analysis_results WHERE tenant_id = $1 AND project_id = $2 \
     AND ($3 IS NULL OR snapshot_id = $3) AND ($4 IS NULL OR kind = $4) \
     AND ($5 IS NULL OR analyzer = $5) AND ($6 IS NULL OR analyzer_version = $6) \
     AND ($7 IS NULL OR status = $7) AND ($8 IS NULL OR id < $8) \
     ORDER BY id DESC LIMIT $9"
);

/// Analysis results in a [`Db`] (SQLite or PostgreSQL), payloads in a [`BlobStore`] under
/// per-project keys; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqlAnalysisStore {
    pub(super) core: Arc<SnapshotCore>,
}

impl SqlAnalysisStore {
    /// Results in `db` (running `ate-storage`'s migrations), payloads in `blobs`, keys from
    /// `keys`.
    pub async fn open(
        db: Db,
        blobs: BlobStore,
        keys: ProjectKeyring,
    ) -> Result<Self, StorageError> {
        Ok(SqlAnalysisStore {
            core: Arc::new(SnapshotCore::open(db, blobs, keys).await?),
        })
    }

    /// Uses `clock` for the times it records.
    pub fn with_clock(self, clock: Arc<dyn ate_core::Clock>) -> Self {
        SqlAnalysisStore {
            core: Arc::new(self.core.with_clock(clock)),
        }
    }

    async fn fetch(
        &self,
        tenant: TenantId,
        id: AnalysisId,
    ) -> Result<AnalysisResult, StorageError> {
        let found = with_pool!(self.core.db, |pool| {
            let mut conn = pool.acquire().await.map_err(CoreError::from)?;
            read_result!(conn, tenant, id)
        });
        found.ok_or_else(|| CoreError::not_found("analysis result", id).into())
    }

    /// The payloads of `ids`, by result.
    async fn payloads_of(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<Payload>>, StorageError> {
        let mut out: HashMap<Uuid, Vec<Payload>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let db = &self.core.db;
        let sql = format!(
            concat!(
                "SELECT ",
                payload_columns!(),
                " FROM analysis_payloads WHERE result_id IN ({}) ORDER BY result_id, name"
            ),
            ph_list(db, 1, ids.len())
        );
        let rows: Vec<PayloadRow> = with_pool!(self.core.db, |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
            for id in ids {
                q = q.bind(*id);
            }
            q.fetch_all(pool).await.map_err(CoreError::from)?
        });
        for row in rows {
            let result = row.result_id;
            out.entry(result).or_default().push(row.payload()?);
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl AnalysisStore for SqlAnalysisStore {
    async fn apply_batch(
        &self,
        actor: &Principal,
        tenant: TenantId,
        batch: &AnalysisBatch,
    ) -> Result<Vec<AnalysisResult>, StorageError> {
        self.write_batch(actor, tenant, batch).await
    }

    async fn create(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        spec: &AnalysisSpec,
    ) -> Result<AnalysisResult, StorageError> {
        actor.require(tenant, &ANALYSIS_WRITE)?;
        spec.validate()?;
        let now = self.core.clock.now();
        let id = AnalysisId::new();
        let event = created_event(tenant, actor, id, project, spec)?;
        let created = with_write_tx!(self.core.db, |tx| {
            tx.lock_tenant(tenant).await?.require_active()?;
            insert_result!(tx, actor, tenant, project, spec, id, now, event)
        });
        Ok(created)
    }

    async fn get(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: AnalysisId,
    ) -> Result<AnalysisResult, StorageError> {
        crate::projects::may_read(&self.core.tenants, actor, tenant, &ANALYSIS_READ).await?;
        self.fetch(tenant, id).await
    }

    async fn list(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        query: &AnalysisQuery,
    ) -> Result<Page<AnalysisResult>, StorageError> {
        let limit = ate_core::page::page_size(query.limit)?;
        if let Some(kind) = &query.kind {
            valid::kind(kind)?;
        }
        if let Some(analyzer) = &query.analyzer {
            valid::label("analyzer", analyzer, super::MAX_ANALYZER_BYTES)?;
        }
        if let Some(version) = &query.analyzer_version {
            valid::label("analyzer version", version, super::MAX_VERSION_BYTES)?;
        }
        let before = match &query.cursor {
            None => None,
            Some(c) => Some(c.decode(CURSOR_KIND)?.parse::<AnalysisId>()?.as_uuid()),
        };
        crate::projects::may_read(&self.core.tenants, actor, tenant, &ANALYSIS_READ).await?;
        let rows: Vec<ResultRow> = with_pool!(self.core.db, |pool| {
            let known: Option<i64> = sqlx::query_scalar(LIVE_PROJECT)
                .bind(project.as_uuid())
                .bind(tenant.as_uuid())
                .fetch_optional(pool)
                .await
                .map_err(CoreError::from)?;
            if known.is_none() {
                return Err(CoreError::not_found("project", project).into());
            }
            sqlx::query_as(LIST)
                .bind(tenant.as_uuid())
                .bind(project.as_uuid())
                .bind(query.snapshot.map(|s| s.as_uuid()))
                .bind(query.kind.as_deref())
                .bind(query.analyzer.as_deref())
                .bind(query.analyzer_version.as_deref())
                .bind(query.status.map(AnalysisStatus::as_str))
                .bind(before)
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await
                .map_err(CoreError::from)?
        });
        let ids: Vec<Uuid> = rows.iter().take(limit as usize).map(|r| r.id).collect();
        let mut payloads = self.payloads_of(&ids).await?;
        ate_core::page::page_from_rows(
            rows,
            limit,
            |row| {
                let p = payloads.remove(&row.id).unwrap_or_default();
                row.result(p)
            },
            CURSOR_KIND,
            |r| r.id.to_string(),
        )
    }

    async fn update(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: AnalysisId,
        update: &AnalysisUpdate,
    ) -> Result<AnalysisResult, StorageError> {
        actor.require(tenant, &ANALYSIS_WRITE)?;
        update.validate()?;
        let now = self.core.clock.now();
        let updated = with_write_tx!(self.core.db, |tx| {
            let current = locked_result!(tx, tenant, id, update.expected_revision);
            update_result!(tx, actor, tenant, id, update, current, now)
        });
        Ok(updated)
    }

    async fn delete(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: AnalysisId,
        expected_revision: Option<i64>,
    ) -> Result<(), StorageError> {
        actor.require(tenant, &ANALYSIS_DELETE)?;
        delete_result(&self.core, actor, tenant, id, expected_revision, None).await
    }

    async fn put_payload(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: AnalysisId,
        name: &str,
        content_type: &str,
        content: &mut (dyn AsyncRead + Unpin + Send),
    ) -> Result<Payload, StorageError> {
        actor.require(tenant, &ANALYSIS_WRITE)?;
        valid::payload_name(name)?;
        valid::content_type(content_type)?;
        // Checked before the bytes stream (so a doomed upload costs nothing), and again
        // when the payload is recorded.
        let (project, headroom) = with_write_tx!(self.core.db, |tx| {
            let locked = tx.lock_tenant(tenant).await?;
            locked.require_active()?;
            let quotas = locked.settings.quotas;
            let r = read_result!(tx, tenant, id)
                .ok_or_else(|| CoreError::not_found("analysis result", id))?;
            room_for(&r, name)?;
            let headroom = match quotas.max_storage_bytes {
                None => None,
                Some(max) => {
                    let used: i64 = sqlx::query_scalar(TENANT_BYTES_USED)
                        .bind(tenant.as_uuid())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(CoreError::from)?;
                    Some(max.saturating_sub(used.max(0) as u64))
                }
            };
            (r.project, headroom)
        });
        let key = self.core.keys.encryption_key(tenant, project).await?;
        let blob = Uuid::now_v7();
        let target = Target {
            blobs: &self.core.blobs,
            cipher: &self.core.cipher,
            dir: payload::payload_dir(tenant, project),
            blob,
            key: key.expose_secret(),
            context: payload::context(tenant, project, id.as_uuid(), blob, key.version),
            headroom,
        };
        let written = payload::write(target, content).await?;
        let recorded = self
            .record_payload(
                actor,
                tenant,
                id,
                name,
                content_type,
                blob,
                key.version,
                &written,
            )
            .await;
        match recorded {
            Ok(now) => Ok(Payload {
                name: name.to_owned(),
                content_type: content_type.to_owned(),
                size: written.size,
                stored_bytes: written.stored_bytes,
                sha256: hex::encode(written.sha256),
                created_at: now,
            }),
            Err(e) => {
                delete_blobs(&self.core, tenant, project, &[blob]).await;
                Err(e)
            }
        }
    }

    async fn read_payload(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: AnalysisId,
        name: &str,
        out: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<Payload, StorageError> {
        crate::projects::may_read(&self.core.tenants, actor, tenant, &ANALYSIS_READ).await?;
        valid::payload_name(name)?;
        let row: Option<(Uuid, Uuid, i64, PayloadRow)> = with_pool!(self.core.db, |pool| {
            let head: Option<(Uuid, Uuid, i64)> = sqlx::query_as(
                "SELECT r.project_id, p.blob_id, p.key_version FROM analysis_payloads p \
                 JOIN analysis_results r ON r.id = p.result_id \
                 WHERE r.tenant_id = $1 AND r.id = $2 AND p.name = $3",
            )
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .bind(name)
            .fetch_optional(pool)
            .await
            .map_err(CoreError::from)?;
            match head {
                None => None,
                Some((project, blob, version)) => {
                    let payload: PayloadRow = sqlx::query_as(concat!(
                        "SELECT ",
                        payload_columns!(),
                        " FROM analysis_payloads WHERE result_id = $1 AND name = $2"
                    ))
                    .bind(id.as_uuid())
                    .bind(name)
                    .fetch_one(pool)
                    .await
                    .map_err(CoreError::from)?;
                    Some((project, blob, version, payload))
                }
            }
        });
        let (project, blob, version, row) =
            row.ok_or_else(|| CoreError::not_found("payload", format!("{name} of {id}")))?;
        let project = ProjectId::from_uuid(project)?;
        let version = u32::try_from(version).map_err(|_| {
            StorageError::Integrity(format!("payload {name} of {id} has key version {version}"))
        })?;
        let key = self
            .core
            .keys
            .decryption_key(tenant, project, version)
            .await?;
        let sha256 = row.sha256.clone();
        let source = Source {
            blobs: &self.core.blobs,
            cipher: &self.core.cipher,
            name: payload::payload_name(tenant, project, blob),
            stored_bytes: row.stored_bytes.max(0) as u64,
            key: key.expose_secret(),
            context: payload::context(tenant, project, id.as_uuid(), blob, version),
            size: row.size.max(0) as u64,
            sha256: &sha256,
        };
        payload::read(source, out).await?;
        row.payload()
    }
}

/// `Conflict` for a finished result, `AlreadyExists` for a payload name it holds,
/// `InvalidInput` once it holds [`MAX_PAYLOADS`].
fn room_for(r: &AnalysisResult, name: &str) -> Result<(), StorageError> {
    unfinished(r)?;
    if r.payloads.iter().any(|p| p.name == name) {
        return Err(CoreError::AlreadyExists {
            what: "payload",
            key: format!("{name} of {}", r.id),
        }
        .into());
    }
    if r.payloads.len() >= MAX_PAYLOADS {
        return Err(StorageError::invalid(
            "payload",
            format!("a result holds at most {MAX_PAYLOADS} payloads"),
        ));
    }
    Ok(())
}

impl SqlAnalysisStore {
    /// Records a payload whose blob is written: the result still has room for it and the
    /// tenant's quota allows its bytes.
    #[allow(clippy::too_many_arguments)]
    async fn record_payload(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: AnalysisId,
        name: &str,
        content_type: &str,
        blob: Uuid,
        key_version: u32,
        written: &payload::Written,
    ) -> Result<chrono::DateTime<chrono::Utc>, StorageError> {
        let now = self.core.clock.now();
        let event = event(
            tenant,
            actor,
            actions::ANALYSIS_UPDATED,
            id,
            json!({"payload": name, "size": written.size}),
        )?;
        let stored = i64::try_from(written.stored_bytes)
            .map_err(|_| StorageError::invalid("payload", "too large"))?;
        with_write_tx!(self.core.db, |tx| {
            let locked = tx.lock_tenant(tenant).await?;
            locked.require_active()?;
            let quotas = locked.settings.quotas;
            let r = read_result!(tx, tenant, id)
                .ok_or_else(|| CoreError::not_found("analysis result", id))?;
            room_for(&r, name)?;
            // Garbage collection deletes unrecorded blobs under this same lock: if it took
            // this one (an upload that outlasted its grace period), say so.
            let blob_name = payload::payload_name(tenant, r.project, blob);
            let present = match self.core.blobs.size_named(&blob_name).await {
                Ok(n) => n == written.stored_bytes,
                Err(e) if e.kind() == ErrorKind::NotFound => false,
                Err(e) => return Err(e),
            };
            if !present {
                return Err(CoreError::Conflict(format!(
                    "payload {name} of {id} was removed by garbage collection before it was \
                     recorded (the upload outlasted the grace period); upload it again"
                ))
                .into());
            }
            if let Some(max) = quotas.max_storage_bytes {
                let used: i64 = sqlx::query_scalar(TENANT_BYTES_USED)
                    .bind(tenant.as_uuid())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(CoreError::from)?;
                if (used + stored) as u64 > max {
                    return Err(CoreError::QuotaExceeded(format!(
                        "tenant {tenant} may store at most {max} bytes; this payload would make {}",
                        used + stored
                    ))
                    .into());
                }
            }
            sqlx::query(
                "INSERT INTO analysis_payloads (result_id, name, tenant_id, blob_id, \
                 content_type, size, stored_bytes, sha256, key_version, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(id.as_uuid())
            .bind(name)
            .bind(tenant.as_uuid())
            .bind(blob)
            .bind(content_type)
            .bind(written.size as i64)
            .bind(stored)
            .bind(&written.sha256[..])
            .bind(i64::from(key_version))
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await
            .map_err(CoreError::from)?;
            sqlx::query(
                "UPDATE analysis_results SET updated_at = $2, revision = revision + 1 \
                 WHERE id = $1",
            )
            .bind(id.as_uuid())
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await
            .map_err(CoreError::from)?;
            tx.append_audit(&event, now).await?;
        });
        Ok(now)
    }
}

/// Deletes result `id` and its payloads as `actor` (whose permission the caller checked),
/// for `reason` (recorded in the audit event; `None` when asked for directly). `Conflict`
/// under a legal hold.
pub(crate) async fn delete_result(
    core: &SnapshotCore,
    actor: &Principal,
    tenant: TenantId,
    id: AnalysisId,
    expected_revision: Option<i64>,
    reason: Option<&str>,
) -> Result<(), StorageError> {
    let now = core.clock.now();
    let (project, blobs) = with_write_tx!(core.db, |tx| {
        let current = locked_result!(tx, tenant, id, expected_revision);
        crate::retention::refuse_if_held!(tx, tenant, current.project.as_uuid());
        let blobs: Vec<Uuid> =
            sqlx::query_scalar("SELECT blob_id FROM analysis_payloads WHERE result_id = $1")
                .bind(id.as_uuid())
                .fetch_all(&mut *tx)
                .await
                .map_err(CoreError::from)?;
        sqlx::query("DELETE FROM analysis_results WHERE id = $1")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(CoreError::from)?;
        let event = event(
            tenant,
            actor,
            actions::ANALYSIS_DELETED,
            id,
            json!({
                "project": current.project,
                "kind": current.kind,
                "payloads": blobs.len(),
                "reason": reason,
            }),
        )?;
        tx.append_audit(&event, now).await?;
        (current.project, blobs)
    });
    delete_blobs(core, tenant, project, &blobs).await;
    Ok(())
}

/// Deletes payload blobs after their rows went; one left behind (a failing backend) is
/// unrecorded, so garbage collection removes it.
async fn delete_blobs(core: &SnapshotCore, tenant: TenantId, project: ProjectId, blobs: &[Uuid]) {
    for blob in blobs {
        let name = payload::payload_name(tenant, project, *blob);
        if let Err(e) = core.blobs.delete_named(&name).await {
            tracing::warn!(error = %e, blob = %name, "analysis payload left for garbage collection");
        }
    }
}
