//! [`SqlProjectStore`]: projects in the `projects` and `project_labels` tables of a [`Db`].
//!
//! Every write takes the tenant's lock ([`CoreTx::lock_tenant`]) first: the quota count,
//! the name check and the write then see the same state, however many hosts write at once.

use super::{
    PROJECTS_DELETE, PROJECTS_READ, PROJECTS_WRITE, Project, ProjectName, ProjectQuery,
    ProjectSpec, ProjectStore, ProjectUpdate, valid,
};
use crate::StorageError;
use ate_core::audit::{AuditAction, NewAuditEvent, Outcome, actions};
use ate_core::db::{from_micros, to_micros};
use ate_core::{
    Clock, CoreError, CoreTx, Cursor, Db, DbBackend, Page, Permission, Principal, ProjectId,
    SqlTenantStore, SystemClock, TenantId, TenantStatus, TenantStore, with_pool, with_write_tx,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

const CURSOR_KIND: &str = "projects";

macro_rules! project_columns {
    () => {
        "id, tenant_id, name, description, labels, settings, created_by, created_at, \
         updated_at, revision"
    };
}

/// A listing in each dialect (`$json_each`: how the dialect reads a JSON object's entries):
/// tenant `$1`, name keys starting with `$2` (if not NULL) and after `$3` (if not NULL),
/// with every label of the JSON object `$4`, at most `$5`.
macro_rules! list {
    ($json_each:literal) => {
        concat!(
            "SELECT ",
            project_columns!(),
            " FROM projects p WHERE tenant_id = $1 AND deleted_at IS NULL \
             AND ($2 IS NULL OR substr(name_key, 1, length($2)) = $2) \
             AND ($3 IS NULL OR name_key > $3) \
             AND NOT EXISTS (SELECT 1 FROM ",
            $json_each,
            " AS f WHERE NOT EXISTS (SELECT 1 FROM project_labels l \
             WHERE l.project_id = p.id AND l.key = f.key AND l.value = f.value)) \
             ORDER BY name_key LIMIT $5"
        )
    };
}
const LIST: &str = list!("json_each($4)");
const LIST_PG: &str = list!("jsonb_each_text($4::jsonb)");

/// Writes project `$1`'s labels (tenant `$2`) from the JSON object `$3`.
const INSERT_LABELS: &str = "INSERT INTO project_labels (project_id, tenant_id, key, value) \
     SELECT $1, $2, key, value FROM json_each($3)";
const INSERT_LABELS_PG: &str = "INSERT INTO project_labels (project_id, tenant_id, key, value) \
     SELECT $1, $2, key, value FROM jsonb_each_text($3::jsonb)";

/// In a write transaction `$tx`: takes tenant `$tenant`'s lock (it must be active), then
/// reads project `$id`. Evaluates to the project, or to `NotFound` / `Conflict` (not at
/// revision `$expected`, when given) as a value; database errors return at once.
macro_rules! locked_project {
    ($tx:ident, $tenant:ident, $id:ident, $expected:expr) => {{
        $tx.lock_tenant($tenant).await?.require_active()?;
        let row: Option<ProjectRow> = sqlx::query_as(concat!(
            "SELECT ",
            project_columns!(),
            " FROM projects WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
        ))
        .bind($tenant.as_uuid())
        .bind($id.as_uuid())
        .fetch_optional(&mut *$tx)
        .await
        .map_err(CoreError::from)?;
        match row.as_ref().map(ProjectRow::project).transpose()? {
            None => Err(StorageError::from(CoreError::not_found("project", $id))),
            Some(p) => check_revision(&p, $expected).map(|()| p),
        }
    }};
}

#[derive(sqlx::FromRow)]
struct ProjectRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    description: String,
    labels: String,
    settings: String,
    created_by: String,
    created_at: i64,
    updated_at: i64,
    revision: i64,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Integrity(format!("stored project has a bad {what}: {e}"))
}

