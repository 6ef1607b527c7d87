//! A run to submit ([`RunSpec`]): the DAG, the input, and how the run is keyed, scheduled,
//! prioritised, labelled and bounded; [`RunSpec::validate`] checks it all before anything is
//! stored.

use super::dag::{StepName, ValidDag};
use super::spec::{DagSpec, Limits};
use crate::OrchestrateError;
use crate::name::validate_token;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Longest idempotency key (bytes).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
/// Most labels on one run.
pub const MAX_LABELS: usize = 32;
/// Longest label key (bytes; the name rules of node ids).
pub const MAX_LABEL_KEY_LEN: usize = 64;
/// Longest label value (bytes).
pub const MAX_LABEL_VALUE_LEN: usize = 256;
/// Priorities go from `-MAX_PRIORITY` to `MAX_PRIORITY`; higher runs first, 0 by default.
pub const MAX_PRIORITY: i32 = 1_000;
/// The longest run timeout: 366 days.
pub const MAX_RUN_TIMEOUT: Duration = Duration::from_secs(366 * 24 * 3600);

/// A run to submit for a tenant.
///
/// * `idempotency_key`: submitting again with the same key (for the same tenant) returns
///   the run the first submission made, never a second one.
/// * `start_at`: the run waits until then (a delayed run).
/// * `priority`: among ready work of one tenant, higher first.
/// * `labels`: for filtering and for the dashboard.
/// * `timeout`: the whole run's limit; when it passes, running handlers are cancelled and the
///   run fails.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunSpec {
    /// The DAG.
    pub dag: DagSpec,
    /// The run's input (every node sees it).
    pub input: Value,
    /// Makes submission idempotent.
    pub idempotency_key: Option<String>,
    /// Not before this time.
    pub start_at: Option<DateTime<Utc>>,
    /// Higher first.
    pub priority: i32,
    /// Free-form key/value labels.
    pub labels: BTreeMap<String, String>,
    /// The whole run's limit.
    pub timeout: Option<Duration>,
}

impl RunSpec {
    /// A run of `dag` with `input`, keyed by nothing, starting now, priority 0.
    pub fn new(dag: DagSpec, input: Value) -> Self {
        RunSpec {
            dag,
            input,
            idempotency_key: None,
            start_at: None,
            priority: 0,
            labels: BTreeMap::new(),
            timeout: None,
        }
    }

    /// Sets [`RunSpec::idempotency_key`].
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sets [`RunSpec::start_at`].
    pub fn start_at(mut self, at: DateTime<Utc>) -> Self {
        self.start_at = Some(at);
        self
    }

