//! What happens to a run, as a pure state machine: [`RunState`] holds the run's and every
//! node's status, and each method applies one event (a node started, succeeded or failed, a
//! signal arrived, a cancel was asked, the run timed out, a failed run is retried).
//!
//! This is the reference semantics of the engine. The database stores apply the same rules in
//! SQL, and their conformance suite checks them against this model:
//!
//! * A new run's roots are `ready` (step nodes) or `waiting` (signal nodes); every other node
//!   is `blocked` until all its dependencies have finished.
//! * When a node's last dependency finishes, the node is **skipped** if any dependency was
//!   skipped or failed (failure allowed by `continue_on_failure`), or if its condition does
//!   not hold on the output it reads; otherwise it becomes `ready` or `waiting`. A skipped
//!   node's dependents are thus skipped in turn.
//! * A failed attempt is retried (the node is `ready` again after the policy's wait) while
//!   the retry policy allows and the schedule-to-close timeout leaves time; otherwise the node
//!   has **failed**. Then the run fails, and every node not yet finished is cancelled. The
//!   exception is `continue_on_failure`: the run goes on without that node.
//! * A run **succeeds** when every node has finished without a failure that failed the run
//!   (skipped nodes and allowed failures included).
//! * **Cancelling** a run is idempotent and does nothing to a finished run. Nodes that have
//!   not started are cancelled at once. Running handlers are asked to stop: the run ends
//!   `cancelled` once each has returned, whatever it returned. A run timeout does the same
//!   but ends `failed`.
//! * **Retrying** a failed run from its failure keeps every succeeded node and its output.
//!   Everything else starts again, with fresh attempt counts.

use super::dag::{NodeKind, SignalName, ValidDag};
use crate::OrchestrateError;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

/// A run's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RunStatus {
    /// Submitted, not started (a delayed run, or not yet picked up).
    Pending,
    /// Started: some node is not finished.
    Running,
    /// Every node finished, none failed the run.
    Succeeded,
    /// A node failed for good, or the run timed out.
    Failed,
    /// Cancelled.
    Cancelled,
}

/// A node's status within its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NodeStatus {
    /// Waiting for its dependencies.
    Blocked,
    /// May be claimed by a worker (from its `ready_at`).
    Ready,
    /// A worker runs an attempt.
    Running,
    /// A signal node waiting for its signal.
    Waiting,
    /// Finished with an output.
    Succeeded,
    /// Finished with an error, for good.
    Failed,
    /// Not run: a dependency was skipped or failed, or its condition did not hold.
    Skipped,
    /// Not run, or abandoned, because the run ended.
    Cancelled,
}

macro_rules! status_names {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The status as stored and shown (`snake_case`).
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }

            /// Parses [`as_str`](Self::as_str)'s form.
            pub fn parse(s: &str) -> Result<Self, OrchestrateError> {
                match s {
                    $($name => Ok($ty::$variant),)*
                    other => Err(OrchestrateError::invalid(
                        stringify!($ty),
                        format!("unknown status {other:?}"),
                    )),
                }
            }
        }
    };
}

status_names!(RunStatus {
    Pending => "pending",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Cancelled => "cancelled",
});
status_names!(NodeStatus {
    Blocked => "blocked",
    Ready => "ready",
    Running => "running",
    Waiting => "waiting",
    Succeeded => "succeeded",
    Failed => "failed",
    Skipped => "skipped",
    Cancelled => "cancelled",
});

impl RunStatus {
    /// Whether the run has ended.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

impl NodeStatus {
    /// Whether the node has ended (it will not run again in this run, unless the run is
    /// retried).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            NodeStatus::Succeeded
                | NodeStatus::Failed
                | NodeStatus::Skipped
                | NodeStatus::Cancelled
        )
    }
}

/// Why an attempt failed, as a handler (or the engine, for a timeout) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeError {
    /// A short kind (`unavailable`, `invalid_input`, `timeout`, …), matched against a retry
    /// policy's non-retryable kinds.
    pub kind: String,
    /// What happened.
    pub message: String,
    /// Whether the handler considers a retry worthwhile.
    pub retryable: bool,
}

impl NodeError {
    /// An error that may succeed when retried.
    pub fn retryable(kind: impl Into<String>, message: impl Into<String>) -> Self {
        NodeError {
            kind: kind.into(),
            message: message.into(),
            retryable: true,
        }
    }

    /// An error that retrying cannot fix.
    pub fn permanent(kind: impl Into<String>, message: impl Into<String>) -> Self {
        NodeError {
            kind: kind.into(),
            message: message.into(),
            retryable: false,
        }
    }
}

