//! Reading chunks back: where they are, then the pack ranges, opened and checked.

use super::pack::pack_name;
use super::{ChunkId, ChunkRef, DedupKey, Encoding, open_chunk};
use crate::StorageError;
use crate::projects::SnapshotCore;
use crate::sql::{ph, ph_list};
use ate_core::{Classify, CoreError, ErrorKind, ProjectId, TenantId, with_pool};
use std::collections::HashMap;
use uuid::Uuid;
use zeroize::Zeroizing;

/// Where a committed chunk is.
#[derive(Debug, Clone, Copy)]
struct ChunkLoc {
    pack: Uuid,
    offset: u64,
    stored_len: u64,
    raw_len: u32,
    key_version: u32,
    encoding: Encoding,
}

type LocRow = (Vec<u8>, Uuid, i64, i64, i64, i64, i64);

fn loc_of(row: &LocRow) -> Result<(ChunkId, ChunkLoc), StorageError> {
    let bad =
        |what: &str| StorageError::Integrity(format!("a stored chunk's {what} is out of range"));
    Ok((
        ChunkId::from_slice(&row.0)?,
        ChunkLoc {
            pack: row.1,
            offset: u64::try_from(row.2).map_err(|_| bad("offset"))?,
            stored_len: u64::try_from(row.3).map_err(|_| bad("length"))?,
            raw_len: u32::try_from(row.4).map_err(|_| bad("plaintext length"))?,
            key_version: u32::try_from(row.5).map_err(|_| bad("key version"))?,
            encoding: Encoding::from_i64(row.6)?,
        },
    ))
}

async fn locate(
    core: &SnapshotCore,
    project: ProjectId,
    ids: &[ChunkId],
) -> Result<HashMap<ChunkId, ChunkLoc>, StorageError> {
    let mut out = HashMap::with_capacity(ids.len());
    for batch in ids.chunks(500) {
        let sql = format!(
            "SELECT chunk_id, pack_id, pack_offset, stored_len, raw_len, key_version, encoding \
             FROM chunks WHERE project_id = {} AND chunk_id IN ({})",
            ph(&core.db, 1),
            ph_list(&core.db, 2, batch.len())
        );
        let rows: Vec<LocRow> = with_pool!(core.db, |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(project.as_uuid());
            for id in batch {
                q = q.bind(&id.as_bytes()[..]);
            }
            q.fetch_all(pool).await.map_err(CoreError::from)?
        });
        for row in &rows {
            let (id, loc) = loc_of(row)?;
            out.insert(id, loc);
        }
    }
    Ok(out)
}

/// Reads and opens the chunks `refs` name, in order (a chunk named twice is read once).
pub(crate) async fn read_chunks(
    core: &SnapshotCore,
    tenant: TenantId,
    project: ProjectId,
    refs: &[ChunkRef],
) -> Result<Vec<Vec<u8>>, StorageError> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<ChunkId> = refs.iter().map(|r| r.id).collect();
    ids.sort();
    ids.dedup();
    let locs = locate(core, project, &ids).await?;
    let dedup: DedupKey = core.keys.dedup_key(tenant).await?;
    let mut keys: HashMap<u32, Zeroizing<[u8; 32]>> = HashMap::new();
    // Where each chunk was first put in `out`: a chunk named again is copied from there.
    let mut first_at: HashMap<ChunkId, usize> = HashMap::new();
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(refs.len());
    for r in refs {
        if let Some(&at) = first_at.get(&r.id) {
            let again = out[at].clone();
            out.push(again);
            continue;
        }
        let loc = locs.get(&r.id).ok_or_else(|| {
            StorageError::Integrity(format!(
                "chunk {:?} of project {project} is missing from the chunk index",
                r.id
            ))
        })?;
        if loc.raw_len != r.len {
            return Err(StorageError::Integrity(format!(
                "chunk {:?} is {} bytes in the index and {} in the file's list",
                r.id, loc.raw_len, r.len
            )));
        }
        let (loc, sealed) = match read_sealed(core, tenant, project, loc).await {
            Ok(sealed) => (*loc, sealed),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // A repack moved the chunk meanwhile (and deleted its old pack): read it
                // where it is now.
                let moved = locate(core, project, &[r.id]).await?;
                match moved.get(&r.id) {
                    Some(now) if now.pack != loc.pack => {
                        (*now, read_sealed(core, tenant, project, now).await?)
                    }
                    _ => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        if let std::collections::hash_map::Entry::Vacant(slot) = keys.entry(loc.key_version) {
            let key = core
                .keys
                .decryption_key(tenant, project, loc.key_version)
                .await?;
            slot.insert(Zeroizing::new(*key.expose_secret()));
        }
        let key = keys.get(&loc.key_version).ok_or_else(|| {
            StorageError::Integrity("a project key went missing while reading".into())
        })?;
        let raw = open_chunk(
            &core.cipher,
            key,
            &dedup,
            tenant,
            project,
            r.id,
            &sealed,
            loc.encoding,
            loc.raw_len,
        )?;
        first_at.insert(r.id, out.len());
        out.push(raw);
    }
    Ok(out)
}

/// The sealed bytes of the chunk at `loc`.
async fn read_sealed(
    core: &SnapshotCore,
    tenant: TenantId,
    project: ProjectId,
    loc: &ChunkLoc,
) -> Result<Vec<u8>, StorageError> {
    core.blobs
        .read_named(
            &pack_name(tenant, project, loc.pack),
            loc.offset..loc.offset + loc.stored_len,
        )
        .await
}

/// Bytes `start..end` of a file of `size` bytes whose encoded chunk list is `chunks`:
/// only the chunks the range covers are read.
pub(crate) async fn read_range(
    core: &SnapshotCore,
    tenant: TenantId,
    project: ProjectId,
    chunks: &[u8],
    size: u64,
    start: u64,
    end: u64,
) -> Result<Vec<u8>, StorageError> {
    let refs = super::decode_refs(chunks)?;
    let mut wanted = Vec::new();
    let mut first_offset = None;
    let mut offset = 0u64;
    for r in refs {
        let next = offset + u64::from(r.len);
        if next > start && offset < end {
            first_offset.get_or_insert(offset);
            wanted.push(r);
        }
        offset = next;
    }
    if offset != size {
        return Err(StorageError::Integrity(format!(
            "a file's chunks add up to {offset} bytes, not its {size}"
        )));
    }
    let parts = read_chunks(core, tenant, project, &wanted).await?;
    let mut out = Vec::with_capacity((end - start) as usize);
    let mut at = first_offset.unwrap_or(start);
    for part in parts {
        let from = start.saturating_sub(at).min(part.len() as u64) as usize;
        let to = end.saturating_sub(at).min(part.len() as u64) as usize;
        out.extend_from_slice(&part[from..to]);
        at += part.len() as u64;
    }
    Ok(out)
}
