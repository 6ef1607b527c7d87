//! The API gateway: `/svc/{service}/…` is proxied to an instance of a registered service.
//!
//! Each request is authenticated (ate-auth's layer, like the API) and needs
//! `registry:read`; the instance comes from the [`ServiceHub`](ate_orchestrate::hub::ServiceHub)'s
//! pick (health, the service's traffic policy, least-request balancing, circuit breakers,
//! outlier ejection), keyed by the caller so a canary split keeps each user on one side.
//! The caller's token never leaves the host: the upstream gets a short-lived token for the
//! audience `svc:<service>` in `x-ate-identity` instead (verify it against `/api/auth/jwks`).
//! Bodies stream both ways; the upstream must answer within `gateway.upstream_timeout_secs`.
//! Idempotent requests without a body are retried on another pick after a connection
//! failure or a 502/503/504, under a per-service retry budget. What each attempt did goes
//! into the hub's metrics (and so its breakers and outlier detector); the gateway's own
//! counters (retries, budget refusals, upstream failures) sit beside them at `/metrics`.

pub(crate) mod forward;
mod metrics;
mod stream;

use crate::config::GatewaySection;
use crate::host::Host;
use ate_core::{ErrorKind, Principal};
use ate_orchestrate::OrchestrateError;
use ate_orchestrate::hub::{Pick, PickOptions};
use ate_orchestrate::registry::ServiceName;
use ate_orchestrate::retry::RetryBudget;
use axum::Extension;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
pub(crate) use metrics::GatewayMetrics;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::api::problem::problem_response;

/// Marks a response that came from an upstream: the problem layer leaves its body alone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Proxied;

/// The client the gateway calls upstreams with: hyper-util's pooled client over plain TCP or
/// rustls, with no URL parsing, redirect or retry machinery of its own in the way.
type UpstreamClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Body,
>;

