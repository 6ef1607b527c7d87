//! ate-core benches: tenant lookups and audit appends on a SQLite file.
//!
//! * `tenant_lookup/{by_id,by_slug}` vs `tenant_lookup/baseline_raw_select`: the store's
//!   authorization, validation and decoding overhead over a bare primary-key SELECT.
//! * `audit_append/chained` vs `audit_append/baseline_plain_insert`: the cost of the hash
//!   chain (tenant status check, head upsert, SHA-256, head update) over inserting the same
//!   row in its own transaction without one. Both use the same database file, WAL, `synchronous=FULL`.
//!   `paired_*` time the same operations alternating with a chained append (each timed one
//!   after one of the other kind), so all meet the same disk and WAL state; read their
//!   ratio. `paired_baseline_indexed_insert` inserts into a table of the audit table's shape
//!   (its key, unique id, two query indexes and tenant reference) without the chain: the
//!   chain's own cost is the difference to that one.

use ate_core::audit::{NewAuditEvent, Outcome, actions};
use ate_core::{
    AuditSink, Db, DbPool, NewTenant, Principal, SqlAuditSink, SqlTenantStore, TenantStore,
};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

type TenantTuple = (
    uuid::Uuid,
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

fn sqlite_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    (dir, url)
}

fn tenant_lookup(c: &mut Criterion) {
    let rt = benches::runtime();
    let (_dir, url) = sqlite_file();
    let (db, tenants, admin, ids) = rt.block_on(async {
        let db = Db::open(&url).await.expect("open");
        let tenants = SqlTenantStore::new(db.clone());
        let admin = Principal::platform_admin("system:bench").expect("subject");
        let mut ids = Vec::new();
        for i in 0..1000 {
            let t = tenants
                .create(
                    &admin,
                    NewTenant::new(format!("tenant-{i}"), format!("Tenant {i}")),
                )
                .await
                .expect("create");
            ids.push(t.id);
        }
        // Start every measurement from the same state: the setup's writes checkpointed out of
        // the WAL, and every pooled connection's page cache warm. Without this, whichever
        // bench runs first pays for it (measured: +35%).
        let DbPool::Sqlite(pool) = db.pool() else {
            unreachable!("SQLite URL")
        };
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await
            .expect("checkpoint");
        for _ in 0..20 {
            for id in &ids {
                tenants.get(&admin, *id).await.expect("warm-up");
            }
        }
        (db, tenants, admin, ids)
    });
    let DbPool::Sqlite(pool) = db.pool().clone() else {
        unreachable!("SQLite URL")
    };
    let mut group = c.benchmark_group("tenant_lookup");
    let mut i = 0usize;
    group.bench_function("baseline_raw_select", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 1) % ids.len();
            let (pool, id) = (pool.clone(), ids[i]);
            async move {
                // The same row the store reads, decoded into plain values.
                let row: TenantTuple = sqlx::query_as(
                    "SELECT id, slug, name, status, status_reason, settings, revision, \
                     created_at, updated_at, deleted_at, purge_at FROM tenants WHERE id = $1",
                )
                .bind(id.as_uuid())
                .fetch_one(&pool)
                .await
                .expect("row");
                black_box(row)
            }
        })
    });
    group.bench_function("by_id", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 1) % ids.len();
            let id = ids[i];
            let (tenants, admin) = (&tenants, &admin);
            async move { black_box(tenants.get(admin, id).await.expect("tenant")) }
        })
    });
    group.bench_function("by_slug", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 1) % ids.len();
            let slug = format!("tenant-{i}");
            let (tenants, admin) = (&tenants, &admin);
            async move { black_box(tenants.get_by_slug(admin, &slug).await.expect("tenant")) }
        })
    });
    group.finish();
}

