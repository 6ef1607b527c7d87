//! The caller side of [`SqlWorkflowStore`]: submitting, listing, cancelling and signalling
//! runs (reading one is [`SqlWorkflowStore::load`]).

use super::{CURSOR_KIND, RunRow, SqlWorkflowStore, json_size, json_text, wait_until};
use crate::OrchestrateError;
use crate::workflow::dag::{NodeKind, SignalName, ValidDag};
use crate::workflow::run::ValidRun;
use crate::workflow::state::{NodeStatus, RunState, RunStatus};
use crate::workflow::store::events::{CHANNEL, NodeChange, RunEvent};
use crate::workflow::store::{Lease, Run, RunQuery, Submitted, WORKFLOWS_READ, WORKFLOWS_RUN};
use ate_core::audit::{AuditAction, NewAuditEvent, Outcome, actions};
use ate_core::db::to_micros;
use ate_core::{CoreTx, Cursor, Page, Principal, RunId, TenantId, with_pool, with_write_tx};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// The audit event of `actor` changing run `id` (validated by the caller).
fn run_event(tenant: TenantId, actor: &str, action: AuditAction, id: RunId) -> NewAuditEvent {
    NewAuditEvent::new(tenant, actor, action, Outcome::Success).target(format!("workflow_run:{id}"))
}

/// Most runs one [`WorkflowStore::submit_many`](crate::workflow::WorkflowStore::submit_many)
/// call stores.
pub const MAX_SUBMIT_BATCH: usize = 1_000;

/// A run about to be stored: everything computed before the transaction.
struct NewRun<'a> {
    run: &'a ValidRun,
    id: RunId,
    state: RunState,
    start_at: DateTime<Utc>,
    definition: String,
    input: String,
    labels: String,
    timeout_ms: Option<i64>,
    event: ate_core::audit::ValidEvent,
    tasks: Vec<(&'static str, &'a str)>,
}

impl<'a> NewRun<'a> {
    /// The event announcing the new run: its nodes that are not blocked, and when it is
    /// due (its start time, or its roots' readiness).
    fn published(&self, tenant: TenantId) -> RunEvent {
        let dag = self.run.dag();
        let nodes = dag
            .nodes()
            .iter()
            .zip(&self.state.nodes)
            .filter(|(_, st)| st.status != NodeStatus::Blocked)
            .map(|(node, st)| NodeChange {
                node: node.id.clone(),
                status: st.status,
            })
            .collect();
        let due_at = match self.state.status {
            RunStatus::Pending => Some(self.start_at),
            _ => self.state.nodes.iter().filter_map(|n| n.ready_at).min(),
        };
        RunEvent {
            tenant,
            run: self.id,
            revision: 1,
            status: self.state.status,
            stopping: None,
            nodes,
            nodes_omitted: false,
            due_at,
        }
    }

    fn new(
        actor: &str,
        tenant: TenantId,
        run: &'a ValidRun,
        now: DateTime<Utc>,
    ) -> Result<Self, OrchestrateError> {
        let (spec, dag) = (run.spec(), run.dag());
        let id = RunId::new();
        let start_at = spec.start_at.unwrap_or(now);
        let mut state = RunState::new(dag);
        if start_at <= now {
            state.start(dag, now);
        }
        let event = run_event(tenant, actor, actions::WORKFLOW_SUBMITTED, id)
            .metadata(json!({
                "nodes": dag.nodes().len(),
                "priority": spec.priority,
                "idempotency_key": spec.idempotency_key,
            }))
            .validate()?;
        let tasks = dag
            .nodes()
            .iter()
            .map(|n| match &n.kind {
                NodeKind::Step { step, .. } => ("step", step.as_str()),
                NodeKind::Signal { signal, .. } => ("signal", signal.as_str()),
            })
            .collect();
        Ok(NewRun {
            run,
            id,
            state,
            start_at,
            definition: spec.dag.to_json(),
            input: json_text(&spec.input, "run input")?,
            labels: json_text(&spec.labels, "run labels")?,
            timeout_ms: spec
                .timeout
                .map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX)),
            event,
            tasks,
        })
    }
}

impl SqlWorkflowStore {
    pub(super) async fn submit_runs(
        &self,
        actor: &Principal,
        tenant: TenantId,
        runs: &[ValidRun],
    ) -> Result<Vec<Submitted>, OrchestrateError> {
        actor.require(tenant, &WORKFLOWS_RUN)?;
        self.store_runs(actor.subject(), tenant, runs, None).await
    }

    /// Starts `run` as a child of the attempt holding `lease` (see
    /// [`WorkflowStore::submit_child`](crate::workflow::WorkflowStore::submit_child)).
    pub(super) async fn submit_child_run(
        &self,
        lease: &Lease,
        run: &ValidRun,
    ) -> Result<Submitted, OrchestrateError> {
        let tenant: Option<Uuid> = with_pool!(self.db, |pool| {
            sqlx::query_scalar("SELECT tenant_id FROM wf_runs WHERE id = $1")
                .bind(lease.run.as_uuid())
                .fetch_optional(pool)
                .await?
        });
        let tenant =
            tenant.ok_or_else(|| OrchestrateError::not_found("workflow run", lease.run))?;
        let tenant = TenantId::from_uuid(tenant)?;
        let actor = format!("workflow:{}", lease.run);
        let mut stored = self
            .store_runs(&actor, tenant, std::slice::from_ref(run), Some(lease))
            .await?;
        stored.pop().ok_or_else(|| {
            OrchestrateError::Core(ate_core::CoreError::Internal("no run stored".into()))
        })
    }

