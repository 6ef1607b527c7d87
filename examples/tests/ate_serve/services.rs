//! The service registry over HTTP: registration with health checks, heartbeats, discovery,
//! health, tenancy.

use crate::server::{Database, Server};
use crate::token;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_register_beat_and_are_discovered() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(dir.path(), &Database::Sqlite, &[]);
    let (acme_id, e1, p1) = s.register("acme").await;
    let acme = token(&s.login("acme", &e1, &p1).await);
    let (_, e2, p2) = s.register("globex").await;
    let globex = token(&s.login("globex", &e2, &p2).await);
    let admin = s.admin_token().await;

    // A TTL-checked instance starts critical and passes with a heartbeat.
    let reg = s
        .post(
            "/api/services",
            Some(&acme),
            json!({"service": "search", "id": "search-1", "endpoint": "http://127.0.0.1:9/",
                   "tags": ["blue"], "check": {"kind": "ttl", "ttl_secs": 30}}),
        )
        .await;
    reg.expect(StatusCode::CREATED);
    assert_eq!(reg.body["status"], "critical");
    assert_eq!(reg.body["tenant_id"], acme_id);
    let healthy = s.get("/api/services/search", Some(&acme)).await;
    assert_eq!(
        healthy.body["items"].as_array().map(Vec::len),
        Some(0),
        "{}",
        healthy.text
    );
    s.post(
        "/api/services/search/instances/search-1/heartbeat",
        Some(&acme),
        json!({}),
    )
    .await
    .expect(StatusCode::OK);
    let mut found = 0;
    for _ in 0..50 {
        let r = s.get("/api/services/search?tag=blue", Some(&acme)).await;
        found = r.body["items"].as_array().map_or(0, Vec::len);
        if found == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found, 1, "a heartbeat should make the instance pass");

    // An HTTP-checked instance: the check calls the server's own /healthz.
    let reg = s
        .post(
            "/api/services",
            Some(&acme),
            json!({"service": "web", "id": "web-1", "endpoint": s.base,
                   "check": {"kind": "http", "url": format!("{}/healthz", s.base), "interval_secs": 1}}),
        )
        .await;
    reg.expect(StatusCode::CREATED);
    let mut passing = false;
    for _ in 0..100 {
        let r = s.get("/api/services/web", Some(&acme)).await;
        if r.body["items"][0]["status"] == "passing" {
            passing = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(passing, "the HTTP check never passed");

    // Manual status, health report, metrics.
    let st = s
        .put(
            "/api/services/search/instances/search-1/status",
            Some(&acme),
            json!({"status": "warning", "output": "draining"}),
        )
        .await;
    st.expect(StatusCode::OK);
    assert_eq!(st.body["status"], "warning");
    let health = s.get("/api/services/search/health", Some(&acme)).await;
    health.expect(StatusCode::OK);
    assert_eq!(health.body["instances"][0]["status_output"], "draining");
    let metrics = s.get("/metrics", None).await;
    assert!(
        metrics.text.contains("ate_instance_health_status"),
        "{}",
        metrics.text
    );

    // Tenancy: another tenant sees nothing of acme's and cannot touch it.
    let r = s
        .get("/api/services/search?include_unhealthy=true", Some(&globex))
        .await;
    assert_eq!(
        r.body["items"].as_array().map(Vec::len),
        Some(0),
        "{}",
        r.text
    );
    s.get(
        &format!("/api/services/search?scope={acme_id}"),
        Some(&globex),
    )
    .await
    .problem(StatusCode::NOT_FOUND, "not_found");
    s.delete("/api/services/search/instances/search-1", Some(&globex))
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    s.post(
        "/api/services/search/instances/search-1/heartbeat",
        Some(&globex),
        json!({}),
    )
    .await
    .problem(StatusCode::NOT_FOUND, "not_found");
    // A platform instance is visible to every tenant; only the platform registers one.
    s.post(
        "/api/services",
        Some(&acme),
        json!({"service": "geo", "id": "geo-1", "endpoint": "http://127.0.0.1:9/", "scope": "platform"}),
    )
    .await
    .problem(StatusCode::FORBIDDEN, "permission_denied");
    s.post(
        "/api/services",
        Some(&admin),
        json!({"service": "geo", "id": "geo-1", "endpoint": "http://127.0.0.1:9/"}),
    )
    .await
    .expect(StatusCode::CREATED);
    s.put(
        "/api/services/geo/instances/geo-1/status",
        Some(&admin),
        json!({"status": "passing"}),
    )
    .await
    .expect(StatusCode::OK);
    let geo = s.get("/api/services/geo", Some(&globex)).await;
    assert_eq!(geo.body["items"][0]["scope"], "platform", "{}", geo.text);

    // Bad input.
    for body in [
        json!({"service": "Bad Name!", "id": "x", "endpoint": "http://h/"}),
        json!({"service": "ok", "id": "x", "endpoint": "not a url"}),
        json!({"service": "ok", "id": "x", "endpoint": "http://h/", "environment": "moon"}),
        json!({"service": "ok", "id": "x", "endpoint": "http://h/", "check": {"kind": "ttl", "ttl_secs": 0}}),
    ] {
        s.post("/api/services", Some(&acme), body)
            .await
            .problem(StatusCode::BAD_REQUEST, "invalid_input");
    }
    s.post(
        "/api/services",
        Some(&acme),
        json!({"service": "ok", "id": "x", "endpoint": "http://h/", "check": {"kind": "smoke"}}),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    s.post(
        "/api/services",
        Some(&acme),
        json!({"service": "search", "id": "search-1", "endpoint": "http://127.0.0.1:9/"}),
    )
    .await
    .problem(StatusCode::CONFLICT, "already_exists");
    s.put(
        "/api/services/search/instances/search-1/status",
        Some(&acme),
        json!({"status": "sunny"}),
    )
    .await
    .problem(StatusCode::BAD_REQUEST, "invalid_input");

    // Deregistered: gone from discovery.
    s.delete("/api/services/search/instances/search-1", Some(&acme))
        .await
        .expect(StatusCode::OK);
    let r = s
        .get("/api/services/search?include_unhealthy=true", Some(&acme))
        .await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(0));
    s.delete("/api/services/search/instances/search-1", Some(&acme))
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
}
