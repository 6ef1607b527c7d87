//! Analysis results: what an analyzer (a linter, a licence scanner, an SBOM generator…)
//! found in a project or in one of its snapshots.
//!
//! An [`AnalysisResult`] has a kind (`"sast"`, `"sbom.cyclonedx"`), the analyzer's name and
//! version, a status that moves forward only ([`AnalysisStatus`]: `pending` → `running` →
//! `succeeded` or `failed`), a JSON summary of at most [`MAX_SUMMARY_BYTES`] and any number
//! (up to [`MAX_PAYLOADS`]) of named **payloads**: large outputs such as a SARIF report,
//! streamed in and out, each stored as a Cobblestone message under the project's key
//! ([`ProjectKeyring`](crate::projects::ProjectKeyring)), so deleting the project shreds
//! them with the rest of its data. A finished result (succeeded or failed) never changes
//! again, like a committed snapshot.
//!
//! Kind, analyzer, version, status, snapshot and times are columns, so listings filter on
//! them in SQL ([`AnalysisQuery`]); the summary is the analyzer's own JSON.
//!
//! Results go with their snapshot (in the snapshot's deletion) and with their project.
//! Payload bytes count against the tenant's
//! [`max_storage_bytes`](ate_core::Quotas::max_storage_bytes), checked under the tenant's
//! lock as a payload is recorded. A payload is written to its blob first and recorded
//! second: a crash in between leaves an unrecorded blob, which
//! [`SnapshotStore::collect_garbage`](crate::projects::SnapshotStore::collect_garbage)
//! removes; a result never points at a missing payload.
//!
//! Every change is audited in its transaction (`analysis_created`, `analysis_updated`,
//! `analysis_deleted`). Permissions: [`ANALYSIS_READ`] to read, [`ANALYSIS_WRITE`] to record
//! and update (what an analyzer's service account holds), [`ANALYSIS_DELETE`] to delete.
//!
//! ```
//! use ate_storage::analysis::{AnalysisSpec, AnalysisStatus, AnalysisUpdate};
//! use serde_json::json;
//!
//! let spec = AnalysisSpec::new("sast", "semgrep", "1.90.0");
//! assert!(spec.validate().is_ok());
//! assert!(AnalysisSpec::new("SAST!", "semgrep", "1").validate().is_err());
//! let done = AnalysisUpdate::new()
//!     .status(AnalysisStatus::Succeeded)
//!     .summary(json!({"findings": 3}))
//!     .expected_revision(2);
//! assert!(done.validate().is_ok());
//! assert!(AnalysisStatus::Running.may_become(AnalysisStatus::Succeeded));
//! assert!(!AnalysisStatus::Succeeded.may_become(AnalysisStatus::Running));
//! ```

pub(crate) mod payload;
mod rekey;
#[macro_use]
mod rows;
#[macro_use]
mod write;
mod batch;
mod sql;
mod valid;

pub(crate) use payload::{PAYLOADS_OF_SNAPSHOT, payload_dir, payload_name};
pub(crate) use rekey::reencrypt_payloads;
pub use sql::SqlAnalysisStore;
pub(crate) use sql::delete_result;
pub use valid::{
    MAX_ANALYZER_BYTES, MAX_CONTENT_TYPE_BYTES, MAX_ERROR_BYTES, MAX_KIND_BYTES,
    MAX_PAYLOAD_NAME_BYTES, MAX_PAYLOADS, MAX_SUMMARY_BYTES, MAX_SUMMARY_DEPTH, MAX_VERSION_BYTES,
};

use crate::StorageError;
use ate_core::{AnalysisId, Cursor, Page, Permission, Principal, ProjectId, SnapshotId, TenantId};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

/// Read a tenant's analysis results and their payloads.
pub const ANALYSIS_READ: Permission = Permission::from_static("analysis:read");
/// Record analysis results, change them and add payloads.
pub const ANALYSIS_WRITE: Permission = Permission::from_static("analysis:write");
/// Delete analysis results.
pub const ANALYSIS_DELETE: Permission = Permission::from_static("analysis:delete");

/// Where an analysis stands. It only moves forward: `pending` → `running` → `succeeded` or
/// `failed`, skipping steps allowed (`pending` → `failed` cancels one that never ran); the
/// two finished states are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisStatus {
    /// Recorded, not started.
    Pending,
    /// In progress.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Finished without one ([`AnalysisResult::error`] says why).
    Failed,
}

