//! `a.registry`: service discovery, health checks, balancing, metrics and alerts for Python,
//! over `ate_orchestrate::hub::ServiceHub`.
//!
//! One hub per client, built on the first `a.registry` access over the client's database
//! (`SqlRegistry` for the instances, `SqlAlertHistory` for the alert history), so several
//! processes on one database share one registry. Building it runs `ate-orchestrate`'s
//! migrations: the first access is a short blocking call (also on `AsyncAte`).
//!
//! Writes and reads of the registry (register, deregister, heartbeat, set_status, discover,
//! pick) go to the database: blocking with the GIL released on `Registry`, awaitables on
//! `AsyncRegistry`. Recording, statistics, metrics text, check results, breaker states and
//! alert rules are in memory and plain calls on both.
//!
//! Tenancy: every call acts as `actor` (a `Principal` from `a.auth.verify`) or, by default,
//! as the client's platform administrator; `tenant` picks the scope (default: the actor's
//! tenant, or the platform). The Rust facade checks every call.

use crate::client::Core;
use crate::convert::parse_id;
use crate::error::Error;
use crate::types::{AlertEvent, CheckResult, Instance, Principal, Stats};
use crate::{awaitable, block};
use ate_core::{ErrorKind, TenantId};
use ate_orchestrate::OrchestrateError;
use ate_orchestrate::Outcome;
use ate_orchestrate::alerts::{
    AlertEvent as CoreAlertEvent, AlertRule, AlertSink, Condition, Quantile, Severity,
    SqlAlertHistory,
};
use ate_orchestrate::balance::Strategy;
use ate_orchestrate::health::{CheckId, CheckKind, CheckSpec};
use ate_orchestrate::hub::{PickOptions, ServiceHub};
use ate_orchestrate::registry::{
    Environment, HealthStatus, InstanceId, InstanceKey, InstanceSpec, Query, Scope, ServiceName,
    SqlRegistry, Visibility,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Alert events kept for `alert_events()` until drained; beyond it the oldest is dropped.
const MAX_POLLED_EVENTS: usize = 10_000;
/// Events whose callbacks partly failed, remembered so a retry skips the callbacks that
/// already took them; beyond it the memory is cleared (a retry may then repeat a callback).
const MAX_PARTIAL_DELIVERIES: usize = 10_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section below leaves the value consistent; a panic elsewhere cannot
    // leave it half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------
// The hub of one client and its alert sink.

/// The service hub of one `Ate`/`AsyncAte` and the sink its alerts go to.
pub(crate) struct Hub {
    hub: ServiceHub,
    sink: Arc<PySink>,
}

impl Hub {
    /// Builds the hub over `db` (runs `ate-orchestrate`'s migrations). Must run on the
    /// shared runtime (the hub spawns its scheduler there).
    pub(crate) async fn open(db: ate_core::Db) -> Result<Hub, Error> {
        let store = SqlRegistry::open(db.clone()).await?;
        let history = SqlAlertHistory::open(db).await?;
        let sink = Arc::new(PySink::default());
        let hub = ServiceHub::builder(Arc::new(store))
            .alerts(sink.clone(), Arc::new(history))
            .build()?;
        Ok(Hub { hub, sink })
    }

    /// Stops the health checks and the alert loop.
    pub(crate) async fn shutdown(&self) {
        self.hub.shutdown().await;
    }
}

#[derive(Default)]
struct SinkState {
    /// Events for `alert_events()`, oldest first.
    polled: VecDeque<CoreAlertEvent>,
    /// Event id → indices of the callbacks that already took it (partial deliveries).
    partial: HashMap<uuid::Uuid, HashSet<usize>>,
}

/// Every alert event goes to the polling queue once, then to each Python callback; a
/// callback that raises makes the delivery fail, and the engine offers the same event again
/// at its next evaluation (only to the callbacks that have not taken it yet).
#[derive(Default)]
struct PySink {
    state: Mutex<SinkState>,
    callbacks: Mutex<Vec<Arc<Py<PyAny>>>>,
}

impl std::fmt::Debug for PySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PySink")
            .field("callbacks", &lock(&self.callbacks).len())
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl AlertSink for PySink {
    async fn deliver(&self, event: &CoreAlertEvent) -> Result<(), OrchestrateError> {
        let pending: Vec<(usize, Arc<Py<PyAny>>)> = {
            let mut state = lock(&self.state);
            let done = if let Some(done) = state.partial.get(&event.id) {
                done.clone()
            } else {
                if state.polled.len() >= MAX_POLLED_EVENTS {
                    state.polled.pop_front();
                }
                state.polled.push_back(event.clone());
                HashSet::new()
            };
            let callbacks = lock(&self.callbacks);
            let pending: Vec<_> = callbacks
                .iter()
                .enumerate()
                .filter(|(i, _)| !done.contains(i))
                .map(|(i, c)| (i, c.clone()))
                .collect();
            if pending.is_empty() {
                state.partial.remove(&event.id);
            } else {
                if state.partial.len() >= MAX_PARTIAL_DELIVERIES {
                    state.partial.clear();
                }
                state.partial.insert(event.id, done);
            }
            pending
        };
        if pending.is_empty() {
            return Ok(());
        }
        let payload = AlertEvent::from(event);
        let outcome = tokio::task::spawn_blocking(move || {
            Python::attach(|py| {
                let mut ok = Vec::new();
                let mut failed = None;
                for (i, callback) in pending {
                    let result =
                        Py::new(py, payload.clone()).and_then(|event| callback.call1(py, (event,)));
                    match result {
                        Ok(_) => ok.push(i),
                        Err(e) => {
                            let message = e.to_string();
                            // Shown through sys.unraisablehook, as Python does for errors
                            // it cannot raise to anyone.
                            e.write_unraisable(py, Some(callback.bind(py)));
                            failed.get_or_insert(message);
                        }
                    }
                }
                (ok, failed)
            })
        })
        .await
        .map_err(|e| OrchestrateError::Unavailable(format!("alert callback task: {e}")))?;
        let (ok, failed) = outcome;
        let mut state = lock(&self.state);
        match failed {
            None => {
                state.partial.remove(&event.id);
                Ok(())
            }
            Some(message) => {
                state.partial.entry(event.id).or_default().extend(ok);
                Err(OrchestrateError::Unavailable(format!(
                    "an alert callback raised: {message}"
                )))
            }
        }
    }
}

impl Core {
    /// The client's hub, built on first use.
    pub(crate) async fn hub(&self) -> Result<Arc<Hub>, Error> {
        let hub = self
            .registry
            .get_or_try_init(|| async { Hub::open(self.db.clone()).await.map(Arc::new) })
            .await?;
        Ok(hub.clone())
    }
}

// ---------------------------------------------------------------------------------------
// Arguments from Python.

fn seconds(value: f64, what: &str) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        Error::invalid(format!(
            "{what} must be a finite, non-negative number of seconds, not {value}"
        ))
    })
}

