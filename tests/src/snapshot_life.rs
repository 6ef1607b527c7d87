//! More of the [`ate_storage::projects::SnapshotStore`] suite: listings and
//! diffs, imports that fail or are abandoned, quotas, isolation and garbage collection.

use crate::assert_kind;
use crate::member;
use crate::snapshots::{
    SnapEnv, noise, owner, rows_where, sample_tree, stored_bytes, tenant_with_project, write_tree,
};
use ate_core::{ErrorKind, ProjectId, Quotas, TenantId, TenantSettings, TenantUpdate};
use ate_storage::StorageError;
use ate_storage::import::{CaseCollisions, ImportLimits, ImportOptions};
use ate_storage::projects::{FileQuery, PROJECTS_READ, ProjectStore, SnapshotStore};

async fn pack_blobs(s: &SnapEnv, t: TenantId, p: ProjectId) -> usize {
    match &s.fs_root {
        Some(root) => std::fs::read_dir(root.join(format!("t/{t}/p/{p}/k")))
            .map(|d| d.count())
            .unwrap_or(0),
        None => usize::MAX, // not observable from outside on this backend
    }
}

/// Filters and pages: prefix, glob, language, flags; pages add up to the whole listing.
pub async fn files_are_listed_with_filters(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    sample_tree(dir.path());
    write_tree(
        dir.path(),
        &[("src/a/b.rs", b"fn b() {}\n"), ("src/lib.rs", b"\n")],
    );
    let o = owner(t);
    let snap = s
        .snapshots
        .import_dir(&o, t, p, dir.path(), Default::default())
        .await
        .unwrap();
    let paths = |q: FileQuery| {
        let s = s.snapshots.clone();
        let o = o.clone();
        async move {
            s.list_files(&o, t, snap.id, &q)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|e| e.path)
                .collect::<Vec<_>>()
        }
    };
    let all = paths(FileQuery::new()).await;
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    assert_eq!(
        paths(FileQuery::new().path_prefix("src/")).await,
        [
            &["src/a/b.rs", "src/lib.rs"][..],
            if cfg!(unix) {
                &["src/link"][..]
            } else {
                &[][..]
            },
            &["src/main.rs"][..]
        ]
        .concat()
    );
    assert_eq!(
        paths(FileQuery::new().glob("src/*.rs")).await,
        vec!["src/lib.rs", "src/main.rs"]
    );
    assert_eq!(
        paths(FileQuery::new().glob("**/*.rs")).await,
        vec!["src/a/b.rs", "src/lib.rs", "src/main.rs"]
    );
    assert_eq!(
        paths(FileQuery::new().language("Rust").path_prefix("src/a")).await,
        vec!["src/a/b.rs"]
    );
    assert_eq!(
        paths(FileQuery::new().vendored(true)).await,
        vec!["vendor/lib/x.js"]
    );
    assert_eq!(
        paths(FileQuery::new().binary(true)).await,
        vec!["assets/logo.bin", "data/big.dat"]
    );
    // Pages of 2, with and without a glob, add up to the same lists.
    for q in [FileQuery::new(), FileQuery::new().glob("**/*.rs")] {
        let mut got = Vec::new();
        let mut cursor = None;
        loop {
            let mut page_q = q.clone().limit(2);
            if let Some(c) = cursor.take() {
                page_q = page_q.cursor(c);
            }
            let page = s
                .snapshots
                .list_files(&o, t, snap.id, &page_q)
                .await
                .unwrap();
            assert!(page.items.len() <= 2);
            got.extend(page.items.into_iter().map(|e| e.path));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(got, paths(q).await);
    }
    assert_kind(
        s.snapshots
            .list_files(&o, t, snap.id, &FileQuery::new().glob("a{b"))
            .await,
        ErrorKind::InvalidInput,
    );
    assert_kind(
        s.snapshots
            .list_files(
                &o,
                t,
                snap.id,
                &FileQuery::new().cursor(ate_core::Cursor::from_string("x")),
            )
            .await,
        ErrorKind::InvalidInput,
    );
}

