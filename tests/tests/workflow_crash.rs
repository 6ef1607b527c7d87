//! A worker process killed with SIGKILL in the middle of a step: after its lease expires,
//! a worker in another process runs the step again and the run completes; nothing stays
//! `running`; and two worker processes sharing one database run every node exactly once
//! between them. Real processes (`src/bin/workflow-worker.rs`) on a SQLite file and on
//! PostgreSQL (`CI=true` fails if PostgreSQL is missing). Waits are bounded, not timed.
//!
//! And a helper (`src/bin/workflow-crasher.rs`) that submits runs of several shapes while
//! its worker runs their steps, killed at random moments (seeded: `ATE_CRASH_SEED` replays
//! a run; `ATE_CRASH_KILLS` sets how many kills): after every kill each acknowledged
//! submission is exactly one run of the right shape, no node runs without a lease, no
//! finished run has work left, no attempt ran that its node does not know, and no node
//! succeeded before its work was done; in the end a helper that is not killed finishes
//! every run, each node's attempts are 1..n started once each, a node starts only after
//! its dependencies' work is done, only killed helpers abandoned attempts, and the audit
//! chain verifies.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ate_core::{NewTenant, Principal, SqlTenantStore, TenantStore, with_pool};
use ate_orchestrate::workflow::{
    DagSpec, Limits, NodeSpec, NodeStatus, RetrySpec, RunQuery, RunSpec, RunStatus,
    SqlWorkflowStore, WorkflowStore,
};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tests::crash::{seed_and_kills, workflow_key, workflow_run};
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

// ---------------------------------------------------------------------------------------
// Runs with steps in flight, killed at random moments.

/// Kills per backend (`ATE_CRASH_KILLS` for more).
const KILLS: u32 = 10;

/// What the journal of `src/bin/workflow-crasher.rs` says: the submissions acknowledged,
/// and the one begun and not acknowledged (if any).
#[derive(Debug)]
struct RunJournal {
    acked: BTreeSet<u64>,
    pending: Option<u64>,
}

/// Reads the journal (whole lines only: the kill may have torn the last one, which the next
/// helper cuts off). A `BEGIN` may be followed by its `ACK` only after a restart: the
/// helper submits it again.
fn read_run_journal(path: &Path) -> RunJournal {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let whole = &text[..text.rfind('\n').map_or(0, |n| n + 1)];
    let mut journal = RunJournal {
        acked: BTreeSet::new(),
        pending: None,
    };
    for line in whole.lines() {
        let mut words = line.split(' ');
        match (
            words.next(),
            words.next().and_then(|i| i.parse::<u64>().ok()),
        ) {
            (Some("BEGIN"), Some(i)) => {
                assert_eq!(journal.pending, None, "BEGIN {i} before the last one's ACK");
                assert_eq!(
                    journal.acked.last().map_or(0, |a| a + 1),
                    i,
                    "submissions in order"
                );
                journal.pending = Some(i);
            }
            (Some("ACK"), Some(i)) if journal.pending == Some(i) => {
                journal.pending = None;
                journal.acked.insert(i);
            }
            _ => panic!("an unexpected journal line: {line:?}"),
        }
    }
    journal
}

/// One attempt's markers: the process that started it, and when it started and when its
/// work was done, in nanoseconds (`None` where the kill left the file empty or missing).
type Marks = (u32, Option<u128>, Option<u128>);

/// The marker files: `(run, node, attempt)` → that attempt's [`Marks`].
type Attempts = BTreeMap<(String, String, u32), Marks>;