fn tenant_of(tenant: Option<&str>) -> Result<Option<TenantId>, Error> {
    tenant.map(parse_id).transpose()
}

/// The caller: `actor`, or the client's platform administrator.
fn acting(core: &Core, actor: Option<&Bound<'_, Principal>>) -> ate_core::Principal {
    actor.map_or_else(|| core.actor.clone(), |p| p.get().inner().clone())
}

/// Who acts, and in which tenant: `tenant`, or the actor's own tenant, or the platform.
struct Caller {
    principal: ate_core::Principal,
    tenant: Option<TenantId>,
}

impl Caller {
    fn new(
        core: &Core,
        actor: Option<&Bound<'_, Principal>>,
        tenant: Option<&str>,
    ) -> Result<Self, Error> {
        let principal = acting(core, actor);
        let tenant = tenant_of(tenant)?.or_else(|| principal.tenant());
        Ok(Caller { principal, tenant })
    }

    fn scope(&self) -> Scope {
        self.tenant.map_or(Scope::Platform, Scope::Tenant)
    }

    fn visibility(&self) -> Visibility {
        self.tenant.map_or(Visibility::Platform, Visibility::Tenant)
    }
}

/// Names from an iterable of `str` (a lone `str` is refused: it would iterate as letters).
fn names(value: &Bound<'_, PyAny>, what: &str) -> Result<Vec<String>, Error> {
    let not_names = || Error::invalid(format!("{what} must be an iterable of str such as ('a',)"));
    if value.is_instance_of::<PyString>() {
        return Err(not_names());
    }
    value
        .try_iter()
        .map_err(|_| not_names())?
        .map(|item| {
            item.and_then(|i| i.extract::<String>())
                .map_err(|_| not_names())
        })
        .collect()
}