/// Diffs name the added, removed and changed paths.
pub async fn snapshots_are_diffed(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[("a.rs", b"a"), ("b.rs", b"b"), ("c.rs", b"c")],
    );
    let o = owner(t);
    let one = s
        .snapshots
        .import_dir(&o, t, p, dir.path(), Default::default())
        .await
        .unwrap();
    std::fs::remove_file(dir.path().join("a.rs")).unwrap();
    write_tree(dir.path(), &[("b.rs", b"B"), ("d/e.rs", b"e")]);
    let two = s
        .snapshots
        .import_dir(&o, t, p, dir.path(), Default::default())
        .await
        .unwrap();
    let diff = s.snapshots.diff(&o, t, one.id, two.id).await.unwrap();
    assert_eq!(diff.added, vec!["d/e.rs"]);
    assert_eq!(diff.removed, vec!["a.rs"]);
    assert_eq!(diff.changed, vec!["b.rs"]);
    let same = s.snapshots.diff(&o, t, two.id, two.id).await.unwrap();
    assert!(same.added.is_empty() && same.removed.is_empty() && same.changed.is_empty());
}

/// Every refusal and an abort leave nothing: no snapshot, no rows, no packs, no charge.
pub async fn failed_imports_leave_nothing(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let o = owner(t);
    let big = noise(600_000, 3);
    type Entries = Vec<(&'static str, Vec<u8>)>;
    let cases: Vec<(&str, ImportOptions, Entries)> = vec![
        (
            "dotdot",
            ImportOptions::new(),
            vec![("ok.rs", big.clone()), ("../evil", b"x".to_vec())],
        ),
        (
            "absolute",
            ImportOptions::new(),
            vec![("ok.rs", big.clone()), ("/etc/x", b"x".to_vec())],
        ),
        (
            "drive",
            ImportOptions::new(),
            vec![("ok.rs", big.clone()), ("C:/x", b"x".to_vec())],
        ),
        (
            "backslash",
            ImportOptions::new(),
            vec![("ok.rs", big.clone()), ("a\\b", b"x".to_vec())],
        ),
        (
            "nul",
            ImportOptions::new(),
            vec![("ok.rs", big.clone()), ("a\0b", b"x".to_vec())],
        ),
        (
            "duplicate",
            ImportOptions::new(),
            vec![("ok.rs", big.clone()), ("./ok.rs", b"x".to_vec())],
        ),
        (
            "case",
            ImportOptions::new().case_collisions(CaseCollisions::Refuse),
            vec![("ok.rs", big.clone()), ("OK.rs", b"x".to_vec())],
        ),
        (
            "file size",
            ImportOptions::new().limits(ImportLimits::default().max_file_bytes(100_000)),
            vec![("a", b"x".to_vec()), ("ok.rs", big.clone())],
        ),
        (
            "total size",
            ImportOptions::new().limits(ImportLimits::default().max_total_bytes(700_000)),
            vec![("ok.rs", big.clone()), ("b", big.clone())],
        ),
        (
            "count",
            ImportOptions::new().limits(ImportLimits::default().max_files(1)),
            vec![("ok.rs", big.clone()), ("b", b"x".to_vec())],
        ),
    ];
    for (name, options, entries) in cases {
        let mut imp = s.snapshots.begin_import(&o, t, p, options).await.unwrap();
        let id = imp.snapshot_id();
        let mut failed = None;
        for (path, content) in &entries {
            if let Err(e) = imp.add_file(path, 0o644, &mut &content[..]).await {
                failed = Some(e);
                break;
            }
        }
        let err = failed.unwrap_or_else(|| panic!("{name}: accepted"));
        assert!(
            matches!(err, StorageError::ImportRefused { .. }),
            "{name}: {err}"
        );
        // The import has ended: later calls and the commit fail.
        assert_kind(
            imp.add_file("z", 0o644, &mut &b"z"[..]).await,
            ErrorKind::InvalidInput,
        );
        assert_kind(imp.commit().await, ErrorKind::InvalidInput);
        assert_eq!(
            rows_where(&s, "snapshots", "id", id.as_uuid()).await,
            0,
            "{name}"
        );
        assert_eq!(
            rows_where(&s, "snapshot_files", "snapshot_id", id.as_uuid()).await,
            0
        );
        assert_eq!(
            rows_where(&s, "pending_chunks", "snapshot_id", id.as_uuid()).await,
            0
        );
    }
    // An explicit abort after a pack was written.
    let mut imp = s
        .snapshots
        .begin_import(&o, t, p, ImportOptions::new())
        .await
        .unwrap();
    for i in 0..40 {
        imp.add_file(&format!("f{i}"), 0o644, &mut &noise(600_000, i)[..])
            .await
            .unwrap();
    }
    imp.abort().await.unwrap();
    assert_eq!(rows_where(&s, "packs", "project_id", p.as_uuid()).await, 0);
    assert_eq!(rows_where(&s, "chunks", "project_id", p.as_uuid()).await, 0);
    assert_eq!(stored_bytes(&s, p).await, 0);
    let left = pack_blobs(&s, t, p).await;
    assert!(left == 0 || left == usize::MAX, "{left} pack blobs left");
    let listed = s
        .snapshots
        .list(&o, t, p, &Default::default())
        .await
        .unwrap();
    assert!(listed.items.is_empty());
}

/// Stored bytes count against `max_storage_bytes`, atomically at the commit; objects and
/// projects share the quota.
pub async fn imports_are_charged_to_the_quota(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let o = owner(t);
    let settings = |max| {
        TenantUpdate::new().settings(TenantSettings::with_quotas(
            Quotas::default().max_storage_bytes(max),
        ))
    };
    s.env
        .tenants
        .update(&s.env.admin, t, settings(100_000))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("big", &noise(300_000, 1)), ("small", b"x")]);
    assert_kind(
        s.snapshots
            .import_dir(&o, t, p, dir.path(), Default::default())
            .await,
        ErrorKind::QuotaExceeded,
    );
    assert_eq!(stored_bytes(&s, p).await, 0);
    assert_eq!(
        rows_where(&s, "snapshots", "project_id", p.as_uuid()).await,
        0
    );
    assert_eq!(rows_where(&s, "chunks", "project_id", p.as_uuid()).await, 0);
    s.env
        .tenants
        .update(&s.env.admin, t, settings(400_000))
        .await
        .unwrap();
    let snap = s
        .snapshots
        .import_dir(&o, t, p, dir.path(), Default::default())
        .await
        .unwrap();
    assert_eq!(stored_bytes(&s, p).await, snap.new_bytes as i64);
    // A re-import adds nothing, so it fits.
    s.snapshots
        .import_dir(&o, t, p, dir.path(), Default::default())
        .await
        .unwrap();
}

