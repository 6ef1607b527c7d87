//! The [`AnalysisStore`] conformance suite: results recorded, listed, moved forward,
//! deleted; payloads streamed in encrypted and checked on the way out; results going with
//! their snapshot and project; quotas, isolation and garbage collection. Runs on every
//! metadata × blob combination (`tests/conformance.rs`).

use crate::snapshots::{SnapEnv, noise, owner, rows_where, tenant_with_project, write_tree};
use crate::{assert_kind, member};
use ate_core::audit::{AuditQuery, actions};
use ate_core::{
    AnalysisId, Clock, ErrorKind, Principal, ProjectId, Quotas, SnapshotId, TenantId,
    TenantSettings, TenantUpdate,
};
use ate_storage::analysis::{
    ANALYSIS_DELETE, ANALYSIS_READ, ANALYSIS_WRITE, AnalysisQuery, AnalysisResult, AnalysisSpec,
    AnalysisStatus, AnalysisStore, AnalysisUpdate, MAX_PAYLOADS, MAX_SUMMARY_BYTES,
};
use ate_storage::projects::{
    PROJECTS_DELETE, PROJECTS_READ, PROJECTS_WRITE, ProjectStore, SnapshotStore,
};
use serde_json::json;
use sha2::{Digest, Sha256};

/// A principal who may do everything with projects and analysis results.
pub fn analyst(t: TenantId) -> Principal {
    member(
        t,
        &[
            PROJECTS_READ,
            PROJECTS_WRITE,
            PROJECTS_DELETE,
            ANALYSIS_READ,
            ANALYSIS_WRITE,
            ANALYSIS_DELETE,
        ],
    )
}

/// A committed snapshot of a two-file tree in project `p`.
async fn snapshot(s: &SnapEnv, t: TenantId, p: ProjectId) -> SnapshotId {
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[("src/lib.rs", b"pub fn f() {}\n"), ("README.md", b"# R\n")],
    );
    s.snapshots
        .import_dir(&owner(t), t, p, dir.path(), Default::default())
        .await
        .unwrap()
        .id
}

/// How many payload blobs project `p` holds (`None` where the backend hides it).
fn payload_blobs(s: &SnapEnv, t: TenantId, p: ProjectId) -> Option<usize> {
    let root = s.fs_root.as_ref()?;
    Some(
        std::fs::read_dir(root.join(format!("t/{t}/p/{p}/a")))
            .map(|d| d.count())
            .unwrap_or(0),
    )
}

async fn audit_count(s: &SnapEnv, t: TenantId, action: &str) -> usize {
    let page = s
        .env
        .audit
        .query(&s.env.admin, AuditQuery::tenant(t).limit(1000))
        .await
        .unwrap();
    page.items
        .iter()
        .filter(|e| e.action.as_str() == action)
        .count()
}

async fn payload(s: &SnapEnv, a: &Principal, t: TenantId, id: AnalysisId, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    s.analysis
        .read_payload(a, t, id, name, &mut out)
        .await
        .unwrap();
    out
}