fn audit_append(c: &mut Criterion) {
    let rt = benches::runtime();
    let (_dir, url) = sqlite_file();
    let (db, audit, tenant) = rt.block_on(async {
        let db = Db::open(&url).await.expect("open");
        let tenants = SqlTenantStore::new(db.clone());
        let admin = Principal::platform_admin("system:bench").expect("subject");
        let t = tenants
            .create(&admin, NewTenant::new("bench", "Bench"))
            .await
            .expect("create");
        let DbPool::Sqlite(pool) = db.pool() else {
            unreachable!("SQLite URL")
        };
        // The baseline table: the same columns, no chain.
        sqlx::query(
            "CREATE TABLE plain_events (tenant_id BLOB NOT NULL, seq INTEGER, \
             id BLOB NOT NULL PRIMARY KEY, \
             occurred_at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, \
             target TEXT, outcome TEXT NOT NULL, client_addr TEXT, user_agent TEXT, \
             metadata TEXT NOT NULL) STRICT",
        )
        .execute(pool)
        .await
        .expect("baseline table");
        // The second baseline: the audit table's own shape (key, unique id, the two query
        // indexes, the tenant reference) without the chain's columns and work.
        for ddl in [
            "CREATE TABLE indexed_events (tenant_id BLOB NOT NULL REFERENCES tenants (id) \
             ON DELETE CASCADE, seq INTEGER NOT NULL, id BLOB NOT NULL UNIQUE, \
             occurred_at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, \
             target TEXT, outcome TEXT NOT NULL, client_addr TEXT, user_agent TEXT, \
             metadata TEXT NOT NULL, PRIMARY KEY (tenant_id, seq)) STRICT",
            "CREATE INDEX indexed_events_by_time ON indexed_events (tenant_id, occurred_at)",
            "CREATE INDEX indexed_events_by_action ON indexed_events (tenant_id, action, seq)",
        ] {
            sqlx::query(ddl)
                .execute(pool)
                .await
                .expect("indexed baseline table");
        }
        (db.clone(), SqlAuditSink::new(db), t.id)
    });
    let DbPool::Sqlite(pool) = db.pool().clone() else {
        unreachable!("SQLite URL")
    };
    let value = serde_json::json!({ "reason": "bad_password", "attempt": 3 });
    let metadata = value.to_string();
    // Both baselines take the same row; `plain_events` leaves `seq` unindexed.
    let seq = std::sync::atomic::AtomicI64::new(0);
    let insert = |pool: sqlx::SqlitePool, sql: &'static str, metadata: String| {
        let n = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        async move {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("tx");
            sqlx::query(sql)
                .bind(tenant.as_uuid())
                .bind(n)
                .bind(uuid::Uuid::now_v7())
                .bind(0i64)
                .bind("user:alice")
                .bind("authn_login_fail")
                .bind(None::<String>)
                .bind("failure")
                .bind(Some("203.0.113.7"))
                .bind(Some("bench/1.0"))
                .bind(metadata)
                .execute(&mut *tx)
                .await
                .expect("insert");
            tx.commit().await.expect("commit");
        }
    };
    const PLAIN: &str =
        "INSERT INTO plain_events VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
    const INDEXED: &str =
        "INSERT INTO indexed_events VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
    let plain = |pool, metadata| insert(pool, PLAIN, metadata);
    let indexed = |pool, metadata| insert(pool, INDEXED, metadata);
    let chained = |audit: SqlAuditSink, metadata: serde_json::Value| async move {
        let event = NewAuditEvent::new(
            tenant,
            "user:alice",
            actions::AUTHN_LOGIN_FAIL,
            Outcome::Failure,
        )
        .client_addr([203, 0, 113, 7].into())
        .user_agent("bench/1.0")
        .metadata(metadata);
        black_box(audit.append(event).await.expect("append"));
    };
    let append = || chained(audit.clone(), value.clone());
    let bare = || plain(pool.clone(), metadata.clone());
    let shaped = || indexed(pool.clone(), metadata.clone());
    let mut group = c.benchmark_group("audit_append");
    group.bench_function("baseline_plain_insert", |b| b.to_async(&rt).iter(bare));
    group.bench_function("chained", |b| b.to_async(&rt).iter(append));
    // The same, alternating: each timed operation follows one of the other kind, so all
    // meet the same state of the disk and of SQLite's WAL (the separate runs above drift by
    // more than the difference between them).
    paired(
        &mut group,
        &rt,
        "paired_baseline_plain_insert",
        append,
        bare,
    );
    paired(
        &mut group,
        &rt,
        "paired_baseline_indexed_insert",
        append,
        shaped,
    );
    paired(&mut group, &rt, "paired_chained", bare, append);
    group.finish();
}

/// Benchmarks `timed`, running `untimed` before each call of it (outside the timing).
fn paired<U, T, FU, FT>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    untimed: U,
    timed: T,
) where
    U: Fn() -> FU,
    T: Fn() -> FT,
    FU: std::future::Future<Output = ()>,
    FT: std::future::Future<Output = ()>,
{
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let (untimed, timed) = (&untimed, &timed);
            async move {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    untimed().await;
                    let start = std::time::Instant::now();
                    timed().await;
                    total += start.elapsed();
                }
                total
            }
        })
    });
}

criterion_group!(benches, tenant_lookup, audit_append);
criterion_main!(benches);
