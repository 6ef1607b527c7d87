//! The [`RetentionStore`] suite: policies per tenant and project applied by a resumable,
//! audited sweep with a dry run; legal holds blocking every deletion.

use crate::analysis::analyst;
use crate::snapshots::{SnapEnv, rows_where, tenant_with_project, write_tree};
use crate::{assert_kind, member};
use ate_core::audit::{AuditQuery, actions};
use ate_core::{Cursor, ErrorKind, Principal, ProjectId, SnapshotId, TenantId};
use ate_storage::analysis::{AnalysisSpec, AnalysisStatus, AnalysisStore};
use ate_storage::projects::{PROJECTS_READ, ProjectSpec, ProjectStore, SnapshotStore};
use ate_storage::retention::{
    LEGAL_HOLD_MANAGE, RETENTION_MANAGE, RetentionPolicy, RetentionRun, RetentionScope,
    RetentionStore,
};
use chrono::TimeDelta;

/// Everything, retention and holds included.
fn officer(t: TenantId) -> Principal {
    let mut p = analyst(t);
    for perm in [RETENTION_MANAGE, LEGAL_HOLD_MANAGE] {
        p = p.permission(perm);
    }
    p
}

async fn import(s: &SnapEnv, a: &Principal, t: TenantId, p: ProjectId) -> SnapshotId {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("src/lib.rs", b"pub fn f() {}\n")]);
    s.snapshots
        .import_dir(a, t, p, dir.path(), Default::default())
        .await
        .unwrap()
        .id
}

async fn exists(s: &SnapEnv, a: &Principal, t: TenantId, id: SnapshotId) -> bool {
    match s.snapshots.get(a, t, id).await {
        Ok(_) => true,
        Err(e) if ate_core::Classify::kind(&e) == ErrorKind::NotFound => false,
        Err(e) => panic!("{e}"),
    }
}

/// (action, metadata) of the tenant's audit events.
async fn events(s: &SnapEnv, t: TenantId, action: &str) -> Vec<serde_json::Value> {
    let page = s
        .env
        .audit
        .query(&s.env.admin, AuditQuery::tenant(t).limit(1000))
        .await
        .unwrap();
    page.items
        .into_iter()
        .filter(|e| e.action.as_str() == action)
        .map(|e| e.metadata)
        .collect()
}

