//! [`SqlWorkflowStore`]: runs in the `wf_runs`, `wf_run_labels` and `wf_nodes` tables of a
//! [`Db`] (SQLite or PostgreSQL), shared by every host on the database.
//!
//! A write locks the tenant (submissions, through ate-core's [`CoreTx`]) or the run's row
//! (`UPDATE … RETURNING` on the run, the same statement on both backends), so concurrent
//! changes to one run apply one after the other, each on the state the previous one left.

use super::events::{Feed, RunEvent};
use super::logs::{LogEntry, LogQuery};
use super::{
    Claim, ClaimRequest, Lease, Maintenance, NodeTask, NodeView, RecordedAndClaimed, Run, RunQuery,
    Submitted, WORKFLOWS_READ, WorkflowStore,
};
use crate::OrchestrateError;
use crate::workflow::dag::{NodeId, SignalName, StepName};
use crate::workflow::run::ValidRun;
use crate::workflow::schedule::{Schedule, ValidSchedule};
use crate::workflow::spec::Limits;
use crate::workflow::state::{NodeError, NodeState, NodeStatus, RunState, RunStatus};
use ate_core::db::from_micros;
use ate_core::{Clock, CoreError, Db, Page, Principal, RunId, SystemClock, TenantId, with_pool};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

use bulk::wait_until;
use mutate::{DagCache, Loaded};

const CURSOR_KIND: &str = "workflow_runs";

pub use logs::MAX_LOG_BATCH;
pub use runs::MAX_SUBMIT_BATCH;

/// A [`WorkflowStore`] in a [`Db`] (SQLite or PostgreSQL).
#[derive(Debug, Clone)]
pub struct SqlWorkflowStore {
    db: Db,
    clock: Arc<dyn Clock>,
    limits: Limits,
    max_running_per_tenant: Option<usize>,
    max_running: Option<usize>,
    feed: Feed,
    dags: DagCache,
    /// The tenant the last claim ended with: the next starts after it.
    claim_cursor: Arc<std::sync::Mutex<Option<Uuid>>>,
    /// [`with_concurrent_batches`](Self::with_concurrent_batches), if set.
    concurrent_batches: Option<usize>,
}

/// [`SqlWorkflowStore::with_concurrent_batches`] on PostgreSQL by default.
const DEFAULT_PG_BATCHES: usize = 3;

macro_rules! run_columns {
    () => {
        "id, tenant_id, status, stopping, input, idempotency_key, priority, labels, start_at, \
         timeout_ms, error, created_by, created_at, updated_at, finished_at, revision, \
         parent_run_id"
    };
}

macro_rules! node_columns {
    () => {
        "idx, node_id, kind, task, status, attempt, ready_at, first_ready_at, output, error, \
         cancel_requested, lease_token, started_at, finished_at"
    };
}

mod bulk;
mod claim;
mod listen;
mod logs;
mod mutate;
mod runs;
mod schedules;
mod stats;
mod work;

#[derive(sqlx::FromRow)]
struct RunRow {
    id: Uuid,
    tenant_id: Uuid,
    status: String,
    stopping: Option<String>,
    input: String,
    idempotency_key: Option<String>,
    priority: i32,
    labels: String,
    start_at: i64,
    timeout_ms: Option<i64>,
    error: Option<String>,
    created_by: String,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
    revision: i64,
    parent_run_id: Option<Uuid>,
}

