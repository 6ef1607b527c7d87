//! Snapshots: one import of a project's codebase each, immutable once committed.
//!
//! [`SnapshotStore`] imports codebases ([`SnapshotStore::begin_import`] for entries a host
//! brings one by one, [`SnapshotStore::import_dir`] for a directory), lists and reads their
//! files, diffs two snapshots, deletes them, and collects the chunks nothing needs any more.
//! [`SqlSnapshotStore`](super::SqlSnapshotStore) keeps them in a [`Db`](ate_core::Db) and
//! the content in deduplicated, compressed, encrypted chunks ([`crate::dedup`]).
//!
//! An import is **atomic**: its snapshot becomes visible only when
//! [`Importer::commit`](crate::import::Importer::commit) succeeds; a failed, aborted or
//! interrupted import leaves no visible snapshot and charges nothing to the tenant's quota
//! (what it wrote is removed by [`Importer::abort`](crate::import::Importer::abort), or by
//! garbage collection once its lease has run out).

use crate::StorageError;
use crate::import::{ArchiveFormat, ImportOptions, Importer, LineCounts};
use ate_core::{Cursor, Page, Principal, ProjectId, SnapshotId, TenantId};
use chrono::{DateTime, Utc};
use std::ops::Range;
use std::path::Path;

/// A committed snapshot.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// Its id.
    pub id: SnapshotId,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its project.
    pub project: ProjectId,
    /// Free text given at import (a version, a commit id).
    pub label: String,
    /// Where it came from (`"directory"`, `"tar.gz"`, or what the host said).
    pub source: String,
    /// Who imported it.
    pub created_by: String,
    /// When the import began.
    pub created_at: DateTime<Utc>,
    /// When it was committed.
    pub committed_at: DateTime<Utc>,
    /// Files (and symbolic links) in it.
    pub files: u64,
    /// Their total size.
    pub logical_bytes: u64,
    /// Stored bytes this import added to the project (after deduplication, compression and
    /// encryption): what was new.
    pub new_bytes: u64,
    /// Statistics computed at import.
    pub stats: SnapshotStats,
}

/// What a snapshot holds, by language and directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct SnapshotStats {
    /// Per language (Linguist's names), by bytes, largest first. Files without a language
    /// are not counted here.
    pub languages: Vec<LanguageStats>,
    /// The directories holding the most bytes (their whole subtree), largest first.
    pub largest_directories: Vec<DirectoryStats>,
    /// Vendored files.
    pub vendored_files: u64,
    /// Generated files.
    pub generated_files: u64,
    /// Binary files.
    pub binary_files: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Entries skipped (device files, FIFOs, sockets), with the first few paths.
    pub skipped: u64,
    /// Up to [`MAX_SKIPPED_LISTED`] skipped paths with the reason.
    pub skipped_paths: Vec<String>,
}

/// How many skipped paths [`SnapshotStats::skipped_paths`] lists.
pub const MAX_SKIPPED_LISTED: usize = 20;
/// How many directories [`SnapshotStats::largest_directories`] lists.
pub const MAX_DIRECTORIES_LISTED: usize = 20;

/// One language's share of a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct LanguageStats {
    /// Linguist's name.
    pub language: String,
    /// Files.
    pub files: u64,
    /// Bytes.
    pub bytes: u64,
    /// Lines of code, comment lines and blank lines (files `tokei` could count).
    pub code: u64,
    /// Comment lines.
    pub comments: u64,
    /// Blank lines.
    pub blanks: u64,
}

/// One directory's share of a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct DirectoryStats {
    /// Its path (no trailing slash; `""` is the root).
    pub path: String,
    /// Files below it.
    pub files: u64,
    /// Bytes below it.
    pub bytes: u64,
}

/// What an entry of a snapshot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FileKind {
    /// A regular file.
    File,
    /// A symbolic link, stored as its target (never followed).
    Symlink,
}

