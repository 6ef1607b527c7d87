//! The built-in workflow step that calls an integration endpoint ([`IntegrationStep`]),
//! registered under [`INTEGRATION_STEP`] so that a DAG can notify or pull from external
//! systems with the node's retry policy and timeouts.
//!
//! The node's [`params`](crate::workflow::NodeSpec::params): `{"endpoint": "<name>"}`, and
//! optionally `"body"` (sent as is; without it the node's input — the run's input and its
//! dependencies' outputs — is sent). The endpoint is the run's tenant's. The node's output
//! is `{"status": <HTTP status>, "body": <the answer>}`.
//!
//! Failures: a retryable [`CallError`] (transport, 408, 429, 5xx) is a retryable attempt
//! failure of kind `http_<status>` or `transport`; other statuses fail the node for good,
//! as do a missing or unknown endpoint (`endpoint_not_found`) and bad params
//! (`bad_params`). A cancelled run cancels the call.

use super::client::{CallError, CallRequest, IntegrationClient};
use crate::workflow::{NodeError, StepContext, StepHandler, StepResult};
use ate_core::{Classify, ErrorKind};
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;

/// The step name the built-in integration step is registered under.
pub const INTEGRATION_STEP: &str = "ate.integration";

/// Calls the integration endpoint a node's params name.
#[derive(Debug, Clone)]
pub struct IntegrationStep {
    client: IntegrationClient,
}

impl IntegrationStep {
    /// The step over `client`; register it with
    /// `engine.step(INTEGRATION_STEP, IntegrationStep::new(client))`.
    pub fn new(client: IntegrationClient) -> Self {
        IntegrationStep { client }
    }
}

impl StepHandler for IntegrationStep {
    fn run(
        &self,
        ctx: StepContext,
        input: Value,
    ) -> Pin<Box<dyn Future<Output = StepResult> + Send>> {
        let client = self.client.clone();
        Box::pin(async move {
            let Some(endpoint) = input["params"]["endpoint"].as_str().map(str::to_owned) else {
                return Err(NodeError::permanent(
                    "bad_params",
                    "the node's params need \"endpoint\": the name of an integration endpoint",
                ));
            };
            let body = match input["params"].get("body") {
                Some(body) => body.clone(),
                None => json!({"input": input["input"], "deps": input["deps"]}),
            };
            let request = CallRequest::json(body);
            let call = client.call_unchecked(ctx.tenant, &endpoint, &request);
            let result = tokio::select! {
                result = call => result,
                () = ctx.cancelled() => {
                    return Err(NodeError::retryable("cancelled", "the call was cancelled"));
                }
            };
            match result {
                Ok(Ok(response)) => Ok(json!({"status": response.status, "body": response.body})),
                Ok(Err(e)) => {
                    let kind = match &e {
                        CallError::Status { status, .. } => format!("http_{status}"),
                        _ => "transport".to_owned(),
                    };
                    ctx.log(
                        crate::workflow::LogLevel::Warn,
                        "integration call failed",
                        json!({"endpoint": endpoint, "error": e.to_string()}),
                    );
                    if e.retryable() {
                        Err(NodeError::retryable(kind, e.to_string()))
                    } else {
                        Err(NodeError::permanent(kind, e.to_string()))
                    }
                }
                Err(e) if e.kind() == ErrorKind::NotFound => Err(NodeError::permanent(
                    "endpoint_not_found",
                    format!("no integration endpoint {endpoint:?} in this tenant"),
                )),
                Err(e) => Err(if e.is_retryable() {
                    NodeError::retryable("integration", e.to_string())
                } else {
                    NodeError::permanent("integration", e.to_string())
                }),
            }
        })
    }
}
