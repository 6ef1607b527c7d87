//! Whole-tenant backups ([`BackupStore::export_tenant`], [`BackupStore::restore_tenant`]):
//! every project and every object of a tenant, restored into another installation (other
//! database, blobs and master key) identical; damaged backups, clashes, missing
//! permissions and the wrong kind of backup leave nothing behind.

use crate::analysis::analyst;
use crate::assert_kind;
use crate::snapshots::{SnapEnv, noise, sample_tree, tenant_with_project, write_tree};
use crate::support::{Backend, BlobBackendKind, Env, TestBlobs, TestDb};
use ate_core::audit::{AuditQuery, actions};
use ate_core::keys::{LocalKeyProvider, SecretKey};
use ate_core::{Classify, ErrorKind, NewTenant, Principal, TenantId};
use ate_storage::ObjectStore;
use ate_storage::analysis::{AnalysisQuery, AnalysisSpec, AnalysisStore};
use ate_storage::backup::{
    BACKUP_EXPORT, BACKUP_RESTORE, BackupStore, RestoreOptions, SqlBackupStore,
};
use ate_storage::objects::{PutOptions, STORAGE_DELETE, STORAGE_READ, STORAGE_WRITE};
use ate_storage::projects::{
    FileQuery, ProjectKeyring, ProjectQuery, ProjectSpec, ProjectStore, SnapshotQuery,
    SnapshotStore, SqlProjectStore, SqlSnapshotStore,
};
use serde_json::json;
use std::sync::Arc;

fn operator() -> SecretKey {
    SecretKey::from_bytes([9; 32])
}

/// May do everything a tenant backup touches.
fn custodian(t: TenantId) -> Principal {
    analyst(t)
        .permission(BACKUP_EXPORT)
        .permission(BACKUP_RESTORE)
        .permission(STORAGE_READ)
        .permission(STORAGE_WRITE)
        .permission(STORAGE_DELETE)
}

/// Everything a tenant holds, comparable across installations: per project (by name) its
/// snapshots' files, its results' kinds and payload checksums; per object its path, type,
/// metadata and bytes.
async fn holdings(
    projects: &SqlProjectStore,
    snapshots: &SqlSnapshotStore,
    analysis: &ate_storage::analysis::SqlAnalysisStore,
    objects: &ObjectStore,
    a: &Principal,
    t: TenantId,
) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for p in projects
        .list(a, t, &ProjectQuery::new())
        .await
        .unwrap()
        .items
    {
        let mut snaps = snapshots
            .list(a, t, p.id, &SnapshotQuery::new())
            .await
            .unwrap()
            .items;
        snaps.sort_by_key(|s| (s.committed_at, s.id));
        let mut files = Vec::new();
        for s in &snaps {
            let listed = snapshots
                .list_files(a, t, s.id, &FileQuery::new().limit(1000))
                .await
                .unwrap()
                .items;
            files.push(serde_json::to_value(listed).unwrap());
        }
        let results: Vec<_> = analysis
            .list(a, t, p.id, &AnalysisQuery::new())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|r| {
                (
                    r.kind,
                    r.payloads.into_iter().map(|x| x.sha256).collect::<Vec<_>>(),
                )
            })
            .collect();
        out.insert(
            p.name.to_string(),
            json!({"labels": p.labels, "files": files, "results": results}),
        );
    }
    let mut objs = Vec::new();
    for o in objects.list(a, t, "", None, None).await.unwrap().items {
        let bytes = objects
            .get(a, t, &o.path)
            .await
            .unwrap()
            .read_to_end(true)
            .await
            .unwrap();
        objs.push(json!([
            o.path,
            o.content_type,
            o.metadata,
            hex::encode(&bytes[..bytes.len().min(64)]),
            bytes.len()
        ]));
    }
    json!({"projects": out, "objects": objs})
}

/// Another installation: database, blobs, master key; a tenant in it.
struct Elsewhere {
    db: TestDb,
    _blobs: TestBlobs,
    env: Env,
    projects: SqlProjectStore,
    snapshots: SqlSnapshotStore,
    analysis: ate_storage::analysis::SqlAnalysisStore,
    objects: ObjectStore,
    backups: SqlBackupStore,
}