fn error_kind(name: &str) -> Result<ErrorKind, Error> {
    ErrorKind::ALL
        .iter()
        .copied()
        .find(|k| k.as_str() == name)
        .ok_or_else(|| {
            let known: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
            Error::invalid(format!(
                "error kind {:?} is not one of {}",
                name.chars().take(32).collect::<String>(),
                known.join(", ")
            ))
        })
}

fn strategy(name: &str) -> Result<Strategy, Error> {
    match name {
        "least_request" => Ok(Strategy::LeastRequest),
        "round_robin" => Ok(Strategy::RoundRobin),
        "weighted" => Ok(Strategy::SmoothWeighted),
        "random" => Ok(Strategy::Random),
        "consistent_hash" => Ok(Strategy::ConsistentHash),
        other => Err(Error::invalid(format!(
            "strategy {:?} is not one of least_request, round_robin, weighted, random, consistent_hash",
            other.chars().take(32).collect::<String>()
        ))),
    }
}

fn key_bytes(key: &Bound<'_, PyAny>) -> Result<Vec<u8>, Error> {
    if key.is_instance_of::<PyString>() {
        let s: String = key.extract().map_err(Error::python)?;
        return Ok(s.into_bytes());
    }
    if let Ok(b) = key.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    Err(Error::invalid("key must be str or bytes"))
}

