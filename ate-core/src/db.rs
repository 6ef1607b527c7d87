//! The database handle: [`Db`].
//!
//! One handle, opened by URL, for every ATE store:
//!
//! | URL | backend |
//! | --- | --- |
//! | `sqlite://path/to/ate.db`, `sqlite:ate.db` | SQLite file (created if missing), WAL mode |
//! | `sqlite::memory:` | private in-memory SQLite database (tests) |
//! | `postgres://user@host/db`, `postgresql://…` | PostgreSQL (feature `postgres`, on by default) |
//!
//! Defaults: SQLite runs in WAL mode with `synchronous=FULL`, a 5 s busy timeout and foreign
//! keys on; PostgreSQL gets a pool of 10 connections. Every crate owns its migrations
//! ([`Migrations`]); `ate-core`'s run inside [`Db::open`], each other crate runs its own when
//! its stores are opened, and each crate records them in its own table
//! (`_ate_<crate>_migrations`) so crates never fight over version numbers.
//!
//! ```
//! # tokio_test_block_on(async {
//! let db = ate_core::Db::open("sqlite::memory:").await?;
//! assert_eq!(db.backend(), ate_core::DbBackend::Sqlite);
//! # Ok::<(), ate_core::CoreError>(()) });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

use crate::error::CoreError;
use crate::tenant::TenantChanges;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::str::FromStr;
use std::time::Duration;

#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DbBackend {
    /// SQLite (file or in-memory).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Tuning for [`Db::open_with`]. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DbOptions {
    /// Maximum pooled connections (default 8 for SQLite files, 10 for PostgreSQL; an
    /// in-memory SQLite database always uses exactly one).
    pub max_connections: Option<u32>,
    /// How long to wait for a connection, including the first connect (default 10 s).
    pub acquire_timeout: Duration,
    /// How long SQLite waits on a locked database before failing (default 5 s).
    pub sqlite_busy_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            max_connections: None,
            acquire_timeout: Duration::from_secs(10),
            sqlite_busy_timeout: Duration::from_secs(5),
        }
    }
}

impl DbOptions {
    /// Sets [`DbOptions::acquire_timeout`].
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets [`DbOptions::max_connections`].
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = Some(n);
        self
    }
}

/// A connection pool for one backend. Stores match on it through [`with_pool!`](crate::with_pool) and
/// [`with_write_tx!`](crate::with_write_tx) so each query is written once for every backend.
///
/// Deliberately exhaustive: adding a backend must fail to compile in every store that has
/// not learned it yet, rather than fail at run time.
#[derive(Debug, Clone)]
pub enum DbPool {
    /// A SQLite pool.
    Sqlite(SqlitePool),
    /// A PostgreSQL pool.
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
}

/// A pooled database handle; cheap to clone, shared by every store.
///
/// Clones share one pool and one feed of [tenant changes](crate::TenantChanges), which
/// every tenant store on the handle publishes into.
#[derive(Debug, Clone)]
pub struct Db {
    pool: DbPool,
    tenant_changes: TenantChanges,
    /// SQLite: this handle's writers take turns here before `BEGIN IMMEDIATE`.
    write_turns: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// How long a writer waits for its turn before going to SQLite's own busy wait.
    write_wait: Duration,
}

/// One crate's embedded migrations, for both backends.
///
/// Every ATE crate offers its own at the same place, `ate_<crate>::migrations()`, built
/// from `sqlx::migrate!`:
///
/// ```text
/// pub fn migrations() -> ate_core::Migrations {
///     ate_core::Migrations::new(
///         "storage",
///         sqlx::migrate!("migrations/sqlite"),
///         sqlx::migrate!("migrations/postgres"),
///     )
/// }
/// ```
#[derive(Debug)]
pub struct Migrations {
    component: &'static str,
    sqlite: Migrator,
    postgres: Migrator,
}

impl Migrations {
    /// Bundles the migrations of `component` (a short lowercase name such as `core`).
    pub fn new(component: &'static str, sqlite: Migrator, postgres: Migrator) -> Self {
        Migrations {
            component,
            sqlite,
            postgres,
        }
    }

    /// The component's name.
    pub fn component(&self) -> &'static str {
        self.component
    }

    fn table_name(&self) -> String {
        format!("_ate_{}_migrations", self.component)
    }
}

impl Db {
    /// Opens `url` with default [`DbOptions`] and runs `ate-core`'s migrations.
    ///
    /// Errors: [`CoreError::InvalidInput`] for a malformed URL or unknown scheme,
    /// [`CoreError::Unsupported`] for a backend this build lacks, and
    /// [`CoreError::Unavailable`] (retryable) when the database cannot be reached.
    pub async fn open(url: &str) -> Result<Db, CoreError> {
        Db::open_with(url, DbOptions::default()).await
    }

