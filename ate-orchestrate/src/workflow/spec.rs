//! What a caller writes: a workflow's DAG as plain data ([`DagSpec`], [`NodeSpec`]), strict
//! JSON in and out, and the [`Limits`] every definition is held to. Nothing here is trusted
//! until [`DagSpec::validate`] turns it into a [`ValidDag`](super::ValidDag).

use super::condition::Condition;
use super::policy::{NodeTimeouts, RetrySpec};
use crate::OrchestrateError;
use serde::{Deserialize, Serialize};

/// The most nodes a DAG may have, by default.
pub const DEFAULT_MAX_NODES: usize = 1_000;
/// The largest run input (serialized JSON), by default: 1 MiB.
pub const DEFAULT_MAX_INPUT_BYTES: usize = 1 << 20;
/// The largest DAG definition accepted by [`DagSpec::from_json`], by default: 4 MiB.
pub const DEFAULT_MAX_DEFINITION_BYTES: usize = 4 << 20;

/// Limits on what a workflow definition and a run may hold. Hosts lower them for untrusted
/// callers; they exist so that one tenant's definition cannot cost the engine unbounded
/// memory or time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most nodes in one DAG (default [`DEFAULT_MAX_NODES`]).
    pub max_nodes: usize,
    /// Largest run input, as serialized JSON (default [`DEFAULT_MAX_INPUT_BYTES`]).
    pub max_input_bytes: usize,
    /// Largest definition text [`DagSpec::from_json`] reads (default
    /// [`DEFAULT_MAX_DEFINITION_BYTES`]).
    pub max_definition_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_nodes: DEFAULT_MAX_NODES,
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
            max_definition_bytes: DEFAULT_MAX_DEFINITION_BYTES,
        }
    }
}

impl Limits {
    /// Sets [`Limits::max_nodes`].
    pub fn max_nodes(mut self, n: usize) -> Self {
        self.max_nodes = n;
        self
    }

    /// Sets [`Limits::max_input_bytes`].
    pub fn max_input_bytes(mut self, n: usize) -> Self {
        self.max_input_bytes = n;
        self
    }

    /// Sets [`Limits::max_definition_bytes`].
    pub fn max_definition_bytes(mut self, n: usize) -> Self {
        self.max_definition_bytes = n;
        self
    }
}

/// A workflow's DAG as written by a caller: nodes with their dependencies.
///
/// Its JSON form is strict (unknown fields are refused):
///
/// ```json
/// {"nodes": [
///   {"id": "clone", "step": "git.clone"},
///   {"id": "scan-a", "step": "scan", "depends_on": ["clone"],
///    "retry": {"max_attempts": 5}, "timeouts": {"start_to_close_ms": 60000}},
///   {"id": "approve", "signal": "approval", "depends_on": ["scan-a"], "timeout_ms": 86400000},
///   {"id": "deploy", "step": "deploy", "depends_on": ["approve", "scan-a"],
///    "when": {"node": "scan-a", "pointer": "/clean", "op": "equals", "value": true}}
/// ]}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DagSpec {
    /// The nodes, in any order.
    pub nodes: Vec<NodeSpec>,
}

impl DagSpec {
    /// An empty DAG (add nodes with [`DagSpec::node`]; an empty DAG does not validate).
    pub fn new() -> Self {
        DagSpec::default()
    }

    /// Adds `node`.
    pub fn node(mut self, node: NodeSpec) -> Self {
        self.nodes.push(node);
        self
    }

