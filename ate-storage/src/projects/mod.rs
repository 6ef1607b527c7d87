//! Codebase projects: a tenant's named projects, each the home of a codebase's snapshots,
//! files and analysis results (issue 12; this first part holds the projects themselves).
//!
//! A [`Project`] has a name unique within its tenant (compared without case, as on GitHub),
//! a description, labels and free JSON settings, and a revision that grows with every
//! change. [`ProjectStore`] creates, reads, lists (filtered, cursor-paginated), updates
//! (with optimistic concurrency) and deletes them; [`SqlProjectStore`] keeps them in a
//! [`Db`](ate_core::Db) (SQLite or PostgreSQL). Creating a project counts against the
//! tenant's [`max_projects`](ate_core::Quotas::max_projects) quota, checked under the
//! tenant's lock so that parallel creations cannot overshoot it. Every change is audited
//! (`project_created`, `project_updated`, `project_deleted`) in its transaction.
//!
//! **Per-project keys** ([`ProjectKeyring`]): master key → tenant data key → project key,
//! versioned and rotated like the tenant's keys; deleting a project deletes its keys with
//! it (crypto-shredding one project).
//!
//! Permissions: [`PROJECTS_READ`] for get and list, [`PROJECTS_WRITE`] for create and
//! update, [`PROJECTS_DELETE`] for delete, in the project's tenant.
//!
//! ```
//! use ate_storage::projects::{ProjectSpec, ProjectUpdate};
//!
//! let spec = ProjectSpec::new("billing-api")
//!     .description("The billing service")
//!     .label("team", "payments");
//! assert!(spec.validate().is_ok());
//! assert!(ProjectSpec::new("../etc").validate().is_err());
//! let rename = ProjectUpdate::new().name("billing").expected_revision(1);
//! assert_eq!(rename.expected_revision, Some(1));
//! ```

mod export;
mod keys;
mod purge;
mod snapshot_delete;
mod snapshot_sql;
mod snapshots;
mod sql;
mod valid;
mod verify; // the operator's integrity check of a tenant's projects

pub use keys::{ProjectKey, ProjectKeyInfo, ProjectKeyring};
pub(crate) use purge::purge_project;
pub(crate) use snapshot_delete::delete_snapshot;
pub(crate) use snapshot_sql::SnapshotCore;
pub use snapshot_sql::SqlSnapshotStore;
pub use snapshots::{
    ChunkGcReport, DirectoryStats, FileEntry, FileKind, FileQuery, LanguageStats,
    MAX_DIRECTORIES_LISTED, MAX_READ_BYTES, MAX_SKIPPED_LISTED, ProjectStats, RepackOptions,
    RepackReport, Snapshot, SnapshotDiff, SnapshotQuery, SnapshotStats, SnapshotStore, TenantUsage,
};
pub use sql::SqlProjectStore;
pub(crate) use sql::may_read;
pub use valid::{
    MAX_DESCRIPTION_BYTES, MAX_LABEL_KEY_BYTES, MAX_LABEL_VALUE_BYTES, MAX_LABELS,
    MAX_PROJECT_NAME_CHARS, MAX_SETTINGS_BYTES, ProjectName,
};

use crate::StorageError;
use ate_core::{Cursor, Page, Permission, Principal, ProjectId, TenantId};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;

/// The stored bytes of a tenant's projects (`$1`: the tenant): their chunks and their
/// analysis payloads.
pub(crate) const PROJECT_BYTES: &str = "SELECT \
     (SELECT CAST(COALESCE(SUM(stored_bytes), 0) AS BIGINT) FROM projects WHERE tenant_id = $1) + \
     (SELECT CAST(COALESCE(SUM(stored_bytes), 0) AS BIGINT) FROM analysis_payloads \
      WHERE tenant_id = $1)";

