//! ate-storage's object store on the `fs` backend against plain Apache OpenDAL on the same
//! disk, in the same run.
//!
//! Setup: one temporary directory under Cargo's target tmp dir (a real disk, never tmpfs, so
//! fsync means something) holding a SQLite file (WAL, `synchronous=FULL`, through `Db::open`),
//! ATE's blobs (`fs://<dir>/blobs`) and the baseline's files (`<dir>/plain`). One tenant,
//! acted on by a platform administrator; a two-worker tokio runtime.
//!
//! * `storage_put_{1mib,256mib}`: `ObjectStore::put` (overwriting one path, which also
//!   deletes the replaced blob) vs `baseline_opendal_write`: `Operator::write` to a new file
//!   (OpenDAL's fs writer calls `sync_all` on close) plus an fsync of the directory, so the
//!   new entry is as durable as ATE's. The baseline's file is deleted outside the timing.
//!   Both sides clone the input into the call.
//! * `storage_get_{1mib,256mib}`: `ObjectStore::get` + `read_to_end` (with and without the
//!   SHA-256 check) vs `baseline_opendal_read`: `Operator::read` + `to_vec`. Both files sit in
//!   the page cache: this measures ATE's CPU and I/O-call overhead, not the disk. The 256 MiB
//!   group also opens the same sealed message in memory with Cobblestone on one and on two
//!   threads (`reference_cobblestone_open_*`): the decryption-only limit for a get.
//! * `storage_range_4kib_of_1gib`: `ObjectStore::get_range` of 4 KiB at pseudo-random
//!   (deterministic) offsets of a 1 GiB object vs `baseline_opendal_read_range`: a ranged
//!   `read_with` of the same span of a plain 1 GiB file.
//!
//! `ate_get_key_uncached` and `ate_get_range_key_uncached` repeat the 1 MiB get and the
//! ranged read with the data-key cache off (`ObjectStore::with_key_cache_ttl(ZERO)`): what
//! the cache saves, in the same run.
//!
//! `ate_get_remote_kms` and `ate_get_range_remote_kms` (and their `_key_uncached` twins) run
//! the same store with a key provider a network round trip away, as a cloud KMS is: the
//! local provider behind a fixed delay of [`KMS_ROUND_TRIP`] per call. The delay is
//! simulated (no KMS is reachable from the machines these run on); the point is what the
//! data-key cache saves when each unwrap is a round trip.
//!
//! In criterion's test mode (`-- --test`) the objects shrink (256 MiB → 4 MiB, 1 GiB →
//! 8 MiB) so every function still runs once, quickly.

use ate_core::CoreError;
use ate_core::keys::{KeyProvider, LocalKeyProvider, SecretBytes, SecretKey, WrappedKey};
use ate_core::{Db, NewTenant, Principal, SqlTenantStore, TenantId, TenantStore};
use ate_storage::blob::BlobStore;
use ate_storage::cobblestone::Cobblestone;
use ate_storage::objects::{ObjectStore, PutOptions};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use opendal::Operator;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;
/// Plaintext per write when streaming the 1 GiB object in.
const PART: usize = 8 * MIB;
/// Bytes per ranged read.
const RANGE_LEN: u64 = 4096;

/// What one call to the simulated remote KMS costs.
const KMS_ROUND_TRIP: Duration = Duration::from_millis(2);

/// The fixture's master key.
const MASTER: [u8; 32] = [7; 32];

/// A KMS a round trip away: the local provider behind [`KMS_ROUND_TRIP`] per call.
#[derive(Debug)]
struct RemoteKms(LocalKeyProvider);

#[async_trait::async_trait]
impl KeyProvider for RemoteKms {
    fn key_id(&self) -> &str {
        self.0.key_id()
    }

    async fn wrap(&self, secret: &[u8], context: &[u8]) -> Result<WrappedKey, CoreError> {
        tokio::time::sleep(KMS_ROUND_TRIP).await;
        self.0.wrap(secret, context).await
    }

    async fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<SecretBytes, CoreError> {
        tokio::time::sleep(KMS_ROUND_TRIP).await;
        self.0.unwrap(wrapped, context).await
    }
}

/// `cargo test --benches -- --test` runs each function once: keep the objects small then.
fn test_mode() -> bool {
    std::env::args().any(|a| a == "--test")
}

/// Deterministic, not all-equal content (compressibility does not matter to either side).
fn pattern(offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len)
        .map(|i| (i * 31 % 251) as u8)
        .collect()
}

