//! `/api/auth`: register an organization, log in, refresh, log out, verify a token, change
//! the password, the signing keys (JWKS).
//!
//! Token responses carry `Cache-Control: no-store` (RFC 6749 §5.1). A failed login says only
//! `401`: a wrong password, an unknown email, an unknown tenant and a locked account look
//! alike and take the same password-hashing work.

use super::problem::ApiError;
use super::tenants::TenantView;
use super::users::UserView;
use super::{Body, Client};
use crate::host::Host;
use ate_auth::password::Password;
use ate_auth::{NewUser, RefreshToken, Tokens};
use ate_core::{NewTenant, Principal, TenantId};
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes needing no token.
pub(crate) fn public_routes() -> OpenApiRouter<Host> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(jwks))
}

/// Routes behind the authentication layer.
pub(crate) fn routes() -> OpenApiRouter<Host> {
    OpenApiRouter::new()
        .routes(routes!(logout))
        .routes(routes!(logout_all))
        .routes(routes!(verify))
        .routes(routes!(change_password))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Organization {
    /// Lower-case letters, digits and dashes; unique.
    slug: String,
    name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterRequest {
    organization: Organization,
    email: String,
    password: String,
    #[serde(default)]
    name: String,
}

/// The organization and its first user (an `admin` of it).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Registered {
    tenant: TenantView,
    user: UserView,
}

/// Registers an organization (a tenant) with its first user, an administrator of it.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = Registered), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn register(
    State(host): State<Host>,
    Body(r): Body<RegisterRequest>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    if !host.config.auth.open_registration {
        return Err(ApiError::new(
            ate_core::ErrorKind::PermissionDenied,
            "registration is closed on this server; ask a platform administrator",
        ));
    }
    let user = NewUser::new(r.email).name(r.name);
    let org = NewTenant::new(r.organization.slug, r.organization.name);
    let (tenant, user) = host
        .auth
        .register(org, user, &Password::new(r.password))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            tenant: TenantView::from(&tenant),
            user: UserView::from(&user),
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    /// The organization: its slug or its id.
    tenant: String,
    email: String,
    password: String,
}

impl LoginRequest {
    /// The organization, email and password.
    pub(crate) fn into_parts(self) -> (String, String, String) {
        (self.tenant, self.email, self.password)
    }
}

/// Tokens of a login or refresh.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenResponse {
    /// A JWT for `Authorization: Bearer`.
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: i64,
    expires_at: DateTime<Utc>,
    /// Exchange at `/api/auth/refresh` for new tokens; single use (rotated).
    refresh_token: String,
    session_id: String,
    tenant_id: String,
    user_id: String,
}

fn token_response(t: &Tokens) -> Response {
    let body = TokenResponse {
        access_token: t.access.token.clone(),
        token_type: "Bearer",
        expires_in: (t.access.expires_at - Utc::now()).num_seconds().max(0),
        expires_at: t.access.expires_at,
        refresh_token: t.refresh.expose_secret().to_owned(),
        session_id: t.session.id.to_string(),
        tenant_id: t.user.tenant.to_string(),
        user_id: t.user.id.to_string(),
    };
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Logs in with email and password in an organization.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn login(
    State(host): State<Host>,
    Client(client): Client,
    Body(r): Body<LoginRequest>,
) -> Result<Response, ApiError> {
    let tenant = match r.tenant.parse::<TenantId>() {
        Ok(id) => id,
        Err(_) => match host.tenant_by_slug(&r.tenant).await? {
            Some(id) => id,
            // An unknown organization costs the same work as a wrong password: a tenant id
            // that exists nowhere makes `login` do it and answer `InvalidCredentials`.
            None => TenantId::new(),
        },
    };
    let tokens = host
        .auth
        .login(tenant, &r.email, &Password::new(r.password), &client)
        .await?;
    Ok(token_response(&tokens))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    refresh_token: String,
}

/// Exchanges a refresh token for new tokens; the refresh token is rotated, and reusing an
/// old one ends its session.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn refresh(
    State(host): State<Host>,
    Client(client): Client,
    Body(r): Body<RefreshRequest>,
) -> Result<Response, ApiError> {
    let token = RefreshToken::from_client(r.refresh_token);
    let tokens = host.auth.refresh(&token, &client).await?;
    Ok(token_response(&tokens))
}

/// The bearer token of a request the layer already verified.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| ApiError::new(ate_core::ErrorKind::Unauthenticated, "no bearer token"))
}

/// Ends the session of the presented access token.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn logout(
    State(host): State<Host>,
    Client(client): Client,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    host.auth.logout(bearer(&headers)?, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LoggedOut {
    /// Sessions that were ended.
    sessions_ended: u64,
}

/// Ends every session of the caller and invalidates every access token issued so far.
#[utoipa::path(post, path = "/api/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = LoggedOut), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn logout_all(
    State(host): State<Host>,
    Client(client): Client,
    Extension(p): Extension<Principal>,
) -> Result<Json<LoggedOut>, ApiError> {
    let n = host.auth.logout_everywhere(&p, &client).await?;
    Ok(Json(LoggedOut { sessions_ended: n }))
}

/// Who a valid token names.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Verified {
    /// `user:<id>`.
    subject: String,
    /// The tenant; absent for a platform administrator.
    tenant_id: Option<String>,
    platform_admin: bool,
    roles: Vec<String>,
    permissions: Vec<String>,
}

/// Checks the presented access token and says whom it names.
#[utoipa::path(get, path = "/api/auth/verify", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Verified), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn verify(Extension(p): Extension<Principal>) -> Json<Verified> {
    Json(Verified {
        subject: p.subject().to_owned(),
        tenant_id: p.tenant().map(|t| t.to_string()),
        platform_admin: p.is_platform_admin(),
        roles: p.roles().map(str::to_owned).collect(),
        permissions: p.permissions().map(ToString::to_string).collect(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePassword {
    current_password: String,
    new_password: String,
}

/// Changes the caller's password; every other session ends, this one stays.
#[utoipa::path(post, path = "/api/auth/change-password", tag = "auth", security(("bearer" = [])),
    request_body = ChangePassword,
    responses((status = 204), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn change_password(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    Body(r): Body<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    let claims = host.auth.tokens().verify(bearer(&headers)?).await?;
    let keep = claims.sid.as_deref().and_then(|s| s.parse().ok());
    host.auth
        .change_password(
            &p,
            &Password::new(r.current_password),
            &Password::new(r.new_password),
            keep,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The public keys that verify access tokens (RFC 7517), for services that check tokens
/// themselves. Public (not tenant data): cacheable for five minutes, with an ETag over the
/// key set so that a rotation shows at once to a client that revalidates.
#[utoipa::path(get, path = "/api/auth/jwks", tag = "auth",
    responses((status = 200, body = Object, description = "A JWK set"), (status = 304)))]
async fn jwks(State(host): State<Host>, headers: HeaderMap) -> Result<Response, ApiError> {
    use sha2::Digest as _;
    let keys = host.auth.tokens().jwks()?;
    let tag = hex::encode(sha2::Sha256::digest(keys.to_string().as_bytes()));
    Ok(super::caching::json_with_etag(
        &headers,
        &tag,
        "public, max-age=300",
        &keys,
    ))
}
