//! Test backends: every conformance case runs against each of them.
//!
//! | backend | how |
//! | --- | --- |
//! | `SqliteMemory` | `sqlite::memory:`, private to the test |
//! | `SqliteFile` | a SQLite file in a fresh temporary directory |
//! | `Postgres` | a fresh schema in the database named by `ATE_TEST_POSTGRES_URL` (created if missing), dropped after the test |
//!
//! When `ATE_TEST_POSTGRES_URL` is unset, PostgreSQL cases print a notice and pass without
//! running, except under `CI=true`, where unset or unreachable is a failure: CI must never
//! go green on a backend it did not test.

use ate_core::{AuditSink, TenantStore};
use ate_core::{Db, DbOptions, ManualClock, Principal, SqlAuditSink, SqlTenantStore};
use chrono::{DateTime, Utc};
use sqlx::Connection as _;
use std::future::Future;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

/// The environment variable naming the PostgreSQL server for tests.
pub const POSTGRES_URL_VAR: &str = "ATE_TEST_POSTGRES_URL";

/// A metadata backend under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// In-memory SQLite.
    SqliteMemory,
    /// SQLite file in WAL mode.
    SqliteFile,
    /// PostgreSQL, one schema per test.
    Postgres,
}

pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A database opened for one test, removed afterwards.
#[derive(Debug)]
pub struct TestDb {
    /// The handle under test.
    pub db: Db,
    /// The URL it was opened with (for tests that reopen it).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<(String, String)>,
}

impl TestDb {
    /// Opens a fresh database on `backend`; `None` if the backend is not configured here
    /// (never under `CI=true`).
    pub async fn open(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::SqliteMemory => Some(TestDb {
                db: Db::open("sqlite::memory:")
                    .await
                    .expect("open in-memory SQLite"),
                url: "sqlite::memory:".into(),
                _dir: None,
                pg_schema: None,
            }),
            Backend::SqliteFile => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}/ate.db", dir.path().display());
                Some(TestDb {
                    db: Db::open(&url).await.expect("open SQLite file"),
                    url,
                    _dir: Some(dir),
                    pg_schema: None,
                })
            }
            Backend::Postgres => open_postgres().await,
        }
    }

    /// Drops the PostgreSQL schema (other backends clean up on drop).
    pub async fn cleanup(self) {
        self.db.close().await;
        if let Some((admin_url, schema)) = self.pg_schema
            && let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await
        {
            let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }
}

async fn open_postgres() -> Option<TestDb> {
    let Ok(base) = std::env::var(POSTGRES_URL_VAR) else {
        if in_ci() {
            panic!(
                "CI=true but {POSTGRES_URL_VAR} is not set: PostgreSQL tests cannot be skipped in CI"
            );
        }
        eprintln!("SKIPPED: {POSTGRES_URL_VAR} is not set, so this PostgreSQL case did not run");
        return None;
    };
    ensure_database(&base).await;
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .execute(&mut admin)
        .await
        .expect("create test schema");
    let _ = admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options[search_path]={schema}");
    let db = Db::open_with(
        &url,
        DbOptions::default()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(20)),
    )
    .await
    .expect("open PostgreSQL test schema");
    Some(TestDb {
        db,
        url,
        _dir: None,
        pg_schema: Some((base, schema)),
    })
}

/// Creates the database named in `url` if it does not exist yet (tolerating a concurrent
/// creator).
async fn ensure_database(url: &str) {
    let options = sqlx::postgres::PgConnectOptions::from_str(url)
        .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is not a valid PostgreSQL URL: {e}"));
    let Some(name) = options.get_database().map(str::to_owned) else {
        return;
    };
    match sqlx::PgConnection::connect_with(&options).await {
        Ok(conn) => {
            let _ = conn.close().await;
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {
            let mut conn = sqlx::PgConnection::connect_with(&options.clone().database("postgres"))
                .await
                .unwrap_or_else(|e| panic!("cannot reach PostgreSQL to create {name}: {e}"));
            let create = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
            match sqlx::query(sqlx::AssertSqlSafe(create))
                .execute(&mut conn)
                .await
            {
                Ok(_) => {}
                // 42P04 duplicate_database, 23505 unique_violation: another test won the race.
                Err(sqlx::Error::Database(e))
                    if matches!(e.code().as_deref(), Some("42P04") | Some("23505")) => {}
                Err(e) => panic!("cannot create database {name}: {e}"),
            }
            let _ = conn.close().await;
        }
        Err(e) => panic!("cannot reach PostgreSQL at {POSTGRES_URL_VAR}: {e}"),
    }
}

/// Everything a conformance case needs: the stores under test, a controllable clock and a
/// platform administrator.
#[derive(Debug, Clone)]
pub struct Env {
    /// Which backend this is.
    pub backend: Backend,
    /// The raw database (for tampering tests).
    pub db: Db,
    /// The tenant store under test.
    pub tenants: Arc<dyn TenantStore>,
    /// The audit sink under test.
    pub audit: Arc<dyn AuditSink>,
    /// The clock both stores use.
    pub clock: Arc<ManualClock>,
    /// A platform administrator.
    pub admin: Principal,
}

/// A fixed starting time for the manual clock.
pub fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).expect("valid time") // 2026-01-01T00:00:00Z
}

