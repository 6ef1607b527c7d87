//! `/api/services`: the service registry of ate-orchestrate (register with a health check,
//! heartbeat, set status, deregister, discover, health and statistics).
//!
//! A tenant's principals register and see their tenant's instances (and discover the
//! platform's); platform administrators register platform instances (`scope=platform`,
//! the default for them). The registry lives in the database, so every host sees the same
//! instances; health checks run in the host that registered the instance.

use super::problem::ApiError;
use super::{Body, Path, Query};
use crate::host::Host;
use ate_core::Principal;
use ate_orchestrate::health::{CheckId, CheckKind, CheckSpec};
use ate_orchestrate::registry::{
    Environment, HealthStatus, Instance, InstanceId, InstanceKey, InstanceSpec, Query as Discover,
    Scope, ServiceName, Visibility,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<Host> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(discover))
        .routes(routes!(service_health))
        .routes(routes!(deregister))
        .routes(routes!(heartbeat))
        .routes(routes!(set_status))
}

/// A registered instance.
#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub(crate) struct InstanceView {
    service: String,
    id: String,
    /// `platform` or `tenant`.
    scope: String,
    tenant_id: Option<String>,
    endpoint: String,
    tags: BTreeSet<String>,
    capabilities: BTreeSet<String>,
    metadata: BTreeMap<String, String>,
    weight: u32,
    /// `development`, `staging` or `production`.
    environment: String,
    /// `passing`, `warning` or `critical`.
    status: String,
    status_output: String,
    registered_at: DateTime<Utc>,
    last_heartbeat: DateTime<Utc>,
    /// Set while the instance drains (no new traffic, deregistered once drained).
    draining_since: Option<DateTime<Utc>>,
    /// Why it is in maintenance (out of rotation until put back); absent otherwise.
    maintenance: Option<String>,
    maintenance_since: Option<DateTime<Utc>>,
}

impl From<&Instance> for InstanceView {
    fn from(i: &Instance) -> Self {
        let s = &i.spec;
        InstanceView {
            service: s.service.as_str().to_owned(),
            id: s.id.as_str().to_owned(),
            scope: if s.scope.tenant().is_some() {
                "tenant"
            } else {
                "platform"
            }
            .to_owned(),
            tenant_id: s.scope.tenant().map(|t| t.to_string()),
            endpoint: s.endpoint.to_string(),
            tags: s.tags.clone(),
            capabilities: s.capabilities.clone(),
            metadata: s.metadata.clone(),
            weight: s.weight,
            environment: s.environment.as_str().to_owned(),
            status: i.status.as_str().to_owned(),
            status_output: i.status_output.clone(),
            registered_at: i.registered_at,
            last_heartbeat: i.last_heartbeat,
            draining_since: i.draining_since,
            maintenance: i.maintenance.clone(),
            maintenance_since: i.maintenance_since,
        }
    }
}

/// Which scope a request acts in: `platform` (platform administrators) or the caller's
/// tenant (default for tenant principals).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ScopeParam {
    /// `platform`, or a tenant id (default: the caller's tenant, or the platform for a
    /// platform administrator).
    pub(super) scope: Option<String>,
}

pub(super) fn scope_of(p: &Principal, named: Option<&str>) -> Result<Scope, ApiError> {
    match named {
        Some("platform") => Ok(Scope::Platform),
        Some(t) => Ok(Scope::Tenant(super::tenants::visible_tenant(p, t)?)),
        None => Ok(p.tenant().map_or(Scope::Platform, Scope::Tenant)),
    }
}

/// What a scope sees: its own instances (a tenant's also the platform's).
fn visibility(scope: Scope) -> Visibility {
    match scope {
        Scope::Platform => Visibility::Platform,
        Scope::Tenant(t) => Visibility::Tenant(t),
    }
}

pub(super) fn key(
    p: &Principal,
    scope: Option<&str>,
    service: &str,
    id: &str,
) -> Result<InstanceKey, ApiError> {
    Ok(InstanceKey::new(
        scope_of(p, scope)?,
        ServiceName::new(service)?,
        InstanceId::new(id)?,
    ))
}

/// A health check of a registration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub(crate) enum CheckRequest {
    /// `GET url`: 2xx passing, 429 warning, anything else critical.
    Http {
        url: String,
        #[serde(default = "default_interval")]
        interval_secs: u64,
        /// Default: 5 s, or half the interval when that is shorter.
        timeout_secs: Option<u64>,
    },
    /// A TCP connect to `address` (`host:port`).
    Tcp {
        address: String,
        #[serde(default = "default_interval")]
        interval_secs: u64,
        /// Default: 5 s, or half the interval when that is shorter.
        timeout_secs: Option<u64>,
    },
    /// The instance reports itself with heartbeats; none within `ttl_secs` turns it
    /// critical.
    Ttl { ttl_secs: u64 },
}