    /// Reads a definition from JSON, refusing text over [`Limits::max_definition_bytes`],
    /// malformed JSON, unknown fields and values of the wrong type (a negative or fractional
    /// timeout, for example) with [`OrchestrateError::InvalidInput`] naming the problem and
    /// where it is. The result still has to be [validated](DagSpec::validate).
    pub fn from_json(text: &[u8], limits: &Limits) -> Result<DagSpec, OrchestrateError> {
        if text.len() > limits.max_definition_bytes {
            return Err(OrchestrateError::invalid(
                "workflow definition",
                format!(
                    "{} bytes is longer than the limit of {}",
                    text.len(),
                    limits.max_definition_bytes
                ),
            ));
        }
        let mut de = serde_json::Deserializer::from_slice(text);
        let dag: DagSpec = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let at = e.path().to_string();
            let e = e.into_inner();
            let reason = if at.is_empty() || at == "." {
                e.to_string()
            } else {
                format!("at {at}: {e}")
            };
            OrchestrateError::invalid("workflow definition", reason)
        })?;
        de.end()
            .map_err(|e| OrchestrateError::invalid("workflow definition", e.to_string()))?;
        Ok(dag)
    }

    /// The definition as JSON (the form [`DagSpec::from_json`] reads).
    pub fn to_json(&self) -> String {
        // A DagSpec holds only strings, numbers, booleans and JSON values: it always
        // serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One node of a [`DagSpec`]: a step to run (`step`) or a signal to wait for (`signal`),
/// exactly one of the two.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct NodeSpec {
    /// Unique within the DAG; the name rules of [`crate::MAX_NAME_LEN`] apply.
    pub id: String,
    /// The registered step handler this node runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The signal this node waits for (delivered to the run by the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// How long a signal node waits before it fails, in milliseconds (none: as long as the
    /// run lives). Only for signal nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The nodes that must finish first; their outputs become part of this node's input.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Runs only if this holds on a dependency's output; otherwise the node and every node
    /// that depends on it are skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// Retries of a failed step (defaults: [`RetrySpec`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// Timeouts of a step's attempts (defaults: [`NodeTimeouts`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<NodeTimeouts>,
    /// When this node fails for good, the run goes on (its dependents are skipped) instead
    /// of failing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_failure: bool,
    /// Fixed arguments for a step node's handler, given to it as `input["params"]` (the
    /// endpoint a built-in integration step calls, say). Not for signal nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Value>,
}

impl NodeSpec {
    /// A node `id` that runs step `step`.
    pub fn step(id: impl Into<String>, step: impl Into<String>) -> Self {
        NodeSpec {
            id: id.into(),
            step: Some(step.into()),
            ..NodeSpec::default()
        }
    }

    /// A node `id` that waits for the signal `signal`.
    pub fn signal(id: impl Into<String>, signal: impl Into<String>) -> Self {
        NodeSpec {
            id: id.into(),
            signal: Some(signal.into()),
            ..NodeSpec::default()
        }
    }

    /// Adds a dependency.
    pub fn depends_on(mut self, node: impl Into<String>) -> Self {
        self.depends_on.push(node.into());
        self
    }

    /// Sets [`NodeSpec::when`].
    pub fn when(mut self, condition: Condition) -> Self {
        self.when = Some(condition);
        self
    }

    /// Sets [`NodeSpec::retry`].
    pub fn retry(mut self, retry: RetrySpec) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Sets [`NodeSpec::timeouts`].
    pub fn timeouts(mut self, timeouts: NodeTimeouts) -> Self {
        self.timeouts = Some(timeouts);
        self
    }

    /// Sets [`NodeSpec::timeout_ms`] (signal nodes).
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// Sets [`NodeSpec::continue_on_failure`].
    pub fn continue_on_failure(mut self, yes: bool) -> Self {
        self.continue_on_failure = yes;
        self
    }

    /// Sets [`NodeSpec::params`].
    pub fn params(mut self, params: serde_json::Value) -> Self {
        self.params = Some(params);
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn json_round_trips_and_is_strict() {
        let dag = DagSpec::new()
            .node(NodeSpec::step("a", "fetch"))
            .node(
                NodeSpec::signal("ok", "approval")
                    .depends_on("a")
                    .timeout_ms(5_000),
            )
            .node(
                NodeSpec::step("b", "build")
                    .depends_on("ok")
                    .continue_on_failure(true),
            );
        let limits = Limits::default();
        let text = dag.to_json();
        assert_eq!(DagSpec::from_json(text.as_bytes(), &limits).unwrap(), dag);
        for (bad, says) in [
            (
                r#"{"nodes": [{"id": "a", "step": "s", "colour": 1}]}"#,
                "unknown field `colour`",
            ),
            (r#"{"nodes": [], "extra": true}"#, "unknown field `extra`"),
            (
                r#"{"nodes": [{"id": "a", "signal": "s", "timeout_ms": -5}]}"#,
                "-5",
            ),
            (
                r#"{"nodes": [{"id": "a", "signal": "s", "timeout_ms": 1.5}]}"#,
                "1.5",
            ),
            (r#"{"nodes": [{"id": 7}]}"#, "invalid type"),
            (r#"{"nodes": "#, "EOF"),
            ("", "EOF"),
        ] {
            let e = DagSpec::from_json(bad.as_bytes(), &limits).unwrap_err();
            assert!(
                e.to_string().starts_with("invalid workflow definition: ")
                    && e.to_string().contains(says),
                "{bad}: {e}"
            );
        }
        let tiny = Limits::default().max_definition_bytes(10);
        let e = DagSpec::from_json(text.as_bytes(), &tiny).unwrap_err();
        assert!(e.to_string().contains("longer than the limit of 10"), "{e}");
    }
}
