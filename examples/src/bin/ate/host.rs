//! The SDK wired the way a host wires it: one database handle, one blob store, one master
//! key, and every store opened over them ([`Host::open`]); then the platform administrator
//! bootstrapped once ([`Host::bootstrap`]).

use crate::config::Config;
use ate_auth::password::Password;
use ate_auth::users::RolePermissions;
use ate_auth::{Auth, AuthConfig, NewUser, Role};
use ate_core::keys::LocalKeyProvider;
use ate_core::{
    Classify, CoreError, Db, ErrorKind, NewTenant, Permission, Principal, SqlAuditSink,
    SqlTenantStore, TenantId, TenantStore,
};
use ate_orchestrate::alerts::{SqlAlertHistory, SqlAlertRules};
use ate_orchestrate::hub::ServiceHub;
use ate_orchestrate::integrations::{Egress, IntegrationClient, SqlIntegrations};
use ate_orchestrate::registry::SqlRegistry;
use ate_orchestrate::workflow::{SqlWorkflowStore, WorkflowEngine, WorkflowMetrics};
use ate_storage::analysis::SqlAnalysisStore;
use ate_storage::blob::BlobStore;
use ate_storage::objects::ObjectStore;
use ate_storage::projects::{ProjectKeyring, SqlProjectStore, SqlSnapshotStore};
use std::sync::Arc;

/// A boxed error for start-up paths, printed to the operator.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The subject the host acts as for its own work (bootstrap, resolving tenant slugs).
const HOST_SUBJECT: &str = "host:ate-serve";

/// Every store of one host process; a cheap handle (one reference count), since axum
/// clones its state for every request.
#[derive(Debug, Clone)]
pub(crate) struct Host(Arc<HostParts>);

impl std::ops::Deref for Host {
    type Target = HostParts;

    fn deref(&self) -> &HostParts {
        &self.0
    }
}

/// What a [`Host`] holds.
#[derive(Debug)]
pub(crate) struct HostParts {
    pub(crate) config: Arc<Config>,
    pub(crate) db: Db,
    pub(crate) auth: Auth,
    pub(crate) tenants: SqlTenantStore,
    pub(crate) audit: SqlAuditSink,
    pub(crate) objects: ObjectStore,
    pub(crate) projects: SqlProjectStore,
    /// Per-project keys, sealed under the tenant keys.
    pub(crate) project_keys: ProjectKeyring,
    pub(crate) snapshots: SqlSnapshotStore,
    pub(crate) analysis: SqlAnalysisStore,
    /// The service registry, health checks, balancing and breakers (ate-orchestrate).
    pub(crate) hub: ServiceHub,
    /// Durable workflows with the host's built-in steps ([`crate::steps`]); `ate serve`
    /// runs a worker on it.
    pub(crate) workflows: WorkflowEngine,
    /// The tenants' integration endpoints: the store, calls, probes and call metrics
    /// (shared with the `ate.integration` workflow step).
    pub(crate) integrations: IntegrationClient,
    /// The workflow engine's metrics (registered at `/metrics`).
    pub(crate) workflow_metrics: WorkflowMetrics,
    /// Alert rules (synced into the hub's engine by [`crate::alerting::run`]).
    pub(crate) alert_rules: SqlAlertRules,
    /// Alert events, kept by the hub's engine.
    pub(crate) alert_history: SqlAlertHistory,
    /// Wakes the rule sync after a change.
    pub(crate) rule_sync: crate::alerting::RuleSync,
    /// The host's own platform principal.
    pub(crate) system: Principal,
    /// The API's own traffic (every request's latency and outcome), for the history.
    pub(crate) api_traffic: Arc<ate_orchestrate::metrics::MetricsRecorder>,
    /// The coarse history ([`crate::history`] writes it, the dashboard reads it).
    pub(crate) rollups: ate_orchestrate::metrics::SqlRollups,
}

/// What [`Host::bootstrap`] did.
#[derive(Debug)]
pub(crate) enum Bootstrap {
    /// The platform tenant already had users.
    AlreadyDone,
    /// The administrator was created; the password is shown when it was generated.
    Created {
        tenant: String,
        email: String,
        generated_password: Option<String>,
    },
}

