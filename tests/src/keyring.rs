//! The [`TenantKeyring`] conformance suite, run on every
//! metadata backend by `tests/conformance.rs`.

use crate::support::Env;
use crate::{assert_kind, member};
use ate_core::audit::AuditQuery;
use ate_core::keys::{KeyProvider, LocalKeyProvider, SecretKey};
use ate_core::{Classify, ErrorKind, NewTenant, Permission, Tenant, TenantId, with_pool};
use ate_storage::StorageError;
use ate_storage::keyring::{KEY_DESTROY, KEY_READ, KEY_ROTATE, KeyState, TenantKeyring};
use std::sync::Arc;

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
    let kr = keyring(&env, Arc::new(LocalKeyProvider::new(master(1)))).await;
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
