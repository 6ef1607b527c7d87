//! [`SqlRetentionStore`]: policies and holds in the `projects` and `tenant_retention`
//! tables, the sweep over the snapshot and analysis stores' deletions.

use super::{
    LEGAL_HOLD_MANAGE, LegalHold, MAX_DELETIONS_PER_RUN, MAX_HOLD_REASON_BYTES, RETENTION_MANAGE,
    RetentionPolicy, RetentionReport, RetentionRun, RetentionScope, RetentionStore,
};
use crate::StorageError;
use crate::blob::BlobStore;
use crate::projects::{PROJECTS_READ, ProjectKeyring, SnapshotCore, delete_snapshot, may_read};
use ate_core::audit::{AuditAction, NewAuditEvent, Outcome, actions};
use ate_core::db::to_micros;
use ate_core::{
    AnalysisId, Classify, Clock, CoreError, CoreTx, Cursor, Db, ErrorKind, Principal, ProjectId,
    SnapshotId, TenantId, TenantStore, with_pool, with_write_tx,
};
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

const CURSOR_KIND: &str = "retention";
/// Projects read per query.
const PROJECT_BATCH: i64 = 200;
/// Why the sweep deletes, in audit events.
const REASON: &str = "retention";

/// Retention policies and legal holds in a [`Db`], applied to the snapshots and analysis
/// results in it; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqlRetentionStore {
    core: Arc<SnapshotCore>,
}

/// A document column: `retention` or `legal_hold`.
#[derive(Clone, Copy)]
enum Column {
    Retention,
    LegalHold,
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Column::Retention => "retention",
            Column::LegalHold => "legal_hold",
        }
    }
}

impl SqlRetentionStore {
    /// Policies in `db` (running `ate-storage`'s migrations); the sweep deletes blobs from
    /// `blobs` with keys from `keys`, as the snapshot and analysis stores do.
    pub async fn open(
        db: Db,
        blobs: BlobStore,
        keys: ProjectKeyring,
    ) -> Result<Self, StorageError> {
        Ok(SqlRetentionStore {
            core: Arc::new(SnapshotCore::open(db, blobs, keys).await?),
        })
    }

    /// Uses `clock` for ages and the times it records.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        SqlRetentionStore {
            core: Arc::new(self.core.with_clock(clock)),
        }
    }

    /// Reads `column` of `scope` (JSON text or NULL); `NotFound` for a project that is not
    /// the tenant's.
    async fn read(
        &self,
        tenant: TenantId,
        scope: RetentionScope,
        column: Column,
    ) -> Result<Option<String>, StorageError> {
        let sql = match (scope, column) {
            (RetentionScope::Tenant, Column::Retention) => {
                "SELECT retention FROM tenant_retention WHERE tenant_id = $1 AND $2 IS NULL"
            }
            (RetentionScope::Tenant, Column::LegalHold) => {
                "SELECT legal_hold FROM tenant_retention WHERE tenant_id = $1 AND $2 IS NULL"
            }
            (RetentionScope::Project(_), Column::Retention) => {
                "SELECT retention FROM projects WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
            }
            (RetentionScope::Project(_), Column::LegalHold) => {
                "SELECT legal_hold FROM projects WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
            }
        };
        let project = match scope {
            RetentionScope::Tenant => None,
            RetentionScope::Project(p) => Some(p.as_uuid()),
        };
        let row: Option<Option<String>> = with_pool!(self.core.db, |pool| {
            sqlx::query_scalar(sql)
                .bind(tenant.as_uuid())
                .bind(project)
                .fetch_optional(pool)
                .await
                .map_err(CoreError::from)?
        });
        match (row, scope) {
            (None, RetentionScope::Project(p)) => Err(CoreError::not_found("project", p).into()),
            (row, _) => Ok(row.flatten()),
        }
    }

    /// Writes `value` (JSON text or NULL) into `column` of `scope` under the tenant's lock,
    /// with `event`. `check` sees the current value first and may refuse.
    async fn write(
        &self,
        tenant: TenantId,
        scope: RetentionScope,
        column: Column,
        value: Option<String>,
        event: NewAuditEvent,
        check: impl Fn(Option<&str>) -> Result<(), StorageError> + Send + Sync,
    ) -> Result<(), StorageError> {
        let now = self.core.clock.now();
        let event = event.validate()?;
        let column_name = column.name();
        with_write_tx!(self.core.db, |tx| {
            tx.lock_tenant(tenant).await?.require_active()?;
            let current: Option<Option<String>> = match scope {
                RetentionScope::Tenant => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT {column_name} FROM tenant_retention WHERE tenant_id = $1"
                )))
                .bind(tenant.as_uuid())
                .fetch_optional(&mut *tx)
                .await
                .map_err(CoreError::from)?,
                RetentionScope::Project(p) => {
                    let row: Option<Option<String>> =
                        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                            "SELECT {column_name} FROM projects WHERE tenant_id = $1 AND id = $2 \
                             AND deleted_at IS NULL"
                        )))
                        .bind(tenant.as_uuid())
                        .bind(p.as_uuid())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(CoreError::from)?;
                    if row.is_none() {
                        return Err(CoreError::not_found("project", p).into());
                    }
                    row
                }
            };
            check(current.flatten().as_deref())?;
            match scope {
                RetentionScope::Tenant => {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO tenant_retention (tenant_id, {column_name}) VALUES ($1, $2) \
                         ON CONFLICT (tenant_id) DO UPDATE SET {column_name} = $2"
                    )))
                    .bind(tenant.as_uuid())
                    .bind(value.as_deref())
                    .execute(&mut *tx)
                    .await
                    .map_err(CoreError::from)?;
                }
                RetentionScope::Project(p) => {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE projects SET {column_name} = $3 WHERE tenant_id = $1 AND id = $2"
                    )))
                    .bind(tenant.as_uuid())
                    .bind(p.as_uuid())
                    .bind(value.as_deref())
                    .execute(&mut *tx)
                    .await
                    .map_err(CoreError::from)?;
                }
            }
            tx.append_audit(&event, now).await?;
        });
        Ok(())
    }
}

