//! The `ate-auth` conformance suite: registration, login, lockout, tokens, refresh families,
//! sessions and user management, on every metadata backend (`tests/conformance.rs`).

use crate::assert_kind;
use crate::support::Env;
use ate_auth::LockoutPolicy;
use ate_auth::RefreshToken;
use ate_auth::jwt::{KeySet, SigningAlgorithm, Verifier};
use ate_auth::password::Password;
use ate_auth::ratelimit::{Limit, RateLimits};
use ate_auth::users::{RolePermissions, USERS_MANAGE, USERS_READ};
use ate_auth::{Auth, AuthConfig, AuthError, ClientInfo, NewUser, Role, UserStatus, UserUpdate};
use ate_core::audit::{AuditQuery, actions};
use ate_core::keys::{LocalKeyProvider, SecretKey};
use ate_core::{Classify, ErrorKind, NewTenant, Permission, Principal, TenantId};
use chrono::TimeDelta;
use std::sync::Arc;

mod keys;
mod users;

pub use keys::{
    delegated_tokens_are_reused_for_half_their_lifetime,
    delegated_tokens_verify_only_for_their_audience, every_algorithm_signs_and_verifies,
    hashes_are_upgraded_on_login, remembered_tokens_still_expire_and_are_revoked,
    signing_keys_rotate,
};
pub use users::{
    roles_carry_the_deployments_permissions, user_quota_is_enforced,
    users_manage_their_own_profile, verification_cache_follows_changes,
};

const PASSWORD: &str = "correct horse battery staple";

fn config() -> AuthConfig {
    let mut c = AuthConfig::new("https://auth.test", "ate-tests");
    c.insecure_fast_hashing_for_tests = true;
    c.rate_limits = RateLimits::none();
    c
}

async fn auth_with(env: &Env, config: AuthConfig) -> Auth {
    let master = Arc::new(LocalKeyProvider::new(SecretKey::from_bytes([3; 32])));
    Auth::open_with_clock(env.db.clone(), master, config, env.clock.clone())
        .await
        .unwrap()
}

async fn auth(env: &Env) -> Auth {
    auth_with(env, config()).await
}

fn client() -> ClientInfo {
    ClientInfo::addr("203.0.113.7".parse().unwrap()).user_agent("tests/1.0")
}

async fn register(a: &Auth, slug: &str) -> (TenantId, ate_auth::User) {
    let (t, u) = a
        .register(
            NewTenant::new(slug, "Org"),
            NewUser::new(format!("owner@{slug}.example")).name("Owner"),
            &Password::new(PASSWORD),
        )
        .await
        .unwrap();
    (t.id, u)
}

/// The `acme` owner's login with the right password, from the test client.
async fn owner_login(a: &Auth, tenant: TenantId) -> Result<ate_auth::Tokens, AuthError> {
    a.login(
        tenant,
        "owner@acme.example",
        &Password::new(PASSWORD),
        &client(),
    )
    .await
}

async fn actions_of(env: &Env, tenant: TenantId) -> Vec<String> {
    env.audit
        .query(&env.admin, AuditQuery::tenant(tenant).limit(1000))
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.action.as_str().to_owned())
        .collect()
}

/// Register with an organization, log in, verify, refresh, log out.
pub async fn register_login_refresh_logout(env: Env) {
    let a = auth(&env).await;
    let (tenant, owner) = register(&a, "acme").await;
    assert_eq!(
        owner.roles.iter().copied().collect::<Vec<_>>(),
        [Role::Admin]
    );
    let tokens = a
        .login(
            tenant,
            "OWNER@acme.example",
            &Password::new(PASSWORD),
            &client(),
        )
        .await
        .unwrap();
    let p = a.verify(&tokens.access.token).await.unwrap();
    assert_eq!(p.tenant(), Some(tenant));
    assert_eq!(p.subject(), format!("user:{}", owner.id));
    assert!(p.require(tenant, &USERS_MANAGE).is_ok());
    assert!(p.require(TenantId::new(), &USERS_READ).is_err());

    env.clock.advance(TimeDelta::seconds(5));
    let next = a.refresh(&tokens.refresh, &client()).await.unwrap();
    assert_ne!(next.refresh, tokens.refresh);
    assert_eq!(next.session.id, tokens.session.id);
    assert!(a.verify(&next.access.token).await.is_ok());

    a.logout(&next.access.token, &client()).await.unwrap();
    assert_kind(
        a.verify(&next.access.token).await,
        ErrorKind::Unauthenticated,
    );
    assert_kind(
        a.refresh(&next.refresh, &client()).await,
        ErrorKind::Unauthenticated,
    );
    // Every access token of the ended session stops verifying, not just the one presented.
    assert_kind(
        a.verify(&tokens.access.token).await,
        ErrorKind::Unauthenticated,
    );
    // Another session's token is unaffected, until it expires.
    let other = owner_login(&a, tenant).await.unwrap();
    assert!(a.verify(&other.access.token).await.is_ok());
    env.clock.advance(TimeDelta::minutes(16));
    assert_kind(
        a.verify(&other.access.token).await,
        ErrorKind::Unauthenticated,
    );

    let log = actions_of(&env, tenant).await;
    for action in [
        actions::TENANT_CREATED,
        actions::USER_CREATED,
        actions::AUTHN_LOGIN_SUCCESS,
        actions::AUTHN_TOKEN_CREATED,
        actions::AUTHN_TOKEN_REVOKED,
    ] {
        assert!(
            log.iter().any(|a| a == action.as_str()),
            "{action} missing: {log:?}"
        );
    }
}

