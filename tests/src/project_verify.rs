//! [`SnapshotStore::verify`]: every kind of damage to a tenant's codebase projects is found
//! and named, nothing changes without `repair`, and repair deletes old orphans only. Runs on
//! every metadata × blob combination (`tests/conformance.rs`).

use crate::analysis::analyst;
use crate::assert_kind;
use crate::snapshots::{SnapEnv, noise, owner, tenant_with_project, write_tree};
use ate_core::{Classify, Clock, ErrorKind, NewTenant, ProjectId, SnapshotId, TenantId, with_pool};
use ate_storage::analysis::{AnalysisSpec, AnalysisStore};
use ate_storage::projects::{ProjectSpec, ProjectStore, SnapshotStore};
use ate_storage::verify::{ProblemKind, VerifyOptions, VerifyReport};
use std::collections::BTreeSet;
use uuid::Uuid;

/// Runs `sql` with `args` bound as UUIDs.
async fn exec(s: &SnapEnv, sql: &str, args: &[Uuid]) {
    with_pool!(s.env.db, |pool| {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
        for a in args {
            q = q.bind(*a);
        }
        q.execute(pool).await.unwrap();
    });
}

/// The project's pack ids, oldest first (one per import here: each is under 16 MiB).
async fn packs(s: &SnapEnv, p: ProjectId) -> Vec<Uuid> {
    with_pool!(s.env.db, |pool| {
        sqlx::query_scalar("SELECT id FROM packs WHERE project_id = $1 ORDER BY id")
            .bind(p.as_uuid())
            .fetch_all(pool)
            .await
            .unwrap()
    })
}

/// Every blob name under `dir`, recursively.
async fn blob_names(s: &SnapEnv, dir: &str) -> BTreeSet<String> {
    let op = s.blobs.operator();
    let mut out = BTreeSet::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        let entries = match op.list(&d).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => continue,
            Err(e) => panic!("listing {d}: {e}"),
        };
        for entry in entries {
            let path = entry.path().to_owned();
            if path == d {
                continue;
            }
            if path.ends_with('/') {
                dirs.push(path);
            } else {
                out.insert(path);
            }
        }
    }
    out
}

/// Flips one bit of blob `name` at `at`.
async fn flip(s: &SnapEnv, name: &str, at: usize) {
    let op = s.blobs.operator();
    let mut bytes = op.read(name).await.unwrap().to_vec();
    bytes[at] ^= 1;
    op.write(name, bytes).await.unwrap();
}

/// A directory holding `files`, imported as a snapshot of `p`.
async fn import(s: &SnapEnv, t: TenantId, p: ProjectId, files: &[(&str, &[u8])]) -> SnapshotId {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), files);
    #[cfg(unix)]
    if files.iter().any(|(name, _)| *name == "shared") {
        std::os::unix::fs::symlink("shared", dir.path().join("link")).unwrap();
    }
    s.snapshots
        .import_dir(&owner(t), t, p, dir.path(), Default::default())
        .await
        .unwrap()
        .id
}

/// A problem as (kind, project tag, snapshot tag, path, blob), for comparing reports.
type Seen = (ProblemKind, String, String, String, String);