    /// Opens `url` with explicit options and runs `ate-core`'s migrations.
    pub async fn open_with(url: &str, options: DbOptions) -> Result<Db, CoreError> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        let pool = match scheme {
            "sqlite" => open_sqlite(url, &options).await?,
            "postgres" | "postgresql" => open_postgres(url, &options).await?,
            "mysql" | "mariadb" => {
                return Err(CoreError::Unsupported(format!(
                    "{scheme}:// databases are not supported; use sqlite:// or postgres://"
                )));
            }
            _ => {
                // Never echo the URL: it may carry a password.
                return Err(CoreError::invalid(
                    "database URL",
                    format!(
                        "unknown scheme {:?}; expected sqlite://path, sqlite::memory: or postgres://…",
                        truncate_for_message(scheme, 32)
                    ),
                ));
            }
        };
        let db = Db {
            pool,
            tenant_changes: TenantChanges::new(),
            write_turns: std::sync::Arc::default(),
            write_wait: options.sqlite_busy_timeout,
        };
        db.migrate(&crate::migrations()).await?;
        Ok(db)
    }

    /// Runs `migrations` (idempotent; on PostgreSQL concurrent runners serialize on an
    /// advisory lock). Crates call this when their stores are opened.
    pub async fn migrate(&self, migrations: &Migrations) -> Result<(), CoreError> {
        let table = migrations.table_name();
        let result = match &self.pool {
            DbPool::Sqlite(pool) => {
                let mut m = clone_migrator(&migrations.sqlite);
                m.dangerous_set_table_name(table);
                m.run(pool).await
            }
            #[cfg(feature = "postgres")]
            DbPool::Postgres(pool) => {
                let mut m = clone_migrator(&migrations.postgres);
                m.dangerous_set_table_name(table);
                m.run(pool).await
            }
        };
        result.map_err(|e| migrate_error(migrations.component, e))
    }

    /// The backend in use.
    pub fn backend(&self) -> DbBackend {
        match &self.pool {
            DbPool::Sqlite(_) => DbBackend::Sqlite,
            #[cfg(feature = "postgres")]
            DbPool::Postgres(_) => DbBackend::Postgres,
        }
    }

    /// The tenant-change feed this handle's tenant stores share (see
    /// [`TenantStore::changes`](crate::TenantStore::changes)).
    pub(crate) fn tenant_changes(&self) -> &TenantChanges {
        &self.tenant_changes
    }

    /// On SQLite, waits for this handle's turn to write and holds it until the guard is
    /// dropped ([`with_write_tx!`](crate::with_write_tx) takes it around each write
    /// transaction); `None` on PostgreSQL, whose writers lock rows, not the database.
    ///
    /// SQLite has one writer at a time. Without turns, writers that find the database
    /// locked poll it in SQLite's busy handler, sleeping 1 ms, then 2, 5, 10 … up to 100 ms
    /// between tries: under load most of a writer's time goes to those sleeps. Taking turns
    /// in the process hands the lock over at once, in arrival order. Other processes still
    /// meet the busy handler. A writer that has waited longer than the busy timeout goes on
    /// without its turn (and meets the busy handler), so a caller that nests write
    /// transactions fails as it did before rather than waiting forever.
    pub async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.pool {
            DbPool::Sqlite(_) => {
                tokio::time::timeout(self.write_wait, self.write_turns.clone().lock_owned())
                    .await
                    .ok()
            }
            #[cfg(feature = "postgres")]
            DbPool::Postgres(_) => None,
        }
    }

    /// Checks that the database answers (for a host's readiness probe): one round trip
    /// on a pooled connection. `Unavailable` when it cannot be reached or the pool is
    /// closed.
    pub async fn ping(&self) -> Result<(), CoreError> {
        match &self.pool {
            DbPool::Sqlite(p) => {
                sqlx::query("SELECT 1").execute(p).await?;
            }
            #[cfg(feature = "postgres")]
            DbPool::Postgres(p) => {
                sqlx::query("SELECT 1").execute(p).await?;
            }
        }
        Ok(())
    }

    /// The underlying pool, for store implementations (prefer [`with_pool!`](crate::with_pool)).
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Closes every pooled connection; later calls fail with `Unavailable`.
    pub async fn close(&self) {
        match &self.pool {
            DbPool::Sqlite(p) => p.close().await,
            #[cfg(feature = "postgres")]
            DbPool::Postgres(p) => p.close().await,
        }
    }
}

fn clone_migrator(m: &Migrator) -> Migrator {
    let mut out = Migrator::DEFAULT;
    out.migrations = m.migrations.clone();
    out.locking = m.locking;
    out.no_tx = m.no_tx;
    out
}

