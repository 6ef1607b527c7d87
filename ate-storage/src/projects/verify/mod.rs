//! [`SnapshotStore::verify`](super::SnapshotStore::verify): the codebase half of the
//! operator's integrity check (what it checks: [`crate::verify`]).
//!
//! Blob listings are taken before the rows they are compared with, so a blob written after
//! its listing cannot be taken for an orphan of a row recorded in between; a row whose blob
//! is not in the listing is looked up again (and the row too, when the blob is gone), so a
//! pack written or deleted during the check is not reported as missing.

use super::SnapshotCore;
use crate::StorageError;
use crate::analysis::payload::{payload_dir, payload_name};
use crate::blob::grace_cutoff;
use crate::dedup::ChunkId;
use crate::dedup::gc::{older_than, sweep_orphan_packs, sweep_payloads};
use crate::dedup::pack::{pack_dir, pack_name};
use crate::objects::uploaded_at;
use crate::projects::ProjectKey;
use crate::verify::{Problem, ProblemKind, VerifyOptions, VerifyReport};
use ate_core::{Classify, CoreError, ErrorKind, ObjectId, ProjectId, TenantId, with_pool};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

mod files;
mod payloads;

use payloads::PayloadRow;

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
        // Snapshots before chunks: a snapshot commits its chunks with it, so every chunk of
        // one listed here is in the chunk scan (unless the snapshot is deleted meanwhile, and
        // then its file rows go before its chunks).
        let snapshots = self.committed_snapshots().await?;
        let mut packs = self.pack_rows().await?;
        let (chunks, versions) = self.check_chunks(&mut packs).await?;
        self.check_stored_bytes().await?;
        let payload_rows = self.payload_rows().await?;
        let keys = self.keys(&versions, &payload_rows).await;
        self.check_packs(&packs).await?;
        let unusable: HashSet<u32> = keys
            .iter()
            .filter(|(_, k)| k.is_err())
            .map(|(v, _)| *v)
            .collect();
        self.check_snapshots(snapshots, &chunks, &unusable).await?;
        self.check_payloads(payload_rows, &keys).await?;
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
    /// A row that seems to point outside its pack is read again with its pack (a repack
    /// moves chunks and deletes packs while the scan runs) before it is reported.
    async fn check_chunks(
        &mut self,
        packs: &mut HashMap<Uuid, PackRow>,
    ) -> Result<(Chunks, BTreeMap<u32, u64>), StorageError> {
        type Row = (Vec<u8>, Uuid, i64, i64, i64, i64);
        let mut chunks = HashMap::new();
        let mut versions: BTreeMap<u32, u64> = BTreeMap::new();
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
                let inside = |size: u64| offset.checked_add(len).is_some_and(|end| end <= size);
                match packs.get_mut(&pack) {
                    Some(row) if inside(row.size) => row.chunks += 1,
                    _ => match self.recheck_chunk(id).await? {
                        // Gone meanwhile (garbage collected), or moved into a pack it fits.
                        None => continue,
                        Some(None) => {}
                        Some(Some(detail)) => {
                            let p = self
                                .problem(ProblemKind::BadIndexRow, detail)
                                .blob(pack_name(self.tenant, self.project, pack));
                            self.report.problems.push(p);
                            continue;
                        }
                    },
                }
                *versions.entry(version).or_default() += 1;
                chunks.insert(id, (raw_len, version));
            }
        }
        Ok((chunks, versions))
    }

    /// A chunk row read again with its pack's row: `None` if it is gone, `Some(None)` if it
    /// lies inside its pack now, `Some(Some(what is wrong))` otherwise.
    async fn recheck_chunk(&self, id: ChunkId) -> Result<Option<Option<String>>, StorageError> {
        let row: Option<(Uuid, i64, i64, Option<i64>)> = with_pool!(self.core.db, |pool| {
            sqlx::query_as(
                "SELECT c.pack_id, c.pack_offset, c.stored_len, p.size FROM chunks c \
                 LEFT JOIN packs p ON p.id = c.pack_id \
                 WHERE c.project_id = $1 AND c.chunk_id = $2",
            )
            .bind(self.project.as_uuid())
            .bind(&id.as_bytes()[..])
            .fetch_optional(pool)
            .await
            .map_err(CoreError::from)?
        });
        let Some((pack, offset, len, size)) = row else {
            return Ok(None);
        };
        Ok(Some(match size {
            None => Some(format!("chunk {id:?} is in pack {pack}, which has no row")),
            Some(size) if offset < 0 || len < 0 || offset.saturating_add(len) > size => {
                Some(format!(
                    "chunk {id:?} lies at {offset}..{} of pack {pack}, which is {size} bytes",
                    offset.saturating_add(len)
                ))
            }
            Some(_) => None,
        }))
    }

    /// The project's stored bytes (what the tenant's storage quota is charged) against what
    /// its chunks hold, read in one statement so that no import, collection or repack can
    /// come between the two.
    async fn check_stored_bytes(&mut self) -> Result<(), StorageError> {
        let row: Option<(i64, i64)> = with_pool!(self.core.db, |pool| {
            sqlx::query_as(
                "SELECT stored_bytes, CAST(COALESCE((SELECT SUM(stored_len) FROM chunks \
                 WHERE project_id = $1), 0) AS BIGINT) FROM projects WHERE id = $1",
            )
            .bind(self.project.as_uuid())
            .fetch_optional(pool)
            .await
            .map_err(CoreError::from)?
        });
        if let Some((counter, held)) = row
            && counter != held
        {
            let p = self.problem(
                ProblemKind::UsageMismatch,
                format!(
                    "the project's stored bytes (charged to the tenant's storage quota) say \
                     {counter}; its chunks hold {held}"
                ),
            );
            self.report.problems.push(p);
        }
        Ok(())
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
    async fn check_packs(&mut self, packs: &HashMap<Uuid, PackRow>) -> Result<(), StorageError> {
        let mut ids: Vec<&Uuid> = packs.keys().collect();
        ids.sort();
        for &id in ids {
            let row = &packs[&id];
            let name = pack_name(self.tenant, self.project, id);
            let found = self.stat(&name).await;
            let problem = match found {
                // Rows go before their blobs: a pack whose row is gone now was deleted (by
                // garbage collection or a repack) while the check ran.
                Stat::Missing if !self.pack_recorded(id).await? => continue,
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
                Stat::Size(_) if self.options.read_all => match self.hash_pack(&name, row).await {
                    // Deleted (row, then blob) while it was being read.
                    Some((ProblemKind::ReadFailed, _)) if !self.pack_recorded(id).await? => {
                        continue;
                    }
                    found => found,
                },
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
                    // Listed before the rows were read: a blob deleted (row, then blob)
                    // since is not an orphan.
                    if matches!(self.stat(&name).await, Stat::Missing) {
                        continue;
                    }
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