impl Elsewhere {
    async fn open() -> Self {
        let db = TestDb::open(Backend::SqliteFile).await.unwrap();
        let blobs = TestBlobs::open(BlobBackendKind::Memory).await.unwrap();
        let env = Env::for_tests(Backend::SqliteFile, db.db.clone());
        let master = Arc::new(LocalKeyProvider::new(SecretKey::from_bytes([88; 32])));
        let objects = ObjectStore::open(db.db.clone(), blobs.store.clone(), master)
            .await
            .unwrap();
        let keys = ProjectKeyring::open(db.db.clone(), objects.keyring().clone())
            .await
            .unwrap();
        let store = blobs.store.clone();
        Elsewhere {
            projects: SqlProjectStore::open(db.db.clone()).await.unwrap(),
            snapshots: SqlSnapshotStore::open(db.db.clone(), store.clone(), keys.clone())
                .await
                .unwrap(),
            analysis: ate_storage::analysis::SqlAnalysisStore::open(
                db.db.clone(),
                store.clone(),
                keys.clone(),
            )
            .await
            .unwrap(),
            backups: SqlBackupStore::open(db.db.clone(), store, keys)
                .await
                .unwrap()
                .with_objects(objects.clone()),
            objects,
            env,
            db,
            _blobs: blobs,
        }
    }

    async fn tenant(&self, slug: &str) -> TenantId {
        self.env
            .tenants
            .create(&self.env.admin, NewTenant::new(slug, slug))
            .await
            .unwrap()
            .id
    }

    async fn holdings(&self, a: &Principal, t: TenantId) -> serde_json::Value {
        holdings(
            &self.projects,
            &self.snapshots,
            &self.analysis,
            &self.objects,
            a,
            t,
        )
        .await
    }

    async fn is_empty(&self, a: &Principal, t: TenantId) -> bool {
        self.holdings(a, t).await == json!({"projects": {}, "objects": []})
    }
}

