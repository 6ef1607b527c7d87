#![allow(clippy::unwrap_used)]

use super::*;
use crate::workflow::{Condition, DagSpec, Limits, NodeSpec, NodeTimeouts, RetrySpec};
use ate_core::{Classify, ErrorKind};
use serde_json::json;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap()
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

fn valid(dag: DagSpec) -> ValidDag {
    dag.validate(&Limits::default(), &|_| true).unwrap()
}

fn no_jitter() -> RetrySpec {
    RetrySpec::default().jitter(0.0)
}

/// Starts the run at t0.
fn started(dag: &ValidDag) -> RunState {
    let mut run = RunState::new(dag);
    assert_eq!(run.status, RunStatus::Pending);
    run.start(dag, t0());
    run
}

fn idx(dag: &ValidDag, id: &str) -> usize {
    dag.index_of(id).unwrap()
}

fn status(run: &RunState, dag: &ValidDag, id: &str) -> NodeStatus {
    run.nodes[idx(dag, id)].status
}

/// Starts node `id` at `now` and has it return `output`.
fn run_ok(run: &mut RunState, dag: &ValidDag, id: &str, output: Value, now: DateTime<Utc>) {
    run.node_started(idx(dag, id), now).unwrap();
    run.node_succeeded(dag, idx(dag, id), output, now).unwrap();
}

fn kind_of(e: &OrchestrateError) -> ErrorKind {
    e.kind()
}

#[test]
fn a_chain_runs_in_order_and_succeeds() {
    let dag = valid(
        DagSpec::new()
            .node(NodeSpec::step("a", "s"))
            .node(NodeSpec::step("b", "s").depends_on("a"))
            .node(NodeSpec::step("c", "s").depends_on("b")),
    );
    let mut run = started(&dag);
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.due(t0()).collect::<Vec<_>>(), [idx(&dag, "a")]);
    let e = run.node_started(idx(&dag, "b"), t0()).unwrap_err();
    assert_eq!(kind_of(&e), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("is blocked (not ready)"), "{e}");
    run_ok(&mut run, &dag, "a", json!(1), t0());
    assert_eq!(status(&run, &dag, "b"), NodeStatus::Ready);
    run_ok(&mut run, &dag, "b", json!(2), t0());
    assert_eq!(run.status, RunStatus::Running);
    run_ok(&mut run, &dag, "c", json!(3), t0());
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.nodes[idx(&dag, "c")].output, Some(json!(3)));
    assert_eq!(run.nodes[idx(&dag, "a")].attempt, 1);
    // Events for a finished run are refused, never applied.
    let e = run.node_started(idx(&dag, "a"), t0()).unwrap_err();
    assert!(e.to_string().contains("the run is succeeded"), "{e}");
    let e = run
        .node_succeeded(&dag, idx(&dag, "a"), json!(9), t0())
        .unwrap_err();
    assert!(e.to_string().contains("not running"), "{e}");
    assert!(run.node_started(99, t0()).is_err());
}

#[test]
fn fan_in_waits_for_every_branch() {
    let mut spec = DagSpec::new().node(NodeSpec::step("split", "s"));
    let mut join = NodeSpec::step("join", "s");
    for i in 0..3 {
        spec = spec.node(NodeSpec::step(format!("p{i}"), "s").depends_on("split"));
        join = join.depends_on(format!("p{i}"));
    }
    let dag = valid(spec.node(join));
    let mut run = started(&dag);
    run_ok(&mut run, &dag, "split", json!(null), t0());
    assert_eq!(run.due(t0()).count(), 3);
    run_ok(&mut run, &dag, "p0", json!(0), t0());
    run_ok(&mut run, &dag, "p2", json!(2), t0());
    assert_eq!(status(&run, &dag, "join"), NodeStatus::Blocked);
    run_ok(&mut run, &dag, "p1", json!(1), t0());
    assert_eq!(status(&run, &dag, "join"), NodeStatus::Ready);
    run_ok(&mut run, &dag, "join", json!("done"), t0());
    assert_eq!(run.status, RunStatus::Succeeded);
}

