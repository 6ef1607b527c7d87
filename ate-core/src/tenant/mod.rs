//! Tenants: the unit of isolation, and the [`TenantStore`] that keeps them.
//!
//! A tenant is an organization. Every other ATE record carries its [`TenantId`]. Tenants move
//! through three states:
//!
//! ```text
//!            suspend              delete
//!   Active ──────────▶ Suspended ────────▶ Deleted ──(purge_at passes)──▶ purged (gone)
//!     ▲  ◀──────────     │   ▲                │
//!     │   reactivate     │   └── delete ──────┘ (from Active too)
//!     └──────────────────┴──── reactivate (restore, before purge) ◀┘
//! ```
//!
//! Deleting is soft: the tenant is hidden from its own principals at once, its slug stays
//! reserved (so nobody can take over a just-deleted name), and it can be restored until its
//! purge time; [`TenantStore::purge_due`] then removes it for good.
//!
//! # For stores in other crates
//!
//! Other crates never name this module's tables in their queries. They read tenants through
//! [`TenantStore`] (`require_active`, `status`), write under a tenant's lock and audit
//! atomically through [`CoreTx`](crate::CoreTx), and follow changes through
//! [`TenantStore::changes`]. One schema-level tie is part of the contract: a tenant-owned
//! table declares `tenant_id … REFERENCES tenants (id) ON DELETE CASCADE` in its migrations,
//! so purging a tenant removes its rows in every crate at once. (`tests/tests/seams.rs`
//! checks both rules.)

mod changes;
mod slug;
mod sql;

pub use changes::{TenantChange, TenantChangeKind, TenantChanges};
pub use slug::Slug;
pub use sql::{PreparedTenant, SqlTenantStore};

pub(crate) use slug::validate_display_name;

use crate::error::CoreError;
use crate::id::TenantId;
use crate::page::{Cursor, Page};
use crate::principal::Principal;
use chrono::{DateTime, Utc};

/// A tenant's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TenantStatus {
    /// Normal operation.
    Active,
    /// Temporarily blocked: its principals may read the tenant record but do nothing else.
    Suspended,
    /// Soft-deleted, awaiting purge; visible to platform administrators only.
    Deleted,
}

impl TenantStatus {
    /// The stored name (`active`, `suspended`, `deleted`).
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Deleted => "deleted",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, CoreError> {
        match s {
            "active" => Ok(TenantStatus::Active),
            "suspended" => Ok(TenantStatus::Suspended),
            "deleted" => Ok(TenantStatus::Deleted),
            other => Err(CoreError::invalid(
                "tenant status",
                format!("{other:?} is not one of active, suspended, deleted"),
            )),
        }
    }
}

impl std::fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TenantStatus {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        TenantStatus::parse(s)
    }
}

/// Limits the platform sets for a tenant. `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Quotas {
    /// Total stored bytes (plaintext size).
    pub max_storage_bytes: Option<u64>,
    /// Number of stored objects.
    pub max_objects: Option<u64>,
    /// Number of users (enforced by ate-auth when users are created or registered).
    pub max_users: Option<u64>,
    /// Number of codebase projects (enforced by ate-storage's project store when a project
    /// is created).
    pub max_projects: Option<u64>,
}

impl Quotas {
    /// Sets [`Quotas::max_storage_bytes`].
    pub fn max_storage_bytes(mut self, n: u64) -> Self {
        self.max_storage_bytes = Some(n);
        self
    }
    /// Sets [`Quotas::max_objects`].
    pub fn max_objects(mut self, n: u64) -> Self {
        self.max_objects = Some(n);
        self
    }
    /// Sets [`Quotas::max_users`].
    pub fn max_users(mut self, n: u64) -> Self {
        self.max_users = Some(n);
        self
    }
    /// Sets [`Quotas::max_projects`].
    pub fn max_projects(mut self, n: u64) -> Self {
        self.max_projects = Some(n);
        self
    }
}

