//! Changing a run: [`SqlWorkflowStore::mutate`] applies a [`RunState`] transition under the
//! run's row lock, writes back what changed, audits, publishes the run's event, and cancels
//! the children of a run that ended; plus the helpers it shares with the other parts.

use super::super::events::{CHANNEL, NodeChange, RunEvent};
use super::{NodeRow, RunRow, SqlWorkflowStore, corrupt, run_state};
use crate::OrchestrateError;
use crate::workflow::dag::{NodeKind, ValidDag};
use crate::workflow::spec::{DagSpec, Limits};
use crate::workflow::state::{NodeError, NodeState, NodeStatus, RunState, RunStatus};
use ate_core::audit::{NewAuditEvent, Outcome, ValidEvent, actions};
use ate_core::db::to_micros;
use ate_core::{CoreError, CoreTx, RunId, TenantId, with_pool, with_write_tx};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use uuid::Uuid;

/// Sends each payload of a JSON array (`$2`) on channel `$1`, in one statement.
pub(super) const NOTIFY_ALL: &str =
    "SELECT pg_notify($1, value) FROM jsonb_array_elements_text($2::jsonb)";

/// A stored definition, read back: it was validated on submission, so every step counts as
/// registered and no limit applies.
pub(super) fn stored_dag(definition: &str) -> Result<ValidDag, OrchestrateError> {
    let unlimited = Limits::default()
        .max_nodes(usize::MAX)
        .max_definition_bytes(usize::MAX)
        .max_input_bytes(usize::MAX);
    DagSpec::from_json(definition.as_bytes(), &unlimited)
        .and_then(|spec| spec.validate(&unlimited, &|_| true))
        .map_err(|e| corrupt("definition", e))
}

/// A run loaded under its row lock, for [`SqlWorkflowStore::mutate`].
pub(super) struct Loaded {
    pub(super) tenant: TenantId,
    pub(super) dag: Arc<ValidDag>,
    pub(super) nodes: Vec<NodeRow>,
}

/// Parsed definitions by run. A run's definition never changes once stored, so claims and
/// changes parse it once per host rather than on every step. Bounded: past
/// [`DagCache::MAX`] runs it starts again empty.
#[derive(Debug, Clone, Default)]
pub(super) struct DagCache(Arc<Mutex<HashMap<Uuid, Arc<ValidDag>>>>);

impl DagCache {
    const MAX: usize = 4096;

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<ValidDag>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn get(&self, run: Uuid) -> Option<Arc<ValidDag>> {
        self.lock().get(&run).cloned()
    }

    /// Parses `definition` (run `run`'s) and keeps it.
    pub(super) fn parse(
        &self,
        run: Uuid,
        definition: &str,
    ) -> Result<Arc<ValidDag>, OrchestrateError> {
        let dag = Arc::new(stored_dag(definition)?);
        let mut map = self.lock();
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(run, dag.clone());
        Ok(dag)
    }
}

/// How one change in a batch went wrong: before it wrote anything (the other changes go
/// on), or while writing (the whole transaction is rolled back).
enum Failed {
    Change(OrchestrateError),
    Write(OrchestrateError),
}

impl From<sqlx::Error> for Failed {
    fn from(e: sqlx::Error) -> Self {
        Failed::Write(CoreError::from(e).into())
    }
}

impl From<CoreError> for Failed {
    fn from(e: CoreError) -> Self {
        Failed::Write(e.into())
    }
}

impl From<OrchestrateError> for Failed {
    fn from(e: OrchestrateError) -> Self {
        Failed::Write(e)
    }
}

/// One change for [`SqlWorkflowStore::mutate_batch`]: the run, its tenant (if checked), and
/// the transition.
pub(super) type Change<F> = (RunId, Option<TenantId>, F);

impl SqlWorkflowStore {
    /// Applies `change` to run `id` (of `tenant`, if given) in one transaction: takes the
    /// run's row lock, loads its state, lets `change` move it through [`RunState`], writes
    /// back what changed, and appends `change`'s audit event (if any) and a
    /// `workflow_failed` event if the run has just failed. `NotFound` for a run that does not
    /// exist (in that tenant); an error from `change` rolls everything back.
    ///
    /// When the change ends the run or starts stopping it, its unfinished child runs are
    /// cancelled next ([`close_children`](Self::close_children)).
    pub(super) async fn mutate<T, F>(
        &self,
        id: RunId,
        tenant: Option<TenantId>,
        now: DateTime<Utc>,
        change: F,
    ) -> Result<T, OrchestrateError>
    where
        T: Send,
        F: FnOnce(&Loaded, &mut RunState) -> Result<(T, Option<ValidEvent>), OrchestrateError>
            + Send,
    {
        let (value, closed) = self.mutate_one(id, tenant, now, change).await?;
        if closed {
            self.close_children(id, now).await;
        }
        Ok(value)
    }