/// A wrong password, an unknown email, a disabled user and another tenant's user all get
/// the same answer; the audit log says which it was.
pub async fn failures_look_alike(env: Env) {
    let a = auth(&env).await;
    let (tenant, owner) = register(&a, "acme").await;
    let (other, _) = register(&a, "globex").await;
    let admin = owner.principal().unwrap();
    let bob = a
        .create_user(
            &admin,
            tenant,
            NewUser::new("bob@acme.example"),
            Some(&Password::new("a long enough secret")),
        )
        .await
        .unwrap();
    a.users()
        .set_status(&admin, tenant, bob.id, UserStatus::Disabled)
        .await
        .unwrap();
    let attempts = [
        (tenant, "owner@acme.example", "wrong password here"),
        (tenant, "nobody@acme.example", PASSWORD),
        (tenant, "bob@acme.example", "a long enough secret"),
        (other, "owner@acme.example", PASSWORD),
        (tenant, "not an email", PASSWORD),
    ];
    for (t, email, pw) in attempts {
        let err = a
            .login(t, email, &Password::new(pw), &client())
            .await
            .unwrap_err();
        assert!(
            matches!(err, AuthError::InvalidCredentials),
            "{email}: {err}"
        );
        assert_eq!(err.to_string(), "invalid credentials");
    }
    let fails = actions_of(&env, tenant)
        .await
        .into_iter()
        .filter(|a| a == actions::AUTHN_LOGIN_FAIL.as_str())
        .count();
    assert_eq!(fails, 4);
    // Unknown, disabled and malformed are counted (one write each, like a wrong password);
    // the wrong password is counted on the user instead.
    assert_eq!(a.users().refused_logins(&admin, tenant).await.unwrap(), 3);
    assert_eq!(
        a.users().refused_logins(&env.admin, other).await.unwrap(),
        1
    );
    assert_kind(
        a.users().refused_logins(&admin, other).await,
        ErrorKind::PermissionDenied,
    );
}

