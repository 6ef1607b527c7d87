//! S3 failures seen from the object store: a server that is down, and one that vanishes in
//! the middle of an upload. Either way the put fails as retryable `Unavailable`, and nothing
//! becomes visible or counts against the tenant. A server that sheds load for a moment
//! (503) costs retries, not the operation.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ate_core::keys::{LocalKeyProvider, SecretKey};
use ate_core::{Classify, Db, ErrorKind, NewTenant, Principal};
use ate_storage::blob::BlobStore;
use ate_storage::objects::{ObjectStore, PutOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A loopback "server" that reads part of each request and then drops the connection.
/// Bounded in count and time: it stops after 64 connections, 30 seconds, or when `stop` is set.
fn vanishing_server(stop: Arc<AtomicBool>) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut served = 0;
        while served < 64 && Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    served += 1;
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf); // part of the upload, then vanish
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (endpoint, handle)
}

async fn store_for(url: &str) -> (ObjectStore, ate_core::TenantId, Principal, Db) {
    let db = Db::open("sqlite::memory:").await.unwrap();
    let admin = Principal::platform_admin("system:test").unwrap();
    let tenants = ate_core::SqlTenantStore::new(db.clone());
    let t = ate_core::TenantStore::create(&tenants, &admin, NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let blobs = BlobStore::open(url).unwrap();
    let master = Arc::new(LocalKeyProvider::new(SecretKey::from_bytes([3; 32])));
    let store = ObjectStore::open(db.clone(), blobs, master).await.unwrap();
    (store, t.id, admin, db)
}

async fn assert_nothing_visible(store: &ObjectStore, admin: &Principal, t: ate_core::TenantId) {
    assert_eq!(
        ate_core::Classify::kind(&store.stat(admin, t, "big.bin").await.unwrap_err()),
        ErrorKind::NotFound
    );
    assert!(
        store
            .list(admin, t, "", None, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_is_unavailable_and_retryable() {
    let (store, t, admin, _db) = store_for("s3://bucket/p?endpoint=http://127.0.0.1:1").await;
    let err = store
        .put(
            &admin,
            t,
            "big.bin",
            vec![7; 100_000],
            PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert_nothing_visible(&store, &admin, t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_vanishing_mid_upload_leaves_nothing() {
    let stop = Arc::new(AtomicBool::new(false));
    let (endpoint, server) = vanishing_server(stop.clone());
    let (store, t, admin, _db) = store_for(&format!("s3://bucket/p?endpoint={endpoint}")).await;
    let err = store
        .put(
            &admin,
            t,
            "big.bin",
            vec![7; 12 << 20],
            PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert_nothing_visible(&store, &admin, t).await;
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
}

/// A loopback proxy in front of the S3 test server: it answers its first `failures`
/// connections with `503 Slow Down` (what S3 says when it sheds load) and forwards every
/// later one byte for byte. Returns its endpoint and how many connections it refused.
fn flaky_proxy(
    upstream: String,
    failures: usize,
    stop: Arc<AtomicBool>,
) -> (String, Arc<AtomicUsize>, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let refused = Arc::new(AtomicUsize::new(0));
    let count = refused.clone();
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            let Ok((mut client, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let _ = client.set_nonblocking(false);
            if count.load(Ordering::Relaxed) < failures {
                count.fetch_add(1, Ordering::Relaxed);
                let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
                let _ = client.read(&mut [0u8; 8192]);
                let _ = client.write_all(
                    b"HTTP/1.1 503 Slow Down\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                continue;
            }
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut c1, mut s1) = (client, server);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c1, &mut s1);
                let _ = s1.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (endpoint, refused, handle)
}

/// A server that sheds load for a moment (503 on its first connections) costs a few
/// retries, not the operation: the put and the read succeed, and the proxy saw the retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_server_errors_are_retried() {
    let Some(blobs) = tests::support::TestBlobs::open(tests::support::BlobBackendKind::S3).await
    else {
        return; // no S3 test server here (never under CI=true: opening panics there)
    };
    let upstream = std::env::var(tests::support::S3_ENDPOINT_VAR).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let address = upstream.trim_start_matches("http://").trim_end_matches('/');
    let (endpoint, refused, proxy) = flaky_proxy(address.to_owned(), 3, stop.clone());
    let url = blobs.url.replace(&upstream, &endpoint);
    assert_ne!(url, blobs.url, "the store must go through the proxy");
    let (store, t, admin, _db) = store_for(&url).await;
    let data = vec![9u8; 300_000];
    store
        .put(&admin, t, "f.bin", data.clone(), PutOptions::default())
        .await
        .unwrap();
    let back = store
        .get(&admin, t, "f.bin")
        .await
        .unwrap()
        .read_to_end(true)
        .await
        .unwrap();
    assert!(back == data);
    assert_eq!(
        refused.load(Ordering::Relaxed),
        3,
        "every refusal was retried"
    );
    stop.store(true, Ordering::Relaxed);
    proxy.join().unwrap();
}