/// Two workers, like the 2-core machine the results are recorded on.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The store under test and the plain baseline over the same directory.
struct Fixture {
    _dir: tempfile::TempDir,
    store: ObjectStore,
    /// The same store with its key cache off: every operation reads and unwraps its key.
    uncached: ObjectStore,
    /// The same objects through a store whose key provider is a (simulated) remote KMS,
    /// with the key cache on and off.
    remote: ObjectStore,
    remote_uncached: ObjectStore,
    admin: Principal,
    tenant: TenantId,
    plain: Operator,
    plain_root: PathBuf,
}

impl Fixture {
    async fn open() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("ate-storage-bench-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("temporary directory");
        let root = dir.path().canonicalize().expect("absolute path");
        let db = Db::open(&format!("sqlite://{}/ate.db", root.display()))
            .await
            .expect("open SQLite");
        let admin = Principal::platform_admin("system:bench").expect("subject");
        let tenant = SqlTenantStore::new(db.clone())
            .create(&admin, NewTenant::new("bench", "Bench"))
            .await
            .expect("create tenant")
            .id;
        let blobs =
            BlobStore::open(&format!("fs://{}/blobs", root.display())).expect("fs blob store");
        let master = Arc::new(LocalKeyProvider::new(SecretKey::from_bytes(MASTER)));
        let store = ObjectStore::open(db.clone(), blobs.clone(), master)
            .await
            .expect("object store");
        let kms = RemoteKms(LocalKeyProvider::new(SecretKey::from_bytes(MASTER)));
        let remote = ObjectStore::open(db, blobs, Arc::new(kms))
            .await
            .expect("object store");
        let plain_root = root.join("plain");
        std::fs::create_dir_all(&plain_root).expect("plain directory");
        let plain = Operator::new(
            opendal::services::Fs::default().root(plain_root.to_str().expect("UTF-8 path")),
        )
        .expect("plain OpenDAL operator");
        Fixture {
            _dir: dir,
            uncached: store.clone().with_key_cache_ttl(Duration::ZERO),
            store,
            remote_uncached: remote.clone().with_key_cache_ttl(Duration::ZERO),
            remote,
            admin,
            tenant,
            plain,
            plain_root,
        }
    }

    async fn ate_put(&self, path: &str, bytes: Vec<u8>) {
        self.store
            .put(&self.admin, self.tenant, path, bytes, PutOptions::default())
            .await
            .expect("ATE put");
    }

    /// Writes a new file and makes its directory entry durable.
    async fn plain_put(&self, name: &str, bytes: Vec<u8>) {
        self.plain.write(name, bytes).await.expect("OpenDAL write");
        tokio::fs::File::open(&self.plain_root)
            .await
            .expect("open directory")
            .sync_all()
            .await
            .expect("fsync directory");
    }

    async fn ate_get(&self, path: &str, verify: bool) -> Vec<u8> {
        self.store
            .get(&self.admin, self.tenant, path)
            .await
            .expect("ATE get")
            .read_to_end(verify)
            .await
            .expect("ATE read")
    }
}

fn put(c: &mut Criterion, rt: &tokio::runtime::Runtime, f: &Fixture, label: &str, len: usize) {
    let data = pattern(0, len);
    let mut group = c.benchmark_group(format!("storage_put_{label}"));
    group.throughput(Throughput::Bytes(len as u64));
    // Every iteration pays an fsync or more: flat sampling keeps the run to ~10 puts for
    // 256 MiB instead of criterion's 55 linear-sampling iterations.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(if len > MIB { 10 } else { 20 });
    group.bench_function("baseline_opendal_write", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let data = &data;
            async move {
                let mut measured = Duration::ZERO;
                for i in 0..iters {
                    let name = format!("put-{i}");
                    let start = Instant::now();
                    f.plain_put(&name, data.clone()).await;
                    measured += start.elapsed();
                    // Keep the disk from filling; not part of the put.
                    f.plain.delete(&name).await.expect("delete");
                }
                measured
            }
        })
    });
    let path = format!("bench/put-{label}");
    group.bench_function("ate_put", |b| {
        b.to_async(rt).iter(|| f.ate_put(&path, data.clone()))
    });
    group.finish();
}

