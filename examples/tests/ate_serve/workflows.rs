//! Workflows over HTTP: submit, follow live (SSE), signal, cancel, fail and retry from the
//! failure, logs, the built-in steps (`service.call` against a real upstream process that
//! verifies the run's identity), tenancy and bad input.

use crate::gateway::{Upstream, register};
use crate::server::{Database, Server};
use crate::token;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const RUNS: &str = "/api/orchestration/workflows";

/// Waits (bounded) until the run is in `status`; returns it.
async fn until_status(s: &Server, token: &str, id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let r = s.get(&format!("{RUNS}/{id}"), Some(token)).await;
        r.expect(StatusCode::OK);
        if r.body["status"] == status {
            return r.body;
        }
        last = r.body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} never reached {status}: {last}");
}

/// Reads the run's SSE stream to its end; returns every `run` event's data.
async fn follow(s: &Server, token: &str, id: &str) -> Vec<Value> {
    let mut r = s
        .http
        .get(format!("{}{RUNS}/{id}/events", s.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("events");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .is_ok_and(|c| c.starts_with("text/event-stream"))
    );
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), r.chunk())
        .await
        .expect("the stream kept going")
        .expect("chunk")
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text.split("\n\n")
        .filter(|e| e.contains("event: run"))
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).expect("event data is JSON"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_submitted_followed_signalled_cancelled_and_retried() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(dir.path(), &Database::Sqlite, &[]);
    let (acme_id, email, password) = s.register("acme").await;
    let acme = token(&s.login("acme", &email, &password).await);
    let up = Upstream::start(&s, "api-a", "api");
    register(&s, &acme, "api", &up, json!({})).await;

    // echo → delay → service.call; followed live to the end.
    let dag = json!({"nodes": [
        {"id": "start", "step": "echo", "params": {"greeting": "hi"}},
        {"id": "wait", "step": "delay", "depends_on": ["start"], "params": {"ms": 300}},
        {"id": "call", "step": "service.call", "depends_on": ["wait"],
         "params": {"service": "api", "path": "/whoami?from=workflow"}}]});
    let r = s
        .post(
            RUNS,
            Some(&acme),
            json!({"dag": dag, "input": {"n": 7}, "labels": {"team": "a"},
                                         "idempotency_key": "first"}),
        )
        .await;
    r.expect(StatusCode::CREATED);
    let id = r.str("/id");
    assert_eq!(r.body["tenant_id"], acme_id.as_str());
    let events = follow(&s, &acme, &id).await;
    let last = events.last().expect("at least one event");
    assert_eq!(last["status"], "succeeded", "{last}");
    assert!(
        events.len() >= 3,
        "the stream showed the run as it went: {events:?}"
    );
    assert!(
        events.iter().any(|e| e["nodes"][0]["status"] == "succeeded"
            && e["nodes"][2]["status"] == "blocked"),
        "the run was seen part-way, not only at its end: {events:?}"
    );
    // A claim is news too (it leaves the revision as it was): the 300 ms delay was seen
    // running.
    assert!(
        events.iter().any(|e| e["nodes"][1]["status"] == "running"),
        "the delay was never seen running: {events:?}"
    );
    assert_eq!(last["nodes"][0]["output"]["params"]["greeting"], "hi");
    assert_eq!(last["nodes"][0]["output"]["input"]["n"], 7);
    let whoami = &last["nodes"][2]["output"]["body"];
    assert_eq!(whoami["subject"], format!("workflow:{id}"), "{last}");
    assert_eq!(whoami["tenant"], acme_id.as_str());
    assert_eq!(whoami["query"], "from=workflow");
    // Submitting again with the key returns the same run.
    let again = s
        .post(
            RUNS,
            Some(&acme),
            json!({"dag": {"nodes": [{"id": "x", "step": "echo"}]},
                                         "idempotency_key": "first"}),
        )
        .await;
    again.expect(StatusCode::OK);
    assert_eq!(again.str("/id"), id);
    // The step's log and the list with filters.
    let logs = s
        .get(&format!("{RUNS}/{id}/logs?node=call"), Some(&acme))
        .await;
    logs.expect(StatusCode::OK);
    assert_eq!(
        logs.body["items"][0]["message"], "service called",
        "{}",
        logs.text
    );
    let list = s
        .get(
            &format!("{RUNS}?status=succeeded&label=team:a"),
            Some(&acme),
        )
        .await;
    assert_eq!(list.body["items"][0]["id"], id.as_str(), "{}", list.text);
    let none = s.get(&format!("{RUNS}?status=failed"), Some(&acme)).await;
    assert_eq!(none.body["items"].as_array().map(Vec::len), Some(0));

    // A signal node waits for its signal.
    let r = s
        .post(
            RUNS,
            Some(&acme),
            json!({"dag": {"nodes": [
            {"id": "approve", "signal": "approval"},
            {"id": "after", "step": "echo", "depends_on": ["approve"]}]}}),
        )
        .await;
    let waiting = r.str("/id");
    until_status(&s, &acme, &waiting, "running").await;
    s.post(
        &format!("{RUNS}/{waiting}/signals/nope"),
        Some(&acme),
        json!({}),
    )
    .await
    .problem(StatusCode::BAD_REQUEST, "invalid_input");
    s.post(
        &format!("{RUNS}/{waiting}/signals/approval"),
        Some(&acme),
        json!({"by": "ada"}),
    )
    .await
    .expect(StatusCode::OK);
    let done = until_status(&s, &acme, &waiting, "succeeded").await;
    assert_eq!(done["nodes"][0]["output"]["by"], "ada");
    s.post(
        &format!("{RUNS}/{waiting}/signals/approval"),
        Some(&acme),
        json!({}),
    )
    .await
    .problem(StatusCode::CONFLICT, "conflict");

    // Cancelling a long delay.
    let r = s
        .post(
            RUNS,
            Some(&acme),
            json!({"dag": {"nodes": [
            {"id": "long", "step": "delay", "params": {"ms": 600000}}]}}),
        )
        .await;
    let long = r.str("/id");
    until_status(&s, &acme, &long, "running").await;
    s.post(&format!("{RUNS}/{long}/cancel"), Some(&acme), json!(null))
        .await
        .expect(StatusCode::OK);
    until_status(&s, &acme, &long, "cancelled").await;

    // A call to a service that is not there fails the run; once it is registered, the run
    // is retried from its failure and succeeds (the first node is not run again).
    let r = s
        .post(
            RUNS,
            Some(&acme),
            json!({"dag": {"nodes": [
            {"id": "first", "step": "echo"},
            {"id": "call", "step": "service.call", "depends_on": ["first"],
             "retry": {"max_attempts": 1}, "params": {"service": "later", "path": "/whoami"}}]}}),
        )
        .await;
    let failing = r.str("/id");
    let failed = until_status(&s, &acme, &failing, "failed").await;
    assert_eq!(
        failed["nodes"][1]["error"]["kind"], "unavailable",
        "{failed}"
    );
    let later = Upstream::start(&s, "later-a", "later");
    register(&s, &acme, "later", &later, json!({})).await;
    s.post(&format!("{RUNS}/{failing}/retry"), Some(&acme), json!(null))
        .await
        .expect(StatusCode::OK);
    let ok = until_status(&s, &acme, &failing, "succeeded").await;
    assert_eq!(ok["nodes"][0]["attempt"], 1, "{ok}");
    s.post(&format!("{RUNS}/{failing}/retry"), Some(&acme), json!(null))
        .await
        .problem(StatusCode::CONFLICT, "conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_requests_are_checked() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(dir.path(), &Database::Sqlite, &[]);
    let (_, e1, p1) = s.register("acme").await;
    let acme = token(&s.login("acme", &e1, &p1).await);
    let (_, e2, p2) = s.register("globex").await;
    let globex = token(&s.login("globex", &e2, &p2).await);
    let admin = s.admin_token().await;

    let ok = json!({"dag": {"nodes": [{"id": "a", "step": "echo"}]}});
    let r = s.post(RUNS, Some(&acme), ok.clone()).await;
    r.expect(StatusCode::CREATED);
    let id = r.str("/id");
    for (body, says) in [
        (
            json!({"dag": {"nodes": [{"id": "a", "step": "echo", "depends_on": ["b"]},
                                  {"id": "b", "step": "echo", "depends_on": ["a"]}]}}),
            "cycle",
        ),
        (
            json!({"dag": {"nodes": [{"id": "a", "step": "rm.rf"}]}}),
            "rm.rf",
        ),
        (json!({"dag": {"nodes": []}}), "node"),
        (
            json!({"dag": {"nodes": [{"id": "a", "step": "echo", "colour": 1}]}}),
            "colour",
        ),
        (
            json!({"dag": {"nodes": [{"id": "a", "step": "echo", "retry": {"max_attempts": -1}}]}}),
            "max_attempts",
        ),
        (
            json!({"dag": {"nodes": [{"id": "a", "step": "echo"}]}, "extra": true}),
            "extra",
        ),
        (json!({"input": {}}), "dag"),
    ] {
        let r = s.post(RUNS, Some(&acme), body).await;
        assert!(r.status.is_client_error(), "{}", r.text);
        assert_eq!(r.body["kind"], "invalid_input", "{}", r.text);
        assert!(r.text.contains(says), "{says:?} not in {}", r.text);
    }
    // A delay with bad params fails its node for good (no retries), with the reason.
    let r = s
        .post(
            RUNS,
            Some(&acme),
            json!({"dag": {"nodes": [
            {"id": "d", "step": "delay", "params": {"ms": "soon"}}]}}),
        )
        .await;
    let bad = r.str("/id");
    let failed = until_status(&s, &acme, &bad, "failed").await;
    assert_eq!(
        failed["nodes"][0]["error"]["kind"], "bad_params",
        "{failed}"
    );
    assert_eq!(failed["nodes"][0]["attempt"], 1, "{failed}");

    // Tenancy: another tenant's run is not found; a platform admin names the tenant.
    for path in [
        format!("{RUNS}/{id}"),
        format!("{RUNS}/{id}/logs"),
        format!("{RUNS}/{id}/events"),
    ] {
        s.get(&path, Some(&globex))
            .await
            .problem(StatusCode::NOT_FOUND, "not_found");
    }
    s.post(&format!("{RUNS}/{id}/cancel"), Some(&globex), json!(null))
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    s.get(RUNS, Some(&admin))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    let acme_id = s
        .get("/api/auth/verify", Some(&acme))
        .await
        .str("/tenant_id");
    s.get(&format!("{RUNS}/{id}?tenant_id={acme_id}"), Some(&admin))
        .await
        .expect(StatusCode::OK);
    // Malformed ids and queries.
    s.get(&format!("{RUNS}/not-a-run"), Some(&acme))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    s.get(&format!("{RUNS}?status=exploded"), Some(&acme))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    s.get(&format!("{RUNS}?label=nocolon"), Some(&acme))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    s.get(&format!("{RUNS}/{id}/logs?min_level=loud"), Some(&acme))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    s.post(RUNS, None, ok)
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_submits_watches_logs_and_cancels_runs() {
    use crate::server::ate;
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(dir.path(), &Database::Sqlite, &[]);
    let (_, email, password) = s.register("acme").await;
    let acme = token(&s.login("acme", &email, &password).await);
    let up = Upstream::start(&s, "api-a", "api");
    register(&s, &acme, "api", &up, json!({})).await;
    let dag = dir.path().join("dag.json");
    std::fs::write(
        &dag,
        json!({"nodes": [
            {"id": "first", "step": "echo"},
            {"id": "call", "step": "service.call", "depends_on": ["first"],
             "params": {"service": "api", "path": "/whoami"}}]})
        .to_string(),
    )
    .expect("write dag");
    let run = |args: &[&str]| {
        let out = ate(dir.path()).args(args).output().expect("run ate");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // Submitted and followed to its end by the server's worker.
    let dag_arg = dag.to_str().expect("utf-8 path");
    let (code, out, err) = run(&[
        "workflows",
        "submit",
        dag_arg,
        "--tenant",
        "acme",
        "--input",
        r#"{"n": 1}"#,
        "--label",
        "via=cli",
        "--watch",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("call") && out.contains("succeeded"), "{out}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("run "))
        .and_then(|l| l.split_whitespace().next())
        .expect("run id printed")
        .to_owned();
    let (code, out, _) = run(&["--json", "workflows", "get", &id, "--tenant", "acme"]);
    assert_eq!(code, Some(0));
    let got: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(got["labels"]["via"], "cli");
    assert_eq!(
        got["nodes"][1]["output"]["body"]["instance"], "api-a",
        "{got}"
    );
    let (code, out, _) = run(&["workflows", "logs", &id, "--tenant", "acme"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("service called"), "{out}");
    let (_, out, _) = run(&[
        "--json",
        "workflows",
        "list",
        "--tenant",
        "acme",
        "--status",
        "succeeded",
    ]);
    assert!(out.contains(&id), "{out}");

    // A long run, cancelled; watching it then ends with status 1.
    std::fs::write(
        &dag,
        r#"{"nodes": [{"id": "long", "step": "delay", "params": {"ms": 600000}}]}"#,
    )
    .expect("write dag");
    let (code, out, _) = run(&["workflows", "submit", dag_arg, "--tenant", "acme"]);
    assert_eq!(code, Some(0));
    let long = out.trim().rsplit(' ').next().expect("id").to_owned();
    until_status(&s, &acme, &long, "running").await;
    let (code, out, _) = run(&["workflows", "cancel", &long, "--tenant", "acme"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, _, err) = run(&["workflows", "watch", &long, "--tenant", "acme"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cancelled"), "{err}");

    // Bad input: exit status 3 (invalid) or 4 (not found).
    std::fs::write(&dag, r#"{"nodes": [{"id": "a", "step": "nope"}]}"#).expect("write dag");
    assert_eq!(
        run(&["workflows", "submit", dag_arg, "--tenant", "acme"]).0,
        Some(3)
    );
    assert_eq!(
        run(&["workflows", "submit", "/no/such/file", "--tenant", "acme"]).0,
        Some(3)
    );
    assert_eq!(
        run(&["workflows", "get", "not-a-run", "--tenant", "acme"]).0,
        Some(3)
    );
    assert_eq!(
        run(&["workflows", "get", &id, "--tenant", "nobody"]).0,
        Some(4)
    );
    let other = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        run(&["workflows", "get", &other, "--tenant", "acme"]).0,
        Some(4)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_runs_and_are_managed() {
    const SCHEDULES: &str = "/api/orchestration/schedules";
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(dir.path(), &Database::Sqlite, &[]);
    let (_, e1, p1) = s.register("acme").await;
    let acme = token(&s.login("acme", &e1, &p1).await);
    let (_, e2, p2) = s.register("globex").await;
    let globex = token(&s.login("globex", &e2, &p2).await);
    let run =
        json!({"dag": {"nodes": [{"id": "tick", "step": "echo"}]}, "input": {"from": "cron"}});
    let r = s
        .post(SCHEDULES, Some(&acme),
              json!({"name": "every-minute", "cron": "* * * * *", "time_zone": "Europe/Paris", "run": run}))
        .await;
    r.expect(StatusCode::CREATED);
    assert!(r.body["next_fire_at"].is_string(), "{}", r.text);
    assert_eq!(r.body["run"]["dag"]["nodes"][0]["step"], "echo");

    // The first tick (within a minute) submits a run, which the worker runs.
    let mut last_run = None;
    for _ in 0..150 {
        let got = s
            .get(&format!("{SCHEDULES}/every-minute"), Some(&acme))
            .await;
        if let Some(id) = got.body["last_run"].as_str() {
            last_run = Some(id.to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let id = last_run.expect("the schedule fired within 75 s");
    let done = until_status(&s, &acme, &id, "succeeded").await;
    assert_eq!(done["labels"]["schedule"], "every-minute", "{done}");
    assert_eq!(done["input"]["from"], "cron");

    // Pause, resume, list, refuse, delete.
    let paused = s
        .put(
            &format!("{SCHEDULES}/every-minute/paused"),
            Some(&acme),
            json!({"paused": true}),
        )
        .await;
    paused.expect(StatusCode::OK);
    assert_eq!(paused.body["paused"], true);
    assert!(paused.body["next_fire_at"].is_null(), "{}", paused.text);
    let resumed = s
        .put(
            &format!("{SCHEDULES}/every-minute/paused"),
            Some(&acme),
            json!({"paused": false}),
        )
        .await;
    assert!(resumed.body["next_fire_at"].is_string(), "{}", resumed.text);
    let list = s.get(SCHEDULES, Some(&acme)).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        s.get(SCHEDULES, Some(&globex)).await.body["items"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    s.get(&format!("{SCHEDULES}/every-minute"), Some(&globex))
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    for (body, status, says) in [
        (
            json!({"name": "every-minute", "cron": "* * * * *", "run": run}),
            StatusCode::CONFLICT,
            "every-minute",
        ),
        (
            json!({"name": "bad-cron", "cron": "61 * * * *", "run": run}),
            StatusCode::BAD_REQUEST,
            "cron",
        ),
        (
            json!({"name": "bad-tz", "cron": "0 * * * *", "time_zone": "Mars/Olympus", "run": run}),
            StatusCode::BAD_REQUEST,
            "Mars/Olympus",
        ),
        (
            json!({"name": "no run", "cron": "0 * * * *", "run": run}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            json!({"name": "bad-dag", "cron": "0 * * * *", "run": {"dag": {"nodes": [{"id": "a", "step": "nope"}]}}}),
            StatusCode::BAD_REQUEST,
            "nope",
        ),
    ] {
        let r = s.post(SCHEDULES, Some(&acme), body).await;
        assert_eq!(r.status, status, "{}", r.text);
        assert!(r.text.contains(says), "{says:?} not in {}", r.text);
    }
    s.delete(&format!("{SCHEDULES}/every-minute"), Some(&acme))
        .await
        .expect(StatusCode::NO_CONTENT);
    s.get(&format!("{SCHEDULES}/every-minute"), Some(&acme))
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    // The runs it started stay.
    until_status(&s, &acme, &id, "succeeded").await;
}