/// A node as stored. Also read from a JSON array of its fields, in order ([`bulk`]).
#[derive(Clone, sqlx::FromRow, serde::Deserialize)]
struct NodeRow {
    idx: i32,
    node_id: String,
    kind: String,
    task: String,
    status: String,
    attempt: i32,
    ready_at: Option<i64>,
    first_ready_at: Option<i64>,
    output: Option<String>,
    error: Option<String>,
    cancel_requested: i32,
    lease_token: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> OrchestrateError {
    OrchestrateError::Core(CoreError::Internal(format!(
        "stored workflow run has a bad {what}: {e}"
    )))
}

fn micros(t: Option<i64>) -> Result<Option<DateTime<Utc>>, OrchestrateError> {
    Ok(t.map(from_micros).transpose()?)
}

impl RunRow {
    fn run(self, nodes: Vec<NodeView>) -> Result<Run, OrchestrateError> {
        Ok(Run {
            id: RunId::from_uuid(self.id)?,
            tenant: TenantId::from_uuid(self.tenant_id)?,
            status: RunStatus::parse(&self.status).map_err(|e| corrupt("status", e))?,
            stopping: self
                .stopping
                .as_deref()
                .map(RunStatus::parse)
                .transpose()
                .map_err(|e| corrupt("stopping", e))?,
            input: serde_json::from_str(&self.input).map_err(|e| corrupt("input", e))?,
            idempotency_key: self.idempotency_key,
            priority: self.priority,
            labels: serde_json::from_str(&self.labels).map_err(|e| corrupt("labels", e))?,
            start_at: from_micros(self.start_at)?,
            timeout: self
                .timeout_ms
                .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
            error: self.error,
            created_by: self.created_by,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
            finished_at: micros(self.finished_at)?,
            revision: self.revision,
            parent: self.parent_run_id.map(RunId::from_uuid).transpose()?,
            nodes,
        })
    }
}

impl NodeRow {
    fn error(&self) -> Result<Option<NodeError>, OrchestrateError> {
        let Some(text) = &self.error else {
            return Ok(None);
        };
        let v: Value = serde_json::from_str(text).map_err(|e| corrupt("node error", e))?;
        let field = |name: &str| v[name].as_str().unwrap_or_default().to_owned();
        Ok(Some(NodeError {
            kind: field("kind"),
            message: field("message"),
            retryable: v["retryable"].as_bool().unwrap_or(false),
        }))
    }

    fn output(&self) -> Result<Option<Value>, OrchestrateError> {
        self.output
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupt("node output", e))
    }

    fn view(&self) -> Result<NodeView, OrchestrateError> {
        let bad_name = |e: OrchestrateError| corrupt("node task", e);
        Ok(NodeView {
            id: NodeId::new(self.node_id.as_str()).map_err(|e| corrupt("node id", e))?,
            task: match self.kind.as_str() {
                "step" => NodeTask::Step(StepName::new(self.task.as_str()).map_err(bad_name)?),
                "signal" => {
                    NodeTask::Signal(SignalName::new(self.task.as_str()).map_err(bad_name)?)
                }
                other => return Err(corrupt("node kind", other)),
            },
            status: NodeStatus::parse(&self.status).map_err(|e| corrupt("node status", e))?,
            attempt: u32::try_from(self.attempt).unwrap_or(0),
            ready_at: micros(self.ready_at)?,
            output: self.output()?,
            error: self.error()?,
            started_at: micros(self.started_at)?,
            finished_at: micros(self.finished_at)?,
            // Filled in from the definition by the reader that has it.
            depends_on: Vec::new(),
        })
    }

    fn state(&self) -> Result<NodeState, OrchestrateError> {
        let mut state = NodeState::blocked();
        state.status = NodeStatus::parse(&self.status).map_err(|e| corrupt("node status", e))?;
        state.attempt = u32::try_from(self.attempt).unwrap_or(0);
        state.ready_at = micros(self.ready_at)?;
        state.first_ready_at = micros(self.first_ready_at)?;
        state.output = self.output()?;
        state.error = self.error()?;
        state.cancel_requested = self.cancel_requested != 0;
        Ok(state)
    }
}

fn json_text(v: &impl serde::Serialize, what: &str) -> Result<String, OrchestrateError> {
    serde_json::to_string(v)
        .map_err(|e| OrchestrateError::Core(CoreError::Internal(format!("encoding {what}: {e}"))))
}