impl FileKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Symlink => "symlink",
        }
    }
}

/// A file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct FileEntry {
    /// Its path in the codebase: relative, `/`-separated, normalized (see
    /// [`crate::import`]).
    pub path: String,
    /// File or symbolic link.
    pub kind: FileKind,
    /// Bytes (a link: its target's length).
    pub size: u64,
    /// Permission bits (`0o644`, `0o755`, …).
    pub mode: u32,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// MD5 of the content, hex: for legacy interoperability only, never for integrity.
    pub md5: String,
    /// Linguist's language, when one was found.
    pub language: Option<String>,
    /// Third-party code.
    pub vendored: bool,
    /// Written by a tool.
    pub generated: bool,
    /// Not text.
    pub binary: bool,
    /// Line counts, for text files `tokei` knows, up to 1 MiB.
    pub lines: Option<LineCounts>,
    /// A link's target, as stored.
    pub link_target: Option<String>,
    /// What the content scanner found, for a file kept in quarantine.
    pub quarantined: Option<String>,
}

/// Which snapshots [`SnapshotStore::list`] returns: a project's, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotQuery {
    /// Page size, 1 to [`MAX_PAGE_SIZE`](ate_core::page::MAX_PAGE_SIZE).
    pub limit: Option<u32>,
    /// Where the previous page ended.
    pub cursor: Option<Cursor>,
}

impl SnapshotQuery {
    /// Every snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the page size.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// Continues after a previous page.
    pub fn cursor(mut self, cursor: Cursor) -> Self {
        self.cursor = Some(cursor);
        self
    }
}

/// Which files [`SnapshotStore::list_files`] returns, by path (bytewise). Every filter
/// set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileQuery {
    /// Only paths starting with this (a directory's files: `"src/"`).
    pub path_prefix: Option<String>,
    /// Only paths matching this glob: `*` and `?` stay within a directory, `**` crosses
    /// them, `{a,b}` and `[ab]` as usual (`"src/**/*.rs"`).
    pub glob: Option<String>,
    /// Only files of this language (Linguist's name, exactly).
    pub language: Option<String>,
    /// Only vendored (`true`) or only not vendored (`false`) files.
    pub vendored: Option<bool>,
    /// Only generated or only not generated files.
    pub generated: Option<bool>,
    /// Only binary or only text files.
    pub binary: Option<bool>,
    /// Page size, 1 to [`MAX_PAGE_SIZE`](ate_core::page::MAX_PAGE_SIZE).
    pub limit: Option<u32>,
    /// Where the previous page ended.
    pub cursor: Option<Cursor>,
}

impl FileQuery {
    /// Every file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only paths starting with `prefix`.
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Only paths matching `glob`.
    pub fn glob(mut self, glob: impl Into<String>) -> Self {
        self.glob = Some(glob.into());
        self
    }

    /// Only files of `language`.
    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    /// Only vendored or only not vendored files.
    pub fn vendored(mut self, yes: bool) -> Self {
        self.vendored = Some(yes);
        self
    }

    /// Only generated or only not generated files.
    pub fn generated(mut self, yes: bool) -> Self {
        self.generated = Some(yes);
        self
    }

    /// Only binary or only text files.
    pub fn binary(mut self, yes: bool) -> Self {
        self.binary = Some(yes);
        self
    }

    /// Sets the page size.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// Continues after a previous page.
    pub fn cursor(mut self, cursor: Cursor) -> Self {
        self.cursor = Some(cursor);
        self
    }
}

/// How two snapshots differ, by path (sorted bytewise).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SnapshotDiff {
    /// In the second only.
    pub added: Vec<String>,
    /// In the first only.
    pub removed: Vec<String>,
    /// In both, with other content, kind, mode or link target.
    pub changed: Vec<String>,
}

