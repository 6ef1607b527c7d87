//! The workflow engine end to end: real workers (tokio tasks) running real handlers over a
//! [`SqlWorkflowStore`] on every metadata backend; `tests/conformance.rs` runs the matrix.
//! Waits are bounded (a run that does not finish in [`FINISH_WITHIN`] fails the test), never
//! timing assertions.

use crate::support::Env;
use ate_core::{NewTenant, RunId, TenantId};
use ate_orchestrate::workflow::{
    DagSpec, LogLevel, LogQuery, NodeError, NodeSpec, NodeStatus, RetrySpec, Run, RunSpec,
    RunStatus, SqlWorkflowStore, StepContext, WorkerConfig, WorkflowEngine, WorkflowStore,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest a case waits for a run to reach a state.
pub const FINISH_WITHIN: Duration = Duration::from_secs(30);

async fn store(env: &Env) -> Arc<dyn WorkflowStore> {
    // The system clock: workers wait for real time to pass (retries, leases).
    Arc::new(SqlWorkflowStore::open(env.db.clone()).await.unwrap())
}

async fn tenant(env: &Env) -> TenantId {
    env.tenants
        .create(&env.admin, NewTenant::new("acme", "Acme"))
        .await
        .unwrap()
        .id
}

fn fast(id: &str) -> WorkerConfig {
    WorkerConfig::new(id)
        .poll_interval(Duration::from_millis(5))
        .maintain_interval(Duration::from_millis(20))
}

/// Waits until `done` holds for run `id`, or fails the test after [`FINISH_WITHIN`].
async fn wait_for(
    env: &Env,
    store: &Arc<dyn WorkflowStore>,
    tenant: TenantId,
    id: RunId,
    done: impl Fn(&Run) -> bool,
) -> Run {
    let started = tokio::time::Instant::now();
    loop {
        let run = store.get(&env.admin, tenant, id).await.unwrap();
        if done(&run) {
            return run;
        }
        assert!(
            started.elapsed() < FINISH_WITHIN,
            "run never got there: {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn finished(run: &Run) -> bool {
    run.status.is_finished()
}

/// Fan-out and fan-in with real handlers: every node's input carries its dependencies'
/// outputs, and the run succeeds.
pub async fn runs_complete_end_to_end(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env).await;
    let engine = WorkflowEngine::builder(s.clone())
        .step("split", |ctx: StepContext, input: Value| async move {
            ctx.log(
                LogLevel::Info,
                "splitting",
                json!({"n": input["input"]["n"]}),
            );
            Ok(json!({"n": input["input"]["n"]}))
        })
        .unwrap()
        .step("square", |ctx: StepContext, input: Value| async move {
            let n = input["deps"]["split"]["n"].as_i64().unwrap_or(0);
            let k: i64 = ctx
                .node
                .as_str()
                .trim_start_matches('p')
                .parse()
                .unwrap_or(0);
            Ok(json!((n + k) * (n + k)))
        })
        .unwrap()
        .step("sum", |_: StepContext, input: Value| async move {
            let deps = input["deps"].as_object().cloned().unwrap_or_default();
            Ok(json!(deps.values().filter_map(Value::as_i64).sum::<i64>()))
        })
        .unwrap()
        .build();
    let mut dag = DagSpec::new().node(NodeSpec::step("split", "split"));
    let mut join = NodeSpec::step("sum", "sum");
    for k in 0..3 {
        dag = dag.node(NodeSpec::step(format!("p{k}"), "square").depends_on("split"));
        join = join.depends_on(format!("p{k}"));
    }
    let dag = dag.node(join);
    let worker = engine.start_worker(fast("w1")).unwrap();
    let run = engine
        .submit(&env.admin, t, &RunSpec::new(dag, json!({"n": 2})))
        .await
        .unwrap()
        .run;
    let done = wait_for(&env, &s, t, run.id, finished).await;
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    let sum = done.nodes.iter().find(|n| n.id.as_str() == "sum").unwrap();
    assert_eq!(sum.output, Some(json!(4 + 9 + 16)));
    let logs = s
        .logs(&env.admin, t, run.id, &LogQuery::new())
        .await
        .unwrap()
        .items;
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(
        (logs[0].node.as_str(), logs[0].message.as_str()),
        ("split", "splitting")
    );
    assert_eq!(logs[0].fields, json!({"n": 2}));
    let report = worker.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.released, 0);
    // Unknown steps are refused at submission, before anything is stored.
    let unknown = DagSpec::new().node(NodeSpec::step("x", "nobody"));
    let e = engine
        .submit(&env.admin, t, &RunSpec::new(unknown, json!(null)))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("no step handler is registered as \"nobody\""),
        "{e}"
    );
}

