//! [`SnapshotStore::verify`](super::SnapshotStore::verify): the codebase half of the
//! operator's integrity check (what it checks: [`crate::verify`]).
//!
//! Blob listings are taken before the rows they are compared with, so a blob written after
//! its listing cannot be taken for an orphan of a row recorded in between; a row whose blob
//! is not in the listing is looked up again (and the row too, when the blob is gone), so a
//! pack written or deleted during the check is not reported as missing.

use super::SnapshotCore;
use crate::StorageError;
use crate::analysis::payload::{self, Source, payload_dir, payload_name};
use crate::blob::grace_cutoff;
use crate::cobblestone::HEADER_LEN;
use crate::dedup::gc::{older_than, sweep_orphan_packs, sweep_payloads};
use crate::dedup::pack::{pack_dir, pack_name};
use crate::dedup::read::read_chunks;
use crate::dedup::{ChunkId, ChunkRef, decode_refs, sha256};
use crate::objects::uploaded_at;
use crate::projects::ProjectKey;
use crate::verify::{Problem, ProblemKind, VerifyOptions, VerifyReport};
use ate_core::{
    Classify, CoreError, ErrorKind, ObjectId, ProjectId, SnapshotId, TenantId, with_pool,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

/// Rows read per statement.
const BATCH: i64 = 5000;
/// Bytes read at once when hashing a whole pack, or a file's content with `read_all`.
const PIECE: u64 = 4 << 20;

/// A pack row.
struct PackRow {
    size: u64,
    sha256: Vec<u8>,
    chunks: u64,
}

/// The project's indexed chunks: plaintext length and key version by id.
type Chunks = HashMap<ChunkId, (u32, u32)>;

/// A project key version as the check found it: usable, or the problem it is.
type KeyOutcome = Result<ProjectKey, (ProblemKind, String)>;

/// One project's check in progress.
struct ProjectCheck<'a> {
    core: &'a SnapshotCore,
    tenant: TenantId,
    project: ProjectId,
    options: &'a VerifyOptions,
    report: &'a mut VerifyReport,
}

/// Checks one project, or every project of the tenant and what is left of projects that no
/// longer exist.
pub(crate) async fn verify(
    core: &SnapshotCore,
    tenant: TenantId,
    project: Option<ProjectId>,
    options: &VerifyOptions,
) -> Result<VerifyReport, StorageError> {
    options.validate()?;
    let mut report = VerifyReport::new(tenant);
    // Folders first: a project created after this listing is checked through its row.
    let folders: Vec<Uuid> = match project {
        Some(_) => Vec::new(),
        None => core.blobs.list_dirs_in(&format!("t/{tenant}/p")).await?,
    };
    let rows: Vec<(Uuid, Option<i64>)> = with_pool!(core.db, |pool| {
        sqlx::query_as(
            "SELECT id, deleted_at FROM projects WHERE tenant_id = $1 \
             AND ($2 IS NULL OR id = $2) ORDER BY id",
        )
        .bind(tenant.as_uuid())
        .bind(project.map(|p| p.as_uuid()))
        .fetch_all(pool)
        .await
        .map_err(CoreError::from)?
    });
    if let Some(project) = project
        && rows.is_empty()
    {
        return Err(CoreError::not_found("project", project).into());
    }
    let known: HashSet<Uuid> = rows.iter().map(|(id, _)| *id).collect();
    for (id, deleted_at) in rows {
        let project = ProjectId::from_uuid(id)?;
        if deleted_at.is_some() {
            // Being purged: its keys are gone and garbage collection finishes the rest.
            report.in_progress += 1;
            continue;
        }
        ProjectCheck {
            core,
            tenant,
            project,
            options,
            report: &mut report,
        }
        .run()
        .await?;
    }
    for id in folders.into_iter().filter(|id| !known.contains(id)) {
        gone_project(
            core,
            tenant,
            ProjectId::from_uuid(id)?,
            options,
            &mut report,
        )
        .await?;
    }
    report.sort();
    Ok(report)
}