/// Other tenants see nothing; reading needs `projects:read`, importing `projects:write`.
pub async fn snapshots_are_isolated(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let (t2, _) = tenant_with_project(&s, "other").await;
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("a.rs", b"fn a() {}\n")]);
    let snap = s
        .snapshots
        .import_dir(&owner(t), t, p, dir.path(), Default::default())
        .await
        .unwrap();
    let stranger = owner(t2);
    assert_kind(
        s.snapshots.get(&stranger, t2, snap.id).await,
        ErrorKind::NotFound,
    );
    assert_kind(
        s.snapshots.get(&stranger, t, snap.id).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        s.snapshots
            .read_file(&stranger, t2, snap.id, "a.rs", None)
            .await,
        ErrorKind::NotFound,
    );
    let reader = member(t, &[PROJECTS_READ]);
    assert!(
        s.snapshots
            .read_file(&reader, t, snap.id, "a.rs", None)
            .await
            .is_ok()
    );
    assert_kind(
        s.snapshots
            .begin_import(&reader, t, p, ImportOptions::new())
            .await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        s.snapshots.delete(&reader, t, snap.id).await,
        ErrorKind::PermissionDenied,
    );
    // Another tenant's project id is not found.
    assert_kind(
        s.snapshots
            .begin_import(&stranger, t2, p, ImportOptions::new())
            .await,
        ErrorKind::NotFound,
    );
}

