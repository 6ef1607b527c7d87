//! The objects ATE returns to Python: immutable, with attributes (never raw dicts).

use crate::convert::from_json;
use ate_core::audit::{self, ChainProblem};
use ate_storage::{keyring, objects};
use chrono::{DateTime, Utc};
use pyo3::prelude::*;

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