/// The size of `v` as stored (serialized JSON), for the store's limit on outputs and signal
/// payloads.
fn json_size(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |bytes| bytes.len())
}

/// The state of a loaded run, for the state machine.
fn run_state(row: &RunRow, nodes: &[NodeRow]) -> Result<RunState, OrchestrateError> {
    let mut state = RunState::empty(nodes.len());
    state.status = RunStatus::parse(&row.status).map_err(|e| corrupt("status", e))?;
    state.stopping = row
        .stopping
        .as_deref()
        .map(RunStatus::parse)
        .transpose()
        .map_err(|e| corrupt("stopping", e))?;
    state.error = row.error.clone();
    for (i, (slot, node)) in state.nodes.iter_mut().zip(nodes).enumerate() {
        if usize::try_from(node.idx).ok() != Some(i) {
            return Err(corrupt(
                "node list",
                format!("node {i} is stored as {}", node.idx),
            ));
        }
        *slot = node.state()?;
    }
    Ok(state)
}

impl SqlWorkflowStore {
    /// Opens the store in `db`, running this crate's migrations ([`crate::migrations`])
    /// first.
    pub async fn open(db: Db) -> Result<Self, OrchestrateError> {
        db.migrate(&crate::migrations()).await?;
        Ok(SqlWorkflowStore {
            db,
            clock: Arc::new(SystemClock),
            limits: Limits::default(),
            max_running_per_tenant: None,
            max_running: None,
            feed: Feed::new(),
            dags: DagCache::default(),
            claim_cursor: Arc::default(),
            concurrent_batches: None,
        })
    }

    /// Lets claims hand out at most `n` running nodes per tenant at a time, across every
    /// worker and host on the database (default: no limit beyond the workers' own
    /// concurrency). A tenant at its limit waits; the others go on.
    pub fn with_max_running_per_tenant(mut self, n: usize) -> Self {
        self.max_running_per_tenant = Some(n);
        self
    }

    /// Lets claims hand out at most `n` running nodes in all, across every tenant, worker
    /// and host on the database (default: no limit beyond the workers' own concurrency), to
    /// protect what the steps call. Within it, claims stay fair across tenants.
    ///
    /// With this or [`with_max_running_per_tenant`](Self::with_max_running_per_tenant) set,
    /// PostgreSQL claims take turns (a transaction-scoped advisory lock), so the limits hold
    /// exactly however many hosts claim at once.
    pub fn with_max_running(mut self, n: usize) -> Self {
        self.max_running = Some(n);
        self
    }

    /// Uses `limits` for what the store itself checks (the size of a node's output, held to
    /// [`Limits::max_input_bytes`]). Definitions are checked by
    /// [`RunSpec::validate`](crate::workflow::RunSpec::validate) before they reach the store.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Lets an engine on this store record results and claim work in up to `n`
    /// transactions at once ([`WorkflowStore::concurrent_batches`]; 0 counts as 1). The
    /// default is 1 on SQLite, whose writers take turns anyway (one transaction then holds
    /// everything that gathered meanwhile), and 3 on PostgreSQL, which the workflow bench
    /// found best on a 2-core machine (`benches/README.md`); a larger database server may
    /// want more.
    pub fn with_concurrent_batches(mut self, n: usize) -> Self {
        self.concurrent_batches = Some(n.max(1));
        self
    }

