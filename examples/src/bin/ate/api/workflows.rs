//! `/api/orchestration/workflows`: durable workflow runs (ate-orchestrate's engine, with the
//! host's built-in steps, see `steps.rs`): submit, list, get with node states, cancel, retry
//! from the failure, signal, logs, and a live event stream (Server-Sent Events).
//!
//! Runs belong to a tenant: the caller's, or `tenant_id` for a platform administrator.
//! Reading needs `workflows:read`, everything else `workflows:run`. Another tenant's run is
//! `404`, like a missing one.

use super::problem::ApiError;
use super::users::tenant_or_own;
use super::{Body, Path, Query, parse_id};
use crate::host::Host;
use ate_core::{Cursor, Principal, RunId, TenantId};
use ate_orchestrate::workflow::{
    DagSpec, Limits, LogLevel, LogQuery, NodeTask, Run, RunQuery, RunSpec, RunStatus,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<Host> {
    OpenApiRouter::new()
        .routes(routes!(submit, list))
        .routes(routes!(get_run))
        .routes(routes!(cancel))
        .routes(routes!(retry))
        .routes(routes!(signal))
        .routes(routes!(logs))
        .routes(routes!(events))
}

/// Which tenant a request acts in.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TenantParam {
    /// The tenant (platform administrators; default: the caller's own).
    pub(crate) tenant_id: Option<String>,
}

/// One node of a run.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NodeOut {
    id: String,
    /// The step it runs (absent for a signal node).
    step: Option<String>,
    /// The signal it waits for (absent for a step node).
    signal: Option<String>,
    /// `blocked`, `ready`, `running`, `waiting`, `succeeded`, `failed`, `skipped`,
    /// `cancelled`.
    status: String,
    attempt: u32,
    ready_at: Option<DateTime<Utc>>,
    output: Option<Value>,
    error: Option<NodeErrorOut>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    /// The nodes it waits for (the run's graph).
    depends_on: Vec<String>,
}

/// Why a node's last attempt failed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NodeErrorOut {
    kind: String,
    message: String,
}

/// A workflow run with its nodes.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunView {
    id: String,
    tenant_id: String,
    /// `pending`, `running`, `succeeded`, `failed` or `cancelled`.
    status: String,
    /// While running steps wind down: how the run will end.
    stopping: Option<String>,
    input: Value,
    idempotency_key: Option<String>,
    priority: i32,
    labels: BTreeMap<String, String>,
    start_at: DateTime<Utc>,
    timeout_secs: Option<u64>,
    error: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    revision: i64,
    parent: Option<String>,
    /// In the order of the definition (empty in lists).
    nodes: Vec<NodeOut>,
}

impl From<&Run> for RunView {
    fn from(r: &Run) -> Self {
        RunView {
            id: r.id.to_string(),
            tenant_id: r.tenant.to_string(),
            status: r.status.as_str().to_owned(),
            stopping: r.stopping.map(|s| s.as_str().to_owned()),
            input: r.input.clone(),
            idempotency_key: r.idempotency_key.clone(),
            priority: r.priority,
            labels: r.labels.clone(),
            start_at: r.start_at,
            timeout_secs: r.timeout.map(|t| t.as_secs()),
            error: r.error.clone(),
            created_by: r.created_by.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
            revision: r.revision,
            parent: r.parent.map(|p| p.to_string()),
            nodes: r
                .nodes
                .iter()
                .map(|n| {
                    let (step, signal) = match &n.task {
                        NodeTask::Step(s) => (Some(s.to_string()), None),
                        NodeTask::Signal(s) => (None, Some(s.to_string())),
                        _ => (None, None),
                    };
                    NodeOut {
                        id: n.id.to_string(),
                        step,
                        signal,
                        status: n.status.as_str().to_owned(),
                        attempt: n.attempt,
                        ready_at: n.ready_at,
                        output: n.output.clone(),
                        error: n.error.as_ref().map(|e| NodeErrorOut {
                            kind: e.kind.clone(),
                            message: e.message.clone(),
                        }),
                        started_at: n.started_at,
                        finished_at: n.finished_at,
                        depends_on: n.depends_on.iter().map(ToString::to_string).collect(),
                    }
                })
                .collect(),
        }
    }
}

/// A run to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitRequest {
    /// The DAG: `{"nodes": [{"id": "a", "step": "echo"}, {"id": "b", "step": "delay",
    /// "depends_on": ["a"], "params": {"ms": 100}}]}` (see the README for every field).
    #[schema(value_type = Object)]
    dag: Value,
    /// What every node sees as `input`.
    #[serde(default)]
    input: Value,
    /// Submitting again with the same key returns the first run (`200`) and starts nothing.
    idempotency_key: Option<String>,
    /// Not before this time.
    start_at: Option<DateTime<Utc>>,
    /// Higher first.
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// The whole run's limit.
    timeout_secs: Option<u64>,
}