fn default_interval() -> u64 {
    10
}

/// 5 s, or half the interval when that is shorter.
fn timeout_for(interval: Duration, given: Option<u64>) -> Duration {
    given.map_or_else(
        || Duration::from_secs(5).min(interval / 2),
        Duration::from_secs,
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterRequest {
    service: String,
    id: String,
    /// An absolute URL with a host (`http://10.0.0.7:8080`).
    endpoint: String,
    /// `platform` or a tenant id (default: the caller's tenant, or the platform).
    scope: Option<String>,
    #[serde(default)]
    tags: BTreeSet<String>,
    #[serde(default)]
    capabilities: BTreeSet<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    /// Balancing weight (default 1).
    weight: Option<u32>,
    /// `development`, `staging` or `production` (default).
    environment: Option<String>,
    /// Without a check the instance stays `critical` until its status is set.
    check: Option<CheckRequest>,
}

/// Registers an instance of a service, with an optional health check; it takes traffic
/// once the check passes.
#[utoipa::path(post, path = "/api/services", tag = "services", request_body = RegisterRequest,
    security(("bearer" = [])),
    responses((status = 201, body = InstanceView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn register(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Body(r): Body<RegisterRequest>,
) -> Result<(StatusCode, Json<InstanceView>), ApiError> {
    let scope = scope_of(&p, r.scope.as_deref())?;
    let mut spec = InstanceSpec::new(
        scope,
        ServiceName::new(r.service)?,
        InstanceId::new(r.id)?,
        &r.endpoint,
    )?;
    spec.tags = r.tags;
    spec.capabilities = r.capabilities;
    spec.metadata = r.metadata;
    if let Some(w) = r.weight {
        spec = spec.weight(w);
    }
    if let Some(e) = r.environment.as_deref() {
        spec.environment = Environment::parse(e)?;
    }
    let key = spec.key();
    let checks = match r.check {
        None => Vec::new(),
        Some(c) => {
            let id = CheckId::new(format!("{}-check", key.id().as_str()))?;
            let (kind, interval, timeout) = match c {
                CheckRequest::Http {
                    url,
                    interval_secs,
                    timeout_secs,
                } => (CheckKind::http(url), interval_secs, timeout_secs),
                CheckRequest::Tcp {
                    address,
                    interval_secs,
                    timeout_secs,
                } => (CheckKind::tcp(address), interval_secs, timeout_secs),
                CheckRequest::Ttl { ttl_secs } => (
                    CheckKind::ttl(Duration::from_secs(ttl_secs)),
                    default_interval(),
                    None,
                ),
            };
            let mut check = CheckSpec::new(id, key.clone(), kind);
            check.interval = Duration::from_secs(interval);
            check.timeout = timeout_for(check.interval, timeout);
            vec![check]
        }
    };
    let instance = host.hub.register(&p, spec, checks).await?;
    Ok((StatusCode::CREATED, Json(InstanceView::from(&instance))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DiscoverQuery {
    /// `platform` or a tenant id (default: the caller's tenant with the platform's
    /// instances, or the platform).
    scope: Option<String>,
    /// Only instances with this tag.
    tag: Option<String>,
    /// Only instances with this capability.
    capability: Option<String>,
    /// Only instances in this environment.
    environment: Option<String>,
    /// Include instances that are not passing (default: healthy ones only).
    #[serde(default)]
    include_unhealthy: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InstanceList {
    items: Vec<InstanceView>,
}

/// Discovers instances of a service (healthy ones unless asked otherwise).
#[utoipa::path(get, path = "/api/services/{service}", tag = "services",
    params(("service" = String, Path), DiscoverQuery),
    security(("bearer" = [])),
    responses((status = 200, body = InstanceList), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn discover(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(service): Path<String>,
    Query(q): Query<DiscoverQuery>,
) -> Result<Json<InstanceList>, ApiError> {
    let visibility = visibility(scope_of(&p, q.scope.as_deref())?);
    let mut query = Discover::new(visibility).service(ServiceName::new(service)?);
    if let Some(t) = q.tag {
        query = query.tag(t);
    }
    if let Some(c) = q.capability {
        query = query.capability(c);
    }
    query.environment = q
        .environment
        .as_deref()
        .map(Environment::parse)
        .transpose()?;
    query.include_unhealthy = q.include_unhealthy;
    let found = host.hub.discover(&p, &query).await?;
    Ok(Json(InstanceList {
        items: found.iter().map(InstanceView::from).collect(),
    }))
}

/// Traffic and health of one service over the last minute.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ServiceHealth {
    service: String,
    /// Instances by status (every instance the caller may see).
    instances: Vec<InstanceView>,
    requests: u64,
    errors: u64,
    error_rate: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    /// Circuit-breaker state of each instance this host has called.
    breakers: BTreeMap<String, String>,
}

/// The health of a service: its instances' statuses, the last minute's traffic through
/// this host to the instances the caller may see, and its breakers.
#[utoipa::path(get, path = "/api/services/{service}/health", tag = "services",
    params(("service" = String, Path), ScopeParam),
    security(("bearer" = [])),
    responses((status = 200, body = ServiceHealth), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn service_health(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(service): Path<String>,
    Query(s): Query<ScopeParam>,
) -> Result<Json<ServiceHealth>, ApiError> {
    let name = ServiceName::new(&service)?;
    let visibility = visibility(scope_of(&p, s.scope.as_deref())?);
    let mut query = Discover::new(visibility).service(name.clone());
    query.include_unhealthy = true;
    let instances = host.hub.discover(&p, &query).await?;
    // Only the instances the caller may see: another tenant's instances of the same
    // service name stay out of the figures.
    let ids: Vec<InstanceId> = instances.iter().map(|i| i.spec.id.clone()).collect();
    let stats = host
        .hub
        .instances_stats(&name, &ids, Duration::from_secs(60))?;
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
    Ok(Json(ServiceHealth {
        service,
        instances: instances.iter().map(InstanceView::from).collect(),
        requests: stats.count,
        errors: stats.errors,
        error_rate: stats.error_rate,
        p50_ms: ms(stats.p50),
        p99_ms: ms(stats.p99),
        breakers: instances
            .iter()
            .filter_map(|i| {
                let (breaker, _) = host.hub.instance_traffic_state(&i.key());
                breaker.map(|b| (i.spec.id.as_str().to_owned(), b.to_string()))
            })
            .collect(),
    }))
}

/// Deregisters an instance: its checks stop and it takes no more traffic.
#[utoipa::path(delete, path = "/api/services/{service}/instances/{id}", tag = "services",
    params(("service" = String, Path), ("id" = String, Path), ScopeParam),
    security(("bearer" = [])),
    responses((status = 200, body = InstanceView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn deregister(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path((service, id)): Path<(String, String)>,
    Query(s): Query<ScopeParam>,
) -> Result<Json<InstanceView>, ApiError> {
    let key = key(&p, s.scope.as_deref(), &service, &id)?;
    Ok(Json(InstanceView::from(
        &host.hub.deregister(&p, &key).await?,
    )))
}

/// Records a heartbeat (passes the instance's TTL check).
#[utoipa::path(post, path = "/api/services/{service}/instances/{id}/heartbeat", tag = "services",
    params(("service" = String, Path), ("id" = String, Path), ScopeParam),
    security(("bearer" = [])),
    responses((status = 200, body = InstanceView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn heartbeat(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path((service, id)): Path<(String, String)>,
    Query(s): Query<ScopeParam>,
) -> Result<Json<InstanceView>, ApiError> {
    let key = key(&p, s.scope.as_deref(), &service, &id)?;
    Ok(Json(InstanceView::from(
        &host.hub.heartbeat(&p, &key).await?,
    )))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusRequest {
    /// `passing`, `warning` or `critical`.
    status: String,
    #[serde(default)]
    output: String,
}

/// Sets an instance's status by hand (instances without checks, maintenance).
#[utoipa::path(put, path = "/api/services/{service}/instances/{id}/status", tag = "services",
    params(("service" = String, Path), ("id" = String, Path), ScopeParam), request_body = StatusRequest,
    security(("bearer" = [])),
    responses((status = 200, body = InstanceView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn set_status(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path((service, id)): Path<(String, String)>,
    Query(s): Query<ScopeParam>,
    Body(r): Body<StatusRequest>,
) -> Result<Json<InstanceView>, ApiError> {
    let key = key(&p, s.scope.as_deref(), &service, &id)?;
    let status = HealthStatus::parse(&r.status)?;
    Ok(Json(InstanceView::from(
        &host.hub.set_status(&p, &key, status, &r.output).await?,
    )))
}
