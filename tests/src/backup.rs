//! [`BackupStore`]: a project exported under an operator key and restored into another
//! database and blob store with another master key, byte for byte; damaged backups, wrong
//! keys and name clashes leave nothing behind.

use crate::analysis::analyst;
use crate::assert_kind;
use crate::snapshots::{SnapEnv, noise, sample_tree, tenant_with_project, write_tree};
use crate::support::{Backend, BlobBackendKind, Env, TestBlobs, TestDb};
use ate_core::audit::{AuditQuery, actions};
use ate_core::keys::{LocalKeyProvider, SecretKey};
use ate_core::{ErrorKind, NewTenant, Principal, ProjectId, TenantId};
use ate_storage::analysis::{
    AnalysisQuery, AnalysisResult, AnalysisSpec, AnalysisStatus, AnalysisStore, AnalysisUpdate,
};
use ate_storage::backup::{
    BACKUP_EXPORT, BACKUP_RESTORE, BackupStore, RestoreOptions, SqlBackupStore,
};
use ate_storage::keyring::TenantKeyring;
use ate_storage::projects::{
    FileEntry, FileQuery, ProjectKeyring, ProjectStore, SnapshotQuery, SnapshotStore,
    SqlProjectStore, SqlSnapshotStore,
};
use serde_json::json;
use std::sync::Arc;

fn operator() -> SecretKey {
    SecretKey::from_bytes([42; 32])
}

fn archivist(t: TenantId) -> Principal {
    analyst(t)
        .permission(BACKUP_EXPORT)
        .permission(BACKUP_RESTORE)
}

/// Every file of every snapshot of `p` (oldest snapshot first), without the fields a
/// restore renews.
async fn contents(
    snapshots: &SqlSnapshotStore,
    a: &Principal,
    t: TenantId,
    p: ProjectId,
) -> Vec<Vec<FileEntry>> {
    let mut list = snapshots
        .list(a, t, p, &SnapshotQuery::new())
        .await
        .unwrap()
        .items;
    list.sort_by_key(|s| (s.committed_at, s.id));
    let mut out = Vec::new();
    for s in list {
        let files = snapshots
            .list_files(a, t, s.id, &FileQuery::new().limit(1000))
            .await
            .unwrap()
            .items;
        out.push(files);
    }
    out
}

