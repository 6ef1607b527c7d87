//! HTTPS: TLS 1.3 by default (1.2 only when allowed), HTTP/2 by ALPN, certificates reloaded
//! on SIGHUP and when their files change.

use crate::server::{Database, Server};
use reqwest::{Certificate, StatusCode, Version, tls};
use std::path::Path;
use std::time::Duration;

/// Writes a fresh self-signed certificate for 127.0.0.1 to `cert`/`key`; returns its PEM.
fn self_signed(cert: &Path, key: &Path) -> String {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("generate certificate");
    let pem = ck.cert.pem();
    // Written to a side file and renamed: the server never reads half a file.
    let write = |path: &Path, text: &str| {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, path).expect("rename");
    };
    write(key, &ck.signing_key.serialize_pem());
    write(cert, &pem);
    pem
}

fn client(trust: &str, max: Option<tls::Version>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_certs_only([Certificate::from_pem(trust.as_bytes()).expect("pem")])
        .timeout(Duration::from_secs(20));
    if let Some(v) = max {
        b = b.tls_version_max(v);
    }
    b.build().expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_tls13_http2_and_reloads() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let first = self_signed(&cert, &key);
    let env = [
        ("ATE_TLS__CERT_FILE", cert.to_str().expect("utf-8")),
        ("ATE_TLS__KEY_FILE", key.to_str().expect("utf-8")),
    ];
    let mut s = Server::start(dir.path(), &Database::Sqlite, &env);
    assert!(s.base.starts_with("https://127.0.0.1:"), "{}", s.base);
    let url = format!("{}/healthz", s.base);

    let r = client(&first, None).get(&url).send().await.expect("https");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.version(), Version::HTTP_2, "ALPN should pick h2");
    assert!(r.headers().contains_key("strict-transport-security"));
    // TLS 1.2 is refused unless allowed.
    let old = client(&first, Some(tls::Version::TLS_1_2))
        .get(&url)
        .send()
        .await;
    assert!(old.is_err(), "a TLS 1.2 client was served: {old:?}");
    // Plain HTTP on the TLS port gets nothing.
    let plain = reqwest::Client::new()
        .get(url.replace("https://", "http://"))
        .send()
        .await;
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() != StatusCode::OK));

    // A new certificate is picked up by SIGHUP…
    let second = self_signed(&cert, &key);
    let pid = s.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let mut switched = false;
    for _ in 0..50 {
        if client(&second, None).get(&url).send().await.is_ok() {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        switched,
        "the reloaded certificate was not served after SIGHUP"
    );
    assert!(
        client(&first, None).get(&url).send().await.is_err(),
        "the old certificate is still served"
    );
    // …and by a change of the files alone; a broken file keeps the current certificate.
    std::fs::write(&cert, "not a certificate").expect("write");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        client(&second, None).get(&url).send().await.is_ok(),
        "a broken file replaced the certificate"
    );
    let third = self_signed(&cert, &key);
    let mut switched = false;
    for _ in 0..60 {
        if client(&third, None).get(&url).send().await.is_ok() {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(switched, "a changed certificate file was not picked up");
    assert!(s.stop(), "SIGTERM should stop the TLS server cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_when_allowed_and_bad_files_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let pem = self_signed(&cert, &key);
    let env = [
        ("ATE_TLS__CERT_FILE", cert.to_str().expect("utf-8")),
        ("ATE_TLS__KEY_FILE", key.to_str().expect("utf-8")),
        ("ATE_TLS__ALLOW_TLS12", "true"),
    ];
    let s = Server::start(dir.path(), &Database::Sqlite, &env);
    let r = client(&pem, Some(tls::Version::TLS_1_2))
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .expect("TLS 1.2 allowed");
    assert_eq!(r.status(), StatusCode::OK);
    drop(s);

    // A key that does not match the certificate: refused at start and by --check-config.
    let other = dir.path().join("other-key.pem");
    let other_cert = dir.path().join("other-cert.pem");
    self_signed(&other_cert, &other);
    let out = crate::server::ate(dir.path())
        .args(["serve", "--check-config"])
        .env("ATE_TLS__CERT_FILE", &cert)
        .env("ATE_TLS__KEY_FILE", &other)
        .output()
        .expect("run ate");
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TLS"),
        "{out:?}"
    );
}
