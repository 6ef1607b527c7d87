//! Integration endpoints over HTTP (`/api/integration/endpoints`): register with each kind
//! of secret, which is never returned; test (probe), call and metrics against a real HTTP
//! server on loopback that checks the credentials; replace and delete; the workflow step
//! that calls one; roles and tenants; bad input; and the default egress policy that keeps
//! tenants off the host's own network.

use crate::server::Server;
use crate::token;
use crate::{on_every_database, on_every_database_with};
use axum::http::{HeaderMap, StatusCode as AxStatus};
use axum::response::IntoResponse;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const EPS: &str = "/api/integration/endpoints";

/// What the loopback server saw: the `authorization` header and body of each call.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A loopback server: `/hook` answers 200 JSON when the bearer token is `hook-token-1`
/// (else 401); `/fail` answers 503. Returns its base URL and what it saw.
async fn hooks() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(seen): axum::extract::State<Seen>,
                 headers: HeaderMap,
                 body: String| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    seen.lock()
                        .expect("lock")
                        .push((auth.clone(), body.clone()));
                    if auth != "Bearer hook-token-1" {
                        return (AxStatus::UNAUTHORIZED, "who are you").into_response();
                    }
                    axum::Json(json!({"got": body})).into_response()
                },
            )
            .head(|| async { AxStatus::NO_CONTENT }),
        )
        .route(
            "/fail",
            axum::routing::post(|| async { (AxStatus::SERVICE_UNAVAILABLE, "down for a bit") }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("http://{addr}"), seen)
}

