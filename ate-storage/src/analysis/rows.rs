//! The rows of the analysis tables and the reads every operation shares (macros, since a
//! transaction's type differs by dialect).

use super::{AnalysisResult, AnalysisStatus, Payload};
use crate::StorageError;
use ate_core::audit::{AuditAction, NewAuditEvent, Outcome, ValidEvent};
use ate_core::db::from_micros;
use ate_core::{AnalysisId, CoreError, Principal, ProjectId, SnapshotId, TenantId};
use serde_json::Value;
use uuid::Uuid;

macro_rules! result_columns {
    () => {
        "id, tenant_id, project_id, snapshot_id, kind, analyzer, analyzer_version, status, \
         summary, error, created_by, created_at, updated_at, started_at, finished_at, revision"
    };
}

macro_rules! payload_columns {
    () => {
        "result_id, name, content_type, size, stored_bytes, sha256, created_at"
    };
}

/// Result `$2` of tenant `$1`.
pub(super) const GET: &str = concat!(
    "SELECT ",
    result_columns!(),
    " FROM analysis_results WHERE tenant_id = $1 AND id = $2"
);

/// Result `$1`'s payloads, by name.
pub(super) const PAYLOADS: &str = concat!(
    "SELECT ",
    payload_columns!(),
    " FROM analysis_payloads WHERE result_id = $1 ORDER BY name"
);

#[derive(sqlx::FromRow)]
pub(super) struct ResultRow {
    pub(super) id: Uuid,
    pub(super) tenant_id: Uuid,
    pub(super) project_id: Uuid,
    pub(super) snapshot_id: Option<Uuid>,
    pub(super) kind: String,
    pub(super) analyzer: String,
    pub(super) analyzer_version: String,
    pub(super) status: String,
    pub(super) summary: String,
    pub(super) error: Option<String>,
    pub(super) created_by: String,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) started_at: Option<i64>,
    pub(super) finished_at: Option<i64>,
    pub(super) revision: i64,
}

impl ResultRow {
    pub(super) fn result(self, payloads: Vec<Payload>) -> Result<AnalysisResult, StorageError> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StorageError::Integrity(format!("stored analysis {} has a bad {what}: {e}", self.id))
        };
        Ok(AnalysisResult {
            id: AnalysisId::from_uuid(self.id)?,
            tenant: TenantId::from_uuid(self.tenant_id)?,
            project: ProjectId::from_uuid(self.project_id)?,
            snapshot: self.snapshot_id.map(SnapshotId::from_uuid).transpose()?,
            status: AnalysisStatus::parse(&self.status).map_err(|e| corrupt("status", &e))?,
            summary: serde_json::from_str(&self.summary).map_err(|e| corrupt("summary", &e))?,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
            started_at: self.started_at.map(from_micros).transpose()?,
            finished_at: self.finished_at.map(from_micros).transpose()?,
            kind: self.kind,
            analyzer: self.analyzer,
            analyzer_version: self.analyzer_version,
            error: self.error,
            payloads,
            created_by: self.created_by,
            revision: self.revision,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct PayloadRow {
    pub(super) result_id: Uuid,
    pub(super) name: String,
    pub(super) content_type: String,
    pub(super) size: i64,
    pub(super) stored_bytes: i64,
    pub(super) sha256: Vec<u8>,
    pub(super) created_at: i64,
}

impl PayloadRow {
    pub(super) fn payload(self) -> Result<Payload, StorageError> {
        Ok(Payload {
            name: self.name,
            content_type: self.content_type,
            size: self.size.max(0) as u64,
            stored_bytes: self.stored_bytes.max(0) as u64,
            sha256: hex::encode(&self.sha256),
            created_at: from_micros(self.created_at)?,
        })
    }
}

/// Reads result `$id` of tenant `$tenant` with its payloads through `$exec` (a pool or a
/// transaction). Evaluates to `Option<AnalysisResult>`; errors return at once.
macro_rules! read_result {
    ($exec:expr, $tenant:expr, $id:expr) => {{
        let row: Option<ResultRow> = sqlx::query_as(GET)
            .bind($tenant.as_uuid())
            .bind($id.as_uuid())
            .fetch_optional(&mut *$exec)
            .await
            .map_err(CoreError::from)?;
        match row {
            None => None,
            Some(row) => {
                let payloads: Vec<PayloadRow> = sqlx::query_as(PAYLOADS)
                    .bind($id.as_uuid())
                    .fetch_all(&mut *$exec)
                    .await
                    .map_err(CoreError::from)?;
                let payloads = payloads
                    .into_iter()
                    .map(PayloadRow::payload)
                    .collect::<Result<Vec<_>, _>>()?;
                Some(row.result(payloads)?)
            }
        }
    }};
}

/// In a write transaction: locks the tenant (it must be active) and reads result `$id`,
/// checking `$expected` (a revision). Evaluates to the result; `NotFound` or `Conflict`
/// return at once.
macro_rules! locked_result {
    ($tx:ident, $tenant:expr, $id:expr, $expected:expr) => {{
        $tx.lock_tenant($tenant).await?.require_active()?;
        let found = read_result!($tx, $tenant, $id);
        let r = found.ok_or_else(|| CoreError::not_found("analysis result", $id))?;
        check_revision(&r, $expected)?;
        r
    }};
}

pub(super) fn check_revision(
    r: &AnalysisResult,
    expected: Option<i64>,
) -> Result<(), StorageError> {
    match expected {
        Some(revision) if revision != r.revision => Err(CoreError::Conflict(format!(
            "analysis result {} is at revision {}, not {revision}",
            r.id, r.revision
        ))
        .into()),
        _ => Ok(()),
    }
}

pub(super) fn unfinished(r: &AnalysisResult) -> Result<(), StorageError> {
    if r.status.is_finished() {
        return Err(CoreError::Conflict(format!(
            "analysis result {} has finished ({}); it can no longer change",
            r.id, r.status
        ))
        .into());
    }
    Ok(())
}

pub(super) fn event(
    tenant: TenantId,
    actor: &Principal,
    action: AuditAction,
    id: AnalysisId,
    metadata: Value,
) -> Result<ValidEvent, StorageError> {
    Ok(
        NewAuditEvent::new(tenant, actor.subject(), action, Outcome::Success)
            .target(format!("analysis:{id}"))
            .metadata(metadata)
            .validate()?,
    )
}

/// The audit event of creating result `id` of `project` from `spec`.
pub(super) fn created_event(
    tenant: TenantId,
    actor: &Principal,
    id: AnalysisId,
    project: ate_core::ProjectId,
    spec: &super::AnalysisSpec,
) -> Result<ValidEvent, StorageError> {
    event(
        tenant,
        actor,
        ate_core::audit::actions::ANALYSIS_CREATED,
        id,
        serde_json::json!({
            "project": project,
            "snapshot": spec.snapshot,
            "kind": spec.kind,
            "analyzer": spec.analyzer,
            "analyzer_version": spec.analyzer_version,
            "status": spec.status,
        }),
    )
}