/// Blobs of a project that no longer exists (its keys went with it): all orphans, whatever
/// their age, as garbage collection treats them.
async fn gone_project(
    core: &SnapshotCore,
    tenant: TenantId,
    project: ProjectId,
    options: &VerifyOptions,
    report: &mut VerifyReport,
) -> Result<(), StorageError> {
    let names = gone_project_blobs(core, tenant, project).await?;
    if names.is_empty() {
        return Ok(());
    }
    report.blobs += names.len() as u64;
    let left: HashSet<String> = if options.repair {
        // With no project row, garbage collection deletes every pack and payload blob.
        crate::dedup::gc::collect(core, tenant, project, options.grace).await?;
        gone_project_blobs(core, tenant, project)
            .await?
            .into_iter()
            .collect()
    } else {
        names.iter().cloned().collect()
    };
    for name in names {
        let mut problem = Problem::new(
            tenant,
            ProblemKind::OrphanBlob,
            format!("project {project} no longer exists; its blob {name} is left"),
        )
        .project(project)
        .blob(name.clone());
        problem.repaired = !left.contains(&name);
        report.problems.push(problem);
    }
    Ok(())
}

async fn gone_project_blobs(
    core: &SnapshotCore,
    tenant: TenantId,
    project: ProjectId,
) -> Result<Vec<String>, StorageError> {
    let mut names: Vec<String> = core
        .blobs
        .list_in(&pack_dir(tenant, project))
        .await?
        .into_iter()
        .map(|id| pack_name(tenant, project, id))
        .collect();
    names.extend(
        core.blobs
            .list_in(&payload_dir(tenant, project))
            .await?
            .into_iter()
            .map(|id| payload_name(tenant, project, id)),
    );
    Ok(names)
}

/// How a blob that should exist was found.
enum Stat {
    Size(u64),
    Missing,
    Failed(String),
}