/// A project's totals ([`SnapshotStore::project_stats`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct ProjectStats {
    /// The project.
    pub project: ProjectId,
    /// Committed snapshots.
    pub snapshots: u64,
    /// Their logical sizes added up (what a copy of every snapshot would take).
    pub logical_bytes: u64,
    /// What the project's chunks take once deduplicated, compressed and encrypted: what is
    /// charged to the tenant's `max_storage_bytes`.
    pub stored_bytes: u64,
    /// The newest snapshot, with its per-language and per-directory statistics.
    pub latest: Option<Snapshot>,
}

/// A tenant's storage use against its quotas ([`SnapshotStore::tenant_usage`]). Users
/// live in `ate-auth` (which enforces `max_users`): a host that runs it adds their count
/// with [`TenantUsage::with_users`] (from `ate_auth`'s `UserStore::count`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct TenantUsage {
    /// The tenant.
    pub tenant: TenantId,
    /// Projects, against [`Quotas::max_projects`](ate_core::Quotas::max_projects).
    pub projects: u64,
    /// Committed snapshots of all its projects.
    pub snapshots: u64,
    /// Their logical sizes added up.
    pub snapshot_logical_bytes: u64,
    /// The projects' stored bytes.
    pub project_stored_bytes: u64,
    /// Objects of the object store, against
    /// [`Quotas::max_objects`](ate_core::Quotas::max_objects).
    pub objects: u64,
    /// Their bytes.
    pub object_bytes: u64,
    /// Analysis results of all its projects ([`crate::analysis`]).
    pub analysis_results: u64,
    /// Their payloads' stored bytes.
    pub analysis_payload_bytes: u64,
    /// What counts against [`Quotas::max_storage_bytes`](ate_core::Quotas::max_storage_bytes):
    /// object bytes, project stored bytes and analysis payload bytes.
    pub storage_bytes: u64,
    /// Users, against [`Quotas::max_users`](ate_core::Quotas::max_users), when the host
    /// added them ([`with_users`](Self::with_users)); `None` from the snapshot store.
    pub users: Option<u64>,
    /// The tenant's quotas.
    pub quotas: ate_core::Quotas,
}

impl TenantUsage {
    /// The same usage with the tenant's user count (from the authentication service).
    pub fn with_users(mut self, users: u64) -> Self {
        self.users = Some(users);
        self
    }
}

/// What [`SnapshotStore::repack`] should do.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RepackOptions {
    /// Seal again under the project's current key every chunk and payload sealed under an
    /// older one (after [`ProjectKeyring::rotate`](super::ProjectKeyring::rotate)). Default
    /// `true`.
    pub reencrypt: bool,
    /// Rewrite packs in which at least this share (0 to 1) of the bytes belong to chunks no
    /// longer needed. Default 0.25; above 1, none are rewritten for that reason.
    pub min_dead_share: f64,
}

impl Default for RepackOptions {
    fn default() -> Self {
        RepackOptions {
            reencrypt: true,
            min_dead_share: 0.25,
        }
    }
}

impl RepackOptions {
    /// Re-encrypts and reclaims packs at least a quarter dead.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether to re-encrypt under the current key.
    pub fn reencrypt(mut self, yes: bool) -> Self {
        self.reencrypt = yes;
        self
    }

    /// The dead share from which a pack is rewritten.
    pub fn min_dead_share(mut self, share: f64) -> Self {
        self.min_dead_share = share;
        self
    }
}

/// What a [`SnapshotStore::repack`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepackReport {
    /// Old packs rewritten.
    pub packs_rewritten: u64,
    /// Chunks sealed again into new packs.
    pub chunks_moved: u64,
    /// Their stored bytes before.
    pub bytes_before: u64,
    /// And after.
    pub bytes_after: u64,
    /// Analysis payloads sealed again under the current key.
    pub payloads_reencrypted: u64,
}

