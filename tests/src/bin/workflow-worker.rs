//! A workflow worker in its own process, for the crash tests (`tests/workflow_crash.rs`):
//! they kill it with SIGKILL in the middle of a step and check that another worker finishes
//! the run.
//!
//! ```text
//! workflow-worker <database-url> <worker-id> <marker-dir> [<poll-ms> <maintain-ms> <lease-ms>]
//! ```
//!
//! Step `slow` writes `<marker-dir>/<run>.<node>.<attempt>.<worker-id>` when an attempt
//! starts, sleeps `input.ms` milliseconds and returns `{"attempt": n}`. The worker uses a
//! lease of `lease-ms` (default 1,000), polls every `poll-ms` (default 10) and runs
//! maintenance every `maintain-ms` (default 50), until it is killed.

use ate_core::Db;
use ate_orchestrate::workflow::{SqlWorkflowStore, StepContext, WorkerConfig, WorkflowEngine};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (url, id, markers, timing) = match args.as_slice() {
        [_, url, id, markers] => (url, id, markers, [10, 50, 1_000]),
        [_, url, id, markers, timing @ ..] if timing.len() == 3 => {
            let parsed: Result<Vec<u64>, _> = timing.iter().map(|t| t.parse()).collect();
            match parsed.as_deref() {
                Ok(&[poll, maintain, lease]) => (url, id, markers, [poll, maintain, lease]),
                _ => return usage(),
            }
        }
        _ => return usage(),
    };
    let every = timing.map(Duration::from_millis);
    match serve(url, id, PathBuf::from(markers), every).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workflow-worker: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn usage() -> std::process::ExitCode {
    eprintln!(
        "usage: workflow-worker <database-url> <worker-id> <marker-dir> \
         [<poll-ms> <maintain-ms> <lease-ms>]"
    );
    std::process::ExitCode::from(2)
}

async fn serve(
    url: &str,
    id: &str,
    markers: PathBuf,
    [poll, maintain, lease]: [Duration; 3],
) -> Result<(), Box<dyn std::error::Error>> {
    let db = Db::open(url).await?;
    let store = Arc::new(SqlWorkflowStore::open(db).await?);
    // Listening before the worker starts, so "ready" means notifications reach it.
    let _events = ate_orchestrate::workflow::WorkflowStore::events(store.as_ref()).await?;
    let me = id.to_owned();
    let engine = WorkflowEngine::builder(store)
        .step("slow", move |ctx: StepContext, input: Value| {
            let marker = markers.join(format!("{}.{}.{}.{me}", ctx.run, ctx.node, ctx.attempt));
            async move {
                std::fs::write(&marker, b"started").map_err(|e| {
                    ate_orchestrate::workflow::NodeError::permanent("io", e.to_string())
                })?;
                let ms = input["input"]["ms"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(json!({ "attempt": ctx.attempt }))
            }
        })?
        .build();
    let _worker = engine.start_worker(
        WorkerConfig::new(id)
            .lease(lease)
            .poll_interval(poll)
            .maintain_interval(maintain),
    )?;
    // Time for its first look for work (a poll), so that after "ready" it is idle.
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!("ready");
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}
