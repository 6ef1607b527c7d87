//! ate-auth benches: token verification, login, and refresh-token rotation.
//!
//! * `auth_verify_{eddsa,es256,rs256}`: one access token of that algorithm, verified by
//!   `TokenService::verify` (signature, claims, denylist; no database round trip: the denylist
//!   is cached and reloaded at most once a second), by `Auth::verify` (the same, plus the
//!   tenant, user and session checks, answered by the verification cache, 1 s TTL) and by
//!   `Auth::verify` with the cache off (`auth_verify_uncached`: one indexed query on a SQLite
//!   file per call), against
//!   the baseline `jsonwebtoken::decode` of the same token with the same public key,
//!   checking the same issuer, audience, `exp`/`nbf` and leeway, into a struct of the same
//!   claims.
//! * `auth_login`: `Auth::login` (default Argon2id, m = 19 MiB, t = 2, p = 1; SQLite file)
//!   and `PasswordHasher::verify` (the same check on the blocking pool), against the bare
//!   Argon2id computation with the same parameters (`argon2::Argon2::hash_password_into`
//!   on the bench thread, plus a comparison).
//! * `auth_login_failure`: an unknown email against the baseline, a wrong password for an
//!   existing user. The ratio should be 1: a difference would tell an attacker which
//!   accounts exist (a timing side channel). Each iteration makes both attempts in
//!   alternating order and times one, so both sides share the same conditions; every 50th
//!   iteration an untimed successful login resets the failure counter (no lockout).
//! * `auth_login_fast_hash`: a successful login with the tests' fast hashing beside that
//!   hash verified alone; the difference is what a login costs beyond the password hash.
//! * `auth_refresh_{sqlite,postgres}`: `Auth::refresh` rotating one session's refresh
//!   token again and again, against the baseline of a plain durable rotation in the same
//!   database (one transaction: mark the presented row spent, insert its successor).
//!   PostgreSQL uses `ATE_TEST_POSTGRES_URL` (set by `scripts/test` when a server answers)
//!   in a fresh schema dropped afterwards, through the tests' harness; without it the group
//!   is skipped with a notice (a failure under `CI=true`).

use argon2::{Algorithm, Argon2, Params, Version};
use ate_auth::LockoutPolicy;
use ate_auth::RefreshToken;
use ate_auth::jwt::SigningAlgorithm;
use ate_auth::password::{Argon2Params, Password, PasswordHasher};
use ate_auth::ratelimit::RateLimits;
use ate_auth::{Auth, AuthConfig, AuthError, ClientInfo, NewUser};
use ate_core::keys::{LocalKeyProvider, SecretKey};
use ate_core::{Db, DbPool, NewTenant, TenantId};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use serde::Deserialize;
use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tests::support::{Backend, TestDb};

const PASSWORD: &str = "correct horse battery staple";
const EMAIL: &str = "owner@acme.example";
const ISSUER: &str = "https://auth.bench";
const AUDIENCE: &str = "ate-bench";

/// An `Auth` over one database with one registered user.
struct Fixture {
    auth: Auth,
    tenant: TenantId,
    _dir: Option<tempfile::TempDir>,
}

fn client() -> ClientInfo {
    ClientInfo::addr([203, 0, 113, 7].into()).user_agent("bench/1.0")
}

fn config(algorithm: SigningAlgorithm, fast_hashing: bool) -> AuthConfig {
    let mut c = AuthConfig::new(ISSUER, AUDIENCE);
    c.tokens.algorithm = algorithm;
    c.insecure_fast_hashing_for_tests = fast_hashing;
    c.rate_limits = RateLimits::none();
    c.lockout = LockoutPolicy::default().max_failures(100);
    c
}

fn sqlite_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    (dir, url)
}

async fn fixture(db: Db, dir: Option<tempfile::TempDir>, config: AuthConfig) -> Fixture {
    let master = Arc::new(LocalKeyProvider::new(SecretKey::from_bytes([5; 32])));
    let auth = Auth::open(db, master, config).await.expect("open auth");
    let (tenant, _) = auth
        .register(
            NewTenant::new("acme", "Acme"),
            NewUser::new(EMAIL).name("Owner"),
            &Password::new(PASSWORD),
        )
        .await
        .expect("register");
    Fixture {
        auth,
        tenant: tenant.id,
        _dir: dir,
    }
}

