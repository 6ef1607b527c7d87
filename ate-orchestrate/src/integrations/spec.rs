//! What a tenant registers: an external HTTP endpoint and how to authenticate to it
//! ([`EndpointSpec`], [`EndpointAuth`]), checked by [`EndpointSpec::validate`].
//!
//! Secrets (tokens, passwords, API keys, client secrets, HMAC keys) are [`SecretBytes`]:
//! zeroized on drop, redacted in `Debug`, sealed under the tenant's keys when stored and
//! never returned by reads.

use crate::OrchestrateError;
use crate::name::name_type;
use ate_core::keys::SecretBytes;
use std::collections::BTreeMap;
use std::time::Duration;

name_type!(
    /// An endpoint's name, unique within its tenant (`crm`, `slack.alerts`).
    EndpointName,
    "endpoint name"
);

/// Longest endpoint URL (bytes).
pub const MAX_URL_LEN: usize = 2048;
/// Most extra headers on an endpoint.
pub const MAX_HEADERS: usize = 32;
/// Longest secret (bytes).
pub const MAX_SECRET_LEN: usize = 4096;
/// The longest call timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// The default call timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How calls authenticate.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum EndpointAuth {
    /// No authentication.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: SecretBytes,
    },
    /// HTTP basic authentication.
    Basic {
        /// The user name (not secret).
        username: String,
        /// The password.
        password: SecretBytes,
    },
    /// An API key in a header of the endpoint's choosing.
    ApiKey {
        /// The header (`X-Api-Key`).
        header: String,
        /// The key.
        key: SecretBytes,
    },
    /// OAuth 2.0 client credentials: a token fetched from `token_url` (and cached until
    /// shortly before it expires), sent as a bearer token.
    OAuth2ClientCredentials {
        /// The authorization server's token endpoint.
        token_url: String,
        /// The client id (not secret).
        client_id: String,
        /// The client secret.
        client_secret: SecretBytes,
        /// The scope to ask for, if any.
        scope: Option<String>,
    },
    /// The body signed with HMAC-SHA256: header `<header>: t=<unix seconds>,v1=<hex of
    /// HMAC(key, "<t>.<body>")>` (the scheme Stripe and Slack use), so the receiver can
    /// check the sender and reject replays.
    HmacSha256 {
        /// The header (`X-Ate-Signature`).
        header: String,
        /// The shared key.
        key: SecretBytes,
    },
}

impl EndpointAuth {
    /// Its kind, as stored and shown: `none`, `bearer`, `basic`, `api_key`,
    /// `oauth2_client_credentials`, `hmac_sha256`.
    pub fn kind(&self) -> &'static str {
        match self {
            EndpointAuth::None => "none",
            EndpointAuth::Bearer { .. } => "bearer",
            EndpointAuth::Basic { .. } => "basic",
            EndpointAuth::ApiKey { .. } => "api_key",
            EndpointAuth::OAuth2ClientCredentials { .. } => "oauth2_client_credentials",
            EndpointAuth::HmacSha256 { .. } => "hmac_sha256",
        }
    }

    /// Its settings that are not secret (shown on reads).
    pub fn public_params(&self) -> BTreeMap<String, String> {
        let mut p = BTreeMap::new();
        match self {
            EndpointAuth::Basic { username, .. } => {
                p.insert("username".into(), username.clone());
            }
            EndpointAuth::ApiKey { header, .. } | EndpointAuth::HmacSha256 { header, .. } => {
                p.insert("header".into(), header.clone());
            }
            EndpointAuth::OAuth2ClientCredentials {
                token_url,
                client_id,
                scope,
                ..
            } => {
                p.insert("token_url".into(), token_url.clone());
                p.insert("client_id".into(), client_id.clone());
                if let Some(scope) = scope {
                    p.insert("scope".into(), scope.clone());
                }
            }
            EndpointAuth::None | EndpointAuth::Bearer { .. } => {}
        }
        p
    }

    /// Its one secret, if it has one.
    pub(crate) fn secret(&self) -> Option<&SecretBytes> {
        match self {
            EndpointAuth::None => None,
            EndpointAuth::Bearer { token } => Some(token),
            EndpointAuth::Basic { password, .. } => Some(password),
            EndpointAuth::ApiKey { key, .. } | EndpointAuth::HmacSha256 { key, .. } => Some(key),
            EndpointAuth::OAuth2ClientCredentials { client_secret, .. } => Some(client_secret),
        }
    }

    /// Rebuilds the auth from its stored kind, public settings and (opened) secret.
    pub(crate) fn from_parts(
        kind: &str,
        params: &BTreeMap<String, String>,
        secret: Option<SecretBytes>,
    ) -> Result<Self, OrchestrateError> {
        let param = |k: &str| params.get(k).cloned().unwrap_or_default();
        let secret = || {
            secret.clone().ok_or_else(|| {
                OrchestrateError::Core(ate_core::CoreError::Integrity(format!(
                    "endpoint auth {kind} has no stored secret"
                )))
            })
        };
        Ok(match kind {
            "none" => EndpointAuth::None,
            "bearer" => EndpointAuth::Bearer { token: secret()? },
            "basic" => EndpointAuth::Basic {
                username: param("username"),
                password: secret()?,
            },
            "api_key" => EndpointAuth::ApiKey {
                header: param("header"),
                key: secret()?,
            },
            "oauth2_client_credentials" => EndpointAuth::OAuth2ClientCredentials {
                token_url: param("token_url"),
                client_id: param("client_id"),
                client_secret: secret()?,
                scope: params.get("scope").cloned(),
            },
            "hmac_sha256" => EndpointAuth::HmacSha256 {
                header: param("header"),
                key: secret()?,
            },
            other => {
                return Err(OrchestrateError::Core(ate_core::CoreError::Integrity(
                    format!("unknown stored endpoint auth {other:?}"),
                )));
            }
        })
    }
}