fn seen(
    report: &VerifyReport,
    names: &[(Option<ProjectId>, &str)],
    snaps: &[(SnapshotId, &str)],
) -> BTreeSet<Seen> {
    let tag_project = |p: Option<ProjectId>| {
        names
            .iter()
            .find(|(id, _)| *id == p)
            .map(|(_, n)| (*n).to_owned())
            .unwrap_or_else(|| format!("{p:?}"))
    };
    report
        .problems
        .iter()
        .map(|p| {
            (
                p.kind,
                tag_project(p.project),
                p.snapshot
                    .map(|id| {
                        snaps
                            .iter()
                            .find(|(s, _)| *s == id)
                            .map(|(_, n)| (*n).to_owned())
                            .unwrap_or_else(|| id.to_string())
                    })
                    .unwrap_or_default(),
                p.path.clone().unwrap_or_default(),
                p.blob.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn problem(kind: ProblemKind, project: &str, snapshot: &str, path: &str, blob: &str) -> Seen {
    (
        kind,
        project.into(),
        snapshot.into(),
        path.into(),
        blob.into(),
    )
}

/// `verify` of codebase projects: clean data is clean both ways; each kind of damage is
/// found and named; nothing changes without `repair`; repair deletes old orphan pack and
/// payload blobs and what deleted projects left, nothing else; other tenants untouched.
pub async fn verify_finds_every_problem_in_projects(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let o = owner(t);
    let a = analyst(t);
    let admin = s.env.admin.clone();
    let project = |name: &'static str| {
        let (projects, o) = (s.projects.clone(), o.clone());
        async move {
            projects
                .create(&o, t, &ProjectSpec::new(name))
                .await
                .unwrap()
                .id
        }
    };
    let (p2, p3, p4) = (
        project("keys").await,
        project("purging").await,
        project("gone").await,
    );
    let text = b"fn main() {}\n".repeat(40);
    let (shared, only_a, only_b, only_c) = (
        noise(200_000, 1),
        noise(200_000, 2),
        noise(200_000, 3),
        noise(100_000, 4),
    );
    let snap_a = import(
        &s,
        t,
        p,
        &[
            ("shared", &shared),
            ("only-a", &only_a),
            ("small.txt", &text),
        ],
    )
    .await;
    let snap_b = import(
        &s,
        t,
        p,
        &[
            ("shared", &shared),
            ("only-b", &only_b),
            ("small.txt", &text),
        ],
    )
    .await;
    let snap_c = import(&s, t, p, &[("only-c", &only_c)]).await;
    let snap_k = import(&s, t, p2, &[("f", &noise(50_000, 5))]).await;
    import(&s, t, p3, &[("f", &noise(50_000, 6))]).await;
    import(&s, t, p4, &[("f", &noise(50_000, 7))]).await;
    let result = s
        .analysis
        .create(&a, t, p, &AnalysisSpec::new("sast", "semgrep", "1.90.0"))
        .await
        .unwrap();
    for name in ["ok", "gone", "header", "relabelled"] {
        s.analysis
            .put_payload(
                &a,
                t,
                result.id,
                name,
                "text/plain",
                &mut &noise(70_000, 9)[..],
            )
            .await
            .unwrap();
    }
    // Another tenant's project: never touched.
    let (other, other_p) = {
        let other = s
            .env
            .tenants
            .create(&admin, NewTenant::new("other", "Other"))
            .await
            .unwrap()
            .id;
        let op = s
            .projects
            .create(&owner(other), other, &ProjectSpec::new("code"))
            .await
            .unwrap()
            .id;
        import(&s, other, op, &[("x", &noise(30_000, 8))]).await;
        (other, op)
    };
    let check = |project: Option<ProjectId>, options: VerifyOptions| {
        let (store, admin) = (s.snapshots.clone(), admin.clone());
        async move { store.verify(&admin, t, project, &options).await.unwrap() }
    };

    // Clean, both ways, with every row counted.
    let quick = check(None, VerifyOptions::default()).await;
    assert!(quick.is_clean(), "{:#?}", quick.problems);
    let files = if cfg!(unix) { 12 } else { 10 };
    assert_eq!(
        (
            quick.projects,
            quick.snapshots,
            quick.files,
            quick.packs,
            quick.payloads,
            quick.in_progress
        ),
        (4, 6, files, 6, 4, 0)
    );
    assert!(quick.chunks >= 8, "{quick:?}");
    assert_eq!(quick.blobs, 10, "six packs and four payloads");
    assert_eq!(quick.bytes_read, 4 * 56, "only the payloads' headers");
    let full = check(None, VerifyOptions::default().read_all(true)).await;
    assert!(full.is_clean(), "{:#?}", full.problems);
    let mut pack_bytes = 0u64;
    for pp in [p, p2, p3, p4] {
        for pack in packs(&s, pp).await {
            let name = format!("t/{t}/p/{pp}/k/{pack}");
            pack_bytes += s
                .blobs
                .operator()
                .stat(&name)
                .await
                .unwrap()
                .content_length();
        }
    }
    assert!(full.bytes_read > pack_bytes + 4 * 70_000, "{full:?}");
    let one = check(Some(p2), VerifyOptions::default()).await;
    assert_eq!((one.projects, one.snapshots, one.packs), (1, 1, 1));
    // Who may, and what is refused.
    assert_kind(
        s.snapshots
            .verify(&o, t, None, &VerifyOptions::default())
            .await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        s.snapshots
            .verify(&admin, t, Some(other_p), &VerifyOptions::default())
            .await,
        ErrorKind::NotFound,
    );
    for bad in [
        VerifyOptions::default().concurrency(0),
        VerifyOptions::default().grace(chrono::TimeDelta::seconds(-1)),
    ] {
        assert_kind(
            s.snapshots.verify(&admin, t, None, &bad).await,
            ErrorKind::InvalidInput,
        );
    }
    assert_kind(
        s.snapshots
            .collect_garbage(&admin, t, p, chrono::TimeDelta::seconds(-1))
            .await,
        ErrorKind::InvalidInput,
    );

    // Damage.
    let pk = packs(&s, p).await;
    let pack = |i: usize| format!("t/{t}/p/{p}/k/{}", pk[i]);
    // Pack C is lost; a byte inside pack B (which holds only only-b's chunks) flips.
    s.blobs.operator().delete(&pack(2)).await.unwrap();
    flip(&s, &pack(1), 1000).await;
    // A chunk of only-a leaves the index (and so the stored-bytes counter disagrees).
    let list: Vec<u8> = with_pool!(s.env.db, |pool| {
        sqlx::query_scalar(
            "SELECT chunks FROM snapshot_files WHERE snapshot_id = $1 AND path = 'only-a'",
        )
        .bind(snap_a.as_uuid())
        .fetch_one(pool)
        .await
        .unwrap()
    });
    with_pool!(s.env.db, |pool| {
        sqlx::query("DELETE FROM chunks WHERE project_id = $1 AND chunk_id = $2")
            .bind(p.as_uuid())
            .bind(&list[..32])
            .execute(pool)
            .await
            .unwrap();
    });
    // Snapshot B claims a file more; A's small.txt claims a byte more (and A's total with
    // it); B's small.txt records another checksum.
    exec(
        &s,
        "UPDATE snapshots SET files = files + 1 WHERE id = $1",
        &[snap_b.as_uuid()],
    )
    .await;
    exec(
        &s,
        "UPDATE snapshot_files SET size = size + 1 WHERE snapshot_id = $1 AND path = 'small.txt'",
        &[snap_a.as_uuid()],
    )
    .await;
    exec(
        &s,
        "UPDATE snapshots SET logical_bytes = logical_bytes + 1 WHERE id = $1",
        &[snap_a.as_uuid()],
    )
    .await;
    with_pool!(s.env.db, |pool| {
        sqlx::query(
            "UPDATE snapshot_files SET sha256 = $2 WHERE snapshot_id = $1 AND path = 'small.txt'",
        )
        .bind(snap_b.as_uuid())
        .bind(vec![0u8; 32])
        .execute(pool)
        .await
        .unwrap();
    });
    // Payloads: one blob lost, one header flipped, one row's checksum changed.
    let payload_blob = |name: &'static str| {
        let db = s.env.db.clone();
        async move {
            let id: Uuid = with_pool!(db, |pool| {
                sqlx::query_scalar("SELECT blob_id FROM analysis_payloads WHERE name = $1")
                    .bind(name)
                    .fetch_one(pool)
                    .await
                    .unwrap()
            });
            (id, format!("t/{t}/p/{p}/a/{id}"))
        }
    };
    s.blobs
        .operator()
        .delete(&payload_blob("gone").await.1)
        .await
        .unwrap();
    flip(&s, &payload_blob("header").await.1, 30).await;
    with_pool!(s.env.db, |pool| {
        sqlx::query("UPDATE analysis_payloads SET sha256 = $1 WHERE name = 'relabelled'")
            .bind(vec![0u8; 32])
            .execute(pool)
            .await
            .unwrap();
    });
    // Project p2's key can no longer be unwrapped.
    with_pool!(s.env.db, |pool| {
        sqlx::query("UPDATE project_keys SET sealed = $2 WHERE project_id = $1")
            .bind(p2.as_uuid())
            .bind(vec![7u8; 80])
            .execute(pool)
            .await
            .unwrap();
    });
    // p3's deletion was interrupted (a purge in progress); p4 was deleted and its blobs are
    // left for garbage collection.
    exec(
        &s,
        "UPDATE projects SET deleted_at = 1 WHERE id = $1",
        &[p3.as_uuid()],
    )
    .await;
    let p4_blobs: Vec<String> = blob_names(&s, &format!("t/{t}/p/{p4}/"))
        .await
        .into_iter()
        .collect();
    assert_eq!(p4_blobs.len(), 1);
    s.projects.delete(&o, t, p4, None).await.unwrap();
    // An import and a payload upload that died before recording their blobs; then time
    // passes and a fresh pack blob appears (an import in progress).
    let old_pack = format!("t/{t}/p/{p}/k/{}", Uuid::now_v7());
    let old_payload = format!("t/{t}/p/{p}/a/{}", Uuid::now_v7());
    for name in [&old_pack, &old_payload] {
        s.blobs
            .operator()
            .write(name, b"orphan".to_vec())
            .await
            .unwrap();
    }
    s.env.clock.advance(chrono::TimeDelta::days(365 * 20));
    let now = s.env.clock.now();
    let young = Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        now.timestamp() as u64,
        0,
    ));
    let young_pack = format!("t/{t}/p/{p}/k/{young}");
    s.blobs
        .operator()
        .write(&young_pack, b"uploading".to_vec())
        .await
        .unwrap();
    let before = blob_names(&s, &format!("t/{t}/")).await;

    let names = [(Some(p), "p"), (Some(p2), "p2"), (Some(p4), "p4")];
    let snaps = [(snap_a, "A"), (snap_b, "B"), (snap_c, "C"), (snap_k, "K")];
    let payload_path = |name: &str| format!("analysis {} payload {name}", result.id);
    let (gone_blob, header_blob, relabelled_blob) = (
        payload_blob("gone").await.1,
        payload_blob("header").await.1,
        payload_blob("relabelled").await.1,
    );
    use ProblemKind as K;
    let mut expected: BTreeSet<Seen> = [
        problem(K::MissingBlob, "p", "", "", &pack(2)),
        problem(K::MissingBlob, "p", "", &payload_path("gone"), &gone_blob),
        problem(
            K::HeaderMismatch,
            "p",
            "",
            &payload_path("header"),
            &header_blob,
        ),
        problem(K::KeyUnavailable, "p2", "", "", ""),
        problem(K::BadIndexRow, "p", "A", "small.txt", ""),
        problem(K::MissingChunk, "p", "A", "only-a", ""),
        problem(K::UsageMismatch, "p", "", "", ""),
        problem(K::UsageMismatch, "p", "B", "", ""),
        problem(K::OrphanBlob, "p", "", "", &old_pack),
        problem(K::OrphanBlob, "p", "", "", &old_payload),
        problem(K::OrphanBlob, "p4", "", "", &p4_blobs[0]),
    ]
    .into_iter()
    .collect();
    let quick = check(None, VerifyOptions::default()).await;
    assert_eq!(
        seen(&quick, &names, &snaps),
        expected,
        "{:#?}",
        quick.problems
    );
    assert_eq!(quick.in_progress, 2, "the young pack blob and p3's purge");
    assert_eq!(
        quick.projects, 2,
        "p and p2; p3 is being purged, p4 is gone"
    );
    let usage = quick
        .of_kind(K::UsageMismatch)
        .find(|p| p.snapshot.is_none())
        .unwrap();
    assert!(usage.detail.contains("stored bytes"), "{}", usage.detail);
    let key = quick.of_kind(K::KeyUnavailable).next().unwrap();
    assert!(key.detail.contains("version 1"), "{}", key.detail);
    let missing = quick.of_kind(K::MissingChunk).next().unwrap();
    assert!(
        missing.detail.contains("not in the project's chunk index"),
        "{}",
        missing.detail
    );

    // Reading everything finds what is inside the bytes too (p2's file is not read: its
    // key's problem says it cannot be).
    expected.extend([
        problem(K::ChecksumMismatch, "p", "", "", &pack(1)),
        problem(K::Corrupt, "p", "B", "only-b", ""),
        problem(K::ChecksumMismatch, "p", "B", "small.txt", ""),
        problem(K::MissingBlob, "p", "C", "only-c", ""),
        problem(
            K::ChecksumMismatch,
            "p",
            "",
            &payload_path("relabelled"),
            &relabelled_blob,
        ),
    ]);
    let full = check(None, VerifyOptions::default().read_all(true)).await;
    assert_eq!(
        seen(&full, &names, &snaps),
        expected,
        "{:#?}",
        full.problems
    );
    // Checking changed nothing.
    assert_eq!(blob_names(&s, &format!("t/{t}/")).await, before);

    // Repair deletes the old orphans and p4's leftovers, nothing else.
    let repaired = check(
        None,
        VerifyOptions::default()
            .repair(true)
            .grace(chrono::TimeDelta::days(365 * 10)),
    )
    .await;
    let fixed: BTreeSet<String> = repaired
        .problems
        .iter()
        .filter(|p| p.repaired)
        .filter_map(|p| p.blob.clone())
        .collect();
    assert_eq!(
        fixed,
        [old_pack.clone(), old_payload.clone(), p4_blobs[0].clone()]
            .into_iter()
            .collect()
    );
    assert_eq!(repaired.unrepaired(), 8, "{:#?}", repaired.problems);
    let after = blob_names(&s, &format!("t/{t}/")).await;
    let deleted: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(deleted, fixed);
    assert!(after.contains(&young_pack));
    // What repair leaves is what cannot be repaired.
    let again = check(None, VerifyOptions::default()).await;
    assert!(
        again.of_kind(K::OrphanBlob).next().is_none(),
        "{:#?}",
        again.problems
    );

    // The other tenant saw none of it.
    let theirs = s
        .snapshots
        .verify(
            &admin,
            other,
            None,
            &VerifyOptions::default().read_all(true),
        )
        .await
        .unwrap();
    assert!(theirs.is_clean(), "{:#?}", theirs.problems);
    assert_eq!((theirs.projects, theirs.snapshots), (1, 1));
}