impl ProjectRow {
    fn project(&self) -> Result<Project, StorageError> {
        Ok(Project {
            id: ProjectId::from_uuid(self.id)?,
            tenant: TenantId::from_uuid(self.tenant_id)?,
            name: ProjectName::new(&self.name).map_err(|e| corrupt("name", e))?,
            description: self.description.clone(),
            labels: serde_json::from_str(&self.labels).map_err(|e| corrupt("labels", e))?,
            settings: serde_json::from_str(&self.settings).map_err(|e| corrupt("settings", e))?,
            created_by: self.created_by.clone(),
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
            revision: self.revision,
        })
    }
}

fn json_text(value: &impl serde::Serialize) -> Result<String, StorageError> {
    serde_json::to_string(value).map_err(|e| StorageError::invalid("project", e.to_string()))
}

fn event(
    tenant: TenantId,
    actor: &Principal,
    action: AuditAction,
    id: ProjectId,
    metadata: Value,
) -> Result<ate_core::audit::ValidEvent, StorageError> {
    Ok(
        NewAuditEvent::new(tenant, actor.subject(), action, Outcome::Success)
            .target(format!("project:{id}"))
            .metadata(metadata)
            .validate()?,
    )
}

/// Projects in a [`Db`] (SQLite or PostgreSQL); cheap to clone.
#[derive(Debug, Clone)]
pub struct SqlProjectStore {
    db: Db,
    tenants: SqlTenantStore,
    clock: Arc<dyn Clock>,
}

/// `actor` may read with `permission` in `tenant`: its own principals only while the
/// tenant is active; platform administrators unless it was deleted.
pub(crate) async fn may_read(
    tenants: &SqlTenantStore,
    actor: &Principal,
    tenant: TenantId,
    permission: &Permission,
) -> Result<(), StorageError> {
    actor.require(tenant, permission)?;
    if actor.is_platform_admin() {
        let t = tenants.get(actor, tenant).await?;
        if t.status == TenantStatus::Deleted {
            return Err(CoreError::not_found("tenant", tenant).into());
        }
    } else {
        tenants.require_active(tenant).await?;
    }
    Ok(())
}

impl SqlProjectStore {
    /// Opens the store in `db`, running `ate-storage`'s migrations.
    pub async fn open(db: Db) -> Result<Self, StorageError> {
        db.migrate(&crate::migrations()).await?;
        Ok(SqlProjectStore {
            tenants: SqlTenantStore::new(db.clone()),
            db,
            clock: Arc::new(SystemClock),
        })
    }

    /// Uses `clock` for the times it records.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.tenants = self.tenants.with_clock(clock.clone());
        self.clock = clock;
        self
    }

    fn is_pg(&self) -> bool {
        self.db.backend() == DbBackend::Postgres
    }

    async fn may_read(
        &self,
        actor: &Principal,
        tenant: TenantId,
        permission: &Permission,
    ) -> Result<(), StorageError> {
        may_read(&self.tenants, actor, tenant, permission).await
    }

    async fn row(&self, tenant: TenantId, id: ProjectId) -> Result<ProjectRow, StorageError> {
        let row: Option<ProjectRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                project_columns!(),
                " FROM projects WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
            ))
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(pool)
            .await
            .map_err(CoreError::from)?
        });
        row.ok_or_else(|| CoreError::not_found("project", id).into())
    }
}

