//! The worker side of [`SqlWorkflowStore`]: claims with leases and fencing tokens,
//! heartbeats, completions and failures, and the maintenance pass that starts delayed runs,
//! takes back expired leases and times runs out. Every change to a run goes through
//! [`RunState`], applied under the run's row lock ([`SqlWorkflowStore::mutate`]).

use super::mutate::NOTIFY_ALL;
use super::{Loaded, NodeRow, SqlWorkflowStore, bulk, corrupt, json_size, json_text};
use crate::OrchestrateError;
use crate::workflow::condition::node_input;
use crate::workflow::dag::{NodeId, StepName, ValidDag};
use crate::workflow::state::{NodeError, NodeStatus, RunState, RunStatus};
use crate::workflow::store::events::{CHANNEL, NodeChange, RunEvent};
use crate::workflow::store::{Claim, Lease, Maintenance};
use ate_core::db::to_micros;
use ate_core::{DbBackend, RunId, TenantId, with_pool, with_write_tx};
use chrono::TimeDelta;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, PoisonError};
use std::time::Duration;
use uuid::Uuid;

/// The tenants with ready nodes, in id order: a loose index scan (one probe of
/// `wf_nodes_claim` per tenant, however many nodes are ready). `$1` caps how many.
/// `$from`: `wf_nodes`, on SQLite told to use the index (its planner, without statistics,
/// would rather sort the whole queue).
macro_rules! ready_tenants {
    ($from:literal) => {
        concat!(
            "WITH RECURSIVE t(id) AS (\
             SELECT (SELECT tenant_id FROM ",
            $from,
            " WHERE status = 'ready' ORDER BY tenant_id LIMIT 1) \
             UNION ALL SELECT (SELECT tenant_id FROM ",
            $from,
            " WHERE status = 'ready' AND tenant_id > t.id ORDER BY tenant_id LIMIT 1) \
             FROM t WHERE t.id IS NOT NULL) \
             SELECT id FROM t WHERE id IS NOT NULL LIMIT $1"
        )
    };
}
const READY_TENANTS: &str = ready_tenants!("wf_nodes INDEXED BY wf_nodes_claim");
const READY_TENANTS_PG: &str = ready_tenants!("wf_nodes");

/// Tenant `$1`'s due nodes (ready since `$2` at the latest) of running runs that are not
/// stopping, most urgent first (run priority, then readiness), at most `$3`, read in
/// `wf_nodes_claim` order so nothing is sorted. `$4`: a JSON array of the step names the
/// claimer runs, or NULL for any step.
macro_rules! candidates {
    ($from:literal, $steps:literal, $lock:literal) => {
        concat!(
            "SELECT n.run_id, n.idx FROM ",
            $from,
            " JOIN wf_runs r ON r.id = n.run_id \
             WHERE n.status = 'ready' AND n.tenant_id = $1 AND n.ready_at <= $2 \
             AND r.status = 'running' AND r.stopping IS NULL AND ",
            $steps,
            " ORDER BY n.priority DESC, n.ready_at, n.run_id, n.idx LIMIT $3",
            $lock
        )
    };
}
const CANDIDATES: &str = candidates!(
    "wf_nodes n INDEXED BY wf_nodes_claim",
    "($4 IS NULL OR n.task IN (SELECT value FROM json_each($4)))",
    ""
);
/// The same on PostgreSQL, locking what it picks: rows other workers are claiming (or runs
/// being changed) are skipped, not waited for.
const CANDIDATES_PG: &str = candidates!(
    "wf_nodes n",
    "($4::text IS NULL OR n.task IN (SELECT jsonb_array_elements_text($4::jsonb)))",
    " FOR UPDATE OF n, r SKIP LOCKED"
);

/// Most tenants one claim looks at; the rotation reaches the others in later claims.
const MAX_CLAIM_TENANTS: i64 = 10_000;

/// Takes up to `limit` candidates from the tenants' lists (each most urgent first), fair
/// across tenants: every tenant's first, then every tenant's second, and so on.
fn round_robin(lists: &[(Uuid, Vec<(Uuid, i32)>)], limit: usize) -> Vec<(Uuid, Uuid, i32)> {
    let mut picked = Vec::new();
    for rank in 0.. {
        let before = picked.len();
        for (tenant, list) in lists {
            if picked.len() == limit {
                return picked;
            }
            if let Some(&(run, idx)) = list.get(rank) {
                picked.push((*tenant, run, idx));
            }
        }
        if picked.len() == before {
            break;
        }
    }
    picked
}