fn migrate_error(component: &str, e: sqlx::migrate::MigrateError) -> CoreError {
    use sqlx::migrate::MigrateError as M;
    match e {
        M::Execute(inner) | M::ExecuteMigration(inner, _) => {
            let err = CoreError::from(inner);
            match err {
                CoreError::Unavailable { .. } => err,
                other => CoreError::Internal(format!("{component} migration failed: {other}")),
            }
        }
        M::VersionMissing(v) => CoreError::Conflict(format!(
            "the database has {component} migration {v}, which this build does not know: \
             it was migrated by a newer ATE"
        )),
        M::VersionMismatch(v) => CoreError::Integrity(format!(
            "{component} migration {v} differs from the one applied to this database"
        )),
        M::Dirty(v) => CoreError::Conflict(format!(
            "{component} migration {v} was left partially applied; repair the database first"
        )),
        other => CoreError::Internal(format!("{component} migrations: {other}")),
    }
}

async fn open_sqlite(url: &str, options: &DbOptions) -> Result<DbPool, CoreError> {
    let connect = SqliteConnectOptions::from_str(url)
        .map_err(|e| CoreError::invalid("database URL", format!("bad SQLite URL: {e}")))?;
    let in_memory = url.starts_with("sqlite::memory:") || url.contains("mode=memory");
    let connect = connect
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(options.sqlite_busy_timeout);
    let mut pool = SqlitePoolOptions::new().acquire_timeout(options.acquire_timeout);
    let connect = if in_memory {
        // An in-memory database lives as long as a connection to it: keep exactly one,
        // forever, so the data outlives idle periods and every caller sees the same data.
        pool = pool
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
        connect
    } else {
        pool = pool.max_connections(options.max_connections.unwrap_or(8));
        connect.journal_mode(SqliteJournalMode::Wal)
    };
    let pool = pool
        .connect_with(connect)
        .await
        .map_err(|e| CoreError::Unavailable {
            message: format!("cannot open SQLite database: {e}"),
            source: Some(Box::new(e)),
        })?;
    Ok(DbPool::Sqlite(pool))
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str, options: &DbOptions) -> Result<DbPool, CoreError> {
    let connect = PgConnectOptions::from_str(url)
        .map_err(|e| CoreError::invalid("database URL", format!("bad PostgreSQL URL: {e}")))?;
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections.unwrap_or(10))
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect)
        .await
        .map_err(|e| match CoreError::from(e) {
            CoreError::Unavailable { message, source } => CoreError::Unavailable {
                message: format!("cannot reach PostgreSQL: {message}"),
                source,
            },
            // Authentication failures, a missing database, and the like.
            other => CoreError::Unavailable {
                message: format!("cannot open PostgreSQL database: {other}"),
                source: None,
            },
        })?;
    Ok(DbPool::Postgres(pool))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_url: &str, _options: &DbOptions) -> Result<DbPool, CoreError> {
    Err(CoreError::Unsupported(
        "this build of ate-core has no PostgreSQL support (enable the `postgres` feature)".into(),
    ))
}

fn truncate_for_message(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl From<sqlx::Error> for CoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind as K;
        match e {
            sqlx::Error::Database(ref db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                match db.kind() {
                    K::UniqueViolation => CoreError::AlreadyExists {
                        what: "record",
                        key: db.constraint().unwrap_or("unique key").to_string(),
                    },
                    K::ForeignKeyViolation => CoreError::not_found("referenced record", code),
                    K::CheckViolation | K::NotNullViolation => {
                        CoreError::invalid("record", db.message().to_string())
                    }
                    _ => match code.as_str() {
                        // PostgreSQL serialization failure / deadlock: retry the transaction.
                        "40001" | "40P01" => CoreError::Database {
                            message: db.message().to_string(),
                            retryable: true,
                            source: Some(e),
                        },
                        // SQLite BUSY / LOCKED (and their extended codes) after the busy timeout.
                        c if is_sqlite_busy(c) => CoreError::Unavailable {
                            message: format!("database is locked: {}", db.message()),
                            source: Some(Box::new(e)),
                        },
                        _ => CoreError::Database {
                            message: db.message().to_string(),
                            retryable: false,
                            source: Some(e),
                        },
                    },
                }
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => CoreError::Unavailable {
                message: e.to_string(),
                source: Some(Box::new(e)),
            },
            sqlx::Error::RowNotFound => CoreError::not_found("row", "query returned no rows"),
            other => CoreError::Database {
                message: other.to_string(),
                retryable: false,
                source: Some(other),
            },
        }
    }
}

fn is_sqlite_busy(code: &str) -> bool {
    // Primary codes 5 (BUSY) and 6 (LOCKED); extended codes keep them in the low byte.
    code.parse::<i32>()
        .map(|c| matches!(c & 0xff, 5 | 6))
        .unwrap_or(false)
}

/// Whether `e` is a unique-constraint violation (any backend).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Converts a time to the integer microseconds every ATE table stores.
pub fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Converts stored microseconds back to a time.
pub fn from_micros(micros: i64) -> Result<DateTime<Utc>, CoreError> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| CoreError::Internal(format!("stored timestamp {micros} is out of range")))
}

