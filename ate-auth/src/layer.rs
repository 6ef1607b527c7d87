//! A tower [`Layer`] that authenticates HTTP requests with ATE access tokens (feature
//! `tower`).
//!
//! [`AuthLayer`] wraps any `Service<http::Request<B>>` (an axum router, a tonic server, a
//! hyper service) in an [`AuthService`] that reads `Authorization: Bearer <token>`, verifies
//! the token with [`Auth::verify`] and puts the resulting [`Principal`] into the request's
//! extensions before calling the inner service. Handlers read it back (in axum:
//! `Extension<Principal>`).
//!
//! ```no_run
//! use ate_auth::Auth;
//! use ate_auth::layer::AuthLayer;
//! use ate_core::Principal;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # async fn example(auth: Auth) -> Result<(), std::convert::Infallible> {
//! let whoami = service_fn(|req: http::Request<()>| async move {
//!     let who = req.extensions().get::<Principal>().map(|p| p.subject().to_owned());
//!     Ok::<_, std::convert::Infallible>(http::Response::new(who.unwrap_or_default()))
//! });
//! let service = AuthLayer::new(auth).layer(whoami);
//! let request = http::Request::builder()
//!     .header("authorization", "Bearer eyJhbGciOi...")
//!     .body(())
//!     .unwrap();
//! let response = service.oneshot(request).await?;
//! // 200 with the subject, or 401 with `WWW-Authenticate: Bearer error="invalid_token"`.
//! # Ok(())
//! # }
//! ```
//!
//! # Behaviour
//!
//! | request | response |
//! | --- | --- |
//! | one `Authorization: Bearer <token>` header (scheme in any case) and [`Auth::verify`] accepts the token | the inner service's, with the [`Principal`] in the request extensions |
//! | no `Authorization` header | `401`, `WWW-Authenticate: Bearer`; with [`AuthLayer::optional`], passed to the inner service without a principal |
//! | another scheme (`Basic …`) | `401`, `WWW-Authenticate: Bearer` (RFC 6750 §3.1: no error code for an unsupported method), also when optional |
//! | several `Authorization` headers (RFC 6750 §3.1: a repeated parameter makes the request malformed) | `400`, `WWW-Authenticate: Bearer error="invalid_request"`, before any verification; also when optional |
//! | an empty token, a token with whitespace or characters outside RFC 6750's `b64token`, longer than [`MAX_BEARER_TOKEN_BYTES`] | `401`, `WWW-Authenticate: Bearer error="invalid_token"`, before any verification |
//! | a token [`Auth::verify`] refuses (bad signature or claims, expired, logged out, user disabled, tenant suspended) | `401`, `WWW-Authenticate: Bearer error="invalid_token"` |
//! | verification rate-limited | `429` with `Retry-After` |
//! | the database unreachable (or a retryable failure) | `503` |
//! | anything else (an internal error) | `500` |
//!
//! Refusals have an empty body (`ResBody::default()`) and never say *why* a token was
//! refused; the reason, safe to log, is in the response's extensions as an
//! [`AuthRejection`] for the host's logging. Several headers are refused rather than
//! picking one, so a proxy and ATE can never disagree on which token was meant; that is
//! the one malformed *request* (RFC 6750's `400 invalid_request`). A malformed *token*
//! (empty, bad characters, too long) is answered like any unusable token, `401
//! invalid_token`, which clients handle by re-authenticating.
//!
//! The service is `Clone` (cheap: `Auth` is shared), delegates `poll_ready` to the inner
//! service, calls the instance that was polled ready (the clone-and-swap idiom), and its
//! future is `Send`.

use crate::jwt::MAX_TOKEN_BYTES_RANGE;
use crate::{Auth, AuthError};
use ate_core::{Classify, ErrorKind, Principal};
use http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// Tokens longer than this are refused by the layer before verification (the largest limit
/// [`TokenConfig::max_token_bytes`](crate::tokens::TokenConfig::max_token_bytes) accepts;
/// the configured limit is then applied by [`Auth::verify`]).
pub const MAX_BEARER_TOKEN_BYTES: usize = *MAX_TOKEN_BYTES_RANGE.end();

const CHALLENGE: &str = "Bearer";
const CHALLENGE_INVALID_TOKEN: &str = "Bearer error=\"invalid_token\"";
const CHALLENGE_INVALID_REQUEST: &str = "Bearer error=\"invalid_request\"";

