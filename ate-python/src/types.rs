//! The objects ATE returns to Python: immutable, with attributes (never raw dicts).

use crate::convert::from_json;
use crate::error::Error;
use ate_core::audit::{self, ChainProblem};
use ate_storage::{keyring, objects};
use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use pyo3::types::PyFrozenSet;

/// A tenant (see `ate_core::Tenant`).
#[pyclass(module = "ate", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct Tenant {
    #[pyo3(get)]
    id: String,
    #[pyo3(get)]
    slug: String,
    #[pyo3(get)]
    name: String,
    #[pyo3(get)]
    status: String,
    #[pyo3(get)]
    status_reason: Option<String>,
    #[pyo3(get)]
    revision: i64,
    #[pyo3(get)]
    created_at: DateTime<Utc>,
    #[pyo3(get)]
    updated_at: DateTime<Utc>,
    #[pyo3(get)]
    deleted_at: Option<DateTime<Utc>>,
    #[pyo3(get)]
    purge_at: Option<DateTime<Utc>>,
    quotas: serde_json::Value,
}

impl From<ate_core::Tenant> for Tenant {
    fn from(t: ate_core::Tenant) -> Self {
        Tenant {
            id: t.id.to_string(),
            slug: t.slug.to_string(),
            name: t.name,
            status: t.status.as_str().to_owned(),
            status_reason: t.status_reason,
            revision: t.revision,
            created_at: t.created_at,
            updated_at: t.updated_at,
            deleted_at: t.deleted_at,
            purge_at: t.purge_at,
            quotas: serde_json::to_value(&t.settings.quotas).unwrap_or_default(),
        }
    }
}

#[pymethods]
impl Tenant {
    /// The tenant's quotas as a dict (`None` values mean unlimited).
    #[getter]
    fn quotas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &self.quotas)
    }

    fn __repr__(&self) -> String {
        format!(
            "Tenant(id='{}', slug='{}', name={:?}, status='{}', revision={})",
            self.id, self.slug, self.name, self.status, self.revision
        )
    }
}

/// Defines a page class: `items`, `next_cursor`, `len()` and iteration.
macro_rules! page_class {
    ($name:ident, $item:ident, $core_item:ty, $noun:literal) => {
        #[doc = concat!("One page of ", $noun, ".")]
        #[pyclass(module = "ate", frozen)]
        pub(crate) struct $name {
            #[pyo3(get)]
            items: Vec<$item>,
            #[pyo3(get)]
            next_cursor: Option<String>,
        }

        impl From<ate_core::Page<$core_item>> for $name {
            fn from(p: ate_core::Page<$core_item>) -> Self {
                $name {
                    items: p.items.into_iter().map($item::from).collect(),
                    next_cursor: p.next_cursor.map(|c| c.as_str().to_owned()),
                }
            }
        }

        #[pymethods]
        impl $name {
            fn __len__(&self) -> usize {
                self.items.len()
            }

            fn __iter__(slf: PyRef<'_, Self>) -> PyResult<Bound<'_, PyAny>> {
                let py = slf.py();
                slf.items
                    .clone()
                    .into_pyobject(py)?
                    .try_iter()
                    .map(Bound::into_any)
            }

            fn __repr__(&self) -> String {
                format!(
                    concat!(
                        stringify!($name),
                        "(items=<{} ",
                        $noun,
                        ">, next_cursor={:?})"
                    ),
                    self.items.len(),
                    self.next_cursor
                )
            }
        }
    };
}

page_class!(TenantPage, Tenant, ate_core::Tenant, "tenants");

/// A recorded audit event.
#[pyclass(module = "ate", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct AuditEvent {
    #[pyo3(get)]
    id: String,
    #[pyo3(get)]
    tenant_id: String,
    #[pyo3(get)]
    seq: u64,
    #[pyo3(get)]
    occurred_at: DateTime<Utc>,
    #[pyo3(get)]
    actor: String,
    #[pyo3(get)]
    action: String,
    #[pyo3(get)]
    target: Option<String>,
    #[pyo3(get)]
    outcome: String,
    #[pyo3(get)]
    client_addr: Option<String>,
    #[pyo3(get)]
    user_agent: Option<String>,
    #[pyo3(get)]
    prev_hash: String,
    #[pyo3(get)]
    hash: String,
    metadata: serde_json::Value,
}

