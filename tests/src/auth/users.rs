//! The verification cache following changes, and the `max_users` quota.

use super::*;

/// The verification cache never outlives a change made through this process, and a change
/// made by another process (another `Auth` over the same database) is seen within its TTL.
pub async fn verification_cache_follows_changes(env: Env) {
    let a = auth(&env).await;
    let (tenant, owner) = register(&a, "acme").await;
    let admin = owner.principal().unwrap();
    let bob = a
        .create_user(
            &admin,
            tenant,
            NewUser::new("bob@acme.example"),
            Some(&Password::new("bobs long password")),
        )
        .await
        .unwrap();
    let login = |a: Auth| async move {
        a.login(
            tenant,
            "bob@acme.example",
            &Password::new("bobs long password"),
            &client(),
        )
        .await
        .unwrap()
    };

    // A role change shows in the very next verification (the principal is rebuilt).
    let t = login(a.clone()).await;
    let p = a.verify(&t.access.token).await.unwrap();
    assert!(!p.has_permission(&USERS_READ));
    a.users()
        .update(
            &admin,
            tenant,
            bob.id,
            UserUpdate::new().roles([Role::Admin]),
        )
        .await
        .unwrap();
    let p = a.verify(&t.access.token).await.unwrap();
    assert!(
        p.has_permission(&USERS_READ),
        "stale roles served from the cache"
    );

    // Ending the session through this handle: at once.
    a.logout(&t.access.token, &client()).await.unwrap();
    assert_kind(a.verify(&t.access.token).await, ErrorKind::Unauthenticated);

    // Ending another session (not the token's own denylist entry): at once.
    let t = login(a.clone()).await;
    a.verify(&t.access.token).await.unwrap();
    a.end_session(&a.verify(&t.access.token).await.unwrap(), t.session.id)
        .await
        .unwrap();
    assert_kind(a.verify(&t.access.token).await, ErrorKind::Unauthenticated);

    // Suspending the tenant through a tenant store on the same Db handle: at once.
    let t = login(a.clone()).await;
    a.verify(&t.access.token).await.unwrap();
    env.tenants
        .suspend(&env.admin, tenant, "unpaid")
        .await
        .unwrap();
    assert_kind(a.verify(&t.access.token).await, ErrorKind::Unauthenticated);
    env.tenants.reactivate(&env.admin, tenant).await.unwrap();
    a.verify(&t.access.token).await.unwrap();

    // Another process: its own cache, same database. Its cached answer may be stale for at
    // most the TTL (1 s by default), and never after.
    let other = auth(&env).await;
    other.verify(&t.access.token).await.unwrap();
    a.users()
        .set_status(&admin, tenant, bob.id, UserStatus::Disabled)
        .await
        .unwrap();
    assert_kind(a.verify(&t.access.token).await, ErrorKind::Unauthenticated);
    assert!(
        other.verify(&t.access.token).await.is_ok(),
        "within the TTL the other process answers from its cache (documented)"
    );
    env.clock.advance(TimeDelta::milliseconds(1_000));
    assert_kind(
        other.verify(&t.access.token).await,
        ErrorKind::Unauthenticated,
    );
    // A host that changed things behind ATE's back can drop the cache itself.
    a.users()
        .set_status(&admin, tenant, bob.id, UserStatus::Active)
        .await
        .unwrap();
    let t = login(a.clone()).await;
    other.verify(&t.access.token).await.unwrap();
    a.users()
        .set_status(&admin, tenant, bob.id, UserStatus::Disabled)
        .await
        .unwrap();
    other.forget_cached(Some(bob.id));
    assert_kind(
        other.verify(&t.access.token).await,
        ErrorKind::Unauthenticated,
    );

    // With a zero TTL every verification reads the database.
    let mut c = config();
    c.verify_cache_ttl = std::time::Duration::ZERO;
    let uncached = auth_with(&env, c).await;
    a.users()
        .set_status(&admin, tenant, bob.id, UserStatus::Active)
        .await
        .unwrap();
    let t = login(a.clone()).await;
    uncached.verify(&t.access.token).await.unwrap();
    a.users()
        .set_status(&admin, tenant, bob.id, UserStatus::Disabled)
        .await
        .unwrap();
    assert_kind(
        uncached.verify(&t.access.token).await,
        ErrorKind::Unauthenticated,
    );
}

