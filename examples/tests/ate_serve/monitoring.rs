//! `/api/monitoring/alerts` over HTTP: rules stored and synced into the host's engine, an
//! alert firing and resolving from a real instance's status, the history, platform-only
//! access and bad input.

use crate::on_every_database_with;
use crate::server::Server;
use crate::token;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const RULES: &str = "/api/monitoring/alerts/rules";

/// Polls `path` until `pred` holds on the body (bounded: 15 s).
async fn until(s: &Server, token: &str, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        let r = s.get(path, Some(token)).await;
        r.expect(StatusCode::OK);
        if pred(&r.body) {
            return r.body;
        }
        last = r.body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never matched: {last}");
}

fn has(items: &Value, rule: &str, state: &str) -> bool {
    items["items"].as_array().is_some_and(|a| {
        a.iter()
            .any(|i| i["rule_id"] == rule && i["state"] == state)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_fire_resolve_and_are_kept_in_history() {
    // No periodic sync: changes through this host must apply at once.
    on_every_database_with(
        &[("ATE_MONITORING__RULE_SYNC_SECS", "3600")],
        |s| async move {
            let admin = s.admin_token().await;
            let (_, email, password) = s.register("acme").await;
            let owner = token(&s.login("acme", &email, &password).await);

            let rule = json!({"id": "api-critical", "name": "An API instance is critical",
            "severity": "critical", "labels": {"team": "core"},
            "condition": {"kind": "instance_status", "service": "api", "at_least": "critical"}});
            let r = s.post(RULES, Some(&admin), rule.clone()).await;
            r.expect(StatusCode::CREATED);
            assert_eq!(
                r.body["rule"],
                json!({"id": "api-critical", "name": "An API instance is critical",
            "severity": "critical", "labels": {"team": "core"}, "for_secs": 0,
            "condition": {"kind": "instance_status", "service": "api", "at_least": "critical"}})
            );
            assert_eq!(r.body["revision"], 1);
            s.post(
                RULES,
                Some(&admin),
                json!({"id": "api-errors", "name": "API errors",
                   "condition": {"kind": "error_rate_above", "service": "api", "threshold": 0.5,
                                 "window_secs": 60, "min_requests": 10}}),
            )
            .await
            .expect(StatusCode::CREATED);
            let list = s.get(RULES, Some(&admin)).await;
            let ids: Vec<&str> = list.body["items"]
                .as_array()
                .expect("an array")
                .iter()
                .map(|i| i["rule"]["id"].as_str().expect("a string"))
                .collect();
            assert_eq!(ids, ["api-critical", "api-errors"]);

            // An instance without a check starts critical: the alert fires.
            s.post(
                "/api/services",
                Some(&owner),
                json!({"service": "api", "id": "api-1", "endpoint": "http://127.0.0.1:9/"}),
            )
            .await
            .expect(StatusCode::CREATED);
            let firing = until(&s, &admin, "/api/monitoring/alerts?state=firing", |b| {
                has(b, "api-critical", "firing")
            })
            .await;
            assert_eq!(firing["items"][0]["severity"], "critical");
            assert_eq!(firing["items"][0]["value"], 1.0);
            assert_eq!(
                firing["items"].as_array().expect("an array").len(),
                1,
                "{firing}"
            );
            let all = s.get("/api/monitoring/alerts", Some(&admin)).await;
            assert_eq!(
                all.body["items"][0]["rule_id"], "api-critical",
                "firing first"
            );
            assert!(has(&all.body, "api-errors", "inactive"), "{}", all.body);

            // It passes: the alert resolves; both events are in the history, linked.
            s.put(
                "/api/services/api/instances/api-1/status",
                Some(&owner),
                json!({"status": "passing"}),
            )
            .await
            .expect(StatusCode::OK);
            let h = until(
                &s,
                &admin,
                "/api/monitoring/alerts/history?rule_id=api-critical",
                |b| b["items"].as_array().is_some_and(|a| a.len() == 2),
            )
            .await;
            let (resolved, fired) = (&h["items"][0], &h["items"][1]);
            assert_eq!(
                (resolved["state"].as_str(), fired["state"].as_str()),
                (Some("resolved"), Some("firing"))
            );
            assert_eq!(resolved["firing_id"], fired["id"]);
            assert_eq!(fired["labels"]["team"], "core");
            let only_firing = s
                .get(
                    "/api/monitoring/alerts/history?state=firing&limit=1",
                    Some(&admin),
                )
                .await;
            assert_eq!(
                only_firing.body["items"]
                    .as_array()
                    .expect("an array")
                    .len(),
                1
            );
            let page = s
                .get(
                    &format!(
                        "/api/monitoring/alerts/history?until={}",
                        fired["at"].as_str().expect("a string").replace('+', "%2B")
                    ),
                    Some(&admin),
                )
                .await;
            page.expect(StatusCode::OK);
            assert_eq!(
                page.body["items"],
                json!([]),
                "nothing before the first event"
            );

            // Replace: the new rule takes over at once; renaming is refused.
            let mut changed = rule.clone();
            changed["name"] = json!("API instance down");
            changed["for_secs"] = json!(30);
            let put = s
                .put(
                    &format!("{RULES}/api-critical"),
                    Some(&admin),
                    changed.clone(),
                )
                .await;
            put.expect(StatusCode::OK);
            assert_eq!(
                (
                    put.body["revision"].as_i64(),
                    put.body["rule"]["for_secs"].as_u64()
                ),
                (Some(2), Some(30))
            );
            until(&s, &admin, "/api/monitoring/alerts", |b| {
                b["items"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|i| i["name"] == "API instance down"))
            })
            .await;
            s.put(&format!("{RULES}/other"), Some(&admin), changed)
                .await
                .problem(StatusCode::BAD_REQUEST, "invalid_input");
            s.put(
                &format!("{RULES}/nope"),
                Some(&admin),
                json!({"id": "nope", "name": "n",
            "condition": {"kind": "breaker_open", "service": "api"}}),
            )
            .await
            .problem(StatusCode::NOT_FOUND, "not_found");

            // Delete: gone from the store and from the engine; its history stays.
            s.delete(&format!("{RULES}/api-critical"), Some(&admin))
                .await
                .expect(StatusCode::NO_CONTENT);
            s.get(&format!("{RULES}/api-critical"), Some(&admin))
                .await
                .problem(StatusCode::NOT_FOUND, "not_found");
            until(&s, &admin, "/api/monitoring/alerts", |b| {
                b["items"]
                    .as_array()
                    .is_some_and(|a| a.iter().all(|i| i["rule_id"] != "api-critical"))
            })
            .await;
            let kept = s
                .get(
                    "/api/monitoring/alerts/history?rule_id=api-critical",
                    Some(&admin),
                )
                .await;
            assert_eq!(kept.body["items"].as_array().expect("an array").len(), 2);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_is_for_platform_admins_and_refuses_bad_rules() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(dir.path(), &crate::server::Database::Sqlite, &[]);
    // A second host on the same database picks rules up by its periodic sync.
    let other = Server::start(
        dir.path(),
        &crate::server::Database::Sqlite,
        &[("ATE_MONITORING__RULE_SYNC_SECS", "1")],
    );
    let admin = s.admin_token().await;
    let (_, email, password) = s.register("acme").await;
    let owner = token(&s.login("acme", &email, &password).await);
    let ok = json!({"id": "b", "name": "Breaker", "condition": {"kind": "breaker_open", "service": "api"}});
    for (path, body) in [
        (RULES, None),
        ("/api/monitoring/alerts", None),
        ("/api/monitoring/alerts/history", None),
        (RULES, Some(ok.clone())),
    ] {
        let r = match body {
            None => s.get(path, Some(&owner)).await,
            Some(b) => s.post(path, Some(&owner), b).await,
        };
        r.problem(StatusCode::FORBIDDEN, "permission_denied");
    }
    s.get(RULES, None)
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthenticated");

    let bad: Vec<(Value, &str)> = vec![
        (
            json!({"id": "x", "name": "x", "condition": {"kind": "cpu_above", "service": "api"}}),
            "cpu_above",
        ),
        (
            json!({"id": "x", "name": "x", "condition": {"kind": "error_rate_above", "service": "api", "threshold": 1.5, "window_secs": 60}}),
            "0..=1",
        ),
        (
            json!({"id": "x", "name": "x", "condition": {"kind": "error_rate_above", "service": "api", "threshold": 0.5, "window_secs": 600}}),
            "300 s",
        ),
        (
            json!({"id": "x", "name": "x", "condition": {"kind": "error_rate_above", "service": "api", "threshold": 0.5, "window_secs": 7200}}),
            "window",
        ),
        (
            json!({"id": "x", "name": "x", "condition": {"kind": "error_rate_above", "service": "api", "threshold": 0.5, "window_secs": -1}}),
            "-1",
        ),
        (
            json!({"id": "x", "name": "x", "condition": {"kind": "latency_above", "service": "api", "quantile": "p42", "threshold_ms": 5, "window_secs": 60}}),
            "p42",
        ),
        (
            json!({"id": "x", "name": "x", "condition": {"kind": "breaker_open", "service": "Bad Service"}}),
            "service",
        ),
        (
            json!({"id": "x", "name": "x", "condition": {"kind": "breaker_open", "service": "api", "colour": "red"}}),
            "colour",
        ),
        (json!({"id": "x", "name": "x"}), "condition"),
        (
            json!({"id": "bad id!", "name": "x", "condition": {"kind": "breaker_open", "service": "api"}}),
            "alert rule id",
        ),
        (
            json!({"id": "x", "name": "", "condition": {"kind": "breaker_open", "service": "api"}}),
            "name",
        ),
        (
            json!({"id": "x", "name": "x", "severity": "apocalyptic", "condition": {"kind": "breaker_open", "service": "api"}}),
            "apocalyptic",
        ),
        (
            json!({"id": "x", "name": "x", "for_secs": 999999, "condition": {"kind": "breaker_open", "service": "api"}}),
            "for",
        ),
        (
            json!({"id": "x", "name": "x", "extra": 1, "condition": {"kind": "breaker_open", "service": "api"}}),
            "extra",
        ),
    ];
    for (body, says) in bad {
        let r = s.post(RULES, Some(&admin), body.clone()).await;
        assert!(
            r.status.is_client_error(),
            "{body}: {:?} {}",
            r.status,
            r.body
        );
        let detail = r.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{body}: {detail}");
    }
    assert_eq!(s.get(RULES, Some(&admin)).await.body["items"], json!([]));
    s.post(RULES, Some(&admin), ok.clone())
        .await
        .expect(StatusCode::CREATED);
    let other_admin = other.admin_token().await;
    until(&other, &other_admin, "/api/monitoring/alerts", |b| {
        has(b, "b", "inactive")
    })
    .await;
    s.post(RULES, Some(&admin), ok)
        .await
        .problem(StatusCode::CONFLICT, "already_exists");
    for q in [
        "/api/monitoring/alerts/history?state=bogus",
        "/api/monitoring/alerts/history?limit=0",
        "/api/monitoring/alerts/history?limit=5000",
        "/api/monitoring/alerts/history?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
        "/api/monitoring/alerts/history?since=yesterday",
        "/api/monitoring/alerts?state=bogus",
        "/api/monitoring/alerts?colour=red",
    ] {
        s.get(q, Some(&admin))
            .await
            .problem(StatusCode::BAD_REQUEST, "invalid_input");
    }
}