/// A step that fails twice is retried after its (short) waits and then succeeds.
pub async fn failing_steps_are_retried(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env).await;
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let metrics = ate_orchestrate::workflow::WorkflowMetrics::new();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let engine = WorkflowEngine::builder(s.clone())
        .metrics(metrics)
        .step("flaky", move |ctx: StepContext, _: Value| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                if ctx.attempt < 3 {
                    Err(NodeError::retryable(
                        "unavailable",
                        format!("attempt {}", ctx.attempt),
                    ))
                } else {
                    Ok(json!({"key": ctx.idempotency_key()}))
                }
            }
        })
        .unwrap()
        .build();
    let worker = engine.start_worker(fast("w1")).unwrap();
    let retry = RetrySpec::default()
        .initial_interval_ms(10)
        .jitter(0.0)
        .max_attempts(5);
    let dag = DagSpec::new().node(NodeSpec::step("f", "flaky").retry(retry));
    let run = engine
        .submit(&env.admin, t, &RunSpec::new(dag, json!(null)))
        .await
        .unwrap()
        .run;
    let done = wait_for(&env, &s, t, run.id, finished).await;
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    assert_eq!(done.nodes[0].attempt, 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        done.nodes[0].output,
        Some(json!({"key": format!("{}/f", run.id)}))
    );
    worker.shutdown(Duration::from_secs(5)).await;
    // The worker counted each attempt by outcome, and timed them.
    let text = ate_orchestrate::metrics::render_openmetrics(&registry).unwrap();
    for line in [
        r#"ate_workflow_node_attempts_total{step="flaky",outcome="failed"} 2"#,
        r#"ate_workflow_node_attempts_total{step="flaky",outcome="succeeded"} 1"#,
        r#"ate_workflow_node_attempt_duration_seconds_count{step="flaky"} 3"#,
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

/// Cancelling a run fires the running handler's cancellation, and the run ends cancelled
/// once the handler has returned.
pub async fn cancellation_reaches_handlers(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env).await;
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let flag = saw_cancel.clone();
    let engine = WorkflowEngine::builder(s.clone())
        .step("wait", move |ctx: StepContext, _: Value| {
            let flag = flag.clone();
            async move {
                ctx.cancelled().await;
                flag.store(true, Ordering::SeqCst);
                Err(NodeError::permanent("cancelled", "stopped on request"))
            }
        })
        .unwrap()
        .build();
    // Short leases, so heartbeats (which carry the cancel) come often.
    let worker = engine
        .start_worker(fast("w1").lease(Duration::from_millis(300)))
        .unwrap();
    let dag = DagSpec::new()
        .node(NodeSpec::step("w", "wait"))
        .node(NodeSpec::step("after", "wait").depends_on("w"));
    let run = engine
        .submit(&env.admin, t, &RunSpec::new(dag, json!(null)))
        .await
        .unwrap()
        .run;
    wait_for(&env, &s, t, run.id, |r| {
        r.nodes[0].status == NodeStatus::Running
    })
    .await;
    s.cancel(&env.admin, t, run.id).await.unwrap();
    let done = wait_for(&env, &s, t, run.id, finished).await;
    assert_eq!(done.status, RunStatus::Cancelled);
    assert!(saw_cancel.load(Ordering::SeqCst));
    assert!(done.nodes.iter().all(|n| n.status == NodeStatus::Cancelled));
    worker.shutdown(Duration::from_secs(5)).await;
}

