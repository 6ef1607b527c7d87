//! Workflow engine throughput and submit→start latency, next to a bare SQL job queue on the
//! same database, in the same run.
//!
//! * `workflow/<db>/engine_one_node`: `RUNS` one-node runs submitted in batches, then
//!   `WORKERS` engine workers run them; node completions per second. Twice: with 16 places
//!   per worker (32 handlers at once), and with 64 (128).
//! * `workflow/<db>/engine_chain10`: `RUNS / 10` runs of a 10-node chain; node completions
//!   per second; the same two sizes.
//! * `workflow/<db>/baseline`: the plainest durable queue: a `jobs` table, `WORKERS` tasks
//!   each claiming one job (`FOR UPDATE SKIP LOCKED` on PostgreSQL; an `UPDATE … RETURNING`
//!   on SQLite) and completing it in one transaction; jobs per second. The issue's
//!   reference, which the ratios divide by. Also with as many tasks as the engine's larger
//!   size has places (`baseline_wide`): how far concurrency alone takes the bare queue.
//! * `workflow/<db>/submit_to_start`: one run at a time submitted to an idle worker (woken
//!   by run events, its poll interval an hour), the time until its handler starts; p50
//!   and p99.
//!
//! `<db>` is `sqlite_file` and `postgres` (with `ATE_TEST_POSTGRES_URL`; otherwise said and
//! skipped). A plain measurement printed in criterion's style, like `health.rs`; `-- --test`
//! runs a small size once.

use ate_core::{Db, NewTenant, Principal, SqlTenantStore, TenantId, TenantStore};
use ate_orchestrate::workflow::{
    DagSpec, MAX_SUBMIT_BATCH, NodeSpec, RunSpec, SqlWorkflowStore, StepContext, WorkerConfig,
    WorkflowEngine, WorkflowStore,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const WORKERS: usize = 2;

fn test_mode() -> bool {
    std::env::args().any(|a| a == "--test")
}

async fn tenant(db: &Db) -> (Principal, TenantId) {
    let admin = Principal::platform_admin("bench:workflow").expect("principal");
    let slug = format!("b{}", uuid::Uuid::now_v7().simple());
    let id = SqlTenantStore::new(db.clone())
        .create(&admin, NewTenant::new(&slug[..30], "Bench"))
        .await
        .expect("tenant")
        .id;
    (admin, id)
}

/// The places per worker measured: the default size, and a larger one.
const PLACES: [usize; 2] = [16, 64];

/// Node completions per second for `runs` runs of `dag` run by `WORKERS` workers with
/// `places` places each.
async fn engine_throughput(db: &Db, dag: DagSpec, runs: usize, places: usize) -> f64 {
    let (admin, t) = tenant(db).await;
    let store = Arc::new(SqlWorkflowStore::open(db.clone()).await.expect("store"));
    let done = Arc::new(AtomicU64::new(0));
    let counted = done.clone();
    let engine = WorkflowEngine::builder(store.clone())
        .step("noop", move |_: StepContext, _: Value| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::Relaxed);
                Ok(json!(null))
            }
        })
        .expect("step")
        .build();
    let nodes_per_run = dag.nodes.len();
    let spec = RunSpec::new(dag, json!(null));
    let mut left = runs;
    while left > 0 {
        let n = left.min(MAX_SUBMIT_BATCH);
        engine
            .submit_many(&admin, t, &vec![spec.clone(); n])
            .await
            .expect("submit");
        left -= n;
    }
    let total = u64::try_from(runs * nodes_per_run).unwrap_or(u64::MAX);
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            engine
                .start_worker(WorkerConfig::new(format!("bench-{i}")).concurrency(places))
                .expect("worker")
        })
        .collect();
    while done.load(Ordering::Relaxed) < total {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    for w in workers {
        w.shutdown(Duration::from_secs(5)).await;
    }
    total as f64 / took.as_secs_f64()
}