/// Authenticates requests with ATE access tokens; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct AuthLayer {
    // Shared: the service is cloned for every request, and an `Auth` holds many handles.
    auth: std::sync::Arc<Auth>,
    optional: bool,
}

impl AuthLayer {
    /// A layer that requires a valid bearer token on every request.
    pub fn new(auth: Auth) -> Self {
        AuthLayer {
            auth: std::sync::Arc::new(auth),
            optional: false,
        }
    }

    /// Lets requests **without** an `Authorization` header through, unauthenticated (no
    /// [`Principal`] in their extensions), so public routes can share the stack. Requests
    /// that present credentials are still refused when those are unusable.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            auth: self.auth.clone(),
            optional: self.optional,
        }
    }
}

/// The service [`AuthLayer`] produces.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: std::sync::Arc<Auth>,
    optional: bool,
}

impl<S> AuthService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// Why the layer refused a request, attached to the refusal's response extensions for the
/// host's logs. Never sent to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejection {
    kind: ErrorKind,
    reason: String,
}

impl AuthRejection {
    /// The kind of failure (`Unauthenticated` for every token problem, `InvalidInput` for
    /// a malformed request).
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// A one-line reason, safe to log (it never contains the token).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.reason)
    }
}

/// The future of [`AuthService`].
pub struct ResponseFuture<B, E> {
    inner: Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>,
}

impl<B, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().inner.as_mut().poll(cx)
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // `self.inner` was polled ready: take it, and leave a fresh clone for the next call.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let auth = self.auth.clone();
        let optional = self.optional;
        let inner_future = async move {
            let token = match presented(request.headers()) {
                Presented::Nothing if optional => return inner.call(request).await,
                Presented::Nothing => {
                    return Ok(refusal(
                        StatusCode::UNAUTHORIZED,
                        Some(CHALLENGE),
                        None,
                        ErrorKind::Unauthenticated,
                        "no Authorization header".into(),
                    ));
                }
                Presented::OtherScheme => {
                    return Ok(refusal(
                        StatusCode::UNAUTHORIZED,
                        Some(CHALLENGE),
                        None,
                        ErrorKind::Unauthenticated,
                        "the Authorization scheme is not Bearer".into(),
                    ));
                }
                Presented::InvalidRequest(why) => {
                    return Ok(refusal(
                        StatusCode::BAD_REQUEST,
                        Some(CHALLENGE_INVALID_REQUEST),
                        None,
                        ErrorKind::InvalidInput,
                        why.into(),
                    ));
                }
                Presented::Malformed(why) => {
                    return Ok(refusal(
                        StatusCode::UNAUTHORIZED,
                        Some(CHALLENGE_INVALID_TOKEN),
                        None,
                        ErrorKind::Unauthenticated,
                        why.into(),
                    ));
                }
                Presented::Token(token) => token.to_owned(),
            };
            match auth.verify(&token).await {
                Ok(principal) => {
                    request.extensions_mut().insert::<Principal>(principal);
                    inner.call(request).await
                }
                Err(e) => Ok(error_response(&e)),
            }
        };
        ResponseFuture {
            inner: Box::pin(inner_future),
        }
    }
}