impl Host {
    /// Opens the database (running every component's migrations), the blob store and the
    /// master key (creating the development key file on first start when it is the default).
    pub(crate) async fn open(config: Config) -> Result<Host, BoxError> {
        if config.uses_data_dir() {
            std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                format!(
                    "cannot create data directory {}: {e}",
                    config.data_dir.display()
                )
            })?;
        }
        let key_file = config.master_key_file();
        let master =
            tokio::task::spawn_blocking(move || LocalKeyProvider::load_or_create_file(&key_file))
                .await??;
        let master = Arc::new(master);
        let db = Db::open(&config.database_url()).await?;
        let blobs = BlobStore::open(&config.storage_url())?;
        let objects = ObjectStore::open(db.clone(), blobs.clone(), master.clone()).await?;
        let keys = ProjectKeyring::open(db.clone(), objects.keyring().clone()).await?;
        let mut auth_config =
            AuthConfig::new(config.auth.issuer.clone(), config.auth.audience.clone());
        auth_config.insecure_fast_hashing_for_tests = config.auth.insecure_fast_hashing_for_tests;
        auth_config.tokens.lifetime =
            chrono::TimeDelta::seconds(i64::try_from(config.auth.access_token_secs)?);
        auth_config.tokens.leeway =
            chrono::TimeDelta::seconds(i64::try_from(config.auth.token_leeway_secs)?);
        let per_min = |n: u32| {
            (n > 0).then(|| ate_auth::ratelimit::Limit::new(n, chrono::TimeDelta::minutes(1)))
        };
        auth_config.rate_limits.login_per_client = per_min(config.auth.logins_per_client_per_min);
        auth_config.rate_limits.login_per_tenant = per_min(config.auth.logins_per_tenant_per_min);
        auth_config.role_permissions = role_permissions(&config)?;
        let auth = Auth::open(db.clone(), master, auth_config).await?;
        let registry = SqlRegistry::open(db.clone()).await?;
        let alert_history = SqlAlertHistory::open(db.clone()).await?;
        let alert_rules = SqlAlertRules::open(db.clone()).await?;
        let hub = ServiceHub::builder(Arc::new(registry))
            .alerts(
                Arc::new(crate::alerting::LogSink),
                Arc::new(alert_history.clone()),
            )
            .build()?;
        let egress = if config.integrations.allow_private_networks {
            Egress::Any
        } else {
            Egress::PublicOnly
        };
        let integrations = IntegrationClient::with_egress(
            SqlIntegrations::open(db.clone(), Arc::new(objects.keyring().clone())).await?,
            egress,
        )?;
        let rollups = ate_orchestrate::metrics::SqlRollups::open(db.clone()).await?;
        let workflow_metrics = WorkflowMetrics::new();
        let store = Arc::new(SqlWorkflowStore::open(db.clone()).await?);
        let workflows = crate::steps::register(
            WorkflowEngine::builder(store).metrics(workflow_metrics.clone()),
            hub.clone(),
            auth.clone(),
            integrations.clone(),
        )?
        .build();
        Ok(Host(Arc::new(HostParts {
            hub,
            integrations,
            workflows,
            workflow_metrics,
            tenants: SqlTenantStore::new(db.clone()),
            audit: SqlAuditSink::new(db.clone()),
            projects: SqlProjectStore::open(db.clone()).await?,
            snapshots: SqlSnapshotStore::open(db.clone(), blobs.clone(), keys.clone()).await?,
            project_keys: keys.clone(),
            analysis: SqlAnalysisStore::open(db.clone(), blobs, keys).await?,
            objects,
            auth,
            db,
            alert_rules,
            alert_history,
            rule_sync: crate::alerting::RuleSync::default(),
            system: Principal::platform_admin(HOST_SUBJECT)?,
            api_traffic: Arc::new(ate_orchestrate::metrics::MetricsRecorder::new(
                ate_orchestrate::metrics::RecorderConfig::default(),
            )?),
            rollups,
            config: Arc::new(config),
        })))
    }

    /// Creates the platform tenant and its first administrator unless the platform tenant
    /// already has a user. Safe when several hosts start at once on one database: the one
    /// that loses the race to create either finds the other's work.
    pub(crate) async fn bootstrap(&self) -> Result<Bootstrap, BoxError> {
        let admin = &self.config.admin;
        let tenant = match self.tenants.get_by_slug(&self.system, &admin.tenant).await {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                match self
                    .tenants
                    .create(&self.system, NewTenant::new(&admin.tenant, "Platform"))
                    .await
                {
                    Ok(t) => t,
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        self.tenants
                            .get_by_slug(&self.system, &admin.tenant)
                            .await?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let users = self.auth.users().count(&self.system, tenant.id).await?;
        if users.total > 0 {
            return Ok(Bootstrap::AlreadyDone);
        }
        let (password, generated) = match &admin.password {
            Some(p) => (p.expose().to_owned(), None),
            None => {
                let p = generate_password()?;
                (p.clone(), Some(p))
            }
        };
        let new = NewUser::new(admin.email.clone())
            .name("Platform administrator")
            .roles([Role::SuperAdmin]);
        match self
            .auth
            .create_user(&self.system, tenant.id, new, Some(&Password::new(password)))
            .await
        {
            Ok(_) => Ok(Bootstrap::Created {
                tenant: admin.tenant.clone(),
                email: admin.email.clone(),
                generated_password: generated,
            }),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Bootstrap::AlreadyDone),
            Err(e) => Err(e.into()),
        }
    }

    /// The id of the tenant with this slug, `None` when there is none (or the slug is not
    /// one); used where a client names its organization by slug.
    pub(crate) async fn tenant_by_slug(&self, slug: &str) -> Result<Option<TenantId>, CoreError> {
        match self.tenants.get_by_slug(&self.system, slug).await {
            Ok(t) => Ok(Some(t.id)),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidInput) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stops the health checks and closes the database pool.
    pub(crate) async fn close(&self) {
        self.hub.shutdown().await;
        self.db.close().await;
    }
}

/// `[auth.role_permissions]` as ate-auth's [`RolePermissions`].
fn role_permissions(config: &Config) -> Result<RolePermissions, BoxError> {
    let mut out = RolePermissions::new();
    for (role, perms) in &config.auth.role_permissions {
        let role = Role::parse(role).map_err(|e| format!("auth.role_permissions: {e}"))?;
        let perms = perms
            .iter()
            .map(|p| Permission::new(p.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("auth.role_permissions: {e}"))?;
        out = out.grant(role, perms);
    }
    Ok(out)
}

/// 24 random bytes as URL-safe base64: 192 bits, accepted by the password policy.
fn generate_password() -> Result<String, BoxError> {
    use base64::Engine as _;
    let mut bytes = zeroize::Zeroizing::new([0u8; 24]);
    getrandom::fill(bytes.as_mut())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}