/// `Quotas::max_users` is enforced atomically: of many parallel creations only the free seats
/// succeed, the rest are `QuotaExceeded` with nothing written; disabled users keep their seat;
/// raising the quota opens seats; a registration whose organization allows no user creates
/// nothing.
pub async fn user_quota_is_enforced(env: Env) {
    use ate_core::{Quotas, TenantSettings, TenantUpdate};
    let a = auth(&env).await;
    let (tenant, _owner) = register(&a, "acme").await;
    let quota = |n| TenantSettings::with_quotas(Quotas::default().max_users(n));
    env.tenants
        .update(&env.admin, tenant, TenantUpdate::new().settings(quota(3)))
        .await
        .unwrap();
    // The owner holds one seat: two are free, six try at once.
    let attempts = (0..6).map(|i| {
        let (a, admin) = (a.clone(), env.admin.clone());
        async move {
            a.create_user(
                &admin,
                tenant,
                NewUser::new(format!("member{i}@acme.example")).name("Member"),
                None,
            )
            .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let created: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(created.len(), 2, "{results:?}");
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{e}");
        assert!(e.to_string().contains("at most 3 users"), "{e}");
    }
    let users = a
        .users()
        .list(&env.admin, tenant, None, None)
        .await
        .unwrap();
    assert_eq!(users.items.len(), 3);
    let created_events = actions_of(&env, tenant)
        .await
        .into_iter()
        .filter(|a| a == actions::USER_CREATED.as_str())
        .count();
    assert_eq!(
        created_events, 3,
        "a refused creation is not audited as made"
    );
    // A disabled user still holds its seat.
    a.users()
        .set_status(&env.admin, tenant, created[0].id, UserStatus::Disabled)
        .await
        .unwrap();
    assert_kind(
        a.create_user(&env.admin, tenant, NewUser::new("late@acme.example"), None)
            .await,
        ErrorKind::QuotaExceeded,
    );
    // A raised quota opens a seat, one.
    env.tenants
        .update(&env.admin, tenant, TenantUpdate::new().settings(quota(4)))
        .await
        .unwrap();
    a.create_user(&env.admin, tenant, NewUser::new("late@acme.example"), None)
        .await
        .unwrap();
    // The seats, counted by status: what the quota is measured against.
    let counts = a.users().count(&env.admin, tenant).await.unwrap();
    assert_eq!(
        (counts.total, counts.active, counts.disabled, counts.locked),
        (4, 3, 1, 0)
    );
    let (other, _) = register(&a, "globex").await;
    assert_eq!(a.users().count(&env.admin, other).await.unwrap().total, 1);
    assert_kind(
        a.users()
            .count(&Principal::new(other, "user:x").unwrap(), tenant)
            .await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        a.create_user(&env.admin, tenant, NewUser::new("later@acme.example"), None)
            .await,
        ErrorKind::QuotaExceeded,
    );
    // An organization that allows no user cannot be registered: neither exists after.
    assert_kind(
        a.register(
            NewTenant::new("nobody", "Nobody").settings(quota(0)),
            NewUser::new("owner@nobody.example").name("Owner"),
            &Password::new(PASSWORD),
        )
        .await,
        ErrorKind::QuotaExceeded,
    );
    assert_kind(
        env.tenants.get_by_slug(&env.admin, "nobody").await,
        ErrorKind::NotFound,
    );
    // One seat is enough for the owner.
    a.register(
        NewTenant::new("solo", "Solo").settings(quota(1)),
        NewUser::new("owner@solo.example").name("Owner"),
        &Password::new(PASSWORD),
    )
    .await
    .unwrap();
}

/// Every user reads and renames itself, and nothing more; `get_any` finds a user for a
/// platform administrator and, elsewhere, only inside the actor's own tenant.
pub async fn users_manage_their_own_profile(env: Env) {
    let a = auth(&env).await;
    let (acme, owner) = register(&a, "acme").await;
    let admin = owner.principal().unwrap();
    let member = a
        .create_user(
            &admin,
            acme,
            NewUser::new("m@acme.example").name("Mem"),
            Some(&Password::new(PASSWORD)),
        )
        .await
        .unwrap();
    let me = member.principal().unwrap();
    assert_eq!(a.profile(&me).await.unwrap().email, "m@acme.example");
    let renamed = a.update_profile(&me, "  Member One ").await.unwrap();
    assert_eq!(renamed.name, "Member One");
    assert_eq!(renamed.revision, member.revision + 1);
    assert_eq!(renamed.roles, member.roles, "a rename keeps the roles");
    assert_kind(
        a.update_profile(&me, "bad\u{7}name").await,
        ErrorKind::InvalidInput,
    );
    assert_kind(
        a.update_profile(&me, &"x".repeat(201)).await,
        ErrorKind::InvalidInput,
    );
    // The store method refuses to rename anyone else, even for an administrator.
    assert_kind(
        a.users()
            .update_own_name(&admin, acme, member.id, "Hijacked")
            .await,
        ErrorKind::PermissionDenied,
    );
    assert_eq!(a.profile(&me).await.unwrap().name, "Member One");
    let audit = actions_of(&env, acme).await;
    assert!(audit.iter().any(|x| x == "user_updated"), "{audit:?}");

    // get_any: the platform finds anyone; a tenant's admin only its own users.
    let (globex, other) = register(&a, "globex").await;
    let other_admin = other.principal().unwrap();
    assert_eq!(
        a.users()
            .get_any(&env.admin, member.id)
            .await
            .unwrap()
            .tenant,
        acme
    );
    assert_eq!(
        a.users().get_any(&admin, member.id).await.unwrap().id,
        member.id
    );
    assert_kind(
        a.users().get_any(&other_admin, member.id).await,
        ErrorKind::NotFound,
    );
    assert_kind(
        a.users().get_any(&env.admin, ate_core::UserId::new()).await,
        ErrorKind::NotFound,
    );
    assert_ne!(acme, globex);
}

/// A deployment's extra role permissions are in every verified principal, count as held
/// when granting, and follow a role change.
pub async fn roles_carry_the_deployments_permissions(env: Env) {
    let projects_read = Permission::new("projects:read").unwrap();
    let projects_delete = Permission::new("projects:delete").unwrap();
    let mut c = config();
    c.role_permissions = RolePermissions::new()
        .grant(Role::User, [projects_read.clone()])
        .grant(
            Role::Admin,
            [projects_read.clone(), projects_delete.clone()],
        );
    let a = auth_with(&env, c).await;
    let (acme, owner) = register(&a, "acme").await;
    let owner_login = a
        .login(acme, &owner.email, &Password::new(PASSWORD), &client())
        .await
        .unwrap();
    let admin = a.verify(&owner_login.access.token).await.unwrap();
    assert!(admin.has_permission(&projects_delete));
    // The admin holds projects:delete through its role, so it may grant it.
    let bob = a
        .create_user(
            &admin,
            acme,
            NewUser::new("bob@acme.example").permission(projects_delete.clone()),
            Some(&Password::new(PASSWORD)),
        )
        .await
        .unwrap();
    let login = a
        .login(
            acme,
            "bob@acme.example",
            &Password::new(PASSWORD),
            &client(),
        )
        .await
        .unwrap();
    let p = a.verify(&login.access.token).await.unwrap();
    assert!(
        p.has_permission(&projects_read),
        "the user role's extra permission"
    );
    assert!(p.has_permission(&projects_delete), "the granted permission");
    assert!(!p.has_permission(&USERS_READ));
    a.users()
        .update(&admin, acme, bob.id, UserUpdate::new().permissions([]))
        .await
        .unwrap();
    let p = a.verify(&login.access.token).await.unwrap();
    assert!(p.has_permission(&projects_read));
    assert!(!p.has_permission(&projects_delete));
    // Without the configuration, the built-in roles carry none of it.
    let plain = auth(&env).await;
    let p = plain.verify(&login.access.token).await.unwrap();
    assert!(!p.has_permission(&projects_read));
}
