//! The tenant keyring: per-tenant data keys, wrapped under the master key.
//!
//! Each tenant has a sequence of 256-bit data keys, numbered from 1. One is **active** (new
//! objects are encrypted with it); older ones are **decrypt-only** (objects written with
//! them stay readable until re-encrypted); a **destroyed** key's wrapped bytes are erased
//! from the database, so everything it protected is unrecoverable (crypto-shredding).
//!
//! Keys are stored wrapped by the [`KeyProvider`] under an associated context that binds the
//! tenant and the version (`ate.tenant-key.v1 ‖ tenant ‖ version`), so a wrapped key copied to
//! another tenant or version fails to unwrap. Every row records which master key wrapped it:
//! [`TenantKeyring::rotate_master`] rewraps exactly the rows still under an older master key,
//! without touching a single object.
//!
//! Every change (first key, rotation, rewrap, destruction) is recorded in the tenant's audit
//! chain in the same transaction.
//!
//! Unwrapped keys are cached for a short time ([`crate::key_cache`]: one second by default,
//! [`TenantKeyring::with_key_cache_ttl`]), so object operations do not call the
//! [`KeyProvider`] each time. A key rotated or destroyed, or a tenant suspended or deleted,
//! through this process's stores on the same [`Db`] handle takes effect at once; through
//! another process, within the TTL.

use crate::error::StorageError;
use crate::key_cache::KeyCache;
use ate_core::audit::{NewAuditEvent, Outcome, actions};
use ate_core::db::{from_micros, to_micros};
use ate_core::keys::{KeyProvider, SecretKey, WrappedKey};
use ate_core::{
    Clock, CoreError, CoreTx, Db, Permission, Principal, SqlTenantStore, SystemClock,
    TenantChangeKind, TenantChanges, TenantId, TenantStore, with_pool, with_write_tx,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

/// Rotate a tenant's data key.
pub const KEY_ROTATE: Permission = Permission::from_static("key:rotate");
/// Destroy (crypto-shred) a tenant's data keys.
pub const KEY_DESTROY: Permission = Permission::from_static("key:destroy");
/// List a tenant's keys (metadata only, never key material).
pub const KEY_READ: Permission = Permission::from_static("key:read");

/// A key's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyState {
    /// Encrypts new data.
    Active,
    /// Decrypts existing data only.
    DecryptOnly,
    /// Erased; its data is unrecoverable.
    Destroyed,
}

impl KeyState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::DecryptOnly => "decrypt_only",
            KeyState::Destroyed => "destroyed",
        }
    }

    fn parse(s: &str) -> Result<Self, StorageError> {
        match s {
            "active" => Ok(KeyState::Active),
            "decrypt_only" => Ok(KeyState::DecryptOnly),
            "destroyed" => Ok(KeyState::Destroyed),
            other => Err(StorageError::Integrity(format!(
                "stored key state {other:?} is unknown"
            ))),
        }
    }
}

/// A key's metadata (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyInfo {
    /// The tenant.
    pub tenant: TenantId,
    /// Version, from 1.
    pub version: u32,
    /// State.
    pub state: KeyState,
    /// The master key it is wrapped under (`None` once destroyed).
    pub master_key_id: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When a newer key replaced it.
    pub retired_at: Option<DateTime<Utc>>,
    /// When it was destroyed.
    pub destroyed_at: Option<DateTime<Utc>>,
}

/// An unwrapped data key and its version. Zeroized on drop; `Debug` shows the version only.
pub struct DataKey {
    /// The key's version, recorded with every object it encrypts.
    pub version: u32,
    key: SecretKey,
}

impl DataKey {
    /// The key bytes, for the cipher. Never log them.
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.key.expose_secret()
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey(version {}, [REDACTED])", self.version)
    }
}

/// What a master-key rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MasterRotation {
    /// Tenant keys rewrapped under the current master key.
    pub rewrapped: u64,
}

fn wrap_context(tenant: TenantId, version: u32) -> Vec<u8> {
    let mut ctx = b"ate.tenant-key.v1\0".to_vec();
    ctx.extend_from_slice(tenant.as_bytes());
    ctx.extend_from_slice(&version.to_be_bytes());
    ctx
}

#[derive(Debug, sqlx::FromRow)]
struct KeyRow {
    tenant_id: Uuid,
    version: i64,
    state: String,
    master_key_id: Option<String>,
    wrapped: Option<Vec<u8>>,
    created_at: i64,
    retired_at: Option<i64>,
    destroyed_at: Option<i64>,
}