    /// Stores `runs` for `tenant` in one transaction, submitted by `actor` (a subject), as
    /// children of the attempt holding `parent` if given (checked in the transaction).
    pub(super) async fn store_runs(
        &self,
        actor: &str,
        tenant: TenantId,
        runs: &[ValidRun],
        parent: Option<&Lease>,
    ) -> Result<Vec<Submitted>, OrchestrateError> {
        if runs.len() > MAX_SUBMIT_BATCH {
            return Err(OrchestrateError::invalid(
                "runs",
                format!(
                    "{} runs in one submission, over the limit of {MAX_SUBMIT_BATCH}",
                    runs.len()
                ),
            ));
        }
        let now = self.clock.now();
        let rows = runs
            .iter()
            .map(|run| NewRun::new(actor, tenant, run, now))
            .collect::<Result<Vec<_>, _>>()?;
        let is_pg = self.db.backend() == ate_core::DbBackend::Postgres;
        // For each run: the id of the run stored before under its idempotency key, if any.
        let existing: Vec<Option<Uuid>> = with_write_tx!(self.db, |tx| {
            let locked = tx.lock_tenant(tenant).await?;
            locked.require_active()?;
            if let Some(lease) = parent {
                let holds: Option<i32> = sqlx::query_scalar(
                    "SELECT idx FROM wf_nodes WHERE run_id = $1 AND idx = $2 \
                     AND lease_token = $3 AND status = 'running'",
                )
                .bind(lease.run.as_uuid())
                .bind(i32::try_from(lease.node).unwrap_or(i32::MAX))
                .bind(lease.token)
                .fetch_optional(&mut *tx)
                .await?;
                if holds.is_none() {
                    return Err(super::work::lost(lease));
                }
            }
            let mut existing = Vec::with_capacity(rows.len());
            for row in &rows {
                let (spec, dag) = (row.run.spec(), row.run.dag());
                // Under the tenant's lock, so two submissions with one key cannot both
                // insert (nor two runs of one batch).
                let found: Option<Uuid> =
                    match &spec.idempotency_key {
                        Some(key) => sqlx::query_scalar(
                            "SELECT id FROM wf_runs WHERE tenant_id = $1 AND idempotency_key = $2",
                        )
                        .bind(tenant.as_uuid())
                        .bind(key)
                        .fetch_optional(&mut *tx)
                        .await?,
                        None => None,
                    };
                existing.push(found);
                if found.is_some() {
                    continue;
                }
                sqlx::query(concat!(
                    "INSERT INTO wf_runs (",
                    run_columns!(),
                    ", definition, parent_node) VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $8, \
                     $9, NULL, $10, $11, $11, NULL, 1, $13, $12, $14)"
                ))
                .bind(row.id.as_uuid())
                .bind(tenant.as_uuid())
                .bind(row.state.status.as_str())
                .bind(&row.input)
                .bind(&spec.idempotency_key)
                .bind(spec.priority)
                .bind(&row.labels)
                .bind(to_micros(row.start_at))
                .bind(row.timeout_ms)
                .bind(actor)
                .bind(to_micros(now))
                .bind(&row.definition)
                .bind(parent.map(|l| l.run.as_uuid()))
                .bind(parent.map(|l| i32::try_from(l.node).unwrap_or(i32::MAX)))
                .execute(&mut *tx)
                .await?;
                for (key, value) in &spec.labels {
                    sqlx::query(
                        "INSERT INTO wf_run_labels (run_id, tenant_id, key, value) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(row.id.as_uuid())
                    .bind(tenant.as_uuid())
                    .bind(key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
                }
                for (i, (node, st)) in dag.nodes().iter().zip(&row.state.nodes).enumerate() {
                    sqlx::query(
                        "INSERT INTO wf_nodes (run_id, idx, tenant_id, node_id, kind, task, \
                         status, attempt, priority, ready_at, first_ready_at, wait_until) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10, $11)",
                    )
                    .bind(row.id.as_uuid())
                    .bind(i32::try_from(i).unwrap_or(i32::MAX))
                    .bind(tenant.as_uuid())
                    .bind(node.id.as_str())
                    .bind(row.tasks[i].0)
                    .bind(row.tasks[i].1)
                    .bind(st.status.as_str())
                    .bind(spec.priority)
                    .bind(st.ready_at.map(to_micros))
                    .bind(st.first_ready_at.map(to_micros))
                    .bind(wait_until(dag, i, st))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.append_audit(&row.event, now).await?;
                if is_pg {
                    sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(CHANNEL)
                        .bind(row.published(tenant).to_payload())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            existing
        });
        if !is_pg {
            for (row, found) in rows.iter().zip(&existing) {
                if found.is_none() {
                    self.feed.publish(row.published(tenant));
                }
            }
        }
        let mut submitted = Vec::with_capacity(rows.len());
        for (row, found) in rows.iter().zip(existing) {
            submitted.push(match found {
                Some(found) => Submitted {
                    run: self.load(tenant, RunId::from_uuid(found)?).await?,
                    created: false,
                },
                None => Submitted {
                    run: self.load(tenant, row.id).await?,
                    created: true,
                },
            });
        }
        Ok(submitted)
    }

    pub(super) async fn list_runs(
        &self,
        actor: &Principal,
        tenant: TenantId,
        query: &RunQuery,
    ) -> Result<Page<Run>, OrchestrateError> {
        actor.require(tenant, &WORKFLOWS_READ)?;
        let limit = ate_core::page::page_size(query.limit)?;
        let before: Option<Uuid> = query
            .cursor
            .as_ref()
            .map(|c| c.decode(CURSOR_KIND))
            .transpose()?
            .map(|s| {
                s.parse::<RunId>()
                    .map(|id| id.as_uuid())
                    .map_err(|_| OrchestrateError::invalid("cursor", "is not from this listing"))
            })
            .transpose()?;
        let (label_key, label_value) = match &query.label {
            Some((k, v)) => (Some(k.as_str()), Some(v.as_str())),
            None => (None, None),
        };
        let rows: Vec<RunRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                run_columns!(),
                " FROM wf_runs WHERE tenant_id = $1 \
                 AND ($2 IS NULL OR status = $2) \
                 AND ($3 IS NULL OR id IN (SELECT run_id FROM wf_run_labels \
                      WHERE tenant_id = $1 AND key = $3 AND value = $4)) \
                 AND ($5 IS NULL OR created_at >= $5) \
                 AND ($6 IS NULL OR created_at < $6) \
                 AND ($7 IS NULL OR id < $7) \
                 ORDER BY id DESC LIMIT $8"
            ))
            .bind(tenant.as_uuid())
            .bind(query.status.map(RunStatus::as_str))
            .bind(label_key)
            .bind(label_value)
            .bind(query.since.map(to_micros))
            .bind(query.until.map(to_micros))
            .bind(before)
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await?
        });
        let more = rows.len() > limit as usize;
        let items = rows
            .into_iter()
            .take(limit as usize)
            .map(|r| r.run(Vec::new()))
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = match (more, items.last()) {
            (true, Some(last)) => Some(Cursor::encode(CURSOR_KIND, &last.id.to_string())),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    /// A caller's change to run `id` (already authorized): `change` moves the run's state and
    /// says whether it changed anything; if it did, `event` is audited with it. Returns the
    /// run as it is after.
    async fn change_run<F>(
        &self,
        tenant: TenantId,
        id: RunId,
        event: NewAuditEvent,
        change: F,
    ) -> Result<Run, OrchestrateError>
    where
        F: FnOnce(&ValidDag, &mut RunState, DateTime<Utc>) -> Result<bool, OrchestrateError> + Send,
    {
        let now = self.clock.now();
        let event = event.validate()?;
        self.mutate(id, Some(tenant), now, move |loaded, state| {
            let changed = change(&loaded.dag, state, now)?;
            Ok(((), changed.then_some(event)))
        })
        .await?;
        self.load(tenant, id).await
    }

    pub(super) async fn cancel_run(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: RunId,
    ) -> Result<Run, OrchestrateError> {
        actor.require(tenant, &WORKFLOWS_RUN)?;
        let event = run_event(tenant, actor.subject(), actions::WORKFLOW_CANCELLED, id);
        self.change_run(tenant, id, event, |_, state, _| Ok(state.cancel()))
            .await
    }

    pub(super) async fn signal_run(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: RunId,
        name: &str,
        payload: Value,
    ) -> Result<Run, OrchestrateError> {
        actor.require(tenant, &WORKFLOWS_RUN)?;
        let name = SignalName::new(name)?;
        let size = json_size(&payload);
        if size > self.limits.max_input_bytes {
            return Err(OrchestrateError::invalid(
                "signal payload",
                format!(
                    "{size} bytes is larger than the limit of {}",
                    self.limits.max_input_bytes
                ),
            ));
        }
        let event = run_event(tenant, actor.subject(), actions::WORKFLOW_SIGNALLED, id)
            .metadata(json!({ "signal": name.as_str() }));
        self.change_run(tenant, id, event, move |dag, state, now| {
            state.signal(dag, &name, &payload, now)?;
            Ok(true)
        })
        .await
    }

    pub(super) async fn retry_run(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: RunId,
    ) -> Result<Run, OrchestrateError> {
        actor.require(tenant, &WORKFLOWS_RUN)?;
        let event = run_event(tenant, actor.subject(), actions::WORKFLOW_RETRIED, id);
        self.change_run(tenant, id, event, |dag, state, now| {
            state.retry_from_failure(dag, now)?;
            Ok(true)
        })
        .await
    }
}
