//! The [`TenantKeyring`] conformance suite, run on every
//! metadata backend by `tests/conformance.rs`.

use crate::support::Env;
use crate::{assert_kind, member};
use ate_core::audit::AuditQuery;
use ate_core::keys::{KeyProvider, LocalKeyProvider, SecretBytes, SecretKey, WrappedKey};
use ate_core::{
    Classify, ErrorKind, NewTenant, Permission, Tenant, TenantId, TenantStore, with_pool,
};
use ate_storage::StorageError;
use ate_storage::keyring::{KEY_DESTROY, KEY_READ, KEY_ROTATE, KeyState, TenantKeyring};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

async fn keyring(env: &Env, master: Arc<dyn KeyProvider>) -> TenantKeyring {
    TenantKeyring::open(env.db.clone(), master)
        .await
        .unwrap()
        .with_clock(env.clock.clone())
}

fn master(byte: u8) -> SecretKey {
    SecretKey::from_bytes([byte; 32])
}

async fn tenant(env: &Env, slug: &str) -> Tenant {
    env.tenants
        .create(&env.admin, NewTenant::new(slug, slug))
        .await
        .unwrap()
}

fn owner(t: TenantId) -> ate_core::Principal {
    member(
        t,
        &[KEY_ROTATE, KEY_DESTROY, KEY_READ, Permission::AUDIT_READ],
    )
}

async fn key_events(env: &Env, t: TenantId) -> Vec<String> {
    let log = env
        .audit
        .query(&env.admin, AuditQuery::tenant(t))
        .await
        .unwrap();
    log.items
        .iter()
        .map(|e| e.action.as_str().to_owned())
        .filter(|a| a.starts_with("key_"))
        .collect()
}

/// The first key is created once, even by concurrent first users, and audited.
pub async fn first_key_is_created_once(env: Env) {
    let t = tenant(&env, "acme").await;
    let kr = keyring(&env, Arc::new(LocalKeyProvider::new(master(1)))).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let kr = kr.clone();
        tasks.push(tokio::spawn(async move {
            kr.encryption_key(t.id).await.unwrap()
        }));
    }
    let mut keys = Vec::new();
    for task in tasks {
        keys.push(task.await.unwrap());
    }
    assert!(keys.iter().all(|k| k.version == 1));
    assert!(
        keys.iter()
            .all(|k| k.expose_secret() == keys[0].expose_secret())
    );
    let again = kr.encryption_key(t.id).await.unwrap();
    assert_eq!(again.expose_secret(), keys[0].expose_secret());
    assert_eq!(
        kr.decryption_key(t.id, 1).await.unwrap().expose_secret(),
        keys[0].expose_secret()
    );
    let listed = kr.list(&owner(t.id), t.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, KeyState::Active);
    assert_eq!(key_events(&env, t.id).await, ["key_rotated"]);
    // Key material never shows in Debug.
    let shown = format!("{:?}", keys[0]);
    assert_eq!(shown, "DataKey(version 1, [REDACTED])");
}

/// Rotation starts a new version for writes; older versions still decrypt.
pub async fn rotation_keeps_old_versions_readable(env: Env) {
    let t = tenant(&env, "acme").await;
    let kr = keyring(&env, Arc::new(LocalKeyProvider::new(master(1)))).await;
    let v1 = kr.encryption_key(t.id).await.unwrap();
    let info = kr.rotate(&owner(t.id), t.id).await.unwrap();
    assert_eq!((info.version, info.state), (2, KeyState::Active));
    let v2 = kr.encryption_key(t.id).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_ne!(v2.expose_secret(), v1.expose_secret());
    assert_eq!(
        kr.decryption_key(t.id, 1).await.unwrap().expose_secret(),
        v1.expose_secret()
    );
    let listed = kr.list(&owner(t.id), t.id).await.unwrap();
    let states: Vec<_> = listed.iter().map(|k| (k.version, k.state)).collect();
    assert_eq!(states, [(1, KeyState::DecryptOnly), (2, KeyState::Active)]);
    assert_eq!(listed[0].retired_at, Some(env.clock_now()));
    assert_eq!(key_events(&env, t.id).await, ["key_rotated", "key_rotated"]);
    assert!(
        env.audit
            .verify_chain(&env.admin, t.id)
            .await
            .unwrap()
            .is_intact()
    );

    // Only holders of key:rotate in this tenant may rotate.
    let other = tenant(&env, "other").await;
    assert_kind(
        kr.rotate(&member(t.id, &[KEY_READ]), t.id).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        kr.rotate(&owner(other.id), t.id).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        kr.list(&owner(other.id), t.id).await,
        ErrorKind::PermissionDenied,
    );
    assert_eq!(
        kr.list(&owner(t.id), t.id).await.unwrap().len(),
        2,
        "nothing changed"
    );
}