/// A worker shutting down gives back the nodes it could not finish: another worker runs them
/// at once, and the released attempt does not count.
pub async fn shutdown_releases_unfinished_attempts(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env).await;
    let stuck = WorkflowEngine::builder(s.clone())
        .step("job", |ctx: StepContext, _: Value| async move {
            ctx.cancelled().await;
            Err(NodeError::retryable("cancelled", "shutting down"))
        })
        .unwrap()
        .build();
    let first = stuck.start_worker(fast("w1")).unwrap();
    let dag = DagSpec::new().node(NodeSpec::step("j", "job"));
    let run = stuck
        .submit(&env.admin, t, &RunSpec::new(dag, json!(null)))
        .await
        .unwrap()
        .run;
    wait_for(&env, &s, t, run.id, |r| {
        r.nodes[0].status == NodeStatus::Running
    })
    .await;
    let report = first.shutdown(Duration::from_millis(50)).await;
    assert_eq!(report.released, 1, "{report:?}");
    let back = s.get(&env.admin, t, run.id).await.unwrap();
    assert_eq!(
        (back.nodes[0].status, back.nodes[0].attempt),
        (NodeStatus::Ready, 0)
    );
    let working = WorkflowEngine::builder(s.clone())
        .step("job", |_: StepContext, _: Value| async move {
            Ok(json!("done"))
        })
        .unwrap()
        .build();
    let second = working.start_worker(fast("w2")).unwrap();
    let done = wait_for(&env, &s, t, run.id, finished).await;
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(done.nodes[0].attempt, 1);
    second.shutdown(Duration::from_secs(5)).await;
}

/// Two engines, three workers, on one store that lets each engine record and claim in up to
/// four transactions at once: every run (single nodes and chains) succeeds and every handler
/// ran exactly once.
pub async fn workers_share_the_work(env: Env) {
    let sql = SqlWorkflowStore::open(env.db.clone())
        .await
        .unwrap()
        .with_concurrent_batches(4);
    assert_eq!(sql.concurrent_batches(), 4);
    let s: Arc<dyn WorkflowStore> = Arc::new(sql);
    let t = tenant(&env).await;
    let handled: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let engine = |handled: Arc<Mutex<HashMap<String, u32>>>| {
        WorkflowEngine::builder(s.clone())
            .step("count", move |ctx: StepContext, _: Value| {
                let handled = handled.clone();
                async move {
                    *handled
                        .lock()
                        .unwrap()
                        .entry(ctx.idempotency_key())
                        .or_default() += 1;
                    Ok(json!(null))
                }
            })
            .unwrap()
            .build()
    };
    let (e1, e2) = (engine(handled.clone()), engine(handled.clone()));
    let w1 = e1.start_worker(fast("w1").concurrency(4)).unwrap();
    let w2 = e2.start_worker(fast("w2").concurrency(4)).unwrap();
    let w3 = e2.start_worker(fast("w3").concurrency(3)).unwrap();
    let mut ids = Vec::new();
    for i in 0..40 {
        let mut dag = DagSpec::new().node(NodeSpec::step("n", "count"));
        if i % 4 == 0 {
            for (at, previous) in ["m", "o"].into_iter().zip(["n", "m"]) {
                dag = dag.node(NodeSpec::step(at, "count").depends_on(previous));
            }
        }
        ids.push(
            e1.submit(&env.admin, t, &RunSpec::new(dag, json!(i)))
                .await
                .unwrap()
                .run
                .id,
        );
    }
    for id in &ids {
        let done = wait_for(&env, &s, t, *id, finished).await;
        assert_eq!(done.status, RunStatus::Succeeded);
    }
    let handled = handled.lock().unwrap().clone();
    assert_eq!(handled.len(), 40 + 10 * 2);
    assert!(handled.values().all(|&n| n == 1), "{handled:?}");
    w1.shutdown(Duration::from_secs(5)).await;
    w2.shutdown(Duration::from_secs(5)).await;
    w3.shutdown(Duration::from_secs(5)).await;
}

