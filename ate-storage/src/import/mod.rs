//! Importing codebases into snapshots.
//!
//! An [`Importer`] (from [`SnapshotStore::begin_import`](crate::projects::SnapshotStore::begin_import))
//! takes a codebase's entries one at a time ([`Importer::add_file`],
//! [`Importer::add_symlink`], [`Importer::skip`]) and streams each file's bytes once:
//! SHA-256 and MD5, content-defined chunking, deduplication against the project's chunks,
//! zstd, Cobblestone, pack blobs ([`crate::dedup`]), and [`classify`] (language, vendored,
//! generated, binary, line counts). Memory stays bounded whatever the size of the codebase:
//! a file is never held whole (only its first [`CLASSIFY_BYTES`]), file rows go to the
//! database in batches, packs are streamed to the blob store.
//!
//! Paths are normalized and checked ([`normalize_path`]); [`ImportLimits`] bound the
//! number of files, their sizes and the depth of the tree; a second entry with the same
//! path is refused, and so, if [`ImportOptions::case_collisions`] says so, is one whose
//! path differs from another only by case. A [`crate::scan::ContentScanner`]
//! in the options sees every file's bytes as they stream past.
//!
//! # Archives
//!
//! [`SnapshotStore::import_archive`](crate::projects::SnapshotStore::import_archive) reads
//! tar, tar.gz, tar.zst and zip ([`ArchiveFormat`]) as streams: the archive is parsed on a
//! blocking thread that hands entries to the importer through a small bounded channel; a
//! zip (its directory is at its end) is first spooled to a temporary file of at most
//! [`ImportLimits::max_archive_bytes`].
//!
//! Nothing is ever unpacked to a file system: entry names are only names, checked and
//! normalized by [`normalize_path`]. What each hostile case gets:
//!
//! | entry | outcome |
//! | --- | --- |
//! | a path with `..`, absolute, a drive letter, a backslash, NUL | refused ([`normalize_path`]) |
//! | a name that is not UTF-8 | refused |
//! | the same path twice | refused (tar's "last one wins" would hide the first) |
//! | paths equal but for case | kept, or refused by [`CaseCollisions::Refuse`] |
//! | a symbolic link (to anywhere) | stored as a link, never followed |
//! | a hard link to an earlier entry | stored as a copy of that entry (content shared) |
//! | a hard link to a path outside, or not yet seen | refused |
//! | a device file, a FIFO | skipped, listed in the snapshot's statistics |
//! | a directory entry | nothing stored (directories are implied by paths) |
//! | a sparse file (GNU), an encrypted zip entry | refused |
//! | more entries, bytes per file, bytes in all, or inflation than the [`ImportLimits`] | refused (zip bombs and tar bombs) |
//! | a zip whose central directory and local headers disagree, or whose entries overlap | refused (the `zip` crate's consistency check) |
//! | a truncated or corrupt archive or compressed stream | refused |
//!
//! Every refusal ends the import with `ImportRefused` and nothing of it stays.
//!
//! # Progress
//!
//! [`ImportOptions::progress`] hands the import an [`ImportProgress`] observer, told after
//! every entry (file, link, hard link) of the totals so far: a host drives a progress bar
//! with it, and stops an import by returning an error (the import is then abandoned as on
//! any other error, and returns that error).
//!
//! [`Importer::commit`] makes the snapshot visible, in one transaction that also charges
//! the new stored bytes to the tenant's `max_storage_bytes`; any error before that (and
//! [`Importer::abort`]) removes what the import wrote. An importer dropped without either
//! leaves its work to garbage collection once its lease runs out.

mod archive;
mod classify;
mod dir;
mod flush;
mod importer;
mod path;
mod progress;
mod stats;

pub use archive::ArchiveFormat;
pub(crate) use archive::import_archive;
pub use classify::{CLASSIFY_BYTES, FileClass, LineCounts, classify};
pub use importer::{ImportedEntry, Importer};
pub use path::normalize_path;
pub use progress::{ImportProgress, Progress};

pub(crate) use dir::walk_dir;

use crate::scan::{ContentScanner, InfectedPolicy};
use std::sync::Arc;

