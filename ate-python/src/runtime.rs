//! Running ATE's async Rust from Python.
//!
//! One tokio runtime (pyo3-async-runtimes') serves every client. A blocking class enters it
//! with the GIL released ([`block`]), so other Python threads keep running; an asyncio class
//! hands the same future to the event loop as an awaitable ([`awaitable`]). Each API class
//! is generated twice from one macro, and `dispatch!` picks the delivery by the class's mode.

/// Runs `$op` the way the class `$mode` (`sync` or `async`) delivers results.
macro_rules! dispatch {
    (sync, $py:expr, $op:expr) => {
        $crate::runtime::to_object($py, $crate::runtime::block($py, $op)?)?
    };
    (async, $py:expr, $op:expr) => {
        $crate::runtime::awaitable($py, $op)?.unbind()
    };
}

use crate::error::Error;
use pyo3::prelude::*;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};

/// Runs `fut` to completion on the shared runtime with the GIL released.
pub(crate) fn block<F, T>(py: Python<'_>, fut: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>> + Send,
    T: Send,
{
    py.detach(|| pyo3_async_runtimes::tokio::get_runtime().block_on(fut))
}

/// Wraps `fut` as an asyncio awaitable driven by the shared runtime.
pub(crate) fn awaitable<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    pyo3_async_runtimes::tokio::future_into_py(py, async move { fut.await.map_err(PyErr::from) })
}

/// What a call that has no result gives Python: `None`. (pyo3 makes Rust's `()` an empty
/// tuple, which is not what the stubs promise.)
pub(crate) struct Done;

impl<'py> IntoPyObject<'py> for Done {
    type Target = pyo3::types::PyNone;
    type Output = Borrowed<'py, 'py, pyo3::types::PyNone>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(pyo3::types::PyNone::get(py))
    }
}

/// A Rust value as a Python object.
pub(crate) fn to_object<'py, T: IntoPyObject<'py>>(
    py: Python<'py>,
    value: T,
) -> PyResult<Py<PyAny>> {
    pyo3::IntoPyObjectExt::into_py_any(value, py)
}

/// Locks `m` even if a thread panicked while holding it: every critical section of this
/// crate leaves its value consistent, so a panic elsewhere cannot leave it half-written.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
