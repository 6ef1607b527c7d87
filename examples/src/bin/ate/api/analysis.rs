//! `/api/analysis/results`: analysis results stored against a project or one of its
//! snapshots: create, read, update (status moves forward only), delete.

use super::problem::ApiError;
use super::projects::TenantParam;
use super::users::tenant_or_own;
use super::{Body, Path, Query, parse_id};
use crate::host::Host;
use ate_core::{AnalysisId, Page, Principal};
use ate_storage::analysis::{
    AnalysisBatch, AnalysisResult, AnalysisSpec, AnalysisStatus, AnalysisStore, AnalysisUpdate,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<Host> {
    OpenApiRouter::new()
        .routes(routes!(create_result))
        .routes(routes!(batch))
        .routes(routes!(get_result, update_result, delete_result))
}

/// A stored payload of a result (a report, an SBOM).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PayloadView {
    name: String,
    content_type: String,
    size: u64,
    sha256: String,
    created_at: DateTime<Utc>,
}

/// An analysis result.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AnalysisView {
    id: String,
    project_id: String,
    snapshot_id: Option<String>,
    kind: String,
    analyzer: String,
    analyzer_version: String,
    /// `pending`, `running`, `succeeded` or `failed`.
    status: String,
    /// Free-form JSON object.
    summary: serde_json::Value,
    error: Option<String>,
    payloads: Vec<PayloadView>,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    revision: i64,
}

