//! Integrity checks an operator can run: does everything stored still add up?
//!
//! [`ObjectStore::verify`](crate::ObjectStore::verify) checks one tenant's objects: every
//! index row has its blob, of the size the row implies, whose header authenticates under
//! the row's key version (or, with [`VerifyOptions::read_all`], whose every chunk decrypts
//! and whose plaintext matches the recorded SHA-256); every blob is referenced by a row or
//! reported as an orphan.
//!
//! [`SnapshotStore::verify`](crate::projects::SnapshotStore::verify) checks a tenant's
//! codebase projects: every pack row has its blob, of the recorded size (with `read_all`,
//! of the recorded SHA-256); every chunk row lies inside its pack under a usable project key;
//! every committed snapshot's file lists only indexed chunks whose lengths add up to the
//! file's size (with `read_all`, every file's content is read back, each chunk opened and
//! checked against its id, and compared with the recorded SHA-256); the snapshots' file
//! counts and sizes and the project's stored bytes (what the tenant's storage quota is
//! charged) equal what exists; every analysis payload has its blob, of the recorded size,
//! whose header authenticates (with `read_all`: decrypts to the recorded SHA-256); pack and
//! payload blobs nothing records are orphans, and so is every blob of a project that no
//! longer exists.
//!
//! A check reads and reports; it changes nothing unless asked to
//! [`repair`](VerifyOptions::repair) what is safely repairable (orphan blobs older than the
//! [grace period](VerifyOptions::grace), the same rule as garbage collection).
//!
//! Problems are reported one by one, each with its tenant, object or project and snapshot,
//! path, blob and a message that says what is wrong, so an operator can tell a lost blob
//! from a shredded key from a tampered byte. Reports of the same tenant
//! [merge](VerifyReport::merge) into one.

use ate_core::{ObjectId, ProjectId, SnapshotId, TenantId};

/// What a check covers and whether it repairs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Read and decrypt every byte and compare checksums (default: only sizes and headers,
    /// one small read per object).
    pub read_all: bool,
    /// Delete orphan blobs older than [`grace`](Self::grace) (default: report only).
    pub repair: bool,
    /// Blobs without an index row younger than this may be uploads in progress: they are
    /// counted, not reported, and never repaired. Default one hour.
    pub grace: chrono::TimeDelta,
    /// Objects checked at once, 1 to [`MAX_CONCURRENCY`]. Default 8.
    pub concurrency: usize,
}

/// The most objects a check reads at once.
pub const MAX_CONCURRENCY: usize = 256;

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            read_all: false,
            repair: false,
            grace: chrono::TimeDelta::hours(1),
            concurrency: 8,
        }
    }
}

impl VerifyOptions {
    /// Sets [`read_all`](Self::read_all).
    pub fn read_all(mut self, yes: bool) -> Self {
        self.read_all = yes;
        self
    }

    /// Sets [`repair`](Self::repair).
    pub fn repair(mut self, yes: bool) -> Self {
        self.repair = yes;
        self
    }

    /// Sets [`grace`](Self::grace).
    pub fn grace(mut self, grace: chrono::TimeDelta) -> Self {
        self.grace = grace;
        self
    }

    /// Sets [`concurrency`](Self::concurrency).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), crate::StorageError> {
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(crate::StorageError::invalid(
                "verify concurrency",
                format!(
                    "must be between 1 and {MAX_CONCURRENCY}, got {}",
                    self.concurrency
                ),
            ));
        }
        crate::blob::check_grace(self.grace)
    }
}

/// What kind of problem a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ProblemKind {
    /// An index row whose blob is missing: the object is lost.
    MissingBlob,
    /// A blob whose size is not the one the row's plaintext size implies (truncated,
    /// extended or replaced).
    SizeMismatch,
    /// The blob's header does not authenticate under the row's key and context (a
    /// modified header, a blob moved from elsewhere, or a wrong key).
    HeaderMismatch,
    /// A chunk fails authentication (with `read_all`): modified, truncated or reordered.
    Corrupt,
    /// Every chunk authenticates but the plaintext's SHA-256 is not the recorded one: the
    /// index row does not describe this blob.
    ChecksumMismatch,
    /// The row's key version was destroyed (crypto-shredded): the object can never be read
    /// again. Expected only for objects that should have been deleted or re-encrypted
    /// before the key was destroyed.
    KeyDestroyed,
    /// The row's key version does not exist or cannot be unwrapped by the master key.
    KeyUnavailable,
    /// An index row with unreadable fields.
    BadIndexRow,
    /// The blob store failed to answer for this blob (the check could not tell).
    ReadFailed,
    /// A blob no index row references, older than the grace period (left by a crash
    /// between upload and commit, or by a failed delete).
    OrphanBlob,
    /// A snapshot's file names a chunk the project's chunk index does not hold (or holds
    /// with another length): that file's content is lost.
    MissingChunk,
    /// A recorded total (a snapshot's file count or size, a project's stored bytes, which
    /// the tenant's storage quota is charged) differs from what actually exists.
    UsageMismatch,
}