/// Parallel wrong guesses never get past the limit: exactly `max_failures` reach the
/// password check; then even the right password is refused until the lock expires.
pub async fn lockout_is_exact_under_parallel_attempts(env: Env) {
    let mut c = config();
    c.lockout = LockoutPolicy::default()
        .max_failures(3)
        .permanent_after(Some(2));
    let a = auth_with(&env, c).await;
    let (tenant, _) = register(&a, "acme").await;
    let guesses = (0..12).map(|i| {
        let a = a.clone();
        async move {
            a.login(
                tenant,
                "owner@acme.example",
                &Password::new(format!("guess number {i}")),
                &client(),
            )
            .await
        }
    });
    for r in futures::future::join_all(guesses).await {
        assert!(matches!(r, Err(AuthError::InvalidCredentials)));
    }
    let log = env
        .audit
        .query(&env.admin, AuditQuery::tenant(tenant).limit(1000))
        .await
        .unwrap()
        .items;
    let checked = log
        .iter()
        .filter(|e| e.metadata["reason"] == "bad_password")
        .count();
    assert_eq!(checked, 3, "only the allowance reached the password check");
    assert_eq!(
        log.iter()
            .filter(|e| e.action == actions::AUTHN_LOGIN_LOCK)
            .count(),
        1
    );
    let right = Password::new(PASSWORD);
    assert!(matches!(
        a.login(tenant, "owner@acme.example", &right, &client())
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    env.clock.advance(TimeDelta::seconds(61));
    a.login(tenant, "owner@acme.example", &right, &client())
        .await
        .unwrap();
    // Two lockouts in a row make it permanent.
    for round in 0..2 {
        for i in 0..3 {
            let _ = a
                .login(
                    tenant,
                    "owner@acme.example",
                    &Password::new(format!("round {round} guess {i}")),
                    &client(),
                )
                .await;
        }
        env.clock.advance(TimeDelta::minutes(30));
    }
    let owner = a
        .users()
        .get(&env.admin, tenant, a_user_id(&a, &env, tenant).await)
        .await
        .unwrap();
    assert_eq!(owner.status, UserStatus::Locked);
    assert!(matches!(
        a.login(tenant, "owner@acme.example", &right, &client())
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    a.users()
        .set_status(&env.admin, tenant, owner.id, UserStatus::Active)
        .await
        .unwrap();
    a.login(tenant, "owner@acme.example", &right, &client())
        .await
        .unwrap();
}

async fn a_user_id(a: &Auth, env: &Env, tenant: TenantId) -> ate_core::UserId {
    a.users()
        .list(&env.admin, tenant, None, None)
        .await
        .unwrap()
        .items[0]
        .id
}

/// Replaying a spent refresh token after the grace period revokes the whole family and
/// records a critical event; inside the grace, a retry gets the same successor.
pub async fn refresh_token_reuse_revokes_the_family(env: Env) {
    let a = auth(&env).await;
    let (tenant, _) = register(&a, "acme").await;
    let first = owner_login(&a, tenant).await.unwrap();
    // Two concurrent refreshes of one token: exactly one successor, given to both.
    let c = client();
    let (r1, r2) = tokio::join!(a.refresh(&first.refresh, &c), a.refresh(&first.refresh, &c));
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(r1.refresh, r2.refresh);
    let successor = r1.refresh;
    // After the grace, the spent token is a replay.
    env.clock.advance(TimeDelta::seconds(11));
    assert_kind(
        a.refresh(&first.refresh, &client()).await,
        ErrorKind::Unauthenticated,
    );
    // ...which revoked the family: the legitimate successor is dead too.
    assert_kind(
        a.refresh(&successor, &client()).await,
        ErrorKind::Unauthenticated,
    );
    let log = env
        .audit
        .query(&env.admin, AuditQuery::tenant(tenant).limit(1000))
        .await
        .unwrap()
        .items;
    let reuse: Vec<_> = log
        .iter()
        .filter(|e| e.action == actions::AUTHN_TOKEN_REUSE)
        .collect();
    assert_eq!(reuse.len(), 1);
    assert_eq!(reuse[0].metadata["severity"], "critical");
    // Garbage is rejected without touching anything.
    for bad in ["", "atr_short", &"x".repeat(5000)] {
        assert_kind(
            a.refresh(&RefreshToken::from_client(bad), &client()).await,
            ErrorKind::Unauthenticated,
        );
    }
}

/// Sessions end after their idle and absolute lifetimes; users list and end their own.
pub async fn sessions_expire_and_can_be_ended(env: Env) {
    let a = auth(&env).await;
    let (tenant, _) = register(&a, "acme").await;
    let (pw, c) = (Password::new(PASSWORD), client());
    let login = || a.login(tenant, "owner@acme.example", &pw, &c);
    let s1 = login().await.unwrap();
    let s2 = login().await.unwrap();
    let s3 = login().await.unwrap();
    let me = a.verify(&s1.access.token).await.unwrap();
    assert_eq!(a.sessions(&me).await.unwrap().len(), 3);
    a.end_session(&me, s2.session.id).await.unwrap();
    assert_kind(
        a.refresh(&s2.refresh, &client()).await,
        ErrorKind::Unauthenticated,
    );
    assert_kind(a.end_session(&me, s2.session.id).await, ErrorKind::NotFound);
    // Idle: 8 days without a refresh.
    env.clock.advance(TimeDelta::days(8));
    assert_kind(
        a.refresh(&s1.refresh, &client()).await,
        ErrorKind::Unauthenticated,
    );
    // Absolute: refreshed every 6 days, still over after 30.
    let mut t = login().await.unwrap().refresh;
    for _ in 0..4 {
        env.clock.advance(TimeDelta::days(6));
        t = a.refresh(&t, &client()).await.unwrap().refresh;
    }
    env.clock
        .advance(TimeDelta::days(6) + TimeDelta::seconds(1));
    assert_kind(a.refresh(&t, &client()).await, ErrorKind::Unauthenticated);
    // Log out everywhere: every session and every access token so far, even one issued in
    // the same second (token times have whole seconds).
    let fresh = login().await.unwrap();
    let me = a.verify(&fresh.access.token).await.unwrap();
    assert!(a.logout_everywhere(&me, &client()).await.unwrap() >= 1);
    assert_kind(
        a.verify(&fresh.access.token).await,
        ErrorKind::Unauthenticated,
    );
    assert_kind(
        a.refresh(&fresh.refresh, &client()).await,
        ErrorKind::Unauthenticated,
    );
    let _ = s3;
}

/// Disabling a user ends its sessions and tokens at once; refresh checks the user now.
pub async fn disabled_users_lose_access_at_once(env: Env) {
    let a = auth(&env).await;
    let (tenant, owner) = register(&a, "acme").await;
    let admin = owner.principal().unwrap();
    a.create_user(
        &admin,
        tenant,
        NewUser::new("bob@acme.example"),
        Some(&Password::new("bobs long password")),
    )
    .await
    .unwrap();
    let bob = a
        .login(
            tenant,
            "bob@acme.example",
            &Password::new("bobs long password"),
            &client(),
        )
        .await
        .unwrap();
    env.clock.advance(TimeDelta::seconds(1));
    a.users()
        .set_status(&admin, tenant, bob.user.id, UserStatus::Disabled)
        .await
        .unwrap();
    assert_kind(
        a.verify(&bob.access.token).await,
        ErrorKind::Unauthenticated,
    );
    assert_kind(
        a.refresh(&bob.refresh, &client()).await,
        ErrorKind::Unauthenticated,
    );
    // Suspending the tenant stops everyone in it.
    let t = owner_login(&a, tenant).await.unwrap();
    env.tenants
        .suspend(&env.admin, tenant, "unpaid")
        .await
        .unwrap();
    assert_kind(a.verify(&t.access.token).await, ErrorKind::Unauthenticated);
    assert_kind(
        a.refresh(&t.refresh, &client()).await,
        ErrorKind::Unauthenticated,
    );
    assert!(matches!(
        owner_login(&a, tenant).await,
        Err(AuthError::InvalidCredentials)
    ));
}

/// Tenant admins manage their own tenant only and cannot grant what they lack.
pub async fn admins_stay_in_their_tenant(env: Env) {
    let a = auth(&env).await;
    let (acme, owner) = register(&a, "acme").await;
    let (globex, other_owner) = register(&a, "globex").await;
    let admin = owner.principal().unwrap();
    assert_kind(
        a.create_user(&admin, globex, NewUser::new("x@globex.example"), None)
            .await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        a.users().get(&admin, globex, other_owner.id).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        a.create_user(
            &admin,
            acme,
            NewUser::new("root@acme.example").roles([Role::SuperAdmin]),
            None,
        )
        .await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        a.users()
            .update(
                &admin,
                acme,
                owner.id,
                UserUpdate::new().roles([Role::Admin, Role::User]),
            )
            .await,
        ErrorKind::PermissionDenied,
    );
    let member = a
        .create_user(&admin, acme, NewUser::new("m@acme.example"), None)
        .await
        .unwrap();
    let promoted = a
        .users()
        .update(
            &admin,
            acme,
            member.id,
            UserUpdate::new().roles([Role::Admin]),
        )
        .await
        .unwrap();
    assert_eq!(promoted.revision, 2);
    assert_kind(
        a.users()
            .update(
                &admin,
                acme,
                member.id,
                UserUpdate::new().name("Stale").expected_revision(1),
            )
            .await,
        ErrorKind::Conflict,
    );
    // A plain member cannot manage anyone.
    let plain = a
        .create_user(&admin, acme, NewUser::new("p@acme.example"), None)
        .await
        .unwrap()
        .principal()
        .unwrap();
    assert_kind(
        a.create_user(&plain, acme, NewUser::new("q@acme.example"), None)
            .await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        a.create_user(&admin, acme, NewUser::new("M@ACME.example"), None)
            .await,
        ErrorKind::AlreadyExists,
    );
    // Only a platform administrator makes a super-admin, whose tokens carry platform powers.
    let root = a
        .create_user(
            &env.admin,
            acme,
            NewUser::new("root@acme.example").roles([Role::SuperAdmin]),
            Some(&Password::new("root's own passphrase")),
        )
        .await
        .unwrap();
    let t = a
        .login(
            acme,
            "root@acme.example",
            &Password::new("root's own passphrase"),
            &client(),
        )
        .await
        .unwrap();
    let rp = a.verify(&t.access.token).await.unwrap();
    assert!(rp.is_platform_admin());
    assert!(rp.require(globex, &USERS_MANAGE).is_ok());
    assert_eq!(a.sessions(&rp).await.unwrap().len(), 1);
    a.users()
        .set_status(&rp, acme, root.id, UserStatus::Active)
        .await
        .unwrap();
    let page = a.users().list(&admin, acme, Some(2), None).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let rest = a
        .users()
        .list(&admin, acme, Some(2), page.next_cursor)
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 2);
}

/// Changing a password needs the current one and ends the other sessions; weak and
/// personal passwords are refused; an admin reset ends every session.
pub async fn password_changes(env: Env) {
    let a = auth(&env).await;
    let (tenant, owner) = register(&a, "acme").await;
    let s1 = owner_login(&a, tenant).await.unwrap();
    let s2 = owner_login(&a, tenant).await.unwrap();
    let me = a.verify(&s1.access.token).await.unwrap();
    let new = Password::new("an entirely new passphrase");
    assert!(matches!(
        a.change_password(&me, &Password::new("not the current one"), &new, None)
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    for weak in ["short", "password123", "owner@acme.example"] {
        assert_kind(
            a.change_password(&me, &Password::new(PASSWORD), &Password::new(weak), None)
                .await,
            ErrorKind::InvalidInput,
        );
    }
    a.change_password(&me, &Password::new(PASSWORD), &new, Some(s1.session.id))
        .await
        .unwrap();
    assert!(a.refresh(&s1.refresh, &client()).await.is_ok());
    assert_kind(
        a.refresh(&s2.refresh, &client()).await,
        ErrorKind::Unauthenticated,
    );
    assert!(matches!(
        owner_login(&a, tenant).await,
        Err(AuthError::InvalidCredentials)
    ));
    a.login(tenant, "owner@acme.example", &new, &client())
        .await
        .unwrap();
    // Registration applies the policy too, and writes nothing when it fails.
    assert_kind(
        a.register(
            NewTenant::new("weak", "Weak"),
            NewUser::new("a@weak.example"),
            &Password::new("1234567"),
        )
        .await,
        ErrorKind::InvalidInput,
    );
    assert_kind(
        env.tenants.get_by_slug(&env.admin, "weak").await,
        ErrorKind::NotFound,
    );
    let _ = owner;
}

/// Rate limits per client address refuse the excess with `RateLimited`.
pub async fn rate_limits_apply(env: Env) {
    let mut c = config();
    c.rate_limits = RateLimits::none();
    c.rate_limits.login_per_client = Some(Limit::new(3, TimeDelta::minutes(1)));
    let a = auth_with(&env, c).await;
    let (tenant, _) = register(&a, "acme").await;
    for _ in 0..3 {
        let _ = owner_login(&a, tenant).await.unwrap();
    }
    let err = owner_login(&a, tenant).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
    assert!(err.is_retryable());
    // Another client is not affected; the window passes.
    let elsewhere = ClientInfo::addr("198.51.100.1".parse().unwrap());
    a.login(
        tenant,
        "owner@acme.example",
        &Password::new(PASSWORD),
        &elsewhere,
    )
    .await
    .unwrap();
    env.clock.advance(TimeDelta::minutes(1));
    owner_login(&a, tenant).await.unwrap();
}

/// A temporarily locked user cannot refresh either: the lock is checked on every path that
/// issues tokens.
pub async fn locks_apply_to_refresh(env: Env) {
    let mut c = config();
    c.lockout = LockoutPolicy::default().max_failures(2);
    let a = auth_with(&env, c).await;
    let (tenant, _) = register(&a, "acme").await;
    let s = owner_login(&a, tenant).await.unwrap();
    for i in 0..2 {
        let _ = a
            .login(
                tenant,
                "owner@acme.example",
                &Password::new(format!("bad guess {i}")),
                &client(),
            )
            .await;
    }
    assert_kind(
        a.refresh(&s.refresh, &client()).await,
        ErrorKind::Unauthenticated,
    );
    assert_kind(a.verify(&s.access.token).await, ErrorKind::Unauthenticated);
    env.clock.advance(TimeDelta::minutes(2));
    // The refresh that failed during the lock did not spend the token.
    a.refresh(&s.refresh, &client()).await.unwrap();
}
