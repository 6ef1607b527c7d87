//! The [`WorkflowStore`] conformance suite: every backend (SQLite in memory, SQLite file,
//! PostgreSQL) must pass each case unchanged; `tests/conformance.rs` runs the matrix.

use crate::support::Env;
use crate::{assert_kind, member};
use ate_core::audit::{AuditQuery, actions};
use ate_core::{ErrorKind, NewTenant, RunId, TenantId};
use ate_orchestrate::workflow::{
    DagSpec, Limits, NodeSpec, NodeStatus, NodeTask, RunQuery, RunSpec, RunStatus,
    SqlWorkflowStore, ValidRun, WORKFLOWS_READ, WORKFLOWS_RUN, WorkflowStore,
};
use chrono::TimeDelta;
use serde_json::json;
use std::sync::Arc;

async fn store(env: &Env) -> Arc<dyn WorkflowStore> {
    Arc::new(
        SqlWorkflowStore::open(env.db.clone())
            .await
            .unwrap()
            .with_clock(env.clock.clone()),
    )
}

async fn tenant(env: &Env, slug: &str) -> TenantId {
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

fn valid(spec: RunSpec) -> ValidRun {
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
