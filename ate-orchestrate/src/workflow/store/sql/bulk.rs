//! Statements that read or write many runs and nodes at once, for batched changes and
//! claims: one round trip for a whole batch instead of one per run or node. Each takes a
//! JSON array as `$1` (ids as 32 hex digits, or one object per row); SQLite reads it with
//! `json_each`, PostgreSQL with `jsonb_array_elements_text` / `jsonb_to_recordset`.

use super::{NodeRow, RunRow, corrupt};
use crate::OrchestrateError;
use crate::workflow::dag::{NodeKind, ValidDag};
use crate::workflow::state::{NodeError, NodeState, NodeStatus, RunState, RunStatus};
use ate_core::db::to_micros;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use uuid::Uuid;

/// "Is one of the ids in `$1`" (a JSON array of hex ids), in each dialect. On PostgreSQL
/// as `= ANY(ARRAY(…))`: the planner then looks the ids up in the index (given a
/// set-returning function to join, it guesses 100 rows and scans the table).
macro_rules! ids {
    (sqlite) => {
        ids!(sqlite, "$1")
    };
    (pg) => {
        ids!(pg, "$1")
    };
    (sqlite, $p:literal) => {
        concat!(" IN (SELECT unhex(value) FROM json_each(", $p, "))")
    };
    (pg, $p:literal) => {
        concat!(
            " = ANY(ARRAY(SELECT value::uuid FROM jsonb_array_elements_text(",
            $p,
            "::jsonb)))"
        )
    };
}

/// A node row of `wf_nodes n` as a JSON array of [`NodeRow`]'s fields, in order.
macro_rules! node_json {
    ($array:literal) => {
        concat!(
            $array,
            "(n.idx, n.node_id, n.kind, n.task, n.status, n.attempt, n.ready_at, \
             n.first_ready_at, n.output, n.error, n.cancel_requested, n.lease_token, \
             n.started_at, n.finished_at)"
        )
    };
}

/// "Is one of the runs of the rows in `$1`" (a JSON array of objects with the run id as
/// `r`), on PostgreSQL: as in [`ids`], so the planner uses the index.
macro_rules! row_runs {
    () => {
        row_runs!("$1")
    };
    ($p:literal) => {
        concat!(
            " = ANY(ARRAY(SELECT (x.v ->> 'r')::uuid FROM jsonb_array_elements(",
            $p,
            "::jsonb) AS x(v)))"
        )
    };
}

/// [`Bulk::children`] in dialect `$d`.
macro_rules! children {
    ($d:ident) => {
        concat!(
            "SELECT id, parent_run_id FROM wf_runs WHERE parent_run_id",
            ids!($d),
            " AND status IN ('pending', 'running') AND stopping IS NULL"
        )
    };
}

/// [`Bulk::lock_runs`] in dialect `$d`: `$agg … $end` aggregates the nodes made by
/// `$array` into JSON text.
macro_rules! lock_runs {
    ($d:ident, $agg:literal, $array:literal, $end:literal) => {
        concat!(
            "SELECT ",
            run_columns!(),
            ", CASE WHEN id",
            ids!($d, "$2"),
            " THEN definition END AS definition, (SELECT ",
            $agg,
            node_json!($array),
            $end,
            " FROM wf_nodes n WHERE n.run_id = r.id) AS nodes, EXISTS (SELECT 1 FROM wf_runs c \
             WHERE c.parent_run_id = r.id AND c.status IN ('pending', 'running') \
             AND c.stopping IS NULL) AS children FROM wf_runs r WHERE id",
            ids!($d)
        )
    };
}

