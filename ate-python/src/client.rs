//! `ate.Ate` (blocking) and `ate.AsyncAte` (asyncio) over one shared async core.
//!
//! Every operation is written once as an async method of [`Core`]. The blocking API runs it
//! on the shared runtime with the GIL released ([`block`]); the asyncio API hands it to the
//! event loop as an awaitable ([`awaitable`]). Arguments are converted from Python before
//! either, so argument errors surface the same way in both.

use crate::auth::{AsyncAuth, Auth, auth_config};
use crate::convert::{parse_id, to_json, to_utc};
use crate::error::Error;
use crate::registry::{AsyncRegistry, Hub, Registry};
use crate::storage::{AsyncStorage, Storage};
use crate::types::{AuditEvent, AuditPage, ChainHead, ChainReport, Tenant, TenantPage};
use crate::{awaitable, block};
use ate_auth::AuthConfig;
use ate_core::audit::{AuditAction, AuditQuery, NewAuditEvent, Order, Outcome};
use ate_core::keys::{KeyProvider, LocalKeyProvider, SecretKey};
use ate_core::{
    AuditSink, Cursor, Db, ListTenants, NewTenant, Principal, Quotas, SqlAuditSink, SqlTenantStore,
    TenantId, TenantSettings, TenantStatus, TenantStore, TenantUpdate,
};
use ate_storage::blob::{BlobBackend, BlobStore};
use ate_storage::objects::ObjectStore;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDateTime};
use std::sync::{Arc, OnceLock};

/// The stores behind one `Ate`/`AsyncAte`, acting as one platform-level principal.
pub(crate) struct Core {
    pub(crate) db: Db,
    tenants: SqlTenantStore,
    audit: SqlAuditSink,
    pub(crate) storage: Option<ObjectStore>,
    pub(crate) auth: Option<ate_auth::Auth>,
    pub(crate) actor: Principal,
    /// The service hub behind `a.registry`, built on first use.
    pub(crate) registry: tokio::sync::OnceCell<Arc<Hub>>,
}

/// What the constructor's keyword arguments enable beyond tenants and the audit log:
/// storage, authentication, and the master key both of them wrap their keys under.
pub(crate) struct Options {
    storage_url: Option<String>,
    auth: Option<AuthConfig>,
    /// One provider for storage and auth, so a master-key rotation covers both.
    master: Option<Arc<dyn KeyProvider>>,
}

