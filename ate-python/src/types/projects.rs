//! What `a.projects` and `a.analysis` return: projects, snapshots, their files and
//! statistics, analysis results, backups.

use crate::convert::from_json;
use ate_storage::{analysis, backup, projects};
use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use std::collections::BTreeMap;

/// A codebase project (see `ate_storage::projects::Project`).
#[pyclass(module = "ate.projects", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct Project {
    #[pyo3(get)]
    id: String,
    #[pyo3(get)]
    tenant_id: String,
    #[pyo3(get)]
    name: String,
    #[pyo3(get)]
    description: String,
    #[pyo3(get)]
    labels: BTreeMap<String, String>,
    #[pyo3(get)]
    created_by: String,
    #[pyo3(get)]
    created_at: DateTime<Utc>,
    #[pyo3(get)]
    updated_at: DateTime<Utc>,
    #[pyo3(get)]
    revision: i64,
    settings: serde_json::Value,
}

impl From<projects::Project> for Project {
    fn from(p: projects::Project) -> Self {
        Project {
            id: p.id.to_string(),
            tenant_id: p.tenant.to_string(),
            name: p.name.to_string(),
            description: p.description,
            labels: p.labels,
            created_by: p.created_by,
            created_at: p.created_at,
            updated_at: p.updated_at,
            revision: p.revision,
            settings: p.settings,
        }
    }
}

#[pymethods]
impl Project {
    /// The project's free settings, as a dict.
    #[getter]
    fn settings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &self.settings)
    }

    fn __repr__(&self) -> String {
        format!(
            "Project(id='{}', name={:?}, revision={})",
            self.id, self.name, self.revision
        )
    }
}

page_class!(
    ProjectPage,
    "ate.projects",
    Project,
    projects::Project,
    "projects"
);

/// One language's share of a snapshot.
#[pyclass(module = "ate.projects", frozen, eq, get_all, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct LanguageStats {
    language: String,
    files: u64,
    bytes: u64,
    code: u64,
    comments: u64,
    blanks: u64,
}

#[pymethods]
impl LanguageStats {
    fn __repr__(&self) -> String {
        format!(
            "LanguageStats(language={:?}, files={}, bytes={}, code={})",
            self.language, self.files, self.bytes, self.code
        )
    }
}

/// One directory's share of a snapshot (its whole subtree).
#[pyclass(module = "ate.projects", frozen, eq, get_all, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct DirectoryStats {
    path: String,
    files: u64,
    bytes: u64,
}

#[pymethods]
impl DirectoryStats {
    fn __repr__(&self) -> String {
        format!(
            "DirectoryStats(path={:?}, files={}, bytes={})",
            self.path, self.files, self.bytes
        )
    }
}

/// A committed snapshot: one import of a codebase, with its statistics.
#[pyclass(module = "ate.projects", frozen, eq, get_all, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct Snapshot {
    id: String,
    tenant_id: String,
    project_id: String,
    label: String,
    source: String,
    created_by: String,
    created_at: DateTime<Utc>,
    committed_at: DateTime<Utc>,
    files: u64,
    logical_bytes: u64,
    new_bytes: u64,
    languages: Vec<LanguageStats>,
    largest_directories: Vec<DirectoryStats>,
    vendored_files: u64,
    generated_files: u64,
    binary_files: u64,
    symlinks: u64,
    skipped: u64,
    skipped_paths: Vec<String>,
}

impl From<projects::Snapshot> for Snapshot {
    fn from(s: projects::Snapshot) -> Self {
        let stats = s.stats;
        Snapshot {
            id: s.id.to_string(),
            tenant_id: s.tenant.to_string(),
            project_id: s.project.to_string(),
            label: s.label,
            source: s.source,
            created_by: s.created_by,
            created_at: s.created_at,
            committed_at: s.committed_at,
            files: s.files,
            logical_bytes: s.logical_bytes,
            new_bytes: s.new_bytes,
            languages: stats
                .languages
                .into_iter()
                .map(|l| LanguageStats {
                    language: l.language,
                    files: l.files,
                    bytes: l.bytes,
                    code: l.code,
                    comments: l.comments,
                    blanks: l.blanks,
                })
                .collect(),
            largest_directories: stats
                .largest_directories
                .into_iter()
                .map(|d| DirectoryStats {
                    path: d.path,
                    files: d.files,
                    bytes: d.bytes,
                })
                .collect(),
            vendored_files: stats.vendored_files,
            generated_files: stats.generated_files,
            binary_files: stats.binary_files,
            symlinks: stats.symlinks,
            skipped: stats.skipped,
            skipped_paths: stats.skipped_paths,
        }
    }
}

