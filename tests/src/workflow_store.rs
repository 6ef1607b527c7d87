//! The [`WorkflowStore`] conformance suite: every backend (SQLite in memory, SQLite file,
//! PostgreSQL) must pass each case unchanged; `tests/conformance.rs` runs the matrix.

use crate::support::Env;
pub use crate::workflow_batches::{
    batched_completions_are_independent, batches_see_what_they_waited_for,
    claims_rotate_across_tenants, results_and_claims_go_together,
};
use crate::{assert_kind, member};
use ate_core::audit::{AuditQuery, actions};
use ate_core::{ErrorKind, NewTenant, RunId, TenantId};
use ate_orchestrate::workflow::{
    Claim, DagSpec, Lease, Limits, MAX_SUBMIT_BATCH, NodeError, NodeSpec, NodeStatus, NodeTask,
    RetrySpec, RunEvent, RunQuery, RunSpec, RunStatus, RunWatch, SCHEDULE_LABEL, ScheduleSpec,
    SqlWorkflowStore, ValidRun, WORKFLOWS_READ, WORKFLOWS_RUN, WorkflowStore,
};
use chrono::TimeDelta;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub(crate) async fn store(env: &Env) -> Arc<dyn WorkflowStore> {
    Arc::new(
        SqlWorkflowStore::open(env.db.clone())
            .await
            .unwrap()
            .with_clock(env.clock.clone()),
    )
}

pub(crate) async fn tenant(env: &Env, slug: &str) -> TenantId {
    env.tenants
        .create(&env.admin, NewTenant::new(slug, slug))
        .await
        .unwrap()
        .id
}

/// clone → scan → approve (signal) → report.
fn chain() -> DagSpec {
    DagSpec::new()
        .node(NodeSpec::step("clone", "git.clone"))
        .node(NodeSpec::step("scan", "scan").depends_on("clone"))
        .node(NodeSpec::signal("approve", "approval").depends_on("scan"))
        .node(NodeSpec::step("report", "report").depends_on("approve"))
}

pub(crate) fn valid(spec: RunSpec) -> ValidRun {
    spec.validate(&Limits::default(), &|_| true).unwrap()
}

async fn audited(env: &Env, tenant: TenantId, action: &str) -> usize {
    env.audit
        .query(&env.admin, AuditQuery::tenant(tenant).limit(1000))
        .await
        .unwrap()
        .items
        .iter()
        .filter(|e| e.action.as_str() == action)
        .count()
}

/// A submitted run reads back as submitted, with its nodes, and is audited.
pub async fn submit_and_get(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let spec = RunSpec::new(chain(), json!({"repo": "r"}))
        .priority(7)
        .label("team", "search")
        .timeout(std::time::Duration::from_secs(600));
    let submitted = s.submit(&env.admin, t, &valid(spec)).await.unwrap();
    assert!(submitted.created);
    let run = submitted.run;
    assert_eq!(
        (run.tenant, run.status, run.stopping),
        (t, RunStatus::Running, None)
    );
    assert_eq!(run.input, json!({"repo": "r"}));
    assert_eq!(run.priority, 7);
    assert_eq!(run.labels.get("team").map(String::as_str), Some("search"));
    assert_eq!(run.timeout, Some(std::time::Duration::from_secs(600)));
    assert_eq!(run.created_by, env.admin.subject());
    assert_eq!(
        (run.created_at, run.start_at),
        (env.clock_now(), env.clock_now())
    );
    let ids: Vec<&str> = run.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["clone", "scan", "approve", "report"]);
    let statuses: Vec<NodeStatus> = run.nodes.iter().map(|n| n.status).collect();
    assert_eq!(
        statuses,
        [
            NodeStatus::Ready,
            NodeStatus::Blocked,
            NodeStatus::Blocked,
            NodeStatus::Blocked
        ]
    );
    assert_eq!(run.nodes[0].ready_at, Some(env.clock_now()));
    assert!(matches!(&run.nodes[2].task, NodeTask::Signal(s) if s.as_str() == "approval"));
    assert!(matches!(&run.nodes[0].task, NodeTask::Step(s) if s.as_str() == "git.clone"));
    assert_eq!(s.get(&env.admin, t, run.id).await.unwrap(), run);
    // The graph's edges, as defined: also from a store that never parsed this run.
    let edges = |r: &ate_orchestrate::workflow::Run| -> Vec<Vec<String>> {
        r.nodes
            .iter()
            .map(|n| n.depends_on.iter().map(|d| d.as_str().to_owned()).collect())
            .collect()
    };
    let fresh = store(&env).await.get(&env.admin, t, run.id).await.unwrap();
    assert_eq!(
        edges(&fresh),
        [vec![], vec!["clone"], vec!["scan"], vec!["approve"]]
    );
    assert_eq!(fresh, run);
    assert_eq!(
        audited(&env, t, actions::WORKFLOW_SUBMITTED.as_str()).await,
        1
    );
    // A delayed run waits, every node blocked.
    let later = env.clock_now() + TimeDelta::hours(1);
    let delayed = s
        .submit(
            &env.admin,
            t,
            &valid(RunSpec::new(chain(), json!(null)).start_at(later)),
        )
        .await
        .unwrap()
        .run;
    assert_eq!(
        (delayed.status, delayed.start_at),
        (RunStatus::Pending, later)
    );
    assert!(
        delayed
            .nodes
            .iter()
            .all(|n| n.status == NodeStatus::Blocked)
    );
}

/// The same idempotency key returns the same run, even from parallel submissions; another
/// tenant's key is its own.
pub async fn submissions_are_idempotent(env: Env) {
    let s = store(&env).await;
    let (a, b) = (tenant(&env, "acme").await, tenant(&env, "globex").await);
    let spec = || valid(RunSpec::new(chain(), json!({"n": 1})).idempotency_key("import-42"));
    let attempts = (0..8).map(|_| {
        let (s, admin, spec) = (s.clone(), env.admin.clone(), spec());
        async move { s.submit(&admin, a, &spec).await }
    });
    let results: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(results.iter().filter(|r| r.created).count(), 1);
    let id = results[0].run.id;
    assert!(results.iter().all(|r| r.run.id == id));
    // A later submission with the key and a different body still returns the first run.
    let other = valid(
        RunSpec::new(DagSpec::new().node(NodeSpec::step("x", "s")), json!(2))
            .idempotency_key("import-42"),
    );
    let again = s.submit(&env.admin, a, &other).await.unwrap();
    assert!(!again.created);
    assert_eq!(
        (again.run.id, again.run.input.clone()),
        (id, json!({"n": 1}))
    );
    assert_eq!(
        audited(&env, a, actions::WORKFLOW_SUBMITTED.as_str()).await,
        1
    );
    let page = s.list(&env.admin, a, &RunQuery::new()).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let elsewhere = s.submit(&env.admin, b, &spec()).await.unwrap();
    assert!(elsewhere.created);
    assert_ne!(elsewhere.run.id, id);
}

