//! Where runs live: the [`WorkflowStore`] trait, what it returns ([`Run`], [`NodeView`]) and
//! its SQL backend ([`SqlWorkflowStore`], SQLite and PostgreSQL). One conformance suite in
//! `tests/src/workflow_store.rs` runs against every backend.
//!
//! Every call is checked against the acting [`Principal`]: reading needs
//! [`WORKFLOWS_READ`] in the tenant, submitting and cancelling need [`WORKFLOWS_RUN`]
//! (platform administrators hold both everywhere). A run of another tenant is `NotFound`,
//! exactly like a run that does not exist.
//!
//! The worker side ([`WorkflowStore::claim`], [`heartbeat`](WorkflowStore::heartbeat),
//! [`complete`](WorkflowStore::complete), [`fail`](WorkflowStore::fail),
//! [`maintain`](WorkflowStore::maintain)) checks no principal: it is for the engine's
//! workers, which the host runs.

pub mod events;
pub mod logs;
mod sql;

pub use events::{NodeChange, RunEvent, RunWatch, WatchGap};
pub use logs::{LogEntry, LogLevel, LogQuery};
pub use sql::{MAX_LOG_BATCH, MAX_SUBMIT_BATCH, SqlWorkflowStore};

use super::dag::{NodeId, SignalName, StepName};
use super::run::ValidRun;
use super::schedule::{Schedule, ValidSchedule};
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
    /// The run whose step started this one ([`WorkflowStore::submit_child`]).
    pub parent: Option<RunId>,
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
    /// The nodes it waits for, as defined (the run's graph: draw an edge from each).
    pub depends_on: Vec<NodeId>,
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

/// A worker's hold on one running attempt: the node and the **fencing token** its claim was
/// given. Every claim of a node gets a larger token, so a worker whose lease expired (and whose
/// node was claimed again) can no longer record anything: its token is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Lease {
    /// The run.
    pub run: RunId,
    /// The node's index in the run's DAG.
    pub node: u32,
    /// The fencing token.
    pub token: i64,
}

/// A node attempt handed to a worker by [`WorkflowStore::claim`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Claim {
    /// What the worker holds (pass it back to heartbeat, complete or fail).
    pub lease: Lease,
    /// The run's tenant.
    pub tenant: TenantId,
    /// The node's id.
    pub node_id: NodeId,
    /// The step to run.
    pub step: StepName,
    /// This attempt's number (1 = the first).
    pub attempt: u32,
    /// The handler's input ([`node_input`](super::node_input): the run's input and the
    /// dependencies' outputs).
    pub input: Value,
    /// When the lease ends unless renewed by a heartbeat.
    pub lease_expires_at: DateTime<Utc>,
    /// How long this attempt may run (the node's start-to-close timeout).
    pub start_to_close: Duration,
    /// The longest the handler may go without calling
    /// [`StepContext::heartbeat`](crate::workflow::StepContext::heartbeat) (the node's
    /// heartbeat timeout), if it has one.
    pub heartbeat_timeout: Option<Duration>,
}

/// A worker's request for work, answered by [`WorkflowStore::record_and_claim`] as
/// [`WorkflowStore::claim_steps`] would answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimRequest {
    /// The worker (1 to 256 bytes), named in the leases.
    pub worker: String,
    /// The steps it runs; none: it is given nothing.
    pub steps: Vec<StepName>,
    /// The most nodes it takes.
    pub max: usize,
    /// How long each lease lasts without a heartbeat.
    pub lease: Duration,
}

impl ClaimRequest {
    /// Up to `max` nodes running one of `steps`, for `worker`, each leased for `lease`.
    pub fn new(
        worker: impl Into<String>,
        steps: Vec<StepName>,
        max: usize,
        lease: Duration,
    ) -> Self {
        ClaimRequest {
            worker: worker.into(),
            steps,
            max,
            lease,
        }
    }
}

/// What [`WorkflowStore::record_and_claim`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct RecordedAndClaimed {
    /// Each attempt's outcome, in order, as [`WorkflowStore::record_many`] gives them.
    pub recorded: Vec<Result<RunStatus, OrchestrateError>>,
    /// Each request's claims, in order (an invalid request: its error).
    pub claimed: Vec<Result<Vec<Claim>, OrchestrateError>>,
}