impl AnalysisStatus {
    /// Its stored name (`"pending"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisStatus::Pending => "pending",
            AnalysisStatus::Running => "running",
            AnalysisStatus::Succeeded => "succeeded",
            AnalysisStatus::Failed => "failed",
        }
    }

    /// The status called `name`; `InvalidInput` for any other name.
    pub fn parse(name: &str) -> Result<Self, StorageError> {
        match name {
            "pending" => Ok(AnalysisStatus::Pending),
            "running" => Ok(AnalysisStatus::Running),
            "succeeded" => Ok(AnalysisStatus::Succeeded),
            "failed" => Ok(AnalysisStatus::Failed),
            other => Err(StorageError::invalid(
                "analysis status",
                format!("{other:?} is not one of pending, running, succeeded, failed"),
            )),
        }
    }

    /// Whether it is final (succeeded or failed).
    pub fn is_finished(self) -> bool {
        matches!(self, AnalysisStatus::Succeeded | AnalysisStatus::Failed)
    }

    /// Whether a result in this status may move to `next` (staying put is allowed while
    /// unfinished).
    pub fn may_become(self, next: AnalysisStatus) -> bool {
        use AnalysisStatus::*;
        match self {
            Pending => true,
            Running => next != Pending,
            Succeeded | Failed => false,
        }
    }
}

impl std::fmt::Display for AnalysisStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A payload of a result, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Payload {
    /// Its name, unique within the result (see [`MAX_PAYLOAD_NAME_BYTES`]).
    pub name: String,
    /// Its media type, as given (`application/sarif+json`).
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// What it occupies in the blob store (encrypted), charged to the tenant.
    pub stored_bytes: u64,
    /// The SHA-256 of its content, lower-case hex.
    pub sha256: String,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

/// An analysis result as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct AnalysisResult {
    /// Its id (UUIDv7: ids sort by creation).
    pub id: AnalysisId,
    /// Its tenant.
    pub tenant: TenantId,
    /// The project analyzed.
    pub project: ProjectId,
    /// The snapshot analyzed, if the result is about one.
    pub snapshot: Option<SnapshotId>,
    /// What kind of analysis (see [`MAX_KIND_BYTES`]).
    pub kind: String,
    /// The analyzer's name.
    pub analyzer: String,
    /// The analyzer's version.
    pub analyzer_version: String,
    /// Where it stands.
    pub status: AnalysisStatus,
    /// The analyzer's summary, a JSON object.
    pub summary: Value,
    /// Why it failed (only when [`AnalysisStatus::Failed`], and then if given).
    pub error: Option<String>,
    /// Its payloads, by name.
    pub payloads: Vec<Payload>,
    /// Who recorded it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it became `running` (if it did).
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished (if it did).
    pub finished_at: Option<DateTime<Utc>>,
    /// 1 when recorded; grows with every change (a payload added included). Pass it back
    /// in [`AnalysisUpdate::expected_revision`] to change only what was read.
    pub revision: i64,
}

/// A result to record. Checked by [`AnalysisSpec::validate`] (the store calls it).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AnalysisSpec {
    /// The committed snapshot of the project it is about, if any.
    pub snapshot: Option<SnapshotId>,
    /// Kind: 1 to [`MAX_KIND_BYTES`] of `a-z`, `0-9`, `.`, `_`, `-`, starting with a
    /// letter or digit.
    pub kind: String,
    /// The analyzer's name: 1 to [`MAX_ANALYZER_BYTES`] printable characters.
    pub analyzer: String,
    /// Its version: 1 to [`MAX_VERSION_BYTES`] printable characters.
    pub analyzer_version: String,
    /// The initial status (default `pending`; a finished one records a result in one go).
    pub status: AnalysisStatus,
    /// The summary, a JSON object (default `{}`).
    pub summary: Value,
    /// Why it failed: only with [`AnalysisStatus::Failed`].
    pub error: Option<String>,
}

impl AnalysisSpec {
    /// A pending result of `kind` by `analyzer` at `version`, about the whole project.
    pub fn new(
        kind: impl Into<String>,
        analyzer: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        AnalysisSpec {
            snapshot: None,
            kind: kind.into(),
            analyzer: analyzer.into(),
            analyzer_version: version.into(),
            status: AnalysisStatus::Pending,
            summary: Value::Object(serde_json::Map::new()),
            error: None,
        }
    }

