//! HTTP checks (Consul's mapping).

use super::millis;
use crate::registry::HealthStatus;
use std::error::Error as _;
use std::io::ErrorKind;
use std::time::Duration;
use url::Url;

/// The client every HTTP check of one scheduler shares: no proxy (a health check must
/// reach the instance itself), no idle connections kept (every run opens a fresh
/// connection, so a dead listener cannot hide behind a pooled one).
pub(crate) fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .user_agent(concat!("ate-health-check/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Consul's mapping of an HTTP status: 2xx passing, 429 warning, anything else critical.
pub(crate) fn status_of(code: u16) -> HealthStatus {
    match code {
        200..=299 => HealthStatus::Passing,
        429 => HealthStatus::Warning,
        _ => HealthStatus::Critical,
    }
}

/// Sends one request and maps the answer. The body is not read.
pub(crate) async fn run(
    client: &reqwest::Client,
    method: &reqwest::Method,
    url: &Url,
    timeout: Duration,
) -> (HealthStatus, String) {
    let send = client.request(method.clone(), url.clone()).send();
    match tokio::time::timeout(timeout, send).await {
        Ok(Ok(response)) => {
            let status = response.status();
            let line = match status.canonical_reason() {
                Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
                None => format!("HTTP {}", status.as_u16()),
            };
            (status_of(status.as_u16()), line)
        }
        Ok(Err(e)) => (HealthStatus::Critical, describe(&e, timeout)),
        Err(_) => (
            HealthStatus::Critical,
            format!("timed out after {} ms", millis(timeout)),
        ),
    }
}

/// A one-line description of a failed request, from its kind and source chain (never by
/// matching messages).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {} ms", millis(timeout));
    }
    let mut source = e.source();
    let mut innermost = e.to_string();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                ErrorKind::ConnectionReset => "connection reset".to_owned(),
                ErrorKind::TimedOut => format!("timed out after {} ms", millis(timeout)),
                _ => format!("connection failed: {io}"),
            };
        }
        innermost = s.to_string();
        source = s.source();
    }
    if e.is_connect() {
        format!("connection failed: {innermost}")
    } else {
        format!("invalid HTTP response: {innermost}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consul_status_mapping() {
        assert_eq!(status_of(200), HealthStatus::Passing);
        assert_eq!(status_of(204), HealthStatus::Passing);
        assert_eq!(status_of(299), HealthStatus::Passing);
        assert_eq!(status_of(429), HealthStatus::Warning);
        for code in [100, 301, 304, 400, 404, 428, 430, 500, 503] {
            assert_eq!(status_of(code), HealthStatus::Critical, "{code}");
        }
    }
}