fn attempt_markers(dir: &Path) -> Attempts {
    let mut found = Attempts::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let parts: Vec<&str> = name.split('.').collect();
        let [run, node, attempt, pid, what] = parts.as_slice() else {
            panic!("unexpected marker {name}");
        };
        let at = std::fs::read_to_string(entry.path())
            .ok()
            .and_then(|t| t.parse::<u128>().ok());
        let key = (run.to_string(), node.to_string(), attempt.parse().unwrap());
        let slot = found
            .entry(key)
            .or_insert((pid.parse().unwrap(), None, None));
        assert_eq!(
            slot.0,
            pid.parse::<u32>().unwrap(),
            "{name}: one attempt started by two processes"
        );
        match *what {
            "start" => slot.1 = at,
            "end" => slot.2 = at,
            _ => panic!("unexpected marker {name}"),
        }
    }
    found
}

/// The markers of one node's attempts, by attempt number.
fn node_attempts<'a>(attempts: &'a Attempts, run: &str, node: &str) -> Vec<(u32, &'a Marks)> {
    let key = |a: u32| (run.to_owned(), node.to_owned(), a);
    attempts
        .range(key(0)..=key(u32::MAX))
        .map(|((_, _, a), m)| (*a, m))
        .collect()
}

/// Every run of the tenant, by idempotency key.
async fn all_runs(
    store: &SqlWorkflowStore,
    tenant: ate_core::TenantId,
) -> BTreeMap<String, ate_orchestrate::workflow::Run> {
    let admin = Principal::platform_admin("ops:test").unwrap();
    let mut runs = BTreeMap::new();
    let mut query = RunQuery::new().limit(100);
    loop {
        let page = store.list(&admin, tenant, &query).await.unwrap();
        for listed in page.items {
            // Listings leave the nodes out.
            let run = store.get(&admin, tenant, listed.id).await.unwrap();
            let key = run.idempotency_key.clone().expect("every run has a key");
            assert!(
                runs.insert(key.clone(), run).is_none(),
                "two runs with key {key}"
            );
        }
        match page.next_cursor {
            Some(cursor) => query = RunQuery::new().limit(100).cursor(cursor),
            None => break,
        }
    }
    runs
}

