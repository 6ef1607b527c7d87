//! Strong ETags and `304 Not Modified` for things that never change (a committed
//! snapshot's statistics, a snapshot's files, the signing keys until they rotate), with a
//! `Cache-Control` that never lets a shared cache keep tenant data (`private`).

use axum::Json;
use axum::http::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Tenant data a client may keep for good: it never changes under its URL.
pub(crate) const PRIVATE_IMMUTABLE: &str = "private, max-age=31536000, immutable";

/// Whether `If-None-Match` names `etag` (a quoted strong tag) or is `*`.
pub(crate) fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag == etag || tag.strip_prefix("W/") == Some(etag))
}

/// `ETag: "tag"` and `cache_control` on `304` when the client has it, else on the response
/// `body` makes (called only then, so nothing is read for a `304`).
pub(crate) fn conditional(
    headers: &HeaderMap,
    tag: &str,
    cache_control: &'static str,
    body: impl FnOnce() -> Response,
) -> Response {
    let etag = format!("\"{tag}\"");
    let mut response = if if_none_match(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
    response
}

/// `value` as JSON under [`conditional`].
pub(crate) fn json_with_etag<T: Serialize>(
    headers: &HeaderMap,
    tag: &str,
    cache_control: &'static str,
    value: &T,
) -> Response {
    conditional(headers, tag, cache_control, || Json(value).into_response())
}
