//! Retention policies and legal holds, per tenant and per project.
//!
//! A [`RetentionPolicy`] says which committed snapshots a project keeps (the newest
//! `keep_last`, and/or those younger than `keep_days`: a snapshot goes only when every rule
//! that is set lets it go) and how long finished analysis results stay (`analysis_days`).
//! A project's own policy replaces its tenant's whole; with neither, nothing is removed.
//!
//! [`RetentionStore::apply_retention`] applies the policies: project by project, each
//! deletion its own audited transaction (`snapshot_deleted` / `analysis_deleted` with
//! `"reason": "retention"`), at most [`RetentionRun::max_deletions`] per call. It is
//! resumable: an interrupted or budget-limited run is continued with the report's
//! [`next_cursor`](RetentionReport::next_cursor), and running it again from the start is
//! always safe (what is gone is not found again). A dry run reports what would go and
//! deletes nothing.
//!
//! A [`LegalHold`] on a tenant or a project blocks **every** deletion in its scope:
//! deleting a snapshot, an analysis result or the project fails with `Conflict`, and the
//! retention sweep skips the project (reported in
//! [`held_projects`](RetentionReport::held_projects)). Imports and new results are still
//! allowed. Garbage collection still removes what nothing references.
//!
//! Permissions: [`RETENTION_MANAGE`] to set policies and run the sweep,
//! [`LEGAL_HOLD_MANAGE`] to place and release holds (typically a compliance role, not the
//! project's owners), [`PROJECTS_READ`](crate::projects::PROJECTS_READ) to read either.
//! Every change is audited (`retention_policy_set`, `legal_hold_placed`,
//! `legal_hold_released`).
//!
//! ```
//! use ate_storage::retention::RetentionPolicy;
//!
//! let policy = RetentionPolicy::new().keep_last(10).keep_days(90).analysis_days(30);
//! assert!(policy.validate().is_ok());
//! assert!(RetentionPolicy::new().keep_last(0).validate().is_err());
//! ```

mod sql;

pub use sql::SqlRetentionStore;

use crate::StorageError;
use ate_core::{
    AnalysisId, CoreError, Cursor, Permission, Principal, ProjectId, SnapshotId, TenantId,
};
use chrono::{DateTime, Utc};

/// Set retention policies and run the retention sweep.
pub const RETENTION_MANAGE: Permission = Permission::from_static("retention:manage");
/// Place and release legal holds.
pub const LEGAL_HOLD_MANAGE: Permission = Permission::from_static("legal_hold:manage");

/// The most snapshots `keep_last` may name.
pub const MAX_KEEP_LAST: u32 = 1_000_000;
/// The most days `keep_days` or `analysis_days` may name (100 years).
pub const MAX_DAYS: u32 = 36_500;
/// The longest legal hold reason, in bytes.
pub const MAX_HOLD_REASON_BYTES: usize = 1024;
/// The default (and largest) number of deletions per [`RetentionStore::apply_retention`]
/// call.
pub const MAX_DELETIONS_PER_RUN: u32 = 10_000;

/// What a tenant's or project's data keeps. Every rule is optional; see the
/// [module docs](self).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct RetentionPolicy {
    /// Keep the newest this many committed snapshots of each project.
    pub keep_last: Option<u32>,
    /// Keep the snapshots committed in the last this many days.
    pub keep_days: Option<u32>,
    /// Remove finished analysis results created more than this many days ago.
    pub analysis_days: Option<u32>,
}

impl RetentionPolicy {
    /// A policy that keeps everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the newest `n` snapshots.
    pub fn keep_last(mut self, n: u32) -> Self {
        self.keep_last = Some(n);
        self
    }

    /// Keeps the snapshots of the last `days` days.
    pub fn keep_days(mut self, days: u32) -> Self {
        self.keep_days = Some(days);
        self
    }

    /// Removes finished analysis results older than `days`.
    pub fn analysis_days(mut self, days: u32) -> Self {
        self.analysis_days = Some(days);
        self
    }

    /// `InvalidInput` for `keep_last` outside 1..=[`MAX_KEEP_LAST`] or a number of days
    /// outside 1..=[`MAX_DAYS`].
    pub fn validate(&self) -> Result<(), StorageError> {
        if let Some(n) = self.keep_last
            && !(1..=MAX_KEEP_LAST).contains(&n)
        {
            return Err(StorageError::invalid(
                "retention policy",
                format!("keep_last must be 1 to {MAX_KEEP_LAST}, got {n}"),
            ));
        }
        for (name, days) in [
            ("keep_days", self.keep_days),
            ("analysis_days", self.analysis_days),
        ] {
            if let Some(d) = days
                && !(1..=MAX_DAYS).contains(&d)
            {
                return Err(StorageError::invalid(
                    "retention policy",
                    format!("{name} must be 1 to {MAX_DAYS}, got {d}"),
                ));
            }
        }
        Ok(())
    }
}

/// A legal hold as placed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct LegalHold {
    /// Why (a case number, a ticket).
    pub reason: String,
    /// Who placed it.
    pub placed_by: String,
    /// When.
    pub placed_at: DateTime<Utc>,
}

/// What a policy or hold applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionScope {
    /// The whole tenant (every project without a policy of its own; every project, for a
    /// hold).
    Tenant,
    /// One project.
    Project(ProjectId),
}