#[pymethods]
impl Snapshot {
    fn __repr__(&self) -> String {
        format!(
            "Snapshot(id='{}', label={:?}, files={}, logical_bytes={}, new_bytes={})",
            self.id, self.label, self.files, self.logical_bytes, self.new_bytes
        )
    }
}

page_class!(
    SnapshotPage,
    "ate.projects",
    Snapshot,
    projects::Snapshot,
    "snapshots"
);

/// A file (or symbolic link) of a snapshot.
#[pyclass(module = "ate.projects", frozen, eq, get_all, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct FileEntry {
    path: String,
    /// `"file"` or `"symlink"`.
    kind: &'static str,
    size: u64,
    mode: u32,
    sha256: String,
    md5: String,
    language: Option<String>,
    vendored: bool,
    generated: bool,
    binary: bool,
    code_lines: Option<u64>,
    comment_lines: Option<u64>,
    blank_lines: Option<u64>,
    link_target: Option<String>,
    quarantined: Option<String>,
}

impl From<projects::FileEntry> for FileEntry {
    fn from(f: projects::FileEntry) -> Self {
        FileEntry {
            path: f.path,
            kind: match f.kind {
                projects::FileKind::Symlink => "symlink",
                _ => "file",
            },
            size: f.size,
            mode: f.mode,
            sha256: f.sha256,
            md5: f.md5,
            language: f.language,
            vendored: f.vendored,
            generated: f.generated,
            binary: f.binary,
            code_lines: f.lines.map(|l| l.code),
            comment_lines: f.lines.map(|l| l.comments),
            blank_lines: f.lines.map(|l| l.blanks),
            link_target: f.link_target,
            quarantined: f.quarantined,
        }
    }
}

impl FileEntry {
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
}

#[pymethods]
impl FileEntry {
    fn __repr__(&self) -> String {
        format!(
            "FileEntry(path={:?}, kind='{}', size={}, language={:?})",
            self.path, self.kind, self.size, self.language
        )
    }
}

page_class!(
    FilePage,
    "ate.projects",
    FileEntry,
    projects::FileEntry,
    "files"
);

/// How two snapshots differ, by path.
#[pyclass(module = "ate.projects", frozen, eq, get_all, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct SnapshotDiff {
    added: Vec<String>,
    removed: Vec<String>,
    changed: Vec<String>,
}

impl From<projects::SnapshotDiff> for SnapshotDiff {
    fn from(d: projects::SnapshotDiff) -> Self {
        SnapshotDiff {
            added: d.added,
            removed: d.removed,
            changed: d.changed,
        }
    }
}

#[pymethods]
impl SnapshotDiff {
    fn __repr__(&self) -> String {
        format!(
            "SnapshotDiff(added=<{}>, removed=<{}>, changed=<{}>)",
            self.added.len(),
            self.removed.len(),
            self.changed.len()
        )
    }
}

/// A project's totals and its newest snapshot.
#[pyclass(module = "ate.projects", frozen, eq, get_all, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct ProjectStats {
    project_id: String,
    snapshots: u64,
    logical_bytes: u64,
    stored_bytes: u64,
    latest: Option<Snapshot>,
}

impl From<projects::ProjectStats> for ProjectStats {
    fn from(s: projects::ProjectStats) -> Self {
        ProjectStats {
            project_id: s.project.to_string(),
            snapshots: s.snapshots,
            logical_bytes: s.logical_bytes,
            stored_bytes: s.stored_bytes,
            latest: s.latest.map(Snapshot::from),
        }
    }
}

