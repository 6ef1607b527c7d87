//! [`SqlBackupStore`]: exports through the snapshot and analysis stores, restores through
//! them (imports, results) in the destination.

use super::format::{
    self, END, FILE, FORMAT, FileDoc, MAGIC, MANIFEST, Manifest, PAYLOAD, PayloadDoc,
    PayloadFrameDoc, ProjectDoc, ResultDoc, SealedWriter, SnapshotDoc, TENANT_MAGIC, parse,
    read_frame, truncated,
};
use super::{
    BACKUP_EXPORT, BACKUP_RESTORE, BackupStore, BackupSummary, RestoreOptions, RestoreReport,
};
use crate::StorageError;
use crate::analysis::{
    AnalysisQuery, AnalysisSpec, AnalysisStatus, AnalysisStore, AnalysisUpdate, SqlAnalysisStore,
};
use crate::blob::BlobStore;
use crate::import::{ImportOptions, Importer};
use crate::projects::{
    FileKind, FileQuery, ProjectKeyring, ProjectSpec, ProjectStore, SnapshotQuery, SnapshotStore,
    SqlProjectStore, SqlSnapshotStore,
};
use ate_core::audit::{NewAuditEvent, Outcome, actions};
use ate_core::keys::SecretKey;
use ate_core::{Clock, CoreTx, Db, Principal, ProjectId, TenantId, with_write_tx};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

/// Bytes read from a file per request while exporting.
const WINDOW: u64 = 4 << 20;

/// Backups of the projects in a [`Db`] and [`BlobStore`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqlBackupStore {
    pub(super) db: Db,
    pub(super) projects: SqlProjectStore,
    snapshots: SqlSnapshotStore,
    analysis: SqlAnalysisStore,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) cipher: crate::Cobblestone,
    /// The object store whose objects tenant backups hold.
    pub(super) objects: Option<crate::ObjectStore>,
}

impl SqlBackupStore {
    /// Backups of the projects in `db` (running `ate-storage`'s migrations), their
    /// contents in `blobs` under the keys of `keys`.
    pub async fn open(
        db: Db,
        blobs: BlobStore,
        keys: ProjectKeyring,
    ) -> Result<Self, StorageError> {
        Ok(SqlBackupStore {
            projects: SqlProjectStore::open(db.clone()).await?,
            snapshots: SqlSnapshotStore::open(db.clone(), blobs.clone(), keys.clone()).await?,
            analysis: SqlAnalysisStore::open(db.clone(), blobs, keys).await?,
            db,
            clock: Arc::new(ate_core::SystemClock),
            cipher: crate::Cobblestone::default(),
            objects: None,
        })
    }

    /// Includes `objects` (the tenant's object store) in tenant backups and restores;
    /// [`BackupStore::export_tenant`] and [`BackupStore::restore_tenant`] need it.
    pub fn with_objects(mut self, objects: crate::ObjectStore) -> Self {
        self.objects = Some(objects);
        self
    }

