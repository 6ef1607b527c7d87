//! Unit tests of the object store's internals (the public behaviour is tested by the
//! conformance suite in the `tests` crate).

use super::*;
use ate_core::keys::{LocalKeyProvider, SecretKey};
use ate_core::{Classify, ErrorKind, NewTenant};

#[tokio::test]
async fn a_stale_replacement_never_overwrites_newer_content() {
    let db = Db::open("sqlite::memory:").await.unwrap();
    let admin = Principal::platform_admin("system:test").unwrap();
    let tenant = SqlTenantStore::new(db.clone())
        .create(&admin, NewTenant::new("acme", "Acme"))
        .await
        .unwrap()
        .id;
    let master = Arc::new(LocalKeyProvider::new(SecretKey::from_bytes([1; 32])));
    let store = ObjectStore::open(db, BlobStore::open("memory://").unwrap(), master)
        .await
        .unwrap();
    let v1 = store
        .put(&admin, tenant, "f", b"v1".to_vec(), PutOptions::default())
        .await
        .unwrap();
    // A re-encryption reads v1 and prepares its replacement...
    let mut stale = store
        .start_writer(tenant, "f", PutOptions::default())
        .await
        .unwrap();
    stale.upload.replaces = Some(v1.id);
    stale.write(b"v1").await.unwrap();
    // ...while a user writes v2...
    store
        .put(&admin, tenant, "f", b"v2".to_vec(), PutOptions::default())
        .await
        .unwrap();
    // ...so the stale replacement must not commit, and must leave no blob behind.
    let err = stale.commit().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let now = store
        .get(&admin, tenant, "f")
        .await
        .unwrap()
        .read_to_end(true)
        .await
        .unwrap();
    assert_eq!(now, b"v2");
    assert_eq!(store.blobs.list(tenant).await.unwrap().len(), 1);
}
