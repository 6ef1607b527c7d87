//! Two `ate serve` processes on one PostgreSQL database and one S3-compatible store serve
//! the same tenants consistently.

use crate::server::{Database, Server, tar_gz};
use crate::token;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use tests::support::{Backend, BlobBackendKind, TestBlobs, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_share_sessions_limits_and_codebases() {
    // The login limit's windows are whole minutes (see the end): the one this test starts in.
    let first_minute = chrono::Utc::now().timestamp().div_euclid(60);
    let (Some(pg), Some(blobs)) = (
        TestDb::open(Backend::Postgres).await,
        TestBlobs::open(BlobBackendKind::S3).await,
    ) else {
        return;
    };
    let shared = tempfile::tempdir().expect("temporary directory");
    let key = shared.path().join("master.key");
    let key = key.to_str().expect("utf-8");
    let env = [
        ("ATE_STORAGE_URL", blobs.url.as_str()),
        ("ATE_MASTER_KEY_FILE", key),
    ];
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let db = Database::Postgres(pg.url.clone());
    let a = Server::start(dir_a.path(), &db, &env);
    let b = Server::start(dir_b.path(), &db, &env);
    assert!(
        a.banner.contains("platform administrator created"),
        "{}",
        a.banner
    );
    assert!(
        !b.banner.contains("created"),
        "bootstrapped twice: {}",
        b.banner
    );

    // A login on one, a refresh on the other, verification on both.
    let (_, email, password) = a.register("acme").await;
    let login = a.login("acme", &email, &password).await;
    let refreshed = b
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": login["refresh_token"]}),
        )
        .await;
    refreshed.expect(StatusCode::OK);
    let t = token(&refreshed.body);
    a.get("/api/auth/verify", Some(&t))
        .await
        .expect(StatusCode::OK);
    // The refreshed token continues the same session on the other host.
    let refreshed_again = a
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": refreshed.body["refresh_token"]}),
        )
        .await;
    refreshed_again.expect(StatusCode::OK);
    assert_eq!(refreshed_again.body["session_id"], login["session_id"]);

    // An upload on one, a download on the other.
    let code = b"fn shared() {}\n";
    a.upload(&t, "project_name=shared", tar_gz(&[("src/lib.rs", code)]))
        .await
        .expect(StatusCode::CREATED);
    let projects = b.get("/api/projects", Some(&t)).await;
    let project = projects.body["items"][0]["id"]
        .as_str()
        .expect("project")
        .to_owned();
    let got = b
        .http
        .get(format!(
            "{}/api/storage/download/{project}/src/lib.rs",
            b.base
        ))
        .bearer_auth(&t)
        .send()
        .await
        .expect("download");
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().await.expect("body").as_ref(), code);

    // A logout on one is seen by the other within its verification cache's time (1 s).
    b.post("/api/auth/logout", Some(&t), json!({}))
        .await
        .expect(StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    a.get("/api/auth/verify", Some(&t))
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthenticated");

    // Lockout counts failures from both hosts: five wrong passwords, alternating, lock.
    for i in 0..5 {
        let s = if i % 2 == 0 { &a } else { &b };
        s.post(
            "/api/auth/login",
            None,
            json!({"tenant": "acme", "email": email, "password": "wrong wrong wrong"}),
        )
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    for s in [&a, &b] {
        s.post(
            "/api/auth/login",
            None,
            json!({"tenant": "acme", "email": email, "password": password}),
        )
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    // The per-client login limit (20 a minute) is counted across both hosts: alternating,
    // the refusal comes by the 21st attempt in all, not the 41st. The limit's windows are
    // whole minutes: when the attempts cross into a new minute, counting starts again.
    let mut attempts = 9; // the logins above (the register is not one)
    let minute = || chrono::Utc::now().timestamp().div_euclid(60);
    let mut window = first_minute;
    let limited = loop {
        if minute() != window {
            window = minute();
            attempts = 0;
        }
        let s = if attempts % 2 == 0 { &a } else { &b };
        let r = s
            .post(
                "/api/auth/login",
                None,
                json!({"tenant": "acme", "email": "nobody@acme.example", "password": "x"}),
            )
            .await;
        attempts += 1;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            break r;
        }
        assert!(
            attempts <= 21,
            "no rate limit after {attempts} logins across two hosts"
        );
    };
    limited.problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
    drop((a, b));
    pg.cleanup().await;
}
