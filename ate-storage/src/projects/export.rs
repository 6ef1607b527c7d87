//! Exporting a snapshot as a tar stream.

use super::SnapshotCore;
use super::snapshots::Snapshot;
use crate::StorageError;
use crate::dedup::read::read_range;
use ate_core::{CoreError, with_pool};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Rows read per query while exporting.
const ROWS: i64 = 500;
/// Bytes read per request while exporting a file.
const WINDOW: u64 = 4 << 20;

type ExportRow = (String, String, i64, i64, Option<String>, Vec<u8>);

/// The header bytes of one entry (GNU long-name blocks included), as the `tar` crate writes
/// them; the content and its padding follow.
fn header_bytes(
    path: &str,
    size: u64,
    mode: u32,
    mtime: u64,
    link: Option<&str>,
) -> Result<Vec<u8>, StorageError> {
    let mut header = tar::Header::new_gnu();
    header.set_mode(mode);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    let mut builder = tar::Builder::new(Vec::new());
    match link {
        Some(target) => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, path, target)?;
        }
        None => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(size);
            // No data here: only the header (and long-name blocks) is written.
            builder.append_data(&mut header, path, std::io::empty())?;
        }
    }
    // Taken before the builder's end-of-archive blocks are written into it on drop.
    Ok(std::mem::take(builder.get_mut()))
}

/// Writes `snapshot` to `out` as a tar stream; returns the bytes written.
pub(crate) async fn write_tar(
    core: &SnapshotCore,
    snapshot: &Snapshot,
    out: &mut (dyn AsyncWrite + Send + Unpin),
) -> Result<u64, StorageError> {
    let mtime = snapshot.committed_at.timestamp().max(0) as u64;
    let mut written = 0u64;
    let mut after = String::new();
    loop {
        let rows: Vec<ExportRow> = with_pool!(core.db, |pool| {
            sqlx::query_as(
                "SELECT path, kind, size, mode, link_target, chunks FROM snapshot_files \
                 WHERE snapshot_id = $1 AND path > $2 ORDER BY path LIMIT $3",
            )
            .bind(snapshot.id.as_uuid())
            .bind(&after)
            .bind(ROWS)
            .fetch_all(pool)
            .await
            .map_err(CoreError::from)?
        });
        let Some(last) = rows.last() else { break };
        after = last.0.clone();
        for (path, kind, size, mode, link, chunks) in rows {
            let size = size.max(0) as u64;
            let mode = mode.clamp(0, 0o7777) as u32;
            let link = if kind == "symlink" { link } else { None };
            let header = header_bytes(&path, size, mode, mtime, link.as_deref())?;
            out.write_all(&header).await?;
            written += header.len() as u64;
            if link.is_some() {
                continue;
            }
            let mut at = 0;
            while at < size {
                let end = (at + WINDOW).min(size);
                let bytes = read_range(
                    core,
                    snapshot.tenant,
                    snapshot.project,
                    &chunks,
                    size,
                    at,
                    end,
                )
                .await?;
                out.write_all(&bytes).await?;
                at = end;
            }
            let pad = (512 - size % 512) % 512;
            out.write_all(&vec![0u8; pad as usize]).await?;
            written += size + pad;
        }
    }
    out.write_all(&[0u8; 1024]).await?;
    out.flush().await?;
    Ok(written + 1024)
}