/// A master key argument: 32 raw bytes, or the path of a key file (`str` or `os.PathLike`;
/// raw, hex or base64, readable by its owner only).
fn master_key_from(value: &Bound<'_, PyAny>, what: &str) -> Result<LocalKeyProvider, Error> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        let key = SecretKey::from_slice(bytes.as_bytes()).map_err(|_| {
            Error::invalid(format!(
                "{what} is {} bytes; a master key is 32 bytes (or the path of a key file)",
                bytes.as_bytes().len()
            ))
        })?;
        return Ok(LocalKeyProvider::new(key));
    }
    let path: std::path::PathBuf = value.extract().map_err(|_| {
        Error::invalid(format!(
            "{what} must be 32 bytes or a key file path, not {}",
            value
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    Ok(LocalKeyProvider::from_file(path)?)
}

/// The master key provider: the current key, able to unwrap under the retired ones.
fn master_provider(
    master_key: &Bound<'_, PyAny>,
    retired_master_keys: Option<&Bound<'_, PyAny>>,
) -> Result<Arc<dyn KeyProvider>, Error> {
    let mut master = master_key_from(master_key, "master_key")?;
    if let Some(retired) = retired_master_keys {
        let items = retired
            .try_iter()
            .map_err(|_| Error::invalid("retired_master_keys must be a sequence"))?;
        for item in items {
            let item = item.map_err(|e| Error::invalid(format!("retired_master_keys: {e}")))?;
            let old = master_key_from(&item, "a retired master key")?;
            master = master.with_retired_from(old);
        }
    }
    Ok(Arc::new(master))
}

impl Options {
    pub(crate) fn new(
        storage_url: Option<String>,
        master_key: Option<&Bound<'_, PyAny>>,
        retired_master_keys: Option<&Bound<'_, PyAny>>,
        auth: Option<AuthConfig>,
    ) -> Result<Self, Error> {
        let needs_master = storage_url.is_some() || auth.is_some();
        let master = match (master_key, needs_master) {
            (Some(key), true) => Some(master_provider(key, retired_master_keys)?),
            (None, false) if retired_master_keys.is_none() => None,
            (None, true) if storage_url.is_some() => {
                return Err(Error::invalid(
                    "storage_url needs master_key (32 bytes or a key file path)",
                ));
            }
            (None, true) => {
                return Err(Error::invalid(
                    "auth needs master_key (the token signing keys are wrapped under it): \
                     32 bytes or a key file path",
                ));
            }
            _ => {
                return Err(Error::invalid(
                    "master_key and retired_master_keys are only used with storage_url \
                     or auth_issuer/auth_audience",
                ));
            }
        };
        Ok(Options {
            storage_url,
            auth,
            master,
        })
    }
}

impl Core {
    async fn open(url: String, actor: Principal, options: Options) -> Result<Arc<Core>, Error> {
        let db = Db::open(&url).await?;
        let storage = match (options.storage_url, &options.master) {
            (Some(url), Some(master)) => {
                let blobs = BlobStore::open(&url)?;
                Some(ObjectStore::open(db.clone(), blobs, master.clone()).await?)
            }
            _ => None,
        };
        let auth = match (options.auth, options.master) {
            (Some(config), Some(master)) => {
                Some(ate_auth::Auth::open(db.clone(), master, config).await?)
            }
            _ => None,
        };
        Ok(Arc::new(Core {
            tenants: SqlTenantStore::new(db.clone()),
            audit: SqlAuditSink::new(db.clone()),
            storage,
            auth,
            db,
            actor,
            registry: tokio::sync::OnceCell::new(),
        }))
    }

    /// `"memory"`, `"fs"`, `"s3"` or `None`.
    pub(crate) fn storage_backend(&self) -> &'static str {
        match self.storage.as_ref().map(|s| s.blobs().backend()) {
            Some(BlobBackend::Memory) => "memory",
            Some(BlobBackend::Fs) => "fs",
            Some(BlobBackend::S3) => "s3",
            Some(_) => "unknown",
            None => "none",
        }
    }
}

/// The Python process is the host: it acts as an explicit platform administrator whose
/// subject is recorded in every audit event it causes.
fn host_principal(actor: &str) -> Result<Principal, Error> {
    Ok(Principal::platform_admin(actor)?)
}

fn backend_name(db: &Db) -> &'static str {
    match db.backend() {
        ate_core::DbBackend::Sqlite => "sqlite",
        ate_core::DbBackend::Postgres => "postgres",
        _ => "unknown",
    }
}

fn quotas_from(value: Option<&Bound<'_, PyAny>>) -> Result<Option<TenantSettings>, Error> {
    value
        .map(|v| {
            let json = to_json(v, "quotas")?;
            let quotas: Quotas =
                serde_json::from_value(json).map_err(|e| Error::invalid(format!("quotas: {e}")))?;
            Ok(TenantSettings::with_quotas(quotas))
        })
        .transpose()
}

fn cursor_from(cursor: Option<String>) -> Option<Cursor> {
    cursor.map(Cursor::from_string)
}

// ---------------------------------------------------------------------------------------
// Operations, written once.

/// Arguments of `tenants.list`, converted from Python.
struct ListArgs(ListTenants);

impl ListArgs {
    fn new(
        status: Option<&str>,
        limit: Option<u32>,
        cursor: Option<String>,
    ) -> Result<Self, Error> {
        let mut q = ListTenants::new().cursor(cursor_from(cursor));
        if let Some(s) = status {
            q = q.status(s.parse::<TenantStatus>()?);
        }
        if let Some(l) = limit {
            q = q.limit(l);
        }
        Ok(ListArgs(q))
    }
}

/// Arguments of `audit.append`, converted from Python.
struct AppendArgs(NewAuditEvent);

impl AppendArgs {
    #[allow(clippy::too_many_arguments)]
    fn new(
        tenant_id: &str,
        actor: String,
        action: &str,
        outcome: &str,
        target: Option<String>,
        client_addr: Option<&str>,
        user_agent: Option<String>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> Result<Self, Error> {
        let outcome = Outcome::parse(outcome)?;
        let mut e = NewAuditEvent::new(
            parse_id(tenant_id)?,
            actor,
            AuditAction::new(action)?,
            outcome,
        );
        if let Some(t) = target {
            e = e.target(t);
        }
        if let Some(a) = client_addr {
            e =
                e.client_addr(a.parse().map_err(|_| {
                    Error::invalid(format!("client_addr {a:?} is not an IP address"))
                })?);
        }
        if let Some(ua) = user_agent {
            e = e.user_agent(ua);
        }
        if let Some(m) = metadata {
            e = e.metadata(to_json(m, "metadata")?);
        }
        Ok(AppendArgs(e))
    }
}

/// Arguments of `audit.query`, converted from Python.
struct QueryArgs(AuditQuery);

impl QueryArgs {
    #[allow(clippy::too_many_arguments)]
    fn new(
        tenant_id: &str,
        since: Option<&Bound<'_, PyDateTime>>,
        until: Option<&Bound<'_, PyDateTime>>,
        action: Option<&str>,
        actor: Option<String>,
        newest_first: bool,
        limit: Option<u32>,
        cursor: Option<String>,
    ) -> Result<Self, Error> {
        let mut q = AuditQuery::tenant(parse_id(tenant_id)?).cursor(cursor_from(cursor));
        if let Some(s) = since {
            q = q.since(to_utc(s, "since")?);
        }
        if let Some(u) = until {
            q = q.until(to_utc(u, "until")?);
        }
        if let Some(a) = action {
            q = q.action(AuditAction::new(a)?);
        }
        if let Some(a) = actor {
            q = q.actor(a);
        }
        if newest_first {
            q = q.order(Order::NewestFirst);
        }
        if let Some(l) = limit {
            q = q.limit(l);
        }
        Ok(QueryArgs(q))
    }
}

impl Core {
    async fn create(
        self: Arc<Self>,
        slug: String,
        name: String,
        settings: Option<TenantSettings>,
    ) -> Result<Tenant, Error> {
        let new = NewTenant::new(slug, name).settings(settings.unwrap_or_default());
        Ok(self.tenants.create(&self.actor, new).await?.into())
    }
    async fn get(self: Arc<Self>, id: TenantId) -> Result<Tenant, Error> {
        Ok(self.tenants.get(&self.actor, id).await?.into())
    }
    async fn get_by_slug(self: Arc<Self>, slug: String) -> Result<Tenant, Error> {
        Ok(self.tenants.get_by_slug(&self.actor, &slug).await?.into())
    }
    async fn list(self: Arc<Self>, args: ListArgs) -> Result<TenantPage, Error> {
        Ok(self.tenants.list(&self.actor, args.0).await?.into())
    }
    async fn update(self: Arc<Self>, id: TenantId, update: TenantUpdate) -> Result<Tenant, Error> {
        Ok(self.tenants.update(&self.actor, id, update).await?.into())
    }
    async fn suspend(self: Arc<Self>, id: TenantId, reason: String) -> Result<Tenant, Error> {
        Ok(self.tenants.suspend(&self.actor, id, &reason).await?.into())
    }
    async fn reactivate(self: Arc<Self>, id: TenantId) -> Result<Tenant, Error> {
        Ok(self.tenants.reactivate(&self.actor, id).await?.into())
    }
    async fn delete(self: Arc<Self>, id: TenantId) -> Result<Tenant, Error> {
        Ok(self.tenants.delete(&self.actor, id).await?.into())
    }
    async fn purge_due(self: Arc<Self>) -> Result<Vec<String>, Error> {
        let ids = self.tenants.purge_due(&self.actor).await?;
        Ok(ids.iter().map(ToString::to_string).collect())
    }
    async fn append(self: Arc<Self>, args: AppendArgs) -> Result<AuditEvent, Error> {
        Ok(self.audit.append(args.0).await?.into())
    }
    async fn query(self: Arc<Self>, args: QueryArgs) -> Result<AuditPage, Error> {
        Ok(self.audit.query(&self.actor, args.0).await?.into())
    }
    async fn head(self: Arc<Self>, tenant: TenantId) -> Result<ChainHead, Error> {
        Ok(self.audit.head(&self.actor, tenant).await?.into())
    }
    async fn verify_chain(self: Arc<Self>, tenant: TenantId) -> Result<ChainReport, Error> {
        Ok(self.audit.verify_chain(&self.actor, tenant).await?.into())
    }
    async fn close(self: Arc<Self>) -> Result<(), Error> {
        if let Some(hub) = self.registry.get() {
            hub.shutdown().await;
        }
        self.db.close().await;
        Ok(())
    }
}

fn update_args(
    name: Option<String>,
    quotas: Option<&Bound<'_, PyAny>>,
    expected_revision: Option<i64>,
) -> Result<TenantUpdate, Error> {
    let mut u = TenantUpdate::new();
    if let Some(n) = name {
        u = u.name(n);
    }
    if let Some(s) = quotas_from(quotas)? {
        u = u.settings(s);
    }
    if let Some(r) = expected_revision {
        u = u.expected_revision(r);
    }
    Ok(u)
}

// ---------------------------------------------------------------------------------------
// The Python classes. Each method converts its arguments, then either blocks (GIL
// released) or returns an awaitable; `dispatch!` picks which.

/// Defines a tenants API class and an audit API class for one mode.
macro_rules! api_classes {
    ($mode:ident, $tenants:ident, $tenants_name:literal, $audit:ident, $audit_name:literal) => {
        /// Tenant management (`a.tenants`).
        #[pyclass(module = "ate", frozen, name = $tenants_name)]
        pub(crate) struct $tenants {
            core: Arc<Core>,
        }

        #[pymethods]
        impl $tenants {
            #[pyo3(signature = (slug, name, *, quotas = None))]
            fn create(&self, py: Python<'_>, slug: String, name: String, quotas: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
                let settings = quotas_from(quotas)?;
                Ok(dispatch!($mode, py, self.core.clone().create(slug, name, settings)))
            }

            fn get(&self, py: Python<'_>, id: &str) -> PyResult<Py<PyAny>> {
                let id = parse_id(id)?;
                Ok(dispatch!($mode, py, self.core.clone().get(id)))
            }

            fn get_by_slug(&self, py: Python<'_>, slug: String) -> PyResult<Py<PyAny>> {
                Ok(dispatch!($mode, py, self.core.clone().get_by_slug(slug)))
            }

            #[pyo3(signature = (*, status = None, limit = None, cursor = None))]
            fn list(&self, py: Python<'_>, status: Option<&str>, limit: Option<u32>, cursor: Option<String>) -> PyResult<Py<PyAny>> {
                let args = ListArgs::new(status, limit, cursor)?;
                Ok(dispatch!($mode, py, self.core.clone().list(args)))
            }

            #[pyo3(signature = (id, *, name = None, quotas = None, expected_revision = None))]
            fn update(&self, py: Python<'_>, id: &str, name: Option<String>, quotas: Option<&Bound<'_, PyAny>>, expected_revision: Option<i64>) -> PyResult<Py<PyAny>> {
                let (id, update) = (parse_id(id)?, update_args(name, quotas, expected_revision)?);
                Ok(dispatch!($mode, py, self.core.clone().update(id, update)))
            }

            fn suspend(&self, py: Python<'_>, id: &str, reason: String) -> PyResult<Py<PyAny>> {
                let id = parse_id(id)?;
                Ok(dispatch!($mode, py, self.core.clone().suspend(id, reason)))
            }

            fn reactivate(&self, py: Python<'_>, id: &str) -> PyResult<Py<PyAny>> {
                let id = parse_id(id)?;
                Ok(dispatch!($mode, py, self.core.clone().reactivate(id)))
            }

            fn delete(&self, py: Python<'_>, id: &str) -> PyResult<Py<PyAny>> {
                let id = parse_id(id)?;
                Ok(dispatch!($mode, py, self.core.clone().delete(id)))
            }

            fn purge_due(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                Ok(dispatch!($mode, py, self.core.clone().purge_due()))
            }
        }

        /// The tamper-evident audit log (`a.audit`).
        #[pyclass(module = "ate", frozen, name = $audit_name)]
        pub(crate) struct $audit {
            core: Arc<Core>,
        }

        #[pymethods]
        impl $audit {
            #[pyo3(signature = (tenant_id, actor, action, *, outcome = "success", target = None, client_addr = None, user_agent = None, metadata = None))]
            #[allow(clippy::too_many_arguments)]
            fn append(&self, py: Python<'_>, tenant_id: &str, actor: String, action: &str, outcome: &str, target: Option<String>, client_addr: Option<&str>, user_agent: Option<String>, metadata: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
                let args = AppendArgs::new(tenant_id, actor, action, outcome, target, client_addr, user_agent, metadata)?;
                Ok(dispatch!($mode, py, self.core.clone().append(args)))
            }

            #[pyo3(signature = (tenant_id, *, since = None, until = None, action = None, actor = None, newest_first = false, limit = None, cursor = None))]
            #[allow(clippy::too_many_arguments)]
            fn query(&self, py: Python<'_>, tenant_id: &str, since: Option<&Bound<'_, PyDateTime>>, until: Option<&Bound<'_, PyDateTime>>, action: Option<&str>, actor: Option<String>, newest_first: bool, limit: Option<u32>, cursor: Option<String>) -> PyResult<Py<PyAny>> {
                let args = QueryArgs::new(tenant_id, since, until, action, actor, newest_first, limit, cursor)?;
                Ok(dispatch!($mode, py, self.core.clone().query(args)))
            }

            fn head(&self, py: Python<'_>, tenant_id: &str) -> PyResult<Py<PyAny>> {
                let id = parse_id(tenant_id)?;
                Ok(dispatch!($mode, py, self.core.clone().head(id)))
            }

            fn verify_chain(&self, py: Python<'_>, tenant_id: &str) -> PyResult<Py<PyAny>> {
                let id = parse_id(tenant_id)?;
                Ok(dispatch!($mode, py, self.core.clone().verify_chain(id)))
            }
        }
    };
}

api_classes!(sync, Tenants, "Tenants", Audit, "Audit");
api_classes!(
    async,
    AsyncTenants,
    "AsyncTenants",
    AsyncAudit,
    "AsyncAudit"
);

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
/// 0 turns the cache off (every verification reads the database). `a.registry` (service
/// discovery, health checks, balancing, metrics, alerts) needs no keyword.
#[pyclass(module = "ate", frozen)]
pub(crate) struct Ate {
    core: Arc<Core>,
    #[pyo3(get)]
    tenants: Py<Tenants>,
    #[pyo3(get)]
    audit: Py<Audit>,
    storage: Py<Storage>,
    auth: Py<Auth>,
    registry: OnceLock<Py<Registry>>,
}

#[pymethods]
impl Ate {
    #[new]
    #[pyo3(signature = (database_url, *, storage_url = None, master_key = None, retired_master_keys = None, auth_issuer = None, auth_audience = None, auth_verify_cache_seconds = 1.0, insecure_fast_password_hashing = false, actor = "system:python"))]
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
        let options = Options::new(storage_url, master_key, retired_master_keys, auth)?;
        let core = block(py, Core::open(database_url, principal, options))?;
        Ok(Ate {
            tenants: Py::new(py, Tenants { core: core.clone() })?,
            audit: Py::new(py, Audit { core: core.clone() })?,
            storage: Py::new(py, Storage { core: core.clone() })?,
            auth: Py::new(py, Auth { core: core.clone() })?,
            registry: OnceLock::new(),
            core,
        })
    }

    /// Encrypted object storage; raises `InvalidInputError` unless the client was opened
    /// with `storage_url` and `master_key`.
    #[getter]
    fn storage(&self, py: Python<'_>) -> PyResult<Py<Storage>> {
        self.core.objects()?;
        Ok(self.storage.clone_ref(py))
    }

    /// Users, logins and tokens; raises `InvalidInputError` unless the client was opened
    /// with `auth_issuer`, `auth_audience` and `master_key`.
    #[getter]
    fn auth(&self, py: Python<'_>) -> PyResult<Py<Auth>> {
        self.core.auth_service()?;
        Ok(self.auth.clone_ref(py))
    }

    /// The service registry: instances, health checks, balancing, metrics and alerts.
    /// The first access opens the registry's tables (a short blocking call).
    #[getter]
    fn registry(&self, py: Python<'_>) -> PyResult<Py<Registry>> {
        if let Some(r) = self.registry.get() {
            return Ok(r.clone_ref(py));
        }
        let hub = block(py, {
            let core = self.core.clone();
            async move { core.hub().await }
        })?;
        let made = Py::new(
            py,
            Registry {
                core: self.core.clone(),
                hub,
            },
        )?;
        Ok(self.registry.get_or_init(|| made).clone_ref(py))
    }

    /// `"sqlite"` or `"postgres"`.
    #[getter]
    fn backend(&self) -> &'static str {
        backend_name(&self.core.db)
    }

    /// Closes the database pool; later calls raise `UnavailableError`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        Ok(block(py, self.core.clone().close())?)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "Ate(backend='{}', actor='{}')",
            self.backend(),
            self.core.actor.subject()
        )
    }
}

