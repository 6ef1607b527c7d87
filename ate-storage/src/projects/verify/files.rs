//! The snapshot half of a project's check: file rows against the chunk index, snapshot
//! totals, and with `read_all` every distinct content read back.

use super::{BATCH, Chunks, PIECE, ProjectCheck};
use crate::StorageError;
use crate::dedup::read::read_chunks;
use crate::dedup::{ChunkRef, decode_refs, sha256};
use crate::verify::ProblemKind;
use ate_core::{Classify, CoreError, ErrorKind, SnapshotId, with_pool};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use uuid::Uuid;

impl ProjectCheck<'_> {
    /// Every committed snapshot's files: chunk lists readable, every chunk indexed with the
    /// length the list says, lengths adding up to the file's size; the snapshot's file count
    /// and size equal its rows'. With `read_all`, every distinct content is read back.
    /// The project's committed snapshots.
    pub(super) async fn committed_snapshots(&self) -> Result<Vec<SnapshotId>, StorageError> {
        let ids: Vec<Uuid> = with_pool!(self.core.db, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM snapshots WHERE project_id = $1 AND state = 'committed' \
                 ORDER BY id",
            )
            .bind(self.project.as_uuid())
            .fetch_all(pool)
            .await
            .map_err(CoreError::from)?
        });
        Ok(ids
            .into_iter()
            .map(SnapshotId::from_uuid)
            .collect::<Result<_, _>>()?)
    }

    /// Every listed snapshot's files: chunk lists readable, every chunk indexed with the
    /// length the list says, lengths adding up to the file's size; the snapshot's file count
    /// and size equal its rows' (compared in one statement, and only while it is still
    /// committed). With `read_all`, every distinct content is read back. Files whose chunks
    /// are sealed under an `unusable` key version are not read back (the key's problem says
    /// they cannot be).
    pub(super) async fn check_snapshots(
        &mut self,
        snapshots: Vec<SnapshotId>,
        chunks: &Chunks,
        unusable: &HashSet<u32>,
    ) -> Result<(), StorageError> {
        // Contents already read back (with `read_all`): by recorded SHA-256 and chunk list.
        let mut read_back: HashSet<[u8; 32]> = HashSet::new();
        for snapshot in snapshots {
            self.check_files(snapshot, chunks, unusable, &mut read_back)
                .await?;
            let totals: Option<(i64, i64, i64, i64)> = with_pool!(self.core.db, |pool| {
                sqlx::query_as(
                    "SELECT s.files, s.logical_bytes, \
                     (SELECT COUNT(*) FROM snapshot_files f WHERE f.snapshot_id = s.id), \
                     CAST(COALESCE((SELECT SUM(f.size) FROM snapshot_files f \
                     WHERE f.snapshot_id = s.id), 0) AS BIGINT) \
                     FROM snapshots s WHERE s.id = $1 AND s.state = 'committed'",
                )
                .bind(snapshot.as_uuid())
                .fetch_optional(pool)
                .await
                .map_err(CoreError::from)?
            });
            // No longer committed: deleted while the check ran.
            let Some((files, bytes, rows, size)) = totals else {
                continue;
            };
            self.report.snapshots += 1;
            if rows != files || size != bytes {
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

    /// Whether `snapshot` is still committed.
    async fn still_committed(&self, snapshot: SnapshotId) -> Result<bool, StorageError> {
        let n: i64 = with_pool!(self.core.db, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM snapshots WHERE id = $1 AND state = 'committed'",
            )
            .bind(snapshot.as_uuid())
            .fetch_one(pool)
            .await
            .map_err(CoreError::from)?
        });
        Ok(n > 0)
    }

    /// One snapshot's file rows, in batches.
    async fn check_files(
        &mut self,
        snapshot: SnapshotId,
        chunks: &Chunks,
        unusable: &HashSet<u32>,
        read_back: &mut HashSet<[u8; 32]>,
    ) -> Result<(), StorageError> {
        type Row = (String, String, i64, Vec<u8>, Option<String>, Vec<u8>);
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
                self.report.files += 1;
                let size = u64::try_from(size).unwrap_or(u64::MAX);
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
                                match self.read_file(size, &sha, &refs).await {
                                    // Unreadable because its snapshot was deleted (and its
                                    // chunks collected) while the check ran: not damage.
                                    Some(_) if !self.still_committed(snapshot).await? => None,
                                    found => found,
                                }
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
        Ok(())
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
