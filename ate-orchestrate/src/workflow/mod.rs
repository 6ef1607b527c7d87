//! Durable workflows: DAGs of steps run for a tenant, with retries, timeouts, signals and
//! conditional edges; state in ATE's database so runs survive crashed workers.
//!
//! **Status: being built (issue 11).** What is here today is complete and tested on its own:
//!
//! * [`spec`]: a workflow as plain data ([`DagSpec`], [`NodeSpec`]) with a strict JSON form
//!   and the [`Limits`] that bound it;
//! * [`dag`]: validation into a [`ValidDag`] (unique ids, registered steps, dependencies that
//!   exist, cycles found and spelled out, fan-out and fan-in);
//! * [`policy`]: retries ([`RetrySpec`] → [`NodeRetry`], Temporal's defaults plus jitter) and
//!   timeouts ([`NodeTimeouts`]: start-to-close, schedule-to-close, heartbeat);
//! * [`condition`]: conditional edges ([`Condition`]) and what a node's handler receives
//!   ([`node_input`]);
//! * [`run`]: a run to submit ([`RunSpec`]: input, idempotency key, start time, priority,
//!   labels, run timeout);
//! * [`state`]: what happens to a run, as a pure state machine ([`RunState`]): releasing
//!   dependents, skipping, retries with backoff, failing or going on, signals, cancellation,
//!   run timeouts, retrying a failed run from its failure. It is the reference the stores
//!   will be tested against.
//!
//! * [`store`]: the [`WorkflowStore`] trait and [`SqlWorkflowStore`] (SQLite, PostgreSQL):
//!   runs submitted (idempotently, audited, with their nodes), read, listed and cancelled;
//!   and the worker side: claims with leases and fencing tokens (`SKIP LOCKED` on
//!   PostgreSQL), heartbeats that report a cancel, completions recorded exactly once,
//!   failures retried through [`RunState`], and a maintenance pass that starts delayed runs,
//!   takes back expired leases (so no node stays `running` after its worker died) and times
//!   runs out.
//!
//! * [`engine`]: [`WorkflowEngine`] (step handlers registered by name, submissions checked
//!   against them) and its [`Worker`]s: tokio tasks that claim due nodes, run handlers with a
//!   [`StepContext`] (tenant, run, node, attempt, idempotency key, cancellation, logs,
//!   heartbeats), renew their leases, enforce start-to-close and heartbeat timeouts, record
//!   results, run the maintenance pass, and shut down gracefully (unfinished attempts are
//!   given back at once).
//!
//! Signals are delivered with [`WorkflowStore::signal`]; a signal node's timeout is applied by
//! the maintenance pass.
//!
//! Handlers write per-run logs through [`StepContext::log`]; they are read with
//! [`WorkflowStore::logs`].
//!
//! Claims are fair across tenants, with optional limits on running nodes per tenant
//! ([`SqlWorkflowStore::with_max_running_per_tenant`]) and in all
//! ([`SqlWorkflowStore::with_max_running`]). [`WorkflowStore::submit_many`] stores up to
//! [`MAX_SUBMIT_BATCH`] runs in one transaction.
//!
//! Every committed change is a [`RunEvent`] ([`store::events`]: in-process on SQLite,
//! `LISTEN`/`NOTIFY` across hosts on PostgreSQL). Idle workers wake on them at once (and
//! when a retry's backoff or a delayed start comes), and operators follow a tenant or a
//! run with [`WorkflowStore::watch`].
//!
//! A step may start **child runs** ([`StepContext::start_child`]) and wait for them
//! ([`StepContext::wait_child`]); a child is cancelled when its parent ends or stops.
//!
//! **Schedules** ([`schedule`], [`ScheduleSpec`]) submit a run at every tick of a cron
//! expression in a time zone, each tick exactly once across hosts.
//!
//! **Observability**: [`WorkflowStore::stats`] reads every tenant's workload, and
//! [`WorkflowMetrics`] ([`metrics`]) exports it and what the workers did as Prometheus
//! families; [`alerts::Condition::WorkflowBacklogAbove`](crate::alerts::Condition::WorkflowBacklogAbove)
//! alerts on a backlog.
//!
//! Python: `ate.workflows` in the `ate-python` crate (Python step handlers, workers on
//! background threads).
//!
//! Integration endpoints ([`crate::integrations`]) give DAGs a built-in step that calls a
//! tenant's external HTTP endpoint (`ate.integration`, with [`NodeSpec::params`]).
//!
//! **Throughput**: an engine's workers hand their results and their requests for work to
//! one recorder, which does them together in one transaction
//! ([`WorkflowStore::record_and_claim`]): many completions and the claims of the next nodes
//! share a commit, and each costs a fixed number of statements however many runs it holds.
//! `benches/README.md` has the figures, against a bare SQL queue and against DBOS and
//! procrastinate.
//!
//! ```
//! use ate_orchestrate::workflow::{Condition, DagSpec, Limits, NodeSpec, RetrySpec, RunSpec};
//! use serde_json::json;
//!
//! let dag = DagSpec::new()
//!     .node(NodeSpec::step("clone", "git.clone"))
//!     .node(NodeSpec::step("scan", "scan").depends_on("clone").retry(RetrySpec::default().max_attempts(5)))
//!     .node(
//!         NodeSpec::step("report", "report")
//!             .depends_on("scan")
//!             .when(Condition::equals("scan", "/clean", json!(false))),
//!     );
//! let run = RunSpec::new(dag, json!({"repo": "https://example.com/r.git"})).idempotency_key("import-7");
//! let valid = run.validate(&Limits::default(), &|step| ["git.clone", "scan", "report"].contains(&step.as_str()))?;
//! assert_eq!(valid.dag().roots().count(), 1);
//!
//! let cyclic = DagSpec::new()
//!     .node(NodeSpec::step("a", "scan").depends_on("b"))
//!     .node(NodeSpec::step("b", "scan").depends_on("a"));
//! let e = cyclic.validate(&Limits::default(), &|_| true).unwrap_err();
//! assert!(e.to_string().contains("cycle: a → b → a") || e.to_string().contains("cycle: b → a → b"));
//! # Ok::<(), ate_orchestrate::OrchestrateError>(())
//! ```

