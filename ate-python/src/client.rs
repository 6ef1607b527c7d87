//! `ate.Ate` (blocking) and `ate.AsyncAte` (asyncio): a client, its domains, and the
//! principal it acts as.
//!
//! A client opened by its constructor acts as its own platform administrator (`actor=`).
//! `acting_as(principal)` returns another client of the same class over the same
//! connections and stores that acts as `principal` in every domain: `tenants`, `audit`,
//! `storage`, `projects`, `analysis`, `auth` and `registry`. Such a view does not own the connections: closing it
//! (or leaving its `with` block) leaves them open; closing the client it came from closes
//! them for every view.

use crate::analysis::{Analysis, AsyncAnalysis};
use crate::audit::{AsyncAudit, Audit};
use crate::auth::{AsyncAuth, Auth};
use crate::core::{Core, View};
use crate::options::{Options, auth_config, host_principal};
use crate::projects::{AsyncProjects, Projects};
use crate::registry::{AsyncRegistry, Registry};
use crate::runtime::{Done, awaitable, block};
use crate::storage::{AsyncStorage, Storage};
use crate::tenants::{AsyncTenants, Tenants};
use crate::types::auth::Principal;
use crate::workflows::{AsyncWorkflows, Workflows};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::sync::OnceLock;

/// The blocking client: `ate.Ate(database_url, *, ...)`.
///
/// Keywords: `storage_url` enables `a.storage`; `auth_issuer` and `auth_audience` enable
/// `a.auth`; either needs `master_key` (32 bytes or a key file path), under which tenant
/// data keys and token signing keys are wrapped, with `retired_master_keys` still able to
/// unwrap. `insecure_fast_password_hashing=True` replaces Argon2id's OWASP cost with a
/// trivial one: FOR TESTS ONLY, never with real passwords. `actor` is the platform
/// administrator the process acts as in the audit log. `auth_verify_cache_seconds` (default
/// 1.0) bounds how long `a.auth.verify` may trust a cached "user and session still active"
/// answer, i.e. how soon changes made by another process on the same database are seen;
/// 0 turns the cache off (every verification reads the database). `key_cache_seconds`
/// (default 1.0) bounds how long storage keeps unwrapped tenant and project data keys, i.e.
/// how soon a key destroyed or a tenant suspended by another process stops being used here
/// (in this process it takes effect at once); 0 unwraps on every operation. `a.registry` (service
/// discovery, health checks, balancing, metrics, alerts) needs no keyword.
///
/// `a.acting_as(principal)` is the same client acting as a verified principal (from
/// `a.auth.verify`) in every domain.
#[pyclass(module = "ate", frozen)]
pub(crate) struct Ate {
    view: View,
    /// Whether this client opened the connections (a view of `acting_as` did not).
    owner: bool,
    #[pyo3(get)]
    tenants: Py<Tenants>,
    #[pyo3(get)]
    audit: Py<Audit>,
    storage: Py<Storage>,
    projects: Py<Projects>,
    analysis: Py<Analysis>,
    auth: Py<Auth>,
    registry: OnceLock<Py<Registry>>,
    /// The durable workflow engine: step handlers, workers, runs. Its tables are opened on
    /// the first call that needs them.
    #[pyo3(get)]
    workflows: Py<Workflows>,
}

impl Ate {
    fn wrap(py: Python<'_>, view: View, owner: bool) -> PyResult<Self> {
        Ok(Ate {
            tenants: Py::new(py, Tenants { view: view.clone() })?,
            audit: Py::new(py, Audit { view: view.clone() })?,
            storage: Py::new(py, Storage { view: view.clone() })?,
            projects: Py::new(py, Projects { view: view.clone() })?,
            analysis: Py::new(py, Analysis { view: view.clone() })?,
            auth: Py::new(py, Auth { view: view.clone() })?,
            registry: OnceLock::new(),
            workflows: Py::new(py, Workflows { view: view.clone() })?,
            owner,
            view,
        })
    }
}

