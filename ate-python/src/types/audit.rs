//! What `a.audit` returns: `AuditEvent`, `AuditPage` and the chain's `ChainHead`,
//! `ChainBreak` and `ChainReport`.

use crate::convert::from_json;
use ate_core::audit::{self, ChainProblem};
use chrono::{DateTime, Utc};
use pyo3::prelude::*;

/// A recorded audit event.
#[pyclass(module = "ate.audit", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct AuditEvent {
    #[pyo3(get)]
    id: String,
    #[pyo3(get)]
    tenant_id: String,
    #[pyo3(get)]
    seq: u64,
    #[pyo3(get)]
    occurred_at: DateTime<Utc>,
    #[pyo3(get)]
    actor: String,
    #[pyo3(get)]
    action: String,
    #[pyo3(get)]
    target: Option<String>,
    #[pyo3(get)]
    outcome: String,
    #[pyo3(get)]
    client_addr: Option<String>,
    #[pyo3(get)]
    user_agent: Option<String>,
    #[pyo3(get)]
    prev_hash: String,
    #[pyo3(get)]
    hash: String,
    metadata: serde_json::Value,
}

impl From<audit::AuditEvent> for AuditEvent {
    fn from(e: audit::AuditEvent) -> Self {
        AuditEvent {
            id: e.id.to_string(),
            tenant_id: e.tenant.to_string(),
            seq: e.seq,
            occurred_at: e.occurred_at,
            actor: e.actor,
            action: e.action.as_str().to_owned(),
            target: e.target,
            outcome: e.outcome.as_str().to_owned(),
            client_addr: e.client_addr.map(|a| a.to_string()),
            user_agent: e.user_agent,
            prev_hash: hex::encode(e.prev_hash),
            hash: hex::encode(e.hash),
            metadata: e.metadata,
        }
    }
}

#[pymethods]
impl AuditEvent {
    /// The event's structured details as a dict.
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &self.metadata)
    }

    fn __repr__(&self) -> String {
        format!(
            "AuditEvent(seq={}, action='{}', actor={:?}, outcome='{}', occurred_at='{}')",
            self.seq,
            self.action,
            self.actor,
            self.outcome,
            self.occurred_at.to_rfc3339()
        )
    }
}

page_class!(
    AuditPage,
    "ate.audit",
    AuditEvent,
    audit::AuditEvent,
    "events"
);

/// The newest link of a tenant's audit chain.
#[pyclass(module = "ate.audit", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct ChainHead {
    #[pyo3(get)]
    seq: u64,
    #[pyo3(get)]
    hash: String,
}

impl From<audit::ChainHead> for ChainHead {
    fn from(h: audit::ChainHead) -> Self {
        ChainHead {
            seq: h.seq,
            hash: hex::encode(h.hash),
        }
    }
}

#[pymethods]
impl ChainHead {
    fn __repr__(&self) -> String {
        format!("ChainHead(seq={}, hash='{}')", self.seq, self.hash)
    }
}

/// Where a chain first breaks.
#[pyclass(module = "ate.audit", frozen, from_py_object)]
#[derive(Clone)]
pub(crate) struct ChainBreak {
    #[pyo3(get)]
    seq: u64,
    /// `content_modified`, `link_broken`, `missing`, `head_mismatch` or `unreadable`.
    #[pyo3(get)]
    problem: &'static str,
    #[pyo3(get)]
    message: String,
    #[pyo3(get)]
    expected_seq: Option<u64>,
    #[pyo3(get)]
    head_seq: Option<u64>,
}

impl From<audit::ChainBreak> for ChainBreak {
    fn from(b: audit::ChainBreak) -> Self {
        let message = b.to_string();
        let (problem, expected_seq, head_seq) = match &b.problem {
            ChainProblem::ContentModified => ("content_modified", None, None),
            ChainProblem::LinkBroken => ("link_broken", None, None),
            ChainProblem::Missing { expected_seq } => ("missing", Some(*expected_seq), None),
            ChainProblem::HeadMismatch { head_seq } => ("head_mismatch", None, Some(*head_seq)),
            ChainProblem::Unreadable { .. } => ("unreadable", None, None),
            _ => ("unknown", None, None),
        };
        ChainBreak {
            seq: b.seq,
            problem,
            message,
            expected_seq,
            head_seq,
        }
    }
}

#[pymethods]
impl ChainBreak {
    fn __repr__(&self) -> String {
        format!("ChainBreak(seq={}, problem='{}')", self.seq, self.problem)
    }
}

/// The result of `verify_chain`.
#[pyclass(module = "ate.audit", frozen)]
pub(crate) struct ChainReport {
    #[pyo3(get)]
    tenant_id: String,
    #[pyo3(get)]
    events_checked: u64,
    #[pyo3(get)]
    head: ChainHead,
    #[pyo3(get)]
    first_break: Option<ChainBreak>,
}

impl From<audit::ChainReport> for ChainReport {
    fn from(r: audit::ChainReport) -> Self {
        ChainReport {
            tenant_id: r.tenant.to_string(),
            events_checked: r.events_checked,
            head: r.head.into(),
            first_break: r.first_break.map(ChainBreak::from),
        }
    }
}

#[pymethods]
impl ChainReport {
    /// Whether the whole chain verified.
    #[getter]
    fn intact(&self) -> bool {
        self.first_break.is_none()
    }

    fn __bool__(&self) -> bool {
        self.intact()
    }

    fn __repr__(&self) -> String {
        match &self.first_break {
            None => format!(
                "ChainReport(intact, events_checked={})",
                self.events_checked
            ),
            Some(b) => format!("ChainReport(broken: {})", b.message),
        }
    }
}