/// Deleting a snapshot frees the chunks only it needed at the next collection; abandoned
/// imports go once their lease runs out; nothing is swept while an import runs; a deleted
/// project's packs go too.
pub async fn garbage_is_collected(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let o = owner(t);
    let admin = s.env.admin.clone();
    let grace = chrono::TimeDelta::minutes(10);
    let a = tempfile::tempdir().unwrap();
    write_tree(
        a.path(),
        &[
            ("shared", &noise(200_000, 1)),
            ("only-a", &noise(200_000, 2)),
        ],
    );
    let b = tempfile::tempdir().unwrap();
    write_tree(
        b.path(),
        &[
            ("shared", &noise(200_000, 1)),
            ("only-b", &noise(200_000, 3)),
        ],
    );
    let snap_a = s
        .snapshots
        .import_dir(&o, t, p, a.path(), Default::default())
        .await
        .unwrap();
    let snap_b = s
        .snapshots
        .import_dir(&o, t, p, b.path(), Default::default())
        .await
        .unwrap();
    let before = stored_bytes(&s, p).await;
    let nothing = s
        .snapshots
        .collect_garbage(&admin, t, p, grace)
        .await
        .unwrap();
    assert_eq!((nothing.chunks_deleted, nothing.busy), (0, false));
    assert_kind(
        s.snapshots.collect_garbage(&o, t, p, grace).await,
        ErrorKind::PermissionDenied,
    );
    s.snapshots.delete(&o, t, snap_a.id).await.unwrap();
    assert_kind(s.snapshots.get(&o, t, snap_a.id).await, ErrorKind::NotFound);
    assert_kind(
        s.snapshots.delete(&o, t, snap_a.id).await,
        ErrorKind::NotFound,
    );
    let report = s
        .snapshots
        .collect_garbage(&admin, t, p, grace)
        .await
        .unwrap();
    assert!(
        report.chunks_deleted > 0 && report.bytes_freed > 0,
        "{report:?}"
    );
    assert_eq!(
        stored_bytes(&s, p).await,
        before - report.bytes_freed as i64
    );
    // What b needs is intact.
    for path in ["shared", "only-b"] {
        let got = s
            .snapshots
            .read_file(&o, t, snap_b.id, path, None)
            .await
            .unwrap();
        assert_eq!(got.len(), 200_000);
    }
    // An import abandoned without commit or abort: swept only once its lease ran out.
    let mut imp = s
        .snapshots
        .begin_import(
            &o,
            t,
            p,
            ImportOptions::new().lease(chrono::TimeDelta::minutes(5)),
        )
        .await
        .unwrap();
    for i in 0..30 {
        imp.add_file(&format!("f{i}"), 0o644, &mut &noise(600_000, 100 + i)[..])
            .await
            .unwrap();
    }
    let busy = s
        .snapshots
        .collect_garbage(&admin, t, p, grace)
        .await
        .unwrap();
    assert!(busy.busy && busy.expired_imports == 0, "{busy:?}");
    drop(imp);
    s.env.clock.advance(chrono::TimeDelta::minutes(6));
    let swept = s
        .snapshots
        .collect_garbage(&admin, t, p, grace)
        .await
        .unwrap();
    assert_eq!(swept.expired_imports, 1, "{swept:?}");
    assert!(!swept.busy);
    assert!(swept.packs_deleted >= 1, "{swept:?}");
    assert_eq!(
        stored_bytes(&s, p).await,
        before - report.bytes_freed as i64
    );
    // A deleted project's packs are garbage whatever their age.
    s.projects.delete(&o, t, p, None).await.unwrap();
    let gone = s
        .snapshots
        .collect_garbage(&admin, t, p, grace)
        .await
        .unwrap();
    assert!(gone.packs_deleted >= 1, "{gone:?}");
    let left = pack_blobs(&s, t, p).await;
    assert!(left == 0 || left == usize::MAX, "{left} pack blobs left");
    // A project deleted and forgotten: nothing names it any more, yet what it left is
    // found and deleted, whatever its age.
    let forgotten = s
        .projects
        .create(&o, t, &ate_storage::projects::ProjectSpec::new("forgotten"))
        .await
        .unwrap()
        .id;
    s.snapshots
        .import_dir(&o, t, forgotten, a.path(), Default::default())
        .await
        .unwrap();
    s.projects.delete(&o, t, forgotten, None).await.unwrap();
    let orphans = s
        .snapshots
        .verify(&admin, t, None, &ate_storage::VerifyOptions::default())
        .await
        .unwrap();
    assert!(
        orphans
            .problems
            .iter()
            .any(|p| p.project == Some(forgotten)),
        "{orphans:?}"
    );
    assert_kind(
        s.snapshots.collect_deleted_projects(&o, t).await,
        ErrorKind::PermissionDenied,
    );
    let swept = s
        .snapshots
        .collect_deleted_projects(&admin, t)
        .await
        .unwrap();
    assert!(swept.packs_deleted >= 1, "{swept:?}");
    let left = pack_blobs(&s, t, forgotten).await;
    assert!(left == 0 || left == usize::MAX, "{left} pack blobs left");
    let clean = s
        .snapshots
        .verify(&admin, t, None, &ate_storage::VerifyOptions::default())
        .await
        .unwrap();
    assert!(clean.is_clean(), "{clean:#?}");
    let again = s
        .snapshots
        .collect_deleted_projects(&admin, t)
        .await
        .unwrap();
    assert_eq!(again.packs_deleted, 0);
}