/// Master rotation rewraps every key under the new master key and changes no data key.
pub async fn master_rotation_rewraps_keys(env: Env) {
    let (a, b) = (tenant(&env, "alpha").await, tenant(&env, "beta").await);
    let old = keyring(&env, Arc::new(LocalKeyProvider::new(master(1)))).await;
    let a1 = old.encryption_key(a.id).await.unwrap();
    old.rotate(&owner(a.id), a.id).await.unwrap();
    let a2 = old.encryption_key(a.id).await.unwrap();
    let b1 = old.encryption_key(b.id).await.unwrap();

    let rotating = keyring(
        &env,
        Arc::new(LocalKeyProvider::new(master(2)).with_retired(master(1))),
    )
    .await;
    assert_kind(
        rotating.rotate_master(&owner(a.id)).await,
        ErrorKind::PermissionDenied,
    );
    let report = rotating.rotate_master(&env.admin).await.unwrap();
    assert_eq!(report.rewrapped, 3);
    assert_eq!(
        rotating.rotate_master(&env.admin).await.unwrap().rewrapped,
        0,
        "idempotent"
    );

    // Only the new master key is needed now, and every data key is unchanged.
    let new_only = keyring(&env, Arc::new(LocalKeyProvider::new(master(2)))).await;
    assert_eq!(
        new_only
            .decryption_key(a.id, 1)
            .await
            .unwrap()
            .expose_secret(),
        a1.expose_secret()
    );
    assert_eq!(
        new_only
            .decryption_key(a.id, 2)
            .await
            .unwrap()
            .expose_secret(),
        a2.expose_secret()
    );
    assert_eq!(
        new_only
            .decryption_key(b.id, 1)
            .await
            .unwrap()
            .expose_secret(),
        b1.expose_secret()
    );
    let new_id = LocalKeyProvider::new(master(2)).key_id().to_owned();
    for info in new_only.list(&owner(a.id), a.id).await.unwrap() {
        assert_eq!(info.master_key_id.as_deref(), Some(new_id.as_str()));
    }
    // The old master key alone can no longer unwrap anything.
    let old_only = keyring(&env, Arc::new(LocalKeyProvider::new(master(1)))).await;
    let e = old_only.decryption_key(a.id, 1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        env.audit
            .verify_chain(&env.admin, a.id)
            .await
            .unwrap()
            .is_intact()
    );
}

