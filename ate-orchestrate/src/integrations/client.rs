//! [`IntegrationClient`]: calls a tenant's endpoints with their authentication, probes
//! them, and keeps per-endpoint call metrics.
//!
//! * **Auth**: bearer, basic, API key header, OAuth 2.0 client credentials (the token is
//!   fetched with HTTP basic client authentication, RFC 6749 §2.3.1, and cached until 30 s
//!   before it expires; a 401 drops it), and HMAC-SHA256 body signatures
//!   (`t=<unix seconds>,v1=<hex HMAC of "<t>.<body>">`).
//! * **Errors** ([`CallError`]): a transport failure or timeout, or an HTTP status that is
//!   not 2xx. [`CallError::retryable`] says what a retry policy should do: transport
//!   failures, 408, 429 and 5xx are retryable, other statuses are not.
//! * **Metrics**: calls, errors and latency percentiles per endpoint since the client
//!   started ([`IntegrationClient::stats`]).
//!
//! Secrets never appear in errors, logs or `Debug` output.

use super::egress::{Egress, FilteringResolver, check_literal};
use super::spec::EndpointAuth;
use super::store::{INTEGRATIONS_CALL, INTEGRATIONS_READ, ResolvedEndpoint, SqlIntegrations};
use crate::OrchestrateError;
use crate::metrics::histogram::{DenseCounts, SparseCounts, bucket_of};
use ate_core::keys::SecretBytes;
use ate_core::{Principal, TenantId};
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Largest response body read (bytes); a larger one is cut there.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// What a call sends besides the endpoint's own settings.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct CallRequest {
    /// A JSON body (sent as `application/json`), if any.
    pub body: Option<Value>,
}

impl CallRequest {
    /// A call with `body`.
    pub fn json(body: Value) -> Self {
        CallRequest { body: Some(body) }
    }
}

/// A call's answer (2xx).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CallResponse {
    /// The HTTP status.
    pub status: u16,
    /// The body: parsed JSON when it is JSON, else a string (empty for none).
    pub body: Value,
    /// How long the call took.
    pub latency: Duration,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The endpoint answered with a status that is not 2xx.
    #[error("endpoint {endpoint} answered HTTP {status}")]
    Status {
        /// The endpoint.
        endpoint: String,
        /// The status.
        status: u16,
        /// The start of the body, for the log (at most 1 KiB).
        body: String,
    },
    /// No answer: connection failure, timeout, TLS, or the OAuth 2.0 token could not be had.
    #[error("endpoint {endpoint} could not be called: {reason}")]
    Transport {
        /// The endpoint.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
}

impl CallError {
    /// Whether trying again later may succeed: transport failures, 408, 429, 5xx.
    pub fn retryable(&self) -> bool {
        match self {
            CallError::Transport { .. } => true,
            CallError::Status { status, .. } => {
                matches!(status, 408 | 429) || (500..=599).contains(status)
            }
        }
    }
}

/// A probe's report: can the endpoint be reached, what does it answer, how fast.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeReport {
    /// An HTTP answer came (whatever its status).
    pub reachable: bool,
    /// The status, if one came.
    pub status: Option<u16>,
    /// How long it took.
    pub latency: Duration,
    /// What went wrong, if no answer came.
    pub error: Option<String>,
}

/// An endpoint's call metrics since the client started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed ([`CallError`]).
    pub errors: u64,
    /// Median latency (within the histogram's relative error).
    pub p50: Option<Duration>,
    /// 95th percentile latency.
    pub p95: Option<Duration>,
    /// 99th percentile latency.
    pub p99: Option<Duration>,
}

#[derive(Default)]
struct Tally {
    calls: u64,
    errors: u64,
    latencies: SparseCounts,
}

/// A cached OAuth 2.0 access token.
struct CachedToken {
    token: SecretBytes,
    until: Instant,
}

/// Calls and probes a tenant's endpoints; cheap to clone.
#[derive(Clone)]
pub struct IntegrationClient {
    store: SqlIntegrations,
    egress: Egress,
    http: reqwest::Client,
    tallies: Arc<Mutex<HashMap<(TenantId, String), Tally>>>,
    tokens: Arc<Mutex<HashMap<TokenKey, CachedToken>>>,
}

