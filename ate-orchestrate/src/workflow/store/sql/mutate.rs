//! Changing a run: [`SqlWorkflowStore::mutate`] applies a [`RunState`] transition under the
//! run's row lock, writes back what changed, audits, publishes the run's event, and cancels
//! the children of a run that ended; plus the helpers it shares with the other parts.

use super::super::events::{CHANNEL, NodeChange, RunEvent};
use super::claim::{Ask, ClaimTx, Taken};
use super::{NodeRow, RunRow, SqlWorkflowStore, bulk, corrupt, run_state};
use crate::OrchestrateError;
use crate::workflow::dag::ValidDag;
use crate::workflow::spec::{DagSpec, Limits};
use crate::workflow::state::{NodeStatus, RunState, RunStatus};
use crate::workflow::store::Claim;
use ate_core::audit::{NewAuditEvent, Outcome, ValidEvent, actions};
use ate_core::db::to_micros;
use ate_core::{CoreError, CoreTx, RunId, TenantId, with_pool, with_write_tx};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, PoisonError};
use uuid::Uuid;

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

    /// The definitions of `ids` parsed already, taken at once: the cache may be emptied
    /// meanwhile, and the others are read with the runs.
    pub(super) fn snapshot<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a Uuid>,
    ) -> HashMap<Uuid, Arc<ValidDag>> {
        let map = self.lock();
        ids.into_iter()
            .filter_map(|id| Some((*id, map.get(id)?.clone())))
            .collect()
    }

    /// Run `run`'s definition: from `snapshot`, else parsed from `definition` (as read with
    /// the run) and kept.
    pub(super) fn resolve(
        &self,
        snapshot: &HashMap<Uuid, Arc<ValidDag>>,
        run: Uuid,
        definition: Option<&str>,
    ) -> Result<Arc<ValidDag>, OrchestrateError> {
        match snapshot.get(&run) {
            Some(dag) => Ok(dag.clone()),
            None => self.parse(
                run,
                definition.ok_or_else(|| corrupt("definition", "missing"))?,
            ),
        }
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

/// A run of a batch, loaded once and changed in memory by each of its changes in turn.
struct Working {
    loaded: Loaded,
    /// As loaded.
    initial: RunState,
    /// After the changes applied so far.
    state: RunState,
    /// The run's revision after them.
    revision: i64,
}

impl Working {
    fn new(row: &RunRow, nodes: &[NodeRow], dag: Arc<ValidDag>) -> Result<Self, OrchestrateError> {
        let initial = run_state(row, nodes)?;
        if dag.nodes().len() != initial.nodes.len() {
            return Err(corrupt("node list", "it does not match the definition"));
        }
        Ok(Working {
            loaded: Loaded {
                tenant: TenantId::from_uuid(row.tenant_id)?,
                dag,
                nodes: nodes.to_vec(),
            },
            state: initial.clone(),
            initial,
            revision: row.revision,
        })
    }

    /// Makes `state` the run's state, keeping the loaded node rows' statuses in step (the
    /// next change checks its lease against them).
    fn apply(&mut self, state: RunState) {
        for (row, (old, new)) in self
            .loaded
            .nodes
            .iter_mut()
            .zip(self.state.nodes.iter().zip(&state.nodes))
        {
            if old.status != new.status {
                row.status = new.status.as_str().to_owned();
            }
        }
        self.state = state;
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

/// What [`SqlWorkflowStore::mutate_batch`] did: each change's result (its value, and whether
/// it ended the run or started stopping it while the run had unfinished children, which
/// are then to be cancelled), then each ask's claims.
pub(super) type Batch<T> = (Vec<Result<(T, bool), OrchestrateError>>, Vec<Vec<Claim>>);

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
            self.close_children(vec![id], now).await;
        }
        Ok(value)
    }

    /// [`mutate`](Self::mutate) without the children; also says whether the run has just
    /// ended or started stopping while it had unfinished children.
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
        let (mut done, _) = self
            .mutate_batch(vec![(id, tenant, change)], now, false, &[])
            .await?;
        done.pop().unwrap_or_else(|| {
            Err(OrchestrateError::Core(CoreError::Internal(
                "no change made".into(),
            )))
        })
    }

    /// Applies several changes, each as [`mutate`](Self::mutate) would (children aside: the
    /// caller closes them), in **one** transaction: one commit for many completions.
    ///
    /// The batch costs a fixed number of statements, however many changes it holds: on
    /// PostgreSQL one locks every run (in id order, so concurrent batches cannot deadlock),
    /// then one reads them with their nodes and the definitions not cached; the changes
    /// are applied in memory, in order (a second change to a run sees the first), and one
    /// statement writes every changed node, one every changed run ([`super::bulk`]). Audit
    /// events are appended one by one, in order.
    ///
    /// With `independent`, a change that fails before writing (its run is gone, its lease
    /// lost, its transition refused) gets its own error and the others are applied; without
    /// it, any error rolls everything back. An error while writing always rolls everything
    /// back and is returned for the batch. The results come in the order of `changes`.
    ///
    /// Then, in the same transaction, the claims `asks` are made (see
    /// [`ClaimTx::claim_in`]): they see the nodes the changes made ready. Their claims come
    /// second, one list per ask; an error in them rolls everything back.
    pub(super) async fn mutate_batch<T, F>(
        &self,
        changes: Vec<Change<F>>,
        now: DateTime<Utc>,
        independent: bool,
        asks: &[Ask],
    ) -> Result<Batch<T>, OrchestrateError>
    where
        T: Send,
        F: FnOnce(&Loaded, &mut RunState) -> Result<(T, Option<ValidEvent>), OrchestrateError>
            + Send,
    {
        let is_pg = self.db.backend() == ate_core::DbBackend::Postgres;
        let sql = if is_pg {
            &bulk::POSTGRES
        } else {
            &bulk::SQLITE
        };
        let count = changes.len();
        let mut ordered: Vec<(usize, Change<F>)> = changes.into_iter().enumerate().collect();
        // Stable: the changes to one run keep their order.
        ordered.sort_by_key(|(_, (id, _, _))| id.as_uuid());
        let mut ids: Vec<Uuid> = ordered.iter().map(|(_, (id, _, _))| id.as_uuid()).collect();
        ids.dedup();
        let cached = self.dags.snapshot(&ids);
        let uncached = bulk::id_list(ids.iter().copied().filter(|id| !cached.contains_key(id)));
        let ids = bulk::id_list(ids);
        let (results, published, mut taken) = with_write_tx!(self.db, |tx| {
            let mut results: Vec<Option<Result<(T, bool), OrchestrateError>>> =
                (0..count).map(|_| None).collect();
            let mut published = Vec::new();
            let mut payloads = Vec::new();
            // One statement reads every run, with its nodes and, if not cached, its
            // definition; on PostgreSQL one before it locks them.
            let loaded: Result<Vec<bulk::LockedRun>, sqlx::Error> = async {
                if let Some(lock) = sql.lock_first {
                    sqlx::query(lock).bind(&ids).execute(&mut *tx).await?;
                }
                sqlx::query_as(sql.lock_runs)
                    .bind(&ids)
                    .bind(&uncached)
                    .fetch_all(&mut *tx)
                    .await
            }
            .await;
            let rows: HashMap<Uuid, bulk::LockedRun> = match loaded {
                Ok(rows) => rows.into_iter().map(|r| (r.row.id, r)).collect(),
                Err(e) => {
                    tx.rollback().await.map_err(CoreError::from)?;
                    return Err(CoreError::from(e).into());
                }
            };
            let mut working: HashMap<Uuid, Working> = HashMap::new();
            for (at, (id, tenant, change)) in ordered {
                let attempt: Result<(T, Option<RunEvent>, bool), Failed> = async {
                    let uuid = id.as_uuid();
                    let locked = rows
                        .get(&uuid)
                        .filter(|r| tenant.is_none_or(|t| t.as_uuid() == r.row.tenant_id))
                        .ok_or_else(|| {
                            Failed::Change(OrchestrateError::not_found("workflow run", id))
                        })?;
                    let w = match working.entry(uuid) {
                        Entry::Occupied(w) => w.into_mut(),
                        Entry::Vacant(slot) => {
                            let dag = self
                                .dags
                                .resolve(&cached, uuid, locked.definition.as_deref())
                                .map_err(Failed::Change)?;
                            let nodes = locked.nodes().map_err(Failed::Change)?;
                            slot.insert(
                                Working::new(&locked.row, &nodes, dag).map_err(Failed::Change)?,
                            )
                        }
                    };
                    let before = &w.state;
                    let mut after = before.clone();
                    let (value, event) = change(&w.loaded, &mut after).map_err(Failed::Change)?;
                    if let Some(event) = &event {
                        tx.append_audit(event, now).await?;
                    }
                    let was_failing = before.status == RunStatus::Failed
                        || before.stopping == Some(RunStatus::Failed);
                    let is_failing = after.status == RunStatus::Failed
                        || after.stopping == Some(RunStatus::Failed);
                    if is_failing && !was_failing {
                        let failed = NewAuditEvent::new(
                            w.loaded.tenant,
                            "system:workflows",
                            actions::WORKFLOW_FAILED,
                            Outcome::Failure,
                        )
                        .target(format!("workflow_run:{id}"))
                        .metadata(json!({ "error": after.error }))
                        .validate()?;
                        tx.append_audit(&failed, now).await?;
                    }
                    // Its children are looked up only if it has some: most runs have none.
                    let closed = locked.children
                        && ((!before.status.is_finished() && after.status.is_finished())
                            || (before.stopping.is_none() && after.stopping.is_some()));
                    let published = (*before != after).then(|| {
                        w.revision += 1;
                        change_event(&w.loaded, before, &after, id, w.revision)
                    });
                    w.apply(after);
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
            let mut node_writes = Vec::new();
            let mut run_writes = Vec::new();
            for (id, w) in &working {
                if w.initial == w.state {
                    continue;
                }
                for (i, (old, new)) in w.initial.nodes.iter().zip(&w.state.nodes).enumerate() {
                    if old != new {
                        node_writes.push(bulk::node_write(*id, i, old, new, &w.loaded.dag, now));
                    }
                }
                run_writes.push(bulk::run_write(*id, &w.initial, &w.state, w.revision, now));
            }
            let nodes = serde_json::Value::from(node_writes).to_string();
            let runs = serde_json::Value::from(run_writes).to_string();
            let written: Result<(), sqlx::Error> = async {
                // Every change to a node changes its run.
                match sql.writes {
                    bulk::Writes::Quiet(write) if runs != "[]" => {
                        sqlx::query(write)
                            .bind(&nodes)
                            .bind(&runs)
                            .bind(to_micros(now))
                            .execute(&mut *tx)
                            .await?;
                    }
                    // With the notifications, delivered to every host when (and only if)
                    // this commits.
                    bulk::Writes::Notifying(write) if runs != "[]" || !payloads.is_empty() => {
                        sqlx::query(write)
                            .bind(&nodes)
                            .bind(&runs)
                            .bind(to_micros(now))
                            .bind(CHANNEL)
                            .bind(serde_json::Value::from(payloads).to_string())
                            .execute(&mut *tx)
                            .await?;
                    }
                    bulk::Writes::Quiet(_) | bulk::Writes::Notifying(_) => {} // nothing changed
                }
                Ok(())
            }
            .await;
            if let Err(e) = written {
                tx.rollback().await.map_err(CoreError::from)?;
                return Err(CoreError::from(e).into());
            }
            let taken = if asks.is_empty() {
                Taken::default()
            } else {
                match tx.claim_in(self, asks, now, None).await {
                    Ok(taken) => taken,
                    Err(e) => {
                        tx.rollback().await.map_err(CoreError::from)?;
                        return Err(e);
                    }
                }
            };
            (results, published, taken)
        });
        if !is_pg {
            for event in published {
                self.feed.publish(event);
            }
        }
        self.claimed(&mut taken);
        let results = results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(OrchestrateError::Core(CoreError::Internal(
                        "a change was skipped".into(),
                    )))
                })
            })
            .collect();
        Ok((results, taken.claims))
    }

    /// Cancels the unfinished child runs of `parents` (which have ended or are stopping),
    /// and theirs, each audited as `workflow_cancelled` by `workflow:<parent>`. One query
    /// per generation finds the children of all. Best effort: a failure is logged, and the
    /// maintenance pass cancels what is left.
    pub(super) async fn close_children(&self, mut parents: Vec<RunId>, now: DateTime<Utc>) {
        let sql = if self.db.backend() == ate_core::DbBackend::Postgres {
            &bulk::POSTGRES
        } else {
            &bulk::SQLITE
        };
        while !parents.is_empty() {
            let ids = bulk::id_list(parents.iter().map(|p| p.as_uuid()));
            let children: Result<Vec<(Uuid, Uuid)>, CoreError> = async {
                Ok(with_pool!(self.db, |pool| {
                    sqlx::query_as(sql.children)
                        .bind(&ids)
                        .fetch_all(pool)
                        .await?
                }))
            }
            .await;
            let children = match children {
                Ok(children) => children,
                Err(e) => {
                    tracing::warn!(runs = %ids, error = %e, "listing child runs failed");
                    return;
                }
            };
            parents = Vec::new();
            for (child, parent) in children {
                let Ok(parent) = RunId::from_uuid(parent) else {
                    continue;
                };
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
