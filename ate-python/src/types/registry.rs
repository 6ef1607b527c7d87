//! What `a.registry` returns: `Instance`, `Stats`, `CheckResult` and `AlertEvent`.

use crate::convert::frozenset;
use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use pyo3::types::PyFrozenSet;

/// A registered service instance with its observed health.
#[pyclass(module = "ate.registry", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct Instance {
    #[pyo3(get)]
    service: String,
    #[pyo3(get)]
    id: String,
    #[pyo3(get)]
    endpoint: String,
    tags: Vec<String>,
    capabilities: Vec<String>,
    #[pyo3(get)]
    metadata: std::collections::BTreeMap<String, String>,
    #[pyo3(get)]
    weight: u32,
    /// `development`, `staging` or `production`.
    #[pyo3(get)]
    environment: &'static str,
    /// The tenant id for a tenant's instance; `None` for a platform instance.
    #[pyo3(get)]
    tenant: Option<String>,
    /// `passing`, `warning` or `critical`.
    #[pyo3(get)]
    status: &'static str,
    #[pyo3(get)]
    status_output: String,
    #[pyo3(get)]
    registered_at: DateTime<Utc>,
    #[pyo3(get)]
    last_heartbeat: DateTime<Utc>,
    #[pyo3(get)]
    status_since: DateTime<Utc>,
    /// When it started draining (no new picks until deregistered); `None` if it is not.
    #[pyo3(get)]
    draining_since: Option<DateTime<Utc>>,
}

impl From<ate_orchestrate::registry::Instance> for Instance {
    fn from(i: ate_orchestrate::registry::Instance) -> Self {
        let spec = i.spec;
        Instance {
            service: spec.service.to_string(),
            id: spec.id.to_string(),
            endpoint: spec.endpoint.to_string(),
            tags: spec.tags.into_iter().collect(),
            capabilities: spec.capabilities.into_iter().collect(),
            metadata: spec.metadata,
            weight: spec.weight,
            environment: spec.environment.as_str(),
            tenant: spec.scope.tenant().map(|t| t.to_string()),
            status: i.status.as_str(),
            status_output: i.status_output,
            registered_at: i.registered_at,
            last_heartbeat: i.last_heartbeat,
            status_since: i.status_since,
            draining_since: i.draining_since,
        }
    }
}

#[pymethods]
impl Instance {
    #[getter]
    fn tags<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyFrozenSet>> {
        frozenset(py, &self.tags)
    }

    #[getter]
    fn capabilities<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyFrozenSet>> {
        frozenset(py, &self.capabilities)
    }

    fn __repr__(&self) -> String {
        format!(
            "Instance(service='{}', id='{}', endpoint='{}', status='{}', weight={})",
            self.service, self.id, self.endpoint, self.status, self.weight
        )
    }
}

/// Aggregates of recorded requests over a recent window; latencies in seconds.
#[pyclass(module = "ate.registry", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct Stats {
    /// The window in seconds.
    #[pyo3(get)]
    window: f64,
    #[pyo3(get)]
    count: u64,
    #[pyo3(get)]
    errors: u64,
    #[pyo3(get)]
    error_rate: f64,
    #[pyo3(get)]
    rate_per_sec: f64,
    #[pyo3(get)]
    p50: Option<f64>,
    #[pyo3(get)]
    p95: Option<f64>,
    #[pyo3(get)]
    p99: Option<f64>,
}

impl From<ate_orchestrate::metrics::WindowStats> for Stats {
    fn from(s: ate_orchestrate::metrics::WindowStats) -> Self {
        Stats {
            window: s.window.as_secs_f64(),
            count: s.count,
            errors: s.errors,
            error_rate: s.error_rate,
            rate_per_sec: s.rate_per_sec,
            p50: s.p50.map(|d| d.as_secs_f64()),
            p95: s.p95.map(|d| d.as_secs_f64()),
            p99: s.p99.map(|d| d.as_secs_f64()),
        }
    }
}

#[pymethods]
impl Stats {
    fn __repr__(&self) -> String {
        format!(
            "Stats(count={}, errors={}, error_rate={:.3}, rate_per_sec={:.3}, p50={:?}, p95={:?}, p99={:?})",
            self.count,
            self.errors,
            self.error_rate,
            self.rate_per_sec,
            self.p50,
            self.p95,
            self.p99
        )
    }
}

/// One run of a health check, as observed (before thresholds).
#[pyclass(module = "ate.registry", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct CheckResult {
    #[pyo3(get)]
    at: DateTime<Utc>,
    /// `passing`, `warning` or `critical`.
    #[pyo3(get)]
    status: &'static str,
    #[pyo3(get)]
    output: String,
    /// How long the run took, in seconds.
    #[pyo3(get)]
    duration: f64,
}

impl From<ate_orchestrate::health::CheckResult> for CheckResult {
    fn from(r: ate_orchestrate::health::CheckResult) -> Self {
        CheckResult {
            at: r.at,
            status: r.status.as_str(),
            output: r.output,
            duration: r.duration.as_secs_f64(),
        }
    }
}

#[pymethods]
impl CheckResult {
    fn __repr__(&self) -> String {
        format!(
            "CheckResult(status='{}', output={:?}, at='{}')",
            self.status,
            self.output,
            self.at.to_rfc3339()
        )
    }
}

/// An alert that started firing or resolved.
#[pyclass(module = "ate.registry", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct AlertEvent {
    /// Unique per event; a retried delivery carries the same id.
    #[pyo3(get)]
    id: String,
    #[pyo3(get)]
    rule_id: String,
    #[pyo3(get)]
    rule_name: String,
    /// `info`, `warning` or `critical`.
    #[pyo3(get)]
    severity: &'static str,
    #[pyo3(get)]
    labels: std::collections::BTreeMap<String, String>,
    /// `firing` or `resolved`.
    #[pyo3(get)]
    state: &'static str,
    /// The observed value that decided (an error rate, seconds of latency, 1.0 for states).
    #[pyo3(get)]
    value: f64,
    #[pyo3(get)]
    summary: String,
    #[pyo3(get)]
    at: DateTime<Utc>,
    /// For a resolved event, the id of the firing event it ends.
    #[pyo3(get)]
    firing_id: Option<String>,
}

impl From<&ate_orchestrate::alerts::AlertEvent> for AlertEvent {
    fn from(e: &ate_orchestrate::alerts::AlertEvent) -> Self {
        AlertEvent {
            id: e.id.to_string(),
            rule_id: e.rule_id.clone(),
            rule_name: e.rule_name.clone(),
            severity: e.severity.as_str(),
            labels: e.labels.clone(),
            state: e.state.as_str(),
            value: e.value,
            summary: e.summary.clone(),
            at: e.at,
            firing_id: e.firing_id.map(|id| id.to_string()),
        }
    }
}

#[pymethods]
impl AlertEvent {
    fn __repr__(&self) -> String {
        format!(
            "AlertEvent(rule_id={:?}, state='{}', value={}, summary={:?})",
            self.rule_id, self.state, self.value, self.summary
        )
    }
}