/// What counts against a tenant's `max_storage_bytes` (`$1`: the tenant): its objects'
/// bytes, its projects' stored bytes and its analysis payloads' stored bytes.
pub(crate) const TENANT_BYTES_USED: &str = "SELECT \
     (SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM objects WHERE tenant_id = $1) + \
     (SELECT CAST(COALESCE(SUM(stored_bytes), 0) AS BIGINT) FROM projects WHERE tenant_id = $1) + \
     (SELECT CAST(COALESCE(SUM(stored_bytes), 0) AS BIGINT) FROM analysis_payloads \
      WHERE tenant_id = $1)";

/// Read a tenant's projects.
pub const PROJECTS_READ: Permission = Permission::from_static("projects:read");
/// Create and change a tenant's projects.
pub const PROJECTS_WRITE: Permission = Permission::from_static("projects:write");
/// Delete a tenant's projects (and everything in them).
pub const PROJECTS_DELETE: Permission = Permission::from_static("projects:delete");

/// A project as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Project {
    /// Its id.
    pub id: ProjectId,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its name, as given (unique in the tenant without regard to case).
    pub name: ProjectName,
    /// Free text.
    pub description: String,
    /// Labels, for filtering.
    pub labels: BTreeMap<String, String>,
    /// Free settings (a JSON object) for the host and its analyzers.
    pub settings: Value,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// 1 when created; grows with every change. Pass it back in
    /// [`ProjectUpdate::expected_revision`] to change only what was read.
    pub revision: i64,
}

/// A project to create. Checked by [`ProjectSpec::validate`] (the store calls it).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProjectSpec {
    /// The name (see [`ProjectName`]).
    pub name: String,
    /// Free text, at most [`MAX_DESCRIPTION_BYTES`] (default empty).
    pub description: String,
    /// Labels (see [`MAX_LABELS`]).
    pub labels: BTreeMap<String, String>,
    /// A JSON object of at most [`MAX_SETTINGS_BYTES`] (default `{}`).
    pub settings: Value,
}

impl ProjectSpec {
    /// A project called `name`, with nothing else.
    pub fn new(name: impl Into<String>) -> Self {
        ProjectSpec {
            name: name.into(),
            description: String::new(),
            labels: BTreeMap::new(),
            settings: Value::Object(serde_json::Map::new()),
        }
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// Adds (or replaces) a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the settings.
    pub fn settings(mut self, settings: Value) -> Self {
        self.settings = settings;
        self
    }

    /// Checks every field; `InvalidInput` naming the first bad one. Returns the name.
    pub fn validate(&self) -> Result<ProjectName, StorageError> {
        let name = ProjectName::new(&self.name)?;
        valid::description(&self.description)?;
        valid::labels(&self.labels)?;
        valid::settings(&self.settings)?;
        Ok(name)
    }
}

/// A change to a project: the fields set are replaced, the others kept.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ProjectUpdate {
    /// A new name (unique in the tenant, as on creation).
    pub name: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// New labels (all of them: the old ones go).
    pub labels: Option<BTreeMap<String, String>>,
    /// New settings.
    pub settings: Option<Value>,
    /// Fail with `Conflict` unless the project is still at this revision.
    pub expected_revision: Option<i64>,
}

impl ProjectUpdate {
    /// An update that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Renames the project.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Replaces the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Replaces the labels.
    pub fn labels(mut self, labels: BTreeMap<String, String>) -> Self {
        self.labels = Some(labels);
        self
    }

    /// Replaces the settings.
    pub fn settings(mut self, settings: Value) -> Self {
        self.settings = Some(settings);
        self
    }

    /// Requires the project to be at `revision`.
    pub fn expected_revision(mut self, revision: i64) -> Self {
        self.expected_revision = Some(revision);
        self
    }

    /// Checks the fields that are set; `InvalidInput` naming the first bad one.
    pub fn validate(&self) -> Result<Option<ProjectName>, StorageError> {
        let name = self.name.as_deref().map(ProjectName::new).transpose()?;
        if let Some(text) = &self.description {
            valid::description(text)?;
        }
        if let Some(labels) = &self.labels {
            valid::labels(labels)?;
        }
        if let Some(settings) = &self.settings {
            valid::settings(settings)?;
        }
        Ok(name)
    }
}

