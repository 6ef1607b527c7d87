//! The [`BlobStore`] conformance suite: the same cases on memory, a local directory and a
//! real S3-compatible server, each opened by URL and as an OpenDAL operator built by hand
//! and given to [`BlobStore::from_operator`].

use crate::assert_kind;
use crate::support::TestBlobs;
use ate_core::{Classify, ErrorKind, ObjectId, TenantId};
use ate_storage::blob::BlobStore;

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 131 % 251) as u8).collect()
}

/// Put, size, ranged reads, delete; deleting twice succeeds.
pub async fn put_read_delete(b: TestBlobs) {
    // The readiness check answers on a working backend, empty or not.
    b.store.check().await.unwrap();
    let (t, o) = (TenantId::new(), ObjectId::new());
    let bytes = data(100_000);
    b.store.put(t, o, bytes.clone()).await.unwrap();
    b.store.check().await.unwrap();
    assert_eq!(b.store.size(t, o).await.unwrap(), 100_000);
    assert_eq!(b.store.read_range(t, o, 0..100_000).await.unwrap(), bytes);
    assert_eq!(
        b.store.read_range(t, o, 16_380..16_400).await.unwrap(),
        &bytes[16_380..16_400]
    );
    assert!(b.store.read_range(t, o, 5..5).await.unwrap().is_empty());
    assert_kind(
        b.store
            .read_range(t, o, std::ops::Range { start: 10, end: 5 })
            .await,
        ErrorKind::InvalidInput,
    );
    assert!(
        b.store.read_range(t, o, 99_990..100_010).await.is_err(),
        "past the end"
    );
    // Overwrite replaces.
    b.store.put(t, o, vec![1, 2, 3]).await.unwrap();
    assert_eq!(b.store.read_range(t, o, 0..3).await.unwrap(), [1, 2, 3]);
    b.store.delete(t, o).await.unwrap();
    assert_kind(b.store.size(t, o).await, ErrorKind::NotFound);
    assert_kind(b.store.read_range(t, o, 0..1).await, ErrorKind::NotFound);
    b.store.delete(t, o).await.unwrap();
}

/// Streaming uploads appear whole on close, never before; abandoned ones leave nothing
/// visible.
pub async fn streaming_uploads(b: TestBlobs) {
    let (t, o) = (TenantId::new(), ObjectId::new());
    let mut w = b.store.writer(t, o).await.unwrap();
    let parts = [data(6 << 20), data(3), data(5 << 20)];
    for p in &parts {
        w.write(p.clone()).await.unwrap();
        assert_kind(b.store.size(t, o).await, ErrorKind::NotFound);
        assert!(b.store.list(t).await.unwrap().is_empty(), "{}", b.url);
    }
    let total: usize = parts.iter().map(Vec::len).sum();
    assert_eq!(w.close().await.unwrap(), total as u64);
    assert_eq!(b.store.size(t, o).await.unwrap(), total as u64);
    let tail = b
        .store
        .read_range(t, o, total as u64 - 10..total as u64)
        .await
        .unwrap();
    assert_eq!(tail, &parts[2][parts[2].len() - 10..]);

    let aborted = ObjectId::new();
    let mut w = b.store.writer(t, aborted).await.unwrap();
    w.write(data(1000)).await.unwrap();
    w.abort().await.unwrap();
    assert_kind(b.store.size(t, aborted).await, ErrorKind::NotFound);
    assert_eq!(b.store.list(t).await.unwrap(), vec![o]);
    if let Some(root) = &b.fs_root {
        let staged = std::fs::read_dir(root.join(".ate-staging")).map_or(0, |d| d.count());
        assert_eq!(staged, 0, "the aborted upload's staged file was removed");
    }
}

/// Blob names come from ids: the same object id under two tenants is two blobs, and
/// listing a tenant shows only its own.
pub async fn tenants_are_separate(b: TestBlobs) {
    let (a, c) = (TenantId::new(), TenantId::new());
    let shared = ObjectId::new();
    b.store.put(a, shared, b"alpha".to_vec()).await.unwrap();
    b.store.put(c, shared, b"gamma".to_vec()).await.unwrap();
    let only_a = ObjectId::new();
    b.store.put(a, only_a, b"a2".to_vec()).await.unwrap();
    assert_eq!(b.store.read_range(a, shared, 0..5).await.unwrap(), b"alpha");
    assert_eq!(b.store.read_range(c, shared, 0..5).await.unwrap(), b"gamma");
    assert_kind(b.store.size(c, only_a).await, ErrorKind::NotFound);
    let mut expected = vec![shared, only_a];
    expected.sort();
    assert_eq!(b.store.list(a).await.unwrap(), expected);
    assert_eq!(b.store.list(c).await.unwrap(), vec![shared]);
    assert!(b.store.list(TenantId::new()).await.unwrap().is_empty());
    assert!(!BlobStore::blob_name(a, shared).contains(".."));
}

/// Unknown schemes, relative paths, missing buckets and unknown parameters are rejected;
/// an S3 server that is down is `Unavailable` and retryable.
pub async fn bad_urls_and_unreachable_servers(_b: TestBlobs) {
    for url in [
        "",
        "ftp://x",
        "fs://relative/dir",
        "s3:///no-bucket",
        "s3://bucket/p?colour=blue",
        "s3://bucket/p?endpoint=not%20a%20url",
    ] {
        let e = BlobStore::open(url).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{url}: {e}");
    }
    let down = BlobStore::open("s3://bucket/p?endpoint=http://127.0.0.1:1").unwrap();
    let e = down
        .put(TenantId::new(), ObjectId::new(), b"x".to_vec())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable());
    let e = down.check().await.unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Unavailable,
        "check of an unreachable server: {e}"
    );
}

/// An operator lacking a capability ATE needs is refused when the store is built, with the
/// typed `Unsupported` error naming the capability, before any request.
pub fn refuses_operators_lacking_a_capability() {
    use ate_storage::StorageError;
    use opendal::layers::CapabilityOverrideLayer;
    type Strip = fn(&mut opendal::Capability);
    let memory = || opendal::Operator::new(opendal::services::Memory::default()).unwrap();
    let without = |strip: Strip| {
        memory().layer(CapabilityOverrideLayer::new(move |mut c| {
            strip(&mut c);
            c
        }))
    };
    let cases: [(&str, Strip); 5] = [
        ("read", |c| c.read = false),
        ("write", |c| c.write = false),
        ("stat", |c| c.stat = false),
        ("delete", |c| c.delete = false),
        ("list", |c| c.list = false),
    ];
    for (name, strip) in cases {
        let err = BlobStore::from_operator(without(strip)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{name}: {err}");
        match &err {
            StorageError::UnsupportedBackend {
                scheme, missing, ..
            } => {
                assert_eq!(scheme, "memory");
                assert_eq!(missing, &[name]);
            }
            other => panic!("{name}: expected UnsupportedBackend, got {other:?}"),
        }
        assert!(err.to_string().contains(name), "{err}");
    }
    // Two missing at once are both named.
    let err = BlobStore::from_operator(without(|c| {
        c.stat = false;
        c.list = false;
    }))
    .unwrap_err();
    assert!(
        matches!(&err, StorageError::UnsupportedBackend { missing, .. } if missing == &["stat", "list"]),
        "{err:?}"
    );
    // The same service with everything it declares is accepted.
    assert!(BlobStore::from_operator(memory()).is_ok());
}