/// Records results on a project and on a snapshot, reads them back, lists them with every
/// filter and in pages (newest first); bad specs and queries are refused with nothing kept.
pub async fn results_are_recorded_and_listed(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let a = analyst(t);
    let snap = snapshot(&s, t, p).await;
    let store = &s.analysis;
    let whole = store
        .create(&a, t, p, &AnalysisSpec::new("loc", "tokei", "12.1.2"))
        .await
        .unwrap();
    assert_eq!(
        (whole.status, whole.revision, whole.snapshot),
        (AnalysisStatus::Pending, 1, None)
    );
    assert_eq!(whole.summary, json!({}));
    assert!(whole.started_at.is_none() && whole.finished_at.is_none());
    assert_eq!(whole.created_by, "user:member");
    let sast = store
        .create(
            &a,
            t,
            p,
            &AnalysisSpec::new("sast", "semgrep", "1.90.0")
                .snapshot(snap)
                .status(AnalysisStatus::Running),
        )
        .await
        .unwrap();
    assert_eq!(sast.snapshot, Some(snap));
    assert!(sast.started_at.is_some() && sast.finished_at.is_none());
    let done = store
        .create(
            &a,
            t,
            p,
            &AnalysisSpec::new("sast", "semgrep", "1.91.0")
                .snapshot(snap)
                .status(AnalysisStatus::Succeeded)
                .summary(json!({"findings": 2, "by_severity": {"high": 1, "low": 1}})),
        )
        .await
        .unwrap();
    assert!(done.finished_at.is_some());
    let failed = store
        .create(
            &a,
            t,
            p,
            &AnalysisSpec::new("licenses", "scancode", "32.0")
                .status(AnalysisStatus::Failed)
                .error("timed out after 600 s"),
        )
        .await
        .unwrap();
    assert_eq!(failed.error.as_deref(), Some("timed out after 600 s"));
    assert_eq!(store.get(&a, t, done.id).await.unwrap(), done);

    let ids = |q: AnalysisQuery| {
        let (store, a) = (store.clone(), a.clone());
        async move {
            let page = store.list(&a, t, p, &q).await.unwrap();
            page.items.into_iter().map(|r| r.id).collect::<Vec<_>>()
        }
    };
    // Newest first.
    assert_eq!(
        ids(AnalysisQuery::new()).await,
        vec![failed.id, done.id, sast.id, whole.id]
    );
    assert_eq!(
        ids(AnalysisQuery::new().snapshot(snap)).await,
        vec![done.id, sast.id]
    );
    assert_eq!(
        ids(AnalysisQuery::new().kind("sast")).await,
        vec![done.id, sast.id]
    );
    assert_eq!(
        ids(AnalysisQuery::new()
            .analyzer("semgrep")
            .analyzer_version("1.90.0"))
        .await,
        vec![sast.id]
    );
    assert_eq!(
        ids(AnalysisQuery::new().status(AnalysisStatus::Succeeded)).await,
        vec![done.id]
    );
    assert_eq!(
        ids(AnalysisQuery::new()
            .kind("sast")
            .status(AnalysisStatus::Failed))
        .await,
        Vec::<AnalysisId>::new()
    );
    // Pages add up to the whole listing.
    let mut seen = Vec::new();
    let mut q = AnalysisQuery::new().limit(3);
    loop {
        let page = store.list(&a, t, p, &q).await.unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|r| r.id));
        match page.next_cursor {
            Some(c) => q = AnalysisQuery::new().limit(3).cursor(c),
            None => break,
        }
    }
    assert_eq!(seen, ids(AnalysisQuery::new()).await);
    assert_eq!(
        audit_count(&s, t, actions::ANALYSIS_CREATED.as_str()).await,
        4
    );

    // Bad specs: refused, nothing recorded.
    let before = rows_where(&s, "analysis_results", "project_id", p.as_uuid()).await;
    let bad_specs = [
        AnalysisSpec::new("SAST", "semgrep", "1"),
        AnalysisSpec::new("", "semgrep", "1"),
        AnalysisSpec::new("sast", "", "1"),
        AnalysisSpec::new("sast", "semgrep\n", "1"),
        AnalysisSpec::new("sast", "semgrep", " 1"),
        AnalysisSpec::new("sast", "semgrep", "1").summary(json!([1, 2])),
        AnalysisSpec::new("sast", "semgrep", "1")
            .summary(json!({"x": "y".repeat(MAX_SUMMARY_BYTES)})),
        AnalysisSpec::new("sast", "semgrep", "1").error("an error without failing"),
    ];
    for spec in &bad_specs {
        assert_kind(store.create(&a, t, p, spec).await, ErrorKind::InvalidInput);
    }
    // An unknown project, a snapshot of no project of ours.
    let (other_t, other_p) = tenant_with_project(&s, "other").await;
    let theirs = snapshot(&s, other_t, other_p).await;
    let spec = AnalysisSpec::new("sast", "semgrep", "1");
    assert_kind(
        store.create(&a, t, other_p, &spec).await,
        ErrorKind::NotFound,
    );
    assert_kind(
        store.create(&a, t, p, &spec.clone().snapshot(theirs)).await,
        ErrorKind::NotFound,
    );
    assert_eq!(
        rows_where(&s, "analysis_results", "project_id", p.as_uuid()).await,
        before
    );
    // Bad queries.
    for q in [
        AnalysisQuery::new().limit(0),
        AnalysisQuery::new().kind("Not A Kind"),
        AnalysisQuery::new().analyzer(""),
        AnalysisQuery::new().cursor(ate_core::Cursor::from_string("garbage")),
    ] {
        assert_kind(store.list(&a, t, p, &q).await, ErrorKind::InvalidInput);
    }
    assert_kind(
        store.list(&a, t, other_p, &AnalysisQuery::new()).await,
        ErrorKind::NotFound,
    );
}

