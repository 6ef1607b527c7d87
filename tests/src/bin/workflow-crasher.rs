//! Workflow runs in their own process, for the crash-consistency test
//! (`tests/workflow_crash.rs`), which kills it with SIGKILL at random moments.
//!
//! ```text
//! workflow-crasher <database-url> <journal> <marker-dir> <seed> [drain]
//! ```
//!
//! Runs a worker (lease 600 ms, 10 s with `drain`; four places) and submits run after run to tenant `crash`:
//! submission *i* is [`tests::crash::workflow_run`]`(seed, i)`, with idempotency key
//! [`tests::crash::workflow_key`]`(i)`. Before each submission it appends `BEGIN i` to the
//! journal, after it `ACK i`, each line flushed to disk. A restarted helper cuts off a line
//! the kill tore and submits a `BEGIN` without its `ACK` again (the same key: a run that was stored is not stored
//! twice), then carries on. With `drain` it only does that, and works.
//!
//! Every attempt of a step writes `<marker-dir>/<run>.<node>.<attempt>.<pid>.start` when it
//! starts and `….end` when its work is done (each holding the time in nanoseconds since the
//! epoch), then returns `{"attempt": n}`; step `flaky` fails its first attempt (after the end
//! marker) with a retryable error.

use ate_core::{Db, Principal, SqlTenantStore, TenantId};
use ate_orchestrate::workflow::{
    DagSpec, Limits, NodeError, NodeSpec, RetrySpec, RunSpec, SqlWorkflowStore, StepContext,
    WorkerConfig, WorkflowEngine, WorkflowStore,
};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tests::crash::{workflow_key, workflow_run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (url, journal, markers, seed, drain) = match args.as_slice() {
        [_, url, journal, markers, seed] => (url, journal, markers, seed, false),
        [_, url, journal, markers, seed, drain] if drain == "drain" => {
            (url, journal, markers, seed, true)
        }
        _ => {
            eprintln!(
                "usage: workflow-crasher <database-url> <journal> <marker-dir> <seed> [drain]"
            );
            return std::process::ExitCode::from(2);
        }
    };
    let Ok(seed) = seed.parse::<u64>() else {
        eprintln!("workflow-crasher: the seed must be a number");
        return std::process::ExitCode::from(2);
    };
    match run(url, Path::new(journal), PathBuf::from(markers), seed, drain).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workflow-crasher: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Nanoseconds since the epoch.
fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Writes a marker file and forces it to disk (the process may be killed next).
fn mark(path: &Path) -> Result<(), NodeError> {
    let io = |e: std::io::Error| NodeError::permanent("io", e.to_string());
    let mut file = std::fs::File::create(path).map_err(io)?;
    file.write_all(now_nanos().to_string().as_bytes())
        .map_err(io)?;
    file.sync_all().map_err(io)
}

/// The step handler: `flaky` fails its first attempt.
async fn work(
    ctx: StepContext,
    input: Value,
    markers: PathBuf,
    flaky: bool,
) -> Result<Value, NodeError> {
    let name = format!(
        "{}.{}.{}.{}",
        ctx.run,
        ctx.node,
        ctx.attempt,
        std::process::id()
    );
    mark(&markers.join(format!("{name}.start")))?;
    let ms = input["input"]["ms"].as_u64().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    mark(&markers.join(format!("{name}.end")))?;
    if flaky && ctx.attempt == 1 {
        return Err(NodeError::retryable("flaky", "the first attempt fails"));
    }
    Ok(json!({ "attempt": ctx.attempt }))
}

async fn run(
    url: &str,
    journal_path: &Path,
    markers: PathBuf,
    seed: u64,
    drain: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let done = std::fs::read_to_string(journal_path).unwrap_or_default();
    // Only whole lines count: the kill may have torn the last one.
    let whole = &done[..done.rfind('\n').map_or(0, |n| n + 1)];
    let (mut begun, mut acked) = (None, None);
    for line in whole.lines() {
        let mut words = line.split(' ');
        match (
            words.next(),
            words.next().and_then(|i| i.parse::<u64>().ok()),
        ) {
            (Some("BEGIN"), Some(i)) => begun = Some(i),
            (Some("ACK"), Some(i)) => acked = Some(i),
            _ => return Err(format!("an unexpected journal line: {line:?}").into()),
        }
    }
    // The submission to make first: one begun and not acknowledged is made again.
    let mut next = match (begun, acked) {
        (Some(b), a) if a != Some(b) => b,
        (Some(b), _) => b + 1,
        (None, _) => 0,
    };
    let db = Db::open(url).await?;
    let store = Arc::new(SqlWorkflowStore::open(db.clone()).await?);
    let admin = Principal::platform_admin("ops:crasher")?;
    let tenants = SqlTenantStore::new(db);
    let tenant: TenantId = tests::crash::crash_tenant(&tenants, &admin).await?;
    let _events = store.events().await?;
    let (m1, m2) = (markers.clone(), markers);
    let engine = WorkflowEngine::builder(store.clone())
        .step("work", move |ctx: StepContext, input: Value| {
            work(ctx, input, m1.clone(), false)
        })?
        .step("flaky", move |ctx: StepContext, input: Value| {
            work(ctx, input, m2.clone(), true)
        })?
        .build();
    let _worker = engine.start_worker(
        WorkerConfig::new(format!("crasher-{}", std::process::id()))
            .concurrency(4)
            // Killed helpers' leases run out soon; the draining helper, never killed while
            // it works, is not kept waiting past its own by a busy machine.
            .lease(Duration::from_millis(if drain { 10_000 } else { 600 }))
            .poll_interval(Duration::from_millis(20))
            .maintain_interval(Duration::from_millis(50)),
    )?;
    let mut journal = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal_path)?;
    // A line torn by the kill is cut off: a torn `BEGIN` never submitted anything, and a
    // torn `ACK` leaves its submission begun, to be made again.
    journal.set_len(whole.len() as u64)?;
    let retry = RetrySpec::default()
        .initial_interval_ms(30)
        .jitter(0.0)
        .max_attempts(50);
    let known = |s: &ate_orchestrate::workflow::StepName| matches!(s.as_str(), "work" | "flaky");
    println!("ready");
    let last = if drain { begun } else { None };
    loop {
        if drain && last.is_none_or(|b| next > b) {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            continue;
        }
        let (nodes, ms) = workflow_run(seed, next);
        let dag = nodes.iter().fold(DagSpec::new(), |dag, node| {
            let spec = node
                .depends_on
                .iter()
                .fold(NodeSpec::step(&node.id, node.step), |n, d| n.depends_on(d))
                .retry(retry.clone());
            dag.node(spec)
        });
        let spec = RunSpec::new(dag, json!({ "ms": ms }))
            .idempotency_key(workflow_key(next))
            .validate(&Limits::default(), &known)?;
        if begun != Some(next) {
            writeln!(journal, "BEGIN {next}")?;
            journal.sync_data()?;
        }
        store.submit(&admin, tenant, &spec).await?;
        writeln!(journal, "ACK {next}")?;
        journal.sync_data()?;
        next += 1;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}
