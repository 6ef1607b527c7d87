//! `/api/projects`: codebase projects of the caller's tenant, their snapshots, files,
//! statistics and analyses.
//!
//! Projects live in the caller's tenant; a platform administrator names the tenant with
//! `tenant_id` in the query. Another tenant's project is `404`, like a missing one (the
//! stores look projects up by tenant and id).

use super::problem::ApiError;
use super::users::tenant_or_own;
use super::{Body, Path, Query, parse_id};
use crate::host::Host;
use ate_core::{Cursor, Principal, ProjectId, SnapshotId, TenantId};
use ate_storage::analysis::{AnalysisQuery, AnalysisStatus, AnalysisStore};
use ate_storage::projects::{
    FileEntry, FileQuery, Project, ProjectQuery, ProjectSpec, ProjectStore, ProjectUpdate,
    Snapshot, SnapshotQuery, SnapshotStore,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<Host> {
    OpenApiRouter::new()
        .routes(routes!(list_projects, create_project))
        .routes(routes!(get_project, update_project, delete_project))
        .routes(routes!(list_snapshots))
        .routes(routes!(get_snapshot))
        .routes(routes!(list_files))
        .routes(routes!(project_statistics))
        .routes(routes!(project_analyses))
}

/// The tenant query parameter every project route takes.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TenantParam {
    /// The tenant (default: the caller's; platform administrators must name one).
    pub(crate) tenant_id: Option<String>,
}

/// A codebase project.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProjectView {
    id: String,
    tenant_id: String,
    name: String,
    description: String,
    labels: BTreeMap<String, String>,
    settings: serde_json::Value,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    revision: i64,
}

impl From<&Project> for ProjectView {
    fn from(p: &Project) -> Self {
        ProjectView {
            id: p.id.to_string(),
            tenant_id: p.tenant.to_string(),
            name: p.name.as_str().to_owned(),
            description: p.description.clone(),
            labels: p.labels.clone(),
            settings: p.settings.clone(),
            created_by: p.created_by.clone(),
            created_at: p.created_at,
            updated_at: p.updated_at,
            revision: p.revision,
        }
    }
}

/// A committed snapshot (one upload of a codebase).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SnapshotView {
    id: String,
    project_id: String,
    label: String,
    source: String,
    created_by: String,
    committed_at: DateTime<Utc>,
    files: u64,
    logical_bytes: u64,
    /// Bytes this snapshot added to storage (after deduplication and compression).
    new_bytes: u64,
    /// Per language: files, bytes, code, comment and blank lines.
    languages: Vec<LanguageView>,
    vendored_files: u64,
    generated_files: u64,
    binary_files: u64,
    symlinks: u64,
    /// Entries not stored (device files, refused archive entries).
    skipped: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LanguageView {
    language: String,
    files: u64,
    bytes: u64,
    code: u64,
    comments: u64,
    blanks: u64,
}

impl From<&Snapshot> for SnapshotView {
    fn from(s: &Snapshot) -> Self {
        SnapshotView {
            id: s.id.to_string(),
            project_id: s.project.to_string(),
            label: s.label.clone(),
            source: s.source.clone(),
            created_by: s.created_by.clone(),
            committed_at: s.committed_at,
            files: s.files,
            logical_bytes: s.logical_bytes,
            new_bytes: s.new_bytes,
            languages: s
                .stats
                .languages
                .iter()
                .map(|l| LanguageView {
                    language: l.language.clone(),
                    files: l.files,
                    bytes: l.bytes,
                    code: l.code,
                    comments: l.comments,
                    blanks: l.blanks,
                })
                .collect(),
            vendored_files: s.stats.vendored_files,
            generated_files: s.stats.generated_files,
            binary_files: s.stats.binary_files,
            symlinks: s.stats.symlinks,
            skipped: s.stats.skipped,
        }
    }
}

/// One file of a snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FileView {
    path: String,
    /// `file` or `symlink`.
    kind: String,
    size: u64,
    mode: u32,
    /// Hex SHA-256 of the content (the download's ETag).
    sha256: String,
    language: Option<String>,
    vendored: bool,
    generated: bool,
    binary: bool,
    /// Code lines, when counted.
    code_lines: Option<u64>,
    link_target: Option<String>,
    /// Why the file is quarantined (a scanner's finding), if it is.
    quarantined: Option<String>,
}