impl Env {
    /// An environment over an already opened test database.
    pub fn for_tests(backend: Backend, db: Db) -> Env {
        Env::new(backend, db)
    }

    fn new(backend: Backend, db: Db) -> Env {
        let clock = Arc::new(ManualClock::new(epoch()));
        let tenants = SqlTenantStore::new(db.clone()).with_clock(clock.clone());
        let audit = SqlAuditSink::new(db.clone()).with_clock(clock.clone());
        Env {
            backend,
            db,
            tenants: Arc::new(tenants),
            audit: Arc::new(audit),
            clock,
            admin: Principal::platform_admin("system:conformance").expect("valid subject"),
        }
    }
}

/// Runs one conformance case against `backend`, then cleans up.
pub async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(test_db) = TestDb::open(backend).await else {
        return;
    };
    case(Env::new(backend, test_db.db.clone())).await;
    test_db.cleanup().await;
}

/// The environment variable naming the S3-compatible server for tests.
pub const S3_ENDPOINT_VAR: &str = "ATE_TEST_S3_ENDPOINT";
/// The bucket the tests use (created on first use).
pub const S3_TEST_BUCKET: &str = "ate-test";

/// A blob backend under test: opened by URL, or an OpenDAL operator built by hand and given
/// to [`BlobStore::from_operator`](ate_storage::blob::BlobStore::from_operator), as a host bringing
/// its own OpenDAL service would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobBackendKind {
    /// `memory://`.
    Memory,
    /// `fs:///tmp/...`.
    Fs,
    /// `s3://ate-test/<fresh prefix>` on the server named by `ATE_TEST_S3_ENDPOINT`.
    S3,
    /// `Operator::new(services::Memory)`.
    MemoryOperator,
    /// `Operator::new(services::Fs)` on a fresh temporary directory, with no
    /// `atomic_write_dir`: OpenDAL writes in place, so the store must stage uploads itself.
    FsOperator,
    /// `Operator::new(services::S3)` with its own HTTP transport, on the server named by
    /// `ATE_TEST_S3_ENDPOINT` (a fresh prefix of the test bucket).
    S3Operator,
}