/// Status moves forward only; revisions guard every change; a finished result is final;
/// an update that changes nothing writes nothing.
pub async fn results_move_forward_only(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let a = analyst(t);
    let store = &s.analysis;
    let r = store
        .create(&a, t, p, &AnalysisSpec::new("sbom", "syft", "1.0"))
        .await
        .unwrap();
    s.env.clock.advance(chrono::TimeDelta::seconds(5));
    let running = store
        .update(
            &a,
            t,
            r.id,
            &AnalysisUpdate::new()
                .status(AnalysisStatus::Running)
                .expected_revision(1),
        )
        .await
        .unwrap();
    assert_eq!(
        (running.status, running.revision),
        (AnalysisStatus::Running, 2)
    );
    assert_eq!(running.started_at, Some(s.env.clock.now()));
    assert!(running.updated_at > r.updated_at);
    // A stale revision.
    assert_kind(
        store
            .update(
                &a,
                t,
                r.id,
                &AnalysisUpdate::new()
                    .summary(json!({"x": 1}))
                    .expected_revision(1),
            )
            .await,
        ErrorKind::Conflict,
    );
    // Backwards.
    assert_kind(
        store
            .update(
                &a,
                t,
                r.id,
                &AnalysisUpdate::new().status(AnalysisStatus::Pending),
            )
            .await,
        ErrorKind::Conflict,
    );
    // Nothing changes: same revision, no event.
    let events = audit_count(&s, t, actions::ANALYSIS_UPDATED.as_str()).await;
    let same = store
        .update(
            &a,
            t,
            r.id,
            &AnalysisUpdate::new().status(AnalysisStatus::Running),
        )
        .await
        .unwrap();
    assert_eq!(same, running);
    assert_eq!(
        audit_count(&s, t, actions::ANALYSIS_UPDATED.as_str()).await,
        events
    );
    let progress = store
        .update(
            &a,
            t,
            r.id,
            &AnalysisUpdate::new().summary(json!({"packages": 10})),
        )
        .await
        .unwrap();
    assert_eq!(
        (progress.revision, progress.status),
        (3, AnalysisStatus::Running)
    );
    assert_eq!(progress.started_at, running.started_at);
    s.env.clock.advance(chrono::TimeDelta::seconds(5));
    let failed = store
        .update(
            &a,
            t,
            r.id,
            &AnalysisUpdate::new()
                .failed("out of memory")
                .expected_revision(3),
        )
        .await
        .unwrap();
    assert_eq!(failed.status, AnalysisStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("out of memory"));
    assert_eq!(failed.finished_at, Some(s.env.clock.now()));
    assert_eq!(failed.summary, json!({"packages": 10}));
    // Final.
    for update in [
        AnalysisUpdate::new().status(AnalysisStatus::Running),
        AnalysisUpdate::new().summary(json!({"packages": 11})),
        AnalysisUpdate::new().failed("again"),
    ] {
        assert_kind(
            store.update(&a, t, r.id, &update).await,
            ErrorKind::Conflict,
        );
    }
    assert_eq!(store.get(&a, t, r.id).await.unwrap(), failed);
    // Bad updates.
    for update in [
        AnalysisUpdate::new().summary(json!("not an object")),
        AnalysisUpdate::new()
            .failed("x")
            .status(AnalysisStatus::Running),
    ] {
        assert_kind(
            store.update(&a, t, r.id, &update).await,
            ErrorKind::InvalidInput,
        );
    }
    assert_eq!(
        audit_count(&s, t, actions::ANALYSIS_UPDATED.as_str()).await,
        events + 2
    );
    // Delete, with a revision check.
    assert_kind(
        store.delete(&a, t, r.id, Some(1)).await,
        ErrorKind::Conflict,
    );
    store.delete(&a, t, r.id, Some(4)).await.unwrap();
    assert_kind(store.get(&a, t, r.id).await, ErrorKind::NotFound);
    assert_kind(store.delete(&a, t, r.id, None).await, ErrorKind::NotFound);
    assert_kind(
        store
            .update(&a, t, r.id, &AnalysisUpdate::new().summary(json!({})))
            .await,
        ErrorKind::NotFound,
    );
    assert_eq!(
        audit_count(&s, t, actions::ANALYSIS_DELETED.as_str()).await,
        1
    );
}

