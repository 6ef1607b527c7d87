//! `/api/registry`: every service a caller may see at once, with each instance's health,
//! recent check results, breaker state and traffic (the dashboard's Services page), as a
//! list and as a live stream.
//!
//! Traffic figures cover the instances the caller may see only: a tenant's view of a
//! service name never includes another tenant's instances, and its latency percentiles are
//! those of its own instances' requests merged. Check results and breakers are those of
//! this host (checks run in the host that registered the instance; breakers belong to the
//! host that calls).

use super::Query;
use super::problem::ApiError;
use super::services::InstanceView;
use crate::host::Host;
use ate_core::Principal;
use ate_orchestrate::metrics::WindowStats;
use ate_orchestrate::registry::{HealthStatus, Instance, Query as Discover, Visibility};
use axum::Extension;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The window the traffic figures cover.
const WINDOW: Duration = Duration::from_secs(60);
/// Check results kept per instance in a view.
const RECENT_CHECKS: usize = 10;
/// How often the stream re-reads traffic figures when the registry itself is quiet.
const REFRESH: Duration = Duration::from_secs(2);

pub(crate) fn routes() -> OpenApiRouter<Host> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(events))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ViewQuery {
    /// Platform administrators: `platform` (the platform's instances only), a tenant id (that
    /// tenant's and the platform's), or nothing for every scope. Others see their tenant's
    /// and the platform's instances and may name only their own tenant.
    scope: Option<String>,
}

/// Traffic through this host over the last minute.
#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub(crate) struct Traffic {
    requests: u64,
    errors: u64,
    error_rate: f64,
    rate_per_sec: f64,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
}

impl From<WindowStats> for Traffic {
    fn from(s: WindowStats) -> Self {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        Traffic {
            requests: s.count,
            errors: s.errors,
            error_rate: s.error_rate,
            rate_per_sec: s.rate_per_sec,
            p50_ms: ms(s.p50),
            p95_ms: ms(s.p95),
            p99_ms: ms(s.p99),
        }
    }
}

/// One health-check run.
#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub(crate) struct CheckRun {
    at: DateTime<Utc>,
    /// `passing`, `warning` or `critical`.
    status: String,
    output: String,
    duration_ms: f64,
}

/// An instance with what this host knows of it.
#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub(crate) struct InstanceDetail {
    #[serde(flatten)]
    instance: InstanceView,
    traffic: Traffic,
    /// This host's circuit breaker for the instance (absent until it has called it).
    breaker: Option<String>,
    /// Ejected by this host's outlier detection now (it takes no traffic until it returns).
    ejected: bool,
    /// The latest check results, newest first (checks run by this host).
    recent_checks: Vec<CheckRun>,
}

/// A service as the caller sees it.
#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub(crate) struct ServiceSummary {
    service: String,
    passing: usize,
    warning: usize,
    critical: usize,
    draining: usize,
    /// Instances this host's outlier detection has ejected now.
    ejected: usize,
    /// The caller's instances' traffic together.
    traffic: Traffic,
    instances: Vec<InstanceDetail>,
}

/// Every service the caller may see, by name.
#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub(crate) struct ServiceOverview {
    services: Vec<ServiceSummary>,
}

fn visibility_of(p: &Principal, scope: Option<&str>) -> Result<Visibility, ApiError> {
    match (scope, p.is_platform_admin()) {
        (None, true) => Ok(Visibility::All),
        (None, false) => Ok(p.tenant().map_or(Visibility::Platform, Visibility::Tenant)),
        (Some(named), _) => Ok(match super::services::scope_of(p, Some(named))? {
            ate_orchestrate::registry::Scope::Platform => Visibility::Platform,
            ate_orchestrate::registry::Scope::Tenant(t) => Visibility::Tenant(t),
        }),
    }
}