impl From<audit::AuditEvent> for AuditEvent {
    fn from(e: audit::AuditEvent) -> Self {
        AuditEvent {
            id: e.id.to_string(),
            tenant_id: e.tenant.to_string(),
            seq: e.seq,
            occurred_at: e.occurred_at,
            actor: e.actor,
            action: e.action.as_str().to_owned(),
            target: e.target,
            outcome: e.outcome.as_str().to_owned(),
            client_addr: e.client_addr.map(|a| a.to_string()),
            user_agent: e.user_agent,
            prev_hash: hex(&e.prev_hash),
            hash: hex(&e.hash),
            metadata: e.metadata,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[pymethods]
impl AuditEvent {
    /// The event's structured details as a dict.
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &self.metadata)
    }

    fn __repr__(&self) -> String {
        format!(
            "AuditEvent(seq={}, action='{}', actor={:?}, outcome='{}', occurred_at='{}')",
            self.seq,
            self.action,
            self.actor,
            self.outcome,
            self.occurred_at.to_rfc3339()
        )
    }
}

page_class!(AuditPage, AuditEvent, audit::AuditEvent, "events");

/// The newest link of a tenant's audit chain.
#[pyclass(module = "ate", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct ChainHead {
    #[pyo3(get)]
    seq: u64,
    #[pyo3(get)]
    hash: String,
}

impl From<audit::ChainHead> for ChainHead {
    fn from(h: audit::ChainHead) -> Self {
        ChainHead {
            seq: h.seq,
            hash: hex(&h.hash),
        }
    }
}

#[pymethods]
impl ChainHead {
    fn __repr__(&self) -> String {
        format!("ChainHead(seq={}, hash='{}')", self.seq, self.hash)
    }
}

/// Where a chain first breaks.
#[pyclass(module = "ate", frozen, from_py_object)]
#[derive(Clone)]
pub(crate) struct ChainBreak {
    #[pyo3(get)]
    seq: u64,
    /// `content_modified`, `link_broken`, `missing`, `head_mismatch` or `unreadable`.
    #[pyo3(get)]
    problem: &'static str,
    #[pyo3(get)]
    message: String,
    #[pyo3(get)]
    expected_seq: Option<u64>,
    #[pyo3(get)]
    head_seq: Option<u64>,
}

impl From<audit::ChainBreak> for ChainBreak {
    fn from(b: audit::ChainBreak) -> Self {
        let message = b.to_string();
        let (problem, expected_seq, head_seq) = match &b.problem {
            ChainProblem::ContentModified => ("content_modified", None, None),
            ChainProblem::LinkBroken => ("link_broken", None, None),
            ChainProblem::Missing { expected_seq } => ("missing", Some(*expected_seq), None),
            ChainProblem::HeadMismatch { head_seq } => ("head_mismatch", None, Some(*head_seq)),
            ChainProblem::Unreadable { .. } => ("unreadable", None, None),
            _ => ("unknown", None, None),
        };
        ChainBreak {
            seq: b.seq,
            problem,
            message,
            expected_seq,
            head_seq,
        }
    }
}

#[pymethods]
impl ChainBreak {
    fn __repr__(&self) -> String {
        format!("ChainBreak(seq={}, problem='{}')", self.seq, self.problem)
    }
}

/// The result of `verify_chain`.
#[pyclass(module = "ate", frozen)]
pub(crate) struct ChainReport {
    #[pyo3(get)]
    tenant_id: String,
    #[pyo3(get)]
    events_checked: u64,
    #[pyo3(get)]
    head: ChainHead,
    #[pyo3(get)]
    first_break: Option<ChainBreak>,
}

impl From<audit::ChainReport> for ChainReport {
    fn from(r: audit::ChainReport) -> Self {
        ChainReport {
            tenant_id: r.tenant.to_string(),
            events_checked: r.events_checked,
            head: r.head.into(),
            first_break: r.first_break.map(ChainBreak::from),
        }
    }
}

