//! `/api/session`: sign-in for browsers (the dashboard), with the tokens kept in cookies
//! the page's scripts cannot read.
//!
//! A browser signs in with `POST /api/session` (the same organization, email and password
//! as `/api/auth/login`) and gets three cookies, all `HttpOnly; SameSite=Strict` (and
//! `Secure` when the host serves TLS), none of which a script can read:
//!
//! - `ate_session`: the access token, sent only to `/api` (never to the gateway's
//!   upstreams under `/svc`, nor to the dashboard's pages);
//! - `ate_refresh`: the refresh token, sent only to `/api/session`;
//! - `ate_csrf`: a random CSRF token, sent only to `/api`.
//!
//! The response body carries who signed in and the CSRF token (never a session token). A
//! request authenticated by the cookie that changes anything (any method but `GET`, `HEAD`
//! and `OPTIONS`) must repeat the CSRF token in `X-CSRF-Token`; another site can neither
//! read it nor make the browser send a `SameSite=Strict` cookie. A request that carries
//! `Authorization` is authenticated by it alone; the cookie is then ignored.
//!
//! When the access token expires, `POST /api/session/refresh` (with `X-CSRF-Token`) rotates
//! both tokens; `DELETE /api/session` ends the session on the server and clears the cookies.

use super::Client;
use super::problem::ApiError;
use crate::host::Host;
use ate_auth::password::Password;
use ate_auth::{RefreshToken, Tokens};
use ate_core::{ErrorKind, Principal, TenantId};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The access token's cookie.
pub(crate) const SESSION_COOKIE: &str = "ate_session";
/// The refresh token's cookie.
pub(crate) const REFRESH_COOKIE: &str = "ate_refresh";
/// The CSRF token's cookie.
pub(crate) const CSRF_COOKIE: &str = "ate_csrf";
/// The header a cookie-authenticated change repeats the CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// Routes needing no token (they read the cookies themselves).
pub(crate) fn public_routes() -> OpenApiRouter<Host> {
    OpenApiRouter::new()
        .routes(routes!(sign_in, sign_out))
        .routes(routes!(refresh))
}

/// Routes behind the authentication layer.
pub(crate) fn routes() -> OpenApiRouter<Host> {
    OpenApiRouter::new().routes(routes!(current))
}

/// The signed-in principal, as the dashboard needs it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionView {
    /// `user:<id>`.
    subject: String,
    /// The principal's tenant; absent for a platform administrator.
    tenant_id: Option<String>,
    platform_admin: bool,
    roles: Vec<String>,
    permissions: Vec<String>,
    /// Repeat in `X-CSRF-Token` on every change made with the session cookie. Absent when
    /// the request was not authenticated by the session cookie.
    csrf_token: Option<String>,
    /// When the access token expires (sign-in and refresh only); refresh before or after.
    expires_at: Option<DateTime<Utc>>,
}

impl SessionView {
    fn new(p: &Principal, csrf: Option<String>, expires_at: Option<DateTime<Utc>>) -> Self {
        SessionView {
            subject: p.subject().to_owned(),
            tenant_id: p.tenant().map(|t| t.to_string()),
            platform_admin: p.is_platform_admin(),
            roles: p.roles().map(str::to_owned).collect(),
            permissions: p.permissions().map(ToString::to_string).collect(),
            csrf_token: csrf,
            expires_at,
        }
    }
}

