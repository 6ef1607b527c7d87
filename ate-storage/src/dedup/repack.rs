//! Repacking a project's packs: chunks sealed under an older project key are sealed again
//! under the current one, and packs that hold mostly dead bytes are rewritten with only
//! their live chunks.
//!
//! Each new pack is written whole, then recorded in one transaction under the tenant's lock
//! that moves the chunk rows to it (only those still in the old pack: garbage collection may
//! have removed some meanwhile) and drops the old packs nothing points at any more; their
//! blobs are deleted after. A crash leaves at most an unrecorded new pack, which garbage
//! collection removes. A read that raced with a move finds the chunk's new place and
//! retries ([`super::read`]).

use super::pack::{PACK_TARGET, PackWriter, pack_name};
use super::{ChunkId, Encoding, SealedChunk, chunk_context};
use crate::StorageError;
use crate::projects::{RepackReport, SnapshotCore};
use crate::sql::ph_list;
use ate_core::db::to_micros;
use ate_core::{CoreError, CoreTx, ProjectId, TenantId, with_pool, with_write_tx};
use std::collections::HashMap;
use uuid::Uuid;
use zeroize::Zeroizing;

/// A live chunk of a pack being rewritten.
struct Live {
    id: ChunkId,
    offset: u64,
    stored_len: u64,
    raw_len: u32,
    key_version: u32,
    encoding: Encoding,
}

/// A new pack's chunks: where each came from, and its old stored length.
type Moves = Vec<(ChunkId, Uuid, i64)>;

/// One pass over `project`; see the [module docs](self). Packs with a chunk under an older
/// key (when `reencrypt`) or at least `min_dead_share` of dead bytes are rewritten.
pub(crate) async fn repack(
    core: &SnapshotCore,
    tenant: TenantId,
    project: ProjectId,
    reencrypt: bool,
    min_dead_share: f64,
) -> Result<RepackReport, StorageError> {
    let current = core.keys.encryption_key(tenant, project).await?;
    let mut report = RepackReport::default();
    // Packs an import is still writing into are left alone.
    let packs: Vec<(Uuid, i64, i64, i64)> = with_pool!(core.db, |pool| {
        sqlx::query_as(
            "SELECT p.id, p.size, CAST(COALESCE(SUM(c.stored_len), 0) AS BIGINT), \
             CAST(COALESCE(MIN(c.key_version), 0) AS BIGINT) \
             FROM packs p JOIN chunks c ON c.pack_id = p.id WHERE p.project_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM pending_chunks q WHERE q.pack_id = p.id) \
             GROUP BY p.id, p.size ORDER BY p.id",
        )
        .bind(project.as_uuid())
        .fetch_all(pool)
        .await
        .map_err(CoreError::from)?
    });
    let chosen: Vec<Uuid> = packs
        .into_iter()
        .filter(|(_, size, live, min_version)| {
            let old_key = reencrypt && *min_version < i64::from(current.version);
            let dead = *size > 0 && (*size - *live) as f64 / *size as f64 >= min_dead_share;
            old_key || dead
        })
        .map(|(id, ..)| id)
        .collect();
    if chosen.is_empty() {
        return Ok(report);
    }
    let mut keys: HashMap<u32, Zeroizing<[u8; 32]>> = HashMap::new();
    let new_key = Zeroizing::new(*current.expose_secret());
    let mut writer: Option<(PackWriter, Moves)> = None;
    let mut drained: Vec<Uuid> = Vec::new();
    for old in chosen {
        let live = live_chunks(core, old).await?;
        let blob = pack_name(tenant, project, old);
        let end = live
            .iter()
            .map(|c| c.offset + c.stored_len)
            .max()
            .unwrap_or(0);
        let bytes = core.blobs.read_named(&blob, 0..end).await?;
        report.bytes_before += live.iter().map(|c| c.stored_len).sum::<u64>();
        for c in live {
            if let std::collections::hash_map::Entry::Vacant(slot) = keys.entry(c.key_version) {
                let key = core
                    .keys
                    .decryption_key(tenant, project, c.key_version)
                    .await?;
                slot.insert(Zeroizing::new(*key.expose_secret()));
            }
            let old_key = keys.get(&c.key_version).ok_or_else(|| {
                StorageError::Integrity("a project key went missing while repacking".into())
            })?;
            let context = chunk_context(tenant, project, &c.id);
            let sealed = &bytes[c.offset as usize..(c.offset + c.stored_len) as usize];
            let plain = core.cipher.open(&old_key[..], sealed, &context)?;
            let resealed = core.cipher.seal(&new_key[..], &plain, &context)?;
            let (w, moves) = match &mut writer {
                Some(w) => w,
                None => writer.insert((
                    PackWriter::start(&core.blobs, tenant, project).await?,
                    Vec::new(),
                )),
            };
            moves.push((c.id, old, c.stored_len as i64));
            w.append(
                SealedChunk {
                    id: c.id,
                    bytes: resealed,
                    raw_len: c.raw_len,
                    encoding: c.encoding,
                },
                current.version,
            )
            .await?;
            report.chunks_moved += 1;
            if w.size() >= PACK_TARGET
                && let Some((w, moves)) = writer.take()
            {
                report.bytes_after += w.size();
                record(core, tenant, project, w, moves, &mut drained).await?;
            }
        }
        drained.push(old);
        report.packs_rewritten += 1;
    }
    if let Some((w, moves)) = writer.take() {
        report.bytes_after += w.size();
        record(core, tenant, project, w, moves, &mut drained).await?;
    }
    Ok(report)
}