/// Payloads stream in encrypted under the project key and come back byte for byte,
/// checked; bad names, duplicates, finished results and altered blobs are refused.
pub async fn payloads_round_trip_encrypted(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let a = analyst(t);
    let store = &s.analysis;
    let r = store
        .create(&a, t, p, &AnalysisSpec::new("sast", "semgrep", "1.90.0"))
        .await
        .unwrap();
    let sarif = format!(
        "{{\"version\":\"2.1.0\",\"runs\":[{}]}}",
        vec!["{\"results\":[]}"; 20_000].join(",")
    )
    .into_bytes();
    let big = noise(1_500_000, 9);
    let put = store
        .put_payload(
            &a,
            t,
            r.id,
            "report.sarif",
            "application/sarif+json",
            &mut &sarif[..],
        )
        .await
        .unwrap();
    assert_eq!(put.size, sarif.len() as u64);
    assert_eq!(put.sha256, hex::encode(Sha256::digest(&sarif)));
    store
        .put_payload(
            &a,
            t,
            r.id,
            "raw.bin",
            "application/octet-stream",
            &mut &big[..],
        )
        .await
        .unwrap();
    store
        .put_payload(
            &a,
            t,
            r.id,
            "empty",
            "text/plain; charset=utf-8",
            &mut &b""[..],
        )
        .await
        .unwrap();
    assert_eq!(payload(&s, &a, t, r.id, "report.sarif").await, sarif);
    assert_eq!(payload(&s, &a, t, r.id, "raw.bin").await, big);
    assert_eq!(payload(&s, &a, t, r.id, "empty").await, b"");
    let got = store.get(&a, t, r.id).await.unwrap();
    assert_eq!(got.revision, 4);
    let names: Vec<&str> = got.payloads.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["empty", "raw.bin", "report.sarif"]);
    assert_eq!(got.payloads[2], put);
    assert_eq!(payload_blobs(&s, t, p).unwrap_or(3), 3);
    // Encrypted at rest: no plaintext in the blobs.
    if let Some(root) = &s.fs_root {
        for entry in std::fs::read_dir(root.join(format!("t/{t}/p/{p}/a"))).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!bytes.windows(16).any(|w| w == &sarif[..16]));
            assert!(!bytes.windows(64).any(|w| w == &big[1000..1064]));
        }
    }
    // Refused, nothing recorded.
    let bad = [
        ("report.sarif", "application/json", ErrorKind::AlreadyExists),
        ("../etc/passwd", "text/plain", ErrorKind::InvalidInput),
        ("a b", "text/plain", ErrorKind::InvalidInput),
        ("", "text/plain", ErrorKind::InvalidInput),
        ("ok", "not a type", ErrorKind::InvalidInput),
        ("ok", "text/plain\r\nX: y", ErrorKind::InvalidInput),
    ];
    for (name, ctype, kind) in bad {
        assert_kind(
            store
                .put_payload(&a, t, r.id, name, ctype, &mut &b"x"[..])
                .await,
            kind,
        );
    }
    assert_kind(
        store
            .read_payload(&a, t, r.id, "missing", &mut Vec::new())
            .await,
        ErrorKind::NotFound,
    );
    // A reader that fails half-way: nothing recorded, no blob left.
    let mut failing = tokio::io::AsyncReadExt::chain(&big[..300_000], FailingReader);
    assert!(
        store
            .put_payload(&a, t, r.id, "half", "text/plain", &mut failing)
            .await
            .is_err()
    );
    assert_eq!(store.get(&a, t, r.id).await.unwrap().revision, 4);
    assert_eq!(payload_blobs(&s, t, p).unwrap_or(3), 3);
    // Up to MAX_PAYLOADS.
    for i in 3..MAX_PAYLOADS {
        store
            .put_payload(&a, t, r.id, &format!("p{i}"), "text/plain", &mut &b"x"[..])
            .await
            .unwrap();
    }
    assert_kind(
        store
            .put_payload(&a, t, r.id, "one-more", "text/plain", &mut &b"x"[..])
            .await,
        ErrorKind::InvalidInput,
    );
    // Finished: no more payloads, the old ones still read.
    let done = AnalysisSpec::new("sast", "semgrep", "1.90.0").status(AnalysisStatus::Succeeded);
    let finished = store.create(&a, t, p, &done).await.unwrap();
    assert_kind(
        store
            .put_payload(&a, t, finished.id, "late", "text/plain", &mut &b"x"[..])
            .await,
        ErrorKind::Conflict,
    );
    // An altered blob is caught.
    if let Some(root) = &s.fs_root {
        let dir = root.join(format!("t/{t}/p/{p}/a"));
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let mut bytes = std::fs::read(&path).unwrap();
            if bytes.len() > 1_000_000 {
                bytes[700_000] ^= 1;
                std::fs::write(&path, bytes).unwrap();
            }
        }
        assert_kind(
            store
                .read_payload(&a, t, r.id, "raw.bin", &mut Vec::new())
                .await,
            ErrorKind::Integrity,
        );
        assert_eq!(payload(&s, &a, t, r.id, "report.sarif").await, sarif);
    }
}

