//! The cross-cutting layers every request passes, outermost first:
//!
//! 1. request id (`x-request-id`: the client's if it sent a sane one, else a UUID), echoed
//!    on the response;
//! 2. the access log (tower-http `TraceLayer`, one JSON line per request) and the HTTP
//!    metrics (per method, matched route and status);
//! 3. problem documents for every error answered without a body (unknown route, body too
//!    large, authentication refusals, timeouts, load shedding), with `instance` and
//!    `request_id` filled in; an upstream's answer through the gateway passes unchanged;
//!    an HTTP/1 error answer to a request with a body closes the connection (the body may
//!    be unread);
//! 4. security headers, `Cache-Control: no-store` unless a handler chose otherwise (tenant
//!    data never sits in a shared cache), CORS for the configured origins;
//! 5. compression, panic catching (a `500` problem, never a dropped connection);
//! 6. load shedding over a concurrency limit (`503` with `Retry-After`).
//!
//! The body size limit (`413`) and the request timeout (`503`) are set per route group in
//! [`super::router`]: uploads have their own limit and no timeout.

use super::problem::{PROBLEM_JSON, Problem, problem_for_status};
use crate::config::HttpSection;
use crate::metrics::HttpMetrics;
use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{MatchedPath, Request};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps `router` in every layer.
pub(crate) fn wrap(
    router: Router,
    http: &HttpSection,
    metrics: Arc<HttpMetrics>,
    tls: bool,
) -> Router {
    let shed = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|e: tower::BoxError| async move {
            if e.is::<tower::load_shed::error::Overloaded>() {
                let mut r = problem_for_status(StatusCode::SERVICE_UNAVAILABLE);
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            } else {
                tracing::error!(error = %e, "middleware failed");
                problem_for_status(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }))
        .load_shed()
        .concurrency_limit(http.max_concurrency);
    let security = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            tls.then(|| HeaderValue::from_static("max-age=31536000")),
        ));
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request<Body>| {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", MatchedPath::as_str);
            let id = req
                .headers()
                .get(&X_REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!("request", method = %req.method(), route = %route, request_id = %id)
        })
        .on_request(())
        .on_response(
            |res: &Response<Body>, latency: Duration, _: &tracing::Span| {
                tracing::info!(
                    status = res.status().as_u16(),
                    latency_ms = latency.as_secs_f64() * 1e3,
                    "served"
                );
            },
        );
    let metrics_layer = middleware::from_fn(move |req: Request, next: Next| {
        let metrics = metrics.clone();
        async move { observe(metrics, req, next).await }
    });
    // One stack, applied once: axum boxes a route's service at every `Router::layer`, and
    // clones the whole chain of boxes for every request, so a dozen separately applied
    // layers cost a dozen allocations and virtual clones per request. Outermost first.
    let stack = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(X_REQUEST_ID, MakeRequestUuid))
        .layer(middleware::from_fn(sane_request_id))
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID))
        .layer(trace)
        .layer(metrics_layer)
        .layer(security)
        // No origins configured: no CORS layer at all (it would answer nothing).
        .option_layer((!http.cors_origins.is_empty()).then(|| cors(&http.cors_origins)))
        .layer(CompressionLayer::new())
        // Inside compression: a problem body replaced here is then compressed like any other.
        .layer(middleware::from_fn(problems))
        .layer(CatchPanicLayer::custom(|_| {
            problem_for_status(StatusCode::INTERNAL_SERVER_ERROR)
        }))
        .layer(shed);
    router.layer(stack)
}

/// Replaces a client's request id that is too long or not visible ASCII: it is echoed in
/// headers and logs.
async fn sane_request_id(mut req: Request, next: Next) -> Response {
    let sane = req
        .headers()
        .get(&X_REQUEST_ID)
        .is_some_and(|v| v.len() <= 128 && v.as_bytes().iter().all(|b| b.is_ascii_graphic()));
    if !sane {
        let id = uuid::Uuid::new_v4().to_string();
        if let Ok(v) = HeaderValue::from_str(&id) {
            req.headers_mut().insert(&X_REQUEST_ID, v.clone());
            req.extensions_mut().insert(RequestId::new(v));
        }
    }
    next.run(req).await
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, X_REQUEST_ID])
        .expose_headers([X_REQUEST_ID, header::RETRY_AFTER, header::ETAG])
        .max_age(Duration::from_secs(600))
}

/// Turns every bodiless error into a problem document and fills in `instance` and
/// `request_id` of every problem.
async fn problems(req: Request, next: Next) -> Response {
    // Cheap clones (shared bytes): the strings are made only for an error.
    let uri = req.uri().clone();
    let request_id = req.headers().get(&X_REQUEST_ID).cloned();
    let http1_with_body = req.version() <= axum::http::Version::HTTP_11
        && (req.headers().contains_key(header::TRANSFER_ENCODING)
            || req
                .headers()
                .get(header::CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() != b"0"));
    let mut response = next.run(req).await;
    let status = response.status();
    if http1_with_body && (status.is_client_error() || status.is_server_error()) {
        // A refusal may leave the request body unread (a body over the limit, a failed
        // authentication): the connection cannot carry another request, so say so rather
        // than let the client reuse it and fail its next request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if !(status.is_client_error() || status.is_server_error())
        || response
            .extensions()
            .get::<crate::gateway::Proxied>()
            .is_some()
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // A handler's problem, or a layer's bare or plain-text refusal (a body over the
    // limit, a timeout, the authentication layer) turned into one.
    let problem = match parts.extensions.remove::<Problem>() {
        Some(p) => p,
        None => match problem_for_status(status).extensions().get::<Problem>() {
            Some(p) => p.clone(),
            None => return Response::from_parts(parts, body),
        },
    };
    let problem = Problem {
        instance: Some(uri.path().to_owned()),
        request_id: request_id.and_then(|v| v.to_str().ok().map(str::to_owned)),
        ..problem
    };
    let bytes = serde_json::to_vec(&problem).unwrap_or_default();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes)).into_response()
}

/// Records the request in the HTTP metrics by matched route (never the raw path: ids
/// would make unbounded label sets).
async fn observe(metrics: Arc<HttpMetrics>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(req).await;
    metrics.record(&method, &route, response.status(), started.elapsed());
    response
}
