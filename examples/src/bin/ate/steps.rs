//! The workflow steps `ate serve` registers: what a DAG submitted over the API may use.
//!
//! | step | params | output |
//! | --- | --- | --- |
//! | `echo` | anything | the node's input: `{"input", "deps", "params"}` |
//! | `delay` | `{"ms": 0..=3600000}` | `{"slept_ms"}`; cancellable, heartbeats while it waits |
//! | `service.call` | `{"service", "method"?, "path"?, "body"?}` | `{"status", "body"}` from an instance of a registered service of the run's tenant (or the platform), picked by the hub like the gateway does, called with `x-ate-identity` for `workflow:<run>` and `idempotency-key: <run>/<node>` |
//! | `ate.integration` | `{"endpoint", "body"?}` | `{"status", "body"}` of the tenant's integration endpoint |
//!
//! Nodes may also wait for a signal (`{"signal": "approve"}` in the DAG), which needs no step.
//! A `service.call` answered with a 5xx or not answered is retried by the node's retry policy;
//! a 4xx fails the node for good.

use crate::gateway::forward::{Target, upstream_url};
use ate_auth::Auth;
use ate_core::Principal;
use ate_orchestrate::OrchestrateError;
use ate_orchestrate::hub::{PickOptions, ServiceHub};
use ate_orchestrate::integrations::{INTEGRATION_STEP, IntegrationClient, IntegrationStep};
use ate_orchestrate::registry::{REGISTRY_READ, ServiceName};
use ate_orchestrate::workflow::state::NodeError;
use ate_orchestrate::workflow::{EngineBuilder, StepContext, StepResult};
use serde_json::{Value, json};
use std::time::Duration;

/// Longest `delay`.
const MAX_DELAY_MS: u64 = 3_600_000;
/// A `service.call` must be answered within this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest answer body a `service.call` keeps as its output.
const MAX_CALL_BODY: usize = 256 * 1024;

/// Registers every built-in step on `builder`.
pub(crate) fn register(
    builder: EngineBuilder,
    hub: ServiceHub,
    auth: Auth,
    integrations: IntegrationClient,
) -> Result<EngineBuilder, OrchestrateError> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| OrchestrateError::invalid("service.call client", e.to_string()))?;
    builder
        .step("echo", |_ctx: StepContext, input: Value| async move {
            Ok(input)
        })?
        .step("delay", delay)?
        .step("service.call", move |ctx: StepContext, input: Value| {
            service_call(hub.clone(), auth.clone(), http.clone(), ctx, input)
        })?
        .step(INTEGRATION_STEP, IntegrationStep::new(integrations))
}

fn bad_params(message: impl Into<String>) -> NodeError {
    NodeError::permanent("bad_params", message)
}

async fn delay(ctx: StepContext, input: Value) -> StepResult {
    let ms = input["params"]["ms"]
        .as_u64()
        .filter(|ms| *ms <= MAX_DELAY_MS)
        .ok_or_else(|| bad_params(format!("delay needs params.ms, 0 to {MAX_DELAY_MS}")))?;
    ctx.log(
        ate_orchestrate::workflow::LogLevel::Info,
        "sleeping",
        json!({"ms": ms}),
    );
    let until = tokio::time::Instant::now() + Duration::from_millis(ms);
    loop {
        ctx.heartbeat();
        let now = tokio::time::Instant::now();
        if now >= until {
            return Ok(json!({"slept_ms": ms}));
        }
        let step = (until - now).min(Duration::from_secs(1));
        tokio::select! {
            () = tokio::time::sleep(step) => {}
            () = ctx.cancelled() => {
                return Err(NodeError::retryable("cancelled", "the delay was cancelled"));
            }
        }
    }
}

async fn service_call(
    hub: ServiceHub,
    auth: Auth,
    http: reqwest::Client,
    ctx: StepContext,
    input: Value,
) -> StepResult {
    let params = &input["params"];
    let service = params["service"]
        .as_str()
        .ok_or_else(|| bad_params("service.call needs params.service"))
        .and_then(|s| ServiceName::new(s).map_err(|e| bad_params(e.to_string())))?;
    let method = params["method"].as_str().unwrap_or("GET");
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| bad_params(format!("params.method {method:?} is not an HTTP method")))?;
    let (path, query) = match params["path"].as_str().unwrap_or("/").split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (params["path"].as_str().unwrap_or("/"), None),
    };
    let target = Target::new(service.clone(), path, query)
        .map_err(|e| bad_params(format!("params.path: {e}")))?;
    // The run acts in its tenant, with what reading the registry needs and nothing else.
    let principal = Principal::new(ctx.tenant, format!("workflow:{}", ctx.run))
        .map_err(|e| NodeError::permanent("internal", e.to_string()))?
        .permission(REGISTRY_READ);
    let pick = hub
        .pick(&principal, &service, PickOptions::new())
        .await
        .map_err(|e| NodeError::retryable("unavailable", e.to_string()))?;
    // The upstream learns who calls as through the gateway: `workflow:<run>` of the tenant.
    let identity = auth
        .tokens()
        .delegate(
            &principal,
            &format!("svc:{service}"),
            chrono::TimeDelta::seconds(60),
        )
        .map_err(|e| NodeError::retryable("unavailable", e.to_string()))?;
    let url = match upstream_url(&pick.instance().spec.endpoint, &target) {
        Ok(url) => url,
        // Not the instance's fault (a TCP registration): nothing recorded against it.
        Err(e) => return Err(NodeError::permanent("unsupported", e)),
    };
    let mut request = http
        .request(method, url)
        .timeout(CALL_TIMEOUT)
        .header("idempotency-key", ctx.idempotency_key())
        .header("x-ate-identity", identity.token);
    if let Some(body) = params.get("body") {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let answer = tokio::select! {
        r = request.send() => r,
        () = ctx.cancelled() => {
            drop(pick);
            return Err(NodeError::retryable("cancelled", "the call was cancelled"));
        }
    };
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            pick.failure(ate_core::ErrorKind::Unavailable);
            return Err(NodeError::retryable(
                "unavailable",
                format!("{service}: {e}"),
            ));
        }
    };
    let status = response.status();
    let bytes = match response.bytes().await {
        Ok(b) => b,
        Err(e) => {
            pick.failure(ate_core::ErrorKind::Unavailable);
            return Err(NodeError::retryable(
                "unavailable",
                format!("{service}: {e}"),
            ));
        }
    };
    if status.is_server_error() {
        pick.failure(ate_core::ErrorKind::Unavailable);
    } else {
        pick.success();
    }
    let text = &bytes[..bytes.len().min(MAX_CALL_BODY)];
    let body = serde_json::from_slice::<Value>(text)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(text).into_owned()));
    ctx.log(
        ate_orchestrate::workflow::LogLevel::Info,
        "service called",
        json!({"service": service.as_str(), "status": status.as_u16()}),
    );
    match status.as_u16() {
        500..=599 => Err(NodeError::retryable(
            format!("http_{}", status.as_u16()),
            format!("{service} answered {status}"),
        )),
        400..=499 => Err(NodeError::permanent(
            format!("http_{}", status.as_u16()),
            format!("{service} answered {status}"),
        )),
        _ => Ok(json!({"status": status.as_u16(), "body": body})),
    }
}
