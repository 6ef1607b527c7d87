//! Python callables as step handlers ([`PyStep`]) and what they are given ([`StepContext`]).
//!
//! A handler runs on a blocking thread of the shared runtime, holding the GIL only while
//! Python runs: a plain function is called there; an `async def` function's coroutine is
//! run to completion there with `asyncio.run` (its own event loop, not the caller's).
//! Several handlers run at once (the worker's concurrency); they take turns on the GIL like
//! any Python threads.
//!
//! A handler returns any JSON-serializable value (the node's output). An exception fails
//! the attempt: `ate.workflows.StepFailed(message, kind=..., retryable=...)` says how;
//! any other exception is a retryable failure of kind `<ExceptionClass>`.

use crate::convert::{from_json, to_json};
use ate_orchestrate::workflow::{self as wf, LogLevel, NodeError};
use pyo3::prelude::*;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

/// A registered Python step handler.
pub(crate) struct PyStep {
    func: Py<PyAny>,
    is_async: bool,
}

impl PyStep {
    /// Wraps `func`, which must be callable as `func(ctx, input)`.
    pub(crate) fn new(func: &Bound<'_, PyAny>) -> Result<Self, crate::error::Error> {
        if !func.is_callable() {
            return Err(crate::error::Error::invalid(
                "a step handler must be callable as handler(ctx, input)",
            ));
        }
        let is_async = func
            .py()
            .import("inspect")
            .and_then(|m| m.call_method1("iscoroutinefunction", (func,)))
            .and_then(|r| r.extract::<bool>())
            .map_err(crate::error::Error::python)?;
        Ok(PyStep {
            func: func.clone().unbind(),
            is_async,
        })
    }

    /// Calls the handler on this thread (which must be allowed to block).
    fn call(&self, ctx: wf::StepContext, input: Value) -> Result<Value, NodeError> {
        Python::attach(|py| {
            let run = || -> PyResult<Bound<'_, PyAny>> {
                let ctx = Py::new(py, StepContext { inner: ctx })?;
                let input = from_json(py, &input)?;
                let out = self.func.bind(py).call1((ctx, input))?;
                if self.is_async {
                    py.import("asyncio")?.call_method1("run", (out,))
                } else {
                    Ok(out)
                }
            };
            match run() {
                Ok(out) => to_json(&out, "the step's result")
                    .map_err(|e| NodeError::permanent("bad_output", format!("{e:?}"))),
                Err(e) => Err(node_error(py, &e)),
            }
        })
    }
}

/// The node error for an exception a handler raised.
fn node_error(py: Python<'_>, e: &PyErr) -> NodeError {
    let value = e.value(py);
    let kind = value
        .getattr("kind")
        .and_then(|k| k.extract::<String>())
        .or_else(|_| value.get_type().name().map(|n| n.to_string()))
        .unwrap_or_else(|_| "exception".into());
    let retryable = value
        .getattr("retryable")
        .and_then(|r| r.extract::<bool>())
        .unwrap_or(true);
    let message = value
        .str()
        .map(|s| s.to_string())
        .unwrap_or_else(|_| e.to_string());
    if retryable {
        NodeError::retryable(kind, message)
    } else {
        NodeError::permanent(kind, message)
    }
}

/// Handlers are shared by the worker's tasks: one per registered name.
pub(crate) struct SharedStep(pub(crate) std::sync::Arc<PyStep>);

impl wf::StepHandler for SharedStep {
    fn run(
        &self,
        ctx: wf::StepContext,
        input: Value,
    ) -> Pin<Box<dyn Future<Output = wf::StepResult> + Send>> {
        let step = self.0.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || step.call(ctx, input))
                .await
                .unwrap_or_else(|e| {
                    Err(NodeError::retryable(
                        "panic",
                        format!("the step's thread failed: {e}"),
                    ))
                })
        })
    }
}

/// What a step handler is given besides its input (`ctx`): which run, node and attempt it
/// is, a key stable across attempts, cancellation, heartbeats and the run's log.
#[pyclass(module = "ate.workflows", frozen)]
pub(crate) struct StepContext {
    inner: wf::StepContext,
}

#[pymethods]
impl StepContext {
    /// The run's tenant id.
    #[getter]
    fn tenant(&self) -> String {
        self.inner.tenant.to_string()
    }

    /// The run id.
    #[getter]
    fn run(&self) -> String {
        self.inner.run.to_string()
    }

    /// The node id.
    #[getter]
    fn node(&self) -> String {
        self.inner.node.to_string()
    }

    /// This attempt's number (1 for the first).
    #[getter]
    fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// `"<run>/<node>"`: the same for every attempt of this node, for the systems a step
    /// changes (so a repeated attempt changes nothing twice).
    #[getter]
    fn idempotency_key(&self) -> String {
        self.inner.idempotency_key()
    }

    /// Whether the attempt should stop (run cancelled or failing, timeout, shutdown):
    /// check it in long loops and return soon after.
    fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }

    /// Says the handler is alive (nodes with a heartbeat timeout need it that often).
    fn heartbeat(&self) {
        self.inner.heartbeat();
    }

    /// Writes to the run's log: `level` is `"debug"`, `"info"`, `"warn"` or `"error"`;
    /// `fields` any JSON-serializable value.
    #[pyo3(signature = (level, message, fields = None))]
    fn log(&self, level: &str, message: &str, fields: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let level = LogLevel::parse(level).map_err(crate::error::Error::from)?;
        let fields = fields
            .map(|f| to_json(f, "log fields"))
            .transpose()?
            .unwrap_or(Value::Null);
        self.inner.log(level, message, fields);
        Ok(())
    }

    /// `log("info", message)`.
    fn info(&self, message: &str) {
        self.inner.info(message);
    }

    fn __repr__(&self) -> String {
        format!(
            "StepContext(run='{}', node='{}', attempt={})",
            self.inner.run, self.inner.node, self.inner.attempt
        )
    }
}