/// A handler that stops sending heartbeats is cancelled and its attempt fails
/// (`heartbeat_timeout`, retried); one that keeps them coming runs as long as it needs.
pub async fn silent_handlers_time_out(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env).await;
    let engine = WorkflowEngine::builder(s.clone())
        .step("stalls-first", |ctx: StepContext, _: Value| async move {
            if ctx.attempt == 1 {
                ctx.cancelled().await; // stuck: never beats
                return Err(NodeError::retryable("cancelled", "gave up"));
            }
            for _ in 0..10 {
                ctx.heartbeat();
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            Ok(json!("worked 400 ms with a 200 ms heartbeat timeout"))
        })
        .unwrap()
        .build();
    let worker = engine.start_worker(fast("w1")).unwrap();
    let node = NodeSpec::step("n", "stalls-first")
        .retry(RetrySpec::default().initial_interval_ms(10).jitter(0.0))
        .timeouts(ate_orchestrate::workflow::NodeTimeouts::default().heartbeat_ms(200));
    let run = engine
        .submit(
            &env.admin,
            t,
            &RunSpec::new(DagSpec::new().node(node), json!(null)),
        )
        .await
        .unwrap()
        .run;
    let done = wait_for(&env, &s, t, run.id, finished).await;
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    assert_eq!(done.nodes[0].attempt, 2);
    worker.shutdown(Duration::from_secs(5)).await;
}

/// Workers that never poll (an hour between polls and maintenance passes) still run
/// everything, woken by run events alone: a submitted run, the dependents a completion
/// releases, a retry whose backoff ends, and a delayed run whose start time comes.
pub async fn events_wake_idle_workers(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env).await;
    let engine = WorkflowEngine::builder(s.clone())
        .step("flaky", |ctx: StepContext, _: Value| async move {
            if ctx.attempt < 2 {
                Err(NodeError::retryable("unavailable", "try again"))
            } else {
                Ok(json!(ctx.attempt))
            }
        })
        .unwrap()
        .build();
    let idle = WorkerConfig::new("idle")
        .poll_interval(Duration::from_secs(3600))
        .maintain_interval(Duration::from_secs(3600));
    let worker = engine.start_worker(idle).unwrap();
    // Let it make its first (and, without events, only) look for work.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let retry = RetrySpec::default().initial_interval_ms(100).jitter(0.0);
    let dag = DagSpec::new()
        .node(NodeSpec::step("a", "flaky").retry(retry.clone()))
        .node(NodeSpec::step("b", "flaky").retry(retry).depends_on("a"));
    let now = engine
        .submit(&env.admin, t, &RunSpec::new(dag.clone(), json!(null)))
        .await
        .unwrap()
        .run;
    let later = chrono::Utc::now() + chrono::TimeDelta::milliseconds(300);
    let delayed = engine
        .submit(
            &env.admin,
            t,
            &RunSpec::new(dag, json!(null)).start_at(later),
        )
        .await
        .unwrap()
        .run;
    assert_eq!(delayed.status, RunStatus::Pending);
    for id in [now.id, delayed.id] {
        let done = wait_for(&env, &s, t, id, finished).await;
        assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
        assert!(done.nodes.iter().all(|n| n.attempt == 2), "{done:?}");
    }
    worker.shutdown(Duration::from_secs(5)).await;
}

