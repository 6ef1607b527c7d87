//! `ate workflows submit|list|get|watch|logs|cancel`: workflow runs from the command line,
//! on the same database as `ate serve` (whose workers run the steps). Following a run polls
//! it (a quarter second apart), which works on SQLite and PostgreSQL alike.

use super::{CliError, classified, tenant_id};
use crate::host::Host;
use ate_core::{Cursor, ErrorKind, Principal, RunId, TenantId};
use ate_orchestrate::workflow::{
    DagSpec, Limits, LogQuery, NodeTask, Run, RunQuery, RunSpec, RunStatus,
};
use clap::Subcommand;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// How often a followed run is read again.
const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Subcommand)]
pub(crate) enum WorkflowsCmd {
    /// Submit a run of the DAG in FILE (JSON: `{"nodes": [...]}`).
    Submit {
        file: PathBuf,
        #[arg(long)]
        tenant: String,
        /// The run's input (JSON).
        #[arg(long, default_value = "null")]
        input: String,
        /// Submitting again with the same key returns the first run.
        #[arg(long)]
        key: Option<String>,
        /// A label `key=value`; repeat for several.
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Follow the run to its end (exit status 1 unless it succeeds).
        #[arg(long)]
        watch: bool,
    },
    /// List a tenant's runs, newest first.
    List {
        #[arg(long)]
        tenant: String,
        /// `pending`, `running`, `succeeded`, `failed` or `cancelled`.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show a run with its nodes.
    Get {
        run: String,
        #[arg(long)]
        tenant: String,
    },
    /// Follow a run, printing each node's changes, to its end (exit status 1 unless it
    /// succeeds).
    Watch {
        run: String,
        #[arg(long)]
        tenant: String,
    },
    /// Print a run's log entries (with `--follow`, until the run ends).
    Logs {
        run: String,
        #[arg(long)]
        tenant: String,
        /// Only this node's entries.
        #[arg(long)]
        node: Option<String>,
        #[arg(long)]
        follow: bool,
    },
    /// Cancel a run (its running steps are asked to stop).
    Cancel {
        run: String,
        #[arg(long)]
        tenant: String,
    },
}

fn bad(message: impl Into<String>) -> CliError {
    CliError::new(ErrorKind::InvalidInput, message)
}

fn run_id(given: &str) -> Result<RunId, CliError> {
    given
        .parse()
        .map_err(|_| bad(format!("{given:?} is not a run id")))
}

fn run_json(run: &Run) -> Value {
    json!({
        "id": run.id.to_string(),
        "tenant_id": run.tenant.to_string(),
        "status": run.status.as_str(),
        "error": run.error,
        "labels": run.labels,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "nodes": run.nodes.iter().map(|n| json!({
            "id": n.id.to_string(),
            "step": match &n.task { NodeTask::Step(s) => Some(s.to_string()), _ => None },
            "signal": match &n.task { NodeTask::Signal(s) => Some(s.to_string()), _ => None },
            "status": n.status.as_str(),
            "attempt": n.attempt,
            "output": n.output,
            "error": n.error.as_ref().map(|e| json!({"kind": e.kind, "message": e.message})),
        })).collect::<Vec<_>>(),
    })
}

fn run_table(run: &Run) -> String {
    let mut out = format!("run {}  {}\n", run.id, run.status.as_str());
    for n in &run.nodes {
        let error = n
            .error
            .as_ref()
            .map(|e| format!("  {}: {}", e.kind, e.message))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {:<24} {:<10} attempt {}{error}\n",
            n.id.to_string(),
            n.status.as_str(),
            n.attempt
        ));
    }
    if let Some(e) = &run.error {
        out.push_str(&format!("  error: {e}\n"));
    }
    out
}

