//! `ate serve`: opens the host, bootstraps the platform administrator, and serves the API
//! until SIGTERM or Ctrl-C (in-flight requests finish, within the configured grace).

use crate::api;
use crate::config::{Config, LogFormat};
use crate::gateway::{Gateway, GatewayMetrics};
use crate::host::{Bootstrap, BoxError, Host};
use crate::metrics::HttpMetrics;
use ate_orchestrate::workflow::WorkerConfig;
use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Starts logging to stderr, as JSON lines or text. `RUST_LOG` filters (default `info`).
///
/// Lines are formatted on the thread that logs and written by a dedicated thread (a
/// request does not wait for the write); when that thread falls behind, loggers wait rather
/// than drop lines. The writer thread takes every line queued at once and writes them
/// with one system call, flushing whenever the queue is empty (a line is never held back
/// waiting for more). Keep the returned guard until exit: dropping it flushes what is queued.
pub(crate) fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("ate-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    guard
}

/// The whole application: the API, the gateway, the dashboard, `/metrics`, `/openapi.json`
/// and `/docs`, in every layer.
pub(crate) fn app(host: Host) -> Result<Router, BoxError> {
    let mut registry = Registry::default();
    let metrics = Arc::new(HttpMetrics::new(&mut registry, host.api_traffic.clone()));
    // Everything ate-orchestrate exports (per service and instance) next to the HTTP
    // families, and the gateway's counters.
    host.hub.metrics().register(&mut registry);
    host.workflow_metrics.register(&mut registry);
    let gateway = GatewayMetrics::new(&mut registry);
    let gateway = Gateway::new(host.config.gateway.clone(), gateway)
        .map_err(|e| format!("cannot build the gateway's HTTP client: {e}"))?;
    let registry = Arc::new(registry);
    let http = host.config.http.clone();
    let tls = host.config.tls.cert_file.is_some();
    let (api, doc) = api::router(host, Arc::new(gateway));
    let doc_json = api::openapi_json(&doc);
    let router = api
        .route(
            "/openapi.json",
            get(move || {
                let body = doc_json.clone();
                async move {
                    let mut r = body.into_response();
                    r.headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    r.headers_mut().insert(
                        CACHE_CONTROL,
                        HeaderValue::from_static("public, max-age=300"),
                    );
                    r
                }
            }),
        )
        .route("/docs", get(docs))
        .merge(crate::dashboard::routes())
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move { metrics_text(&registry) }
            }),
        );
    Ok(api::layers::wrap(router, &http, metrics, tls))
}

/// `/metrics`: the registry as OpenMetrics text.
fn metrics_text(registry: &Registry) -> axum::response::Response {
    match ate_orchestrate::metrics::render_openmetrics(registry) {
        Ok(text) => {
            let mut r = text.into_response();
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        Err(e) => api::problem::ApiError::internal(e.to_string()).into_response(),
    }
}

/// `/docs`: an interactive viewer of `/openapi.json` (Scalar, loaded from its CDN by the
/// browser; the server itself fetches nothing).
async fn docs() -> impl IntoResponse {
    const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>ATE API</title></head>
<body><script id="api-reference" data-url="/openapi.json"></script>
<script src="https://cdn.jsdelivr.net/npm/@scalar/api-reference"></script></body></html>
"#;
    (
        [(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src https://cdn.jsdelivr.net; style-src 'unsafe-inline' https://cdn.jsdelivr.net; font-src https://cdn.jsdelivr.net data:; img-src data: https:; connect-src 'self'",
            ),
        )],
        Html(PAGE),
    )
}

/// Runs the server with `config`.
pub(crate) async fn serve(config: Config) -> Result<(), BoxError> {
    let grace = Duration::from_secs(config.http.shutdown_grace_secs);
    let listen = config.listen;
    let host = Host::open(config).await?;
    match host.bootstrap().await? {
        Bootstrap::AlreadyDone => {}
        Bootstrap::Created {
            tenant,
            email,
            generated_password,
        } => {
            println!("platform administrator created: tenant {tenant}, email {email}");
            if let Some(p) = generated_password {
                println!("  password (shown once; change it): {p}");
            }
        }
    }
    let certs = crate::tls::Certificates::load(&host.config.tls)?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    // Signal handlers exist before anyone is told where we listen: a SIGTERM right after
    // the announcement still shuts down gracefully.
    let signal = shutdown_signal()?;
    let scheme = if certs.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{addr}");
    tracing::info!(%addr, "listening");
    let app = app(host.clone())?;
    let (alerts_stop, alerts_stopped) = tokio::sync::watch::channel(false);
    let history = tokio::spawn(crate::history::run(
        host.clone(),
        format!("ate-serve:{addr}:{}", std::process::id()),
        alerts_stopped.clone(),
    ));
    let alert_sync = tokio::spawn(crate::alerting::run(host.clone(), alerts_stopped));
    let worker = match host.config.workflows.concurrency {
        0 => None,
        n => Some(
            host.workflows.start_worker(
                WorkerConfig::new(format!("ate-serve:{addr}:{}", std::process::id()))
                    .concurrency(n)
                    .lease(Duration::from_secs(host.config.workflows.lease_secs)),
            )?,
        ),
    };
    let outcome = match certs {
        Some(certs) => crate::tls::serve(listener, app, certs, signal, grace).await,
        None => serve_plain(listener, app, signal, grace).await,
    };
    if let Some(worker) = worker {
        // Steps still running get the grace period; the rest are handed back at once
        // (their leases released, so another host takes them without waiting).
        let report = worker.shutdown(grace).await;
        tracing::info!(?report, "workflow worker stopped");
    }
    let _ = alerts_stop.send(true);
    let _ = alert_sync.await;
    let _ = history.await;
    host.close().await;
    tracing::info!("stopped");
    outcome
}

/// Plain HTTP (HTTP/1.1 and cleartext HTTP/2) until `signal`, then `grace` for in-flight
/// requests.
async fn serve_plain(
    listener: TcpListener,
    app: Router,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), BoxError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        signal.await;
        let _ = stop_tx.send(true);
    });
    let mut stopping = stop_rx.clone();
    tokio::select! {
        r = server => r.map_err(BoxError::from),
        () = async move {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish within the grace period");
            Ok(())
        }
    }
}

/// Installs the SIGTERM and Ctrl-C handlers now; the future resolves on either.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, BoxError> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let ctrl_c = tokio::signal::ctrl_c();
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down: finishing in-flight requests");
    })
}