    /// Sets [`RunSpec::priority`].
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets [`RunSpec::timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Checks the run and validates its DAG ([`DagSpec::validate`]); returns both, ready
    /// for a [`WorkflowStore`](super::WorkflowStore).
    ///
    /// Besides the DAG's own checks, refused with [`OrchestrateError::InvalidInput`]: an input
    /// over [`Limits::max_input_bytes`] once serialized; an idempotency key that is empty,
    /// longer than [`MAX_IDEMPOTENCY_KEY_LEN`] or holds control characters; a priority
    /// outside ±[`MAX_PRIORITY`]; more than [`MAX_LABELS`] labels, a key that breaks the name
    /// rules or a value over [`MAX_LABEL_VALUE_LEN`] bytes or with control characters; a zero
    /// timeout or one over [`MAX_RUN_TIMEOUT`].
    pub fn validate(
        &self,
        limits: &Limits,
        is_step: &dyn Fn(&StepName) -> bool,
    ) -> Result<ValidRun, OrchestrateError> {
        let bad = |what, reason: String| OrchestrateError::invalid(what, reason);
        let input_bytes = serde_json::to_vec(&self.input)
            .map_err(|e| bad("run input", format!("cannot be serialized: {e}")))?
            .len();
        if input_bytes > limits.max_input_bytes {
            return Err(bad(
                "run input",
                format!(
                    "{input_bytes} bytes is larger than the limit of {}",
                    limits.max_input_bytes
                ),
            ));
        }
        if let Some(key) = &self.idempotency_key {
            if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
                return Err(bad(
                    "idempotency key",
                    format!(
                        "{} bytes; it must have 1 to {MAX_IDEMPOTENCY_KEY_LEN}",
                        key.len()
                    ),
                ));
            }
            if key.chars().any(char::is_control) {
                return Err(bad("idempotency key", "holds a control character".into()));
            }
        }
        if !(-MAX_PRIORITY..=MAX_PRIORITY).contains(&self.priority) {
            return Err(bad(
                "priority",
                format!(
                    "{} is outside -{MAX_PRIORITY}..={MAX_PRIORITY}",
                    self.priority
                ),
            ));
        }
        if self.labels.len() > MAX_LABELS {
            return Err(bad(
                "labels",
                format!("{} labels, at most {MAX_LABELS}", self.labels.len()),
            ));
        }
        for (key, value) in &self.labels {
            validate_token("label key", key, MAX_LABEL_KEY_LEN)?;
            if value.len() > MAX_LABEL_VALUE_LEN {
                return Err(bad(
                    "label value",
                    format!(
                        "label {key}: {} bytes, at most {MAX_LABEL_VALUE_LEN}",
                        value.len()
                    ),
                ));
            }
            if value.chars().any(char::is_control) {
                return Err(bad(
                    "label value",
                    format!("label {key} holds a control character"),
                ));
            }
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err(bad("run timeout", "must be positive".into()));
        }
        if let Some(t) = self.timeout
            && t > MAX_RUN_TIMEOUT
        {
            return Err(bad(
                "run timeout",
                format!("{} s is longer than the limit of 366 days", t.as_secs()),
            ));
        }
        let dag = self.dag.validate(limits, is_step)?;
        Ok(ValidRun {
            spec: self.clone(),
            dag,
        })
    }
}

/// A [`RunSpec`] that passed [`RunSpec::validate`], with its validated DAG.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRun {
    spec: RunSpec,
    dag: ValidDag,
}

impl ValidRun {
    /// The run as submitted.
    pub fn spec(&self) -> &RunSpec {
        &self.spec
    }

    /// Its DAG, validated.
    pub fn dag(&self) -> &ValidDag {
        &self.dag
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::workflow::NodeSpec;
    use serde_json::json;

    fn dag() -> DagSpec {
        DagSpec::new().node(NodeSpec::step("a", "s"))
    }

    fn check(run: &RunSpec) -> Result<ValidRun, OrchestrateError> {
        run.validate(&Limits::default(), &|_| true)
    }

    #[test]
    fn a_full_run_validates() {
        let run = RunSpec::new(dag(), json!({"repo": "https://example.com/r.git"}))
            .idempotency_key("import-42")
            .start_at(Utc::now())
            .priority(-5)
            .label("team", "search")
            .timeout(Duration::from_secs(3600));
        assert_eq!(check(&run).unwrap().dag().nodes().len(), 1);
    }

    #[test]
    fn bad_runs_name_the_problem() {
        let run = || RunSpec::new(dag(), json!({}));
        let many = (0..=MAX_LABELS).fold(run(), |r, i| r.label(format!("k{i}"), "v"));
        for (run, says) in [
            (
                run().idempotency_key(""),
                "invalid idempotency key: 0 bytes",
            ),
            (run().idempotency_key("k".repeat(256)), "256 bytes"),
            (run().idempotency_key("a\nb"), "control character"),
            (run().priority(1_001), "1001 is outside -1000..=1000"),
            (run().priority(i32::MIN), "is outside"),
            (many, "33 labels, at most 32"),
            (run().label("has space", "v"), "invalid label key"),
            (run().label("k", "v".repeat(257)), "label k: 257 bytes"),
            (
                run().label("k", "a\u{0}b"),
                "label k holds a control character",
            ),
            (
                run().timeout(Duration::ZERO),
                "invalid run timeout: must be positive",
            ),
            (RunSpec::new(DagSpec::new(), json!({})), "at least one node"),
        ] {
            let e = check(&run).unwrap_err();
            assert!(e.to_string().contains(says), "wanted {says:?} in {e}");
        }
        let big = RunSpec::new(dag(), json!({"blob": "x".repeat(100)}));
        let e = big
            .validate(&Limits::default().max_input_bytes(50), &|_| true)
            .unwrap_err();
        assert!(e.to_string().contains("larger than the limit of 50"), "{e}");
    }
}