    /// Uses `clock` for every time it records.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    async fn load(&self, tenant: TenantId, id: RunId) -> Result<Run, OrchestrateError> {
        let row: Option<RunRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                run_columns!(),
                " FROM wf_runs WHERE tenant_id = $1 AND id = $2"
            ))
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(pool)
            .await?
        });
        let row = row.ok_or_else(|| OrchestrateError::not_found("workflow run", id))?;
        let nodes: Vec<NodeRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                node_columns!(),
                " FROM wf_nodes WHERE run_id = $1 ORDER BY idx"
            ))
            .bind(id.as_uuid())
            .fetch_all(pool)
            .await?
        });
        let mut views = nodes
            .iter()
            .map(NodeRow::view)
            .collect::<Result<Vec<_>, _>>()?;
        // The edges come from the definition (parsed once per run and host, like claims do).
        let uuid = id.as_uuid();
        let dag = match self.dags.snapshot([&uuid]).remove(&uuid) {
            Some(dag) => dag,
            None => {
                let definition: String = with_pool!(self.db, |pool| {
                    sqlx::query_scalar("SELECT definition FROM wf_runs WHERE id = $1")
                        .bind(uuid)
                        .fetch_one(pool)
                        .await?
                });
                self.dags.parse(uuid, &definition)?
            }
        };
        let defined = dag.nodes();
        for (view, node) in views.iter_mut().zip(defined) {
            view.depends_on = node
                .depends_on
                .iter()
                .filter_map(|&d| defined.get(d).map(|n| n.id.clone()))
                .collect();
        }
        row.run(views)
    }
}

#[async_trait::async_trait]
impl WorkflowStore for SqlWorkflowStore {
    async fn submit(
        &self,
        actor: &Principal,
        tenant: TenantId,
        run: &ValidRun,
    ) -> Result<Submitted, OrchestrateError> {
        let mut submitted = self
            .submit_runs(actor, tenant, std::slice::from_ref(run))
            .await?;
        submitted
            .pop()
            .ok_or_else(|| OrchestrateError::Core(CoreError::Internal("no run stored".into())))
    }

    async fn submit_many(
        &self,
        actor: &Principal,
        tenant: TenantId,
        runs: &[ValidRun],
    ) -> Result<Vec<Submitted>, OrchestrateError> {
        self.submit_runs(actor, tenant, runs).await
    }

    async fn submit_child(
        &self,
        lease: &Lease,
        run: &ValidRun,
    ) -> Result<Submitted, OrchestrateError> {
        self.submit_child_run(lease, run).await
    }

    async fn get_child(&self, lease: &Lease, id: RunId) -> Result<Run, OrchestrateError> {
        let tenant: Option<Uuid> = with_pool!(self.db, |pool| {
            sqlx::query_scalar("SELECT tenant_id FROM wf_runs WHERE id = $1 AND parent_run_id = $2")
                .bind(id.as_uuid())
                .bind(lease.run.as_uuid())
                .fetch_optional(pool)
                .await?
        });
        let tenant = tenant.ok_or_else(|| OrchestrateError::not_found("child run", id))?;
        self.load(TenantId::from_uuid(tenant)?, id).await
    }

    async fn get(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: RunId,
    ) -> Result<Run, OrchestrateError> {
        actor.require(tenant, &WORKFLOWS_READ)?;
        self.load(tenant, id).await
    }

    async fn create_schedule(
        &self,
        actor: &Principal,
        tenant: TenantId,
        schedule: &ValidSchedule,
    ) -> Result<Schedule, OrchestrateError> {
        self.create_schedule_row(actor, tenant, schedule).await
    }

    async fn get_schedule(
        &self,
        actor: &Principal,
        tenant: TenantId,
        name: &str,
    ) -> Result<Schedule, OrchestrateError> {
        self.read_schedule(actor, tenant, name).await
    }

    async fn list_schedules(
        &self,
        actor: &Principal,
        tenant: TenantId,
    ) -> Result<Vec<Schedule>, OrchestrateError> {
        self.list_schedule_rows(actor, tenant).await
    }

    async fn pause_schedule(
        &self,
        actor: &Principal,
        tenant: TenantId,
        name: &str,
        paused: bool,
    ) -> Result<Schedule, OrchestrateError> {
        self.pause_schedule_row(actor, tenant, name, paused).await
    }

