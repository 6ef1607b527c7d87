//! Sealing a project's analysis payloads again under its current key (after a rotation):
//! each one streamed from its old blob into a new one, then switched over in one
//! transaction under the tenant's lock; the old blob is deleted after.

use super::payload::{self, Source, Target};
use crate::StorageError;
use crate::projects::SnapshotCore;
use ate_core::{CoreError, CoreTx, ProjectId, TenantId, with_pool, with_write_tx};
use uuid::Uuid;

/// A payload under an older key: result, name, blob, key version, size, stored bytes,
/// SHA-256.
type OldPayload = (Uuid, String, Uuid, i64, i64, i64, Vec<u8>);

/// Re-encrypts every payload of `project` sealed under an older key; returns how many.
pub(crate) async fn reencrypt_payloads(
    core: &SnapshotCore,
    tenant: TenantId,
    project: ProjectId,
) -> Result<u64, StorageError> {
    let current = core.keys.encryption_key(tenant, project).await?;
    let old: Vec<OldPayload> = with_pool!(core.db, |pool| {
        sqlx::query_as(
            "SELECT p.result_id, p.name, p.blob_id, p.key_version, p.size, p.stored_bytes, \
             p.sha256 FROM analysis_payloads p JOIN analysis_results r ON r.id = p.result_id \
             WHERE r.project_id = $1 AND p.key_version < $2",
        )
        .bind(project.as_uuid())
        .bind(i64::from(current.version))
        .fetch_all(pool)
        .await
        .map_err(CoreError::from)?
    });
    let mut done = 0;
    for (result, name, blob, version, size, stored, sha256) in old {
        let version = u32::try_from(version).map_err(|_| {
            StorageError::Integrity(format!("payload {name} has key version {version}"))
        })?;
        let old_key = core.keys.decryption_key(tenant, project, version).await?;
        let new_blob = Uuid::now_v7();
        let (mut from, mut to) = tokio::io::duplex(256 * 1024);
        let source = Source {
            blobs: &core.blobs,
            cipher: &core.cipher,
            name: payload::payload_name(tenant, project, blob),
            stored_bytes: stored.max(0) as u64,
            key: old_key.expose_secret(),
            context: payload::context(tenant, project, result, blob, version),
            size: size.max(0) as u64,
            sha256: &sha256,
        };
        let target = Target {
            blobs: &core.blobs,
            cipher: &core.cipher,
            dir: payload::payload_dir(tenant, project),
            blob: new_blob,
            key: current.expose_secret(),
            context: payload::context(tenant, project, result, new_blob, current.version),
            headroom: None,
        };
        let reading = async {
            let out = payload::read(source, &mut to).await;
            drop(to);
            out
        };
        let (read, written) = tokio::join!(reading, payload::write(target, &mut from));
        let written = match (read, written) {
            (Ok(()), Ok(w)) => w,
            (Err(e), Ok(_)) | (_, Err(e)) => {
                let _ = core
                    .blobs
                    .delete_named(&payload::payload_name(tenant, project, new_blob))
                    .await;
                return Err(e);
            }
        };
        let switched = with_write_tx!(core.db, |tx| {
            tx.lock_tenant(tenant).await?;
            sqlx::query(
                "UPDATE analysis_payloads SET blob_id = $3, key_version = $4, stored_bytes = $5 \
                 WHERE result_id = $1 AND name = $2 AND blob_id = $6",
            )
            .bind(result)
            .bind(&name)
            .bind(new_blob)
            .bind(i64::from(current.version))
            .bind(written.stored_bytes as i64)
            .bind(blob)
            .execute(&mut *tx)
            .await
            .map_err(CoreError::from)?
            .rows_affected()
        });
        // The one no row names any more (the new one if the payload went meanwhile).
        let unused = if switched == 1 { blob } else { new_blob };
        let _ = core
            .blobs
            .delete_named(&payload::payload_name(tenant, project, unused))
            .await;
        done += switched;
    }
    Ok(done)
}
