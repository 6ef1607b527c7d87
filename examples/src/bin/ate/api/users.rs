//! `/api/users`: the users of a tenant (list, create with roles, get, update, deactivate)
//! and the caller's own profile.
//!
//! A user id names a user in the caller's tenant; a platform administrator names any user
//! and passes `tenant_id` (query or body) where a tenant must be chosen. Someone else's user
//! in another tenant is `404`, exactly like a user that does not exist.

use super::problem::ApiError;
use super::{Body, Path, Query, parse_id};
use crate::host::Host;
use ate_auth::password::Password;
use ate_auth::{NewUser, Role, User, UserStatus, UserUpdate};
use ate_core::{Cursor, Permission, Principal, TenantId, UserId};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<Host> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_profile, update_profile))
        .routes(routes!(get_user, update_user, deactivate_user))
}

/// A user as the API shows it (never a password hash).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserView {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) email: String,
    pub(crate) username: Option<String>,
    pub(crate) name: String,
    /// `active`, `disabled` or `locked`.
    pub(crate) status: String,
    /// `user`, `admin`, `super_admin`.
    pub(crate) roles: Vec<String>,
    /// Permissions granted beyond the roles'.
    pub(crate) permissions: Vec<String>,
    pub(crate) has_password: bool,
    pub(crate) locked_until: Option<DateTime<Utc>>,
    /// Pass back as `expected_revision` to update only this version.
    pub(crate) revision: i64,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.to_string(),
            tenant_id: u.tenant.to_string(),
            email: u.email.clone(),
            username: u.username.clone(),
            name: u.name.clone(),
            status: u.status.as_str().to_owned(),
            roles: u.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            permissions: u.permissions.iter().map(ToString::to_string).collect(),
            has_password: u.has_password,
            locked_until: u.locked_until,
            revision: u.revision,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// One page of users.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserPage {
    pub(crate) items: Vec<UserView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub(crate) next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListUsersQuery {
    /// The tenant (default: the caller's).
    tenant_id: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The tenant a request acts in: the one named, else the caller's own.
pub(crate) fn tenant_or_own(p: &Principal, named: Option<&str>) -> Result<TenantId, ApiError> {
    match named {
        Some(t) => super::tenants::visible_tenant(p, t),
        None => p
            .tenant()
            .ok_or_else(|| ApiError::invalid("tenant_id is required for a platform administrator")),
    }
}

/// Lists users of a tenant.
#[utoipa::path(get, path = "/api/users", tag = "users", params(ListUsersQuery),
    security(("bearer" = [])),
    responses((status = 200, body = UserPage), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn list_users(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ListUsersQuery>,
) -> Result<Json<UserPage>, ApiError> {
    let tenant = tenant_or_own(&p, q.tenant_id.as_deref())?;
    let page = host
        .auth
        .users()
        .list(&p, tenant, q.limit, q.cursor.map(Cursor::from_string))
        .await?;
    Ok(Json(UserPage {
        items: page.items.iter().map(UserView::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUserRequest {
    /// The tenant (default: the caller's).
    tenant_id: Option<String>,
    email: String,
    username: Option<String>,
    #[serde(default)]
    name: String,
    /// Default `["user"]`.
    roles: Option<Vec<String>>,
    /// Extra permissions (`resource:action`).
    #[serde(default)]
    permissions: Vec<String>,
    /// Absent for a user who signs in only through single sign-on.
    password: Option<String>,
}

pub(crate) fn parse_roles(roles: &[String]) -> Result<Vec<Role>, ApiError> {
    roles
        .iter()
        .map(|r| Role::parse(r).map_err(ApiError::from))
        .collect()
}

pub(crate) fn parse_permissions(perms: &[String]) -> Result<Vec<Permission>, ApiError> {
    perms
        .iter()
        .map(|p| Permission::new(p.as_str()).map_err(ApiError::from))
        .collect()
}

/// Creates a user with roles (`users:manage`; an administrator grants only what it holds).
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = CreateUserRequest,
    security(("bearer" = [])),
    responses((status = 201, body = UserView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn create_user(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Body(r): Body<CreateUserRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let tenant = tenant_or_own(&p, r.tenant_id.as_deref())?;
    let mut new = NewUser::new(r.email).name(r.name);
    if let Some(u) = r.username {
        new = new.username(u);
    }
    if let Some(roles) = &r.roles {
        new = new.roles(parse_roles(roles)?);
    }
    for perm in parse_permissions(&r.permissions)? {
        new = new.permission(perm);
    }
    let password = r.password.map(Password::new);
    let user = host
        .auth
        .create_user(&p, tenant, new, password.as_ref())
        .await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// Finds user `id` for `p`: in the caller's tenant, or (platform administrators) wherever it
/// is. Not visible is `404`.
async fn find(host: &Host, p: &Principal, id: &str) -> Result<(TenantId, UserId), ApiError> {
    let id: UserId = parse_id("user id", id)?;
    let tenant = match p.tenant() {
        Some(t) => t,
        None => host.auth.users().get_any(p, id).await?.tenant,
    };
    Ok((tenant, id))
}

/// Reads a user (`users:read`, or the user itself).
#[utoipa::path(get, path = "/api/users/{user_id}", tag = "users",
    params(("user_id" = uuid::Uuid, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn get_user(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let (tenant, id) = find(&host, &p, &id).await?;
    let user = host.auth.users().get(&p, tenant, id).await?;
    Ok(Json(UserView::from(&user)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateUserRequest {
    name: Option<String>,
    roles: Option<Vec<String>>,
    permissions: Option<Vec<String>>,
    /// `active` (also unlocks) or `disabled`.
    status: Option<String>,
    /// Refuse with `409` unless the user is still at this revision.
    expected_revision: Option<i64>,
}

/// Updates a user's name, roles, permissions or status (`users:manage`).
#[utoipa::path(put, path = "/api/users/{user_id}", tag = "users", request_body = UpdateUserRequest,
    params(("user_id" = uuid::Uuid, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn update_user(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Body(r): Body<UpdateUserRequest>,
) -> Result<Json<UserView>, ApiError> {
    let (tenant, id) = find(&host, &p, &id).await?;
    let status = match r.status.as_deref() {
        None => None,
        Some("active") => Some(UserStatus::Active),
        Some("disabled") => Some(UserStatus::Disabled),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "status {:?} is not one of active, disabled",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    let mut update = UserUpdate::new();
    if let Some(n) = r.name {
        update = update.name(n);
    }
    if let Some(roles) = &r.roles {
        update = update.roles(parse_roles(roles)?);
    }
    if let Some(perms) = &r.permissions {
        update = update.permissions(parse_permissions(perms)?);
    }
    if let Some(rev) = r.expected_revision {
        update = update.expected_revision(rev);
    }
    let users = host.auth.users();
    let changes_fields =
        update.name.is_some() || update.roles.is_some() || update.permissions.is_some();
    let mut user = if changes_fields || status.is_none() {
        users.update(&p, tenant, id, update).await?
    } else {
        users.get(&p, tenant, id).await?
    };
    if let Some(status) = status {
        user = users.set_status(&p, tenant, id, status).await?;
    }
    Ok(Json(UserView::from(&user)))
}

/// Deactivates a user (`users:manage`): it can no longer log in and every session ends.
#[utoipa::path(delete, path = "/api/users/{user_id}", tag = "users",
    params(("user_id" = uuid::Uuid, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn deactivate_user(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let (tenant, id) = find(&host, &p, &id).await?;
    let user = host
        .auth
        .users()
        .set_status(&p, tenant, id, UserStatus::Disabled)
        .await?;
    Ok(Json(UserView::from(&user)))
}

/// The caller's own user.
#[utoipa::path(get, path = "/api/users/profile", tag = "users",
    security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn get_profile(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
) -> Result<Json<UserView>, ApiError> {
    let user = host.auth.profile(&p).await?;
    Ok(Json(UserView::from(&user)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProfileUpdate {
    /// The display name.
    name: String,
}

/// Changes the caller's own display name (roles and permissions are an administrator's).
#[utoipa::path(put, path = "/api/users/profile", tag = "users", request_body = ProfileUpdate,
    security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn update_profile(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Body(r): Body<ProfileUpdate>,
) -> Result<Json<UserView>, ApiError> {
    let user = host.auth.update_profile(&p, &r.name).await?;
    Ok(Json(UserView::from(&user)))
}