    async fn delete_schedule(
        &self,
        actor: &Principal,
        tenant: TenantId,
        name: &str,
    ) -> Result<(), OrchestrateError> {
        self.delete_schedule_row(actor, tenant, name).await
    }

    async fn list(
        &self,
        actor: &Principal,
        tenant: TenantId,
        query: &RunQuery,
    ) -> Result<Page<Run>, OrchestrateError> {
        self.list_runs(actor, tenant, query).await
    }

    async fn cancel(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: RunId,
    ) -> Result<Run, OrchestrateError> {
        self.cancel_run(actor, tenant, id).await
    }

    async fn retry(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: RunId,
    ) -> Result<Run, OrchestrateError> {
        self.retry_run(actor, tenant, id).await
    }

    async fn signal(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: RunId,
        name: &str,
        payload: Value,
    ) -> Result<Run, OrchestrateError> {
        self.signal_run(actor, tenant, id, name, payload).await
    }

    async fn events(&self) -> Result<tokio::sync::broadcast::Receiver<RunEvent>, OrchestrateError> {
        self.subscribe().await
    }

    async fn logs(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: RunId,
        query: &LogQuery,
    ) -> Result<Page<LogEntry>, OrchestrateError> {
        self.read_logs(actor, tenant, id, query).await
    }

    async fn append_logs(
        &self,
        lease: &Lease,
        entries: &[LogEntry],
    ) -> Result<(), OrchestrateError> {
        self.append_log_entries(lease, entries).await
    }

    async fn claim(
        &self,
        worker: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claim>, OrchestrateError> {
        self.claim_nodes(worker, None, max, lease).await
    }

    async fn claim_steps(
        &self,
        worker: &str,
        steps: &[StepName],
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claim>, OrchestrateError> {
        self.claim_nodes(worker, Some(steps), max, lease).await
    }

    async fn heartbeat(&self, lease: &Lease, extend: Duration) -> Result<bool, OrchestrateError> {
        self.renew(lease, extend).await
    }

    async fn complete(&self, lease: &Lease, output: Value) -> Result<RunStatus, OrchestrateError> {
        self.finish(lease, Ok(output)).await
    }

    async fn fail(&self, lease: &Lease, error: NodeError) -> Result<RunStatus, OrchestrateError> {
        self.finish(lease, Err(error)).await
    }

    async fn record_many(
        &self,
        attempts: &[(Lease, Result<Value, NodeError>)],
    ) -> Result<Vec<Result<RunStatus, OrchestrateError>>, OrchestrateError> {
        Ok(self.finish_many(attempts.to_vec(), &[]).await?.recorded)
    }

    fn concurrent_batches(&self) -> usize {
        self.concurrent_batches.unwrap_or_else(|| {
            if self.db.backend() == ate_core::DbBackend::Postgres {
                DEFAULT_PG_BATCHES
            } else {
                1
            }
        })
    }

    async fn record_and_claim(
        &self,
        attempts: &[(Lease, Result<Value, NodeError>)],
        requests: &[ClaimRequest],
    ) -> Result<RecordedAndClaimed, OrchestrateError> {
        if attempts.is_empty() {
            // Claims alone: each as `claim_steps`, which on SQLite looks for due work
            // before it takes the write lock.
            let mut claimed = Vec::with_capacity(requests.len());
            for r in requests {
                claimed.push(
                    self.claim_nodes(&r.worker, Some(&r.steps), r.max, r.lease)
                        .await,
                );
            }
            return Ok(RecordedAndClaimed {
                recorded: Vec::new(),
                claimed,
            });
        }
        self.finish_many(attempts.to_vec(), requests).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), OrchestrateError> {
        self.give_back(lease).await
    }

    async fn stats(&self) -> Result<super::WorkflowStats, OrchestrateError> {
        self.read_stats().await
    }

    async fn maintain(&self) -> Result<Maintenance, OrchestrateError> {
        self.maintain_runs().await
    }
}