/// The chunks of `pack` that the index still places there.
async fn live_chunks(core: &SnapshotCore, pack: Uuid) -> Result<Vec<Live>, StorageError> {
    let rows: Vec<(Vec<u8>, i64, i64, i64, i64, i64)> = with_pool!(core.db, |pool| {
        sqlx::query_as(
            "SELECT chunk_id, pack_offset, stored_len, raw_len, key_version, encoding \
             FROM chunks WHERE pack_id = $1 ORDER BY pack_offset",
        )
        .bind(pack)
        .fetch_all(pool)
        .await
        .map_err(CoreError::from)?
    });
    let bad = |what: &str| StorageError::Integrity(format!("a stored chunk's {what} is bad"));
    rows.into_iter()
        .map(|(id, offset, len, raw, version, encoding)| {
            Ok(Live {
                id: ChunkId::from_slice(&id)?,
                offset: u64::try_from(offset).map_err(|_| bad("offset"))?,
                stored_len: u64::try_from(len).map_err(|_| bad("length"))?,
                raw_len: u32::try_from(raw).map_err(|_| bad("plaintext length"))?,
                key_version: u32::try_from(version).map_err(|_| bad("key version"))?,
                encoding: Encoding::from_i64(encoding)?,
            })
        })
        .collect()
}

/// Closes the new pack and records it: chunk rows moved, stored bytes adjusted, drained old
/// packs dropped (their blobs deleted after the commit).
async fn record(
    core: &SnapshotCore,
    tenant: TenantId,
    project: ProjectId,
    writer: PackWriter,
    moves: Moves,
    drained: &mut Vec<Uuid>,
) -> Result<(), StorageError> {
    let pack = writer.close().await?;
    let now = to_micros(core.clock.now());
    let olds = std::mem::take(drained);
    let dropped: Vec<Uuid> = with_write_tx!(core.db, |tx| {
        tx.lock_tenant(tenant).await?;
        sqlx::query(
            "INSERT INTO packs (id, tenant_id, project_id, size, sha256, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(pack.id)
        .bind(tenant.as_uuid())
        .bind(project.as_uuid())
        .bind(pack.size as i64)
        .bind(&pack.sha256[..])
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(CoreError::from)?;
        let mut delta = 0i64;
        for (entry, (id, old, old_len)) in pack.entries.iter().zip(&moves) {
            let moved = sqlx::query(
                "UPDATE chunks SET pack_id = $3, pack_offset = $4, stored_len = $5, \
                 key_version = $6 WHERE project_id = $1 AND chunk_id = $2 AND pack_id = $7",
            )
            .bind(project.as_uuid())
            .bind(&id.as_bytes()[..])
            .bind(pack.id)
            .bind(entry.offset as i64)
            .bind(i64::from(entry.stored_len))
            .bind(i64::from(entry.key_version))
            .bind(*old)
            .execute(&mut *tx)
            .await
            .map_err(CoreError::from)?
            .rows_affected();
            if moved == 1 {
                delta += i64::from(entry.stored_len) - old_len;
            }
        }
        sqlx::query("UPDATE projects SET stored_bytes = stored_bytes + $2 WHERE id = $1")
            .bind(project.as_uuid())
            .bind(delta)
            .execute(&mut *tx)
            .await
            .map_err(CoreError::from)?;
        let mut dropped = Vec::new();
        for batch in olds.chunks(500) {
            let sql = format!(
                "DELETE FROM packs WHERE id IN ({}) \
                 AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.pack_id = packs.id) \
                 AND NOT EXISTS (SELECT 1 FROM pending_chunks p WHERE p.pack_id = packs.id) \
                 RETURNING id",
                ph_list(&core.db, 1, batch.len())
            );
            let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()));
            for id in batch {
                q = q.bind(*id);
            }
            let gone: Vec<Uuid> = q.fetch_all(&mut *tx).await.map_err(CoreError::from)?;
            dropped.extend(gone);
        }
        dropped
    });
    for old in dropped {
        // One left behind has no row: garbage collection removes it.
        let _ = core
            .blobs
            .delete_named(&pack_name(tenant, project, old))
            .await;
    }
    Ok(())
}
