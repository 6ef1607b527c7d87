//! [`TenantStore`] over SQLite and PostgreSQL.

use super::{
    ListTenants, NewTenant, Slug, Tenant, TenantChangeKind, TenantChanges, TenantSettings,
    TenantStatus, TenantStore, TenantUpdate, validate_display_name,
};
use crate::audit::{AuditAction, NewAuditEvent, Outcome, ValidEvent, actions};
use crate::clock::{Clock, SystemClock};
use crate::db::{Db, from_micros, to_micros};
use crate::error::CoreError;
use crate::id::TenantId;
use crate::page::{Page, page_from_rows, page_size};
use crate::principal::{Permission, Principal};
use crate::tx::CoreTx;
use crate::{with_pool, with_write_tx};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

const CURSOR_KIND: &str = "tenants";

/// Tenants in the `tenants` table of a [`Db`]; every change is audited in the same
/// transaction.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use ate_core::{Db, NewTenant, Principal, SqlTenantStore, TenantStore};
///
/// let db = Db::open("sqlite::memory:").await?;
/// let tenants = SqlTenantStore::new(db);
/// let admin = Principal::platform_admin("system:setup")?;
/// let acme = tenants.create(&admin, NewTenant::new("acme", "Acme Corp")).await?;
/// assert_eq!(tenants.get_by_slug(&admin, "acme").await?.id, acme.id);
/// # Ok::<(), ate_core::CoreError>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SqlTenantStore {
    db: Db,
    clock: Arc<dyn Clock>,
    retention: TimeDelta,
}

impl SqlTenantStore {
    /// Default time a deleted tenant can still be restored before it may be purged.
    pub const DEFAULT_RETENTION: TimeDelta = TimeDelta::days(30);

    /// A store over `db` with the system clock and a 30-day deletion retention.
    pub fn new(db: Db) -> Self {
        SqlTenantStore {
            db,
            clock: Arc::new(SystemClock),
            retention: Self::DEFAULT_RETENTION,
        }
    }

    /// Uses `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets how long deleted tenants stay restorable (zero: purgeable at once).
    pub fn with_retention(mut self, retention: TimeDelta) -> Result<Self, CoreError> {
        if retention < TimeDelta::zero() {
            return Err(CoreError::invalid("retention", "must not be negative"));
        }
        self.retention = retention;
        Ok(self)
    }
}

#[derive(Debug, sqlx::FromRow)]
struct TenantRow {
    id: Uuid,
    slug: String,
    name: String,
    status: String,
    status_reason: Option<String>,
    settings: String,
    revision: i64,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
    purge_at: Option<i64>,
}

macro_rules! tenant_columns {
    () => {
        "id, slug, name, status, status_reason, settings, revision, created_at, updated_at, \
         deleted_at, purge_at"
    };
}

const BY_ID: &str = concat!("SELECT ", tenant_columns!(), " FROM tenants WHERE id = $1");
const BY_SLUG: &str = concat!(
    "SELECT ",
    tenant_columns!(),
    " FROM tenants WHERE slug = $1"
);
/// `$1` status filter (NULL: active and suspended), `$2` cursor, `$3` only this id, `$4` limit.
const LIST: &str = concat!(
    "SELECT ",
    tenant_columns!(),
    " FROM tenants WHERE (($1 IS NULL AND status <> 'deleted') OR status = $1) \
     AND ($2 IS NULL OR id > $2) AND ($3 IS NULL OR id = $3) ORDER BY id LIMIT $4"
);
const UPDATE: &str = "UPDATE tenants SET name = $2, status = $3, status_reason = $4, \
     settings = $5, revision = $6, updated_at = $7, deleted_at = $8, purge_at = $9 WHERE id = $1";
/// A no-op write that takes the row lock (PostgreSQL) before the row is read, so concurrent
/// changes to one tenant apply one after the other instead of overwriting each other.
const LOCK: &str = "UPDATE tenants SET revision = revision WHERE id = $1";

