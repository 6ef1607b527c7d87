//! Codebase imports (issue 12) against plain baselines in the same run, on `fs` blobs and a
//! SQLite file in a temporary directory under Cargo's target tmp dir (a real disk).
//!
//! Inputs are real source archives from Cargo's download cache (`$CARGO_HOME/registry/cache`,
//! filled by any build of this workspace): `tokio-1.54.1.crate` (581 entries, 5.0 MB) and
//! `linux-raw-sys-0.12.1.crate` (473 entries, 16.9 MB). A missing archive is reported and
//! its group skipped.
//!
//! * `import_<crate>`: `SnapshotStore::import_archive` into a new project (nothing to
//!   deduplicate against: every byte is hashed, chunked, compressed, encrypted and written)
//!   vs `baseline_untar_opendal`: the same `.crate` read with the `tar` and `flate2` crates,
//!   each file written with `Operator::write` of plain OpenDAL into a fresh directory
//!   (OpenDAL's fs writer syncs each file on close).
//! * `reimport_<crate>`: the same archive again into the same project (everything
//!   deduplicated) vs the first import above.
//! * `list_100k`: `SnapshotStore::list_files` of a 100,000-file snapshot with a language
//!   filter, in pages of 1,000, vs `baseline_sql`: the same keyset-paged `SELECT` of the same
//!   rows with sqlx.
//!
//! Outside criterion, it prints the stored bytes of each import and, for two successive
//! releases of one crate (`hashbrown` 0.17.1 then 0.17.2), the second import's new stored
//! bytes as a share of its logical size.

use ate_core::keys::{LocalKeyProvider, SecretKey};
use ate_core::{Db, NewTenant, Principal, ProjectId, SqlTenantStore, TenantId, TenantStore};
use ate_storage::blob::BlobStore;
use ate_storage::import::{ArchiveFormat, ImportOptions};
use ate_storage::keyring::TenantKeyring;
use ate_storage::projects::{
    FileQuery, ProjectKeyring, ProjectSpec, ProjectStore, SnapshotStore, SqlProjectStore,
    SqlSnapshotStore,
};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn test_mode() -> bool {
    std::env::args().any(|a| a == "--test")
}

/// A crate archive from Cargo's cache, if present.
fn cached_crate(name: &str) -> Option<Vec<u8>> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let cache = home.join("registry/cache");
    for index in std::fs::read_dir(cache).ok()?.flatten() {
        let path = index.path().join(format!("{name}.crate"));
        if let Ok(bytes) = std::fs::read(&path) {
            return Some(bytes);
        }
    }
    eprintln!("SKIPPED: {name}.crate is not in Cargo's cache");
    None
}

struct Fixture {
    dir: tempfile::TempDir,
    db: Db,
    projects: SqlProjectStore,
    snapshots: SqlSnapshotStore,
    admin: Principal,
    tenant: TenantId,
    n: AtomicUsize,
}

impl Fixture {
    async fn open() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("ate-codebase-bench-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("temporary directory");
        let url = format!("sqlite://{}/ate.db", dir.path().display());
        let db = Db::open(&url).await.expect("database");
        let master = Arc::new(LocalKeyProvider::new(SecretKey::from_bytes([1; 32])));
        let tenant_keys = TenantKeyring::open(db.clone(), master)
            .await
            .expect("keyring");
        let keys = ProjectKeyring::open(db.clone(), tenant_keys)
            .await
            .expect("keys");
        let blobs =
            BlobStore::open(&format!("fs://{}/blobs", dir.path().display())).expect("blob store");
        let snapshots = SqlSnapshotStore::open(db.clone(), blobs, keys)
            .await
            .expect("store");
        let projects = SqlProjectStore::open(db.clone()).await.expect("projects");
        let admin = Principal::platform_admin("system:bench").expect("admin");
        let tenant = SqlTenantStore::new(db.clone())
            .create(&admin, NewTenant::new("bench", "Bench"))
            .await
            .expect("tenant")
            .id;
        Fixture {
            dir,
            db,
            projects,
            snapshots,
            admin,
            tenant,
            n: AtomicUsize::new(0),
        }
    }

    async fn project(&self) -> ProjectId {
        let n = self.n.fetch_add(1, Ordering::Relaxed);
        self.projects
            .create(&self.admin, self.tenant, &ProjectSpec::new(format!("p{n}")))
            .await
            .expect("project")
            .id
    }

    async fn import(&self, project: ProjectId, archive: &[u8]) -> ate_storage::projects::Snapshot {
        self.snapshots
            .import_archive(
                &self.admin,
                self.tenant,
                project,
                Box::new(std::io::Cursor::new(archive.to_vec())),
                Some(ArchiveFormat::TarGz),
                ImportOptions::new(),
            )
            .await
            .expect("import")
    }
}

/// The baseline: untar with the `tar` crate, write each file with plain OpenDAL.
async fn untar_opendal(archive: &[u8], root: &std::path::Path) {
    let op = opendal::Operator::new(opendal::services::Fs::default().root(&root.to_string_lossy()))
        .expect("operator");
    let mut files = Vec::new();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    for entry in tar.entries().expect("tar") {
        let mut entry = entry.expect("entry");
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read");
        files.push((path, bytes));
    }
    for (path, bytes) in files {
        op.write(&path, bytes).await.expect("write");
    }
}

