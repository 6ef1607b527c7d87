//! Signing keys, every signature algorithm, and password hashes upgraded on login.

use super::*;
use ate_core::Clock;

/// Rotating the signing key: new tokens use the new key, old ones verify until they
/// expire, and the JWKS lists exactly the keys that still verify.
pub async fn signing_keys_rotate(env: Env) {
    let a = auth(&env).await;
    let (tenant, _) = register(&a, "acme").await;
    let (pw, c) = (Password::new(PASSWORD), client());
    let login = || a.login(tenant, "owner@acme.example", &pw, &c);
    let old = login().await.unwrap();
    assert_eq!(
        a.tokens().jwks().unwrap()["keys"].as_array().unwrap().len(),
        1
    );
    assert_kind(
        a.tokens()
            .rotate(&Principal::new(tenant, "user:x").unwrap())
            .await,
        ErrorKind::PermissionDenied,
    );
    let kid = a.tokens().rotate(&env.admin).await.unwrap();
    let new = login().await.unwrap();
    assert!(a.verify(&old.access.token).await.is_ok());
    assert!(a.verify(&new.access.token).await.is_ok());
    let jwks = a.tokens().jwks().unwrap();
    let kids: Vec<_> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids.len(), 2);
    assert!(kids.contains(&kid));
    // A second process sees the rotation (and still verifies both).
    let other = auth(&env).await;
    assert!(other.verify(&new.access.token).await.is_ok());
    assert!(other.verify(&old.access.token).await.is_ok());
    // Once the old tokens have expired, a further rotation retires the first key.
    env.clock.advance(TimeDelta::minutes(20));
    a.tokens().rotate(&env.admin).await.unwrap();
    let states: Vec<_> = a
        .tokens()
        .keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.state)
        .collect();
    assert_eq!(states, ["retired", "verify_only", "active"]);
    assert_eq!(
        a.tokens().jwks().unwrap()["keys"].as_array().unwrap().len(),
        2
    );
}

/// Every supported signing algorithm issues tokens that verify (EdDSA is the default).
pub async fn every_algorithm_signs_and_verifies(env: Env) {
    for alg in [SigningAlgorithm::ES256, SigningAlgorithm::RS256] {
        let mut c = config();
        c.tokens.algorithm = alg;
        let a = auth_with(&env, c).await;
        let slug = format!("org-{}", alg.as_str().to_lowercase());
        let (tenant, _) = register(&a, &slug).await;
        // The first key was created by the first Auth opened on this database; rotate so
        // the configured algorithm signs.
        a.tokens().rotate(&env.admin).await.unwrap();
        let t = a
            .login(
                tenant,
                &format!("owner@{slug}.example"),
                &Password::new(PASSWORD),
                &client(),
            )
            .await
            .unwrap();
        assert!(a.verify(&t.access.token).await.is_ok(), "{alg}");
        let jwks = a.tokens().jwks().unwrap();
        assert!(
            jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["alg"] == alg.as_str()),
            "{jwks}"
        );
        // Tampering with the signature or payload is caught.
        let mut forged = t.access.token.clone();
        forged.pop();
        forged.push(if t.access.token.ends_with('A') {
            'B'
        } else {
            'A'
        });
        assert_kind(a.verify(&forged).await, ErrorKind::Unauthenticated);
        assert_kind(a.verify("not.a.jwt").await, ErrorKind::Unauthenticated);
        assert_kind(
            a.verify(&"a".repeat(20_000)).await,
            ErrorKind::Unauthenticated,
        );
    }
}

async fn stored_hash(env: &Env, user: ate_core::UserId) -> String {
    ate_core::with_pool!(env.db, |pool| {
        sqlx::query_scalar::<_, String>("SELECT password_hash FROM auth_users WHERE id = $1")
            .bind(user.as_uuid())
            .fetch_one(pool)
            .await
            .unwrap()
    })
}

