//! The importer: entries in, one snapshot out.

mod stream;

use super::flush::{self, FileRow, Totals};
use super::stats::StatsBuilder;
use super::{
    CLASSIFY_BYTES, CaseCollisions, FileClass, ImportOptions, Progress, classify, normalize_path,
};
use crate::StorageError;
use crate::cobblestone::Cobblestone;
use crate::dedup::pack::{PACK_TARGET, PackWriter};
use crate::dedup::{self, ChunkId, ChunkRef, Chunker, DedupKey, SealedChunk};
use crate::projects::{FileKind, PROJECTS_WRITE, Snapshot, SnapshotCore};
use crate::scan::{InfectedPolicy, Verdict};
use ate_core::{Principal, ProjectId, SnapshotId, TenantId};
use chrono::{DateTime, Utc};
use md5::Md5;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use tokio::io::AsyncRead;
use uuid::Uuid;
use zeroize::Zeroizing;

/// New chunks are looked up and sealed in batches of about this many bytes.
const CANDIDATE_BYTES: usize = 4 << 20;
/// … or this many chunks.
const CANDIDATE_CHUNKS: usize = 512;
/// File rows are written (and classified) in batches of this many…
const ROW_BATCH: usize = 1000;
/// … or once their heads waiting for classification hold this many bytes.
const PENDING_BYTES: usize = 32 << 20;
/// How much of a file is read at once.
const READ_BUF: usize = 64 * 1024;
/// Files of the previous snapshot up to this size are guessed unchanged when a path comes
/// again: the import hashes the new content while holding it (this much memory at most),
/// and reuses the old MD5 and chunk list if the SHA-256 matches; otherwise it goes on as
/// for any file. A re-import then skips MD5, chunking and chunk ids of unchanged files.
const SPECULATE_BYTES: u64 = 8 << 20;
/// Previous snapshots with more files than this are not loaded for guessing.
const SPECULATE_FILES: usize = 200_000;
/// Label and source limits.
const MAX_LABEL_BYTES: usize = 1000;
const MAX_SOURCE_BYTES: usize = 100;

/// Paths seen so far, as 128-bit keyed hashes (exact and case-folded).
#[derive(Debug)]
struct PathSet {
    keys: (RandomState, RandomState),
    exact: HashSet<u128>,
    folded: HashSet<u128>,
}

impl PathSet {
    fn new() -> Self {
        PathSet {
            keys: (RandomState::new(), RandomState::new()),
            exact: HashSet::new(),
            folded: HashSet::new(),
        }
    }

    fn hash(&self, s: &str) -> u128 {
        (u128::from(self.keys.0.hash_one(s)) << 64) | u128::from(self.keys.1.hash_one(s))
    }
}

/// An import in progress (see the [module docs](super)). Get one from
/// [`SnapshotStore::begin_import`](crate::projects::SnapshotStore::begin_import).
///
/// Any error from an `add_*` call ends the import: what it wrote is removed and later
/// calls fail.
pub struct Importer {
    core: Arc<SnapshotCore>,
    tenant: TenantId,
    project: ProjectId,
    snapshot: SnapshotId,
    subject: String,
    options: ImportOptions,
    created_at: DateTime<Utc>,
    key_version: u32,
    key: Zeroizing<[u8; 32]>,
    dedup: DedupKey,
    chunker: Chunker,
    paths: PathSet,
    /// Chunks the project has: committed before, or written by this import.
    have: HashSet<ChunkId>,
    candidates: Vec<(ChunkId, Vec<u8>)>,
    candidate_ids: HashSet<ChunkId>,
    candidate_bytes: usize,
    pack: Option<PackWriter>,
    packs: Vec<Uuid>,
    rows: Vec<FileRow>,
    /// Bytes of file heads waiting in `rows` to be classified.
    pending_bytes: usize,
    /// The project's latest committed snapshot when the import began.
    parent: Option<SnapshotId>,
    /// Its files, loaded at the first file added (see [`SPECULATE_BYTES`]).
    priors: Option<HashMap<String, flush::Prior>>,
    priors_loaded: bool,
    stats: StatsBuilder,
    files: u64,
    logical: u64,
    ended: bool,
}

impl std::fmt::Debug for Importer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer")
            .field("snapshot", &self.snapshot)
            .field("project", &self.project)
            .field("files", &self.files)
            .field("logical_bytes", &self.logical)
            .finish_non_exhaustive()
    }
}