fn get(c: &mut Criterion, rt: &tokio::runtime::Runtime, f: &Fixture, label: &str, len: usize) {
    let data = pattern(0, len);
    let (path, name) = (format!("bench/get-{label}"), format!("get-{label}"));
    rt.block_on(async {
        f.ate_put(&path, data.clone()).await;
        f.plain_put(&name, data.clone()).await;
    });
    let mut group = c.benchmark_group(format!("storage_get_{label}"));
    group.throughput(Throughput::Bytes(len as u64));
    if len > MIB {
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(10);
    }
    group.bench_function("baseline_opendal_read", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(f.plain.read(&name).await.expect("OpenDAL read").to_vec()) })
    });
    group.bench_function("ate_get", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(f.ate_get(&path, false).await) })
    });
    group.bench_function("ate_get_verified", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(f.ate_get(&path, true).await) })
    });
    if len <= MIB {
        for (id, store) in [
            ("ate_get_key_uncached", &f.uncached),
            ("ate_get_remote_kms", &f.remote),
            ("ate_get_remote_kms_key_uncached", &f.remote_uncached),
        ] {
            group.bench_function(id, |b| {
                b.to_async(rt).iter(|| async {
                    let reader = store.get(&f.admin, f.tenant, &path).await.expect("ATE get");
                    black_box(reader.read_to_end(false).await.expect("ATE read"))
                })
            });
        }
    }
    if len > MIB {
        // The same content sealed in memory: what decryption alone costs, on the provider
        // and chunking the store uses.
        const KEY: [u8; 32] = [0x5A; 32];
        const CTX: &[u8] = b"tenant:bench/object:1/v1";
        let sealed = Cobblestone::default().seal(&KEY, &data, CTX).expect("seal");
        drop(data);
        for threads in [1, 2] {
            let cobblestone = Cobblestone::default().with_max_threads(threads);
            let id = format!(
                "reference_cobblestone_open_{threads}_core{}",
                if threads > 1 { "s" } else { "" }
            );
            group.bench_function(id, |b| {
                b.iter(|| black_box(cobblestone.open(&KEY, &sealed, CTX).expect("open")))
            });
        }
    }
    group.finish();
}

fn range(c: &mut Criterion, rt: &tokio::runtime::Runtime, f: &Fixture, len: u64) {
    let (path, name) = ("bench/range-1gib", "range-1gib");
    rt.block_on(async {
        let mut ate = f
            .store
            .writer(&f.admin, f.tenant, path, PutOptions::default())
            .await
            .expect("ATE writer");
        let mut plain = f.plain.writer(name).await.expect("OpenDAL writer");
        for start in (0..len as usize).step_by(PART) {
            let part = pattern(start, PART.min(len as usize - start));
            plain.write(part.clone()).await.expect("OpenDAL write");
            ate.write_owned(part).await.expect("ATE write");
        }
        plain.close().await.expect("OpenDAL close");
        ate.commit().await.expect("ATE commit");
    });
    // The same offsets for both sides: a 64-bit LCG (Knuth's MMIX constants).
    let offsets = || {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        move || {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let a = (x >> 11) % (len - RANGE_LEN);
            a..a + RANGE_LEN
        }
    };
    let mut group = c.benchmark_group("storage_range_4kib_of_1gib");
    group.throughput(Throughput::Bytes(RANGE_LEN));
    group.bench_function("baseline_opendal_read_range", |b| {
        let mut next = offsets();
        b.to_async(rt).iter(|| {
            let r = next();
            async move {
                let buf = f
                    .plain
                    .read_with(name)
                    .range(r)
                    .await
                    .expect("OpenDAL ranged read");
                black_box(buf.to_vec())
            }
        })
    });
    for (id, store) in [
        ("ate_get_range", &f.store),
        ("ate_get_range_key_uncached", &f.uncached),
        ("ate_get_range_remote_kms", &f.remote),
        ("ate_get_range_remote_kms_key_uncached", &f.remote_uncached),
    ] {
        group.bench_function(id, |b| {
            let mut next = offsets();
            b.to_async(rt).iter(|| {
                let r = next();
                async move {
                    black_box(
                        store
                            .get_range(&f.admin, f.tenant, path, r)
                            .await
                            .expect("ATE ranged get"),
                    )
                }
            })
        });
    }
    group.finish();
}

fn storage(c: &mut Criterion) {
    let (large, huge) = if test_mode() {
        (4 * MIB, 8 * MIB as u64)
    } else {
        (256 * MIB, 1 << 30)
    };
    let rt = runtime();
    let f = rt.block_on(Fixture::open());
    put(c, &rt, &f, "1mib", MIB);
    put(c, &rt, &f, "256mib", large);
    get(c, &rt, &f, "1mib", MIB);
    get(c, &rt, &f, "256mib", large);
    range(c, &rt, &f, huge);
}

criterion_group!(benches, storage);
criterion_main!(benches);