impl From<&FileEntry> for FileView {
    fn from(f: &FileEntry) -> Self {
        FileView {
            path: f.path.clone(),
            kind: match f.kind {
                ate_storage::projects::FileKind::Symlink => "symlink",
                _ => "file",
            }
            .to_owned(),
            size: f.size,
            mode: f.mode,
            sha256: f.sha256.clone(),
            language: f.language.clone(),
            vendored: f.vendored,
            generated: f.generated,
            binary: f.binary,
            code_lines: f.lines.as_ref().map(|l| l.code),
            link_target: f.link_target.clone(),
            quarantined: f.quarantined.clone(),
        }
    }
}

/// Resolves `tenant_id` and a project id path segment.
pub(crate) fn project_ref(
    p: &Principal,
    tenant: &TenantParam,
    id: &str,
) -> Result<(TenantId, ProjectId), ApiError> {
    Ok((
        tenant_or_own(p, tenant.tenant_id.as_deref())?,
        parse_id("project id", id)?,
    ))
}

/// The snapshot a request reads: the one named (of this project), else the newest.
pub(crate) async fn snapshot_of(
    host: &Host,
    p: &Principal,
    tenant: TenantId,
    project: ProjectId,
    named: Option<&str>,
) -> Result<Snapshot, ApiError> {
    match named {
        Some(s) => {
            let snap = host
                .snapshots
                .get(p, tenant, parse_id::<SnapshotId>("snapshot", s)?)
                .await?;
            if snap.project != project {
                return Err(ApiError::not_found("snapshot"));
            }
            Ok(snap)
        }
        None => {
            host.projects.get(p, tenant, project).await?;
            let page = host
                .snapshots
                .list(p, tenant, project, &SnapshotQuery::new().limit(1))
                .await?;
            page.items
                .into_iter()
                .next()
                .ok_or_else(|| ApiError::not_found("snapshot (the project has none yet)"))
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListProjectsQuery {
    tenant_id: Option<String>,
    /// Only names starting with this (case-insensitive).
    name_prefix: Option<String>,
    /// Only projects with this label, as `key=value`.
    label: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProjectPage {
    items: Vec<ProjectView>,
    next_cursor: Option<String>,
}

/// Lists the tenant's projects by name (`projects:read`).
#[utoipa::path(get, path = "/api/projects", tag = "projects", params(ListProjectsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ProjectPage), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn list_projects(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ListProjectsQuery>,
) -> Result<Json<ProjectPage>, ApiError> {
    let tenant = tenant_or_own(&p, q.tenant_id.as_deref())?;
    let mut query = ProjectQuery::new();
    if let Some(prefix) = q.name_prefix {
        query = query.name_prefix(prefix);
    }
    if let Some(label) = q.label {
        let (k, v) = label
            .split_once('=')
            .ok_or_else(|| ApiError::invalid("label must be key=value"))?;
        query = query.label(k, v);
    }
    if let Some(l) = q.limit {
        query = query.limit(l);
    }
    query.cursor = q.cursor.map(Cursor::from_string);
    let page = host.projects.list(&p, tenant, &query).await?;
    Ok(Json(ProjectPage {
        items: page.items.iter().map(ProjectView::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateProject {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// Free-form JSON object.
    settings: Option<serde_json::Value>,
}

/// Creates a project (`projects:write`; counts against `max_projects`).
#[utoipa::path(post, path = "/api/projects", tag = "projects", params(TenantParam), request_body = CreateProject,
    security(("bearer" = [])),
    responses((status = 201, body = ProjectView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn create_project(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(t): Query<TenantParam>,
    Body(r): Body<CreateProject>,
) -> Result<(StatusCode, Json<ProjectView>), ApiError> {
    let tenant = tenant_or_own(&p, t.tenant_id.as_deref())?;
    let mut spec = ProjectSpec::new(r.name).description(r.description);
    for (k, v) in r.labels {
        spec = spec.label(k, v);
    }
    if let Some(s) = r.settings {
        spec.settings = s;
    }
    let project = host.projects.create(&p, tenant, &spec).await?;
    Ok((StatusCode::CREATED, Json(ProjectView::from(&project))))
}

/// A project with its newest snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProjectDetail {
    #[serde(flatten)]
    project: ProjectView,
    latest_snapshot: Option<SnapshotView>,
}

/// Reads a project and its newest snapshot (`projects:read`).
#[utoipa::path(get, path = "/api/projects/{project_id}", tag = "projects",
    params(("project_id" = uuid::Uuid, Path), TenantParam),
    security(("bearer" = [])),
    responses((status = 200, body = ProjectDetail), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn get_project(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(t): Query<TenantParam>,
) -> Result<Json<ProjectDetail>, ApiError> {
    let (tenant, id) = project_ref(&p, &t, &id)?;
    let project = host.projects.get(&p, tenant, id).await?;
    let latest = host
        .snapshots
        .list(&p, tenant, id, &SnapshotQuery::new().limit(1))
        .await?;
    Ok(Json(ProjectDetail {
        project: ProjectView::from(&project),
        latest_snapshot: latest.items.first().map(SnapshotView::from),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateProject {
    name: Option<String>,
    description: Option<String>,
    /// Replaces every label.
    labels: Option<BTreeMap<String, String>>,
    settings: Option<serde_json::Value>,
    /// Refuse with `409` unless the project is still at this revision.
    expected_revision: Option<i64>,
}

/// Updates a project's metadata (`projects:write`).
#[utoipa::path(put, path = "/api/projects/{project_id}", tag = "projects", request_body = UpdateProject,
    params(("project_id" = uuid::Uuid, Path), TenantParam),
    security(("bearer" = [])),
    responses((status = 200, body = ProjectView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn update_project(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(t): Query<TenantParam>,
    Body(r): Body<UpdateProject>,
) -> Result<Json<ProjectView>, ApiError> {
    let (tenant, id) = project_ref(&p, &t, &id)?;
    let mut update = ProjectUpdate::new();
    update.name = r.name;
    update.description = r.description;
    update.labels = r.labels;
    update.settings = r.settings;
    update.expected_revision = r.expected_revision;
    let project = host.projects.update(&p, tenant, id, &update).await?;
    Ok(Json(ProjectView::from(&project)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeleteQuery {
    tenant_id: Option<String>,
    /// Refuse with `409` unless the project is still at this revision.
    expected_revision: Option<i64>,
}

/// Deletes a project with its keys: its data is unrecoverable at once, its rows and blobs
/// are purged after (`projects:delete`).
#[utoipa::path(delete, path = "/api/projects/{project_id}", tag = "projects",
    params(("project_id" = uuid::Uuid, Path), DeleteQuery),
    security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn delete_project(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let t = TenantParam {
        tenant_id: q.tenant_id,
    };
    let (tenant, id) = project_ref(&p, &t, &id)?;
    host.projects
        .delete(&p, tenant, id, q.expected_revision)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PagedTenantQuery {
    tenant_id: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SnapshotPage {
    items: Vec<SnapshotView>,
    next_cursor: Option<String>,
}

/// A project's snapshots, newest first (`projects:read`).
#[utoipa::path(get, path = "/api/projects/{project_id}/snapshots", tag = "projects",
    params(("project_id" = uuid::Uuid, Path), PagedTenantQuery),
    security(("bearer" = [])),
    responses((status = 200, body = SnapshotPage), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn list_snapshots(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<PagedTenantQuery>,
) -> Result<Json<SnapshotPage>, ApiError> {
    let t = TenantParam {
        tenant_id: q.tenant_id,
    };
    let (tenant, id) = project_ref(&p, &t, &id)?;
    host.projects.get(&p, tenant, id).await?;
    let mut query = SnapshotQuery::new();
    query.limit = q.limit;
    query.cursor = q.cursor.map(Cursor::from_string);
    let page = host.snapshots.list(&p, tenant, id, &query).await?;
    Ok(Json(SnapshotPage {
        items: page.items.iter().map(SnapshotView::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// A committed snapshot with its statistics (languages, classification, sizes). It never
/// changes: strong `ETag`, `304` on `If-None-Match`, private and immutable for caches
/// (`projects:read`).
#[utoipa::path(get, path = "/api/projects/{project_id}/snapshots/{snapshot_id}", tag = "projects",
    params(("project_id" = uuid::Uuid, Path), ("snapshot_id" = uuid::Uuid, Path), TenantParam),
    security(("bearer" = [])),
    responses((status = 200, body = SnapshotView), (status = 304), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn get_snapshot(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path((project, snapshot)): Path<(String, String)>,
    Query(t): Query<TenantParam>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let (tenant, project) = project_ref(&p, &t, &project)?;
    let snap = snapshot_of(&host, &p, tenant, project, Some(&snapshot)).await?;
    Ok(super::caching::json_with_etag(
        &headers,
        &snap.id.to_string(),
        super::caching::PRIVATE_IMMUTABLE,
        &SnapshotView::from(&snap),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct FilesQuery {
    tenant_id: Option<String>,
    /// A snapshot of the project (default: the newest).
    snapshot: Option<String>,
    /// Only paths under this directory prefix.
    path_prefix: Option<String>,
    /// Only paths matching this glob (`src/**/*.rs`).
    glob: Option<String>,
    /// Only files of this language.
    language: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FilePage {
    snapshot_id: String,
    items: Vec<FileView>,
    next_cursor: Option<String>,
}

/// Lists the files of a snapshot with their classification (`projects:read`).
#[utoipa::path(get, path = "/api/projects/{project_id}/files", tag = "projects",
    params(("project_id" = uuid::Uuid, Path), FilesQuery),
    security(("bearer" = [])),
    responses((status = 200, body = FilePage), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn list_files(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<FilesQuery>,
) -> Result<Json<FilePage>, ApiError> {
    let t = TenantParam {
        tenant_id: q.tenant_id,
    };
    let (tenant, id) = project_ref(&p, &t, &id)?;
    let snap = snapshot_of(&host, &p, tenant, id, q.snapshot.as_deref()).await?;
    let mut query = FileQuery::new();
    query.path_prefix = q.path_prefix;
    query.glob = q.glob;
    query.language = q.language;
    query.limit = q.limit;
    query.cursor = q.cursor.map(Cursor::from_string);
    let page = host
        .snapshots
        .list_files(&p, tenant, snap.id, &query)
        .await?;
    Ok(Json(FilePage {
        snapshot_id: snap.id.to_string(),
        items: page.items.iter().map(FileView::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// A project's statistics across its snapshots.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProjectStatsView {
    project_id: String,
    snapshots: u64,
    /// The snapshots' sizes added up.
    logical_bytes: u64,
    /// What the project occupies in storage after deduplication and compression.
    stored_bytes: u64,
    latest: Option<SnapshotView>,
}

/// Statistics of a project: snapshots, sizes, and the newest snapshot's languages and
/// classification (`projects:read`).
#[utoipa::path(get, path = "/api/projects/{project_id}/statistics", tag = "projects",
    params(("project_id" = uuid::Uuid, Path), TenantParam),
    security(("bearer" = [])),
    responses((status = 200, body = ProjectStatsView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn project_statistics(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(t): Query<TenantParam>,
) -> Result<Json<ProjectStatsView>, ApiError> {
    let (tenant, id) = project_ref(&p, &t, &id)?;
    let s = host.snapshots.project_stats(&p, tenant, id).await?;
    Ok(Json(ProjectStatsView {
        project_id: s.project.to_string(),
        snapshots: s.snapshots,
        logical_bytes: s.logical_bytes,
        stored_bytes: s.stored_bytes,
        latest: s.latest.as_ref().map(SnapshotView::from),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AnalysesQuery {
    tenant_id: Option<String>,
    snapshot: Option<String>,
    kind: Option<String>,
    analyzer: Option<String>,
    /// `pending`, `running`, `succeeded` or `failed`.
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// A project's analysis results, newest first (`analysis:read`).
#[utoipa::path(get, path = "/api/projects/{project_id}/analyses", tag = "projects",
    params(("project_id" = uuid::Uuid, Path), AnalysesQuery),
    security(("bearer" = [])),
    responses((status = 200, body = super::analysis::AnalysisPage), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn project_analyses(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<AnalysesQuery>,
) -> Result<Json<super::analysis::AnalysisPage>, ApiError> {
    let t = TenantParam {
        tenant_id: q.tenant_id,
    };
    let (tenant, id) = project_ref(&p, &t, &id)?;
    let mut query = AnalysisQuery::new();
    query.snapshot = q
        .snapshot
        .as_deref()
        .map(|s| parse_id("snapshot", s))
        .transpose()?;
    query.kind = q.kind;
    query.analyzer = q.analyzer;
    query.status = q.status.as_deref().map(AnalysisStatus::parse).transpose()?;
    query.limit = q.limit;
    query.cursor = q.cursor.map(Cursor::from_string);
    let page = host.analysis.list(&p, tenant, id, &query).await?;
    Ok(Json(super::analysis::AnalysisPage::from(page)))
}