impl SubmitRequest {
    pub(crate) fn into_spec(self) -> Result<RunSpec, ApiError> {
        let dag = DagSpec::from_json(self.dag.to_string().as_bytes(), &Limits::default())?;
        let mut spec = RunSpec::new(dag, self.input);
        spec.idempotency_key = self.idempotency_key;
        spec.start_at = self.start_at;
        spec.priority = self.priority;
        spec.labels = self.labels;
        spec.timeout = self.timeout_secs.map(Duration::from_secs);
        Ok(spec)
    }
}

/// Starts a workflow run (`201`), or returns the run an idempotency key already names
/// (`200`).
#[utoipa::path(post, path = "/api/orchestration/workflows", tag = "workflows",
    params(TenantParam), request_body = SubmitRequest,
    security(("bearer" = [])),
    responses((status = 201, body = RunView), (status = 200, body = RunView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn submit(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(t): Query<TenantParam>,
    Body(r): Body<SubmitRequest>,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    let tenant = tenant_or_own(&p, t.tenant_id.as_deref())?;
    let submitted = host.workflows.submit(&p, tenant, &r.into_spec()?).await?;
    let status = if submitted.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(RunView::from(&submitted.run))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    tenant_id: Option<String>,
    /// `pending`, `running`, `succeeded`, `failed` or `cancelled`.
    status: Option<String>,
    /// `key:value`: only runs with this label.
    label: Option<String>,
    /// Only runs submitted at or after this time.
    since: Option<DateTime<Utc>>,
    /// Only runs submitted before this time.
    until: Option<DateTime<Utc>>,
    /// Page size, 1 to 1000 (default 50).
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunPage {
    /// Newest first, without their nodes.
    items: Vec<RunView>,
    next_cursor: Option<String>,
}

/// Lists a tenant's runs, newest first.
#[utoipa::path(get, path = "/api/orchestration/workflows", tag = "workflows", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = RunPage), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn list(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Result<Json<RunPage>, ApiError> {
    let tenant = tenant_or_own(&p, q.tenant_id.as_deref())?;
    let mut query = RunQuery::new();
    if let Some(s) = q.status.as_deref() {
        query = query.status(RunStatus::parse(s)?);
    }
    if let Some(l) = q.label.as_deref() {
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| ApiError::invalid("label must be key:value"))?;
        query = query.label(k, v);
    }
    query.since = q.since;
    query.until = q.until;
    query.limit = q.limit;
    query.cursor = q.cursor.map(Cursor::from_string);
    let page = host.workflows.store().list(&p, tenant, &query).await?;
    Ok(Json(RunPage {
        items: page.items.iter().map(RunView::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

fn run_ref(p: &Principal, t: &TenantParam, id: &str) -> Result<(TenantId, RunId), ApiError> {
    Ok((
        tenant_or_own(p, t.tenant_id.as_deref())?,
        parse_id("run id", id)?,
    ))
}

/// A run with its nodes' states.
#[utoipa::path(get, path = "/api/orchestration/workflows/{run_id}", tag = "workflows",
    params(("run_id" = uuid::Uuid, Path), TenantParam),
    security(("bearer" = [])),
    responses((status = 200, body = RunView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn get_run(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(t): Query<TenantParam>,
) -> Result<Json<RunView>, ApiError> {
    let (tenant, id) = run_ref(&p, &t, &id)?;
    let run = host.workflows.store().get(&p, tenant, id).await?;
    Ok(Json(RunView::from(&run)))
}

/// Cancels a run (running steps are asked to stop). Cancelling a finished run changes
/// nothing.
#[utoipa::path(post, path = "/api/orchestration/workflows/{run_id}/cancel", tag = "workflows",
    params(("run_id" = uuid::Uuid, Path), TenantParam),
    security(("bearer" = [])),
    responses((status = 200, body = RunView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn cancel(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(t): Query<TenantParam>,
) -> Result<Json<RunView>, ApiError> {
    let (tenant, id) = run_ref(&p, &t, &id)?;
    let run = host.workflows.store().cancel(&p, tenant, id).await?;
    Ok(Json(RunView::from(&run)))
}

/// Starts a failed run again from its failure: succeeded nodes keep their outputs.
/// `409` unless the run failed.
#[utoipa::path(post, path = "/api/orchestration/workflows/{run_id}/retry", tag = "workflows",
    params(("run_id" = uuid::Uuid, Path), TenantParam),
    security(("bearer" = [])),
    responses((status = 200, body = RunView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn retry(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(t): Query<TenantParam>,
) -> Result<Json<RunView>, ApiError> {
    let (tenant, id) = run_ref(&p, &t, &id)?;
    let run = host.workflows.store().retry(&p, tenant, id).await?;
    Ok(Json(RunView::from(&run)))
}

/// Delivers a signal: every node of the run waiting for it succeeds with the body as its
/// output. `400` when no node waits for that signal, `409` when its nodes are not waiting
/// now.
#[utoipa::path(post, path = "/api/orchestration/workflows/{run_id}/signals/{name}", tag = "workflows",
    params(("run_id" = uuid::Uuid, Path), ("name" = String, Path), TenantParam),
    request_body(content = Object, description = "The payload (any JSON)"),
    security(("bearer" = [])),
    responses((status = 200, body = RunView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn signal(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path((id, name)): Path<(String, String)>,
    Query(t): Query<TenantParam>,
    Body(payload): Body<Value>,
) -> Result<Json<RunView>, ApiError> {
    let (tenant, id) = run_ref(&p, &t, &id)?;
    let run = host
        .workflows
        .store()
        .signal(&p, tenant, id, &name, payload)
        .await?;
    Ok(Json(RunView::from(&run)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogsQuery {
    tenant_id: Option<String>,
    /// Only this node's entries.
    node: Option<String>,
    /// `debug`, `info`, `warn` or `error`: only entries at least this serious.
    min_level: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    limit: Option<u32>,
    cursor: Option<String>,
}

/// One log entry a step wrote.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogOut {
    at: DateTime<Utc>,
    level: String,
    node: String,
    attempt: u32,
    message: String,
    fields: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogPage {
    /// Oldest first.
    items: Vec<LogOut>,
    next_cursor: Option<String>,
}

/// The log entries a run's steps wrote, oldest first.
#[utoipa::path(get, path = "/api/orchestration/workflows/{run_id}/logs", tag = "workflows",
    params(("run_id" = uuid::Uuid, Path), LogsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = LogPage), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn logs(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Json<LogPage>, ApiError> {
    let tenant = tenant_or_own(&p, q.tenant_id.as_deref())?;
    let id: RunId = parse_id("run id", &id)?;
    let mut query = LogQuery::new();
    query.node = q.node;
    query.min_level = q.min_level.as_deref().map(LogLevel::parse).transpose()?;
    query.limit = q.limit;
    query.cursor = q.cursor.map(Cursor::from_string);
    let page = host.workflows.store().logs(&p, tenant, id, &query).await?;
    Ok(Json(LogPage {
        items: page
            .items
            .iter()
            .map(|e| LogOut {
                at: e.at,
                level: e.level.as_str().to_owned(),
                node: e.node.to_string(),
                attempt: e.attempt,
                message: e.message.clone(),
                fields: e.fields.clone(),
            })
            .collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// Follows a run live (Server-Sent Events): a `run` event with the run as it is now, then
/// one `run` event with the run after each change (a node claimed included), until it has
/// ended. Reconnecting is
/// safe: the first event is always the whole current state.
#[utoipa::path(get, path = "/api/orchestration/workflows/{run_id}/events", tag = "workflows",
    params(("run_id" = uuid::Uuid, Path), TenantParam),
    security(("bearer" = [])),
    responses((status = 200, description = "`text/event-stream` of `run` events (RunView JSON)", content_type = "text/event-stream"),
        (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn events(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(t): Query<TenantParam>,
) -> Result<Response, ApiError> {
    let (tenant, id) = run_ref(&p, &t, &id)?;
    let store = host.workflows.store().clone();
    // Subscribe first, then read: no change between the two is missed.
    let mut watch = store.watch(&p, tenant, Some(id)).await?;
    let first = store.get(&p, tenant, id).await?;
    let stream = super::sse_stream(move |tx| async move {
        // A claim (a node turning `running`) does not change the revision: compare the
        // nodes' states too.
        let state = |r: &Run| {
            (
                r.revision,
                r.nodes
                    .iter()
                    .map(|n| (n.status, n.attempt))
                    .collect::<Vec<_>>(),
            )
        };
        let mut seen = state(&first);
        let mut ended = first.finished_at.is_some();
        if tx.send(run_event(&first)).await.is_err() || ended {
            return;
        }
        while !ended {
            // A gap (the watcher fell behind) is no different: read the run again.
            if watch.next().await.is_none() {
                return;
            }
            let Ok(run) = store.get(&p, tenant, id).await else {
                return;
            };
            let now = state(&run);
            if now == seen {
                continue;
            }
            seen = now;
            ended = run.finished_at.is_some();
            if tx.send(run_event(&run)).await.is_err() {
                return;
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn run_event(run: &Run) -> Result<Event, std::convert::Infallible> {
    let data = serde_json::to_string(&RunView::from(run)).unwrap_or_else(|_| "{}".to_owned());
    Ok(Event::default()
        .event("run")
        .id(run.revision.to_string())
        .data(data))
}