/// One call of [`RetentionStore::apply_retention`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionRun {
    /// Report what would go; delete nothing.
    pub dry_run: bool,
    /// Stop after this many deletions (1 to [`MAX_DELETIONS_PER_RUN`], the default).
    pub max_deletions: Option<u32>,
    /// Continue where a previous run stopped.
    pub cursor: Option<Cursor>,
}

impl RetentionRun {
    /// A run that deletes, from the first project.
    pub fn new() -> Self {
        Self::default()
    }

    /// A dry run.
    pub fn dry_run() -> Self {
        RetentionRun {
            dry_run: true,
            ..Self::default()
        }
    }

    /// Stops after `n` deletions.
    pub fn max_deletions(mut self, n: u32) -> Self {
        self.max_deletions = Some(n);
        self
    }

    /// Continues after a previous run.
    pub fn cursor(mut self, cursor: Cursor) -> Self {
        self.cursor = Some(cursor);
        self
    }
}

/// What a run of [`RetentionStore::apply_retention`] did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct RetentionReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Whether a tenant-wide legal hold stopped the whole run.
    pub tenant_held: bool,
    /// Projects looked at.
    pub projects_scanned: u64,
    /// Projects skipped because of a legal hold.
    pub held_projects: Vec<ProjectId>,
    /// Snapshots deleted (would be, in a dry run), with their analysis results.
    pub snapshots: Vec<SnapshotId>,
    /// Analysis results deleted (would be) for their age.
    pub analysis_results: Vec<AnalysisId>,
    /// Set when the run stopped at its deletion budget: pass it to the next run.
    pub next_cursor: Option<Cursor>,
}

/// Where retention policies and legal holds live, and the sweep that applies them.
#[async_trait::async_trait]
pub trait RetentionStore: Send + Sync + std::fmt::Debug {
    /// Sets (`Some`) or clears (`None`) the policy of `scope`. Needs [`RETENTION_MANAGE`];
    /// `InvalidInput` for a bad policy, `NotFound` for a project of another tenant.
    async fn set_policy(
        &self,
        actor: &Principal,
        tenant: TenantId,
        scope: RetentionScope,
        policy: Option<&RetentionPolicy>,
    ) -> Result<(), StorageError>;

    /// The policy set on `scope` (not inherited). Needs `projects:read`.
    async fn policy(
        &self,
        actor: &Principal,
        tenant: TenantId,
        scope: RetentionScope,
    ) -> Result<Option<RetentionPolicy>, StorageError>;

    /// Places a legal hold on `scope`. Needs [`LEGAL_HOLD_MANAGE`]; `InvalidInput` for an
    /// empty or too long reason, `Conflict` if one is already placed there.
    async fn place_hold(
        &self,
        actor: &Principal,
        tenant: TenantId,
        scope: RetentionScope,
        reason: &str,
    ) -> Result<LegalHold, StorageError>;

    /// Releases the legal hold on `scope`. Needs [`LEGAL_HOLD_MANAGE`]; `NotFound` if none
    /// is placed there.
    async fn release_hold(
        &self,
        actor: &Principal,
        tenant: TenantId,
        scope: RetentionScope,
    ) -> Result<(), StorageError>;

    /// The legal hold placed on `scope` itself, if any. Needs `projects:read`.
    async fn hold(
        &self,
        actor: &Principal,
        tenant: TenantId,
        scope: RetentionScope,
    ) -> Result<Option<LegalHold>, StorageError>;

    /// Applies the policies to the tenant's projects (see the [module docs](self)). Needs
    /// [`RETENTION_MANAGE`]; `InvalidInput` for a bad budget or cursor.
    async fn apply_retention(
        &self,
        actor: &Principal,
        tenant: TenantId,
        run: &RetentionRun,
    ) -> Result<RetentionReport, StorageError>;
}

/// The legal hold that covers project `$2` of tenant `$1` (the project's, else the
/// tenant's), as JSON, or NULL.
pub(crate) const HOLD_ON: &str = "SELECT COALESCE(\
     (SELECT legal_hold FROM projects WHERE id = $2 AND tenant_id = $1), \
     (SELECT legal_hold FROM tenant_retention WHERE tenant_id = $1))";

/// The error for a deletion a legal hold blocks.
pub(crate) fn held(project: uuid::Uuid, hold: &str) -> StorageError {
    let reason = serde_json::from_str::<LegalHold>(hold)
        .map(|h| h.reason)
        .unwrap_or_else(|_| "(unreadable hold)".into());
    CoreError::Conflict(format!(
        "project {project} is under legal hold ({reason}): nothing in it can be deleted"
    ))
    .into()
}

/// In a write transaction `$tx`: returns `Conflict` from the enclosing function if a legal
/// hold covers project `$project` (a `Uuid`) of tenant `$tenant`.
macro_rules! refuse_if_held {
    ($tx:ident, $tenant:expr, $project:expr) => {{
        let project: uuid::Uuid = $project;
        let hold: Option<String> = sqlx::query_scalar($crate::retention::HOLD_ON)
            .bind($tenant.as_uuid())
            .bind(project)
            .fetch_one(&mut *$tx)
            .await
            .map_err(ate_core::CoreError::from)?;
        if let Some(hold) = hold {
            return Err($crate::retention::held(project, &hold).into());
        }
    }};
}
pub(crate) use refuse_if_held;