/// `tenants` (in id order) starting after `cursor`, wrapping around: where the last claim
/// stopped, so no tenant is always first.
fn rotated(mut tenants: Vec<Uuid>, cursor: Option<Uuid>) -> Vec<Uuid> {
    if let Some(cursor) = cursor {
        let start = tenants.partition_point(|t| *t <= cursor);
        tenants.rotate_left(start);
    }
    tenants
}

/// The PostgreSQL advisory lock claimers take turns on while a running-node limit is set
/// (`"ate_wf_c"` as a number).
const CLAIM_LOCK: i64 = 0x6174_655f_7766_5f63;

/// Most rows one maintenance step handles; the next pass takes the rest.
const MAINTENANCE_BATCH: i64 = 100;

fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

pub(super) fn lost(lease: &Lease) -> OrchestrateError {
    OrchestrateError::Core(ate_core::CoreError::Conflict(format!(
        "the lease on node {} of run {} (token {}) is no longer held",
        lease.node, lease.run, lease.token
    )))
}

/// The index of the node `lease` is on, if the lease is still held (the node runs under the
/// same fencing token); otherwise `Conflict`.
fn held(loaded: &Loaded, lease: &Lease) -> Result<usize, OrchestrateError> {
    let i = usize::try_from(lease.node).unwrap_or(usize::MAX);
    let holds = loaded.nodes.get(i).is_some_and(|n: &NodeRow| {
        n.lease_token == lease.token && n.status == NodeStatus::Running.as_str()
    });
    if holds { Ok(i) } else { Err(lost(lease)) }
}

/// A node's input with its fixed `params`, if it has any.
fn with_params(mut input: Value, params: Option<&Value>) -> Value {
    if let (Some(params), Some(map)) = (params, input.as_object_mut()) {
        map.insert("params".into(), params.clone());
    }
    input
}

/// What claims read once per run: its input, definition, succeeded outputs (when a
/// claimed node has dependencies) and revision.
struct ClaimedRun {
    input: Value,
    dag: Arc<ValidDag>,
    outputs: Option<BTreeMap<i32, Value>>,
    revision: i64,
}

#[derive(sqlx::FromRow)]
struct Claimed {
    run_id: Uuid,
    idx: i32,
    tenant_id: Uuid,
    node_id: String,
    task: String,
    attempt: i32,
    lease_token: i64,
}

/// Records an attempt's result on its run's state: the node succeeds (unless its output is
/// over `max_output` bytes) or fails (and is retried per its policy, with `random` as the
/// backoff's jitter).
fn record(
    loaded: &Loaded,
    state: &mut RunState,
    lease: &Lease,
    result: Result<Value, NodeError>,
    now: chrono::DateTime<chrono::Utc>,
    random: f64,
    max_output: usize,
) -> Result<(RunStatus, Option<ate_core::audit::ValidEvent>), OrchestrateError> {
    let i = held(loaded, lease)?;
    match result {
        Ok(output) => {
            let size = json_size(&output);
            if size > max_output {
                let error = NodeError::permanent(
                    "output_too_large",
                    format!("the output is {size} bytes, over the limit of {max_output}"),
                );
                state.node_failed(&loaded.dag, i, error, now, random)?;
            } else {
                state.node_succeeded(&loaded.dag, i, output, now)?;
            }
        }
        Err(error) => {
            state.node_failed(&loaded.dag, i, error, now, random)?;
        }
    }
    Ok((state.status, None))
}

