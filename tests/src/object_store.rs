//! The [`ObjectStore`] conformance suite, run on every combination of metadata backend
//! (SQLite, PostgreSQL) and blob backend (memory, fs, S3) by `tests/conformance.rs`, and on
//! OpenDAL operators built by hand and given to [`BlobStore::from_operator`].

use crate::assert_kind;
use crate::member;
use crate::support::{Backend, BlobBackendKind, Env, TestBlobs, TestDb};
use ate_core::keys::{LocalKeyProvider, SecretKey};
use ate_core::{
    Classify, ErrorKind, NewTenant, ObjectId, Principal, Quotas, Tenant, TenantId, TenantSettings,
};
use ate_storage::StorageError;
use ate_storage::blob::BlobStore;
use ate_storage::keyring::{KEY_DESTROY, KEY_ROTATE};
use ate_storage::objects::{
    DirEntry, ObjectStore, PutOptions, STORAGE_DELETE, STORAGE_READ, STORAGE_WRITE,
};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::sync::Arc;

/// What an object-store case gets.
#[derive(Debug, Clone)]
pub struct ObjEnv {
    /// Tenants, audit, clock, admin.
    pub env: Env,
    /// The store under test.
    pub store: ObjectStore,
    /// The raw blob store under it (for tampering and orphan checks).
    pub blobs: BlobStore,
    /// The directory of an `fs` blob store.
    pub fs_root: Option<std::path::PathBuf>,
}

/// Runs `case` on the metadata `backend` with the blob backend `blobs`.
pub async fn run<F, Fut>(backend: Backend, blobs: BlobBackendKind, case: F)
where
    F: FnOnce(ObjEnv) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(test_db) = TestDb::open(backend).await else {
        return;
    };
    let Some(test_blobs) = TestBlobs::open(blobs).await else {
        test_db.cleanup().await;
        return;
    };
    let env = Env::for_tests(backend, test_db.db.clone());
    let master = Arc::new(LocalKeyProvider::new(SecretKey::from_bytes([9; 32])));
    let store = ObjectStore::open(test_db.db.clone(), test_blobs.store.clone(), master)
        .await
        .unwrap()
        .with_clock(env.clock.clone());
    case(ObjEnv {
        env,
        store,
        blobs: test_blobs.store.clone(),
        fs_root: test_blobs.fs_root.clone(),
    })
    .await;
    drop(test_blobs);
    test_db.cleanup().await;
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn writer(t: TenantId) -> Principal {
    member(
        t,
        &[
            STORAGE_READ,
            STORAGE_WRITE,
            STORAGE_DELETE,
            KEY_ROTATE,
            KEY_DESTROY,
        ],
    )
}

async fn tenant(e: &ObjEnv, slug: &str) -> Tenant {
    e.env
        .tenants
        .create(&e.env.admin, NewTenant::new(slug, slug))
        .await
        .unwrap()
}

/// Objects of chunk-boundary sizes round-trip through put, stat, get and ranged gets.
pub async fn put_get_round_trip(e: ObjEnv) {
    let t = tenant(&e, "acme").await;
    let p = writer(t.id);
    for (i, len) in [0usize, 1, 16_383, 16_384, 16_385, 3 * 16_384, (2 << 20) + 7]
        .into_iter()
        .enumerate()
    {
        let path = format!("src/file-{i}.rs");
        let bytes = data(len);
        let opts = PutOptions::default()
            .content_type("text/x-rust")
            .metadata(serde_json::json!({ "lang": "rust" }));
        let info = e
            .store
            .put(&p, t.id, &path, bytes.clone(), opts)
            .await
            .unwrap();
        assert_eq!(
            (info.size, info.key_version, info.format_version),
            (len as u64, 1, 1)
        );
        assert_eq!(info.sha256, <[u8; 32]>::from(Sha256::digest(&bytes)));
        let stat = e.store.stat(&p, t.id, &path).await.unwrap();
        assert_eq!(stat, info);
        assert_eq!(stat.content_type, "text/x-rust");
        assert_eq!(stat.metadata["lang"], "rust");
        let got = e
            .store
            .get(&p, t.id, &path)
            .await
            .unwrap()
            .read_to_end(true)
            .await
            .unwrap();
        assert!(got == bytes, "size {len}");
        let n = len as u64;
        for (a, b) in [
            (0, n),
            (n / 2, n),
            (n.saturating_sub(1), n),
            (0, n.min(16_385)),
        ] {
            let part = e.store.get_range(&p, t.id, &path, a..b).await.unwrap();
            assert_eq!(part, &bytes[a as usize..b as usize], "{len}: {a}..{b}");
        }
        assert!(
            e.store
                .get_range(&p, t.id, &path, n..n)
                .await
                .unwrap()
                .is_empty()
        );
        assert_kind(
            e.store.get_range(&p, t.id, &path, n..n + 1).await,
            ErrorKind::InvalidInput,
        );
        assert_kind(
            e.store
                .get_range(&p, t.id, &path, std::ops::Range { start: 1, end: 0 })
                .await,
            ErrorKind::InvalidInput,
        );
    }
}