/// Which endpoint, at which revision, a cached token is for.
type TokenKey = (TenantId, String, i64);

impl std::fmt::Debug for IntegrationClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationClient").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn transport(endpoint: &str, reason: impl Into<String>) -> CallError {
    CallError::Transport {
        endpoint: endpoint.to_owned(),
        reason: reason.into(),
    }
}

impl IntegrationClient {
    /// A client over `store` that connects to public addresses only
    /// ([`Egress::PublicOnly`]). `Unavailable` if the HTTP client cannot be built (TLS
    /// initialisation).
    pub fn new(store: SqlIntegrations) -> Result<Self, OrchestrateError> {
        Self::with_egress(store, Egress::default())
    }

    /// A client over `store` whose connections `egress` allows.
    pub fn with_egress(store: SqlIntegrations, egress: Egress) -> Result<Self, OrchestrateError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("ate-integrations/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(FilteringResolver { egress }));
        if egress == Egress::PublicOnly {
            // A proxy resolves names itself, out of the resolver's reach.
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| {
            OrchestrateError::Core(ate_core::CoreError::Unavailable {
                message: format!("building the HTTP client: {e}"),
                source: None,
            })
        })?;
        Ok(IntegrationClient {
            store,
            egress,
            http,
            tallies: Arc::default(),
            tokens: Arc::default(),
        })
    }

    /// The store.
    pub fn store(&self) -> &SqlIntegrations {
        &self.store
    }

    /// Calls endpoint `name` of `tenant` as `actor` (needs `integrations:call`). The outer
    /// error is about the endpoint itself (`NotFound`, permissions, a secret that no longer
    /// opens); the inner one about the call.
    pub async fn call(
        &self,
        actor: &Principal,
        tenant: TenantId,
        name: &str,
        request: &CallRequest,
    ) -> Result<Result<CallResponse, CallError>, OrchestrateError> {
        actor.require(tenant, &INTEGRATIONS_CALL)?;
        self.call_unchecked(tenant, name, request).await
    }

    /// [`call`](Self::call) without a principal, for the engine's built-in step (the run
    /// was submitted by someone allowed to run workflows in the tenant).
    pub async fn call_unchecked(
        &self,
        tenant: TenantId,
        name: &str,
        request: &CallRequest,
    ) -> Result<Result<CallResponse, CallError>, OrchestrateError> {
        let endpoint = self.store.resolve(tenant, name).await?;
        let started = Instant::now();
        let result = self.send(&endpoint, request.body.as_ref(), false).await;
        let latency = started.elapsed();
        let mut tallies = lock(&self.tallies);
        let tally = tallies.entry((tenant, name.to_owned())).or_default();
        tally.calls += 1;
        tally.errors += u64::from(result.is_err());
        tally.latencies.add(bucket_of(latency));
        Ok(result.map(|(status, body)| CallResponse {
            status,
            body,
            latency,
        }))
    }

    /// Probes endpoint `name`: a `HEAD` request with the endpoint's authentication, no
    /// body (so nothing is triggered), reporting whether any HTTP answer came, its status
    /// and the latency. Needs `integrations:call`. Not counted in the call metrics.
    pub async fn probe(
        &self,
        actor: &Principal,
        tenant: TenantId,
        name: &str,
    ) -> Result<ProbeReport, OrchestrateError> {
        actor.require(tenant, &INTEGRATIONS_CALL)?;
        let endpoint = self.store.resolve(tenant, name).await?;
        let started = Instant::now();
        let result = self.send(&endpoint, None, true).await;
        let latency = started.elapsed();
        Ok(match result {
            Ok((status, _)) => ProbeReport {
                reachable: true,
                status: Some(status),
                latency,
                error: None,
            },
            Err(CallError::Status { status, .. }) => ProbeReport {
                reachable: true,
                status: Some(status),
                latency,
                error: None,
            },
            Err(CallError::Transport { reason, .. }) => ProbeReport {
                reachable: false,
                status: None,
                latency,
                error: Some(reason),
            },
        })
    }