impl SqlWorkflowStore {
    pub(super) async fn claim_nodes(
        &self,
        worker: &str,
        steps: Option<&[StepName]>,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claim>, OrchestrateError> {
        let steps: Option<String> = match steps {
            Some([]) => return Ok(Vec::new()),
            Some(steps) => Some(json_text(&steps, "step names")?),
            None => None,
        };
        if worker.is_empty() || worker.len() > 256 {
            return Err(OrchestrateError::invalid(
                "worker id",
                "must have 1 to 256 bytes",
            ));
        }
        if lease.is_zero() || max == 0 {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let expires = now + to_delta(lease);
        let is_pg = self.db.backend() == DbBackend::Postgres;
        // On SQLite a claim takes the database's write lock: look for the tenants with ready
        // nodes first, unlocked, and claim only if there are any. (A tenant whose nodes
        // become ready after this look is served by the next claim, which the event of
        // those nodes brings.)
        let mut looked: Option<Vec<Uuid>> = None;
        if !is_pg {
            let tenants: Vec<Uuid> = with_pool!(self.db, |pool| {
                sqlx::query_scalar(READY_TENANTS)
                    .bind(MAX_CLAIM_TENANTS)
                    .fetch_all(pool)
                    .await?
            });
            if tenants.is_empty() {
                return Ok(Vec::new());
            }
            looked = Some(tenants);
        }
        let (candidates, ready_tenants, sql) = if is_pg {
            (CANDIDATES_PG, READY_TENANTS_PG, &bulk::POSTGRES)
        } else {
            (CANDIDATES, READY_TENANTS, &bulk::SQLITE)
        };
        let mut limit = i64::try_from(max).unwrap_or(i64::MAX);
        let per_tenant = self
            .max_running_per_tenant
            .map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let limited = self.max_running_per_tenant.is_some() || self.max_running.is_some();
        let cursor = *self
            .claim_cursor
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (claims, published, last): (Vec<Claim>, Vec<RunEvent>, Option<Uuid>) =
            with_write_tx!(self.db, |tx| {
                if limited && is_pg {
                    // Limits count running nodes, which concurrent claimers would each count
                    // before the other's claim commits: with a limit, claims take turns. (On
                    // SQLite every write transaction does.)
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(CLAIM_LOCK)
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some(global) = self.max_running {
                    let running: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM wf_nodes WHERE status = 'running'",
                    )
                    .fetch_one(&mut *tx)
                    .await?;
                    let global = i64::try_from(global).unwrap_or(i64::MAX);
                    limit = limit.min(global.saturating_sub(running));
                }
                let running: BTreeMap<Uuid, i64> = if self.max_running_per_tenant.is_some() {
                    sqlx::query_as(
                        "SELECT tenant_id, COUNT(*) FROM wf_nodes WHERE status = 'running' \
                         GROUP BY tenant_id",
                    )
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .collect()
                } else {
                    BTreeMap::new()
                };
                let tenants: Vec<Uuid> = if limit <= 0 {
                    Vec::new()
                } else if let Some(tenants) = looked.take() {
                    tenants
                } else {
                    sqlx::query_scalar(ready_tenants)
                        .bind(MAX_CLAIM_TENANTS)
                        .fetch_all(&mut *tx)
                        .await?
                };
                let wanted = usize::try_from(limit).unwrap_or(0);
                let mut lists: Vec<(Uuid, Vec<(Uuid, i32)>)> = Vec::new();
                for tenant in rotated(tenants, cursor) {
                    let room =
                        per_tenant.saturating_sub(running.get(&tenant).copied().unwrap_or(0));
                    let want = limit.min(room);
                    if want <= 0 {
                        continue;
                    }
                    let list: Vec<(Uuid, i32)> = sqlx::query_as(candidates)
                        .bind(tenant)
                        .bind(to_micros(now))
                        .bind(want)
                        .bind(steps.as_deref())
                        .fetch_all(&mut *tx)
                        .await?;
                    if !list.is_empty() {
                        lists.push((tenant, list));
                        if lists.len() >= wanted {
                            break; // each of these gets at least one
                        }
                    }
                }
                let picked = round_robin(&lists, wanted);
                let last = picked.last().map(|(tenant, _, _)| *tenant);
                // One statement claims them all; the condition keeps the claim exact on any
                // backend (on PostgreSQL the row locks already guarantee it).
                let wanted: Vec<Value> = picked
                    .iter()
                    .map(|(_, run, idx)| serde_json::json!({"r": bulk::hex(*run), "i": idx}))
                    .collect();
                let claimed: Vec<Claimed> = if wanted.is_empty() {
                    Vec::new()
                } else {
                    sqlx::query_as(sql.claim)
                        .bind(Value::from(wanted).to_string())
                        .bind(worker)
                        .bind(to_micros(expires))
                        .bind(to_micros(now))
                        .fetch_all(&mut *tx)
                        .await?
                };
                let mut claimed: BTreeMap<(Uuid, i32), Claimed> = claimed
                    .into_iter()
                    .map(|c| ((c.run_id, c.idx), c))
                    .collect();
                // What inputs need, read in one statement for all the runs: each run's input
                // and revision, the definitions not parsed yet, and the succeeded nodes'
                // outputs of runs with a claimed node that has dependencies (or whose
                // definition is not parsed yet, so nobody knows).
                let run_ids: BTreeSet<Uuid> = claimed.keys().map(|(run, _)| *run).collect();
                let mut runs: BTreeMap<Uuid, ClaimedRun> = BTreeMap::new();
                if !run_ids.is_empty() {
                    // Taken now: the cache may be emptied meanwhile.
                    let cached: BTreeMap<Uuid, Arc<ValidDag>> = run_ids
                        .iter()
                        .filter_map(|id| Some((*id, self.dags.get(*id)?)))
                        .collect();
                    let uncached = run_ids
                        .iter()
                        .copied()
                        .filter(|id| !cached.contains_key(id));
                    let with_deps: BTreeSet<Uuid> = claimed
                        .keys()
                        .filter(|(run, idx)| {
                            cached.get(run).is_none_or(|dag| {
                                usize::try_from(*idx)
                                    .ok()
                                    .and_then(|i| dag.nodes().get(i))
                                    .is_some_and(|n| !n.depends_on.is_empty())
                            })
                        })
                        .map(|(run, _)| *run)
                        .collect();
                    let rows: Vec<bulk::ClaimedRunRow> = sqlx::query_as(sql.claimed_runs)
                        .bind(bulk::id_list(run_ids.iter().copied()))
                        .bind(bulk::id_list(uncached))
                        .bind(bulk::id_list(with_deps))
                        .fetch_all(&mut *tx)
                        .await?;
                    for row in rows {
                        let dag = match cached.get(&row.id) {
                            Some(dag) => dag.clone(),
                            None => {
                                let definition = row.definition.as_deref();
                                let definition =
                                    definition.ok_or_else(|| corrupt("definition", "missing"))?;
                                self.dags.parse(row.id, definition)?
                            }
                        };
                        runs.insert(
                            row.id,
                            ClaimedRun {
                                input: serde_json::from_str(&row.input)
                                    .map_err(|e| corrupt("input", e))?,
                                dag,
                                outputs: row.outputs()?,
                                revision: row.revision,
                            },
                        );
                    }
                }
                let mut claims = Vec::with_capacity(claimed.len());
                let mut published = Vec::new();
                let mut payloads = Vec::new();
                for (_, run_id, idx) in picked {
                    let Some(claimed) = claimed.remove(&(run_id, idx)) else {
                        continue; // no longer ready
                    };
                    let run = runs.get(&run_id).ok_or_else(|| corrupt("run", "missing"))?;
                    let dag = &run.dag;
                    let node = usize::try_from(idx).ok().and_then(|i| dag.nodes().get(i));
                    let node = node.ok_or_else(|| corrupt("node index", idx))?;
                    let none = BTreeMap::new();
                    let outputs = run.outputs.as_ref().unwrap_or(&none);
                    let deps = node.depends_on.iter().filter_map(|&d| {
                        let out = outputs.get(&i32::try_from(d).ok()?)?;
                        Some((dag.nodes()[d].id.as_str(), out))
                    });
                    let (start_to_close, heartbeat_timeout) = match &node.kind {
                        crate::workflow::NodeKind::Step { timeouts, .. } => {
                            (timeouts.start_to_close, timeouts.heartbeat)
                        }
                        crate::workflow::NodeKind::Signal { .. } => {
                            (crate::workflow::policy::DEFAULT_START_TO_CLOSE, None)
                        }
                    };
                    let event = RunEvent {
                        tenant: TenantId::from_uuid(claimed.tenant_id)?,
                        run: RunId::from_uuid(run_id)?,
                        revision: run.revision,
                        status: RunStatus::Running,
                        stopping: None,
                        nodes: vec![NodeChange {
                            node: node.id.clone(),
                            status: NodeStatus::Running,
                        }],
                        nodes_omitted: false,
                        due_at: None,
                    };
                    if is_pg {
                        payloads.push(event.to_payload());
                    }
                    published.push(event);
                    claims.push(Claim {
                        lease: Lease {
                            run: RunId::from_uuid(run_id)?,
                            node: u32::try_from(idx).unwrap_or(0),
                            token: claimed.lease_token,
                        },
                        tenant: TenantId::from_uuid(claimed.tenant_id)?,
                        node_id: NodeId::new(claimed.node_id).map_err(|e| corrupt("node id", e))?,
                        step: StepName::new(claimed.task).map_err(|e| corrupt("step", e))?,
                        attempt: u32::try_from(claimed.attempt).unwrap_or(0),
                        input: with_params(node_input(&run.input, deps), node.params.as_ref()),
                        lease_expires_at: expires,
                        start_to_close,
                        heartbeat_timeout,
                    });
                }
                if !payloads.is_empty() {
                    // Delivered to every host when (and only if) this commits.
                    sqlx::query(NOTIFY_ALL)
                        .bind(CHANNEL)
                        .bind(Value::from(payloads).to_string())
                        .execute(&mut *tx)
                        .await?;
                }
                (claims, published, last)
            });
        if last.is_some() {
            *self
                .claim_cursor
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = last;
        }
        if !is_pg {
            for event in published {
                self.feed.publish(event);
            }
        }
        Ok(claims)
    }

    pub(super) async fn renew(
        &self,
        lease: &Lease,
        extend: Duration,
    ) -> Result<bool, OrchestrateError> {
        let now = self.clock.now();
        let cancel: Option<i32> = with_pool!(self.db, |pool| {
            sqlx::query_scalar(
                "UPDATE wf_nodes SET lease_expires_at = $4 WHERE run_id = $1 AND idx = $2 \
                 AND lease_token = $3 AND status = 'running' RETURNING cancel_requested",
            )
            .bind(lease.run.as_uuid())
            .bind(i32::try_from(lease.node).unwrap_or(i32::MAX))
            .bind(lease.token)
            .bind(to_micros(now + to_delta(extend)))
            .fetch_optional(pool)
            .await?
        });
        cancel.map(|c| c != 0).ok_or_else(|| lost(lease))
    }

    pub(super) async fn finish(
        &self,
        lease: &Lease,
        result: Result<Value, NodeError>,
    ) -> Result<RunStatus, OrchestrateError> {
        let now = self.clock.now();
        let random = fastrand::f64();
        let max_output = self.limits.max_input_bytes;
        self.mutate(lease.run, None, now, move |loaded, state| {
            record(loaded, state, lease, result, now, random, max_output)
        })
        .await
    }

    /// [`finish`](Self::finish) for several attempts, in one transaction; each gets its own
    /// result (a lost lease fails only its attempt). An error for the batch means none was
    /// recorded.
    pub(super) async fn finish_many(
        &self,
        attempts: Vec<(Lease, Result<Value, NodeError>)>,
    ) -> Result<Vec<Result<RunStatus, OrchestrateError>>, OrchestrateError> {
        let now = self.clock.now();
        let max_output = self.limits.max_input_bytes;
        let runs: Vec<RunId> = attempts.iter().map(|(lease, _)| lease.run).collect();
        let changes = attempts
            .into_iter()
            .map(|(lease, result)| {
                let random = fastrand::f64();
                let change = move |loaded: &Loaded, state: &mut RunState| {
                    record(loaded, state, &lease, result, now, random, max_output)
                };
                (lease.run, None, change)
            })
            .collect();
        let done = self.mutate_batch(changes, now, true).await?;
        let mut closed = Vec::new();
        let mut statuses = Vec::with_capacity(done.len());
        for (result, run) in done.into_iter().zip(runs) {
            statuses.push(result.map(|(status, ended)| {
                if ended {
                    closed.push(run);
                }
                status
            }));
        }
        if !closed.is_empty() {
            self.close_children(closed, now).await;
        }
        Ok(statuses)
    }

    pub(super) async fn give_back(&self, lease: &Lease) -> Result<(), OrchestrateError> {
        let now = self.clock.now();
        self.mutate(lease.run, None, now, move |loaded, state| {
            let i = held(loaded, lease)?;
            state.node_released(i, now)?;
            Ok(((), None))
        })
        .await
    }

    pub(super) async fn maintain_runs(&self) -> Result<Maintenance, OrchestrateError> {
        let now = self.clock.now();
        let mut done = Maintenance::default();
        let due: Vec<Uuid> = with_pool!(self.db, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM wf_runs WHERE status = 'pending' AND stopping IS NULL \
                 AND start_at <= $1 ORDER BY start_at LIMIT $2",
            )
            .bind(to_micros(now))
            .bind(MAINTENANCE_BATCH)
            .fetch_all(pool)
            .await?
        });
        for id in due {
            let started = self
                .mutate(RunId::from_uuid(id)?, None, now, |loaded, state| {
                    let was = state.status;
                    state.start(&loaded.dag, now);
                    Ok((was != state.status, None))
                })
                .await?;
            done.started += usize::from(started);
        }
        let expired: Vec<(Uuid, i32, i64)> = with_pool!(self.db, |pool| {
            sqlx::query_as(
                "SELECT run_id, idx, lease_token FROM wf_nodes WHERE status = 'running' \
                 AND lease_expires_at < $1 ORDER BY lease_expires_at LIMIT $2",
            )
            .bind(to_micros(now))
            .bind(MAINTENANCE_BATCH)
            .fetch_all(pool)
            .await?
        });
        for (run, idx, token) in expired {
            let lease = Lease {
                run: RunId::from_uuid(run)?,
                node: u32::try_from(idx).unwrap_or(0),
                token,
            };
            let error = NodeError::retryable("lease_expired", "the worker's lease expired");
            match self.finish(&lease, Err(error)).await {
                Ok(_) => done.expired_leases += 1,
                // Its worker finished or renewed it meanwhile.
                Err(OrchestrateError::Core(ate_core::CoreError::Conflict(_))) => {}
                Err(e) => return Err(e),
            }
        }
        // Run timeouts are capped (`run::MAX_RUN_TIMEOUT`), so the sum cannot overflow.
        let late: Vec<Uuid> = with_pool!(self.db, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM wf_runs WHERE status = 'running' AND stopping IS NULL \
                 AND timeout_ms IS NOT NULL AND start_at + timeout_ms * 1000 <= $1 \
                 ORDER BY start_at LIMIT $2",
            )
            .bind(to_micros(now))
            .bind(MAINTENANCE_BATCH)
            .fetch_all(pool)
            .await?
        });
        for id in late {
            let timed_out = self
                .mutate(RunId::from_uuid(id)?, None, now, |_, state| {
                    Ok((state.timed_out(), None))
                })
                .await?;
            done.timed_out += usize::from(timed_out);
        }
        let waited: Vec<(Uuid, i32)> = with_pool!(self.db, |pool| {
            sqlx::query_as(
                "SELECT run_id, idx FROM wf_nodes WHERE status = 'waiting' \
                 AND wait_until IS NOT NULL AND wait_until <= $1 ORDER BY wait_until LIMIT $2",
            )
            .bind(to_micros(now))
            .bind(MAINTENANCE_BATCH)
            .fetch_all(pool)
            .await?
        });
        for (run, idx) in waited {
            let i = usize::try_from(idx).unwrap_or(usize::MAX);
            let failed = self
                .mutate(RunId::from_uuid(run)?, None, now, move |loaded, state| {
                    let waiting = state
                        .nodes
                        .get(i)
                        .is_some_and(|n| n.status == NodeStatus::Waiting);
                    if waiting {
                        state.signal_timed_out(&loaded.dag, i, now)?;
                    }
                    Ok((waiting, None))
                })
                .await?;
            done.signals_timed_out += usize::from(failed);
        }
        let orphans: Vec<(Uuid, Uuid)> = with_pool!(self.db, |pool| {
            sqlx::query_as(
                "SELECT c.id, p.id FROM wf_runs c JOIN wf_runs p ON p.id = c.parent_run_id \
                 WHERE c.status IN ('pending', 'running') AND c.stopping IS NULL \
                 AND (p.status IN ('succeeded', 'failed', 'cancelled') OR p.stopping IS NOT NULL) \
                 LIMIT $1",
            )
            .bind(MAINTENANCE_BATCH)
            .fetch_all(pool)
            .await?
        });
        for (child, parent) in orphans {
            self.cancel_child(child, RunId::from_uuid(parent)?, now)
                .await?;
            done.children_cancelled += 1;
        }
        done.schedules_fired = self.fire_schedules().await?;
        Ok(done)
    }
}
