//! `/api/storage`: upload a codebase archive (streamed request body → one encrypted,
//! deduplicated snapshot), download a file of a snapshot (streamed, with a strong ETag),
//! and a tenant's storage quota.

use super::problem::ApiError;
use super::projects::{SnapshotView, TenantParam, project_ref, snapshot_of};
use super::tenants::{QuotaView, visible_tenant};
use super::users::tenant_or_own;
use super::{Path, Query, parse_id};
use crate::host::Host;
use ate_core::{Classify, ErrorKind, Principal, TenantSettings, TenantStore, TenantUpdate};
use ate_storage::import::{ArchiveFormat, ImportOptions};
use ate_storage::projects::{FileKind, MAX_READ_BYTES, ProjectSpec, ProjectStore, SnapshotStore};
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The upload route (its own body limit and no request timeout; see `api::router`).
pub(crate) fn upload_routes() -> OpenApiRouter<Host> {
    OpenApiRouter::new().routes(routes!(upload))
}

pub(crate) fn routes() -> OpenApiRouter<Host> {
    // The file path is a wildcard (`{*path}` in axum), which utoipa-axum cannot register;
    // the route is added by hand and documented through `ApiDoc`'s `paths(…)`.
    OpenApiRouter::new()
        .route(
            "/api/storage/download/{project_id}/{*path}",
            axum::routing::get(download),
        )
        .routes(routes!(get_quota, set_quota))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UploadQuery {
    tenant_id: Option<String>,
    /// The project to add a snapshot to…
    project_id: Option<String>,
    /// …or its name: created when the tenant has no project of that name.
    project_name: Option<String>,
    /// `tar`, `tar.gz`, `tar.zst` or `zip` (default: detected from the first bytes).
    format: Option<String>,
    /// A label for the snapshot (`v1.2.0`, a commit id).
    label: Option<String>,
}

/// The snapshot an upload made, and its project.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Uploaded {
    project_id: String,
    /// Whether the upload created the project.
    project_created: bool,
    snapshot: SnapshotView,
}