#[async_trait::async_trait]
impl ProjectStore for SqlProjectStore {
    async fn create(
        &self,
        actor: &Principal,
        tenant: TenantId,
        spec: &ProjectSpec,
    ) -> Result<Project, StorageError> {
        actor.require(tenant, &PROJECTS_WRITE)?;
        let name = spec.validate()?;
        let labels = json_text(&spec.labels)?;
        let settings = json_text(&spec.settings)?;
        let id = ProjectId::new();
        let now = self.clock.now();
        let created = event(
            tenant,
            actor,
            actions::PROJECT_CREATED,
            id,
            json!({"name": name}),
        )?;
        let insert_labels = if self.is_pg() {
            INSERT_LABELS_PG
        } else {
            INSERT_LABELS
        };
        // Refusals (quota, name) are values: nothing is written, and the transaction
        // commits empty rather than lingering unfinished.
        let outcome: Result<(), StorageError> = with_write_tx!(self.db, |tx| {
            let locked = tx.lock_tenant(tenant).await?;
            locked.require_active()?;
            // Counted only against a quota.
            let count: i64 = if locked.settings.quotas.max_projects.is_some() {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM projects WHERE tenant_id = $1 AND deleted_at IS NULL",
                )
                .bind(tenant.as_uuid())
                .fetch_one(&mut *tx)
                .await
                .map_err(CoreError::from)?
            } else {
                0
            };
            let taken: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM projects WHERE tenant_id = $1 AND name_key = $2",
            )
            .bind(tenant.as_uuid())
            .bind(name.key())
            .fetch_optional(&mut *tx)
            .await
            .map_err(CoreError::from)?;
            match locked.settings.quotas.max_projects {
                Some(max) if u64::try_from(count).unwrap_or(0) >= max => {
                    Err(CoreError::QuotaExceeded(format!(
                        "tenant {tenant} may have at most {max} projects"
                    ))
                    .into())
                }
                _ if taken.is_some() => Err(CoreError::AlreadyExists {
                    what: "project named",
                    key: name.key(),
                }
                .into()),
                _ => {
                    sqlx::query(concat!(
                        "INSERT INTO projects (",
                        project_columns!(),
                        ", name_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 1, $9)"
                    ))
                    .bind(id.as_uuid())
                    .bind(tenant.as_uuid())
                    .bind(name.as_str())
                    .bind(&spec.description)
                    .bind(&labels)
                    .bind(&settings)
                    .bind(actor.subject())
                    .bind(to_micros(now))
                    .bind(name.key())
                    .execute(&mut *tx)
                    .await
                    .map_err(CoreError::from)?;
                    sqlx::query(insert_labels)
                        .bind(id.as_uuid())
                        .bind(tenant.as_uuid())
                        .bind(&labels)
                        .execute(&mut *tx)
                        .await
                        .map_err(CoreError::from)?;
                    tx.append_audit(&created, now).await?;
                    Ok(())
                }
            }
        });
        outcome?;
        self.row(tenant, id).await?.project()
    }

    async fn get(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: ProjectId,
    ) -> Result<Project, StorageError> {
        self.may_read(actor, tenant, &PROJECTS_READ).await?;
        self.row(tenant, id).await?.project()
    }

    async fn get_by_name(
        &self,
        actor: &Principal,
        tenant: TenantId,
        name: &str,
    ) -> Result<Project, StorageError> {
        let name = ProjectName::new(name)?;
        self.may_read(actor, tenant, &PROJECTS_READ).await?;
        let row: Option<ProjectRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                project_columns!(),
                " FROM projects WHERE tenant_id = $1 AND name_key = $2 AND deleted_at IS NULL"
            ))
            .bind(tenant.as_uuid())
            .bind(name.key())
            .fetch_optional(pool)
            .await
            .map_err(CoreError::from)?
        });
        row.ok_or_else(|| StorageError::from(CoreError::not_found("project", name)))?
            .project()
    }

    async fn list(
        &self,
        actor: &Principal,
        tenant: TenantId,
        query: &ProjectQuery,
    ) -> Result<Page<Project>, StorageError> {
        let limit = ate_core::page::page_size(query.limit)?;
        let prefix = match &query.name_prefix {
            None => None,
            Some(p)
                if p.len() <= super::MAX_PROJECT_NAME_CHARS && !p.chars().any(char::is_control) =>
            {
                Some(p.to_ascii_lowercase())
            }
            Some(_) => {
                return Err(StorageError::invalid(
                    "project name prefix",
                    "must be at most 100 bytes without control characters",
                ));
            }
        };
        valid::labels(&query.labels)?;
        let after = query
            .cursor
            .as_ref()
            .map(|c: &Cursor| c.decode(CURSOR_KIND))
            .transpose()?;
        self.may_read(actor, tenant, &PROJECTS_READ).await?;
        let labels = json_text(&query.labels)?;
        let sql = if self.is_pg() { LIST_PG } else { LIST };
        let rows: Vec<ProjectRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(sql)
                .bind(tenant.as_uuid())
                .bind(prefix.as_deref())
                .bind(after.as_deref())
                .bind(&labels)
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await
                .map_err(CoreError::from)?
        });
        ate_core::page::page_from_rows(
            rows,
            limit,
            |row| row.project(),
            CURSOR_KIND,
            |p| p.name.key(),
        )
    }

    async fn update(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: ProjectId,
        update: &ProjectUpdate,
    ) -> Result<Project, StorageError> {
        actor.require(tenant, &PROJECTS_WRITE)?;
        let new_name = update.validate()?;
        let now = self.clock.now();
        let insert_labels = if self.is_pg() {
            INSERT_LABELS_PG
        } else {
            INSERT_LABELS
        };
        let outcome: Result<(), StorageError> = with_write_tx!(self.db, |tx| {
            let current = locked_project!(tx, tenant, id, update.expected_revision);
            match current {
                Err(e) => Err(e),
                Ok(current) => {
                    let changed = Changed::of(&current, update, new_name.as_ref());
                    let taken: Option<Uuid> = match &changed.name {
                        Some(name) if name.key() != current.name.key() => sqlx::query_scalar(
                            "SELECT id FROM projects WHERE tenant_id = $1 AND name_key = $2",
                        )
                        .bind(tenant.as_uuid())
                        .bind(name.key())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(CoreError::from)?,
                        _ => None,
                    };
                    if taken.is_some_and(|other| other != id.as_uuid()) {
                        Err(CoreError::AlreadyExists {
                            what: "project named",
                            key: changed
                                .name
                                .as_ref()
                                .map(ProjectName::key)
                                .unwrap_or_default(),
                        }
                        .into())
                    } else if changed.is_empty() {
                        Ok(())
                    } else {
                        let name = changed.name.as_ref().unwrap_or(&current.name);
                        let labels = json_text(changed.labels.unwrap_or(&current.labels))?;
                        let settings = json_text(changed.settings.unwrap_or(&current.settings))?;
                        sqlx::query(
                            "UPDATE projects SET name = $3, name_key = $4, description = $5, \
                             labels = $6, settings = $7, updated_at = $8, \
                             revision = revision + 1 WHERE tenant_id = $1 AND id = $2",
                        )
                        .bind(tenant.as_uuid())
                        .bind(id.as_uuid())
                        .bind(name.as_str())
                        .bind(name.key())
                        .bind(changed.description.unwrap_or(&current.description))
                        .bind(&labels)
                        .bind(&settings)
                        .bind(to_micros(now))
                        .execute(&mut *tx)
                        .await
                        .map_err(CoreError::from)?;
                        if changed.labels.is_some() {
                            sqlx::query("DELETE FROM project_labels WHERE project_id = $1")
                                .bind(id.as_uuid())
                                .execute(&mut *tx)
                                .await
                                .map_err(CoreError::from)?;
                            sqlx::query(insert_labels)
                                .bind(id.as_uuid())
                                .bind(tenant.as_uuid())
                                .bind(&labels)
                                .execute(&mut *tx)
                                .await
                                .map_err(CoreError::from)?;
                        }
                        let updated = event(
                            tenant,
                            actor,
                            actions::PROJECT_UPDATED,
                            id,
                            json!({"name": name, "changed": changed.fields()}),
                        )?;
                        tx.append_audit(&updated, now).await?;
                        Ok(())
                    }
                }
            }
        });
        outcome?;
        self.row(tenant, id).await?.project()
    }

    async fn delete(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: ProjectId,
        expected_revision: Option<i64>,
    ) -> Result<(), StorageError> {
        actor.require(tenant, &PROJECTS_DELETE)?;
        let now = self.clock.now();
        let outcome: Result<(), StorageError> = with_write_tx!(self.db, |tx| {
            let current = locked_project!(tx, tenant, id, expected_revision);
            match current {
                Err(e) => Err(e),
                Ok(current) => {
                    crate::retention::refuse_if_held!(tx, tenant, id.as_uuid());
                    let keys = sqlx::query("DELETE FROM project_keys WHERE project_id = $1")
                        .bind(id.as_uuid())
                        .execute(&mut *tx)
                        .await
                        .map_err(CoreError::from)?
                        .rows_affected();
                    sqlx::query("DELETE FROM project_labels WHERE project_id = $1")
                        .bind(id.as_uuid())
                        .execute(&mut *tx)
                        .await
                        .map_err(CoreError::from)?;
                    // Marked gone, its name freed; its rows go in batches below.
                    sqlx::query(
                        "UPDATE projects SET deleted_at = $3, name_key = $4, retention = NULL, \
                         legal_hold = NULL WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant.as_uuid())
                    .bind(id.as_uuid())
                    .bind(to_micros(now))
                    .bind(super::purge::deleted_name_key(id))
                    .execute(&mut *tx)
                    .await
                    .map_err(CoreError::from)?;
                    // Imports in progress fail at their next write; every snapshot is
                    // invisible from now on.
                    sqlx::query(
                        "UPDATE snapshots SET state = 'deleting' WHERE project_id = $1 \
                         AND state IN ('importing', 'committed')",
                    )
                    .bind(id.as_uuid())
                    .execute(&mut *tx)
                    .await
                    .map_err(CoreError::from)?;
                    let deleted = event(
                        tenant,
                        actor,
                        actions::PROJECT_DELETED,
                        id,
                        json!({
                            "name": current.name,
                            "revision": current.revision,
                            "keys_destroyed": keys,
                        }),
                    )?;
                    tx.append_audit(&deleted, now).await?;
                    Ok(())
                }
            }
        });
        outcome?;
        // Its keys are gone: caches of unwrapped project keys on this handle drop theirs.
        self.tenants
            .changes()
            .publish(tenant, ate_core::TenantChangeKind::KeysChanged);
        // If this is interrupted, `purge_deleted` (or garbage collection of the project)
        // finishes it.
        super::purge::purge_project(&self.db, id).await
    }

    async fn purge_deleted(
        &self,
        actor: &Principal,
        tenant: TenantId,
    ) -> Result<u64, StorageError> {
        if !actor.is_platform_admin() {
            return Err(CoreError::PermissionDenied(
                "purging deleted projects is a platform administrator's task".into(),
            )
            .into());
        }
        let doomed: Vec<Uuid> = with_pool!(self.db, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM projects WHERE tenant_id = $1 AND deleted_at IS NOT NULL",
            )
            .bind(tenant.as_uuid())
            .fetch_all(pool)
            .await
            .map_err(CoreError::from)?
        });
        for id in &doomed {
            super::purge::purge_project(&self.db, ProjectId::from_uuid(*id)?).await?;
        }
        Ok(doomed.len() as u64)
    }
}

