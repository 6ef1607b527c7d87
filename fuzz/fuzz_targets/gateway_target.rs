//! The `ate serve` gateway's own request parsing (its source file, included as is): the
//! `/svc/<service>/<path>` target, the upstream URL built from it, and the headers sent
//! upstream. Input: the request target on the first line, then `name: value` header lines.
//!
//! Whatever the client sends, the upstream URL stays on the instance's host and port and
//! below its base path (no `.`/`..` escape, however encoded), and the client's credentials,
//! hop-by-hop headers and forged identity or forwarding headers never reach the upstream.
#![no_main]
#![allow(dead_code, unreachable_pub)]

#[path = "../../examples/src/bin/ate/gateway/forward.rs"]
mod forward;

use axum::http::Uri;
use axum::http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::LazyLock;
use url::Url;

static ENDPOINT: LazyLock<Url> =
    LazyLock::new(|| Url::parse("http://10.0.0.1:8080/base/").expect("endpoint"));

const IDENTITY: &str = "eyJhbGciOiJFZERTQSJ9.e30.c2ln";

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let Some(first) = lines.next() else {
        return;
    };
    let Ok(uri) = Uri::try_from(first) else {
        return;
    };
    let Ok(target) = forward::Target::parse(&uri) else {
        return;
    };
    assert!(target.path.starts_with('/'));
    if let Ok(url) = forward::upstream_url(&ENDPOINT, &target) {
        assert_eq!(url.scheme(), "http");
        assert_eq!(
            url.host_str(),
            Some("10.0.0.1"),
            "upstream host changed: {url}"
        );
        assert_eq!(url.port(), Some(8080));
        assert!(
            url.path().starts_with("/base/"),
            "escaped the base path: {url} from {uri}"
        );
        assert!(url.fragment().is_none());
    }
    let mut incoming = HeaderMap::new();
    for line in lines.take(32) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) {
            incoming.append(name, value);
        }
    }
    let client = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
    let sent = forward::request_headers(&incoming, IDENTITY, client, false, &target);
    for name in [
        "authorization",
        "proxy-authorization",
        "connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "forwarded",
    ] {
        assert!(!sent.contains_key(name), "{name} reached the upstream");
    }
    assert_eq!(sent.get_all("x-ate-identity").iter().count(), 1);
    assert_eq!(
        sent.get("x-ate-identity").map(|v| v.as_bytes()),
        Some(IDENTITY.as_bytes())
    );
    assert_eq!(sent.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(
        sent.get("x-forwarded-for").map(|v| v.as_bytes()),
        Some(&b"192.0.2.7"[..])
    );
    assert_eq!(
        sent.get("x-forwarded-proto").map(|v| v.as_bytes()),
        Some(&b"http"[..])
    );
    // Headers the Connection header named are gone too.
    for value in incoming.get_all("connection") {
        if let Ok(v) = value.to_str() {
            for n in v.split(',') {
                if let Ok(name) = HeaderName::from_bytes(n.trim().as_bytes()) {
                    if name != "x-ate-identity" && !name.as_str().starts_with("x-forwarded-") {
                        assert!(
                            !sent.contains_key(&name),
                            "{name} (named by Connection) was sent"
                        );
                    }
                }
            }
        }
    }
});
