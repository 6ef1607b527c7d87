//! A worker process killed with SIGKILL in the middle of a step: after its lease expires,
//! a worker in another process runs the step again and the run completes; nothing stays
//! `running`. Real processes (`src/bin/workflow-worker.rs`) on a SQLite file and on
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
    Command::new(env!("CARGO_BIN_EXE_workflow-worker"))
        .args([url, id, &markers.display().to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("start the workflow-worker process")
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
    let started = markers.path().join("long-1");
    wait_until("the first attempt to start", async || started.exists()).await;
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
    assert!(markers.path().join("long-2").exists());
    assert!(!markers.path().join("long-3").exists(), "no third attempt");
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