#[pymethods]
impl ChainReport {
    /// Whether the whole chain verified.
    #[getter]
    fn intact(&self) -> bool {
        self.first_break.is_none()
    }

    fn __bool__(&self) -> bool {
        self.intact()
    }

    fn __repr__(&self) -> String {
        match &self.first_break {
            None => format!(
                "ChainReport(intact, events_checked={})",
                self.events_checked
            ),
            Some(b) => format!("ChainReport(broken: {})", b.message),
        }
    }
}

/// An object's index entry (see `ate_storage::objects::ObjectInfo`).
#[pyclass(module = "ate", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq, Default)]
pub(crate) struct ObjectInfo {
    #[pyo3(get)]
    tenant_id: String,
    #[pyo3(get)]
    id: String,
    #[pyo3(get)]
    path: String,
    #[pyo3(get)]
    size: u64,
    /// SHA-256 of the plaintext, as hex.
    #[pyo3(get)]
    sha256: String,
    #[pyo3(get)]
    key_version: u32,
    #[pyo3(get)]
    format_version: u8,
    #[pyo3(get)]
    content_type: String,
    #[pyo3(get)]
    created_at: DateTime<Utc>,
    #[pyo3(get)]
    updated_at: DateTime<Utc>,
    metadata: serde_json::Value,
}

impl ObjectInfo {
    pub(crate) fn path(&self) -> &str {
        &self.path
    }
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
}

impl From<objects::ObjectInfo> for ObjectInfo {
    fn from(o: objects::ObjectInfo) -> Self {
        ObjectInfo {
            tenant_id: o.tenant.to_string(),
            id: o.id.to_string(),
            path: o.path,
            size: o.size,
            sha256: hex(&o.sha256),
            key_version: o.key_version,
            format_version: o.format_version,
            content_type: o.content_type,
            created_at: o.created_at,
            updated_at: o.updated_at,
            metadata: o.metadata,
        }
    }
}

#[pymethods]
impl ObjectInfo {
    /// The user metadata given at put time, as a dict.
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &self.metadata)
    }

    fn __repr__(&self) -> String {
        format!(
            "ObjectInfo(path={:?}, size={}, content_type='{}', key_version={}, id='{}')",
            self.path, self.size, self.content_type, self.key_version, self.id
        )
    }
}

page_class!(ObjectPage, ObjectInfo, objects::ObjectInfo, "objects");

/// A tenant data key's metadata (never the key itself).
#[pyclass(module = "ate", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct KeyInfo {
    #[pyo3(get)]
    tenant_id: String,
    #[pyo3(get)]
    version: u32,
    /// `active`, `decrypt_only` or `destroyed`.
    #[pyo3(get)]
    state: &'static str,
    #[pyo3(get)]
    master_key_id: Option<String>,
    #[pyo3(get)]
    created_at: DateTime<Utc>,
    #[pyo3(get)]
    retired_at: Option<DateTime<Utc>>,
    #[pyo3(get)]
    destroyed_at: Option<DateTime<Utc>>,
}

impl From<keyring::KeyInfo> for KeyInfo {
    fn from(k: keyring::KeyInfo) -> Self {
        KeyInfo {
            tenant_id: k.tenant.to_string(),
            version: k.version,
            state: k.state.as_str(),
            master_key_id: k.master_key_id,
            created_at: k.created_at,
            retired_at: k.retired_at,
            destroyed_at: k.destroyed_at,
        }
    }
}

#[pymethods]
impl KeyInfo {
    fn __repr__(&self) -> String {
        format!("KeyInfo(version={}, state='{}')", self.version, self.state)
    }
}

/// Progress of `a.storage.reencrypt`: call again until `remaining` is 0.
#[pyclass(module = "ate", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct ReencryptProgress {
    #[pyo3(get)]
    reencrypted: u64,
    #[pyo3(get)]
    skipped: u64,
    #[pyo3(get)]
    remaining: u64,
    #[pyo3(get)]
    key_version: u32,
}

impl From<objects::ReencryptProgress> for ReencryptProgress {
    fn from(p: objects::ReencryptProgress) -> Self {
        ReencryptProgress {
            reencrypted: p.reencrypted,
            skipped: p.skipped,
            remaining: p.remaining,
            key_version: p.key_version,
        }
    }
}