/// Uploads a codebase archive as the request body (streamed; bounded memory). Every file
/// is classified, deduplicated, compressed and encrypted under the project's key; a
/// hostile or invalid archive leaves nothing (`projects:write`).
#[utoipa::path(post, path = "/api/storage/upload", tag = "storage", params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The archive"),
    security(("bearer" = [])),
    responses((status = 201, body = Uploaded), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn upload(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    let tenant = tenant_or_own(&p, q.tenant_id.as_deref())?;
    let format = match q.format.as_deref() {
        None => None,
        Some(f) => Some(
            ArchiveFormat::from_name(&format!("upload.{f}")).ok_or_else(|| {
                ApiError::invalid("format must be one of tar, tar.gz, tar.zst, zip")
            })?,
        ),
    };
    let (project, created) = match (q.project_id.as_deref(), q.project_name) {
        (Some(id), None) => {
            let project = host
                .projects
                .get(&p, tenant, parse_id("project_id", id)?)
                .await?;
            (project, false)
        }
        (None, Some(name)) => match host.projects.get_by_name(&p, tenant, &name).await {
            Ok(project) => (project, false),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                match host
                    .projects
                    .create(&p, tenant, &ProjectSpec::new(&name))
                    .await
                {
                    Ok(project) => (project, true),
                    // Another upload created it meanwhile.
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        (host.projects.get_by_name(&p, tenant, &name).await?, false)
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        },
        _ => {
            return Err(ApiError::invalid(
                "give exactly one of project_id and project_name",
            ));
        }
    };
    let mut options = ImportOptions::new().label(q.label.unwrap_or_default());
    options.source = "upload".into();
    let reader =
        tokio_util::io::StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    let snapshot = host
        .snapshots
        .import_archive(&p, tenant, project.id, Box::new(reader), format, options)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Uploaded {
            project_id: project.id.to_string(),
            project_created: created,
            snapshot: SnapshotView::from(&snapshot),
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DownloadQuery {
    tenant_id: Option<String>,
    /// A snapshot of the project (default: the newest).
    snapshot: Option<String>,
}

/// Refuses paths no stored file can have: empty, absolute, with `.`/`..` segments, a NUL,
/// a backslash. Stored paths are normalized, so this only makes the answer a clear `400`
/// instead of a `404`.
fn check_path(path: &str) -> Result<(), ApiError> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\0')
        || path.contains('\\')
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(ApiError::invalid(
            "the file path must be relative, without empty, '.' or '..' segments",
        ));
    }
    Ok(())
}

/// Downloads a file of a snapshot, streamed. `ETag` is the content's SHA-256 (strong):
/// `If-None-Match` answers `304`. A snapshot named in the URL never changes, so its files
/// may be kept by the client (`private`, never by a shared cache).
#[utoipa::path(get, path = "/api/storage/download/{project_id}/{path}", tag = "storage",
    params(("project_id" = uuid::Uuid, Path), ("path" = String, Path, description = "The file's path in the snapshot"), DownloadQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "The file: text files as text/plain, others (and links) as application/octet-stream", content((Vec<u8> = "application/octet-stream"), (String = "text/plain"))), (status = 304), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
pub(crate) async fn download(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path((project, path)): Path<(String, String)>,
    Query(q): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_path(&path)?;
    let t = TenantParam {
        tenant_id: q.tenant_id,
    };
    let (tenant, project) = project_ref(&p, &t, &project)?;
    let snap = snapshot_of(&host, &p, tenant, project, q.snapshot.as_deref()).await?;
    let entry = host.snapshots.file(&p, tenant, snap.id, &path).await?;
    let cache = if q.snapshot.is_some() {
        super::caching::PRIVATE_IMMUTABLE
    } else {
        "private, no-cache"
    };
    let tag = entry.sha256.clone();
    Ok(super::caching::conditional(
        &headers,
        &tag,
        cache,
        move || {
            let size = entry.size;
            let (snapshots, principal, id, file) =
                (host.snapshots.clone(), p.clone(), snap.id, path.clone());
            let pieces = futures::stream::try_unfold(0u64, move |offset| {
                let (snapshots, principal, file) =
                    (snapshots.clone(), principal.clone(), file.clone());
                async move {
                    if offset >= size {
                        return Ok::<_, std::io::Error>(None);
                    }
                    let end = size.min(offset + MAX_READ_BYTES.min(8 << 20));
                    let bytes = snapshots
                        .read_file(&principal, tenant, id, &file, Some(offset..end))
                        .await
                        .map_err(std::io::Error::other)?;
                    Ok(Some((bytes::Bytes::from(bytes), end)))
                }
            });
            let mut r = Body::from_stream(pieces).into_response();
            r.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(size));
            let ctype = if entry.kind == FileKind::Symlink || entry.binary {
                "application/octet-stream"
            } else {
                "text/plain; charset=utf-8"
            };
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
            r
        },
    ))
}

/// A tenant's storage quota and what counts against it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QuotaReport {
    tenant_id: String,
    quotas: QuotaView,
    /// Bytes counted against `max_storage_bytes`.
    storage_bytes: u64,
    /// Objects counted against `max_objects`.
    objects: u64,
    /// Projects counted against `max_projects`.
    projects: u64,
}

/// A tenant's quotas and use (`projects:read` in it, or a platform administrator).
#[utoipa::path(get, path = "/api/storage/quota/{tenant_id}", tag = "storage",
    params(("tenant_id" = uuid::Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = QuotaReport), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn get_quota(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<QuotaReport>, ApiError> {
    let id = visible_tenant(&p, &id)?;
    let tenant = host.tenants.get(&p, id).await?;
    let usage = host.snapshots.tenant_usage(&p, id).await?;
    Ok(Json(QuotaReport {
        tenant_id: id.to_string(),
        quotas: QuotaView::from(&tenant.settings.quotas),
        storage_bytes: usage.storage_bytes,
        objects: usage.objects,
        projects: usage.projects,
    }))
}

/// Sets a tenant's quotas (platform administrators); absent fields mean unlimited.
#[utoipa::path(put, path = "/api/storage/quota/{tenant_id}", tag = "storage", request_body = QuotaView,
    params(("tenant_id" = uuid::Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = QuotaView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn set_quota(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    super::Body(q): super::Body<QuotaView>,
) -> Result<Json<QuotaView>, ApiError> {
    let id = visible_tenant(&p, &id)?;
    p.require_platform_admin("setting quotas")?;
    let update = TenantUpdate::new().settings(TenantSettings::with_quotas(q.to_quotas()));
    let tenant = host.tenants.update(&p, id, update).await?;
    Ok(Json(QuotaView::from(&tenant.settings.quotas)))
}