    /// Uses `clock` for the times it records.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        SqlBackupStore {
            projects: self.projects.with_clock(clock.clone()),
            snapshots: self.snapshots.with_clock(clock.clone()),
            analysis: self.analysis.with_clock(clock.clone()),
            db: self.db,
            cipher: self.cipher,
            objects: self.objects.map(|o| o.with_clock(clock.clone())),
            clock,
        }
    }

    /// Reads the frames after the magic and restores them; returns the report (the project
    /// is set as soon as it exists, so a failure can remove it).
    async fn restore_frames(
        &self,
        actor: &Principal,
        tenant: TenantId,
        r: &mut tokio::io::DuplexStream,
        options: &RestoreOptions,
        report: &mut RestoreReport,
    ) -> Result<(), StorageError> {
        read_magic(r, MAGIC).await?;
        let (kind, header, body) = read_frame(r).await?;
        if kind != MANIFEST || body != 0 {
            return Err(StorageError::invalid(
                "backup",
                "it does not start with a manifest",
            ));
        }
        self.restore_project_frames(actor, tenant, r, &header, options.name.clone(), report)
            .await
    }

    /// Restores one project from its manifest (`header`, already read) and the frames that
    /// follow it, up to its end frame.
    pub(super) async fn restore_project_frames(
        &self,
        actor: &Principal,
        tenant: TenantId,
        r: &mut tokio::io::DuplexStream,
        header: &[u8],
        name: Option<String>,
        report: &mut RestoreReport,
    ) -> Result<(), StorageError> {
        let manifest: Manifest = parse("backup manifest", header)?;
        if manifest.format != FORMAT {
            return Err(StorageError::invalid(
                "backup",
                format!(
                    "format {} is not supported (this build reads {FORMAT})",
                    manifest.format
                ),
            ));
        }
        let doc = &manifest.project;
        let spec = ProjectSpec::new(name.unwrap_or_else(|| doc.name.clone()))
            .description(doc.description.clone())
            .settings(doc.settings.clone());
        let spec = doc
            .labels
            .iter()
            .fold(spec, |s, (k, v)| s.label(k.clone(), v.clone()));
        let project = self.projects.create(actor, tenant, &spec).await?.id;
        report.project = Some(project);
        let mut snapshot_ids = Vec::new();
        let mut importer: Option<(usize, Importer)> = None;
        let mut results: Option<Vec<ate_core::AnalysisId>> = None;
        loop {
            let (kind, header, body) = read_frame(r).await?;
            if kind != FILE
                && let Some((_, imp)) = importer.take()
            {
                snapshot_ids.push(imp.commit().await?.id);
            }
            match kind {
                FILE => {
                    let file: FileDoc = parse("backup file frame", &header)?;
                    if importer.as_ref().map(|(i, _)| *i) != Some(file.snapshot) {
                        if let Some((_, imp)) = importer.take() {
                            snapshot_ids.push(imp.commit().await?.id);
                        }
                        if file.snapshot < snapshot_ids.len()
                            || file.snapshot >= manifest.snapshots.len()
                        {
                            return Err(bad_order());
                        }
                        // Snapshots without files in between.
                        self.fill_snapshots(
                            actor,
                            tenant,
                            project,
                            &manifest,
                            &mut snapshot_ids,
                            file.snapshot,
                        )
                        .await?;
                        let imp = self
                            .begin(actor, tenant, project, &manifest.snapshots[file.snapshot])
                            .await?;
                        importer = Some((file.snapshot, imp));
                    }
                    let Some((_, imp)) = importer.as_mut() else {
                        return Err(bad_order());
                    };
                    match &file.link {
                        Some(target) => {
                            imp.add_symlink(&file.path, target).await?;
                        }
                        None => {
                            let mut content = (&mut *r).take(body);
                            imp.add_file(&file.path, file.mode, &mut content).await?;
                            if content.limit() != 0 {
                                return Err(StorageError::Integrity(format!(
                                    "the backup ends inside {}",
                                    file.path
                                )));
                            }
                        }
                    }
                    report.files += 1;
                }
                PAYLOAD => {
                    self.snapshots_then_results(
                        actor,
                        tenant,
                        project,
                        &manifest,
                        &mut snapshot_ids,
                        &mut results,
                    )
                    .await?;
                    let frame: PayloadFrameDoc = parse("backup payload frame", &header)?;
                    let (Some(id), Some(doc)) = (
                        results.as_deref().unwrap_or(&[]).get(frame.result),
                        manifest
                            .analysis
                            .get(frame.result)
                            .and_then(|r| r.payloads.iter().find(|p| p.name == frame.name)),
                    ) else {
                        return Err(bad_order());
                    };
                    let mut content = (&mut *r).take(body);
                    let put = self
                        .analysis
                        .put_payload(
                            actor,
                            tenant,
                            *id,
                            &doc.name,
                            &doc.content_type,
                            &mut content,
                        )
                        .await?;
                    if put.sha256 != doc.sha256 || put.size != doc.size {
                        return Err(StorageError::Integrity(format!(
                            "payload {} does not match the backup's manifest",
                            doc.name
                        )));
                    }
                    report.payloads += 1;
                }
                END => {
                    self.snapshots_then_results(
                        actor,
                        tenant,
                        project,
                        &manifest,
                        &mut snapshot_ids,
                        &mut results,
                    )
                    .await?;
                    if snapshot_ids.len() != manifest.snapshots.len() {
                        return Err(StorageError::Integrity(format!(
                            "the backup holds {} of its {} snapshots",
                            snapshot_ids.len(),
                            manifest.snapshots.len()
                        )));
                    }
                    let results = results.unwrap_or_default();
                    for (id, doc) in results.iter().zip(&manifest.analysis) {
                        let mut update = AnalysisUpdate::new().summary(doc.summary.clone());
                        update = match (&doc.error, doc.status) {
                            (Some(e), AnalysisStatus::Failed) => update.failed(e.clone()),
                            (_, status) => update.status(status),
                        };
                        self.analysis.update(actor, tenant, *id, &update).await?;
                    }
                    report.snapshots = snapshot_ids.len() as u64;
                    report.analysis_results = results.len() as u64;
                    return Ok(());
                }
                other => {
                    return Err(StorageError::invalid(
                        "backup",
                        format!("unknown frame kind {other:#04x}"),
                    ));
                }
            }
        }
    }

    /// Writes project `project` as a manifest frame, its file and payload frames and an end
    /// frame, adding what it wrote to `summary`.
    pub(super) async fn write_project(
        &self,
        w: &mut SealedWriter<'_>,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        summary: &mut BackupSummary,
    ) -> Result<(), StorageError> {
        let p = self.projects.get(actor, tenant, project).await?;
        let mut snapshots = Vec::new();
        let mut q = SnapshotQuery::new();
        loop {
            let page = self.snapshots.list(actor, tenant, project, &q).await?;
            snapshots.extend(page.items);
            match page.next_cursor {
                Some(c) => q = SnapshotQuery::new().cursor(c),
                None => break,
            }
        }
        snapshots.sort_by_key(|s| (s.committed_at, s.id));
        let mut results = Vec::new();
        let mut q = AnalysisQuery::new();
        loop {
            let page = self.analysis.list(actor, tenant, project, &q).await?;
            results.extend(page.items);
            match page.next_cursor {
                Some(c) => q = AnalysisQuery::new().cursor(c),
                None => break,
            }
        }
        results.reverse(); // oldest first
        let manifest = Manifest {
            format: FORMAT,
            project: ProjectDoc {
                name: p.name.to_string(),
                description: p.description.clone(),
                labels: p.labels.clone(),
                settings: p.settings.clone(),
            },
            snapshots: snapshots
                .iter()
                .map(|s| SnapshotDoc {
                    label: s.label.clone(),
                    source: s.source.clone(),
                    files: s.files,
                    logical_bytes: s.logical_bytes,
                })
                .collect(),
            analysis: results
                .iter()
                .map(|r| ResultDoc {
                    snapshot: r
                        .snapshot
                        .and_then(|id| snapshots.iter().position(|s| s.id == id)),
                    kind: r.kind.clone(),
                    analyzer: r.analyzer.clone(),
                    analyzer_version: r.analyzer_version.clone(),
                    status: r.status,
                    summary: r.summary.clone(),
                    error: r.error.clone(),
                    payloads: r
                        .payloads
                        .iter()
                        .map(|p| PayloadDoc {
                            name: p.name.clone(),
                            content_type: p.content_type.clone(),
                            size: p.size,
                            sha256: p.sha256.clone(),
                        })
                        .collect(),
                })
                .collect(),
        };
        summary.snapshots += snapshots.len() as u64;
        summary.analysis_results += results.len() as u64;
        w.frame(MANIFEST, &manifest, 0).await?;
        for (index, s) in snapshots.iter().enumerate() {
            let mut q = FileQuery::new();
            loop {
                let page = self.snapshots.list_files(actor, tenant, s.id, &q).await?;
                for f in &page.items {
                    let link = match f.kind {
                        FileKind::Symlink => f.link_target.clone(),
                        _ => None,
                    };
                    let doc = FileDoc {
                        snapshot: index,
                        path: f.path.clone(),
                        mode: f.mode,
                        link: link.clone(),
                    };
                    let size = if link.is_some() { 0 } else { f.size };
                    w.frame(FILE, &doc, size).await?;
                    let mut at = 0;
                    while at < size {
                        let end = (at + WINDOW).min(size);
                        let bytes = self
                            .snapshots
                            .read_file(actor, tenant, s.id, &f.path, Some(at..end))
                            .await?;
                        w.write(&bytes).await?;
                        at = end;
                    }
                    summary.files += 1;
                }
                match page.next_cursor {
                    Some(c) => q = FileQuery::new().cursor(c),
                    None => break,
                }
            }
        }
        for (index, r) in results.iter().enumerate() {
            for p in &r.payloads {
                let frame = PayloadFrameDoc {
                    result: index,
                    name: p.name.clone(),
                };
                w.frame(PAYLOAD, &frame, p.size).await?;
                let (mut from, mut to) = tokio::io::duplex(256 * 1024);
                let reading = async {
                    let out = self
                        .analysis
                        .read_payload(actor, tenant, r.id, &p.name, &mut to)
                        .await;
                    drop(to);
                    out
                };
                let copying = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut copied = 0u64;
                    loop {
                        let n = from.read(&mut buf).await?;
                        if n == 0 {
                            return Ok::<u64, StorageError>(copied);
                        }
                        w.write(&buf[..n]).await?;
                        copied += n as u64;
                    }
                };
                let (read, copied) = tokio::join!(reading, copying);
                read?;
                if copied? != p.size {
                    return Err(StorageError::Integrity(format!(
                        "payload {} changed while it was exported",
                        p.name
                    )));
                }
                summary.payloads += 1;
            }
        }
        w.frame(END, &serde_json::json!({}), 0).await?;
        Ok(())
    }

    /// Starts the import of snapshot `doc`.
    async fn begin(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        doc: &SnapshotDoc,
    ) -> Result<Importer, StorageError> {
        let options = ImportOptions::new()
            .label(doc.label.clone())
            .source(doc.source.clone());
        self.snapshots
            .begin_import(actor, tenant, project, options)
            .await
    }

    /// Restores the manifest's snapshots before index `upto` that have no file (and so no
    /// frame) as empty snapshots.
    async fn fill_snapshots(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        manifest: &Manifest,
        ids: &mut Vec<ate_core::SnapshotId>,
        upto: usize,
    ) -> Result<(), StorageError> {
        while ids.len() < upto {
            let doc = &manifest.snapshots[ids.len()];
            let imp = self.begin(actor, tenant, project, doc).await?;
            ids.push(imp.commit().await?.id);
        }
        Ok(())
    }

    /// Before a project's payloads or its end: restores the snapshots not restored yet
    /// (those without files), then records its results once.
    #[allow(clippy::too_many_arguments)]
    async fn snapshots_then_results(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        manifest: &Manifest,
        snapshot_ids: &mut Vec<ate_core::SnapshotId>,
        results: &mut Option<Vec<ate_core::AnalysisId>>,
    ) -> Result<(), StorageError> {
        let all = manifest.snapshots.len();
        self.fill_snapshots(actor, tenant, project, manifest, snapshot_ids, all)
            .await?;
        if results.is_none() {
            *results = Some(
                self.create_results(actor, tenant, project, manifest, snapshot_ids)
                    .await?,
            );
        }
        Ok(())
    }

    /// Records the manifest's results as pending (payloads are added next, the final status
    /// last).
    async fn create_results(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        manifest: &Manifest,
        snapshots: &[ate_core::SnapshotId],
    ) -> Result<Vec<ate_core::AnalysisId>, StorageError> {
        let mut ids = Vec::with_capacity(manifest.analysis.len());
        for doc in &manifest.analysis {
            let mut spec = AnalysisSpec::new(&doc.kind, &doc.analyzer, &doc.analyzer_version);
            if let Some(i) = doc.snapshot {
                spec = spec.snapshot(*snapshots.get(i).ok_or_else(bad_order)?);
            }
            ids.push(
                self.analysis
                    .create(actor, tenant, project, &spec)
                    .await?
                    .id,
            );
        }
        Ok(ids)
    }
}