/// A reader that fails.
struct FailingReader;

impl tokio::io::AsyncRead for FailingReader {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Err(std::io::Error::other("the analyzer crashed")))
    }
}

/// Payload bytes count against `max_storage_bytes`: one that would pass it is refused
/// whole; usage shows results and payload bytes.
pub async fn payloads_are_charged_to_the_quota(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let a = analyst(t);
    let store = &s.analysis;
    let r = store
        .create(&a, t, p, &AnalysisSpec::new("sast", "semgrep", "1"))
        .await
        .unwrap();
    store
        .put_payload(
            &a,
            t,
            r.id,
            "small",
            "text/plain",
            &mut &noise(100_000, 1)[..],
        )
        .await
        .unwrap();
    let usage = s.snapshots.tenant_usage(&a, t).await.unwrap();
    assert_eq!(usage.analysis_results, 1);
    let charged = usage.analysis_payload_bytes;
    assert!((100_000..101_000).contains(&charged), "{charged}");
    assert_eq!(usage.storage_bytes, charged);
    s.env
        .tenants
        .update(
            &s.env.admin,
            t,
            TenantUpdate::new().settings(TenantSettings::with_quotas(
                Quotas::default().max_storage_bytes(charged + 50_000),
            )),
        )
        .await
        .unwrap();
    assert_kind(
        store
            .put_payload(&a, t, r.id, "big", "text/plain", &mut &noise(60_000, 2)[..])
            .await,
        ErrorKind::QuotaExceeded,
    );
    assert_eq!(payload_blobs(&s, t, p).unwrap_or(1), 1);
    let after = s.snapshots.tenant_usage(&a, t).await.unwrap();
    assert_eq!(after.analysis_payload_bytes, charged);
    assert_eq!(store.get(&a, t, r.id).await.unwrap().payloads.len(), 1);
    store
        .put_payload(
            &a,
            t,
            r.id,
            "fits",
            "text/plain",
            &mut &noise(40_000, 3)[..],
        )
        .await
        .unwrap();
    // Deleting the result frees its bytes.
    store.delete(&a, t, r.id, None).await.unwrap();
    let freed = s.snapshots.tenant_usage(&a, t).await.unwrap();
    assert_eq!(
        (freed.analysis_results, freed.analysis_payload_bytes),
        (0, 0)
    );
    assert_eq!(payload_blobs(&s, t, p).unwrap_or(0), 0);
}

