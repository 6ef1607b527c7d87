//! [`SnapshotStore::repack`]: after a project key rotation every chunk and payload is
//! sealed again under the new key and reads back byte for byte; packs holding mostly dead
//! bytes are rewritten with their live chunks.

use crate::analysis::analyst;
use crate::snapshots::{SnapEnv, noise, tenant_with_project, write_tree};
use crate::{assert_kind, member};
use ate_core::{ErrorKind, Principal, ProjectId, TenantId, with_pool};
use ate_storage::analysis::{AnalysisSpec, AnalysisStore};
use ate_storage::keyring::KEY_ROTATE;
use ate_storage::projects::{RepackOptions, SnapshotStore};

/// The smallest and largest key version of the project's chunks and payloads.
async fn key_versions(s: &SnapEnv, p: ProjectId) -> (i64, i64) {
    with_pool!(s.env.db, |pool| {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT CAST(MIN(v) AS BIGINT), CAST(MAX(v) AS BIGINT) FROM ( \
             SELECT key_version AS v FROM chunks WHERE project_id = $1 UNION ALL \
             SELECT a.key_version AS v FROM analysis_payloads a \
             JOIN analysis_results r ON r.id = a.result_id WHERE r.project_id = $1) k",
        )
        .bind(p.as_uuid())
        .fetch_one(pool)
        .await
        .unwrap()
    })
}

/// The project's charged bytes against what its chunks occupy.
async fn charged_and_actual(s: &SnapEnv, p: ProjectId) -> (i64, i64) {
    with_pool!(s.env.db, |pool| {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT stored_bytes, (SELECT CAST(COALESCE(SUM(stored_len), 0) AS BIGINT) \
             FROM chunks WHERE project_id = $1) FROM projects WHERE id = $1",
        )
        .bind(p.as_uuid())
        .fetch_one(pool)
        .await
        .unwrap()
    })
}

fn keeper(t: TenantId) -> Principal {
    analyst(t).permission(KEY_ROTATE)
}

/// Rotation, then repack: nothing is left under the old key, everything reads back.
pub async fn projects_are_reencrypted_and_repacked(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let a = keeper(t);
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..6u64)
        .map(|i| {
            (
                format!("f{i}.bin"),
                noise(150_000 + i as usize * 1000, 10 + i),
            )
        })
        .collect();
    let borrowed: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    write_tree(dir.path(), &borrowed);
    let snap = s
        .snapshots
        .import_dir(&a, t, p, dir.path(), Default::default())
        .await
        .unwrap();
    let r = s
        .analysis
        .create(&a, t, p, &AnalysisSpec::new("sast", "semgrep", "1"))
        .await
        .unwrap();
    let report_body = noise(400_000, 99);
    s.analysis
        .put_payload(
            &a,
            t,
            r.id,
            "report",
            "application/json",
            &mut &report_body[..],
        )
        .await
        .unwrap();
    assert_eq!(key_versions(&s, p).await, (1, 1));
    // Nothing to do yet.
    let idle = s
        .snapshots
        .repack(&a, t, p, RepackOptions::new())
        .await
        .unwrap();
    assert_eq!((idle.packs_rewritten, idle.payloads_reencrypted), (0, 0));
    assert_eq!(s.keys.rotate(&a, t, p).await.unwrap().version, 2);
    let report = s
        .snapshots
        .repack(&a, t, p, RepackOptions::new())
        .await
        .unwrap();
    assert!(
        report.packs_rewritten >= 1 && report.chunks_moved >= 6,
        "{report:?}"
    );
    assert_eq!(report.payloads_reencrypted, 1);
    assert_eq!(key_versions(&s, p).await, (2, 2));
    let (charged, actual) = charged_and_actual(&s, p).await;
    assert_eq!(charged, actual);
    for (name, body) in &files {
        let got = s
            .snapshots
            .read_file(&a, t, snap.id, name, None)
            .await
            .unwrap();
        assert!(got == *body, "{name} changed");
    }
    let mut out = Vec::new();
    s.analysis
        .read_payload(&a, t, r.id, "report", &mut out)
        .await
        .unwrap();
    assert!(out == report_body);
    // Done: a second pass has nothing to do; old packs are gone (garbage collection finds
    // none to delete).
    let again = s
        .snapshots
        .repack(&a, t, p, RepackOptions::new())
        .await
        .unwrap();
    assert_eq!((again.packs_rewritten, again.payloads_reencrypted), (0, 0));
    let gc = s
        .snapshots
        .collect_garbage(&s.env.admin, t, p, chrono::TimeDelta::minutes(10))
        .await
        .unwrap();
    assert_eq!(gc.packs_deleted, 0, "{gc:?}");
    // Permissions and bad options.
    assert_kind(
        s.snapshots
            .repack(&analyst(t), t, p, RepackOptions::new())
            .await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        s.snapshots
            .repack(
                &member(t, &[KEY_ROTATE]),
                t,
                p,
                RepackOptions::new().min_dead_share(f64::NAN),
            )
            .await,
        ErrorKind::InvalidInput,
    );
    assert_kind(
        s.snapshots
            .repack(&a, t, p, RepackOptions::new().min_dead_share(-1.0))
            .await,
        ErrorKind::InvalidInput,
    );
}

/// Packs mostly holding chunks no snapshot needs are rewritten with the live ones only.
pub async fn dead_bytes_are_reclaimed(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let a = keeper(t);
    let admin = s.env.admin.clone();
    let grace = chrono::TimeDelta::minutes(10);
    let dir = tempfile::tempdir().unwrap();
    let keep = noise(100_000, 1);
    write_tree(dir.path(), &[("keep", &keep), ("drop", &noise(900_000, 2))]);
    let first = s
        .snapshots
        .import_dir(&a, t, p, dir.path(), Default::default())
        .await
        .unwrap();
    std::fs::remove_file(dir.path().join("drop")).unwrap();
    let second = s
        .snapshots
        .import_dir(&a, t, p, dir.path(), Default::default())
        .await
        .unwrap();
    s.snapshots.delete(&a, t, first.id).await.unwrap();
    let gc = s
        .snapshots
        .collect_garbage(&admin, t, p, grace)
        .await
        .unwrap();
    assert!(gc.dead_bytes_in_live_packs > 800_000, "{gc:?}");
    // Re-encryption off: only the share of dead bytes decides.
    let none = s
        .snapshots
        .repack(
            &a,
            t,
            p,
            RepackOptions::new().reencrypt(false).min_dead_share(2.0),
        )
        .await
        .unwrap();
    assert_eq!(none.packs_rewritten, 0);
    let report = s
        .snapshots
        .repack(&a, t, p, RepackOptions::new().reencrypt(false))
        .await
        .unwrap();
    assert_eq!(report.packs_rewritten, 1, "{report:?}");
    assert!(report.bytes_after < 110_000, "{report:?}");
    let after = s
        .snapshots
        .collect_garbage(&admin, t, p, grace)
        .await
        .unwrap();
    assert_eq!(after.dead_bytes_in_live_packs, 0, "{after:?}");
    let (charged, actual) = charged_and_actual(&s, p).await;
    assert_eq!(charged, actual);
    let got = s
        .snapshots
        .read_file(&a, t, second.id, "keep", None)
        .await
        .unwrap();
    assert!(got == keep);
}