#[pymethods]
impl ReencryptProgress {
    /// Whether every object is under the newest key.
    #[getter]
    fn done(&self) -> bool {
        self.remaining == 0
    }

    fn __repr__(&self) -> String {
        format!(
            "ReencryptProgress(reencrypted={}, skipped={}, remaining={}, key_version={})",
            self.reencrypted, self.skipped, self.remaining, self.key_version
        )
    }
}

/// What a garbage-collection pass did.
#[pyclass(module = "ate", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct GcReport {
    #[pyo3(get)]
    deleted: u64,
    #[pyo3(get)]
    kept_young: u64,
    #[pyo3(get)]
    staging_deleted: u64,
}

impl From<objects::GcReport> for GcReport {
    fn from(r: objects::GcReport) -> Self {
        GcReport {
            deleted: r.deleted,
            kept_young: r.kept_young,
            staging_deleted: r.staging_deleted,
        }
    }
}

#[pymethods]
impl GcReport {
    fn __repr__(&self) -> String {
        format!(
            "GcReport(deleted={}, kept_young={}, staging_deleted={})",
            self.deleted, self.kept_young, self.staging_deleted
        )
    }
}

// ---------------------------------------------------------------------------------------
// Authentication (`a.auth`).

fn frozenset<'py>(
    py: Python<'py>,
    items: impl IntoIterator<Item = impl AsRef<str>>,
) -> PyResult<Bound<'py, PyFrozenSet>> {
    let items: Vec<String> = items.into_iter().map(|s| s.as_ref().to_owned()).collect();
    PyFrozenSet::new(py, &items)
}

/// Who a verified access token speaks for: a user of one tenant, or (for `super_admin`
/// users and the client itself) a platform administrator. Pass it as `actor` to act as
/// that user; every check of the Rust API applies.
#[pyclass(module = "ate", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct Principal {
    inner: ate_core::Principal,
}

impl Principal {
    pub(crate) fn new(inner: ate_core::Principal) -> Self {
        Principal { inner }
    }

    /// The Rust principal, to act as.
    pub(crate) fn inner(&self) -> &ate_core::Principal {
        &self.inner
    }
}

#[pymethods]
impl Principal {
    /// `user:<id>` for users; the client's `actor` for the client itself.
    #[getter]
    fn subject(&self) -> &str {
        self.inner.subject()
    }

    /// The tenant it acts in; `None` for a platform administrator.
    #[getter]
    fn tenant_id(&self) -> Option<String> {
        self.inner.tenant().map(|t| t.to_string())
    }

    /// Role names (`user`, `admin`, `super_admin`).
    #[getter]
    fn roles<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyFrozenSet>> {
        frozenset(py, self.inner.roles())
    }

    /// Permission names (`users:manage`, `audit:read`, …) held in its tenant.
    #[getter]
    fn permissions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyFrozenSet>> {
        frozenset(
            py,
            self.inner.permissions().map(ate_core::Permission::as_str),
        )
    }

    #[getter]
    fn is_platform_admin(&self) -> bool {
        self.inner.is_platform_admin()
    }

    /// Whether it holds `permission` (platform administrators hold every one); raises
    /// `InvalidInputError` for a malformed permission name.
    fn has_permission(&self, permission: String) -> PyResult<bool> {
        let permission = ate_core::Permission::new(permission).map_err(Error::from)?;
        Ok(self.inner.has_permission(&permission))
    }

    fn __repr__(&self) -> String {
        let roles: Vec<&str> = self.inner.roles().collect();
        match self.inner.tenant() {
            Some(t) => format!(
                "Principal(subject={:?}, tenant_id='{t}', roles={roles:?})",
                self.inner.subject()
            ),
            None => format!(
                "Principal(subject={:?}, platform_admin, roles={roles:?})",
                self.inner.subject()
            ),
        }
    }
}

