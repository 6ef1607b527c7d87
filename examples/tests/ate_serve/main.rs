//! End-to-end tests of `ate serve`: the real binary on loopback, a real HTTP client, on
//! SQLite (the embedded default) and on PostgreSQL (a fresh schema of
//! `ATE_TEST_POSTGRES_URL`; required under `CI=true`).

mod cli;
mod codebases;
mod dashboard;
mod gateway;
mod integrations;
mod monitoring;
mod scale_out;
mod server;
mod services;
mod tls;
mod workflows;

use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{ADMIN_EMAIL, ADMIN_PASSWORD, Database, Server, ate, examples_dir};
use tests::support::{Backend, TestDb};

/// Runs `case` on a server over SQLite, then over PostgreSQL when configured.
async fn on_every_database<F, Fut>(case: F)
where
    F: Fn(Server) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    on_every_database_with(&[], case).await;
}

/// [`on_every_database`] with extra environment for the servers.
async fn on_every_database_with<F, Fut>(env: &[(&str, &str)], case: F)
where
    F: Fn(Server) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temporary directory");
    case(Server::start(dir.path(), &Database::Sqlite, env)).await;
    if let Some(pg) = TestDb::open(Backend::Postgres).await {
        let dir = tempfile::tempdir().expect("temporary directory");
        case(Server::start(
            dir.path(),
            &Database::Postgres(pg.url.clone()),
            env,
        ))
        .await;
        pg.cleanup().await;
    }
}