/// Project totals and tenant usage add up what the snapshots and projects hold.
pub async fn usage_adds_up(s: SnapEnv) {
    use ate_storage::projects::ProjectSpec;
    let (t, p1) = tenant_with_project(&s, "acme").await;
    let o = owner(t);
    s.env
        .tenants
        .update(
            &s.env.admin,
            t,
            TenantUpdate::new().settings(TenantSettings::with_quotas(
                Quotas::default().max_projects(5),
            )),
        )
        .await
        .unwrap();
    let p2 = s
        .projects
        .create(&o, t, &ProjectSpec::new("second"))
        .await
        .unwrap()
        .id;
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[("a.rs", &noise(100_000, 1)), ("b.md", b"# B\n")],
    );
    let one = s
        .snapshots
        .import_dir(&o, t, p1, dir.path(), Default::default())
        .await
        .unwrap();
    write_tree(dir.path(), &[("c.rs", &noise(50_000, 2))]);
    let two = s
        .snapshots
        .import_dir(&o, t, p1, dir.path(), Default::default())
        .await
        .unwrap();
    let three = s
        .snapshots
        .import_dir(&o, t, p2, dir.path(), Default::default())
        .await
        .unwrap();
    let stats = s.snapshots.project_stats(&o, t, p1).await.unwrap();
    assert_eq!(stats.snapshots, 2);
    assert_eq!(stats.logical_bytes, one.logical_bytes + two.logical_bytes);
    assert_eq!(stats.stored_bytes as i64, stored_bytes(&s, p1).await);
    assert_eq!(stats.stored_bytes, one.new_bytes + two.new_bytes);
    assert_eq!(stats.latest.map(|l| l.id), Some(two.id));
    let usage = s.snapshots.tenant_usage(&o, t).await.unwrap();
    assert_eq!((usage.projects, usage.snapshots), (2, 3));
    assert_eq!(
        usage.snapshot_logical_bytes,
        one.logical_bytes + two.logical_bytes + three.logical_bytes
    );
    let stored = one.new_bytes + two.new_bytes + three.new_bytes;
    assert_eq!(
        (usage.project_stored_bytes, usage.storage_bytes),
        (stored, stored)
    );
    assert_eq!((usage.objects, usage.object_bytes), (0, 0));
    assert_eq!(usage.quotas.max_projects, Some(5));
    // Deleting a snapshot and collecting its garbage lowers what is charged.
    s.snapshots.delete(&o, t, one.id).await.unwrap();
    s.snapshots
        .collect_garbage(&s.env.admin, t, p1, chrono::TimeDelta::minutes(1))
        .await
        .unwrap();
    let after = s.snapshots.tenant_usage(&o, t).await.unwrap();
    assert_eq!(after.snapshots, 2);
    assert!(after.storage_bytes <= usage.storage_bytes);
    let (t2, p3) = tenant_with_project(&s, "other").await;
    assert_kind(
        s.snapshots.project_stats(&o, t, p3).await,
        ErrorKind::NotFound,
    );
    assert_kind(
        s.snapshots.tenant_usage(&o, t2).await,
        ErrorKind::PermissionDenied,
    );
    let empty = s.snapshots.project_stats(&owner(t2), t2, p3).await.unwrap();
    assert_eq!(
        (empty.snapshots, empty.stored_bytes, empty.latest),
        (0, 0, None)
    );
}