/// Signs in with email and password in an organization; the tokens go into cookies.
#[utoipa::path(post, path = "/api/session", tag = "session", request_body = super::auth::LoginRequest,
    responses((status = 200, body = SessionView, description = "Signed in; `Set-Cookie` carries the session"),
        (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn sign_in(
    State(host): State<Host>,
    Client(client): Client,
    super::Body(r): super::Body<super::auth::LoginRequest>,
) -> Result<Response, ApiError> {
    let (tenant, email, password) = r.into_parts();
    let tenant = match tenant.parse::<TenantId>() {
        Ok(id) => id,
        // As `/api/auth/login`: an unknown organization costs a wrong password's work.
        Err(_) => host
            .tenant_by_slug(&tenant)
            .await?
            .unwrap_or_else(TenantId::new),
    };
    let tokens = host
        .auth
        .login(tenant, &email, &Password::new(password), &client)
        .await?;
    session_response(&host, &tokens, new_csrf_token()?).await
}

/// Who the session (or bearer token) names, and the session's CSRF token.
#[utoipa::path(get, path = "/api/session", tag = "session", security(("bearer" = [])),
    responses((status = 200, body = SessionView),
        (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn current(
    Extension(p): Extension<Principal>,
    by_cookie: Option<Extension<FromCookie>>,
    headers: HeaderMap,
) -> Json<SessionView> {
    let csrf = by_cookie.and_then(|_| cookie(&headers, CSRF_COOKIE).map(str::to_owned));
    Json(SessionView::new(&p, csrf, None))
}

/// Rotates the session's tokens (the refresh cookie, with `X-CSRF-Token`); reusing an old
/// refresh token ends the session.
#[utoipa::path(post, path = "/api/session/refresh", tag = "session",
    params(("x-csrf-token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = SessionView, description = "Rotated; `Set-Cookie` carries the new tokens"),
        (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn refresh(
    State(host): State<Host>,
    Client(client): Client,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let csrf = checked_csrf(&headers)?;
    let token = cookie(&headers, REFRESH_COOKIE)
        .ok_or_else(|| ApiError::new(ErrorKind::Unauthenticated, "no session to refresh"))?;
    let tokens = host
        .auth
        .refresh(&RefreshToken::from_client(token.to_owned()), &client)
        .await?;
    session_response(&host, &tokens, csrf.to_owned()).await
}

/// Signs out: ends the session on the server (when its cookies still name one) and clears
/// the cookies. Always `204`; signing out twice is not an error.
#[utoipa::path(delete, path = "/api/session", tag = "session",
    params(("x-csrf-token" = Option<String>, Header, description = "The session's CSRF token (required when a session cookie is sent)")),
    responses((status = 204, description = "Signed out; `Set-Cookie` clears the cookies"),
        (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn sign_out(
    State(host): State<Host>,
    Client(client): Client,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let has_session =
        cookie(&headers, SESSION_COOKIE).is_some() || cookie(&headers, REFRESH_COOKIE).is_some();
    if has_session {
        // Another site must not be able to sign the user out either.
        checked_csrf(&headers)?;
        let mut ended = false;
        if let Some(access) = cookie(&headers, SESSION_COOKIE) {
            ended = host.auth.logout(access, &client).await.is_ok();
        }
        if !ended && let Some(refresh) = cookie(&headers, REFRESH_COOKIE) {
            // The access token had expired: a rotation proves the session and ends it.
            let token = RefreshToken::from_client(refresh.to_owned());
            if let Ok(t) = host.auth.refresh(&token, &client).await {
                let _ = host.auth.logout(&t.access.token, &client).await;
            }
        }
    }
    let secure = secure(&host);
    let mut response = StatusCode::NO_CONTENT.into_response();
    for (name, path) in cookie_paths() {
        append_cookie(
            &mut response,
            &format!("{name}=; Path={path}; Max-Age=0{}", attrs(secure)),
        )?;
    }
    Ok(response)
}

/// Turns the session cookie into a bearer token for the authentication layer, refusing a
/// cookie-authenticated change without the CSRF token (`403`). Requests with an
/// `Authorization` header pass untouched.
pub(crate) async fn cookie_bearer(mut req: Request, next: Next) -> Response {
    if req.headers().contains_key(AUTHORIZATION) {
        return next.run(req).await;
    }
    let Some(token) = cookie(req.headers(), SESSION_COOKIE) else {
        return next.run(req).await;
    };
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && let Err(e) = checked_csrf(req.headers()) {
        return e.into_response();
    }
    let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {token}")) else {
        return ApiError::new(
            ErrorKind::Unauthenticated,
            "the session cookie is malformed",
        )
        .into_response();
    };
    req.headers_mut().insert(AUTHORIZATION, bearer);
    req.extensions_mut().insert(FromCookie);
    next.run(req).await
}

/// Marks a request the session cookie authenticated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FromCookie;

/// The CSRF token of the request's cookie, when the header repeats it (compared in
/// constant time).
fn checked_csrf(headers: &HeaderMap) -> Result<&str, ApiError> {
    let expected = cookie(headers, CSRF_COOKIE);
    let given = headers.get(CSRF_HEADER).map(HeaderValue::as_bytes);
    match (expected, given) {
        (Some(e), Some(g)) if bool::from(e.as_bytes().ct_eq(g)) => Ok(e),
        (None, _) => Err(ApiError::new(
            ErrorKind::PermissionDenied,
            "the session has no CSRF cookie; sign in again",
        )),
        (Some(_), None) => Err(ApiError::new(
            ErrorKind::PermissionDenied,
            "a change made with the session cookie needs the X-CSRF-Token header",
        )),
        (Some(_), Some(_)) => Err(ApiError::new(
            ErrorKind::PermissionDenied,
            "the X-CSRF-Token header does not match the session",
        )),
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn new_csrf_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

fn secure(host: &Host) -> bool {
    host.config.tls.cert_file.is_some() || host.config.http.secure_cookies
}

fn attrs(secure: bool) -> &'static str {
    if secure {
        "; HttpOnly; SameSite=Strict; Secure"
    } else {
        "; HttpOnly; SameSite=Strict"
    }
}

fn cookie_paths() -> [(&'static str, &'static str); 3] {
    [
        (SESSION_COOKIE, "/api"),
        (REFRESH_COOKIE, "/api/session"),
        (CSRF_COOKIE, "/api"),
    ]
}

fn append_cookie(response: &mut Response, value: &str) -> Result<(), ApiError> {
    let value = HeaderValue::from_str(value)
        .map_err(|_| ApiError::internal("a session cookie is not a valid header value"))?;
    response.headers_mut().append(SET_COOKIE, value);
    Ok(())
}

/// `200` with the principal and the CSRF token, and the three cookies (kept until the
/// session itself expires; the access token inside expires sooner and is refreshed).
async fn session_response(host: &Host, t: &Tokens, csrf: String) -> Result<Response, ApiError> {
    let principal = host.auth.verify(&t.access.token).await?;
    let max_age = (t.session.expires_at - Utc::now()).num_seconds().max(0);
    let secure = secure(host);
    let body = SessionView::new(&principal, Some(csrf.clone()), Some(t.access.expires_at));
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let values = [
        t.access.token.as_str(),
        t.refresh.expose_secret(),
        csrf.as_str(),
    ];
    for ((name, path), value) in cookie_paths().into_iter().zip(values) {
        append_cookie(
            &mut response,
            &format!(
                "{name}={value}; Path={path}; Max-Age={max_age}{}",
                attrs(secure)
            ),
        )?;
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn cookies_are_found_in_every_cookie_header() {
        let h = headers(&[("cookie", "a=1; ate_csrf=x"), ("cookie", "ate_session=tok")]);
        assert_eq!(cookie(&h, "ate_session"), Some("tok"));
        assert_eq!(cookie(&h, "ate_csrf"), Some("x"));
        assert_eq!(cookie(&h, "ate"), None);
        assert_eq!(
            cookie(&headers(&[("cookie", "ate_session=")]), "ate_session"),
            None
        );
    }

    #[test]
    fn the_csrf_header_must_repeat_the_cookie() {
        let ok = headers(&[("cookie", "ate_csrf=abc"), ("x-csrf-token", "abc")]);
        assert_eq!(checked_csrf(&ok).expect("matches"), "abc");
        for bad in [
            headers(&[("cookie", "ate_csrf=abc"), ("x-csrf-token", "abd")]),
            headers(&[("cookie", "ate_csrf=abc"), ("x-csrf-token", "ab")]),
            headers(&[("cookie", "ate_csrf=abc")]),
            headers(&[("x-csrf-token", "abc")]),
        ] {
            let e = checked_csrf(&bad).expect_err("refused");
            assert_eq!(e.status, StatusCode::FORBIDDEN, "{}", e.detail);
        }
    }
}
