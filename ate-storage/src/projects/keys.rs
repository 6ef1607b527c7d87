//! Per-project keys (the seeds: "unique keys per project"): master key → tenant data key →
//! project key.
//!
//! Each project has a sequence of 256-bit keys, numbered from 1, one **active** (new data of
//! the project is encrypted with it) and the older ones **decrypt-only**, as a tenant's data
//! keys are. A project key is stored sealed under its tenant's active data key
//! ([`TenantKeyring`], through [`TenantSecrets`]) with a context that binds tenant, project
//! and version, so sealed bytes copied to another project or version do not open.
//!
//! The layering gives the crypto-shredding the issue asks for at each level:
//! * deleting a project deletes its keys in the same transaction (the `project_keys` rows
//!   go with the project's row), so that project's data is unrecoverable while the
//!   tenant's other projects are untouched;
//! * destroying the tenant's keys ([`TenantKeyring::destroy`]) makes every project key of
//!   the tenant unopenable, and with them all the tenant's project data.
//!
//! After the tenant's data key is rotated, [`ProjectKeyring::rewrap`] seals the tenant's
//! project keys again under the new tenant key, so the old one may later be destroyed
//! without losing a project. Every change is audited (`key_rotated`) in its transaction.

use super::PROJECTS_READ;
use crate::StorageError;
use crate::dedup::DedupKey;
use crate::key_cache::KeyCache;
use crate::keyring::{KEY_READ, KEY_ROTATE, KeyState, TenantKeyring};
use ate_core::audit::{NewAuditEvent, Outcome, actions};
use ate_core::db::{from_micros, to_micros};
use ate_core::keys::{SecretKey, TenantSecrets};
use ate_core::{
    Classify, Clock, CoreError, CoreTx, Db, ErrorKind, Principal, ProjectId, SqlTenantStore,
    SystemClock, TenantId, TenantStore, with_pool, with_write_tx,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

/// An unwrapped project key and its version. Zeroized on drop; `Debug` shows the version
/// only.
pub struct ProjectKey {
    /// The key's version, to be recorded with what it encrypts.
    pub version: u32,
    key: SecretKey,
}

impl ProjectKey {
    /// The key bytes, for the cipher. Never log them.
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.key.expose_secret()
    }
}

impl std::fmt::Debug for ProjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProjectKey(version {}, [REDACTED])", self.version)
    }
}

/// A project key's metadata (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProjectKeyInfo {
    /// The project.
    pub project: ProjectId,
    /// Version, from 1.
    pub version: u32,
    /// Active or decrypt-only.
    pub state: KeyState,
    /// The version of the tenant data key it is sealed under.
    pub tenant_key_version: u32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When a newer key replaced it.
    pub retired_at: Option<DateTime<Utc>>,
}

/// The context a project key is sealed to.
fn seal_context(project: ProjectId, version: u32) -> Vec<u8> {
    let mut ctx = b"ate.project-key.v1\0".to_vec();
    ctx.extend_from_slice(project.as_uuid().as_bytes());
    ctx.extend_from_slice(&version.to_be_bytes());
    ctx
}

/// The context a tenant's dedup key is sealed to (the tenant is bound by the sealing).
const DEDUP_CONTEXT: &[u8] = b"ate.dedup-key.v1\0";

/// The tenant key version sealed bytes name (`tenant-key-v<N>`).
fn sealed_under(sealed: &[u8]) -> Result<u32, StorageError> {
    let wrapped = ate_core::keys::tenant::decode_sealed(sealed)?;
    wrapped
        .key_id
        .strip_prefix("tenant-key-v")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StorageError::Integrity("a sealed project key names no tenant key".into()))
}

fn version_of(v: i64) -> Result<u32, StorageError> {
    u32::try_from(v)
        .map_err(|_| StorageError::Integrity(format!("stored key version {v} is out of range")))
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    project_id: Uuid,
    version: i64,
    state: String,
    tenant_key_version: i64,
    sealed: Vec<u8>,
    created_at: i64,
    retired_at: Option<i64>,
}