/// Parallel imports and payload uploads against one `max_storage_bytes`: each would fit
/// alone, together they do not. What is committed never passes the quota, every refusal is
/// `QuotaExceeded`, and what the tenant is charged is exactly what was committed.
pub async fn parallel_writers_respect_the_quota(s: SnapEnv) {
    use ate_storage::analysis::{AnalysisSpec, AnalysisStore};
    let (t, p) = tenant_with_project(&s, "acme").await;
    let a = crate::analysis::analyst(t);
    let quota = 1_000_000;
    s.env
        .tenants
        .update(
            &s.env.admin,
            t,
            TenantUpdate::new().settings(TenantSettings::with_quotas(
                Quotas::default().max_storage_bytes(quota),
            )),
        )
        .await
        .unwrap();
    let result = s
        .analysis
        .create(&a, t, p, &AnalysisSpec::new("sast", "semgrep", "1"))
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6u64 {
        let (s, a) = (s.clone(), a.clone());
        tasks.spawn(async move {
            let dir = tempfile::tempdir().unwrap();
            // Incompressible and distinct: nothing deduplicates.
            write_tree(dir.path(), &[("data", &noise(300_000, 1000 + i))]);
            s.snapshots
                .import_dir(&a, t, p, dir.path(), Default::default())
                .await
                .map(|snap| snap.new_bytes)
        });
    }
    for i in 0..4u64 {
        let (s, a) = (s.clone(), a.clone());
        tasks.spawn(async move {
            let body = noise(300_000, 2000 + i);
            s.analysis
                .put_payload(
                    &a,
                    t,
                    result.id,
                    &format!("p{i}"),
                    "text/plain",
                    &mut &body[..],
                )
                .await
                .map(|payload| payload.stored_bytes)
        });
    }
    let (mut committed, mut ok, mut refused) = (0u64, 0, 0);
    while let Some(outcome) = tasks.join_next().await {
        match outcome.unwrap() {
            Ok(bytes) => {
                committed += bytes;
                ok += 1;
            }
            Err(e) => {
                assert_eq!(
                    ate_core::Classify::kind(&e),
                    ErrorKind::QuotaExceeded,
                    "{e}"
                );
                refused += 1;
            }
        }
    }
    assert!(ok >= 1 && refused >= 1, "{ok} succeeded, {refused} refused");
    assert!(
        committed <= quota,
        "{committed} bytes committed past {quota}"
    );
    let usage = s.snapshots.tenant_usage(&a, t).await.unwrap();
    assert_eq!(usage.storage_bytes, committed);
    assert_eq!(
        usage.project_stored_bytes + usage.analysis_payload_bytes,
        committed
    );
}

/// Records what an import reports, and fails on the entry numbered `fail_at` if set.
#[derive(Debug, Default)]
struct Recorder {
    seen: std::sync::Mutex<Vec<(String, u64, u64)>>,
    fail_at: Option<u64>,
}

impl ate_storage::import::ImportProgress for Recorder {
    fn entry_added(&self, p: ate_storage::import::Progress<'_>) -> Result<(), StorageError> {
        self.seen
            .lock()
            .unwrap()
            .push((p.path.to_owned(), p.files, p.bytes));
        if self.fail_at == Some(p.files) {
            return Err(ate_core::CoreError::Conflict("stopped by the observer".into()).into());
        }
        Ok(())
    }
}

/// The progress observer hears of every entry with running totals that end at the
/// snapshot's; an observer's error stops the import, which then leaves nothing.
pub async fn imports_report_progress(s: SnapEnv) {
    use std::sync::Arc;
    let (t, p) = tenant_with_project(&s, "acme").await;
    let o = owner(t);
    let dir = tempfile::tempdir().unwrap();
    sample_tree(dir.path());
    let seen = Arc::new(Recorder::default());
    let snap = s
        .snapshots
        .import_dir(
            &o,
            t,
            p,
            dir.path(),
            ImportOptions::new().progress(seen.clone()),
        )
        .await
        .unwrap();
    let seen = seen.seen.lock().unwrap().clone();
    assert_eq!(seen.len() as u64, snap.files);
    let counts: Vec<u64> = seen.iter().map(|s| s.1).collect();
    assert_eq!(counts, (1..=snap.files).collect::<Vec<_>>());
    assert!(seen.windows(2).all(|w| w[0].2 <= w[1].2), "{seen:?}");
    let distinct: std::collections::BTreeSet<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(distinct.len(), seen.len(), "each entry once: {seen:?}");
    assert_eq!(seen.last().unwrap().2, snap.logical_bytes);
    let paths: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert!(paths.contains(&"data/big.dat") && paths.contains(&"src/link"));

    let before = stored_bytes(&s, p).await;
    let stopper = Arc::new(Recorder {
        fail_at: Some(3),
        ..Recorder::default()
    });
    let out = s
        .snapshots
        .import_dir(
            &o,
            t,
            p,
            dir.path(),
            ImportOptions::new().progress(stopper.clone()),
        )
        .await;
    assert_kind(out, ErrorKind::Conflict);
    assert_eq!(
        stopper.seen.lock().unwrap().len(),
        3,
        "nothing after the error"
    );
    let listed = s
        .snapshots
        .list(&o, t, p, &Default::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1, "only the first import is visible");
    assert_eq!(stored_bytes(&s, p).await, before, "nothing charged");
}