/// Results without their ids, times and revisions.
fn comparable(mut results: Vec<AnalysisResult>) -> Vec<serde_json::Value> {
    results.sort_by(|a, b| a.kind.cmp(&b.kind));
    results
        .into_iter()
        .map(|r| {
            json!({
                "on_snapshot": r.snapshot.is_some(), "kind": r.kind, "analyzer": r.analyzer,
                "version": r.analyzer_version, "status": r.status, "summary": r.summary,
                "error": r.error,
                "payloads": r.payloads.iter()
                    .map(|p| (p.name.clone(), p.content_type.clone(), p.sha256.clone()))
                    .collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// Exported from one database, restored into another (other master key, other blobs):
/// identical files, results and payloads; the restore is audited.
pub async fn backups_restore_elsewhere_byte_for_byte(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let a = archivist(t);
    s.projects
        .update(
            &a,
            t,
            p,
            &ate_storage::projects::ProjectUpdate::new()
                .description("the billing service")
                .labels([("team".to_string(), "payments".to_string())].into())
                .settings(json!({"analyzers": ["semgrep"]})),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    sample_tree(dir.path());
    let first = s
        .snapshots
        .import_dir(&a, t, p, dir.path(), Default::default())
        .await
        .unwrap();
    write_tree(dir.path(), &[("src/new.rs", b"fn new() {}\n")]);
    s.snapshots
        .import_dir(&a, t, p, dir.path(), Default::default())
        .await
        .unwrap();
    let sast = s
        .analysis
        .create(
            &a,
            t,
            p,
            &AnalysisSpec::new("sast", "semgrep", "1.9").snapshot(first.id),
        )
        .await
        .unwrap();
    let report_body = noise(300_000, 5);
    s.analysis
        .put_payload(
            &a,
            t,
            sast.id,
            "report.sarif",
            "application/sarif+json",
            &mut &report_body[..],
        )
        .await
        .unwrap();
    s.analysis
        .update(
            &a,
            t,
            sast.id,
            &AnalysisUpdate::new()
                .status(AnalysisStatus::Succeeded)
                .summary(json!({"findings": 4})),
        )
        .await
        .unwrap();
    s.analysis
        .create(
            &a,
            t,
            p,
            &AnalysisSpec::new("licenses", "scancode", "32")
                .status(AnalysisStatus::Failed)
                .error("timed out"),
        )
        .await
        .unwrap();
    s.analysis
        .create(&a, t, p, &AnalysisSpec::new("loc", "tokei", "12"))
        .await
        .unwrap();
    let backups = SqlBackupStore::open(s.env.db.clone(), s.blobs.clone(), s.keys.clone())
        .await
        .unwrap();
    let mut bytes = Vec::new();
    let summary = backups
        .export_project(&a, t, p, &operator(), &mut bytes)
        .await
        .unwrap();
    assert_eq!(
        (
            summary.snapshots,
            summary.analysis_results,
            summary.payloads
        ),
        (2, 3, 1)
    );
    assert_eq!(summary.bytes, bytes.len() as u64);
    assert!(
        !bytes.windows(32).any(|w| w == &report_body[..32]),
        "the backup holds plaintext"
    );

    // Another database and blob store, another master key.
    let db = TestDb::open(Backend::SqliteFile).await.unwrap();
    let blobs = TestBlobs::open(BlobBackendKind::Memory).await.unwrap();
    let env = Env::for_tests(Backend::SqliteFile, db.db.clone());
    let master = Arc::new(LocalKeyProvider::new(SecretKey::from_bytes([77; 32])));
    let tenant_keys = TenantKeyring::open(db.db.clone(), master).await.unwrap();
    let keys = ProjectKeyring::open(db.db.clone(), tenant_keys)
        .await
        .unwrap();
    let u = env
        .tenants
        .create(&env.admin, NewTenant::new("elsewhere", "Elsewhere"))
        .await
        .unwrap()
        .id;
    let b = archivist(u);
    let there = SqlBackupStore::open(db.db.clone(), blobs.store.clone(), keys.clone())
        .await
        .unwrap();
    let projects = SqlProjectStore::open(db.db.clone()).await.unwrap();
    let snapshots = SqlSnapshotStore::open(db.db.clone(), blobs.store.clone(), keys.clone())
        .await
        .unwrap();
    let analysis =
        ate_storage::analysis::SqlAnalysisStore::open(db.db.clone(), blobs.store.clone(), keys)
            .await
            .unwrap();
    // Damaged backups, a wrong key: refused, nothing left.
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 1;
    let damaged: Vec<(&str, Vec<u8>, SecretKey)> = vec![
        ("wrong key", bytes.clone(), SecretKey::from_bytes([43; 32])),
        ("flipped byte", flipped, operator()),
        ("cut short", bytes[..bytes.len() - 100].to_vec(), operator()),
        (
            "extended",
            [&bytes[..], &[0u8; 100][..]].concat(),
            operator(),
        ),
        ("cut to half", bytes[..middle].to_vec(), operator()),
        ("not a backup", b"hello".repeat(10_000), operator()),
        ("empty", Vec::new(), operator()),
    ];
    for (what, input, key) in damaged {
        let e = there
            .restore_project(&b, u, &key, &mut &input[..], &RestoreOptions::new())
            .await
            .unwrap_err();
        assert_eq!(
            ate_core::Classify::kind(&e),
            ErrorKind::Integrity,
            "{what}: {e}"
        );
        let left = projects
            .list(&b, u, &ate_storage::projects::ProjectQuery::new())
            .await
            .unwrap();
        assert!(left.items.is_empty(), "{what} left a project");
    }
    assert_kind(
        there
            .restore_project(
                &analyst(u),
                u,
                &operator(),
                &mut &bytes[..],
                &RestoreOptions::new(),
            )
            .await,
        ErrorKind::PermissionDenied,
    );
    let report = there
        .restore_project(&b, u, &operator(), &mut &bytes[..], &RestoreOptions::new())
        .await
        .unwrap();
    assert_eq!(
        (report.snapshots, report.analysis_results, report.payloads),
        (2, 3, 1)
    );
    let q = report.project.unwrap();
    let restored = projects.get(&b, u, q).await.unwrap();
    let original = s.projects.get(&a, t, p).await.unwrap();
    assert_eq!(
        (
            &restored.name,
            &restored.description,
            &restored.labels,
            &restored.settings
        ),
        (
            &original.name,
            &original.description,
            &original.labels,
            &original.settings
        )
    );
    let theirs = contents(&snapshots, &b, u, q).await;
    let ours = contents(&s.snapshots, &a, t, p).await;
    assert_eq!(theirs, ours);
    assert!(theirs[0].iter().any(|f| f.link_target.is_some()) || cfg!(not(unix)));
    let results = |store: &ate_storage::analysis::SqlAnalysisStore, who: &Principal, tt, pp| {
        let store = store.clone();
        let who = who.clone();
        async move {
            store
                .list(&who, tt, pp, &AnalysisQuery::new())
                .await
                .unwrap()
                .items
        }
    };
    let theirs = results(&analysis, &b, u, q).await;
    assert_eq!(
        comparable(theirs.clone()),
        comparable(results(&s.analysis, &a, t, p).await)
    );
    let sast_there = theirs.iter().find(|r| r.kind == "sast").unwrap();
    let mut out = Vec::new();
    analysis
        .read_payload(&b, u, sast_there.id, "report.sarif", &mut out)
        .await
        .unwrap();
    assert!(out == report_body);
    let audited = env
        .audit
        .query(&env.admin, AuditQuery::tenant(u).limit(1000))
        .await
        .unwrap()
        .items;
    assert_eq!(
        audited
            .iter()
            .filter(|e| e.action == actions::BACKUP_RESTORED)
            .count(),
        1
    );
    // Its name is taken now; under another it restores again.
    assert_kind(
        there
            .restore_project(&b, u, &operator(), &mut &bytes[..], &RestoreOptions::new())
            .await,
        ErrorKind::AlreadyExists,
    );
    let again = there
        .restore_project(
            &b,
            u,
            &operator(),
            &mut &bytes[..],
            &RestoreOptions::new().name("copy"),
        )
        .await
        .unwrap();
    assert_eq!(
        projects
            .get(&b, u, again.project.unwrap())
            .await
            .unwrap()
            .name
            .to_string(),
        "copy"
    );
    drop(blobs);
    db.cleanup().await;
}