    /// About this snapshot of the project.
    pub fn snapshot(mut self, snapshot: SnapshotId) -> Self {
        self.snapshot = Some(snapshot);
        self
    }

    /// Starts in `status`.
    pub fn status(mut self, status: AnalysisStatus) -> Self {
        self.status = status;
        self
    }

    /// Sets the summary.
    pub fn summary(mut self, summary: Value) -> Self {
        self.summary = summary;
        self
    }

    /// Sets the error (with [`AnalysisStatus::Failed`]).
    pub fn error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    /// Checks every field; `InvalidInput` naming the first bad one.
    pub fn validate(&self) -> Result<(), StorageError> {
        valid::kind(&self.kind)?;
        valid::label("analyzer", &self.analyzer, MAX_ANALYZER_BYTES)?;
        valid::label(
            "analyzer version",
            &self.analyzer_version,
            MAX_VERSION_BYTES,
        )?;
        valid::summary(&self.summary)?;
        valid::error(self.status, self.error.as_deref())
    }
}

/// A change to a result: the fields set are replaced, the others kept.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct AnalysisUpdate {
    /// A new status (forward only, see [`AnalysisStatus::may_become`]).
    pub status: Option<AnalysisStatus>,
    /// A new summary.
    pub summary: Option<Value>,
    /// Why it failed (with a new status of `failed`).
    pub error: Option<String>,
    /// Fail with `Conflict` unless the result is still at this revision.
    pub expected_revision: Option<i64>,
}

impl AnalysisUpdate {
    /// An update that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves to `status`.
    pub fn status(mut self, status: AnalysisStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Replaces the summary.
    pub fn summary(mut self, summary: Value) -> Self {
        self.summary = Some(summary);
        self
    }

    /// Fails it with `error`.
    pub fn failed(mut self, error: impl Into<String>) -> Self {
        self.status = Some(AnalysisStatus::Failed);
        self.error = Some(error.into());
        self
    }

    /// Requires the result to be at `revision`.
    pub fn expected_revision(mut self, revision: i64) -> Self {
        self.expected_revision = Some(revision);
        self
    }

    /// Checks the fields that are set; `InvalidInput` naming the first bad one.
    pub fn validate(&self) -> Result<(), StorageError> {
        if let Some(summary) = &self.summary {
            valid::summary(summary)?;
        }
        if self.error.is_some() && self.status != Some(AnalysisStatus::Failed) {
            return Err(StorageError::invalid(
                "analysis error",
                "an error goes only with the status failed",
            ));
        }
        if let Some(status) = self.status {
            valid::error(status, self.error.as_deref())?;
        }
        Ok(())
    }
}

/// Which results [`AnalysisStore::list`] returns: all of a project's by default, newest
/// first, [`DEFAULT_PAGE_SIZE`](ate_core::page::DEFAULT_PAGE_SIZE) at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AnalysisQuery {
    /// Only about this snapshot.
    pub snapshot: Option<SnapshotId>,
    /// Only of this kind.
    pub kind: Option<String>,
    /// Only by this analyzer.
    pub analyzer: Option<String>,
    /// Only by this version of the analyzer.
    pub analyzer_version: Option<String>,
    /// Only in this status.
    pub status: Option<AnalysisStatus>,
    /// Page size, 1 to [`MAX_PAGE_SIZE`](ate_core::page::MAX_PAGE_SIZE).
    pub limit: Option<u32>,
    /// Where the previous page ended.
    pub cursor: Option<Cursor>,
}

impl AnalysisQuery {
    /// Every result of the project.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only about `snapshot`.
    pub fn snapshot(mut self, snapshot: SnapshotId) -> Self {
        self.snapshot = Some(snapshot);
        self
    }

    /// Only of `kind`.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Only by `analyzer`.
    pub fn analyzer(mut self, analyzer: impl Into<String>) -> Self {
        self.analyzer = Some(analyzer.into());
        self
    }

    /// Only by this version of the analyzer.
    pub fn analyzer_version(mut self, version: impl Into<String>) -> Self {
        self.analyzer_version = Some(version.into());
        self
    }