#[pymethods]
impl ProjectStats {
    fn __repr__(&self) -> String {
        format!(
            "ProjectStats(project_id='{}', snapshots={}, logical_bytes={}, stored_bytes={})",
            self.project_id, self.snapshots, self.logical_bytes, self.stored_bytes
        )
    }
}

/// A tenant's storage use against its quotas.
#[pyclass(module = "ate.projects", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct TenantUsage {
    #[pyo3(get)]
    tenant_id: String,
    #[pyo3(get)]
    projects: u64,
    #[pyo3(get)]
    snapshots: u64,
    #[pyo3(get)]
    snapshot_logical_bytes: u64,
    #[pyo3(get)]
    project_stored_bytes: u64,
    #[pyo3(get)]
    objects: u64,
    #[pyo3(get)]
    object_bytes: u64,
    #[pyo3(get)]
    analysis_results: u64,
    #[pyo3(get)]
    analysis_payload_bytes: u64,
    #[pyo3(get)]
    storage_bytes: u64,
    #[pyo3(get)]
    users: Option<u64>,
    quotas: serde_json::Value,
}

impl From<projects::TenantUsage> for TenantUsage {
    fn from(u: projects::TenantUsage) -> Self {
        TenantUsage {
            tenant_id: u.tenant.to_string(),
            projects: u.projects,
            snapshots: u.snapshots,
            snapshot_logical_bytes: u.snapshot_logical_bytes,
            project_stored_bytes: u.project_stored_bytes,
            objects: u.objects,
            object_bytes: u.object_bytes,
            analysis_results: u.analysis_results,
            analysis_payload_bytes: u.analysis_payload_bytes,
            storage_bytes: u.storage_bytes,
            users: u.users,
            quotas: serde_json::to_value(&u.quotas).unwrap_or_default(),
        }
    }
}

#[pymethods]
impl TenantUsage {
    /// The tenant's quotas as a dict (`None` values mean unlimited).
    #[getter]
    fn quotas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &self.quotas)
    }

    fn __repr__(&self) -> String {
        format!(
            "TenantUsage(tenant_id='{}', projects={}, snapshots={}, storage_bytes={})",
            self.tenant_id, self.projects, self.snapshots, self.storage_bytes
        )
    }
}

/// Where an import stands, given to a progress callback after every entry.
#[pyclass(module = "ate.projects", frozen, eq, get_all, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct ImportProgress {
    /// The entry just added.
    path: String,
    /// Entries added so far.
    files: u64,
    /// Their bytes.
    bytes: u64,
}

impl ImportProgress {
    pub(crate) fn new(path: &str, files: u64, bytes: u64) -> Self {
        ImportProgress {
            path: path.to_owned(),
            files,
            bytes,
        }
    }
}

#[pymethods]
impl ImportProgress {
    fn __repr__(&self) -> String {
        format!(
            "ImportProgress(path={:?}, files={}, bytes={})",
            self.path, self.files, self.bytes
        )
    }
}

/// A payload of an analysis result (see `ate_storage::analysis::Payload`).
#[pyclass(module = "ate.projects", frozen, eq, get_all, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct Payload {
    name: String,
    content_type: String,
    size: u64,
    stored_bytes: u64,
    sha256: String,
    created_at: DateTime<Utc>,
}

impl From<analysis::Payload> for Payload {
    fn from(p: analysis::Payload) -> Self {
        Payload {
            name: p.name,
            content_type: p.content_type,
            size: p.size,
            stored_bytes: p.stored_bytes,
            sha256: p.sha256,
            created_at: p.created_at,
        }
    }
}

#[pymethods]
impl Payload {
    fn __repr__(&self) -> String {
        format!(
            "Payload(name={:?}, content_type={:?}, size={})",
            self.name, self.content_type, self.size
        )
    }
}

