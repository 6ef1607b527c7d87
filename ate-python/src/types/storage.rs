//! What `a.storage` returns: `ObjectInfo`, `ObjectPage`, `DirPage`, `KeyInfo`, `ReencryptProgress`,
//! `GcReport` and `VerifyReport`.

use crate::convert::from_json;
use ate_storage::{keyring, objects, verify};
use chrono::{DateTime, Utc};
use pyo3::prelude::*;

/// An object's index entry (see `ate_storage::objects::ObjectInfo`).
#[pyclass(module = "ate.storage", frozen, eq, from_py_object)]
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
    /// The store's own entry, so `get_range_of` reads exactly this version.
    core: Option<objects::ObjectInfo>,
}

impl ObjectInfo {
    pub(crate) fn path(&self) -> &str {
        &self.path
    }
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
    /// The store's entry this was made from.
    pub(crate) fn core(&self) -> Option<&objects::ObjectInfo> {
        self.core.as_ref()
    }
}

impl From<objects::ObjectInfo> for ObjectInfo {
    fn from(o: objects::ObjectInfo) -> Self {
        let core = Some(o.clone());
        ObjectInfo {
            core,
            tenant_id: o.tenant.to_string(),
            id: o.id.to_string(),
            path: o.path,
            size: o.size,
            sha256: hex::encode(o.sha256),
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

page_class!(
    ObjectPage,
    "ate.storage",
    ObjectInfo,
    objects::ObjectInfo,
    "objects"
);

/// One page of a directory listing (`a.storage.list_dir`): the objects directly in the
/// directory and its subdirectories (path prefixes ending with `/`), each in bytewise order.
#[pyclass(module = "ate.storage", frozen)]
pub(crate) struct DirPage {
    #[pyo3(get)]
    objects: Vec<ObjectInfo>,
    #[pyo3(get)]
    directories: Vec<String>,
    #[pyo3(get)]
    next_cursor: Option<String>,
}

impl From<ate_core::Page<objects::DirEntry>> for DirPage {
    fn from(p: ate_core::Page<objects::DirEntry>) -> Self {
        let (mut objects, mut directories) = (Vec::new(), Vec::new());
        for entry in p.items {
            match entry {
                objects::DirEntry::Object(o) => objects.push(ObjectInfo::from(o)),
                objects::DirEntry::Directory(d) => directories.push(d),
                // A future kind of entry is not shown to this version.
                _ => {}
            }
        }
        DirPage {
            objects,
            directories,
            next_cursor: p.next_cursor.map(|c| c.as_str().to_owned()),
        }
    }
}

#[pymethods]
impl DirPage {
    fn __repr__(&self) -> String {
        format!(
            "DirPage(objects=<{} objects>, directories=<{} directories>, next_cursor={:?})",
            self.objects.len(),
            self.directories.len(),
            self.next_cursor
        )
    }
}

/// A tenant data key's metadata (never the key itself).
#[pyclass(module = "ate.storage", frozen, eq, from_py_object)]
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
#[pyclass(module = "ate.storage", frozen, eq, from_py_object)]
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
#[pyclass(module = "ate.storage", frozen, eq, from_py_object)]
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

/// One problem an integrity check found (see `ate_storage::verify::Problem`).
#[pyclass(module = "ate.storage", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct VerifyProblem {
    #[pyo3(get)]
    tenant_id: String,
    /// `missing_blob`, `size_mismatch`, `header_mismatch`, `corrupt`, `checksum_mismatch`,
    /// `key_destroyed`, `key_unavailable`, `bad_index_row`, `read_failed`, `orphan_blob`,
    /// `missing_chunk` or `usage_mismatch`.
    #[pyo3(get)]
    kind: String,
    #[pyo3(get)]
    object_id: Option<String>,
    #[pyo3(get)]
    project_id: Option<String>,
    #[pyo3(get)]
    snapshot_id: Option<String>,
    #[pyo3(get)]
    path: Option<String>,
    #[pyo3(get)]
    blob: Option<String>,
    #[pyo3(get)]
    detail: String,
    #[pyo3(get)]
    repaired: bool,
}

#[pymethods]
impl VerifyProblem {
    fn __repr__(&self) -> String {
        format!(
            "VerifyProblem(kind={:?}, object_id={:?}, project_id={:?}, snapshot_id={:?}, \
             path={:?}, blob={:?}, detail={:?}, repaired={})",
            self.kind,
            self.object_id,
            self.project_id,
            self.snapshot_id,
            self.path,
            self.blob,
            self.detail,
            self.repaired
        )
    }
}

/// What an integrity check of one tenant's objects or codebase projects found.
#[pyclass(module = "ate.storage", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct VerifyReport {
    #[pyo3(get)]
    tenant_id: String,
    #[pyo3(get)]
    objects: u64,
    #[pyo3(get)]
    projects: u64,
    #[pyo3(get)]
    snapshots: u64,
    #[pyo3(get)]
    files: u64,
    #[pyo3(get)]
    chunks: u64,
    #[pyo3(get)]
    packs: u64,
    #[pyo3(get)]
    payloads: u64,
    #[pyo3(get)]
    blobs: u64,
    #[pyo3(get)]
    bytes_read: u64,
    #[pyo3(get)]
    in_progress: u64,
    #[pyo3(get)]
    problems: Vec<VerifyProblem>,
}

impl From<verify::VerifyReport> for VerifyReport {
    fn from(r: verify::VerifyReport) -> Self {
        VerifyReport {
            tenant_id: r.tenant.to_string(),
            objects: r.objects,
            projects: r.projects,
            snapshots: r.snapshots,
            files: r.files,
            chunks: r.chunks,
            packs: r.packs,
            payloads: r.payloads,
            blobs: r.blobs,
            bytes_read: r.bytes_read,
            in_progress: r.in_progress,
            problems: r
                .problems
                .into_iter()
                .map(|p| VerifyProblem {
                    tenant_id: p.tenant.to_string(),
                    kind: p.kind.as_str().to_owned(),
                    object_id: p.object.map(|o| o.to_string()),
                    project_id: p.project.map(|o| o.to_string()),
                    snapshot_id: p.snapshot.map(|o| o.to_string()),
                    path: p.path,
                    blob: p.blob,
                    detail: p.detail,
                    repaired: p.repaired,
                })
                .collect(),
        }
    }
}

#[pymethods]
impl VerifyReport {
    /// True when nothing is wrong (repaired problems count as fixed).
    #[getter]
    fn clean(&self) -> bool {
        self.problems.iter().all(|p| p.repaired)
    }

    fn __repr__(&self) -> String {
        format!(
            "VerifyReport(tenant_id={:?}, objects={}, projects={}, snapshots={}, blobs={}, \
             problems={})",
            self.tenant_id,
            self.objects,
            self.projects,
            self.snapshots,
            self.blobs,
            self.problems.len()
        )
    }
}