/// A tenant policy (count and age rules, old results) and a project's own policy, applied
/// dry, then for real in budget-limited resumable steps; bad policies and runs refused.
pub async fn retention_keeps_what_policies_say(s: SnapEnv) {
    let (t, p1) = tenant_with_project(&s, "acme").await;
    let a = officer(t);
    let p2 = s
        .projects
        .create(&a, t, &ProjectSpec::new("second"))
        .await
        .unwrap()
        .id;
    let day = TimeDelta::days(1);
    let mut snaps = Vec::new();
    let old_done = s
        .analysis
        .create(
            &a,
            t,
            p1,
            &AnalysisSpec::new("sast", "semgrep", "1").status(AnalysisStatus::Succeeded),
        )
        .await
        .unwrap();
    let old_running = s
        .analysis
        .create(
            &a,
            t,
            p1,
            &AnalysisSpec::new("sast", "semgrep", "1").status(AnalysisStatus::Running),
        )
        .await
        .unwrap();
    for _ in 0..4 {
        snaps.push(import(&s, &a, t, p1).await);
        s.env.clock.advance(day * 10);
    }
    // Now day 40; snapshots of days 0, 10, 20, 30.
    let fresh_done = s
        .analysis
        .create(
            &a,
            t,
            p1,
            &AnalysisSpec::new("sast", "semgrep", "2").status(AnalysisStatus::Failed),
        )
        .await
        .unwrap();
    let p2_old = import(&s, &a, t, p2).await;
    let p2_new = import(&s, &a, t, p2).await;
    let store = &s.retention;
    store
        .set_policy(
            &a,
            t,
            RetentionScope::Tenant,
            Some(
                &RetentionPolicy::new()
                    .keep_last(2)
                    .keep_days(25)
                    .analysis_days(20),
            ),
        )
        .await
        .unwrap();
    store
        .set_policy(
            &a,
            t,
            RetentionScope::Project(p2),
            Some(&RetentionPolicy::new().keep_last(1)),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .policy(&a, t, RetentionScope::Project(p2))
            .await
            .unwrap(),
        Some(RetentionPolicy::new().keep_last(1))
    );
    // Kept in p1: the newest two (days 30, 20) and those of the last 25 days (day 20, 30):
    // days 0 and 10 go. The old finished result goes; the running one and the fresh one
    // stay. In p2 only the newest stays.
    let mut expected_snaps = vec![snaps[1], snaps[0], p2_old];
    let dry = store
        .apply_retention(&a, t, &RetentionRun::dry_run())
        .await
        .unwrap();
    assert!(dry.dry_run && dry.next_cursor.is_none());
    assert_eq!(dry.projects_scanned, 2);
    let mut got = dry.snapshots.clone();
    got.sort();
    expected_snaps.sort();
    assert_eq!(got, expected_snaps);
    assert_eq!(dry.analysis_results, vec![old_done.id]);
    for id in snaps.iter().chain([&p2_old, &p2_new]) {
        assert!(exists(&s, &a, t, *id).await, "a dry run deleted {id}");
    }
    // For real, two deletions at a time, resumed with the cursor.
    let mut deleted = Vec::new();
    let mut results = Vec::new();
    let mut run = RetentionRun::new().max_deletions(2);
    let mut calls = 0;
    loop {
        calls += 1;
        let report = store.apply_retention(&a, t, &run).await.unwrap();
        assert!(report.snapshots.len() + report.analysis_results.len() <= 2);
        deleted.extend(report.snapshots);
        results.extend(report.analysis_results);
        match report.next_cursor {
            Some(c) => run = RetentionRun::new().max_deletions(2).cursor(c),
            None => break,
        }
    }
    assert!(calls >= 2, "the budget never stopped a run");
    deleted.sort();
    deleted.dedup();
    assert_eq!(deleted, expected_snaps);
    assert_eq!(results, vec![old_done.id]);
    for id in &expected_snaps {
        assert!(!exists(&s, &a, t, *id).await);
    }
    for id in [snaps[2], snaps[3], p2_new] {
        assert!(exists(&s, &a, t, id).await);
    }
    for id in [old_running.id, fresh_done.id] {
        s.analysis.get(&a, t, id).await.unwrap();
    }
    assert_kind(
        s.analysis.get(&a, t, old_done.id).await,
        ErrorKind::NotFound,
    );
    let audited = events(&s, t, actions::SNAPSHOT_DELETED.as_str()).await;
    assert_eq!(audited.len(), 3);
    assert!(
        audited.iter().all(|m| m["reason"] == "retention"),
        "{audited:?}"
    );
    assert_eq!(
        events(&s, t, actions::RETENTION_POLICY_SET.as_str())
            .await
            .len(),
        2
    );
    // Again: nothing left to do.
    let again = store
        .apply_retention(&a, t, &RetentionRun::new())
        .await
        .unwrap();
    assert!(again.snapshots.is_empty() && again.analysis_results.is_empty());
    // Cleared: the tenant's policy applies to p2 again.
    store
        .set_policy(&a, t, RetentionScope::Project(p2), None)
        .await
        .unwrap();
    assert_eq!(
        store
            .policy(&a, t, RetentionScope::Project(p2))
            .await
            .unwrap(),
        None
    );
    // Bad input.
    for bad in [
        RetentionPolicy::new().keep_last(0),
        RetentionPolicy::new().keep_days(0),
        RetentionPolicy::new().analysis_days(40_000),
    ] {
        assert_kind(
            store
                .set_policy(&a, t, RetentionScope::Tenant, Some(&bad))
                .await,
            ErrorKind::InvalidInput,
        );
    }
    for bad in [
        RetentionRun::new().max_deletions(0),
        RetentionRun::new().max_deletions(10_001),
        RetentionRun::new().cursor(Cursor::from_string("not a cursor")),
    ] {
        assert_kind(
            store.apply_retention(&a, t, &bad).await,
            ErrorKind::InvalidInput,
        );
    }
    let (u, theirs) = tenant_with_project(&s, "other").await;
    let _ = u;
    assert_kind(
        store
            .set_policy(
                &a,
                t,
                RetentionScope::Project(theirs),
                Some(&RetentionPolicy::new()),
            )
            .await,
        ErrorKind::NotFound,
    );
    let reader = member(t, &[PROJECTS_READ]);
    assert_kind(
        store
            .apply_retention(&reader, t, &RetentionRun::dry_run())
            .await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        store
            .set_policy(&reader, t, RetentionScope::Tenant, None)
            .await,
        ErrorKind::PermissionDenied,
    );
}

