//! The management dashboard: a single page served at `/` (and at every `/ui/...` page
//! address, so a bookmarked or shared page opens directly), its scripts, styles and the
//! charting library under `/assets/`, all embedded in the binary.
//!
//! There is no JavaScript build step: the sources in `examples/dashboard/` are plain ES
//! modules and CSS, served as they are (compressed by the host's compression layer), with
//! uPlot (MIT, vendored with its licence) for charts. The page talks only to the host's own
//! REST API, signed in through `/api/session` (tokens in `HttpOnly` cookies the scripts
//! cannot read). The Content-Security-Policy allows scripts, styles and connections from
//! this origin only: no inline script or style, nothing from elsewhere.

use axum::Router;
use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// The policy of every dashboard answer: this origin only, no inline code.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

macro_rules! assets {
    ($($path:literal => $type:literal),* $(,)?) => {
        /// Every file under `/assets/`: path, content type, bytes.
        const ASSETS: &[(&str, &str, &[u8])] = &[
            $(($path, $type, include_bytes!(concat!("../../../dashboard/", $path))),)*
        ];
    };
}

assets! {
    "app.css" => "text/css; charset=utf-8",
    "js/main.js" => "text/javascript; charset=utf-8",
    "js/api.js" => "text/javascript; charset=utf-8",
    "js/dom.js" => "text/javascript; charset=utf-8",
    "js/charts.js" => "text/javascript; charset=utf-8",
    "js/pages/alerts.js" => "text/javascript; charset=utf-8",
    "js/pages/audit.js" => "text/javascript; charset=utf-8",
    "js/pages/common.js" => "text/javascript; charset=utf-8",
    "js/pages/history.js" => "text/javascript; charset=utf-8",
    "js/pages/login.js" => "text/javascript; charset=utf-8",
    "js/pages/overview.js" => "text/javascript; charset=utf-8",
    "js/pages/projects.js" => "text/javascript; charset=utf-8",
    "js/pages/services.js" => "text/javascript; charset=utf-8",
    "js/pages/tenants.js" => "text/javascript; charset=utf-8",
    "js/pages/workflows.js" => "text/javascript; charset=utf-8",
    "vendor/uplot/uPlot.esm.js" => "text/javascript; charset=utf-8",
    "vendor/uplot/uPlot.min.css" => "text/css; charset=utf-8",
    "vendor/uplot/LICENSE" => "text/plain; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
}

/// The page every dashboard address answers with.
const INDEX: &[u8] = include_bytes!("../../../dashboard/index.html");

/// The dashboard's routes (no authentication here: the page signs in through the API).
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/login", get(page))
        .route("/ui", get(page))
        .route("/ui/{*page}", get(page))
        .route("/assets/{*file}", get(asset))
}

async fn page(headers: HeaderMap) -> Response {
    static TAG: OnceLock<HeaderValue> = OnceLock::new();
    let tag = TAG.get_or_init(|| etag(INDEX));
    respond(&headers, "text/html; charset=utf-8", INDEX, tag)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    static TAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| ASSETS.iter().map(|(_, _, b)| etag(b)).collect());
    match ASSETS.iter().position(|(p, _, _)| *p == file) {
        Some(i) => respond(&headers, ASSETS[i].1, ASSETS[i].2, &tags[i]),
        None => crate::api::problem::ApiError::not_found("asset").into_response(),
    }
}

/// A strong validator: the first 16 bytes of the content's SHA-256.
fn etag(bytes: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(bytes);
    HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..16])))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// The content, or `304` when the browser's copy is current. Browsers revalidate every
/// time (`no-cache`): a new binary's files are never mixed with an old one's.
fn respond(
    headers: &HeaderMap,
    content_type: &'static str,
    body: &'static [u8],
    tag: &HeaderValue,
) -> Response {
    let fresh = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == tag.to_str().unwrap_or(""));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = body.into_response();
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    let h = response.headers_mut();
    h.insert(ETAG, tag.clone());
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_is_embedded() {
        let page = std::str::from_utf8(INDEX).expect("utf-8");
        for (i, part) in page.split("/assets/").enumerate().skip(1) {
            let name = part.split('"').next().expect("quoted");
            assert!(
                ASSETS.iter().any(|(p, _, _)| *p == name),
                "reference {i}: /assets/{name} is not embedded"
            );
        }
        // The scripts import each other by relative path: each import must be embedded.
        for (path, _, bytes) in ASSETS.iter().filter(|(p, _, _)| p.ends_with(".js")) {
            let text = std::str::from_utf8(bytes).expect("utf-8");
            let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let Some(target) = line.split(['"', '\'']).nth(1) else {
                    continue;
                };
                let resolved = resolve(dir, target);
                assert!(
                    ASSETS.iter().any(|(p, _, _)| *p == resolved),
                    "{path} imports {target} ({resolved}), which is not embedded"
                );
            }
        }
    }

    fn resolve(dir: &str, target: &str) -> String {
        let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
        for seg in target.split('/') {
            match seg {
                "." => {}
                ".." => {
                    parts.pop();
                }
                s => parts.push(s),
            }
        }
        parts.join("/")
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let page = std::str::from_utf8(INDEX).expect("utf-8");
        assert!(
            !page.contains("<script>") && !page.contains("<style"),
            "{page}"
        );
        assert!(!page.contains(" style="), "inline style");
        // No inline event handler (`onclick=` and the like).
        let handler = page.split(" on").skip(1).any(|rest| {
            rest.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase())
            })
        });
        assert!(!handler, "inline event handler");
    }
}