/// `Conflict` unless `project` is at `expected` (when given).
fn check_revision(project: &Project, expected: Option<i64>) -> Result<(), StorageError> {
    match expected {
        Some(revision) if revision != project.revision => Err(CoreError::Conflict(format!(
            "project {} is at revision {}, not {revision}",
            project.id, project.revision
        ))
        .into()),
        _ => Ok(()),
    }
}

/// What an update changes: each field that is set and differs from the project's.
struct Changed<'a> {
    name: Option<ProjectName>,
    description: Option<&'a String>,
    labels: Option<&'a BTreeMap<String, String>>,
    settings: Option<&'a Value>,
}

impl<'a> Changed<'a> {
    fn of(current: &Project, update: &'a ProjectUpdate, name: Option<&ProjectName>) -> Self {
        Changed {
            name: name.filter(|n| **n != current.name).cloned(),
            description: update
                .description
                .as_ref()
                .filter(|d| **d != current.description),
            labels: update.labels.as_ref().filter(|l| **l != current.labels),
            settings: update.settings.as_ref().filter(|s| **s != current.settings),
        }
    }

    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.description.is_none()
            && self.labels.is_none()
            && self.settings.is_none()
    }

    /// The changed fields' names, for the audit event.
    fn fields(&self) -> Vec<&'static str> {
        [
            ("name", self.name.is_some()),
            ("description", self.description.is_some()),
            ("labels", self.labels.is_some()),
            ("settings", self.settings.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, changed)| changed.then_some(field))
        .collect()
    }
}