/// A health check to register with an instance (from `http_check`, `tcp_check`,
/// `ttl_check`, or a dict with the same keywords and one of `http`, `tcp`, `ttl`).
#[pyclass(module = "ate", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct CheckDefinition {
    /// `http`, `tcp` or `ttl`.
    #[pyo3(get)]
    kind: &'static str,
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

    fn from_py(value: &Bound<'_, PyAny>) -> Result<Self, Error> {
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
    fn spec(
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

/// The arguments of `register`, converted from Python.
struct RegisterArgs {
    principal: ate_core::Principal,
    spec: InstanceSpec,
    checks: Vec<CheckSpec>,
}

impl RegisterArgs {
    #[allow(clippy::too_many_arguments)]
    fn new(
        caller: Caller,
        service: &str,
        instance_id: &str,
        endpoint: &str,
        weight: i64,
        environment: &str,
        tags: &Bound<'_, PyAny>,
        capabilities: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyDict>>,
        checks: &Bound<'_, PyAny>,
    ) -> Result<Self, Error> {
        let scope = caller.scope();
        let service = ServiceName::new(service)?;
        let id = InstanceId::new(instance_id)?;
        let weight = u32::try_from(weight)
            .map_err(|_| Error::invalid(format!("weight {weight} is outside 1..={}", u32::MAX)))?;
        let mut spec = InstanceSpec::new(scope, service.clone(), id.clone(), endpoint)?
            .weight(weight)
            .environment(Environment::parse(environment)?);
        for tag in names(tags, "tags")? {
            spec = spec.tag(tag);
        }
        for cap in names(capabilities, "capabilities")? {
            spec = spec.capability(cap);
        }
        if let Some(m) = metadata {
            for (k, v) in m.iter() {
                let (k, v): (String, String) = (k.extract(), v.extract())
                    .try_into_ok()
                    .ok_or_else(|| Error::invalid("metadata must map str to str"))?;
                spec = spec.meta(k, v);
            }
        }
        if checks.is_instance_of::<PyDict>() || checks.is_instance_of::<CheckDefinition>() {
            return Err(Error::invalid(
                "checks must be a sequence of checks, e.g. (ate.registry.http_check(url),)",
            ));
        }
        let mut counts: HashMap<&'static str, usize> = HashMap::new();
        let mut specs = Vec::new();
        for item in checks
            .try_iter()
            .map_err(|_| Error::invalid("checks must be a sequence of checks"))?
        {
            let def = CheckDefinition::from_py(&item.map_err(Error::python)?)?;
            let n = counts.entry(def.kind).or_default();
            *n += 1;
            specs.push(def.spec(scope, &service, &id, *n)?);
        }
        Ok(RegisterArgs {
            principal: caller.principal,
            spec,
            checks: specs,
        })
    }
}

/// Both extractions, or `None` if either failed.
trait TryIntoOk<A, B> {
    fn try_into_ok(self) -> Option<(A, B)>;
}

impl<A, B> TryIntoOk<A, B> for (PyResult<A>, PyResult<B>) {
    fn try_into_ok(self) -> Option<(A, B)> {
        match self {
            (Ok(a), Ok(b)) => Some((a, b)),
            _ => None,
        }
    }
}

/// Which instance a call names.
struct Target {
    principal: ate_core::Principal,
    scope: Scope,
    service: ServiceName,
    id: InstanceId,
}

impl Target {
    fn new(caller: Caller, service: &str, instance_id: &str) -> Result<Self, Error> {
        Ok(Target {
            scope: caller.scope(),
            principal: caller.principal,
            service: ServiceName::new(service)?,
            id: InstanceId::new(instance_id)?,
        })
    }

    fn key(&self) -> InstanceKey {
        InstanceKey::new(self.scope, self.service.clone(), self.id.clone())
    }
}

#[allow(clippy::too_many_arguments)]
fn query_from(
    caller: &Caller,
    service: Option<&str>,
    capability: Option<String>,
    tags: &Bound<'_, PyAny>,
    environment: Option<&str>,
    include_unhealthy: bool,
) -> Result<Query, Error> {
    let mut q = Query::new(caller.visibility()).include_unhealthy(include_unhealthy);
    if let Some(s) = service {
        q = q.service(ServiceName::new(s)?);
    }
    if let Some(c) = capability {
        q = q.capability(c);
    }
    for tag in names(tags, "tags")? {
        q = q.tag(tag);
    }
    if let Some(e) = environment {
        q = q.environment(Environment::parse(e)?);
    }
    q.validate()?;
    Ok(q)
}

#[allow(clippy::too_many_arguments)]
fn rule_from(
    rule_id: String,
    name: String,
    error_rate_above: Option<f64>,
    latency_p95_above: Option<f64>,
    instance_critical: bool,
    breaker_open: bool,
    service: &str,
    instance: Option<&str>,
    window: f64,
    for_seconds: f64,
    severity: &str,
) -> Result<AlertRule, Error> {
    let service = ServiceName::new(service)?;
    let window = seconds(window, "window")?;
    let chosen = usize::from(error_rate_above.is_some())
        + usize::from(latency_p95_above.is_some())
        + usize::from(instance_critical)
        + usize::from(breaker_open);
    if chosen != 1 {
        return Err(Error::invalid(format!(
            "an alert rule needs exactly one of error_rate_above, latency_p95_above, \
             instance_critical=True, breaker_open=True ({chosen} given)"
        )));
    }
    let mut condition = if let Some(threshold) = error_rate_above {
        Condition::error_rate_above(service, threshold, window)
    } else if let Some(threshold) = latency_p95_above {
        Condition::latency_above_secs(service, Quantile::P95, threshold, window)?
    } else if instance_critical {
        Condition::instance_critical(service)
    } else {
        Condition::breaker_open(service)
    };
    if let Some(i) = instance {
        condition = condition.for_instance(InstanceId::new(i)?);
    }
    let rule = AlertRule::new(rule_id, name, condition)
        .severity(Severity::parse(severity)?)
        .for_duration(seconds(for_seconds, "for_seconds")?);
    rule.validate()?;
    Ok(rule)
}

// ---------------------------------------------------------------------------------------
// Operations, written once.

impl Core {
    async fn register_instance(self: Arc<Self>, args: RegisterArgs) -> Result<Instance, Error> {
        let hub = self.hub().await?;
        Ok(hub
            .hub
            .register(&args.principal, args.spec, args.checks)
            .await?
            .into())
    }
    async fn deregister_instance(self: Arc<Self>, t: Target) -> Result<Instance, Error> {
        let hub = self.hub().await?;
        Ok(hub.hub.deregister(&t.principal, &t.key()).await?.into())
    }
    async fn heartbeat_instance(self: Arc<Self>, t: Target) -> Result<Instance, Error> {
        let hub = self.hub().await?;
        Ok(hub.hub.heartbeat(&t.principal, &t.key()).await?.into())
    }
    async fn set_instance_status(
        self: Arc<Self>,
        t: Target,
        status: HealthStatus,
        output: String,
    ) -> Result<Instance, Error> {
        let hub = self.hub().await?;
        Ok(hub
            .hub
            .set_status(&t.principal, &t.key(), status, &output)
            .await?
            .into())
    }
    async fn discover_instances(
        self: Arc<Self>,
        principal: ate_core::Principal,
        query: Query,
    ) -> Result<Vec<Instance>, Error> {
        let hub = self.hub().await?;
        let found = hub.hub.discover(&principal, &query).await?;
        Ok(found.into_iter().map(Instance::from).collect())
    }
    async fn pick_instance(
        self: Arc<Self>,
        principal: ate_core::Principal,
        service: ServiceName,
        options: PickOptions,
    ) -> Result<Pick, Error> {
        let hub = self.hub().await?;
        let pick = hub.hub.pick(&principal, &service, options).await?;
        let spec = &pick.instance().spec;
        let label = (
            spec.service.to_string(),
            spec.id.to_string(),
            spec.endpoint.to_string(),
        );
        Ok(Pick {
            instance: pick.instance().clone().into(),
            label,
            guard: Mutex::new(Some(pick)),
        })
    }
    async fn evaluate_alerts(self: Arc<Self>) -> Result<HashMap<&'static str, usize>, Error> {
        let hub = self.hub().await?;
        let engine = hub
            .hub
            .alerts()
            .ok_or_else(|| Error::internal("the service hub was built without alerts"))?;
        let r = engine.evaluate(chrono::Utc::now()).await;
        Ok(HashMap::from([
            ("rules", r.rules),
            ("fired", r.fired),
            ("resolved", r.resolved),
            ("delivered", r.delivered),
            ("delivery_failures", r.delivery_failures),
            ("queued", r.queued),
        ]))
    }
}

/// One picked instance for one request (`a.registry.pick(...)`).
///
/// Finish it with `success()` or `failure(kind)`: the latency since the pick and the outcome
/// go to the metrics, the window statistics, the instance's circuit breaker and outlier
/// detection. As a context manager, a normal exit is a success and an exception a failure of
/// kind `unavailable` (the exception propagates). Dropping it unfinished counts as cancelled:
/// nothing is recorded against the instance.
#[pyclass(module = "ate", frozen)]
pub(crate) struct Pick {
    /// The instance to call.
    #[pyo3(get)]
    instance: Instance,
    /// Service, instance id and endpoint, for `repr`.
    label: (String, String, String),
    guard: Mutex<Option<ate_orchestrate::hub::Pick>>,
}

impl Pick {
    fn take(&self) -> Result<ate_orchestrate::hub::Pick, Error> {
        lock(&self.guard).take().ok_or_else(|| {
            Error::invalid("this pick is already finished (success() or failure() was called)")
        })
    }
}

#[pymethods]
impl Pick {
    /// The call succeeded.
    fn success(&self) -> PyResult<()> {
        self.take()?.success();
        Ok(())
    }

    /// The call failed with an error of `kind` (`unavailable`, `internal`, `rate_limited`,
    /// …; retryable kinds count against the instance's breaker).
    #[pyo3(signature = (kind = "unavailable"))]
    fn failure(&self, kind: &str) -> PyResult<()> {
        let kind = error_kind(kind)?;
        self.take()?.failure(kind);
        Ok(())
    }

    /// Whether `success()` or `failure()` was called.
    #[getter]
    fn finished(&self) -> bool {
        lock(&self.guard).is_none()
    }

    /// Seconds since the pick (`None` once finished).
    #[getter]
    fn elapsed(&self) -> Option<f64> {
        lock(&self.guard)
            .as_ref()
            .map(|p| p.elapsed().as_secs_f64())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (exc_type, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        if let Some(pick) = lock(&self.guard).take() {
            match exc_type {
                Some(t) if !t.is_none() => pick.failure(ErrorKind::Unavailable),
                _ => pick.success(),
            }
        }
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "Pick(service='{}', instance='{}', endpoint='{}', finished={})",
            self.label.0,
            self.label.1,
            self.label.2,
            self.finished()
        )
    }
}

// ---------------------------------------------------------------------------------------
// The Python classes: DB operations block or return awaitables (`dispatch!`); the
// in-memory ones are plain calls in both.

macro_rules! registry_class {
    ($mode:ident, $name:ident, $py_name:literal) => {
        /// The service registry (`a.registry`): instances, health checks, balancing,
        /// metrics and alert rules. See the `ate.registry` module.
        #[pyclass(module = "ate", frozen, name = $py_name)]
        pub(crate) struct $name {
            pub(crate) core: Arc<Core>,
            pub(crate) hub: Arc<Hub>,
        }

        #[pymethods]
        impl $name {
            /// Registers an instance (it starts `critical` and takes traffic once its
            /// checks pass, or once `set_status` says so) and schedules its `checks`.
            /// Raises `InvalidInputError` (bad URL, weight, name, check), and
            /// `AlreadyExistsError` (instance or check id taken).
            #[pyo3(signature = (service, instance_id, endpoint, *, tenant = None, weight = 1, environment = "production", tags = None, capabilities = None, metadata = None, checks = None, actor = None))]
            #[allow(clippy::too_many_arguments)]
            fn register(&self, py: Python<'_>, service: &str, instance_id: &str, endpoint: &str, tenant: Option<&str>, weight: i64, environment: &str, tags: Option<&Bound<'_, PyAny>>, capabilities: Option<&Bound<'_, PyAny>>, metadata: Option<&Bound<'_, PyDict>>, checks: Option<&Bound<'_, PyAny>>, actor: Option<&Bound<'_, Principal>>) -> PyResult<Py<PyAny>> {
                let empty = PyTuple::empty(py).into_any();
                let caller = Caller::new(&self.core, actor, tenant)?;
                let args = RegisterArgs::new(
                    caller, service, instance_id, endpoint, weight, environment,
                    tags.unwrap_or(&empty), capabilities.unwrap_or(&empty), metadata,
                    checks.unwrap_or(&empty),
                )?;
                Ok(dispatch!($mode, py, self.core.clone().register_instance(args)))
            }

            /// Deregisters an instance (its checks stop; its series are forgotten).
            /// Raises `NotFoundError`.
            #[pyo3(signature = (service, instance_id, *, tenant = None, actor = None))]
            fn deregister(&self, py: Python<'_>, service: &str, instance_id: &str, tenant: Option<&str>, actor: Option<&Bound<'_, Principal>>) -> PyResult<Py<PyAny>> {
                let t = Target::new(Caller::new(&self.core, actor, tenant)?, service, instance_id)?;
                Ok(dispatch!($mode, py, self.core.clone().deregister_instance(t)))
            }

            /// Records a heartbeat (and a pass for each TTL check of the instance).
            /// Raises `NotFoundError`.
            #[pyo3(signature = (service, instance_id, *, tenant = None, actor = None))]
            fn heartbeat(&self, py: Python<'_>, service: &str, instance_id: &str, tenant: Option<&str>, actor: Option<&Bound<'_, Principal>>) -> PyResult<Py<PyAny>> {
                let t = Target::new(Caller::new(&self.core, actor, tenant)?, service, instance_id)?;
                Ok(dispatch!($mode, py, self.core.clone().heartbeat_instance(t)))
            }

            /// Sets an instance's status by hand: `passing`, `warning` or `critical`.
            #[pyo3(signature = (service, instance_id, status, output = "", *, tenant = None, actor = None))]
            #[allow(clippy::too_many_arguments)]
            fn set_status(&self, py: Python<'_>, service: &str, instance_id: &str, status: &str, output: &str, tenant: Option<&str>, actor: Option<&Bound<'_, Principal>>) -> PyResult<Py<PyAny>> {
                let t = Target::new(Caller::new(&self.core, actor, tenant)?, service, instance_id)?;
                let status = HealthStatus::parse(status).map_err(Error::from)?;
                Ok(dispatch!($mode, py, self.core.clone().set_instance_status(t, status, output.to_owned())))
            }

            /// Instances visible to the caller (the tenant's and the platform's, or the
            /// platform's), healthy ones only unless `include_unhealthy`.
            #[pyo3(signature = (service = None, *, capability = None, tags = None, environment = None, include_unhealthy = false, tenant = None, actor = None))]
            #[allow(clippy::too_many_arguments)]
            fn discover(&self, py: Python<'_>, service: Option<&str>, capability: Option<String>, tags: Option<&Bound<'_, PyAny>>, environment: Option<&str>, include_unhealthy: bool, tenant: Option<&str>, actor: Option<&Bound<'_, Principal>>) -> PyResult<Py<PyAny>> {
                let empty = PyTuple::empty(py).into_any();
                let caller = Caller::new(&self.core, actor, tenant)?;
                let query = query_from(&caller, service, capability, tags.unwrap_or(&empty), environment, include_unhealthy)?;
                Ok(dispatch!($mode, py, self.core.clone().discover_instances(caller.principal, query)))
            }

            /// Picks a healthy instance of `service` for one request; returns a `Pick` to
            /// finish with `success()`/`failure()` or to use as a context manager. Raises
            /// `UnavailableError` when no instance can take the request.
            #[pyo3(signature = (service, *, strategy = "least_request", key = None, environment = None, tenant = None, actor = None))]
            #[allow(clippy::too_many_arguments)]
            fn pick(&self, py: Python<'_>, service: &str, strategy: &str, key: Option<&Bound<'_, PyAny>>, environment: Option<&str>, tenant: Option<&str>, actor: Option<&Bound<'_, Principal>>) -> PyResult<Py<PyAny>> {
                let caller = Caller::new(&self.core, actor, tenant)?;
                let mut options = PickOptions::new().strategy(self::strategy(strategy)?);
                if let Some(k) = key {
                    options = options.key(key_bytes(k)?);
                }
                if let Some(e) = environment {
                    options = options.environment(Environment::parse(e).map_err(Error::from)?);
                }
                if caller.tenant.is_some() {
                    options = options.visibility(caller.visibility());
                }
                let service = ServiceName::new(service).map_err(Error::from)?;
                Ok(dispatch!($mode, py, self.core.clone().pick_instance(caller.principal, service, options)))
            }

            /// Records a request made without `pick`: its latency in seconds and its
            /// outcome (`error=None` a success, else an error kind such as `unavailable`).
            #[pyo3(signature = (service, instance_id, latency_seconds, *, error = None))]
            fn record(&self, service: &str, instance_id: &str, latency_seconds: f64, error: Option<&str>) -> PyResult<()> {
                let (service, id) = (ServiceName::new(service).map_err(Error::from)?, InstanceId::new(instance_id).map_err(Error::from)?);
                let latency = seconds(latency_seconds, "latency_seconds")?;
                let outcome = match error {
                    None => Outcome::Success,
                    Some(kind) => Outcome::Failure(error_kind(kind)?),
                };
                self.hub.hub.record(&service, &id, latency, outcome);
                Ok(())
            }

            /// Aggregates of `service` (or one instance) over the last `window` seconds.
            #[pyo3(signature = (service, *, instance = None, window = 60.0))]
            fn stats(&self, service: &str, instance: Option<&str>, window: f64) -> PyResult<Stats> {
                let service = ServiceName::new(service).map_err(Error::from)?;
                let instance = instance.map(InstanceId::new).transpose().map_err(Error::from)?;
                let window = seconds(window, "window")?;
                Ok(self.hub.hub.stats(&service, instance.as_ref(), window).map_err(Error::from)?.into())
            }

            /// The OpenMetrics text of requests, errors, latency, health, breakers and
            /// check durations.
            fn metrics_text(&self) -> PyResult<String> {
                Ok(self.hub.hub.metrics_text().map_err(Error::from)?)
            }

            /// The last results of a health check, oldest first. Raises `NotFoundError`
            /// for an unknown check id.
            fn check_results(&self, check_id: &str) -> PyResult<Vec<CheckResult>> {
                let id = CheckId::new(check_id).map_err(Error::from)?;
                let results = self.hub.hub.health().results(&id).map_err(Error::from)?;
                Ok(results.into_iter().map(CheckResult::from).collect())
            }

            /// The circuit-breaker state (`closed`, `open`, `half_open`, …) of each
            /// instance of `service` this client has picked, keyed by
            /// `"{scope}/{instance_id}"` (`platform/api-1`, `tenant:<id>/api-1`).
            fn breaker_states(&self, service: &str) -> PyResult<HashMap<String, &'static str>> {
                let service = ServiceName::new(service).map_err(Error::from)?;
                Ok(self.hub.hub.breaker_states(&service).into_iter().map(|(i, s)| (i, s.as_str())).collect())
            }

            /// Adds an alert rule watching exactly one condition of `service` (or one
            /// instance): `error_rate_above` (0 to 1) or `latency_p95_above` (seconds) over
            /// `window` seconds, `instance_critical=True` or `breaker_open=True`; it fires
            /// once the condition has held for `for_seconds`. Rules live in this client's
            /// memory (events go to the database's alert history). Raises
            /// `AlreadyExistsError` for a taken id.
            #[pyo3(signature = (rule_id, name, *, service, error_rate_above = None, latency_p95_above = None, instance_critical = false, breaker_open = false, instance = None, window = 60.0, for_seconds = 0.0, severity = "warning"))]
            #[allow(clippy::too_many_arguments)]
            fn add_alert_rule(&self, rule_id: String, name: String, service: &str, error_rate_above: Option<f64>, latency_p95_above: Option<f64>, instance_critical: bool, breaker_open: bool, instance: Option<&str>, window: f64, for_seconds: f64, severity: &str) -> PyResult<()> {
                let rule = rule_from(rule_id, name, error_rate_above, latency_p95_above, instance_critical, breaker_open, service, instance, window, for_seconds, severity)?;
                Ok(self.engine()?.add_rule(rule).map_err(Error::from)?)
            }

            /// Removes an alert rule. Raises `NotFoundError`.
            fn remove_alert_rule(&self, rule_id: &str) -> PyResult<()> {
                self.engine()?.remove_rule(rule_id).map_err(Error::from)?;
                Ok(())
            }

            /// Each rule's state: `inactive`, `pending`, `firing` (or `resolved`).
            fn alert_states(&self) -> PyResult<HashMap<String, &'static str>> {
                Ok(self.engine()?.statuses().into_iter().map(|s| (s.rule_id, s.state.as_str())).collect())
            }

            /// Evaluates every rule now (they are also evaluated every second in the
            /// background) and delivers pending events; returns counts (`rules`, `fired`,
            /// `resolved`, `delivered`, `delivery_failures`, `queued`).
            fn evaluate_alerts(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                Ok(dispatch!($mode, py, self.core.clone().evaluate_alerts()))
            }

            /// The alert events (firing, resolved) delivered since the last call, oldest
            /// first; each event appears once.
            fn alert_events(&self) -> Vec<AlertEvent> {
                let mut state = lock(&self.hub.sink.state);
                state.polled.drain(..).map(|e| AlertEvent::from(&e)).collect()
            }

            /// Calls `callback(event)` for every firing and resolved event, on a worker
            /// thread with the GIL held. An exception raised by the callback is reported
            /// through `sys.unraisablehook` and counts as a failed delivery: the same event
            /// (same `id`) is offered again at the next evaluation, to the callbacks that
            /// have not taken it yet. Keep callbacks short: they delay the evaluation.
            fn on_alert(&self, callback: Bound<'_, PyAny>) -> PyResult<()> {
                if !callback.is_callable() {
                    return Err(Error::invalid("on_alert needs a callable").into());
                }
                lock(&self.hub.sink.callbacks).push(Arc::new(callback.unbind()));
                Ok(())
            }

            fn __repr__(&self) -> &'static str {
                concat!($py_name, "()")
            }
        }

        impl $name {
            fn engine(&self) -> Result<&ate_orchestrate::alerts::AlertEngine, Error> {
                self.hub
                    .hub
                    .alerts()
                    .ok_or_else(|| Error::internal("the service hub was built without alerts"))
            }
        }
    };
}

registry_class!(sync, Registry, "Registry");
registry_class!(async, AsyncRegistry, "AsyncRegistry");