/// A hold on a project, then on the tenant, blocks every deletion and the sweep; released,
/// deletions work again.
pub async fn legal_holds_block_every_deletion(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let a = officer(t);
    let store = &s.retention;
    let old = import(&s, &a, t, p).await;
    let new = import(&s, &a, t, p).await;
    let result = s
        .analysis
        .create(&a, t, p, &AnalysisSpec::new("sast", "semgrep", "1"))
        .await
        .unwrap();
    store
        .set_policy(
            &a,
            t,
            RetentionScope::Tenant,
            Some(&RetentionPolicy::new().keep_last(1)),
        )
        .await
        .unwrap();
    for bad in ["", "   ", "a\0b", &"r".repeat(1025)] {
        assert_kind(
            store
                .place_hold(&a, t, RetentionScope::Project(p), bad)
                .await,
            ErrorKind::InvalidInput,
        );
    }
    let owner_only = analyst(t);
    assert_kind(
        store
            .place_hold(&owner_only, t, RetentionScope::Project(p), "case 7")
            .await,
        ErrorKind::PermissionDenied,
    );
    let hold = store
        .place_hold(&a, t, RetentionScope::Project(p), "case 7")
        .await
        .unwrap();
    assert_eq!(
        (hold.reason.as_str(), hold.placed_by.as_str()),
        ("case 7", "user:member")
    );
    assert_eq!(
        store.hold(&a, t, RetentionScope::Project(p)).await.unwrap(),
        Some(hold)
    );
    assert_kind(
        store
            .place_hold(&a, t, RetentionScope::Project(p), "again")
            .await,
        ErrorKind::Conflict,
    );
    let blocked = |what: &str, e: ate_storage::StorageError| {
        assert_eq!(
            ate_core::Classify::kind(&e),
            ErrorKind::Conflict,
            "{what}: {e}"
        );
        assert!(e.to_string().contains("case 7"), "{what}: {e}");
    };
    blocked(
        "snapshot",
        s.snapshots.delete(&a, t, old).await.unwrap_err(),
    );
    blocked(
        "result",
        s.analysis.delete(&a, t, result.id, None).await.unwrap_err(),
    );
    blocked(
        "project",
        s.projects.delete(&a, t, p, None).await.unwrap_err(),
    );
    let swept = store
        .apply_retention(&a, t, &RetentionRun::new())
        .await
        .unwrap();
    assert_eq!(swept.held_projects, vec![p]);
    assert!(swept.snapshots.is_empty());
    assert!(exists(&s, &a, t, old).await && exists(&s, &a, t, new).await);
    s.analysis.get(&a, t, result.id).await.unwrap();
    // Imports still work under a hold.
    let newest = import(&s, &a, t, p).await;
    // Released: the sweep runs.
    assert_kind(
        store
            .release_hold(&owner_only, t, RetentionScope::Project(p))
            .await,
        ErrorKind::PermissionDenied,
    );
    store
        .release_hold(&a, t, RetentionScope::Project(p))
        .await
        .unwrap();
    assert_kind(
        store.release_hold(&a, t, RetentionScope::Project(p)).await,
        ErrorKind::NotFound,
    );
    let swept = store
        .apply_retention(&a, t, &RetentionRun::new())
        .await
        .unwrap();
    let mut gone = swept.snapshots.clone();
    gone.sort();
    assert_eq!(gone, {
        let mut v = vec![old, new];
        v.sort();
        v
    });
    assert!(exists(&s, &a, t, newest).await);
    // A tenant-wide hold covers every project.
    store
        .place_hold(&a, t, RetentionScope::Tenant, "audit 2026")
        .await
        .unwrap();
    let e = s.snapshots.delete(&a, t, newest).await.unwrap_err();
    assert_eq!(ate_core::Classify::kind(&e), ErrorKind::Conflict);
    assert!(e.to_string().contains("audit 2026"), "{e}");
    let held = store
        .apply_retention(&a, t, &RetentionRun::new())
        .await
        .unwrap();
    assert!(held.tenant_held && held.snapshots.is_empty());
    store
        .release_hold(&a, t, RetentionScope::Tenant)
        .await
        .unwrap();
    s.analysis.delete(&a, t, result.id, None).await.unwrap();
    s.projects.delete(&a, t, p, None).await.unwrap();
    assert_eq!(
        events(&s, t, actions::LEGAL_HOLD_PLACED.as_str())
            .await
            .len(),
        2
    );
    assert_eq!(
        events(&s, t, actions::LEGAL_HOLD_RELEASED.as_str())
            .await
            .len(),
        2
    );
}