    /// [`mutate`](Self::mutate) without the children; also says whether the run has just
    /// ended or started stopping.
    async fn mutate_one<T, F>(
        &self,
        id: RunId,
        tenant: Option<TenantId>,
        now: DateTime<Utc>,
        change: F,
    ) -> Result<(T, bool), OrchestrateError>
    where
        T: Send,
        F: FnOnce(&Loaded, &mut RunState) -> Result<(T, Option<ValidEvent>), OrchestrateError>
            + Send,
    {
        let mut done = self
            .mutate_batch(vec![(id, tenant, change)], now, false)
            .await?;
        done.pop().unwrap_or_else(|| {
            Err(OrchestrateError::Core(CoreError::Internal(
                "no change made".into(),
            )))
        })
    }

    /// Applies several changes, each as [`mutate`](Self::mutate) would (children aside: the
    /// caller closes them), in **one** transaction: one commit for many completions. Runs
    /// are locked in id order, so concurrent batches cannot deadlock.
    ///
    /// With `independent`, a change that fails before writing (its run is gone, its lease
    /// lost, its transition refused) gets its own error and the others are applied; without
    /// it, any error rolls everything back. An error while writing always rolls everything
    /// back and is returned for the batch. The results come in the order of `changes`.
    pub(super) async fn mutate_batch<T, F>(
        &self,
        changes: Vec<Change<F>>,
        now: DateTime<Utc>,
        independent: bool,
    ) -> Result<Vec<Result<(T, bool), OrchestrateError>>, OrchestrateError>
    where
        T: Send,
        F: FnOnce(&Loaded, &mut RunState) -> Result<(T, Option<ValidEvent>), OrchestrateError>
            + Send,
    {
        let is_pg = self.db.backend() == ate_core::DbBackend::Postgres;
        let count = changes.len();
        let mut ordered: Vec<(usize, Change<F>)> = changes.into_iter().enumerate().collect();
        ordered.sort_by_key(|(_, (id, _, _))| id.as_uuid());
        let (results, published) = with_write_tx!(self.db, |tx| {
            let mut results: Vec<Option<Result<(T, bool), OrchestrateError>>> =
                (0..count).map(|_| None).collect();
            let mut published = Vec::new();
            let mut payloads = Vec::new();
            for (at, (id, tenant, change)) in ordered {
                let attempt: Result<(T, Option<RunEvent>, bool), Failed> = async {
                    // Takes the run's row lock: concurrent changes to the run queue behind this one.
                    let row: Option<RunRow> = sqlx::query_as(concat!(
                        "UPDATE wf_runs SET revision = revision WHERE id = $1 \
                         AND ($2 IS NULL OR tenant_id = $2) RETURNING ",
                        run_columns!()
                    ))
                    .bind(id.as_uuid())
                    .bind(tenant.map(|t| t.as_uuid()))
                    .fetch_optional(&mut *tx)
                    .await?;
                    let row = row.ok_or_else(|| {
                        Failed::Change(OrchestrateError::not_found("workflow run", id))
                    })?;
                    let dag = match self.dags.get(row.id) {
                        Some(dag) => dag,
                        None => {
                            let definition: String =
                                sqlx::query_scalar("SELECT definition FROM wf_runs WHERE id = $1")
                                    .bind(row.id)
                                    .fetch_one(&mut *tx)
                                    .await?;
                            self.dags.parse(row.id, &definition).map_err(Failed::Change)?
                        }
                    };
                    let nodes: Vec<NodeRow> = sqlx::query_as(concat!(
                        "SELECT ",
                        node_columns!(),
                        " FROM wf_nodes WHERE run_id = $1 ORDER BY idx"
                    ))
                    .bind(id.as_uuid())
                    .fetch_all(&mut *tx)
                    .await?;
                    let before = run_state(&row, &nodes).map_err(Failed::Change)?;
                    let loaded = Loaded {
                        tenant: TenantId::from_uuid(row.tenant_id)
                            .map_err(|e| Failed::Change(e.into()))?,
                        dag,
                        nodes,
                    };
                    if loaded.dag.nodes().len() != before.nodes.len() {
                        return Err(Failed::Change(corrupt(
                            "node list",
                            "it does not match the definition",
                        )));
                    }
                    let mut after = before.clone();
                    let (value, event) = change(&loaded, &mut after).map_err(Failed::Change)?;
                    let revision = row.revision + 1;
                    let published =
                        (before != after).then(|| change_event(&loaded, &before, &after, id, revision));
                    for (i, (old, new)) in before.nodes.iter().zip(&after.nodes).enumerate() {
                        if old == new {
                            continue;
                        }
                        let finished = (!old.status.is_finished() && new.status.is_finished())
                            .then_some(to_micros(now));
                        let left_running =
                            old.status == NodeStatus::Running && new.status != NodeStatus::Running;
                        sqlx::query(
                            "UPDATE wf_nodes SET status = $3, attempt = $4, ready_at = $5, \
                             first_ready_at = $6, output = $7, error = $8, cancel_requested = $9, \
                             finished_at = CASE WHEN $13 = 1 THEN COALESCE($10, finished_at) ELSE NULL END, \
                             lease_owner = CASE WHEN $11 = 1 THEN NULL ELSE lease_owner END, \
                             lease_expires_at = CASE WHEN $11 = 1 THEN NULL ELSE lease_expires_at END, \
                             wait_until = $12 WHERE run_id = $1 AND idx = $2",
                        )
                        .bind(id.as_uuid())
                        .bind(i32::try_from(i).unwrap_or(i32::MAX))
                        .bind(new.status.as_str())
                        .bind(i32::try_from(new.attempt).unwrap_or(i32::MAX))
                        .bind(new.ready_at.map(to_micros))
                        .bind(new.first_ready_at.map(to_micros))
                        .bind(new.output.as_ref().map(|v| v.to_string()))
                        .bind(new.error.as_ref().map(error_json))
                        .bind(i32::from(new.cancel_requested))
                        .bind(finished)
                        .bind(i32::from(left_running))
                        .bind(wait_until(&loaded.dag, i, new))
                        .bind(i32::from(new.status.is_finished()))
                        .execute(&mut *tx)
                        .await?;
                    }
                    if before != after {
                        let finished = (!before.status.is_finished() && after.status.is_finished())
                            .then_some(to_micros(now));
                        sqlx::query(
                            "UPDATE wf_runs SET status = $2, stopping = $3, error = $4, updated_at = $5, \
                             finished_at = CASE WHEN $7 = 1 THEN COALESCE($6, finished_at) ELSE NULL END, \
                             revision = revision + 1 WHERE id = $1",
                        )
                        .bind(id.as_uuid())
                        .bind(after.status.as_str())
                        .bind(after.stopping.filter(|_| !after.status.is_finished()).map(RunStatus::as_str))
                        .bind(&after.error)
                        .bind(to_micros(now))
                        .bind(finished)
                        .bind(i32::from(after.status.is_finished()))
                        .execute(&mut *tx)
                        .await?;
                    }
                    if let Some(event) = &event {
                        tx.append_audit(event, now).await?;
                    }
                    let was_failing = before.status == RunStatus::Failed
                        || before.stopping == Some(RunStatus::Failed);
                    let is_failing =
                        after.status == RunStatus::Failed || after.stopping == Some(RunStatus::Failed);
                    if is_failing && !was_failing {
                        let failed = NewAuditEvent::new(
                            loaded.tenant,
                            "system:workflows",
                            actions::WORKFLOW_FAILED,
                            Outcome::Failure,
                        )
                        .target(format!("workflow_run:{id}"))
                        .metadata(json!({ "error": after.error }))
                        .validate()?;
                        tx.append_audit(&failed, now).await?;
                    }
                    let closed = (!before.status.is_finished() && after.status.is_finished())
                        || (before.stopping.is_none() && after.stopping.is_some());
                    Ok((value, published, closed))
                }
                .await;
                let slot = &mut results[at];
                match attempt {
                    Ok((value, event, closed)) => {
                        if let Some(event) = event {
                            if is_pg {
                                payloads.push(event.to_payload());
                            }
                            published.push(event);
                        }
                        *slot = Some(Ok((value, closed)));
                    }
                    Err(Failed::Change(e)) if independent => *slot = Some(Err(e)),
                    // Rolled back here, at once: a transaction merely dropped is rolled
                    // back only when its connection is next used, and until then it would
                    // hold the runs' locks (and claims would skip them).
                    Err(Failed::Change(e) | Failed::Write(e)) => {
                        tx.rollback().await.map_err(CoreError::from)?;
                        return Err(e);
                    }
                }
            }
            if !payloads.is_empty() {
                // Delivered to every host when (and only if) this commits.
                let sent = sqlx::query(NOTIFY_ALL)
                    .bind(CHANNEL)
                    .bind(serde_json::Value::from(payloads).to_string())
                    .execute(&mut *tx)
                    .await;
                if let Err(e) = sent {
                    tx.rollback().await.map_err(CoreError::from)?;
                    return Err(CoreError::from(e).into());
                }
            }
            (results, published)
        });
        if !is_pg {
            for event in published {
                self.feed.publish(event);
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(OrchestrateError::Core(CoreError::Internal(
                        "a change was skipped".into(),
                    )))
                })
            })
            .collect())
    }

    /// Cancels the unfinished child runs of `parent` (which has ended or is stopping), and
    /// theirs, each audited as `workflow_cancelled` by `workflow:<parent>`. Best effort: a
    /// failure is logged, and the maintenance pass cancels what is left.
    pub(super) async fn close_children(&self, parent: RunId, now: DateTime<Utc>) {
        let mut parents = vec![parent];
        while let Some(parent) = parents.pop() {
            let children: Result<Vec<Uuid>, CoreError> = async {
                Ok(with_pool!(self.db, |pool| {
                    sqlx::query_scalar(
                        "SELECT id FROM wf_runs WHERE parent_run_id = $1 \
                         AND status IN ('pending', 'running') AND stopping IS NULL",
                    )
                    .bind(parent.as_uuid())
                    .fetch_all(pool)
                    .await?
                }))
            }
            .await;
            let children = match children {
                Ok(children) => children,
                Err(e) => {
                    tracing::warn!(run = %parent, error = %e, "listing child runs failed");
                    continue;
                }
            };
            for child in children {
                match self.cancel_child(child, parent, now).await {
                    Ok(child) => parents.push(child),
                    Err(e) => {
                        tracing::warn!(run = %parent, error = %e, "cancelling a child run failed")
                    }
                }
            }
        }
    }

    /// Cancels child run `child` of `parent`.
    pub(super) async fn cancel_child(
        &self,
        child: Uuid,
        parent: RunId,
        now: DateTime<Utc>,
    ) -> Result<RunId, OrchestrateError> {
        let child = RunId::from_uuid(child)?;
        self.mutate_one(child, None, now, |loaded, state| {
            if !state.cancel() {
                return Ok(((), None));
            }
            let event = NewAuditEvent::new(
                loaded.tenant,
                format!("workflow:{parent}"),
                actions::WORKFLOW_CANCELLED,
                Outcome::Success,
            )
            .target(format!("workflow_run:{child}"))
            .metadata(json!({ "reason": "the parent run ended" }))
            .validate()?;
            Ok(((), Some(event)))
        })
        .await?;
        Ok(child)
    }
}