impl ProjectCheck<'_> {
    async fn run(mut self) -> Result<(), StorageError> {
        self.report.projects += 1;
        let (tenant, project) = (self.tenant, self.project);
        // Blob listings before the rows (see the module docs).
        let pack_blobs: HashSet<Uuid> = self
            .core
            .blobs
            .list_in(&pack_dir(tenant, project))
            .await?
            .into_iter()
            .collect();
        let payload_blobs: HashSet<Uuid> = self
            .core
            .blobs
            .list_in(&payload_dir(tenant, project))
            .await?
            .into_iter()
            .collect();
        self.report.blobs += (pack_blobs.len() + payload_blobs.len()) as u64;
        let mut packs = self.pack_rows().await?;
        let (chunks, versions) = self.check_chunks(&mut packs).await?;
        let payload_rows = self.payload_rows().await?;
        let keys = self.keys(&versions, &payload_rows).await;
        self.check_packs(&packs, &pack_blobs).await?;
        let unusable: HashSet<u32> = keys
            .iter()
            .filter(|(_, k)| k.is_err())
            .map(|(v, _)| *v)
            .collect();
        self.check_snapshots(&chunks, &unusable).await?;
        self.check_payloads(payload_rows, &payload_blobs, &keys)
            .await?;
        let recorded_packs: HashSet<Uuid> = packs.keys().copied().collect();
        self.check_orphans(&pack_blobs, &recorded_packs, &payload_blobs)
            .await
    }

    fn problem(&self, kind: ProblemKind, detail: impl Into<String>) -> Problem {
        Problem::new(self.tenant, kind, detail).project(self.project)
    }

    async fn pack_rows(&mut self) -> Result<HashMap<Uuid, PackRow>, StorageError> {
        let rows: Vec<(Uuid, i64, Vec<u8>)> = with_pool!(self.core.db, |pool| {
            sqlx::query_as("SELECT id, size, sha256 FROM packs WHERE project_id = $1")
                .bind(self.project.as_uuid())
                .fetch_all(pool)
                .await
                .map_err(CoreError::from)?
        });
        self.report.packs += rows.len() as u64;
        let mut packs = HashMap::with_capacity(rows.len());
        for (id, size, sha) in rows {
            let Ok(size) = u64::try_from(size) else {
                let name = pack_name(self.tenant, self.project, id);
                let p = self
                    .problem(
                        ProblemKind::BadIndexRow,
                        format!("pack {id} has a recorded size of {size}"),
                    )
                    .blob(name);
                self.report.problems.push(p);
                continue;
            };
            packs.insert(
                id,
                PackRow {
                    size,
                    sha256: sha,
                    chunks: 0,
                },
            );
        }
        Ok(packs)
    }

    /// Every committed chunk row: readable, inside a recorded pack. Returns each chunk's
    /// plaintext length and key version by id, and how many chunks each key version seals.
    /// Compares the chunks' stored bytes with the project's counter.
    async fn check_chunks(
        &mut self,
        packs: &mut HashMap<Uuid, PackRow>,
    ) -> Result<(Chunks, BTreeMap<u32, u64>), StorageError> {
        type Row = (Vec<u8>, Uuid, i64, i64, i64, i64);
        let mut chunks = HashMap::new();
        let mut versions: BTreeMap<u32, u64> = BTreeMap::new();
        let mut stored: i128 = 0;
        let mut after: Vec<u8> = Vec::new();
        loop {
            let rows: Vec<Row> = with_pool!(self.core.db, |pool| {
                sqlx::query_as(
                    "SELECT chunk_id, pack_id, pack_offset, stored_len, raw_len, key_version \
                     FROM chunks WHERE project_id = $1 AND chunk_id > $2 ORDER BY chunk_id \
                     LIMIT $3",
                )
                .bind(self.project.as_uuid())
                .bind(&after)
                .bind(BATCH)
                .fetch_all(pool)
                .await
                .map_err(CoreError::from)?
            });
            let Some(last) = rows.last() else { break };
            after = last.0.clone();
            self.report.chunks += rows.len() as u64;
            for (id, pack, offset, stored_len, raw_len, version) in rows {
                stored += i128::from(stored_len);
                let fields = (
                    ChunkId::from_slice(&id),
                    u64::try_from(offset),
                    u64::try_from(stored_len),
                    u32::try_from(raw_len),
                    u32::try_from(version),
                );
                let (Ok(id), Ok(offset), Ok(len), Ok(raw_len), Ok(version)) = fields else {
                    let p = self.problem(
                        ProblemKind::BadIndexRow,
                        format!(
                            "a chunk row has out-of-range fields (id of {} bytes, offset \
                             {offset}, length {stored_len}, plaintext length {raw_len}, key \
                             version {version})",
                            id.len()
                        ),
                    );
                    self.report.problems.push(p);
                    continue;
                };
                match packs.get_mut(&pack) {
                    None => {
                        let p = self.problem(
                            ProblemKind::BadIndexRow,
                            format!("chunk {id:?} is in pack {pack}, which has no row"),
                        );
                        self.report.problems.push(p);
                        continue;
                    }
                    Some(row) if offset.checked_add(len).is_none_or(|end| end > row.size) => {
                        let p = self
                            .problem(
                                ProblemKind::BadIndexRow,
                                format!(
                                    "chunk {id:?} lies at {offset}..{} of pack {pack}, which \
                                     is {} bytes",
                                    offset.saturating_add(len),
                                    row.size
                                ),
                            )
                            .blob(pack_name(self.tenant, self.project, pack));
                        self.report.problems.push(p);
                        continue;
                    }
                    Some(row) => row.chunks += 1,
                }
                *versions.entry(version).or_default() += 1;
                chunks.insert(id, (raw_len, version));
            }
        }
        let counter: Option<i64> = with_pool!(self.core.db, |pool| {
            sqlx::query_scalar("SELECT stored_bytes FROM projects WHERE id = $1")
                .bind(self.project.as_uuid())
                .fetch_optional(pool)
                .await
                .map_err(CoreError::from)?
        });
        if let Some(counter) = counter
            && i128::from(counter) != stored
        {
            let p = self.problem(
                ProblemKind::UsageMismatch,
                format!(
                    "the project's stored bytes (charged to the tenant's storage quota) say \
                     {counter}; its chunks hold {stored}"
                ),
            );
            self.report.problems.push(p);
        }
        Ok((chunks, versions))
    }

    /// Unwraps each project key version in use once; a version that cannot be is one
    /// problem, naming how much it seals.
    async fn keys(
        &mut self,
        chunk_versions: &BTreeMap<u32, u64>,
        payloads: &[PayloadRow],
    ) -> HashMap<u32, KeyOutcome> {
        let mut versions: Vec<u32> = chunk_versions.keys().copied().collect();
        versions.extend(
            payloads
                .iter()
                .filter_map(|p| u32::try_from(p.key_version).ok()),
        );
        versions.sort_unstable();
        versions.dedup();
        let mut keys = HashMap::with_capacity(versions.len());
        for version in versions {
            let outcome = match self
                .core
                .keys
                .decryption_key(self.tenant, self.project, version)
                .await
            {
                Ok(key) => Ok(key),
                Err(e) => {
                    let kind = match e {
                        StorageError::KeyDestroyed { .. } => ProblemKind::KeyDestroyed,
                        _ => ProblemKind::KeyUnavailable,
                    };
                    let chunks = chunk_versions.get(&version).copied().unwrap_or(0);
                    let payloads = payloads
                        .iter()
                        .filter(|p| p.key_version == i64::from(version))
                        .count();
                    let p = self.problem(
                        kind,
                        format!(
                            "project key version {version} seals {chunks} chunk(s) and \
                             {payloads} payload(s) and cannot be unwrapped: {e}"
                        ),
                    );
                    self.report.problems.push(p);
                    Err((kind, e.to_string()))
                }
            };
            keys.insert(version, outcome);
        }
        keys
    }

    /// Looks a blob up, confirming one the listing did not show.
    async fn stat(&self, name: &str) -> Stat {
        match self.core.blobs.size_named(name).await {
            Ok(size) => Stat::Size(size),
            Err(e) if e.kind() == ErrorKind::NotFound => Stat::Missing,
            Err(e) => Stat::Failed(e.to_string()),
        }
    }

    /// Every pack row has its blob, of the recorded size (with `read_all`, of the recorded
    /// SHA-256).
    async fn check_packs(
        &mut self,
        packs: &HashMap<Uuid, PackRow>,
        listed: &HashSet<Uuid>,
    ) -> Result<(), StorageError> {
        let mut ids: Vec<&Uuid> = packs.keys().collect();
        ids.sort();
        for &id in ids {
            let row = &packs[&id];
            let name = pack_name(self.tenant, self.project, id);
            let found = self.stat(&name).await;
            let problem = match found {
                Stat::Missing if !listed.contains(&id) && !self.pack_recorded(id).await? => {
                    continue; // deleted (row, then blob) while the check ran
                }
                Stat::Missing => Some((
                    ProblemKind::MissingBlob,
                    format!(
                        "pack {id} ({} bytes, holding {} chunk(s)) is missing",
                        row.size, row.chunks
                    ),
                )),
                Stat::Failed(e) => Some((ProblemKind::ReadFailed, format!("pack {id}: {e}"))),
                Stat::Size(size) if size != row.size => Some((
                    ProblemKind::SizeMismatch,
                    format!("pack {id} is {size} bytes; its row says {}", row.size),
                )),
                Stat::Size(_) if self.options.read_all => self.hash_pack(&name, row).await,
                Stat::Size(_) => None,
            };
            if let Some((kind, detail)) = problem {
                let p = self.problem(kind, detail).blob(name);
                self.report.problems.push(p);
            }
        }
        Ok(())
    }

    async fn pack_recorded(&self, id: Uuid) -> Result<bool, StorageError> {
        let n: i64 = with_pool!(self.core.db, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM packs WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
                .map_err(CoreError::from)?
        });
        Ok(n > 0)
    }

    /// Reads a whole pack and compares its SHA-256 with the recorded one.
    async fn hash_pack(&mut self, name: &str, row: &PackRow) -> Option<(ProblemKind, String)> {
        let mut hash = Sha256::new();
        let mut offset = 0;
        while offset < row.size {
            let end = (offset + PIECE).min(row.size);
            match self.core.blobs.read_named(name, offset..end).await {
                Ok(bytes) => {
                    self.report.bytes_read += bytes.len() as u64;
                    hash.update(&bytes);
                }
                Err(e) => {
                    return Some((
                        ProblemKind::ReadFailed,
                        format!("reading bytes {offset}..{end}: {e}"),
                    ));
                }
            }
            offset = end;
        }
        let digest: [u8; 32] = hash.finalize().into();
        (digest[..] != row.sha256[..]).then(|| {
            (
                ProblemKind::ChecksumMismatch,
                format!(
                    "the pack's {} bytes do not have the recorded SHA-256",
                    row.size
                ),
            )
        })
    }

    /// Every committed snapshot's files: chunk lists readable, every chunk indexed with the
    /// length the list says, lengths adding up to the file's size; the snapshot's file count
    /// and size equal its rows'. With `read_all`, every distinct content is read back.
    /// Files whose chunks are sealed under an `unusable` key version are not read back
    /// (the key's problem says they cannot be).
    async fn check_snapshots(
        &mut self,
        chunks: &Chunks,
        unusable: &HashSet<u32>,
    ) -> Result<(), StorageError> {
        let snapshots: Vec<(Uuid, i64, i64)> = with_pool!(self.core.db, |pool| {
            sqlx::query_as(
                "SELECT id, files, logical_bytes FROM snapshots WHERE project_id = $1 \
                 AND state = 'committed' ORDER BY id",
            )
            .bind(self.project.as_uuid())
            .fetch_all(pool)
            .await
            .map_err(CoreError::from)?
        });
        // Contents already read back (with `read_all`): by recorded SHA-256 and chunk list.
        let mut read_back: HashSet<[u8; 32]> = HashSet::new();
        for (id, files, bytes) in snapshots {
            self.report.snapshots += 1;
            let snapshot = SnapshotId::from_uuid(id)?;
            let (rows, size) = self
                .check_files(snapshot, chunks, unusable, &mut read_back)
                .await?;
            if rows as i64 != files || i128::from(size) != i128::from(bytes) {
                let p = self
                    .problem(
                        ProblemKind::UsageMismatch,
                        format!(
                            "the snapshot records {files} file(s) of {bytes} bytes; it has \
                             {rows} of {size}"
                        ),
                    )
                    .snapshot(Some(snapshot));
                self.report.problems.push(p);
            }
        }
        Ok(())
    }

    /// One snapshot's file rows, in batches. Returns how many and their sizes added up.
    async fn check_files(
        &mut self,
        snapshot: SnapshotId,
        chunks: &Chunks,
        unusable: &HashSet<u32>,
        read_back: &mut HashSet<[u8; 32]>,
    ) -> Result<(u64, u64), StorageError> {
        type Row = (String, String, i64, Vec<u8>, Option<String>, Vec<u8>);
        let (mut count, mut total) = (0u64, 0u64);
        let mut after = String::new();
        loop {
            let rows: Vec<Row> = with_pool!(self.core.db, |pool| {
                sqlx::query_as(
                    "SELECT path, kind, size, sha256, link_target, chunks FROM snapshot_files \
                     WHERE snapshot_id = $1 AND path > $2 ORDER BY path LIMIT $3",
                )
                .bind(snapshot.as_uuid())
                .bind(&after)
                .bind(BATCH)
                .fetch_all(pool)
                .await
                .map_err(CoreError::from)?
            });
            let Some(last) = rows.last() else { break };
            after = last.0.clone();
            for (path, kind, size, sha, link, list) in rows {
                count += 1;
                self.report.files += 1;
                let size = u64::try_from(size).unwrap_or(u64::MAX);
                total = total.saturating_add(size);
                let found = match kind.as_str() {
                    "symlink" => check_link(size, &sha, link.as_deref(), &list),
                    _ => match check_list(size, &list, chunks) {
                        Ok(refs)
                            if self.options.read_all
                                && !refs.iter().any(|r| {
                                    chunks.get(&r.id).is_some_and(|(_, v)| unusable.contains(v))
                                }) =>
                        {
                            let mut seen = Sha256::new();
                            seen.update(&sha);
                            seen.update(&list);
                            if read_back.insert(seen.finalize().into()) {
                                self.read_file(size, &sha, &refs).await
                            } else {
                                None
                            }
                        }
                        Ok(_) => None,
                        Err(problem) => Some(problem),
                    },
                };
                if let Some((kind, detail)) = found {
                    let p = self
                        .problem(kind, detail)
                        .snapshot(Some(snapshot))
                        .path(path);
                    self.report.problems.push(p);
                }
            }
        }
        Ok((count, total))
    }

    /// Reads a file's content back, a few MiB of chunks at a time, and compares it with
    /// its recorded size and SHA-256.
    async fn read_file(
        &mut self,
        size: u64,
        sha: &[u8],
        refs: &[ChunkRef],
    ) -> Option<(ProblemKind, String)> {
        let mut hash = Sha256::new();
        let mut read = 0u64;
        let mut group: Vec<ChunkRef> = Vec::new();
        let mut group_len = 0u64;
        for (i, r) in refs.iter().enumerate() {
            group.push(*r);
            group_len += u64::from(r.len);
            if group_len < PIECE && i + 1 < refs.len() {
                continue;
            }
            match read_chunks(self.core, self.tenant, self.project, &group).await {
                Ok(parts) => {
                    for part in parts {
                        read += part.len() as u64;
                        hash.update(&part);
                    }
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Some((ProblemKind::MissingBlob, format!("cannot be read: {e}")));
                }
                Err(e) => return Some((ProblemKind::Corrupt, e.to_string())),
            }
            group.clear();
            group_len = 0;
        }
        self.report.bytes_read += read;
        let digest: [u8; 32] = hash.finalize().into();
        (read != size || digest[..] != sha[..]).then(|| {
            (
                ProblemKind::ChecksumMismatch,
                format!(
                    "its chunks hold {read} bytes whose SHA-256 is not the recorded one \
                     ({size} bytes recorded)"
                ),
            )
        })
    }

    async fn payload_rows(&mut self) -> Result<Vec<PayloadRow>, StorageError> {
        let rows: Vec<PayloadRow> = with_pool!(self.core.db, |pool| {
            sqlx::query_as(
                "SELECT p.result_id, p.name, p.blob_id, p.key_version, p.size, p.stored_bytes, \
                 p.sha256 FROM analysis_payloads p JOIN analysis_results r \
                 ON r.id = p.result_id WHERE r.project_id = $1 ORDER BY p.blob_id",
            )
            .bind(self.project.as_uuid())
            .fetch_all(pool)
            .await
            .map_err(CoreError::from)?
        });
        self.report.payloads += rows.len() as u64;
        Ok(rows)
    }

    /// Every analysis payload has its blob, of the recorded size, whose header
    /// authenticates (with `read_all`: which decrypts to the recorded size and SHA-256).
    async fn check_payloads(
        &mut self,
        rows: Vec<PayloadRow>,
        listed: &HashSet<Uuid>,
        keys: &HashMap<u32, KeyOutcome>,
    ) -> Result<(), StorageError> {
        for row in rows {
            let name = payload_name(self.tenant, self.project, row.blob_id);
            let found = self.check_payload(&row, &name, listed, keys).await?;
            if let Some((kind, detail)) = found {
                let p = self
                    .problem(kind, detail)
                    .path(format!("analysis {} payload {}", row.result_id, row.name))
                    .blob(name);
                self.report.problems.push(p);
            }
        }
        Ok(())
    }

    async fn check_payload(
        &mut self,
        row: &PayloadRow,
        name: &str,
        listed: &HashSet<Uuid>,
        keys: &HashMap<u32, KeyOutcome>,
    ) -> Result<Option<(ProblemKind, String)>, StorageError> {
        let (Ok(version), Ok(stored), Ok(size)) = (
            u32::try_from(row.key_version),
            u64::try_from(row.stored_bytes),
            u64::try_from(row.size),
        ) else {
            return Ok(Some((
                ProblemKind::BadIndexRow,
                format!(
                    "out-of-range fields (key version {}, size {}, stored bytes {})",
                    row.key_version, row.size, row.stored_bytes
                ),
            )));
        };
        match self.stat(name).await {
            Stat::Missing
                if !listed.contains(&row.blob_id) && !self.payload_recorded(row).await? =>
            {
                return Ok(None); // deleted (row, then blob) while the check ran
            }
            Stat::Missing => {
                return Ok(Some((
                    ProblemKind::MissingBlob,
                    format!("the payload's blob ({stored} bytes) is missing"),
                )));
            }
            Stat::Failed(e) => return Ok(Some((ProblemKind::ReadFailed, e))),
            Stat::Size(found) if found != stored => {
                return Ok(Some((
                    ProblemKind::SizeMismatch,
                    format!("the blob is {found} bytes; its row says {stored}"),
                )));
            }
            Stat::Size(_) => {}
        }
        let key = match keys.get(&version) {
            Some(Ok(key)) => key,
            // Reported once for the key version.
            _ => return Ok(None),
        };
        let context = payload::context(
            self.tenant,
            self.project,
            row.result_id,
            row.blob_id,
            version,
        );
        let header = match self
            .core
            .blobs
            .read_named(name, 0..(HEADER_LEN as u64).min(stored))
            .await
        {
            Ok(h) => h,
            Err(e) => return Ok(Some((ProblemKind::ReadFailed, e.to_string()))),
        };
        let header_len = header.len() as u64;
        self.report.bytes_read += header_len;
        if let Err(e) = self
            .core
            .cipher
            .verify_header(key.expose_secret(), &context, &header)
        {
            return Ok(Some((ProblemKind::HeaderMismatch, e.to_string())));
        }
        if !self.options.read_all {
            return Ok(None);
        }
        let source = Source {
            blobs: &self.core.blobs,
            cipher: &self.core.cipher,
            name: name.to_owned(),
            stored_bytes: stored,
            key: key.expose_secret(),
            context,
            size,
            sha256: &row.sha256,
        };
        let outcome = payload::decrypt(&source, &mut tokio::io::sink()).await;
        // The header was counted above.
        self.report.bytes_read += stored - header_len;
        Ok(match outcome {
            Ok((n, digest)) if n == size && digest[..] == row.sha256[..] => None,
            Ok((n, _)) => Some((
                ProblemKind::ChecksumMismatch,
                format!(
                    "it decrypts to {n} bytes whose SHA-256 is not the recorded one ({size} \
                     bytes recorded)"
                ),
            )),
            Err(e) => Some((ProblemKind::Corrupt, e.to_string())),
        })
    }

    async fn payload_recorded(&self, row: &PayloadRow) -> Result<bool, StorageError> {
        let n: i64 = with_pool!(self.core.db, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM analysis_payloads WHERE blob_id = $1")
                .bind(row.blob_id)
                .fetch_one(pool)
                .await
                .map_err(CoreError::from)?
        });
        Ok(n > 0)
    }

    /// Pack and payload blobs nothing records: young ones counted as in progress, old ones
    /// reported (and with `repair`, deleted by the garbage collector's rules, which look
    /// at the rows again first).
    async fn check_orphans(
        &mut self,
        pack_blobs: &HashSet<Uuid>,
        packs: &HashSet<Uuid>,
        payload_blobs: &HashSet<Uuid>,
    ) -> Result<(), StorageError> {
        let cutoff = grace_cutoff(self.core.clock.now(), self.options.grace);
        let payloads: HashSet<Uuid> = with_pool!(self.core.db, |pool| {
            sqlx::query_scalar(
                "SELECT p.blob_id FROM analysis_payloads p JOIN analysis_results r \
                 ON r.id = p.result_id WHERE r.project_id = $1",
            )
            .bind(self.project.as_uuid())
            .fetch_all(pool)
            .await
            .map_err(CoreError::from)?
        })
        .into_iter()
        .collect();
        let (tenant, project) = (self.tenant, self.project);
        let mut old: Vec<(Uuid, String, &str)> = Vec::new();
        for (listed, recorded, what) in [
            (pack_blobs, packs, "pack"),
            (payload_blobs, &payloads, "payload"),
        ] {
            let mut ids: Vec<Uuid> = listed.difference(recorded).copied().collect();
            ids.sort();
            for id in ids {
                if older_than(id, cutoff) {
                    let name = match what {
                        "pack" => pack_name(tenant, project, id),
                        _ => payload_name(tenant, project, id),
                    };
                    old.push((id, name, what));
                } else {
                    self.report.in_progress += 1;
                }
            }
        }
        if old.is_empty() {
            return Ok(());
        }
        let mut left: HashSet<Uuid> = HashSet::new();
        if self.options.repair {
            sweep_orphan_packs(self.core, tenant, project, cutoff).await?;
            sweep_payloads(self.core, tenant, project, cutoff).await?;
            left.extend(self.core.blobs.list_in(&pack_dir(tenant, project)).await?);
            left.extend(
                self.core
                    .blobs
                    .list_in(&payload_dir(tenant, project))
                    .await?,
            );
        }
        for (id, name, what) in old {
            let mut p = self
                .problem(
                    ProblemKind::OrphanBlob,
                    format!(
                        "{what} blob {id} has no row{}",
                        ObjectId::from_uuid(id).map(uploaded_at).unwrap_or_default()
                    ),
                )
                .blob(name);
            p.repaired = self.options.repair && !left.contains(&id);
            self.report.problems.push(p);
        }
        Ok(())
    }
}

