//! Conditional edges and node inputs: a [`Condition`] decides from one dependency's output
//! whether a node runs, and [`node_input`] builds what a node's handler receives.

use crate::OrchestrateError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest JSON pointer in a [`Condition`].
pub const MAX_POINTER_LEN: usize = 512;

/// A test on one dependency's output: the node runs only if it holds; otherwise the node is
/// `skipped`, and so is every node that depends on it.
///
/// `pointer` is an RFC 6901 JSON pointer into the output (`""` is the whole output,
/// `/report/clean` a member). A pointer that finds nothing makes `exists` false and every
/// other test false too (`not_equals` included: a missing value is not "different", it is
/// absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Condition {
    /// The dependency whose output is tested (must be in the node's `depends_on`).
    pub node: String,
    /// Where in that output.
    #[serde(default)]
    pub pointer: String,
    /// The test.
    pub op: ConditionOp,
    /// The value `equals` and `not_equals` compare with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// What a [`Condition`] tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConditionOp {
    /// The value is there and equals `value`.
    Equals,
    /// The value is there and differs from `value`.
    NotEquals,
    /// The value is there (`null` included).
    Exists,
    /// The value is there and is not `false`, `null`, `0`, `""`, `[]` or `{}`.
    Truthy,
}

impl Condition {
    /// `node`'s output at `pointer` equals `value`.
    pub fn equals(node: impl Into<String>, pointer: impl Into<String>, value: Value) -> Self {
        Condition::new(node, pointer, ConditionOp::Equals, Some(value))
    }

    /// `node`'s output at `pointer` is there and differs from `value`.
    pub fn not_equals(node: impl Into<String>, pointer: impl Into<String>, value: Value) -> Self {
        Condition::new(node, pointer, ConditionOp::NotEquals, Some(value))
    }

    /// `node`'s output has a value at `pointer`.
    pub fn exists(node: impl Into<String>, pointer: impl Into<String>) -> Self {
        Condition::new(node, pointer, ConditionOp::Exists, None)
    }

    /// `node`'s output at `pointer` is truthy.
    pub fn truthy(node: impl Into<String>, pointer: impl Into<String>) -> Self {
        Condition::new(node, pointer, ConditionOp::Truthy, None)
    }

    fn new(
        node: impl Into<String>,
        pointer: impl Into<String>,
        op: ConditionOp,
        value: Option<Value>,
    ) -> Self {
        Condition {
            node: node.into(),
            pointer: pointer.into(),
            op,
            value,
        }
    }

    /// Checks the pointer's syntax and that `value` is given exactly when the test needs
    /// it. (That `node` is a dependency is checked with the DAG.)
    pub(crate) fn validate(&self, owner: &str) -> Result<(), OrchestrateError> {
        let bad = |reason: String| {
            OrchestrateError::invalid("condition", format!("node {owner}: {reason}"))
        };
        if self.pointer.len() > MAX_POINTER_LEN {
            return Err(bad(format!(
                "the pointer is {} bytes, at most {MAX_POINTER_LEN}",
                self.pointer.len()
            )));
        }
        if !(self.pointer.is_empty() || self.pointer.starts_with('/')) {
            return Err(bad(format!(
                "pointer {:?} must be empty or start with '/' (RFC 6901)",
                self.pointer
            )));
        }
        let mut chars = self.pointer.chars();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                return Err(bad(format!(
                    "pointer {:?} has a '~' not followed by 0 or 1",
                    self.pointer
                )));
            }
        }
        let needs_value = matches!(self.op, ConditionOp::Equals | ConditionOp::NotEquals);
        match (needs_value, self.value.is_some()) {
            (true, false) => Err(bad(format!("{:?} needs a value", self.op))),
            (false, true) => Err(bad(format!("{:?} takes no value", self.op))),
            _ => Ok(()),
        }
    }

    /// Whether the condition holds on `output` (the output of [`Condition::node`]).
    pub fn holds(&self, output: &Value) -> bool {
        let Some(found) = output.pointer(&self.pointer) else {
            return false;
        };
        match self.op {
            ConditionOp::Exists => true,
            ConditionOp::Equals => self.value.as_ref() == Some(found),
            ConditionOp::NotEquals => self.value.as_ref().is_some_and(|v| v != found),
            ConditionOp::Truthy => match found {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
            },
        }
    }
}

/// What a node's handler receives: `{"input": <the run's input>, "deps": {<dependency id>:
/// <its output>, …}}`, plus `"params"` when the node has
/// [`params`](super::NodeSpec::params). A dependency that was skipped, or failed with
/// `continue_on_failure`, is absent from `deps`.
pub fn node_input<'a>(
    run_input: &Value,
    deps: impl IntoIterator<Item = (&'a str, &'a Value)>,
) -> Value {
    let deps: Map<String, Value> = deps
        .into_iter()
        .map(|(id, out)| (id.to_owned(), out.clone()))
        .collect();
    let mut input = Map::new();
    input.insert("input".into(), run_input.clone());
    input.insert("deps".into(), Value::Object(deps));
    Value::Object(input)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_hold_on_outputs() {
        let out = json!({"clean": true, "count": 0, "name": "x", "list": [], "a~b": {"c/d": 1}});
        assert!(Condition::equals("s", "/clean", json!(true)).holds(&out));
        assert!(!Condition::equals("s", "/clean", json!(false)).holds(&out));
        assert!(!Condition::equals("s", "/missing", json!(null)).holds(&out));
        assert!(Condition::not_equals("s", "/name", json!("y")).holds(&out));
        assert!(!Condition::not_equals("s", "/missing", json!("y")).holds(&out));
        assert!(Condition::exists("s", "/a~0b/c~1d").holds(&out));
        assert!(Condition::exists("s", "").holds(&out));
        assert!(!Condition::exists("s", "/nope").holds(&out));
        assert!(Condition::truthy("s", "/clean").holds(&out));
        for falsy in ["/count", "/list", "/missing"] {
            assert!(!Condition::truthy("s", falsy).holds(&out), "{falsy}");
        }
        assert!(Condition::truthy("s", "/name").holds(&out));
    }

    #[test]
    fn bad_conditions_name_the_problem() {
        let with_op = |op, value| Condition::new("s", "/a", op, value);
        for (c, says) in [
            (
                Condition::exists("s", "a"),
                "must be empty or start with '/'",
            ),
            (Condition::exists("s", "/a~2"), "'~' not followed by 0 or 1"),
            (Condition::exists("s", "/a~"), "'~' not followed by 0 or 1"),
            (
                Condition::exists("s", format!("/{}", "x".repeat(600))),
                "at most 512",
            ),
            (with_op(ConditionOp::Equals, None), "Equals needs a value"),
            (
                with_op(ConditionOp::Truthy, Some(json!(1))),
                "Truthy takes no value",
            ),
        ] {
            let e = c.validate("deploy").unwrap_err();
            assert!(
                e.to_string().contains(says) && e.to_string().contains("node deploy"),
                "{e}"
            );
        }
        let json = r#"{"node": "s", "op": "sometimes"}"#;
        assert!(serde_json::from_str::<Condition>(json).is_err());
    }

    #[test]
    fn node_input_holds_the_run_input_and_dependency_outputs() {
        let a = json!({"files": 3});
        let input = node_input(&json!({"repo": "r"}), [("a", &a)]);
        assert_eq!(
            input,
            json!({"input": {"repo": "r"}, "deps": {"a": {"files": 3}}})
        );
        assert_eq!(
            node_input(&json!(null), []),
            json!({"input": null, "deps": {}})
        );
    }
}