/// Deleting a project marks it gone at once (name free, quota released, imports failing)
/// and purges its rows in batches; a purge cut short is finished by `purge_deleted` or by
/// garbage collection, which also removes the blobs.
pub async fn deleted_projects_are_purged(s: SnapEnv) {
    use ate_core::{Quotas, TenantSettings, TenantUpdate};
    use ate_storage::import::ImportOptions;
    let (t, p) = tenant_with_project(&s, "acme").await;
    let a = officer(t);
    s.env
        .tenants
        .update(
            &s.env.admin,
            t,
            TenantUpdate::new().settings(TenantSettings::with_quotas(
                Quotas::default().max_projects(2),
            )),
        )
        .await
        .unwrap();
    let snap = import(&s, &a, t, p).await;
    let result = s
        .analysis
        .create(
            &a,
            t,
            p,
            &AnalysisSpec::new("sast", "semgrep", "1").snapshot(snap),
        )
        .await
        .unwrap();
    s.analysis
        .put_payload(&a, t, result.id, "out", "text/plain", &mut &b"findings"[..])
        .await
        .unwrap();
    // An import in progress when the project goes fails at its commit.
    let mut running = s
        .snapshots
        .begin_import(&a, t, p, ImportOptions::new())
        .await
        .unwrap();
    running
        .add_file("late.rs", 0o644, &mut &b"fn late() {}\n"[..])
        .await
        .unwrap();
    s.projects.delete(&a, t, p, None).await.unwrap();
    assert!(running.commit().await.is_err());
    assert_kind(s.projects.get(&a, t, p).await, ErrorKind::NotFound);
    assert_kind(s.snapshots.get(&a, t, snap).await, ErrorKind::NotFound);
    assert_kind(s.analysis.get(&a, t, result.id).await, ErrorKind::NotFound);
    assert_kind(
        s.snapshots
            .begin_import(&a, t, p, ImportOptions::new())
            .await,
        ErrorKind::NotFound,
    );
    for table in ["snapshots", "chunks", "analysis_results", "projects"] {
        let column = if table == "projects" {
            "id"
        } else {
            "project_id"
        };
        assert_eq!(
            rows_where(&s, table, column, p.as_uuid()).await,
            0,
            "{table}"
        );
    }
    // The name is free and the quota counts live projects only.
    let again = s
        .projects
        .create(&a, t, &ProjectSpec::new("code"))
        .await
        .unwrap();
    let other = s
        .projects
        .create(&a, t, &ProjectSpec::new("other"))
        .await
        .unwrap();
    assert_kind(
        s.projects.create(&a, t, &ProjectSpec::new("third")).await,
        ErrorKind::QuotaExceeded,
    );
    // Purges cut short right after the marking: finished by purge_deleted ...
    for q in [again.id, other.id] {
        import(&s, &a, t, q).await;
        crash_after_marking(&s, q).await;
    }
    assert_kind(
        s.projects.purge_deleted(&a, t).await,
        ErrorKind::PermissionDenied,
    );
    assert_eq!(s.projects.purge_deleted(&s.env.admin, t).await.unwrap(), 2);
    for q in [again.id, other.id] {
        assert_eq!(rows_where(&s, "projects", "id", q.as_uuid()).await, 0);
        assert_eq!(rows_where(&s, "chunks", "project_id", q.as_uuid()).await, 0);
    }
    assert_eq!(s.projects.purge_deleted(&s.env.admin, t).await.unwrap(), 0);
    // ... or by garbage collection, which removes the blobs too.
    let last = s
        .projects
        .create(&a, t, &ProjectSpec::new("last"))
        .await
        .unwrap()
        .id;
    import(&s, &a, t, last).await;
    crash_after_marking(&s, last).await;
    let report = s
        .snapshots
        .collect_garbage(&s.env.admin, t, last, TimeDelta::minutes(10))
        .await
        .unwrap();
    assert!(report.packs_deleted >= 1, "{report:?}");
    assert_eq!(rows_where(&s, "projects", "id", last.as_uuid()).await, 0);
    assert_eq!(
        rows_where(&s, "snapshots", "project_id", last.as_uuid()).await,
        0
    );
    // The first project's blobs, left by its deletion, go too.
    let first = s
        .snapshots
        .collect_garbage(&s.env.admin, t, p, TimeDelta::minutes(10))
        .await
        .unwrap();
    assert!(
        first.packs_deleted >= 1 && first.payloads_deleted == 1,
        "{first:?}"
    );
}

/// What the deletion's transaction does, without the purge after it (a crash there).
async fn crash_after_marking(s: &SnapEnv, project: ProjectId) {
    ate_core::with_pool!(s.env.db, |pool| {
        sqlx::query(
            "UPDATE projects SET deleted_at = 1, name_key = 'crashed ' || name_key WHERE id = $1",
        )
        .bind(project.as_uuid())
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("DELETE FROM project_keys WHERE project_id = $1")
            .bind(project.as_uuid())
            .execute(pool)
            .await
            .unwrap();
    });
}