/// What an import recorded of one entry. Its language, flags and line counts are decided
/// when its batch is written: read them from the committed snapshot's
/// [`FileEntry`](crate::projects::FileEntry)
/// ([`SnapshotStore::file`](crate::projects::SnapshotStore::file)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportedEntry {
    /// Its normalized path.
    pub path: String,
    /// File or link.
    pub kind: FileKind,
    /// Bytes (a link: its target's length).
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// MD5, hex (legacy interoperability only).
    pub md5: String,
    /// What the content scanner found, for a file kept in quarantine.
    pub quarantined: Option<String>,
}

impl Importer {
    pub(crate) async fn start(
        core: Arc<SnapshotCore>,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        options: ImportOptions,
    ) -> Result<Self, StorageError> {
        actor.require(tenant, &PROJECTS_WRITE)?;
        if options.label.len() > MAX_LABEL_BYTES || options.label.contains('\0') {
            return Err(StorageError::invalid(
                "snapshot label",
                format!("must be at most {MAX_LABEL_BYTES} bytes without NUL"),
            ));
        }
        if options.source.len() > MAX_SOURCE_BYTES || options.source.chars().any(char::is_control) {
            return Err(StorageError::invalid(
                "snapshot source",
                format!("must be at most {MAX_SOURCE_BYTES} bytes without control characters"),
            ));
        }
        if options.lease <= chrono::TimeDelta::zero() {
            return Err(StorageError::invalid("import lease", "must be positive"));
        }
        let key = core.keys.encryption_key(tenant, project).await?;
        let dedup = core.keys.dedup_key(tenant).await?;
        let parent = flush::latest_snapshot(&core.db, tenant, project).await?;
        let snapshot = SnapshotId::new();
        let now = core.clock.now();
        flush::begin(
            &core.db,
            tenant,
            project,
            snapshot,
            &options.label,
            &options.source,
            actor.subject(),
            now,
            now + options.lease,
        )
        .await?;
        Ok(Importer {
            chunker: Chunker::new(dedup.gear_seed()),
            key_version: key.version,
            key: Zeroizing::new(*key.expose_secret()),
            dedup,
            core,
            tenant,
            project,
            snapshot,
            subject: actor.subject().to_owned(),
            options,
            created_at: now,
            paths: PathSet::new(),
            have: HashSet::new(),
            candidates: Vec::new(),
            candidate_ids: HashSet::new(),
            candidate_bytes: 0,
            pack: None,
            packs: Vec::new(),
            rows: Vec::new(),
            pending_bytes: 0,
            parent,
            priors: None,
            priors_loaded: false,
            stats: StatsBuilder::default(),
            files: 0,
            logical: 0,
            ended: false,
        })
    }

    /// The id the snapshot will have.
    pub fn snapshot_id(&self) -> SnapshotId {
        self.snapshot
    }

    /// Files and links added so far.
    pub fn files(&self) -> u64 {
        self.files
    }

    /// Bytes added so far.
    pub fn logical_bytes(&self) -> u64 {
        self.logical
    }

    fn lease_until(&self) -> DateTime<Utc> {
        self.core.clock.now() + self.options.lease
    }

    fn check_open(&self) -> Result<(), StorageError> {
        if self.ended {
            return Err(StorageError::invalid(
                "import",
                "it has ended (committed, aborted, or failed on an earlier error)",
            ));
        }
        Ok(())
    }

    /// Ends the import if `out` is an error (removing what it wrote), and passes `out` on:
    /// the error that ended the import is the one to report; a failed clean-up is left to
    /// garbage collection.
    async fn end_on_error<T>(&mut self, out: Result<T, StorageError>) -> Result<T, StorageError> {
        if out.is_err() {
            let _ = self.discard().await;
        }
        out
    }

    /// Adds a regular file at `path` with permission bits `mode`, reading its content
    /// from `content` to the end. Returns the entry as it will be stored.
    pub async fn add_file(
        &mut self,
        path: &str,
        mode: u32,
        content: &mut (dyn AsyncRead + Unpin + Send),
    ) -> Result<ImportedEntry, StorageError> {
        self.check_open()?;
        let out = self.file(path, mode, content).await;
        let out = out.and_then(|entry| self.report(&entry.path).map(|()| entry));
        self.end_on_error(out).await
    }

    /// Adds a symbolic link at `path` pointing at `target`. The target is stored as given
    /// (it may point anywhere, `..` or absolute included: it is never followed, and an
    /// export writes it back as a link); it must be non-empty, without NUL, and no longer
    /// than a path may be.
    pub async fn add_symlink(
        &mut self,
        path: &str,
        target: &str,
    ) -> Result<ImportedEntry, StorageError> {
        self.check_open()?;
        let out = self.symlink(path, target).await;
        let out = out.and_then(|entry| self.report(&entry.path).map(|()| entry));
        self.end_on_error(out).await
    }

