//! Health checks to register with an instance: `CheckDefinition` and the `http_check`,
//! `tcp_check` and `ttl_check` functions (or a dict with the same keywords), converted to
//! `ate_orchestrate::health::CheckSpec` when the instance is registered.

use crate::convert::seconds;
use crate::error::Error;
use ate_orchestrate::health::{CheckId, CheckKind, CheckSpec};
use ate_orchestrate::registry::{InstanceId, InstanceKey, Scope, ServiceName};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A health check to register with an instance (from `http_check`, `tcp_check`,
/// `ttl_check`, or a dict with the same keywords and one of `http`, `tcp`, `ttl`).
#[pyclass(module = "ate.registry", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct CheckDefinition {
    /// `http`, `tcp` or `ttl`.
    #[pyo3(get)]
    pub(crate) kind: &'static str,
    /// The URL (`http`) or `host:port` (`tcp`); `None` for `ttl`.
    #[pyo3(get)]
    target: Option<String>,
    /// The HTTP method (`http` only).
    #[pyo3(get)]
    method: Option<String>,
    /// The TTL in seconds (`ttl` only).
    #[pyo3(get)]
    ttl: Option<f64>,
    /// The check id; `None`: derived when registering.
    #[pyo3(get)]
    id: Option<String>,
    #[pyo3(get)]
    interval: f64,
    #[pyo3(get)]
    timeout: f64,
    #[pyo3(get)]
    success_before_passing: u32,
    #[pyo3(get)]
    failures_before_critical: u32,
    #[pyo3(get)]
    deregister_critical_after: Option<f64>,
}

#[pymethods]
impl CheckDefinition {
    fn __repr__(&self) -> String {
        let target = match (&self.target, self.ttl) {
            (Some(t), _) => format!("{t:?}"),
            (None, Some(ttl)) => format!("ttl={ttl}"),
            _ => String::new(),
        };
        format!(
            "CheckDefinition(kind='{}', {target}, interval={}, timeout={})",
            self.kind, self.interval, self.timeout
        )
    }
}

/// The keywords common to every check kind.
struct CheckOptions {
    id: Option<String>,
    interval: f64,
    timeout: f64,
    success_before_passing: u32,
    failures_before_critical: u32,
    deregister_critical_after: Option<f64>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            id: None,
            interval: 10.0,
            timeout: 5.0,
            success_before_passing: 1,
            failures_before_critical: 1,
            deregister_critical_after: None,
        }
    }
}

impl CheckDefinition {
    fn new(
        kind: &'static str,
        target: Option<String>,
        method: Option<String>,
        ttl: Option<f64>,
        o: CheckOptions,
    ) -> Result<Self, Error> {
        // Validated early so a bad number is reported where it was written.
        seconds(o.interval, "interval")?;
        seconds(o.timeout, "timeout")?;
        if let Some(t) = ttl {
            seconds(t, "ttl")?;
        }
        if let Some(d) = o.deregister_critical_after {
            seconds(d, "deregister_critical_after")?;
        }
        Ok(CheckDefinition {
            kind,
            target,
            method,
            ttl,
            id: o.id,
            interval: o.interval,
            timeout: o.timeout,
            success_before_passing: o.success_before_passing,
            failures_before_critical: o.failures_before_critical,
            deregister_critical_after: o.deregister_critical_after,
        })
    }

    /// A definition from a dict such as `{"http": url, "interval": 5.0}`.
    fn from_dict(dict: &Bound<'_, PyDict>) -> Result<Self, Error> {
        let mut o = CheckOptions::default();
        let mut kind: Option<(&'static str, Bound<'_, PyAny>)> = None;
        let mut method = None;
        let bad = |k: &str, e: PyErr| Error::invalid(format!("check {k:?}: {e}"));
        for (key, value) in dict.iter() {
            let key: String = key
                .extract()
                .map_err(|_| Error::invalid("check dict keys must be str"))?;
            match key.as_str() {
                "http" | "tcp" | "ttl" => {
                    if kind.is_some() {
                        return Err(Error::invalid(
                            "a check dict names exactly one of 'http', 'tcp', 'ttl'",
                        ));
                    }
                    let k = match key.as_str() {
                        "http" => "http",
                        "tcp" => "tcp",
                        _ => "ttl",
                    };
                    kind = Some((k, value));
                }
                "method" => method = Some(value.extract().map_err(|e| bad(&key, e))?),
                "id" => o.id = Some(value.extract().map_err(|e| bad(&key, e))?),
                "interval" => o.interval = value.extract().map_err(|e| bad(&key, e))?,
                "timeout" => o.timeout = value.extract().map_err(|e| bad(&key, e))?,
                "success_before_passing" => {
                    o.success_before_passing = value.extract().map_err(|e| bad(&key, e))?;
                }
                "failures_before_critical" => {
                    o.failures_before_critical = value.extract().map_err(|e| bad(&key, e))?;
                }
                "deregister_critical_after" => {
                    o.deregister_critical_after = value.extract().map_err(|e| bad(&key, e))?;
                }
                other => {
                    return Err(Error::invalid(format!(
                        "unknown check key {:?} (expected http/tcp/ttl, id, method, interval, \
                         timeout, success_before_passing, failures_before_critical, \
                         deregister_critical_after)",
                        other.chars().take(40).collect::<String>()
                    )));
                }
            }
        }
        match kind {
            Some(("ttl", value)) => {
                let ttl: f64 = value.extract().map_err(|e| bad("ttl", e))?;
                CheckDefinition::new("ttl", None, None, Some(ttl), o)
            }
            Some((k, value)) => {
                let target: String = value.extract().map_err(|e| bad(k, e))?;
                let method = if k == "http" {
                    Some(method.unwrap_or_else(|| "GET".to_owned()))
                } else if method.is_some() {
                    return Err(Error::invalid("'method' applies to HTTP checks only"));
                } else {
                    None
                };
                CheckDefinition::new(k, Some(target), method, None, o)
            }
            None => Err(Error::invalid(
                "a check dict needs one of 'http', 'tcp', 'ttl'",
            )),
        }
    }

