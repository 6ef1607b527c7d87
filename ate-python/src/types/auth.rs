//! What `a.auth` returns: `Principal`, `User`, `UserPage`, `Session`, `Tokens` and
//! `SigningKeyInfo`.

use crate::convert::frozenset;
use crate::error::Error;
use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use pyo3::types::PyFrozenSet;

/// Who a verified access token speaks for: a user of one tenant, or (for `super_admin`
/// users and the client itself) a platform administrator. `a.acting_as(principal)` gives a
/// client that acts as it in every domain; every check of the Rust API applies.
#[pyclass(module = "ate.auth", frozen, eq, from_py_object)]
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
#[pyclass(module = "ate.auth", frozen, eq, from_py_object)]
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

page_class!(UserPage, "ate.auth", User, ate_auth::User, "users");

/// A login session (one refresh-token family), without secrets.
#[pyclass(module = "ate.auth", frozen, eq, from_py_object)]
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
#[pyclass(module = "ate.auth", frozen)]
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
#[pyclass(module = "ate.auth", frozen, eq, from_py_object)]
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