/// Newest first, filtered by status, label and time, paginated.
pub async fn list_filters_and_paginates(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let team = if i % 2 == 0 { "search" } else { "ads" };
        let run = s
            .submit(
                &env.admin,
                t,
                &valid(RunSpec::new(chain(), json!(i)).label("team", team)),
            )
            .await
            .unwrap()
            .run;
        ids.push(run.id);
        env.clock.advance(TimeDelta::seconds(10));
    }
    s.cancel(&env.admin, t, ids[1]).await.unwrap();
    let mut seen = Vec::new();
    let mut query = RunQuery::new().limit(2);
    loop {
        let page = s.list(&env.admin, t, &query).await.unwrap();
        assert!(
            page.items.iter().all(|r| r.nodes.is_empty()),
            "listings carry no nodes"
        );
        seen.extend(page.items.iter().map(|r| r.id));
        match page.next_cursor {
            Some(c) => query = query.cursor(c),
            None => break,
        }
    }
    let newest_first: Vec<RunId> = ids.iter().rev().copied().collect();
    assert_eq!(seen, newest_first);
    let ids_of = |page: ate_core::Page<ate_orchestrate::workflow::Run>| -> Vec<RunId> {
        page.items.iter().map(|r| r.id).collect()
    };
    let cancelled = s
        .list(&env.admin, t, &RunQuery::new().status(RunStatus::Cancelled))
        .await
        .unwrap();
    assert_eq!(ids_of(cancelled), [ids[1]]);
    let ads = s
        .list(&env.admin, t, &RunQuery::new().label("team", "ads"))
        .await
        .unwrap();
    assert_eq!(ids_of(ads), [ids[3], ids[1]]);
    let none = s
        .list(&env.admin, t, &RunQuery::new().label("team", "nobody"))
        .await
        .unwrap();
    assert!(none.items.is_empty());
    let start = crate::support::epoch();
    let window = RunQuery::new()
        .since(start + TimeDelta::seconds(10))
        .until(start + TimeDelta::seconds(30));
    assert_eq!(
        ids_of(s.list(&env.admin, t, &window).await.unwrap()),
        [ids[2], ids[1]]
    );
    assert_kind(
        s.list(
            &env.admin,
            t,
            &RunQuery::new().cursor(ate_core::Cursor::from_string("garbage")),
        )
        .await,
        ErrorKind::InvalidInput,
    );
    assert_kind(
        s.list(&env.admin, t, &RunQuery::new().limit(0)).await,
        ErrorKind::InvalidInput,
    );
}

/// Cancelling ends a run with nothing running at once, is audited once, and is idempotent.
pub async fn cancel_is_idempotent_and_audited(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let run = s
        .submit(&env.admin, t, &valid(RunSpec::new(chain(), json!(null))))
        .await
        .unwrap()
        .run;
    env.clock.advance(TimeDelta::seconds(5));
    let cancelled = s.cancel(&env.admin, t, run.id).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(cancelled.finished_at, Some(env.clock_now()));
    assert!(
        cancelled
            .nodes
            .iter()
            .all(|n| n.status == NodeStatus::Cancelled)
    );
    assert!(
        cancelled
            .nodes
            .iter()
            .all(|n| n.finished_at == Some(env.clock_now()))
    );
    assert_eq!(cancelled.revision, run.revision + 1);
    assert_eq!(
        audited(&env, t, actions::WORKFLOW_CANCELLED.as_str()).await,
        1
    );
    env.clock.advance(TimeDelta::seconds(5));
    let again = s.cancel(&env.admin, t, run.id).await.unwrap();
    assert_eq!(again, cancelled, "a second cancel changes nothing");
    assert_eq!(
        audited(&env, t, actions::WORKFLOW_CANCELLED.as_str()).await,
        1
    );
    assert_kind(
        s.cancel(&env.admin, t, RunId::new()).await,
        ErrorKind::NotFound,
    );
}