#[test]
fn conditions_skip_nodes_and_their_dependents() {
    let dag = valid(
        DagSpec::new()
            .node(NodeSpec::step("scan", "s"))
            .node(
                NodeSpec::step("fix", "s")
                    .depends_on("scan")
                    .when(Condition::equals("scan", "/clean", json!(false))),
            )
            .node(NodeSpec::step("pr", "s").depends_on("fix"))
            .node(
                NodeSpec::step("report", "s")
                    .depends_on("scan")
                    .when(Condition::exists("scan", "/clean")),
            ),
    );
    let mut run = started(&dag);
    run_ok(&mut run, &dag, "scan", json!({"clean": true}), t0());
    assert_eq!(status(&run, &dag, "fix"), NodeStatus::Skipped);
    assert_eq!(
        status(&run, &dag, "pr"),
        NodeStatus::Skipped,
        "dependents of a skipped node"
    );
    assert_eq!(status(&run, &dag, "report"), NodeStatus::Ready);
    run_ok(&mut run, &dag, "report", json!("ok"), t0());
    assert_eq!(
        run.status,
        RunStatus::Succeeded,
        "skipped nodes do not fail a run"
    );
    // The other way round, the fix branch runs.
    let mut run = started(&dag);
    run_ok(&mut run, &dag, "scan", json!({"clean": false}), t0());
    assert_eq!(status(&run, &dag, "fix"), NodeStatus::Ready);
}

#[test]
fn failures_retry_with_backoff_then_fail_the_run() {
    let dag = valid(
        DagSpec::new()
            .node(NodeSpec::step("flaky", "s").retry(no_jitter().max_attempts(3)))
            .node(NodeSpec::step("slow", "s"))
            .node(NodeSpec::step("after", "s").depends_on("flaky")),
    );
    let (flaky, slow) = (idx(&dag, "flaky"), idx(&dag, "slow"));
    let mut run = started(&dag);
    run.node_started(slow, t0()).unwrap();
    run.node_started(flaky, t0()).unwrap();
    let busy = NodeError::retryable("unavailable", "busy");
    let at = run
        .node_failed(&dag, flaky, busy.clone(), t0(), 0.0)
        .unwrap();
    assert_eq!(at, Some(t0() + secs(1)));
    assert_eq!(run.nodes[flaky].status, NodeStatus::Ready);
    assert_eq!(
        run.nodes[flaky].error.as_ref().map(|e| e.kind.as_str()),
        Some("unavailable")
    );
    let e = run.node_started(flaky, t0()).unwrap_err();
    assert!(e.to_string().contains("not ready"), "not due yet: {e}");
    assert_eq!(run.due(t0()).count(), 0);
    run.node_started(flaky, t0() + secs(1)).unwrap();
    let at = run
        .node_failed(&dag, flaky, busy.clone(), t0() + secs(1), 0.0)
        .unwrap();
    assert_eq!(at, Some(t0() + secs(3)), "the second wait doubles");
    assert_eq!(run.node_started(flaky, t0() + secs(3)).unwrap(), 3);
    let at = run
        .node_failed(&dag, flaky, busy, t0() + secs(3), 0.0)
        .unwrap();
    assert_eq!(at, None, "three attempts in all");
    assert_eq!(run.nodes[flaky].status, NodeStatus::Failed);
    assert_eq!(status(&run, &dag, "after"), NodeStatus::Cancelled);
    // The other node still runs: the run fails once it has returned.
    assert_eq!(run.status, RunStatus::Running);
    assert!(run.nodes[slow].cancel_requested);
    assert!(!run.cancel(), "a failing run is already stopping");
    run.node_succeeded(&dag, slow, json!("late"), t0() + secs(4))
        .unwrap();
    assert_eq!(run.nodes[slow].status, NodeStatus::Cancelled);
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("node flaky failed: busy"));
}

