//! The [`TenantStore`](ate_core::TenantStore) conformance suite. Every case runs unchanged on
//! every backend; see `tests/conformance.rs`.

use crate::support::Env;
use crate::{assert_kind, count_rows, member};
use ate_core::audit::{AuditQuery, actions};
use ate_core::{
    ErrorKind, ListTenants, NewTenant, Permission, Quotas, TenantId, TenantSettings, TenantStatus,
    TenantUpdate,
};
use chrono::TimeDelta;
use std::collections::HashSet;

/// Creating a tenant returns it, stores it under id and slug, and audits the creation.
pub async fn create_and_get(env: Env) {
    let settings = TenantSettings::with_quotas(Quotas::default().max_objects(10));
    let created = env
        .tenants
        .create(
            &env.admin,
            NewTenant::new("acme", "  Acme Corp ").settings(settings.clone()),
        )
        .await
        .unwrap();
    assert_eq!(created.slug.as_str(), "acme");
    assert_eq!(created.name, "Acme Corp");
    assert_eq!(created.status, TenantStatus::Active);
    assert_eq!(created.revision, 1);
    assert_eq!(created.created_at, env.clock_now());
    assert_eq!(created.settings, settings);

    let by_id = env.tenants.get(&env.admin, created.id).await.unwrap();
    assert_eq!(by_id, created);
    let by_slug = env.tenants.get_by_slug(&env.admin, "acme").await.unwrap();
    assert_eq!(by_slug, created);
    assert_eq!(
        env.tenants.require_active(created.id).await.unwrap(),
        created
    );

    let log = env
        .audit
        .query(&env.admin, AuditQuery::tenant(created.id))
        .await
        .unwrap();
    assert_eq!(log.items.len(), 1);
    let event = &log.items[0];
    assert_eq!(event.action, actions::TENANT_CREATED);
    assert_eq!(event.actor, "system:conformance");
    assert_eq!(
        event.target.as_deref(),
        Some(created.id.to_string().as_str())
    );
    assert_eq!(event.metadata["slug"], "acme");
}

