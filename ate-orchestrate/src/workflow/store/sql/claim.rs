//! Claims: handing due nodes to a worker, each with a lease and a fencing token, fair across
//! tenants and within the store's running-node limits.
//!
//! A claim runs inside a write transaction ([`ClaimTx::claim_in`]): alone
//! ([`SqlWorkflowStore::claim_nodes`]), or after a batch of attempts' results in the same
//! transaction ([`SqlWorkflowStore::finish_many`]), so a worker that records results and
//! takes new work pays for one transaction, not two.

use super::{SqlWorkflowStore, bulk, corrupt, json_text};
use crate::OrchestrateError;
use crate::workflow::condition::node_input;
use crate::workflow::dag::{NodeId, StepName, ValidDag};
use crate::workflow::state::{NodeStatus, RunStatus};
use crate::workflow::store::events::{CHANNEL, NodeChange, RunEvent};
use crate::workflow::store::{Claim, Lease};
use ate_core::db::to_micros;
use ate_core::{CoreError, DbBackend, RunId, TenantId, with_pool, with_write_tx};
use chrono::{DateTime, Utc};
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

/// A claim, checked, waiting for its transaction: for `worker`, up to `max` nodes running
/// one of `steps` (a JSON array; `None`: any step), leased until `expires`.
#[derive(Debug)]
pub(super) struct Ask {
    worker: String,
    steps: Option<String>,
    max: i64,
    expires: DateTime<Utc>,
}

/// What the claims of one transaction took: each [`Ask`]'s claims, in order, and the events
/// to publish in this process once the transaction commits (SQLite; PostgreSQL's go out as
/// notifications inside it).
#[derive(Debug, Default)]
pub(super) struct Taken {
    pub(super) claims: Vec<Vec<Claim>>,
    pub(super) published: Vec<RunEvent>,
    /// The tenant the last claim ended with, for the fairness cursor.
    last: Option<Uuid>,
}

/// Claims inside a write transaction; implemented for the transactions of both backends.
pub(super) trait ClaimTx: Send {
    /// Runs `asks` one after the other, each as [`SqlWorkflowStore::claim_nodes`] would (a
    /// node goes to one ask at most), at `now`. `looked`: the tenants with ready nodes, if
    /// the caller has just read them. On PostgreSQL the claims' events are sent as
    /// notifications within the transaction. An error leaves the transaction fit only for a
    /// rollback.
    fn claim_in(
        &mut self,
        store: &SqlWorkflowStore,
        asks: &[Ask],
        now: DateTime<Utc>,
        looked: Option<Vec<Uuid>>,
    ) -> impl Future<Output = Result<Taken, OrchestrateError>> + Send;
}

macro_rules! impl_claim_tx {
    ($db:ty) => {
        impl ClaimTx for sqlx::Transaction<'_, $db> {
            async fn claim_in(
                &mut self,
                store: &SqlWorkflowStore,
                asks: &[Ask],
                now: DateTime<Utc>,
                mut looked: Option<Vec<Uuid>>,
            ) -> Result<Taken, OrchestrateError> {
                let mut taken = Taken::default();
                let mut payloads = Vec::new();
                for ask in asks {
                    let claims = claim_one!(store, self, ask, now, looked.take(), taken, payloads);
                    taken.claims.push(claims);
                }
                if !payloads.is_empty() {
                    // Delivered to every host when (and only if) this commits.
                    sqlx::query(bulk::NOTIFY_ALL)
                        .bind(CHANNEL)
                        .bind(Value::from(payloads).to_string())
                        .execute(&mut **self)
                        .await?;
                }
                Ok(taken)
            }
        }
    };
}