    /// Adds a hard link at `path` to the entry the import already holds at `target`: stored
    /// as a second entry with the same content (nothing is stored twice). A target the
    /// import does not hold (yet), or one outside the codebase, is `ImportRefused`.
    pub async fn add_hardlink(&mut self, path: &str, target: &str) -> Result<(), StorageError> {
        self.check_open()?;
        let out = self.hardlink(path, target).await;
        let out = out.and_then(|path| self.report(&path));
        self.end_on_error(out).await
    }

    /// Tells the progress observer, if any, that the entry at `path` was added.
    fn report(&self, path: &str) -> Result<(), StorageError> {
        match &self.options.progress {
            Some(observer) => observer.entry_added(Progress {
                path,
                files: self.files,
                bytes: self.logical,
            }),
            None => Ok(()),
        }
    }

    async fn hardlink(&mut self, raw: &str, raw_target: &str) -> Result<String, StorageError> {
        let path = self.admit(raw)?;
        let target = normalize_path(raw_target, &self.options.limits).map_err(|_| {
            StorageError::refused(Some(raw), "a hard link to a path outside the codebase")
        })?;
        self.flush_rows().await?;
        let copied = flush::copy_row(
            &self.core.db,
            self.snapshot,
            &target,
            &path,
            self.lease_until(),
        )
        .await?
        .ok_or_else(|| {
            StorageError::refused(
                Some(raw),
                format!("a hard link to {target:?}, which the archive did not hold before it"),
            )
        })?;
        match copied.kind {
            FileKind::Symlink => self.stats.symlink(&path, copied.size),
            FileKind::File => self.stats.file(&path, copied.size, &copied.class),
        }
        self.files += 1;
        self.logical += copied.size;
        if self.logical > self.options.limits.max_total_bytes {
            return Err(StorageError::refused(
                Some(raw),
                format!(
                    "more than {} bytes in all",
                    self.options.limits.max_total_bytes
                ),
            ));
        }
        Ok(path)
    }

    /// Records that the source's entry at `path` was skipped and why (a device file, a
    /// FIFO): it is counted in the snapshot's statistics.
    pub fn skip(&mut self, path: &str, why: &str) {
        self.stats.skipped(path, why);
    }

    /// Checks a new entry's path: normalized, within the limits, not seen before.
    fn admit(&mut self, raw: &str) -> Result<String, StorageError> {
        let limits = &self.options.limits;
        let path = normalize_path(raw, limits)?;
        if self.files >= limits.max_files {
            return Err(StorageError::refused(
                Some(raw),
                format!("more than {} entries", limits.max_files),
            ));
        }
        if !self.paths.exact.insert(self.paths.hash(&path)) {
            return Err(StorageError::refused(
                Some(raw),
                format!("a second entry for path {path:?}"),
            ));
        }
        let folded = self.paths.hash(&path.to_lowercase());
        if !self.paths.folded.insert(folded)
            && self.options.case_collisions == CaseCollisions::Refuse
        {
            return Err(StorageError::refused(
                Some(raw),
                format!("{path:?} differs from another entry's path only by case"),
            ));
        }
        Ok(path)
    }

    async fn symlink(&mut self, raw: &str, target: &str) -> Result<ImportedEntry, StorageError> {
        let path = self.admit(raw)?;
        if target.is_empty()
            || target.contains('\0')
            || target.len() > self.options.limits.max_path_bytes
        {
            return Err(StorageError::refused(
                Some(raw),
                "a link target must be 1 to max_path_bytes bytes without NUL",
            ));
        }
        let row = FileRow {
            path,
            kind: FileKind::Symlink,
            size: target.len() as u64,
            mode: 0o777,
            sha256: Sha256::digest(target.as_bytes()).into(),
            md5: Md5::digest(target.as_bytes()).into(),
            class: FileClass::default(),
            link_target: Some(target.to_owned()),
            quarantined: None,
            chunks: Vec::new(),
            pending: None,
        };
        self.stats.symlink(&row.path, row.size);
        self.push_row(row).await
    }