    pub(crate) fn from_py(value: &Bound<'_, PyAny>) -> Result<Self, Error> {
        if let Ok(def) = value.cast::<CheckDefinition>() {
            return Ok(def.get().clone());
        }
        if let Ok(dict) = value.cast::<PyDict>() {
            return CheckDefinition::from_dict(dict);
        }
        Err(Error::invalid(
            "each check must be a CheckDefinition (ate.registry.http_check, tcp_check, \
             ttl_check) or a dict such as {'http': url}",
        ))
    }

    /// The Rust check for the instance `(scope, service, id)`; `n` numbers the checks of
    /// one kind from 1 for the derived id.
    pub(crate) fn spec(
        &self,
        scope: Scope,
        service: &ServiceName,
        instance: &InstanceId,
        n: usize,
    ) -> Result<CheckSpec, Error> {
        let id = match &self.id {
            Some(id) => id.clone(),
            None => match scope {
                Scope::Platform => format!("{service}/{instance}:{}:{n}", self.kind),
                Scope::Tenant(t) => format!("{t}/{service}/{instance}:{}:{n}", self.kind),
            },
        };
        let kind = match (self.kind, &self.target) {
            ("ttl", _) => CheckKind::ttl(seconds(self.ttl.unwrap_or_default(), "ttl")?),
            ("http", Some(url)) => CheckKind::http_with_method(
                self.method.clone().unwrap_or_else(|| "GET".into()),
                url.clone(),
            ),
            (_, Some(address)) => CheckKind::tcp(address.clone()),
            _ => return Err(Error::internal("a check definition without a target")),
        };
        let mut spec = CheckSpec::new(
            CheckId::new(id)?,
            InstanceKey::new(scope, service.clone(), instance.clone()),
            kind,
        )
        .interval(seconds(self.interval, "interval")?)
        .timeout(seconds(self.timeout, "timeout")?)
        .thresholds(self.success_before_passing, self.failures_before_critical);
        if let Some(after) = self.deregister_critical_after {
            spec = spec.deregister_critical_after(seconds(after, "deregister_critical_after")?);
        }
        Ok(spec)
    }
}

/// An HTTP check: `GET url` (or `method`) every `interval` seconds; 2xx passing, 429
/// warning, anything else (refused, timed out, not HTTP) critical.
#[pyfunction]
#[pyo3(signature = (url, *, method = "GET", id = None, interval = 10.0, timeout = 5.0, success_before_passing = 1, failures_before_critical = 1, deregister_critical_after = None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn http_check(
    url: String,
    method: &str,
    id: Option<String>,
    interval: f64,
    timeout: f64,
    success_before_passing: u32,
    failures_before_critical: u32,
    deregister_critical_after: Option<f64>,
) -> PyResult<CheckDefinition> {
    let o = CheckOptions {
        id,
        interval,
        timeout,
        success_before_passing,
        failures_before_critical,
        deregister_critical_after,
    };
    Ok(CheckDefinition::new(
        "http",
        Some(url),
        Some(method.to_owned()),
        None,
        o,
    )?)
}

/// A TCP check: connect to `address` (`host:port`) every `interval` seconds; connected is
/// passing, anything else critical.
#[pyfunction]
#[pyo3(signature = (address, *, id = None, interval = 10.0, timeout = 5.0, success_before_passing = 1, failures_before_critical = 1, deregister_critical_after = None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn tcp_check(
    address: String,
    id: Option<String>,
    interval: f64,
    timeout: f64,
    success_before_passing: u32,
    failures_before_critical: u32,
    deregister_critical_after: Option<f64>,
) -> PyResult<CheckDefinition> {
    let o = CheckOptions {
        id,
        interval,
        timeout,
        success_before_passing,
        failures_before_critical,
        deregister_critical_after,
    };
    Ok(CheckDefinition::new("tcp", Some(address), None, None, o)?)
}

/// A TTL check: the instance must `heartbeat` at least every `ttl` seconds, or it turns
/// critical.
#[pyfunction]
#[pyo3(signature = (ttl, *, id = None, deregister_critical_after = None))]
pub(crate) fn ttl_check(
    ttl: f64,
    id: Option<String>,
    deregister_critical_after: Option<f64>,
) -> PyResult<CheckDefinition> {
    let o = CheckOptions {
        id,
        deregister_critical_after,
        ..CheckOptions::default()
    };
    Ok(CheckDefinition::new("ttl", None, None, Some(ttl), o)?)
}