/// Jobs per second through a bare SQL queue with `claimers` tasks.
async fn baseline_throughput(db: &Db, jobs: usize, claimers: usize) -> f64 {
    let table = format!("bench_jobs_{}", uuid::Uuid::now_v7().simple());
    let postgres = db.backend() == ate_core::DbBackend::Postgres;
    let create = format!(
        "CREATE TABLE {table} (id BIGINT PRIMARY KEY, status TEXT NOT NULL, payload TEXT NOT NULL)"
    );
    exec(db, &create).await;
    exec(
        db,
        &format!("CREATE INDEX {table}_ready ON {table} (status, id)"),
    )
    .await;
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| format!("({i}, 'ready', '{{}}')"))
            .collect();
        exec(
            db,
            &format!("INSERT INTO {table} VALUES {}", values.join(",")),
        )
        .await;
    }
    let claim = if postgres {
        format!(
            "UPDATE {table} SET status = 'running' WHERE id = (SELECT id FROM {table} \
             WHERE status = 'ready' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
        )
    } else {
        format!(
            "UPDATE {table} SET status = 'running' WHERE id = (SELECT id FROM {table} \
             WHERE status = 'ready' ORDER BY id LIMIT 1) RETURNING id"
        )
    };
    let complete = format!("UPDATE {table} SET status = 'done' WHERE id = $1");
    let started = Instant::now();
    let tasks: Vec<_> = (0..claimers)
        .map(|_| {
            let (db, claim, complete) = (db.clone(), claim.clone(), complete.clone());
            tokio::spawn(async move {
                loop {
                    // Claim and complete in one transaction each, as the baseline.
                    let got: Option<i64> = ate_core::with_write_tx!(db, |tx| {
                        let id: Option<i64> =
                            sqlx::query_scalar(sqlx::AssertSqlSafe(claim.clone()))
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(ate_core::CoreError::from)?;
                        if let Some(id) = id {
                            sqlx::query(sqlx::AssertSqlSafe(complete.clone()))
                                .bind(id)
                                .execute(&mut *tx)
                                .await
                                .map_err(ate_core::CoreError::from)?;
                        }
                        id
                    });
                    if got.is_none() {
                        return Ok::<(), ate_core::CoreError>(());
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("baseline worker");
    }
    let took = started.elapsed();
    exec(db, &format!("DROP TABLE {table}")).await;
    jobs as f64 / took.as_secs_f64()
}

async fn exec(db: &Db, sql: &str) {
    let sql = sql.to_owned();
    let run = async {
        ate_core::with_pool!(db, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .execute(pool)
                .await
                .map_err(ate_core::CoreError::from)?;
        });
        Ok::<(), ate_core::CoreError>(())
    };
    run.await.expect("bench SQL");
}

/// Submit→handler-start latencies (sorted) for `samples` single runs to an idle worker.
async fn submit_to_start(db: &Db, samples: usize) -> Vec<Duration> {
    let (admin, t) = tenant(db).await;
    let store = Arc::new(SqlWorkflowStore::open(db.clone()).await.expect("store"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let engine = WorkflowEngine::builder(store.clone() as Arc<dyn WorkflowStore>)
        .step("mark", move |_: StepContext, _: Value| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(Instant::now());
                Ok(json!(null))
            }
        })
        .expect("step")
        .build();
    let worker = engine
        .start_worker(
            WorkerConfig::new("idle")
                .poll_interval(Duration::from_secs(3600))
                .maintain_interval(Duration::from_secs(3600)),
        )
        .expect("worker");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let spec = RunSpec::new(
        DagSpec::new().node(NodeSpec::step("m", "mark")),
        json!(null),
    );
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let sent = Instant::now();
        engine.submit(&admin, t, &spec).await.expect("submit");
        let started = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the handler started within 10 s")
            .expect("channel");
        out.push(started - sent);
        // Let the completion land before the next sample.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.shutdown(Duration::from_secs(5)).await;
    out.sort();
    out
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn chain(n: usize) -> DagSpec {
    (0..n).fold(DagSpec::new(), |dag, i| {
        let node = NodeSpec::step(format!("n{i}"), "noop");
        dag.node(if i == 0 {
            node
        } else {
            node.depends_on(format!("n{}", i - 1))
        })
    })
}

async fn bench(name: &str, db: Db) {
    let (runs, samples) = if test_mode() { (40, 5) } else { (4_000, 200) };
    let mut engine = Vec::new();
    for places in PLACES {
        let one = engine_throughput(&db, chain(1), runs, places).await;
        let ten = engine_throughput(&db, chain(10), runs / 10, places).await;
        let handlers = places * WORKERS;
        println!(
            "workflow/{name}/engine_one_node  {handlers:>4} places {one:>10.0} node completions/s"
        );
        println!(
            "workflow/{name}/engine_chain10   {handlers:>4} places {ten:>10.0} node completions/s"
        );
        engine.push((handlers, one, ten));
    }
    let base = baseline_throughput(&db, runs, WORKERS).await;
    let claimers = PLACES[1] * WORKERS;
    let wide = baseline_throughput(&db, runs, claimers).await;
    println!("workflow/{name}/baseline         {WORKERS:>4} tasks  {base:>10.0} jobs/s");
    println!("workflow/{name}/baseline_wide    {claimers:>4} tasks  {wide:>10.0} jobs/s");
    for (handlers, one, ten) in engine {
        println!(
            "workflow/{name}/ratio            {handlers:>4} places: one node {:.2}x, chain {:.2}x the baseline",
            one / base,
            ten / base
        );
    }
    let lat = submit_to_start(&db, samples).await;
    println!(
        "workflow/{name}/submit_to_start    p50 {:.2} ms, p99 {:.2} ms ({} samples)",
        quantile(&lat, 0.50).as_secs_f64() * 1e3,
        quantile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.len()
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        bench("sqlite_file", Db::open(&url).await.expect("sqlite")).await;
        match std::env::var("ATE_TEST_POSTGRES_URL") {
            Ok(url) => bench("postgres", Db::open(&url).await.expect("postgres")).await,
            Err(_) => println!("workflow/postgres: skipped (ATE_TEST_POSTGRES_URL is not set)"),
        }
    });
}