#[test]
fn permanent_errors_and_deadlines_end_retries() {
    let dag = valid(
        DagSpec::new()
            .node(NodeSpec::step("a", "s").retry(no_jitter().non_retryable("invalid_input")))
            .node(
                NodeSpec::step("b", "s")
                    .retry(no_jitter())
                    .timeouts(NodeTimeouts::default().schedule_to_close_ms(2_500)),
            ),
    );
    let (a, b) = (idx(&dag, "a"), idx(&dag, "b"));
    for (error, retried) in [
        (NodeError::permanent("unavailable", "no"), false),
        (NodeError::retryable("invalid_input", "bad"), false),
        (NodeError::retryable("unavailable", "later"), true),
    ] {
        let mut run = started(&dag);
        run.node_started(a, t0()).unwrap();
        let at = run.node_failed(&dag, a, error.clone(), t0(), 0.0).unwrap();
        assert_eq!(at.is_some(), retried, "{error:?}");
    }
    let mut run = started(&dag);
    let err = || NodeError::retryable("unavailable", "down");
    run.node_started(b, t0()).unwrap();
    assert_eq!(
        run.node_failed(&dag, b, err(), t0(), 0.0).unwrap(),
        Some(t0() + secs(1))
    );
    run.node_started(b, t0() + secs(1)).unwrap();
    // The next try would start at 3 s, past the 2.5 s schedule-to-close limit.
    assert_eq!(
        run.node_failed(&dag, b, err(), t0() + secs(1), 0.0)
            .unwrap(),
        None
    );
    assert_eq!(run.nodes[b].status, NodeStatus::Failed);
}

#[test]
fn allowed_failures_let_the_run_go_on() {
    let dag = valid(
        DagSpec::new()
            .node(
                NodeSpec::step("optional", "s")
                    .retry(no_jitter().max_attempts(1))
                    .continue_on_failure(true),
            )
            .node(NodeSpec::step("uses-it", "s").depends_on("optional"))
            .node(NodeSpec::step("other", "s")),
    );
    let mut run = started(&dag);
    run.node_started(idx(&dag, "optional"), t0()).unwrap();
    let e = NodeError::retryable("unavailable", "x");
    run.node_failed(&dag, idx(&dag, "optional"), e, t0(), 0.0)
        .unwrap();
    assert_eq!(status(&run, &dag, "optional"), NodeStatus::Failed);
    assert_eq!(status(&run, &dag, "uses-it"), NodeStatus::Skipped);
    assert_eq!(run.status, RunStatus::Running);
    run_ok(&mut run, &dag, "other", json!(1), t0());
    assert_eq!(run.status, RunStatus::Succeeded);
}

#[test]
fn signals_complete_waiting_nodes() {
    let dag = valid(
        DagSpec::new()
            .node(NodeSpec::step("build", "s"))
            .node(
                NodeSpec::signal("approve", "approval")
                    .depends_on("build")
                    .timeout_ms(60_000),
            )
            .node(NodeSpec::step("deploy", "s").depends_on("approve")),
    );
    let approval = SignalName::new("approval").unwrap();
    let mut run = started(&dag);
    let e = run
        .signal(&dag, &approval, &json!({"by": "ana"}), t0())
        .unwrap_err();
    assert_eq!(kind_of(&e), ErrorKind::Conflict);
    assert!(
        e.to_string()
            .contains("no node is waiting for signal approval now"),
        "{e}"
    );
    let e = run
        .signal(&dag, &SignalName::new("other").unwrap(), &json!(null), t0())
        .unwrap_err();
    assert_eq!(kind_of(&e), ErrorKind::InvalidInput);
    assert!(
        e.to_string()
            .contains("no node of this workflow waits for signal other"),
        "{e}"
    );
    run_ok(&mut run, &dag, "build", json!(null), t0());
    assert_eq!(status(&run, &dag, "approve"), NodeStatus::Waiting);
    assert_eq!(run.due(t0()).count(), 0, "a waiting node is not a worker's");
    assert_eq!(
        run.signal(&dag, &approval, &json!({"by": "ana"}), t0())
            .unwrap(),
        1
    );
    assert_eq!(
        run.nodes[idx(&dag, "approve")].output,
        Some(json!({"by": "ana"}))
    );
    run_ok(&mut run, &dag, "deploy", json!(null), t0());
    assert_eq!(run.status, RunStatus::Succeeded);
    // A signal that never comes fails the run at its timeout.
    let mut run = started(&dag);
    run_ok(&mut run, &dag, "build", json!(null), t0());
    run.signal_timed_out(&dag, idx(&dag, "approve"), t0() + secs(60))
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(status(&run, &dag, "deploy"), NodeStatus::Cancelled);
    assert!(
        run.signal_timed_out(&dag, idx(&dag, "approve"), t0())
            .is_err()
    );
}