/// A tenant with two projects (one with an analysis payload) and three objects, exported
/// and restored elsewhere: the same projects, files, results and objects; every failure
/// leaves the destination as it was.
pub async fn tenant_backups_restore_elsewhere(s: SnapEnv) {
    let (t, code) = tenant_with_project(&s, "acme").await;
    let a = custodian(t);
    let dir = tempfile::tempdir().unwrap();
    sample_tree(dir.path());
    let snap = s
        .snapshots
        .import_dir(&a, t, code, dir.path(), Default::default())
        .await
        .unwrap();
    let docs = s
        .projects
        .create(&a, t, &ProjectSpec::new("docs").label("kind", "text"))
        .await
        .unwrap()
        .id;
    let other = tempfile::tempdir().unwrap();
    write_tree(other.path(), &[("index.md", b"# Docs\n")]);
    s.snapshots
        .import_dir(&a, t, docs, other.path(), Default::default())
        .await
        .unwrap();
    let r = s
        .analysis
        .create(
            &a,
            t,
            code,
            &AnalysisSpec::new("sast", "semgrep", "1").snapshot(snap.id),
        )
        .await
        .unwrap();
    s.analysis
        .put_payload(
            &a,
            t,
            r.id,
            "out.json",
            "application/json",
            &mut &b"[1,2]"[..],
        )
        .await
        .unwrap();
    let master = Arc::new(LocalKeyProvider::new(SecretKey::from_bytes([5; 32])));
    let objects = ObjectStore::open(s.env.db.clone(), s.blobs.clone(), master)
        .await
        .unwrap();
    let big = noise(3_000_000, 11);
    let puts = [
        (
            "reports/q3.csv",
            b"region,total\nemea,42\n".to_vec(),
            "text/csv",
        ),
        ("dumps/big.bin", big.clone(), "application/octet-stream"),
        ("empty", Vec::new(), "application/octet-stream"),
    ];
    for (path, bytes, ct) in puts {
        let options = PutOptions::default()
            .content_type(ct)
            .metadata(json!({"owner": "ana"}));
        objects.put(&a, t, path, bytes, options).await.unwrap();
    }
    let source = SqlBackupStore::open(s.env.db.clone(), s.blobs.clone(), s.keys.clone())
        .await
        .unwrap();
    let mut scratch = Vec::new();
    assert_kind(
        source.export_tenant(&a, t, &operator(), &mut scratch).await,
        ErrorKind::Unsupported,
    );
    let source = source.with_objects(objects.clone());
    assert_kind(
        source
            .export_tenant(
                &analyst(t).permission(BACKUP_EXPORT),
                t,
                &operator(),
                &mut scratch,
            )
            .await,
        ErrorKind::PermissionDenied,
    );
    let mut bytes = Vec::new();
    let summary = source
        .export_tenant(&a, t, &operator(), &mut bytes)
        .await
        .unwrap();
    assert_eq!(
        (
            summary.projects,
            summary.snapshots,
            summary.analysis_results,
            summary.payloads
        ),
        (2, 2, 1, 1)
    );
    assert_eq!((summary.objects, summary.object_bytes), (3, 21 + 3_000_000));
    assert_eq!(summary.bytes, bytes.len() as u64);
    assert!(
        !bytes.windows(32).any(|w| w == &big[1000..1032]),
        "plaintext in the backup"
    );
    let mut project_backup = Vec::new();
    source
        .export_project(&a, t, code, &operator(), &mut project_backup)
        .await
        .unwrap();

    let there = Elsewhere::open().await;
    let u = there.tenant("elsewhere").await;
    let b = custodian(u);
    let mut flipped = bytes.clone();
    let at = flipped.len() / 3;
    flipped[at] ^= 0x20;
    let refused: Vec<(&str, Vec<u8>, SecretKey, ErrorKind)> = vec![
        (
            "wrong key",
            bytes.clone(),
            SecretKey::from_bytes([1; 32]),
            ErrorKind::Integrity,
        ),
        ("flipped byte", flipped, operator(), ErrorKind::Integrity),
        (
            "cut short",
            bytes[..bytes.len() - 50].to_vec(),
            operator(),
            ErrorKind::Integrity,
        ),
        (
            "cut to a third",
            bytes[..at].to_vec(),
            operator(),
            ErrorKind::Integrity,
        ),
        (
            "a project backup",
            project_backup.clone(),
            operator(),
            ErrorKind::InvalidInput,
        ),
        ("nothing", Vec::new(), operator(), ErrorKind::Integrity),
    ];
    for (what, input, key, kind) in refused {
        let e = there
            .backups
            .restore_tenant(&b, u, &key, &mut &input[..])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{what}: {e}");
        assert!(there.is_empty(&b, u).await, "{what} left something");
    }
    let e = there
        .backups
        .restore_project(&b, u, &operator(), &mut &bytes[..], &RestoreOptions::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("tenant backup"), "{e}");
    // Without storage:write the objects cannot be restored: the projects go again too.
    let no_objects = analyst(u)
        .permission(BACKUP_RESTORE)
        .permission(STORAGE_READ);
    assert_kind(
        there
            .backups
            .restore_tenant(&no_objects, u, &operator(), &mut &bytes[..])
            .await,
        ErrorKind::PermissionDenied,
    );
    assert!(there.is_empty(&b, u).await);
    // An object already at one of the paths: refused, nothing else kept, it unchanged.
    there
        .objects
        .put(&b, u, "empty", b"mine".to_vec(), PutOptions::default())
        .await
        .unwrap();
    assert_kind(
        there
            .backups
            .restore_tenant(&b, u, &operator(), &mut &bytes[..])
            .await,
        ErrorKind::AlreadyExists,
    );
    assert_eq!(
        there.holdings(&b, u).await["projects"],
        json!({}),
        "projects restored before the clash were removed"
    );
    there.objects.delete(&b, u, "empty").await.unwrap();
    // A project of the same name: refused before anything is written.
    let clash = there
        .projects
        .create(&b, u, &ProjectSpec::new("DOCS"))
        .await
        .unwrap();
    assert_kind(
        there
            .backups
            .restore_tenant(&b, u, &operator(), &mut &bytes[..])
            .await,
        ErrorKind::AlreadyExists,
    );
    there.projects.delete(&b, u, clash.id, None).await.unwrap();
    assert!(there.is_empty(&b, u).await);

    let report = there
        .backups
        .restore_tenant(&b, u, &operator(), &mut &bytes[..])
        .await
        .unwrap();
    assert_eq!(
        (
            report.projects.len(),
            report.snapshots,
            report.analysis_results,
            report.payloads,
            report.objects
        ),
        (2, 2, 1, 1, 3)
    );
    let ours = holdings(&s.projects, &s.snapshots, &s.analysis, &objects, &a, t).await;
    assert_eq!(there.holdings(&b, u).await, ours);
    let restored = there
        .objects
        .get(&b, u, "dumps/big.bin")
        .await
        .unwrap()
        .read_to_end(true)
        .await
        .unwrap();
    assert!(restored == big);
    let audited = there
        .env
        .audit
        .query(&there.env.admin, AuditQuery::tenant(u).limit(1000))
        .await
        .unwrap()
        .items;
    let restores: Vec<_> = audited
        .iter()
        .filter(|e| e.action == actions::BACKUP_RESTORED)
        .collect();
    assert_eq!(restores.len(), 1);
    assert_eq!(
        restores[0].target.as_deref(),
        Some(format!("tenant:{u}").as_str())
    );
    there.db.cleanup().await;
}
