//! What a check is: its kind, its owner, its timing and its thresholds.

use super::CheckId;
use super::custom::CustomCheck;
use super::state::ThresholdState;
use crate::error::OrchestrateError;
use crate::registry::InstanceKey;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Longest interval, timeout, jitter, TTL or deregistration delay a check accepts (7 days).
pub const MAX_CHECK_PERIOD: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// How a check probes its instance.
#[derive(Clone)]
#[non_exhaustive]
pub enum CheckKind {
    /// An HTTP request: 2xx passing, 429 warning, anything else critical; a refused
    /// connection, a timeout or an answer that is not HTTP is critical too.
    Http {
        /// An absolute `http://` URL (plain HTTP only).
        url: String,
        /// The request method (`GET` by default).
        method: String,
    },
    /// A TCP connect to `host:port` (or `ip:port`): connected is passing, anything else
    /// critical.
    Tcp {
        /// `host:port` or `ip:port` (IPv6 in brackets: `[::1]:80`).
        address: String,
    },
    /// The instance reports its own status; no report within `ttl` turns it critical.
    /// Interval, timeout, jitter and thresholds do not apply (as in Consul).
    Ttl {
        /// How long a report stays valid.
        ttl: Duration,
    },
    /// A check the host implements.
    Custom(Arc<dyn CustomCheck>),
}

impl CheckKind {
    /// An HTTP `GET` of `url`.
    pub fn http(url: impl Into<String>) -> Self {
        CheckKind::Http {
            url: url.into(),
            method: "GET".into(),
        }
    }

    /// An HTTP request with another method (`HEAD`, `POST`, …).
    pub fn http_with_method(method: impl Into<String>, url: impl Into<String>) -> Self {
        CheckKind::Http {
            url: url.into(),
            method: method.into(),
        }
    }

    /// A TCP connect to `address` (`host:port`).
    pub fn tcp(address: impl Into<String>) -> Self {
        CheckKind::Tcp {
            address: address.into(),
        }
    }

    /// A TTL check.
    pub fn ttl(ttl: Duration) -> Self {
        CheckKind::Ttl { ttl }
    }

    /// A host-implemented check.
    pub fn custom(check: Arc<dyn CustomCheck>) -> Self {
        CheckKind::Custom(check)
    }

    /// `http`, `tcp`, `ttl` or `custom`.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Http { .. } => "http",
            CheckKind::Tcp { .. } => "tcp",
            CheckKind::Ttl { .. } => "ttl",
            CheckKind::Custom(_) => "custom",
        }
    }
}

impl fmt::Debug for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckKind::Http { url, method } => f
                .debug_struct("Http")
                .field("url", url)
                .field("method", method)
                .finish(),
            CheckKind::Tcp { address } => f.debug_struct("Tcp").field("address", address).finish(),
            CheckKind::Ttl { ttl } => f.debug_struct("Ttl").field("ttl", ttl).finish(),
            CheckKind::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// A check definition. Build it with [`CheckSpec::new`] and the setters; the scheduler
/// validates it ([`CheckSpec::validate`]) when it is added.
///
/// Defaults: interval 10 s, timeout 5 s, no jitter, thresholds 1/1 (every result counts
/// at once), never deregister.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckSpec {
    /// The check's id, unique within the scheduler.
    pub id: CheckId,
    /// The instance it checks.
    pub instance: InstanceKey,
    /// How it probes.
    pub kind: CheckKind,
    /// Time between runs (from one start to the next, plus jitter).
    pub interval: Duration,
    /// How long one run may take; must be shorter than the interval.
    pub timeout: Duration,
    /// A random delay in `0..=jitter` added to every interval (and before the first run),
    /// so thousands of checks do not run in step. At most the interval.
    pub jitter: Duration,
    /// Consecutive passing (or warning) results before the check turns passing (≥ 1).
    pub success_before_passing: u32,
    /// Consecutive critical results before the check turns critical (≥ 1).
    pub failures_before_critical: u32,
    /// Ask for the instance's deregistration once this check has been critical this long
    /// (counted from its addition for a check that never passed).
    pub deregister_critical_after: Option<Duration>,
}

impl CheckSpec {
    /// A check of `kind` on `instance`, with the defaults.
    pub fn new(id: CheckId, instance: InstanceKey, kind: CheckKind) -> Self {
        CheckSpec {
            id,
            instance,
            kind,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            jitter: Duration::ZERO,
            success_before_passing: 1,
            failures_before_critical: 1,
            deregister_critical_after: None,
        }
    }

    /// Sets the interval.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the jitter.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets both thresholds.
    pub fn thresholds(
        mut self,
        success_before_passing: u32,
        failures_before_critical: u32,
    ) -> Self {
        self.success_before_passing = success_before_passing;
        self.failures_before_critical = failures_before_critical;
        self
    }