/// Follows run `id` until it ends, printing each node's status changes as they are seen
/// (unless `quiet`: JSON output prints only the end).
async fn follow(
    host: &Host,
    p: &Principal,
    tenant: TenantId,
    id: RunId,
    quiet: bool,
) -> Result<Run, CliError> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let run = host
            .workflows
            .store()
            .get(p, tenant, id)
            .await
            .map_err(classified)?;
        for n in &run.nodes {
            let status = n.status.as_str().to_owned();
            if seen.get(&n.id.to_string()) != Some(&status) {
                if !quiet {
                    println!("{:<24} {status}", n.id.to_string());
                }
                seen.insert(n.id.to_string(), status);
            }
        }
        if run.finished_at.is_some() {
            return Ok(run);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The result of a followed run: its JSON and table, or an error unless it succeeded.
fn ended(run: &Run) -> Result<(Value, String), CliError> {
    if run.status == RunStatus::Succeeded {
        Ok((run_json(run), run_table(run)))
    } else {
        Err(CliError::new(
            ErrorKind::Internal,
            format!(
                "run {} ended {}{}",
                run.id,
                run.status.as_str(),
                run.error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        ))
    }
}

pub(crate) async fn workflows(
    host: &Host,
    cmd: WorkflowsCmd,
    json_out: bool,
) -> Result<(Value, String), CliError> {
    let p = &host.system;
    match cmd {
        WorkflowsCmd::Submit {
            file,
            tenant,
            input,
            key,
            labels,
            watch,
        } => {
            let tenant = tenant_id(host, &tenant).await?;
            let text = std::fs::read(&file)
                .map_err(|e| bad(format!("cannot read {}: {e}", file.display())))?;
            let dag = DagSpec::from_json(&text, &Limits::default()).map_err(classified)?;
            let input: Value = serde_json::from_str(&input)
                .map_err(|e| bad(format!("--input is not JSON: {e}")))?;
            let mut spec = RunSpec::new(dag, input);
            spec.idempotency_key = key;
            for l in labels {
                let (k, v) = l
                    .split_once('=')
                    .ok_or_else(|| bad(format!("--label {l:?} is not key=value")))?;
                spec.labels.insert(k.to_owned(), v.to_owned());
            }
            let submitted = host
                .workflows
                .submit(p, tenant, &spec)
                .await
                .map_err(classified)?;
            let id = submitted.run.id;
            if !watch {
                let verb = if submitted.created {
                    "submitted"
                } else {
                    "already submitted"
                };
                let line = format!("{verb} run {id}\n");
                return Ok((run_json(&submitted.run), line));
            }
            if !json_out {
                println!("run {id}");
            }
            ended(&follow(host, p, tenant, id, json_out).await?)
        }
        WorkflowsCmd::List {
            tenant,
            status,
            limit,
        } => {
            let tenant = tenant_id(host, &tenant).await?;
            let mut query = RunQuery::new().limit(limit);
            if let Some(s) = status {
                query = query.status(RunStatus::parse(&s).map_err(classified)?);
            }
            let page = host
                .workflows
                .store()
                .list(p, tenant, &query)
                .await
                .map_err(classified)?;
            let table = page
                .items
                .iter()
                .map(|r| format!("{}  {:<10} {}\n", r.id, r.status.as_str(), r.created_at))
                .collect();
            let items: Vec<Value> = page.items.iter().map(run_json).collect();
            Ok((
                json!({"items": items, "next_cursor": page.next_cursor.map(|c| c.to_string())}),
                table,
            ))
        }
        WorkflowsCmd::Get { run, tenant } => {
            let tenant = tenant_id(host, &tenant).await?;
            let run = host
                .workflows
                .store()
                .get(p, tenant, run_id(&run)?)
                .await
                .map_err(classified)?;
            Ok((run_json(&run), run_table(&run)))
        }
        WorkflowsCmd::Watch { run, tenant } => {
            let tenant = tenant_id(host, &tenant).await?;
            ended(&follow(host, p, tenant, run_id(&run)?, json_out).await?)
        }
        WorkflowsCmd::Logs {
            run,
            tenant,
            node,
            follow: keep,
        } => {
            let tenant = tenant_id(host, &tenant).await?;
            let id = run_id(&run)?;
            let store = host.workflows.store();
            let mut all: Vec<Value> = Vec::new();
            loop {
                // Read from the start each time and print what is new (oldest first).
                let ended = store
                    .get(p, tenant, id)
                    .await
                    .map_err(classified)?
                    .finished_at
                    .is_some();
                let mut entries = Vec::new();
                let mut cursor: Option<Cursor> = None;
                loop {
                    let mut query = LogQuery::new();
                    query.node = node.clone();
                    query.cursor = cursor.take();
                    let page = store
                        .logs(p, tenant, id, &query)
                        .await
                        .map_err(classified)?;
                    entries.extend(page.items);
                    match page.next_cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                for e in entries.iter().skip(all.len()) {
                    if !json_out {
                        let fields = if e.fields.is_null() {
                            String::new()
                        } else {
                            e.fields.to_string()
                        };
                        println!(
                            "{} {:<5} {} #{} {} {fields}",
                            e.at.format("%H:%M:%S%.3f"),
                            e.level.as_str(),
                            e.node,
                            e.attempt,
                            e.message,
                        );
                    }
                    all.push(json!({"at": e.at, "level": e.level.as_str(), "node": e.node.to_string(),
                                    "attempt": e.attempt, "message": e.message, "fields": e.fields}));
                }
                if !keep || ended {
                    break;
                }
                tokio::time::sleep(POLL).await;
            }
            Ok((Value::Array(all), String::new()))
        }
        WorkflowsCmd::Cancel { run, tenant } => {
            let tenant = tenant_id(host, &tenant).await?;
            let run = host
                .workflows
                .store()
                .cancel(p, tenant, run_id(&run)?)
                .await
                .map_err(classified)?;
            let line = format!(
                "run {} is {}\n",
                run.id,
                run.stopping.unwrap_or(run.status).as_str()
            );
            Ok((run_json(&run), line))
        }
    }
}