/// Limits an import enforces (each refusal is `ImportRefused`, and nothing is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportLimits {
    /// Entries (files and links), default 1,000,000.
    pub max_files: u64,
    /// Bytes of all files together, default 16 GiB.
    pub max_total_bytes: u64,
    /// Bytes of one file, default 2 GiB.
    pub max_file_bytes: u64,
    /// Bytes of one path, default 4096.
    pub max_path_bytes: usize,
    /// Components of one path, default 128.
    pub max_depth: usize,
    /// Entries of an archive of every kind (directories and skipped entries too), default
    /// 2,000,000.
    pub max_entries: u64,
    /// How many times larger than its compressed form an archive (or a zip entry) may
    /// inflate, once past 1 MiB: default 200 (source code compresses 3 to 10 times;
    /// bombs by thousands).
    pub max_ratio: u64,
    /// Bytes of a zip archive, which is spooled to a temporary file to be read (its
    /// directory is at its end), default 16 GiB.
    pub max_archive_bytes: u64,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_files: 1_000_000,
            max_total_bytes: 16 << 30,
            max_file_bytes: 2 << 30,
            max_path_bytes: 4096,
            max_depth: 128,
            max_entries: 2_000_000,
            max_ratio: 200,
            max_archive_bytes: 16 << 30,
        }
    }
}

impl ImportLimits {
    /// Sets [`max_files`](Self::max_files).
    pub fn max_files(mut self, n: u64) -> Self {
        self.max_files = n;
        self
    }

    /// Sets [`max_total_bytes`](Self::max_total_bytes).
    pub fn max_total_bytes(mut self, n: u64) -> Self {
        self.max_total_bytes = n;
        self
    }

    /// Sets [`max_file_bytes`](Self::max_file_bytes).
    pub fn max_file_bytes(mut self, n: u64) -> Self {
        self.max_file_bytes = n;
        self
    }

    /// Sets [`max_path_bytes`](Self::max_path_bytes).
    pub fn max_path_bytes(mut self, n: usize) -> Self {
        self.max_path_bytes = n;
        self
    }

    /// Sets [`max_depth`](Self::max_depth).
    pub fn max_depth(mut self, n: usize) -> Self {
        self.max_depth = n;
        self
    }

    /// Sets [`max_entries`](Self::max_entries).
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n;
        self
    }

    /// Sets [`max_ratio`](Self::max_ratio).
    pub fn max_ratio(mut self, n: u64) -> Self {
        self.max_ratio = n;
        self
    }

    /// Sets [`max_archive_bytes`](Self::max_archive_bytes).
    pub fn max_archive_bytes(mut self, n: u64) -> Self {
        self.max_archive_bytes = n;
        self
    }
}

/// What an import does with two paths that differ only by case (`README` and `readme`),
/// which a case-insensitive file system cannot hold side by side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaseCollisions {
    /// Keep both (the default: git keeps both, and real codebases such as Linux have
    /// them).
    #[default]
    Allow,
    /// Refuse the import.
    Refuse,
}

/// [`ImportOptions::source`] unless set: the store's import helpers replace it with what they
/// read (`"directory"`, `"tar.gz"`, …).
const DEFAULT_SOURCE: &str = "entries";

/// How to import.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Free text stored with the snapshot (a version, a commit id), at most 1000 bytes.
    pub label: String,
    /// What the codebase came from (`"directory"`, `"tar.gz"`, …), at most 100 bytes; the
    /// store's import helpers set it.
    pub source: String,
    /// Limits.
    pub limits: ImportLimits,
    /// Paths that differ only by case.
    pub case_collisions: CaseCollisions,
    /// How long the import may go without writing before garbage collection may take it
    /// for abandoned (default 15 minutes; every batch written renews it).
    pub lease: chrono::TimeDelta,
    /// A scanner every file goes through, and what to do with an infected one.
    pub scanner: Option<(Arc<dyn ContentScanner>, InfectedPolicy)>,
    /// Told of the totals after every entry (see [Progress](self#progress)).
    pub progress: Option<Arc<dyn ImportProgress>>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            label: String::new(),
            source: DEFAULT_SOURCE.into(),
            limits: ImportLimits::default(),
            case_collisions: CaseCollisions::default(),
            lease: chrono::TimeDelta::minutes(15),
            scanner: None,
            progress: None,
        }
    }
}

impl ImportOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// `source` unless the caller set one.
    pub(crate) fn source_or(mut self, source: &str) -> Self {
        if self.source == DEFAULT_SOURCE {
            self.source = source.into();
        }
        self
    }

    /// Sets the source description.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: ImportLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the case-collision policy.
    pub fn case_collisions(mut self, policy: CaseCollisions) -> Self {
        self.case_collisions = policy;
        self
    }

    /// Sets the lease.
    pub fn lease(mut self, lease: chrono::TimeDelta) -> Self {
        self.lease = lease;
        self
    }

    /// Scans every file with `scanner`, handling infected ones by `policy`.
    pub fn scanner(mut self, scanner: Arc<dyn ContentScanner>, policy: InfectedPolicy) -> Self {
        self.scanner = Some((scanner, policy));
        self
    }

    /// Tells `observer` of the import's progress after every entry.
    pub fn progress(mut self, observer: Arc<dyn ImportProgress>) -> Self {
        self.progress = Some(observer);
        self
    }
}