/// What one [`WorkflowStore::maintain`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Maintenance {
    /// Delayed runs whose start time came.
    pub started: usize,
    /// Attempts whose lease expired (their worker died or hung): counted as failed
    /// attempts, so they are retried or fail their node.
    pub expired_leases: usize,
    /// Runs that passed their timeout.
    pub timed_out: usize,
    /// Signal nodes whose signal did not come in time (failed).
    pub signals_timed_out: usize,
    /// Child runs cancelled because their parent had ended (left over when the
    /// cancellation right after the parent's end did not happen, e.g. a crash).
    pub children_cancelled: usize,
    /// Schedule ticks fired (each submitted its run).
    pub schedules_fired: usize,
}

/// One tenant's workload, as [`WorkflowStore::stats`] reads it.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct TenantWorkload {
    /// How many of its runs are in each status (statuses without runs are absent).
    pub runs: BTreeMap<RunStatus, u64>,
    /// Nodes due now and waiting for a worker (the queue).
    pub ready_nodes: u64,
    /// Nodes running now.
    pub running_nodes: u64,
    /// Since when the longest-waiting due node has been ready.
    pub oldest_ready_at: Option<DateTime<Utc>>,
}

/// Every tenant's workload at one moment ([`WorkflowStore::stats`]), for metrics, alerts and
/// dashboards.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct WorkflowStats {
    /// When it was read.
    pub at: DateTime<Utc>,
    /// Per tenant with any run.
    pub tenants: BTreeMap<TenantId, TenantWorkload>,
}