impl KeyRow {
    fn info(&self) -> Result<KeyInfo, StorageError> {
        Ok(KeyInfo {
            tenant: TenantId::from_uuid(self.tenant_id)?,
            version: u32::try_from(self.version).map_err(|_| {
                StorageError::Integrity(format!(
                    "stored key version {} is out of range",
                    self.version
                ))
            })?,
            state: KeyState::parse(&self.state)?,
            master_key_id: self.master_key_id.clone(),
            created_at: from_micros(self.created_at)?,
            retired_at: self.retired_at.map(from_micros).transpose()?,
            destroyed_at: self.destroyed_at.map(from_micros).transpose()?,
        })
    }

    fn wrapped(&self) -> Option<WrappedKey> {
        match (&self.master_key_id, &self.wrapped) {
            (Some(id), Some(bytes)) => Some(WrappedKey {
                key_id: id.clone(),
                ciphertext: bytes.clone(),
            }),
            _ => None,
        }
    }
}

macro_rules! key_columns {
    () => {
        "tenant_id, version, state, master_key_id, wrapped, created_at, retired_at, destroyed_at"
    };
}
const ACTIVE: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM tenant_keys WHERE tenant_id = $1 AND state = 'active'"
);
const BY_VERSION: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM tenant_keys WHERE tenant_id = $1 AND version = $2"
);
const ALL_OF_TENANT: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM tenant_keys WHERE tenant_id = $1 ORDER BY version"
);
const UNDER_OLD_MASTER: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM tenant_keys WHERE master_key_id IS NOT NULL AND master_key_id <> $1 \
     ORDER BY tenant_id, version LIMIT 100"
);
const INSERT: &str = "INSERT INTO tenant_keys (tenant_id, version, state, master_key_id, wrapped, \
     created_at) VALUES ($1, $2, 'active', $3, $4, $5)";
/// Per-tenant data keys in the `tenant_keys` table of a [`Db`].
#[derive(Debug, Clone)]
pub struct TenantKeyring {
    db: Db,
    master: Arc<dyn KeyProvider>,
    tenants: SqlTenantStore,
    clock: Arc<dyn Clock>,
    cache: Arc<KeyCache<TenantId>>,
    /// The handle's tenant-change feed: its generation dates cached keys.
    changes: TenantChanges,
}

impl TenantKeyring {
    /// A keyring over `db` (running `ate-storage`'s migrations) wrapping keys with `master`.
    pub async fn open(db: Db, master: Arc<dyn KeyProvider>) -> Result<Self, StorageError> {
        db.migrate(&crate::migrations()).await?;
        let tenants = SqlTenantStore::new(db.clone());
        Ok(TenantKeyring {
            changes: tenants.changes(),
            tenants,
            db,
            master,
            clock: Arc::new(SystemClock),
            cache: Arc::new(KeyCache::new(crate::key_cache::DEFAULT_TTL)),
        })
    }