fn imports(c: &mut Criterion) {
    let rt = runtime();
    let fx = rt.block_on(Fixture::open());
    let names: &[&str] = if test_mode() {
        &["tokio-1.54.1"]
    } else {
        &["tokio-1.54.1", "linux-raw-sys-0.12.1"]
    };
    for name in names {
        let Some(archive) = cached_crate(name) else {
            continue;
        };
        let short = name.split('-').next().unwrap_or(name);
        let mut g = c.benchmark_group(format!("import_{short}"));
        g.sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .measurement_time(Duration::from_secs(20));
        let first = rt.block_on(async {
            let p = fx.project().await;
            fx.import(p, &archive).await
        });
        eprintln!(
            "{name}: {} files, {} logical bytes, {} stored bytes ({:.1}% of logical)",
            first.files,
            first.logical_bytes,
            first.new_bytes,
            100.0 * first.new_bytes as f64 / first.logical_bytes.max(1) as f64
        );
        g.bench_function("ate_import_archive", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let p = fx.project().await;
                        let start = Instant::now();
                        fx.import(p, &archive).await;
                        total += start.elapsed();
                    }
                    total
                })
            })
        });
        g.bench_function("baseline_untar_opendal", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for i in 0..iters {
                        let root = fx.dir.path().join(format!("plain-{short}-{i}"));
                        let start = Instant::now();
                        untar_opendal(&archive, &root).await;
                        total += start.elapsed();
                        let _ = std::fs::remove_dir_all(&root);
                    }
                    total
                })
            })
        });
        g.finish();
        let mut g = c.benchmark_group(format!("reimport_{short}"));
        g.sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .measurement_time(Duration::from_secs(10));
        let project = rt.block_on(async {
            let p = fx.project().await;
            fx.import(p, &archive).await;
            p
        });
        g.bench_function("ate_reimport_unchanged", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let s = fx.import(project, &archive).await;
                        total += start.elapsed();
                        assert_eq!(s.new_bytes, 0);
                    }
                    total
                })
            })
        });
        g.finish();
    }
    // Two successive releases: the second's new bytes as a share of its size.
    if let (Some(a), Some(b)) = (
        cached_crate("hashbrown-0.17.1"),
        cached_crate("hashbrown-0.17.2"),
    ) {
        rt.block_on(async {
            let p = fx.project().await;
            let one = fx.import(p, &a).await;
            let two = fx.import(p, &b).await;
            eprintln!(
                "hashbrown 0.17.1 → 0.17.2: first {} stored of {} logical; second {} new stored of {} logical ({:.1}%)",
                one.new_bytes,
                one.logical_bytes,
                two.new_bytes,
                two.logical_bytes,
                100.0 * two.new_bytes as f64 / two.logical_bytes.max(1) as f64
            );
        });
    }
}

/// A tar.gz of `n` small Rust and text files in 100 directories.
fn many_files(n: usize) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for i in 0..n {
        let (name, body) = if i % 2 == 0 {
            (
                format!("d{:03}/f{i:06}.rs", i % 100),
                format!("fn f{i}() {{}}\n"),
            )
        } else {
            (
                format!("d{:03}/f{i:06}.txt", i % 100),
                format!("text {i}\n"),
            )
        };
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder
            .append_data(&mut h, name, body.as_bytes())
            .expect("append");
    }
    builder.into_inner().expect("tar").finish().expect("gz")
}

fn listing(c: &mut Criterion) {
    let rt = runtime();
    let fx = rt.block_on(Fixture::open());
    let n = if test_mode() { 2_000 } else { 100_000 };
    let archive = many_files(n);
    let snap = rt.block_on(async {
        let p = fx.project().await;
        fx.import(p, &archive).await
    });
    let mut g = c.benchmark_group("list_100k");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("ate_list_files_language", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut seen = 0;
                let mut cursor = None;
                loop {
                    let mut q = FileQuery::new().language("Rust").limit(1000);
                    if let Some(c) = cursor.take() {
                        q = q.cursor(c);
                    }
                    let page = fx
                        .snapshots
                        .list_files(&fx.admin, fx.tenant, snap.id, &q)
                        .await
                        .expect("list");
                    seen += page.items.len();
                    match page.next_cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                assert_eq!(seen, n / 2);
            })
        })
    });
    g.bench_function("baseline_sql", |b| {
        b.iter(|| {
            rt.block_on(async {
                let ate_core::DbPool::Sqlite(pool) = fx.db.pool() else {
                    unreachable!("a SQLite file")
                };
                let mut seen = 0;
                let mut after = String::new();
                loop {
                    type Row = (
                        String,
                        String,
                        i64,
                        i64,
                        Vec<u8>,
                        Vec<u8>,
                        Option<String>,
                        i64,
                        i64,
                        i64,
                        Option<i64>,
                        Option<i64>,
                        Option<i64>,
                        Option<String>,
                        Option<String>,
                    );
                    let rows: Vec<Row> = sqlx::query_as(
                        "SELECT path, kind, size, mode, sha256, md5, language, is_vendored, \
                         is_generated, is_binary, lines_code, lines_comments, lines_blank, \
                         link_target, quarantined FROM snapshot_files \
                         WHERE snapshot_id = $1 AND path > $2 AND language = $3 \
                         ORDER BY path LIMIT 1000",
                    )
                    .bind(snap.id.as_uuid())
                    .bind(&after)
                    .bind("Rust")
                    .fetch_all(pool)
                    .await
                    .expect("rows");
                    seen += rows.len();
                    match rows.last() {
                        Some(r) if rows.len() == 1000 => after = r.0.clone(),
                        _ => break,
                    }
                }
                assert_eq!(seen, n / 2);
            })
        })
    });
    g.finish();
}

criterion_group!(benches, imports, listing);
criterion_main!(benches);