/// An analysis result (see `ate_storage::analysis::AnalysisResult`).
#[pyclass(module = "ate.projects", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct AnalysisResult {
    #[pyo3(get)]
    id: String,
    #[pyo3(get)]
    tenant_id: String,
    #[pyo3(get)]
    project_id: String,
    #[pyo3(get)]
    snapshot_id: Option<String>,
    #[pyo3(get)]
    kind: String,
    #[pyo3(get)]
    analyzer: String,
    #[pyo3(get)]
    analyzer_version: String,
    #[pyo3(get)]
    status: &'static str,
    #[pyo3(get)]
    error: Option<String>,
    #[pyo3(get)]
    payloads: Vec<Payload>,
    #[pyo3(get)]
    created_by: String,
    #[pyo3(get)]
    created_at: DateTime<Utc>,
    #[pyo3(get)]
    updated_at: DateTime<Utc>,
    #[pyo3(get)]
    started_at: Option<DateTime<Utc>>,
    #[pyo3(get)]
    finished_at: Option<DateTime<Utc>>,
    #[pyo3(get)]
    revision: i64,
    summary: serde_json::Value,
}

impl From<analysis::AnalysisResult> for AnalysisResult {
    fn from(r: analysis::AnalysisResult) -> Self {
        AnalysisResult {
            id: r.id.to_string(),
            tenant_id: r.tenant.to_string(),
            project_id: r.project.to_string(),
            snapshot_id: r.snapshot.map(|s| s.to_string()),
            kind: r.kind,
            analyzer: r.analyzer,
            analyzer_version: r.analyzer_version,
            status: r.status.as_str(),
            error: r.error,
            payloads: r.payloads.into_iter().map(Payload::from).collect(),
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            revision: r.revision,
            summary: r.summary,
        }
    }
}

#[pymethods]
impl AnalysisResult {
    /// The analyzer's summary, as a dict.
    #[getter]
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &self.summary)
    }

    fn __repr__(&self) -> String {
        format!(
            "AnalysisResult(id='{}', kind={:?}, analyzer={:?}, status='{}', revision={})",
            self.id, self.kind, self.analyzer, self.status, self.revision
        )
    }
}

page_class!(
    AnalysisPage,
    "ate.projects",
    AnalysisResult,
    analysis::AnalysisResult,
    "analysis results"
);

/// What a backup export wrote.
#[pyclass(module = "ate.projects", frozen, eq, get_all, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct BackupSummary {
    projects: u64,
    snapshots: u64,
    files: u64,
    analysis_results: u64,
    payloads: u64,
    objects: u64,
    object_bytes: u64,
    bytes: u64,
}

impl From<backup::BackupSummary> for BackupSummary {
    fn from(b: backup::BackupSummary) -> Self {
        BackupSummary {
            projects: b.projects,
            objects: b.objects,
            object_bytes: b.object_bytes,
            snapshots: b.snapshots,
            files: b.files,
            analysis_results: b.analysis_results,
            payloads: b.payloads,
            bytes: b.bytes,
        }
    }
}

#[pymethods]
impl BackupSummary {
    fn __repr__(&self) -> String {
        format!(
            "BackupSummary(snapshots={}, files={}, analysis_results={}, bytes={})",
            self.snapshots, self.files, self.analysis_results, self.bytes
        )
    }
}

/// What a restore created.
#[pyclass(module = "ate.projects", frozen, eq, get_all, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct RestoreReport {
    project_id: Option<String>,
    project_ids: Vec<String>,
    objects: u64,
    snapshots: u64,
    files: u64,
    analysis_results: u64,
    payloads: u64,
}

impl From<backup::RestoreReport> for RestoreReport {
    fn from(r: backup::RestoreReport) -> Self {
        RestoreReport {
            project_id: r.project.map(|p| p.to_string()),
            project_ids: r.projects.iter().map(ToString::to_string).collect(),
            objects: r.objects,
            snapshots: r.snapshots,
            files: r.files,
            analysis_results: r.analysis_results,
            payloads: r.payloads,
        }
    }
}

#[pymethods]
impl RestoreReport {
    fn __repr__(&self) -> String {
        format!(
            "RestoreReport(project_id={:?}, snapshots={}, files={}, analysis_results={})",
            self.project_id, self.snapshots, self.files, self.analysis_results
        )
    }
}