/// Runs `$body` with `$pool` bound to the concrete pool of whichever backend `$db` uses.
///
/// The body is written once and type-checked against every backend, so a query that does
/// not work on one of them fails to compile rather than at run time.
#[cfg(feature = "postgres")]
#[macro_export]
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $crate::Db::pool(&$db) {
            $crate::DbPool::Sqlite($pool) => $body,
            $crate::DbPool::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$pool` bound to the concrete pool of whichever backend `$db` uses.
#[cfg(not(feature = "postgres"))]
#[macro_export]
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $crate::Db::pool(&$db) {
            $crate::DbPool::Sqlite($pool) => $body,
        }
    };
}

/// Runs `$body` inside a write transaction bound to `$tx`, committing if the body finishes
/// and rolling back if it returns early (for example through `?`).
///
/// On SQLite the transaction starts with `BEGIN IMMEDIATE`, taking the write lock up front so
/// concurrent writers queue instead of failing with a stale snapshot; writers of one handle
/// take turns ([`Db::write_turn`]) rather than poll the lock. The
/// enclosing function's error type must implement `From<CoreError>`.
#[cfg(feature = "postgres")]
#[macro_export]
macro_rules! with_write_tx {
    ($db:expr, |$tx:ident| $body:expr) => {
        match $crate::Db::pool(&$db) {
            $crate::DbPool::Sqlite(pool) => {
                let _turn = $crate::Db::write_turn(&$db).await;
                let mut $tx = pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err($crate::CoreError::from)?;
                let out = $body;
                $tx.commit().await.map_err($crate::CoreError::from)?;
                out
            }
            $crate::DbPool::Postgres(pool) => {
                let mut $tx = pool.begin().await.map_err($crate::CoreError::from)?;
                let out = $body;
                $tx.commit().await.map_err($crate::CoreError::from)?;
                out
            }
        }
    };
}

/// Runs `$body` inside a write transaction bound to `$tx` (SQLite-only build).
#[cfg(not(feature = "postgres"))]
#[macro_export]
macro_rules! with_write_tx {
    ($db:expr, |$tx:ident| $body:expr) => {
        match $crate::Db::pool(&$db) {
            $crate::DbPool::Sqlite(pool) => {
                let _turn = $crate::Db::write_turn(&$db).await;
                let mut $tx = pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err($crate::CoreError::from)?;
                let out = $body;
                $tx.commit().await.map_err($crate::CoreError::from)?;
                out
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorKind};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn ping_answers_until_the_pool_closes() {
        rt().block_on(async {
            let db = Db::open("sqlite::memory:").await.unwrap();
            db.ping().await.unwrap();
            db.close().await;
            let e = db.ping().await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        });
    }

    #[test]
    fn rejects_invalid_urls_without_echoing_secrets() {
        rt().block_on(async {
            for url in [
                "",
                "nonsense",
                "http://example.com/db",
                "ftp://user:hunter2@host/db",
            ] {
                let err = Db::open(url).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidInput, "{url:?}: {err}");
                assert!(!err.to_string().contains("hunter2"), "{err}");
            }
            let err = Db::open("mysql://root@127.0.0.1/test").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unsupported);
        });
    }

    #[test]
    fn unreachable_sqlite_path_is_unavailable() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/missing-dir/sub/ate.db", dir.path().display());
            let err = Db::open_with(
                &url,
                DbOptions::default().acquire_timeout(Duration::from_secs(2)),
            )
            .await
            .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
            assert!(err.is_retryable());
        });
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn unreachable_postgres_is_unavailable_and_retryable() {
        rt().block_on(async {
            // Port 1 on loopback: nothing listens there, so the connect is refused at once.
            let err = Db::open_with(
                "postgres://nobody:hunter2@127.0.0.1:1/none",
                DbOptions::default().acquire_timeout(Duration::from_secs(2)),
            )
            .await
            .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
            assert!(err.is_retryable());
            assert!(!err.to_string().contains("hunter2"), "{err}");
        });
    }

    #[test]
    fn sqlite_file_uses_wal_and_reopens() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/ate.db", dir.path().display());
            let db = Db::open(&url).await.unwrap();
            let DbPool::Sqlite(pool) = db.pool() else {
                panic!("expected SQLite")
            };
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(fk, 1);
            db.close().await;
            // Opening again re-runs migrations idempotently.
            Db::open(&url).await.unwrap();
        });
    }

    #[test]
    fn micros_round_trip() {
        let now = Utc::now();
        let back = from_micros(to_micros(now)).unwrap();
        assert_eq!(back.timestamp_micros(), now.timestamp_micros());
        assert!(from_micros(i64::MAX).is_err());
    }
}
