//! Whole-tenant backups: every project and every object of a tenant in one backup (see the
//! [module docs](super)).

use super::format::{
    self, MANIFEST, OBJECT, ObjectDoc, SealedWriter, TENANT, TENANT_END, TENANT_MAGIC,
    TenantManifest, parse, read_frame, truncated,
};
use super::sql::{bad_order, read_magic};
use super::{BACKUP_EXPORT, BACKUP_RESTORE, BackupSummary, RestoreReport, SqlBackupStore};
use crate::objects::{ObjectStore, PutOptions};
use crate::projects::{ProjectQuery, ProjectStore};
use crate::{ObjectInfo, StorageError};
use ate_core::keys::SecretKey;
use ate_core::{CoreError, Cursor, Principal, TenantId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

/// Objects listed per page while exporting.
const OBJECT_PAGE: u32 = 500;
/// Bytes of an object's content read from the backup at a time while restoring.
const PIECE: usize = 1 << 20;

/// What a tenant restore has made so far, removed again if it fails.
#[derive(Default)]
struct Made {
    report: RestoreReport,
    objects: Vec<String>,
}

impl SqlBackupStore {
    fn object_store(&self) -> Result<&ObjectStore, StorageError> {
        self.objects.as_ref().ok_or_else(|| {
            StorageError::from(CoreError::Unsupported(
                "a tenant backup holds the tenant's objects: open the backup store with \
                 SqlBackupStore::with_objects"
                    .into(),
            ))
        })
    }

    pub(super) async fn export_tenant_to(
        &self,
        actor: &Principal,
        tenant: TenantId,
        key: &SecretKey,
        out: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<BackupSummary, StorageError> {
        actor.require(tenant, &BACKUP_EXPORT)?;
        let objects = self.object_store()?;
        let mut projects = Vec::new();
        let mut q = ProjectQuery::new().limit(ate_core::page::MAX_PAGE_SIZE);
        loop {
            let page = self.projects.list(actor, tenant, &q).await?;
            projects.extend(page.items.into_iter().map(|p| (p.id, p.name.to_string())));
            match page.next_cursor {
                Some(c) => q = ProjectQuery::new().cursor(c),
                None => break,
            }
        }
        let listed = all_objects(objects, actor, tenant).await?;
        let manifest = TenantManifest {
            format: format::FORMAT,
            projects: projects.iter().map(|(_, name)| name.clone()).collect(),
            objects: listed.len() as u64,
        };
        let mut summary = BackupSummary::default();
        let mut w = SealedWriter::new(&self.cipher, key.expose_secret(), out)?;
        w.write(TENANT_MAGIC).await?;
        w.frame(TENANT, &manifest, 0).await?;
        for (id, _) in &projects {
            self.write_project(&mut w, actor, tenant, *id, &mut summary)
                .await?;
            summary.projects += 1;
        }
        for info in &listed {
            let doc = ObjectDoc {
                path: info.path.clone(),
                content_type: info.content_type.clone(),
                metadata: info.metadata.clone(),
                size: info.size,
                sha256: hex::encode(info.sha256),
            };
            w.frame(OBJECT, &doc, info.size).await?;
            let mut reader = objects
                .get(actor, tenant, &info.path)
                .await?
                .with_checksum();
            if reader.info().sha256 != info.sha256 {
                return Err(CoreError::Conflict(format!(
                    "object {} changed while the tenant was exported; export again",
                    info.path
                ))
                .into());
            }
            while let Some(chunk) = reader.next_chunk().await? {
                w.write(&chunk).await?;
            }
            reader.verify_checksum()?;
            summary.objects += 1;
            summary.object_bytes += info.size;
        }
        w.frame(TENANT_END, &serde_json::json!({}), 0).await?;
        summary.bytes = w.finish().await?;
        Ok(summary)
    }

    pub(super) async fn restore_tenant_from(
        &self,
        actor: &Principal,
        tenant: TenantId,
        key: &SecretKey,
        input: &mut (dyn AsyncRead + Unpin + Send),
    ) -> Result<RestoreReport, StorageError> {
        actor.require(tenant, &BACKUP_RESTORE)?;
        let objects = self.object_store()?;
        let (mut plain_r, plain_w) = tokio::io::duplex(256 * 1024);
        let mut made = Made::default();
        let decrypting = format::decrypt(&self.cipher, key.expose_secret(), input, plain_w);
        let restoring = async {
            let out = self
                .restore_tenant_frames(actor, tenant, objects, &mut plain_r, &mut made)
                .await;
            drop(plain_r);
            out
        };
        let (decrypted, restored) = tokio::join!(decrypting, restoring);
        // The decryption's verdict first: a damaged backup explains any restore error.
        let mut outcome = decrypted.and(restored);
        if outcome.is_ok() {
            outcome = self.audit_tenant_restore(actor, tenant, &made.report).await;
        }
        if let Err(e) = outcome {
            for project in &made.report.projects {
                let _ = self.projects.delete(actor, tenant, *project, None).await;
            }
            for path in &made.objects {
                let _ = objects.delete(actor, tenant, path).await;
            }
            return Err(e);
        }
        Ok(made.report)
    }

    async fn restore_tenant_frames(
        &self,
        actor: &Principal,
        tenant: TenantId,
        objects: &ObjectStore,
        r: &mut tokio::io::DuplexStream,
        made: &mut Made,
    ) -> Result<(), StorageError> {
        read_magic(r, TENANT_MAGIC).await?;
        let (kind, header, body) = read_frame(r).await?;
        if kind != TENANT || body != 0 {
            return Err(StorageError::invalid(
                "backup",
                "it does not start with a tenant manifest",
            ));
        }
        let manifest: TenantManifest = parse("tenant backup manifest", &header)?;
        if manifest.format != format::FORMAT {
            return Err(StorageError::invalid(
                "backup",
                format!("format {} is not supported", manifest.format),
            ));
        }
        // Names the tenant uses are refused before anything is written.
        for name in &manifest.projects {
            match self.projects.get_by_name(actor, tenant, name).await {
                Ok(_) => {
                    return Err(CoreError::AlreadyExists {
                        what: "project",
                        key: name.clone(),
                    }
                    .into());
                }
                Err(e) if ate_core::Classify::kind(&e) == ate_core::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        loop {
            let (kind, header, body) = read_frame(r).await?;
            match kind {
                MANIFEST if body == 0 => {
                    let mut one = RestoreReport::default();
                    let out = self
                        .restore_project_frames(actor, tenant, r, &header, None, &mut one)
                        .await;
                    let report = &mut made.report;
                    report.projects.extend(one.project);
                    report.snapshots += one.snapshots;
                    report.files += one.files;
                    report.analysis_results += one.analysis_results;
                    report.payloads += one.payloads;
                    out?;
                }
                OBJECT => {
                    let doc: ObjectDoc = parse("backup object frame", &header)?;
                    if doc.size != body {
                        return Err(bad_order());
                    }
                    let info = restore_object(objects, actor, tenant, &doc, r, made).await?;
                    if hex::encode(info.sha256) != doc.sha256 {
                        return Err(StorageError::Integrity(format!(
                            "object {} does not match the backup's checksum",
                            doc.path
                        )));
                    }
                    made.report.objects += 1;
                }
                TENANT_END => {
                    let want = (manifest.projects.len(), manifest.objects);
                    let got = (made.report.projects.len(), made.report.objects);
                    if want != got {
                        return Err(StorageError::Integrity(format!(
                            "the backup holds {} of its {} projects and {} of its {} objects",
                            got.0, want.0, got.1, want.1
                        )));
                    }
                    return Ok(());
                }
                other => {
                    return Err(StorageError::invalid(
                        "backup",
                        format!("unexpected frame kind {other:#04x} in a tenant backup"),
                    ));
                }
            }
        }
    }

    async fn audit_tenant_restore(
        &self,
        actor: &Principal,
        tenant: TenantId,
        report: &RestoreReport,
    ) -> Result<(), StorageError> {
        let metadata = serde_json::json!({
            "projects": report.projects.len(),
            "snapshots": report.snapshots,
            "files": report.files,
            "analysis_results": report.analysis_results,
            "payloads": report.payloads,
            "objects": report.objects,
        });
        self.audit_restored(actor, tenant, format!("tenant:{tenant}"), metadata)
            .await
    }
}

/// Every object of the tenant, by path.
async fn all_objects(
    objects: &ObjectStore,
    actor: &Principal,
    tenant: TenantId,
) -> Result<Vec<ObjectInfo>, StorageError> {
    let mut all = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = objects
            .list(actor, tenant, "", Some(OBJECT_PAGE), cursor)
            .await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(all),
        }
    }
}

/// Writes one object from the backup; refuses a path the tenant already holds.
async fn restore_object(
    objects: &ObjectStore,
    actor: &Principal,
    tenant: TenantId,
    doc: &ObjectDoc,
    r: &mut tokio::io::DuplexStream,
    made: &mut Made,
) -> Result<ObjectInfo, StorageError> {
    match objects.stat(actor, tenant, &doc.path).await {
        Ok(_) => {
            return Err(CoreError::AlreadyExists {
                what: "object",
                key: doc.path.clone(),
            }
            .into());
        }
        Err(e) if ate_core::Classify::kind(&e) == ate_core::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let options = PutOptions::default()
        .content_type(doc.content_type.clone())
        .metadata(doc.metadata.clone());
    let mut writer = objects.writer(actor, tenant, &doc.path, options).await?;
    let mut left = doc.size;
    while left > 0 {
        let mut piece = vec![0u8; PIECE.min(usize::try_from(left).unwrap_or(PIECE))];
        r.read_exact(&mut piece).await.map_err(truncated)?;
        left -= piece.len() as u64;
        writer.write_owned(piece).await?;
    }
    let info = writer.commit().await?;
    made.objects.push(doc.path.clone());
    Ok(info)
}