/// A payload row.
#[derive(sqlx::FromRow)]
struct PayloadRow {
    result_id: Uuid,
    name: String,
    blob_id: Uuid,
    key_version: i64,
    size: i64,
    stored_bytes: i64,
    sha256: Vec<u8>,
}

/// A symbolic link's row: no chunks, its size the target's length (with `read_all`, the
/// target's SHA-256 the recorded one; it is in the row, so this costs nothing).
fn check_link(
    size: u64,
    sha: &[u8],
    target: Option<&str>,
    chunks: &[u8],
) -> Option<(ProblemKind, String)> {
    let Some(target) = target else {
        return Some((ProblemKind::BadIndexRow, "a link without a target".into()));
    };
    if !chunks.is_empty() || target.len() as u64 != size {
        return Some((
            ProblemKind::BadIndexRow,
            format!(
                "a link of {size} bytes to a {}-byte target, with {} bytes of chunk list",
                target.len(),
                chunks.len()
            ),
        ));
    }
    (sha256(target.as_bytes())[..] != sha[..]).then(|| {
        (
            ProblemKind::ChecksumMismatch,
            "the link target's SHA-256 is not the recorded one".into(),
        )
    })
}

/// A file's chunk list: readable, every chunk indexed with the length the list gives, the
/// lengths adding up to the file's size.
fn check_list(
    size: u64,
    list: &[u8],
    chunks: &Chunks,
) -> Result<Vec<ChunkRef>, (ProblemKind, String)> {
    let refs = decode_refs(list).map_err(|e| (ProblemKind::BadIndexRow, e.to_string()))?;
    let mut missing = refs
        .iter()
        .filter(|r| chunks.get(&r.id).map(|(len, _)| *len) != Some(r.len));
    if let Some(first) = missing.next() {
        let more = missing.count();
        let detail = match chunks.get(&first.id) {
            None => format!("chunk {:?} is not in the project's chunk index", first.id),
            Some((len, _)) => format!(
                "chunk {:?} is {len} bytes in the index and {} in the file's list",
                first.id, first.len
            ),
        };
        return Err((
            ProblemKind::MissingChunk,
            if more > 0 {
                format!("{detail} (and {more} more of its {} chunks)", refs.len())
            } else {
                detail
            },
        ));
    }
    let sum: u64 = refs.iter().map(|r| u64::from(r.len)).sum();
    if sum != size {
        return Err((
            ProblemKind::BadIndexRow,
            format!("its chunks add up to {sum} bytes, not its {size}"),
        ));
    }
    Ok(refs)
}
