//! The [`ProjectKeyring`] conformance suite (per-project keys sealed under the tenant's data
//! keys) on every metadata backend; `tests/conformance.rs` runs the matrix.

use crate::support::Env;
use crate::{assert_kind, count_rows, exec, member};
use ate_core::keys::{LocalKeyProvider, SecretKey};
use ate_core::{ErrorKind, NewTenant, Principal, ProjectId, TenantId};
use ate_storage::keyring::{KEY_DESTROY, KEY_READ, KEY_ROTATE, KeyState, TenantKeyring};
use ate_storage::projects::{
    PROJECTS_DELETE, PROJECTS_READ, PROJECTS_WRITE, ProjectKeyring, ProjectSpec, ProjectStore,
    SqlProjectStore,
};
use std::sync::Arc;

struct Keys {
    tenant_keys: TenantKeyring,
    projects: SqlProjectStore,
    keys: ProjectKeyring,
}

async fn keys(env: &Env) -> Keys {
    let master = Arc::new(LocalKeyProvider::new(SecretKey::from_bytes([7; 32])));
    let tenant_keys = TenantKeyring::open(env.db.clone(), master)
        .await
        .unwrap()
        .with_clock(env.clock.clone());
    let projects = SqlProjectStore::open(env.db.clone())
        .await
        .unwrap()
        .with_clock(env.clock.clone());
    let keys = ProjectKeyring::open(env.db.clone(), tenant_keys.clone())
        .await
        .unwrap()
        .with_clock(env.clock.clone());
    Keys {
        tenant_keys,
        projects,
        keys,
    }
}

fn owner(t: TenantId) -> Principal {
    member(
        t,
        &[
            PROJECTS_READ,
            PROJECTS_WRITE,
            PROJECTS_DELETE,
            KEY_ROTATE,
            KEY_READ,
            KEY_DESTROY,
        ],
    )
}

async fn setup(env: &Env, k: &Keys, slug: &str) -> (TenantId, ProjectId, ProjectId) {
    let t = env
        .tenants
        .create(&env.admin, NewTenant::new(slug, slug))
        .await
        .unwrap()
        .id;
    let a = k
        .projects
        .create(&owner(t), t, &ProjectSpec::new("a"))
        .await
        .unwrap()
        .id;
    let b = k
        .projects
        .create(&owner(t), t, &ProjectSpec::new("b"))
        .await
        .unwrap()
        .id;
    (t, a, b)
}

/// The first use makes version 1, the same key every time after; each project has its own;
/// a rotation makes the next version active and keeps the old one readable.
pub async fn project_keys_are_made_and_rotated(env: Env) {
    let k = keys(&env).await;
    let (t, a, b) = setup(&env, &k, "acme").await;
    let first = k.keys.encryption_key(t, a).await.unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(
        k.keys.encryption_key(t, a).await.unwrap().expose_secret(),
        first.expose_secret()
    );
    assert_eq!(
        k.keys
            .decryption_key(t, a, 1)
            .await
            .unwrap()
            .expose_secret(),
        first.expose_secret()
    );
    let other = k.keys.encryption_key(t, b).await.unwrap();
    assert_ne!(other.expose_secret(), first.expose_secret());
    assert!(!format!("{first:?}").contains(&format!("{:?}", first.expose_secret()[0..4].to_vec())));
    let info = k.keys.rotate(&owner(t), t, a).await.unwrap();
    assert_eq!((info.version, info.state), (2, KeyState::Active));
    let second = k.keys.encryption_key(t, a).await.unwrap();
    assert_eq!(second.version, 2);
    assert_ne!(second.expose_secret(), first.expose_secret());
    assert_eq!(
        k.keys
            .decryption_key(t, a, 1)
            .await
            .unwrap()
            .expose_secret(),
        first.expose_secret()
    );
    let listed = k.keys.list(&owner(t), t, a).await.unwrap();
    let states: Vec<_> = listed.iter().map(|i| (i.version, i.state)).collect();
    assert_eq!(states, [(1, KeyState::DecryptOnly), (2, KeyState::Active)]);
    assert!(listed[0].retired_at.is_some());
    assert_kind(k.keys.decryption_key(t, a, 3).await, ErrorKind::NotFound);
    // Permissions, and projects of another tenant.
    assert_kind(
        k.keys.rotate(&member(t, &[PROJECTS_WRITE]), t, a).await,
        ErrorKind::PermissionDenied,
    );
    let (u, _, _) = setup(&env, &k, "other").await;
    assert_kind(k.keys.encryption_key(u, a).await, ErrorKind::NotFound);
    assert_kind(k.keys.rotate(&owner(u), u, a).await, ErrorKind::NotFound);
    assert_kind(
        k.keys.encryption_key(t, ProjectId::new()).await,
        ErrorKind::NotFound,
    );
}