/// How a batch writes its changed nodes (objects made by [`node_write`]) and runs (made by
/// [`run_write`]), in one call: the nodes of `$1`, the runs of `$2` updated at `$3`.
pub(super) enum Writes {
    /// Two statements in one string (SQLite runs them one after the other, in one call to
    /// its connection's thread).
    Quiet(&'static str),
    /// One statement (data-modifying `WITH`) that also sends the notifications `$5` (a JSON
    /// array of payloads) on channel `$4`.
    Notifying(&'static str),
}

/// The statements of one dialect.
pub(super) struct Bulk {
    /// Locks the runs in `$1` in id order (so concurrent batches cannot deadlock) before
    /// [`lock_runs`](Self::lock_runs) reads them; `None` on SQLite, where the write
    /// transaction is the lock. A statement of its own on PostgreSQL: a statement that
    /// waits for a row lock gets the row as the transaction it waited for left it, but
    /// reads everything else (the run's nodes) as it was when the statement began, before
    /// that transaction committed; the next statement sees it all.
    pub(super) lock_first: Option<&'static str>,
    /// The runs in `$1` (locked, or in SQLite's write transaction): the run columns, the
    /// definition of those also in `$2` (else NULL), the run's nodes as one JSON array of
    /// [`NodeRow`]s (any order), and whether it has unfinished children not stopping yet:
    /// a [`LockedRun`].
    pub(super) lock_runs: &'static str,
    /// What a claim needs of the runs in `$1`: `id, input, revision`, the definition of
    /// those also in `$2` (else NULL), and for those also in `$3` the outputs of their
    /// succeeded nodes as one JSON array of `[idx, output]` (else NULL): a [`ClaimedRunRow`].
    pub(super) claimed_runs: &'static str,
    /// How a batch's changes are written.
    pub(super) writes: Writes,
    /// The unfinished child runs (not stopping yet) of the runs in `$1`.
    pub(super) children: &'static str,
    /// Claims the nodes `$1` (objects `{r, i}`) that are still ready for worker `$2`, with
    /// leases expiring at `$3`, started at `$4`; returns what a claim needs.
    pub(super) claim: &'static str,
}

pub(super) const SQLITE: Bulk = Bulk {
    children: children!(sqlite),
    lock_first: None,
    lock_runs: lock_runs!(sqlite, "json_group_array(", "json_array", ")"),
    claimed_runs: concat!(
        "SELECT id, input, revision, CASE WHEN id",
        ids!(sqlite, "$2"),
        " THEN definition END AS definition, CASE WHEN id",
        ids!(sqlite, "$3"),
        // `+n.status`: by key, not through the status index (SQLite would read every
        // succeeded node's entry).
        " THEN (SELECT json_group_array(json_array(n.idx, n.output)) FROM wf_nodes n \
         WHERE n.run_id = r.id AND +n.status = 'succeeded' AND n.output IS NOT NULL) END \
         AS outputs FROM wf_runs r WHERE id",
        ids!(sqlite)
    ),
    writes: Writes::Quiet(
        "UPDATE wf_nodes SET status = c.value ->> 's', attempt = c.value ->> 'a', \
         ready_at = c.value ->> 'ra', first_ready_at = c.value ->> 'fr', \
         output = c.value ->> 'o', error = c.value ->> 'e', \
         cancel_requested = c.value ->> 'cr', \
         finished_at = CASE WHEN c.value ->> 'fin' = 1 \
             THEN COALESCE(c.value ->> 'f', finished_at) ELSE NULL END, \
         lease_owner = CASE WHEN c.value ->> 'l' = 1 THEN NULL ELSE lease_owner END, \
         lease_expires_at = CASE WHEN c.value ->> 'l' = 1 THEN NULL ELSE lease_expires_at END, \
         wait_until = c.value ->> 'w' \
         FROM json_each($1) AS c \
         WHERE wf_nodes.run_id = unhex(c.value ->> 'r') AND wf_nodes.idx = c.value ->> 'i'; \
         UPDATE wf_runs SET status = c.value ->> 's', stopping = c.value ->> 'st', \
         error = c.value ->> 'e', updated_at = $3, \
         finished_at = CASE WHEN c.value ->> 'fin' = 1 \
             THEN COALESCE(c.value ->> 'f', finished_at) ELSE NULL END, \
         revision = c.value ->> 'v' \
         FROM json_each($2) AS c WHERE wf_runs.id = unhex(c.value ->> 'r')",
    ),
    claim: "UPDATE wf_nodes SET status = 'running', attempt = attempt + 1, lease_owner = $2, \
         lease_token = lease_token + 1, lease_expires_at = $3, started_at = $4, ready_at = NULL \
         FROM json_each($1) AS c \
         WHERE wf_nodes.run_id = unhex(c.value ->> 'r') AND wf_nodes.idx = c.value ->> 'i' \
         AND +wf_nodes.status = 'ready' \
         RETURNING run_id, idx, tenant_id, node_id, task, attempt, lease_token",
};

pub(super) const POSTGRES: Bulk = Bulk {
    children: children!(pg),
    lock_first: Some(concat!(
        "SELECT id FROM wf_runs WHERE id",
        ids!(pg),
        " ORDER BY id FOR NO KEY UPDATE"
    )),
    lock_runs: lock_runs!(pg, "json_agg(", "json_build_array", ")::text"),
    claimed_runs: concat!(
        "SELECT id, input, revision, CASE WHEN id",
        ids!(pg, "$2"),
        " THEN definition END AS definition, CASE WHEN id",
        ids!(pg, "$3"),
        // Filtered in the aggregate, not in `WHERE`: there the planner would combine the
        // status index with the key and read every succeeded node's entry.
        " THEN (SELECT json_agg(json_build_array(n.idx, n.output)) \
         FILTER (WHERE n.status = 'succeeded' AND n.output IS NOT NULL)::text \
         FROM wf_nodes n WHERE n.run_id = r.id) END \
         AS outputs FROM wf_runs r WHERE id",
        ids!(pg)
    ),
    // Data-modifying `WITH` queries run whether or not the query reads them.
    writes: Writes::Notifying(concat!(
        "WITH written_nodes AS (UPDATE wf_nodes n SET status = c.s, attempt = c.a, \
         ready_at = c.ra, first_ready_at = c.fr, output = c.o, error = c.e, \
         cancel_requested = c.cr, \
         finished_at = CASE WHEN c.fin = 1 THEN COALESCE(c.f, n.finished_at) ELSE NULL END, \
         lease_owner = CASE WHEN c.l = 1 THEN NULL ELSE n.lease_owner END, \
         lease_expires_at = CASE WHEN c.l = 1 THEN NULL ELSE n.lease_expires_at END, \
         wait_until = c.w \
         FROM jsonb_to_recordset($1::jsonb) AS c(r uuid, i int, s text, a int, ra bigint, \
             fr bigint, o text, e text, cr int, fin int, f bigint, l int, w bigint) \
         WHERE n.run_id = c.r AND n.idx = c.i AND n.run_id",
        row_runs!("$1"),
        " RETURNING 1), written_runs AS (UPDATE wf_runs w SET status = c.s, stopping = c.st, \
         error = c.e, updated_at = $3, \
         finished_at = CASE WHEN c.fin = 1 THEN COALESCE(c.f, w.finished_at) ELSE NULL END, \
         revision = c.v \
         FROM jsonb_to_recordset($2::jsonb) AS c(r uuid, s text, st text, e text, fin int, \
             f bigint, v bigint) \
         WHERE w.id = c.r AND w.id",
        row_runs!("$2"),
        " RETURNING 1) SELECT pg_notify($4, value) FROM jsonb_array_elements_text($5::jsonb)"
    )),
    claim: concat!(
        "UPDATE wf_nodes n SET status = 'running', attempt = n.attempt + 1, \
         lease_owner = $2, lease_token = n.lease_token + 1, lease_expires_at = $3, \
         started_at = $4, ready_at = NULL \
         FROM jsonb_to_recordset($1::jsonb) AS c(r uuid, i int) \
         WHERE n.run_id = c.r AND n.idx = c.i AND n.status = 'ready' AND n.run_id",
        row_runs!(),
        " RETURNING n.run_id, n.idx, n.tenant_id, n.node_id, n.task, n.attempt, n.lease_token"
    ),
};

/// Sends each payload of a JSON array (`$2`) on channel `$1`, in one statement.
pub(super) const NOTIFY_ALL: &str =
    "SELECT pg_notify($1, value) FROM jsonb_array_elements_text($2::jsonb)";

/// A run id as these statements take it.
pub(super) fn hex(id: Uuid) -> String {
    id.simple().to_string()
}

/// `ids` as the JSON array the statements take as `$1`.
pub(super) fn id_list(ids: impl IntoIterator<Item = Uuid>) -> String {
    Value::from(ids.into_iter().map(hex).collect::<Vec<_>>()).to_string()
}

/// A run as [`Bulk::lock_runs`] reads it.
#[derive(sqlx::FromRow)]
pub(super) struct LockedRun {
    #[sqlx(flatten)]
    pub(super) row: RunRow,
    pub(super) definition: Option<String>,
    nodes: Option<String>,
    /// Has unfinished child runs (not stopping yet).
    pub(super) children: bool,
}

impl LockedRun {
    /// The run's nodes, in index order.
    pub(super) fn nodes(&self) -> Result<Vec<NodeRow>, OrchestrateError> {
        let Some(text) = &self.nodes else {
            return Ok(Vec::new()); // no nodes: SQLite's aggregate gives `[]`, PostgreSQL's NULL
        };
        let mut nodes: Vec<NodeRow> =
            serde_json::from_str(text).map_err(|e| corrupt("node list", e))?;
        nodes.sort_by_key(|n| n.idx);
        Ok(nodes)
    }
}

/// A run as [`Bulk::claimed_runs`] reads it.
#[derive(sqlx::FromRow)]
pub(super) struct ClaimedRunRow {
    pub(super) id: Uuid,
    pub(super) input: String,
    pub(super) revision: i64,
    pub(super) definition: Option<String>,
    outputs: Option<String>,
}

impl ClaimedRunRow {
    /// The outputs of the run's succeeded nodes by index, if they were asked for.
    pub(super) fn outputs(&self) -> Result<Option<BTreeMap<i32, Value>>, OrchestrateError> {
        let Some(text) = &self.outputs else {
            return Ok(None);
        };
        let pairs: Vec<(i32, String)> =
            serde_json::from_str(text).map_err(|e| corrupt("node outputs", e))?;
        pairs
            .into_iter()
            .map(|(idx, output)| {
                let value = serde_json::from_str(&output).map_err(|e| corrupt("node output", e))?;
                Ok((idx, value))
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }
}

/// A node error as stored.
pub(super) fn error_json(e: &NodeError) -> String {
    json!({"kind": e.kind, "message": e.message, "retryable": e.retryable}).to_string()
}

/// The row [`Bulk::writes`] writes for node `i` of run `run` going from `old` to
/// `new` at `now`.
pub(super) fn node_write(
    run: Uuid,
    i: usize,
    old: &NodeState,
    new: &NodeState,
    dag: &ValidDag,
    now: DateTime<Utc>,
) -> Value {
    let finished =
        (!old.status.is_finished() && new.status.is_finished()).then_some(to_micros(now));
    let left_running = old.status == NodeStatus::Running && new.status != NodeStatus::Running;
    json!({
        "r": hex(run),
        "i": i,
        "s": new.status.as_str(),
        "a": new.attempt,
        "ra": new.ready_at.map(to_micros),
        "fr": new.first_ready_at.map(to_micros),
        "o": new.output.as_ref().map(Value::to_string),
        "e": new.error.as_ref().map(error_json),
        "cr": i32::from(new.cancel_requested),
        "fin": i32::from(new.status.is_finished()),
        "f": finished,
        "l": i32::from(left_running),
        "w": wait_until(dag, i, new),
    })
}

/// The row [`Bulk::writes`] writes for run `run` going from `old` to `new` (now at
/// `revision`) at `now`.
pub(super) fn run_write(
    run: Uuid,
    old: &RunState,
    new: &RunState,
    revision: i64,
    now: DateTime<Utc>,
) -> Value {
    let finished =
        (!old.status.is_finished() && new.status.is_finished()).then_some(to_micros(now));
    json!({
        "r": hex(run),
        "s": new.status.as_str(),
        "st": new.stopping.filter(|_| !new.status.is_finished()).map(RunStatus::as_str),
        "e": new.error,
        "fin": i32::from(new.status.is_finished()),
        "f": finished,
        "v": revision,
    })
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