pub mod condition;
pub mod dag;
pub mod engine;
pub mod metrics;
pub mod policy;
pub mod run;
pub mod schedule;
pub mod spec;
pub mod state;
pub mod store;

pub use condition::{Condition, ConditionOp, node_input};
pub use dag::{NodeId, NodeKind, SignalName, StepName, ValidDag, ValidNode};
pub use engine::{
    EngineBuilder, ShutdownReport, StepContext, StepHandler, StepResult, Worker, WorkerConfig,
    WorkflowEngine,
};
pub use metrics::{ATTEMPT_DURATION_BUCKETS, AttemptOutcome, WorkflowMetrics};
pub use policy::{NodeRetry, NodeTimeouts, RetrySpec, ValidTimeouts};
pub use run::{RunSpec, ValidRun};
pub use schedule::{CronTz, SCHEDULE_LABEL, Schedule, ScheduleName, ScheduleSpec, ValidSchedule};
pub use spec::{DagSpec, Limits, NodeSpec};
pub use state::{NodeError, NodeState, NodeStatus, RunState, RunStatus};
pub use store::{
    Claim, ClaimRequest, Lease, LogEntry, LogLevel, LogQuery, MAX_LOG_BATCH, MAX_SUBMIT_BATCH,
    Maintenance, NodeChange, NodeTask, NodeView, RecordedAndClaimed, Run, RunEvent, RunQuery,
    RunWatch, SqlWorkflowStore, Submitted, TenantWorkload, WORKFLOWS_READ, WORKFLOWS_RUN, WatchGap,
    WorkflowStats, WorkflowStore,
};