    /// Endpoint `name`'s call metrics (zero before its first call). Needs
    /// `integrations:read`; `NotFound` for an unknown endpoint.
    pub async fn stats(
        &self,
        actor: &Principal,
        tenant: TenantId,
        name: &str,
    ) -> Result<EndpointStats, OrchestrateError> {
        actor.require(tenant, &INTEGRATIONS_READ)?;
        self.store.get(actor, tenant, name).await?;
        let tallies = lock(&self.tallies);
        let Some(tally) = tallies.get(&(tenant, name.to_owned())) else {
            return Ok(EndpointStats::default());
        };
        let mut dense = DenseCounts::new();
        tally.latencies.merge_into(&mut dense);
        Ok(EndpointStats {
            calls: tally.calls,
            errors: tally.errors,
            p50: dense.quantile(0.50, tally.calls),
            p95: dense.quantile(0.95, tally.calls),
            p99: dense.quantile(0.99, tally.calls),
        })
    }

    /// Sends one request (a `HEAD` probe, or a call with `body`), with auth; the status
    /// and body of a 2xx answer.
    async fn send(
        &self,
        resolved: &ResolvedEndpoint,
        body: Option<&Value>,
        probe: bool,
    ) -> Result<(u16, Value), CallError> {
        let endpoint = &resolved.endpoint;
        let name = endpoint.name.as_str();
        let payload: Vec<u8> = match body {
            Some(v) => serde_json::to_vec(v).map_err(|e| transport(name, e.to_string()))?,
            None => Vec::new(),
        };
        let method = if probe {
            reqwest::Method::HEAD
        } else {
            reqwest::Method::from_bytes(endpoint.method.as_bytes())
                .map_err(|_| transport(name, "bad method"))?
        };
        check_literal(self.egress, &endpoint.url).map_err(|e| transport(name, e))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), endpoint.url.as_str())
                .timeout(endpoint.timeout);
            for (k, v) in &endpoint.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            if body.is_some() {
                req = req
                    .header("content-type", "application/json")
                    .body(payload.clone());
            }
            req = self.authenticate(req, resolved, &payload).await?;
            let response = req
                .send()
                .await
                .map_err(|e| transport(name, describe(&e)))?;
            let status = response.status().as_u16();
            // An OAuth 2.0 token the server no longer takes: drop it and ask once more.
            if status == 401
                && attempt == 1
                && matches!(resolved.auth, EndpointAuth::OAuth2ClientCredentials { .. })
            {
                lock(&self.tokens).remove(&token_key(resolved));
                continue;
            }
            let json = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("json"));
            let bytes = read_capped(response)
                .await
                .map_err(|e| transport(name, describe(&e)))?;
            if !(200..=299).contains(&status) {
                let text = String::from_utf8_lossy(&bytes);
                return Err(CallError::Status {
                    endpoint: name.to_owned(),
                    status,
                    body: text.chars().take(1024).collect(),
                });
            }
            let value = if bytes.is_empty() {
                Value::String(String::new())
            } else if json {
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
            } else {
                Value::String(String::from_utf8_lossy(&bytes).into_owned())
            };
            return Ok((status, value));
        }
    }

    async fn authenticate(
        &self,
        req: reqwest::RequestBuilder,
        resolved: &ResolvedEndpoint,
        payload: &[u8],
    ) -> Result<reqwest::RequestBuilder, CallError> {
        let name = resolved.endpoint.name.as_str();
        let header_value = |bytes: Vec<u8>| {
            let mut v = reqwest::header::HeaderValue::from_bytes(&bytes)
                .map_err(|_| transport(name, "the stored secret is not a valid header value"))?;
            v.set_sensitive(true);
            Ok::<_, CallError>(v)
        };
        Ok(match &resolved.auth {
            EndpointAuth::None => req,
            EndpointAuth::Bearer { token } => {
                let mut v = b"Bearer ".to_vec();
                v.extend_from_slice(token.expose_secret());
                req.header("authorization", header_value(v)?)
            }
            EndpointAuth::Basic { username, password } => {
                req.header("authorization", header_value(basic(username, password))?)
            }
            EndpointAuth::ApiKey { header, key } => {
                req.header(header.as_str(), header_value(key.expose_secret().to_vec())?)
            }
            EndpointAuth::HmacSha256 { header, key } => {
                let t = chrono::Utc::now().timestamp();
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.expose_secret())
                    .map_err(|_| transport(name, "bad HMAC key"))?;
                mac.update(format!("{t}.").as_bytes());
                mac.update(payload);
                let sig = hex::encode(mac.finalize().into_bytes());
                req.header(header.as_str(), format!("t={t},v1={sig}"))
            }
            EndpointAuth::OAuth2ClientCredentials { .. } => {
                let token = self.oauth2_token(resolved).await?;
                let mut v = b"Bearer ".to_vec();
                v.extend_from_slice(token.expose_secret());
                req.header("authorization", header_value(v)?)
            }
        })
    }

    /// The endpoint's OAuth 2.0 access token: cached, or fetched now.
    async fn oauth2_token(&self, resolved: &ResolvedEndpoint) -> Result<SecretBytes, CallError> {
        let name = resolved.endpoint.name.as_str();
        let key = token_key(resolved);
        if let Some(cached) = lock(&self.tokens).get(&key)
            && cached.until > Instant::now()
        {
            return Ok(cached.token.clone());
        }
        let EndpointAuth::OAuth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scope,
        } = &resolved.auth
        else {
            return Err(transport(name, "not an OAuth 2.0 endpoint"));
        };
        let mut form = String::from("grant_type=client_credentials");
        if let Some(scope) = scope {
            form.push_str("&scope=");
            form.push_str(&form_encode(scope));
        }
        let mut auth =
            reqwest::header::HeaderValue::from_bytes(&basic_form(client_id, client_secret))
                .map_err(|_| transport(name, "the client secret is not a valid header value"))?;
        auth.set_sensitive(true);
        check_literal(self.egress, token_url)
            .map_err(|e| transport(name, format!("token request: {e}")))?;
        let response = self
            .http
            .post(token_url.as_str())
            .timeout(resolved.endpoint.timeout)
            .header("authorization", auth)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form)
            .send()
            .await
            .map_err(|e| transport(name, format!("token request: {}", describe(&e))))?;
        let status = response.status().as_u16();
        let bytes = read_capped(response)
            .await
            .map_err(|e| transport(name, format!("token request: {}", describe(&e))))?;
        if !(200..=299).contains(&status) {
            return Err(transport(
                name,
                format!("the token endpoint answered HTTP {status}"),
            ));
        }
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|_| transport(name, "the token endpoint's answer is not JSON"))?;
        let token = v["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| transport(name, "the token endpoint's answer has no access_token"))?;
        let lifetime = v["expires_in"].as_u64().unwrap_or(300);
        let token = SecretBytes::new(token.as_bytes().to_vec());
        lock(&self.tokens).insert(
            key,
            CachedToken {
                token: token.clone(),
                until: Instant::now() + Duration::from_secs(lifetime.saturating_sub(30)),
            },
        );
        Ok(token)
    }
}