/// A user of a tenant (never its password hash).
#[pyclass(module = "ate", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct User {
    #[pyo3(get)]
    id: String,
    #[pyo3(get)]
    tenant_id: String,
    #[pyo3(get)]
    email: String,
    #[pyo3(get)]
    username: Option<String>,
    #[pyo3(get)]
    name: String,
    /// `active`, `disabled` or `locked`.
    #[pyo3(get)]
    status: &'static str,
    role_names: Vec<&'static str>,
    permission_names: Vec<String>,
    #[pyo3(get)]
    has_password: bool,
    #[pyo3(get)]
    locked_until: Option<DateTime<Utc>>,
    #[pyo3(get)]
    revision: i64,
    #[pyo3(get)]
    created_at: DateTime<Utc>,
    #[pyo3(get)]
    updated_at: DateTime<Utc>,
}

impl From<ate_auth::User> for User {
    fn from(u: ate_auth::User) -> Self {
        User {
            id: u.id.to_string(),
            tenant_id: u.tenant.to_string(),
            email: u.email,
            username: u.username,
            name: u.name,
            status: u.status.as_str(),
            role_names: u.roles.iter().map(|r| r.as_str()).collect(),
            permission_names: u
                .permissions
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            has_password: u.has_password,
            locked_until: u.locked_until,
            revision: u.revision,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[pymethods]
impl User {
    #[getter]
    fn roles<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyFrozenSet>> {
        frozenset(py, &self.role_names)
    }

    /// Permissions granted beyond the roles'.
    #[getter]
    fn permissions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyFrozenSet>> {
        frozenset(py, &self.permission_names)
    }

    fn __repr__(&self) -> String {
        format!(
            "User(id='{}', email={:?}, status='{}', roles={:?}, revision={})",
            self.id, self.email, self.status, self.role_names, self.revision
        )
    }
}

page_class!(UserPage, User, ate_auth::User, "users");

/// A login session (one refresh-token family), without secrets.
#[pyclass(module = "ate", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct Session {
    #[pyo3(get)]
    id: String,
    #[pyo3(get)]
    tenant_id: String,
    #[pyo3(get)]
    user_id: String,
    #[pyo3(get)]
    created_at: DateTime<Utc>,
    #[pyo3(get)]
    last_used_at: DateTime<Utc>,
    #[pyo3(get)]
    expires_at: DateTime<Utc>,
    #[pyo3(get)]
    idle_expires_at: DateTime<Utc>,
    #[pyo3(get)]
    revoked_at: Option<DateTime<Utc>>,
    /// `logout`, `logout_all`, `token_reuse`, `user_disabled`, `password_changed`, …
    #[pyo3(get)]
    revoked_reason: Option<String>,
    #[pyo3(get)]
    client_addr: Option<String>,
    #[pyo3(get)]
    user_agent: Option<String>,
}

impl From<ate_auth::sessions::Session> for Session {
    fn from(s: ate_auth::sessions::Session) -> Self {
        Session {
            id: s.id.to_string(),
            tenant_id: s.tenant.to_string(),
            user_id: s.user.to_string(),
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            idle_expires_at: s.idle_expires_at,
            revoked_at: s.revoked_at,
            revoked_reason: s.revoked_reason,
            client_addr: s.client_addr,
            user_agent: s.user_agent,
        }
    }
}

#[pymethods]
impl Session {
    /// Whether it can still be refreshed (not ended; expiry is checked on use).
    #[getter]
    fn active(&self) -> bool {
        self.revoked_at.is_none()
    }

    fn __repr__(&self) -> String {
        format!(
            "Session(id='{}', user_id='{}', revoked_reason={:?})",
            self.id, self.user_id, self.revoked_reason
        )
    }
}

/// What a login or refresh gives: hand `access_token` and `refresh_token` to the client;
/// ATE keeps only the refresh token's hash. Both are secrets: never log them.
#[pyclass(module = "ate", frozen)]
pub(crate) struct Tokens {
    #[pyo3(get)]
    access_token: String,
    #[pyo3(get)]
    access_expires_at: DateTime<Utc>,
    #[pyo3(get)]
    refresh_token: String,
    #[pyo3(get)]
    session_id: String,
    #[pyo3(get)]
    user: User,
}

impl From<ate_auth::Tokens> for Tokens {
    fn from(t: ate_auth::Tokens) -> Self {
        Tokens {
            access_token: t.access.token.clone(),
            access_expires_at: t.access.expires_at,
            refresh_token: t.refresh.expose_secret().to_owned(),
            session_id: t.session.id.to_string(),
            user: t.user.into(),
        }
    }
}

#[pymethods]
impl Tokens {
    fn __repr__(&self) -> String {
        format!(
            "Tokens(session_id='{}', user_id='{}', access_expires_at='{}', <tokens redacted>)",
            self.session_id,
            self.user.id,
            self.access_expires_at.to_rfc3339()
        )
    }
}

/// A token signing key's metadata (never the private key).
#[pyclass(module = "ate", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct SigningKeyInfo {
    #[pyo3(get)]
    kid: String,
    /// `EdDSA`, `ES256` or `RS256`.
    #[pyo3(get)]
    algorithm: &'static str,
    /// `active`, `verify_only` or `retired`.
    #[pyo3(get)]
    state: String,
    #[pyo3(get)]
    created_at: DateTime<Utc>,
    #[pyo3(get)]
    verify_until: Option<DateTime<Utc>>,
}

impl From<ate_auth::tokens::SigningKeyInfo> for SigningKeyInfo {
    fn from(k: ate_auth::tokens::SigningKeyInfo) -> Self {
        SigningKeyInfo {
            kid: k.kid,
            algorithm: k.algorithm.as_str(),
            state: k.state,
            created_at: k.created_at,
            verify_until: k.verify_until,
        }
    }
}

#[pymethods]
impl SigningKeyInfo {
    fn __repr__(&self) -> String {
        format!(
            "SigningKeyInfo(kid='{}', algorithm='{}', state='{}')",
            self.kid, self.algorithm, self.state
        )
    }
}

// ---------------------------------------------------------------------------------------
// The service registry (`a.registry`).

/// A registered service instance with its observed health.
#[pyclass(module = "ate", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct Instance {
    #[pyo3(get)]
    service: String,
    #[pyo3(get)]
    id: String,
    #[pyo3(get)]
    endpoint: String,
    tags: Vec<String>,
    capabilities: Vec<String>,
    #[pyo3(get)]
    metadata: std::collections::BTreeMap<String, String>,
    #[pyo3(get)]
    weight: u32,
    /// `development`, `staging` or `production`.
    #[pyo3(get)]
    environment: &'static str,
    /// The tenant id for a tenant's instance; `None` for a platform instance.
    #[pyo3(get)]
    tenant: Option<String>,
    /// `passing`, `warning` or `critical`.
    #[pyo3(get)]
    status: &'static str,
    #[pyo3(get)]
    status_output: String,
    #[pyo3(get)]
    registered_at: DateTime<Utc>,
    #[pyo3(get)]
    last_heartbeat: DateTime<Utc>,
    #[pyo3(get)]
    status_since: DateTime<Utc>,
}