    /// Sets the deregistration delay.
    pub fn deregister_critical_after(mut self, after: Duration) -> Self {
        self.deregister_critical_after = Some(after);
        self
    }

    /// Checks every field.
    ///
    /// Behavior: rejects with [`OrchestrateError::InvalidInput`] a zero interval or
    /// timeout, a timeout not shorter than the interval, a jitter larger than the interval,
    /// thresholds of 0, a zero TTL or deregistration delay, any period above
    /// [`MAX_CHECK_PERIOD`], an HTTP URL that does not parse, is not `http://` or has no
    /// host, an invalid HTTP method, and a TCP address that is not `host:port` with a
    /// port from 1 to 65535. For TTL checks, interval, timeout and jitter are not checked
    /// (they are not used).
    pub fn validate(&self) -> Result<(), OrchestrateError> {
        self.prepare().map(|_| ())
    }

    /// Validates and resolves the spec into what the scheduler runs.
    pub(crate) fn prepare(&self) -> Result<Prepared, OrchestrateError> {
        ThresholdState::new(self.success_before_passing, self.failures_before_critical)?;
        if let Some(after) = self.deregister_critical_after {
            check_period("deregister_critical_after", after)?;
        }
        let probe = match &self.kind {
            CheckKind::Ttl { ttl } => {
                check_period("ttl", *ttl)?;
                Probe::Ttl { ttl: *ttl }
            }
            other => {
                self.check_timing()?;
                match other {
                    CheckKind::Http { url, method } => Probe::Http {
                        url: parse_http_url(url)?,
                        method: parse_method(method)?,
                    },
                    CheckKind::Tcp { address } => Probe::Tcp(parse_tcp_target(address)?),
                    CheckKind::Custom(check) => Probe::Custom(check.clone()),
                    // Handled by the outer match.
                    CheckKind::Ttl { ttl } => Probe::Ttl { ttl: *ttl },
                }
            }
        };
        Ok(Prepared {
            id: self.id.clone(),
            instance: self.instance.clone(),
            probe,
            interval: self.interval,
            timeout: self.timeout,
            jitter: self.jitter,
            success_before_passing: self.success_before_passing,
            failures_before_critical: self.failures_before_critical,
            deregister_critical_after: self.deregister_critical_after,
        })
    }

    fn check_timing(&self) -> Result<(), OrchestrateError> {
        check_period("interval", self.interval)?;
        check_period("timeout", self.timeout)?;
        if self.timeout >= self.interval {
            return Err(OrchestrateError::invalid(
                "timeout",
                format!(
                    "{:?} is not shorter than the interval {:?}",
                    self.timeout, self.interval
                ),
            ));
        }
        if self.jitter > self.interval {
            return Err(OrchestrateError::invalid(
                "jitter",
                format!(
                    "{:?} is larger than the interval {:?}",
                    self.jitter, self.interval
                ),
            ));
        }
        Ok(())
    }
}

fn check_period(what: &'static str, d: Duration) -> Result<(), OrchestrateError> {
    if d.is_zero() {
        return Err(OrchestrateError::invalid(what, "must be longer than zero"));
    }
    if d > MAX_CHECK_PERIOD {
        return Err(OrchestrateError::invalid(
            what,
            format!("{d:?} is longer than the maximum of 7 days"),
        ));
    }
    Ok(())
}

fn shown(s: &str) -> String {
    s.chars().take(64).collect()
}