/// A step starts a child run and waits for it; a repeated attempt finds the same child; and
/// cancelling a parent cancels its running child, whose handler sees the cancellation.
pub async fn child_runs_are_awaited_and_cancelled_with_their_parent(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env).await;
    let child_started = Arc::new(AtomicBool::new(false));
    let child_cancelled = Arc::new(AtomicBool::new(false));
    let (started, cancelled) = (child_started.clone(), child_cancelled.clone());
    let leaf = |step: &str| DagSpec::new().node(NodeSpec::step("leaf", step));
    let engine = WorkflowEngine::builder(s.clone())
        .step("double", |_: StepContext, input: Value| async move {
            Ok(json!(input["input"].as_i64().unwrap_or(0) * 2))
        })
        .unwrap()
        .step("block", move |ctx: StepContext, _: Value| {
            let (started, cancelled) = (started.clone(), cancelled.clone());
            async move {
                started.store(true, Ordering::SeqCst);
                ctx.cancelled().await;
                cancelled.store(true, Ordering::SeqCst);
                Err(NodeError::permanent("cancelled", "stopped on request"))
            }
        })
        .unwrap()
        .step("parent", move |ctx: StepContext, input: Value| async move {
            let step = input["input"]["child"]
                .as_str()
                .unwrap_or("double")
                .to_owned();
            let spec = RunSpec::new(leaf(&step), json!(21));
            let child = ctx
                .start_child(&spec)
                .await
                .map_err(|e| NodeError::permanent("child", e.to_string()))?;
            if ctx.attempt == 1 {
                // Crash-like: the child was started, the attempt fails before waiting.
                return Err(NodeError::retryable("flaky", "after starting the child"));
            }
            assert!(!child.created, "attempt 2 finds attempt 1's child");
            let done = ctx
                .wait_child(child.run.id)
                .await
                .map_err(|e| NodeError::permanent("child", e.to_string()))?;
            Ok(json!({"child": child.run.id.to_string(), "out": done.nodes[0].output}))
        })
        .unwrap()
        .build();
    let worker = engine.start_worker(fast("w")).unwrap();
    let retry = RetrySpec::default().initial_interval_ms(10).jitter(0.0);
    let parent_dag = DagSpec::new().node(NodeSpec::step("p", "parent").retry(retry));
    let run = engine
        .submit(&env.admin, t, &RunSpec::new(parent_dag.clone(), json!({})))
        .await
        .unwrap()
        .run;
    let done = wait_for(&env, &s, t, run.id, finished).await;
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    let output = done.nodes[0].output.clone().unwrap();
    assert_eq!(output["out"], json!(42));
    let child_id: RunId = output["child"].as_str().unwrap().parse().unwrap();
    let child = s.get(&env.admin, t, child_id).await.unwrap();
    assert_eq!(
        (child.parent, child.status),
        (Some(run.id), RunStatus::Succeeded)
    );
    let all = s
        .list(&env.admin, t, &ate_orchestrate::workflow::RunQuery::new())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2, "one child for two attempts");

    // Cancelling the parent cancels the child that blocks.
    let run = engine
        .submit(
            &env.admin,
            t,
            &RunSpec::new(parent_dag, json!({"child": "block"})),
        )
        .await
        .unwrap()
        .run;
    let waiting = tokio::time::Instant::now();
    while !child_started.load(Ordering::SeqCst) {
        assert!(waiting.elapsed() < FINISH_WITHIN, "the child never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.cancel(&env.admin, t, run.id).await.unwrap();
    let parent = wait_for(&env, &s, t, run.id, finished).await;
    assert_eq!(parent.status, RunStatus::Cancelled, "{parent:?}");
    let children = s
        .list(&env.admin, t, &ate_orchestrate::workflow::RunQuery::new())
        .await
        .unwrap();
    let child = children
        .items
        .iter()
        .find(|r| r.parent == Some(run.id))
        .expect("the blocking child");
    let child = wait_for(&env, &s, t, child.id, finished).await;
    assert_eq!(child.status, RunStatus::Cancelled, "{child:?}");
    assert!(
        child_cancelled.load(Ordering::SeqCst),
        "the child's handler saw it"
    );
    worker.shutdown(Duration::from_secs(5)).await;
}

/// The engine checks a schedule's steps against its own before storing it; bad cron
/// expressions and time zones are refused with messages naming them; nothing is stored.
pub async fn schedules_are_checked_against_the_engine(env: Env) {
    use ate_orchestrate::workflow::ScheduleSpec;
    let s = store(&env).await;
    let t = tenant(&env).await;
    let engine = WorkflowEngine::builder(s.clone())
        .step(
            "scan",
            |_: StepContext, _: Value| async move { Ok(json!(null)) },
        )
        .unwrap()
        .build();
    let run = |step: &str| RunSpec::new(DagSpec::new().node(NodeSpec::step("n", step)), json!(1));
    for (spec, says) in [
        (ScheduleSpec::new("a", "0 2 * * *", run("nope")), "nope"),
        (ScheduleSpec::new("b", "0 2 * *", run("scan")), "4 fields"),
        (
            ScheduleSpec::new("c", "0 2 * * *", run("scan")).time_zone("Moon/Base"),
            "IANA",
        ),
        (
            ScheduleSpec::new("", "0 2 * * *", run("scan")),
            "schedule name",
        ),
    ] {
        let e = engine
            .create_schedule(&env.admin, t, &spec)
            .await
            .unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
        assert_eq!(
            ate_core::Classify::kind(&e),
            ate_core::ErrorKind::InvalidInput
        );
    }
    assert!(s.list_schedules(&env.admin, t).await.unwrap().is_empty());
    let ok = ScheduleSpec::new("nightly", "0 2 * * *", run("scan")).time_zone("Asia/Tokyo");
    let created = engine.create_schedule(&env.admin, t, &ok).await.unwrap();
    assert_eq!(
        created.run.labels.get("schedule").map(String::as_str),
        Some("nightly")
    );
}

/// Two engines with different steps on one database: each worker takes only the nodes it
/// has a handler for, and together they finish the run.
pub async fn engines_with_different_steps_share_a_database(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env).await;
    let a = WorkflowEngine::builder(s.clone())
        .step(
            "a",
            |_: StepContext, _: Value| async move { Ok(json!("A")) },
        )
        .unwrap()
        .build();
    let b = WorkflowEngine::builder(s.clone())
        .step(
            "b",
            |_: StepContext, _: Value| async move { Ok(json!("B")) },
        )
        .unwrap()
        .build();
    let worker_a = a.start_worker(fast("wa")).unwrap();
    let dag = DagSpec::new()
        .node(NodeSpec::step("one", "a"))
        .node(NodeSpec::step("two", "b"));
    // Submitted where both steps are known (engine `a` alone would refuse step `b`).
    let spec = RunSpec::new(dag, json!(null))
        .validate(&ate_orchestrate::workflow::Limits::default(), &|_| true)
        .unwrap();
    let run = s.submit(&env.admin, t, &spec).await.unwrap().run;
    let half = wait_for(&env, &s, t, run.id, |r| {
        r.nodes[0].status == NodeStatus::Succeeded
    })
    .await;
    assert_eq!(
        (half.nodes[1].status, half.nodes[1].attempt),
        (NodeStatus::Ready, 0),
        "engine a never took b's node"
    );
    let worker_b = b.start_worker(fast("wb")).unwrap();
    let done = wait_for(&env, &s, t, run.id, finished).await;
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    assert_eq!(done.nodes[1].output, Some(json!("B")));
    worker_a.shutdown(Duration::from_secs(5)).await;
    worker_b.shutdown(Duration::from_secs(5)).await;
}

