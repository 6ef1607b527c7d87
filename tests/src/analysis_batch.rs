//! [`AnalysisStore::apply_batch`]: several results created and updated in one transaction,
//! all or nothing, on every metadata × blob combination (`tests/conformance.rs`).

use crate::analysis::analyst;
use crate::snapshots::{SnapEnv, tenant_with_project};
use crate::{assert_kind, member};
use ate_core::audit::AuditQuery;
use ate_core::{AnalysisId, ErrorKind, ProjectId};
use ate_storage::analysis::{
    ANALYSIS_READ, AnalysisBatch, AnalysisQuery, AnalysisSpec, AnalysisStatus, AnalysisStore,
    AnalysisUpdate, MAX_BATCH,
};
use serde_json::json;

pub async fn batches_apply_all_or_nothing(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let a = analyst(t);
    let store = &s.analysis;
    let first = store
        .create(&a, t, p, &AnalysisSpec::new("loc", "tokei", "12"))
        .await
        .unwrap();

    // Two creates and an update, together.
    let batch = AnalysisBatch::new()
        .create(
            p,
            AnalysisSpec::new("sast", "semgrep", "1.90").status(AnalysisStatus::Running),
        )
        .create(
            p,
            AnalysisSpec::new("deps", "osv", "2").summary(json!({"vulnerable": 0})),
        )
        .update(
            first.id,
            AnalysisUpdate::new()
                .status(AnalysisStatus::Succeeded)
                .summary(json!({"lines": 120})),
        );
    let done = store.apply_batch(&a, t, &batch).await.unwrap();
    assert_eq!(done.len(), 3);
    assert_eq!(
        (done[0].kind.as_str(), done[0].status),
        ("sast", AnalysisStatus::Running)
    );
    assert_eq!(done[1].summary, json!({"vulnerable": 0}));
    assert_eq!(
        (done[2].id, done[2].status, done[2].revision),
        (first.id, AnalysisStatus::Succeeded, 2)
    );
    let listed = store.list(&a, t, p, &AnalysisQuery::new()).await.unwrap();
    assert_eq!(listed.items.len(), 3);
    let audit_before = audit_events(&s, t).await;

    // One bad operation anywhere: nothing of the batch stays.
    let sast = done[0].id;
    let failing = [
        // A project of nobody.
        AnalysisBatch::new()
            .update(
                sast,
                AnalysisUpdate::new().status(AnalysisStatus::Succeeded),
            )
            .create(p, AnalysisSpec::new("x", "y", "1"))
            .create(ProjectId::new(), AnalysisSpec::new("x", "y", "1")),
        // A finished result cannot change.
        AnalysisBatch::new()
            .create(p, AnalysisSpec::new("x", "y", "1"))
            .update(first.id, AnalysisUpdate::new().summary(json!({"lines": 1}))),
        // A stale revision.
        AnalysisBatch::new()
            .create(p, AnalysisSpec::new("x", "y", "1"))
            .update(sast, {
                let mut u = AnalysisUpdate::new().status(AnalysisStatus::Failed);
                u.expected_revision = Some(99);
                u
            }),
        // An unknown result.
        AnalysisBatch::new()
            .create(p, AnalysisSpec::new("x", "y", "1"))
            .update(
                AnalysisId::new(),
                AnalysisUpdate::new().status(AnalysisStatus::Failed),
            ),
    ];
    let kinds = [
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::Conflict,
        ErrorKind::NotFound,
    ];
    for (batch, kind) in failing.iter().zip(kinds) {
        let e = store.apply_batch(&a, t, batch).await.unwrap_err();
        assert_eq!(ate_core::Classify::kind(&e), kind, "{e}");
    }
    let after = store.list(&a, t, p, &AnalysisQuery::new()).await.unwrap();
    assert_eq!(after.items.len(), 3, "a failed batch left results behind");
    assert_eq!(
        store.get(&a, t, sast).await.unwrap().status,
        AnalysisStatus::Running,
        "a failed batch's update stayed"
    );
    assert_eq!(
        audit_events(&s, t).await,
        audit_before,
        "a failed batch left audit events"
    );

    // Refused before anything runs, with messages that say why.
    assert_kind(
        store.apply_batch(&a, t, &AnalysisBatch::new()).await,
        ErrorKind::InvalidInput,
    );
    let twice = AnalysisBatch::new()
        .update(
            sast,
            AnalysisUpdate::new().status(AnalysisStatus::Succeeded),
        )
        .update(sast, AnalysisUpdate::new().status(AnalysisStatus::Failed));
    let e = store.apply_batch(&a, t, &twice).await.unwrap_err();
    assert!(e.to_string().contains("more than once"), "{e}");
    let mut big = AnalysisBatch::new();
    for _ in 0..=MAX_BATCH {
        big = big.create(p, AnalysisSpec::new("x", "y", "1"));
    }
    assert_kind(
        store.apply_batch(&a, t, &big).await,
        ErrorKind::InvalidInput,
    );
    let bad_spec = AnalysisBatch::new()
        .create(p, AnalysisSpec::new("x", "y", "1"))
        .create(p, AnalysisSpec::new("x", "y", "1").summary(json!([1, 2])));
    let e = store.apply_batch(&a, t, &bad_spec).await.unwrap_err();
    assert_eq!(ate_core::Classify::kind(&e), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("create #1"), "{e}");
    let reader = member(t, &[ANALYSIS_READ]);
    let one = AnalysisBatch::new().create(p, AnalysisSpec::new("x", "y", "1"));
    assert_kind(
        store.apply_batch(&reader, t, &one).await,
        ErrorKind::PermissionDenied,
    );
    // Another tenant's project is not found, like a missing one.
    let (other, _) = tenant_with_project(&s, "globex").await;
    assert_kind(
        store.apply_batch(&analyst(other), other, &one).await,
        ErrorKind::NotFound,
    );
    assert_eq!(
        store
            .list(&a, t, p, &AnalysisQuery::new())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
}

async fn audit_events(s: &SnapEnv, t: ate_core::TenantId) -> usize {
    s.env
        .audit
        .query(&s.env.admin, AuditQuery::tenant(t).limit(1000))
        .await
        .unwrap()
        .items
        .len()
}
