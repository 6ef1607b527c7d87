//! Uploads, projects, files, downloads and analysis results over HTTP.

use crate::server::{Database, Server, tar_gz};
use crate::{on_every_database, token};
use reqwest::StatusCode;
use serde_json::json;

const MAIN_RS: &[u8] = b"fn main() {\n    println!(\"hello\");\n}\n";
const LIB_PY: &[u8] = b"def add(a, b):\n    return a + b\n";

fn codebase() -> Vec<u8> {
    tar_gz(&[
        ("src/main.rs", MAIN_RS),
        ("tools/lib.py", LIB_PY),
        ("README.md", b"# demo\n"),
    ])
}

/// The seeds' flow: upload a codebase → list its files → download one → store an analysis
/// → read the project's statistics and analyses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_list_download_analyse() {
    on_every_database(|s| async move {
        let (_, email, password) = s.register("acme").await;
        let t = token(&s.login("acme", &email, &password).await);

        let up = s.upload(&t, "project_name=demo&label=v1", codebase()).await;
        up.expect(StatusCode::CREATED);
        assert_eq!(up.body["project_created"], true);
        assert_eq!(up.body["snapshot"]["files"], 3);
        assert_eq!(up.body["snapshot"]["label"], "v1");
        let project = up.str("/project_id");
        let snapshot = up.str("/snapshot/id");
        // The same name again adds a snapshot to the same project.
        let again = s
            .upload(&t, "project_name=demo&label=v2&format=tar.gz", codebase())
            .await;
        again.expect(StatusCode::CREATED);
        assert_eq!(again.body["project_created"], false);
        assert_eq!(again.str("/project_id"), project);

        let files = s
            .get(
                &format!("/api/projects/{project}/files?snapshot={snapshot}"),
                Some(&t),
            )
            .await;
        files.expect(StatusCode::OK);
        let paths: Vec<&str> = files.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|f| f["path"].as_str())
            .collect();
        assert_eq!(paths, ["README.md", "src/main.rs", "tools/lib.py"]);
        let rust = s
            .get(
                &format!("/api/projects/{project}/files?language=Rust"),
                Some(&t),
            )
            .await;
        assert_eq!(
            rust.body["items"][0]["path"], "src/main.rs",
            "{}",
            rust.text
        );
        assert_eq!(rust.body["items"].as_array().map(Vec::len), Some(1));

        let path = format!("/api/storage/download/{project}/src/main.rs?snapshot={snapshot}");
        let got = s
            .http
            .get(format!("{}{path}", s.base))
            .bearer_auth(&t)
            .send()
            .await
            .expect("download");
        assert_eq!(got.status(), StatusCode::OK);
        let etag = got.headers()["etag"].to_str().expect("etag").to_owned();
        let cache = got.headers()["cache-control"]
            .to_str()
            .expect("cc")
            .to_owned();
        assert!(cache.starts_with("private"), "{cache}");
        assert_eq!(got.bytes().await.expect("body").as_ref(), MAIN_RS);
        let cached = s
            .http
            .get(format!("{}{path}", s.base))
            .bearer_auth(&t)
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("conditional");
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
        let stale = s
            .http
            .get(format!("{}{path}", s.base))
            .bearer_auth(&t)
            .header("if-none-match", "\"0000\"")
            .send()
            .await
            .expect("conditional");
        assert_eq!(stale.status(), StatusCode::OK);

        let created = s
            .post(
                "/api/analysis/results",
                Some(&t),
                json!({"project_id": project, "snapshot_id": snapshot, "kind": "complexity",
                       "analyzer": "lizard", "analyzer_version": "1.17", "status": "running"}),
            )
            .await;
        created.expect(StatusCode::CREATED);
        let analysis = created.str("/id");
        // A payload, streamed in and back out.
        let report = br#"{"version": "2.1.0", "runs": []}"#.repeat(1000);
        let put = s
            .http
            .put(format!(
                "{}/api/analysis/results/{analysis}/payloads/report.sarif",
                s.base
            ))
            .bearer_auth(&t)
            .header("content-type", "application/sarif+json")
            .body(report.clone())
            .send()
            .await
            .expect("put payload");
        assert_eq!(put.status(), StatusCode::CREATED);
        let url = format!(
            "{}/api/analysis/results/{analysis}/payloads/report.sarif",
            s.base
        );
        let got = s
            .http
            .get(&url)
            .bearer_auth(&t)
            .send()
            .await
            .expect("get payload");
        assert_eq!(got.status(), StatusCode::OK);
        assert_eq!(got.headers()["content-type"], "application/sarif+json");
        assert_eq!(got.headers()["content-disposition"], "attachment");
        let tag = got.headers()["etag"].to_str().expect("etag").to_owned();
        assert_eq!(got.bytes().await.expect("body").as_ref(), report.as_slice());
        let cached = s
            .http
            .get(&url)
            .bearer_auth(&t)
            .header("if-none-match", &tag)
            .send()
            .await
            .expect("304");
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
        s.get(
            &format!("/api/analysis/results/{analysis}/payloads/nothing"),
            Some(&t),
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
        let done = s
            .put(
                &format!("/api/analysis/results/{analysis}"),
                Some(&t),
                json!({"status": "succeeded", "summary": {"functions": 2}}),
            )
            .await;
        done.expect(StatusCode::OK);
        assert_eq!(done.body["summary"]["functions"], 2);
        // A finished result no longer changes.
        s.put(
            &format!("/api/analysis/results/{analysis}"),
            Some(&t),
            json!({"status": "pending"}),
        )
        .await
        .problem(StatusCode::CONFLICT, "conflict");
        let listed = s
            .get(
                &format!("/api/projects/{project}/analyses?status=succeeded"),
                Some(&t),
            )
            .await;
        assert_eq!(listed.body["items"][0]["id"], analysis, "{}", listed.text);

        let stats = s
            .get(&format!("/api/projects/{project}/statistics"), Some(&t))
            .await;
        stats.expect(StatusCode::OK);
        assert_eq!(stats.body["snapshots"], 2);
        assert!(stats.body["stored_bytes"].as_u64().unwrap_or(0) > 0);
        let detail = s.get(&format!("/api/projects/{project}"), Some(&t)).await;
        assert_eq!(detail.body["name"], "demo");
        assert_eq!(detail.body["latest_snapshot"]["label"], "v2");

        let me = s.get("/api/auth/verify", Some(&t)).await;
        let tenant = me.str("/tenant_id");
        let quota = s
            .get(&format!("/api/storage/quota/{tenant}"), Some(&t))
            .await;
        quota.expect(StatusCode::OK);
        assert_eq!(quota.body["projects"], 1);
        assert!(quota.body["storage_bytes"].as_u64().unwrap_or(0) > 0);

        s.delete(&format!("/api/analysis/results/{analysis}"), Some(&t))
            .await
            .expect(StatusCode::NO_CONTENT);
        s.delete(&format!("/api/projects/{project}"), Some(&t))
            .await
            .expect(StatusCode::NO_CONTENT);
        s.get(&format!("/api/projects/{project}"), Some(&t))
            .await
            .problem(StatusCode::NOT_FOUND, "not_found");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codebases_of_other_tenants_are_invisible() {
    on_every_database(|s| async move {
        let (_, email, password) = s.register("acme").await;
        let acme = token(&s.login("acme", &email, &password).await);
        let up = s.upload(&acme, "project_name=secret", codebase()).await;
        let project = up.str("/project_id");
        let snapshot = up.str("/snapshot/id");
        let analysis = s
            .post(
                "/api/analysis/results",
                Some(&acme),
                json!({"project_id": project, "kind": "k", "analyzer": "a", "analyzer_version": "1"}),
            )
            .await
            .str("/id");
        let (_, e2, p2) = s.register("globex").await;
        let intruder = token(&s.login("globex", &e2, &p2).await);
        for path in [
            format!("/api/projects/{project}"),
            format!("/api/projects/{project}/files"),
            format!("/api/projects/{project}/files?snapshot={snapshot}"),
            format!("/api/projects/{project}/snapshots"),
            format!("/api/projects/{project}/statistics"),
            format!("/api/projects/{project}/analyses"),
            format!("/api/storage/download/{project}/src/main.rs"),
            format!("/api/storage/download/{project}/src/main.rs?snapshot={snapshot}"),
            format!("/api/analysis/results/{analysis}"),
            format!("/api/analysis/results/{analysis}/payloads/x"),
        ] {
            let r = s.get(&path, Some(&intruder)).await;
            r.problem(StatusCode::NOT_FOUND, "not_found");
            assert!(!r.text.contains("secret"), "{path}: {}", r.text);
            let detail = r.body["detail"].as_str().unwrap_or("");
            assert!(!detail.contains("main.rs"), "{path}: {detail}");
        }
        s.upload(&intruder, &format!("project_id={project}"), codebase())
            .await
            .problem(StatusCode::NOT_FOUND, "not_found");
        s.put(&format!("/api/projects/{project}"), Some(&intruder), json!({"name": "pwned"}))
            .await
            .problem(StatusCode::NOT_FOUND, "not_found");
        s.delete(&format!("/api/projects/{project}"), Some(&intruder))
            .await
            .problem(StatusCode::NOT_FOUND, "not_found");
        s.post(
            "/api/analysis/results",
            Some(&intruder),
            json!({"project_id": project, "kind": "k", "analyzer": "a", "analyzer_version": "1"}),
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
        s.delete(&format!("/api/analysis/results/{analysis}"), Some(&intruder))
            .await
            .problem(StatusCode::NOT_FOUND, "not_found");
        // Still there, unchanged, for its owner.
        let p = s.get(&format!("/api/projects/{project}"), Some(&acme)).await;
        assert_eq!(p.body["name"], "secret");
        assert_eq!(p.body["latest_snapshot"]["files"], 3);
        s.get(&format!("/api/analysis/results/{analysis}"), Some(&acme))
            .await
            .expect(StatusCode::OK);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_and_paths_leave_nothing() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(
        dir.path(),
        &Database::Sqlite,
        &[("ATE_HTTP__MAX_UPLOAD_BYTES", "100000")],
    );
    let (tenant, email, password) = s.register("acme").await;
    let t = token(&s.login("acme", &email, &password).await);
    s.upload(&t, "project_name=demo", b"this is not an archive".to_vec())
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    // Truncated gzip.
    let mut cut = codebase();
    cut.truncate(cut.len() / 2);
    s.upload(&t, "project_name=demo", cut)
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    // A traversal entry in the archive.
    let evil = tar_gz(&[("../../etc/passwd", b"root:x:0:0")]);
    let r = s.upload(&t, "project_name=demo", evil).await;
    let evil_committed = r.status == StatusCode::CREATED;
    if evil_committed {
        // Skipped and reported, never stored outside the snapshot.
        assert_eq!(r.body["snapshot"]["files"], 0, "{}", r.text);
    } else {
        r.problem(StatusCode::BAD_REQUEST, "invalid_input");
    }
    s.upload(&t, "project_name=demo", vec![0u8; 200_000])
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE, "invalid_input");
    // Refused before the body is read: sent without one.
    s.upload(&t, "project_name=demo&format=rar", Vec::new())
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    s.upload(&t, "", Vec::new())
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    s.upload(&t, "project_id=not-an-id", Vec::new())
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    s.upload(&t, "project_name=demo&surprise=1", Vec::new())
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    // Nothing was committed by the refused uploads.
    let usage = s
        .get(&format!("/api/tenants/{tenant}/usage"), Some(&t))
        .await;
    assert_eq!(
        usage.body["snapshots"],
        u64::from(evil_committed),
        "{}",
        usage.text
    );
    let good = s.upload(&t, "project_name=demo", codebase()).await;
    good.expect(StatusCode::CREATED);
    let project = good.str("/project_id");
    let snaps = s
        .get(&format!("/api/projects/{project}/snapshots"), Some(&t))
        .await;
    let expected = 1 + usize::from(evil_committed);
    assert_eq!(
        snaps.body["items"].as_array().map(Vec::len),
        Some(expected),
        "{}",
        snaps.text
    );

    for bad in [
        "..%2Fetc%2Fpasswd",
        "src/..%2F..%2Fx",
        "src//main.rs",
        "%2Fetc%2Fpasswd",
        "src/.%2Fmain.rs",
    ] {
        s.get(&format!("/api/storage/download/{project}/{bad}"), Some(&t))
            .await
            .problem(StatusCode::BAD_REQUEST, "invalid_input");
    }
    s.get(
        &format!("/api/storage/download/{project}/src/nothing.rs"),
        Some(&t),
    )
    .await
    .problem(StatusCode::NOT_FOUND, "not_found");
    s.post(
        "/api/analysis/results",
        Some(&t),
        json!({"project_id": project, "kind": "k", "analyzer": "a", "analyzer_version": "1", "status": "finished"}),
    )
    .await
    .problem(StatusCode::BAD_REQUEST, "invalid_input");
    s.post(
        "/api/analysis/results",
        Some(&t),
        json!({"project_id": project, "kind": "k", "analyzer": "a", "analyzer_version": "1", "summary": [1, 2]}),
    )
    .await
    .problem(StatusCode::BAD_REQUEST, "invalid_input");
    s.post("/api/projects", Some(&t), json!({"name": "demo"}))
        .await
        .problem(StatusCode::CONFLICT, "already_exists");
    s.post("/api/projects", Some(&t), json!({"name": ""}))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_batches_are_all_or_nothing() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(dir.path(), &Database::Sqlite, &[]);
    let (_, email, password) = s.register("acme").await;
    let t = token(&s.login("acme", &email, &password).await);
    let project = s
        .upload(&t, "project_name=demo", codebase())
        .await
        .str("/project_id");
    let first = s
        .post(
            "/api/analysis/results",
            Some(&t),
            json!({"project_id": project, "kind": "loc", "analyzer": "tokei", "analyzer_version": "12", "status": "running"}),
        )
        .await
        .str("/id");
    let ok = s
        .post(
            "/api/analysis/results/batch",
            Some(&t),
            json!({
                "create": [
                    {"project_id": project, "kind": "sast", "analyzer": "semgrep", "analyzer_version": "1"},
                    {"project_id": project, "kind": "deps", "analyzer": "osv", "analyzer_version": "2", "summary": {"n": 0}}
                ],
                "update": [{"id": first, "status": "succeeded", "summary": {"lines": 9}}]
            }),
        )
        .await;
    ok.expect(StatusCode::OK);
    let items = ok.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    assert_eq!(items[2]["id"], first);
    assert_eq!(items[2]["status"], "succeeded");

    // The second create names a project that does not exist: nothing stays.
    let failed = s
        .post(
            "/api/analysis/results/batch",
            Some(&t),
            json!({"create": [
                {"project_id": project, "kind": "x", "analyzer": "y", "analyzer_version": "1"},
                {"project_id": "01a24218-95d6-754d-bfdf-61b4029b6790", "kind": "x", "analyzer": "y", "analyzer_version": "1"}
            ]}),
        )
        .await;
    failed.problem(StatusCode::NOT_FOUND, "not_found");
    let listed = s
        .get(&format!("/api/projects/{project}/analyses"), Some(&t))
        .await;
    assert_eq!(
        listed.body["items"].as_array().map(Vec::len),
        Some(3),
        "{}",
        listed.text
    );
    s.post("/api/analysis/results/batch", Some(&t), json!({}))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_input");
    s.post(
        "/api/analysis/results/batch",
        Some(&t),
        json!({"update": [{"id": first, "bogus": 1}]}),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
}
