//! Errors as RFC 9457 problem details (`application/problem+json`).
//!
//! Every failure the API answers has one shape: `type` (a URN naming the kind), `title`,
//! `status`, `detail`, `instance` (the request path) and `kind` (ATE's
//! [`ErrorKind`] name, for clients that switch on it). The status comes from the kind, never
//! from the message. Messages of client errors say what was wrong with the request; server
//! errors say only that something failed and carry the request id, while the cause goes to
//! the log. `401` answers never say why (a wrong password and an unknown user look alike).

use ate_core::{Classify, ErrorKind};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::borrow::Cow;
use utoipa::ToSchema;

/// The media type of problem documents.
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Problem {
    /// A URN naming the kind of problem, e.g. `urn:ate:problem:not_found`.
    #[serde(rename = "type")]
    pub(crate) type_: String,
    /// A short summary of the kind.
    pub(crate) title: String,
    /// The HTTP status code.
    pub(crate) status: u16,
    /// What was wrong, for a person to read.
    pub(crate) detail: String,
    /// The request path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) instance: Option<String>,
    /// ATE's error kind (`not_found`, `invalid_input`, …).
    pub(crate) kind: String,
    /// The request id, to find the request in the logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) request_id: Option<String>,
}

/// The status code of each kind.
pub(crate) fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists | ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorKind::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Integrity => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The kind name used for a bare status (the host's own refusals: 404 route, 413 body).
fn kind_of_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 411 | 414 | 415 | 422 | 431 => "invalid_input",
        401 => "unauthenticated",
        403 => "permission_denied",
        404 => "not_found",
        409 | 412 => "conflict",
        413 => "invalid_input",
        429 => "rate_limited",
        503 | 504 => "unavailable",
        _ if status.is_server_error() => "internal",
        _ => "invalid_input",
    }
}

/// What a handler fails with: a kind and a message safe to show, or an internal failure
/// whose message is only logged.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) kind: Cow<'static, str>,
    /// Shown to the client (client errors only).
    pub(crate) detail: String,
    /// Logged, never shown (server errors).
    pub(crate) cause: Option<String>,
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    /// A client error of `kind` with a message for the caller.
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        ApiError {
            status: status_of(kind),
            kind: Cow::Borrowed(kind.as_str()),
            detail: detail.into(),
            cause: None,
            retry_after: None,
        }
    }

    /// `400 invalid_input`.
    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, detail)
    }

    /// `404 not_found`.
    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(ErrorKind::NotFound, format!("{what} not found"))
    }

    /// From any classified ATE error: the message is shown for client errors, logged for
    /// server errors, and never shown for `401`.
    pub(crate) fn from_classified(e: &(impl Classify + ?Sized), retry_after: Option<u64>) -> Self {
        let kind = e.kind();
        let status = status_of(kind);
        let (detail, cause) = if status.is_server_error() {
            (generic_detail(status).to_owned(), Some(e.to_string()))
        } else if kind == ErrorKind::Unauthenticated {
            ("authentication failed".to_owned(), Some(e.to_string()))
        } else {
            (e.to_string(), None)
        };
        ApiError {
            status,
            kind: Cow::Borrowed(kind.as_str()),
            detail,
            cause,
            retry_after,
        }
    }

    /// `500`: `cause` is logged, not shown.
    pub(crate) fn internal(cause: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: Cow::Borrowed("internal"),
            detail: generic_detail(StatusCode::INTERNAL_SERVER_ERROR).to_owned(),
            cause: Some(cause.into()),
            retry_after: None,
        }
    }
}

fn generic_detail(status: StatusCode) -> &'static str {
    match status {
        StatusCode::SERVICE_UNAVAILABLE => "a backend is unavailable; retry later",
        StatusCode::NOT_IMPLEMENTED => "this operation is not supported by this server",
        _ => "the server failed to handle the request; the request id locates it in the logs",
    }
}

impl From<ate_auth::AuthError> for ApiError {
    fn from(e: ate_auth::AuthError) -> Self {
        let retry = match &e {
            ate_auth::AuthError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        ApiError::from_classified(&e, retry)
    }
}

impl From<ate_core::CoreError> for ApiError {
    fn from(e: ate_core::CoreError) -> Self {
        ApiError::from_classified(&e, None)
    }
}

impl From<ate_storage::StorageError> for ApiError {
    fn from(e: ate_storage::StorageError) -> Self {
        ApiError::from_classified(&e, None)
    }
}

impl From<ate_orchestrate::OrchestrateError> for ApiError {
    fn from(e: ate_orchestrate::OrchestrateError) -> Self {
        ApiError::from_classified(&e, None)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        // 400 malformed, 413 too large, 415 not JSON, 422 wrong types or unknown fields.
        let mut err = ApiError::invalid(e.body_text());
        if e.status().is_client_error() {
            err.status = e.status();
        }
        err
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::invalid(e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::invalid(e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.cause {
            if self.status.is_server_error() {
                tracing::error!(status = self.status.as_u16(), kind = %self.kind, cause = %cause, "request failed");
            } else {
                tracing::info!(status = self.status.as_u16(), kind = %self.kind, cause = %cause, "request refused");
            }
        }
        let mut response = problem_response(self.status, &self.kind, self.detail);
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A problem response; the `instance` and `request_id` members are filled in by
/// [`super::layers`] on the way out, which knows the request.
pub(crate) fn problem_response(status: StatusCode, kind: &str, detail: String) -> Response {
    let problem = Problem {
        type_: format!("urn:ate:problem:{kind}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        instance: None,
        kind: kind.to_owned(),
        request_id: None,
    };
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response.extensions_mut().insert(problem);
    response
}

/// A problem for an error answered without a body (a route that does not exist, a body
/// over the limit, a refusal from the authentication layer).
pub(crate) fn problem_for_status(status: StatusCode) -> Response {
    let detail = match status.as_u16() {
        401 => "authentication failed".to_owned(),
        404 => "no such resource".to_owned(),
        405 => "this method is not allowed on this resource".to_owned(),
        408 | 504 => "the request took too long".to_owned(),
        413 => "the request body is too large".to_owned(),
        503 => "the server is overloaded or a backend is unavailable; retry later".to_owned(),
        _ if status.is_server_error() => generic_detail(status).to_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("bad request")
            .to_lowercase(),
    };
    problem_response(status, kind_of_status(status), detail)
}