/// The built-in integration step: a node with `params: {"endpoint": …}` calls the tenant's
/// endpoint with the node's input (or `params.body`) and outputs the answer; a 5xx is
/// retried under the node's policy, a 4xx and an unknown endpoint fail the node for good.
pub async fn integration_step_calls_endpoints(env: Env) {
    use ate_core::keys::{LocalKeyProvider, MasterKeySecrets, SecretKey};
    use ate_orchestrate::integrations::{
        Egress, EndpointSpec, INTEGRATION_STEP, IntegrationClient, IntegrationStep, SqlIntegrations,
    };
    let (base, seen) = crate::integrations::serve().await;
    let s = store(&env).await;
    let t = tenant(&env).await;
    let secrets = Arc::new(MasterKeySecrets::new(Arc::new(LocalKeyProvider::new(
        SecretKey::from_bytes([9; 32]),
    ))));
    let integrations = SqlIntegrations::open(env.db.clone(), secrets)
        .await
        .unwrap();
    for (name, path) in [
        ("crm", "/hook"),
        ("broken", "/fail500"),
        ("refused", "/fail400"),
    ] {
        let spec = EndpointSpec::new(name, format!("{base}{path}"));
        integrations.create(&env.admin, t, &spec).await.unwrap();
    }
    let client = IntegrationClient::with_egress(integrations, Egress::Any).unwrap();
    let engine = WorkflowEngine::builder(s.clone())
        .step(
            "count",
            |_: StepContext, _: Value| async move { Ok(json!(3)) },
        )
        .unwrap()
        .step(INTEGRATION_STEP, IntegrationStep::new(client))
        .unwrap()
        .build();
    let worker = engine.start_worker(fast("w")).unwrap();
    let retry = RetrySpec::default()
        .initial_interval_ms(10)
        .jitter(0.0)
        .max_attempts(2);
    let call = |id: &str, endpoint: &str| {
        NodeSpec::step(id, INTEGRATION_STEP)
            .depends_on("count")
            .retry(retry.clone())
            .params(json!({"endpoint": endpoint}))
    };
    let dag = DagSpec::new()
        .node(NodeSpec::step("count", "count"))
        .node(call("notify", "crm"))
        .node(
            NodeSpec::step("custom", INTEGRATION_STEP)
                .depends_on("count")
                .params(json!({"endpoint": "crm", "body": {"fixed": true}})),
        );
    let run = engine
        .submit(&env.admin, t, &RunSpec::new(dag, json!({"repo": "r"})))
        .await
        .unwrap()
        .run;
    let done = wait_for(&env, &s, t, run.id, finished).await;
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    assert_eq!(
        done.nodes[1].output,
        Some(json!({"status": 200, "body": {"ok": true}}))
    );
    {
        let seen = seen.lock().unwrap();
        let bodies: Vec<Value> = seen
            .requests
            .iter()
            .map(|r| serde_json::from_slice(&r.2).unwrap())
            .collect();
        assert!(bodies.contains(&json!({"input": {"repo": "r"}, "deps": {"count": 3}})));
        assert!(bodies.contains(&json!({"fixed": true})));
    }
    for (endpoint, attempts, kind) in [
        ("broken", 2, "http_500"),
        ("refused", 1, "http_400"),
        ("ghost", 1, "endpoint_not_found"),
    ] {
        let dag = DagSpec::new()
            .node(NodeSpec::step("count", "count"))
            .node(call("n", endpoint));
        let run = engine
            .submit(&env.admin, t, &RunSpec::new(dag, json!(null)))
            .await
            .unwrap()
            .run;
        let done = wait_for(&env, &s, t, run.id, finished).await;
        assert_eq!(done.status, RunStatus::Failed, "{endpoint}: {done:?}");
        let node = &done.nodes[1];
        assert_eq!(node.attempt, attempts, "{endpoint}");
        assert_eq!(node.error.as_ref().unwrap().kind, kind, "{endpoint}");
    }
    // Params belong to step nodes; a node without "endpoint" fails at once.
    let bad = DagSpec::new().node(NodeSpec::signal("s", "go").params(json!({})));
    let e = engine
        .submit(&env.admin, t, &RunSpec::new(bad, json!(null)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("params are for step nodes"), "{e}");
    let dag = DagSpec::new().node(NodeSpec::step("n", INTEGRATION_STEP));
    let run = engine
        .submit(&env.admin, t, &RunSpec::new(dag, json!(null)))
        .await
        .unwrap()
        .run;
    let done = wait_for(&env, &s, t, run.id, finished).await;
    assert_eq!(done.nodes[0].error.as_ref().unwrap().kind, "bad_params");
    worker.shutdown(Duration::from_secs(5)).await;
}