/// Streaming puts of uneven writes and streaming gets agree with the bytes.
pub async fn streaming_put_and_get(e: ObjEnv) {
    let t = tenant(&e, "acme").await;
    let p = writer(t.id);
    let bytes = data(3_000_001);
    let mut w = e
        .store
        .writer(&p, t.id, "big.bin", PutOptions::default())
        .await
        .unwrap();
    for piece in bytes.chunks(777_777) {
        w.write(piece).await.unwrap();
    }
    let info = w.commit().await.unwrap();
    assert_eq!(info.size, bytes.len() as u64);
    let mut r = e.store.get(&p, t.id, "big.bin").await.unwrap();
    let mut got = Vec::new();
    let mut pieces = 0;
    while let Some(chunk) = r.next_chunk().await.unwrap() {
        assert!(chunk.len() <= 1 << 20, "reads stay bounded");
        got.extend_from_slice(&chunk);
        pieces += 1;
    }
    assert!(pieces >= 3);
    assert!(got == bytes);
    // Checksums are computed only when asked for, before reading.
    assert_kind(r.verify_checksum(), ErrorKind::InvalidInput);
    let mut r = e
        .store
        .get(&p, t.id, "big.bin")
        .await
        .unwrap()
        .with_checksum();
    r.next_chunk().await.unwrap();
    assert_kind(r.verify_checksum(), ErrorKind::InvalidInput); // not at the end yet
    while r.next_chunk().await.unwrap().is_some() {}
    r.verify_checksum().unwrap();
    // A reader dropped mid-stream (with a read-ahead in flight) just stops.
    let mut r = e.store.get(&p, t.id, "big.bin").await.unwrap();
    let first = r.next_chunk().await.unwrap().unwrap();
    assert!(!first.is_empty() && first.len() < bytes.len());
    assert!(first == bytes[..first.len()]);
    drop(r);
    // An abandoned writer leaves nothing visible.
    let mut w = e
        .store
        .writer(&p, t.id, "abandoned.bin", PutOptions::default())
        .await
        .unwrap();
    w.write(&data(100)).await.unwrap();
    w.abort().await.unwrap();
    assert_kind(
        e.store.stat(&p, t.id, "abandoned.bin").await,
        ErrorKind::NotFound,
    );
}

/// Overwrites replace the object only when committed and remove the old blob.
pub async fn overwrite_replaces(e: ObjEnv) {
    let t = tenant(&e, "acme").await;
    let p = writer(t.id);
    let first = e
        .store
        .put(&p, t.id, "a.txt", b"one".to_vec(), PutOptions::default())
        .await
        .unwrap();
    e.env.clock.advance(chrono::TimeDelta::seconds(10));
    // While a replacement is being written, readers still see the old content.
    let mut w = e
        .store
        .writer(&p, t.id, "a.txt", PutOptions::default())
        .await
        .unwrap();
    w.write(b"two!").await.unwrap();
    let during = e
        .store
        .get(&p, t.id, "a.txt")
        .await
        .unwrap()
        .read_to_end(true)
        .await
        .unwrap();
    assert_eq!(during, b"one");
    let second = w.commit().await.unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(second.created_at, first.created_at);
    assert!(second.updated_at > first.updated_at);
    let now = e
        .store
        .get(&p, t.id, "a.txt")
        .await
        .unwrap()
        .read_to_end(true)
        .await
        .unwrap();
    assert_eq!(now, b"two!");
    assert_eq!(
        e.blobs.list(t.id).await.unwrap(),
        vec![second.id],
        "old blob removed"
    );
}

