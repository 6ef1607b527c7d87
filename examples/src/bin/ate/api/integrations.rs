//! `/api/integration/endpoints`: a tenant's external HTTP endpoints (the seeds'
//! integration hub) with their authentication, called by workflows (`ate.integration`)
//! and from here: register, list, get, replace, delete, test (probe), call, metrics.
//!
//! Secrets (bearer tokens, passwords, API keys, client secrets, HMAC keys) are write-only:
//! sealed under the tenant's keys by ate-orchestrate, never returned (reads show the auth
//! kind, its public settings and `has_secret`). A replacement gives the whole endpoint,
//! secret included. By default calls reach public addresses only (`[integrations]
//! allow_private_networks`).

use super::problem::ApiError;
use super::users::tenant_or_own;
use super::workflows::TenantParam;
use super::{Body, Path, Query};
use crate::config::Secret;
use crate::host::Host;
use ate_core::Principal;
use ate_core::keys::SecretBytes;
use ate_orchestrate::integrations::{
    CallError, CallRequest, Endpoint, EndpointAuth, EndpointSpec, EndpointStats, ProbeReport,
};
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
        .routes(routes!(get_endpoint, replace, delete))
        .routes(routes!(test))
        .routes(routes!(call))
        .routes(routes!(metrics))
}

/// How calls authenticate; secrets are write-only.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum AuthIn {
    /// No authentication.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer {
        #[schema(value_type = String)]
        token: Secret,
    },
    /// HTTP basic authentication.
    Basic {
        username: String,
        #[schema(value_type = String)]
        password: Secret,
    },
    /// An API key in a header (`X-Api-Key`).
    ApiKey {
        header: String,
        #[schema(value_type = String)]
        key: Secret,
    },
    /// OAuth 2.0 client credentials (token fetched and cached by the host).
    Oauth2ClientCredentials {
        token_url: String,
        client_id: String,
        #[schema(value_type = String)]
        client_secret: Secret,
        scope: Option<String>,
    },
    /// The body signed with HMAC-SHA256: `<header>: t=<unix seconds>,v1=<hex>`.
    HmacSha256 {
        header: String,
        #[schema(value_type = String)]
        key: Secret,
    },
}

fn secret(s: &Secret) -> SecretBytes {
    SecretBytes::new(s.expose().as_bytes().to_vec())
}

impl From<&AuthIn> for EndpointAuth {
    fn from(a: &AuthIn) -> Self {
        match a {
            AuthIn::None => EndpointAuth::None,
            AuthIn::Bearer { token } => EndpointAuth::Bearer {
                token: secret(token),
            },
            AuthIn::Basic { username, password } => EndpointAuth::Basic {
                username: username.clone(),
                password: secret(password),
            },
            AuthIn::ApiKey { header, key } => EndpointAuth::ApiKey {
                header: header.clone(),
                key: secret(key),
            },
            AuthIn::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => EndpointAuth::OAuth2ClientCredentials {
                token_url: token_url.clone(),
                client_id: client_id.clone(),
                client_secret: secret(client_secret),
                scope: scope.clone(),
            },
            AuthIn::HmacSha256 { header, key } => EndpointAuth::HmacSha256 {
                header: header.clone(),
                key: secret(key),
            },
        }
    }
}

/// An endpoint's settings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndpointIn {
    /// Unique within the tenant: lowercase letters, digits, `-`, `_`, `.`. Required on
    /// creation; on replacement it may be left out, and must equal the path's if given.
    name: Option<String>,
    /// `http` or `https`, no credentials, no fragment.
    url: String,
    /// `GET`, `POST` (default), `PUT`, `PATCH` or `DELETE`.
    method: Option<String>,
    /// Extra headers sent with every call (not secret; no `Authorization`).
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// How calls authenticate (default none).
    auth: Option<AuthIn>,
    /// How long a call may take, 1 ms to 300,000 ms (default 30,000).
    timeout_ms: Option<u64>,
}

impl EndpointIn {
    fn spec(&self, name: String) -> EndpointSpec {
        let mut spec = EndpointSpec::new(name, self.url.clone());
        if let Some(m) = &self.method {
            spec = spec.method(m.clone());
        }
        spec.headers = self.headers.clone();
        if let Some(auth) = &self.auth {
            spec = spec.auth(auth.into());
        }
        if let Some(ms) = self.timeout_ms {
            spec = spec.timeout(Duration::from_millis(ms));
        }
        spec
    }
}