/// The gateway's state: settings, the upstream client, retry budgets, metrics.
pub(crate) struct Gateway {
    config: GatewaySection,
    client: UpstreamClient,
    budgets: Mutex<HashMap<ServiceName, Arc<RetryBudget>>>,
    metrics: GatewayMetrics,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway with its own connection pool (HTTP/1.1, or HTTP/2 when an https upstream
    /// offers it; https upstreams verified against the platform's trust store). No
    /// redirects are followed and no proxy from the environment is used: the upstream's
    /// answer goes back as it is.
    pub(crate) fn new(
        config: GatewaySection,
        metrics: GatewayMetrics,
    ) -> Result<Self, std::io::Error> {
        let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(Duration::from_millis(config.connect_timeout_ms)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(rustls::crypto::aws_lc_rs::default_provider())?
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(tcp);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .build(connector);
        Ok(Gateway {
            config,
            client,
            budgets: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// The service's retry budget, made on its first request that reached an instance
    /// (so callers naming services that do not exist cannot grow the map).
    fn budget(&self, service: &ServiceName) -> Arc<RetryBudget> {
        let mut budgets = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        budgets
            .entry(service.clone())
            .or_insert_with(|| {
                Arc::new(
                    RetryBudget::new(
                        Duration::from_secs(10),
                        self.config.retry_min_per_sec,
                        self.config.retry_ratio,
                    )
                    .unwrap_or_else(|_| RetryBudget::default_budget()),
                )
            })
            .clone()
    }
}

/// `/svc/{service}` and everything under it, for every method.
pub(crate) fn routes(gateway: Arc<Gateway>) -> Router<Host> {
    Router::new()
        .route("/svc/{service}", any(proxy))
        .route("/svc/{service}/{*path}", any(proxy))
        .layer(Extension(gateway))
}

fn problem(status: StatusCode, kind: ErrorKind, detail: String) -> Response {
    problem_response(status, kind.as_str(), detail)
}

/// What one attempt came to.
enum Attempt {
    /// The upstream answered (any status); the pick is finished when the body ends.
    Answered(Response),
    /// Not answered, but another attempt may be made.
    Retry,
    /// Not answered; this is the answer.
    Failed(Response),
}

async fn proxy(
    State(host): State<Host>,
    Extension(gateway): Extension<Arc<Gateway>>,
    Extension(principal): Extension<Principal>,
    req: Request,
) -> Response {
    let target = match forward::Target::parse(req.uri()) {
        Ok(t) => t,
        Err(detail) => return problem(StatusCode::BAD_REQUEST, ErrorKind::InvalidInput, detail),
    };
    let (parts, body) = req.into_parts();
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    let retryable = forward::is_idempotent(&parts.method)
        && axum::body::HttpBody::size_hint(&body).exact() == Some(0);
    let identity = match host.auth.tokens().delegate_cached(
        &principal,
        &format!("svc:{}", target.service),
        chrono::TimeDelta::seconds(i64::try_from(gateway.config.identity_token_secs).unwrap_or(60)),
    ) {
        Ok(t) => t,
        Err(e) => return crate::api::problem::ApiError::from(e).into_response(),
    };
    let headers = forward::request_headers(
        &parts.headers,
        &identity.token,
        client,
        host.config.tls.cert_file.is_some(),
        &target,
    );
    let mut body = Some(body);
    let mut budget: Option<Arc<RetryBudget>> = None;
    let attempts = if retryable {
        gateway.config.max_attempts
    } else {
        1
    };
    // Instances this request failed on: a retry goes elsewhere while anything else is up.
    let mut tried = Vec::new();
    for attempt in 1..=attempts {
        let mut options = PickOptions::new().key(principal.subject().as_bytes());
        for instance in &tried {
            options = options.avoid(Clone::clone(instance));
        }
        let pick = match host.hub.pick(&principal, &target.service, options).await {
            Ok(p) => p,
            Err(e) => return no_pick(&target.service, &e),
        };
        let budget = budget.get_or_insert_with(|| {
            let b = gateway.budget(&target.service);
            b.deposit();
            b
        });
        let last = attempt == attempts;
        tried.push(pick.instance().key());
        match call(
            &gateway,
            &target,
            &parts.method,
            &headers,
            body.take(),
            pick,
            last,
        )
        .await
        {
            Attempt::Answered(response) => return response,
            Attempt::Failed(response) => return response,
            Attempt::Retry => {
                if !budget.try_withdraw() {
                    gateway.metrics.budget_exhausted(&target.service);
                    return problem(
                        StatusCode::BAD_GATEWAY,
                        ErrorKind::Unavailable,
                        format!(
                            "no instance of {} answered, and its retry budget is spent",
                            target.service
                        ),
                    );
                }
                gateway.metrics.retried(&target.service);
            }
        }
    }
    // Every attempt asked for another; the loop's last one never does.
    problem(
        StatusCode::BAD_GATEWAY,
        ErrorKind::Unavailable,
        format!("no instance of {} answered", target.service),
    )
}

/// The pick failed: nothing available (503, try again soon), or not the caller's to call.
fn no_pick(service: &ServiceName, e: &OrchestrateError) -> Response {
    match e {
        OrchestrateError::NoAvailableInstance { reason, .. } => {
            let mut r = problem(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Unavailable,
                format!("no instance of {service} is available: {reason}"),
            );
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("1"),
            );
            r
        }
        other => crate::api::problem::ApiError::from_classified(other, None).into_response(),
    }
}

/// One attempt on `pick`'s instance.
async fn call(
    gateway: &Gateway,
    target: &forward::Target,
    method: &Method,
    headers: &axum::http::HeaderMap,
    body: Option<Body>,
    pick: Pick,
    last: bool,
) -> Attempt {
    let url = match forward::upstream_url(&pick.instance().spec.endpoint, target) {
        Ok(u) => u,
        Err(detail) => {
            // A registration the gateway cannot call (a TCP endpoint): the instance is not
            // at fault, so nothing is recorded against it.
            drop(pick);
            return Attempt::Failed(problem(
                StatusCode::BAD_GATEWAY,
                ErrorKind::Unsupported,
                detail,
            ));
        }
    };
    let uri = match axum::http::Uri::try_from(url.as_str()) {
        Ok(u) => u,
        Err(e) => {
            drop(pick);
            return Attempt::Failed(problem(
                StatusCode::BAD_GATEWAY,
                ErrorKind::Unsupported,
                format!(
                    "the instance of {} has an endpoint the gateway cannot call: {e}",
                    target.service
                ),
            ));
        }
    };
    let mut request = Request::new(body.unwrap_or_default());
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers.clone();
    let timeout = Duration::from_secs(gateway.config.upstream_timeout_secs);
    let service = &target.service;
    let retry_or = |response: Response| {
        if last {
            Attempt::Failed(response)
        } else {
            Attempt::Retry
        }
    };
    match tokio::time::timeout(timeout, gateway.client.request(request)).await {
        Err(_) => {
            pick.failure(ErrorKind::Unavailable);
            gateway.metrics.failed(service, "timeout");
            Attempt::Failed(problem(
                StatusCode::GATEWAY_TIMEOUT,
                ErrorKind::Unavailable,
                format!("the instance of {service} did not answer within {timeout:?}"),
            ))
        }
        Ok(Err(e)) => {
            pick.failure(ErrorKind::Unavailable);
            let reason = if e.is_connect() {
                "connect"
            } else {
                "transport"
            };
            gateway.metrics.failed(service, reason);
            tracing::info!(service = %service, error = %e, "gateway: upstream request failed");
            retry_or(problem(
                StatusCode::BAD_GATEWAY,
                ErrorKind::Unavailable,
                format!("the instance of {service} could not be reached ({reason} failed)"),
            ))
        }
        Ok(Ok(response)) => {
            let status = response.status();
            if status.is_server_error() {
                gateway.metrics.failed(service, "status_5xx");
            }
            let gateway_error = matches!(status.as_u16(), 502..=504);
            if gateway_error && !last {
                pick.failure(ErrorKind::Unavailable);
                return Attempt::Retry;
            }
            Attempt::Answered(stream::respond(response, pick))
        }
    }
}