impl From<ate_orchestrate::registry::Instance> for Instance {
    fn from(i: ate_orchestrate::registry::Instance) -> Self {
        let spec = i.spec;
        Instance {
            service: spec.service.to_string(),
            id: spec.id.to_string(),
            endpoint: spec.endpoint.to_string(),
            tags: spec.tags.into_iter().collect(),
            capabilities: spec.capabilities.into_iter().collect(),
            metadata: spec.metadata,
            weight: spec.weight,
            environment: spec.environment.as_str(),
            tenant: spec.scope.tenant().map(|t| t.to_string()),
            status: i.status.as_str(),
            status_output: i.status_output,
            registered_at: i.registered_at,
            last_heartbeat: i.last_heartbeat,
            status_since: i.status_since,
        }
    }
}

#[pymethods]
impl Instance {
    #[getter]
    fn tags<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyFrozenSet>> {
        frozenset(py, &self.tags)
    }

    #[getter]
    fn capabilities<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyFrozenSet>> {
        frozenset(py, &self.capabilities)
    }

    fn __repr__(&self) -> String {
        format!(
            "Instance(service='{}', id='{}', endpoint='{}', status='{}', weight={})",
            self.service, self.id, self.endpoint, self.status, self.weight
        )
    }
}

/// Aggregates of recorded requests over a recent window; latencies in seconds.
#[pyclass(module = "ate", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct Stats {
    /// The window in seconds.
    #[pyo3(get)]
    window: f64,
    #[pyo3(get)]
    count: u64,
    #[pyo3(get)]
    errors: u64,
    #[pyo3(get)]
    error_rate: f64,
    #[pyo3(get)]
    rate_per_sec: f64,
    #[pyo3(get)]
    p50: Option<f64>,
    #[pyo3(get)]
    p95: Option<f64>,
    #[pyo3(get)]
    p99: Option<f64>,
}