/// Listing by prefix, in bytewise order, one page at a time.
pub async fn list_by_prefix(e: ObjEnv) {
    let t = tenant(&e, "acme").await;
    let p = writer(t.id);
    for path in ["a/2", "a/1", "a/b/3", "b/1", "a", "A/1", "a/%", "a/_"] {
        e.store
            .put(
                &p,
                t.id,
                path,
                path.as_bytes().to_vec(),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = e.store.list(&p, t.id, "a/", Some(2), cursor).await.unwrap();
        seen.extend(page.items.iter().map(|o| o.path.clone()));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["a/%", "a/1", "a/2", "a/_", "a/b/3"]);
    let all = e.store.list(&p, t.id, "", None, None).await.unwrap();
    assert_eq!(all.items.len(), 8);
    assert_eq!(all.items[0].path, "A/1", "bytewise: uppercase first");
    let bad = Some(ate_core::Cursor::from_string("garbage"));
    assert_kind(
        e.store.list(&p, t.id, "a/", None, bad).await,
        ErrorKind::InvalidInput,
    );
    assert_kind(
        e.store.list(&p, t.id, "", Some(0), None).await,
        ErrorKind::InvalidInput,
    );
}

/// Directory listings: one level at a time, subdirectories once each (however many objects
/// are under them), pages that resume after a file or past a directory, bad directories and
/// cursors refused.
pub async fn list_dir_by_level(e: ObjEnv) {
    let t = tenant(&e, "acme").await;
    let p = writer(t.id);
    let mut paths = vec![
        "a", "a/x", "a0", "a-b/1", "b/c/d/e", "b/f", "c", "é/1", "z/y",
    ];
    // A subdirectory with more objects than a page (and than a scan batch).
    let many: Vec<String> = (0..7).map(|i| format!("big/{i}")).collect();
    paths.extend(many.iter().map(String::as_str));
    for path in &paths {
        e.store
            .put(
                &p,
                t.id,
                path,
                path.as_bytes().to_vec(),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    let level = |dir: &'static str, limit: Option<u32>| {
        let (store, p) = (e.store.clone(), p.clone());
        async move {
            let mut seen = Vec::new();
            let mut cursor = None;
            loop {
                let page = store.list_dir(&p, t.id, dir, limit, cursor).await.unwrap();
                if let Some(l) = limit {
                    assert!(page.items.len() <= l as usize);
                }
                seen.extend(page.items.iter().map(|d| match d {
                    DirEntry::Directory(d) => format!("{d} (dir)"),
                    other => other.path().to_owned(),
                }));
                cursor = page.next_cursor;
                if cursor.is_none() {
                    return seen;
                }
            }
        }
    };
    let top = [
        "a",
        "a-b/ (dir)",
        "a/ (dir)",
        "a0",
        "b/ (dir)",
        "big/ (dir)",
        "c",
        "z/ (dir)",
        "é/ (dir)",
    ];
    for limit in [None, Some(1), Some(2), Some(3), Some(1000)] {
        assert_eq!(level("", limit).await, top, "page size {limit:?}");
    }
    assert_eq!(level("b/", Some(1)).await, ["b/c/ (dir)", "b/f"]);
    assert_eq!(level("b/c/d/", None).await, ["b/c/d/e"]);
    assert_eq!(level("big/", Some(2)).await, many);
    assert!(level("nothing/", None).await.is_empty());
    // Object entries carry their index entry.
    let page = e.store.list_dir(&p, t.id, "a/", None, None).await.unwrap();
    match &page.items[..] {
        [DirEntry::Object(o)] => assert_eq!((o.path.as_str(), o.size), ("a/x", 3)),
        other => panic!("{other:?}"),
    }
    for bad in ["a", "/", "a//", "../", "a/./", "x\\y/"] {
        assert_kind(
            e.store.list_dir(&p, t.id, bad, None, None).await,
            ErrorKind::InvalidInput,
        );
    }
    // A flat listing's cursor is not a directory listing's, and garbage is refused.
    let flat = e.store.list(&p, t.id, "", Some(1), None).await.unwrap();
    for bad in [
        flat.next_cursor.unwrap(),
        ate_core::Cursor::from_string("x"),
    ] {
        assert_kind(
            e.store.list_dir(&p, t.id, "", None, Some(bad)).await,
            ErrorKind::InvalidInput,
        );
    }
    assert_kind(
        e.store.list_dir(&p, t.id, "", Some(0), None).await,
        ErrorKind::InvalidInput,
    );
    // Another tenant's principal may not list this one.
    let other = tenant(&e, "globex").await;
    assert_kind(
        e.store
            .list_dir(&writer(other.id), t.id, "", None, None)
            .await,
        ErrorKind::PermissionDenied,
    );
}

/// Ranged reads of an opened version (`fetch_range_of`): the same bytes as `get_range`,
/// decrypted into a caller's buffer; after an overwrite or a delete, `Conflict` instead of
/// the new object's bytes; another tenant's principal refused.
pub async fn ranges_of_an_opened_version(e: ObjEnv) {
    let t = tenant(&e, "acme").await;
    let p = writer(t.id);
    let old = data(100_000);
    e.store
        .put(&p, t.id, "f", old.clone(), PutOptions::default())
        .await
        .unwrap();
    let info = e.store.stat(&p, t.id, "f").await.unwrap();
    for range in [
        0..10,
        16_380..16_390,
        5..100_000,
        0..100_000,
        99_999..100_000,
        7..7,
    ] {
        let fetched = e
            .store
            .fetch_range_of(&p, &info, range.clone())
            .await
            .unwrap();
        let mut out = vec![0u8; fetched.len()];
        fetched.open_into(&mut out).unwrap();
        let want = &old[range.start as usize..range.end as usize];
        assert!(out == want, "{range:?}");
        assert_eq!(
            e.store
                .get_range(&p, t.id, "f", range.clone())
                .await
                .unwrap(),
            want
        );
        if !fetched.is_empty() {
            assert_kind(
                fetched.open_into(&mut vec![0; fetched.len() + 1]),
                ErrorKind::InvalidInput,
            );
        }
    }
    assert_kind(
        e.store.fetch_range_of(&p, &info, 10..100_001).await,
        ErrorKind::InvalidInput,
    );
    // A long object, whose long ranges a backend may return in several pieces (`fs` reads
    // at most 2 MiB at a time): chunks straddling two pieces decrypt like the rest.
    let long = data(5 * 1024 * 1024 + 77);
    let long_info = e
        .store
        .put(&p, t.id, "long", long.clone(), PutOptions::default())
        .await
        .unwrap();
    let n = long.len() as u64;
    for range in [0..n, 3..n - 5, 2_000_000..2_200_000, 1_048_577..4_194_303] {
        let fetched = e
            .store
            .fetch_range_of(&p, &long_info, range.clone())
            .await
            .unwrap();
        let want = &long[range.start as usize..range.end as usize];
        assert!(fetched.open().unwrap() == want, "{range:?}");
        assert!(fetched.decrypt().await.unwrap() == want, "{range:?}");
        let got = e.store.get_range(&p, t.id, "long", range.clone()).await;
        assert!(got.unwrap() == want, "{range:?}");
    }
    let other = tenant(&e, "globex").await;
    assert_kind(
        e.store
            .fetch_range_of(&writer(other.id), &info, 0..10)
            .await,
        ErrorKind::PermissionDenied,
    );
    // Overwritten: the opened version is gone, and it is said so.
    e.store
        .put(&p, t.id, "f", data(5), PutOptions::default())
        .await
        .unwrap();
    assert_kind(
        e.store.fetch_range_of(&p, &info, 0..10).await,
        ErrorKind::Conflict,
    );
    let now = e.store.stat(&p, t.id, "f").await.unwrap();
    e.store.delete(&p, t.id, "f").await.unwrap();
    assert_kind(
        e.store.fetch_range_of(&p, &now, 0..5).await,
        ErrorKind::Conflict,
    );
}

/// Delete and copy.
pub async fn delete_and_copy(e: ObjEnv) {
    let t = tenant(&e, "acme").await;
    let p = writer(t.id);
    let original = e
        .store
        .put(
            &p,
            t.id,
            "x/a",
            data(40_000),
            PutOptions::default().content_type("text/plain"),
        )
        .await
        .unwrap();
    let copy = e.store.copy(&p, t.id, "x/a", "y/b").await.unwrap();
    assert_ne!(copy.id, original.id);
    assert_eq!(
        (copy.size, copy.sha256, copy.content_type.as_str()),
        (original.size, original.sha256, "text/plain")
    );
    assert_eq!(
        e.store
            .get(&p, t.id, "y/b")
            .await
            .unwrap()
            .read_to_end(true)
            .await
            .unwrap(),
        data(40_000)
    );
    e.store.delete(&p, t.id, "x/a").await.unwrap();
    assert_kind(e.store.stat(&p, t.id, "x/a").await, ErrorKind::NotFound);
    assert_kind(e.store.delete(&p, t.id, "x/a").await, ErrorKind::NotFound);
    assert_eq!(e.blobs.list(t.id).await.unwrap(), vec![copy.id]);
    assert_kind(
        e.store.copy(&p, t.id, "missing", "z").await,
        ErrorKind::NotFound,
    );
}

/// Malformed paths are rejected and write nothing.
pub async fn bad_paths_write_nothing(e: ObjEnv) {
    let t = tenant(&e, "acme").await;
    let p = writer(t.id);
    let long = "a".repeat(1025);
    for path in [
        "",
        "..",
        "a/../b",
        "/abs",
        "a\\b",
        "a\0b",
        "a//b",
        "./a",
        "a/",
        "tab\there",
        long.as_str(),
    ] {
        let r = e
            .store
            .put(&p, t.id, path, b"x".to_vec(), PutOptions::default())
            .await;
        assert_kind(r, ErrorKind::InvalidInput);
    }
    assert!(
        e.store
            .put(
                &p,
                t.id,
                &"a".repeat(1024),
                b"x".to_vec(),
                PutOptions::default()
            )
            .await
            .is_ok()
    );
    for opts in [
        PutOptions::default().content_type(""),
        PutOptions::default().metadata(serde_json::json!([1])),
        PutOptions::default().metadata(serde_json::json!({ "big": "x".repeat(9000) })),
    ] {
        assert_kind(
            e.store.put(&p, t.id, "ok", b"x".to_vec(), opts).await,
            ErrorKind::InvalidInput,
        );
    }
    assert_eq!(
        e.store
            .list(&p, t.id, "", None, None)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(e.blobs.list(t.id).await.unwrap().len(), 1);
}

/// Tenant B cannot read, stat, list, copy or delete A's objects, even knowing their ids.
pub async fn tenants_are_isolated(e: ObjEnv) {
    let (a, b) = (tenant(&e, "alpha").await, tenant(&e, "beta").await);
    let (pa, pb) = (writer(a.id), writer(b.id));
    let secret = e
        .store
        .put(
            &pa,
            a.id,
            "secret.txt",
            b"alpha only".to_vec(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    assert_kind(
        e.store.get(&pb, a.id, "secret.txt").await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        e.store.stat(&pb, a.id, "secret.txt").await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        e.store.get_range(&pb, a.id, "secret.txt", 0..1).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        e.store.list(&pb, a.id, "", None, None).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        e.store.delete(&pb, a.id, "secret.txt").await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        e.store.copy(&pb, a.id, "secret.txt", "mine.txt").await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        e.store
            .put(
                &pb,
                a.id,
                "secret.txt",
                b"pwned".to_vec(),
                PutOptions::default(),
            )
            .await,
        ErrorKind::PermissionDenied,
    );
    // In its own tenant, B sees nothing of A's.
    assert_kind(
        e.store.stat(&pb, b.id, "secret.txt").await,
        ErrorKind::NotFound,
    );
    assert!(
        e.store
            .list(&pb, b.id, "", None, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let read_only = member(a.id, &[STORAGE_READ]);
    assert_kind(
        e.store.delete(&read_only, a.id, "secret.txt").await,
        ErrorKind::PermissionDenied,
    );
    assert_eq!(
        e.store
            .get(&read_only, a.id, "secret.txt")
            .await
            .unwrap()
            .read_to_end(true)
            .await
            .unwrap(),
        b"alpha only"
    );
    assert_eq!(e.blobs.list(b.id).await.unwrap(), Vec::<ObjectId>::new());
    let _ = secret;
}

/// A blob moved on the backend into another tenant's or object's place fails with
/// `Integrity`: the context binds tenant and object id.
pub async fn context_binding(e: ObjEnv) {
    let (a, b) = (tenant(&e, "alpha").await, tenant(&e, "beta").await);
    let (pa, pb) = (writer(a.id), writer(b.id));
    let sa = e
        .store
        .put(&pa, a.id, "f", data(50_000), PutOptions::default())
        .await
        .unwrap();
    let sb = e
        .store
        .put(&pb, b.id, "f", data(50_000), PutOptions::default())
        .await
        .unwrap();
    let len = e.blobs.size(a.id, sa.id).await.unwrap();
    let a_blob = e.blobs.read_range(a.id, sa.id, 0..len).await.unwrap();
    // Into B's place: same size, same key version, but another tenant and object.
    e.blobs.put(b.id, sb.id, a_blob.clone()).await.unwrap();
    let err = e.store.get(&pb, b.id, "f").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert_kind(
        e.store.get_range(&pb, b.id, "f", 0..10).await,
        ErrorKind::Integrity,
    );
    // Into another object of the same tenant.
    let other = e
        .store
        .put(&pa, a.id, "g", data(50_000), PutOptions::default())
        .await
        .unwrap();
    e.blobs.put(a.id, other.id, a_blob).await.unwrap();
    assert_kind(e.store.get(&pa, a.id, "g").await, ErrorKind::Integrity);
    // A flipped byte deep inside is caught when that chunk is read.
    let mut flipped = e.blobs.read_range(a.id, sa.id, 0..len).await.unwrap();
    flipped[30_000] ^= 1;
    e.blobs.put(a.id, sa.id, flipped).await.unwrap();
    assert_kind(
        e.store.get_range(&pa, a.id, "f", 29_000..29_100).await,
        ErrorKind::Integrity,
    );
    assert!(
        e.store.get_range(&pa, a.id, "f", 0..100).await.is_ok(),
        "untouched chunks still read"
    );
    let mut r = e.store.get(&pa, a.id, "f").await.unwrap();
    assert!(r.next_chunk().await.is_err());
    assert!(
        r.next_chunk().await.is_err(),
        "a failed stream keeps failing"
    );
    // A wrong checksum in the index is caught by a verified read (the AEAD cannot see it).
    e.store
        .put(&pa, a.id, "h", data(70_000), PutOptions::default())
        .await
        .unwrap();
    ate_core::with_pool!(e.env.db, |pool| {
        sqlx::query("UPDATE objects SET sha256 = $2 WHERE tenant_id = $1 AND logical_path = 'h'")
            .bind(a.id.as_uuid())
            .bind(vec![0u8; 32])
            .execute(pool)
            .await
            .unwrap();
    });
    let read = |verify| {
        let (store, pa) = (e.store.clone(), pa.clone());
        async move {
            store
                .get(&pa, a.id, "h")
                .await
                .unwrap()
                .read_to_end(verify)
                .await
        }
    };
    assert_eq!(read(false).await.unwrap(), data(70_000));
    assert_kind(read(true).await, ErrorKind::Integrity);
}

/// Key rotation: old objects stay readable; destroyed keys make them unrecoverable.
pub async fn key_rotation_and_shredding(e: ObjEnv) {
    let t = tenant(&e, "acme").await;
    let p = writer(t.id);
    e.store
        .put(
            &p,
            t.id,
            "old",
            b"written under v1".to_vec(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    e.store.keyring().rotate(&p, t.id).await.unwrap();
    let new = e
        .store
        .put(
            &p,
            t.id,
            "new",
            b"written under v2".to_vec(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(new.key_version, 2);
    assert_eq!(e.store.stat(&p, t.id, "old").await.unwrap().key_version, 1);
    assert_eq!(
        e.store
            .get(&p, t.id, "old")
            .await
            .unwrap()
            .read_to_end(true)
            .await
            .unwrap(),
        b"written under v1"
    );
    // A put in progress when the keys are destroyed is refused at its commit, not stored
    // unreadable (its key may still sit in a key cache, here or in another process).
    let mut inflight = e
        .store
        .writer(&p, t.id, "inflight", PutOptions::default())
        .await
        .unwrap();
    inflight.write_owned(vec![7; 10_000]).await.unwrap();
    e.store.keyring().destroy(&p, t.id).await.unwrap();
    let refused = inflight.commit().await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Conflict, "{refused}");
    assert!(refused.to_string().contains("destroyed"), "{refused}");
    assert_eq!(
        e.store.stat(&p, t.id, "inflight").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    for path in ["old", "new"] {
        let err = e.store.get(&p, t.id, path).await.unwrap_err();
        assert!(matches!(err, StorageError::KeyDestroyed { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }
}

/// Quotas are enforced at commit; a rejected put leaves nothing visible and nothing counted.
pub async fn quotas_are_enforced(e: ObjEnv) {
    let t = e
        .env
        .tenants
        .create(
            &e.env.admin,
            NewTenant::new("small", "Small").settings(TenantSettings::with_quotas(
                Quotas::default().max_objects(2).max_storage_bytes(1000),
            )),
        )
        .await
        .unwrap();
    let p = writer(t.id);
    e.store
        .put(&p, t.id, "one", vec![1; 400], PutOptions::default())
        .await
        .unwrap();
    e.store
        .put(&p, t.id, "two", vec![2; 400], PutOptions::default())
        .await
        .unwrap();
    assert_kind(
        e.store
            .put(&p, t.id, "three", vec![3; 10], PutOptions::default())
            .await,
        ErrorKind::QuotaExceeded,
    );
    assert_kind(
        e.store
            .put(&p, t.id, "two", vec![2; 700], PutOptions::default())
            .await,
        ErrorKind::QuotaExceeded,
    );
    // Overwriting within the limits is fine.
    e.store
        .put(&p, t.id, "two", vec![2; 600], PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        e.store
            .list(&p, t.id, "", None, None)
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    assert_eq!(
        e.blobs.list(t.id).await.unwrap().len(),
        2,
        "rejected uploads were removed"
    );
}

/// Garbage collection removes orphan blobs older than the grace period, and only those.
pub async fn garbage_collection(e: ObjEnv) {
    let t = tenant(&e, "acme").await;
    let p = writer(t.id);
    let kept = e
        .store
        .put(&p, t.id, "kept", b"x".to_vec(), PutOptions::default())
        .await
        .unwrap();
    // An upload that crashed before its index row committed.
    let orphan = ObjectId::new();
    e.blobs.put(t.id, orphan, b"orphan".to_vec()).await.unwrap();
    assert_kind(
        e.store
            .collect_garbage(&p, t.id, chrono::TimeDelta::zero())
            .await,
        ErrorKind::PermissionDenied,
    );
    // On fs, an upload that crashed before its rename leaves a staged file.
    let staged = e.fs_root.as_ref().map(|root| {
        let dir = root.join(".ate-staging");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{}.k3Jq9", ObjectId::new()));
        std::fs::write(&file, b"half an upload").unwrap();
        file
    });
    let young = e
        .store
        .collect_garbage(&e.env.admin, t.id, chrono::TimeDelta::days(3650))
        .await
        .unwrap();
    assert_eq!(
        (young.deleted, young.kept_young, young.staging_deleted),
        (0, 1, 0)
    );
    assert!(staged.as_ref().is_none_or(|f| f.exists()));
    e.env.clock.advance(chrono::TimeDelta::days(365 * 20));
    let report = e
        .store
        .collect_garbage(&e.env.admin, t.id, chrono::TimeDelta::hours(1))
        .await
        .unwrap();
    assert_eq!(report.deleted, 1);
    assert_eq!(report.staging_deleted, u64::from(staged.is_some()));
    assert!(staged.is_none_or(|f| !f.exists()));
    assert_eq!(e.blobs.list(t.id).await.unwrap(), vec![kept.id]);
    assert!(e.store.get(&p, t.id, "kept").await.is_ok());
}

/// A writer dropped (or aborted) mid-upload leaves nothing: no object, no blob, no staged
/// file, nothing counted; a failed writer refuses further use.
pub async fn abandoned_uploads_leave_nothing(e: ObjEnv) {
    let t = tenant(&e, "acme").await;
    let p = writer(t.id);
    let staged = |e: &ObjEnv| {
        e.fs_root.as_ref().map_or(0, |root| {
            std::fs::read_dir(root.join(".ate-staging")).map_or(0, |d| d.count())
        })
    };
    // Parts above and below the inline threshold, so both write paths run.
    let mut w = e
        .store
        .writer(&p, t.id, "dropped", PutOptions::default())
        .await
        .unwrap();
    w.write_owned(data(300_000)).await.unwrap();
    w.write(b"small").await.unwrap();
    w.write_owned(data(200_000)).await.unwrap();
    drop(w);
    let mut w = e
        .store
        .writer(&p, t.id, "aborted", PutOptions::default())
        .await
        .unwrap();
    w.write_owned(data(300_000)).await.unwrap();
    w.abort().await.unwrap();
    // The dropped writer's cleanup runs in the background; give it a moment.
    for _ in 0..200 {
        if staged(&e) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(staged(&e), 0, "partial uploads were released");
    assert!(e.blobs.list(t.id).await.unwrap().is_empty());
    for path in ["dropped", "aborted"] {
        assert_kind(e.store.stat(&p, t.id, path).await, ErrorKind::NotFound);
    }
    assert!(
        e.store
            .list(&p, t.id, "", None, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // A put whose content is all there commits normally after all that.
    let info = e
        .store
        .put(&p, t.id, "dropped", data(500_005), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(info.size, 500_005);
    assert_eq!(
        e.store
            .get(&p, t.id, "dropped")
            .await
            .unwrap()
            .read_to_end(true)
            .await
            .unwrap(),
        data(500_005)
    );
}

/// Suspended tenants cannot write (or be read by their own principals); deleted ones are gone.
pub async fn tenant_state_is_enforced(e: ObjEnv) {
    let t = tenant(&e, "acme").await;
    let p = writer(t.id);
    e.store
        .put(&p, t.id, "f", b"x".to_vec(), PutOptions::default())
        .await
        .unwrap();
    e.env
        .tenants
        .suspend(&e.env.admin, t.id, "unpaid")
        .await
        .unwrap();
    assert_kind(
        e.store
            .put(&p, t.id, "g", b"x".to_vec(), PutOptions::default())
            .await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        e.store.stat(&p, t.id, "f").await,
        ErrorKind::PermissionDenied,
    );
    assert!(e.store.stat(&e.env.admin, t.id, "f").await.is_ok());
    e.env.tenants.delete(&e.env.admin, t.id).await.unwrap();
    assert_kind(
        e.store.stat(&e.env.admin, t.id, "f").await,
        ErrorKind::NotFound,
    );
}

/// Re-encryption moves every object to the newest key in resumable batches; afterwards the
/// old key versions are no longer needed.
pub async fn reencryption_is_resumable(e: ObjEnv) {
    let t = tenant(&e, "acme").await;
    let p = writer(t.id);
    for i in 0..5 {
        e.store
            .put(
                &p,
                t.id,
                &format!("f{i}"),
                data(20_000 + i),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    e.store.keyring().rotate(&p, t.id).await.unwrap();
    let storage_only = member(t.id, &[STORAGE_READ, STORAGE_WRITE]);
    assert_kind(
        e.store.reencrypt(&storage_only, t.id, 2).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        e.store.reencrypt(&p, t.id, 0).await,
        ErrorKind::InvalidInput,
    );
    let first = e.store.reencrypt(&p, t.id, 2).await.unwrap();
    assert_eq!(
        (first.reencrypted, first.remaining, first.key_version),
        (2, 3, 2)
    );
    let mut remaining = first.remaining;
    while remaining > 0 {
        remaining = e.store.reencrypt(&p, t.id, 2).await.unwrap().remaining;
    }
    for i in 0..5 {
        let path = format!("f{i}");
        assert_eq!(e.store.stat(&p, t.id, &path).await.unwrap().key_version, 2);
    }
    // Crypto-shred version 1 only: nothing depends on it any more.
    ate_core::with_pool!(e.env.db, |pool| {
        sqlx::query("UPDATE tenant_keys SET state = 'destroyed', wrapped = NULL, master_key_id = NULL, destroyed_at = 0 WHERE version = 1")
            .execute(pool)
            .await
            .unwrap();
    });
    for i in 0..5 {
        let got = e
            .store
            .get(&p, t.id, &format!("f{i}"))
            .await
            .unwrap()
            .read_to_end(true)
            .await
            .unwrap();
        assert!(got == data(20_000 + i));
    }
    assert_eq!(
        e.blobs.list(t.id).await.unwrap().len(),
        5,
        "old blobs removed"
    );
}

/// Purging a tenant drops its keys and index; garbage collection then removes all of its
/// blobs at once, whatever their age, and nothing of any other tenant.
pub async fn purged_tenants_leave_nothing(e: ObjEnv) {
    let gone = tenant(&e, "gone").await;
    let stays = tenant(&e, "stays").await;
    for t in [&gone, &stays] {
        for path in ["a", "b/c"] {
            e.store
                .put(
                    &writer(t.id),
                    t.id,
                    path,
                    data(40_000),
                    PutOptions::default(),
                )
                .await
                .unwrap();
        }
    }
    e.env.tenants.delete(&e.env.admin, gone.id).await.unwrap();
    e.env.clock.advance(chrono::TimeDelta::days(31));
    let purged = e.env.tenants.purge_due(&e.env.admin).await.unwrap();
    assert_eq!(purged, vec![gone.id]);
    assert_eq!(
        e.blobs.list(gone.id).await.unwrap().len(),
        2,
        "blobs outlive the purge"
    );
    let report = e
        .store
        .collect_garbage(&e.env.admin, gone.id, chrono::TimeDelta::days(36500))
        .await
        .unwrap();
    assert_eq!(report.deleted, 2);
    assert!(e.blobs.list(gone.id).await.unwrap().is_empty());
    assert_kind(
        e.store.keyring().decryption_key(gone.id, 1).await,
        ErrorKind::NotFound,
    );
    // The other tenant is untouched, and a long grace keeps its (indexed) blobs anyway.
    let kept = e
        .store
        .collect_garbage(&e.env.admin, stays.id, chrono::TimeDelta::days(36500))
        .await
        .unwrap();
    assert_eq!(kept.deleted, 0);
    assert_eq!(e.blobs.list(stays.id).await.unwrap().len(), 2);
    assert_eq!(
        e.store
            .get_range(&writer(stays.id), stays.id, "b/c", 100..200)
            .await
            .unwrap(),
        data(40_000)[100..200]
    );
}

/// `verify` finds each kind of damage, names the object and what is wrong, changes nothing
/// without `repair`, and with it deletes old orphans only.
pub async fn verify_finds_every_problem(e: ObjEnv) {
    use ate_storage::verify::{ProblemKind, VerifyOptions};
    let t = tenant(&e, "acme").await;
    let other = tenant(&e, "other").await;
    let p = writer(t.id);
    let mut ids = std::collections::BTreeMap::new();
    for (path, len) in [
        ("ok", 10),
        ("lost", 20),
        ("cut", 40_000),
        ("header", 100),
        ("flipped", 50_000),
        ("relabelled", 70_000),
    ] {
        let info = e
            .store
            .put(&p, t.id, path, data(len), PutOptions::default())
            .await
            .unwrap();
        ids.insert(path, info.id);
    }
    e.store
        .put(
            &writer(other.id),
            other.id,
            "x",
            data(5),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let check = |options: VerifyOptions| {
        let (store, admin) = (e.store.clone(), e.env.admin.clone());
        async move { store.verify(&admin, t.id, &options).await.unwrap() }
    };
    // Clean at first, both ways; only headers are read without read_all.
    let quick = check(VerifyOptions::default()).await;
    assert!(quick.is_clean(), "{:?}", quick.problems);
    assert_eq!((quick.objects, quick.blobs, quick.in_progress), (6, 6, 0));
    assert_eq!(quick.bytes_read, 6 * 56);
    let full = check(VerifyOptions::default().read_all(true)).await;
    assert!(full.is_clean(), "{:?}", full.problems);
    let ciphertext: u64 = {
        let mut n = 0;
        for id in ids.values() {
            n += e.blobs.size(t.id, *id).await.unwrap();
        }
        n
    };
    assert_eq!(full.bytes_read, ciphertext);

    // Damage, one kind per object.
    let blob = |path: &str| ids[path];
    e.blobs.delete(t.id, blob("lost")).await.unwrap();
    let len = e.blobs.size(t.id, blob("cut")).await.unwrap();
    let bytes = e
        .blobs
        .read_range(t.id, blob("cut"), 0..len - 1)
        .await
        .unwrap();
    e.blobs.put(t.id, blob("cut"), bytes).await.unwrap();
    let len = e.blobs.size(t.id, blob("header")).await.unwrap();
    let mut bytes = e
        .blobs
        .read_range(t.id, blob("header"), 0..len)
        .await
        .unwrap();
    bytes[30] ^= 1;
    e.blobs.put(t.id, blob("header"), bytes).await.unwrap();
    let len = e.blobs.size(t.id, blob("flipped")).await.unwrap();
    let mut bytes = e
        .blobs
        .read_range(t.id, blob("flipped"), 0..len)
        .await
        .unwrap();
    bytes[30_000] ^= 1;
    e.blobs.put(t.id, blob("flipped"), bytes).await.unwrap();
    ate_core::with_pool!(e.env.db, |pool| {
        sqlx::query(
            "UPDATE objects SET sha256 = $2 WHERE tenant_id = $1 AND logical_path = 'relabelled'",
        )
        .bind(t.id.as_uuid())
        .bind(vec![0u8; 32])
        .execute(pool)
        .await
        .unwrap();
    });
    // An upload that crashed before its commit, and one still in progress (younger than
    // the grace period once the clock has moved on).
    let old_orphan = ObjectId::new();
    e.blobs
        .put(t.id, old_orphan, b"orphan".to_vec())
        .await
        .unwrap();
    e.env.clock.advance(chrono::TimeDelta::days(365 * 20));
    let kinds = |report: &ate_storage::VerifyReport| {
        report
            .problems
            .iter()
            .map(|p| (p.kind, p.path.clone().unwrap_or_default(), p.repaired))
            .collect::<Vec<_>>()
    };

    let quick = check(VerifyOptions::default()).await;
    assert_eq!(
        kinds(&quick),
        vec![
            (ProblemKind::MissingBlob, "lost".into(), false),
            (ProblemKind::SizeMismatch, "cut".into(), false),
            (ProblemKind::HeaderMismatch, "header".into(), false),
            (ProblemKind::OrphanBlob, String::new(), false),
        ],
        "{:#?}",
        quick.problems
    );
    assert_eq!(
        quick
            .of_kind(ProblemKind::OrphanBlob)
            .next()
            .unwrap()
            .object,
        Some(old_orphan)
    );
    let lost = quick.of_kind(ProblemKind::MissingBlob).next().unwrap();
    assert_eq!(lost.object, Some(blob("lost")));
    assert_eq!(lost.tenant, t.id);
    assert!(lost.detail.contains("missing"), "{}", lost.detail);
    let cut = quick.of_kind(ProblemKind::SizeMismatch).next().unwrap();
    assert!(cut.detail.contains("40000-byte object"), "{}", cut.detail);
    // Without read_all, damage inside a chunk or in the index checksum is not seen.
    let full = check(VerifyOptions::default().read_all(true)).await;
    assert_eq!(
        kinds(&full),
        vec![
            (ProblemKind::MissingBlob, "lost".into(), false),
            (ProblemKind::SizeMismatch, "cut".into(), false),
            (ProblemKind::HeaderMismatch, "header".into(), false),
            (ProblemKind::Corrupt, "flipped".into(), false),
            (ProblemKind::ChecksumMismatch, "relabelled".into(), false),
            (ProblemKind::OrphanBlob, String::new(), false),
        ],
        "{:#?}",
        full.problems
    );
    // Nothing was changed by checking.
    assert_eq!(e.blobs.list(t.id).await.unwrap().len(), 6);

    // A young orphan is an upload in progress: counted, never reported or repaired.
    let now = ate_core::Clock::now(&*e.env.clock);
    let young = ObjectId::from_uuid(uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        now.timestamp() as u64,
        0,
    )))
    .unwrap();
    e.blobs
        .put(t.id, young, b"uploading".to_vec())
        .await
        .unwrap();
    let young_check =
        check(VerifyOptions::default().grace(chrono::TimeDelta::days(365 * 40))).await;
    assert_eq!(young_check.in_progress, 2);
    assert!(
        young_check
            .of_kind(ProblemKind::OrphanBlob)
            .next()
            .is_none()
    );

    // Repair deletes the old orphan (not the young one, nothing referenced) and says so.
    let repaired = check(
        VerifyOptions::default()
            .repair(true)
            .grace(chrono::TimeDelta::days(365 * 10)),
    )
    .await;
    let orphan = repaired.of_kind(ProblemKind::OrphanBlob).next().unwrap();
    assert!(orphan.repaired);
    assert_eq!(repaired.in_progress, 1);
    assert!(
        !repaired.is_clean(),
        "the damaged objects are not repairable"
    );
    let left = e.blobs.list(t.id).await.unwrap();
    assert!(!left.contains(&old_orphan) && left.contains(&young));
    // A grace period reaching before any representable time is "everything is young",
    // not an overflow.
    let forever = check(VerifyOptions::default().grace(chrono::TimeDelta::MAX)).await;
    assert_eq!(forever.in_progress, 1);
    let gc = e
        .store
        .collect_garbage(&e.env.admin, t.id, chrono::TimeDelta::MAX)
        .await
        .unwrap();
    assert_eq!((gc.deleted, gc.kept_young), (0, 1));
    assert_eq!(left.len(), 6);
    // The other tenant was never touched.
    assert!(
        e.store
            .verify(
                &e.env.admin,
                other.id,
                &VerifyOptions::default().read_all(true)
            )
            .await
            .unwrap()
            .is_clean()
    );

    // A destroyed key: every object under it is reported as unrecoverable.
    e.store.keyring().destroy(&p, other.id).await.unwrap_err();
    let po = writer(other.id);
    e.store.keyring().destroy(&po, other.id).await.unwrap();
    let shredded = e
        .store
        .verify(&e.env.admin, other.id, &VerifyOptions::default())
        .await
        .unwrap();
    assert_eq!(
        kinds(&shredded),
        vec![(ProblemKind::KeyDestroyed, "x".into(), false)]
    );

    // Only platform administrators check; options out of range are refused.
    assert_kind(
        e.store.verify(&p, t.id, &VerifyOptions::default()).await,
        ErrorKind::PermissionDenied,
    );
    for bad in [
        VerifyOptions::default().concurrency(0),
        VerifyOptions::default().concurrency(100_000),
        VerifyOptions::default().grace(chrono::TimeDelta::seconds(-1)),
    ] {
        assert_kind(
            e.store.verify(&e.env.admin, t.id, &bad).await,
            ErrorKind::InvalidInput,
        );
    }
}

/// `verify` while puts, overwrites and deletes run reports nothing: a check never takes a
/// write in progress for damage.
pub async fn verify_while_writing_reports_nothing(e: ObjEnv) {
    use ate_storage::verify::VerifyOptions;
    let t = tenant(&e, "acme").await;
    let writes = {
        let (store, p) = (e.store.clone(), writer(t.id));
        tokio::spawn(async move {
            for i in 0..60usize {
                let path = format!("p{}", i % 5);
                if i % 4 == 3 {
                    store.delete(&p, t.id, &path).await.ok();
                } else {
                    store
                        .put(
                            &p,
                            t.id,
                            &path,
                            data(1_000 + 9_000 * (i % 7)),
                            PutOptions::default(),
                        )
                        .await
                        .unwrap();
                }
            }
        })
    };
    let mut checks = 0;
    while !writes.is_finished() {
        let options = VerifyOptions::default().read_all(checks % 2 == 1);
        let report = e.store.verify(&e.env.admin, t.id, &options).await.unwrap();
        assert!(report.is_clean(), "check {checks}: {:#?}", report.problems);
        checks += 1;
    }
    writes.await.unwrap();
    assert!(checks >= 2, "only {checks} checks ran while writing");
}