    /// Only in `status`.
    pub fn status(mut self, status: AnalysisStatus) -> Self {
        self.status = Some(status);
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

/// Most operations one [`AnalysisStore::apply_batch`] takes.
pub const MAX_BATCH: usize = 500;

/// Results to create and update together ([`AnalysisStore::apply_batch`]): all of them or
/// none.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AnalysisBatch {
    /// Results to create, each on its project.
    pub creates: Vec<(ProjectId, AnalysisSpec)>,
    /// Changes to existing results.
    pub updates: Vec<(AnalysisId, AnalysisUpdate)>,
}

impl AnalysisBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a result to create on `project`.
    pub fn create(mut self, project: ProjectId, spec: AnalysisSpec) -> Self {
        self.creates.push((project, spec));
        self
    }

    /// Adds a change to result `id`.
    pub fn update(mut self, id: AnalysisId, update: AnalysisUpdate) -> Self {
        self.updates.push((id, update));
        self
    }
}

/// Where a tenant's analysis results live.
#[async_trait::async_trait]
pub trait AnalysisStore: Send + Sync + std::fmt::Debug {
    /// Creates and updates results in one transaction: every operation applies, or none
    /// does (the first failure is returned, with the operation's position in its message).
    /// Returns the created results, then the updated ones, in the batch's order. Needs
    /// [`ANALYSIS_WRITE`]; `InvalidInput` for an empty batch, more than [`MAX_BATCH`]
    /// operations or one result updated twice; otherwise each operation fails as
    /// [`create`](Self::create) and [`update`](Self::update) do.
    async fn apply_batch(
        &self,
        actor: &Principal,
        tenant: TenantId,
        batch: &AnalysisBatch,
    ) -> Result<Vec<AnalysisResult>, StorageError>;

    /// Records a result on `project`. Needs [`ANALYSIS_WRITE`] in an active tenant;
    /// `InvalidInput` for a bad spec, `NotFound` for a project of another tenant or a
    /// snapshot that is not a committed snapshot of the project.
    async fn create(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        spec: &AnalysisSpec,
    ) -> Result<AnalysisResult, StorageError>;

    /// Result `id`. Needs [`ANALYSIS_READ`]; `NotFound` for a result of another tenant.
    async fn get(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: AnalysisId,
    ) -> Result<AnalysisResult, StorageError>;

    /// The project's results matching `query`, newest first. Needs [`ANALYSIS_READ`];
    /// `InvalidInput` for a bad filter, page size or cursor, `NotFound` for a project of
    /// another tenant.
    async fn list(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        query: &AnalysisQuery,
    ) -> Result<Page<AnalysisResult>, StorageError>;

    /// Changes result `id` as `update` says and returns it. Needs [`ANALYSIS_WRITE`];
    /// `Conflict` if it is no longer at `update.expected_revision`, has finished, or the
    /// status would move backwards. An update that changes nothing writes nothing.
    async fn update(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: AnalysisId,
        update: &AnalysisUpdate,
    ) -> Result<AnalysisResult, StorageError>;

    /// Deletes result `id` and its payloads. Needs [`ANALYSIS_DELETE`]; `Conflict` if it is
    /// no longer at `expected_revision` (when given), `NotFound` if it does not exist.
    async fn delete(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: AnalysisId,
        expected_revision: Option<i64>,
    ) -> Result<(), StorageError>;

    /// Streams `content` into a new payload `name` of result `id` (encrypted under the
    /// project's key as it streams) and records it. Needs [`ANALYSIS_WRITE`]; the result
    /// must not have finished (`Conflict`), nor hold a payload of that name
    /// (`AlreadyExists`) or [`MAX_PAYLOADS`] already; `InvalidInput` for a bad name or
    /// content type; `QuotaExceeded` past the tenant's `max_storage_bytes`. On any error
    /// nothing is recorded.
    async fn put_payload(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: AnalysisId,
        name: &str,
        content_type: &str,
        content: &mut (dyn AsyncRead + Unpin + Send),
    ) -> Result<Payload, StorageError>;

    /// Writes payload `name` of result `id` to `out`, decrypting and checking it as it
    /// streams (its SHA-256 too), and returns what was recorded about it. Needs
    /// [`ANALYSIS_READ`]; `NotFound` for an unknown payload, `Integrity` if the stored
    /// bytes were altered (what was written to `out` before the damage was found must then
    /// be discarded).
    async fn read_payload(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: AnalysisId,
        name: &str,
        out: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<Payload, StorageError>;
}