/// Per-tenant settings, stored as JSON. Only platform administrators change them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TenantSettings {
    /// Resource limits.
    pub quotas: Quotas,
}

impl TenantSettings {
    /// Settings with the given quotas.
    pub fn with_quotas(quotas: Quotas) -> Self {
        TenantSettings { quotas }
    }

    /// Refuses settings this build cannot honour, so that no quota is accepted and then
    /// silently ignored. Every quota of this build is enforced: `max_storage_bytes` and
    /// `max_objects` by ate-storage's object store, `max_users` by ate-auth,
    /// `max_projects` by ate-storage's project store.
    pub fn validate(&self) -> Result<(), CoreError> {
        Ok(())
    }
}

/// A tenant record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Tenant {
    /// Stable id.
    pub id: TenantId,
    /// Unique short name.
    pub slug: Slug,
    /// Human-readable name.
    pub name: String,
    /// Lifecycle state.
    pub status: TenantStatus,
    /// Why the tenant was suspended, if it is.
    pub status_reason: Option<String>,
    /// Limits and options.
    pub settings: TenantSettings,
    /// Incremented by every change; pass it back in [`TenantUpdate::expected_revision`] for
    /// optimistic concurrency.
    pub revision: i64,
    /// When the tenant was created.
    pub created_at: DateTime<Utc>,
    /// When the tenant last changed.
    pub updated_at: DateTime<Utc>,
    /// When the tenant was soft-deleted.
    pub deleted_at: Option<DateTime<Utc>>,
    /// When a soft-deleted tenant becomes eligible for purging.
    pub purge_at: Option<DateTime<Utc>>,
}

/// What to create.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewTenant {
    /// The slug (validated by [`Slug::new`]).
    pub slug: String,
    /// The display name (1 to 200 characters, trimmed).
    pub name: String,
    /// Initial settings.
    pub settings: TenantSettings,
}

impl NewTenant {
    /// A tenant with default settings.
    pub fn new(slug: impl Into<String>, name: impl Into<String>) -> Self {
        NewTenant {
            slug: slug.into(),
            name: name.into(),
            settings: TenantSettings::default(),
        }
    }

    /// Sets initial settings.
    pub fn settings(mut self, settings: TenantSettings) -> Self {
        self.settings = settings;
        self
    }
}

/// A partial update; `None` fields are left unchanged.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TenantUpdate {
    /// New display name.
    pub name: Option<String>,
    /// New settings (platform administrators only).
    pub settings: Option<TenantSettings>,
    /// Fail with `Conflict` unless the tenant is still at this revision.
    pub expected_revision: Option<i64>,
}

impl TenantUpdate {
    /// An update that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the new display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Sets new settings.
    pub fn settings(mut self, settings: TenantSettings) -> Self {
        self.settings = Some(settings);
        self
    }
    /// Requires the tenant to be at `revision`.
    pub fn expected_revision(mut self, revision: i64) -> Self {
        self.expected_revision = Some(revision);
        self
    }
}

/// Options for [`TenantStore::list`]. Results are ordered by id (creation order).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ListTenants {
    /// Only tenants in this state; by default active and suspended ones (not deleted).
    pub status: Option<TenantStatus>,
    /// Page size, 1 to 1000 (default 50).
    pub limit: Option<u32>,
    /// Continue after the page that returned this cursor.
    pub cursor: Option<Cursor>,
}

impl ListTenants {
    /// The first page with default options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Filters by status.
    pub fn status(mut self, status: TenantStatus) -> Self {
        self.status = Some(status);
        self
    }
    /// Sets the page size.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }
    /// Continues from a cursor.
    pub fn cursor(mut self, cursor: Option<Cursor>) -> Self {
        self.cursor = cursor;
        self
    }
}

