//! The [`ProjectStore`] conformance suite: every metadata backend (SQLite in memory, SQLite
//! file, PostgreSQL) must pass each case unchanged; `tests/conformance.rs` runs the matrix.

use crate::support::Env;
use crate::{assert_kind, count_rows, member};
use ate_core::audit::AuditQuery;
use ate_core::{
    Cursor, ErrorKind, NewTenant, Principal, ProjectId, Quotas, TenantId, TenantSettings,
    TenantUpdate,
};
use ate_storage::projects::{
    PROJECTS_DELETE, PROJECTS_READ, PROJECTS_WRITE, ProjectQuery, ProjectSpec, ProjectStore,
    ProjectUpdate, SqlProjectStore,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

async fn store(env: &Env) -> Arc<dyn ProjectStore> {
    Arc::new(
        SqlProjectStore::open(env.db.clone())
            .await
            .unwrap()
            .with_clock(env.clock.clone()),
    )
}

async fn tenant(env: &Env, slug: &str) -> TenantId {
    env.tenants
        .create(&env.admin, NewTenant::new(slug, slug))
        .await
        .unwrap()
        .id
}

fn writer(t: TenantId) -> Principal {
    member(t, &[PROJECTS_READ, PROJECTS_WRITE, PROJECTS_DELETE])
}

/// The tenant's audit actions, oldest first.
async fn audited(env: &Env, t: TenantId) -> Vec<String> {
    let page = env
        .audit
        .query(&env.admin, AuditQuery::tenant(t).limit(1000))
        .await
        .unwrap();
    let mut events = page.items;
    events.sort_by_key(|e| e.seq);
    events
        .into_iter()
        .map(|e| e.action.as_str().to_owned())
        .collect()
}

/// A project comes back as created, by id and by name in any case, audited.
pub async fn projects_are_created_and_read(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let actor = writer(t);
    let spec = ProjectSpec::new("Billing-API")
        .description("The billing service\nsecond line")
        .label("team", "payments")
        .label("app.kubernetes.io/name", "billing")
        .settings(json!({"languages": ["rust"], "depth": 3}));
    let p = s.create(&actor, t, &spec).await.unwrap();
    assert_eq!(
        (p.tenant, p.name.as_str(), p.revision),
        (t, "Billing-API", 1)
    );
    assert_eq!(p.description, spec.description);
    assert_eq!(p.labels, spec.labels);
    assert_eq!(p.settings, spec.settings);
    assert_eq!(p.created_by, actor.subject());
    assert_eq!(
        (p.created_at, p.updated_at),
        (env.clock_now(), env.clock_now())
    );
    assert_eq!(s.get(&actor, t, p.id).await.unwrap(), p);
    assert_eq!(s.get_by_name(&actor, t, "billing-api").await.unwrap(), p);
    assert_eq!(s.get_by_name(&actor, t, "BILLING-API").await.unwrap(), p);
    assert_kind(
        s.get(&actor, t, ProjectId::new()).await,
        ErrorKind::NotFound,
    );
    assert_kind(s.get_by_name(&actor, t, "other").await, ErrorKind::NotFound);
    assert_kind(
        s.get_by_name(&actor, t, "../x").await,
        ErrorKind::InvalidInput,
    );
    assert_eq!(
        audited(&env, t).await,
        ["tenant_created", "project_created"]
    );
}

/// Names are unique in a tenant without regard to case; another tenant may use the same
/// name. A refused creation writes nothing.
pub async fn project_names_are_unique_without_case(env: Env) {
    let s = store(&env).await;
    let (a, b) = (tenant(&env, "acme").await, tenant(&env, "bravo").await);
    s.create(&writer(a), a, &ProjectSpec::new("Shop"))
        .await
        .unwrap();
    for taken in ["Shop", "shop", "SHOP"] {
        assert_kind(
            s.create(&writer(a), a, &ProjectSpec::new(taken)).await,
            ErrorKind::AlreadyExists,
        );
    }
    assert_eq!(count_rows(&env, "projects").await, 1);
    s.create(&writer(b), b, &ProjectSpec::new("shop"))
        .await
        .unwrap();
    assert_eq!(count_rows(&env, "projects").await, 2);
    let events = audited(&env, a).await;
    assert_eq!(events.iter().filter(|e| *e == "project_created").count(), 1);
}

/// Every bad field is `InvalidInput` naming it, and nothing is written.
pub async fn bad_project_input_writes_nothing(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let actor = writer(t);
    let many = (0..33).fold(ProjectSpec::new("ok"), |spec, i| {
        spec.label(format!("k{i}"), "v")
    });
    let bad = [
        (ProjectSpec::new(""), "project name"),
        (ProjectSpec::new(".."), "project name"),
        (ProjectSpec::new("a/b"), "project name"),
        (ProjectSpec::new("a\0b"), "project name"),
        (ProjectSpec::new("-rf"), "project name"),
        (ProjectSpec::new("n".repeat(101)), "project name"),
        (
            ProjectSpec::new("ok").description("x".repeat(4097)),
            "project description",
        ),
        (
            ProjectSpec::new("ok").description("bell\u{7}"),
            "project description",
        ),
        (ProjectSpec::new("ok").label("Team", "x"), "project label"),
        (
            ProjectSpec::new("ok").label("team", "a\nb"),
            "project label",
        ),
        (many, "project labels"),
        (
            ProjectSpec::new("ok").settings(json!([1, 2])),
            "project settings",
        ),
        (
            ProjectSpec::new("ok").settings(json!({"big": "x".repeat(20_000)})),
            "project settings",
        ),
    ];
    for (spec, what) in bad {
        let e = s.create(&actor, t, &spec).await.unwrap_err();
        assert_eq!(ate_core::Classify::kind(&e), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains(what), "{what}: {e}");
    }
    assert_eq!(count_rows(&env, "projects").await, 0);
    assert_eq!(count_rows(&env, "project_labels").await, 0);
    // Listings refuse bad pages, prefixes, filters and cursors.
    for query in [
        ProjectQuery::new().limit(0),
        ProjectQuery::new().limit(1001),
        ProjectQuery::new().name_prefix("a\u{0}"),
        ProjectQuery::new().label("Bad Key", "x"),
        ProjectQuery::new().cursor(Cursor::from_string("not-a-cursor")),
        ProjectQuery::new().cursor(Cursor::encode("objects", "x")),
    ] {
        assert_kind(s.list(&actor, t, &query).await, ErrorKind::InvalidInput);
    }
}

/// Listings go by name (without case), in pages that neither repeat nor skip, filtered by
/// name prefix and labels (all of them must match), within the tenant only.
pub async fn projects_list_with_filters_and_pages(env: Env) {
    let s = store(&env).await;
    let (t, other) = (tenant(&env, "acme").await, tenant(&env, "other").await);
    let actor = writer(t);
    for i in 0..25 {
        let team = if i % 2 == 0 { "red" } else { "blue" };
        let mut spec = ProjectSpec::new(format!("{}-{i:02}", if i < 5 { "Web" } else { "svc" }))
            .label("team", team);
        if i % 3 == 0 {
            spec = spec.label("tier", "gold");
        }
        s.create(&actor, t, &spec).await.unwrap();
    }
    s.create(&writer(other), other, &ProjectSpec::new("svc-99"))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut query = ProjectQuery::new().limit(10);
    let mut pages = 0;
    loop {
        let page = s.list(&actor, t, &query).await.unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|p| p.name.to_string()));
        match page.next_cursor {
            Some(c) => query = ProjectQuery::new().limit(10).cursor(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut expected: Vec<String> = (0..25)
        .map(|i| format!("{}-{i:02}", if i < 5 { "Web" } else { "svc" }))
        .collect();
    expected.sort_by_key(|n| n.to_ascii_lowercase());
    assert_eq!(seen, expected);
    let names = |page: ate_core::Page<ate_storage::Project>| {
        page.items
            .into_iter()
            .map(|p| p.name.to_string())
            .collect::<Vec<_>>()
    };
    let web = s
        .list(&actor, t, &ProjectQuery::new().name_prefix("WEB-"))
        .await
        .unwrap();
    assert_eq!(
        names(web),
        ["Web-00", "Web-01", "Web-02", "Web-03", "Web-04"]
    );
    let gold_red = s
        .list(
            &actor,
            t,
            &ProjectQuery::new()
                .label("tier", "gold")
                .label("team", "red"),
        )
        .await
        .unwrap();
    assert_eq!(
        names(gold_red),
        ["svc-06", "svc-12", "svc-18", "svc-24", "Web-00"]
    );
    let none = s
        .list(&actor, t, &ProjectQuery::new().label("team", "green"))
        .await
        .unwrap();
    assert!(none.items.is_empty() && none.next_cursor.is_none());
}

/// Updates replace what they set, need the revision they were read at (when given), keep
/// names unique, and an update that changes nothing writes nothing.
pub async fn project_updates_are_optimistic(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let actor = writer(t);
    let p = s
        .create(&actor, t, &ProjectSpec::new("api").label("team", "red"))
        .await
        .unwrap();
    s.create(&actor, t, &ProjectSpec::new("web")).await.unwrap();
    env.clock.advance(chrono::TimeDelta::seconds(5));
    let blue: BTreeMap<String, String> = [("team".to_owned(), "blue".to_owned())].into();
    let u = s
        .update(
            &actor,
            t,
            p.id,
            &ProjectUpdate::new()
                .name("API-v2")
                .description("now")
                .labels(blue.clone())
                .settings(json!({"x": 1}))
                .expected_revision(1),
        )
        .await
        .unwrap();
    assert_eq!((u.name.as_str(), u.revision), ("API-v2", 2));
    assert_eq!((u.description.as_str(), &u.labels), ("now", &blue));
    assert_eq!(u.settings, json!({"x": 1}));
    assert_eq!(
        (u.created_at, u.updated_at),
        (p.created_at, env.clock_now())
    );
    // The labels' filter follows.
    let red = s
        .list(&actor, t, &ProjectQuery::new().label("team", "red"))
        .await
        .unwrap();
    assert!(red.items.is_empty());
    // A stale revision, a taken name, a bad field: refused, nothing changes.
    for (update, kind) in [
        (
            ProjectUpdate::new()
                .description("stale")
                .expected_revision(1),
            ErrorKind::Conflict,
        ),
        (ProjectUpdate::new().name("WEB"), ErrorKind::AlreadyExists),
        (ProjectUpdate::new().name("a b"), ErrorKind::InvalidInput),
        (
            ProjectUpdate::new().settings(json!("no")),
            ErrorKind::InvalidInput,
        ),
    ] {
        assert_kind(s.update(&actor, t, p.id, &update).await, kind);
    }
    assert_kind(
        s.update(
            &actor,
            t,
            ProjectId::new(),
            &ProjectUpdate::new().description("x"),
        )
        .await,
        ErrorKind::NotFound,
    );
    assert_eq!(s.get(&actor, t, p.id).await.unwrap(), u);
    // Renaming to its own name in another case is a change; the same values are not.
    let same = s
        .update(
            &actor,
            t,
            p.id,
            &ProjectUpdate::new().description("now").labels(blue),
        )
        .await
        .unwrap();
    assert_eq!(same, u);
    let recased = s
        .update(&actor, t, p.id, &ProjectUpdate::new().name("api-V2"))
        .await
        .unwrap();
    assert_eq!((recased.name.as_str(), recased.revision), ("api-V2", 3));
    let events = audited(&env, t).await;
    assert_eq!(events.iter().filter(|e| *e == "project_updated").count(), 2);
}

/// `max_projects` holds under parallel creations; a deletion makes room again.
pub async fn project_quota_holds_under_parallel_creates(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    env.tenants
        .update(
            &env.admin,
            t,
            TenantUpdate::new().settings(TenantSettings::with_quotas(
                Quotas::default().max_projects(3),
            )),
        )
        .await
        .unwrap();
    let actor = writer(t);
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let (s, actor) = (s.clone(), actor.clone());
            tokio::spawn(async move {
                s.create(&actor, t, &ProjectSpec::new(format!("p{i}")))
                    .await
            })
        })
        .collect();
    let mut made = Vec::new();
    for a in attempts {
        match a.await.unwrap() {
            Ok(p) => made.push(p),
            Err(e) => assert_eq!(
                ate_core::Classify::kind(&e),
                ErrorKind::QuotaExceeded,
                "{e}"
            ),
        }
    }
    assert_eq!(made.len(), 3);
    assert_eq!(count_rows(&env, "projects").await, 3);
    assert_kind(
        s.create(&actor, t, &ProjectSpec::new("more")).await,
        ErrorKind::QuotaExceeded,
    );
    s.delete(&actor, t, made[0].id, None).await.unwrap();
    s.create(&actor, t, &ProjectSpec::new("more"))
        .await
        .unwrap();
}