impl KeyRow {
    fn info(&self) -> Result<ProjectKeyInfo, StorageError> {
        Ok(ProjectKeyInfo {
            project: ProjectId::from_uuid(self.project_id)?,
            version: version_of(self.version)?,
            state: match self.state.as_str() {
                "active" => KeyState::Active,
                "decrypt_only" => KeyState::DecryptOnly,
                other => {
                    return Err(StorageError::Integrity(format!(
                        "stored project key state {other:?} is unknown"
                    )));
                }
            },
            tenant_key_version: version_of(self.tenant_key_version)?,
            created_at: from_micros(self.created_at)?,
            retired_at: self.retired_at.map(from_micros).transpose()?,
        })
    }
}

macro_rules! key_columns {
    () => {
        "project_id, version, state, tenant_key_version, sealed, created_at, retired_at"
    };
}
const ACTIVE: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM project_keys WHERE tenant_id = $1 AND project_id = $2 AND state = 'active'"
);
const BY_VERSION: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM project_keys WHERE tenant_id = $1 AND project_id = $2 AND version = $3"
);
const ALL_OF_PROJECT: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM project_keys WHERE tenant_id = $1 AND project_id = $2 ORDER BY version"
);
const UNDER_OLDER: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM project_keys WHERE tenant_id = $1 AND tenant_key_version < $2 \
     ORDER BY project_id, version LIMIT 100"
);

/// Per-project keys in the `project_keys` table of a [`Db`], sealed under the tenants'
/// data keys; cheap to clone.
#[derive(Debug, Clone)]
pub struct ProjectKeyring {
    db: Db,
    tenant_keys: TenantKeyring,
    tenants: SqlTenantStore,
    clock: Arc<dyn Clock>,
    /// Unwrapped project keys, by tenant and project (see [`crate::key_cache`]).
    cache: Arc<KeyCache<(TenantId, ProjectId)>>,
    /// Unwrapped dedup keys, by tenant (version 0: a tenant has one).
    dedup: Arc<KeyCache<TenantId>>,
}

impl ProjectKeyring {
    /// Project keys in `db` (running `ate-storage`'s migrations), sealed under
    /// `tenant_keys`.
    pub async fn open(db: Db, tenant_keys: TenantKeyring) -> Result<Self, StorageError> {
        db.migrate(&crate::migrations()).await?;
        Ok(ProjectKeyring {
            tenants: SqlTenantStore::new(db.clone()),
            db,
            tenant_keys,
            clock: Arc::new(SystemClock),
            cache: Arc::new(KeyCache::new(crate::key_cache::DEFAULT_TTL)),
            dedup: Arc::new(KeyCache::new(crate::key_cache::DEFAULT_TTL)),
        })
    }