/// Runs `case` on every database with integration calls allowed onto loopback.
async fn with_private_networks<F, Fut>(case: F)
where
    F: Fn(Server) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    on_every_database_with(
        &[("ATE_INTEGRATIONS__ALLOW_PRIVATE_NETWORKS", "true")],
        case,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_registered_tested_called_and_measured() {
    with_private_networks(|s| async move {
        let (base, seen) = hooks().await;
        let (_, email, password) = s.register("acme").await;
        let owner = token(&s.login("acme", &email, &password).await);

        // Register: the secret goes in and never comes out.
        let r = s
            .post(
                EPS,
                Some(&owner),
                json!({"name": "crm", "url": format!("{base}/hook"), "headers": {"X-Team": "data"},
                       "auth": {"type": "bearer", "token": "hook-token-1"}, "timeout_ms": 5000}),
            )
            .await;
        r.expect(StatusCode::CREATED);
        assert_eq!(r.body["auth_type"], "bearer");
        assert_eq!(r.body["has_secret"], true);
        assert_eq!(r.body["method"], "POST");
        assert_eq!(r.body["revision"], 1);
        s.post(
            EPS,
            Some(&owner),
            json!({"name": "flaky", "url": format!("{base}/fail"),
                   "auth": {"type": "oauth2_client_credentials", "token_url": format!("{base}/token"),
                            "client_id": "ate", "client_secret": "client-secret-9", "scope": "write"}}),
        )
        .await
        .expect(StatusCode::CREATED);
        let list = s.get(EPS, Some(&owner)).await;
        list.expect(StatusCode::OK);
        let text = list.body.to_string();
        assert!(!text.contains("hook-token-1") && !text.contains("client-secret-9"), "{text}");
        assert_eq!(list.body["items"][0]["name"], "crm");
        assert_eq!(list.body["items"][1]["auth_params"]["client_id"], "ate");
        let one = s.get(&format!("{EPS}/crm"), Some(&owner)).await;
        one.expect(StatusCode::OK);
        assert!(!one.body.to_string().contains("hook-token-1"));
        assert_eq!(one.body["headers"]["X-Team"], "data");

        // Test (HEAD, nothing triggered), call, metrics.
        let probe = s.post(&format!("{EPS}/crm/test"), Some(&owner), json!({})).await;
        probe.expect(StatusCode::OK);
        assert_eq!(probe.body["reachable"], true, "{}", probe.body);
        assert_eq!(probe.body["status"], 204);
        assert!(seen.lock().expect("lock").is_empty(), "a probe must not POST");
        for i in 0..3 {
            let c = s
                .post(&format!("{EPS}/crm/call"), Some(&owner), json!({"body": {"n": i}}))
                .await;
            c.expect(StatusCode::OK);
            assert_eq!(c.body["ok"], true, "{}", c.body);
            assert_eq!(c.body["status"], 200);
            assert_eq!(c.body["body"]["got"], json!({"n": i}).to_string());
        }
        let calls = seen.lock().expect("lock").clone();
        assert_eq!(calls.len(), 3);
        assert!(calls.iter().all(|(auth, _)| auth == "Bearer hook-token-1"));
        // A failing endpoint is an outcome, not an error of the API.
        let failed = s.post(&format!("{EPS}/flaky/call"), Some(&owner), json!({})).await;
        failed.expect(StatusCode::OK);
        assert_eq!(failed.body["ok"], false);
        assert_eq!(failed.body["retryable"], true);
        assert!(failed.body["error"].as_str().expect("a string").contains("token endpoint answered HTTP 404"), "{}", failed.body);
        let m = s.get(&format!("{EPS}/crm/metrics"), Some(&owner)).await;
        m.expect(StatusCode::OK);
        assert_eq!(m.body["calls"], 3);
        assert_eq!(m.body["errors"], 0);
        assert!(m.body["p50_ms"].as_f64().expect("a number") > 0.0, "{}", m.body);
        let m = s.get(&format!("{EPS}/flaky/metrics"), Some(&owner)).await;
        assert_eq!((m.body["calls"].as_u64(), m.body["errors"].as_u64()), (Some(1), Some(1)));

        // Replace: a new secret (the old one stops being sent); renaming is refused.
        let put = s
            .put(
                &format!("{EPS}/crm"),
                Some(&owner),
                json!({"url": format!("{base}/hook"), "auth": {"type": "bearer", "token": "stale"}}),
            )
            .await;
        put.expect(StatusCode::OK);
        assert_eq!(put.body["revision"], 2);
        assert_eq!(put.body["headers"], json!({}));
        let c = s.post(&format!("{EPS}/crm/call"), Some(&owner), json!({})).await;
        assert_eq!((c.body["ok"].clone(), c.body["status"].clone()), (json!(false), json!(401)));
        assert_eq!(c.body["retryable"], false);
        s.put(
            &format!("{EPS}/crm"),
            Some(&owner),
            json!({"name": "other", "url": format!("{base}/hook")}),
        )
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
        s.put(&format!("{EPS}/nope"), Some(&owner), json!({"url": format!("{base}/hook")}))
            .await
            .problem(StatusCode::NOT_FOUND, "not_found");

        // The workflow step calls it with the tenant's sealed credentials.
        s.put(
            &format!("{EPS}/crm"),
            Some(&owner),
            json!({"url": format!("{base}/hook"), "auth": {"type": "bearer", "token": "hook-token-1"}}),
        )
        .await
        .expect(StatusCode::OK);
        let dag = json!({"nodes": [{"id": "notify", "step": "ate.integration",
                                    "params": {"endpoint": "crm", "body": {"from": "workflow"}}}]});
        let run = s
            .post("/api/orchestration/workflows", Some(&owner), json!({"dag": dag}))
            .await;
        run.expect(StatusCode::CREATED);
        let id = run.str("/id");
        let mut done = Value::Null;
        for _ in 0..200 {
            done = s
                .get(&format!("/api/orchestration/workflows/{id}"), Some(&owner))
                .await
                .body;
            if done["status"] == "succeeded" || done["status"] == "failed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(done["status"], "succeeded", "{done}");
        let last = seen.lock().expect("lock").last().cloned().expect("a call");
        assert_eq!(last, ("Bearer hook-token-1".into(), r#"{"from":"workflow"}"#.into()));
        let m = s.get(&format!("{EPS}/crm/metrics"), Some(&owner)).await;
        assert_eq!(m.body["calls"], 5, "API calls and the step's call are counted together");

        // Delete.
        s.delete(&format!("{EPS}/crm"), Some(&owner))
            .await
            .expect(StatusCode::NO_CONTENT);
        s.get(&format!("{EPS}/crm"), Some(&owner))
            .await
            .problem(StatusCode::NOT_FOUND, "not_found");
        s.post(&format!("{EPS}/crm/call"), Some(&owner), json!({}))
            .await
            .problem(StatusCode::NOT_FOUND, "not_found");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_tenants_and_bad_input() {
    with_private_networks(|s| async move {
        let (base, _seen) = hooks().await;
        let (acme_id, email, password) = s.register("acme").await;
        let owner = token(&s.login("acme", &email, &password).await);
        let (_, g_email, g_password) = s.register("globex").await;
        let globex = token(&s.login("globex", &g_email, &g_password).await);
        s.post(
            EPS,
            Some(&owner),
            json!({"name": "crm", "url": format!("{base}/hook"), "auth": {"type": "bearer", "token": "hook-token-1"}}),
        )
        .await
        .expect(StatusCode::CREATED);

        // A member reads, tests and calls, but does not change endpoints.
        s.post(
            "/api/users",
            Some(&owner),
            json!({"email": "member@acme.example", "password": "member passphrase 1", "roles": ["user"]}),
        )
        .await
        .expect(StatusCode::CREATED);
        let member = token(&s.login("acme", "member@acme.example", "member passphrase 1").await);
        s.get(EPS, Some(&member)).await.expect(StatusCode::OK);
        let c = s.post(&format!("{EPS}/crm/call"), Some(&member), json!({})).await;
        assert_eq!(c.body["ok"], true, "{}", c.body);
        s.post(EPS, Some(&member), json!({"name": "x", "url": format!("{base}/hook")}))
            .await
            .problem(StatusCode::FORBIDDEN, "permission_denied");
        s.delete(&format!("{EPS}/crm"), Some(&member))
            .await
            .problem(StatusCode::FORBIDDEN, "permission_denied");

        // Another tenant sees nothing and cannot name ours.
        let theirs = s.get(EPS, Some(&globex)).await;
        assert_eq!(theirs.body["items"], json!([]));
        s.get(&format!("{EPS}/crm"), Some(&globex))
            .await
            .problem(StatusCode::NOT_FOUND, "not_found");
        let other = s
            .get(&format!("{EPS}?tenant_id={acme_id}"), Some(&globex))
            .await;
        assert!(other.status.is_client_error(), "{:?} {}", other.status, other.body);
        assert!(!other.body.to_string().contains("crm"));
        // The platform administrator reaches any tenant by id.
        let admin = s.admin_token().await;
        let seen_by_admin = s.get(&format!("{EPS}?tenant_id={acme_id}"), Some(&admin)).await;
        assert_eq!(seen_by_admin.body["items"][0]["name"], "crm");
        s.get(EPS, None)
            .await
            .problem(StatusCode::UNAUTHORIZED, "unauthenticated");

        // Bad input: each a typed 4xx naming the problem; nothing is created.
        let bad: Vec<(Value, &str)> = vec![
            (json!({"url": format!("{base}/hook")}), "name is required"),
            (json!({"name": "Bad Name", "url": format!("{base}/hook")}), "endpoint name"),
            (json!({"name": "a", "url": "ftp://x.example/"}), "http or https"),
            (json!({"name": "a", "url": "https://u:p@x.example/"}), "credentials"),
            (json!({"name": "a", "url": "https://x.example/", "method": "TRACE"}), "TRACE"),
            (json!({"name": "a", "url": "https://x.example/", "headers": {"Authorization": "Bearer x"}}), "credentials"),
            (json!({"name": "a", "url": "https://x.example/", "headers": {"X-A": "v\r\nX-Injected: 1"}}), "control characters"),
            (json!({"name": "a", "url": "https://x.example/", "timeout_ms": 0}), "timeout"),
            (json!({"name": "a", "url": "https://x.example/", "timeout_ms": 400000}), "timeout"),
            (json!({"name": "a", "url": "https://x.example/", "auth": {"type": "bearer", "token": ""}}), "secret"),
            (json!({"name": "a", "url": "https://x.example/", "auth": {"type": "basic", "username": "a:b", "password": "p"}}), "user name"),
            (json!({"name": "a", "url": "https://x.example/", "auth": {"type": "kerberos"}}), "kerberos"),
            (json!({"name": "a", "url": "https://x.example/", "auth": {"type": "bearer"}}), "token"),
            (json!({"name": "a", "url": "https://x.example/", "colour": "red"}), "colour"),
            (json!({"name": "a", "url": 7}), "url"),
        ];
        for (body, says) in bad {
            let r = s.post(EPS, Some(&owner), body.clone()).await;
            assert!(r.status.is_client_error(), "{body}: {:?} {}", r.status, r.body);
            let detail = r.body["detail"].as_str().unwrap_or_default();
            assert!(detail.contains(says), "{body}: {detail}");
        }
        s.post(&format!("{EPS}/crm/call"), Some(&owner), json!({"body": 1, "extra": true}))
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
        for path in ["..%2Fetc/metrics", "Bad%20Name", "x%0d%0aSet-Cookie:%20a=b/test"] {
            let r = s.get(&format!("{EPS}/{path}"), Some(&owner)).await;
            let r = if path.ends_with("/test") {
                s.post(&format!("{EPS}/{path}"), Some(&owner), json!({})).await
            } else {
                r
            };
            r.problem(StatusCode::BAD_REQUEST, "invalid_input");
            assert!(r.headers.get("set-cookie").is_none());
        }
        s.delete(&format!("{EPS}/..%2Fetc"), Some(&owner))
            .await
            .problem(StatusCode::BAD_REQUEST, "invalid_input");
        let names: Vec<Value> = s.get(EPS, Some(&owner)).await.body["items"]
            .as_array()
            .expect("an array")
            .iter()
            .map(|e| e["name"].clone())
            .collect();
        assert_eq!(names, vec![json!("crm")]);
        // A taken name.
        s.post(EPS, Some(&owner), json!({"name": "crm", "url": format!("{base}/hook")}))
            .await
            .problem(StatusCode::CONFLICT, "already_exists");
    })
    .await;
}

/// With the default configuration a tenant cannot reach the host's network: loopback and
/// the cloud metadata address are refused before any byte is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_calls_reach_public_addresses_only() {
    on_every_database(|s| async move {
        let (base, seen) = hooks().await;
        let (_, email, password) = s.register("acme").await;
        let owner = token(&s.login("acme", &email, &password).await);
        let port = base.rsplit(':').next().expect("a port").to_owned();
        for (name, url) in [
            ("loop", format!("{base}/hook")),
            ("named", format!("http://localhost:{port}/hook")),
            (
                "meta",
                "http://169.254.169.254/latest/meta-data/".to_owned(),
            ),
        ] {
            s.post(EPS, Some(&owner), json!({"name": name, "url": url}))
                .await
                .expect(StatusCode::CREATED);
            let c = s
                .post(&format!("{EPS}/{name}/call"), Some(&owner), json!({}))
                .await;
            c.expect(StatusCode::OK);
            assert_eq!(c.body["ok"], false);
            assert!(
                c.body["error"]
                    .as_str()
                    .expect("a string")
                    .contains("not a public address"),
                "{name}: {}",
                c.body
            );
            let t = s
                .post(&format!("{EPS}/{name}/test"), Some(&owner), json!({}))
                .await;
            assert_eq!(t.body["reachable"], false, "{name}: {}", t.body);
        }
        assert!(seen.lock().expect("lock").is_empty());
    })
    .await;
}