/// Keeps tenants. Every method takes the acting [`Principal`] and enforces:
///
/// * **create, suspend, reactivate, delete, purge_due** — platform administrators only.
/// * **get** — platform administrators, or a principal of that tenant holding
///   [`Permission::TENANT_READ`](crate::Permission::TENANT_READ); checked *before* the lookup,
///   so the answer never reveals whether another tenant's id exists.
/// * **get_by_slug** — as `get`, except that another tenant's slug answers `NotFound`, exactly
///   as an unused slug does.
/// * **update** — platform administrators; or a principal of an *active* tenant holding
///   [`Permission::TENANT_UPDATE`](crate::Permission::TENANT_UPDATE), which may change the
///   name but not the settings (quotas are the platform's to set).
/// * **list** — platform administrators see every tenant; anyone else sees at most their own.
///
/// Behavior contract (the conformance suite in `tests/` checks every point on every backend):
///
/// * Slugs are unique across all tenants that have not been purged, including deleted ones;
///   a second create with a taken slug fails with `AlreadyExists`, also when two creates race.
/// * Deleted tenants are `NotFound` for everyone but platform administrators.
/// * `suspend` of a suspended tenant, `reactivate` of an active one and `delete` of a deleted
///   one change nothing and succeed. `suspend` or `update` of a deleted tenant is `Conflict`.
///   `reactivate` of a deleted tenant restores it, until its purge time.
/// * Every change bumps `revision` and `updated_at`, and appends an audit event
///   (`tenant_created`, `tenant_updated`, …) to the tenant's chain in the same transaction:
///   either both happen or neither.
/// * A failed call changes nothing.
/// * Every committed change is published on [`TenantStore::changes`] after it commits.
#[async_trait::async_trait]
pub trait TenantStore: Send + Sync + std::fmt::Debug {
    /// Creates an active tenant.
    async fn create(&self, actor: &Principal, new: NewTenant) -> Result<Tenant, CoreError>;

    /// Fetches a tenant by id.
    async fn get(&self, actor: &Principal, id: TenantId) -> Result<Tenant, CoreError>;

    /// Fetches a tenant by slug; a malformed slug is `InvalidInput`.
    async fn get_by_slug(&self, actor: &Principal, slug: &str) -> Result<Tenant, CoreError>;

    /// Lists tenants in id order, one page at a time.
    async fn list(&self, actor: &Principal, query: ListTenants) -> Result<Page<Tenant>, CoreError>;

    /// Changes name and/or settings.
    async fn update(
        &self,
        actor: &Principal,
        id: TenantId,
        update: TenantUpdate,
    ) -> Result<Tenant, CoreError>;

    /// Suspends an active tenant, recording why.
    async fn suspend(
        &self,
        actor: &Principal,
        id: TenantId,
        reason: &str,
    ) -> Result<Tenant, CoreError>;

    /// Reactivates a suspended tenant, or restores a deleted one before its purge time.
    async fn reactivate(&self, actor: &Principal, id: TenantId) -> Result<Tenant, CoreError>;

    /// Soft-deletes a tenant; it can be purged after the store's retention period.
    async fn delete(&self, actor: &Principal, id: TenantId) -> Result<Tenant, CoreError>;

    /// Permanently removes every deleted tenant whose purge time has passed, with its audit
    /// log; returns their ids.
    async fn purge_due(&self, actor: &Principal) -> Result<Vec<TenantId>, CoreError>;

    /// For other ATE components: the tenant if it is active; `PermissionDenied` if it is
    /// suspended, `NotFound` if it is deleted or unknown.
    async fn require_active(&self, id: TenantId) -> Result<Tenant, CoreError>;

    /// For other ATE components: the tenant's status, deleted tenants included, or `None`
    /// if no such tenant exists (never created, or purged). No authorization: callers
    /// decide what the caller behind them may learn.
    async fn status(&self, id: TenantId) -> Result<Option<TenantStatus>, CoreError>;

    /// The feed of committed tenant changes (see [`TenantChanges`]): stores sharing one
    /// database handle share one feed, so a cache subscribed here hears about changes made
    /// through any of them.
    fn changes(&self) -> TenantChanges;
}
