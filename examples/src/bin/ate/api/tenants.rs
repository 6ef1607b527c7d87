//! `/api/tenants`: organizations. Platform administrators list, create, suspend, reactivate
//! and delete them; a tenant's own principals read it (and, with the permission, its users,
//! usage and audit log). Another tenant is `404`, exactly like one that does not exist.

use super::problem::ApiError;
use super::users::{UserPage, UserView};
use super::{Body, Path, Query, parse_id};
use crate::host::Host;
use ate_core::audit::{AuditAction, AuditQuery, Order};
use ate_core::{
    AuditEvent, AuditSink, Cursor, ListTenants, NewTenant, Principal, Quotas, Tenant, TenantId,
    TenantSettings, TenantStatus, TenantStore, TenantUpdate,
};
use ate_storage::projects::SnapshotStore;
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
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(get_tenant, update_tenant, delete_tenant))
        .routes(routes!(suspend_tenant))
        .routes(routes!(reactivate_tenant))
        .routes(routes!(tenant_users))
        .routes(routes!(tenant_usage))
        .routes(routes!(audit_log))
        .routes(routes!(verify_audit_log))
}

/// Limits of a tenant; absent means unlimited.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuotaView {
    pub(crate) max_storage_bytes: Option<u64>,
    pub(crate) max_objects: Option<u64>,
    pub(crate) max_users: Option<u64>,
    pub(crate) max_projects: Option<u64>,
}

impl From<&Quotas> for QuotaView {
    fn from(q: &Quotas) -> Self {
        QuotaView {
            max_storage_bytes: q.max_storage_bytes,
            max_objects: q.max_objects,
            max_users: q.max_users,
            max_projects: q.max_projects,
        }
    }
}

impl QuotaView {
    pub(crate) fn to_quotas(&self) -> Quotas {
        let mut q = Quotas::default();
        q.max_storage_bytes = self.max_storage_bytes;
        q.max_objects = self.max_objects;
        q.max_users = self.max_users;
        q.max_projects = self.max_projects;
        q
    }
}

/// A tenant (organization).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantView {
    id: String,
    slug: String,
    name: String,
    /// `active`, `suspended` or `deleted`.
    status: String,
    status_reason: Option<String>,
    quotas: QuotaView,
    /// Pass back as `expected_revision` to update only this version.
    revision: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
    purge_at: Option<DateTime<Utc>>,
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        TenantView {
            id: t.id.to_string(),
            slug: t.slug.as_str().to_owned(),
            name: t.name.clone(),
            status: t.status.as_str().to_owned(),
            status_reason: t.status_reason.clone(),
            quotas: QuotaView::from(&t.settings.quotas),
            revision: t.revision,
            created_at: t.created_at,
            updated_at: t.updated_at,
            deleted_at: t.deleted_at,
            purge_at: t.purge_at,
        }
    }
}

