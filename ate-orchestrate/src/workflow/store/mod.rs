//! Where runs live: the [`WorkflowStore`] trait, what it returns ([`Run`], [`NodeView`]) and
//! its SQL backend ([`SqlWorkflowStore`], SQLite and PostgreSQL). One conformance suite in
//! `tests/src/workflow_store.rs` runs against every backend.
//!
//! Every call is checked against the acting [`Principal`]: reading needs
//! [`WORKFLOWS_READ`] in the tenant, submitting and cancelling need [`WORKFLOWS_RUN`]
//! (platform administrators hold both everywhere). A run of another tenant is `NotFound`,
//! exactly like a run that does not exist.
//!
//! **Status**: runs are submitted (idempotently, audited, in one transaction with their
//! nodes), read, listed and cancelled. Claiming nodes, leases, completions, signals and logs
//! come with the workers.

mod sql;

pub use sql::SqlWorkflowStore;

use super::dag::{NodeId, SignalName, StepName};
use super::run::ValidRun;
use super::state::{NodeError, NodeStatus, RunStatus};
use crate::OrchestrateError;
use ate_core::{Cursor, Page, Permission, Principal, RunId, TenantId};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Read a tenant's workflow runs, their nodes and logs.
pub const WORKFLOWS_READ: Permission = Permission::from_static("workflows:read");
/// Submit, cancel, retry and signal a tenant's workflow runs.
pub const WORKFLOWS_RUN: Permission = Permission::from_static("workflows:run");

/// A run as stored, with its nodes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Run {
    /// Its id.
    pub id: RunId,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its status.
    pub status: RunStatus,
    /// While running handlers wind down after a cancel (or a failure): how the run will end.
    pub stopping: Option<RunStatus>,
    /// The input.
    pub input: Value,
    /// The idempotency key it was submitted with.
    pub idempotency_key: Option<String>,
    /// Its priority.
    pub priority: i32,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Not before this time.
    pub start_at: DateTime<Utc>,
    /// The whole run's limit.
    pub timeout: Option<Duration>,
    /// Why it failed.
    pub error: Option<String>,
    /// Who submitted it (the principal's subject).
    pub created_by: String,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Grows with every change.
    pub revision: i64,
    /// Its nodes, in the order of the definition.
    pub nodes: Vec<NodeView>,
}

/// What a node does, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeTask {
    /// Runs this step.
    Step(StepName),
    /// Waits for this signal.
    Signal(SignalName),
}

/// One node of a stored run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NodeView {
    /// Its id.
    pub id: NodeId,
    /// What it does.
    pub task: NodeTask,
    /// Its status.
    pub status: NodeStatus,
    /// Attempts started.
    pub attempt: u32,
    /// When it may next be claimed (while ready).
    pub ready_at: Option<DateTime<Utc>>,
    /// Its output.
    pub output: Option<Value>,
    /// The last attempt's error.
    pub error: Option<NodeError>,
    /// When its last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// The result of a submission.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Submitted {
    /// The run.
    pub run: Run,
    /// `false` when the idempotency key named a run that already existed: that run is
    /// returned and nothing new was stored.
    pub created: bool,
}

/// Which runs [`WorkflowStore::list`] returns, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RunQuery {
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Only runs carrying this label with this value.
    pub label: Option<(String, String)>,
    /// Only runs submitted at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only runs submitted before this time.
    pub until: Option<DateTime<Utc>>,
    /// Page size (default and maximum: `ate_core::page`'s).
    pub limit: Option<u32>,
    /// Where the previous page ended.
    pub cursor: Option<Cursor>,
}

impl RunQuery {
    /// Every run.
    pub fn new() -> Self {
        RunQuery::default()
    }

    /// Sets [`RunQuery::status`].
    pub fn status(mut self, status: RunStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Sets [`RunQuery::label`].
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.label = Some((key.into(), value.into()));
        self
    }

    /// Sets [`RunQuery::since`].
    pub fn since(mut self, at: DateTime<Utc>) -> Self {
        self.since = Some(at);
        self
    }

    /// Sets [`RunQuery::until`].
    pub fn until(mut self, at: DateTime<Utc>) -> Self {
        self.until = Some(at);
        self
    }

    /// Sets [`RunQuery::limit`].
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// Sets [`RunQuery::cursor`].
    pub fn cursor(mut self, cursor: Cursor) -> Self {
        self.cursor = Some(cursor);
        self
    }
}

/// Stores workflow runs. Implementations must pass the conformance suite in
/// `tests/src/workflow_store.rs`.
#[async_trait::async_trait]
pub trait WorkflowStore: Send + Sync + std::fmt::Debug {
    /// Stores `run` for `tenant`, with its nodes and a `workflow_submitted` audit event, in
    /// one transaction. Needs [`WORKFLOWS_RUN`]; the tenant must be active.
    ///
    /// With an idempotency key that names an existing run of the tenant, returns that run
    /// (`created: false`) and stores nothing, however the rest of `run` differs. A run whose
    /// start time has come is `running` at once, its roots ready; a delayed run stays
    /// `pending` until a worker starts it.
    async fn submit(
        &self,
        actor: &Principal,
        tenant: TenantId,
        run: &ValidRun,
    ) -> Result<Submitted, OrchestrateError>;

    /// Run `id` of `tenant`, with its nodes. Needs [`WORKFLOWS_READ`]. `NotFound` for a run
    /// that does not exist or belongs to another tenant.
    async fn get(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: RunId,
    ) -> Result<Run, OrchestrateError>;

    /// `tenant`'s runs matching `query`, newest first, without their nodes
    /// ([`Run::nodes`] is empty). Needs [`WORKFLOWS_READ`].
    async fn list(
        &self,
        actor: &Principal,
        tenant: TenantId,
        query: &RunQuery,
    ) -> Result<Page<Run>, OrchestrateError>;

    /// Cancels run `id` (see [`RunState::cancel`](super::RunState::cancel)) and audits
    /// `workflow_cancelled`, in one transaction. Idempotent: cancelling a run that has ended
    /// or is already stopping changes nothing, records nothing and is not an error. Needs
    /// [`WORKFLOWS_RUN`].
    async fn cancel(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: RunId,
    ) -> Result<Run, OrchestrateError>;
}
