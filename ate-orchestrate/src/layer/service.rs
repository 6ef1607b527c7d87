//! [`BalanceService`]: one call, its attempts and their outcomes.

use super::LayerError;
use super::config::Config;
use super::future::ResponseFuture;
use super::picker::EndpointUrl;
use crate::OrchestrateError;
use crate::balance::PickGuard;
use crate::endpoint::EndpointId;
use ate_core::{Classify, ErrorKind};
use http::request::Parts;
use http::{Request, Response, Uri};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;
use url::{Position, Url};

/// Put in every response's extensions: which endpoint answered, after how many attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    endpoint: EndpointId,
    attempts: u32,
}

impl Served {
    /// The endpoint whose response this is.
    pub fn endpoint(&self) -> &EndpointId {
        &self.endpoint
    }

    /// Attempts made for the call, this one included (1 = no retry).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

/// The service [`BalanceLayer`](super::BalanceLayer) produces; see the
/// [module documentation](super).
pub struct BalanceService<S, T> {
    inner: S,
    config: Arc<Config<T>>,
}

impl<S, T> BalanceService<S, T> {
    pub(super) fn new(inner: S, config: Arc<Config<T>>) -> Self {
        BalanceService { inner, config }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, T> Clone for BalanceService<S, T> {
    fn clone(&self) -> Self {
        BalanceService {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<S: fmt::Debug, T> fmt::Debug for BalanceService<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalanceService")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, T, B, RB> Service<Request<B>> for BalanceService<S, T>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Clone + Send + 'static,
    RB: Send + 'static,
    T: EndpointUrl + Send + Sync + 'static,
{
    type Response = Response<RB>;
    type Error = LayerError<S::Error>;
    type Future = ResponseFuture<RB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|source| LayerError::Inner {
                endpoint: None,
                source,
            })
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // `self.inner` was polled ready: take it, and leave a fresh clone for the next call.
        let fresh = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, fresh);
        ResponseFuture::new(Box::pin(run(Arc::clone(&self.config), inner, request)))
    }
}

/// A failed attempt's kind, for [`RetryPolicy::should_retry`](crate::retry::RetryPolicy).
#[derive(Debug)]
struct FailedAttempt(ErrorKind);

impl fmt::Display for FailedAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attempt failed: {}", self.0)
    }
}

impl std::error::Error for FailedAttempt {}

impl Classify for FailedAttempt {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

type CallResult<RB, E> = Result<Response<RB>, LayerError<E>>;

/// How one attempt ended.
enum Attempt<RB, E> {
    /// A success, or a failure not worth another attempt (an unaddressable request).
    Final(CallResult<RB, E>),
    /// A failure of this kind (a failure response or an inner error).
    Failed(CallResult<RB, E>, ErrorKind),
}

async fn run<S, T, B, RB>(
    config: Arc<Config<T>>,
    mut inner: S,
    request: Request<B>,
) -> CallResult<RB, S::Error>
where
    S: Service<Request<B>, Response = Response<RB>>,
    B: Clone,
    T: EndpointUrl + 'static,
{
    let key: Option<Vec<u8>> = config
        .key_header
        .as_ref()
        .and_then(|h| request.headers().get(h))
        .map(|v| v.as_bytes().to_vec());
    let max_attempts = config.policy.max_attempts.max(1);
    let replayable = max_attempts > 1 && config.retry_methods.contains(request.method());
    config.budget.deposit();
    let (parts, body) = request.into_parts();

    if !replayable {
        let guard = config.picker.pick(key.as_deref()).await?;
        return match attempt(&config, &mut inner, guard, parts, body, 1).await {
            Attempt::Final(result) | Attempt::Failed(result, _) => result,
        };
    }

    let mut number = 1u32;
    // The previous failed attempt's result: what the call returns if no retry happens.
    let mut last: Option<CallResult<RB, S::Error>> = None;
    loop {
        if number > 1 {
            std::future::poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(|source| LayerError::Inner {
                    endpoint: None,
                    source,
                })?;
        }
        let guard = match config.picker.pick(key.as_deref()).await {
            Ok(guard) => guard,
            // Every endpoint refused on a retry: the real cause is the last attempt's.
            Err(e) => return last.unwrap_or_else(|| Err(e.into())),
        };
        let (result, kind) = match attempt(
            &config,
            &mut inner,
            guard,
            parts.clone(),
            body.clone(),
            number,
        )
        .await
        {
            Attempt::Final(result) => return result,
            Attempt::Failed(result, kind) => (result, kind),
        };
        if number >= max_attempts || !config.policy.should_retry(&FailedAttempt(kind)) {
            return result;
        }
        if !config.budget.try_withdraw() {
            tracing::debug!(attempt = number, %kind, "retry budget exhausted; not retrying");
            return result;
        }
        tracing::debug!(attempt = number, %kind, "attempt failed; retrying on a new pick");
        last = Some(result);
        config
            .policy
            .sleeper
            .sleep(config.policy.backoff(number))
            .await;
        number += 1;
    }
}

/// One attempt against `guard`'s endpoint; completes the guard with the outcome.
async fn attempt<S, T, B, RB>(
    config: &Config<T>,
    inner: &mut S,
    guard: PickGuard<T>,
    mut parts: Parts,
    body: B,
    number: u32,
) -> Attempt<RB, S::Error>
where
    S: Service<Request<B>, Response = Response<RB>>,
    T: EndpointUrl + 'static,
{
    parts.uri = match rewrite(&parts.uri, guard.value().base_url(), guard.id()) {
        Ok(uri) => uri,
        // Not the endpoint's fault: the guard is dropped (cancelled), nothing recorded.
        Err(e) => return Attempt::Final(Err(e.into())),
    };
    let endpoint = guard.id().clone();
    match inner.call(Request::from_parts(parts, body)).await {
        Ok(mut response) => {
            let verdict = (config.classifier)(response.status());
            response.extensions_mut().insert(Served {
                endpoint,
                attempts: number,
            });
            match verdict {
                None => {
                    guard.success();
                    Attempt::Final(Ok(response))
                }
                Some(kind) => {
                    guard.failure(kind);
                    Attempt::Failed(Ok(response), kind)
                }
            }
        }
        Err(source) => {
            guard.failure(ErrorKind::Unavailable);
            Attempt::Failed(
                Err(LayerError::Inner {
                    endpoint: Some(endpoint),
                    source,
                }),
                ErrorKind::Unavailable,
            )
        }
    }
}

/// `uri` sent to `base`: its scheme and authority, its path prefixed to the request's.
fn rewrite(uri: &Uri, base: &Url, endpoint: &EndpointId) -> Result<Uri, OrchestrateError> {
    let scheme = base.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(OrchestrateError::invalid(
            "endpoint URL",
            format!(
                "endpoint {endpoint} has scheme {scheme}; the HTTP layer calls http or https endpoints"
            ),
        ));
    }
    let authority = &base[Position::BeforeHost..Position::AfterPort];
    let prefix = base.path().trim_end_matches('/');
    let path = uri.path();
    let mut path_and_query = String::with_capacity(prefix.len() + path.len() + 16);
    path_and_query.push_str(prefix);
    if !path.starts_with('/') {
        path_and_query.push('/');
    }
    path_and_query.push_str(path);
    if let Some(query) = uri.query() {
        path_and_query.push('?');
        path_and_query.push_str(query);
    }
    Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| {
            OrchestrateError::invalid(
                "request URI",
                format!("cannot address {uri} to endpoint {endpoint}: {e}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn rewrite_keeps_path_and_query_and_adds_the_prefix() {
        let id = EndpointId::new("a");
        let cases = [
            (
                "/users?page=2",
                "http://10.0.0.1:8080",
                "http://10.0.0.1:8080/users?page=2",
            ),
            (
                "http://billing/users",
                "http://10.0.0.1:8080/",
                "http://10.0.0.1:8080/users",
            ),
            (
                "/users",
                "https://api.example.com/v1/",
                "https://api.example.com/v1/users",
            ),
            ("/", "http://[::1]:9000/base", "http://[::1]:9000/base/"),
            ("/x", "http://h:80", "http://h/x"),
        ];
        for (uri, base, want) in cases {
            let got = rewrite(&uri.parse().unwrap(), &url(base), &id).unwrap();
            assert_eq!(got.to_string(), want, "{uri} to {base}");
        }
    }

    #[test]
    fn rewrite_refuses_non_http_endpoints() {
        let err = rewrite(
            &"/x".parse().unwrap(),
            &url("tcp://10.0.0.1:5432"),
            &EndpointId::new("db-1"),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("db-1"), "{err}");
    }
}