/// Destroying keys crypto-shreds: the wrapped bytes are gone and reads say so.
pub async fn destroy_crypto_shreds(env: Env) {
    let t = tenant(&env, "acme").await;
    let kr = keyring(&env, Arc::new(LocalKeyProvider::new(master(1)))).await;
    kr.encryption_key(t.id).await.unwrap();
    kr.rotate(&owner(t.id), t.id).await.unwrap();
    assert_kind(
        kr.destroy(&member(t.id, &[KEY_ROTATE]), t.id).await,
        ErrorKind::PermissionDenied,
    );
    assert_eq!(kr.destroy(&owner(t.id), t.id).await.unwrap(), 2);
    assert_eq!(
        kr.destroy(&owner(t.id), t.id).await.unwrap(),
        0,
        "idempotent"
    );
    for version in [1, 2] {
        let e = kr.decryption_key(t.id, version).await.unwrap_err();
        assert!(
            matches!(e, StorageError::KeyDestroyed { version: v, .. } if v == version),
            "{e}"
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.to_string().contains("unrecoverable"));
    }
    let remaining: i64 = with_pool!(env.db, |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM tenant_keys WHERE wrapped IS NOT NULL")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(remaining, 0, "no wrapped key bytes remain in the database");
    let states: Vec<_> = kr
        .list(&owner(t.id), t.id)
        .await
        .unwrap()
        .iter()
        .map(|k| k.state)
        .collect();
    assert_eq!(states, [KeyState::Destroyed, KeyState::Destroyed]);
    assert_eq!(
        key_events(&env, t.id).await,
        ["key_rotated", "key_rotated", "key_destroyed"]
    );
    // New data gets a new key; the shredded versions stay shredded.
    assert_eq!(kr.encryption_key(t.id).await.unwrap().version, 3);
    assert!(kr.decryption_key(t.id, 1).await.is_err());
}

/// A wrapped key moved to another tenant or version does not unwrap.
pub async fn wrapped_keys_are_bound_to_tenant_and_version(env: Env) {
    let (a, b) = (tenant(&env, "alpha").await, tenant(&env, "beta").await);
    // The rows are edited behind the keyring's back below, as another process would: no
    // cache, so the edit is seen at once.
    let kr = keyring(&env, Arc::new(LocalKeyProvider::new(master(1))))
        .await
        .with_key_cache_ttl(Duration::ZERO);
    kr.encryption_key(a.id).await.unwrap();
    kr.rotate(&owner(a.id), a.id).await.unwrap();
    kr.encryption_key(b.id).await.unwrap();
    with_pool!(env.db, |pool| {
        // B's version 1 gets A's wrapped version 1; A's version 2 gets A's version 1.
        sqlx::query(
            "UPDATE tenant_keys SET wrapped = (SELECT wrapped FROM tenant_keys \
             WHERE tenant_id = $1 AND version = 1) WHERE (tenant_id = $2 AND version = 1) \
             OR (tenant_id = $1 AND version = 2)",
        )
        .bind(a.id.as_uuid())
        .bind(b.id.as_uuid())
        .execute(pool)
        .await
        .unwrap();
    });
    for (t, v) in [(b.id, 1), (a.id, 2)] {
        let e = kr.decryption_key(t, v).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    }
    kr.decryption_key(a.id, 1).await.unwrap();
}

/// Tenant state gates new keys; unknown versions and tenants are `NotFound`.
pub async fn tenant_state_and_unknowns(env: Env) {
    let t = tenant(&env, "acme").await;
    let kr = keyring(&env, Arc::new(LocalKeyProvider::new(master(1)))).await;
    assert_kind(
        kr.encryption_key(TenantId::new()).await,
        ErrorKind::NotFound,
    );
    assert_kind(kr.decryption_key(t.id, 1).await, ErrorKind::NotFound);
    kr.encryption_key(t.id).await.unwrap();
    assert_kind(kr.decryption_key(t.id, 99).await, ErrorKind::NotFound);
    env.tenants
        .suspend(&env.admin, t.id, "unpaid")
        .await
        .unwrap();
    assert_kind(kr.encryption_key(t.id).await, ErrorKind::PermissionDenied);
    assert_kind(
        kr.rotate(&owner(t.id), t.id).await,
        ErrorKind::PermissionDenied,
    );
    kr.decryption_key(t.id, 1).await.unwrap();
    env.tenants.delete(&env.admin, t.id).await.unwrap();
    assert_kind(kr.encryption_key(t.id).await, ErrorKind::NotFound);
}

/// The keyring as [`TenantSecrets`](ate_core::keys::TenantSecrets): secrets sealed under the tenant's active key, bound to
/// tenant and context, readable after a rotation, gone with a destroyed key.
pub async fn tenant_secrets_follow_the_tenant_keys(env: Env) {
    use ate_core::keys::TenantSecrets;
    let (t, other) = (tenant(&env, "acme").await, tenant(&env, "globex").await);
    let kr = keyring(&env, Arc::new(LocalKeyProvider::new(master(1)))).await;
    let sealed = kr
        .seal(t.id, b"api-key-123", b"endpoint:crm")
        .await
        .unwrap();
    assert!(!sealed.windows(11).any(|w| w == b"api-key-123"));
    let open = |s: &[u8], tenant: TenantId, ctx: &'static [u8]| {
        let (kr, s) = (&kr, s.to_vec());
        async move { kr.open(tenant, &s, ctx).await }
    };
    assert_eq!(
        open(&sealed, t.id, b"endpoint:crm")
            .await
            .unwrap()
            .expose_secret(),
        b"api-key-123"
    );
    assert_kind(
        open(&sealed, other.id, b"endpoint:crm").await,
        ErrorKind::NotFound,
    );
    assert_kind(
        open(&sealed, t.id, b"endpoint:erp").await,
        ErrorKind::Integrity,
    );
    assert_kind(
        open(b"junk", t.id, b"endpoint:crm").await,
        ErrorKind::InvalidInput,
    );
    kr.rotate(&owner(t.id), t.id).await.unwrap();
    assert!(
        open(&sealed, t.id, b"endpoint:crm").await.is_ok(),
        "v1 is decrypt-only"
    );
    let newer = kr
        .seal(t.id, b"api-key-456", b"endpoint:crm")
        .await
        .unwrap();
    kr.destroy(&owner(t.id), t.id).await.unwrap();
    for s in [&sealed, &newer] {
        assert_kind(open(s, t.id, b"endpoint:crm").await, ErrorKind::NotFound);
    }
}

