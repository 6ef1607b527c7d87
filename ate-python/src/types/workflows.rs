//! What `a.workflows` returns: `Run`, `RunNode`, `RunPage`, `RunEvent`, `LogEntry`,
//! `LogPage`.

use crate::convert::from_json;
use ate_orchestrate::workflow as wf;
use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use std::collections::BTreeMap;

/// One node of a run (see `ate_orchestrate::workflow::NodeView`).
#[pyclass(module = "ate.workflows", frozen, from_py_object)]
#[derive(Clone)]
pub(crate) struct RunNode {
    #[pyo3(get)]
    id: String,
    /// The step it runs, for a step node.
    #[pyo3(get)]
    step: Option<String>,
    /// The signal it waits for, for a signal node.
    #[pyo3(get)]
    signal: Option<String>,
    #[pyo3(get)]
    status: String,
    #[pyo3(get)]
    attempt: u32,
    #[pyo3(get)]
    started_at: Option<DateTime<Utc>>,
    #[pyo3(get)]
    finished_at: Option<DateTime<Utc>>,
    output: Option<serde_json::Value>,
    error: Option<serde_json::Value>,
}

impl From<wf::NodeView> for RunNode {
    fn from(n: wf::NodeView) -> Self {
        let (step, signal) = match &n.task {
            wf::NodeTask::Step(s) => (Some(s.to_string()), None),
            wf::NodeTask::Signal(s) => (None, Some(s.to_string())),
            _ => (None, None),
        };
        RunNode {
            id: n.id.to_string(),
            step,
            signal,
            status: n.status.as_str().to_owned(),
            attempt: n.attempt,
            started_at: n.started_at,
            finished_at: n.finished_at,
            output: n.output,
            error: n.error.map(|e| {
                serde_json::json!({"kind": e.kind, "message": e.message, "retryable": e.retryable})
            }),
        }
    }
}

#[pymethods]
impl RunNode {
    /// Its output (any JSON value), once it succeeded.
    #[getter]
    fn output<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.output.as_ref().map(|v| from_json(py, v)).transpose()
    }

    /// The last attempt's error, `{"kind", "message", "retryable"}`.
    #[getter]
    fn error<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.error.as_ref().map(|v| from_json(py, v)).transpose()
    }

    fn __repr__(&self) -> String {
        format!(
            "RunNode(id='{}', status='{}', attempt={})",
            self.id, self.status, self.attempt
        )
    }
}

/// A workflow run and its nodes (see `ate_orchestrate::workflow::Run`).
#[pyclass(module = "ate.workflows", frozen, from_py_object)]
#[derive(Clone)]
pub(crate) struct Run {
    #[pyo3(get)]
    id: String,
    #[pyo3(get)]
    tenant: String,
    #[pyo3(get)]
    status: String,
    /// While running handlers wind down: how the run will end.
    #[pyo3(get)]
    stopping: Option<String>,
    #[pyo3(get)]
    error: Option<String>,
    #[pyo3(get)]
    idempotency_key: Option<String>,
    #[pyo3(get)]
    priority: i32,
    #[pyo3(get)]
    labels: BTreeMap<String, String>,
    #[pyo3(get)]
    parent: Option<String>,
    #[pyo3(get)]
    created_by: String,
    #[pyo3(get)]
    created_at: DateTime<Utc>,
    #[pyo3(get)]
    updated_at: DateTime<Utc>,
    #[pyo3(get)]
    finished_at: Option<DateTime<Utc>>,
    #[pyo3(get)]
    revision: i64,
    /// Its nodes, in definition order (empty in listings).
    #[pyo3(get)]
    nodes: Vec<RunNode>,
    input: serde_json::Value,
}