async fn sqlite_fixture(config: AuthConfig) -> Fixture {
    let (dir, url) = sqlite_file();
    let db = Db::open(&url).await.expect("open SQLite");
    fixture(db, Some(dir), config).await
}

impl Fixture {
    async fn login(&self) -> ate_auth::Tokens {
        self.auth
            .login(self.tenant, EMAIL, &Password::new(PASSWORD), &client())
            .await
            .expect("login")
    }
}

// ---- (a) token verification ----

/// The claims ATE's tokens carry, for the baseline's decoding.
#[derive(Deserialize)]
#[allow(dead_code)] // read by serde only: decoding them is the work being measured
struct BaselineClaims {
    iss: String,
    aud: serde_json::Value,
    sub: String,
    tenant: String,
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    sid: Option<String>,
}

fn verify(c: &mut Criterion, algorithm: SigningAlgorithm) {
    let rt = benches::runtime();
    let (f, token) = rt.block_on(async {
        let f = sqlite_fixture(config(algorithm, true)).await;
        let token = f.login().await.access.token;
        (f, token)
    });
    // The same public key, from ATE's JWKS, in jsonwebtoken's form.
    let header = jsonwebtoken::decode_header(&token).expect("header");
    let kid = header.kid.expect("kid");
    let jwks = f.auth.tokens().jwks().expect("jwks");
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("signing key in the JWKS");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).expect("jwk");
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
    let mut validation = jsonwebtoken::Validation::new(match algorithm {
        SigningAlgorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        SigningAlgorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        SigningAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        other => panic!("no baseline for {other}"),
    });
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = 30;
    // Both sides accept the token before anything is timed.
    jsonwebtoken::decode::<BaselineClaims>(&token, &key, &validation).expect("baseline decode");
    rt.block_on(f.auth.verify(&token)).expect("ATE verify");

    let name = format!("auth_verify_{}", algorithm.as_str().to_ascii_lowercase());
    let mut group = c.benchmark_group(name);
    group.bench_function("baseline_jsonwebtoken_decode", |b| {
        b.iter(|| {
            black_box(
                jsonwebtoken::decode::<BaselineClaims>(black_box(&token), &key, &validation)
                    .expect("decode"),
            )
        })
    });
    group.bench_function("token_service_verify", |b| {
        let (tokens, token) = (f.auth.tokens(), &token);
        b.to_async(&rt)
            .iter(|| async move { black_box(tokens.verify(black_box(token)).await.expect("ok")) })
    });
    group.bench_function("auth_verify", |b| {
        let (auth, token) = (&f.auth, &token);
        b.to_async(&rt)
            .iter(|| async move { black_box(auth.verify(black_box(token)).await.expect("ok")) })
    });
    // A second handle on the same database (same signing keys) with the cache off.
    let mut uncached_config = config(algorithm, true);
    uncached_config.verify_cache_ttl = std::time::Duration::ZERO;
    let master = Arc::new(LocalKeyProvider::new(SecretKey::from_bytes([5; 32])));
    let uncached = rt
        .block_on(Auth::open(
            f.auth.users().db().clone(),
            master,
            uncached_config,
        ))
        .expect("open uncached auth");
    rt.block_on(uncached.verify(&token))
        .expect("ATE verify, uncached");
    group.bench_function("auth_verify_uncached", |b| {
        let (auth, token) = (&uncached, &token);
        b.to_async(&rt)
            .iter(|| async move { black_box(auth.verify(black_box(token)).await.expect("ok")) })
    });
    group.finish();
}

fn verify_eddsa(c: &mut Criterion) {
    verify(c, SigningAlgorithm::EdDSA);
}

fn verify_es256(c: &mut Criterion) {
    verify(c, SigningAlgorithm::ES256);
}

fn verify_rs256(c: &mut Criterion) {
    verify(c, SigningAlgorithm::RS256);
}

// ---- (b) login ----

