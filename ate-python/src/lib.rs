//! The native half of the `ate` Python package (`ate._ate`).
//!
//! The only ATE crate that depends on PyO3. Layout:
//!
//! * `error`: the single mapping from ATE errors to the `ate.AteError` tree;
//! * `convert`: Python values ⇄ Rust types (JSON, aware datetimes, ids);
//! * `types`: immutable result objects (`Tenant`, `AuditEvent`, `ChainReport`, …);
//! * `client`: `Ate` (blocking) and `AsyncAte` (asyncio) over one async core.
//!
//! Every blocking call goes through `block`, which releases the GIL while the operation
//! runs on the shared tokio runtime, so other Python threads keep running.

mod client;
mod convert;
mod crypto;
mod error;
mod types;

use error::Error;
use pyo3::prelude::*;
use std::future::Future;

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

#[pymodule]
fn _ate(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<client::Ate>()?;
    m.add_class::<client::AsyncAte>()?;
    m.add_class::<client::Tenants>()?;
    m.add_class::<client::Audit>()?;
    m.add_class::<client::AsyncTenants>()?;
    m.add_class::<client::AsyncAudit>()?;
    m.add_class::<types::Tenant>()?;
    m.add_class::<types::TenantPage>()?;
    m.add_class::<types::AuditEvent>()?;
    m.add_class::<types::AuditPage>()?;
    m.add_class::<types::ChainHead>()?;
    m.add_class::<types::ChainBreak>()?;
    m.add_class::<types::ChainReport>()?;
    m.add_function(wrap_pyfunction!(error::_error_classes, m)?)?;
    crypto::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