    /// Keeps unwrapped project keys and dedup keys for at most `ttl` (see
    /// [`crate::key_cache`]); zero turns the cache off.
    pub fn with_key_cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.cache = Arc::new(KeyCache::new(ttl));
        self.dedup = Arc::new(KeyCache::new(ttl));
        self
    }

    /// Uses `clock` for key times and audit events.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.tenants = self.tenants.with_clock(clock.clone());
        self.clock = clock;
        self
    }

    async fn open_row(&self, tenant: TenantId, row: &KeyRow) -> Result<ProjectKey, StorageError> {
        let info = row.info()?;
        let bytes = self
            .tenant_keys
            .open_sealed(
                tenant,
                &row.sealed,
                &seal_context(info.project, info.version),
            )
            .await?;
        Ok(ProjectKey {
            version: info.version,
            key: SecretKey::from_slice(bytes.expose_secret())?,
        })
    }

    async fn fetch(
        &self,
        tenant: TenantId,
        project: ProjectId,
        version: Option<u32>,
    ) -> Result<Option<KeyRow>, StorageError> {
        let row: Option<KeyRow> = with_pool!(self.db, |pool| {
            match version {
                None => sqlx::query_as(ACTIVE)
                    .bind(tenant.as_uuid())
                    .bind(project.as_uuid()),
                Some(v) => sqlx::query_as(BY_VERSION)
                    .bind(tenant.as_uuid())
                    .bind(project.as_uuid())
                    .bind(i64::from(v)),
            }
            .fetch_optional(pool)
            .await
            .map_err(CoreError::from)?
        });
        Ok(row)
    }

    /// The project's active key, for encrypting its new data; the first call for a project
    /// creates version 1. `NotFound` for a project that is not the tenant's; the tenant
    /// must be active.
    pub async fn encryption_key(
        &self,
        tenant: TenantId,
        project: ProjectId,
    ) -> Result<ProjectKey, StorageError> {
        let generation = self.tenant_keys.generation();
        let scope = (tenant, project);
        if let Some(version) = self.cache.active(scope, generation)
            && let Some(key) = self.cache.key(scope, version, generation)
        {
            return Ok(ProjectKey { version, key });
        }
        self.tenants.require_active(tenant).await?;
        let key = match self.fetch(tenant, project, None).await? {
            // Sealed under a tenant key that was destroyed (crypto-shredding): it can never
            // be opened again, so the project starts a new key under the tenant's current one.
            Some(row)
                if self
                    .tenant_key_destroyed(tenant, row.tenant_key_version)
                    .await? =>
            {
                self.replace_shredded(tenant, project).await?
            }
            Some(row) => self.open_row(tenant, &row).await?,
            None => self.new_version(None, tenant, project).await?,
        };
        self.cache.put_key(scope, key.version, &key.key, generation);
        self.cache.put_active(scope, key.version, generation);
        Ok(key)
    }

    /// The project's key of `version`, for decrypting data written with it. `NotFound` if
    /// it does not exist (never made, or deleted with its project); `KeyDestroyed` (kind
    /// `NotFound` too) if the tenant key it is sealed under was destroyed.
    pub async fn decryption_key(
        &self,
        tenant: TenantId,
        project: ProjectId,
        version: u32,
    ) -> Result<ProjectKey, StorageError> {
        let generation = self.tenant_keys.generation();
        if let Some(key) = self.cache.key((tenant, project), version, generation) {
            return Ok(ProjectKey { version, key });
        }
        let row = self
            .fetch(tenant, project, Some(version))
            .await?
            .ok_or_else(|| {
                CoreError::not_found("project key", format!("version {version} of {project}"))
            })?;
        let key = self.open_row(tenant, &row).await?;
        self.cache
            .put_key((tenant, project), version, &key.key, generation);
        Ok(key)
    }

    /// The tenant's dedup key (chunk ids are an HMAC under it, [`crate::dedup`]); the first
    /// call for a tenant creates it. It never changes: equal content must keep its id. It is
    /// sealed under the tenant's data key, so destroying the tenant's keys destroys it too.
    pub(crate) async fn dedup_key(&self, tenant: TenantId) -> Result<DedupKey, StorageError> {
        let generation = self.tenant_keys.generation();
        if let Some(key) = self.dedup.key(tenant, 0, generation) {
            return Ok(DedupKey::new(key.expose_secret()));
        }
        let key = self.load_dedup_key(tenant).await?;
        self.dedup.put_key(
            tenant,
            0,
            &SecretKey::from_slice(key.expose_secret())?,
            generation,
        );
        Ok(key)
    }

    /// [`dedup_key`](Self::dedup_key) from the database: made, replaced or unsealed.
    async fn load_dedup_key(&self, tenant: TenantId) -> Result<DedupKey, StorageError> {
        if let Some(sealed) = self.fetch_dedup(tenant).await? {
            let under = sealed_under(&sealed)?;
            if !self.tenant_key_destroyed(tenant, i64::from(under)).await? {
                return self.open_dedup(tenant, &sealed).await;
            }
            // Sealed under a destroyed tenant key: every chunk it named is unreadable now,
            // so a new dedup key replaces it (unless another caller replaced it first).
            let key = SecretKey::generate()?;
            let resealed = self
                .tenant_keys
                .seal(tenant, key.expose_secret(), DEDUP_CONTEXT)
                .await?;
            let now = to_micros(self.clock.now());
            with_pool!(self.db, |pool| {
                sqlx::query(
                    "UPDATE dedup_keys SET sealed = $2, tenant_key_version = $3, created_at = $4 \
                     WHERE tenant_id = $1 AND sealed = $5",
                )
                .bind(tenant.as_uuid())
                .bind(&resealed)
                .bind(i64::from(sealed_under(&resealed)?))
                .bind(now)
                .bind(&sealed)
                .execute(pool)
                .await
                .map_err(CoreError::from)?;
            });
            let current = self
                .fetch_dedup(tenant)
                .await?
                .ok_or_else(|| CoreError::not_found("dedup key of tenant", tenant))?;
            return self.open_dedup(tenant, &current).await;
        }
        let key = SecretKey::generate()?;
        let sealed = self
            .tenant_keys
            .seal(tenant, key.expose_secret(), DEDUP_CONTEXT)
            .await?;
        let under = sealed_under(&sealed)?;
        let now = to_micros(self.clock.now());
        with_pool!(self.db, |pool| {
            sqlx::query(
                "INSERT INTO dedup_keys (tenant_id, tenant_key_version, sealed, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO NOTHING",
            )
            .bind(tenant.as_uuid())
            .bind(i64::from(under))
            .bind(&sealed)
            .bind(now)
            .execute(pool)
            .await
            .map_err(CoreError::from)?;
        });
        // Another caller may have made it first: theirs is the one.
        let sealed = self
            .fetch_dedup(tenant)
            .await?
            .ok_or_else(|| CoreError::not_found("dedup key of tenant", tenant))?;
        self.open_dedup(tenant, &sealed).await
    }

    async fn fetch_dedup(&self, tenant: TenantId) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(with_pool!(self.db, |pool| {
            sqlx::query_scalar("SELECT sealed FROM dedup_keys WHERE tenant_id = $1")
                .bind(tenant.as_uuid())
                .fetch_optional(pool)
                .await
                .map_err(CoreError::from)?
        }))
    }

    async fn open_dedup(&self, tenant: TenantId, sealed: &[u8]) -> Result<DedupKey, StorageError> {
        let bytes = self
            .tenant_keys
            .open_sealed(tenant, sealed, DEDUP_CONTEXT)
            .await?;
        let key: &[u8; 32] = bytes
            .expose_secret()
            .try_into()
            .map_err(|_| StorageError::Integrity("a stored dedup key is not 32 bytes".into()))?;
        Ok(DedupKey::new(key))
    }

    /// Seals the tenant's dedup key again under its active data key, if it is under an
    /// older one. Returns whether it did.
    async fn rewrap_dedup(&self, tenant: TenantId, current: u32) -> Result<bool, StorageError> {
        let row: Option<(Vec<u8>, i64)> = with_pool!(self.db, |pool| {
            sqlx::query_as(
                "SELECT sealed, tenant_key_version FROM dedup_keys \
                 WHERE tenant_id = $1 AND tenant_key_version < $2",
            )
            .bind(tenant.as_uuid())
            .bind(i64::from(current))
            .fetch_optional(pool)
            .await
            .map_err(CoreError::from)?
        });
        let Some((sealed, was)) = row else {
            return Ok(false);
        };
        let key = self
            .tenant_keys
            .open_sealed(tenant, &sealed, DEDUP_CONTEXT)
            .await?;
        let resealed = self
            .tenant_keys
            .seal(tenant, key.expose_secret(), DEDUP_CONTEXT)
            .await?;
        let under = sealed_under(&resealed)?;
        let n = with_pool!(self.db, |pool| {
            sqlx::query(
                "UPDATE dedup_keys SET sealed = $3, tenant_key_version = $4 \
                 WHERE tenant_id = $1 AND tenant_key_version = $2",
            )
            .bind(tenant.as_uuid())
            .bind(was)
            .bind(&resealed)
            .bind(i64::from(under))
            .execute(pool)
            .await
            .map_err(CoreError::from)?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Rotates the project's key: its new data uses a new version, its existing data stays
    /// readable with the older ones. Needs [`KEY_ROTATE`] in the tenant.
    pub async fn rotate(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
    ) -> Result<ProjectKeyInfo, StorageError> {
        actor.require(tenant, &KEY_ROTATE)?;
        let key = self.new_version(Some(actor), tenant, project).await;
        self.cache.forget((tenant, project));
        self.tenant_keys.keys_changed(tenant);
        let key = key?;
        self.fetch(tenant, project, Some(key.version))
            .await?
            .ok_or_else(|| CoreError::not_found("project key", project))?
            .info()
    }

    /// The project's keys, oldest first (metadata only). Needs [`KEY_READ`] or
    /// [`PROJECTS_READ`] in the tenant.
    pub async fn list(
        &self,
        actor: &Principal,
        tenant: TenantId,
        project: ProjectId,
    ) -> Result<Vec<ProjectKeyInfo>, StorageError> {
        if actor.require(tenant, &KEY_READ).is_err() {
            actor.require(tenant, &PROJECTS_READ)?;
        }
        let rows: Vec<KeyRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(ALL_OF_PROJECT)
                .bind(tenant.as_uuid())
                .bind(project.as_uuid())
                .fetch_all(pool)
                .await
                .map_err(CoreError::from)?
        });
        rows.iter().map(KeyRow::info).collect()
    }

    /// Seals every project key of the tenant that is under an older tenant key again, under
    /// the tenant's active one, and the tenant's dedup key with them. Resumable: each key in
    /// its own transaction. Needs [`KEY_ROTATE`]; returns how many were sealed again.
    pub async fn rewrap(&self, actor: &Principal, tenant: TenantId) -> Result<u64, StorageError> {
        actor.require(tenant, &KEY_ROTATE)?;
        let current = self.tenant_keys.encryption_key(tenant).await?.version;
        let mut done = 0;
        loop {
            let batch: Vec<KeyRow> = with_pool!(self.db, |pool| {
                sqlx::query_as(UNDER_OLDER)
                    .bind(tenant.as_uuid())
                    .bind(i64::from(current))
                    .fetch_all(pool)
                    .await
                    .map_err(CoreError::from)?
            });
            if batch.is_empty() {
                return Ok(done + u64::from(self.rewrap_dedup(tenant, current).await?));
            }
            for row in &batch {
                let info = row.info()?;
                let context = seal_context(info.project, info.version);
                let key = self
                    .tenant_keys
                    .open_sealed(tenant, &row.sealed, &context)
                    .await?;
                let sealed = self
                    .tenant_keys
                    .seal(tenant, key.expose_secret(), &context)
                    .await?;
                let under = sealed_under(&sealed)?;
                let now = self.clock.now();
                let event = key_event(tenant, actor.subject(), &info.project, info.version)
                    .metadata(json!({
                        "project": info.project,
                        "version": info.version,
                        "rewrapped_from_tenant_key": info.tenant_key_version,
                        "tenant_key_version": under,
                    }))
                    .validate()?;
                let changed: u64 = with_write_tx!(self.db, |tx| {
                    let n = sqlx::query(
                        "UPDATE project_keys SET sealed = $4, tenant_key_version = $5 \
                         WHERE project_id = $1 AND version = $2 AND tenant_key_version = $3",
                    )
                    .bind(info.project.as_uuid())
                    .bind(i64::from(info.version))
                    .bind(i64::from(info.tenant_key_version))
                    .bind(&sealed)
                    .bind(i64::from(under))
                    .execute(&mut *tx)
                    .await
                    .map_err(CoreError::from)?
                    .rows_affected();
                    if n == 1 {
                        tx.append_audit(&event, now).await?;
                    }
                    n
                });
                done += changed;
            }
        }
    }

    /// Creates the project's next key version and makes it the active one (the previous
    /// one turns decrypt-only). With `actor: None` this is the implicit first key, and a
    /// key made meanwhile by another caller is used instead.
    async fn new_version(
        &self,
        actor: Option<&Principal>,
        tenant: TenantId,
        project: ProjectId,
    ) -> Result<ProjectKey, StorageError> {
        let key = SecretKey::generate()?;
        let subject = actor.map_or("system:keyring", |a| a.subject()).to_owned();
        // The next version is sealed before the transaction (sealing may call a remote key
        // service); the version it is bound to is checked inside.
        let next = self.next_version(tenant, project).await?;
        let sealed = self
            .tenant_keys
            .seal(tenant, key.expose_secret(), &seal_context(project, next))
            .await?;
        let under = sealed_under(&sealed)?;
        let now = self.clock.now();
        let event = key_event(tenant, &subject, &project, next)
            .metadata(json!({"project": project, "version": next, "tenant_key_version": under}))
            .validate()?;
        let outcome: Result<bool, StorageError> = with_write_tx!(self.db, |tx| {
            tx.lock_tenant(tenant).await?.require_active()?;
            let exists: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM projects WHERE tenant_id = $1 AND id = $2 \
                     AND deleted_at IS NULL",
            )
            .bind(tenant.as_uuid())
            .bind(project.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(CoreError::from)?;
            let max: Option<i64> =
                sqlx::query_scalar("SELECT MAX(version) FROM project_keys WHERE project_id = $1")
                    .bind(project.as_uuid())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(CoreError::from)?;
            if exists.is_none() {
                Err(CoreError::not_found("project", project).into())
            } else if max.is_some() && actor.is_none() {
                // Another caller made the first key while this one waited for the lock.
                Ok(false)
            } else if max.unwrap_or(0) + 1 != i64::from(next) {
                Err(CoreError::Conflict(format!(
                    "project {project} got a new key meanwhile; rotate again"
                ))
                .into())
            } else {
                sqlx::query(
                    "UPDATE project_keys SET state = 'decrypt_only', retired_at = $2 \
                     WHERE project_id = $1 AND state = 'active'",
                )
                .bind(project.as_uuid())
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await
                .map_err(CoreError::from)?;
                sqlx::query(
                    "INSERT INTO project_keys (project_id, tenant_id, version, state, \
                     tenant_key_version, sealed, created_at) \
                     VALUES ($1, $2, $3, 'active', $4, $5, $6)",
                )
                .bind(project.as_uuid())
                .bind(tenant.as_uuid())
                .bind(i64::from(next))
                .bind(i64::from(under))
                .bind(&sealed)
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await
                .map_err(CoreError::from)?;
                tx.append_audit(&event, now).await?;
                Ok(true)
            }
        });
        if outcome? {
            return Ok(ProjectKey { version: next, key });
        }
        let row = self
            .fetch(tenant, project, None)
            .await?
            .ok_or_else(|| CoreError::not_found("active key of project", project))?;
        self.open_row(tenant, &row).await
    }

    /// Whether tenant key `version` of `tenant` was destroyed: what it sealed is gone.
    async fn tenant_key_destroyed(
        &self,
        tenant: TenantId,
        version: i64,
    ) -> Result<bool, StorageError> {
        let state: Option<String> = with_pool!(self.db, |pool| {
            sqlx::query_scalar(
                "SELECT state FROM tenant_keys WHERE tenant_id = $1 AND version = $2",
            )
            .bind(tenant.as_uuid())
            .bind(version)
            .fetch_optional(pool)
            .await
            .map_err(CoreError::from)?
        });
        Ok(state.as_deref() == Some("destroyed"))
    }

    /// A new active key for a project whose active key was shredded with its tenant key;
    /// if another caller made one meanwhile, that one.
    async fn replace_shredded(
        &self,
        tenant: TenantId,
        project: ProjectId,
    ) -> Result<ProjectKey, StorageError> {
        let system = Principal::platform_admin("system:keyring")?;
        match self.new_version(Some(&system), tenant, project).await {
            Err(e) if e.kind() == ErrorKind::Conflict => {
                let row = self
                    .fetch(tenant, project, None)
                    .await?
                    .ok_or_else(|| CoreError::not_found("active key of project", project))?;
                self.open_row(tenant, &row).await
            }
            outcome => outcome,
        }
    }

    async fn next_version(
        &self,
        tenant: TenantId,
        project: ProjectId,
    ) -> Result<u32, StorageError> {
        let max: Option<i64> = with_pool!(self.db, |pool| {
            sqlx::query_scalar(
                "SELECT MAX(version) FROM project_keys WHERE tenant_id = $1 AND project_id = $2",
            )
            .bind(tenant.as_uuid())
            .bind(project.as_uuid())
            .fetch_one(pool)
            .await
            .map_err(CoreError::from)?
        });
        version_of(max.unwrap_or(0) + 1)
    }
}

fn key_event(tenant: TenantId, actor: &str, project: &ProjectId, version: u32) -> NewAuditEvent {
    NewAuditEvent::new(tenant, actor, actions::KEY_ROTATED, Outcome::Success)
        .target(format!("project-key:{project}:{version}"))
}