fn login(c: &mut Criterion) {
    let rt = benches::runtime();
    let f = rt.block_on(sqlite_fixture(config(SigningAlgorithm::EdDSA, false)));
    let hasher = PasswordHasher::new(Argon2Params::default()).expect("default hasher");
    let password = Password::new(PASSWORD);
    let stored = hasher.hash_blocking(&password).expect("hash").into_string();
    // The bare computation with the same (default) parameters and output length.
    let d = Argon2Params::default();
    let params = Params::new(d.memory_kib, d.iterations, d.parallelism, Some(32));
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.expect("params"));
    let salt = [7u8; 16];
    let mut expected = [0u8; 32];
    argon2
        .hash_password_into(PASSWORD.as_bytes(), &salt, &mut expected)
        .expect("argon2");

    let mut group = c.benchmark_group("auth_login");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.bench_function("baseline_argon2id", |b| {
        b.iter(|| {
            let mut out = [0u8; 32];
            argon2
                .hash_password_into(black_box(PASSWORD.as_bytes()), &salt, &mut out)
                .expect("argon2");
            assert!(out == expected);
        })
    });
    group.bench_function("password_hasher_verify", |b| {
        let (hasher, password, stored) = (&hasher, &password, &stored);
        b.to_async(&rt).iter(|| async move {
            black_box(hasher.verify(password, stored).await.expect("verify"))
        })
    });
    group.bench_function("auth_login", |b| {
        let f = &f;
        b.to_async(&rt)
            .iter(|| async move { black_box(f.login().await) })
    });
    group.finish();

    login_failure(c, &rt, &f, "auth_login_failure");
    // The same with insecure, fast hashing: what is left is the paths' database work, so
    // a difference between them shows here without Argon2's noise.
    let fast = rt.block_on(sqlite_fixture(config(SigningAlgorithm::EdDSA, true)));
    login_failure(c, &rt, &fast, "auth_login_failure_fast_hash");

    // A successful login's own cost (reservation, session, audit, token) beside the same
    // fast hash verified alone: the difference is the login's overhead beyond the hash.
    let hasher = PasswordHasher::insecure_for_tests();
    let stored = hasher.hash_blocking(&password).expect("hash").into_string();
    let mut group = c.benchmark_group("auth_login_fast_hash");
    group.bench_function("baseline_password_hasher_verify", |b| {
        let (hasher, password, stored) = (&hasher, &password, &stored);
        b.to_async(&rt).iter(|| async move {
            black_box(hasher.verify(password, stored).await.expect("verify"))
        })
    });
    group.bench_function("auth_login", |b| {
        let fast = &fast;
        b.to_async(&rt)
            .iter(|| async move { black_box(fast.login().await) })
    });
    group.finish();
}

// ---- (c) unknown user vs wrong password ----

/// Every iteration makes both attempts, in alternating order, and times only one of them:
/// both benchmarks then run the same workload (the same database growth, WAL checkpoints
/// and machine drift). Timing each case in its own loop did not give that: the two cases
/// swapped places between runs by ±20%.
fn login_failure(c: &mut Criterion, rt: &tokio::runtime::Runtime, f: &Fixture, name: &str) {
    let attempts = [
        (EMAIL, Password::new("not the right password")),
        ("nobody@acme.example", Password::new(PASSWORD)),
    ];
    let mut group = c.benchmark_group(name);
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    for (timed_case, name) in [(0, "baseline_wrong_password"), (1, "unknown_user")] {
        group.bench_function(name, |b| {
            let attempts = &attempts;
            b.to_async(rt).iter_custom(|iters| async move {
                let mut timed = Duration::ZERO;
                for i in 0..iters {
                    if i % 50 == 0 {
                        // Untimed: resets the failure counter, so the account never locks.
                        f.login().await;
                    }
                    let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
                    for case in order {
                        let (email, password) = &attempts[case];
                        let start = Instant::now();
                        let outcome = f.auth.login(f.tenant, email, password, &client()).await;
                        if case == timed_case {
                            timed += start.elapsed();
                        }
                        assert!(matches!(outcome, Err(AuthError::InvalidCredentials)));
                    }
                }
                timed
            })
        });
    }
    group.finish();
}

// ---- (d) refresh rotations ----

/// The baseline's table: a token hash and whether it was spent.
fn baseline_table(db: &Db) -> &'static str {
    match db.pool() {
        DbPool::Sqlite(_) => {
            "CREATE TABLE bench_rotation (hash BLOB PRIMARY KEY, spent INTEGER NOT NULL) STRICT"
        }
        DbPool::Postgres(_) => {
            "CREATE TABLE bench_rotation (hash BYTEA PRIMARY KEY, spent INTEGER NOT NULL)"
        }
    }
}

