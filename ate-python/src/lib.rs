//! The native half of the `ate` Python package (`ate._ate`).
//!
//! The only ATE crate that depends on PyO3. Layout:
//!
//! * `error`: the single mapping from ATE errors to the `ate.AteError` tree;
//! * `convert`: Python values ⇄ Rust types (JSON, aware datetimes, ids);
//! * `types`: immutable result objects (`Tenant`, `AuditEvent`, `ChainReport`, …);
//! * `client`: `Ate` (blocking) and `AsyncAte` (asyncio) over one async core;
//! * `storage`: `a.storage`, encrypted objects (bytes or streamed file objects);
//! * `auth`: `a.auth`, users, logins, tokens and sessions; `ate.auth.JwtVerifier`;
//! * `registry`: `a.registry`, service discovery, health checks, balancing, metrics, alerts;
//! * `crypto`: `ate.crypto`, Cobblestone-256 one-shot.
//!
//! Every blocking call goes through `block`, which releases the GIL while the operation
//! runs on the shared tokio runtime, so other Python threads keep running.

/// Runs `$op` the way the class `$mode` (`sync` or `async`) delivers results.
macro_rules! dispatch {
    (sync, $py:expr, $op:expr) => {{
        let value = block($py, $op)?;
        let object: Bound<'_, PyAny> = value
            .into_pyobject($py)
            .map_err(Into::<PyErr>::into)?
            .into_any();
        object.unbind()
    }};
    (async, $py:expr, $op:expr) => {
        awaitable($py, $op)?.unbind()
    };
}

mod auth;
mod client;
mod convert;
mod crypto;
mod error;
mod registry;
mod storage;
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
    m.add_class::<storage::Storage>()?;
    m.add_class::<storage::AsyncStorage>()?;
    m.add_class::<storage::ObjectReader>()?;
    m.add_class::<storage::AsyncObjectReader>()?;
    m.add_class::<types::ObjectInfo>()?;
    m.add_class::<types::ObjectPage>()?;
    m.add_class::<types::KeyInfo>()?;
    m.add_class::<types::ReencryptProgress>()?;
    m.add_class::<types::GcReport>()?;
    m.add_class::<auth::Auth>()?;
    m.add_class::<auth::AsyncAuth>()?;
    m.add_class::<auth::JwtVerifier>()?;
    m.add_class::<types::Principal>()?;
    m.add_class::<types::User>()?;
    m.add_class::<types::UserPage>()?;
    m.add_class::<types::Session>()?;
    m.add_class::<types::Tokens>()?;
    m.add_class::<types::SigningKeyInfo>()?;
    m.add_class::<registry::Registry>()?;
    m.add_class::<registry::AsyncRegistry>()?;
    m.add_class::<registry::Pick>()?;
    m.add_class::<registry::CheckDefinition>()?;
    m.add_class::<types::Instance>()?;
    m.add_class::<types::Stats>()?;
    m.add_class::<types::CheckResult>()?;
    m.add_class::<types::AlertEvent>()?;
    m.add_function(wrap_pyfunction!(registry::http_check, m)?)?;
    m.add_function(wrap_pyfunction!(registry::tcp_check, m)?)?;
    m.add_function(wrap_pyfunction!(registry::ttl_check, m)?)?;
    m.add_function(wrap_pyfunction!(error::_error_classes, m)?)?;
    crypto::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