/// A provider that counts the unwraps it is asked for.
#[derive(Debug)]
pub struct Counting {
    inner: LocalKeyProvider,
    unwraps: AtomicU64,
}

impl Counting {
    /// Counts for a local provider with master key `byte`s.
    pub fn new(byte: u8) -> Self {
        Counting {
            inner: LocalKeyProvider::new(master(byte)),
            unwraps: AtomicU64::new(0),
        }
    }

    /// Unwraps asked for so far.
    pub fn unwraps(&self) -> u64 {
        self.unwraps.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl KeyProvider for Counting {
    fn key_id(&self) -> &str {
        self.inner.key_id()
    }

    async fn wrap(&self, secret: &[u8], context: &[u8]) -> Result<WrappedKey, ate_core::CoreError> {
        self.inner.wrap(secret, context).await
    }

    async fn unwrap(
        &self,
        wrapped: &WrappedKey,
        context: &[u8],
    ) -> Result<SecretBytes, ate_core::CoreError> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        self.inner.unwrap(wrapped, context).await
    }
}

/// Unwrapped keys are cached: the provider is asked once per key, not per operation. A
/// rotation or destruction through any keyring, or a suspension or deletion through any
/// tenant store, on the same database handle takes effect at the next call; a zero TTL
/// turns the cache off.
pub async fn unwrapped_keys_are_cached_and_invalidated(env: Env) {
    let t = tenant(&env, "acme").await;
    let counting = Arc::new(Counting::new(1));
    let kr = keyring(&env, counting.clone()).await;
    assert_eq!(kr.encryption_key(t.id).await.unwrap().version, 1);
    let before = counting.unwraps();
    for _ in 0..20 {
        assert_eq!(kr.encryption_key(t.id).await.unwrap().version, 1);
        kr.decryption_key(t.id, 1).await.unwrap();
    }
    assert!(
        counting.unwraps() - before <= 1,
        "{} unwraps for 40 operations",
        counting.unwraps() - before
    );
    // Another keyring on the same handle rotates: the next write uses the new version.
    let other = keyring(&env, Arc::new(LocalKeyProvider::new(master(1)))).await;
    other.rotate(&owner(t.id), t.id).await.unwrap();
    assert_eq!(kr.encryption_key(t.id).await.unwrap().version, 2);
    // And destroys: nothing cached outlives it.
    kr.decryption_key(t.id, 1).await.unwrap();
    other.destroy(&owner(t.id), t.id).await.unwrap();
    for version in [1, 2] {
        let e = kr.decryption_key(t.id, version).await.unwrap_err();
        assert!(matches!(e, StorageError::KeyDestroyed { .. }), "{e}");
    }
    assert_eq!(kr.encryption_key(t.id).await.unwrap().version, 3);
    // A suspension through the tenant store: no new key for the tenant from then on, and
    // the remembered "active" is gone too.
    kr.require_active(t.id).await.unwrap();
    env.tenants
        .suspend(&env.admin, t.id, "unpaid")
        .await
        .unwrap();
    assert_kind(kr.encryption_key(t.id).await, ErrorKind::PermissionDenied);
    assert_kind(kr.require_active(t.id).await, ErrorKind::PermissionDenied);
    env.tenants.reactivate(&env.admin, t.id).await.unwrap();
    kr.require_active(t.id).await.unwrap();
    assert_eq!(kr.encryption_key(t.id).await.unwrap().version, 3);
    env.tenants.delete(&env.admin, t.id).await.unwrap();
    assert_kind(kr.encryption_key(t.id).await, ErrorKind::NotFound);
    assert_kind(kr.require_active(t.id).await, ErrorKind::NotFound);
    // No cache: every call unwraps.
    let u = tenant(&env, "uncached").await;
    let off = keyring(&env, counting.clone())
        .await
        .with_key_cache_ttl(Duration::ZERO);
    off.encryption_key(u.id).await.unwrap();
    let before = counting.unwraps();
    for _ in 0..5 {
        off.decryption_key(u.id, 1).await.unwrap();
    }
    assert_eq!(counting.unwraps() - before, 5);
}

/// A change made through another database handle (as another process makes it) cannot
/// reach this handle's caches: the TTL bounds how long a destroyed key or a suspended tenant
/// may still be used here. With an hour-long TTL the stale key is still served (the bound
/// is real); past a short TTL it never is.
pub async fn another_handle_is_bounded_by_the_ttl(backend: crate::support::Backend) {
    let Some(test_db) = crate::support::TestDb::open(backend).await else {
        return;
    };
    let here = test_db.db.clone();
    let there = ate_core::Db::open(&test_db.url).await.unwrap();
    let admin = ate_core::Principal::platform_admin("ops:test").unwrap();
    let t = ate_core::SqlTenantStore::new(here.clone())
        .create(&admin, NewTenant::new("acme", "Acme"))
        .await
        .unwrap()
        .id;
    let open = |db: &ate_core::Db, ttl: Duration| {
        let db = db.clone();
        async move {
            TenantKeyring::open(db, Arc::new(LocalKeyProvider::new(master(1))))
                .await
                .unwrap()
                .with_key_cache_ttl(ttl)
        }
    };
    let ttl = Duration::from_millis(300);
    let short = open(&here, ttl).await;
    let long = open(&here, Duration::from_secs(3600)).await;
    assert_eq!(short.encryption_key(t).await.unwrap().version, 1);
    long.encryption_key(t).await.unwrap();
    short.decryption_key(t, 1).await.unwrap();
    long.decryption_key(t, 1).await.unwrap();
    let (plain_short, plain_long) = (
        open(&here, ttl).await,
        open(&here, Duration::from_secs(3600)).await,
    );
    plain_short.require_active(t).await.unwrap();
    plain_long.require_active(t).await.unwrap();
    let remote = open(&there, ttl).await;
    assert_eq!(remote.destroy(&owner(t), t).await.unwrap(), 1);
    ate_core::SqlTenantStore::new(there.clone())
        .suspend(&admin, t, "unpaid")
        .await
        .unwrap();
    assert_eq!(
        long.decryption_key(t, 1).await.unwrap().version,
        1,
        "within the TTL, another handle's destruction is not seen"
    );
    plain_long
        .require_active(t)
        .await
        .expect("within the TTL, another handle's suspension is not seen");
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let e = short.decryption_key(t, 1).await.unwrap_err();
    assert!(matches!(e, StorageError::KeyDestroyed { .. }), "{e}");
    assert_kind(short.encryption_key(t).await, ErrorKind::PermissionDenied);
    assert_kind(
        plain_short.require_active(t).await,
        ErrorKind::PermissionDenied,
    );
    there.close().await;
    test_db.cleanup().await;
}