/// A sealed key is bound to its project and version: moved to another, it does not open.
pub async fn project_keys_are_bound_to_their_project(env: Env) {
    let mut k = keys(&env).await;
    // The rows are edited behind the keyring's back below, as another process would: no
    // cache, so the edit is seen at once.
    k.keys = k.keys.with_key_cache_ttl(std::time::Duration::ZERO);
    let (t, a, b) = setup(&env, &k, "acme").await;
    k.keys.encryption_key(t, a).await.unwrap();
    k.keys.encryption_key(t, b).await.unwrap();
    // Project a's key row now carries project b's sealed key.
    exec(
        &env,
        "UPDATE project_keys SET sealed = (SELECT k2.sealed FROM project_keys k2 \
         JOIN projects p ON p.id = k2.project_id WHERE p.name_key = 'b') \
         WHERE project_id = (SELECT id FROM projects WHERE tenant_id = $1 AND name_key = 'a')",
        t,
    )
    .await;
    assert_kind(k.keys.encryption_key(t, a).await, ErrorKind::Integrity);
    assert_kind(k.keys.decryption_key(t, a, 1).await, ErrorKind::Integrity);
    k.keys.decryption_key(t, b, 1).await.unwrap();
}

/// Deleting a project deletes its keys (its data is then unrecoverable); the tenant's other
/// projects keep theirs.
pub async fn deleting_a_project_shreds_its_keys(env: Env) {
    let k = keys(&env).await;
    let (t, a, b) = setup(&env, &k, "acme").await;
    k.keys.encryption_key(t, a).await.unwrap();
    k.keys.rotate(&owner(t), t, a).await.unwrap();
    let kept = k.keys.encryption_key(t, b).await.unwrap();
    k.projects.delete(&owner(t), t, a, None).await.unwrap();
    assert_kind(k.keys.decryption_key(t, a, 1).await, ErrorKind::NotFound);
    assert_kind(k.keys.decryption_key(t, a, 2).await, ErrorKind::NotFound);
    assert_eq!(count_rows(&env, "project_keys").await, 1);
    assert_eq!(
        k.keys
            .decryption_key(t, b, 1)
            .await
            .unwrap()
            .expose_secret(),
        kept.expose_secret()
    );
}

/// After the tenant's key is rotated, `rewrap` seals the project keys under the new one
/// (the keys themselves do not change); destroying the tenant's keys makes every project
/// key unopenable.
pub async fn project_keys_follow_the_tenant_key(env: Env) {
    let k = keys(&env).await;
    let (t, a, b) = setup(&env, &k, "acme").await;
    let ka = k.keys.encryption_key(t, a).await.unwrap();
    k.keys.encryption_key(t, b).await.unwrap();
    let under = |infos: Vec<ate_storage::projects::ProjectKeyInfo>| {
        infos
            .iter()
            .map(|i| i.tenant_key_version)
            .collect::<Vec<_>>()
    };
    assert_eq!(under(k.keys.list(&owner(t), t, a).await.unwrap()), [1]);
    k.tenant_keys.rotate(&owner(t), t).await.unwrap();
    assert_eq!(k.keys.rewrap(&owner(t), t).await.unwrap(), 2);
    assert_eq!(
        k.keys.rewrap(&owner(t), t).await.unwrap(),
        0,
        "nothing left"
    );
    assert_eq!(under(k.keys.list(&owner(t), t, a).await.unwrap()), [2]);
    assert_eq!(
        k.keys
            .decryption_key(t, a, 1)
            .await
            .unwrap()
            .expose_secret(),
        ka.expose_secret()
    );
    assert_kind(
        k.keys.rewrap(&member(t, &[KEY_READ]), t).await,
        ErrorKind::PermissionDenied,
    );
    k.tenant_keys.destroy(&owner(t), t).await.unwrap();
    assert_kind(k.keys.decryption_key(t, a, 1).await, ErrorKind::NotFound);
    assert_kind(k.keys.decryption_key(t, b, 1).await, ErrorKind::NotFound);
}