#[pymethods]
impl Ate {
    #[new]
    #[pyo3(signature = (database_url, *, storage_url = None, master_key = None, retired_master_keys = None, auth_issuer = None, auth_audience = None, auth_verify_cache_seconds = 1.0, key_cache_seconds = 1.0, insecure_fast_password_hashing = false, actor = "system:python"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        database_url: String,
        storage_url: Option<String>,
        master_key: Option<&Bound<'_, PyAny>>,
        retired_master_keys: Option<&Bound<'_, PyAny>>,
        auth_issuer: Option<String>,
        auth_audience: Option<String>,
        auth_verify_cache_seconds: f64,
        key_cache_seconds: f64,
        insecure_fast_password_hashing: bool,
        actor: &str,
    ) -> PyResult<Self> {
        let principal = host_principal(actor)?;
        let auth = auth_config(
            auth_issuer,
            auth_audience,
            auth_verify_cache_seconds,
            insecure_fast_password_hashing,
        )?;
        let options = Options::new(storage_url, master_key, retired_master_keys, auth)?
            .key_cache_ttl(key_cache_seconds)?;
        let core = block(py, Core::open(database_url, options))?;
        Ate::wrap(py, View::new(core, principal), true)
    }

    /// This client over the same connections, acting as `principal` (from
    /// `a.auth.verify`) in every domain; every permission check applies to it.
    fn acting_as(&self, py: Python<'_>, principal: &Bound<'_, Principal>) -> PyResult<Self> {
        let view = View::new(self.view.core.clone(), principal.get().inner().clone());
        Ate::wrap(py, view, false)
    }

    /// The principal this client acts as.
    #[getter]
    fn principal(&self) -> Principal {
        Principal::new(self.view.actor.clone())
    }

    /// Encrypted object storage; raises `InvalidInputError` unless the client was opened
    /// with `storage_url` and `master_key`.
    #[getter]
    fn storage(&self, py: Python<'_>) -> PyResult<Py<Storage>> {
        self.view.core.objects()?;
        Ok(self.storage.clone_ref(py))
    }

    /// Codebase projects: snapshots, files, statistics, backups; raises
    /// `InvalidInputError` unless the client was opened with `storage_url` and `master_key`.
    #[getter]
    fn projects(&self, py: Python<'_>) -> PyResult<Py<Projects>> {
        self.view.core.project_stores()?;
        Ok(self.projects.clone_ref(py))
    }

    /// Analysis results and their payloads; needs storage, like `projects`.
    #[getter]
    fn analysis(&self, py: Python<'_>) -> PyResult<Py<Analysis>> {
        self.view.core.project_stores()?;
        Ok(self.analysis.clone_ref(py))
    }

    /// Users, logins and tokens; raises `InvalidInputError` unless the client was opened
    /// with `auth_issuer`, `auth_audience` and `master_key`.
    #[getter]
    fn auth(&self, py: Python<'_>) -> PyResult<Py<Auth>> {
        self.view.core.auth_service()?;
        Ok(self.auth.clone_ref(py))
    }

    /// The service registry: instances, health checks, balancing, metrics and alerts.
    /// The first access opens the registry's tables (a short blocking call).
    #[getter]
    fn registry(&self, py: Python<'_>) -> PyResult<Py<Registry>> {
        if let Some(r) = self.registry.get() {
            return Ok(r.clone_ref(py));
        }
        let core = self.view.core.clone();
        block(py, async move { core.hub().await })?;
        let made = Py::new(
            py,
            Registry {
                view: self.view.clone(),
            },
        )?;
        Ok(self.registry.get_or_init(|| made).clone_ref(py))
    }

    /// `"sqlite"` or `"postgres"`.
    #[getter]
    fn backend(&self) -> &'static str {
        self.view.core.backend()
    }

    /// Closes the database pool; later calls raise `UnavailableError`. On a view from
    /// `acting_as`, does nothing: the client it came from owns the connections.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.owner {
            let core = self.view.core.clone();
            block(py, async move { core.close().await })?;
        }
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "Ate(backend='{}', actor='{}')",
            self.backend(),
            self.view.actor.subject()
        )
    }
}

/// The asyncio client: `await ate.AsyncAte.open(database_url, *, ...)`, with the keywords
/// of `ate.Ate`. Every call that does I/O returns an awaitable.
#[pyclass(module = "ate", frozen)]
pub(crate) struct AsyncAte {
    view: View,
    /// Whether this client opened the connections (a view of `acting_as` did not).
    owner: bool,
    #[pyo3(get)]
    tenants: Py<AsyncTenants>,
    #[pyo3(get)]
    audit: Py<AsyncAudit>,
    storage: Py<AsyncStorage>,
    projects: Py<AsyncProjects>,
    analysis: Py<AsyncAnalysis>,
    auth: Py<AsyncAuth>,
    /// The service registry (asyncio). Getting it does no I/O: the first awaited call
    /// builds the client's hub (opening the registry's tables) without blocking the loop.
    #[pyo3(get)]
    registry: Py<AsyncRegistry>,
    /// The durable workflow engine (asyncio).
    #[pyo3(get)]
    workflows: Py<AsyncWorkflows>,
}

