//! More of the [`WorkflowStore`](ate_orchestrate::workflow::WorkflowStore) conformance suite:
//! claims that rotate across tenants and completions recorded in batches. Re-exported by
//! [`crate::workflow_store`], whose matrix runs them.

use crate::support::Env;
use crate::workflow_store::{store, tenant, valid};
use ate_core::{ErrorKind, RunId, TenantId};
use ate_orchestrate::workflow::{
    DagSpec, NodeError, NodeSpec, NodeStatus, RetrySpec, RunSpec, RunStatus,
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