impl WorkflowStats {
    /// How long tenant `tenant`'s longest-waiting due node has waited (zero when none waits).
    pub fn oldest_ready_age(&self, tenant: TenantId) -> Duration {
        self.tenants
            .get(&tenant)
            .and_then(|w| w.oldest_ready_at)
            .and_then(|at| (self.at - at).to_std().ok())
            .unwrap_or_default()
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

    /// Submits `runs` for `tenant` in one transaction, each as [`submit`](Self::submit)
    /// would (idempotency keys included, also between runs of the batch), and returns them
    /// in order. All or nothing: one error stores none. `InvalidInput` for more than
    /// [`MAX_SUBMIT_BATCH`] runs.
    async fn submit_many(
        &self,
        actor: &Principal,
        tenant: TenantId,
        runs: &[ValidRun],
    ) -> Result<Vec<Submitted>, OrchestrateError>;

    /// Starts `run` as a **child** of the attempt holding `lease`, in the parent's tenant,
    /// submitted by `workflow:<parent run>` (audited so). The lease must still be held
    /// (`Conflict` otherwise); the idempotency key works as for [`submit`](Self::submit), so
    /// a repeated attempt passing the same key gets the same child. A child is cancelled
    /// when its parent ends or stops, whatever the reason (Temporal's default parent-close
    /// policy): at once, or by the next maintenance pass. For the engine's workers (see
    /// [`StepContext::start_child`](crate::workflow::StepContext::start_child)).
    async fn submit_child(
        &self,
        lease: &Lease,
        run: &ValidRun,
    ) -> Result<Submitted, OrchestrateError>;

    /// Child run `id` of the run `lease` is on, with its nodes. `NotFound` for a run that is
    /// not a child of that run. For the engine's workers.
    async fn get_child(&self, lease: &Lease, id: RunId) -> Result<Run, OrchestrateError>;

    /// Creates a schedule for `tenant` (see [`schedule`](super::schedule)): its first tick
    /// is the first after now. Audited as `schedule_created`; needs [`WORKFLOWS_RUN`];
    /// `AlreadyExists` for a name the tenant uses; the tenant must be active.
    async fn create_schedule(
        &self,
        actor: &Principal,
        tenant: TenantId,
        schedule: &ValidSchedule,
    ) -> Result<Schedule, OrchestrateError>;

    /// `tenant`'s schedule `name`. Needs [`WORKFLOWS_READ`]; `NotFound` otherwise.
    async fn get_schedule(
        &self,
        actor: &Principal,
        tenant: TenantId,
        name: &str,
    ) -> Result<Schedule, OrchestrateError>;

    /// `tenant`'s schedules, by name. Needs [`WORKFLOWS_READ`].
    async fn list_schedules(
        &self,
        actor: &Principal,
        tenant: TenantId,
    ) -> Result<Vec<Schedule>, OrchestrateError>;

    /// Pauses (`true`) or resumes schedule `name`. Resuming starts from now: ticks missed
    /// while paused do not fire. Audited as `schedule_updated` when it changes anything;
    /// needs [`WORKFLOWS_RUN`]; `NotFound` for an unknown name.
    async fn pause_schedule(
        &self,
        actor: &Principal,
        tenant: TenantId,
        name: &str,
        paused: bool,
    ) -> Result<Schedule, OrchestrateError>;

    /// Deletes schedule `name` (its runs stay). Audited as `schedule_deleted`; needs
    /// [`WORKFLOWS_RUN`]; `NotFound` for an unknown name.
    async fn delete_schedule(
        &self,
        actor: &Principal,
        tenant: TenantId,
        name: &str,
    ) -> Result<(), OrchestrateError>;

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

    /// Starts failed run `id` again from its failure
    /// ([`RunState::retry_from_failure`](super::RunState::retry_from_failure)): succeeded
    /// nodes keep their outputs, every other node starts over with fresh attempts. Audited
    /// as `workflow_retried`. Needs [`WORKFLOWS_RUN`]; `Conflict` unless the run failed;
    /// `NotFound` for another tenant's run.
    async fn retry(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: RunId,
    ) -> Result<Run, OrchestrateError>;

    /// Delivers signal `name` with `payload` to run `id`: every node of the run waiting for
    /// it succeeds with the payload as its output, audited as `workflow_signalled`. Needs
    /// [`WORKFLOWS_RUN`]. `InvalidInput` when no node of the run waits for that signal, or
    /// the payload is larger than the store's limit; `Conflict` when its nodes are not
    /// waiting now (not reached yet, or done); `NotFound` for another tenant's run.
    async fn signal(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: RunId,
        name: &str,
        payload: Value,
    ) -> Result<Run, OrchestrateError>;

    /// Every run event of every tenant from now on ([`RunEvent`], published after each
    /// change commits; see [`events`] for where they come from). For the engine's workers
    /// and the host: no principal is checked; hand operators [`watch`](Self::watch) instead.
    async fn events(&self) -> Result<tokio::sync::broadcast::Receiver<RunEvent>, OrchestrateError>;

    /// `tenant`'s run events from now on, or only run `run`'s. Needs [`WORKFLOWS_READ`];
    /// `NotFound` for a run of another tenant. Subscribe, then [`get`](Self::get) the run,
    /// then apply the events newer than its revision.
    async fn watch(
        &self,
        actor: &Principal,
        tenant: TenantId,
        run: Option<RunId>,
    ) -> Result<RunWatch, OrchestrateError> {
        actor.require(tenant, &WORKFLOWS_READ)?;
        let events = self.events().await?;
        if let Some(id) = run {
            self.get(actor, tenant, id).await?;
        }
        Ok(RunWatch::new(events, tenant, run))
    }

    /// Run `id`'s log entries matching `query`, oldest first, paginated. Needs
    /// [`WORKFLOWS_READ`]; `NotFound` for another tenant's run.
    async fn logs(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: RunId,
        query: &LogQuery,
    ) -> Result<Page<LogEntry>, OrchestrateError>;

    /// Appends entries written by the attempt holding `lease` (for the engine's workers).
    /// `InvalidInput` for more than [`MAX_LOG_BATCH`] entries; `NotFound` for an unknown run.
    async fn append_logs(
        &self,
        lease: &Lease,
        entries: &[LogEntry],
    ) -> Result<(), OrchestrateError>;

    /// Hands up to `max` due nodes to `worker`, each with a lease of `lease` and a fencing
    /// token. The pick is fair across tenants (each tenant's most urgent node first, by run
    /// priority then readiness, in turns) and respects the store's per-tenant limit on
    /// running nodes. Nodes of runs that are
    /// stopping are never handed out. On PostgreSQL concurrent claimers skip each other's
    /// rows (`SKIP LOCKED`), so no node goes to two workers. For the engine's workers: no
    /// principal is checked.
    async fn claim(
        &self,
        worker: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claim>, OrchestrateError>;

    /// [`claim`](Self::claim), only nodes running one of `steps` (the handlers the
    /// claiming engine has): engines with different steps can share a database, each
    /// taking only what it can run. No steps: nothing is claimed.
    async fn claim_steps(
        &self,
        worker: &str,
        steps: &[StepName],
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claim>, OrchestrateError>;

    /// Extends `lease` to `extend` from now; returns whether the run asked the attempt to
    /// stop (cancelled, or failing). `Conflict` when the lease is no longer held.
    async fn heartbeat(&self, lease: &Lease, extend: Duration) -> Result<bool, OrchestrateError>;

    /// Records the attempt's output, exactly once: dependents are released, and the run
    /// may end. `Conflict` when the lease is no longer held (expired and claimed again, or
    /// already recorded), and nothing changes. An output larger than the store's limit fails
    /// the attempt instead (`output_too_large`, not retried).
    async fn complete(&self, lease: &Lease, output: Value) -> Result<RunStatus, OrchestrateError>;

    /// Records the attempt's failure: retried after the policy's wait, or the node fails
    /// (and with it the run, unless it may fail). `Conflict` when the lease is no longer
    /// held.
    async fn fail(&self, lease: &Lease, error: NodeError) -> Result<RunStatus, OrchestrateError>;

    /// Records several attempts' results at once, each as [`complete`](Self::complete)
    /// (`Ok`) or [`fail`](Self::fail) (`Err`) would, and returns each one's outcome in the
    /// same order: a lost lease fails only its own attempt. The engine's workers record
    /// through this, so a SQL store commits many completions in one transaction (one
    /// disk flush) instead of one each. `Err` for the whole batch means nothing was
    /// recorded; the caller may record the attempts one by one. The default records them one
    /// by one.
    async fn record_many(
        &self,
        attempts: &[(Lease, Result<Value, NodeError>)],
    ) -> Result<Vec<Result<RunStatus, OrchestrateError>>, OrchestrateError> {
        let mut done = Vec::with_capacity(attempts.len());
        for (lease, result) in attempts {
            done.push(match result {
                Ok(output) => self.complete(lease, output.clone()).await,
                Err(error) => self.fail(lease, error.clone()).await,
            });
        }
        Ok(done)
    }

    /// Records attempts' results as [`record_many`](Self::record_many) does, then answers
    /// each of `requests` as [`claim_steps`](Self::claim_steps) would, in order: the claims
    /// see the nodes the results have just made ready. The engine's workers record and
    /// claim through this, so a SQL store does both in **one** transaction: a worker that
    /// finishes attempts and takes new ones pays for one commit, not two. There, `Err`
    /// means nothing was recorded and nothing claimed (the caller may record the attempts
    /// one by one, then claim). The default calls the two in turn; `Err` only if recording
    /// failed as a whole.
    async fn record_and_claim(
        &self,
        attempts: &[(Lease, Result<Value, NodeError>)],
        requests: &[ClaimRequest],
    ) -> Result<RecordedAndClaimed, OrchestrateError> {
        let recorded = if attempts.is_empty() {
            Vec::new()
        } else {
            self.record_many(attempts).await?
        };
        let mut claimed = Vec::with_capacity(requests.len());
        for r in requests {
            claimed.push(self.claim_steps(&r.worker, &r.steps, r.max, r.lease).await);
        }
        Ok(RecordedAndClaimed { recorded, claimed })
    }

    /// How many [`record_and_claim`](Self::record_and_claim) calls an engine makes at
    /// once: 1 (the default) where writes take turns anyway, as on SQLite, so results and
    /// requests gather into larger batches; more where the database runs transactions side
    /// by side, as PostgreSQL does.
    fn concurrent_batches(&self) -> usize {
        1
    }

    /// Gives back an unfinished attempt (its worker is shutting down): the node is ready
    /// again at once and the attempt does not count. `Conflict` when the lease is no longer
    /// held.
    async fn release(&self, lease: &Lease) -> Result<(), OrchestrateError>;

    /// Every tenant's workload now: runs by status, the queue of due nodes and its oldest
    /// entry, running nodes. For the host's metrics and alerts: no principal is checked.
    /// Reads whole tables (grouped), so call it every few seconds, not per request.
    async fn stats(&self) -> Result<WorkflowStats, OrchestrateError>;

    /// One maintenance pass, safe to run from every host at once: starts delayed runs
    /// whose time came, takes back attempts whose lease expired (a failed, retryable
    /// attempt of kind `lease_expired`), times out runs past their timeout and fails signal
    /// nodes whose signal did not come in time, and cancels child runs whose parent
    /// ended, and fires due schedule ticks (exactly once each, whichever host fires them).
    /// Handles a
    /// bounded batch of each; call it again (workers do, periodically).
    async fn maintain(&self) -> Result<Maintenance, OrchestrateError>;
}
