//! More of the [`WorkflowStore`] conformance suite: claims that rotate across tenants,
//! completions recorded in batches, results recorded with claims in one call, and batches
//! that wait for a run's lock. Re-exported by [`crate::workflow_store`], whose matrix runs
//! them.

use crate::support::{Backend, Env};
use crate::workflow_store::{store, tenant, valid};
use ate_core::{ErrorKind, RunId, TenantId};
use ate_orchestrate::workflow::{
    ClaimRequest, DagSpec, NodeError, NodeSpec, NodeStatus, RetrySpec, RunSpec, RunStatus,
    SqlWorkflowStore, StepName, WorkflowStore,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(30);

fn one() -> DagSpec {
    DagSpec::new().node(NodeSpec::step("n", "s"))
}

/// Claims smaller than the number of busy tenants take turns: one node at a time, every
/// tenant is served once before any is served twice, whatever their ids or queue lengths.
pub async fn claims_rotate_across_tenants(env: Env) {
    let s = store(&env).await;
    let mut tenants = Vec::new();
    for (slug, runs) in [("t-one", 20), ("t-two", 5), ("t-three", 5)] {
        let t = tenant(&env, slug).await;
        let batch = vec![valid(RunSpec::new(one(), json!(slug))); runs];
        s.submit_many(&env.admin, t, &batch).await.unwrap();
        tenants.push(t);
    }
    let mut served = Vec::new();
    for _ in 0..9 {
        let claims = s.claim("w", 1, LEASE).await.unwrap();
        assert_eq!(claims.len(), 1);
        served.push(claims[0].tenant);
    }
    for round in served.chunks(3) {
        let mut round = round.to_vec();
        round.sort();
        let mut all = tenants.clone();
        all.sort();
        assert_eq!(round, all, "each tenant once per round: {served:?}");
    }
    // Two at a time: still in turns, so three claims serve each tenant twice.
    let mut counts: BTreeMap<TenantId, usize> = BTreeMap::new();
    for _ in 0..3 {
        for claim in s.claim("w", 2, LEASE).await.unwrap() {
            *counts.entry(claim.tenant).or_default() += 1;
        }
    }
    assert!(counts.values().all(|&n| n == 2), "{counts:?}");
}

/// `record_many` records each attempt as `complete` or `fail` would, in one call: a lost
/// lease fails only its own attempt, two nodes of one run may finish in the same batch,
/// and results come back in order.
pub async fn batched_completions_are_independent(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let retried = DagSpec::new()
        .node(NodeSpec::step("n", "s").retry(RetrySpec::default().jitter(0.0).max_attempts(3)));
    let fan = DagSpec::new()
        .node(NodeSpec::step("a", "s"))
        .node(NodeSpec::step("b", "s"))
        .node(NodeSpec::step("join", "s").depends_on("a").depends_on("b"));
    let mut runs = Vec::new();
    for dag in [one(), retried, one(), fan] {
        let run = s
            .submit(&env.admin, t, &valid(RunSpec::new(dag, json!(null))))
            .await
            .unwrap()
            .run;
        runs.push(run.id);
    }
    let claims = s.claim("w", 10, LEASE).await.unwrap();
    assert_eq!(claims.len(), 5);
    let of = |run: usize, node: &str| {
        claims
            .iter()
            .find(|c| c.lease.run == runs[run] && c.node_id.as_str() == node)
            .unwrap()
            .lease
    };
    // Run 2's node is given back: its lease is stale from then on.
    let stale = of(2, "n");
    s.release(&stale).await.unwrap();
    assert!(s.record_many(&[]).await.unwrap().is_empty());
    let mut missing = of(0, "n");
    missing.run = RunId::new();
    let done = s
        .record_many(&[
            (of(3, "a"), Ok(json!("a-out"))),
            (of(0, "n"), Ok(json!({"done": true}))),
            (stale, Ok(json!("late"))),
            (of(1, "n"), Err(NodeError::retryable("flaky", "try again"))),
            (of(3, "b"), Ok(json!("b-out"))),
            // Recorded a moment ago in this very batch: the lease is no longer held.
            (of(0, "n"), Ok(json!("again"))),
            (missing, Ok(json!("nobody"))),
        ])
        .await
        .unwrap();
    assert_eq!(done.len(), 7);
    for (at, kind) in [(5, ErrorKind::Conflict), (6, ErrorKind::NotFound)] {
        let e = done[at].as_ref().unwrap_err();
        assert_eq!(ate_core::Classify::kind(e), kind, "{at}: {e}");
    }
    assert_eq!(done[0].as_ref().unwrap(), &RunStatus::Running);
    assert_eq!(done[1].as_ref().unwrap(), &RunStatus::Succeeded);
    let lost = done[2].as_ref().unwrap_err();
    assert_eq!(
        ate_core::Classify::kind(lost),
        ErrorKind::Conflict,
        "{lost}"
    );
    assert_eq!(done[3].as_ref().unwrap(), &RunStatus::Running);
    assert_eq!(done[4].as_ref().unwrap(), &RunStatus::Running);
    let get = |i: usize| s.get(&env.admin, t, runs[i]);
    let first = get(0).await.unwrap();
    assert_eq!(first.status, RunStatus::Succeeded);
    assert_eq!(first.nodes[0].output, Some(json!({"done": true})));
    assert_eq!(first.revision, 2, "submitted, then succeeded once");
    let flaky = get(1).await.unwrap();
    assert_eq!(flaky.nodes[0].status, NodeStatus::Ready, "retried later");
    assert_eq!(flaky.nodes[0].error.as_ref().unwrap().kind, "flaky");
    let given_back = get(2).await.unwrap();
    assert_eq!(
        (
            given_back.nodes[0].status,
            given_back.nodes[0].output.clone()
        ),
        (NodeStatus::Ready, None),
        "the stale result changed nothing"
    );
    // Both halves of the fan-out finished in the same batch: two changes, two revisions,
    // and the join is due, with both outputs.
    assert_eq!(get(3).await.unwrap().revision, 3);
    let join = s.claim("w", 10, LEASE).await.unwrap();
    let join = join.iter().find(|c| c.lease.run == runs[3]).unwrap();
    assert_eq!(join.node_id.as_str(), "join");
    assert_eq!(join.input["deps"], json!({"a": "a-out", "b": "b-out"}));
}

/// `record_and_claim` records results as `record_many` does, then answers each request as
/// `claim_steps` would: the claims see the nodes the results have just made ready (with the
/// outputs those results recorded), a node goes to one request only, an invalid request gets
/// its own error, and a request for no steps gets nothing.
pub async fn results_and_claims_go_together(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let chain = DagSpec::new()
        .node(NodeSpec::step("a", "s"))
        .node(NodeSpec::step("b", "s").depends_on("a"));
    let submit = |dag: DagSpec| {
        let s = s.clone();
        let admin = env.admin.clone();
        async move {
            s.submit(&admin, t, &valid(RunSpec::new(dag, json!({"in": 1}))))
                .await
                .unwrap()
                .run
                .id
        }
    };
    let chained = submit(chain).await;
    let single = submit(one()).await;
    let claims = s.claim("w", 10, LEASE).await.unwrap();
    assert_eq!(claims.len(), 2);
    let lease = |run| claims.iter().find(|c| c.lease.run == run).unwrap().lease;
    let other = submit(DagSpec::new().node(NodeSpec::step("n", "other"))).await;
    let step = |name: &str| StepName::new(name).unwrap();
    let done = s
        .record_and_claim(
            &[
                (lease(chained), Ok(json!("a-out"))),
                (lease(single), Err(NodeError::permanent("broken", "no"))),
            ],
            &[
                ClaimRequest::new("w1", vec![step("s")], 10, LEASE),
                ClaimRequest::new("", vec![step("s")], 10, LEASE),
                ClaimRequest::new("w2", vec![], 10, LEASE),
                ClaimRequest::new("w3", vec![step("s"), step("other")], 10, LEASE),
            ],
        )
        .await
        .unwrap();
    assert_eq!(done.recorded.len(), 2);
    assert_eq!(done.recorded[0].as_ref().unwrap(), &RunStatus::Running);
    assert_eq!(done.recorded[1].as_ref().unwrap(), &RunStatus::Failed);
    assert_eq!(done.claimed.len(), 4);
    let next = done.claimed[0].as_ref().unwrap();
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(
        (next[0].lease.run, next[0].node_id.as_str()),
        (chained, "b")
    );
    assert_eq!(next[0].input["deps"], json!({"a": "a-out"}));
    let e = done.claimed[1].as_ref().unwrap_err();
    assert_eq!(ate_core::Classify::kind(e), ErrorKind::InvalidInput, "{e}");
    assert!(done.claimed[2].as_ref().unwrap().is_empty());
    let third = done.claimed[3].as_ref().unwrap();
    assert_eq!(third.len(), 1, "{third:?}");
    assert_eq!(third[0].lease.run, other);
    // The claims hold: their leases record, and nothing is left to claim.
    let run = s.get(&env.admin, t, chained).await.unwrap();
    assert_eq!(run.nodes[1].status, NodeStatus::Running);
    let left = s
        .record_and_claim(
            &[(next[0].lease, Ok(json!("b-out")))],
            &[ClaimRequest::new(
                "w1",
                vec![step("s"), step("other")],
                10,
                LEASE,
            )],
        )
        .await
        .unwrap();
    assert_eq!(left.recorded[0].as_ref().unwrap(), &RunStatus::Succeeded);
    assert!(left.claimed[0].as_ref().unwrap().is_empty());
    // Claims alone, and nothing at all.
    let alone = s
        .record_and_claim(&[], &[ClaimRequest::new("w1", vec![step("s")], 10, LEASE)])
        .await
        .unwrap();
    assert!(alone.recorded.is_empty());
    assert!(alone.claimed[0].as_ref().unwrap().is_empty());
    let nothing = s.record_and_claim(&[], &[]).await.unwrap();
    assert!(nothing.recorded.is_empty() && nothing.claimed.is_empty());
    // One batch at a time where writers take turns anyway; three on PostgreSQL.
    let side_by_side = if env.backend == Backend::Postgres {
        3
    } else {
        1
    };
    assert_eq!(s.concurrent_batches(), side_by_side);
    let one = SqlWorkflowStore::open(env.db.clone()).await.unwrap();
    assert_eq!(one.with_concurrent_batches(0).concurrent_batches(), 1);
}

/// A batch that waited for a run's lock sees what the transaction it waited for wrote.
/// PostgreSQL only: there another transaction holds the run's row lock while it changes
/// the run's nodes, and commits while a batch waits for that lock (SQLite's write
/// transaction locks the whole database, so no statement waits for a row). The batch
/// records the other two branches of a fan-in: it must see the first branch succeeded by
/// the other transaction, and release the join.
pub async fn batches_see_what_they_waited_for(env: Env) {
    let ate_core::DbPool::Postgres(pool) = env.db.pool().clone() else {
        return;
    };
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let fan = DagSpec::new()
        .node(NodeSpec::step("p0", "s"))
        .node(NodeSpec::step("p1", "s"))
        .node(NodeSpec::step("p2", "s"))
        .node(
            NodeSpec::step("join", "s")
                .depends_on("p0")
                .depends_on("p1")
                .depends_on("p2"),
        );
    let run = s
        .submit(&env.admin, t, &valid(RunSpec::new(fan, json!(null))))
        .await
        .unwrap()
        .run
        .id;
    let claims = s.claim("w", 10, LEASE).await.unwrap();
    assert_eq!(claims.len(), 3);
    let lease = |node: &str| {
        claims
            .iter()
            .find(|c| c.node_id.as_str() == node)
            .unwrap()
            .lease
    };
    // Another writer: locks the run and finishes branch p0 (as a completion would, less
    // the bookkeeping this test does not look at).
    let mut other = pool.begin().await.unwrap();
    let holder: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *other)
        .await
        .unwrap();
    sqlx::query("SELECT id FROM wf_runs WHERE id = $1 FOR NO KEY UPDATE")
        .bind(run.as_uuid())
        .execute(&mut *other)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE wf_nodes SET status = 'succeeded', output = '\"p0-out\"', \
         finished_at = started_at, lease_owner = NULL, lease_expires_at = NULL \
         WHERE run_id = $1 AND node_id = 'p0'",
    )
    .bind(run.as_uuid())
    .execute(&mut *other)
    .await
    .unwrap();
    let batch = tokio::spawn({
        let s = s.clone();
        let (p1, p2) = (lease("p1"), lease("p2"));
        async move {
            s.record_many(&[(p1, Ok(json!("p1-out"))), (p2, Ok(json!("p2-out")))])
                .await
        }
    });
    // Commits only once the batch waits for the lock it holds.
    let waiting = "SELECT COUNT(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))";
    let started = tokio::time::Instant::now();
    loop {
        let n: i64 = sqlx::query_scalar(waiting)
            .bind(holder)
            .fetch_one(&pool)
            .await
            .unwrap();
        if n > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the batch never waited"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    other.commit().await.unwrap();
    let done = batch.await.unwrap().unwrap();
    assert!(done.iter().all(|r| r.is_ok()), "{done:?}");
    let after = s.get(&env.admin, t, run).await.unwrap();
    let join = &after.nodes[3];
    assert_eq!(join.status, NodeStatus::Ready, "{after:?}");
    let claimed = s.claim("w", 10, LEASE).await.unwrap();
    assert_eq!(
        claimed[0].input["deps"],
        json!({"p0": "p0-out", "p1": "p1-out", "p2": "p2-out"})
    );
}