impl From<wf::Run> for Run {
    fn from(r: wf::Run) -> Self {
        Run {
            id: r.id.to_string(),
            tenant: r.tenant.to_string(),
            status: r.status.as_str().to_owned(),
            stopping: r.stopping.map(|s| s.as_str().to_owned()),
            error: r.error,
            idempotency_key: r.idempotency_key,
            priority: r.priority,
            labels: r.labels,
            parent: r.parent.map(|p| p.to_string()),
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
            revision: r.revision,
            nodes: r.nodes.into_iter().map(RunNode::from).collect(),
            input: r.input,
        }
    }
}

#[pymethods]
impl Run {
    /// The run's input.
    #[getter]
    fn input<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &self.input)
    }

    /// Whether it has ended (succeeded, failed or cancelled).
    #[getter]
    fn finished(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "cancelled")
    }

    /// Node `id`; `KeyError` if the run has none.
    fn node(&self, id: &str) -> PyResult<RunNode> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .cloned()
            .ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(id.to_owned()))
    }

    fn __repr__(&self) -> String {
        format!(
            "Run(id='{}', status='{}', nodes={}, revision={})",
            self.id,
            self.status,
            self.nodes.len(),
            self.revision
        )
    }
}

page_class!(RunPage, "ate.workflows", Run, wf::Run, "runs");

/// A committed change to a run (see `ate_orchestrate::workflow::RunEvent`).
#[pyclass(module = "ate.workflows", frozen)]
pub(crate) struct RunEvent {
    #[pyo3(get)]
    tenant: String,
    #[pyo3(get)]
    run: String,
    #[pyo3(get)]
    revision: i64,
    #[pyo3(get)]
    status: String,
    #[pyo3(get)]
    stopping: Option<String>,
    /// `(node id, new status)` for the nodes whose status changed.
    #[pyo3(get)]
    nodes: Vec<(String, String)>,
    /// `True` when the change touched too many nodes to list: read the run.
    #[pyo3(get)]
    nodes_omitted: bool,
}

impl From<wf::RunEvent> for RunEvent {
    fn from(e: wf::RunEvent) -> Self {
        RunEvent {
            tenant: e.tenant.to_string(),
            run: e.run.to_string(),
            revision: e.revision,
            status: e.status.as_str().to_owned(),
            stopping: e.stopping.map(|s| s.as_str().to_owned()),
            nodes: e
                .nodes
                .iter()
                .map(|n| (n.node.to_string(), n.status.as_str().to_owned()))
                .collect(),
            nodes_omitted: e.nodes_omitted,
        }
    }
}

#[pymethods]
impl RunEvent {
    fn __repr__(&self) -> String {
        format!(
            "RunEvent(run='{}', revision={}, status='{}', nodes={:?})",
            self.run, self.revision, self.status, self.nodes
        )
    }
}

/// One entry of a run's log (see `ate_orchestrate::workflow::LogEntry`).
#[pyclass(module = "ate.workflows", frozen, from_py_object)]
#[derive(Clone)]
pub(crate) struct LogEntry {
    #[pyo3(get)]
    at: DateTime<Utc>,
    #[pyo3(get)]
    level: String,
    #[pyo3(get)]
    node: String,
    #[pyo3(get)]
    attempt: u32,
    #[pyo3(get)]
    message: String,
    fields: serde_json::Value,
}

impl From<wf::LogEntry> for LogEntry {
    fn from(e: wf::LogEntry) -> Self {
        LogEntry {
            at: e.at,
            level: e.level.as_str().to_owned(),
            node: e.node.to_string(),
            attempt: e.attempt,
            message: e.message,
            fields: e.fields,
        }
    }
}

#[pymethods]
impl LogEntry {
    /// The entry's structured fields.
    #[getter]
    fn fields<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &self.fields)
    }

    fn __repr__(&self) -> String {
        format!(
            "LogEntry(node='{}', attempt={}, level='{}', message={:?})",
            self.node, self.attempt, self.level, self.message
        )
    }
}

page_class!(
    LogPage,
    "ate.workflows",
    LogEntry,
    wf::LogEntry,
    "log entries"
);
