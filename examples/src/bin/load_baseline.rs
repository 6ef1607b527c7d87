//! `load_baseline`: the bare axum handler the load benchmark (`benches/load/run.py`)
//! compares `ate serve` against. `GET /verify` answers a fixed JSON body shaped like
//! `GET /api/auth/verify`'s, with no authentication, no layers and no logging: what axum
//! and the machine can do, so `ate serve`'s figure is read as a ratio of it. With
//! `--layers`, the same handler behind the off-the-shelf tower/tower-http layers and JSON
//! access log `ate serve` uses, applied the same way: what the stack alone costs.
//!
//! ```text
//! load_baseline [--listen ADDR] [--layers]   (default 127.0.0.1:0; prints "listening on http://ADDR")
//! ```

use axum::Json;
use axum::routing::get;
use serde_json::{Value, json};
use std::process::ExitCode;

fn body() -> Value {
    json!({
        "subject": "0196a4b2-7c1e-7c3a-9f00-6d7e8f901234",
        "tenant_id": "0196a4b2-7c1e-7c3a-9f00-6d7e8f905678",
        "platform_admin": false,
        "roles": ["admin"],
        "permissions": ["analysis:read", "analysis:write", "projects:read", "projects:write"],
    })
}

/// mimalloc rather than the system allocator: a server allocates small, short-lived objects
/// on every request from several threads, where glibc's arenas contend (the load
/// benchmark's baselines use it too, so their figures compare like with like).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut listen = String::from("127.0.0.1:0");
    let mut layers = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--layers" => layers = true,
            "--listen" => match args.next() {
                Some(v) => listen = v,
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("load_baseline: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Ok(addr) = listener.local_addr() else {
        return ExitCode::FAILURE;
    };
    println!("listening on http://{addr}");
    let app = axum::Router::new().route("/verify", get(|| async { Json(body()) }));
    let (app, _log_guard) = if layers {
        let (app, guard) = layered(app);
        (app, Some(guard))
    } else {
        (app, None)
    };
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load_baseline: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: load_baseline [--listen ADDR] [--layers]");
    ExitCode::from(2)
}

/// The tower and tower-http layers of `ate serve`, configured alike, around `app`.
fn layered(app: axum::Router) -> (axum::Router, tracing_appender::non_blocking::WorkerGuard) {
    use axum::error_handling::HandleErrorLayer;
    use axum::http::{HeaderName, HeaderValue, StatusCode, header};
    use std::time::Duration;
    use tower::ServiceBuilder;
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    use tower_http::set_header::SetResponseHeaderLayer;

    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .try_init();
    let request_id = HeaderName::from_static("x-request-id");
    let shed = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
            StatusCode::SERVICE_UNAVAILABLE
        }))
        .load_shed()
        .concurrency_limit(4096);
    let header = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    // One stack applied once, outermost first, as `ate serve` applies its own.
    let stack = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<axum::body::Body>| {
                    tracing::info_span!("request", method = %req.method(), uri = %req.uri())
                })
                .on_request(())
                .on_response(
                    |res: &axum::http::Response<axum::body::Body>,
                     latency: Duration,
                     _: &tracing::Span| {
                        tracing::info!(
                            status = res.status().as_u16(),
                            latency_ms = latency.as_secs_f64() * 1e3,
                            "served"
                        );
                    },
                ),
        )
        .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(header(header::REFERRER_POLICY, "no-referrer"))
        .layer(header(header::CACHE_CONTROL, "no-store"))
        .map_response(axum::response::IntoResponse::into_response)
        .layer(tower_http::compression::CompressionLayer::new())
        .map_response(axum::response::IntoResponse::into_response)
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(shed);
    let app = app.layer(
        ServiceBuilder::new()
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                Duration::from_secs(30),
            ))
            .map_response(axum::response::IntoResponse::into_response)
            .layer(tower_http::limit::RequestBodyLimitLayer::new(1 << 20)),
    );
    let app = app.layer(stack);
    (app, guard)
}