/// One node's state within its run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NodeState {
    /// Its status.
    pub status: NodeStatus,
    /// Attempts started so far.
    pub attempt: u32,
    /// When it may be claimed (set while `ready`).
    pub ready_at: Option<DateTime<Utc>>,
    /// When it first became ready (schedule-to-close counts from here).
    pub first_ready_at: Option<DateTime<Utc>>,
    /// Its output, once succeeded (a signal node's output is the signal's payload).
    pub output: Option<Value>,
    /// The last attempt's error.
    pub error: Option<NodeError>,
    /// The handler of the running attempt has been asked to stop.
    pub cancel_requested: bool,
}

impl NodeState {
    pub(crate) fn blocked() -> Self {
        NodeState {
            status: NodeStatus::Blocked,
            attempt: 0,
            ready_at: None,
            first_ready_at: None,
            output: None,
            error: None,
            cancel_requested: false,
        }
    }
}

/// A run's state: its status and each node's, in the order of [`ValidDag::nodes`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunState {
    /// The run's status.
    pub status: RunStatus,
    /// Each node's state.
    pub nodes: Vec<NodeState>,
    /// A cancel (or the run timeout) has been applied; running handlers are winding down.
    pub stopping: Option<RunStatus>,
    /// Why the run failed.
    pub error: Option<String>,
}

impl RunState {
    /// A submitted run of `dag`, not started.
    pub fn new(dag: &ValidDag) -> Self {
        RunState::empty(dag.nodes().len())
    }

    /// A pending run of `nodes` blocked nodes (for stores that fill it from their rows).
    pub(crate) fn empty(nodes: usize) -> Self {
        RunState {
            status: RunStatus::Pending,
            nodes: vec![NodeState::blocked(); nodes],
            stopping: None,
            error: None,
        }
    }

    /// Starts a pending run: its roots become ready (or waiting). Does nothing to a run that
    /// is not pending.
    pub fn start(&mut self, dag: &ValidDag, now: DateTime<Utc>) {
        if self.status != RunStatus::Pending {
            return;
        }
        self.status = RunStatus::Running;
        let roots: Vec<usize> = dag.roots().collect();
        for i in roots {
            self.release(dag, i, now);
        }
    }

    /// Node `i` (ready, and due at `now`) starts an attempt.
    ///
    /// Refused with `Conflict` when the node is not ready or not yet due, or the run is not
    /// running or is stopping: a worker's claim raced with another change.
    pub fn node_started(&mut self, i: usize, now: DateTime<Utc>) -> Result<u32, OrchestrateError> {
        if self.status != RunStatus::Running || self.stopping.is_some() {
            return Err(conflict(format!("the run is {}", self.describe())));
        }
        let node = self.node_mut(i)?;
        if node.status != NodeStatus::Ready || node.ready_at.is_some_and(|t| t > now) {
            return Err(conflict(format!(
                "node {i} is {} (not ready)",
                node.status.as_str()
            )));
        }
        node.status = NodeStatus::Running;
        node.attempt += 1;
        node.ready_at = None;
        Ok(node.attempt)
    }

    /// Running node `i` returned `output`.
    pub fn node_succeeded(
        &mut self,
        dag: &ValidDag,
        i: usize,
        output: Value,
        now: DateTime<Utc>,
    ) -> Result<(), OrchestrateError> {
        self.require_running_node(i)?;
        if self.stopping.is_some() {
            self.nodes[i].status = NodeStatus::Cancelled;
            self.nodes[i].output = Some(output);
            self.settle_stop();
            return Ok(());
        }
        self.nodes[i].status = NodeStatus::Succeeded;
        self.nodes[i].output = Some(output);
        self.nodes[i].error = None;
        self.finished(dag, i, now);
        Ok(())
    }

    /// Running node `i`'s attempt failed with `error`; `random` (uniform in `[0, 1)`) jitters
    /// the retry's wait. Returns when the node will be retried, or `None` if it has failed
    /// for good.
    pub fn node_failed(
        &mut self,
        dag: &ValidDag,
        i: usize,
        error: NodeError,
        now: DateTime<Utc>,
        random: f64,
    ) -> Result<Option<DateTime<Utc>>, OrchestrateError> {
        self.require_running_node(i)?;
        if self.stopping.is_some() {
            self.nodes[i].status = NodeStatus::Cancelled;
            self.nodes[i].error = Some(error);
            self.settle_stop();
            return Ok(None);
        }
        let NodeKind::Step {
            retry, timeouts, ..
        } = &dag.nodes()[i].kind
        else {
            return Err(conflict(format!("node {i} is not a step")));
        };
        let node = &mut self.nodes[i];
        if retry.retries_after(node.attempt, &error.kind, error.retryable) {
            let at = now + to_delta(retry.delay(node.attempt, random));
            let within_deadline = match (timeouts.schedule_to_close, node.first_ready_at) {
                (Some(limit), Some(first)) => at < first + to_delta(limit),
                _ => true,
            };
            if within_deadline {
                node.status = NodeStatus::Ready;
                node.ready_at = Some(at);
                node.error = Some(error);
                return Ok(Some(at));
            }
        }
        node.status = NodeStatus::Failed;
        node.error = Some(error);
        self.node_failed_for_good(dag, i, now);
        Ok(None)
    }