fn parse_http_url(s: &str) -> Result<Url, OrchestrateError> {
    let url = Url::parse(s).map_err(|e| {
        OrchestrateError::invalid(
            "HTTP check URL",
            format!("{:?} is not an absolute URL: {e}", shown(s)),
        )
    })?;
    if url.scheme() != "http" {
        return Err(OrchestrateError::invalid(
            "HTTP check URL",
            format!(
                "scheme {:?} is not supported (HTTP checks speak plain http://)",
                shown(url.scheme())
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(OrchestrateError::invalid("HTTP check URL", "has no host"));
    }
    Ok(url)
}

fn parse_method(s: &str) -> Result<reqwest::Method, OrchestrateError> {
    let upper = s.to_ascii_uppercase();
    if upper.is_empty() {
        return Err(OrchestrateError::invalid(
            "HTTP method",
            "must not be empty",
        ));
    }
    reqwest::Method::from_bytes(upper.as_bytes()).map_err(|_| {
        OrchestrateError::invalid(
            "HTTP method",
            format!("{:?} is not a valid method name", shown(s)),
        )
    })
}

/// Where a TCP check connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TcpTarget {
    /// An IP address and port.
    Addr(SocketAddr),
    /// A host name (resolved on every run) and port.
    Host(String, u16),
}

impl fmt::Display for TcpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpTarget::Addr(a) => write!(f, "{a}"),
            TcpTarget::Host(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

fn parse_tcp_target(s: &str) -> Result<TcpTarget, OrchestrateError> {
    let bad =
        |why: &str| OrchestrateError::invalid("TCP check address", format!("{:?} {why}", shown(s)));
    if let Ok(addr) = s.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(bad("has port 0"));
        }
        return Ok(TcpTarget::Addr(addr));
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("is not host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad("does not end in a port number from 1 to 65535"))?;
    if port == 0 {
        return Err(bad("has port 0"));
    }
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !valid_host {
        return Err(bad("does not start with a valid host name"));
    }
    Ok(TcpTarget::Host(host.to_owned(), port))
}

/// A validated check, as the scheduler runs it.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) id: CheckId,
    pub(crate) instance: InstanceKey,
    pub(crate) probe: Probe,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) jitter: Duration,
    pub(crate) success_before_passing: u32,
    pub(crate) failures_before_critical: u32,
    pub(crate) deregister_critical_after: Option<Duration>,
}

/// A validated probe.
pub(crate) enum Probe {
    Http { url: Url, method: reqwest::Method },
    Tcp(TcpTarget),
    Ttl { ttl: Duration },
    Custom(Arc<dyn CustomCheck>),
}

impl Probe {
    /// The kind's stable name, as [`CheckKind::name`] gives it.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Probe::Http { .. } => "http",
            Probe::Tcp(_) => "tcp",
            Probe::Ttl { .. } => "ttl",
            Probe::Custom(_) => "custom",
        }
    }
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Http { url, method } => write!(f, "Http({method} {url})"),
            Probe::Tcp(t) => write!(f, "Tcp({t})"),
            Probe::Ttl { ttl } => write!(f, "Ttl({ttl:?})"),
            Probe::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{InstanceId, Scope, ServiceName};

    fn spec(kind: CheckKind) -> CheckSpec {
        CheckSpec::new(
            CheckId::new("c1").unwrap(),
            InstanceKey::new(
                Scope::Platform,
                ServiceName::new("web").unwrap(),
                InstanceId::new("web-1").unwrap(),
            ),
            kind,
        )
        .interval(Duration::from_secs(1))
        .timeout(Duration::from_millis(500))
    }

    fn what(r: Result<(), OrchestrateError>) -> &'static str {
        match r.unwrap_err() {
            OrchestrateError::InvalidInput { what, .. } => what,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn tcp_addresses() {
        assert_eq!(
            parse_tcp_target("127.0.0.1:80").unwrap(),
            TcpTarget::Addr("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            parse_tcp_target("[::1]:443").unwrap(),
            TcpTarget::Addr("[::1]:443".parse().unwrap())
        );
        assert_eq!(
            parse_tcp_target("db.internal:5432").unwrap(),
            TcpTarget::Host("db.internal".into(), 5432)
        );
        for bad in [
            "",
            "localhost",
            ":80",
            "host:0",
            "host:65536",
            "host:http",
            "a b:1",
            "1.2.3.4:0",
        ] {
            assert!(parse_tcp_target(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn http_urls_and_methods() {
        assert!(
            spec(CheckKind::http("http://127.0.0.1:8080/health"))
                .validate()
                .is_ok()
        );
        assert!(
            spec(CheckKind::http_with_method("head", "http://h/"))
                .validate()
                .is_ok()
        );
        assert_eq!(
            what(spec(CheckKind::http("not a url")).validate()),
            "HTTP check URL"
        );
        assert_eq!(
            what(spec(CheckKind::http("ftp://h/x")).validate()),
            "HTTP check URL"
        );
        assert_eq!(
            what(spec(CheckKind::http("https://h/x")).validate()),
            "HTTP check URL"
        );
        assert_eq!(
            what(spec(CheckKind::http_with_method("GE T", "http://h/")).validate()),
            "HTTP method"
        );
    }

    #[test]
    fn ttl_ignores_timing_but_needs_a_ttl() {
        let s = spec(CheckKind::ttl(Duration::from_secs(5))).interval(Duration::ZERO);
        assert!(s.validate().is_ok());
        assert_eq!(what(spec(CheckKind::ttl(Duration::ZERO)).validate()), "ttl");
        assert_eq!(
            what(spec(CheckKind::ttl(MAX_CHECK_PERIOD * 2)).validate()),
            "ttl"
        );
    }

    #[test]
    fn periods_are_bounded() {
        let s = spec(CheckKind::tcp("h:1"));
        assert_eq!(
            what(
                s.clone()
                    .interval(MAX_CHECK_PERIOD + Duration::from_secs(1))
                    .validate()
            ),
            "interval"
        );
        assert_eq!(
            what(s.deregister_critical_after(Duration::ZERO).validate()),
            "deregister_critical_after"
        );
    }
}