/// The event of a change from `before` to `after` (the run's new revision: `revision`).
fn change_event(
    loaded: &Loaded,
    before: &RunState,
    after: &RunState,
    run: RunId,
    revision: i64,
) -> RunEvent {
    let mut nodes = Vec::new();
    let mut due_at: Option<DateTime<Utc>> = None;
    for ((old, new), node) in before
        .nodes
        .iter()
        .zip(&after.nodes)
        .zip(loaded.dag.nodes())
    {
        if old.status == new.status && old.ready_at == new.ready_at {
            continue;
        }
        if new.status == NodeStatus::Ready
            && let Some(at) = new.ready_at
        {
            due_at = Some(due_at.map_or(at, |d| d.min(at)));
        }
        if old.status != new.status {
            nodes.push(NodeChange {
                node: node.id.clone(),
                status: new.status,
            });
        }
    }
    RunEvent {
        tenant: loaded.tenant,
        run,
        revision,
        status: after.status,
        stopping: after.stopping.filter(|_| !after.status.is_finished()),
        nodes,
        nodes_omitted: false,
        due_at,
    }
}

/// When node `i`, in `state`, fails for want of its signal (as stored), if it waits for one
/// with a timeout.
pub(super) fn wait_until(dag: &ValidDag, i: usize, state: &NodeState) -> Option<i64> {
    let NodeKind::Signal {
        timeout: Some(timeout),
        ..
    } = dag.nodes().get(i)?.kind
    else {
        return None;
    };
    if state.status != NodeStatus::Waiting {
        return None;
    }
    let since = state.first_ready_at?;
    Some(to_micros(
        since + chrono::TimeDelta::from_std(timeout).unwrap_or(chrono::TimeDelta::MAX),
    ))
}

/// A node error as stored.
fn error_json(e: &NodeError) -> String {
    json!({"kind": e.kind, "message": e.message, "retryable": e.retryable}).to_string()
}
