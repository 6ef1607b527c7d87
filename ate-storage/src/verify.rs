//! Integrity checks an operator can run: does everything stored still add up?
//!
//! [`ObjectStore::verify`](crate::ObjectStore::verify) checks one tenant's objects: every
//! index row has its blob, of the size the row implies, whose header authenticates under
//! the row's key version (or, with [`VerifyOptions::read_all`], whose every chunk decrypts
//! and whose plaintext matches the recorded SHA-256); every blob is referenced by a row or
//! reported as an orphan. A check reads and reports; it changes nothing unless asked to
//! [`repair`](VerifyOptions::repair) what is safely repairable (orphan blobs older than the
//! [grace period](VerifyOptions::grace), the same rule as garbage collection).
//!
//! Problems are reported one by one, each with its tenant, object, path and a message that
//! says what is wrong, so an operator can tell a lost blob from a shredded key from a
//! tampered byte.

use ate_core::{ObjectId, TenantId};

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
        if self.grace < chrono::TimeDelta::zero() {
            return Err(crate::StorageError::invalid(
                "verify grace period",
                "must not be negative",
            ));
        }
        Ok(())
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
    /// The object (or orphan blob) it concerns.
    pub object: Option<ObjectId>,
    /// The object's logical path, when an index row names one.
    pub path: Option<String>,
    /// What exactly is wrong.
    pub detail: String,
    /// Whether this run repaired it.
    pub repaired: bool,
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The tenant checked.
    pub tenant: TenantId,
    /// Index rows checked.
    pub objects: u64,
    /// Blobs found in the blob store.
    pub blobs: u64,
    /// Ciphertext bytes read.
    pub bytes_read: u64,
    /// Blobs without an index row that are younger than the grace period (possibly uploads
    /// in progress): not problems, never repaired.
    pub in_progress: u64,
    /// Everything found wrong, by object.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
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