impl From<&AnalysisResult> for AnalysisView {
    fn from(a: &AnalysisResult) -> Self {
        AnalysisView {
            id: a.id.to_string(),
            project_id: a.project.to_string(),
            snapshot_id: a.snapshot.map(|s| s.to_string()),
            kind: a.kind.clone(),
            analyzer: a.analyzer.clone(),
            analyzer_version: a.analyzer_version.clone(),
            status: a.status.as_str().to_owned(),
            summary: a.summary.clone(),
            error: a.error.clone(),
            payloads: a
                .payloads
                .iter()
                .map(|p| PayloadView {
                    name: p.name.clone(),
                    content_type: p.content_type.clone(),
                    size: p.size,
                    sha256: p.sha256.clone(),
                    created_at: p.created_at,
                })
                .collect(),
            created_by: a.created_by.clone(),
            created_at: a.created_at,
            updated_at: a.updated_at,
            started_at: a.started_at,
            finished_at: a.finished_at,
            revision: a.revision,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AnalysisPage {
    items: Vec<AnalysisView>,
    next_cursor: Option<String>,
}

impl From<Page<AnalysisResult>> for AnalysisPage {
    fn from(page: Page<AnalysisResult>) -> Self {
        AnalysisPage {
            items: page.items.iter().map(AnalysisView::from).collect(),
            next_cursor: page.next_cursor.map(|c| c.to_string()),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateResult {
    project_id: String,
    /// A committed snapshot of the project, when the result is about one.
    snapshot_id: Option<String>,
    /// What was analysed for (`security`, `complexity`, …).
    kind: String,
    analyzer: String,
    analyzer_version: String,
    /// Default `pending`.
    status: Option<String>,
    /// A JSON object.
    summary: Option<serde_json::Value>,
    /// Why it failed (with status `failed`).
    error: Option<String>,
}

impl CreateResult {
    fn into_spec(self) -> Result<(ate_core::ProjectId, AnalysisSpec), ApiError> {
        let project = parse_id("project_id", &self.project_id)?;
        let mut spec = AnalysisSpec::new(self.kind, self.analyzer, self.analyzer_version);
        spec.snapshot = self
            .snapshot_id
            .as_deref()
            .map(|s| parse_id("snapshot_id", s))
            .transpose()?;
        if let Some(s) = self.status.as_deref() {
            spec.status = AnalysisStatus::parse(s)?;
        }
        if let Some(summary) = self.summary {
            spec.summary = summary;
        }
        spec.error = self.error;
        Ok((project, spec))
    }
}

/// Stores an analysis result (`analysis:write`).
#[utoipa::path(post, path = "/api/analysis/results", tag = "analysis", params(TenantParam), request_body = CreateResult,
    security(("bearer" = [])),
    responses((status = 201, body = AnalysisView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn create_result(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(t): Query<TenantParam>,
    Body(r): Body<CreateResult>,
) -> Result<(StatusCode, Json<AnalysisView>), ApiError> {
    let tenant = tenant_or_own(&p, t.tenant_id.as_deref())?;
    let (project, spec) = r.into_spec()?;
    let result = host.analysis.create(&p, tenant, project, &spec).await?;
    Ok((StatusCode::CREATED, Json(AnalysisView::from(&result))))
}

fn result_ref(
    p: &Principal,
    t: &TenantParam,
    id: &str,
) -> Result<(ate_core::TenantId, AnalysisId), ApiError> {
    Ok((
        tenant_or_own(p, t.tenant_id.as_deref())?,
        parse_id("analysis id", id)?,
    ))
}

/// Reads an analysis result (`analysis:read`).
#[utoipa::path(get, path = "/api/analysis/results/{analysis_id}", tag = "analysis",
    params(("analysis_id" = uuid::Uuid, Path), TenantParam),
    security(("bearer" = [])),
    responses((status = 200, body = AnalysisView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn get_result(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(t): Query<TenantParam>,
) -> Result<Json<AnalysisView>, ApiError> {
    let (tenant, id) = result_ref(&p, &t, &id)?;
    Ok(Json(AnalysisView::from(
        &host.analysis.get(&p, tenant, id).await?,
    )))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateResult {
    /// Forward only: `pending` → `running` → `succeeded` or `failed`.
    status: Option<String>,
    summary: Option<serde_json::Value>,
    /// Sets status `failed` with this reason.
    error: Option<String>,
    /// Refuse with `409` unless the result is still at this revision.
    expected_revision: Option<i64>,
}

impl UpdateResult {
    fn into_update(self) -> Result<AnalysisUpdate, ApiError> {
        let mut update = AnalysisUpdate::new();
        if let Some(s) = self.status.as_deref() {
            update = update.status(AnalysisStatus::parse(s)?);
        }
        if let Some(summary) = self.summary {
            update = update.summary(summary);
        }
        if let Some(e) = self.error {
            update = update.failed(e);
        }
        update.expected_revision = self.expected_revision;
        Ok(update)
    }
}

/// One change of a batch: the result's id and the fields of `PUT`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchUpdate {
    id: String,
    status: Option<String>,
    summary: Option<serde_json::Value>,
    error: Option<String>,
    expected_revision: Option<i64>,
}

/// Results to create and to update, all or nothing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchRequest {
    #[serde(default)]
    create: Vec<CreateResult>,
    #[serde(default)]
    update: Vec<BatchUpdate>,
}

/// The created results, then the updated ones, in the request's order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchResponse {
    items: Vec<AnalysisView>,
}

/// Creates and updates up to 500 analysis results in one transaction: all of them, or
/// none and a problem naming the failing operation (`analysis:write`).
#[utoipa::path(post, path = "/api/analysis/results/batch", tag = "analysis", params(TenantParam), request_body = BatchRequest,
    security(("bearer" = [])),
    responses((status = 200, body = BatchResponse), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn batch(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(t): Query<TenantParam>,
    Body(r): Body<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    let tenant = tenant_or_own(&p, t.tenant_id.as_deref())?;
    let mut batch = AnalysisBatch::new();
    for c in r.create {
        let (project, spec) = c.into_spec()?;
        batch = batch.create(project, spec);
    }
    for u in r.update {
        let id = parse_id("update id", &u.id)?;
        let change = UpdateResult {
            status: u.status,
            summary: u.summary,
            error: u.error,
            expected_revision: u.expected_revision,
        };
        batch = batch.update(id, change.into_update()?);
    }
    let done = host.analysis.apply_batch(&p, tenant, &batch).await?;
    Ok(Json(BatchResponse {
        items: done.iter().map(AnalysisView::from).collect(),
    }))
}

/// Updates an analysis result's status, summary or error (`analysis:write`).
#[utoipa::path(put, path = "/api/analysis/results/{analysis_id}", tag = "analysis", request_body = UpdateResult,
    params(("analysis_id" = uuid::Uuid, Path), TenantParam),
    security(("bearer" = [])),
    responses((status = 200, body = AnalysisView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn update_result(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(t): Query<TenantParam>,
    Body(r): Body<UpdateResult>,
) -> Result<Json<AnalysisView>, ApiError> {
    let (tenant, id) = result_ref(&p, &t, &id)?;
    let update = r.into_update()?;
    Ok(Json(AnalysisView::from(
        &host.analysis.update(&p, tenant, id, &update).await?,
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeleteResultQuery {
    tenant_id: Option<String>,
    expected_revision: Option<i64>,
}

/// Deletes an analysis result and its payloads (`analysis:delete`).
#[utoipa::path(delete, path = "/api/analysis/results/{analysis_id}", tag = "analysis",
    params(("analysis_id" = uuid::Uuid, Path), DeleteResultQuery),
    security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn delete_result(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<DeleteResultQuery>,
) -> Result<StatusCode, ApiError> {
    let t = TenantParam {
        tenant_id: q.tenant_id,
    };
    let (tenant, id) = result_ref(&p, &t, &id)?;
    host.analysis
        .delete(&p, tenant, id, q.expected_revision)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The payload routes (uploads: the large body limit, no request timeout).
pub(crate) fn payload_routes() -> OpenApiRouter<Host> {
    OpenApiRouter::new().routes(routes!(put_payload, get_payload))
}

/// Stores a payload of a result (a SARIF report, an SBOM): the request body, streamed and
/// encrypted under the project's key, its `Content-Type` recorded (`analysis:write`; the
/// result must not have finished).
#[utoipa::path(put, path = "/api/analysis/results/{analysis_id}/payloads/{name}", tag = "analysis",
    params(("analysis_id" = uuid::Uuid, Path), ("name" = String, Path), TenantParam),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The payload"),
    security(("bearer" = [])),
    responses((status = 201, body = PayloadView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn put_payload(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path((id, name)): Path<(String, String)>,
    Query(t): Query<TenantParam>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<PayloadView>), ApiError> {
    use futures::TryStreamExt as _;
    let (tenant, id) = result_ref(&p, &t, &id)?;
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let mut reader =
        tokio_util::io::StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    let payload = host
        .analysis
        .put_payload(&p, tenant, id, &name, &content_type, &mut reader)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(PayloadView {
            name: payload.name,
            content_type: payload.content_type,
            size: payload.size,
            sha256: payload.sha256,
            created_at: payload.created_at,
        }),
    ))
}

/// Reads a payload back, decrypted and checked as it streams. `ETag` is its SHA-256; a
/// payload never changes (`private`, immutable). A payload found altered in storage ends
/// the response early (its `Content-Length` is not reached) rather than serving bad bytes.
#[utoipa::path(get, path = "/api/analysis/results/{analysis_id}/payloads/{name}", tag = "analysis",
    params(("analysis_id" = uuid::Uuid, Path), ("name" = String, Path), TenantParam),
    security(("bearer" = [])),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 304), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn get_payload(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path((id, name)): Path<(String, String)>,
    Query(t): Query<TenantParam>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::http::HeaderValue;
    use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
    use axum::response::IntoResponse as _;
    let (tenant, id) = result_ref(&p, &t, &id)?;
    let result = host.analysis.get(&p, tenant, id).await?;
    let payload = result
        .payloads
        .iter()
        .find(|x| x.name == name)
        .ok_or_else(|| ApiError::not_found("payload"))?
        .clone();
    Ok(super::caching::conditional(
        &headers,
        &payload.sha256.clone(),
        super::caching::PRIVATE_IMMUTABLE,
        move || {
            let (mut writer, reader) = tokio::io::duplex(256 << 10);
            let analysis = host.analysis.clone();
            tokio::spawn(async move {
                if let Err(e) = analysis
                    .read_payload(&p, tenant, id, &name, &mut writer)
                    .await
                {
                    // Dropping the writer ends the body short of its Content-Length.
                    tracing::error!(error = %e, "payload read failed mid-stream");
                }
            });
            let mut r = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(reader))
                .into_response();
            r.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(payload.size));
            if let Ok(v) = HeaderValue::from_str(&payload.content_type) {
                r.headers_mut().insert(CONTENT_TYPE, v);
            }
            // The content type is the uploader's: never rendered by a browser on this origin.
            r.headers_mut().insert(
                axum::http::header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment"),
            );
            r.headers_mut().insert(
                axum::http::header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            );
            r
        },
    ))
}