/// The asyncio client: `await ate.AsyncAte.open(database_url, *, ...)`, with the keywords
/// of `ate.Ate`.
#[pyclass(module = "ate", frozen)]
pub(crate) struct AsyncAte {
    core: Arc<Core>,
    #[pyo3(get)]
    tenants: Py<AsyncTenants>,
    #[pyo3(get)]
    audit: Py<AsyncAudit>,
    storage: Py<AsyncStorage>,
    auth: Py<AsyncAuth>,
    registry: OnceLock<Py<AsyncRegistry>>,
}

impl AsyncAte {
    fn wrap(py: Python<'_>, core: Arc<Core>) -> PyResult<Self> {
        Ok(AsyncAte {
            tenants: Py::new(py, AsyncTenants { core: core.clone() })?,
            audit: Py::new(py, AsyncAudit { core: core.clone() })?,
            storage: Py::new(py, AsyncStorage { core: core.clone() })?,
            auth: Py::new(py, AsyncAuth { core: core.clone() })?,
            registry: OnceLock::new(),
            core,
        })
    }
}

#[pymethods]
impl AsyncAte {
    /// Opens the database without blocking the event loop.
    #[staticmethod]
    #[pyo3(signature = (database_url, *, storage_url = None, master_key = None, retired_master_keys = None, auth_issuer = None, auth_audience = None, auth_verify_cache_seconds = 1.0, insecure_fast_password_hashing = false, actor = "system:python"))]
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
        let options = Options::new(storage_url, master_key, retired_master_keys, auth)?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let core = Core::open(database_url, principal, options).await?;
            Python::attach(|py| AsyncAte::wrap(py, core))
        })
    }

    /// Encrypted object storage (asyncio); raises `InvalidInputError` unless opened with
    /// `storage_url` and `master_key`.
    #[getter]
    fn storage(&self, py: Python<'_>) -> PyResult<Py<AsyncStorage>> {
        self.core.objects()?;
        Ok(self.storage.clone_ref(py))
    }

    /// Users, logins and tokens (asyncio); raises `InvalidInputError` unless opened with
    /// `auth_issuer`, `auth_audience` and `master_key`.
    #[getter]
    fn auth(&self, py: Python<'_>) -> PyResult<Py<AsyncAuth>> {
        self.core.auth_service()?;
        Ok(self.auth.clone_ref(py))
    }

    /// The service registry (asyncio). The first access opens the registry's tables: a
    /// short blocking call, made once per client.
    #[getter]
    fn registry(&self, py: Python<'_>) -> PyResult<Py<AsyncRegistry>> {
        if let Some(r) = self.registry.get() {
            return Ok(r.clone_ref(py));
        }
        let hub = block(py, {
            let core = self.core.clone();
            async move { core.hub().await }
        })?;
        let made = Py::new(
            py,
            AsyncRegistry {
                core: self.core.clone(),
                hub,
            },
        )?;
        Ok(self.registry.get_or_init(|| made).clone_ref(py))
    }

    /// `"sqlite"` or `"postgres"`.
    #[getter]
    fn backend(&self) -> &'static str {
        backend_name(&self.core.db)
    }

    /// Closes the database pool.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.core.clone().close())
    }

    fn __aenter__<'py>(slf: Py<Self>, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        pyo3_async_runtimes::tokio::future_into_py(py, async move { Ok(slf) })
    }

    #[pyo3(signature = (*_exc))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _exc: &Bound<'py, pyo3::types::PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            core.close().await?;
            Ok(false)
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "AsyncAte(backend='{}', actor='{}')",
            self.backend(),
            self.core.actor.subject()
        )
    }
}
