//! `auth_server`: a small HTTP API over `ate-auth`, with axum and [`AuthLayer`].
//!
//! ```text
//! cargo run -p examples --bin auth_server -- [--port N] [--data DIR] [--self-test]
//! ```
//!
//! Listens on `127.0.0.1` (port from `--port`, else `PORT`, else any free port; the bound
//! address is printed). State lives in `DIR` (default `./auth-data`): the SQLite database
//! `auth.db` and the master key `master.key`.
//!
//! **Development only.** The master key that wraps the token signing keys is a plain file
//! next to the database (`LocalKeyProvider::load_or_create_file`), created on the first run:
//! whoever reads the folder can mint tokens. Production hosts keep the master key in a KMS
//! or HSM behind a `KeyProvider`, serve HTTPS, and derive the client address from their
//! proxy's headers.
//!
//! | route | input (JSON) | output |
//! | --- | --- | --- |
//! | `POST /register` | `org_slug`, `org_name`, `email`, `password`, optional `name` | `201` `{tenant_id, user_id}` |
//! | `POST /login` | `tenant_id`, `email`, `password` | `200` tokens |
//! | `POST /refresh` | `refresh_token` | `200` tokens (the refresh token is rotated) |
//! | `POST /logout` | `Authorization: Bearer <access token>` | `204` |
//! | `GET /me` | `Authorization: Bearer <access token>` | `200` `{subject, tenant, roles}` |
//!
//! Tokens are `{access_token, token_type: "Bearer", expires_in, expires_at, refresh_token,
//! session_id, tenant_id, user_id}`, sent with `Cache-Control: no-store`. Errors are
//! `{"error": kind}`: invalid input 400 (with a `message`), unauthenticated 401 (nothing
//! more: a wrong password and an unknown user look alike), permission denied 403, already
//! exists 409, rate limited 429 (with `Retry-After`), anything else 500 (details go to
//! stderr, not to the client).
//!
//! `--self-test` starts the server and drives it over HTTP on loopback: register → login →
//! `/me` → refresh → logout → `/me` refused; it prints each step and exits non-zero on the
//! first failure.

use ate_auth::layer::AuthLayer;
use ate_auth::password::Password;
use ate_auth::{Auth, AuthConfig, AuthError, ClientInfo, NewUser, Tokens};
use ate_core::keys::LocalKeyProvider;
use ate_core::{Classify, Db, ErrorKind, NewTenant, Principal, TenantId};
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, RETRY_AFTER, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "usage: auth_server [--port N] [--data DIR] [--self-test]";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug)]
struct Args {
    port: u16,
    data: PathBuf,
    self_test: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut port = std::env::var("PORT").ok();
    let mut data = PathBuf::from("auth-data");
    let mut self_test = false;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--port") => {
                let v = args.next().ok_or("--port needs a value")?;
                port = Some(v.to_string_lossy().into_owned());
            }
            Some("--data") => data = args.next().ok_or("--data needs a directory")?.into(),
            Some("--self-test") => self_test = true,
            Some("--help" | "-h") => return Err(String::new()),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    let port = match port {
        Some(p) => p
            .trim()
            .parse()
            .map_err(|_| format!("invalid port {p:?}"))?,
        None => 0,
    };
    Ok(Args {
        port,
        data,
        self_test,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("auth_server: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auth_server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), BoxError> {
    let auth = open_auth(&args.data).await?;
    let listener = TcpListener::bind(("127.0.0.1", args.port)).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        if args.self_test {
            let _ = stopped.await;
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app(auth).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    });
    if !args.self_test {
        return Ok(server.await??);
    }
    let outcome = self_test(addr).await;
    let _ = stop.send(());
    server.await??;
    outcome
}

/// Opens the database and the (development) master key in `dir`, creating both if needed.
async fn open_auth(dir: &Path) -> Result<Auth, BoxError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
    let db = Db::open(&format!("sqlite://{}/auth.db", dir.display())).await?;
    let master = LocalKeyProvider::load_or_create_file(dir.join("master.key"))?;
    let config = AuthConfig::new("urn:ate:examples:auth_server", "ate-examples");
    Ok(Auth::open(db, Arc::new(master), config).await?)
}

/// The routes: `/me` and `/logout` behind the [`AuthLayer`], the rest public.
fn app(auth: Auth) -> Router {
    let authenticated = Router::new()
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route_layer(AuthLayer::new(auth.clone()));
    Router::new()
        .route("/register", post(register))
        .route("/login", post(login))
        .route("/refresh", post(refresh))
        .merge(authenticated)
        .with_state(auth)
}