/// What the `Authorization` header holds.
#[derive(Debug, PartialEq, Eq)]
enum Presented<'a> {
    Nothing,
    OtherScheme,
    Token(&'a str),
    Malformed(&'static str),
    InvalidRequest(&'static str),
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &[u8]) -> bool {
    let body_len = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    body_len > 0
        && token[..body_len]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

fn presented(headers: &HeaderMap) -> Presented<'_> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Presented::Nothing;
    };
    if values.next().is_some() {
        return Presented::InvalidRequest("more than one Authorization header");
    }
    let bytes = value.as_bytes();
    // RFC 9110 §11.4: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ].
    let (scheme, rest) = match bytes.iter().position(|&b| b == b' ') {
        Some(i) => (&bytes[..i], &bytes[i..]),
        None => (bytes, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Presented::OtherScheme;
    }
    let token = match rest.iter().position(|&b| b != b' ') {
        Some(i) => &rest[i..],
        None => return Presented::Malformed("empty bearer token"),
    };
    if token.len() > MAX_BEARER_TOKEN_BYTES {
        return Presented::Malformed("bearer token too long");
    }
    if !is_b64token(token) {
        return Presented::Malformed("bearer token with whitespace or invalid characters");
    }
    match std::str::from_utf8(token) {
        Ok(token) => Presented::Token(token),
        // Unreachable: b64token bytes are ASCII.
        Err(_) => Presented::Malformed("bearer token is not ASCII"),
    }
}

fn refusal<B: Default>(
    status: StatusCode,
    challenge: Option<&'static str>,
    retry_after_secs: Option<u64>,
    kind: ErrorKind,
    reason: String,
) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    if let Some(challenge) = challenge {
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
        .extensions_mut()
        .insert(AuthRejection { kind, reason });
    response
}

/// The response for an error from [`Auth::verify`].
fn error_response<B: Default>(e: &AuthError) -> Response<B> {
    let kind = e.kind();
    let reason = e.to_string();
    match (kind, e) {
        (ErrorKind::Unauthenticated, _) => refusal(
            StatusCode::UNAUTHORIZED,
            Some(CHALLENGE_INVALID_TOKEN),
            None,
            kind,
            reason,
        ),
        (_, AuthError::RateLimited { retry_after_secs }) => refusal(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            Some(*retry_after_secs),
            kind,
            reason,
        ),
        (ErrorKind::RateLimited, _) => {
            refusal(StatusCode::TOO_MANY_REQUESTS, None, None, kind, reason)
        }
        _ if kind == ErrorKind::Unavailable || e.is_retryable() => {
            refusal(StatusCode::SERVICE_UNAVAILABLE, None, None, kind, reason)
        }
        _ => refusal(StatusCode::INTERNAL_SERVER_ERROR, None, None, kind, reason),
    }
}

#[cfg(all(test, feature = "tower"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::password::Password;
    use crate::ratelimit::RateLimits;
    use crate::{AuthConfig, ClientInfo, NewUser, Tokens};
    use ate_core::keys::{LocalKeyProvider, SecretKey};
    use ate_core::{CoreError, Db, ManualClock, NewTenant};
    use chrono::{DateTime, TimeDelta};
    use std::convert::Infallible;
    use std::sync::Arc;
    use tower::{ServiceExt, service_fn};

    const PASSWORD: &str = "correct horse battery staple";

    struct Fixture {
        auth: Auth,
        clock: Arc<ManualClock>,
        tokens: Tokens,
    }

    async fn fixture() -> Fixture {
        let db = Db::open("sqlite::memory:").await.unwrap();
        let clock = Arc::new(ManualClock::new(
            DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
        ));
        let mut config = AuthConfig::new("https://auth.test", "ate-layer-tests");
        config.insecure_fast_hashing_for_tests = true;
        config.rate_limits = RateLimits::none();
        let master = Arc::new(LocalKeyProvider::new(SecretKey::from_bytes([7; 32])));
        let auth = Auth::open_with_clock(db, master, config, clock.clone())
            .await
            .unwrap();
        let (tenant, _) = auth
            .register(
                NewTenant::new("acme", "Acme"),
                NewUser::new("owner@acme.example"),
                &Password::new(PASSWORD),
            )
            .await
            .unwrap();
        let tokens = auth
            .login(
                tenant.id,
                "owner@acme.example",
                &Password::new(PASSWORD),
                &ClientInfo::default(),
            )
            .await
            .unwrap();
        Fixture {
            auth,
            clock,
            tokens,
        }
    }

    /// An inner service answering 200 with "subject tenant", or "anonymous".
    fn whoami() -> impl Service<
        Request<()>,
        Response = Response<String>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<String>, Infallible>> + Send,
    > + Clone
    + Send
    + 'static {
        service_fn(|req: Request<()>| async move {
            let body = match req.extensions().get::<Principal>() {
                Some(p) => format!("{} {}", p.subject(), p.tenant().unwrap()),
                None => "anonymous".to_owned(),
            };
            Ok(Response::new(body))
        })
    }

    async fn send(layer: &AuthLayer, authorization: &[&str]) -> Response<String> {
        let mut req = Request::builder();
        for value in authorization {
            req = req.header(AUTHORIZATION, *value);
        }
        layer
            .layer(whoami())
            .oneshot(req.body(()).unwrap())
            .await
            .unwrap()
    }

    fn challenge(res: &Response<String>) -> Option<&str> {
        res.headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap())
    }

    fn assert_refused(res: &Response<String>, expected_challenge: &str) {
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(challenge(res), Some(expected_challenge));
        assert_eq!(res.body(), "", "refusals carry no details");
        assert!(res.extensions().get::<AuthRejection>().is_some());
    }

    #[tokio::test]
    async fn a_valid_token_reaches_the_inner_service_with_its_principal() {
        let f = fixture().await;
        let layer = AuthLayer::new(f.auth.clone());
        let expected = f.auth.verify(&f.tokens.access.token).await.unwrap();
        let want = format!("{} {}", expected.subject(), expected.tenant().unwrap());
        for header in [
            format!("Bearer {}", f.tokens.access.token),
            format!("bEARER {}", f.tokens.access.token),
            format!("bearer   {}", f.tokens.access.token),
        ] {
            let res = send(&layer, &[&header]).await;
            assert_eq!(res.status(), StatusCode::OK, "{header:.20}");
            assert_eq!(res.body(), &want);
            assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
        }
    }

    #[tokio::test]
    async fn the_inner_service_gets_the_exact_principal() {
        let f = fixture().await;
        let expected = f.auth.verify(&f.tokens.access.token).await.unwrap();
        let inner = service_fn(move |req: Request<()>| {
            let expected = expected.clone();
            async move {
                assert_eq!(req.extensions().get::<Principal>(), Some(&expected));
                Ok::<_, Infallible>(Response::new(String::from("checked")))
            }
        });
        let req = Request::builder()
            .header(AUTHORIZATION, format!("Bearer {}", f.tokens.access.token))
            .body(())
            .unwrap();
        let res = AuthLayer::new(f.auth.clone())
            .layer(inner)
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(res.body(), "checked");
    }

    #[tokio::test]
    async fn a_missing_header_gets_a_bare_challenge() {
        let f = fixture().await;
        let res = send(&AuthLayer::new(f.auth.clone()), &[]).await;
        assert_refused(&res, "Bearer");
    }

    #[tokio::test]
    async fn another_scheme_gets_a_bare_challenge() {
        let f = fixture().await;
        let layer = AuthLayer::new(f.auth.clone());
        let token = &f.tokens.access.token;
        for header in [
            "Basic b3duZXI6cGFzc3dvcmQ=".to_owned(),
            format!("Token {token}"),
            format!("Bearer{token}"),
            format!("Bearer\t{token}"),
        ] {
            assert_refused(&send(&layer, &[&header]).await, "Bearer");
        }
    }

    #[tokio::test]
    async fn malformed_credentials_are_invalid_tokens() {
        let f = fixture().await;
        let layer = AuthLayer::new(f.auth.clone());
        let token = &f.tokens.access.token;
        let good = format!("Bearer {token}");
        let long = format!("Bearer {}", "a".repeat(MAX_BEARER_TOKEN_BYTES + 1));
        // Two headers, even both valid, even on an optional layer: a malformed request.
        for layer in [layer.clone(), AuthLayer::new(f.auth.clone()).optional()] {
            for headers in [
                vec![good.as_str(), good.as_str()],
                vec![good.as_str(), "Basic x"],
            ] {
                let res = send(&layer, &headers).await;
                assert_eq!(res.status(), StatusCode::BAD_REQUEST);
                assert_eq!(challenge(&res), Some(CHALLENGE_INVALID_REQUEST));
                assert_eq!(res.body(), "");
                let rejection = res.extensions().get::<AuthRejection>().unwrap();
                assert_eq!(rejection.kind(), ErrorKind::InvalidInput);
            }
        }
        let cases: Vec<Vec<&str>> = vec![vec!["Bearer"], vec!["Bearer   "], vec![&long]];
        for headers in cases {
            let res = send(&layer, &headers).await;
            assert_refused(&res, CHALLENGE_INVALID_TOKEN);
        }
        let (head, tail) = token.split_at(20);
        for header in [
            format!("Bearer {head} {tail}"),
            format!("Bearer {token} "),
            format!("Bearer {token}\t"),
            format!("Bearer \"{token}\""),
            format!("Bearer {token},x"),
        ] {
            let res = send(&layer, &[&header]).await;
            assert_refused(&res, CHALLENGE_INVALID_TOKEN);
        }
    }

    #[tokio::test]
    async fn garbage_and_tampered_tokens_are_invalid_tokens() {
        let f = fixture().await;
        let layer = AuthLayer::new(f.auth.clone());
        let token = &f.tokens.access.token;
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        for header in [
            "Bearer garbage".to_owned(),
            "Bearer a.b.c".to_owned(),
            format!("Bearer {tampered}"),
        ] {
            let res = send(&layer, &[&header]).await;
            assert_refused(&res, CHALLENGE_INVALID_TOKEN);
            let rejection = res.extensions().get::<AuthRejection>().unwrap();
            assert_eq!(rejection.kind(), ErrorKind::Unauthenticated);
            assert!(!rejection.reason().contains(token.as_str()));
        }
    }

    #[tokio::test]
    async fn expired_and_logged_out_tokens_are_invalid_tokens() {
        let f = fixture().await;
        let layer = AuthLayer::new(f.auth.clone());
        let header = format!("Bearer {}", f.tokens.access.token);
        assert_eq!(send(&layer, &[&header]).await.status(), StatusCode::OK);

        f.auth
            .logout(&f.tokens.access.token, &ClientInfo::default())
            .await
            .unwrap();
        assert_refused(&send(&layer, &[&header]).await, CHALLENGE_INVALID_TOKEN);

        // A fresh session's token, then its expiry (15 minutes + 30 s leeway).
        let refreshed = f
            .auth
            .login(
                f.tokens.user.tenant,
                "owner@acme.example",
                &Password::new(PASSWORD),
                &ClientInfo::default(),
            )
            .await
            .unwrap();
        let header = format!("Bearer {}", refreshed.access.token);
        assert_eq!(send(&layer, &[&header]).await.status(), StatusCode::OK);
        f.clock.advance(TimeDelta::minutes(16));
        assert_refused(&send(&layer, &[&header]).await, CHALLENGE_INVALID_TOKEN);
    }

    #[tokio::test]
    async fn optional_lets_anonymous_requests_through_but_not_bad_credentials() {
        let f = fixture().await;
        let layer = AuthLayer::new(f.auth.clone()).optional();
        let res = send(&layer, &[]).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.body(), "anonymous");

        let header = format!("Bearer {}", f.tokens.access.token);
        let res = send(&layer, &[&header]).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.body().starts_with("user:"));

        assert_refused(
            &send(&layer, &["Bearer garbage"]).await,
            CHALLENGE_INVALID_TOKEN,
        );
        assert_refused(&send(&layer, &["Basic Zm9vOmJhcg=="]).await, "Bearer");
    }

    #[test]
    fn errors_map_to_statuses() {
        let res: Response<String> = error_response(&AuthError::RateLimited {
            retry_after_secs: 7,
        });
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[RETRY_AFTER], "7");
        assert!(res.headers().get(WWW_AUTHENTICATE).is_none());

        let unavailable = AuthError::Core(CoreError::Unavailable {
            message: "database down".into(),
            source: None,
        });
        let res: Response<String> = error_response(&unavailable);
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            res.extensions().get::<AuthRejection>().unwrap().kind(),
            ErrorKind::Unavailable
        );

        let res: Response<String> = error_response(&AuthError::Crypto("corrupt key".into()));
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.body(), "");

        let res: Response<String> = error_response(&AuthError::InvalidCredentials);
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(challenge(&res), Some(CHALLENGE_INVALID_TOKEN));
    }

    #[tokio::test]
    async fn poll_ready_is_the_inner_services() {
        #[derive(Clone)]
        struct NeverReady;
        impl Service<Request<()>> for NeverReady {
            type Response = Response<String>;
            type Error = &'static str;
            type Future = std::future::Ready<Result<Response<String>, &'static str>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Err("inner not ready"))
            }
            fn call(&mut self, _: Request<()>) -> Self::Future {
                unreachable!("never polled ready")
            }
        }
        let f = fixture().await;
        let err = AuthLayer::new(f.auth.clone())
            .layer(NeverReady)
            .oneshot(Request::new(()))
            .await
            .unwrap_err();
        assert_eq!(err, "inner not ready");
    }

    #[test]
    fn the_service_and_its_future_are_send_and_clone() {
        fn send_sync_clone<T: Send + Sync + Clone>() {}
        fn send<T: Send>() {}
        send_sync_clone::<AuthLayer>();
        send_sync_clone::<
            AuthService<
                tower::util::BoxCloneSyncService<Request<()>, Response<String>, Infallible>,
            >,
        >();
        send::<ResponseFuture<String, Infallible>>();
    }

    #[test]
    fn header_parsing() {
        let parse = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            match presented(&h) {
                Presented::Token(t) => Ok(t.to_owned()),
                other => Err(format!("{other:?}")),
            }
        };
        assert_eq!(parse("Bearer abc.def-_~+/==").unwrap(), "abc.def-_~+/==");
        assert_eq!(parse("BEARER x").unwrap(), "x");
        assert!(parse("Bearer ===").is_err());
        assert!(parse("Bearer a=b").is_err());
        assert!(parse("Bearerx y").unwrap_err().contains("OtherScheme"));
        assert_eq!(presented(&HeaderMap::new()), Presented::Nothing);
    }
}