/// Tokens are cached per endpoint revision: changing the endpoint drops its token.
fn token_key(resolved: &ResolvedEndpoint) -> TokenKey {
    (
        resolved.endpoint.tenant,
        resolved.endpoint.name.to_string(),
        resolved.endpoint.revision,
    )
}

/// `Basic base64(user:password)`.
fn basic(user: &str, password: &SecretBytes) -> Vec<u8> {
    let mut raw = user.as_bytes().to_vec();
    raw.push(b':');
    raw.extend_from_slice(password.expose_secret());
    let mut out = b"Basic ".to_vec();
    out.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(&raw)
            .as_bytes(),
    );
    raw.iter_mut().for_each(|b| *b = 0);
    out
}

/// RFC 6749 §2.3.1: client id and secret form-encoded, then basic.
fn basic_form(client_id: &str, secret: &SecretBytes) -> Vec<u8> {
    let id = form_encode(client_id);
    let secret = SecretBytes::new(form_encode_bytes(secret.expose_secret()).into_bytes());
    basic(&id, &secret)
}

fn form_encode(s: &str) -> String {
    form_encode_bytes(s.as_bytes())
}

fn form_encode_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The body, at most [`MAX_RESPONSE_BYTES`].
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_RESPONSE_BYTES.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= MAX_RESPONSE_BYTES {
            break;
        }
    }
    Ok(out)
}

/// A failed request in a few words, from its kind (never the URL or a header).
fn describe(e: &reqwest::Error) -> String {
    if let Some(refused) = super::egress::refusal(e) {
        refused
    } else if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else if e.is_body() || e.is_decode() {
        "reading the answer failed".into()
    } else {
        "the request failed".into()
    }
}