fn token(v: &Value) -> String {
    v["access_token"].as_str().expect("access_token").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_flow_register_login_refresh_logout() {
    on_every_database(|s| async move {
        s.get("/healthz", None).await.expect(StatusCode::OK);
        // The signing keys: public, cacheable, revalidated by ETag.
        let jwks = s.get("/api/auth/jwks", None).await;
        jwks.expect(StatusCode::OK);
        assert!(
            jwks.body["keys"].as_array().is_some_and(|k| !k.is_empty()),
            "{}",
            jwks.text
        );
        assert_eq!(jwks.headers["cache-control"], "public, max-age=300");
        let tag = jwks.headers["etag"].to_str().expect("etag").to_owned();
        let cached = s
            .http
            .get(format!("{}/api/auth/jwks", s.base))
            .header("if-none-match", &tag)
            .send()
            .await
            .expect("conditional");
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
        let ready = s.get("/readyz", None).await;
        ready.expect(StatusCode::OK);
        assert_eq!(
            ready.body,
            json!({"status": "ok", "database": "ok", "blob_store": "ok"})
        );

        let (tenant, email, password) = s.register("acme").await;
        // The organization can be named by slug or by id.
        let by_id = s.login(&tenant, &email, &password).await;
        let login = s.login("acme", &email, &password).await;
        assert_eq!(login["tenant_id"], tenant);
        assert_ne!(by_id["session_id"], login["session_id"]);
        let access = token(&login);

        let me = s.get("/api/auth/verify", Some(&access)).await;
        me.expect(StatusCode::OK);
        assert_eq!(me.body["tenant_id"], tenant);
        assert_eq!(me.body["roles"], json!(["admin"]));
        // The host's role permissions reach the principal.
        let perms = me.body["permissions"].as_array().expect("permissions");
        assert!(perms.contains(&json!("projects:write")), "{perms:?}");

        let profile = s.get("/api/users/profile", Some(&access)).await;
        profile.expect(StatusCode::OK);
        assert_eq!(profile.body["email"], email);
        let renamed = s
            .put(
                "/api/users/profile",
                Some(&access),
                json!({"name": "Ada Owner"}),
            )
            .await;
        renamed.expect(StatusCode::OK);
        assert_eq!(renamed.body["name"], "Ada Owner");

        let refreshed = s
            .post(
                "/api/auth/refresh",
                None,
                json!({"refresh_token": login["refresh_token"]}),
            )
            .await;
        refreshed.expect(StatusCode::OK);
        assert_eq!(refreshed.headers["cache-control"], "no-store");
        assert_ne!(refreshed.body["refresh_token"], login["refresh_token"]);
        let access2 = token(&refreshed.body);

        s.post("/api/auth/logout", Some(&access2), json!({}))
            .await
            .expect(StatusCode::NO_CONTENT);
        s.get("/api/auth/verify", Some(&access2))
            .await
            .problem(StatusCode::UNAUTHORIZED, "unauthenticated");
        s.post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": refreshed.body["refresh_token"]}),
        )
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthenticated");

        // The audit log recorded it, and its chain verifies.
        let admin = s.admin_token().await;
        let log = s
            .get(
                &format!("/api/tenants/{tenant}/audit-logs?action=authn_login_success"),
                Some(&admin),
            )
            .await;
        log.expect(StatusCode::OK);
        assert_eq!(
            log.body["items"].as_array().map(Vec::len),
            Some(2),
            "{}",
            log.text
        );
        let chain = s
            .get(
                &format!("/api/tenants/{tenant}/audit-logs/verify"),
                Some(&admin),
            )
            .await;
        chain.expect(StatusCode::OK);
        assert_eq!(chain.body["intact"], true);
        assert!(
            chain.body["events_checked"].as_u64().unwrap_or(0) >= 4,
            "{}",
            chain.text
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_all_look_alike() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(dir.path(), &Database::Sqlite, &[]);
    let (_, email, password) = s.register("acme").await;
    let wrong_password = s
        .post(
            "/api/auth/login",
            None,
            json!({"tenant": "acme", "email": email, "password": "nope nope nope"}),
        )
        .await;
    let unknown_user = s
        .post(
            "/api/auth/login",
            None,
            json!({"tenant": "acme", "email": "who@acme.example", "password": password}),
        )
        .await;
    let unknown_tenant = s
        .post(
            "/api/auth/login",
            None,
            json!({"tenant": "nosuchorg", "email": email, "password": password}),
        )
        .await;
    for r in [&wrong_password, &unknown_user, &unknown_tenant] {
        r.problem(StatusCode::UNAUTHORIZED, "unauthenticated");
        assert_eq!(r.body["detail"], "authentication failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_admin_tenant_admin_and_user() {
    on_every_database(|s| async move {
        let admin = s.admin_token().await;
        let (acme, email, password) = s.register("acme").await;
        let owner = token(&s.login("acme", &email, &password).await);

        // A tenant administrator creates a member; the member cannot list users.
        let member = s
            .post(
                "/api/users",
                Some(&owner),
                json!({"email": "member@acme.example", "password": "member passphrase 1", "roles": ["user"], "name": "Mem"}),
            )
            .await;
        member.expect(StatusCode::CREATED);
        let member_id = member.str("/id");
        let member_token = token(&s.login("acme", "member@acme.example", "member passphrase 1").await);
        s.get("/api/users", Some(&member_token))
            .await
            .problem(StatusCode::FORBIDDEN, "permission_denied");
        s.get(&format!("/api/users/{member_id}"), Some(&member_token))
            .await
            .expect(StatusCode::OK);
        // A member cannot grant itself a role, nor an administrator super_admin.
        s.put(&format!("/api/users/{member_id}"), Some(&member_token), json!({"roles": ["admin"]}))
            .await
            .problem(StatusCode::FORBIDDEN, "permission_denied");
        s.put(&format!("/api/users/{member_id}"), Some(&owner), json!({"roles": ["super_admin"]}))
            .await
            .problem(StatusCode::FORBIDDEN, "permission_denied");

        // Only platform administrators list tenants and set quotas.
        s.get("/api/tenants", Some(&owner))
            .await
            .problem(StatusCode::FORBIDDEN, "permission_denied");
        let all = s.get("/api/tenants", Some(&admin)).await;
        all.expect(StatusCode::OK);
        let slugs: Vec<&str> = all.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|t| t["slug"].as_str())
            .collect();
        assert!(slugs.contains(&"acme") && slugs.contains(&"operators"), "{slugs:?}");
        s.put(&format!("/api/tenants/{acme}"), Some(&owner), json!({"quotas": {"max_users": 2}}))
            .await
            .problem(StatusCode::FORBIDDEN, "permission_denied");
        let limited = s
            .put(&format!("/api/tenants/{acme}"), Some(&admin), json!({"quotas": {"max_users": 2}}))
            .await;
        limited.expect(StatusCode::OK);
        assert_eq!(limited.body["quotas"]["max_users"], 2);
        s.post(
            "/api/users",
            Some(&owner),
            json!({"email": "third@acme.example", "password": "third passphrase 1"}),
        )
        .await
        .problem(StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded");
        let usage = s.get(&format!("/api/tenants/{acme}/usage"), Some(&owner)).await;
        usage.expect(StatusCode::OK);
        assert_eq!(usage.body["users"], 2);
        assert_eq!(usage.body["quotas"]["max_users"], 2);

        // The platform administrator reads and deactivates a member of any tenant.
        s.get(&format!("/api/users/{member_id}"), Some(&admin))
            .await
            .expect(StatusCode::OK);
        let off = s.delete(&format!("/api/users/{member_id}"), Some(&admin)).await;
        off.expect(StatusCode::OK);
        assert_eq!(off.body["status"], "disabled");
        s.get("/api/auth/verify", Some(&member_token))
            .await
            .problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_tenants_are_invisible() {
    on_every_database(|s| async move {
        let (acme, email, password) = s.register("acme").await;
        let acme_owner = token(&s.login("acme", &email, &password).await);
        let acme_user = s
            .post("/api/users", Some(&acme_owner), json!({"email": "x@acme.example", "password": "xxxx passphrase 1"}))
            .await
            .str("/id");
        let (_, email_b, password_b) = s.register("globex").await;
        let intruder = token(&s.login("globex", &email_b, &password_b).await);

        let gets = [
            format!("/api/tenants/{acme}"),
            format!("/api/tenants/{acme}/users"),
            format!("/api/tenants/{acme}/usage"),
            format!("/api/tenants/{acme}/audit-logs"),
            format!("/api/tenants/{acme}/audit-logs/verify"),
            format!("/api/users?tenant_id={acme}"),
            format!("/api/users/{acme_user}"),
        ];
        for path in &gets {
            let r = s.get(path, Some(&intruder)).await;
            r.problem(StatusCode::NOT_FOUND, "not_found");
            assert!(!r.text.contains("acme"), "{path} revealed something: {}", r.text);
        }
        let writes = [
            s.put(&format!("/api/tenants/{acme}"), Some(&intruder), json!({"name": "pwned"})).await,
            s.put(&format!("/api/users/{acme_user}"), Some(&intruder), json!({"name": "pwned"})).await,
            s.delete(&format!("/api/users/{acme_user}"), Some(&intruder)).await,
            s.delete(&format!("/api/tenants/{acme}"), Some(&intruder)).await,
            s.post(&format!("/api/tenants/{acme}/suspend"), Some(&intruder), json!({"reason": "x"})).await,
            s.post(
                "/api/users",
                Some(&intruder),
                json!({"tenant_id": acme, "email": "spy@acme.example", "password": "spy passphrase 11"}),
            )
            .await,
        ];
        for r in &writes {
            r.problem(StatusCode::NOT_FOUND, "not_found");
        }
        // Nothing changed.
        let t = s.get(&format!("/api/tenants/{acme}"), Some(&acme_owner)).await;
        assert_eq!(t.body["name"], "acme");
        assert_eq!(t.body["status"], "active");
        let u = s.get(&format!("/api/users/{acme_user}"), Some(&acme_owner)).await;
        assert_eq!(u.body["status"], "active");
        assert_eq!(u.body["name"], "");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_typed_problem() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(
        dir.path(),
        &Database::Sqlite,
        &[("ATE_HTTP__MAX_BODY_BYTES", "4096")],
    );
    let (_, email, password) = s.register("acme").await;
    let owner = token(&s.login("acme", &email, &password).await);
    let raw = |body: &'static str, ctype: Option<&'static str>| {
        let mut req = s
            .http
            .post(format!("{}/api/users", s.base))
            .bearer_auth(&owner)
            .body(body);
        if let Some(c) = ctype {
            req = req.header("content-type", c);
        }
        async move { server::Reply::read(req.send().await.expect("send")).await }
    };
    raw("{\"email\": ", Some("application/json"))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    raw("{\"email\": 42}", Some("application/json"))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    let unknown = raw(
        "{\"email\": \"a@acme.example\", \"is_admin\": true}",
        Some("application/json"),
    )
    .await;
    unknown.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    assert!(
        unknown.body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("is_admin"),
        "{}",
        unknown.text
    );
    raw("{}", None)
        .await
        .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_input");
    let big = format!("{{\"email\": \"{}\"}}", "a".repeat(10_000));
    let r = server::Reply::read(
        s.http
            .post(format!("{}/api/users", s.base))
            .bearer_auth(&owner)
            .header("content-type", "application/json")
            .body(big)
            .send()
            .await
            .expect("send"),
    )
    .await;
    r.problem(StatusCode::PAYLOAD_TOO_LARGE, "invalid_input");
    // Values the SDK refuses: an invalid email, an unknown role, a bad id, a bad cursor.
    s.post("/api/users", Some(&owner), json!({"email": "not an email"}))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    s.post(
        "/api/users",
        Some(&owner),
        json!({"email": "r@acme.example", "roles": ["god"]}),
    )
    .await
    .problem(StatusCode::BAD_REQUEST, "invalid_input");
    s.get("/api/users/not-a-uuid", Some(&owner))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    s.get("/api/tenants/..%2F..%2Fetc", Some(&owner))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    s.get("/api/users?cursor=garbage", Some(&owner))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    s.get("/api/users?limit=-1", Some(&owner))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    s.post("/api/auth/register", None, json!({"organization": {"slug": "Bad Slug!", "name": "x"}, "email": "a@b.example", "password": "long enough passphrase"}))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    s.post("/api/auth/register", None, json!({"organization": {"slug": "acme", "name": "x"}, "email": "a@b.example", "password": "long enough passphrase"}))
        .await
        .problem(StatusCode::CONFLICT, "already_exists");
    s.post("/api/auth/register", None, json!({"organization": {"slug": "weak", "name": "x"}, "email": "a@b.example", "password": "short"}))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    // Unknown routes and methods, a missing or malformed token.
    s.get("/api/nothing-here", Some(&owner))
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    s.call(reqwest::Method::PATCH, "/api/auth/login", None, None)
        .await
        .problem(StatusCode::METHOD_NOT_ALLOWED, "invalid_input");
    s.get("/api/users", None)
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    s.get("/api/users", Some("not.a.jwt"))
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    // A request id that would inject into headers or logs is replaced, a sane one echoed.
    let r = s
        .http
        .get(format!("{}/healthz", s.base))
        .header("x-request-id", "abc\tdef")
        .send()
        .await
        .expect("send");
    let echoed = r.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_ne!(echoed, "abc\tdef");
    assert_eq!(echoed.len(), 36, "{echoed}");
    let r = s
        .http
        .get(format!("{}/healthz", s.base))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .expect("send");
    assert_eq!(r.headers()["x-request-id"], "trace-42");
    // A problem replaced on the way out is compressed like any other body, never left
    // labelled gzip while plain.
    let gz = s
        .http
        .get(format!("{}/api/users", s.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("send");
    assert_eq!(gz.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let raw = gz.bytes().await.expect("body");
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(raw.as_ref()), &mut plain)
        .expect("a gzip body");
    let problem: Value = serde_json::from_str(&plain).expect("JSON");
    assert_eq!(problem["kind"], "unauthenticated");
    // Every response carries the security headers.
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["cache-control"], "no-store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(dir.path(), &Database::Sqlite, &[]);
    for _ in 0..3 {
        s.get("/healthz", None).await.expect(StatusCode::OK);
    }
    s.get("/api/users/01a24218-95d6-754d-bfdf-61b4029b6790", None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let m = s.get("/metrics", None).await;
    m.expect(StatusCode::OK);
    assert!(
        m.text
            .contains(r#"ate_http_requests_total{method="GET",route="/healthz",status="200"} 3"#),
        "{}",
        m.text
    );
    // Routes are labelled by pattern, never by the ids in the path.
    assert!(
        m.text
            .contains(r#"route="/api/users/{user_id}",status="401""#),
        "{}",
        m.text
    );
    assert!(!m.text.contains("01a24218"), "{}", m.text);
    assert!(m.text.contains("ate_http_request_duration_seconds_bucket"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_happens_once_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut first = Server::start(
        dir.path(),
        &Database::Sqlite,
        &[("ATE_ADMIN__PASSWORD", "")],
    );
    assert!(
        first
            .banner
            .contains("platform administrator created: tenant operators"),
        "{}",
        first.banner
    );
    assert!(
        first.banner.contains("password (shown once"),
        "{}",
        first.banner
    );
    let generated = first
        .banner
        .lines()
        .find_map(|l| l.split("): ").nth(1))
        .expect("generated password")
        .to_owned();
    assert!(first.stop(), "SIGTERM should end the server with success");
    let key = dir.path().join("ate-data/master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key)
            .expect("master key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "master key mode {mode:o}");
    }
    let second = Server::start(dir.path(), &Database::Sqlite, &[]);
    assert!(!second.banner.contains("password"), "{}", second.banner);
    // The generated password is the one that works, not the environment's.
    second.login("operators", ADMIN_EMAIL, &generated).await;
    second
        .post(
            "/api/auth/login",
            None,
            json!({"tenant": "operators", "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[test]
fn configuration_is_validated() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let good = ate(dir.path())
        .args(["serve", "--check-config"])
        .env("ATE_DATABASE_URL", "postgres://ate:s3cret@db.internal/ate")
        .env("ATE_TEST_SOMETHING_ELSE", "ignored")
        .output()
        .expect("run ate");
    assert!(good.status.success(), "{good:?}");
    let shown = String::from_utf8_lossy(&good.stdout);
    assert!(shown.contains("postgres://***@db.internal/ate"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    // --check-config opens nothing.
    assert!(!dir.path().join("ate-data").exists());

    let file = dir.path().join("ate.toml");
    for (toml, env, complaint) in [
        (
            "listen = \"127.0.0.1:9000\"\n[http]\nmax_body_bytez = 5\n",
            None,
            "max_body_bytez",
        ),
        ("listen = \"not an address\"\n", None, "listen"),
        (
            "",
            Some(("ATE_HTTP__MAX_BODY_BYTES", "0")),
            "max_body_bytes",
        ),
        ("", Some(("ATE_STORAGE_URL", "ftp://x")), "storage_url"),
        ("[tls]\ncert_file = \"/nonexistent.pem\"\n", None, "tls"),
    ] {
        std::fs::write(&file, toml).expect("write config");
        let mut cmd = ate(dir.path());
        cmd.args([
            "--config",
            file.to_str().expect("utf-8"),
            "serve",
            "--check-config",
        ]);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run ate");
        assert!(!out.status.success(), "{toml:?} {env:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(complaint), "{toml:?}: {err}");
    }
    let missing = ate(dir.path())
        .args([
            "--config",
            "/nonexistent/ate.toml",
            "serve",
            "--check-config",
        ])
        .output()
        .expect("run ate");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_is_committed_and_served() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = ate(dir.path())
        .arg("openapi")
        .output()
        .expect("run ate openapi");
    assert!(out.status.success(), "{out:?}");
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    let committed_path = examples_dir().join("openapi.json");
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        generated == committed,
        "examples/openapi.json is out of date: regenerate it with\n  cargo run -p examples --bin ate -- openapi > examples/openapi.json"
    );
    let doc: Value = serde_json::from_str(&generated).expect("JSON");
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/api/auth/login",
        "/api/tenants/{tenant_id}/audit-logs",
        "/api/users/profile",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the document"
        );
    }
    let s = Server::start(dir.path(), &Database::Sqlite, &[]);
    let served = s.get("/openapi.json", None).await;
    served.expect(StatusCode::OK);
    assert_eq!(served.body, doc);
    let docs = s.get("/docs", None).await;
    docs.expect(StatusCode::OK);
    assert!(docs.text.contains("/openapi.json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_and_tenants_are_rate_limited_apart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(
        dir.path(),
        &Database::Sqlite,
        &[
            ("ATE_HTTP__CLIENT_RATE_PER_SEC", "1"),
            ("ATE_HTTP__TENANT_RATE_PER_SEC", "0"),
            ("ATE_HTTP__RATE_BURST", "5"),
        ],
    );
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(s.get("/healthz", None).await);
    }
    let limited = statuses
        .iter()
        .find(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .expect("a client over its rate is refused");
    limited.problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert!(
        statuses[..5].iter().all(|r| r.status == StatusCode::OK),
        "the burst is served"
    );
    drop(s);

    // Per tenant: one tenant over its rate does not slow another.
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(
        dir.path(),
        &Database::Sqlite,
        &[
            ("ATE_HTTP__CLIENT_RATE_PER_SEC", "0"),
            ("ATE_HTTP__TENANT_RATE_PER_SEC", "1"),
            ("ATE_HTTP__RATE_BURST", "3"),
        ],
    );
    let (_, e1, p1) = s.register("acme").await;
    let (_, e2, p2) = s.register("globex").await;
    let acme = token(&s.login("acme", &e1, &p1).await);
    let globex = token(&s.login("globex", &e2, &p2).await);
    let mut refused = false;
    for _ in 0..10 {
        if s.get("/api/auth/verify", Some(&acme)).await.status == StatusCode::TOO_MANY_REQUESTS {
            refused = true;
            break;
        }
    }
    assert!(refused, "a tenant over its rate is refused");
    s.get("/api/auth/verify", Some(&globex))
        .await
        .expect(StatusCode::OK);
    // Public routes are not a tenant's.
    s.get("/healthz", None).await.expect(StatusCode::OK);
}