/// `verify` while imports, snapshot deletions, garbage collection and repacks run on the same
/// project reports nothing: a check never takes a write in progress for damage.
pub async fn verify_while_writing_reports_nothing(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let admin = s.env.admin.clone();
    let writer = {
        let s = s.clone();
        let admin = admin.clone();
        tokio::spawn(async move {
            use ate_storage::projects::{PROJECTS_DELETE, PROJECTS_READ, PROJECTS_WRITE};
            let o = crate::member(
                t,
                &[
                    PROJECTS_READ,
                    PROJECTS_WRITE,
                    PROJECTS_DELETE,
                    ate_storage::keyring::KEY_ROTATE,
                ],
            );
            let mut snaps = std::collections::VecDeque::new();
            for i in 0..24u64 {
                let files: Vec<(String, Vec<u8>)> = (0..3)
                    .map(|k| (format!("f{k}"), noise(40_000 + 9_000 * k, i * 3 + k as u64)))
                    .collect();
                let borrowed: Vec<(&str, &[u8])> =
                    files.iter().map(|(n, c)| (n.as_str(), &c[..])).collect();
                snaps.push_back(import(&s, t, p, &borrowed).await);
                if i % 3 == 2
                    && let Some(old) = snaps.pop_front()
                {
                    s.snapshots.delete(&o, t, old).await.unwrap();
                }
                if i % 4 == 3 {
                    s.snapshots
                        .collect_garbage(&admin, t, p, chrono::TimeDelta::zero())
                        .await
                        .unwrap();
                }
                if i % 8 == 7 {
                    s.snapshots
                        .repack(
                            &o,
                            t,
                            p,
                            ate_storage::projects::RepackOptions::new().min_dead_share(0.0),
                        )
                        .await
                        .unwrap();
                }
            }
        })
    };
    let mut checks = 0;
    while !writer.is_finished() {
        let options = VerifyOptions::default().read_all(checks % 2 == 1);
        let report = s
            .snapshots
            .verify(&admin, t, Some(p), &options)
            .await
            .unwrap();
        assert!(report.is_clean(), "check {checks}: {:#?}", report.problems);
        checks += 1;
    }
    writer.await.unwrap();
    let last = s
        .snapshots
        .verify(&admin, t, None, &VerifyOptions::default().read_all(true))
        .await
        .unwrap();
    assert!(last.is_clean(), "{:#?}", last.problems);
    assert!(checks >= 2, "only {checks} checks ran while writing");
}

