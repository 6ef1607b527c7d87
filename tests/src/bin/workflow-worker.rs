//! A workflow worker in its own process, for the crash tests (`tests/workflow_crash.rs`):
//! they kill it with SIGKILL in the middle of a step and check that another worker finishes
//! the run.
//!
//! ```text
//! workflow-worker <database-url> <worker-id> <marker-dir>
//! ```
//!
//! Step `slow` writes `<marker-dir>/<run>.<node>.<attempt>.<worker-id>` when an attempt
//! starts, sleeps `input.ms` milliseconds and returns `{"attempt": n}`. The worker uses a
//! 1 s lease and runs until it is killed.

use ate_core::Db;
use ate_orchestrate::workflow::{SqlWorkflowStore, StepContext, WorkerConfig, WorkflowEngine};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, id, markers] = args.as_slice() else {
        eprintln!("usage: workflow-worker <database-url> <worker-id> <marker-dir>");
        return std::process::ExitCode::from(2);
    };
    match serve(url, id, PathBuf::from(markers)).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workflow-worker: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(url: &str, id: &str, markers: PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let db = Db::open(url).await?;
    let store = Arc::new(SqlWorkflowStore::open(db).await?);
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
            .lease(Duration::from_secs(1))
            .poll_interval(Duration::from_millis(10))
            .maintain_interval(Duration::from_millis(50)),
    )?;
    println!("ready");
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}