    /// Running node `i` is given back unfinished (its worker is shutting down): it is ready
    /// again at once, and the attempt does not count against the retry policy. In a
    /// stopping run it is cancelled instead.
    pub fn node_released(&mut self, i: usize, now: DateTime<Utc>) -> Result<(), OrchestrateError> {
        self.require_running_node(i)?;
        let node = &mut self.nodes[i];
        if self.stopping.is_some() {
            node.status = NodeStatus::Cancelled;
            self.settle_stop();
            return Ok(());
        }
        node.status = NodeStatus::Ready;
        node.ready_at = Some(now);
        node.attempt = node.attempt.saturating_sub(1);
        node.cancel_requested = false;
        Ok(())
    }

    /// Delivers signal `name` with `payload`: every node waiting for it succeeds with the
    /// payload as its output. Returns how many nodes it completed.
    ///
    /// `InvalidInput` when no node of the run waits for that signal (it names the signal);
    /// `Conflict` when nodes do wait for it but none is waiting now (not reached yet, or
    /// already done).
    pub fn signal(
        &mut self,
        dag: &ValidDag,
        name: &SignalName,
        payload: &Value,
        now: DateTime<Utc>,
    ) -> Result<usize, OrchestrateError> {
        let waits: Vec<usize> = dag
            .nodes()
            .iter()
            .enumerate()
            .filter(|(_, n)| matches!(&n.kind, NodeKind::Signal { signal, .. } if signal == name))
            .map(|(i, _)| i)
            .collect();
        if waits.is_empty() {
            return Err(OrchestrateError::invalid(
                "signal",
                format!("no node of this workflow waits for signal {name}"),
            ));
        }
        let waiting: Vec<usize> = waits
            .into_iter()
            .filter(|&i| self.nodes[i].status == NodeStatus::Waiting)
            .collect();
        if waiting.is_empty() || self.status != RunStatus::Running || self.stopping.is_some() {
            return Err(conflict(format!(
                "no node is waiting for signal {name} now (the run is {})",
                self.describe()
            )));
        }
        for &i in &waiting {
            self.nodes[i].status = NodeStatus::Succeeded;
            self.nodes[i].output = Some(payload.clone());
            self.finished(dag, i, now);
        }
        Ok(waiting.len())
    }

    /// A signal node that waited past its timeout fails (and with it the run, unless it
    /// may fail).
    pub fn signal_timed_out(
        &mut self,
        dag: &ValidDag,
        i: usize,
        now: DateTime<Utc>,
    ) -> Result<(), OrchestrateError> {
        let node = self.node_mut(i)?;
        if node.status != NodeStatus::Waiting {
            return Err(conflict(format!(
                "node {i} is {} (not waiting)",
                node.status.as_str()
            )));
        }
        node.status = NodeStatus::Failed;
        node.error = Some(NodeError::permanent(
            "timeout",
            "the signal did not arrive in time",
        ));
        self.node_failed_for_good(dag, i, now);
        Ok(())
    }

    /// Cancels the run. Idempotent: returns `false` (and changes nothing) for a finished or
    /// already stopping run.
    pub fn cancel(&mut self) -> bool {
        self.stop(RunStatus::Cancelled, None)
    }

    /// The whole run's timeout passed: like a cancel, but the run ends `failed`.
    pub fn timed_out(&mut self) -> bool {
        self.stop(RunStatus::Failed, Some("the run timed out".into()))
    }

    /// Starts a failed run again from its failure: succeeded nodes keep their outputs, every
    /// other node starts over. `Conflict` unless the run failed.
    pub fn retry_from_failure(
        &mut self,
        dag: &ValidDag,
        now: DateTime<Utc>,
    ) -> Result<(), OrchestrateError> {
        if self.status != RunStatus::Failed {
            return Err(conflict(format!(
                "only a failed run can be retried (the run is {})",
                self.describe()
            )));
        }
        for node in &mut self.nodes {
            if node.status != NodeStatus::Succeeded {
                *node = NodeState::blocked();
            }
        }
        self.status = RunStatus::Running;
        self.stopping = None;
        self.error = None;
        for &i in dag.topological_order() {
            if self.nodes[i].status == NodeStatus::Blocked
                && dag.nodes()[i]
                    .depends_on
                    .iter()
                    .all(|&d| self.nodes[d].status.is_finished())
            {
                self.release(dag, i, now);
            }
        }
        self.complete_if_done();
        Ok(())
    }