/// A blob store opened for one test; `_dir` keeps an fs backend's directory alive.
#[derive(Debug)]
pub struct TestBlobs {
    /// The store under test.
    pub store: ate_storage::blob::BlobStore,
    /// Its URL, or a description of the hand-built operator.
    pub url: String,
    /// The directory of a local (`fs`) store.
    pub fs_root: Option<std::path::PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

/// The S3 test server's endpoint, after making sure the test bucket exists; `None` (never
/// under `CI=true`) when `ATE_TEST_S3_ENDPOINT` is unset.
fn s3_endpoint() -> Option<String> {
    let Ok(endpoint) = std::env::var(S3_ENDPOINT_VAR) else {
        if in_ci() {
            panic!("CI=true but {S3_ENDPOINT_VAR} is not set: S3 tests cannot be skipped in CI");
        }
        eprintln!("SKIPPED: {S3_ENDPOINT_VAR} is not set, so this S3 case did not run");
        return None;
    };
    ensure_bucket(&endpoint);
    Some(endpoint)
}

/// An S3 operator on `endpoint`, built by hand the way a host would build one.
fn s3_operator(endpoint: &str, root: &str) -> opendal::Operator {
    let credentials = ate_storage::blob::S3Credentials::from_env()
        .expect("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set for the S3 test server");
    let builder = opendal::services::S3::default()
        .bucket(S3_TEST_BUCKET)
        .root(root)
        .endpoint(endpoint)
        .region("us-east-1")
        .access_key_id(&credentials.access_key_id)
        .secret_access_key(&credentials.secret_access_key)
        .disable_config_load()
        .disable_ec2_metadata();
    let transport =
        opendal::HttpTransporter::new(opendal_http_transport_reqwest::ReqwestTransport::default());
    // A host would retry transient failures, as `BlobStore::open` does for its S3 URLs (the
    // loopback moto server answers 500 now and then when a key is deleted during a listing).
    opendal::Operator::new(builder)
        .expect("build an S3 operator")
        .with_context(opendal::OperationContext::new().with_http_transport(transport))
        .layer(opendal::layers::RetryLayer::new().with_jitter())
}

impl TestBlobs {
    /// Opens a fresh, empty blob store; `None` if the backend is not configured here (never
    /// under `CI=true`).
    pub async fn open(kind: BlobBackendKind) -> Option<TestBlobs> {
        use ate_storage::blob::BlobStore;
        let fresh_prefix = || format!("run-{}", uuid::Uuid::now_v7().simple());
        let blobs = match kind {
            BlobBackendKind::Memory => TestBlobs::by_url("memory://".into(), None),
            BlobBackendKind::Fs => {
                let dir = tempfile::tempdir().expect("temporary directory");
                TestBlobs::by_url(format!("fs://{}", dir.path().display()), Some(dir))
            }
            BlobBackendKind::S3 => {
                let endpoint = s3_endpoint()?;
                let prefix = fresh_prefix();
                TestBlobs::by_url(
                    format!("s3://{S3_TEST_BUCKET}/{prefix}/?endpoint={endpoint}"),
                    None,
                )
            }
            BlobBackendKind::MemoryOperator => {
                let op = opendal::Operator::new(opendal::services::Memory::default())
                    .expect("build a memory operator");
                TestBlobs {
                    store: BlobStore::from_operator(op).expect("memory operator accepted"),
                    url: "operator: memory".into(),
                    fs_root: None,
                    _dir: None,
                }
            }
            BlobBackendKind::FsOperator => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let root = dir.path().to_str().expect("UTF-8 temporary directory");
                let op = opendal::Operator::new(opendal::services::Fs::default().root(root))
                    .expect("build an fs operator");
                TestBlobs {
                    store: BlobStore::from_operator(op).expect("fs operator accepted"),
                    url: format!("operator: fs {root}"),
                    fs_root: Some(dir.path().to_owned()),
                    _dir: Some(dir),
                }
            }
            BlobBackendKind::S3Operator => {
                let endpoint = s3_endpoint()?;
                let root = format!("/{}/", fresh_prefix());
                TestBlobs {
                    store: BlobStore::from_operator(s3_operator(&endpoint, &root))
                        .expect("S3 operator accepted"),
                    url: format!("operator: s3 {endpoint} {root}"),
                    fs_root: None,
                    _dir: None,
                }
            }
        };
        Some(blobs)
    }

    fn by_url(url: String, dir: Option<tempfile::TempDir>) -> TestBlobs {
        let store = ate_storage::blob::BlobStore::open(&url).expect("open blob store");
        TestBlobs {
            store,
            fs_root: dir.as_ref().map(|d| d.path().to_owned()),
            url,
            _dir: dir,
        }
    }
}

/// Creates the test bucket with a plain HTTP `PUT` (the S3 test server accepts it without a
/// signature; an existing bucket is fine).
fn ensure_bucket(endpoint: &str) {
    use std::io::{Read, Write};
    let authority = endpoint
        .strip_prefix("http://")
        .unwrap_or_else(|| {
            panic!("{S3_ENDPOINT_VAR} must be an http:// loopback URL, got {endpoint}")
        })
        .trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(authority)
        .unwrap_or_else(|e| panic!("cannot reach the S3 test server at {endpoint}: {e}"));
    write!(
        stream,
        "PUT /{S3_TEST_BUCKET} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send bucket creation");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response.split_whitespace().nth(1).unwrap_or("");
    assert!(
        status == "200" || status == "409",
        "creating bucket {S3_TEST_BUCKET} failed: {}",
        response.lines().next().unwrap_or("")
    );
}

/// Runs one blob-store conformance case against `kind`.
pub async fn run_blobs<F, Fut>(kind: BlobBackendKind, case: F)
where
    F: FnOnce(TestBlobs) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(blobs) = TestBlobs::open(kind).await {
        case(blobs).await;
    }
}