/// An endpoint as reads show it: never a secret.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EndpointView {
    name: String,
    tenant_id: String,
    url: String,
    method: String,
    headers: BTreeMap<String, String>,
    /// `none`, `bearer`, `basic`, `api_key`, `oauth2_client_credentials`, `hmac_sha256`.
    auth_type: String,
    /// The auth settings that are not secret (user name, header, token URL, client id, scope).
    auth_params: BTreeMap<String, String>,
    /// Whether a secret is stored (sealed; never shown).
    has_secret: bool,
    timeout_ms: u64,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Grows with every change.
    revision: i64,
}

impl From<&Endpoint> for EndpointView {
    fn from(e: &Endpoint) -> Self {
        EndpointView {
            name: e.name.to_string(),
            tenant_id: e.tenant.to_string(),
            url: e.url.clone(),
            method: e.method.clone(),
            headers: e.headers.clone(),
            auth_type: e.auth_kind.clone(),
            auth_params: e.auth_params.clone(),
            has_secret: e.has_secret,
            timeout_ms: u64::try_from(e.timeout.as_millis()).unwrap_or(u64::MAX),
            created_by: e.created_by.clone(),
            created_at: e.created_at,
            updated_at: e.updated_at,
            revision: e.revision,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EndpointList {
    /// By name.
    items: Vec<EndpointView>,
}

/// A tenant's integration endpoints, by name.
#[utoipa::path(get, path = "/api/integration/endpoints", tag = "integration", params(TenantParam),
    security(("bearer" = [])),
    responses((status = 200, body = EndpointList), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn list(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(t): Query<TenantParam>,
) -> Result<Json<EndpointList>, ApiError> {
    let tenant = tenant_or_own(&p, t.tenant_id.as_deref())?;
    let all = host.integrations.store().list(&p, tenant).await?;
    Ok(Json(EndpointList {
        items: all.iter().map(EndpointView::from).collect(),
    }))
}

/// Registers an endpoint; its secret is sealed under the tenant's keys.
#[utoipa::path(post, path = "/api/integration/endpoints", tag = "integration",
    params(TenantParam), request_body = EndpointIn,
    security(("bearer" = [])),
    responses((status = 201, body = EndpointView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn create(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(t): Query<TenantParam>,
    Body(r): Body<EndpointIn>,
) -> Result<(StatusCode, Json<EndpointView>), ApiError> {
    let tenant = tenant_or_own(&p, t.tenant_id.as_deref())?;
    let Some(name) = r.name.clone() else {
        return Err(ApiError::invalid("name is required"));
    };
    let spec = r.spec(name);
    let created = host.integrations.store().create(&p, tenant, &spec).await?;
    Ok((StatusCode::CREATED, Json(EndpointView::from(&created))))
}

/// One endpoint (nothing secret).
#[utoipa::path(get, path = "/api/integration/endpoints/{name}", tag = "integration",
    params(("name" = String, Path), TenantParam),
    security(("bearer" = [])),
    responses((status = 200, body = EndpointView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn get_endpoint(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(t): Query<TenantParam>,
) -> Result<Json<EndpointView>, ApiError> {
    let tenant = tenant_or_own(&p, t.tenant_id.as_deref())?;
    let e = host.integrations.store().get(&p, tenant, &name).await?;
    Ok(Json(EndpointView::from(&e)))
}

/// Replaces an endpoint's settings, secret included (a cached OAuth 2.0 token is dropped).
#[utoipa::path(put, path = "/api/integration/endpoints/{name}", tag = "integration",
    params(("name" = String, Path), TenantParam), request_body = EndpointIn,
    security(("bearer" = [])),
    responses((status = 200, body = EndpointView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn replace(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(t): Query<TenantParam>,
    Body(r): Body<EndpointIn>,
) -> Result<Json<EndpointView>, ApiError> {
    let tenant = tenant_or_own(&p, t.tenant_id.as_deref())?;
    if r.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::invalid(format!(
            "the body names endpoint {:?} but the path names {name:?}; an endpoint cannot be renamed",
            r.name.as_deref().unwrap_or_default()
        )));
    }
    let e = host
        .integrations
        .store()
        .update(&p, tenant, &r.spec(name))
        .await?;
    Ok(Json(EndpointView::from(&e)))
}

/// Deletes an endpoint (workflow steps that name it fail from then on).
#[utoipa::path(delete, path = "/api/integration/endpoints/{name}", tag = "integration",
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
    host.integrations.store().delete(&p, tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a connectivity test found.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TestReport {
    /// An HTTP answer came (whatever its status).
    reachable: bool,
    /// Its status.
    status: Option<u16>,
    latency_ms: f64,
    /// Why no answer came.
    error: Option<String>,
}

impl From<ProbeReport> for TestReport {
    fn from(r: ProbeReport) -> Self {
        TestReport {
            reachable: r.reachable,
            status: r.status,
            latency_ms: r.latency.as_secs_f64() * 1e3,
            error: r.error,
        }
    }
}

/// Tests connectivity: a `HEAD` request with the endpoint's authentication and no body (so
/// nothing is triggered). Not counted in the metrics.
#[utoipa::path(post, path = "/api/integration/endpoints/{name}/test", tag = "integration",
    params(("name" = String, Path), TenantParam),
    security(("bearer" = [])),
    responses((status = 200, body = TestReport), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn test(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(t): Query<TenantParam>,
) -> Result<Json<TestReport>, ApiError> {
    let tenant = tenant_or_own(&p, t.tenant_id.as_deref())?;
    let report = host.integrations.probe(&p, tenant, &name).await?;
    Ok(Json(report.into()))
}

/// A call to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallIn {
    /// A JSON body (sent as `application/json`), if any.
    #[schema(value_type = Object)]
    body: Option<Value>,
}

/// A call's outcome: the endpoint's answer, or why there was none.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CallOut {
    /// A 2xx answer came.
    ok: bool,
    /// The endpoint's status, if it answered.
    status: Option<u16>,
    /// The answer: JSON when it is JSON, else text (the start of it for an error status).
    #[schema(value_type = Object)]
    body: Value,
    /// Why the call failed.
    error: Option<String>,
    /// Whether trying again later may succeed (transport failures, 408, 429, 5xx).
    retryable: bool,
    /// The latency (successful calls).
    latency_ms: Option<f64>,
}

/// Calls the endpoint now, as a workflow step would. The answer's status and body come back
/// in the outcome (a failing endpoint is `ok: false`, not an error of this API). Counted in
/// the metrics.
#[utoipa::path(post, path = "/api/integration/endpoints/{name}/call", tag = "integration",
    params(("name" = String, Path), TenantParam), request_body = CallIn,
    security(("bearer" = [])),
    responses((status = 200, body = CallOut), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn call(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(t): Query<TenantParam>,
    Body(r): Body<CallIn>,
) -> Result<Json<CallOut>, ApiError> {
    let tenant = tenant_or_own(&p, t.tenant_id.as_deref())?;
    let request = match r.body {
        Some(body) => CallRequest::json(body),
        None => CallRequest::default(),
    };
    let out = match host.integrations.call(&p, tenant, &name, &request).await? {
        Ok(answer) => CallOut {
            ok: true,
            status: Some(answer.status),
            body: answer.body,
            error: None,
            retryable: false,
            latency_ms: Some(answer.latency.as_secs_f64() * 1e3),
        },
        Err(e) => {
            let retryable = e.retryable();
            let (status, body) = match &e {
                CallError::Status { status, body, .. } => {
                    (Some(*status), Value::String(body.clone()))
                }
                _ => (None, Value::Null),
            };
            CallOut {
                ok: false,
                status,
                body,
                error: Some(e.to_string()),
                retryable,
                latency_ms: None,
            }
        }
    };
    Ok(Json(out))
}

/// An endpoint's call metrics since this host started.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MetricsView {
    calls: u64,
    errors: u64,
    /// `errors / calls` (0 before the first call).
    error_rate: f64,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
}

impl From<EndpointStats> for MetricsView {
    fn from(s: EndpointStats) -> Self {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let error_rate = if s.calls == 0 {
            0.0
        } else {
            s.errors as f64 / s.calls as f64
        };
        MetricsView {
            calls: s.calls,
            errors: s.errors,
            error_rate,
            p50_ms: ms(s.p50),
            p95_ms: ms(s.p95),
            p99_ms: ms(s.p99),
        }
    }
}

/// Calls, errors and latency percentiles of an endpoint, counted by this host since it
/// started (calls from the API and from workflow steps).
#[utoipa::path(get, path = "/api/integration/endpoints/{name}/metrics", tag = "integration",
    params(("name" = String, Path), TenantParam),
    security(("bearer" = [])),
    responses((status = 200, body = MetricsView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn metrics(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(t): Query<TenantParam>,
) -> Result<Json<MetricsView>, ApiError> {
    let tenant = tenant_or_own(&p, t.tenant_id.as_deref())?;
    let stats = host.integrations.stats(&p, tenant, &name).await?;
    Ok(Json(stats.into()))
}