/// Reads the overview for `p` within `visibility`.
async fn overview(
    host: &Host,
    p: &Principal,
    visibility: &Visibility,
) -> Result<ServiceOverview, ApiError> {
    let mut query = Discover::new(*visibility);
    query.include_unhealthy = true;
    let found = host.hub.discover(p, &query).await?;
    let mut by_service: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
    for i in found {
        by_service
            .entry(i.spec.service.as_str().to_owned())
            .or_default()
            .push(i);
    }
    let mut services = Vec::with_capacity(by_service.len());
    for (name, mut instances) in by_service {
        instances.sort_by(|a, b| a.spec.id.as_str().cmp(b.spec.id.as_str()));
        let service = instances[0].spec.service.clone();
        let ids: Vec<_> = instances.iter().map(|i| i.spec.id.clone()).collect();
        let traffic = host.hub.instances_stats(&service, &ids, WINDOW)?.into();
        let count = |s: HealthStatus| instances.iter().filter(|i| i.status == s).count();
        let mut summary = ServiceSummary {
            service: name,
            passing: count(HealthStatus::Passing),
            warning: count(HealthStatus::Warning),
            critical: count(HealthStatus::Critical),
            draining: instances
                .iter()
                .filter(|i| i.draining_since.is_some())
                .count(),
            ejected: 0,
            traffic,
            instances: Vec::with_capacity(instances.len()),
        };
        for i in &instances {
            let stats =
                host.hub
                    .instances_stats(&service, std::slice::from_ref(&i.spec.id), WINDOW)?;
            let (breaker, ejected) = host.hub.instance_traffic_state(&i.key());
            summary.ejected += usize::from(ejected);
            summary.instances.push(InstanceDetail {
                instance: InstanceView::from(i),
                traffic: stats.into(),
                breaker: breaker.map(|b| b.to_string()),
                ejected,
                recent_checks: recent_checks(host, i),
            });
        }
        services.push(summary);
    }
    Ok(ServiceOverview { services })
}

fn recent_checks(host: &Host, i: &Instance) -> Vec<CheckRun> {
    let health = host.hub.health();
    let mut runs: Vec<CheckRun> = health
        .instance_checks(&i.key())
        .iter()
        .filter_map(|id| health.results(id).ok())
        .flatten()
        .map(|r| CheckRun {
            at: r.at,
            status: r.status.as_str().to_owned(),
            output: r.output,
            duration_ms: r.duration.as_secs_f64() * 1e3,
        })
        .collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.at));
    runs.truncate(RECENT_CHECKS);
    runs
}

/// Every service the caller may see: instances with their health, recent checks, breaker
/// and traffic over the last minute.
#[utoipa::path(get, path = "/api/registry", tag = "services", params(ViewQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ServiceOverview),
        (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn list(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ViewQuery>,
) -> Result<axum::Json<ServiceOverview>, ApiError> {
    let visibility = visibility_of(&p, q.scope.as_deref())?;
    Ok(axum::Json(overview(&host, &p, &visibility).await?))
}

/// Follows the overview live (Server-Sent Events): a `services` event with the whole
/// overview now, then another whenever it changes (an instance registered, deregistered,
/// changing status or draining; traffic figures are re-read every 2 s). Reconnecting is
/// safe: the first event is always the whole current state.
#[utoipa::path(get, path = "/api/registry/events", tag = "services", params(ViewQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "`text/event-stream` of `services` events (ServiceOverview JSON)", content_type = "text/event-stream"),
        (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn events(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ViewQuery>,
) -> Result<Response, ApiError> {
    let visibility = visibility_of(&p, q.scope.as_deref())?;
    // Subscribe first, then read: no change between the two is missed.
    let mut watch = host.hub.registry().watch(&p, visibility).await?;
    let first = overview(&host, &p, &visibility).await?;
    let stream = super::sse_stream(move |tx| async move {
        let mut last = first;
        if tx.send(services_event(&last)).await.is_err() {
            return;
        }
        let mut tick = tokio::time::interval(REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                change = watch.next() => {
                    if change.is_none() {
                        return;
                    }
                    // A burst of changes (a check round, a deploy) becomes one event.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    while let Some(Some(_)) = watch.next().now_or_never() {}
                }
                _ = tick.tick() => {}
            }
            let Ok(now) = overview(&host, &p, &visibility).await else {
                return;
            };
            if now != last {
                last = now;
                if tx.send(services_event(&last)).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn services_event(o: &ServiceOverview) -> Result<Event, std::convert::Infallible> {
    let data = serde_json::to_string(o).unwrap_or_else(|_| "{}".to_owned());
    Ok(Event::default().event("services").data(data))
}