async fn baseline_rotation(db: &Db, spend: &[u8; 32], next: &[u8; 32]) {
    const SPEND: &str = "UPDATE bench_rotation SET spent = 1 WHERE hash = $1 AND spent = 0";
    const INSERT: &str = "INSERT INTO bench_rotation (hash, spent) VALUES ($1, 0)";
    match db.pool() {
        DbPool::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("tx");
            let spent = sqlx::query(SPEND).bind(&spend[..]).execute(&mut *tx).await;
            assert_eq!(spent.expect("spend").rows_affected(), 1);
            sqlx::query(INSERT)
                .bind(&next[..])
                .execute(&mut *tx)
                .await
                .expect("insert");
            tx.commit().await.expect("commit");
        }
        DbPool::Postgres(pool) => {
            let mut tx = pool.begin().await.expect("tx");
            let spent = sqlx::query(SPEND).bind(&spend[..]).execute(&mut *tx).await;
            assert_eq!(spent.expect("spend").rows_affected(), 1);
            sqlx::query(INSERT)
                .bind(&next[..])
                .execute(&mut *tx)
                .await
                .expect("insert");
            tx.commit().await.expect("commit");
        }
    }
}

fn refresh_group(c: &mut Criterion, name: &str, rt: &tokio::runtime::Runtime, f: &Fixture) {
    let db_pool = f.auth.users().db().clone();
    let ddl = baseline_table(&db_pool);
    rt.block_on(async {
        match db_pool.pool() {
            DbPool::Sqlite(pool) => sqlx::query(ddl).execute(pool).await.map(|_| ()),
            DbPool::Postgres(pool) => sqlx::query(ddl).execute(pool).await.map(|_| ()),
        }
        .expect("baseline table");
        const FIRST: &str = "INSERT INTO bench_rotation VALUES ($1, 0)";
        let first = &[0u8; 32][..];
        match db_pool.pool() {
            DbPool::Sqlite(pool) => sqlx::query(FIRST)
                .bind(first)
                .execute(pool)
                .await
                .map(|_| ()),
            DbPool::Postgres(pool) => sqlx::query(FIRST)
                .bind(first)
                .execute(pool)
                .await
                .map(|_| ()),
        }
        .expect("first row");
    });
    let mut group = c.benchmark_group(name);
    let counter = Cell::new(0u64);
    group.bench_function("baseline_plain_rotation", |b| {
        let (db, counter) = (&db_pool, &counter);
        b.to_async(rt).iter_custom(|iters| async move {
            let start = Instant::now();
            for _ in 0..iters {
                let n = counter.get();
                counter.set(n + 1);
                let mut spend = [0u8; 32];
                spend[..8].copy_from_slice(&n.to_be_bytes());
                let mut next = [0u8; 32];
                next[..8].copy_from_slice(&(n + 1).to_be_bytes());
                baseline_rotation(db, &spend, &next).await;
            }
            start.elapsed()
        })
    });
    let current: RefCell<RefreshToken> = RefCell::new(rt.block_on(f.login()).refresh);
    group.bench_function("auth_refresh", |b| {
        let current = &current;
        b.to_async(rt).iter_custom(|iters| async move {
            let start = Instant::now();
            for _ in 0..iters {
                let token = current.borrow().clone();
                let next = f.auth.refresh(&token, &client()).await.expect("refresh");
                *current.borrow_mut() = next.refresh;
            }
            start.elapsed()
        })
    });
    group.finish();
}

fn refresh_sqlite(c: &mut Criterion) {
    let rt = benches::runtime();
    let f = rt.block_on(sqlite_fixture(config(SigningAlgorithm::EdDSA, true)));
    refresh_group(c, "auth_refresh_sqlite", &rt, &f);
}

fn refresh_postgres(c: &mut Criterion) {
    let rt = benches::runtime();
    // The tests' PostgreSQL harness: a fresh schema, dropped by `cleanup`; skipped with a
    // notice when ATE_TEST_POSTGRES_URL is unset (a failure under CI=true).
    let Some(test_db) = rt.block_on(TestDb::open(Backend::Postgres)) else {
        return;
    };
    let f = rt.block_on(fixture(
        test_db.db.clone(),
        None,
        config(SigningAlgorithm::EdDSA, true),
    ));
    refresh_group(c, "auth_refresh_postgres", &rt, &f);
    rt.block_on(test_db.cleanup());
}

criterion_group!(
    benches,
    verify_eddsa,
    verify_es256,
    verify_rs256,
    login,
    refresh_sqlite,
    refresh_postgres
);
criterion_main!(benches);