/// An import whose keys are destroyed before it commits is refused (its chunks would be
/// unreadable), leaves no snapshot, and garbage collection takes what it wrote.
pub async fn imports_under_destroyed_keys_are_refused(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let o = owner(t);
    let mut import = s
        .snapshots
        .begin_import(&o, t, p, Default::default())
        .await
        .unwrap();
    import
        .add_file("a.bin", 0o644, &mut &noise(300_000, 1)[..])
        .await
        .unwrap();
    destroy_tenant_keys(&s, t).await;
    let refused = import.commit().await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Conflict, "{refused}");
    assert!(refused.to_string().contains("destroyed"), "{refused}");
    let snapshots = s
        .snapshots
        .list(&o, t, p, &ate_storage::projects::SnapshotQuery::new())
        .await
        .unwrap();
    assert!(snapshots.items.is_empty());
    let admin = s.env.admin.clone();
    s.snapshots
        .collect_garbage(&admin, t, p, chrono::TimeDelta::zero())
        .await
        .unwrap();
    let left = s
        .snapshots
        .verify(
            &admin,
            t,
            None,
            &VerifyOptions::default().grace(chrono::TimeDelta::zero()),
        )
        .await
        .unwrap();
    assert!(left.is_clean(), "{:#?}", left.problems);
    assert_eq!((left.packs, left.chunks, left.snapshots), (0, 0, 0));
}