/// Imported bcrypt hashes and hashes with outdated Argon2id parameters are upgraded on the
/// next successful login (and only then); an admin reset ends the user's sessions.
pub async fn hashes_are_upgraded_on_login(env: Env) {
    let fast = auth(&env).await;
    let (tenant, owner) = register(&fast, "acme").await;
    let admin = owner.principal().unwrap();
    let bcrypt = ate_auth::password::import_bcrypt(&bcrypt_hash("imported secret phrase")).unwrap();
    let legacy = fast
        .import_user(&admin, tenant, NewUser::new("legacy@acme.example"), bcrypt)
        .await
        .unwrap();
    assert!(stored_hash(&env, legacy.id).await.starts_with("$2b$"));
    assert!(matches!(
        fast.login(
            tenant,
            "legacy@acme.example",
            &Password::new("wrong phrase here"),
            &client()
        )
        .await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(
        stored_hash(&env, legacy.id).await.starts_with("$2b$"),
        "no upgrade on failure"
    );
    fast.login(
        tenant,
        "legacy@acme.example",
        &Password::new("imported secret phrase"),
        &client(),
    )
    .await
    .unwrap();
    assert!(stored_hash(&env, legacy.id).await.starts_with("$argon2id$"));
    // The owner's hash used the fast test parameters; a login under the real (OWASP)
    // parameters rehashes it.
    assert!(
        !stored_hash(&env, owner.id)
            .await
            .contains("m=19456,t=2,p=1")
    );
    let mut real = config();
    real.insecure_fast_hashing_for_tests = false;
    let strong = auth_with(&env, real).await;
    let s = strong
        .login(
            tenant,
            "owner@acme.example",
            &Password::new(PASSWORD),
            &client(),
        )
        .await
        .unwrap();
    assert!(
        stored_hash(&env, owner.id)
            .await
            .contains("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    // An admin reset: the new password works, every session and token of the user ends.
    let bob_pw = Password::new("bob's first passphrase");
    let bob = fast
        .create_user(
            &admin,
            tenant,
            NewUser::new("bob@acme.example"),
            Some(&bob_pw),
        )
        .await
        .unwrap();
    let bs = fast
        .login(tenant, "bob@acme.example", &bob_pw, &client())
        .await
        .unwrap();
    env.clock.advance(TimeDelta::seconds(1));
    let reset = Password::new("a reset passphrase for bob");
    fast.reset_password(&admin, tenant, bob.id, &reset)
        .await
        .unwrap();
    assert_kind(
        fast.refresh(&bs.refresh, &client()).await,
        ErrorKind::Unauthenticated,
    );
    assert_kind(
        fast.verify(&bs.access.token).await,
        ErrorKind::Unauthenticated,
    );
    fast.login(tenant, "bob@acme.example", &reset, &client())
        .await
        .unwrap();
    // A member cannot reset anyone's password.
    let member = fast.verify(&bs.access.token).await;
    assert!(member.is_err());
    let _ = s;
}

fn bcrypt_hash(password: &str) -> String {
    // A real bcrypt hash at cost 10, made here so the test carries no opaque constant.
    bcrypt::hash(password, 10).unwrap()
}

/// Delegated tokens (what a gateway forwards upstream): they verify against the JWKS for
/// their own audience only, carry the caller's subject, tenant and roles, expire on time,
/// and are never accepted as access tokens by the API that issued them.
pub async fn delegated_tokens_verify_only_for_their_audience(env: Env) {
    let a = auth(&env).await;
    let (tenant, _) = register(&a, "acme").await;
    let login = a
        .login(
            tenant,
            "owner@acme.example",
            &Password::new(PASSWORD),
            &client(),
        )
        .await
        .unwrap();
    let caller = a.verify(&login.access.token).await.unwrap();
    let t = a
        .tokens()
        .delegate(&caller, "svc:billing", TimeDelta::seconds(60))
        .unwrap();
    assert_eq!(t.expires_at, env.clock.now() + TimeDelta::seconds(60));
    let keys = KeySet::from_jwks(&a.tokens().jwks().unwrap().to_string()).unwrap();
    let now = env.clock.now().timestamp();
    let verifier = Verifier::new(keys.clone(), a.tokens().issuer(), "svc:billing").unwrap();
    let claims = verifier.verify(&t.token, now).unwrap();
    assert_eq!(claims.sub, caller.subject());
    assert_eq!(claims.tenant, tenant.to_string());
    assert_eq!(claims.roles, caller.roles().collect::<Vec<_>>());
    assert_eq!(claims.sid, None);
    // Another audience, the API itself, and after expiry: refused.
    let other = Verifier::new(keys, a.tokens().issuer(), "svc:other").unwrap();
    assert!(other.verify(&t.token, now).is_err());
    assert_kind(a.verify(&t.token).await, ErrorKind::Unauthenticated);
    assert!(verifier.verify(&t.token, now + 3600).is_err());
    // A platform administrator's token names the platform.
    let p = a
        .tokens()
        .delegate(&env.admin, "svc:billing", TimeDelta::seconds(5))
        .unwrap();
    assert_eq!(verifier.verify(&p.token, now).unwrap().tenant, "platform");
    // Bad input.
    let d = |aud: &str, secs: i64| a.tokens().delegate(&caller, aud, TimeDelta::seconds(secs));
    assert_kind(d("", 60), ErrorKind::InvalidInput);
    assert_kind(d(&"a".repeat(513), 60), ErrorKind::InvalidInput);
    assert_kind(d("ate-tests", 60), ErrorKind::InvalidInput);
    assert_kind(d("svc:billing", 0), ErrorKind::InvalidInput);
    assert_kind(d("svc:billing", 301), ErrorKind::InvalidInput);
}

/// A token verified once is remembered (its signature is not checked again), yet a
/// tampered copy is refused, a logout in another process is seen within the denylist's
/// refresh, expiry applies, and a rotation (which empties the memory) keeps it valid.
pub async fn remembered_tokens_still_expire_and_are_revoked(env: Env) {
    let a = auth(&env).await;
    let (tenant, _) = register(&a, "acme").await;
    let (pw, c) = (Password::new(PASSWORD), client());
    let login = || a.login(tenant, "owner@acme.example", &pw, &c);
    let t = login().await.unwrap().access.token;
    for _ in 0..3 {
        assert!(a.tokens().verify(&t).await.is_ok());
    }
    let mut tampered = t.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_kind(
        a.tokens().verify(&tampered).await,
        ErrorKind::Unauthenticated,
    );

    // Logged out through another process: refused here once the denylist refreshes.
    let other = auth(&env).await;
    other.logout(&t, &c).await.unwrap();
    env.clock.advance(TimeDelta::seconds(2));
    assert_kind(a.tokens().verify(&t).await, ErrorKind::Unauthenticated);

    // Expiry (15 minutes and the 30 s leeway) applies to a remembered token.
    let fresh = login().await.unwrap().access.token;
    assert!(a.tokens().verify(&fresh).await.is_ok());
    env.clock.advance(TimeDelta::minutes(16));
    assert_kind(a.tokens().verify(&fresh).await, ErrorKind::Unauthenticated);

    // A rotation reloads the keys and empties the memory; the token still verifies with
    // the old key until it expires.
    let again = login().await.unwrap().access.token;
    assert!(a.tokens().verify(&again).await.is_ok());
    a.tokens().rotate(&env.admin).await.unwrap();
    assert!(a.tokens().verify(&again).await.is_ok());
}

/// `delegate_cached` hands the same token back for the same principal, audience and
/// lifetime while half its lifetime is left, and a fresh one otherwise: another role set,
/// audience or lifetime, past half-life, or after a key rotation.
pub async fn delegated_tokens_are_reused_for_half_their_lifetime(env: Env) {
    let a = auth(&env).await;
    let (tenant, _) = register(&a, "acme").await;
    let t = a.tokens();
    let minute = TimeDelta::seconds(60);
    let caller = Principal::new(tenant, "user:ada").unwrap().role("admin");
    let first = t.delegate_cached(&caller, "svc:billing", minute).unwrap();
    assert_eq!(
        t.delegate_cached(&caller, "svc:billing", minute).unwrap(),
        first
    );
    let fewer_roles = Principal::new(tenant, "user:ada").unwrap();
    for other in [
        t.delegate_cached(&fewer_roles, "svc:billing", minute),
        t.delegate_cached(&caller.clone().role("auditor"), "svc:billing", minute),
        t.delegate_cached(
            &Principal::new(tenant, "user:bob").unwrap().role("admin"),
            "svc:billing",
            minute,
        ),
        t.delegate_cached(
            &Principal::new(TenantId::new(), "user:ada")
                .unwrap()
                .role("admin"),
            "svc:billing",
            minute,
        ),
        t.delegate_cached(&caller, "svc:ledger", minute),
        t.delegate_cached(&caller, "svc:billing", TimeDelta::seconds(61)),
    ] {
        assert_ne!(other.unwrap().token, first.token);
    }
    // Refused inputs stay refused.
    assert_kind(
        t.delegate_cached(&caller, "ate-tests", minute),
        ErrorKind::InvalidInput,
    );
    // Still half its lifetime left: reused; then a new one.
    env.clock.advance(TimeDelta::seconds(30));
    assert_eq!(
        t.delegate_cached(&caller, "svc:billing", minute).unwrap(),
        first
    );
    env.clock.advance(TimeDelta::seconds(1));
    let second = t.delegate_cached(&caller, "svc:billing", minute).unwrap();
    assert_ne!(second.token, first.token);
    assert_eq!(second.expires_at, env.clock.now() + minute);
    // A rotation forgets them.
    t.rotate(&env.admin).await.unwrap();
    assert_ne!(
        t.delegate_cached(&caller, "svc:billing", minute)
            .unwrap()
            .token,
        second.token
    );
}
