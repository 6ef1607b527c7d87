//! `/api/orchestration/schedules`: cron schedules that submit a workflow run at every tick
//! (each tick exactly once, whichever host's worker sees it first).

use super::problem::ApiError;
use super::users::tenant_or_own;
use super::workflows::TenantParam;
use super::{Body, Path, Query};
use crate::host::Host;
use ate_core::Principal;
use ate_orchestrate::workflow::{DagSpec, Limits, RunSpec, Schedule, ScheduleSpec};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<Host> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_schedule, delete))
        .routes(routes!(set_paused))
}

/// The run a schedule submits at each tick.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduledRun {
    /// The DAG (as for a submitted run).
    #[schema(value_type = Object)]
    dag: Value,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    priority: i32,
    /// Labels of every run (the schedule's name is added as `schedule`).
    #[serde(default)]
    labels: BTreeMap<String, String>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSchedule {
    /// Unique within the tenant.
    name: String,
    /// Five fields: minute hour day-of-month month day-of-week (`*/5 * * * *`).
    cron: String,
    /// An IANA time zone (default `UTC`).
    time_zone: Option<String>,
    /// Created paused: no tick fires until resumed.
    #[serde(default)]
    paused: bool,
    run: ScheduledRun,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ScheduleView {
    name: String,
    tenant_id: String,
    cron: String,
    time_zone: String,
    paused: bool,
    /// The next tick (none while paused or when no tick will come).
    next_fire_at: Option<DateTime<Utc>>,
    last_fired_at: Option<DateTime<Utc>>,
    /// The run the last tick started.
    last_run: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    run: ScheduledRun,
}

impl From<&Schedule> for ScheduleView {
    fn from(s: &Schedule) -> Self {
        ScheduleView {
            name: s.name.to_string(),
            tenant_id: s.tenant.to_string(),
            cron: s.cron.clone(),
            time_zone: s.time_zone.clone(),
            paused: s.paused,
            next_fire_at: s.next_fire_at,
            last_fired_at: s.last_fired_at,
            last_run: s.last_run.map(|r| r.to_string()),
            created_by: s.created_by.clone(),
            created_at: s.created_at,
            updated_at: s.updated_at,
            run: ScheduledRun {
                dag: serde_json::from_str(&s.run.dag.to_json()).unwrap_or(Value::Null),
                input: s.run.input.clone(),
                priority: s.run.priority,
                labels: s.run.labels.clone(),
                timeout_secs: s.run.timeout.map(|t| t.as_secs()),
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ScheduleList {
    /// By name.
    items: Vec<ScheduleView>,
}

/// A tenant's schedules, by name.
#[utoipa::path(get, path = "/api/orchestration/schedules", tag = "workflows", params(TenantParam),
    security(("bearer" = [])),
    responses((status = 200, body = ScheduleList), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn list(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(t): Query<TenantParam>,
) -> Result<Json<ScheduleList>, ApiError> {
    let tenant = tenant_or_own(&p, t.tenant_id.as_deref())?;
    let all = host.workflows.store().list_schedules(&p, tenant).await?;
    Ok(Json(ScheduleList {
        items: all.iter().map(ScheduleView::from).collect(),
    }))
}

/// Creates a schedule; its first tick is the first after now.
#[utoipa::path(post, path = "/api/orchestration/schedules", tag = "workflows",
    params(TenantParam), request_body = CreateSchedule,
    security(("bearer" = [])),
    responses((status = 201, body = ScheduleView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn create(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(t): Query<TenantParam>,
    Body(r): Body<CreateSchedule>,
) -> Result<(StatusCode, Json<ScheduleView>), ApiError> {
    let tenant = tenant_or_own(&p, t.tenant_id.as_deref())?;
    let dag = DagSpec::from_json(r.run.dag.to_string().as_bytes(), &Limits::default())?;
    let mut run = RunSpec::new(dag, r.run.input);
    run.priority = r.run.priority;
    run.labels = r.run.labels;
    run.timeout = r.run.timeout_secs.map(Duration::from_secs);
    let mut spec = ScheduleSpec::new(r.name, r.cron, run);
    if let Some(tz) = r.time_zone {
        spec = spec.time_zone(tz);
    }
    spec.paused = r.paused;
    let created = host.workflows.create_schedule(&p, tenant, &spec).await?;
    Ok((StatusCode::CREATED, Json(ScheduleView::from(&created))))
}

/// One schedule.
#[utoipa::path(get, path = "/api/orchestration/schedules/{name}", tag = "workflows",
    params(("name" = String, Path), TenantParam),
    security(("bearer" = [])),
    responses((status = 200, body = ScheduleView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn get_schedule(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(t): Query<TenantParam>,
) -> Result<Json<ScheduleView>, ApiError> {
    let tenant = tenant_or_own(&p, t.tenant_id.as_deref())?;
    let s = host
        .workflows
        .store()
        .get_schedule(&p, tenant, &name)
        .await?;
    Ok(Json(ScheduleView::from(&s)))
}

/// Deletes a schedule (the runs it started stay).
#[utoipa::path(delete, path = "/api/orchestration/schedules/{name}", tag = "workflows",
    params(("name" = String, Path), TenantParam),
    security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn delete(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(t): Query<TenantParam>,
) -> Result<StatusCode, ApiError> {
    let tenant = tenant_or_own(&p, t.tenant_id.as_deref())?;
    host.workflows
        .store()
        .delete_schedule(&p, tenant, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PausedRequest {
    /// `true` pauses; `false` resumes from now (ticks missed while paused do not fire).
    paused: bool,
}

/// Pauses or resumes a schedule.
#[utoipa::path(put, path = "/api/orchestration/schedules/{name}/paused", tag = "workflows",
    params(("name" = String, Path), TenantParam), request_body = PausedRequest,
    security(("bearer" = [])),
    responses((status = 200, body = ScheduleView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn set_paused(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(t): Query<TenantParam>,
    Body(r): Body<PausedRequest>,
) -> Result<Json<ScheduleView>, ApiError> {
    let tenant = tenant_or_own(&p, t.tenant_id.as_deref())?;
    let s = host
        .workflows
        .store()
        .pause_schedule(&p, tenant, &name, r.paused)
        .await?;
    Ok(Json(ScheduleView::from(&s)))
}