/// The body of one claim in [`ClaimTx::claim_in`]: evaluates to the ask's claims, adding
/// their events to `$taken.published` (and on PostgreSQL their payloads to `$payloads`).
macro_rules! claim_one {
    ($store:ident, $tx:ident, $ask:ident, $now:ident, $looked:expr, $taken:ident, $payloads:ident) => {{
        let is_pg = $store.db.backend() == DbBackend::Postgres;
        let (candidates, ready_tenants, sql) = if is_pg {
            (CANDIDATES_PG, READY_TENANTS_PG, &bulk::POSTGRES)
        } else {
            (CANDIDATES, READY_TENANTS, &bulk::SQLITE)
        };
        let mut limit = $ask.max;
        let per_tenant = $store
            .max_running_per_tenant
            .map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let limited = $store.max_running_per_tenant.is_some() || $store.max_running.is_some();
        let cursor = $taken.last.or_else(|| {
            *$store
                .claim_cursor
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        });
        if limited && is_pg {
            // Limits count running nodes, which concurrent claimers would each count
            // before the other's claim commits: with a limit, claims take turns. (On
            // SQLite every write transaction does.)
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(CLAIM_LOCK)
                .execute(&mut **$tx)
                .await?;
        }
        if let Some(global) = $store.max_running {
            let running: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM wf_nodes WHERE status = 'running'")
                    .fetch_one(&mut **$tx)
                    .await?;
            let global = i64::try_from(global).unwrap_or(i64::MAX);
            limit = limit.min(global.saturating_sub(running));
        }
        let running: BTreeMap<Uuid, i64> = if $store.max_running_per_tenant.is_some() {
            sqlx::query_as(
                "SELECT tenant_id, COUNT(*) FROM wf_nodes WHERE status = 'running' \
                 GROUP BY tenant_id",
            )
            .fetch_all(&mut **$tx)
            .await?
            .into_iter()
            .collect()
        } else {
            BTreeMap::new()
        };
        let tenants: Vec<Uuid> = match $looked {
            _ if limit <= 0 => Vec::new(),
            Some(tenants) => tenants,
            None => {
                sqlx::query_scalar(ready_tenants)
                    .bind(MAX_CLAIM_TENANTS)
                    .fetch_all(&mut **$tx)
                    .await?
            }
        };
        let wanted = usize::try_from(limit).unwrap_or(0);
        let mut lists: Vec<(Uuid, Vec<(Uuid, i32)>)> = Vec::new();
        for tenant in rotated(tenants, cursor) {
            let room = per_tenant.saturating_sub(running.get(&tenant).copied().unwrap_or(0));
            let want = limit.min(room);
            if want <= 0 {
                continue;
            }
            let list: Vec<(Uuid, i32)> = sqlx::query_as(candidates)
                .bind(tenant)
                .bind(to_micros($now))
                .bind(want)
                .bind($ask.steps.as_deref())
                .fetch_all(&mut **$tx)
                .await?;
            if !list.is_empty() {
                lists.push((tenant, list));
                if lists.len() >= wanted {
                    break; // each of these gets at least one
                }
            }
        }
        let picked = round_robin(&lists, wanted);
        if let Some((tenant, _, _)) = picked.last() {
            $taken.last = Some(*tenant);
        }
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
                .bind(&$ask.worker)
                .bind(to_micros($ask.expires))
                .bind(to_micros($now))
                .fetch_all(&mut **$tx)
                .await?
        };
        let mut claimed: BTreeMap<(Uuid, i32), Claimed> =
            claimed.into_iter().map(|c| ((c.run_id, c.idx), c)).collect();
        // What inputs need, read in one statement for all the runs: each run's input and
        // revision, the definitions not parsed yet, and the succeeded nodes' outputs of runs
        // with a claimed node that has dependencies (or whose definition is not parsed yet,
        // so nobody knows).
        let run_ids: BTreeSet<Uuid> = claimed.keys().map(|(run, _)| *run).collect();
        let mut runs: BTreeMap<Uuid, ClaimedRun> = BTreeMap::new();
        if !run_ids.is_empty() {
            let cached = $store.dags.snapshot(&run_ids);
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
                .fetch_all(&mut **$tx)
                .await?;
            for row in rows {
                let dag = $store
                    .dags
                    .resolve(&cached, row.id, row.definition.as_deref())?;
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
        for (_, run_id, idx) in picked {
            let Some(claimed) = claimed.remove(&(run_id, idx)) else {
                continue; // no longer ready
            };
            let run = runs.get(&run_id).ok_or_else(|| corrupt("run", "missing"))?;
            let (claim, event) = claim_of(run, claimed, $ask.expires)?;
            if is_pg {
                $payloads.push(event.to_payload());
            }
            $taken.published.push(event);
            claims.push(claim);
        }
        claims
    }};
}

impl_claim_tx!(sqlx::Sqlite);
impl_claim_tx!(sqlx::Postgres);

/// The claim of node `claimed` of `run`, and its event.
fn claim_of(
    run: &ClaimedRun,
    claimed: Claimed,
    expires: DateTime<Utc>,
) -> Result<(Claim, RunEvent), OrchestrateError> {
    let dag = &run.dag;
    let idx = claimed.idx;
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
    let run_id = RunId::from_uuid(claimed.run_id)?;
    let tenant = TenantId::from_uuid(claimed.tenant_id)?;
    let event = RunEvent {
        tenant,
        run: run_id,
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
    let claim = Claim {
        lease: Lease {
            run: run_id,
            node: u32::try_from(idx).unwrap_or(0),
            token: claimed.lease_token,
        },
        tenant,
        node_id: NodeId::new(claimed.node_id).map_err(|e| corrupt("node id", e))?,
        step: StepName::new(claimed.task).map_err(|e| corrupt("step", e))?,
        attempt: u32::try_from(claimed.attempt).unwrap_or(0),
        input: with_params(node_input(&run.input, deps), node.params.as_ref()),
        lease_expires_at: expires,
        start_to_close,
        heartbeat_timeout,
    };
    Ok((claim, event))
}

impl SqlWorkflowStore {
    /// Checks a claim for `worker`: `InvalidInput` for a bad worker id or step list; `None`
    /// when it can take nothing (no steps, no places, a zero lease).
    pub(super) fn ask(
        &self,
        worker: &str,
        steps: Option<&[StepName]>,
        max: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Ask>, OrchestrateError> {
        let steps: Option<String> = match steps {
            Some([]) => return Ok(None),
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
            return Ok(None);
        }
        Ok(Some(Ask {
            worker: worker.to_owned(),
            steps,
            max: i64::try_from(max).unwrap_or(i64::MAX),
            expires: now + super::work::to_delta(lease),
        }))
    }

    /// After the transaction of `taken` committed: moves the fairness cursor on, and on
    /// SQLite publishes the claims' events in this process.
    pub(super) fn claimed(&self, taken: &mut Taken) {
        if taken.last.is_some() {
            *self
                .claim_cursor
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = taken.last;
        }
        if self.db.backend() != DbBackend::Postgres {
            for event in taken.published.drain(..) {
                self.feed.publish(event);
            }
        }
    }

    /// One claim in a transaction of its own; see [`WorkflowStore::claim`](crate::workflow::WorkflowStore::claim).
    pub(super) async fn claim_nodes(
        &self,
        worker: &str,
        steps: Option<&[StepName]>,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claim>, OrchestrateError> {
        let now = self.clock.now();
        let Some(ask) = self.ask(worker, steps, max, lease, now)? else {
            return Ok(Vec::new());
        };
        // On SQLite a claim takes the database's write lock: look for the tenants with ready
        // nodes first, unlocked, and claim only if there are any. (A tenant whose nodes
        // become ready after this look is served by the next claim, which the event of
        // those nodes brings.)
        let mut looked: Option<Vec<Uuid>> = None;
        if self.db.backend() != DbBackend::Postgres {
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
        let asks = [ask];
        let mut taken = with_write_tx!(self.db, |tx| {
            match tx.claim_in(self, &asks, now, looked.take()).await {
                Ok(taken) => taken,
                Err(e) => {
                    // At once: a transaction merely dropped holds its locks until its
                    // connection is next used.
                    tx.rollback().await.map_err(CoreError::from)?;
                    return Err(e);
                }
            }
        });
        self.claimed(&mut taken);
        Ok(taken.claims.pop().unwrap_or_default())
    }
}