    /// Keeps unwrapped keys (and that a tenant is active) for at most `ttl` (see
    /// [`crate::key_cache`]); zero turns the cache off. The default is one second: the
    /// longest another process's key destruction or tenant suspension may go unnoticed here.
    pub fn with_key_cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.cache = Arc::new(KeyCache::new(ttl));
        self
    }

    /// The tenant-change generation of the handle: cached keys read under another one are
    /// stale.
    pub(crate) fn generation(&self) -> u64 {
        self.changes.generation()
    }

    /// Tells every cache on the handle that `tenant`'s keys changed.
    pub(crate) fn keys_changed(&self, tenant: TenantId) {
        self.cache.forget(tenant);
        self.changes.publish(tenant, TenantChangeKind::KeysChanged);
    }

    /// Uses `clock` for key timestamps and audit events.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.tenants = self.tenants.with_clock(clock.clone());
        self.clock = clock;
        self
    }

    async fn unwrap_row(&self, row: &KeyRow) -> Result<DataKey, StorageError> {
        let info = row.info()?;
        let wrapped = row.wrapped().ok_or(StorageError::KeyDestroyed {
            tenant: info.tenant,
            version: info.version,
        })?;
        let key = self
            .master
            .unwrap_key(&wrapped, &wrap_context(info.tenant, info.version))
            .await?;
        Ok(DataKey {
            version: info.version,
            key,
        })
    }

    /// `Ok` if `tenant` is active: `PermissionDenied` if it is suspended, `NotFound` if it is
    /// deleted or unknown. What was read is remembered under the key cache's rules (see
    /// [`crate::key_cache`]): a suspension or deletion made through this database handle is
    /// seen at once, one made by another process within the TTL.
    pub async fn require_active(&self, tenant: TenantId) -> Result<(), StorageError> {
        let generation = self.generation();
        if self.cache.live(tenant, generation) {
            return Ok(());
        }
        self.tenants.require_active(tenant).await?;
        self.cache.put_live(tenant, generation);
        Ok(())
    }

    /// The tenant's active key, for encrypting new data; the first call for a tenant creates
    /// version 1. The tenant must be active.
    pub async fn encryption_key(&self, tenant: TenantId) -> Result<DataKey, StorageError> {
        // Taken before reading: a change published meanwhile makes what is read stale.
        let generation = self.generation();
        if let Some(version) = self.cache.active(tenant, generation)
            && let Some(key) = self.cache.key(tenant, version, generation)
        {
            return Ok(DataKey { version, key });
        }
        self.tenants.require_active(tenant).await?;
        let key = match self.fetch_row(tenant, None).await? {
            Some(row) => self.unwrap_row(&row).await?,
            None => self.new_version(None, tenant).await?,
        };
        self.cache
            .put_key(tenant, key.version, &key.key, generation);
        self.cache.put_active(tenant, key.version, generation);
        Ok(key)
    }

    /// The key of `version`, for decrypting data written with it.
    ///
    /// `KeyDestroyed` (kind `NotFound`) if it was crypto-shredded; `NotFound` if it never existed.
    pub async fn decryption_key(
        &self,
        tenant: TenantId,
        version: u32,
    ) -> Result<DataKey, StorageError> {
        let generation = self.generation();
        if let Some(key) = self.cache.key(tenant, version, generation) {
            return Ok(DataKey { version, key });
        }
        let row = self
            .fetch_row(tenant, Some(version))
            .await?
            .ok_or_else(|| {
                StorageError::Core(CoreError::not_found(
                    "tenant key",
                    format!("version {version} of tenant {tenant}"),
                ))
            })?;
        let key = self.unwrap_row(&row).await?;
        self.cache.put_key(tenant, version, &key.key, generation);
        Ok(key)
    }

    /// Creates the next key version and makes it the active one; the previous active key
    /// becomes decrypt-only. With `actor: None` this is the implicit first key.
    async fn new_version(
        &self,
        actor: Option<&Principal>,
        tenant: TenantId,
    ) -> Result<DataKey, StorageError> {
        let now = self.clock.now();
        let key = SecretKey::generate()?;
        let subject = actor.map_or("system:keyring", |a| a.subject()).to_owned();
        let master = self.master.clone();
        let result: Result<u32, CoreError> = async {
            Ok(with_write_tx!(self.db, |tx| {
                tx.lock_tenant(tenant).await?;
                let active: Option<i64> = sqlx::query_scalar(
                    "SELECT version FROM tenant_keys WHERE tenant_id = $1 AND state = 'active'",
                )
                .bind(tenant.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
                if active.is_some() && actor.is_none() {
                    // Another caller created the first key while we waited for the lock.
                    0
                } else {
                    sqlx::query(
                        "UPDATE tenant_keys SET state = 'decrypt_only', retired_at = $2 \
                         WHERE tenant_id = $1 AND state = 'active'",
                    )
                    .bind(tenant.as_uuid())
                    .bind(to_micros(now))
                    .execute(&mut *tx)
                    .await?;
                    let max: Option<i64> = sqlx::query_scalar(
                        "SELECT MAX(version) FROM tenant_keys WHERE tenant_id = $1",
                    )
                    .bind(tenant.as_uuid())
                    .fetch_one(&mut *tx)
                    .await?;
                    let version = u32::try_from(max.unwrap_or(0) + 1).map_err(|_| {
                        CoreError::Conflict(format!("tenant {tenant} has no key versions left"))
                    })?;
                    let wrapped = master
                        .wrap_key(&key, &wrap_context(tenant, version))
                        .await?;
                    sqlx::query(INSERT)
                        .bind(tenant.as_uuid())
                        .bind(i64::from(version))
                        .bind(&wrapped.key_id)
                        .bind(&wrapped.ciphertext)
                        .bind(to_micros(now))
                        .execute(&mut *tx)
                        .await?;
                    let event = NewAuditEvent::new(
                        tenant,
                        subject.clone(),
                        actions::KEY_ROTATED,
                        Outcome::Success,
                    )
                    .target(format!("tenant-key:{version}"))
                    .metadata(json!({ "version": version, "master_key_id": wrapped.key_id }))
                    .validate()?;
                    tx.append_audit(&event, now).await?;
                    version
                }
            }))
        }
        .await;
        match result? {
            // Lost the race for the first key: use the winner's.
            0 => {
                let row = self.fetch_row(tenant, None).await?.ok_or_else(|| {
                    StorageError::from(CoreError::not_found("active key of tenant", tenant))
                })?;
                self.unwrap_row(&row).await
            }
            version => Ok(DataKey { version, key }),
        }
    }

    /// Rotates the tenant's key: new writes use a new version; existing data stays readable
    /// with the older, now decrypt-only, versions. Needs [`KEY_ROTATE`] in the tenant.
    pub async fn rotate(
        &self,
        actor: &Principal,
        tenant: TenantId,
    ) -> Result<KeyInfo, StorageError> {
        actor.require(tenant, &KEY_ROTATE)?;
        self.tenants.require_active(tenant).await?;
        let key = self.new_version(Some(actor), tenant).await;
        self.keys_changed(tenant);
        self.info(tenant, key?.version).await
    }

    async fn info(&self, tenant: TenantId, version: u32) -> Result<KeyInfo, StorageError> {
        self.fetch_row(tenant, Some(version))
            .await?
            .ok_or_else(|| {
                StorageError::from(CoreError::not_found(
                    "tenant key",
                    format!("version {version} of tenant {tenant}"),
                ))
            })?
            .info()
    }

    /// The row of `version`, or of the active key when `version` is `None`.
    async fn fetch_row(
        &self,
        tenant: TenantId,
        version: Option<u32>,
    ) -> Result<Option<KeyRow>, StorageError> {
        let row: Option<KeyRow> = with_pool!(self.db, |pool| {
            match version {
                None => sqlx::query_as(ACTIVE).bind(tenant.as_uuid()),
                Some(v) => sqlx::query_as(BY_VERSION)
                    .bind(tenant.as_uuid())
                    .bind(i64::from(v)),
            }
            .fetch_optional(pool)
            .await
            .map_err(CoreError::from)?
        });
        Ok(row)
    }

    /// The tenant's keys, oldest first (metadata only). Needs [`KEY_READ`].
    pub async fn list(
        &self,
        actor: &Principal,
        tenant: TenantId,
    ) -> Result<Vec<KeyInfo>, StorageError> {
        actor.require(tenant, &KEY_READ)?;
        let rows: Vec<KeyRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(ALL_OF_TENANT)
                .bind(tenant.as_uuid())
                .fetch_all(pool)
                .await
                .map_err(CoreError::from)?
        });
        rows.iter().map(KeyRow::info).collect()
    }

    /// Rewraps every tenant key still wrapped under an older master key with the current
    /// one. No object is rewritten. Resumable: each key is rewrapped in its own transaction,
    /// so an interrupted rotation simply continues where it stopped when run again.
    /// Platform administrators only.
    pub async fn rotate_master(&self, actor: &Principal) -> Result<MasterRotation, StorageError> {
        actor.require_platform_admin("rotating the master key")?;
        let current = self.master.key_id().to_owned();
        let mut rewrapped = 0u64;
        loop {
            let batch: Vec<KeyRow> = with_pool!(self.db, |pool| {
                sqlx::query_as(UNDER_OLD_MASTER)
                    .bind(&current)
                    .fetch_all(pool)
                    .await
                    .map_err(CoreError::from)?
            });
            if batch.is_empty() {
                break;
            }
            for row in &batch {
                rewrapped += self.rewrap(actor, row, &current).await?;
            }
        }
        Ok(MasterRotation { rewrapped })
    }

    /// Rewraps one key row if it is still under the master key it was read with.
    async fn rewrap(
        &self,
        actor: &Principal,
        row: &KeyRow,
        current: &str,
    ) -> Result<u64, StorageError> {
        let info = row.info()?;
        let Some(old) = row.wrapped() else {
            return Ok(0);
        };
        let context = wrap_context(info.tenant, info.version);
        let secret = self.master.unwrap(&old, &context).await?;
        let new = self.master.wrap(secret.expose_secret(), &context).await?;
        let now = self.clock.now();
        let event = NewAuditEvent::new(
            info.tenant,
            actor.subject(),
            actions::KEY_ROTATED,
            Outcome::Success,
        )
        .target(format!("tenant-key:{}", info.version))
        .metadata(json!({
            "version": info.version,
            "rewrapped_from": old.key_id,
            "master_key_id": current,
        }))
        .validate()?;
        let changed: Result<u64, CoreError> = async {
            Ok(with_write_tx!(self.db, |tx| {
                let updated = sqlx::query(
                    "UPDATE tenant_keys SET master_key_id = $4, wrapped = $5 \
                     WHERE tenant_id = $1 AND version = $2 AND master_key_id = $3",
                )
                .bind(info.tenant.as_uuid())
                .bind(i64::from(info.version))
                .bind(&old.key_id)
                .bind(&new.key_id)
                .bind(&new.ciphertext)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 1 {
                    tx.append_audit(&event, now).await?;
                }
                updated
            }))
        }
        .await;
        if matches!(changed, Ok(1)) {
            self.keys_changed(info.tenant);
        }
        Ok(changed?)
    }

    /// Destroys every key of the tenant: the wrapped bytes are erased, so all data encrypted
    /// with them becomes unrecoverable, and reads fail with `KeyDestroyed`. A later write
    /// starts a new key version. Needs [`KEY_DESTROY`] in the tenant; returns how many keys
    /// were destroyed.
    pub async fn destroy(&self, actor: &Principal, tenant: TenantId) -> Result<u64, StorageError> {
        actor.require(tenant, &KEY_DESTROY)?;
        let now = self.clock.now();
        let event = NewAuditEvent::new(
            tenant,
            actor.subject(),
            actions::KEY_DESTROYED,
            Outcome::Success,
        )
        .target("tenant-keys")
        .validate()?;
        let destroyed: Result<u64, CoreError> = async {
            Ok(with_write_tx!(self.db, |tx| {
                tx.lock_tenant(tenant).await?;
                let n = sqlx::query(
                    "UPDATE tenant_keys SET state = 'destroyed', wrapped = NULL, \
                     master_key_id = NULL, destroyed_at = $2 \
                     WHERE tenant_id = $1 AND state <> 'destroyed'",
                )
                .bind(tenant.as_uuid())
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n > 0 {
                    tx.append_audit(&event, now).await?;
                }
                n
            }))
        }
        .await;
        // Whatever happened, nothing cached may outlive the attempt.
        self.keys_changed(tenant);
        Ok(destroyed?)
    }
}