/// An external HTTP endpoint to register for a tenant.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EndpointSpec {
    /// Its name.
    pub name: String,
    /// The URL calls go to (`http` or `https`; no credentials, no fragment).
    pub url: String,
    /// The HTTP method of calls (default `POST`).
    pub method: String,
    /// Extra headers sent with every call (not secret: shown on reads).
    pub headers: BTreeMap<String, String>,
    /// How calls authenticate.
    pub auth: EndpointAuth,
    /// How long a call may take (default 30 s, at most 5 min).
    pub timeout: Duration,
}

impl EndpointSpec {
    /// `POST` to `url`, no authentication, 30 s timeout.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        EndpointSpec {
            name: name.into(),
            url: url.into(),
            method: "POST".into(),
            headers: BTreeMap::new(),
            auth: EndpointAuth::None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets [`EndpointSpec::method`].
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = method.into();
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sets [`EndpointSpec::auth`].
    pub fn auth(mut self, auth: EndpointAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Sets [`EndpointSpec::timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks everything; `InvalidInput` naming the problem.
    pub fn validate(&self) -> Result<EndpointName, OrchestrateError> {
        let name = EndpointName::new(self.name.as_str())?;
        check_url("endpoint url", &self.url)?;
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&self.method.as_str()) {
            return Err(OrchestrateError::invalid(
                "endpoint method",
                format!(
                    "{:?} is not one of GET, POST, PUT, PATCH, DELETE",
                    self.method
                ),
            ));
        }
        if self.headers.len() > MAX_HEADERS {
            return Err(OrchestrateError::invalid(
                "endpoint headers",
                format!(
                    "{} headers, over the limit of {MAX_HEADERS}",
                    self.headers.len()
                ),
            ));
        }
        for (k, v) in &self.headers {
            check_header(k, v)?;
            if is_credential_header(k) {
                return Err(OrchestrateError::invalid(
                    "endpoint headers",
                    format!(
                        "{k} carries credentials: give them as the endpoint's auth, which keeps them sealed"
                    ),
                ));
            }
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(OrchestrateError::invalid(
                "endpoint timeout",
                format!("must be positive and at most {} s", MAX_TIMEOUT.as_secs()),
            ));
        }
        if let Some(secret) = self.auth.secret()
            && (secret.is_empty() || secret.len() > MAX_SECRET_LEN)
        {
            return Err(OrchestrateError::invalid(
                "endpoint secret",
                format!("must have 1 to {MAX_SECRET_LEN} bytes"),
            ));
        }
        match &self.auth {
            EndpointAuth::Basic { username, .. } => {
                if username.is_empty() || username.contains(':') || username.len() > 256 {
                    return Err(OrchestrateError::invalid(
                        "basic auth user name",
                        "must have 1 to 256 bytes and no ':'",
                    ));
                }
            }
            EndpointAuth::ApiKey { header, .. } | EndpointAuth::HmacSha256 { header, .. } => {
                check_header(header, "x")?;
            }
            EndpointAuth::OAuth2ClientCredentials {
                token_url,
                client_id,
                scope,
                ..
            } => {
                check_url("oauth2 token url", token_url)?;
                if client_id.is_empty() || client_id.len() > 256 {
                    return Err(OrchestrateError::invalid(
                        "oauth2 client id",
                        "must have 1 to 256 bytes",
                    ));
                }
                if scope
                    .as_ref()
                    .is_some_and(|s| s.len() > 1024 || s.chars().any(char::is_control))
                {
                    return Err(OrchestrateError::invalid(
                        "oauth2 scope",
                        "must have at most 1,024 bytes and no control characters",
                    ));
                }
            }
            EndpointAuth::None | EndpointAuth::Bearer { .. } => {}
        }
        Ok(name)
    }
}

fn is_credential_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "authorization" || n == "proxy-authorization" || n == "cookie"
}

fn check_url(what: &'static str, url: &str) -> Result<(), OrchestrateError> {
    if url.len() > MAX_URL_LEN {
        return Err(OrchestrateError::invalid(
            what,
            format!("{} bytes, over the limit of {MAX_URL_LEN}", url.len()),
        ));
    }
    let parsed = url::Url::parse(url)
        .map_err(|e| OrchestrateError::invalid(what, format!("{url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(OrchestrateError::invalid(
            what,
            format!("{url:?} must be http or https"),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(OrchestrateError::invalid(
            what,
            format!("{url:?} has no host"),
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(OrchestrateError::invalid(
            what,
            "must not carry credentials: give them as the endpoint's auth",
        ));
    }
    if parsed.fragment().is_some() {
        return Err(OrchestrateError::invalid(what, "must not have a fragment"));
    }
    Ok(())
}

fn check_header(name: &str, value: &str) -> Result<(), OrchestrateError> {
    http_header_ok(name, value).map_err(|reason| {
        OrchestrateError::invalid("endpoint header", format!("{name:?}: {reason}"))
    })
}

fn http_header_ok(name: &str, value: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 128 {
        return Err("names have 1 to 128 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err("not a valid header name");
    }
    if value.len() > 4096 || value.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return Err("values have at most 4,096 bytes and no control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretBytes {
        SecretBytes::new(s.as_bytes().to_vec())
    }

    #[test]
    fn good_specs_validate_and_bad_ones_are_named() {
        let ok = EndpointSpec::new("crm", "https://crm.example/hooks?x=1")
            .header("X-Team", "data")
            .auth(EndpointAuth::Bearer { token: secret("t") });
        assert_eq!(ok.validate().unwrap().as_str(), "crm");
        let cases: Vec<(EndpointSpec, &str)> = vec![
            (
                EndpointSpec::new("Bad Name", "https://x.example"),
                "endpoint name",
            ),
            (EndpointSpec::new("a", "ftp://x.example"), "http or https"),
            (EndpointSpec::new("a", "not a url"), "not a URL"),
            (
                EndpointSpec::new("a", "https://u:p@x.example"),
                "credentials",
            ),
            (
                EndpointSpec::new("a", "https://x.example/#frag"),
                "fragment",
            ),
            (
                EndpointSpec::new("a", format!("https://x.example/{}", "a".repeat(3000))),
                "limit",
            ),
            (
                EndpointSpec::new("a", "https://x.example").method("TRACE"),
                "TRACE",
            ),
            (
                EndpointSpec::new("a", "https://x.example").header("Authorization", "Bearer x"),
                "credentials",
            ),
            (
                EndpointSpec::new("a", "https://x.example").header("Bad Header", "x"),
                "header name",
            ),
            (
                EndpointSpec::new("a", "https://x.example").header("X-A", "a\nb"),
                "control",
            ),
            (
                EndpointSpec::new("a", "https://x.example").timeout(Duration::ZERO),
                "timeout",
            ),
            (
                EndpointSpec::new("a", "https://x.example").timeout(Duration::from_secs(301)),
                "timeout",
            ),
            (
                EndpointSpec::new("a", "https://x.example")
                    .auth(EndpointAuth::Bearer { token: secret("") }),
                "secret",
            ),
            (
                EndpointSpec::new("a", "https://x.example").auth(EndpointAuth::Basic {
                    username: "a:b".into(),
                    password: secret("p"),
                }),
                "user name",
            ),
            (
                EndpointSpec::new("a", "https://x.example").auth(EndpointAuth::ApiKey {
                    header: "bad header".into(),
                    key: secret("k"),
                }),
                "header",
            ),
            (
                EndpointSpec::new("a", "https://x.example").auth(
                    EndpointAuth::OAuth2ClientCredentials {
                        token_url: "nope".into(),
                        client_id: "c".into(),
                        client_secret: secret("s"),
                        scope: None,
                    },
                ),
                "token url",
            ),
            (
                EndpointSpec::new("a", "https://x.example").auth(
                    EndpointAuth::OAuth2ClientCredentials {
                        token_url: "https://auth.example/token".into(),
                        client_id: String::new(),
                        client_secret: secret("s"),
                        scope: None,
                    },
                ),
                "client id",
            ),
        ];
        for (spec, says) in cases {
            let e = spec.validate().unwrap_err();
            assert!(e.to_string().contains(says), "{spec:?}: {e}");
        }
        let many = (0..=MAX_HEADERS).fold(EndpointSpec::new("a", "https://x.example"), |s, i| {
            s.header(format!("X-{i}"), "v")
        });
        assert!(many.validate().unwrap_err().to_string().contains("headers"));
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let spec = EndpointSpec::new("crm", "https://crm.example").auth(
            EndpointAuth::OAuth2ClientCredentials {
                token_url: "https://auth.example/token".into(),
                client_id: "ate".into(),
                client_secret: secret("hunter2-secret"),
                scope: Some("write".into()),
            },
        );
        let shown = format!("{spec:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(spec.auth.public_params()["client_id"], "ate");
        assert!(
            !spec
                .auth
                .public_params()
                .values()
                .any(|v| v.contains("hunter2"))
        );
    }
}
