//! The arguments of registry calls, converted from Python before anything runs: who acts in
//! which scope ([`Caller`]), the instance a call names ([`Target`]), registrations, queries,
//! alert rules, strategies and error kinds.

use crate::convert::{names, parse_id, seconds};
use crate::core::View;
use crate::error::Error;
use crate::registry::checks::CheckDefinition;
use crate::types::auth::Principal;
use ate_core::{ErrorKind, TenantId};
use ate_orchestrate::alerts::{AlertRule, Condition, Quantile, Severity};
use ate_orchestrate::balance::Strategy;
use ate_orchestrate::health::CheckSpec;
use ate_orchestrate::registry::{
    Environment, InstanceId, InstanceKey, InstanceSpec, Query, Scope, ServiceName, Visibility,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use std::collections::HashMap;

fn tenant_of(tenant: Option<&str>) -> Result<Option<TenantId>, Error> {
    tenant.map(parse_id).transpose()
}

/// Who acts, and in which tenant: the per-call `actor=` or the client's principal; `tenant`,
/// or the principal's own tenant, or the platform.
pub(crate) struct Caller {
    pub(crate) principal: ate_core::Principal,
    pub(crate) tenant: Option<TenantId>,
}

impl Caller {
    pub(crate) fn new(
        view: &View,
        actor: Option<&Bound<'_, Principal>>,
        tenant: Option<&str>,
    ) -> Result<Self, Error> {
        let principal = view.acting(actor);
        let tenant = tenant_of(tenant)?.or_else(|| principal.tenant());
        Ok(Caller { principal, tenant })
    }

    pub(crate) fn scope(&self) -> Scope {
        self.tenant.map_or(Scope::Platform, Scope::Tenant)
    }

    pub(crate) fn visibility(&self) -> Visibility {
        self.tenant.map_or(Visibility::Platform, Visibility::Tenant)
    }
}

/// An error kind from its name (`unavailable`, `internal`, …).
pub(crate) fn error_kind(name: &str) -> Result<ErrorKind, Error> {
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

/// A balancing strategy from its Python name.
pub(crate) fn strategy(name: &str) -> Result<Strategy, Error> {
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

/// A consistent-hashing key: `str` (as UTF-8) or `bytes`.
pub(crate) fn key_bytes(key: &Bound<'_, PyAny>) -> Result<Vec<u8>, Error> {
    if key.is_instance_of::<PyString>() {
        let s: String = key.extract().map_err(Error::python)?;
        return Ok(s.into_bytes());
    }
    if let Ok(b) = key.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    Err(Error::invalid("key must be str or bytes"))
}

/// The arguments of `register`, converted from Python.
pub(crate) struct RegisterArgs {
    pub(crate) principal: ate_core::Principal,
    pub(crate) spec: InstanceSpec,
    pub(crate) checks: Vec<CheckSpec>,
}

impl RegisterArgs {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
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
pub(crate) struct Target {
    pub(crate) principal: ate_core::Principal,
    pub(crate) scope: Scope,
    pub(crate) service: ServiceName,
    pub(crate) id: InstanceId,
}

impl Target {
    /// The instance this target names.
    pub(crate) fn key(&self) -> InstanceKey {
        InstanceKey::new(self.scope, self.service.clone(), self.id.clone())
    }

    pub(crate) fn new(caller: Caller, service: &str, instance_id: &str) -> Result<Self, Error> {
        Ok(Target {
            scope: caller.scope(),
            principal: caller.principal,
            service: ServiceName::new(service)?,
            id: InstanceId::new(instance_id)?,
        })
    }
}

/// The discovery query of `discover`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn query_from(
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

/// The alert rule of `add_alert_rule`: exactly one condition.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rule_from(
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