impl From<ate_orchestrate::metrics::WindowStats> for Stats {
    fn from(s: ate_orchestrate::metrics::WindowStats) -> Self {
        Stats {
            window: s.window.as_secs_f64(),
            count: s.count,
            errors: s.errors,
            error_rate: s.error_rate,
            rate_per_sec: s.rate_per_sec,
            p50: s.p50.map(|d| d.as_secs_f64()),
            p95: s.p95.map(|d| d.as_secs_f64()),
            p99: s.p99.map(|d| d.as_secs_f64()),
        }
    }
}

#[pymethods]
impl Stats {
    fn __repr__(&self) -> String {
        format!(
            "Stats(count={}, errors={}, error_rate={:.3}, rate_per_sec={:.3}, p50={:?}, p95={:?}, p99={:?})",
            self.count,
            self.errors,
            self.error_rate,
            self.rate_per_sec,
            self.p50,
            self.p95,
            self.p99
        )
    }
}

/// One run of a health check, as observed (before thresholds).
#[pyclass(module = "ate", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct CheckResult {
    #[pyo3(get)]
    at: DateTime<Utc>,
    /// `passing`, `warning` or `critical`.
    #[pyo3(get)]
    status: &'static str,
    #[pyo3(get)]
    output: String,
    /// How long the run took, in seconds.
    #[pyo3(get)]
    duration: f64,
}

impl From<ate_orchestrate::health::CheckResult> for CheckResult {
    fn from(r: ate_orchestrate::health::CheckResult) -> Self {
        CheckResult {
            at: r.at,
            status: r.status.as_str(),
            output: r.output,
            duration: r.duration.as_secs_f64(),
        }
    }
}

#[pymethods]
impl CheckResult {
    fn __repr__(&self) -> String {
        format!(
            "CheckResult(status='{}', output={:?}, at='{}')",
            self.status,
            self.output,
            self.at.to_rfc3339()
        )
    }
}

/// An alert that started firing or resolved.
#[pyclass(module = "ate", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct AlertEvent {
    /// Unique per event; a retried delivery carries the same id.
    #[pyo3(get)]
    id: String,
    #[pyo3(get)]
    rule_id: String,
    #[pyo3(get)]
    rule_name: String,
    /// `info`, `warning` or `critical`.
    #[pyo3(get)]
    severity: &'static str,
    #[pyo3(get)]
    labels: std::collections::BTreeMap<String, String>,
    /// `firing` or `resolved`.
    #[pyo3(get)]
    state: &'static str,
    /// The observed value that decided (an error rate, seconds of latency, 1.0 for states).
    #[pyo3(get)]
    value: f64,
    #[pyo3(get)]
    summary: String,
    #[pyo3(get)]
    at: DateTime<Utc>,
    /// For a resolved event, the id of the firing event it ends.
    #[pyo3(get)]
    firing_id: Option<String>,
}

impl From<&ate_orchestrate::alerts::AlertEvent> for AlertEvent {
    fn from(e: &ate_orchestrate::alerts::AlertEvent) -> Self {
        AlertEvent {
            id: e.id.to_string(),
            rule_id: e.rule_id.clone(),
            rule_name: e.rule_name.clone(),
            severity: e.severity.as_str(),
            labels: e.labels.clone(),
            state: e.state.as_str(),
            value: e.value,
            summary: e.summary.clone(),
            at: e.at,
            firing_id: e.firing_id.map(|id| id.to_string()),
        }
    }
}

#[pymethods]
impl AlertEvent {
    fn __repr__(&self) -> String {
        format!(
            "AlertEvent(rule_id={:?}, state='{}', value={}, summary={:?})",
            self.rule_id, self.state, self.value, self.summary
        )
    }
}