/// Reads the plaintext's first bytes and checks them against `magic`.
pub(super) async fn read_magic(
    r: &mut tokio::io::DuplexStream,
    magic: &[u8; 8],
) -> Result<(), StorageError> {
    let mut got = [0u8; 8];
    r.read_exact(&mut got).await.map_err(truncated)?;
    if &got == magic {
        return Ok(());
    }
    let what = match &got {
        m if m == MAGIC => "a project backup (restore it with restore_project)",
        m if m == TENANT_MAGIC => "a tenant backup (restore it with restore_tenant)",
        _ => "not an ATE backup of a known format",
    };
    Err(StorageError::invalid("backup", format!("this is {what}")))
}

pub(super) fn bad_order() -> StorageError {
    StorageError::invalid(
        "backup",
        "its frames are out of order or name unknown entries",
    )
}

#[async_trait::async_trait]
impl BackupStore for SqlBackupStore {
    async fn export_project(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        key: &SecretKey,
        out: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<BackupSummary, StorageError> {
        actor.require(tenant, &BACKUP_EXPORT)?;
        let mut summary = BackupSummary::default();
        let mut w = SealedWriter::new(&self.cipher, key.expose_secret(), out)?;
        w.write(MAGIC).await?;
        self.write_project(&mut w, actor, tenant, project, &mut summary)
            .await?;
        summary.projects = 1;
        summary.bytes = w.finish().await?;
        Ok(summary)
    }

    async fn restore_project(
        &self,
        actor: &Principal,
        tenant: TenantId,
        key: &SecretKey,
        input: &mut (dyn AsyncRead + Unpin + Send),
        options: &RestoreOptions,
    ) -> Result<RestoreReport, StorageError> {
        actor.require(tenant, &BACKUP_RESTORE)?;
        let (mut plain_r, plain_w) = tokio::io::duplex(256 * 1024);
        let mut report = RestoreReport::default();
        let decrypting = format::decrypt(&self.cipher, key.expose_secret(), input, plain_w);
        let restoring = async {
            let out = self
                .restore_frames(actor, tenant, &mut plain_r, options, &mut report)
                .await;
            drop(plain_r);
            out
        };
        let (decrypted, restored) = tokio::join!(decrypting, restoring);
        // The decryption's verdict first: a damaged backup explains any restore error.
        let outcome = decrypted.and(restored);
        let outcome = match outcome {
            Ok(()) => self.audit_restore(actor, tenant, &report).await,
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            if let Some(project) = report.project {
                let _ = self.projects.delete(actor, tenant, project, None).await;
            }
            return Err(e);
        }
        Ok(report)
    }

    async fn export_tenant(
        &self,
        actor: &Principal,
        tenant: TenantId,
        key: &SecretKey,
        out: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<BackupSummary, StorageError> {
        self.export_tenant_to(actor, tenant, key, out).await
    }

    async fn restore_tenant(
        &self,
        actor: &Principal,
        tenant: TenantId,
        key: &SecretKey,
        input: &mut (dyn AsyncRead + Unpin + Send),
    ) -> Result<RestoreReport, StorageError> {
        self.restore_tenant_from(actor, tenant, key, input).await
    }
}

impl SqlBackupStore {
    async fn audit_restore(
        &self,
        actor: &Principal,
        tenant: TenantId,
        report: &RestoreReport,
    ) -> Result<(), StorageError> {
        let project = report
            .project
            .ok_or_else(|| StorageError::invalid("backup", "nothing was restored"))?;
        let metadata = serde_json::json!({
            "snapshots": report.snapshots,
            "files": report.files,
            "analysis_results": report.analysis_results,
            "payloads": report.payloads,
        });
        self.audit_restored(actor, tenant, format!("project:{project}"), metadata)
            .await
    }

    /// Appends `backup_restored` for `target` to the tenant's audit log.
    pub(super) async fn audit_restored(
        &self,
        actor: &Principal,
        tenant: TenantId,
        target: String,
        metadata: serde_json::Value,
    ) -> Result<(), StorageError> {
        let now = self.clock.now();
        let event = NewAuditEvent::new(
            tenant,
            actor.subject(),
            actions::BACKUP_RESTORED,
            Outcome::Success,
        )
        .target(target)
        .metadata(metadata)
        .validate()?;
        with_write_tx!(self.db, |tx| {
            tx.lock_tenant(tenant).await?;
            tx.append_audit(&event, now).await?;
        });
        Ok(())
    }
}
