//! A worker process killed with SIGKILL in the middle of a step: after its lease expires,
//! a worker in another process runs the step again and the run completes; nothing stays
//! `running`; and two worker processes sharing one database run every node exactly once
//! between them. Real processes (`src/bin/workflow-worker.rs`) on a SQLite file and on
//! PostgreSQL (`CI=true` fails if PostgreSQL is missing). Waits are bounded, not timed.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ate_core::{NewTenant, Principal, SqlTenantStore, TenantStore};
use ate_orchestrate::workflow::{
    DagSpec, Limits, NodeSpec, NodeStatus, RetrySpec, RunSpec, RunStatus, SqlWorkflowStore,
    WorkflowStore,
};
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tests::support::{Backend, TestDb};

const WITHIN: Duration = Duration::from_secs(60);

fn worker(url: &str, id: &str, markers: &Path) -> Child {
    worker_timed(url, id, markers, [10, 50, 1_000])
}

/// A worker process that polls every `poll` ms, runs maintenance every `maintain` ms and
/// takes leases of `lease` ms.
fn worker_timed(url: &str, id: &str, markers: &Path, timing: [u64; 3]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_workflow-worker"))
        .args([url, id, &markers.display().to_string()])
        .args(timing.map(|ms| ms.to_string()))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the workflow-worker process")
}

/// The marker files the workers wrote: `(run, node, attempt, worker)` for every attempt
/// started.
fn markers(dir: &Path) -> Vec<(String, String, u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let parts: Vec<&str> = name.split('.').collect();
        let [run, node, attempt, worker] = parts.as_slice() else {
            panic!("unexpected marker {name}");
        };
        let attempt = attempt.parse().unwrap();
        found.push((
            run.to_string(),
            node.to_string(),
            attempt,
            worker.to_string(),
        ));
    }
    found
}

/// The workers that started attempt `attempt` of node `node` (of any run).
fn attempts(dir: &Path, node: &str, attempt: u32) -> Vec<String> {
    markers(dir)
        .into_iter()
        .filter(|(_, n, a, _)| n == node && *a == attempt)
        .map(|(_, _, _, worker)| worker)
        .collect()
}

