//! The REST API under `/api`, described by an OpenAPI 3.1 document generated from the
//! handlers (utoipa): one module per area of the seeds (`auth`, `tenants`, `users`), the
//! problem format, the extractors every handler shares, and the cross-cutting layers.

pub(crate) mod analysis;
pub(crate) mod auth;
pub(crate) mod caching;
pub(crate) mod health;
pub(crate) mod history;
pub(crate) mod integrations;
pub(crate) mod layers;
pub(crate) mod monitoring;
pub(crate) mod problem;
pub(crate) mod projects;
pub(crate) mod ratelimit;
pub(crate) mod schedules;
pub(crate) mod service_overview;
pub(crate) mod services;
pub(crate) mod session;
pub(crate) mod storage;
pub(crate) mod tenants;
pub(crate) mod traffic;
pub(crate) mod users;
pub(crate) mod workflows;

use crate::host::Host;
use ate_auth::ClientInfo;
use ate_auth::layer::AuthLayer;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use problem::ApiError;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

/// The document's fixed parts; the paths come from the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ATE reference host",
        description = "The REST API of `ate serve`: the seeds' auth, tenant, user, storage, project and analysis services over the ATE SDK. Errors are RFC 9457 problem documents.",
        license(name = "Apache-2.0"),
    ),
    modifiers(&BearerAuth),
    paths(storage::download),
    tags(
        (name = "auth", description = "Registration, login, tokens, passwords"),
        (name = "session", description = "Sign-in for browsers (the dashboard): tokens in HttpOnly cookies, CSRF token for changes"),
        (name = "tenants", description = "Organizations (tenants), their usage and audit log"),
        (name = "users", description = "Users of a tenant and the caller's own profile"),
        (name = "storage", description = "Codebase upload, file download, quotas"),
        (name = "projects", description = "Codebase projects, snapshots, files, statistics"),
        (name = "analysis", description = "Analysis results"),
        (name = "services", description = "The service registry: instances, health checks, discovery, traffic policies, draining"),
        (name = "workflows", description = "Durable workflow runs: submit, follow, cancel, retry, signal, logs"),
        (name = "integration", description = "A tenant's external HTTP endpoints: register, test, call, metrics; secrets are write-only"),
        (name = "monitoring", description = "Alert rules, current alerts and the alert history (platform administrators); the coarse history and reports"),
        (name = "health", description = "Liveness, readiness and the API document"),
    ),
    components(schemas(problem::Problem)),
)]
struct ApiDoc;

/// Declares the `bearer` security scheme the authenticated routes name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The routes before any layer: public ones, those needing a token, and uploads (a token,
/// a larger body limit and no request timeout).
struct Routes {
    public: OpenApiRouter<Host>,
    authenticated: OpenApiRouter<Host>,
    uploads: OpenApiRouter<Host>,
}

fn routes() -> Routes {
    Routes {
        public: OpenApiRouter::with_openapi(ApiDoc::openapi())
            .merge(auth::public_routes())
            .merge(session::public_routes())
            .merge(health::routes()),
        authenticated: OpenApiRouter::new()
            .merge(auth::routes())
            .merge(session::routes())
            .merge(tenants::routes())
            .merge(users::routes())
            .merge(storage::routes())
            .merge(projects::routes())
            .merge(analysis::routes())
            .merge(services::routes())
            .merge(service_overview::routes())
            .merge(traffic::routes())
            .merge(workflows::routes())
            .merge(schedules::routes())
            .merge(integrations::routes())
            .merge(monitoring::routes())
            .merge(history::routes()),
        uploads: storage::upload_routes().merge(analysis::payload_routes()),
    }
}