impl TenantRow {
    fn into_tenant(self) -> Result<Tenant, CoreError> {
        let settings: TenantSettings = serde_json::from_str(&self.settings).map_err(|e| {
            CoreError::Integrity(format!("tenant {} has unreadable settings: {e}", self.id))
        })?;
        Ok(Tenant {
            id: TenantId::from_uuid(self.id).map_err(|_| {
                CoreError::Integrity(format!("stored tenant id {} is not a UUIDv7", self.id))
            })?,
            slug: Slug::from_stored(self.slug),
            name: self.name,
            status: TenantStatus::parse(&self.status)?,
            status_reason: self.status_reason,
            settings,
            revision: self.revision,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
            deleted_at: self.deleted_at.map(from_micros).transpose()?,
            purge_at: self.purge_at.map(from_micros).transpose()?,
        })
    }
}

fn settings_json(settings: &TenantSettings) -> Result<String, CoreError> {
    serde_json::to_string(settings)
        .map_err(|e| CoreError::Internal(format!("tenant settings did not serialize: {e}")))
}

/// A state change decided by [`SqlTenantStore::change`]'s closure.
struct Change {
    tenant: Tenant,
    kind: TenantChangeKind,
    action: AuditAction,
    metadata: serde_json::Value,
}

/// Hides deleted tenants from everyone but platform administrators.
fn visible(actor: &Principal, tenant: Tenant) -> Result<Tenant, CoreError> {
    if tenant.status == TenantStatus::Deleted && !actor.is_platform_admin() {
        Err(CoreError::not_found("tenant", tenant.id))
    } else {
        Ok(tenant)
    }
}

fn validate_reason(reason: &str) -> Result<String, CoreError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            "suspension reason",
            "must be 1 to 500 characters without control characters",
        ));
    }
    Ok(reason.to_owned())
}

impl SqlTenantStore {
    async fn fetch(&self, sql: &'static str, key: Key<'_>) -> Result<Option<Tenant>, CoreError> {
        let row: Option<TenantRow> = with_pool!(self.db, |pool| {
            let q = sqlx::query_as(sql);
            let q = match key {
                Key::Id(id) => q.bind(id.as_uuid()),
                Key::Slug(slug) => q.bind(slug.as_str().to_owned()),
            };
            q.fetch_optional(pool).await?
        });
        row.map(TenantRow::into_tenant).transpose()
    }