/// Permissions are checked in the project's tenant; a suspended tenant's own principals can
/// neither read nor write, a platform administrator can still read.
pub async fn project_access_is_checked(env: Env) {
    let s = store(&env).await;
    let (t, other) = (tenant(&env, "acme").await, tenant(&env, "other").await);
    let p = s
        .create(&writer(t), t, &ProjectSpec::new("api"))
        .await
        .unwrap();
    let reader = member(t, &[PROJECTS_READ]);
    s.get(&reader, t, p.id).await.unwrap();
    assert_kind(
        s.create(&reader, t, &ProjectSpec::new("x")).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        s.update(&reader, t, p.id, &ProjectUpdate::new().description("x"))
            .await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        s.delete(&member(t, &[PROJECTS_WRITE]), t, p.id, None).await,
        ErrorKind::PermissionDenied,
    );
    // Another tenant's principal, even with every permission there.
    let outsider = writer(other);
    assert_kind(s.get(&outsider, t, p.id).await, ErrorKind::PermissionDenied);
    assert_kind(
        s.list(&outsider, t, &ProjectQuery::new()).await,
        ErrorKind::PermissionDenied,
    );
    // Its own tenant does not see it either.
    assert_kind(s.get(&outsider, other, p.id).await, ErrorKind::NotFound);
    env.tenants.suspend(&env.admin, t, "unpaid").await.unwrap();
    assert_kind(s.get(&reader, t, p.id).await, ErrorKind::PermissionDenied);
    assert_kind(
        s.create(&writer(t), t, &ProjectSpec::new("x")).await,
        ErrorKind::PermissionDenied,
    );
    assert_eq!(s.get(&env.admin, t, p.id).await.unwrap().id, p.id);
    assert_eq!(count_rows(&env, "projects").await, 1);
}

/// Deletion needs the revision read (when given), removes the project and its labels, is
/// audited, and a second deletion is `NotFound`.
pub async fn projects_are_deleted(env: Env) {
    let s = store(&env).await;
    let t = tenant(&env, "acme").await;
    let actor = writer(t);
    let p = s
        .create(&actor, t, &ProjectSpec::new("api").label("team", "red"))
        .await
        .unwrap();
    assert_kind(
        s.delete(&actor, t, p.id, Some(7)).await,
        ErrorKind::Conflict,
    );
    assert_eq!(count_rows(&env, "projects").await, 1);
    s.delete(&actor, t, p.id, Some(1)).await.unwrap();
    assert_kind(s.get(&actor, t, p.id).await, ErrorKind::NotFound);
    assert_eq!(count_rows(&env, "projects").await, 0);
    assert_eq!(count_rows(&env, "project_labels").await, 0);
    assert_kind(s.delete(&actor, t, p.id, None).await, ErrorKind::NotFound);
    // The name is free again.
    s.create(&actor, t, &ProjectSpec::new("API")).await.unwrap();
    let events = audited(&env, t).await;
    assert_eq!(
        &events[1..],
        ["project_created", "project_deleted", "project_created"]
    );
}
