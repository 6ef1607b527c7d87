//! What the gateway sends upstream: the target parsed from the request path, the upstream
//! URL, and the forwarded headers.

use ate_orchestrate::registry::ServiceName;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, Uri};
use std::net::IpAddr;
use url::Url;

/// The header carrying the caller's identity to the upstream (a JWT for `svc:<service>`).
pub(crate) const X_ATE_IDENTITY: HeaderName = HeaderName::from_static("x-ate-identity");

/// Where a gateway request goes: the service, and the path and query below `/svc/<service>`
/// exactly as the client sent them (still percent-encoded).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) service: ServiceName,
    /// Starts with `/` (just `/` for `/svc/<service>`).
    pub(crate) path: String,
    pub(crate) query: Option<String>,
}

impl Target {
    /// Parses `/svc/<service>[/<path>]`. Refuses a service name that is not one, and a
    /// path with `.` or `..` segments (also percent-encoded): they could climb out of an
    /// instance's base path on the upstream.
    pub(crate) fn parse(uri: &Uri) -> Result<Target, String> {
        let rest = uri
            .path()
            .strip_prefix("/svc/")
            .ok_or_else(|| "gateway paths start with /svc/<service>".to_owned())?;
        let (name, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let service = ServiceName::new(name).map_err(|e| format!("{e}"))?;
        Target::new(service, path, uri.query())
    }

    /// `path` (starting with `/`) and `query` of `service`, refusing `.` and `..` segments
    /// (also percent-encoded).
    pub(crate) fn new(
        service: ServiceName,
        path: &str,
        query: Option<&str>,
    ) -> Result<Target, String> {
        if !path.starts_with('/') {
            return Err("the path must start with /".to_owned());
        }
        // A URL parser reads `\` as `/` in http(s) paths, so `/%2e%2e\` is a `..` segment
        // to it (found by fuzzing: it climbed out of the instance's base path). Clients
        // that mean a backslash send `%5C`.
        if path.contains('\\') {
            return Err("the path must not contain a backslash (send %5C)".to_owned());
        }
        for segment in path.split('/') {
            let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
            if decoded == "." || decoded == ".." {
                return Err("the path must not contain . or .. segments".to_owned());
            }
        }
        Ok(Target {
            service,
            path: path.to_owned(),
            query: query.map(str::to_owned),
        })
    }
}

/// Methods a retry cannot make happen twice (RFC 9110 §9.2.2).
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// The instance's endpoint with the target's path appended to its base path, and the
/// target's query. Only `http` and `https` endpoints can be called.
pub(crate) fn upstream_url(endpoint: &Url, target: &Target) -> Result<Url, String> {
    if !matches!(endpoint.scheme(), "http" | "https") {
        return Err(format!(
            "the instance of {} is registered with a {} endpoint; the gateway calls http and https ones",
            target.service,
            endpoint.scheme()
        ));
    }
    let mut url = endpoint.clone();
    let base = endpoint.path().trim_end_matches('/');
    url.set_path(&format!("{base}{}", target.path));
    url.set_query(target.query.as_deref());
    url.set_fragment(None);
    // Whatever the path held, the request stays below the instance's base path.
    if !url.path().starts_with(&format!("{base}/")) {
        return Err(format!(
            "the path of the request to {} leaves the instance's base path",
            target.service
        ));
    }
    Ok(url)
}

/// Hop-by-hop headers (RFC 9110 §7.6.1): they concern one connection, never the next.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What must never reach an upstream from the client: its credentials (`authorization`:
/// the upstream could replay the caller's token against ATE's API), and identity and
/// forwarding headers it could forge (the gateway sets them from what it knows).
const DROPPED: [&str; 8] = [
    "host",
    "authorization",
    "x-ate-identity",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-prefix",
];

/// Removes the hop-by-hop headers, including those the `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The headers sent upstream: the client's, without hop-by-hop ones, its credentials and
/// any identity or forwarding headers it sent (they are set here, from what the host knows),
/// plus `x-ate-identity` and `x-forwarded-*`.
pub(crate) fn request_headers(
    incoming: &HeaderMap,
    identity: &str,
    client: Option<IpAddr>,
    tls: bool,
    target: &Target,
) -> HeaderMap {
    let mut headers = incoming.clone();
    strip_hop_by_hop(&mut headers);
    for name in DROPPED {
        headers.remove(name);
    }
    if let Ok(v) = HeaderValue::from_str(identity) {
        headers.insert(X_ATE_IDENTITY, v);
    }
    if let Some(ip) = client
        && let Ok(v) = HeaderValue::from_str(&ip.to_string())
    {
        headers.insert("x-forwarded-for", v);
    }
    if let Some(host) = incoming.get(header::HOST) {
        headers.insert("x-forwarded-host", host.clone());
    }
    headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("/svc/{}", target.service)) {
        headers.insert("x-forwarded-prefix", v);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(uri: &str) -> Result<Target, String> {
        Target::parse(&uri.parse::<Uri>().unwrap())
    }

    #[test]
    fn targets_keep_the_path_and_refuse_dot_segments() {
        let t = target("/svc/billing/v1/invoices%2F7?x=1&y=%20").unwrap();
        assert_eq!(t.service.as_str(), "billing");
        assert_eq!(t.path, "/v1/invoices%2F7");
        assert_eq!(t.query.as_deref(), Some("x=1&y=%20"));
        assert_eq!(target("/svc/billing").unwrap().path, "/");
        assert_eq!(target("/svc/billing/").unwrap().path, "/");
        for bad in [
            "/svc/billing/../admin",
            "/svc/billing/a/./b",
            "/svc/billing/%2e%2E/admin",
            "/svc/billing/.%2e",
            "/svc/bad%20name/x",
            "/svc//x",
            // Found by fuzzing: a URL parser reads `\` as `/`, making this `/..`.
            "/svc/billing/%2E%2E\\",
            "/svc/billing/a\\..\\..\\admin",
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
        assert!(
            target("/svc/billing/a%5Cb").is_ok(),
            "an encoded backslash is data"
        );
        // Whatever gets through, the upstream URL stays below the base path.
        let sneaky = Target {
            service: ServiceName::new("billing").unwrap(),
            path: "/%2e%2e\\admin".to_owned(),
            query: None,
        };
        let base = Url::parse("http://10.0.0.1:8080/base/").unwrap();
        assert!(upstream_url(&base, &sneaky).unwrap_err().contains("leaves"));
        // Dots inside a segment are fine.
        assert!(target("/svc/billing/a..b/.well-known").is_ok());
    }

    #[test]
    fn urls_join_the_base_path() {
        let t = target("/svc/api/v1/x?q=1").unwrap();
        let join = |e: &str| upstream_url(&Url::parse(e).unwrap(), &t).map(|u| u.to_string());
        assert_eq!(
            join("http://10.0.0.1:8080").unwrap(),
            "http://10.0.0.1:8080/v1/x?q=1"
        );
        assert_eq!(
            join("https://h.example/base/").unwrap(),
            "https://h.example/base/v1/x?q=1"
        );
        assert!(
            join("tcp://10.0.0.1:5432")
                .unwrap_err()
                .contains("tcp endpoint")
        );
    }

    #[test]
    fn credentials_and_forged_identity_never_go_upstream() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer caller"),
        );
        h.insert(X_ATE_IDENTITY, HeaderValue::from_static("forged"));
        h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("hop"));
        h.insert(header::HOST, HeaderValue::from_static("gw.example"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        let t = target("/svc/api/x").unwrap();
        let out = request_headers(&h, "jwt", Some("127.0.0.9".parse().unwrap()), false, &t);
        assert_eq!(out.get(X_ATE_IDENTITY).unwrap(), "jwt");
        assert!(out.get(header::AUTHORIZATION).is_none());
        assert!(out.get("x-secret").is_none() && out.get(header::CONNECTION).is_none());
        assert!(out.get(header::HOST).is_none());
        assert_eq!(out.get("x-forwarded-for").unwrap(), "127.0.0.9");
        assert_eq!(out.get("x-forwarded-host").unwrap(), "gw.example");
        assert_eq!(out.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(out.get("x-forwarded-prefix").unwrap(), "/svc/api");
        assert_eq!(out.get("x-kept").unwrap(), "yes");
    }
}
