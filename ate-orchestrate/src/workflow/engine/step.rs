//! Steps: the handlers a workflow's nodes run ([`StepHandler`]) and what each attempt is
//! given besides its input ([`StepContext`]).

use super::WorkflowEngine;
use crate::OrchestrateError;
use crate::workflow::dag::NodeId;
use crate::workflow::run::RunSpec;
use crate::workflow::state::NodeError;
use crate::workflow::store::{Lease, Run, Submitted};
use crate::workflow::store::{LogEntry, LogLevel};
use ate_core::{RunId, TenantId};
use chrono::Utc;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a step returns: its output, or why the attempt failed (retryable or not).
pub type StepResult = Result<Value, NodeError>;

/// A step handler: runs one attempt of a node with the node's input (see
/// [`node_input`](crate::workflow::node_input)).
///
/// Attempts run **at least once**: after a crash, a lost lease or a shutdown the same
/// attempt may run again, so a handler with side effects uses
/// [`StepContext::idempotency_key`] (stable across the attempts of one node of one run) to do
/// them once. A handler should return soon after [`StepContext::cancelled`] fires.
pub trait StepHandler: Send + Sync + 'static {
    /// Runs one attempt.
    fn run(
        &self,
        ctx: StepContext,
        input: Value,
    ) -> Pin<Box<dyn Future<Output = StepResult> + Send>>;
}

impl<F, Fut> StepHandler for F
where
    F: Fn(StepContext, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = StepResult> + Send + 'static,
{
    fn run(
        &self,
        ctx: StepContext,
        input: Value,
    ) -> Pin<Box<dyn Future<Output = StepResult> + Send>> {
        Box::pin(self(ctx, input))
    }
}

/// What an attempt knows about itself.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StepContext {
    /// The run's tenant.
    pub tenant: TenantId,
    /// The run.
    pub run: RunId,
    /// The node.
    pub node: NodeId,
    /// This attempt's number (1 = the first).
    pub attempt: u32,
    pub(crate) cancel: CancellationToken,
    pub(crate) logs: Arc<Mutex<Vec<LogEntry>>>,
    pub(crate) beat: Arc<Mutex<tokio::time::Instant>>,
    pub(crate) engine: WorkflowEngine,
    pub(crate) lease: Lease,
}

impl StepContext {
    /// A key stable across every attempt of this node in this run (`<run>/<node>`): pass it
    /// to the systems a step changes so that a repeated attempt changes nothing twice.
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}", self.run, self.node)
    }

    /// Completes when the attempt should stop: the run was cancelled or is failing, the
    /// attempt's start-to-close timeout passed, or the worker is shutting down.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// Writes an entry to the run's log (kept by the store, read with
    /// [`WorkflowStore::logs`](crate::workflow::WorkflowStore::logs)). Entries are sent with the
    /// attempt's next heartbeat and when it ends; an attempt that dies loses what it had not
    /// sent. Messages and fields are bounded ([`LogEntry::new`]).
    pub fn log(&self, level: LogLevel, message: &str, fields: Value) {
        let entry = LogEntry::new(
            Utc::now(),
            level,
            self.node.clone(),
            self.attempt,
            message,
            fields,
        );
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(entry);
    }

    /// [`log`](Self::log) at [`LogLevel::Info`], without fields.
    pub fn info(&self, message: &str) {
        self.log(LogLevel::Info, message, Value::Null);
    }

    /// Says the handler is alive and making progress. A node with a heartbeat timeout
    /// (`timeouts.heartbeat_ms`) must call this at least that often, or the attempt is
    /// cancelled and fails (retryable, kind `heartbeat_timeout`): that catches a handler
    /// stuck inside a long step well before its start-to-close timeout.
    pub fn heartbeat(&self) {
        *self.beat.lock().unwrap_or_else(PoisonError::into_inner) = tokio::time::Instant::now();
    }

    /// Whether [`cancelled`](Self::cancelled) has fired.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Starts `spec` as a **child run** of this node
    /// ([`WorkflowStore::submit_child`](crate::workflow::WorkflowStore::submit_child)): in
    /// this run's tenant, its steps checked against this engine's. The child's idempotency
    /// key is made from [`idempotency_key`](Self::idempotency_key) and the spec's own key
    /// (default `child`), so a repeated attempt starting "the same" child gets the run the
    /// first attempt started instead of a second one; give children of one node distinct
    /// keys. The child is cancelled if this run ends or stops first.
    ///
    /// `InvalidInput` for a spec that does not validate; `Conflict` if this attempt no
    /// longer holds its lease.
    pub async fn start_child(&self, spec: &RunSpec) -> Result<Submitted, OrchestrateError> {
        let own = spec.idempotency_key.as_deref().unwrap_or("child");
        let keyed = spec
            .clone()
            .idempotency_key(format!("{}/{own}", self.idempotency_key()));
        let valid = self.engine.validate(&keyed)?;
        self.engine.store().submit_child(&self.lease, &valid).await
    }

    /// Waits until child run `id` (started by [`start_child`](Self::start_child)) has ended,
    /// and returns it. Woken by the run's events, with a look every second besides;
    /// heartbeats for the handler while it waits. `NotFound` for a run that is not a child
    /// of this run; `Conflict` when this attempt is cancelled meanwhile (return soon: the
    /// child is cancelled with the run).
    pub async fn wait_child(&self, id: RunId) -> Result<Run, OrchestrateError> {
        use tokio::sync::broadcast::error::RecvError;
        let store = self.engine.store();
        let mut events = store.events().await?;
        loop {
            self.heartbeat();
            let run = store.get_child(&self.lease, id).await?;
            if run.status.is_finished() {
                return Ok(run);
            }
            let woken = async {
                loop {
                    match events.recv().await {
                        Ok(event) if event.run != id => continue,
                        Ok(_) | Err(RecvError::Lagged(_)) => return,
                        // The store is gone: the next look (each second) will say more.
                        Err(RecvError::Closed) => std::future::pending::<()>().await,
                    }
                }
            };
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = self.cancel.cancelled() => {
                    return Err(OrchestrateError::Core(ate_core::CoreError::Conflict(
                        "the step was cancelled while waiting for its child run".into(),
                    )));
                }
            }
        }
    }
}