impl ProblemKind {
    /// The kind as a stable snake_case name (for JSON and logs).
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::MissingBlob => "missing_blob",
            ProblemKind::SizeMismatch => "size_mismatch",
            ProblemKind::HeaderMismatch => "header_mismatch",
            ProblemKind::Corrupt => "corrupt",
            ProblemKind::ChecksumMismatch => "checksum_mismatch",
            ProblemKind::KeyDestroyed => "key_destroyed",
            ProblemKind::KeyUnavailable => "key_unavailable",
            ProblemKind::BadIndexRow => "bad_index_row",
            ProblemKind::ReadFailed => "read_failed",
            ProblemKind::OrphanBlob => "orphan_blob",
            ProblemKind::MissingChunk => "missing_chunk",
            ProblemKind::UsageMismatch => "usage_mismatch",
        }
    }
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem, precisely.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The tenant.
    pub tenant: TenantId,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// The object (or orphan object blob) it concerns.
    pub object: Option<ObjectId>,
    /// The codebase project it concerns.
    pub project: Option<ProjectId>,
    /// The snapshot it concerns.
    pub snapshot: Option<SnapshotId>,
    /// The object's or the snapshot file's path, when there is one.
    pub path: Option<String>,
    /// The blob store name of the blob it concerns (a pack or payload blob).
    pub blob: Option<String>,
    /// What exactly is wrong.
    pub detail: String,
    /// Whether this run repaired it.
    pub repaired: bool,
}

impl Problem {
    /// A problem of `kind` in `tenant`, described by `detail`; the rest is added with the
    /// builders below.
    pub(crate) fn new(tenant: TenantId, kind: ProblemKind, detail: impl Into<String>) -> Self {
        Problem {
            tenant,
            kind,
            object: None,
            project: None,
            snapshot: None,
            path: None,
            blob: None,
            detail: detail.into(),
            repaired: false,
        }
    }

    pub(crate) fn object(mut self, object: Option<ObjectId>) -> Self {
        self.object = object;
        self
    }

    pub(crate) fn project(mut self, project: ProjectId) -> Self {
        self.project = Some(project);
        self
    }

    pub(crate) fn snapshot(mut self, snapshot: Option<SnapshotId>) -> Self {
        self.snapshot = snapshot;
        self
    }

    pub(crate) fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    pub(crate) fn blob(mut self, blob: impl Into<String>) -> Self {
        self.blob = Some(blob.into());
        self
    }

    /// The order problems are reported in: by kind, then where.
    fn sort_key(&self) -> impl Ord + '_ {
        (
            self.kind,
            self.project,
            self.snapshot,
            self.path.as_deref(),
            self.object,
            self.blob.as_deref(),
        )
    }
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The tenant checked.
    pub tenant: TenantId,
    /// Object index rows checked.
    pub objects: u64,
    /// Codebase projects checked (deleted ones whose purge is unfinished are counted in
    /// [`in_progress`](Self::in_progress) instead).
    pub projects: u64,
    /// Committed snapshots checked.
    pub snapshots: u64,
    /// Their file rows checked.
    pub files: u64,
    /// Chunk index rows checked.
    pub chunks: u64,
    /// Pack rows checked.
    pub packs: u64,
    /// Analysis payload rows checked.
    pub payloads: u64,
    /// Blobs found in the blob store (object, pack and payload blobs).
    pub blobs: u64,
    /// Ciphertext bytes read.
    pub bytes_read: u64,
    /// Blobs without an index row that are younger than the grace period (possibly uploads
    /// in progress), and deleted projects whose purge has not finished (garbage collection
    /// finishes it): not problems, never repaired.
    pub in_progress: u64,
    /// Everything found wrong, by object.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// An empty report of `tenant`.
    pub fn new(tenant: TenantId) -> Self {
        VerifyReport {
            tenant,
            objects: 0,
            projects: 0,
            snapshots: 0,
            files: 0,
            chunks: 0,
            packs: 0,
            payloads: 0,
            blobs: 0,
            bytes_read: 0,
            in_progress: 0,
            problems: Vec::new(),
        }
    }

    /// Adds `other`'s counts and problems to this report (e.g. the object check's and the
    /// project check's of one tenant).
    ///
    /// # Errors
    ///
    /// `InvalidInput` when `other` is about another tenant (nothing is added then).
    pub fn merge(&mut self, other: VerifyReport) -> Result<(), crate::StorageError> {
        if other.tenant != self.tenant {
            return Err(crate::StorageError::invalid(
                "verify report",
                format!(
                    "a report of tenant {} cannot be merged into one of tenant {}",
                    other.tenant, self.tenant
                ),
            ));
        }
        self.objects += other.objects;
        self.projects += other.projects;
        self.snapshots += other.snapshots;
        self.files += other.files;
        self.chunks += other.chunks;
        self.packs += other.packs;
        self.payloads += other.payloads;
        self.blobs += other.blobs;
        self.bytes_read += other.bytes_read;
        self.in_progress += other.in_progress;
        self.problems.extend(other.problems);
        self.sort();
        Ok(())
    }

    /// Orders the problems by kind, then by project, snapshot, path, object and blob.
    pub(crate) fn sort(&mut self) {
        self.problems
            .sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    }

    /// True when nothing is wrong (repaired problems count as fixed).
    pub fn is_clean(&self) -> bool {
        self.unrepaired() == 0
    }

    /// How many problems are left (found and not repaired).
    pub fn unrepaired(&self) -> usize {
        self.problems.iter().filter(|p| !p.repaired).count()
    }

    /// Problems of `kind`.
    pub fn of_kind(&self, kind: ProblemKind) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(move |p| p.kind == kind)
    }
}