/// The invariants after a kill (and at the end): every acknowledged submission is one run
/// of the right shape (the one in flight: one run or none); no node runs without a lease;
/// no finished run has a node left to do; every attempt that started is known to its node,
/// and a node that succeeded recorded its last attempt's output after that attempt's work
/// was done. Returns how many nodes were running when the helper died.
async fn check_runs(
    test_db: &TestDb,
    store: &SqlWorkflowStore,
    journal: &RunJournal,
    markers: &Path,
    seed: u64,
    round: u32,
) -> usize {
    let admin = Principal::platform_admin("ops:test").unwrap();
    let Ok(tenant) = SqlTenantStore::new(test_db.db.clone())
        .get_by_slug(&admin, "crash")
        .await
    else {
        assert!(
            journal.acked.is_empty(),
            "round {round}: the tenant is gone"
        );
        return 0;
    };
    let runs = all_runs(store, tenant.id).await;
    let expected = journal.acked.len() + usize::from(journal.pending.is_some());
    assert!(
        runs.len() == expected || runs.len() + 1 == expected && journal.pending.is_some(),
        "round {round}: {} runs for {journal:?}",
        runs.len()
    );
    let attempts = attempt_markers(markers);
    let mut running = 0;
    for i in journal.acked.iter().copied().chain(journal.pending) {
        let Some(run) = runs.get(&workflow_key(i)) else {
            assert_eq!(
                Some(i),
                journal.pending,
                "round {round}: run {i} is missing"
            );
            continue;
        };
        let (nodes, ms) = workflow_run(seed, i);
        assert_eq!(run.input, json!({"ms": ms}), "round {round}");
        let shape: Vec<(String, Vec<String>)> = run
            .nodes
            .iter()
            .map(|n| {
                let deps = n.depends_on.iter().map(|d| d.as_str().to_owned()).collect();
                (n.id.as_str().to_owned(), deps)
            })
            .collect();
        let want: Vec<(String, Vec<String>)> = nodes
            .iter()
            .map(|n| (n.id.clone(), n.depends_on.clone()))
            .collect();
        assert_eq!(shape, want, "round {round}: run {i}");
        assert!(
            !matches!(run.status, RunStatus::Failed | RunStatus::Cancelled),
            "round {round}: {run:?}"
        );
        for node in &run.nodes {
            let id = node.id.as_str();
            running += usize::from(node.status == NodeStatus::Running);
            let mine = |a: u32| attempts.get(&(run.id.to_string(), id.to_owned(), a));
            let last_started = node_attempts(&attempts, &run.id.to_string(), id)
                .last()
                .map_or(0, |(a, _)| *a);
            assert!(
                last_started <= node.attempt,
                "round {round}: {}/{id} attempt {last_started} ran, the node knows {}",
                run.id,
                node.attempt
            );
            if node.status == NodeStatus::Succeeded {
                assert_eq!(node.output, Some(json!({"attempt": node.attempt})));
                let done = mine(node.attempt).and_then(|m| m.2);
                assert!(
                    done.is_some(),
                    "round {round}: {}/{id} succeeded before attempt {}'s work was done",
                    run.id,
                    node.attempt
                );
            }
        }
    }
    let (unleased, unfinished): (i64, i64) = with_pool!(test_db.db, |pool| {
        sqlx::query_as(
            "SELECT \
               (SELECT COUNT(*) FROM wf_nodes WHERE status = 'running' \
                  AND (lease_owner IS NULL OR lease_expires_at IS NULL)), \
               (SELECT COUNT(*) FROM wf_nodes n JOIN wf_runs r ON r.id = n.run_id \
                  WHERE r.status IN ('succeeded', 'failed', 'cancelled') \
                  AND n.status IN ('blocked', 'ready', 'running', 'waiting'))",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    });
    assert_eq!(unleased, 0, "round {round}: running nodes without a lease");
    assert_eq!(unfinished, 0, "round {round}: finished runs with work left");
    running
}

/// The end: every run succeeded; each node's last attempt started is the one whose output
/// was recorded (each attempt started by one process); a node started only after every node it depends on had
/// finished its work; an attempt was abandoned only by a killed helper (or was the flaky
/// step's first); no node holds a lease.
async fn check_finished(
    test_db: &TestDb,
    runs: &BTreeMap<String, ate_orchestrate::workflow::Run>,
    markers: &Path,
    seed: u64,
    drainer: u32,
) -> usize {
    let attempts = attempt_markers(markers);
    let mut retried = 0;
    for (key, run) in runs {
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
        let i: u64 = key.strip_prefix("crash-").unwrap().parse().unwrap();
        let (nodes, _) = workflow_run(seed, i);
        let end_of =
            |node: &str, attempt: u32| attempts[&(run.id.to_string(), node.to_owned(), attempt)].2;
        for (node, spec) in run.nodes.iter().zip(&nodes) {
            let id = node.id.as_str();
            assert_eq!(node.status, NodeStatus::Succeeded, "{run:?}");
            assert_eq!(node.output, Some(json!({"attempt": node.attempt})));
            // An attempt whose helper was killed between its claim and its first marker
            // left none.
            let mine = node_attempts(&attempts, &run.id.to_string(), id);
            assert_eq!(
                mine.last().map(|(a, _)| *a),
                Some(node.attempt),
                "{}/{id}: the last attempt started is the one recorded",
                run.id
            );
            for (a, (pid, _, _)) in &mine[..mine.len() - 1] {
                assert!(
                    *pid != drainer || (spec.step == "flaky" && *a == 1),
                    "{}/{id}: attempt {a} abandoned by a helper that was not killed",
                    run.id
                );
            }
            retried += usize::from(node.attempt > 1 + u32::from(spec.step == "flaky"));
            for dep in &node.depends_on {
                let dep_last = run
                    .nodes
                    .iter()
                    .find(|n| n.id == *dep)
                    .map(|n| n.attempt)
                    .unwrap();
                let dep_done = end_of(dep.as_str(), dep_last)
                    .unwrap_or_else(|| panic!("{}/{dep}: the last attempt's end", run.id));
                for (a, (_, started, _)) in &mine {
                    assert!(
                        started.is_none_or(|t| t > dep_done),
                        "{}/{id} attempt {a} started before {dep} was done",
                        run.id
                    );
                }
            }
        }
    }
    let left: i64 = with_pool!(test_db.db, |pool| {
        sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM wf_nodes WHERE status <> 'succeeded') \
                  + (SELECT COUNT(*) FROM wf_runs WHERE status <> 'succeeded')",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    });
    assert_eq!(left, 0, "runs or nodes not finished");
    retried
}

fn start_crasher(url: &str, journal: &Path, markers: &Path, seed: u64, drain: bool) -> Reaped {
    let mut child = Command::new(env!("CARGO_BIN_EXE_workflow-crasher"))
        .args([
            url,
            &journal.display().to_string(),
            &markers.display().to_string(),
            &seed.to_string(),
        ])
        .args(drain.then_some("drain"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the workflow-crasher process");
    await_ready(&mut child);
    Reaped(child)
}

async fn runs_killed_at_random_moments(backend: Backend) {
    let Some(test_db) = TestDb::open(backend).await else {
        return;
    };
    let (seed, kills) = seed_and_kills("workflow runs", backend, KILLS);
    let dir = tempfile::tempdir().unwrap();
    let (journal_path, markers) = (dir.path().join("journal"), dir.path().join("markers"));
    std::fs::create_dir(&markers).unwrap();
    let store = SqlWorkflowStore::open(test_db.db.clone()).await.unwrap();
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut in_flight, mut pending) = (0, 0);
    for round in 0..kills {
        let mut helper = start_crasher(&test_db.url, &journal_path, &markers, seed, false);
        tokio::time::sleep(Duration::from_millis(rng.u64(100..900))).await;
        helper.0.kill().expect("SIGKILL the helper");
        helper.0.wait().unwrap();
        let journal = read_run_journal(&journal_path);
        pending += usize::from(journal.pending.is_some());
        in_flight += check_runs(&test_db, &store, &journal, &markers, seed, round).await;
    }
    // A helper that is not killed finishes everything, the interrupted submission included.
    let drainer = start_crasher(&test_db.url, &journal_path, &markers, seed, true);
    let admin = Principal::platform_admin("ops:test").unwrap();
    let tenant = SqlTenantStore::new(test_db.db.clone())
        .get_by_slug(&admin, "crash")
        .await
        .unwrap()
        .id;
    let mut runs = BTreeMap::new();
    let mut journal = read_run_journal(&journal_path);
    wait_until("every run to finish", async || {
        journal = read_run_journal(&journal_path);
        runs = all_runs(&store, tenant).await;
        journal.pending.is_none() && runs.values().all(|r| r.status.is_finished())
    })
    .await;
    let pid = drainer.0.id();
    drop(drainer);
    check_runs(&test_db, &store, &journal, &markers, seed, kills).await;
    assert_eq!(runs.len(), journal.acked.len(), "one run per submission");
    let retried = check_finished(&test_db, &runs, &markers, seed, pid).await;
    let nodes: usize = runs.values().map(|r| r.nodes.len()).sum();
    assert!(
        in_flight > 0,
        "no kill hit a step in flight: kill later or more often"
    );
    println!(
        "{} runs ({nodes} nodes) over {kills} kills: {in_flight} steps were running at a kill, \
         {retried} nodes ran again after one, {pending} kills hit a submission",
        runs.len()
    );
    tests::crash::assert_chain_intact(
        &ate_core::SqlAuditSink::new(test_db.db.clone()),
        tenant,
        kills,
    )
    .await;
    test_db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_survive_sigkill_on_a_sqlite_file() {
    runs_killed_at_random_moments(Backend::SqliteFile).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_survive_sigkill_on_postgres() {
    runs_killed_at_random_moments(Backend::Postgres).await;
}