/// What a pass of [`SnapshotStore::collect_garbage`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChunkGcReport {
    /// Imports whose lease had run out, removed with what they wrote.
    pub expired_imports: u64,
    /// Chunks no snapshot needed, removed.
    pub chunks_deleted: u64,
    /// Their stored bytes, no longer charged to the tenant.
    pub bytes_freed: u64,
    /// Pack blobs deleted (every chunk in them gone, or never committed).
    pub packs_deleted: u64,
    /// Analysis payload blobs no result records (left by an upload or a deletion that
    /// was interrupted, or by a deleted project), deleted.
    pub payloads_deleted: u64,
    /// Bytes still held in packs by chunks no longer needed, next to chunks that are (a
    /// later repack can reclaim them).
    pub dead_bytes_in_live_packs: u64,
    /// Whether the chunk sweep was skipped because an import was in progress or began
    /// meanwhile (run again later).
    pub busy: bool,
}

/// Where a tenant's snapshots live.
#[async_trait::async_trait]
pub trait SnapshotStore: Send + Sync + std::fmt::Debug {
    /// Starts an import into project `project`: add entries to the returned [`Importer`],
    /// then commit it. Needs [`PROJECTS_WRITE`](super::PROJECTS_WRITE) in an active tenant;
    /// `NotFound` for a project that is not the tenant's.
    async fn begin_import(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        options: ImportOptions,
    ) -> Result<Importer, StorageError>;

    /// Imports the directory `dir` (its files and symbolic links, recursively, in path
    /// order; links are stored, never followed; device files, FIFOs and sockets are skipped
    /// and reported in the stats) as one snapshot, committed.
    async fn import_dir(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        dir: &Path,
        options: ImportOptions,
    ) -> Result<Snapshot, StorageError>;

    /// Imports an archive read from `archive` as one snapshot, committed: `format`, or
    /// detected from its first bytes when `None` (`InvalidInput` if they name no format this
    /// reads). Streamed with bounded memory (a zip is spooled to a temporary file first);
    /// every hostile entry has the outcome listed in the [`crate::import`] docs, and
    /// any refusal leaves nothing.
    async fn import_archive(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        archive: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
        format: Option<ArchiveFormat>,
        options: ImportOptions,
    ) -> Result<Snapshot, StorageError>;

    /// Writes snapshot `id` to `out` as a tar stream (GNU format, long names supported):
    /// its files with their permission bits, its links as links, in path order; file
    /// times are the snapshot's commit time. Returns the bytes written.
    async fn export_tar(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: SnapshotId,
        out: &mut (dyn tokio::io::AsyncWrite + Send + Unpin),
    ) -> Result<u64, StorageError>;

    /// Snapshot `id`. Needs [`PROJECTS_READ`](super::PROJECTS_READ); `NotFound` for one of
    /// another tenant, or one not committed.
    async fn get(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: SnapshotId,
    ) -> Result<Snapshot, StorageError>;

    /// A project's committed snapshots, newest first.
    async fn list(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        query: &SnapshotQuery,
    ) -> Result<Page<Snapshot>, StorageError>;

    /// The files of snapshot `id` matching `query`, by path. `InvalidInput` for a bad
    /// glob, page size or cursor.
    async fn list_files(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: SnapshotId,
        query: &FileQuery,
    ) -> Result<Page<FileEntry>, StorageError>;

    /// The entry at `path` in snapshot `id`.
    async fn file(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: SnapshotId,
        path: &str,
    ) -> Result<FileEntry, StorageError>;

    /// The content of the file at `path` (a link: its target), all of it or `range` of it
    /// (clipped to the file's end). Only the chunks the range covers are read. Reads of
    /// more than [`MAX_READ_BYTES`] at once are `InvalidInput`: read large files in ranges.
    async fn read_file(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: SnapshotId,
        path: &str,
        range: Option<Range<u64>>,
    ) -> Result<Vec<u8>, StorageError>;