impl AsyncAte {
    fn wrap(py: Python<'_>, view: View, owner: bool) -> PyResult<Self> {
        Ok(AsyncAte {
            tenants: Py::new(py, AsyncTenants { view: view.clone() })?,
            audit: Py::new(py, AsyncAudit { view: view.clone() })?,
            storage: Py::new(py, AsyncStorage { view: view.clone() })?,
            projects: Py::new(py, AsyncProjects { view: view.clone() })?,
            analysis: Py::new(py, AsyncAnalysis { view: view.clone() })?,
            auth: Py::new(py, AsyncAuth { view: view.clone() })?,
            registry: Py::new(py, AsyncRegistry { view: view.clone() })?,
            workflows: Py::new(py, AsyncWorkflows { view: view.clone() })?,
            owner,
            view,
        })
    }
}

#[pymethods]
impl AsyncAte {
    /// Opens the database without blocking the event loop.
    #[staticmethod]
    #[pyo3(signature = (database_url, *, storage_url = None, master_key = None, retired_master_keys = None, auth_issuer = None, auth_audience = None, auth_verify_cache_seconds = 1.0, key_cache_seconds = 1.0, insecure_fast_password_hashing = false, actor = "system:python"))]
    #[allow(clippy::too_many_arguments)]
    fn open<'py>(
        py: Python<'py>,
        database_url: String,
        storage_url: Option<String>,
        master_key: Option<&Bound<'py, PyAny>>,
        retired_master_keys: Option<&Bound<'py, PyAny>>,
        auth_issuer: Option<String>,
        auth_audience: Option<String>,
        auth_verify_cache_seconds: f64,
        key_cache_seconds: f64,
        insecure_fast_password_hashing: bool,
        actor: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let principal = host_principal(actor)?;
        let auth = auth_config(
            auth_issuer,
            auth_audience,
            auth_verify_cache_seconds,
            insecure_fast_password_hashing,
        )?;
        let options = Options::new(storage_url, master_key, retired_master_keys, auth)?
            .key_cache_ttl(key_cache_seconds)?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let core = Core::open(database_url, options).await?;
            Python::attach(|py| AsyncAte::wrap(py, View::new(core, principal), true))
        })
    }

    /// This client over the same connections, acting as `principal` (from
    /// `await a.auth.verify(...)`) in every domain; every permission check applies to it.
    fn acting_as(&self, py: Python<'_>, principal: &Bound<'_, Principal>) -> PyResult<Self> {
        let view = View::new(self.view.core.clone(), principal.get().inner().clone());
        AsyncAte::wrap(py, view, false)
    }

    /// The principal this client acts as.
    #[getter]
    fn principal(&self) -> Principal {
        Principal::new(self.view.actor.clone())
    }

    /// Encrypted object storage (asyncio); raises `InvalidInputError` unless opened with
    /// `storage_url` and `master_key`.
    #[getter]
    fn storage(&self, py: Python<'_>) -> PyResult<Py<AsyncStorage>> {
        self.view.core.objects()?;
        Ok(self.storage.clone_ref(py))
    }

    /// Codebase projects (asyncio); raises `InvalidInputError` unless opened with
    /// `storage_url` and `master_key`.
    #[getter]
    fn projects(&self, py: Python<'_>) -> PyResult<Py<AsyncProjects>> {
        self.view.core.project_stores()?;
        Ok(self.projects.clone_ref(py))
    }

    /// Analysis results and their payloads (asyncio); needs storage, like `projects`.
    #[getter]
    fn analysis(&self, py: Python<'_>) -> PyResult<Py<AsyncAnalysis>> {
        self.view.core.project_stores()?;
        Ok(self.analysis.clone_ref(py))
    }

    /// Users, logins and tokens (asyncio); raises `InvalidInputError` unless opened with
    /// `auth_issuer`, `auth_audience` and `master_key`.
    #[getter]
    fn auth(&self, py: Python<'_>) -> PyResult<Py<AsyncAuth>> {
        self.view.core.auth_service()?;
        Ok(self.auth.clone_ref(py))
    }

    /// `"sqlite"` or `"postgres"`.
    #[getter]
    fn backend(&self) -> &'static str {
        self.view.core.backend()
    }

    /// Closes the database pool. On a view from `acting_as`, does nothing: the client it
    /// came from owns the connections.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.owner.then(|| self.view.core.clone());
        awaitable(py, async move {
            match core {
                Some(core) => core.close().await.map(|()| Done),
                None => Ok(Done),
            }
        })
    }

    fn __aenter__<'py>(slf: Py<Self>, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        pyo3_async_runtimes::tokio::future_into_py(py, async move { Ok(slf) })
    }

    #[pyo3(signature = (*_exc))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _exc: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let core = self.owner.then(|| self.view.core.clone());
        awaitable(py, async move {
            if let Some(core) = core {
                core.close().await?;
            }
            Ok(false)
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "AsyncAte(backend='{}', actor='{}')",
            self.backend(),
            self.view.actor.subject()
        )
    }
}