/// Parses a tenant id the caller may see: its own tenant, or any for a platform
/// administrator. Anything else is `404`, so that ids of other tenants reveal nothing.
pub(crate) fn visible_tenant(p: &Principal, id: &str) -> Result<TenantId, ApiError> {
    let id: TenantId = parse_id("tenant id", id)?;
    if p.is_platform_admin() || p.tenant() == Some(id) {
        Ok(id)
    } else {
        Err(ApiError::not_found("tenant"))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantPage {
    items: Vec<TenantView>,
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListTenantsQuery {
    /// `active`, `suspended` or `deleted` (default: active and suspended).
    status: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Lists tenants (platform administrators).
#[utoipa::path(get, path = "/api/tenants", tag = "tenants", params(ListTenantsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = TenantPage), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn list_tenants(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ListTenantsQuery>,
) -> Result<Json<TenantPage>, ApiError> {
    p.require_platform_admin("listing tenants")?;
    let mut query = ListTenants::new();
    if let Some(s) = q.status {
        query = query.status(s.parse::<TenantStatus>()?);
    }
    if let Some(l) = q.limit {
        query = query.limit(l);
    }
    query = query.cursor(q.cursor.map(Cursor::from_string));
    let page = host.tenants.list(&p, query).await?;
    Ok(Json(TenantPage {
        items: page.items.iter().map(TenantView::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTenant {
    slug: String,
    name: String,
    #[serde(default)]
    quotas: QuotaView,
}

/// Creates a tenant without users (platform administrators); see also
/// `POST /api/auth/register`.
#[utoipa::path(post, path = "/api/tenants", tag = "tenants", request_body = CreateTenant,
    security(("bearer" = [])),
    responses((status = 201, body = TenantView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn create_tenant(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Body(r): Body<CreateTenant>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    let new =
        NewTenant::new(r.slug, r.name).settings(TenantSettings::with_quotas(r.quotas.to_quotas()));
    let t = host.tenants.create(&p, new).await?;
    Ok((StatusCode::CREATED, Json(TenantView::from(&t))))
}

/// Reads a tenant.
#[utoipa::path(get, path = "/api/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    security(("bearer" = [])),
    responses((status = 200, body = TenantView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn get_tenant(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    let id = visible_tenant(&p, &id)?;
    Ok(Json(TenantView::from(&host.tenants.get(&p, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateTenant {
    name: Option<String>,
    /// New limits (platform administrators only); replaces all of them.
    quotas: Option<QuotaView>,
    /// Refuse with `409` unless the tenant is still at this revision.
    expected_revision: Option<i64>,
}

/// Updates a tenant's name (`tenant:update`) or quotas (platform administrators).
#[utoipa::path(put, path = "/api/tenants/{tenant_id}", tag = "tenants", request_body = UpdateTenant,
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    security(("bearer" = [])),
    responses((status = 200, body = TenantView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn update_tenant(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Body(r): Body<UpdateTenant>,
) -> Result<Json<TenantView>, ApiError> {
    let id = visible_tenant(&p, &id)?;
    let mut update = TenantUpdate::new();
    if let Some(n) = r.name {
        update = update.name(n);
    }
    if let Some(q) = r.quotas {
        update = update.settings(TenantSettings::with_quotas(q.to_quotas()));
    }
    if let Some(rev) = r.expected_revision {
        update = update.expected_revision(rev);
    }
    Ok(Json(TenantView::from(
        &host.tenants.update(&p, id, update).await?,
    )))
}

/// Soft-deletes a tenant (platform administrators); it is purged after the retention time.
#[utoipa::path(delete, path = "/api/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    security(("bearer" = [])),
    responses((status = 200, body = TenantView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn delete_tenant(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    let id = visible_tenant(&p, &id)?;
    Ok(Json(TenantView::from(&host.tenants.delete(&p, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SuspendTenant {
    /// Why (kept with the tenant and in the audit log).
    reason: String,
}

/// Suspends a tenant (platform administrators): its principals can no longer act.
#[utoipa::path(post, path = "/api/tenants/{tenant_id}/suspend", tag = "tenants", request_body = SuspendTenant,
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    security(("bearer" = [])),
    responses((status = 200, body = TenantView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn suspend_tenant(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Body(r): Body<SuspendTenant>,
) -> Result<Json<TenantView>, ApiError> {
    let id = visible_tenant(&p, &id)?;
    Ok(Json(TenantView::from(
        &host.tenants.suspend(&p, id, &r.reason).await?,
    )))
}

/// Reactivates a suspended or deleted (not yet purged) tenant (platform administrators).
#[utoipa::path(post, path = "/api/tenants/{tenant_id}/reactivate", tag = "tenants",
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    security(("bearer" = [])),
    responses((status = 200, body = TenantView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn reactivate_tenant(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    let id = visible_tenant(&p, &id)?;
    Ok(Json(TenantView::from(
        &host.tenants.reactivate(&p, id).await?,
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Page size, 1 to 1000 (default 50).
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Lists a tenant's users (`users:read`).
#[utoipa::path(get, path = "/api/tenants/{tenant_id}/users", tag = "tenants", params(("tenant_id" = uuid::Uuid, Path), PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = UserPage), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn tenant_users(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<UserPage>, ApiError> {
    let id = visible_tenant(&p, &id)?;
    let page = host
        .auth
        .users()
        .list(&p, id, q.limit, q.cursor.map(Cursor::from_string))
        .await?;
    Ok(Json(UserPage {
        items: page.items.iter().map(UserView::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// A tenant's use of storage, projects and users against its quotas.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UsageView {
    tenant_id: String,
    users: Option<u64>,
    projects: u64,
    snapshots: u64,
    snapshot_logical_bytes: u64,
    project_stored_bytes: u64,
    objects: u64,
    object_bytes: u64,
    analysis_results: u64,
    analysis_payload_bytes: u64,
    /// What counts against `quotas.max_storage_bytes`.
    storage_bytes: u64,
    quotas: QuotaView,
}

/// A tenant's usage against its quotas (`projects:read`; users counted with `users:read`).
#[utoipa::path(get, path = "/api/tenants/{tenant_id}/usage", tag = "tenants",
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    security(("bearer" = [])),
    responses((status = 200, body = UsageView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn tenant_usage(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<UsageView>, ApiError> {
    let id = visible_tenant(&p, &id)?;
    let tenant = host.tenants.get(&p, id).await?;
    let u = host.snapshots.tenant_usage(&p, id).await?;
    let users = match host.auth.users().count(&p, id).await {
        Ok(c) => Some(c.total),
        Err(e) if ate_core::Classify::kind(&e) == ate_core::ErrorKind::PermissionDenied => None,
        Err(e) => return Err(e.into()),
    };
    Ok(Json(UsageView {
        tenant_id: id.to_string(),
        users,
        projects: u.projects,
        snapshots: u.snapshots,
        snapshot_logical_bytes: u.snapshot_logical_bytes,
        project_stored_bytes: u.project_stored_bytes,
        objects: u.objects,
        object_bytes: u.object_bytes,
        analysis_results: u.analysis_results,
        analysis_payload_bytes: u.analysis_payload_bytes,
        storage_bytes: u.storage_bytes,
        quotas: QuotaView::from(&tenant.settings.quotas),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditLogQuery {
    /// Only this action (`authn_login_success`, `tenant_updated`, …).
    action: Option<String>,
    /// Only this actor (`user:<id>`).
    actor: Option<String>,
    /// Only events at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Only events before this time (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// `oldest` (default) or `newest` first.
    order: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    limit: Option<u32>,
    cursor: Option<String>,
}

/// One audit event.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditEventView {
    id: String,
    /// Position in the tenant's hash chain, from 1.
    seq: u64,
    occurred_at: DateTime<Utc>,
    actor: String,
    action: String,
    target: Option<String>,
    /// `success`, `failure` or `denied`.
    outcome: String,
    client_addr: Option<String>,
    user_agent: Option<String>,
    metadata: serde_json::Value,
    /// Hex SHA-256 of the previous event.
    prev_hash: String,
    /// Hex SHA-256 of this event.
    hash: String,
}

impl From<&AuditEvent> for AuditEventView {
    fn from(e: &AuditEvent) -> Self {
        AuditEventView {
            id: e.id.to_string(),
            seq: e.seq,
            occurred_at: e.occurred_at,
            actor: e.actor.clone(),
            action: e.action.as_str().to_owned(),
            target: e.target.clone(),
            outcome: e.outcome.as_str().to_owned(),
            client_addr: e.client_addr.map(|a| a.to_string()),
            user_agent: e.user_agent.clone(),
            metadata: e.metadata.clone(),
            prev_hash: hex::encode(e.prev_hash),
            hash: hex::encode(e.hash),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPage {
    items: Vec<AuditEventView>,
    next_cursor: Option<String>,
}

/// Reads a tenant's audit log (`audit:read`).
#[utoipa::path(get, path = "/api/tenants/{tenant_id}/audit-logs", tag = "tenants", params(("tenant_id" = uuid::Uuid, Path), AuditLogQuery),
    security(("bearer" = [])),
    responses((status = 200, body = AuditPage), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn audit_log(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<AuditLogQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let id = visible_tenant(&p, &id)?;
    let mut query = AuditQuery::tenant(id);
    query.action = q.action.as_deref().map(AuditAction::new).transpose()?;
    query.actor = q.actor;
    query.since = q.since;
    query.until = q.until;
    query.order = match q.order.as_deref() {
        None | Some("oldest") => Order::OldestFirst,
        Some("newest") => Order::NewestFirst,
        Some(_) => return Err(ApiError::invalid("order must be oldest or newest")),
    };
    query.limit = q.limit;
    query.cursor = q.cursor.map(Cursor::from_string);
    let page = host.audit.query(&p, query).await?;
    Ok(Json(AuditPage {
        items: page.items.iter().map(AuditEventView::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// The result of checking a tenant's audit hash chain.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChainView {
    tenant_id: String,
    /// Whether every link verified.
    intact: bool,
    events_checked: u64,
    /// The newest event's sequence number as stored in the chain head.
    head_seq: u64,
    /// Where the chain first breaks, if it does.
    first_break_seq: Option<u64>,
    /// What is wrong there.
    first_break: Option<String>,
}

/// Recomputes a tenant's audit hash chain and reports the first broken link (`audit:read`).
#[utoipa::path(get, path = "/api/tenants/{tenant_id}/audit-logs/verify", tag = "tenants",
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    security(("bearer" = [])),
    responses((status = 200, body = ChainView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn verify_audit_log(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<ChainView>, ApiError> {
    let id = visible_tenant(&p, &id)?;
    let r = host.audit.verify_chain(&p, id).await?;
    Ok(Json(ChainView {
        tenant_id: id.to_string(),
        intact: r.is_intact(),
        events_checked: r.events_checked,
        head_seq: r.head.seq,
        first_break_seq: r.first_break.as_ref().map(|b| b.seq),
        first_break: r.first_break.as_ref().map(ToString::to_string),
    }))
}