/// Permissions, tenancy and tenant state are enforced; a run of another tenant is
/// `NotFound`, as if it did not exist.
pub async fn tenancy_is_enforced(env: Env) {
    let s = store(&env).await;
    let (a, b) = (tenant(&env, "acme").await, tenant(&env, "globex").await);
    let spec = valid(RunSpec::new(chain(), json!(null)));
    let reader = member(a, &[WORKFLOWS_READ]);
    let runner = member(a, &[WORKFLOWS_READ, WORKFLOWS_RUN]);
    assert_kind(
        s.submit(&reader, a, &spec).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        s.submit(&runner, b, &spec).await,
        ErrorKind::PermissionDenied,
    );
    let mine = s.submit(&runner, a, &spec).await.unwrap().run;
    assert_eq!(mine.created_by, "user:member");
    assert_eq!(s.get(&reader, a, mine.id).await.unwrap().id, mine.id);
    assert_kind(
        s.cancel(&reader, a, mine.id).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        s.get(&member(a, &[]), a, mine.id).await,
        ErrorKind::PermissionDenied,
    );
    let theirs = s.submit(&env.admin, b, &spec).await.unwrap().run;
    assert_kind(s.get(&runner, a, theirs.id).await, ErrorKind::NotFound);
    assert_kind(s.cancel(&runner, a, theirs.id).await, ErrorKind::NotFound);
    assert_kind(
        s.get(&runner, b, theirs.id).await,
        ErrorKind::PermissionDenied,
    );
    let listed = s.list(&runner, a, &RunQuery::new()).await.unwrap();
    assert_eq!(listed.items.len(), 1, "only the tenant's own runs");
    assert_eq!(
        s.get(&env.admin, b, theirs.id).await.unwrap().status,
        RunStatus::Running
    );
    // A suspended or unknown tenant takes no runs, and nothing is stored.
    env.tenants.suspend(&env.admin, b, "billing").await.unwrap();
    assert_kind(
        s.submit(&env.admin, b, &spec).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        s.submit(&env.admin, TenantId::new(), &spec).await,
        ErrorKind::NotFound,
    );
    env.tenants.reactivate(&env.admin, b).await.unwrap();
    assert_eq!(
        s.list(&env.admin, b, &RunQuery::new())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

fn lease_of(claim: &Claim) -> Lease {
    claim.lease
}

const LEASE: Duration = Duration::from_secs(30);

/// a → (b, c) → d
fn diamond() -> DagSpec {
    DagSpec::new()
        .node(NodeSpec::step("a", "s"))
        .node(NodeSpec::step("b", "s").depends_on("a"))
        .node(NodeSpec::step("c", "s").depends_on("a"))
        .node(NodeSpec::step("d", "s").depends_on("b").depends_on("c"))
}

/// Claims hand out due nodes with their inputs; completions release dependents (fan-out,
/// fan-in) and end the run.
pub async fn claims_and_completions_drive_a_run(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let run = s
        .submit(
            &env.admin,
            t,
            &valid(RunSpec::new(diamond(), json!({"repo": "r"}))),
        )
        .await
        .unwrap()
        .run;
    let first = s.claim("w1", 10, LEASE).await.unwrap();
    assert_eq!(first.len(), 1);
    let a = &first[0];
    assert_eq!(
        (a.lease.run, a.tenant, a.node_id.as_str(), a.step.as_str()),
        (run.id, t, "a", "s")
    );
    assert_eq!(a.attempt, 1);
    assert_eq!(a.input, json!({"input": {"repo": "r"}, "deps": {}}));
    assert_eq!(a.lease_expires_at, env.clock_now() + TimeDelta::seconds(30));
    assert!(
        s.claim("w2", 10, LEASE).await.unwrap().is_empty(),
        "nothing else is due"
    );
    assert_eq!(
        s.complete(&a.lease, json!({"files": 3})).await.unwrap(),
        RunStatus::Running
    );
    let mut middle = s.claim("w1", 10, LEASE).await.unwrap();
    middle.sort_by(|x, y| x.node_id.cmp(&y.node_id));
    let ids: Vec<&str> = middle.iter().map(|c| c.node_id.as_str()).collect();
    assert_eq!(ids, ["b", "c"]);
    assert_eq!(middle[0].input["deps"], json!({"a": {"files": 3}}));
    s.complete(&middle[0].lease, json!("b-out")).await.unwrap();
    assert!(
        s.claim("w1", 10, LEASE).await.unwrap().is_empty(),
        "d waits for c"
    );
    s.complete(&middle[1].lease, json!("c-out")).await.unwrap();
    let d = s.claim("w1", 10, LEASE).await.unwrap().remove(0);
    assert_eq!(d.input["deps"], json!({"b": "b-out", "c": "c-out"}));
    env.clock.advance(TimeDelta::seconds(3));
    assert_eq!(
        s.complete(&d.lease, json!(null)).await.unwrap(),
        RunStatus::Succeeded
    );
    let done = s.get(&env.admin, t, run.id).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(done.finished_at, Some(env.clock_now()));
    assert!(
        done.nodes
            .iter()
            .all(|n| n.status == NodeStatus::Succeeded && n.attempt == 1)
    );
    assert_eq!(done.nodes[1].output, Some(json!("b-out")));
    assert!(s.claim("w1", 10, LEASE).await.unwrap().is_empty());
}

/// A lease that expires is taken back by maintenance and the node runs again; the old
/// holder's token is stale from then on, and a completion is recorded exactly once.
pub async fn leases_expire_and_tokens_fence(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let dag =
        DagSpec::new().node(NodeSpec::step("only", "s").retry(RetrySpec::default().jitter(0.0)));
    s.submit(&env.admin, t, &valid(RunSpec::new(dag, json!(null))))
        .await
        .unwrap();
    let first = s
        .claim("w1", 1, Duration::from_secs(10))
        .await
        .unwrap()
        .remove(0);
    assert!(
        !s.heartbeat(&first.lease, Duration::from_secs(10))
            .await
            .unwrap()
    );
    env.clock.advance(TimeDelta::seconds(9));
    assert_eq!(
        s.maintain().await.unwrap().expired_leases,
        0,
        "the heartbeat extended it"
    );
    env.clock.advance(TimeDelta::seconds(2));
    assert_eq!(s.maintain().await.unwrap().expired_leases, 1);
    assert!(
        s.claim("w2", 1, LEASE).await.unwrap().is_empty(),
        "retried after its wait"
    );
    env.clock.advance(TimeDelta::seconds(1));
    let second = s.claim("w2", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(second.attempt, 2);
    assert!(second.lease.token > first.lease.token);
    assert_kind(
        s.complete(&first.lease, json!("stale")).await,
        ErrorKind::Conflict,
    );
    assert_kind(s.heartbeat(&first.lease, LEASE).await, ErrorKind::Conflict);
    assert_kind(
        s.fail(&first.lease, NodeError::permanent("x", "stale"))
            .await,
        ErrorKind::Conflict,
    );
    assert_eq!(
        s.complete(&second.lease, json!("ok")).await.unwrap(),
        RunStatus::Succeeded
    );
    assert_kind(
        s.complete(&second.lease, json!("twice")).await,
        ErrorKind::Conflict,
    );
    let run = s.get(&env.admin, t, second.lease.run).await.unwrap();
    assert_eq!(run.nodes[0].output, Some(json!("ok")));
    assert_eq!(run.nodes[0].attempt, 2);
}

/// Failed attempts are retried after the policy's wait, then fail the run, which is audited
/// once; a permanent error is not retried.
pub async fn failures_retry_then_fail_the_run(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let policy = RetrySpec::default().jitter(0.0).max_attempts(2);
    let dag = DagSpec::new()
        .node(NodeSpec::step("flaky", "s").retry(policy))
        .node(NodeSpec::step("after", "s").depends_on("flaky"));
    let run = s
        .submit(
            &env.admin,
            t,
            &valid(RunSpec::new(dag.clone(), json!(null))),
        )
        .await
        .unwrap()
        .run;
    let c = s.claim("w", 1, LEASE).await.unwrap().remove(0);
    let busy = NodeError::retryable("unavailable", "busy");
    assert_eq!(
        s.fail(&c.lease, busy.clone()).await.unwrap(),
        RunStatus::Running
    );
    let view = s.get(&env.admin, t, run.id).await.unwrap();
    assert_eq!(view.nodes[0].status, NodeStatus::Ready);
    assert_eq!(
        view.nodes[0].ready_at,
        Some(env.clock_now() + TimeDelta::seconds(1))
    );
    assert_eq!(
        view.nodes[0].error.as_ref().map(|e| e.message.as_str()),
        Some("busy")
    );
    assert!(s.claim("w", 1, LEASE).await.unwrap().is_empty());
    env.clock.advance(TimeDelta::seconds(1));
    let c = s.claim("w", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(s.fail(&c.lease, busy).await.unwrap(), RunStatus::Failed);
    let view = s.get(&env.admin, t, run.id).await.unwrap();
    assert_eq!(view.error.as_deref(), Some("node flaky failed: busy"));
    assert_eq!(view.nodes[1].status, NodeStatus::Cancelled);
    assert_eq!(audited(&env, t, actions::WORKFLOW_FAILED.as_str()).await, 1);
    // A permanent error fails at once.
    s.submit(&env.admin, t, &valid(RunSpec::new(dag, json!(null))))
        .await
        .unwrap();
    let c = s.claim("w", 1, LEASE).await.unwrap().remove(0);
    let broken = NodeError::permanent("invalid_input", "bad repo");
    assert_eq!(s.fail(&c.lease, broken).await.unwrap(), RunStatus::Failed);
    assert_eq!(audited(&env, t, actions::WORKFLOW_FAILED.as_str()).await, 2);
}

/// Cancelling a run with running attempts: nothing more is claimed, heartbeats say stop, and
/// the run ends `cancelled` once both attempts have reported.
pub async fn cancel_reaches_running_attempts(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let dag = DagSpec::new()
        .node(NodeSpec::step("x", "s"))
        .node(NodeSpec::step("y", "s"))
        .node(NodeSpec::step("z", "s").depends_on("x"));
    let run = s
        .submit(&env.admin, t, &valid(RunSpec::new(dag, json!(null))))
        .await
        .unwrap()
        .run;
    let claims = s.claim("w", 10, LEASE).await.unwrap();
    assert_eq!(claims.len(), 2);
    let stopping = s.cancel(&env.admin, t, run.id).await.unwrap();
    assert_eq!(
        (stopping.status, stopping.stopping),
        (RunStatus::Running, Some(RunStatus::Cancelled))
    );
    for c in &claims {
        assert!(s.heartbeat(&c.lease, LEASE).await.unwrap(), "asked to stop");
    }
    assert!(s.claim("w", 10, LEASE).await.unwrap().is_empty());
    assert_eq!(
        s.complete(&lease_of(&claims[0]), json!(1)).await.unwrap(),
        RunStatus::Running
    );
    let last = s
        .fail(
            &lease_of(&claims[1]),
            NodeError::permanent("cancelled", "stopped"),
        )
        .await;
    assert_eq!(last.unwrap(), RunStatus::Cancelled);
    let done = s.get(&env.admin, t, run.id).await.unwrap();
    assert_eq!((done.status, done.stopping), (RunStatus::Cancelled, None));
    assert!(done.nodes.iter().all(|n| n.status == NodeStatus::Cancelled));
    assert_eq!(audited(&env, t, actions::WORKFLOW_FAILED.as_str()).await, 0);
}

/// Maintenance starts delayed runs when their time comes and fails runs past their timeout.
pub async fn maintenance_starts_and_times_out_runs(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let one = || DagSpec::new().node(NodeSpec::step("n", "s"));
    let later = env.clock_now() + TimeDelta::seconds(60);
    let delayed = s
        .submit(
            &env.admin,
            t,
            &valid(RunSpec::new(one(), json!(null)).start_at(later)),
        )
        .await
        .unwrap()
        .run;
    assert_eq!(s.maintain().await.unwrap().started, 0);
    assert!(s.claim("w", 10, LEASE).await.unwrap().is_empty());
    env.clock.advance(TimeDelta::seconds(60));
    assert_eq!(s.maintain().await.unwrap().started, 1);
    let c = s.claim("w", 10, LEASE).await.unwrap().remove(0);
    assert_eq!(c.lease.run, delayed.id);
    s.complete(&c.lease, json!(null)).await.unwrap();
    let bounded = valid(RunSpec::new(one(), json!(null)).timeout(Duration::from_secs(30)));
    let run = s.submit(&env.admin, t, &bounded).await.unwrap().run;
    let c = s.claim("w", 10, LEASE).await.unwrap().remove(0);
    env.clock.advance(TimeDelta::seconds(29));
    assert_eq!(s.maintain().await.unwrap().timed_out, 0);
    env.clock.advance(TimeDelta::seconds(1));
    assert_eq!(s.maintain().await.unwrap().timed_out, 1);
    assert_eq!(s.maintain().await.unwrap().timed_out, 0, "once");
    assert!(s.heartbeat(&c.lease, LEASE).await.unwrap());
    assert_eq!(
        s.complete(&c.lease, json!(null)).await.unwrap(),
        RunStatus::Failed
    );
    let view = s.get(&env.admin, t, run.id).await.unwrap();
    assert_eq!(view.error.as_deref(), Some("the run timed out"));
    assert_eq!(audited(&env, t, actions::WORKFLOW_FAILED.as_str()).await, 1);
}

/// Many claimers at once never get the same node, and every completion is recorded once.
pub async fn concurrent_claims_never_share_a_node(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let runs = 30;
    for i in 0..runs {
        let dag = DagSpec::new().node(NodeSpec::step("n", "s"));
        s.submit(&env.admin, t, &valid(RunSpec::new(dag, json!(i))))
            .await
            .unwrap();
    }
    let workers = (0..4).map(|w| {
        let s = s.clone();
        async move {
            let mut mine = Vec::new();
            loop {
                let batch = s.claim(&format!("w{w}"), 3, LEASE).await.unwrap();
                if batch.is_empty() {
                    break;
                }
                for c in batch {
                    s.complete(&c.lease, json!(w)).await.unwrap();
                    mine.push(c.lease.run);
                }
            }
            mine
        }
    });
    let claimed: Vec<RunId> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(claimed.len(), runs);
    let distinct: std::collections::BTreeSet<RunId> = claimed.iter().copied().collect();
    assert_eq!(distinct.len(), runs, "no node was handed out twice");
    let done = s
        .list(&env.admin, t, &RunQuery::new().status(RunStatus::Succeeded))
        .await
        .unwrap();
    assert_eq!(done.items.len(), runs);
}

/// Signals complete the nodes waiting for them (their payload is the node's output), are
/// audited, and are refused when nothing waits for them.
pub async fn signals_complete_waiting_nodes(env: Env) {
    let s = store(&env).await;
    let (t, other) = (tenant(&env, "acme").await, tenant(&env, "globex").await);
    let run = s
        .submit(&env.admin, t, &valid(RunSpec::new(chain(), json!(null))))
        .await
        .unwrap()
        .run;
    assert_kind(
        s.signal(&env.admin, t, run.id, "approval", json!({"by": "ana"}))
            .await,
        ErrorKind::Conflict,
    );
    let e = s
        .signal(&env.admin, t, run.id, "other", json!(null))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("no node of this workflow waits for signal other"),
        "{e}"
    );
    assert_kind(
        s.signal(&env.admin, t, run.id, "no spaces", json!(null))
            .await,
        ErrorKind::InvalidInput,
    );
    for _ in 0..2 {
        let c = s.claim("w", 1, LEASE).await.unwrap().remove(0);
        s.complete(&c.lease, json!("ok")).await.unwrap();
    }
    assert_eq!(
        s.get(&env.admin, t, run.id).await.unwrap().nodes[2].status,
        NodeStatus::Waiting
    );
    let reader = member(t, &[WORKFLOWS_READ]);
    assert_kind(
        s.signal(&reader, t, run.id, "approval", json!(1)).await,
        ErrorKind::PermissionDenied,
    );
    let outsider = member(other, &[WORKFLOWS_RUN]);
    assert_kind(
        s.signal(&outsider, other, run.id, "approval", json!(1))
            .await,
        ErrorKind::NotFound,
    );
    let big = json!("x".repeat(2 << 20));
    assert_kind(
        s.signal(&env.admin, t, run.id, "approval", big).await,
        ErrorKind::InvalidInput,
    );
    let after = s
        .signal(&env.admin, t, run.id, "approval", json!({"by": "ana"}))
        .await
        .unwrap();
    assert_eq!(after.nodes[2].status, NodeStatus::Succeeded);
    assert_eq!(after.nodes[2].output, Some(json!({"by": "ana"})));
    assert_eq!(after.nodes[3].status, NodeStatus::Ready);
    assert_eq!(
        audited(&env, t, actions::WORKFLOW_SIGNALLED.as_str()).await,
        1
    );
    assert_kind(
        s.signal(&env.admin, t, run.id, "approval", json!(2)).await,
        ErrorKind::Conflict,
    );
    let report = s.claim("w", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(report.input["deps"], json!({"approve": {"by": "ana"}}));
    assert_eq!(
        s.complete(&report.lease, json!(null)).await.unwrap(),
        RunStatus::Succeeded
    );
}

/// A signal that does not come in time fails its node, and with it the run.
pub async fn signal_timeouts_fail_runs(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let dag = DagSpec::new()
        .node(NodeSpec::signal("approve", "approval").timeout_ms(60_000))
        .node(NodeSpec::step("deploy", "s").depends_on("approve"))
        .node(NodeSpec::signal("forever", "never"));
    let run = s
        .submit(&env.admin, t, &valid(RunSpec::new(dag, json!(null))))
        .await
        .unwrap()
        .run;
    assert_eq!(
        run.nodes[0].status,
        NodeStatus::Waiting,
        "a root signal node waits at once"
    );
    env.clock.advance(TimeDelta::seconds(59));
    assert_eq!(s.maintain().await.unwrap().signals_timed_out, 0);
    env.clock.advance(TimeDelta::seconds(1));
    assert_eq!(s.maintain().await.unwrap().signals_timed_out, 1);
    assert_eq!(s.maintain().await.unwrap().signals_timed_out, 0, "once");
    let done = s.get(&env.admin, t, run.id).await.unwrap();
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(done.nodes[0].status, NodeStatus::Failed);
    assert_eq!(
        done.nodes[0].error.as_ref().map(|e| e.kind.as_str()),
        Some("timeout")
    );
    assert_eq!(
        done.nodes[2].status,
        NodeStatus::Cancelled,
        "a signal without a timeout waits with its run"
    );
    assert_eq!(audited(&env, t, actions::WORKFLOW_FAILED.as_str()).await, 1);
}

/// Log entries come back oldest first, filtered by node and level, paginated, and only to
/// readers of the run's tenant.
pub async fn logs_are_filtered_and_paged(env: Env) {
    use ate_orchestrate::workflow::{LogEntry, LogLevel, LogQuery, MAX_LOG_BATCH};
    let s = store(&env).await;
    let (t, other) = (tenant(&env, "acme").await, tenant(&env, "globex").await);
    let run = s
        .submit(&env.admin, t, &valid(RunSpec::new(diamond(), json!(null))))
        .await
        .unwrap()
        .run;
    let c = s.claim("w", 1, LEASE).await.unwrap().remove(0);
    let node = |id: &str| ate_orchestrate::workflow::NodeId::new(id).unwrap();
    let entries: Vec<LogEntry> = (0..5)
        .map(|i| {
            let level = if i % 2 == 0 {
                LogLevel::Info
            } else {
                LogLevel::Error
            };
            let at = env.clock_now() + TimeDelta::seconds(i);
            let who = if i < 3 { "a" } else { "b" };
            LogEntry::new(
                at,
                level,
                node(who),
                1,
                &format!("line {i}"),
                json!({"i": i}),
            )
        })
        .collect();
    s.append_logs(&c.lease, &entries[..3]).await.unwrap();
    s.append_logs(&c.lease, &entries[3..]).await.unwrap();
    s.append_logs(&c.lease, &[]).await.unwrap();
    let mut seen = Vec::new();
    let mut query = LogQuery::new().limit(2);
    loop {
        let page = s.logs(&env.admin, t, run.id, &query).await.unwrap();
        seen.extend(page.items);
        match page.next_cursor {
            Some(cursor) => query = query.cursor(cursor),
            None => break,
        }
    }
    assert_eq!(seen, entries, "every entry, oldest first, as written");
    let b = s
        .logs(&env.admin, t, run.id, &LogQuery::new().node("b"))
        .await
        .unwrap();
    assert_eq!(
        b.items
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>(),
        ["line 3", "line 4"]
    );
    let errors = s
        .logs(
            &env.admin,
            t,
            run.id,
            &LogQuery::new().min_level(LogLevel::Error),
        )
        .await
        .unwrap();
    assert_eq!(errors.items.len(), 2);
    assert!(errors.items.iter().all(|e| e.level == LogLevel::Error));
    let reader = member(t, &[WORKFLOWS_READ]);
    assert_eq!(
        s.logs(&reader, t, run.id, &LogQuery::new())
            .await
            .unwrap()
            .items
            .len(),
        5
    );
    assert_kind(
        s.logs(&member(t, &[]), t, run.id, &LogQuery::new()).await,
        ErrorKind::PermissionDenied,
    );
    let outsider = member(other, &[WORKFLOWS_READ]);
    assert_kind(
        s.logs(&outsider, other, run.id, &LogQuery::new()).await,
        ErrorKind::NotFound,
    );
    let flood = vec![entries[0].clone(); MAX_LOG_BATCH + 1];
    assert_kind(
        s.append_logs(&c.lease, &flood).await,
        ErrorKind::InvalidInput,
    );
    assert_eq!(
        s.logs(&env.admin, t, run.id, &LogQuery::new())
            .await
            .unwrap()
            .items
            .len(),
        5,
        "nothing half-written"
    );
}

/// A tenant with 10,000 ready runs does not starve another tenant's single run, and a
/// per-tenant limit on running nodes holds across claims.
pub async fn claims_are_fair_across_tenants(env: Env) {
    const BULK_RUNS: usize = 10_000;
    let (big, small) = (tenant(&env, "bulk").await, tenant(&env, "solo").await);
    let s: Arc<dyn WorkflowStore> = Arc::new(
        SqlWorkflowStore::open(env.db.clone())
            .await
            .unwrap()
            .with_clock(env.clock.clone())
            .with_max_running_per_tenant(3),
    );
    let one = || DagSpec::new().node(NodeSpec::step("n", "s"));
    // 10,000 runs, each of higher priority than the small tenant's run, and earlier: still
    // not starving it. Submitted in batches of the most one call takes.
    let bulk = vec![valid(RunSpec::new(one(), json!("bulk")).priority(100)); MAX_SUBMIT_BATCH];
    for _ in 0..BULK_RUNS / MAX_SUBMIT_BATCH {
        s.submit_many(&env.admin, big, &bulk).await.unwrap();
    }
    env.clock.advance(TimeDelta::seconds(1));
    let lone = s
        .submit(&env.admin, small, &valid(RunSpec::new(one(), json!("me"))))
        .await
        .unwrap()
        .run;
    let first = s.claim("w", 2, LEASE).await.unwrap();
    assert!(
        first.iter().any(|c| c.lease.run == lone.id),
        "the small tenant's run waits: {first:?}"
    );
    assert_eq!(first.iter().filter(|c| c.tenant == big).count(), 1);
    // The big tenant may run 3 at a time, whatever is asked.
    let more = s.claim("w", 50, LEASE).await.unwrap();
    assert_eq!(more.len(), 2, "up to the limit of 3 running");
    assert!(s.claim("w", 50, LEASE).await.unwrap().is_empty());
    s.complete(&more[0].lease, json!(null)).await.unwrap();
    assert_eq!(
        s.claim("w", 50, LEASE).await.unwrap().len(),
        1,
        "a finished node frees a place"
    );
}

/// A batch is stored in one transaction, in order, with idempotency keys honoured between
/// its runs and against earlier runs; an oversized batch stores nothing.
pub async fn batches_submit_all_or_nothing(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let keyed = |key: &str| valid(RunSpec::new(chain(), json!(key)).idempotency_key(key));
    let before = s.submit(&env.admin, t, &keyed("old")).await.unwrap().run;
    let batch = [
        keyed("a"),
        keyed("old"),
        keyed("a"),
        valid(RunSpec::new(chain(), json!(1))),
    ];
    let stored = s.submit_many(&env.admin, t, &batch).await.unwrap();
    let created: Vec<bool> = stored.iter().map(|x| x.created).collect();
    assert_eq!(created, [true, false, false, true]);
    assert_eq!(stored[1].run.id, before.id, "the key of an earlier run");
    assert_eq!(
        stored[2].run.id, stored[0].run.id,
        "a key repeated in the batch"
    );
    assert_eq!(stored[3].run.input, json!(1));
    assert_eq!(stored[0].run.nodes.len(), 4);
    assert_eq!(
        audited(&env, t, actions::WORKFLOW_SUBMITTED.as_str()).await,
        3
    );
    assert!(s.submit_many(&env.admin, t, &[]).await.unwrap().is_empty());
    let too_many = vec![valid(RunSpec::new(chain(), json!(2))); MAX_SUBMIT_BATCH + 1];
    let err = s.submit_many(&env.admin, t, &too_many).await.unwrap_err();
    assert!(err.to_string().contains("1001 runs"), "{err}");
    assert_kind(Err::<(), _>(err), ErrorKind::InvalidInput);
    let reader = member(t, &[WORKFLOWS_READ]);
    assert_kind(
        s.submit_many(&reader, t, &batch).await,
        ErrorKind::PermissionDenied,
    );
    let all = s.list(&env.admin, t, &RunQuery::new()).await.unwrap();
    assert_eq!(all.items.len(), 3, "nothing more was stored");
}

/// A global limit on running nodes holds across tenants and across concurrent claimers (on
/// PostgreSQL: separate connections), stays fair within it, and frees places as nodes end.
pub async fn global_running_limit_holds(env: Env) {
    let (a, b) = (tenant(&env, "alpha").await, tenant(&env, "beta").await);
    let s: Arc<dyn WorkflowStore> = Arc::new(
        SqlWorkflowStore::open(env.db.clone())
            .await
            .unwrap()
            .with_clock(env.clock.clone())
            .with_max_running(4),
    );
    let one = || DagSpec::new().node(NodeSpec::step("n", "s"));
    for t in [a, b] {
        for i in 0..10 {
            s.submit(&env.admin, t, &valid(RunSpec::new(one(), json!(i))))
                .await
                .unwrap();
        }
    }
    let first = s.claim("w", 50, LEASE).await.unwrap();
    assert_eq!(first.len(), 4, "the global limit: {first:?}");
    for t in [a, b] {
        assert_eq!(first.iter().filter(|c| c.tenant == t).count(), 2, "fair");
    }
    assert!(s.claim("w", 50, LEASE).await.unwrap().is_empty());
    for claim in &first[..3] {
        s.complete(&claim.lease, json!(null)).await.unwrap();
    }
    // Three places free; eight claimers race for them.
    let racing = (0..8).map(|i| {
        let s = s.clone();
        async move { s.claim(&format!("w{i}"), 5, LEASE).await.unwrap().len() }
    });
    let won: usize = futures::future::join_all(racing).await.into_iter().sum();
    assert_eq!(won, 3, "concurrent claimers together stay within the limit");
    assert!(s.claim("w", 50, LEASE).await.unwrap().is_empty());
}

/// A failed run starts again from its failure: succeeded nodes keep their outputs, the
/// failed node runs again with fresh attempts, and the run can succeed.
pub async fn failed_runs_retry_from_their_failure(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let dag = DagSpec::new()
        .node(NodeSpec::step("fetch", "s"))
        .node(
            NodeSpec::step("build", "s")
                .depends_on("fetch")
                .retry(RetrySpec::default().max_attempts(1)),
        )
        .node(NodeSpec::step("ship", "s").depends_on("build"));
    let run = s
        .submit(&env.admin, t, &valid(RunSpec::new(dag, json!(null))))
        .await
        .unwrap()
        .run;
    assert_kind(s.retry(&env.admin, t, run.id).await, ErrorKind::Conflict);
    let fetch = s.claim("w", 1, LEASE).await.unwrap().remove(0);
    s.complete(&fetch.lease, json!("sources")).await.unwrap();
    let build = s.claim("w", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(
        s.fail(&build.lease, NodeError::retryable("unavailable", "no disk"))
            .await
            .unwrap(),
        RunStatus::Failed
    );
    let failed = s.get(&env.admin, t, run.id).await.unwrap();
    assert!(failed.finished_at.is_some());
    let reader = member(t, &[WORKFLOWS_READ]);
    assert_kind(
        s.retry(&reader, t, run.id).await,
        ErrorKind::PermissionDenied,
    );
    env.clock.advance(TimeDelta::seconds(5));
    let again = s.retry(&env.admin, t, run.id).await.unwrap();
    assert_eq!(
        (again.status, again.error.clone(), again.finished_at),
        (RunStatus::Running, None, None)
    );
    assert_eq!(again.nodes[0].status, NodeStatus::Succeeded);
    assert_eq!(again.nodes[0].output, Some(json!("sources")));
    assert_eq!(
        (again.nodes[1].status, again.nodes[1].attempt),
        (NodeStatus::Ready, 0)
    );
    assert_eq!(
        (again.nodes[1].finished_at, again.nodes[1].error.clone()),
        (None, None)
    );
    assert_eq!(again.nodes[2].status, NodeStatus::Blocked);
    assert_eq!(
        audited(&env, t, actions::WORKFLOW_RETRIED.as_str()).await,
        1
    );
    let build = s.claim("w", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(build.attempt, 1);
    assert_eq!(build.input["deps"], json!({"fetch": "sources"}));
    s.complete(&build.lease, json!("binary")).await.unwrap();
    let ship = s.claim("w", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(
        s.complete(&ship.lease, json!(null)).await.unwrap(),
        RunStatus::Succeeded
    );
    assert_kind(s.retry(&env.admin, t, run.id).await, ErrorKind::Conflict);
}

/// The next event of `watch`, within a bounded wait.
async fn next_event(watch: &mut RunWatch) -> RunEvent {
    let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("an event within 10 s")
        .expect("the store is still there");
    event.expect("no events were dropped")
}

fn changes(event: &RunEvent) -> Vec<(&str, NodeStatus)> {
    event
        .nodes
        .iter()
        .map(|n| (n.node.as_str(), n.status))
        .collect()
}

/// Watchers get a tenant's (or one run's) committed changes, in order, with revisions and
/// the nodes that changed; other tenants' runs never show; reading needs `workflows:read`
/// and another tenant's run is `NotFound`.
pub async fn watchers_follow_run_changes(env: Env) {
    let s = store(&env).await;
    let (t, other) = (tenant(&env, "acme").await, tenant(&env, "umbrella").await);
    let reader = member(t, &[WORKFLOWS_READ]);
    assert_kind(
        s.watch(&member(t, &[]), t, None).await,
        ErrorKind::PermissionDenied,
    );
    let theirs = s
        .submit(&env.admin, other, &valid(RunSpec::new(chain(), json!(0))))
        .await
        .unwrap()
        .run;
    assert_kind(
        s.watch(&reader, t, Some(theirs.id)).await,
        ErrorKind::NotFound,
    );
    let mut tenant_watch = s.watch(&reader, t, None).await.unwrap();
    s.submit(&env.admin, other, &valid(RunSpec::new(chain(), json!(1))))
        .await
        .unwrap();
    let run = s
        .submit(&env.admin, t, &valid(RunSpec::new(chain(), json!(2))))
        .await
        .unwrap()
        .run;
    let submitted = next_event(&mut tenant_watch).await;
    // Subscribed once the submission has been delivered (on PostgreSQL it comes back
    // through LISTEN, after `submit` returns): the run watcher starts with the claim.
    let mut run_watch = s.watch(&reader, t, Some(run.id)).await.unwrap();
    assert_eq!(
        (submitted.tenant, submitted.run),
        (t, run.id),
        "not the other tenant's"
    );
    assert_eq!(
        (submitted.revision, submitted.status),
        (1, RunStatus::Running)
    );
    assert_eq!(changes(&submitted), [("clone", NodeStatus::Ready)]);
    assert_eq!(submitted.due_at, Some(env.clock_now()));
    // Another run of the tenant: the tenant watcher sees it, the run watcher does not.
    let second = s
        .submit(&env.admin, t, &valid(RunSpec::new(chain(), json!(3))))
        .await
        .unwrap()
        .run;
    assert_eq!(next_event(&mut tenant_watch).await.run, second.id);
    let claims = s.claim("w", 1, LEASE).await.unwrap();
    assert_eq!(claims[0].lease.run, run.id, "the older run first");
    for watch in [&mut tenant_watch, &mut run_watch] {
        let claimed = next_event(watch).await;
        assert_eq!(claimed.run, run.id);
        assert_eq!(changes(&claimed), [("clone", NodeStatus::Running)]);
        assert_eq!((claimed.revision, claimed.due_at), (1, None));
    }
    s.complete(&claims[0].lease, json!({"ok": true}))
        .await
        .unwrap();
    let completed = next_event(&mut run_watch).await;
    assert_eq!(completed.revision, 2);
    assert_eq!(
        changes(&completed),
        [
            ("clone", NodeStatus::Succeeded),
            ("scan", NodeStatus::Ready)
        ]
    );
    s.cancel(&env.admin, t, run.id).await.unwrap();
    let cancelled = next_event(&mut run_watch).await;
    assert_eq!(
        (cancelled.revision, cancelled.status),
        (3, RunStatus::Cancelled)
    );
    let now = s.get(&env.admin, t, run.id).await.unwrap();
    assert_eq!(
        now.revision, cancelled.revision,
        "events carry the stored revision"
    );
    for revision in [2, 3] {
        let seen = next_event(&mut tenant_watch).await;
        assert_eq!((seen.run, seen.revision), (run.id, revision));
    }
    // Cancelling again changes nothing and publishes nothing: the next event is the other
    // run's cancellation.
    s.cancel(&env.admin, t, run.id).await.unwrap();
    s.cancel(&env.admin, t, second.id).await.unwrap();
    let next = next_event(&mut tenant_watch).await;
    assert_eq!((next.run, next.status), (second.id, RunStatus::Cancelled));
}

/// Sets run `id`'s status behind the store's back (a crash between a run's end and the
/// cancellation of its children).
async fn force_status(env: &Env, id: RunId, status: &'static str) {
    ate_core::with_pool!(env.db, |pool| {
        sqlx::query("UPDATE wf_runs SET status = $2 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(status)
            .execute(pool)
            .await
            .unwrap();
    })
}

/// Child runs: started under a held lease in the parent's tenant, idempotent per key,
/// readable through the parent's lease only, and cancelled when the parent ends (at once,
/// or by maintenance after a crash).
pub async fn child_runs_belong_to_their_parent(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let one = |step: &str| DagSpec::new().node(NodeSpec::step("n", step));
    let parent = s
        .submit(&env.admin, t, &valid(RunSpec::new(one("parent"), json!(1))))
        .await
        .unwrap()
        .run;
    let lease = s.claim("w", 1, LEASE).await.unwrap()[0].lease;
    let child_spec = valid(RunSpec::new(one("child"), json!(2)).idempotency_key("k"));
    let child = s.submit_child(&lease, &child_spec).await.unwrap();
    assert!(child.created);
    let child = child.run;
    assert_eq!((child.tenant, child.parent), (t, Some(parent.id)));
    assert_eq!(child.created_by, format!("workflow:{}", parent.id));
    let again = s.submit_child(&lease, &child_spec).await.unwrap();
    assert_eq!((again.created, again.run.id), (false, child.id));
    assert_eq!(s.get_child(&lease, child.id).await.unwrap().id, child.id);
    assert_kind(s.get_child(&lease, parent.id).await, ErrorKind::NotFound);
    let mut stale = lease;
    stale.token += 1;
    let other = valid(RunSpec::new(one("child"), json!(3)));
    assert_kind(s.submit_child(&stale, &other).await, ErrorKind::Conflict);
    let listed = s.list(&env.admin, t, &RunQuery::new()).await.unwrap();
    assert_eq!(listed.items.len(), 2, "nothing stored for the stale lease");
    // The parent ends: its unfinished child is cancelled at once, audited.
    s.complete(&lease, json!("done")).await.unwrap();
    let child = s.get(&env.admin, t, child.id).await.unwrap();
    assert_eq!(child.status, RunStatus::Cancelled);
    assert_eq!(
        audited(&env, t, actions::WORKFLOW_CANCELLED.as_str()).await,
        1
    );
    // After a crash between a parent's end and its children's cancellation, maintenance
    // cancels them.
    let parent = s
        .submit(&env.admin, t, &valid(RunSpec::new(one("parent"), json!(4))))
        .await
        .unwrap()
        .run;
    let lease = s.claim("w", 1, LEASE).await.unwrap()[0].lease;
    let orphan = s
        .submit_child(&lease, &valid(RunSpec::new(one("child"), json!(5))))
        .await
        .unwrap()
        .run;
    force_status(&env, parent.id, "failed").await;
    let done = s.maintain().await.unwrap();
    assert_eq!(done.children_cancelled, 1);
    let orphan = s.get(&env.admin, t, orphan.id).await.unwrap();
    assert_eq!(orphan.status, RunStatus::Cancelled);
    assert_eq!(s.maintain().await.unwrap().children_cancelled, 0);
}

/// Sets the test clock to `at`.
fn set_clock(env: &Env, at: chrono::DateTime<chrono::Utc>) {
    env.clock.advance(at - env.clock_now());
}

/// Schedules: created with their first tick after now; each tick fires exactly once however
/// many hosts run maintenance at once; missed ticks fire once; paused schedules wait and
/// resume from now; deleting keeps the runs. Bad names, duplicates, permissions and other
/// tenants are refused.
pub async fn schedules_fire_each_tick_once(env: Env) {
    let hosts: Vec<Arc<dyn WorkflowStore>> =
        vec![store(&env).await, store(&env).await, store(&env).await];
    let s = hosts[0].clone();
    let (t, other) = (tenant(&env, "acme").await, tenant(&env, "umbrella").await);
    let spec = ScheduleSpec::new("nightly", "*/5 * * * *", RunSpec::new(chain(), json!(7)))
        .time_zone("Europe/Berlin");
    let valid = spec.validate(&Limits::default(), &|_| true).unwrap();
    let reader = member(t, &[WORKFLOWS_READ]);
    assert_kind(
        s.create_schedule(&reader, t, &valid).await,
        ErrorKind::PermissionDenied,
    );
    let created = s.create_schedule(&env.admin, t, &valid).await.unwrap();
    assert_eq!((created.name.as_str(), created.paused), ("nightly", false));
    assert_eq!(created.time_zone, "Europe/Berlin");
    let first = created.next_fire_at.expect("a first tick");
    assert!(first > env.clock_now() && first <= env.clock_now() + TimeDelta::minutes(5));
    assert_eq!(first.timestamp() % 300, 0, "on a five-minute boundary");
    assert_kind(
        s.create_schedule(&env.admin, t, &valid).await,
        ErrorKind::AlreadyExists,
    );
    assert_kind(
        s.get_schedule(&reader, t, "nope").await,
        ErrorKind::NotFound,
    );
    assert_kind(
        s.get_schedule(&member(other, &[WORKFLOWS_READ]), other, "nightly")
            .await,
        ErrorKind::NotFound,
    );
    // Nothing fires before the tick.
    assert_eq!(s.maintain().await.unwrap().schedules_fired, 0);
    let scheduled = || RunQuery::new().label(SCHEDULE_LABEL, "nightly");
    for tick in 0..6 {
        set_clock(&env, first + TimeDelta::minutes(5 * tick));
        let racing = hosts.iter().map(|h| h.maintain());
        let fired: usize = futures::future::join_all(racing)
            .await
            .into_iter()
            .map(|m| m.unwrap().schedules_fired)
            .sum();
        assert_eq!(fired, 1, "tick {tick} fired once");
        let runs = s.list(&env.admin, t, &scheduled()).await.unwrap().items;
        assert_eq!(
            runs.len(),
            usize::try_from(tick).unwrap() + 1,
            "one run per tick"
        );
    }
    let runs = s.list(&env.admin, t, &scheduled()).await.unwrap().items;
    assert_eq!(runs[0].created_by, "schedule:nightly");
    assert_eq!(runs[0].input, json!(7));
    let now = s.get_schedule(&reader, t, "nightly").await.unwrap();
    assert_eq!(now.last_run, Some(runs[0].id));
    // An hour with no scheduler: one catch-up run, then on from now.
    set_clock(&env, first + TimeDelta::minutes(25 + 60));
    assert_eq!(s.maintain().await.unwrap().schedules_fired, 1);
    assert_eq!(s.maintain().await.unwrap().schedules_fired, 0);
    let next = s
        .get_schedule(&reader, t, "nightly")
        .await
        .unwrap()
        .next_fire_at
        .unwrap();
    assert_eq!(next, first + TimeDelta::minutes(90));
    assert_eq!(
        s.list(&env.admin, t, &scheduled())
            .await
            .unwrap()
            .items
            .len(),
        7
    );
    // Paused: nothing fires; resumed: from now on.
    let paused = s
        .pause_schedule(&env.admin, t, "nightly", true)
        .await
        .unwrap();
    assert!(paused.paused && paused.next_fire_at.is_none());
    set_clock(&env, first + TimeDelta::minutes(200));
    assert_eq!(s.maintain().await.unwrap().schedules_fired, 0);
    let resumed = s
        .pause_schedule(&env.admin, t, "nightly", false)
        .await
        .unwrap();
    assert_eq!(resumed.next_fire_at, Some(first + TimeDelta::minutes(205)));
    assert_kind(
        s.pause_schedule(&env.admin, t, "nope", true).await,
        ErrorKind::NotFound,
    );
    assert_eq!(s.list_schedules(&reader, t).await.unwrap().len(), 1);
    assert!(
        s.list_schedules(&env.admin, other)
            .await
            .unwrap()
            .is_empty()
    );
    s.delete_schedule(&env.admin, t, "nightly").await.unwrap();
    assert_kind(
        s.delete_schedule(&env.admin, t, "nightly").await,
        ErrorKind::NotFound,
    );
    assert_eq!(
        s.list(&env.admin, t, &scheduled())
            .await
            .unwrap()
            .items
            .len(),
        7
    );
    for (action, n) in [
        (actions::SCHEDULE_CREATED, 1),
        (actions::SCHEDULE_UPDATED, 2),
        (actions::SCHEDULE_DELETED, 1),
        (actions::WORKFLOW_SUBMITTED, 7),
    ] {
        assert_eq!(audited(&env, t, action.as_str()).await, n, "{action:?}");
    }
}

/// The workload as the database holds it: runs by status, due nodes and the oldest's age,
/// running nodes, per tenant. The metric gauges follow it (tenants whose work is gone are
/// removed), and an alert rule on the backlog fires and resolves with it.
pub async fn stats_feed_metrics_and_alerts(env: Env) {
    use ate_orchestrate::alerts::{
        AlertEngine, AlertEventState, AlertRule, CollectingSink, Condition, MemoryAlertHistory,
    };
    use ate_orchestrate::metrics::{MetricsRecorder, RecorderConfig, render_openmetrics};
    use ate_orchestrate::workflow::WorkflowMetrics;
    let s = store(&env).await;
    let (t, quiet) = (tenant(&env, "acme").await, tenant(&env, "quiet").await);
    let one = || DagSpec::new().node(NodeSpec::step("n", "s"));
    let runs = vec![valid(RunSpec::new(one(), json!(null))); 3];
    s.submit_many(&env.admin, t, &runs).await.unwrap();
    let empty = s.stats().await.unwrap();
    assert!(!empty.tenants.contains_key(&quiet), "no runs, no entry");
    env.clock.advance(TimeDelta::seconds(90));
    let stats = s.stats().await.unwrap();
    let work = &stats.tenants[&t];
    assert_eq!(work.runs.get(&RunStatus::Running), Some(&3));
    assert_eq!((work.ready_nodes, work.running_nodes), (3, 0));
    assert_eq!(stats.oldest_ready_age(t), Duration::from_secs(90));
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = WorkflowMetrics::new();
    metrics.register(&mut registry);
    metrics.observe(&stats);
    let text = render_openmetrics(&registry).unwrap();
    for line in [
        format!("ate_workflow_runs{{tenant=\"{t}\",status=\"running\"}} 3"),
        format!("ate_workflow_ready_nodes{{tenant=\"{t}\"}} 3"),
        format!("ate_workflow_oldest_ready_seconds{{tenant=\"{t}\"}} 90.0"),
        format!("ate_workflow_running_nodes{{tenant=\"{t}\"}} 0"),
    ] {
        assert!(text.contains(&line), "{line} missing from:\n{text}");
    }
    // An alert on the backlog: fires past 60 s, resolves once the queue drains.
    let recorder = Arc::new(MetricsRecorder::new(RecorderConfig::default()).unwrap());
    let sink = Arc::new(CollectingSink::new());
    let alerts = AlertEngine::new(recorder, sink.clone(), Arc::new(MemoryAlertHistory::new()));
    let rule = Condition::workflow_backlog_above(None, Duration::from_secs(60));
    alerts
        .add_rule(AlertRule::new("backlog", "Workflow backlog", rule))
        .unwrap();
    alerts.set_workflow_stats(&stats);
    alerts.evaluate(env.clock_now()).await;
    let fired = sink.drain();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].state, AlertEventState::Firing);
    assert!(fired[0].summary.contains("90.0 s"), "{}", fired[0].summary);
    let claims = s.claim("w", 10, LEASE).await.unwrap();
    let stats = s.stats().await.unwrap();
    assert_eq!(
        (
            stats.tenants[&t].ready_nodes,
            stats.tenants[&t].running_nodes
        ),
        (0, 3)
    );
    assert_eq!(stats.oldest_ready_age(t), Duration::ZERO);
    alerts.set_workflow_stats(&stats);
    alerts.evaluate(env.clock_now()).await;
    assert_eq!(sink.drain()[0].state, AlertEventState::Resolved);
    for claim in &claims {
        s.complete(&claim.lease, json!(null)).await.unwrap();
    }
    let stats = s.stats().await.unwrap();
    assert_eq!(stats.tenants[&t].runs.get(&RunStatus::Succeeded), Some(&3));
    assert_eq!(stats.tenants[&t].runs.get(&RunStatus::Running), None);
    metrics.observe(&stats);
    let text = render_openmetrics(&registry).unwrap();
    assert!(
        !text.contains("status=\"running\""),
        "stale series removed:\n{text}"
    );
    assert!(text.contains(&format!(
        "ate_workflow_runs{{tenant=\"{t}\",status=\"succeeded\"}} 3"
    )));
}

/// `claim_steps` hands out only nodes of the named steps (engines with different handlers
/// share a database); no steps, nothing.
pub async fn claims_take_only_known_steps(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let dag = DagSpec::new()
        .node(NodeSpec::step("x", "rust.scan"))
        .node(NodeSpec::step("y", "py.report"))
        .node(NodeSpec::step("z", "py.report"));
    s.submit(&env.admin, t, &valid(RunSpec::new(dag, json!(null))))
        .await
        .unwrap();
    let name = |n: &str| ate_orchestrate::workflow::StepName::new(n).unwrap();
    assert!(s.claim_steps("w", &[], 10, LEASE).await.unwrap().is_empty());
    let none = s
        .claim_steps("w", &[name("other")], 10, LEASE)
        .await
        .unwrap();
    assert!(none.is_empty());
    let py = s
        .claim_steps("py", &[name("py.report"), name("other")], 10, LEASE)
        .await
        .unwrap();
    let ids: Vec<&str> = py.iter().map(|c| c.node_id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert!(py.iter().all(|c| c.step.as_str() == "py.report"), "{ids:?}");
    let rust = s
        .claim_steps("rs", &[name("rust.scan")], 10, LEASE)
        .await
        .unwrap();
    assert_eq!(rust.len(), 1);
    assert_eq!(rust[0].node_id.as_str(), "x");
}