/// The key id a tenant secret sealed with data key `version` carries.
fn secret_key_id(version: u32) -> String {
    format!("tenant-key-v{version}")
}

/// Tenant secrets (integration credentials, say) sealed under the tenant's active data
/// key: readable while that key version lives, unreadable once it is destroyed
/// (crypto-shredding covers them with the tenant's objects). Rotating the tenant key
/// leaves old secrets readable (their version turns decrypt-only).
#[async_trait::async_trait]
impl ate_core::keys::TenantSecrets for TenantKeyring {
    async fn seal(
        &self,
        tenant: TenantId,
        secret: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, CoreError> {
        let key = self.encryption_key(tenant).await.map_err(core_error)?;
        ate_core::keys::tenant::seal_with(
            &key.key,
            &secret_key_id(key.version),
            tenant,
            secret,
            context,
        )
    }

    async fn open(
        &self,
        tenant: TenantId,
        sealed: &[u8],
        context: &[u8],
    ) -> Result<ate_core::keys::SecretBytes, CoreError> {
        self.open_sealed(tenant, sealed, context)
            .await
            .map_err(core_error)
    }
}

impl TenantKeyring {
    /// [`TenantSecrets::open`](ate_core::keys::TenantSecrets::open) with storage's error: a
    /// secret sealed under a destroyed key version is `KeyDestroyed` (so a caller can tell
    /// crypto-shredding from a fault).
    pub(crate) async fn open_sealed(
        &self,
        tenant: TenantId,
        sealed: &[u8],
        context: &[u8],
    ) -> Result<ate_core::keys::SecretBytes, StorageError> {
        let wrapped = ate_core::keys::tenant::decode_sealed(sealed)?;
        let version = wrapped
            .key_id
            .strip_prefix("tenant-key-v")
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| {
                CoreError::invalid("sealed secret", "does not name a tenant key version")
            })?;
        let key = self.decryption_key(tenant, version).await?;
        Ok(ate_core::keys::tenant::open_with(
            &key.key, &wrapped, tenant, context,
        )?)
    }
}

/// A storage error as the core error it carries (or an internal one).
fn core_error(e: StorageError) -> CoreError {
    use ate_core::Classify;
    match e {
        StorageError::Core(core) => core,
        // A destroyed key: what it sealed is gone for good.
        other if other.kind() == ate_core::ErrorKind::NotFound => {
            CoreError::not_found("tenant key", other.to_string())
        }
        other => CoreError::Internal(other.to_string()),
    }
}