#[test]
fn cancel_stops_pending_work_and_waits_for_running_handlers() {
    let dag = valid(
        DagSpec::new()
            .node(NodeSpec::step("a", "s"))
            .node(NodeSpec::step("b", "s"))
            .node(NodeSpec::step("c", "s").depends_on("a")),
    );
    let mut run = started(&dag);
    run.node_started(idx(&dag, "a"), t0()).unwrap();
    assert!(run.cancel());
    assert!(!run.cancel(), "idempotent");
    assert_eq!(status(&run, &dag, "b"), NodeStatus::Cancelled);
    assert_eq!(status(&run, &dag, "c"), NodeStatus::Cancelled);
    assert!(run.nodes[idx(&dag, "a")].cancel_requested);
    assert_eq!(run.status, RunStatus::Running);
    assert!(run.node_started(idx(&dag, "b"), t0()).is_err());
    let e = NodeError::permanent("cancelled", "stopped");
    run.node_failed(&dag, idx(&dag, "a"), e, t0(), 0.0).unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    assert!(!run.cancel(), "a finished run stays as it is");
    assert!(!run.timed_out());
    assert_eq!(run.status, RunStatus::Cancelled);
    // A pending run is cancelled at once; a run timeout fails the run.
    let mut pending = RunState::new(&dag);
    assert!(pending.cancel());
    assert_eq!(pending.status, RunStatus::Cancelled);
    pending.start(&dag, t0());
    assert_eq!(
        pending.status,
        RunStatus::Cancelled,
        "a cancelled run does not start"
    );
    let mut run = started(&dag);
    assert!(run.timed_out());
    assert_eq!(
        (run.status, run.error.as_deref()),
        (RunStatus::Failed, Some("the run timed out"))
    );
}

#[test]
fn a_failed_run_retries_from_its_failure() {
    let dag = valid(
        DagSpec::new()
            .node(NodeSpec::step("a", "s"))
            .node(
                NodeSpec::step("b", "s")
                    .depends_on("a")
                    .retry(no_jitter().max_attempts(1)),
            )
            .node(NodeSpec::step("c", "s").depends_on("b")),
    );
    let mut run = started(&dag);
    let e = run.retry_from_failure(&dag, t0()).unwrap_err();
    assert!(
        e.to_string()
            .contains("only a failed run can be retried (the run is running)"),
        "{e}"
    );
    run_ok(&mut run, &dag, "a", json!("kept"), t0());
    run.node_started(idx(&dag, "b"), t0()).unwrap();
    let e = NodeError::retryable("unavailable", "x");
    run.node_failed(&dag, idx(&dag, "b"), e, t0(), 0.0).unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    run.retry_from_failure(&dag, t0() + secs(10)).unwrap();
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.error, None);
    assert_eq!(status(&run, &dag, "a"), NodeStatus::Succeeded);
    assert_eq!(run.nodes[idx(&dag, "a")].output, Some(json!("kept")));
    let b = &run.nodes[idx(&dag, "b")];
    assert_eq!(
        (b.status, b.attempt, b.ready_at),
        (NodeStatus::Ready, 0, Some(t0() + secs(10)))
    );
    assert_eq!(status(&run, &dag, "c"), NodeStatus::Blocked);
    run_ok(&mut run, &dag, "b", json!(null), t0() + secs(10));
    run_ok(&mut run, &dag, "c", json!(null), t0() + secs(10));
    assert_eq!(run.status, RunStatus::Succeeded);
}

#[test]
fn statuses_have_stable_names() {
    for s in [
        RunStatus::Pending,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ] {
        assert_eq!(RunStatus::parse(s.as_str()).unwrap(), s);
    }
    for s in [
        NodeStatus::Blocked,
        NodeStatus::Ready,
        NodeStatus::Running,
        NodeStatus::Waiting,
        NodeStatus::Succeeded,
        NodeStatus::Failed,
        NodeStatus::Skipped,
        NodeStatus::Cancelled,
    ] {
        assert_eq!(NodeStatus::parse(s.as_str()).unwrap(), s);
    }
    let e = RunStatus::parse("done").unwrap_err();
    assert!(e.to_string().contains("unknown status \"done\""), "{e}");
}