/// Results go with their snapshot (at once) and their project; payload blobs with them;
/// garbage collection removes a payload blob no result records.
pub async fn results_go_with_their_snapshot_and_project(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let a = analyst(t);
    let admin = s.env.admin.clone();
    let store = &s.analysis;
    let snap = snapshot(&s, t, p).await;
    let on_snap = store
        .create(
            &a,
            t,
            p,
            &AnalysisSpec::new("sast", "semgrep", "1").snapshot(snap),
        )
        .await
        .unwrap();
    let on_project = store
        .create(&a, t, p, &AnalysisSpec::new("loc", "tokei", "12"))
        .await
        .unwrap();
    for r in [&on_snap, &on_project] {
        store
            .put_payload(&a, t, r.id, "out.json", "application/json", &mut &b"{}"[..])
            .await
            .unwrap();
    }
    assert_eq!(payload_blobs(&s, t, p).unwrap_or(2), 2);
    s.snapshots.delete(&a, t, snap).await.unwrap();
    assert_kind(store.get(&a, t, on_snap.id).await, ErrorKind::NotFound);
    let left: Vec<AnalysisResult> = store
        .list(&a, t, p, &AnalysisQuery::new())
        .await
        .unwrap()
        .items;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, on_project.id);
    assert_eq!(payload_blobs(&s, t, p).unwrap_or(1), 1);
    assert_eq!(
        rows_where(&s, "analysis_payloads", "result_id", on_snap.id.as_uuid()).await,
        0
    );
    // A blob written by an upload that died before it was recorded: kept while young,
    // collected once older than the grace period.
    let grace = chrono::TimeDelta::minutes(10);
    let orphan = s.fs_root.as_ref().map(|root| {
        let path = root.join(format!("t/{t}/p/{p}/a/{}", uuid::Uuid::now_v7()));
        std::fs::write(&path, b"half an upload").unwrap();
        path
    });
    let young = s
        .snapshots
        .collect_garbage(&admin, t, p, grace)
        .await
        .unwrap();
    assert_eq!(young.payloads_deleted, 0);
    assert_eq!(payload(&s, &a, t, on_project.id, "out.json").await, b"{}");
    // The manual clock starts in January 2026; a year on, the orphan is old.
    s.env.clock.advance(chrono::TimeDelta::days(400));
    let swept = s
        .snapshots
        .collect_garbage(&admin, t, p, grace)
        .await
        .unwrap();
    if let Some(orphan) = orphan {
        assert_eq!(swept.payloads_deleted, 1, "{swept:?}");
        assert!(!orphan.exists());
    }
    assert_eq!(payload(&s, &a, t, on_project.id, "out.json").await, b"{}");
    // The project goes with everything in it; collection removes what its deletion left.
    s.projects.delete(&a, t, p, None).await.unwrap();
    assert_kind(store.get(&a, t, on_project.id).await, ErrorKind::NotFound);
    assert_eq!(
        rows_where(&s, "analysis_results", "project_id", p.as_uuid()).await,
        0
    );
    let gone = s
        .snapshots
        .collect_garbage(&admin, t, p, grace)
        .await
        .unwrap();
    assert_eq!(gone.payloads_deleted, 1, "{gone:?}");
    assert_eq!(payload_blobs(&s, t, p).unwrap_or(0), 0);
}

/// Other tenants see nothing; each operation needs its permission.
pub async fn results_are_isolated(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let (u, _) = tenant_with_project(&s, "other").await;
    let a = analyst(t);
    let store = &s.analysis;
    let r = store
        .create(&a, t, p, &AnalysisSpec::new("sast", "semgrep", "1"))
        .await
        .unwrap();
    store
        .put_payload(&a, t, r.id, "out", "text/plain", &mut &b"secret"[..])
        .await
        .unwrap();
    // Another tenant's analyst, asking in its own tenant: nothing there.
    let b = analyst(u);
    assert_kind(store.get(&b, u, r.id).await, ErrorKind::NotFound);
    assert_kind(
        store
            .read_payload(&b, u, r.id, "out", &mut Vec::new())
            .await,
        ErrorKind::NotFound,
    );
    assert_kind(
        store.list(&b, u, p, &AnalysisQuery::new()).await,
        ErrorKind::NotFound,
    );
    assert_kind(
        store
            .update(&b, u, r.id, &AnalysisUpdate::new().summary(json!({})))
            .await,
        ErrorKind::NotFound,
    );
    assert_kind(store.delete(&b, u, r.id, None).await, ErrorKind::NotFound);
    // ... or asking in ours: refused.
    assert_kind(store.get(&b, t, r.id).await, ErrorKind::PermissionDenied);
    // Permissions one by one.
    let reader = member(t, &[ANALYSIS_READ]);
    assert_eq!(store.get(&reader, t, r.id).await.unwrap().id, r.id);
    let mut out = Vec::new();
    store
        .read_payload(&reader, t, r.id, "out", &mut out)
        .await
        .unwrap();
    assert_eq!(out, b"secret");
    let spec = AnalysisSpec::new("sast", "semgrep", "1");
    assert_kind(
        store.create(&reader, t, p, &spec).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        store
            .put_payload(&reader, t, r.id, "x", "text/plain", &mut &b"x"[..])
            .await,
        ErrorKind::PermissionDenied,
    );
    let writer = member(t, &[ANALYSIS_WRITE]);
    assert_kind(
        store.get(&writer, t, r.id).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        store.delete(&writer, t, r.id, None).await,
        ErrorKind::PermissionDenied,
    );
    let projects_only = owner(t);
    assert_kind(
        store.create(&projects_only, t, p, &spec).await,
        ErrorKind::PermissionDenied,
    );
    store
        .update(
            &writer,
            t,
            r.id,
            &AnalysisUpdate::new().status(AnalysisStatus::Succeeded),
        )
        .await
        .unwrap();
    store
        .delete(&member(t, &[ANALYSIS_DELETE]), t, r.id, None)
        .await
        .unwrap();
}