// ---- handlers ----

#[derive(Deserialize)]
struct RegisterRequest {
    org_slug: String,
    org_name: String,
    email: String,
    password: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct LoginRequest {
    tenant_id: String,
    email: String,
    password: String,
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

async fn register(
    State(auth): State<Auth>,
    body: Result<Json<RegisterRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(r) = body?;
    let mut user = NewUser::new(r.email);
    if let Some(name) = r.name {
        user = user.name(name);
    }
    let (tenant, user) = auth
        .register(
            NewTenant::new(r.org_slug, r.org_name),
            user,
            &Password::new(r.password),
        )
        .await?;
    let body = json!({ "tenant_id": tenant.id.to_string(), "user_id": user.id.to_string() });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn login(
    State(auth): State<Auth>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(r) = body?;
    let tenant: TenantId = r
        .tenant_id
        .parse()
        .map_err(|_| AuthError::invalid("tenant_id", "is not a tenant id"))?;
    let tokens = auth
        .login(
            tenant,
            &r.email,
            &Password::new(r.password),
            &client(peer, &headers),
        )
        .await?;
    Ok(token_response(&tokens))
}

async fn refresh(
    State(auth): State<Auth>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<RefreshRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(r) = body?;
    let token = ate_auth::RefreshToken::from_client(r.refresh_token);
    let tokens = auth.refresh(&token, &client(peer, &headers)).await?;
    Ok(token_response(&tokens))
}

/// Behind the layer: the bearer token was verified; ending its session needs the token.
async fn logout(
    State(auth): State<Auth>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(_, token)| token.trim_start())
        .ok_or(AuthError::token("no bearer token"))?;
    auth.logout(token, &client(peer, &headers)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Behind the layer: the principal is in the request extensions.
async fn me(Extension(principal): Extension<Principal>) -> Json<Value> {
    Json(json!({
        "subject": principal.subject(),
        "tenant": principal.tenant().map(|t| t.to_string()),
        "roles": principal.roles().collect::<Vec<_>>(),
    }))
}

fn client(peer: SocketAddr, headers: &HeaderMap) -> ClientInfo {
    let info = ClientInfo::addr(peer.ip());
    match headers.get(USER_AGENT).and_then(|v| v.to_str().ok()) {
        Some(ua) => info.user_agent(ua),
        None => info,
    }
}

fn token_response(t: &Tokens) -> Response {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let body = json!({
        "access_token": t.access.token,
        "token_type": "Bearer",
        "expires_in": (t.access.expires_at.timestamp() - now).max(0),
        "expires_at": t.access.expires_at.to_rfc3339(),
        "refresh_token": t.refresh.expose_secret(),
        "session_id": t.session.id.to_string(),
        "tenant_id": t.user.tenant.to_string(),
        "user_id": t.user.id.to_string(),
    });
    // RFC 6749 §5.1: responses carrying tokens must not be cached.
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

// ---- errors ----

/// An error answered to the client by kind, without internals.
enum ApiError {
    Auth(AuthError),
    BadJson(JsonRejection),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::Auth(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError::BadJson(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = match self {
            ApiError::BadJson(e) => {
                let body = json!({ "error": "invalid_input", "message": e.body_text() });
                return (StatusCode::BAD_REQUEST, Json(body)).into_response();
            }
            ApiError::Auth(e) => e,
        };
        let (status, error) = match e.kind() {
            ErrorKind::InvalidInput => {
                let body = json!({ "error": "invalid_input", "message": e.to_string() });
                return (StatusCode::BAD_REQUEST, Json(body)).into_response();
            }
            ErrorKind::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ErrorKind::PermissionDenied => (StatusCode::FORBIDDEN, "permission_denied"),
            ErrorKind::AlreadyExists => (StatusCode::CONFLICT, "already_exists"),
            ErrorKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            _ => {
                eprintln!("auth_server: internal error: {e}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        if let AuthError::RateLimited { retry_after_secs } = e {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

// ---- self-test: a minimal HTTP/1.1 client over loopback ----

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Result<Value, BoxError> {
        Ok(serde_json::from_str(&self.body)
            .map_err(|e| format!("response body is not JSON ({e}): {:?}", self.body))?)
    }
}

/// One request on a fresh connection (`Connection: close`), read to the end.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Result<HttpResponse, BoxError> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         User-Agent: auth_server-self-test\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    if let Some(token) = bearer {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);

    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| format!("{method} {path}: no response within 30 s"))??;
    parse_response(&raw).map_err(|e| format!("{method} {path}: {e}").into())
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8(body).map_err(|_| "body is not UTF-8")?,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk")?;
        let size = std::str::from_utf8(&data[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .ok_or("bad chunk size")?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or("truncated chunk")?);
        data = data.get(size + 2..).ok_or("truncated chunk")?;
    }
}

fn expect_status(step: &str, response: &HttpResponse, want: u16) -> Result<(), BoxError> {
    if response.status != want {
        return Err(format!(
            "{step}: expected {want}, got {} with {:?}",
            response.status, response.body
        )
        .into());
    }
    println!("ok  {step} → {want}");
    Ok(())
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a str, BoxError> {
    Ok(v[name]
        .as_str()
        .ok_or_else(|| format!("no string {name:?} in {v}"))?)
}

/// Drives the server at `addr` through the whole flow.
async fn self_test(addr: SocketAddr) -> Result<(), BoxError> {
    let unique = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let slug = format!("self-test-{unique}");
    let email = format!("owner@{slug}.example");
    let password = format!("self-test passphrase {unique}");

    let r = http(addr, "GET", "/me", None, None).await?;
    expect_status("GET /me without a token", &r, 401)?;
    if r.header("www-authenticate") != Some("Bearer") {
        return Err(format!("expected a bare Bearer challenge, got {:?}", r.headers).into());
    }

    let r = http(
        addr,
        "POST",
        "/register",
        None,
        Some(&json!({
            "org_slug": slug, "org_name": "Self-Test Org", "email": email,
            "password": password, "name": "Self Test",
        })),
    )
    .await?;
    expect_status("POST /register", &r, 201)?;
    let registered = r.json()?;
    let tenant = field(&registered, "tenant_id")?;

    let r = http(
        addr,
        "POST",
        "/login",
        None,
        Some(&json!({ "tenant_id": tenant, "email": email, "password": "not the password" })),
    )
    .await?;
    expect_status("POST /login with a wrong password", &r, 401)?;

    let r = http(
        addr,
        "POST",
        "/login",
        None,
        Some(&json!({ "tenant_id": tenant, "email": email, "password": password })),
    )
    .await?;
    expect_status("POST /login", &r, 200)?;
    if r.header("cache-control") != Some("no-store") {
        return Err("token responses must carry Cache-Control: no-store".into());
    }
    let login = r.json()?;

    let r = http(
        addr,
        "GET",
        "/me",
        Some(field(&login, "access_token")?),
        None,
    )
    .await?;
    expect_status("GET /me", &r, 200)?;
    let me = r.json()?;
    if me["tenant"] != tenant || me["subject"] != format!("user:{}", field(&login, "user_id")?) {
        return Err(format!("GET /me answered the wrong principal: {me}").into());
    }
    println!(
        "    principal {} in {tenant}, roles {}",
        me["subject"], me["roles"]
    );

    let r = http(
        addr,
        "POST",
        "/refresh",
        None,
        Some(&json!({ "refresh_token": field(&login, "refresh_token")? })),
    )
    .await?;
    expect_status("POST /refresh", &r, 200)?;
    let refreshed = r.json()?;
    if refreshed["refresh_token"] == login["refresh_token"] {
        return Err("the refresh token was not rotated".into());
    }
    let access = field(&refreshed, "access_token")?;

    let r = http(addr, "GET", "/me", Some(access), None).await?;
    expect_status("GET /me with the refreshed token", &r, 200)?;

    let r = http(addr, "POST", "/logout", Some(access), None).await?;
    expect_status("POST /logout", &r, 204)?;

    let r = http(addr, "GET", "/me", Some(access), None).await?;
    expect_status("GET /me after logout", &r, 401)?;
    if r.header("www-authenticate") != Some("Bearer error=\"invalid_token\"") {
        return Err(format!("expected an invalid_token challenge, got {:?}", r.headers).into());
    }

    let r = http(
        addr,
        "POST",
        "/refresh",
        None,
        Some(&json!({ "refresh_token": field(&refreshed, "refresh_token")? })),
    )
    .await?;
    expect_status("POST /refresh after logout", &r, 401)?;
    if r.json()? != json!({ "error": "unauthenticated" }) {
        return Err(format!("401 bodies must be generic, got {:?}", r.body).into());
    }

    println!("self-test passed");
    Ok(())
}