/// A cursor that resumes after project `after` (from the first project if `None`).
fn resume_after(after: Option<Uuid>) -> Cursor {
    Cursor::encode(
        CURSOR_KIND,
        &after.map(|a| a.to_string()).unwrap_or_default(),
    )
}

fn scope_target(tenant: TenantId, scope: RetentionScope) -> String {
    match scope {
        RetentionScope::Tenant => format!("tenant:{tenant}"),
        RetentionScope::Project(p) => format!("project:{p}"),
    }
}

fn audit(
    tenant: TenantId,
    actor: &Principal,
    action: AuditAction,
    scope: RetentionScope,
    metadata: Value,
) -> NewAuditEvent {
    NewAuditEvent::new(tenant, actor.subject(), action, Outcome::Success)
        .target(scope_target(tenant, scope))
        .metadata(metadata)
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, StorageError> {
    serde_json::from_str(text)
        .map_err(|e| StorageError::Integrity(format!("stored {what} is unreadable: {e}")))
}

fn to_json(value: &impl serde::Serialize) -> Result<String, StorageError> {
    serde_json::to_string(value).map_err(|e| StorageError::invalid("retention", e.to_string()))
}

#[async_trait::async_trait]
impl RetentionStore for SqlRetentionStore {
    async fn set_policy(
        &self,
        actor: &Principal,
        tenant: TenantId,
        scope: RetentionScope,
        policy: Option<&RetentionPolicy>,
    ) -> Result<(), StorageError> {
        actor.require(tenant, &RETENTION_MANAGE)?;
        if let Some(p) = policy {
            p.validate()?;
        }
        let value = policy.map(to_json).transpose()?;
        let event = audit(
            tenant,
            actor,
            actions::RETENTION_POLICY_SET,
            scope,
            json!({ "policy": policy }),
        );
        self.write(tenant, scope, Column::Retention, value, event, |_| Ok(()))
            .await
    }

    async fn policy(
        &self,
        actor: &Principal,
        tenant: TenantId,
        scope: RetentionScope,
    ) -> Result<Option<RetentionPolicy>, StorageError> {
        may_read(&self.core.tenants, actor, tenant, &PROJECTS_READ).await?;
        self.read(tenant, scope, Column::Retention)
            .await?
            .map(|t| parse("retention policy", &t))
            .transpose()
    }

    async fn place_hold(
        &self,
        actor: &Principal,
        tenant: TenantId,
        scope: RetentionScope,
        reason: &str,
    ) -> Result<LegalHold, StorageError> {
        actor.require(tenant, &LEGAL_HOLD_MANAGE)?;
        if reason.trim().is_empty() || reason.len() > MAX_HOLD_REASON_BYTES || reason.contains('\0')
        {
            return Err(StorageError::invalid(
                "legal hold reason",
                format!("must be 1 to {MAX_HOLD_REASON_BYTES} bytes, not blank, without NUL"),
            ));
        }
        let hold = LegalHold {
            reason: reason.to_owned(),
            placed_by: actor.subject().to_owned(),
            placed_at: self.core.clock.now(),
        };
        let event = audit(
            tenant,
            actor,
            actions::LEGAL_HOLD_PLACED,
            scope,
            json!({ "reason": reason }),
        );
        self.write(
            tenant,
            scope,
            Column::LegalHold,
            Some(to_json(&hold)?),
            event,
            |current| match current {
                Some(_) => Err(CoreError::Conflict(format!(
                    "{} is already under legal hold",
                    scope_target(tenant, scope)
                ))
                .into()),
                None => Ok(()),
            },
        )
        .await?;
        Ok(hold)
    }

    async fn release_hold(
        &self,
        actor: &Principal,
        tenant: TenantId,
        scope: RetentionScope,
    ) -> Result<(), StorageError> {
        actor.require(tenant, &LEGAL_HOLD_MANAGE)?;
        let event = audit(
            tenant,
            actor,
            actions::LEGAL_HOLD_RELEASED,
            scope,
            json!({}),
        );
        self.write(
            tenant,
            scope,
            Column::LegalHold,
            None,
            event,
            |current| match current {
                Some(_) => Ok(()),
                None => Err(CoreError::not_found("legal hold", scope_target(tenant, scope)).into()),
            },
        )
        .await
    }

    async fn hold(
        &self,
        actor: &Principal,
        tenant: TenantId,
        scope: RetentionScope,
    ) -> Result<Option<LegalHold>, StorageError> {
        may_read(&self.core.tenants, actor, tenant, &PROJECTS_READ).await?;
        self.read(tenant, scope, Column::LegalHold)
            .await?
            .map(|t| parse("legal hold", &t))
            .transpose()
    }

    async fn apply_retention(
        &self,
        actor: &Principal,
        tenant: TenantId,
        run: &RetentionRun,
    ) -> Result<RetentionReport, StorageError> {
        actor.require(tenant, &RETENTION_MANAGE)?;
        let budget = match run.max_deletions {
            None => MAX_DELETIONS_PER_RUN,
            Some(n) if (1..=MAX_DELETIONS_PER_RUN).contains(&n) => n,
            Some(n) => {
                return Err(StorageError::invalid(
                    "retention run",
                    format!("max_deletions must be 1 to {MAX_DELETIONS_PER_RUN}, got {n}"),
                ));
            }
        } as usize;
        let mut after: Option<Uuid> = match &run.cursor {
            None => None,
            Some(c) => match c.decode(CURSOR_KIND)? {
                position if position.is_empty() => None,
                position => Some(position.parse::<ProjectId>()?.as_uuid()),
            },
        };
        self.core.tenants.require_active(tenant).await?;
        let mut report = RetentionReport {
            dry_run: run.dry_run,
            ..RetentionReport::default()
        };
        if self
            .read(tenant, RetentionScope::Tenant, Column::LegalHold)
            .await?
            .is_some()
        {
            report.tenant_held = true;
            return Ok(report);
        }
        let tenant_policy: Option<RetentionPolicy> = self
            .read(tenant, RetentionScope::Tenant, Column::Retention)
            .await?
            .map(|t| parse("retention policy", &t))
            .transpose()?;
        let now = self.core.clock.now();
        let mut done = 0usize;
        loop {
            let projects: Vec<(Uuid, Option<String>, Option<String>)> =
                with_pool!(self.core.db, |pool| {
                    sqlx::query_as(
                        "SELECT id, retention, legal_hold FROM projects WHERE tenant_id = $1 \
                         AND deleted_at IS NULL \
                         AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
                    )
                    .bind(tenant.as_uuid())
                    .bind(after)
                    .bind(PROJECT_BATCH)
                    .fetch_all(pool)
                    .await
                    .map_err(CoreError::from)?
                });
            if projects.is_empty() {
                return Ok(report);
            }
            for (id, policy, hold) in projects {
                let project = ProjectId::from_uuid(id)?;
                report.projects_scanned += 1;
                if hold.is_some() {
                    report.held_projects.push(project);
                    after = Some(id);
                    continue;
                }
                let policy = match policy {
                    Some(text) => Some(parse::<RetentionPolicy>("retention policy", &text)?),
                    None => tenant_policy,
                };
                if let Some(policy) = policy {
                    let (snapshots, results) = self.doomed(project, &policy, now).await?;
                    for snapshot in snapshots {
                        if done == budget {
                            report.next_cursor = Some(resume_after(after));
                            return Ok(report);
                        }
                        if !run.dry_run {
                            match delete_snapshot(&self.core, actor, tenant, snapshot, Some(REASON))
                                .await
                            {
                                Ok(()) => {}
                                // Deleted meanwhile by someone else.
                                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                                Err(e) => return Err(e),
                            }
                        }
                        report.snapshots.push(snapshot);
                        done += 1;
                    }
                    for result in results {
                        if done == budget {
                            report.next_cursor = Some(resume_after(after));
                            return Ok(report);
                        }
                        if !run.dry_run {
                            match crate::analysis::delete_result(
                                &self.core,
                                actor,
                                tenant,
                                result,
                                None,
                                Some(REASON),
                            )
                            .await
                            {
                                Ok(()) => {}
                                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                                Err(e) => return Err(e),
                            }
                        }
                        report.analysis_results.push(result);
                        done += 1;
                    }
                }
                after = Some(id);
            }
        }
    }
}

impl SqlRetentionStore {
    /// What `policy` removes from `project` at `now`: committed snapshots (newest first)
    /// and finished analysis results (oldest first) that are not also on those snapshots.
    async fn doomed(
        &self,
        project: ProjectId,
        policy: &RetentionPolicy,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Vec<SnapshotId>, Vec<AnalysisId>), StorageError> {
        let mut snapshots = Vec::new();
        let mut gone: Vec<Uuid> = Vec::new();
        if policy.keep_last.is_some() || policy.keep_days.is_some() {
            let rows: Vec<(Uuid, i64)> = with_pool!(self.core.db, |pool| {
                sqlx::query_as(
                    "SELECT id, COALESCE(committed_at, created_at) FROM snapshots \
                     WHERE project_id = $1 AND state = 'committed' \
                     ORDER BY COALESCE(committed_at, created_at) DESC, id DESC",
                )
                .bind(project.as_uuid())
                .fetch_all(pool)
                .await
                .map_err(CoreError::from)?
            });
            let young_from = policy
                .keep_days
                .map(|d| to_micros(now - chrono::TimeDelta::days(i64::from(d))));
            for (rank, (id, at)) in rows.into_iter().enumerate() {
                let kept_by_count = policy.keep_last.is_some_and(|n| rank < n as usize);
                let kept_by_age = young_from.is_some_and(|from| at >= from);
                if !kept_by_count && !kept_by_age {
                    gone.push(id);
                    snapshots.push(SnapshotId::from_uuid(id)?);
                }
            }
        }
        let mut results = Vec::new();
        if let Some(days) = policy.analysis_days {
            let before = to_micros(now - chrono::TimeDelta::days(i64::from(days)));
            let rows: Vec<(Uuid, Option<Uuid>)> = with_pool!(self.core.db, |pool| {
                sqlx::query_as(
                    "SELECT id, snapshot_id FROM analysis_results WHERE project_id = $1 \
                     AND status IN ('succeeded', 'failed') AND created_at < $2 ORDER BY id",
                )
                .bind(project.as_uuid())
                .bind(before)
                .fetch_all(pool)
                .await
                .map_err(CoreError::from)?
            });
            for (id, snapshot) in rows {
                if !snapshot.is_some_and(|s| gone.contains(&s)) {
                    results.push(AnalysisId::from_uuid(id)?);
                }
            }
        }
        Ok((snapshots, results))
    }
}
