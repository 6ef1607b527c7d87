//! `/healthz` (the process is alive) and `/readyz` (its database and blob store answer).

use crate::host::Host;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How long a readiness check waits for each backend.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn routes() -> OpenApiRouter<Host> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`, or `unavailable` when a check failed.
    status: &'static str,
}

/// Liveness: answers while the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ok` when every check passed.
    status: &'static str,
    /// `ok` or `unavailable`.
    database: &'static str,
    /// `ok` or `unavailable`.
    blob_store: &'static str,
}

/// Readiness: the database and the blob store answer (each within 5 s). `503` otherwise,
/// naming which failed (the cause goes to the log).
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn readyz(State(host): State<Host>) -> (StatusCode, Json<Readiness>) {
    let db = tokio::time::timeout(CHECK_TIMEOUT, host.db.ping());
    let blobs = tokio::time::timeout(CHECK_TIMEOUT, host.objects.blobs().check());
    let (db, blobs) = tokio::join!(db, blobs);
    let db_ok = matches!(db, Ok(Ok(())));
    let blobs_ok = matches!(blobs, Ok(Ok(())));
    if !db_ok {
        tracing::warn!(result = ?db.map(|r| r.map_err(|e| e.to_string())), "readiness: database check failed");
    }
    if !blobs_ok {
        tracing::warn!(result = ?blobs.map(|r| r.map_err(|e| e.to_string())), "readiness: blob store check failed");
    }
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let status = if db_ok && blobs_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            status: word(db_ok && blobs_ok),
            database: word(db_ok),
            blob_store: word(blobs_ok),
        }),
    )
}