    /// How snapshot `to` differs from snapshot `from` (both of the tenant, of any project).
    async fn diff(
        &self,
        actor: &Principal,
        tenant: TenantId,
        from: SnapshotId,
        to: SnapshotId,
    ) -> Result<SnapshotDiff, StorageError>;

    /// Deletes snapshot `id`: it disappears at once, its file rows go in batches, and the
    /// chunks only it needed are freed by the next [`collect_garbage`](Self::collect_garbage).
    /// Needs [`PROJECTS_DELETE`](super::PROJECTS_DELETE). Audited (`snapshot_deleted`).
    async fn delete(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: SnapshotId,
    ) -> Result<(), StorageError>;

    /// A project's totals and its newest snapshot. Needs
    /// [`PROJECTS_READ`](super::PROJECTS_READ); `NotFound` for a project of another tenant.
    async fn project_stats(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
    ) -> Result<ProjectStats, StorageError>;

    /// The tenant's storage use against its quotas. Needs
    /// [`PROJECTS_READ`](super::PROJECTS_READ).
    async fn tenant_usage(
        &self,
        actor: &Principal,
        tenant: TenantId,
    ) -> Result<TenantUsage, StorageError>;

    /// Collects a project's garbage: imports whose lease ran out, snapshots being deleted,
    /// chunks no committed snapshot needs, and pack blobs nothing points at that are older
    /// than `grace`. A platform administrator's task; `InvalidInput` for a negative `grace`.
    async fn collect_garbage(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        grace: chrono::TimeDelta,
    ) -> Result<ChunkGcReport, StorageError>;

    /// Finishes purging the tenant's deleted projects and deletes every blob left of
    /// projects that no longer exist (after [`ProjectStore::delete`](super::ProjectStore::delete)
    /// nothing names them any more, so [`collect_garbage`](Self::collect_garbage) of a
    /// project cannot reach them): their keys are destroyed, so whatever they left is garbage
    /// whatever its age. Reports the pack and payload blobs deleted. A platform
    /// administrator's task.
    async fn collect_deleted_projects(
        &self,
        actor: &Principal,
        tenant: TenantId,
    ) -> Result<ChunkGcReport, StorageError>;

    /// Rewrites a project's stored data as `options` say: after a key rotation, every chunk
    /// and analysis payload still sealed under an older project key is sealed again under
    /// the current one (then nothing needs the old versions); packs holding mostly dead
    /// bytes (see [`ChunkGcReport::dead_bytes_in_live_packs`]) are rewritten with their live
    /// chunks only. Safe while imports and reads run; interrupted, it leaves only garbage
    /// for [`collect_garbage`](Self::collect_garbage). Needs
    /// [`KEY_ROTATE`](crate::keyring::KEY_ROTATE) in the tenant; `InvalidInput` for a
    /// negative or NaN `min_dead_share`.
    async fn repack(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        options: RepackOptions,
    ) -> Result<RepackReport, StorageError>;

    /// Checks a project's stored data, or with `project` `None` every project of the
    /// tenant and the blobs of projects that no longer exist (see [`crate::verify`] for what
    /// is checked). Reports each problem; changes nothing unless
    /// [`VerifyOptions::repair`](crate::verify::VerifyOptions::repair) is set, and then only
    /// deletes orphan pack and payload blobs older than the grace period (what
    /// [`collect_garbage`](Self::collect_garbage) would delete). A deleted project whose
    /// purge has not finished is counted in
    /// [`in_progress`](crate::verify::VerifyReport::in_progress), not checked.
    ///
    /// A platform administrator's task; `InvalidInput` for options out of range, `NotFound`
    /// for a project that is not the tenant's. Problems with single files, chunks, packs or
    /// payloads are in the report, not errors.
    async fn verify(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: Option<ProjectId>,
        options: &crate::verify::VerifyOptions,
    ) -> Result<crate::verify::VerifyReport, StorageError>;
}

/// The most [`SnapshotStore::read_file`] returns at once.
pub const MAX_READ_BYTES: u64 = 64 << 20;