/// A worker process killed (and reaped) when dropped, also when the test fails.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for the worker process to print `ready`.
fn await_ready(child: &mut Child) {
    use std::io::BufRead;
    let out = child.stdout.take().expect("the worker's stdout");
    let mut line = String::new();
    std::io::BufReader::new(out).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the worker did not start");
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < WITHIN, "waited too long for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn killed_worker_mid_step(backend: Backend) {
    let Some(test_db) = TestDb::open(backend).await else {
        return;
    };
    let admin = Principal::platform_admin("ops:test").unwrap();
    let tenant = SqlTenantStore::new(test_db.db.clone())
        .create(&admin, NewTenant::new("acme", "Acme"))
        .await
        .unwrap()
        .id;
    let store = SqlWorkflowStore::open(test_db.db.clone()).await.unwrap();
    let retry = RetrySpec::default().initial_interval_ms(100).jitter(0.0);
    let dag = DagSpec::new()
        .node(NodeSpec::step("long", "slow").retry(retry))
        .node(NodeSpec::step("after", "slow").depends_on("long"));
    let spec = RunSpec::new(dag, json!({"ms": 1_500}))
        .validate(&Limits::default(), &|s| s.as_str() == "slow")
        .unwrap();
    let markers = tempfile::tempdir().unwrap();
    let mut first = worker(&test_db.url, "doomed", markers.path());
    let run = store.submit(&admin, tenant, &spec).await.unwrap().run;
    wait_until("the first attempt to start", async || {
        !attempts(markers.path(), "long", 1).is_empty()
    })
    .await;
    first.kill().expect("SIGKILL the worker"); // Child::kill is SIGKILL on Unix
    first.wait().unwrap();
    let stuck = store.get(&admin, tenant, run.id).await.unwrap();
    assert_eq!(
        stuck.nodes[0].status,
        NodeStatus::Running,
        "held by a dead worker"
    );
    let mut second = worker(&test_db.url, "rescuer", markers.path());
    let mut done = None;
    wait_until("the run to finish", async || {
        let now = store.get(&admin, tenant, run.id).await.unwrap();
        let finished = now.status.is_finished();
        done = Some(now);
        finished
    })
    .await;
    second.kill().unwrap();
    second.wait().unwrap();
    let done = done.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    assert_eq!(
        done.nodes[0].attempt, 2,
        "the killed attempt, then one more"
    );
    assert_eq!(done.nodes[0].output, Some(json!({"attempt": 2})));
    assert_eq!(attempts(markers.path(), "long", 1), ["doomed"]);
    assert_eq!(attempts(markers.path(), "long", 2), ["rescuer"]);
    assert!(
        attempts(markers.path(), "long", 3).is_empty(),
        "no third attempt"
    );
    assert!(done.nodes.iter().all(|n| n.status == NodeStatus::Succeeded));
    test_db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_step_on_a_sqlite_file() {
    killed_worker_mid_step(Backend::SqliteFile).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_step_on_postgres() {
    killed_worker_mid_step(Backend::Postgres).await;
}

/// Two worker processes (two hosts) share one database: every node runs and is completed
/// exactly once (attempt 1, one marker each), and both workers take part. On PostgreSQL the
/// workers never poll (an hour between polls and maintenance passes): only notifications
/// from the submitting process and from each other move the runs.
async fn two_hosts_share_the_work(backend: Backend) {
    const RUNS: usize = 60;
    let Some(test_db) = TestDb::open(backend).await else {
        return;
    };
    let admin = Principal::platform_admin("ops:test").unwrap();
    let tenant = SqlTenantStore::new(test_db.db.clone())
        .create(&admin, NewTenant::new("acme", "Acme"))
        .await
        .unwrap()
        .id;
    let store = SqlWorkflowStore::open(test_db.db.clone()).await.unwrap();
    let markers_dir = tempfile::tempdir().unwrap();
    // Long leases: SQLite's write lock is not fair between processes, and a worker kept
    // waiting past a short lease would (rightly) see its node retried elsewhere.
    let timing = match backend {
        Backend::Postgres => [3_600_000, 3_600_000, 30_000],
        _ => [10, 50, 30_000],
    };
    let mut hosts = [
        Reaped(worker_timed(
            &test_db.url,
            "host-a",
            markers_dir.path(),
            timing,
        )),
        Reaped(worker_timed(
            &test_db.url,
            "host-b",
            markers_dir.path(),
            timing,
        )),
    ];
    // Each worker looks for work once as it starts: submit after both are idle, so that
    // (on PostgreSQL) only notifications start the runs.
    for host in &mut hosts {
        await_ready(&mut host.0);
    }
    let dag = DagSpec::new()
        .node(NodeSpec::step("fetch", "slow"))
        .node(NodeSpec::step("build", "slow").depends_on("fetch"))
        .node(NodeSpec::step("ship", "slow").depends_on("build"));
    let spec = RunSpec::new(dag, json!({"ms": 20}))
        .validate(&Limits::default(), &|s| s.as_str() == "slow")
        .unwrap();
    let submitted = store
        .submit_many(&admin, tenant, &vec![spec; RUNS])
        .await
        .unwrap();
    let mut runs = Vec::new();
    wait_until("every run to finish", async || {
        runs.clear();
        for s in &submitted {
            runs.push(store.get(&admin, tenant, s.run.id).await.unwrap());
        }
        runs.iter().all(|r| r.status.is_finished())
    })
    .await;
    drop(hosts);
    for run in &runs {
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
        for node in &run.nodes {
            assert_eq!(node.attempt, 1, "completed once, never retried: {run:?}");
            assert_eq!(node.output, Some(json!({"attempt": 1})));
        }
    }
    let started = markers(markers_dir.path());
    assert_eq!(
        started.len(),
        RUNS * 3,
        "each node's handler ran exactly once"
    );
    let mut seen = std::collections::HashSet::new();
    for (run, node, _, _) in &started {
        assert!(seen.insert((run, node)), "{run}/{node} ran twice");
    }
    let by = |host: &str| started.iter().filter(|m| m.3 == host).count();
    println!("host-a ran {}, host-b ran {}", by("host-a"), by("host-b"));
    assert!(by("host-a") > 0 && by("host-b") > 0, "both hosts took part");
    test_db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_share_a_sqlite_file() {
    two_hosts_share_the_work(Backend::SqliteFile).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_share_postgres() {
    two_hosts_share_the_work(Backend::Postgres).await;
}

/// A host that closes its database while a store listens for run events (PostgreSQL:
/// a pooled `LISTEN` connection) gets its close back: the listener lets go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_database_stops_the_listener() {
    for backend in [Backend::SqliteFile, Backend::Postgres] {
        let Some(test_db) = TestDb::open(backend).await else {
            continue;
        };
        let store = SqlWorkflowStore::open(test_db.db.clone()).await.unwrap();
        let _events = store.events().await.unwrap();
        tokio::time::timeout(Duration::from_secs(20), test_db.db.close())
            .await
            .expect("Db::close returned while a listener was open");
        test_db.cleanup().await;
    }
}