/// A taken slug is `AlreadyExists` and the failed create leaves nothing behind.
pub async fn duplicate_slug_is_rejected(env: Env) {
    env.tenants
        .create(&env.admin, NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let err = env
        .tenants
        .create(&env.admin, NewTenant::new("acme", "Other Acme"))
        .await;
    assert_kind(err, ErrorKind::AlreadyExists);
    assert_eq!(count_rows(&env, "tenants").await, 1);
    assert_eq!(count_rows(&env, "audit_events").await, 1);
    assert_eq!(count_rows(&env, "audit_chain_heads").await, 1);
}

/// Of many concurrent creates with one slug, exactly one wins; the rest are `AlreadyExists`.
pub async fn concurrent_duplicate_creates(env: Env) {
    let attempts = 8;
    let mut tasks = Vec::new();
    for i in 0..attempts {
        let (tenants, admin) = (env.tenants.clone(), env.admin.clone());
        tasks.push(tokio::spawn(async move {
            tenants
                .create(&admin, NewTenant::new("race", format!("Racer {i}")))
                .await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(e) => assert_eq!(
                ate_core::Classify::kind(&e),
                ErrorKind::AlreadyExists,
                "{e}"
            ),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(count_rows(&env, "tenants").await, 1);
    assert_eq!(count_rows(&env, "audit_events").await, 1);
}

/// Malformed slugs and names are `InvalidInput` and write nothing.
pub async fn invalid_input_writes_nothing(env: Env) {
    let too_long = "a".repeat(64);
    for slug in [
        "",
        "ab",
        too_long.as_str(),
        "Acme",
        "\u{430}cme",
        "acme_corp",
        "admin",
    ] {
        let r = env
            .tenants
            .create(&env.admin, NewTenant::new(slug, "Name"))
            .await;
        assert_kind(r, ErrorKind::InvalidInput);
    }
    let long_name = "n".repeat(201);
    for name in [
        "",
        "   ",
        long_name.as_str(),
        "bad\u{7}name",
        "rtl\u{202E}name",
    ] {
        let r = env
            .tenants
            .create(&env.admin, NewTenant::new("fine", name))
            .await;
        assert_kind(r, ErrorKind::InvalidInput);
    }
    assert_kind(
        env.tenants.get_by_slug(&env.admin, "NOPE").await,
        ErrorKind::InvalidInput,
    );
    assert_eq!(count_rows(&env, "tenants").await, 0);
    assert_eq!(count_rows(&env, "audit_events").await, 0);
}

/// Every operation on an unknown id is `NotFound`.
pub async fn unknown_tenant_is_not_found(env: Env) {
    let ghost = TenantId::new();
    let admin = &env.admin;
    assert_kind(env.tenants.get(admin, ghost).await, ErrorKind::NotFound);
    assert_kind(
        env.tenants.get_by_slug(admin, "ghost").await,
        ErrorKind::NotFound,
    );
    assert_kind(
        env.tenants
            .update(admin, ghost, TenantUpdate::new().name("x"))
            .await,
        ErrorKind::NotFound,
    );
    assert_kind(
        env.tenants.suspend(admin, ghost, "why").await,
        ErrorKind::NotFound,
    );
    assert_kind(
        env.tenants.reactivate(admin, ghost).await,
        ErrorKind::NotFound,
    );
    assert_kind(env.tenants.delete(admin, ghost).await, ErrorKind::NotFound);
    assert_kind(env.tenants.require_active(ghost).await, ErrorKind::NotFound);
    assert_eq!(count_rows(&env, "audit_events").await, 0);
}

/// Listing pages through every tenant once, in id order, and validates its arguments.
pub async fn list_paginates(env: Env) {
    let mut created = Vec::new();
    for i in 0..7 {
        let t = env
            .tenants
            .create(
                &env.admin,
                NewTenant::new(format!("tenant-{i}"), format!("T{i}")),
            )
            .await
            .unwrap();
        created.push(t.id);
    }
    env.tenants
        .suspend(&env.admin, created[1], "unpaid")
        .await
        .unwrap();
    env.tenants.delete(&env.admin, created[2]).await.unwrap();

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = env
            .tenants
            .list(&env.admin, ListTenants::new().limit(2).cursor(cursor))
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|t| t.id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<_> = created
        .iter()
        .copied()
        .filter(|id| *id != created[2])
        .collect();
    assert_eq!(
        seen, expected,
        "default listing: active and suspended, in id order"
    );

    let deleted = env
        .tenants
        .list(&env.admin, ListTenants::new().status(TenantStatus::Deleted))
        .await
        .unwrap();
    assert_eq!(
        deleted.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![created[2]]
    );
    let suspended = env
        .tenants
        .list(
            &env.admin,
            ListTenants::new().status(TenantStatus::Suspended),
        )
        .await
        .unwrap();
    assert_eq!(suspended.items.len(), 1);

    assert_kind(
        env.tenants
            .list(&env.admin, ListTenants::new().limit(0))
            .await,
        ErrorKind::InvalidInput,
    );
    assert_kind(
        env.tenants
            .list(&env.admin, ListTenants::new().limit(1001))
            .await,
        ErrorKind::InvalidInput,
    );
    let bogus = Some(ate_core::Cursor::from_string("definitely-not-a-cursor"));
    assert_kind(
        env.tenants
            .list(&env.admin, ListTenants::new().cursor(bogus))
            .await,
        ErrorKind::InvalidInput,
    );
}

/// Updates bump the revision, are audited, honour `expected_revision`, and no-ops change
/// nothing.
pub async fn update_is_audited_and_optimistic(env: Env) {
    let t = env
        .tenants
        .create(&env.admin, NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    env.clock.advance(TimeDelta::seconds(5));
    let quotas = TenantSettings::with_quotas(Quotas::default().max_storage_bytes(1 << 30));
    let u = env
        .tenants
        .update(
            &env.admin,
            t.id,
            TenantUpdate::new()
                .name("Acme Inc")
                .settings(quotas.clone())
                .expected_revision(1),
        )
        .await
        .unwrap();
    assert_eq!((u.name.as_str(), u.revision), ("Acme Inc", 2));
    assert_eq!(u.settings, quotas);
    assert_eq!(u.updated_at, env.clock_now());
    assert_eq!(u.created_at, t.created_at);
    assert_eq!(env.tenants.get(&env.admin, t.id).await.unwrap(), u);

    let stale = env
        .tenants
        .update(
            &env.admin,
            t.id,
            TenantUpdate::new().name("Stale").expected_revision(1),
        )
        .await;
    assert_kind(stale, ErrorKind::Conflict);
    let same = env
        .tenants
        .update(&env.admin, t.id, TenantUpdate::new().name("Acme Inc"))
        .await
        .unwrap();
    assert_eq!(same.revision, 2, "a no-op update changes nothing");
    assert_kind(
        env.tenants
            .update(&env.admin, t.id, TenantUpdate::new().name(""))
            .await,
        ErrorKind::InvalidInput,
    );

    let log = env
        .audit
        .query(&env.admin, AuditQuery::tenant(t.id))
        .await
        .unwrap();
    let names: Vec<_> = log.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(names, ["tenant_created", "tenant_updated"]);
    assert_eq!(
        log.items[1].metadata["changed"],
        serde_json::json!(["name", "settings"])
    );
}

/// Suspension blocks the tenant's own principals, is idempotent, and reactivation undoes it.
pub async fn suspend_and_reactivate(env: Env) {
    let t = env
        .tenants
        .create(&env.admin, NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let owner = member(t.id, &[Permission::TENANT_READ, Permission::TENANT_UPDATE]);
    assert_kind(
        env.tenants.suspend(&env.admin, t.id, "  ").await,
        ErrorKind::InvalidInput,
    );
    let s = env
        .tenants
        .suspend(&env.admin, t.id, "payment overdue")
        .await
        .unwrap();
    assert_eq!(s.status, TenantStatus::Suspended);
    assert_eq!(s.status_reason.as_deref(), Some("payment overdue"));
    let again = env
        .tenants
        .suspend(&env.admin, t.id, "again")
        .await
        .unwrap();
    assert_eq!(again.revision, s.revision, "suspending twice is a no-op");

    // Its principals may still see why, but may change nothing.
    assert_eq!(
        env.tenants.get(&owner, t.id).await.unwrap().status,
        TenantStatus::Suspended
    );
    assert_kind(
        env.tenants
            .update(&owner, t.id, TenantUpdate::new().name("Sneaky"))
            .await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        env.tenants.require_active(t.id).await,
        ErrorKind::PermissionDenied,
    );
    // A platform administrator may still fix its settings.
    env.tenants
        .update(
            &env.admin,
            t.id,
            TenantUpdate::new().name("Acme (suspended)"),
        )
        .await
        .unwrap();

    let r = env.tenants.reactivate(&env.admin, t.id).await.unwrap();
    assert_eq!(r.status, TenantStatus::Active);
    assert_eq!(r.status_reason, None);
    assert_eq!(
        env.tenants
            .reactivate(&env.admin, t.id)
            .await
            .unwrap()
            .revision,
        r.revision
    );
    env.tenants.require_active(t.id).await.unwrap();

    let log = env
        .audit
        .query(&env.admin, AuditQuery::tenant(t.id))
        .await
        .unwrap();
    let names: Vec<_> = log.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        names,
        [
            "tenant_created",
            "tenant_suspended",
            "tenant_updated",
            "tenant_reactivated"
        ]
    );
}

/// Deletion hides the tenant, keeps its slug reserved, can be undone until the purge time,
/// and purging removes it with its audit log.
pub async fn delete_restore_and_purge(env: Env) {
    let t = env
        .tenants
        .create(&env.admin, NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let owner = member(t.id, &[Permission::TENANT_READ, Permission::TENANT_UPDATE]);
    let d = env.tenants.delete(&env.admin, t.id).await.unwrap();
    assert_eq!(d.status, TenantStatus::Deleted);
    assert_eq!(d.deleted_at, Some(env.clock_now()));
    assert_eq!(
        d.purge_at,
        Some(env.clock_now() + ate_core::SqlTenantStore::DEFAULT_RETENTION)
    );
    assert_eq!(
        env.tenants.delete(&env.admin, t.id).await.unwrap().revision,
        d.revision
    );

    // Hidden from its own principals; visible to the platform.
    assert_kind(env.tenants.get(&owner, t.id).await, ErrorKind::NotFound);
    assert_kind(
        env.tenants.get_by_slug(&owner, "acme").await,
        ErrorKind::NotFound,
    );
    assert_kind(env.tenants.require_active(t.id).await, ErrorKind::NotFound);
    assert_eq!(
        env.tenants.get(&env.admin, t.id).await.unwrap().status,
        TenantStatus::Deleted
    );
    // Frozen: no updates, no suspension, no new audit events, and the slug stays taken.
    assert_kind(
        env.tenants
            .update(&env.admin, t.id, TenantUpdate::new().name("X"))
            .await,
        ErrorKind::Conflict,
    );
    assert_kind(
        env.tenants.suspend(&env.admin, t.id, "x").await,
        ErrorKind::Conflict,
    );
    assert_kind(
        env.tenants
            .create(&env.admin, NewTenant::new("acme", "Impostor"))
            .await,
        ErrorKind::AlreadyExists,
    );
    // Restorable before the purge time.
    let restored = env.tenants.reactivate(&env.admin, t.id).await.unwrap();
    assert_eq!(restored.status, TenantStatus::Active);
    assert_eq!((restored.deleted_at, restored.purge_at), (None, None));

    env.tenants.delete(&env.admin, t.id).await.unwrap();
    assert!(env.tenants.purge_due(&env.admin).await.unwrap().is_empty());
    env.clock
        .advance(ate_core::SqlTenantStore::DEFAULT_RETENTION + TimeDelta::seconds(1));
    assert_kind(
        env.tenants.reactivate(&env.admin, t.id).await,
        ErrorKind::Conflict,
    );
    assert_eq!(env.tenants.purge_due(&env.admin).await.unwrap(), vec![t.id]);
    assert_kind(env.tenants.get(&env.admin, t.id).await, ErrorKind::NotFound);
    assert_eq!(count_rows(&env, "audit_events").await, 0);
    assert_eq!(count_rows(&env, "audit_chain_heads").await, 0);
    // The slug is free again.
    env.tenants
        .create(&env.admin, NewTenant::new("acme", "New Acme"))
        .await
        .unwrap();
}

/// Principals are confined to their tenant; only platform administrators manage tenants.
pub async fn authorization_is_enforced(env: Env) {
    let a = env
        .tenants
        .create(&env.admin, NewTenant::new("alpha", "A"))
        .await
        .unwrap();
    let b = env
        .tenants
        .create(&env.admin, NewTenant::new("beta", "B"))
        .await
        .unwrap();
    let a_owner =
        member(a.id, &[Permission::TENANT_READ, Permission::TENANT_UPDATE]).role("super_admin");
    let a_nobody = member(a.id, &[]);

    assert_kind(
        env.tenants
            .create(&a_owner, NewTenant::new("gamma", "G"))
            .await,
        ErrorKind::PermissionDenied,
    );
    for r in [
        env.tenants.suspend(&a_owner, a.id, "x").await,
        env.tenants.delete(&a_owner, a.id).await,
        env.tenants.reactivate(&a_owner, a.id).await,
    ] {
        assert_kind(r, ErrorKind::PermissionDenied);
    }
    assert_kind(
        env.tenants.purge_due(&a_owner).await,
        ErrorKind::PermissionDenied,
    );
    // Another tenant: denied by id without revealing existence, invisible by slug.
    assert_kind(
        env.tenants.get(&a_owner, b.id).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        env.tenants.get(&a_owner, TenantId::new()).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        env.tenants.get_by_slug(&a_owner, "beta").await,
        ErrorKind::NotFound,
    );
    assert_kind(
        env.tenants
            .update(&a_owner, b.id, TenantUpdate::new().name("pwned"))
            .await,
        ErrorKind::PermissionDenied,
    );
    // Own tenant: readable with the permission, not without it.
    assert_eq!(
        env.tenants.get_by_slug(&a_owner, "alpha").await.unwrap().id,
        a.id
    );
    assert_kind(
        env.tenants.get(&a_nobody, a.id).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        env.tenants.list(&a_nobody, ListTenants::new()).await,
        ErrorKind::PermissionDenied,
    );
    let listed = env
        .tenants
        .list(&a_owner, ListTenants::new())
        .await
        .unwrap();
    assert_eq!(
        listed.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![a.id]
    );
    // Tenant principals may rename but never change their own quotas.
    env.tenants
        .update(&a_owner, a.id, TenantUpdate::new().name("Alpha"))
        .await
        .unwrap();
    let raise = TenantSettings::with_quotas(Quotas::default().max_storage_bytes(u64::MAX));
    assert_kind(
        env.tenants
            .update(&a_owner, a.id, TenantUpdate::new().settings(raise))
            .await,
        ErrorKind::PermissionDenied,
    );
    let b_now = env.tenants.get(&env.admin, b.id).await.unwrap();
    assert_eq!(b_now, b, "tenant B is untouched");
    let slugs: HashSet<_> = env
        .tenants
        .list(&env.admin, ListTenants::new())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.slug.to_string())
        .collect();
    assert_eq!(
        slugs,
        HashSet::from(["alpha".to_string(), "beta".to_string()])
    );
}

/// Concurrent changes to one tenant apply one after another: none is lost.
pub async fn concurrent_updates_serialize(env: Env) {
    let t = env
        .tenants
        .create(&env.admin, NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (tenants, admin) = (env.tenants.clone(), env.admin.clone());
        tasks.push(tokio::spawn(async move {
            tenants
                .update(&admin, t.id, TenantUpdate::new().name(format!("Name {i}")))
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let now = env.tenants.get(&env.admin, t.id).await.unwrap();
    assert_eq!(now.revision, 11, "every update counted exactly once");
    let report = env.audit.verify_chain(&env.admin, t.id).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.events_checked, 11);
}

/// Every committed change is published on the store's change feed, after it committed, in
/// order; no-op calls and refused ones publish nothing. `status` reports every state and
/// `None` once a tenant is purged. Stores on clones of one `Db` share the feed.
pub async fn changes_are_published_after_commit(env: Env) {
    use ate_core::{SqlTenantStore, TenantChangeKind as K, TenantStore};
    let feed = env.tenants.changes();
    let mut rx = feed.subscribe();
    let start = feed.generation();
    // A second store on the same handle publishes into the same feed.
    let other = SqlTenantStore::new(env.db.clone()).with_clock(env.clock.clone());
    let t = other
        .create(&env.admin, NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    assert_eq!(
        env.tenants.status(t.id).await.unwrap(),
        Some(TenantStatus::Active)
    );
    env.tenants
        .update(&env.admin, t.id, TenantUpdate::new().name("Acme Inc"))
        .await
        .unwrap();
    // No-ops and refusals publish nothing.
    env.tenants
        .update(&env.admin, t.id, TenantUpdate::new().name("Acme Inc"))
        .await
        .unwrap();
    env.tenants.reactivate(&env.admin, t.id).await.unwrap();
    assert_kind(
        env.tenants.suspend(&env.admin, t.id, "").await,
        ErrorKind::InvalidInput,
    );
    env.tenants
        .suspend(&env.admin, t.id, "unpaid")
        .await
        .unwrap();
    assert_eq!(
        env.tenants.status(t.id).await.unwrap(),
        Some(TenantStatus::Suspended)
    );
    env.tenants.reactivate(&env.admin, t.id).await.unwrap();
    env.tenants.delete(&env.admin, t.id).await.unwrap();
    assert_eq!(
        env.tenants.status(t.id).await.unwrap(),
        Some(TenantStatus::Deleted)
    );
    env.tenants.reactivate(&env.admin, t.id).await.unwrap();
    env.tenants.delete(&env.admin, t.id).await.unwrap();
    env.clock
        .advance(SqlTenantStore::DEFAULT_RETENTION + TimeDelta::seconds(1));
    env.tenants.purge_due(&env.admin).await.unwrap();
    assert_eq!(env.tenants.status(t.id).await.unwrap(), None);
    assert_eq!(env.tenants.status(TenantId::new()).await.unwrap(), None);

    let expected = [
        K::Created,
        K::Updated,
        K::Suspended,
        K::Reactivated,
        K::Deleted,
        K::Restored,
        K::Deleted,
        K::Purged,
    ];
    let mut seen = Vec::new();
    while let Ok(change) = rx.try_recv() {
        assert_eq!(change.tenant, t.id);
        seen.push((change.kind, change.generation));
    }
    let kinds: Vec<K> = seen.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, expected);
    let generations: Vec<u64> = seen.iter().map(|(_, g)| *g).collect();
    let want: Vec<u64> = (1..=expected.len() as u64).map(|n| start + n).collect();
    assert_eq!(generations, want);
    assert_eq!(feed.generation(), start + expected.len() as u64);
    assert_eq!(other.changes().generation(), feed.generation());
}

/// `CoreTx`, the typed API other crates' stores write through: the tenant lock returns the
/// tenant's state and quotas (`NotFound` for an unknown tenant), an audit append commits or
/// rolls back with the caller's transaction, and a prepared tenant is created with its
/// event, a taken slug being `AlreadyExists`.
pub async fn core_tx_contract(env: Env) {
    use ate_core::audit::{NewAuditEvent, Outcome};
    use ate_core::{CoreError, CoreTx, SqlTenantStore, with_write_tx};
    let quotas = Quotas::default().max_users(3);
    let t = env
        .tenants
        .create(
            &env.admin,
            NewTenant::new("acme", "Acme").settings(TenantSettings::with_quotas(quotas.clone())),
        )
        .await
        .unwrap();
    let now = env.clock_now();
    let event = NewAuditEvent::new(t.id, "user:alice", actions::USER_CREATED, Outcome::Success)
        .validate()
        .unwrap();
    let run = |fail: bool| {
        let (db, event) = (env.db.clone(), event.clone());
        async move {
            let r: Result<_, CoreError> = async {
                Ok(with_write_tx!(db, |tx| {
                    let locked = tx.lock_tenant(t.id).await?;
                    tx.append_audit(&event, now).await?;
                    if fail {
                        return Err(CoreError::Conflict("the caller gave up".into()));
                    }
                    locked
                }))
            }
            .await;
            r
        }
    };
    let locked = run(false).await.unwrap();
    assert_eq!(locked.id, t.id);
    assert_eq!(locked.status, TenantStatus::Active);
    assert_eq!(locked.settings.quotas, quotas);
    locked.require_active().unwrap();
    assert_kind(run(true).await, ErrorKind::Conflict);
    let log = env
        .audit
        .query(&env.admin, AuditQuery::tenant(t.id))
        .await
        .unwrap();
    let actions_seen: Vec<&str> = log.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions_seen,
        ["tenant_created", "user_created"],
        "rolled back: no event"
    );
    assert!(
        env.audit
            .verify_chain(&env.admin, t.id)
            .await
            .unwrap()
            .is_intact()
    );

    env.tenants
        .suspend(&env.admin, t.id, "unpaid")
        .await
        .unwrap();
    let suspended = run(false).await.unwrap();
    assert_eq!(suspended.status, TenantStatus::Suspended);
    assert_kind(suspended.require_active(), ErrorKind::PermissionDenied);

    let missing = TenantId::new();
    let r: Result<(), CoreError> = async {
        with_write_tx!(env.db, |tx| {
            tx.lock_tenant(missing).await?;
        });
        Ok(())
    }
    .await;
    assert_kind(r, ErrorKind::NotFound);

    // A prepared tenant: created with its event, or not at all.
    let store = SqlTenantStore::new(env.db.clone()).with_clock(env.clock.clone());
    let prepared = store
        .prepare_create(&env.admin, NewTenant::new("globex", "Globex"), now)
        .unwrap();
    let id = prepared.tenant().id;
    let r: Result<(), CoreError> = async {
        with_write_tx!(env.db, |tx| {
            tx.insert_tenant(&prepared, now).await?;
        });
        Ok(())
    }
    .await;
    r.unwrap();
    assert_eq!(
        env.tenants.get(&env.admin, id).await.unwrap().slug.as_str(),
        "globex"
    );
    let taken = store
        .prepare_create(&env.admin, NewTenant::new("globex", "Again"), now)
        .unwrap();
    let r: Result<(), CoreError> = async {
        with_write_tx!(env.db, |tx| {
            tx.insert_tenant(&taken, now).await?;
        });
        Ok(())
    }
    .await;
    assert_kind(r, ErrorKind::AlreadyExists);
    assert_kind(
        env.tenants.get(&env.admin, taken.tenant().id).await,
        ErrorKind::NotFound,
    );
    assert_kind(
        store.prepare_create(&member(t.id, &[]), NewTenant::new("x1", "X"), now),
        ErrorKind::PermissionDenied,
    );
}

/// Every quota is accepted, on create and on update, since every one is enforced
/// (`max_projects` by ate-storage's project store, whose suite checks it).
pub async fn every_quota_is_accepted(env: Env) {
    let all = TenantSettings::with_quotas(
        Quotas::default()
            .max_users(3)
            .max_objects(10)
            .max_storage_bytes(1 << 20)
            .max_projects(5),
    );
    let t = env
        .tenants
        .create(
            &env.admin,
            NewTenant::new("acme", "Acme").settings(all.clone()),
        )
        .await
        .unwrap();
    assert_eq!(t.settings, all);
    let fewer = TenantSettings::with_quotas(Quotas::default().max_projects(1));
    let updated = env
        .tenants
        .update(
            &env.admin,
            t.id,
            TenantUpdate::new().settings(fewer.clone()),
        )
        .await
        .unwrap();
    assert_eq!(updated.settings, fewer);
    assert_eq!(
        env.tenants.get(&env.admin, t.id).await.unwrap().settings,
        fewer
    );
}