    /// The nodes a worker may start at `now`.
    pub fn due(&self, now: DateTime<Utc>) -> impl Iterator<Item = usize> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(_, n)| {
                n.status == NodeStatus::Ready && n.ready_at.is_none_or(|t| t <= now)
            })
            .map(|(i, _)| i)
    }

    // ---- internals ----

    fn describe(&self) -> &'static str {
        match self.stopping {
            Some(_) if !self.status.is_finished() => "stopping",
            _ => self.status.as_str(),
        }
    }

    fn node_mut(&mut self, i: usize) -> Result<&mut NodeState, OrchestrateError> {
        self.nodes.get_mut(i).ok_or_else(|| {
            OrchestrateError::invalid("node", format!("index {i} is not a node of this run"))
        })
    }

    fn require_running_node(&mut self, i: usize) -> Result<(), OrchestrateError> {
        let node = self.node_mut(i)?;
        if node.status != NodeStatus::Running {
            return Err(conflict(format!(
                "node {i} is {} (not running)",
                node.status.as_str()
            )));
        }
        Ok(())
    }

    /// Node `i`'s dependencies are all finished: skip it or make it runnable.
    fn release(&mut self, dag: &ValidDag, i: usize, now: DateTime<Utc>) {
        let spec = &dag.nodes()[i];
        let upstream_ok = spec
            .depends_on
            .iter()
            .all(|&d| self.nodes[d].status == NodeStatus::Succeeded);
        let condition_holds = spec.when.as_ref().is_none_or(|when| {
            dag.index_of(&when.node)
                .and_then(|d| self.nodes[d].output.as_ref())
                .is_some_and(|out| when.holds(out))
        });
        if !(upstream_ok && condition_holds) {
            self.nodes[i].status = NodeStatus::Skipped;
            self.finished(dag, i, now);
            return;
        }
        let node = &mut self.nodes[i];
        match spec.kind {
            NodeKind::Step { .. } => {
                node.status = NodeStatus::Ready;
                node.ready_at = Some(now);
                node.first_ready_at = Some(now);
            }
            NodeKind::Signal { .. } => {
                node.status = NodeStatus::Waiting;
                node.first_ready_at = Some(now);
            }
        }
    }

    /// Node `i` finished in a way that lets the run go on: release each dependent whose
    /// dependencies are now all finished, then see whether the run is done.
    fn finished(&mut self, dag: &ValidDag, i: usize, now: DateTime<Utc>) {
        for &d in &dag.nodes()[i].dependents {
            if self.nodes[d].status == NodeStatus::Blocked
                && dag.nodes()[d]
                    .depends_on
                    .iter()
                    .all(|&u| self.nodes[u].status.is_finished())
            {
                self.release(dag, d, now);
            }
        }
        self.complete_if_done();
    }

    fn node_failed_for_good(&mut self, dag: &ValidDag, i: usize, now: DateTime<Utc>) {
        if dag.nodes()[i].continue_on_failure {
            self.finished(dag, i, now);
        } else {
            let message = self.nodes[i]
                .error
                .as_ref()
                .map_or_else(String::new, |e| format!(": {}", e.message));
            let reason = format!("node {} failed{message}", dag.nodes()[i].id);
            self.stop(RunStatus::Failed, Some(reason));
        }
    }

    /// Ends the run as `outcome` once nothing runs: cancels what has not started, asks what
    /// runs to stop.
    fn stop(&mut self, outcome: RunStatus, error: Option<String>) -> bool {
        if self.status.is_finished() || self.stopping.is_some() {
            return false;
        }
        for node in &mut self.nodes {
            match node.status {
                NodeStatus::Blocked | NodeStatus::Ready | NodeStatus::Waiting => {
                    node.status = NodeStatus::Cancelled;
                    node.ready_at = None;
                }
                NodeStatus::Running => node.cancel_requested = true,
                _ => {}
            }
        }
        self.stopping = Some(outcome);
        self.error = error;
        self.settle_stop();
        true
    }

    /// A stopping run ends once no node runs.
    fn settle_stop(&mut self) {
        if let Some(outcome) = self.stopping
            && !self.nodes.iter().any(|n| n.status == NodeStatus::Running)
        {
            self.status = outcome;
        }
    }

    fn complete_if_done(&mut self) {
        if self.status == RunStatus::Running
            && self.stopping.is_none()
            && self.nodes.iter().all(|n| n.status.is_finished())
        {
            self.status = RunStatus::Succeeded;
        }
    }
}

fn conflict(reason: String) -> OrchestrateError {
    OrchestrateError::Core(ate_core::CoreError::Conflict(reason))
}

fn to_delta(d: std::time::Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests;
