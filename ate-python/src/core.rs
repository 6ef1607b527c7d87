//! What every API class stands on: the stores of one client ([`Core`]) and the principal a
//! call acts as ([`View`]).
//!
//! A client (`ate.Ate`, `ate.AsyncAte`) owns one `Core`: the database pool and the stores
//! of each enabled domain. `a.acting_as(principal)` makes another client over the same
//! `Core` that acts as `principal`; every API class of a client holds its [`View`], so each
//! domain acts for the same principal the same way. The domain modules (`tenants`, `audit`,
//! `storage`, `projects`, `analysis`, `auth`, `registry`) add their operations to `View`;
//! this module opens their stores but knows none of the modules.

use crate::error::Error;
use crate::hub::{Hub, PySink};
use crate::options::Options;
use crate::types::auth::Principal as PyPrincipal;
use ate_core::{Db, Principal, SqlAuditSink, SqlTenantStore};
use ate_storage::analysis::SqlAnalysisStore;
use ate_storage::backup::SqlBackupStore;
use ate_storage::blob::{BlobBackend, BlobStore};
use ate_storage::objects::ObjectStore;
use ate_storage::projects::{ProjectKeyring, SqlProjectStore, SqlSnapshotStore};
use pyo3::prelude::*;
use std::sync::Arc;

/// The stores behind one client, shared by its `acting_as` views.
pub(crate) struct Core {
    pub(crate) db: Db,
    pub(crate) tenants: SqlTenantStore,
    pub(crate) audit: SqlAuditSink,
    pub(crate) storage: Option<ObjectStore>,
    /// Projects, snapshots, analysis results and backups (with storage).
    pub(crate) projects: Option<ProjectStores>,
    pub(crate) auth: Option<ate_auth::Auth>,
    /// The service hub behind `a.registry`, built on first use.
    registry: tokio::sync::OnceCell<Arc<Hub>>,
    /// Where the hub's alerts go; exists before the hub so callbacks can be added early.
    pub(crate) alerts: Arc<PySink>,
    /// The workflow store (opened on first use) and the step handlers registered.
    pub(crate) workflows: crate::workflows::state::WorkflowsState,
}

impl Core {
    /// Opens the database and the domains `options` enable.
    pub(crate) async fn open(url: String, options: Options) -> Result<Arc<Core>, Error> {
        let master = match options.master {
            // Key files are read on a blocking thread, never on the caller's event loop.
            Some(keys) => Some(
                tokio::task::spawn_blocking(move || keys.load())
                    .await
                    .map_err(|e| Error::internal(format!("reading the master keys: {e}")))??,
            ),
            None => None,
        };
        let db = Db::open(&url).await?;
        let storage = match (options.storage_url, &master) {
            (Some(url), Some(master)) => {
                let blobs = BlobStore::open(&url)?;
                Some(
                    ObjectStore::open(db.clone(), blobs, master.clone())
                        .await?
                        .with_key_cache_ttl(options.key_cache_ttl),
                )
            }
            _ => None,
        };
        let projects = match &storage {
            Some(objects) => Some(ProjectStores::open(&db, objects, options.key_cache_ttl).await?),
            None => None,
        };
        let auth = match (options.auth, master) {
            (Some(config), Some(master)) => {
                Some(ate_auth::Auth::open(db.clone(), master, config).await?)
            }
            _ => None,
        };
        Ok(Arc::new(Core {
            tenants: SqlTenantStore::new(db.clone()),
            audit: SqlAuditSink::new(db.clone()),
            storage,
            projects,
            auth,
            db,
            registry: tokio::sync::OnceCell::new(),
            alerts: Arc::new(PySink::default()),
            workflows: Default::default(),
        }))
    }

    /// The client's hub, built on first use (it runs `ate-orchestrate`'s migrations).
    pub(crate) async fn hub(&self) -> Result<Arc<Hub>, Error> {
        let hub = self
            .registry
            .get_or_try_init(|| async {
                Hub::open(self.db.clone(), self.alerts.clone())
                    .await
                    .map(Arc::new)
            })
            .await?;
        Ok(hub.clone())
    }

    /// The hub if it is built already.
    pub(crate) fn built_hub(&self) -> Option<Arc<Hub>> {
        self.registry.get().cloned()
    }

    /// Stops the hub (if built) and closes the database pool.
    pub(crate) async fn close(&self) -> Result<(), Error> {
        if let Some(hub) = self.registry.get() {
            hub.shutdown().await;
        }
        self.db.close().await;
        Ok(())
    }

    /// `"sqlite"` or `"postgres"`.
    pub(crate) fn backend(&self) -> &'static str {
        match self.db.backend() {
            ate_core::DbBackend::Sqlite => "sqlite",
            ate_core::DbBackend::Postgres => "postgres",
            _ => "unknown",
        }
    }

    /// `"memory"`, `"fs"`, `"s3"` or `"none"`.
    pub(crate) fn storage_backend(&self) -> &'static str {
        match self.storage.as_ref().map(|s| s.blobs().backend()) {
            Some(BlobBackend::Memory) => "memory",
            Some(BlobBackend::Fs) => "fs",
            Some(BlobBackend::S3) => "s3",
            Some(_) => "unknown",
            None => "none",
        }
    }
}

/// The stores behind `a.projects` and `a.analysis`, on the client's database and blobs.
pub(crate) struct ProjectStores {
    pub(crate) projects: SqlProjectStore,
    pub(crate) snapshots: SqlSnapshotStore,
    pub(crate) analysis: SqlAnalysisStore,
    pub(crate) backups: SqlBackupStore,
}

impl ProjectStores {
    /// Opens them next to `objects` (same database, blobs and tenant keyring), keeping
    /// unwrapped project keys for at most `key_cache_ttl`.
    pub(crate) async fn open(
        db: &ate_core::Db,
        objects: &ObjectStore,
        key_cache_ttl: std::time::Duration,
    ) -> Result<Self, Error> {
        let keys = ProjectKeyring::open(db.clone(), objects.keyring().clone())
            .await?
            .with_key_cache_ttl(key_cache_ttl);
        let blobs = objects.blobs().clone();
        Ok(ProjectStores {
            projects: SqlProjectStore::open(db.clone()).await?,
            snapshots: SqlSnapshotStore::open(db.clone(), blobs.clone(), keys.clone()).await?,
            analysis: SqlAnalysisStore::open(db.clone(), blobs.clone(), keys.clone()).await?,
            backups: SqlBackupStore::open(db.clone(), blobs, keys)
                .await?
                .with_objects(objects.clone()),
        })
    }
}

/// A client's stores seen by the principal its calls act as. Cheap to clone: each
/// operation takes its own copy into the future it runs.
#[derive(Clone)]
pub(crate) struct View {
    pub(crate) core: Arc<Core>,
    /// The client's own platform administrator, or the principal of `acting_as`.
    pub(crate) actor: Principal,
}

impl View {
    pub(crate) fn new(core: Arc<Core>, actor: Principal) -> Self {
        View { core, actor }
    }

    /// Who one call acts as: the per-call `actor=` (auth and registry calls accept one), or
    /// the view's principal.
    pub(crate) fn acting(&self, actor: Option<&Bound<'_, PyPrincipal>>) -> Principal {
        actor.map_or_else(|| self.actor.clone(), |p| p.get().inner().clone())
    }
}