    /// Applies `decide` to the current state of tenant `id` under its row lock; if it
    /// returns a change, writes it and its audit event in one transaction.
    async fn change(
        &self,
        actor: &Principal,
        id: TenantId,
        decide: impl FnOnce(Tenant, DateTime<Utc>) -> Result<Result<Change, Tenant>, CoreError> + Send,
    ) -> Result<Tenant, CoreError> {
        let now = self.clock.now();
        let subject = actor.subject().to_owned();
        let (tenant, kind) = with_write_tx!(self.db, |tx| {
            sqlx::query(LOCK)
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await?;
            let row: Option<TenantRow> = sqlx::query_as(BY_ID)
                .bind(id.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
            let current = row
                .ok_or_else(|| CoreError::not_found("tenant", id))?
                .into_tenant()?;
            match decide(current, now)? {
                Err(unchanged) => (unchanged, None),
                Ok(Change {
                    mut tenant,
                    kind,
                    action,
                    metadata,
                }) => {
                    tenant.revision += 1;
                    tenant.updated_at = now;
                    sqlx::query(UPDATE)
                        .bind(id.as_uuid())
                        .bind(&tenant.name)
                        .bind(tenant.status.as_str())
                        .bind(&tenant.status_reason)
                        .bind(settings_json(&tenant.settings)?)
                        .bind(tenant.revision)
                        .bind(to_micros(now))
                        .bind(tenant.deleted_at.map(to_micros))
                        .bind(tenant.purge_at.map(to_micros))
                        .execute(&mut *tx)
                        .await?;
                    let event = NewAuditEvent::new(id, subject.clone(), action, Outcome::Success)
                        .target(id.to_string())
                        .metadata(metadata)
                        .validate()?;
                    tx.append_audit(&event, now).await?;
                    (tenant, Some(kind))
                }
            }
        });
        if let Some(kind) = kind {
            self.db.tenant_changes().publish(id, kind);
        }
        Ok(tenant)
    }
}

#[derive(Debug, Clone, Copy)]
enum Key<'a> {
    Id(TenantId),
    Slug(&'a Slug),
}

/// A validated, authorized tenant creation that has not been written yet: made by
/// [`SqlTenantStore::prepare_create`], inserted by [`CoreTx::insert_tenant`] in a caller's
/// transaction. Stores in other crates use it to create a tenant together with their own
/// rows (registering a user with a new organization: neither exists unless both do).
#[derive(Debug)]
pub struct PreparedTenant {
    pub(crate) tenant: Tenant,
    pub(crate) settings_json: String,
    pub(crate) event: ValidEvent,
}

impl PreparedTenant {
    /// The tenant as it will be stored.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }
}

impl SqlTenantStore {
    /// Authorizes and validates the creation of `new` at `now` without writing anything;
    /// [`CoreTx::insert_tenant`] writes it. Only platform administrators create tenants
    /// (`PermissionDenied` otherwise); a bad slug or name is `InvalidInput`.
    pub fn prepare_create(
        &self,
        actor: &Principal,
        new: NewTenant,
        now: DateTime<Utc>,
    ) -> Result<PreparedTenant, CoreError> {
        actor.require_platform_admin("creating a tenant")?;
        let slug = Slug::new(&new.slug)?;
        let name = validate_display_name(&new.name)?;
        new.settings.validate()?;
        let settings_json = settings_json(&new.settings)?;
        let tenant = Tenant {
            id: TenantId::new(),
            slug,
            name,
            status: TenantStatus::Active,
            status_reason: None,
            settings: new.settings,
            revision: 1,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            purge_at: None,
        };
        let event = NewAuditEvent::new(
            tenant.id,
            actor.subject(),
            actions::TENANT_CREATED,
            Outcome::Success,
        )
        .target(tenant.id.to_string())
        .metadata(json!({ "slug": tenant.slug.as_str(), "name": tenant.name }))
        .validate()?;
        Ok(PreparedTenant {
            tenant,
            settings_json,
            event,
        })
    }
}

#[async_trait::async_trait]
impl TenantStore for SqlTenantStore {
    async fn create(&self, actor: &Principal, new: NewTenant) -> Result<Tenant, CoreError> {
        let now = self.clock.now();
        let prepared = self.prepare_create(actor, new, now)?;
        with_write_tx!(self.db, |tx| {
            tx.insert_tenant(&prepared, now).await?;
        });
        self.db
            .tenant_changes()
            .publish(prepared.tenant.id, TenantChangeKind::Created);
        Ok(prepared.tenant)
    }

    async fn get(&self, actor: &Principal, id: TenantId) -> Result<Tenant, CoreError> {
        actor.require(id, &Permission::TENANT_READ)?;
        let tenant = self
            .fetch(BY_ID, Key::Id(id))
            .await?
            .ok_or_else(|| CoreError::not_found("tenant", id))?;
        visible(actor, tenant)
    }

    async fn get_by_slug(&self, actor: &Principal, slug: &str) -> Result<Tenant, CoreError> {
        let slug = Slug::new(slug)?;
        let not_found = || CoreError::not_found("tenant with slug", &slug);
        let tenant = self
            .fetch(BY_SLUG, Key::Slug(&slug))
            .await?
            .ok_or_else(not_found)?;
        // Another tenant's slug looks exactly like an unused one.
        if !actor.is_platform_admin() && actor.tenant() != Some(tenant.id) {
            return Err(not_found());
        }
        actor.require(tenant.id, &Permission::TENANT_READ)?;
        visible(actor, tenant).map_err(|_| not_found())
    }

