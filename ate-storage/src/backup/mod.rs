//! Backups: a project exported into a portable, encrypted, integrity-checked stream under a
//! key the operator supplies, and restored into any ATE database and blob store (another
//! master key, another tenant).
//!
//! **Format** (version 1). One Cobblestone-256 message under the operator's key, bound to
//! the context `ate.backup.v1`, so every 16 KiB is authenticated as it is read and a
//! truncated, extended or altered backup fails with `Integrity`. Its plaintext is
//! `ATEBKP1\n` followed by frames: a kind byte, a big-endian `u32` length and that many
//! bytes of JSON header, a big-endian `u64` length and that many bytes of body. The first
//! frame is the manifest (the project's name, description, labels and settings, its
//! snapshots in commit order, its analysis results); then one frame per file of each
//! snapshot (header: snapshot index, path, mode, link target; body: the content), one per
//! analysis payload, and an end frame. Contents are read through the snapshot store, so
//! every chunk is checked against its id on the way out.
//!
//! **Restore** creates the project (under its own name or one given), imports each
//! snapshot through an [`Importer`](crate::import::Importer) (so it is classified,
//! deduplicated and sealed under the destination's keys), records the analysis results
//! with their payloads and final status, and audits `backup_restored`. It is all or
//! nothing: on any error, including an integrity failure found at the very end, the new
//! project is deleted. Snapshot and result ids and times are new; contents, paths, modes,
//! labels, summaries and payloads are identical (SHA-256 for SHA-256).
//!
//! Memory stays bounded by a few pieces whatever the project's size.
//!
//! **Whole tenants.** [`BackupStore::export_tenant`] writes every project of a tenant and
//! every object of its object store into one backup (plaintext `ATEBKT1\n`, a tenant
//! manifest frame, each project's frames as above, one frame per object with its path,
//! content type, metadata and SHA-256, and an end frame), under the same key and context.
//! [`BackupStore::restore_tenant`] restores it into any tenant of any ATE installation,
//! again all or nothing: projects whose names the tenant uses, or objects at paths it
//! holds, are refused before anything is written, and on any error every project and
//! object the restore made is removed. It needs [`SqlBackupStore::with_objects`]. What a
//! tenant backup does not hold: its users and sessions (`ate-auth`), its audit log (it
//! stays with the installation that wrote it; the restore is audited where it happens),
//! its keys (everything is sealed again under the destination's), its settings and quotas
//! (the destination tenant's own apply, and are enforced during the restore).
//!
//! Permissions: [`BACKUP_EXPORT`] plus `projects:read` and `analysis:read` to export;
//! [`BACKUP_RESTORE`] plus `projects:write`, `projects:delete` (to undo a failed restore)
//! and `analysis:write` to restore; for a tenant, `storage:read` to export and
//! `storage:write` and `storage:delete` to restore as well.

mod format;
mod sql;
mod tenant;

pub use sql::SqlBackupStore;

use crate::StorageError;
use ate_core::keys::SecretKey;
use ate_core::{Permission, Principal, ProjectId, TenantId};
use tokio::io::{AsyncRead, AsyncWrite};

/// Export a project into a backup.
pub const BACKUP_EXPORT: Permission = Permission::from_static("backup:export");
/// Restore a backup into a tenant.
pub const BACKUP_RESTORE: Permission = Permission::from_static("backup:restore");

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupSummary {
    /// Snapshots exported.
    pub snapshots: u64,
    /// Files (and symbolic links) across them.
    pub files: u64,
    /// Analysis results exported.
    pub analysis_results: u64,
    /// Their payloads.
    pub payloads: u64,
    /// Projects (1 for a project backup).
    pub projects: u64,
    /// Objects of the object store (tenant backups).
    pub objects: u64,
    /// Their bytes.
    pub object_bytes: u64,
    /// Bytes written (encrypted).
    pub bytes: u64,
}

/// How to restore.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// The name of the restored project (default: the name in the backup).
    pub name: Option<String>,
}

impl RestoreOptions {
    /// Restores under the backup's name.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restores under `name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// What a restore created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoreReport {
    /// The new project (of a project backup).
    pub project: Option<ProjectId>,
    /// The new projects (of a tenant backup), in the backup's order.
    pub projects: Vec<ProjectId>,
    /// Objects restored (tenant backups).
    pub objects: u64,
    /// Snapshots restored.
    pub snapshots: u64,
    /// Files across them.
    pub files: u64,
    /// Analysis results restored.
    pub analysis_results: u64,
    /// Their payloads.
    pub payloads: u64,
}

/// Exports and restores projects.
#[async_trait::async_trait]
pub trait BackupStore: Send + Sync + std::fmt::Debug {
    /// Writes project `project` to `out` as a backup sealed under `key`. Needs
    /// [`BACKUP_EXPORT`], `projects:read` and `analysis:read`.
    async fn export_project(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
        key: &SecretKey,
        out: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<BackupSummary, StorageError>;

    /// Restores the backup read from `input` (sealed under `key`) as a new project of
    /// `tenant`. `Integrity` for a wrong key or a damaged backup, `InvalidInput` for an
    /// unknown format, `AlreadyExists` for a name the tenant uses; on any error nothing is
    /// left.
    async fn restore_project(
        &self,
        actor: &Principal,
        tenant: TenantId,
        key: &SecretKey,
        input: &mut (dyn AsyncRead + Unpin + Send),
        options: &RestoreOptions,
    ) -> Result<RestoreReport, StorageError>;

    /// Writes every project of `tenant` and every object of its object store to `out` as
    /// one backup sealed under `key`. Needs [`BACKUP_EXPORT`], `projects:read`,
    /// `analysis:read` and `storage:read`.
    async fn export_tenant(
        &self,
        actor: &Principal,
        tenant: TenantId,
        key: &SecretKey,
        out: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<BackupSummary, StorageError>;

    /// Restores the tenant backup read from `input` (sealed under `key`) into `tenant`: its
    /// projects under their names, its objects at their paths. `AlreadyExists` (before
    /// anything is written) if the tenant has a project of the same name or an object at
    /// the same path; `Integrity` for a wrong key or a damaged backup; on any error nothing
    /// is left.
    async fn restore_tenant(
        &self,
        actor: &Principal,
        tenant: TenantId,
        key: &SecretKey,
        input: &mut (dyn AsyncRead + Unpin + Send),
    ) -> Result<RestoreReport, StorageError>;
}