    async fn file(
        &mut self,
        raw: &str,
        mode: u32,
        content: &mut (dyn AsyncRead + Unpin + Send),
    ) -> Result<ImportedEntry, StorageError> {
        let path = self.admit(raw)?;
        let (streamed, verdict) = match self.options.scanner.clone() {
            None => (self.stream(&path, content, None).await?, None),
            Some((scanner, policy)) => {
                let (tx, rx) = tokio::io::duplex(READ_BUF);
                let name = path.clone();
                let scan = async move {
                    let mut rx = rx;
                    scanner.scan(&name, &mut rx).await
                };
                let (streamed, verdict) = tokio::join!(self.stream(&path, content, Some(tx)), scan);
                (streamed?, Some((verdict?, policy)))
            }
        };
        let quarantined = match verdict {
            Some((Verdict::Infected { signature }, InfectedPolicy::RefuseImport)) => {
                return Err(StorageError::refused(
                    Some(raw),
                    format!("the content scanner found {signature}"),
                ));
            }
            Some((Verdict::Infected { signature }, _)) => Some(signature),
            _ => None,
        };
        let complete = streamed.size <= CLASSIFY_BYTES as u64;
        let row = FileRow {
            path,
            kind: FileKind::File,
            size: streamed.size,
            mode: mode & 0o7777,
            sha256: streamed.sha256,
            md5: streamed.md5,
            class: FileClass::default(),
            link_target: None,
            quarantined,
            chunks: dedup::encode_refs(&streamed.refs),
            pending: Some((streamed.head, complete)),
        };
        self.push_row(row).await
    }

    /// Adds a chunk to the file's list, and to the batch to store unless the project has
    /// it or the batch holds it already.
    async fn offer(
        &mut self,
        refs: &mut Vec<ChunkRef>,
        id: ChunkId,
        bytes: Vec<u8>,
    ) -> Result<(), StorageError> {
        refs.push(ChunkRef {
            id,
            len: bytes.len() as u32,
        });
        if self.have.contains(&id) || !self.candidate_ids.insert(id) {
            return Ok(());
        }
        self.candidate_bytes += bytes.len();
        self.candidates.push((id, bytes));
        if self.candidate_bytes >= CANDIDATE_BYTES || self.candidates.len() >= CANDIDATE_CHUNKS {
            self.store_candidates().await?;
        }
        Ok(())
    }

    /// Looks the batch's chunks up, seals the new ones (on every core) and appends them to
    /// the open pack.
    async fn store_candidates(&mut self) -> Result<(), StorageError> {
        if self.candidates.is_empty() {
            return Ok(());
        }
        let ids: Vec<ChunkId> = self.candidates.iter().map(|(id, _)| *id).collect();
        let existing: HashSet<ChunkId> = flush::existing_chunks(&self.core.db, self.project, &ids)
            .await?
            .into_iter()
            .collect();
        let fresh: Vec<(ChunkId, Vec<u8>)> = std::mem::take(&mut self.candidates)
            .into_iter()
            .filter(|(id, _)| !existing.contains(id))
            .collect();
        self.have.extend(existing);
        self.candidate_ids.clear();
        self.candidate_bytes = 0;
        let sealed = seal_all(
            self.core.cipher,
            self.key.clone(),
            self.tenant,
            self.project,
            fresh,
        )
        .await?;
        for chunk in sealed {
            let id = chunk.id;
            if self.pack.is_none() {
                self.pack =
                    Some(PackWriter::start(&self.core.blobs, self.tenant, self.project).await?);
            }
            if let Some(pack) = &mut self.pack {
                pack.append(chunk, self.key_version).await?;
            }
            self.have.insert(id);
            if self.pack.as_ref().is_some_and(|p| p.size() >= PACK_TARGET) {
                self.close_pack().await?;
            }
        }
        Ok(())
    }

    /// Completes the open pack and records it with its chunks (pending until the commit).
    async fn close_pack(&mut self) -> Result<(), StorageError> {
        let Some(pack) = self.pack.take() else {
            return Ok(());
        };
        let closed = pack.close().await?;
        self.packs.push(closed.id);
        flush::record_pack(
            &self.core.db,
            self.tenant,
            self.project,
            self.snapshot,
            &closed,
            self.core.clock.now(),
            self.lease_until(),
        )
        .await
    }

    async fn push_row(&mut self, row: FileRow) -> Result<ImportedEntry, StorageError> {
        self.files += 1;
        self.logical += row.size;
        let entry = ImportedEntry {
            path: row.path.clone(),
            kind: row.kind,
            size: row.size,
            sha256: hex::encode(row.sha256),
            md5: hex::encode(row.md5),
            quarantined: row.quarantined.clone(),
        };
        self.pending_bytes += row.pending.as_ref().map_or(0, |(head, _)| head.len());
        self.rows.push(row);
        if self.rows.len() >= ROW_BATCH || self.pending_bytes >= PENDING_BYTES {
            self.flush_rows().await?;
        }
        Ok(entry)
    }