    async fn list(&self, actor: &Principal, query: ListTenants) -> Result<Page<Tenant>, CoreError> {
        let limit = page_size(query.limit)?;
        let only: Option<Uuid> = if actor.is_platform_admin() {
            None
        } else {
            let own = actor.tenant().ok_or_else(|| {
                CoreError::PermissionDenied(format!("{} belongs to no tenant", actor.subject()))
            })?;
            actor.require(own, &Permission::TENANT_READ)?;
            if query.status == Some(TenantStatus::Deleted) {
                return Ok(Page {
                    items: vec![],
                    next_cursor: None,
                });
            }
            Some(own.as_uuid())
        };
        let after: Option<Uuid> = match &query.cursor {
            None => None,
            Some(c) => Some(
                c.decode(CURSOR_KIND)?
                    .parse::<TenantId>()
                    .map_err(|_| {
                        CoreError::invalid("cursor", "not a cursor issued by this listing")
                    })?
                    .as_uuid(),
            ),
        };
        let status = query.status.map(|s| s.as_str().to_owned());
        let fetch = i64::from(limit) + 1;
        let rows: Vec<TenantRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(LIST)
                .bind(status.clone())
                .bind(after)
                .bind(only)
                .bind(fetch)
                .fetch_all(pool)
                .await?
        });
        page_from_rows(rows, limit, TenantRow::into_tenant, CURSOR_KIND, |t| {
            t.id.to_string()
        })
    }

    async fn update(
        &self,
        actor: &Principal,
        id: TenantId,
        update: TenantUpdate,
    ) -> Result<Tenant, CoreError> {
        let admin = actor.is_platform_admin();
        actor.require(id, &Permission::TENANT_UPDATE)?;
        if update.settings.is_some() && !admin {
            return Err(CoreError::PermissionDenied(
                "only platform administrators change tenant settings".into(),
            ));
        }
        let name = update
            .name
            .as_deref()
            .map(validate_display_name)
            .transpose()?;
        if let Some(settings) = &update.settings {
            settings.validate()?;
        }
        self.change(actor, id, move |current, _now| {
            match current.status {
                TenantStatus::Deleted if !admin => {
                    return Err(CoreError::not_found("tenant", id));
                }
                TenantStatus::Deleted => {
                    return Err(CoreError::Conflict(format!(
                        "tenant {id} is deleted; restore it before changing it"
                    )));
                }
                TenantStatus::Suspended if !admin => {
                    return Err(CoreError::PermissionDenied(format!(
                        "tenant {id} is suspended"
                    )));
                }
                _ => {}
            }
            if let Some(expected) = update.expected_revision
                && expected != current.revision
            {
                return Err(CoreError::Conflict(format!(
                    "tenant {id} is at revision {}, not {expected}",
                    current.revision
                )));
            }
            let mut changed = Vec::new();
            let mut tenant = current.clone();
            if let Some(name) = name.filter(|n| *n != current.name) {
                tenant.name = name;
                changed.push("name");
            }
            if let Some(settings) = update.settings.filter(|s| *s != current.settings) {
                tenant.settings = settings;
                changed.push("settings");
            }
            if changed.is_empty() {
                return Ok(Err(current));
            }
            Ok(Ok(Change {
                tenant,
                kind: TenantChangeKind::Updated,
                action: actions::TENANT_UPDATED,
                metadata: json!({ "changed": changed }),
            }))
        })
        .await
    }

    async fn suspend(
        &self,
        actor: &Principal,
        id: TenantId,
        reason: &str,
    ) -> Result<Tenant, CoreError> {
        actor.require_platform_admin("suspending a tenant")?;
        let reason = validate_reason(reason)?;
        self.change(actor, id, move |current, _now| match current.status {
            TenantStatus::Suspended => Ok(Err(current)),
            TenantStatus::Deleted => Err(CoreError::Conflict(format!(
                "tenant {id} is deleted and cannot be suspended"
            ))),
            TenantStatus::Active => {
                let mut tenant = current;
                tenant.status = TenantStatus::Suspended;
                tenant.status_reason = Some(reason.clone());
                Ok(Ok(Change {
                    tenant,
                    kind: TenantChangeKind::Suspended,
                    action: actions::TENANT_SUSPENDED,
                    metadata: json!({ "reason": reason }),
                }))
            }
        })
        .await
    }

    async fn reactivate(&self, actor: &Principal, id: TenantId) -> Result<Tenant, CoreError> {
        actor.require_platform_admin("reactivating a tenant")?;
        self.change(actor, id, move |current, now| {
            let (kind, action) = match current.status {
                TenantStatus::Active => return Ok(Err(current)),
                TenantStatus::Suspended => {
                    (TenantChangeKind::Reactivated, actions::TENANT_REACTIVATED)
                }
                TenantStatus::Deleted => match current.purge_at {
                    Some(purge_at) if purge_at <= now => {
                        return Err(CoreError::Conflict(format!(
                            "tenant {id} passed its purge time ({purge_at}) and can no longer be restored"
                        )));
                    }
                    _ => (TenantChangeKind::Restored, actions::TENANT_RESTORED),
                },
            };
            let mut tenant = current;
            tenant.status = TenantStatus::Active;
            tenant.status_reason = None;
            tenant.deleted_at = None;
            tenant.purge_at = None;
            Ok(Ok(Change {
                tenant,
                kind,
                action,
                metadata: json!({}),
            }))
        })
        .await
    }

    async fn delete(&self, actor: &Principal, id: TenantId) -> Result<Tenant, CoreError> {
        actor.require_platform_admin("deleting a tenant")?;
        let retention = self.retention;
        self.change(actor, id, move |current, now| {
            if current.status == TenantStatus::Deleted {
                return Ok(Err(current));
            }
            let purge_at = now + retention;
            let mut tenant = current;
            tenant.status = TenantStatus::Deleted;
            tenant.status_reason = None;
            tenant.deleted_at = Some(now);
            tenant.purge_at = Some(purge_at);
            Ok(Ok(Change {
                tenant,
                kind: TenantChangeKind::Deleted,
                action: actions::TENANT_DELETED,
                metadata: json!({ "purge_at": purge_at.to_rfc3339() }),
            }))
        })
        .await
    }

    async fn purge_due(&self, actor: &Principal) -> Result<Vec<TenantId>, CoreError> {
        actor.require_platform_admin("purging tenants")?;
        let now = to_micros(self.clock.now());
        let ids: Vec<Uuid> = with_pool!(self.db, |pool| {
            sqlx::query_scalar(
                "DELETE FROM tenants WHERE status = 'deleted' AND purge_at <= $1 RETURNING id",
            )
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        let ids = ids
            .into_iter()
            .map(TenantId::from_uuid)
            .collect::<Result<Vec<_>, _>>()?;
        for id in &ids {
            self.db
                .tenant_changes()
                .publish(*id, TenantChangeKind::Purged);
            tracing::info!(tenant = %id, actor = actor.subject(), "purged tenant");
        }
        Ok(ids)
    }

    async fn require_active(&self, id: TenantId) -> Result<Tenant, CoreError> {
        let tenant = self
            .fetch(BY_ID, Key::Id(id))
            .await?
            .ok_or_else(|| CoreError::not_found("tenant", id))?;
        match tenant.status {
            TenantStatus::Active => Ok(tenant),
            TenantStatus::Suspended => Err(CoreError::PermissionDenied(format!(
                "tenant {id} is suspended"
            ))),
            TenantStatus::Deleted => Err(CoreError::not_found("tenant", id)),
        }
    }

    async fn status(&self, id: TenantId) -> Result<Option<TenantStatus>, CoreError> {
        let status: Option<String> = with_pool!(self.db, |pool| {
            sqlx::query_scalar("SELECT status FROM tenants WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_optional(pool)
                .await?
        });
        status.as_deref().map(TenantStatus::parse).transpose()
    }

    fn changes(&self) -> TenantChanges {
        self.db.tenant_changes().clone()
    }
}
