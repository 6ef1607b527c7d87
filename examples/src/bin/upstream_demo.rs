//! `upstream_demo`: a service behind `ate serve`'s gateway, showing how an upstream checks
//! the caller identity the gateway forwards (and what the gateway's tests call).
//!
//! ```text
//! upstream_demo --id NAME --jwks URL --issuer ISSUER --service SERVICE [--listen ADDR]
//! ```
//!
//! The gateway sends each request with `x-ate-identity`, a short-lived JWT for the audience
//! `svc:<service>` signed by the host's token keys. This program fetches the host's JWKS
//! (`/api/auth/jwks`) at start and again when a token names a key it does not know (after a
//! rotation), and verifies every request's token with `ate_auth::jwt::Verifier`: requests
//! without a valid one are refused with `401`, whatever else they carry.
//!
//! Routes: `GET /health` (no identity needed: the registry's health check calls it),
//! `GET /whoami` (the verified identity and what the request looked like), `POST /echo`
//! (streams the body back), `GET /status/{code}` (answers that status with a body),
//! `GET /sleep/{ms}`, and `GET /stream` (one chunk, then the rest once `POST /release` is
//! called: a client that reads the first chunk before releasing proves nothing buffered the
//! response). It prints `listening on http://ADDR` once it accepts connections.

use ate_auth::jwt::{KeySet, Verifier};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::json;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

const USAGE: &str =
    "usage: upstream_demo --id NAME --jwks URL --issuer ISSUER --service SERVICE [--listen ADDR]";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Demo {
    id: String,
    jwks_url: String,
    issuer: String,
    audience: String,
    verifier: RwLock<Verifier>,
    release: Notify,
}

impl Demo {
    async fn fetch_verifier(
        jwks_url: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<Verifier, BoxError> {
        let jwks = reqwest::get(jwks_url)
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(Verifier::new(KeySet::from_jwks(&jwks)?, issuer, audience)?)
    }

    /// The verified claims of the request's identity token, refetching the JWKS once when
    /// the token names an unknown key.
    async fn identity(&self, headers: &HeaderMap) -> Result<ate_auth::jwt::Claims, String> {
        let token = headers
            .get("x-ate-identity")
            .and_then(|v| v.to_str().ok())
            .ok_or("no x-ate-identity header")?;
        let now = chrono::Utc::now().timestamp();
        let first = self
            .verifier
            .read()
            .map_err(|_| "poisoned")?
            .verify(token, now);
        match first {
            Err(e) if e.to_string().contains("unknown kid") => {
                let fresh = Self::fetch_verifier(&self.jwks_url, &self.issuer, &self.audience)
                    .await
                    .map_err(|e| e.to_string())?;
                let claims = fresh.verify(token, now).map_err(|e| e.to_string());
                *self.verifier.write().map_err(|_| "poisoned")? = fresh;
                claims
            }
            other => other.map_err(|e| e.to_string()),
        }
    }
}

fn refuse(reason: String) -> Response {
    (StatusCode::UNAUTHORIZED, reason).into_response()
}

async fn whoami(State(demo): State<Arc<Demo>>, req: Request) -> Response {
    let claims = match demo.identity(req.headers()).await {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    let h = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    axum::Json(json!({
        "instance": demo.id,
        "subject": claims.sub,
        "tenant": claims.tenant,
        "roles": claims.roles,
        "path": req.uri().path(),
        "query": req.uri().query(),
        "authorization_seen": req.headers().contains_key("authorization"),
        "forwarded_for": h("x-forwarded-for"),
        "forwarded_prefix": h("x-forwarded-prefix"),
        "request_id": h("x-request-id"),
    }))
    .into_response()
}

async fn echo(State(demo): State<Arc<Demo>>, req: Request) -> Response {
    if let Err(e) = demo.identity(req.headers()).await {
        return refuse(e);
    }
    let mut response = Response::new(Body::from_stream(req.into_body().into_data_stream()));
    response.headers_mut().insert(
        "x-instance",
        demo.id
            .parse()
            .unwrap_or(axum::http::HeaderValue::from_static("?")),
    );
    response
}

async fn status(State(demo): State<Arc<Demo>>, Path(code): Path<u16>) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (code, format!("status {} from {}", code.as_u16(), demo.id)).into_response()
}

async fn sleep(State(demo): State<Arc<Demo>>, Path(ms): Path<u64>) -> Response {
    tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
    format!("slept {ms} ms on {}", demo.id).into_response()
}

async fn stream(State(demo): State<Arc<Demo>>) -> Response {
    let chunks = futures::stream::unfold(0u8, move |step| {
        let demo = demo.clone();
        async move {
            match step {
                0 => Some((Ok::<_, std::io::Error>(Bytes::from_static(b"first;")), 1)),
                1 => {
                    demo.release.notified().await;
                    Some((Ok(Bytes::from_static(b"rest")), 2))
                }
                _ => None,
            }
        }
    });
    Response::new(Body::from_stream(chunks))
}

async fn release(State(demo): State<Arc<Demo>>) -> StatusCode {
    demo.release.notify_waiters();
    StatusCode::NO_CONTENT
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

async fn run(args: Vec<String>) -> Result<(), BoxError> {
    let need = |name: &str| arg(&args, name).ok_or_else(|| format!("{name} is required\n{USAGE}"));
    let (id, jwks_url, issuer) = (need("--id")?, need("--jwks")?, need("--issuer")?);
    let audience = format!("svc:{}", need("--service")?);
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let verifier = Demo::fetch_verifier(&jwks_url, &issuer, &audience).await?;
    let demo = Arc::new(Demo {
        id,
        jwks_url,
        issuer,
        audience,
        verifier: RwLock::new(verifier),
        release: Notify::new(),
    });
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/whoami", get(whoami))
        .route("/echo", post(echo))
        .route("/status/{code}", get(status))
        .route("/sleep/{ms}", get(sleep))
        .route("/stream", get(stream))
        .route("/release", post(release))
        .with_state(demo);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// mimalloc rather than the system allocator: a server allocates small, short-lived objects
/// on every request from several threads, where glibc's arenas contend (the load
/// benchmark's baselines use it too, so their figures compare like with like).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upstream_demo: {e}");
            ExitCode::FAILURE
        }
    }
}