/// Which projects [`ProjectStore::list`] returns: all of the tenant's by default, by name
/// (without regard to case), [`DEFAULT_PAGE_SIZE`](ate_core::page::DEFAULT_PAGE_SIZE) at a
/// time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProjectQuery {
    /// Only names starting with this (without regard to case).
    pub name_prefix: Option<String>,
    /// Only projects with every one of these labels.
    pub labels: BTreeMap<String, String>,
    /// Page size, 1 to [`MAX_PAGE_SIZE`](ate_core::page::MAX_PAGE_SIZE).
    pub limit: Option<u32>,
    /// Where the previous page ended.
    pub cursor: Option<Cursor>,
}

impl ProjectQuery {
    /// Every project.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only names starting with `prefix`.
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = Some(prefix.into());
        self
    }

    /// Only projects labelled `key` = `value` (and any other labels asked for).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the page size.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// Continues after a previous page.
    pub fn cursor(mut self, cursor: Cursor) -> Self {
        self.cursor = Some(cursor);
        self
    }
}

/// Where a tenant's projects live.
#[async_trait::async_trait]
pub trait ProjectStore: Send + Sync + std::fmt::Debug {
    /// Creates a project. Needs [`PROJECTS_WRITE`] in an active tenant; `InvalidInput` for a
    /// bad spec, `AlreadyExists` for a name the tenant already uses (in any case),
    /// `QuotaExceeded` past the tenant's `max_projects`.
    async fn create(
        &self,
        actor: &Principal,
        tenant: TenantId,
        spec: &ProjectSpec,
    ) -> Result<Project, StorageError>;

    /// Project `id`. Needs [`PROJECTS_READ`]; `NotFound` for a project of another tenant.
    async fn get(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: ProjectId,
    ) -> Result<Project, StorageError>;

    /// The project called `name` (without regard to case). Needs [`PROJECTS_READ`].
    async fn get_by_name(
        &self,
        actor: &Principal,
        tenant: TenantId,
        name: &str,
    ) -> Result<Project, StorageError>;

    /// The tenant's projects matching `query`, by name. Needs [`PROJECTS_READ`];
    /// `InvalidInput` for a bad page size, prefix, label or cursor.
    async fn list(
        &self,
        actor: &Principal,
        tenant: TenantId,
        query: &ProjectQuery,
    ) -> Result<Page<Project>, StorageError>;

    /// Changes project `id` as `update` says and returns it. Needs [`PROJECTS_WRITE`];
    /// `Conflict` if it is no longer at `update.expected_revision`, `AlreadyExists` for a
    /// new name another project uses. An update that changes nothing writes nothing (no
    /// new revision, no audit event).
    async fn update(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: ProjectId,
        update: &ProjectUpdate,
    ) -> Result<Project, StorageError>;

    /// Deletes project `id` with its keys ([`ProjectKeyring`]): what they encrypted is
    /// unrecoverable from then on. Needs [`PROJECTS_DELETE`]; `Conflict` if it is no longer
    /// at `expected_revision` (when given) or a legal hold covers it, `NotFound` if it does
    /// not exist.
    ///
    /// One transaction marks it deleted (gone for every read, its name free again, its
    /// imports failing at their next write) and destroys its keys; its rows (snapshots, file
    /// rows, chunks, analysis results) are then purged in batches. If that is interrupted,
    /// [`purge_deleted`](Self::purge_deleted) or
    /// [`SnapshotStore::collect_garbage`] of the project finishes it; garbage collection
    /// also removes its blobs.
    async fn delete(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: ProjectId,
        expected_revision: Option<i64>,
    ) -> Result<(), StorageError>;

    /// Finishes purging the tenant's deleted projects whose purge was interrupted, and
    /// returns how many there were. A platform administrator's task (`PermissionDenied`
    /// otherwise); safe to run at any time.
    async fn purge_deleted(&self, actor: &Principal, tenant: TenantId)
    -> Result<u64, StorageError>;
}