/// Seeded random DAGs driven with random outcomes (successes, retryable and permanent
/// failures, cancels, signals, timeouts): every run ends, nothing is left running or
/// runnable, and the run's status agrees with its nodes.
#[test]
fn random_runs_always_end_consistently() {
    for seed in 0..400u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let n = rng.usize(1..25);
        let mut spec = DagSpec::new();
        for i in 0..n {
            let mut node = if rng.u8(..) < 30 {
                NodeSpec::signal(format!("n{i}"), format!("sig{}", rng.u8(0..3)))
            } else {
                let retry = no_jitter()
                    .max_attempts(rng.u32(1..4))
                    .initial_interval_ms(1_000);
                NodeSpec::step(format!("n{i}"), "s").retry(retry)
            };
            for d in 0..i {
                if rng.u8(..) < 50 {
                    node = node.depends_on(format!("n{d}"));
                }
            }
            if let Some(d) = node.depends_on.first().cloned()
                && rng.u8(..) < 40
            {
                node = node.when(Condition::truthy(d, "/go"));
            }
            if rng.u8(..) < 40 {
                node = node.continue_on_failure(true);
            }
            spec = spec.node(node);
        }
        let dag = valid(spec);
        let mut run = started(&dag);
        let mut now = t0();
        let mut running: Vec<usize> = Vec::new();
        for _ in 0..10_000 {
            if run.status.is_finished() {
                break;
            }
            match rng.u8(0..100) {
                0 => {
                    run.cancel();
                }
                1 => {
                    run.timed_out();
                }
                2..=9 => {
                    let sig = SignalName::new(format!("sig{}", rng.u8(0..3))).unwrap();
                    let _ = run.signal(&dag, &sig, &json!({"go": rng.bool()}), now);
                    let waiting: Vec<usize> = (0..n)
                        .filter(|&i| run.nodes[i].status == NodeStatus::Waiting)
                        .collect();
                    if let Some(&i) = waiting.first()
                        && rng.u8(0..4) == 0
                    {
                        run.signal_timed_out(&dag, i, now).unwrap();
                    }
                }
                _ => {
                    let due: Vec<usize> = run.due(now).collect();
                    if !running.is_empty() && (due.is_empty() || rng.bool()) {
                        let i = running.swap_remove(rng.usize(..running.len()));
                        match rng.u8(0..3) {
                            0 => run
                                .node_succeeded(&dag, i, json!({"go": rng.bool()}), now)
                                .unwrap(),
                            1 => {
                                let e = NodeError::retryable("unavailable", "flaky");
                                run.node_failed(&dag, i, e, now, rng.f64()).unwrap();
                            }
                            _ => {
                                let e = NodeError::permanent("bad", "broken");
                                run.node_failed(&dag, i, e, now, rng.f64()).unwrap();
                            }
                        }
                    } else if let Some(&i) = due.first() {
                        run.node_started(i, now).unwrap();
                        running.push(i);
                    } else {
                        now += secs(1);
                    }
                }
            }
            // Nothing the run considers running is unknown to the "workers", and vice versa.
            let mut is_running: Vec<usize> = (0..n)
                .filter(|&i| run.nodes[i].status == NodeStatus::Running)
                .collect();
            let mut held = running.clone();
            is_running.sort_unstable();
            held.sort_unstable();
            assert_eq!(is_running, held, "seed {seed}");
        }
        // A waiting signal node that never gets its signal: time it out, as the engine will.
        while !run.status.is_finished() {
            let waiting = (0..n).find(|&i| run.nodes[i].status == NodeStatus::Waiting);
            let i = waiting.unwrap_or_else(|| panic!("seed {seed}: stuck: {run:?}"));
            run.signal_timed_out(&dag, i, now).unwrap();
        }
        assert!(
            run.nodes.iter().all(|s| s.status.is_finished()),
            "seed {seed}: a node is left unfinished in a finished run: {run:?}"
        );
        let failed_for_good = (0..n).any(|i| {
            run.nodes[i].status == NodeStatus::Failed && !dag.nodes()[i].continue_on_failure
        });
        match run.status {
            RunStatus::Succeeded => {
                assert!(!failed_for_good, "seed {seed}");
                assert!(
                    run.nodes.iter().all(|s| s.status != NodeStatus::Cancelled),
                    "seed {seed}"
                );
            }
            RunStatus::Failed => assert!(run.error.is_some(), "seed {seed}"),
            RunStatus::Cancelled => {}
            other => panic!("seed {seed}: ended as {other:?}"),
        }
    }
}