/// The API routes (the authenticated ones behind ate-auth's layer, each group with its
/// body limit and timeout) with their OpenAPI document.
pub(crate) fn router(
    host: Host,
    gateway: std::sync::Arc<crate::gateway::Gateway>,
) -> (axum::Router, utoipa::openapi::OpenApi) {
    let http = &host.config.http;
    let Routes {
        public,
        authenticated,
        uploads,
    } = routes();
    let authn = AuthLayer::new(host.auth.clone());
    let limits = ratelimit::Limits::new(http);
    let per_tenant = axum::middleware::from_fn_with_state(limits.clone(), ratelimit::per_tenant);
    // Each group's layers are one stack applied once (axum boxes a route's service at every
    // `layer`/`route_layer` call and clones the chain per request). The dashboard's session
    // cookie becomes a bearer token first (changes need the CSRF header), then
    // authentication runs, then the tenant's limit.
    let guarded = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn(session::cookie_bearer))
        .layer(authn)
        .layer(per_tenant);
    let bounded = public
        .merge(authenticated.route_layer(guarded.clone()))
        .layer(
            tower::ServiceBuilder::new()
                .layer(TimeoutLayer::with_status_code(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    http.request_timeout(),
                ))
                .map_response(axum::response::IntoResponse::into_response)
                .layer(RequestBodyLimitLayer::new(http.max_body_bytes)),
        );
    let upload_limit = usize::try_from(http.max_upload_bytes).unwrap_or(usize::MAX);
    let uploads = uploads
        .route_layer(guarded.clone())
        .layer(RequestBodyLimitLayer::new(upload_limit));
    // The gateway: authenticated and limited like the API, its own body limit, and no
    // request timeout (the upstream timeout bounds the wait for an answer; bodies stream).
    let gateway_limit = usize::try_from(host.config.gateway.max_body_bytes).unwrap_or(usize::MAX);
    let gateway = crate::gateway::routes(gateway)
        .route_layer(guarded)
        .layer(RequestBodyLimitLayer::new(gateway_limit));
    let (router, doc) = bounded.merge(uploads).split_for_parts();
    let router = router.merge(gateway);
    let router = router.layer(axum::middleware::from_fn_with_state(
        limits,
        ratelimit::per_client,
    ));
    (router.with_state(host), doc)
}

/// The OpenAPI document, without opening anything (`ate openapi`).
pub(crate) fn openapi_document() -> String {
    let r = routes();
    openapi_json(
        &r.public
            .merge(r.authenticated)
            .merge(r.uploads)
            .split_for_parts()
            .1,
    )
}

/// The OpenAPI document as served and committed (pretty JSON, trailing newline).
pub(crate) fn openapi_json(doc: &utoipa::openapi::OpenApi) -> String {
    let mut s = doc.to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}

/// A JSON body whose rejections (malformed JSON, wrong types, unknown fields, missing
/// `Content-Type`, too large) are problem documents.
#[derive(Debug)]
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Body(value))
    }
}

/// Query parameters whose rejections are problem documents.
#[derive(Debug)]
pub(crate) struct Query<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

/// Path parameters whose rejections are problem documents.
#[derive(Debug)]
pub(crate) struct Path<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

/// The caller's address and user agent, for rate limits and the audit log.
#[derive(Debug)]
pub(crate) struct Client(pub(crate) ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut info = match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(peer)) => ClientInfo::addr(peer.ip()),
            None => ClientInfo::default(),
        };
        if let Some(ua) = parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok()) {
            info = info.user_agent(ua);
        }
        Ok(Client(info))
    }
}

/// Parses an id from a path or body, answering `400` naming the field when it is not one.
pub(crate) fn parse_id<T: std::str::FromStr>(field: &str, value: &str) -> Result<T, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::invalid(format!("{field} is not a valid id")))
}

/// A stream fed by `produce` through a small channel (the producer waits while the client
/// is slow; it stops when the client goes away): the body of a Server-Sent Events answer.
pub(crate) fn sse_stream<T, F, Fut>(produce: F) -> tokio_stream::wrappers::ReceiverStream<T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(produce(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