    /// Classifies a batch's files: an unchanged file (same path, same SHA-256) of the
    /// project's latest snapshot keeps that snapshot's classification; the others go
    /// through [`classify`]. Then counts them in the statistics.
    async fn classify_rows(&mut self, rows: &mut [FileRow]) -> Result<(), StorageError> {
        let known = match self.parent {
            Some(parent) => {
                let paths: Vec<&str> = rows
                    .iter()
                    .filter(|r| r.pending.is_some())
                    .map(|r| r.path.as_str())
                    .collect();
                flush::parent_classes(&self.core.db, parent, &paths).await?
            }
            None => Default::default(),
        };
        for row in rows.iter_mut() {
            let Some((head, complete)) = row.pending.take() else {
                continue;
            };
            row.class = match known.get(&row.path) {
                Some((sha256, class)) if *sha256 == row.sha256 => class.clone(),
                _ => classify(&row.path, &head, complete),
            };
            self.stats.file(&row.path, row.size, &row.class);
        }
        Ok(())
    }

    async fn flush_rows(&mut self) -> Result<(), StorageError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut rows = std::mem::take(&mut self.rows);
        self.pending_bytes = 0;
        self.classify_rows(&mut rows).await?;
        flush::insert_rows(&self.core.db, self.snapshot, &rows, self.lease_until()).await
    }

    /// Writes what is left and commits: the snapshot becomes visible and its new stored
    /// bytes are charged to the tenant (`QuotaExceeded` past `max_storage_bytes`). On any
    /// error the import's work is removed.
    pub async fn commit(mut self) -> Result<Snapshot, StorageError> {
        self.check_open()?;
        let out = self.finish().await;
        self.end_on_error(out).await
    }

    async fn finish(&mut self) -> Result<Snapshot, StorageError> {
        self.store_candidates().await?;
        self.close_pack().await?;
        self.flush_rows().await?;
        let totals = Totals {
            files: self.files,
            logical_bytes: self.logical,
            stats: self.stats.finish(),
        };
        let now = self.core.clock.now();
        let new_bytes = flush::commit(
            &self.core.db,
            self.tenant,
            self.project,
            self.snapshot,
            &self.subject,
            &totals,
            now,
        )
        .await?;
        self.ended = true;
        Ok(flush::committed(
            self.tenant,
            self.project,
            self.snapshot,
            &self.options.label,
            &self.options.source,
            &self.subject,
            self.created_at,
            now,
            totals,
            new_bytes,
        ))
    }

    /// Commits if feeding the import went well (`fed`), else aborts it and returns that
    /// error: the end of every import helper.
    pub(crate) async fn commit_if(
        self,
        fed: Result<(), StorageError>,
    ) -> Result<Snapshot, StorageError> {
        match fed {
            Ok(()) => self.commit().await,
            Err(e) => {
                // The error that stopped the feeding is the one to report.
                let _ = self.abort().await;
                Err(e)
            }
        }
    }

    /// Ends the import without a snapshot, removing what it wrote.
    pub async fn abort(mut self) -> Result<(), StorageError> {
        if self.ended {
            return Ok(());
        }
        self.discard().await
    }

    async fn discard(&mut self) -> Result<(), StorageError> {
        self.ended = true;
        self.candidates.clear();
        self.rows.clear();
        if let Some(pack) = self.pack.take() {
            let _ = pack.abort().await;
        }
        flush::discard(
            &self.core.db,
            &self.core.blobs,
            self.tenant,
            self.project,
            self.snapshot,
            &self.packs,
        )
        .await
    }
}

/// Seals chunks on every core (off the async threads).
async fn seal_all(
    cipher: Cobblestone,
    key: Zeroizing<[u8; 32]>,
    tenant: TenantId,
    project: ProjectId,
    chunks: Vec<(ChunkId, Vec<u8>)>,
) -> Result<Vec<SealedChunk>, StorageError> {
    if chunks.is_empty() {
        return Ok(Vec::new());
    }
    let task = tokio::task::spawn_blocking(move || {
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(chunks.len());
        let per = chunks.len().div_ceil(threads);
        let cipher = cipher.with_max_threads(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .chunks(per)
                .map(|part| {
                    let key = &key;
                    s.spawn(move || {
                        let mut z = dedup::Compressor::new()?;
                        part.iter()
                            .map(|(id, raw)| {
                                dedup::seal_chunk(&cipher, &mut z, key, tenant, project, *id, raw)
                            })
                            .collect::<Result<Vec<_>, StorageError>>()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(chunks.len());
            for h in handles {
                let part = h
                    .join()
                    .map_err(|_| StorageError::Integrity("a sealing thread panicked".into()))??;
                out.extend(part);
            }
            Ok(out)
        })
    });
    task.await
        .map_err(|e| StorageError::Io(std::io::Error::other(format!("sealing task: {e}"))))?
}