/// After a tenant's keys are destroyed (crypto-shredding), its old snapshots are unreadable
/// and new imports still work, under new keys.
pub async fn imports_work_again_after_the_tenant_keys_are_destroyed(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let o = owner(t);
    let old = import(&s, t, p, &[("a.txt", b"before")]).await;
    destroy_tenant_keys(&s, t).await;
    assert!(
        s.snapshots
            .read_file(&o, t, old, "a.txt", None)
            .await
            .is_err()
    );
    let new = import(&s, t, p, &[("a.txt", b"after")]).await;
    assert_eq!(
        s.snapshots
            .read_file(&o, t, new, "a.txt", None)
            .await
            .unwrap(),
        b"after"
    );
    // verify calls the old snapshot's key destroyed (shredded on purpose), not unavailable
    // (a fault), and finds nothing wrong with the new one.
    let admin = s.env.admin.clone();
    let report = s
        .snapshots
        .verify(&admin, t, Some(p), &VerifyOptions::default())
        .await
        .unwrap();
    let kinds: Vec<ProblemKind> = report.problems.iter().map(|p| p.kind).collect();
    assert_eq!(kinds, [ProblemKind::KeyDestroyed], "{:#?}", report.problems);
    let detail = &report.problems[0].detail;
    assert!(
        detail.contains("version 1") && detail.contains("destroyed"),
        "{detail}"
    );
}

/// Destroys `t`'s tenant keys (crypto-shredding) through a keyring with the suite's master
/// key (`snapshots::run`'s).
async fn destroy_tenant_keys(s: &SnapEnv, t: TenantId) {
    use ate_core::keys::{LocalKeyProvider, SecretKey};
    use ate_storage::keyring::{KEY_DESTROY, TenantKeyring};
    TenantKeyring::open(
        s.env.db.clone(),
        std::sync::Arc::new(LocalKeyProvider::new(SecretKey::from_bytes([5; 32]))),
    )
    .await
    .unwrap()
    .destroy(&crate::member(t, &[KEY_DESTROY]), t)
    .await
    .unwrap();
}
