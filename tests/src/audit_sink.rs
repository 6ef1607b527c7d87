//! The [`AuditSink`](ate_core::AuditSink) conformance suite. Every case runs unchanged on
//! every backend; see `tests/conformance.rs`.

use crate::support::Env;
use crate::{assert_kind, exec, member};
use ate_core::audit::{
    AuditAction, AuditQuery, ChainProblem, GENESIS_HASH, MAX_METADATA_BYTES, NewAuditEvent, Order,
    Outcome, actions,
};
use ate_core::{ErrorKind, NewTenant, Permission, Tenant, TenantId};
use chrono::TimeDelta;
use serde_json::json;

async fn tenant(env: &Env, slug: &str) -> Tenant {
    env.tenants
        .create(&env.admin, NewTenant::new(slug, slug.to_uppercase()))
        .await
        .unwrap()
}

fn login_fail(tenant: TenantId, n: u32) -> NewAuditEvent {
    NewAuditEvent::new(
        tenant,
        format!("user:{n}"),
        actions::AUTHN_LOGIN_FAIL,
        Outcome::Failure,
    )
    .metadata(json!({ "attempt": n }))
}

/// Appends get consecutive sequence numbers, link to their predecessor and verify.
pub async fn append_links_events(env: Env) {
    let t = tenant(&env, "acme").await;
    let ip: std::net::IpAddr = "2001:db8::7".parse().unwrap();
    let first = env
        .audit
        .append(
            NewAuditEvent::new(
                t.id,
                "user:alice",
                actions::AUTHN_LOGIN_SUCCESS,
                Outcome::Success,
            )
            .target("session:1")
            .client_addr(ip)
            .user_agent("Mozilla/5.0")
            .metadata(json!({"mfa": true, "method": "password"})),
        )
        .await
        .unwrap();
    assert_eq!(first.seq, 2, "tenant_created is event 1");
    assert_eq!(first.client_addr, Some(ip));
    assert_eq!(first.occurred_at, env.clock_now());
    let second = env.audit.append(login_fail(t.id, 1)).await.unwrap();
    assert_eq!(second.seq, 3);
    assert_eq!(second.prev_hash, first.hash);

    let page = env
        .audit
        .query(&env.admin, AuditQuery::tenant(t.id))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    assert_eq!(page.items[0].prev_hash, GENESIS_HASH);
    assert_eq!(page.items[1], first, "read back exactly as appended");
    assert_eq!(page.items[2], second);

    let head = env.audit.head(&env.admin, t.id).await.unwrap();
    assert_eq!((head.seq, head.hash), (3, second.hash));
    let report = env.audit.verify_chain(&env.admin, t.id).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.events_checked, 3);
}

/// Many concurrent appends to one tenant never fork or skip: sequence numbers are 1..=n.
pub async fn concurrent_appends_never_fork(env: Env) {
    let t = tenant(&env, "acme").await;
    let mut tasks = Vec::new();
    for worker in 0..8u32 {
        let audit = env.audit.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..6 {
                audit
                    .append(login_fail(t.id, worker * 100 + i))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let page = env
        .audit
        .query(&env.admin, AuditQuery::tenant(t.id).limit(1000))
        .await
        .unwrap();
    let seqs: Vec<u64> = page.items.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=49).collect::<Vec<_>>());
    let report = env.audit.verify_chain(&env.admin, t.id).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.events_checked, 49);
}

/// Filters by action, actor and time range, both orders, and cursor pagination.
pub async fn query_filters_and_pages(env: Env) {
    let t = tenant(&env, "acme").await;
    let start = env.clock_now();
    for n in 0..5 {
        env.clock.advance(TimeDelta::minutes(1));
        env.audit.append(login_fail(t.id, n)).await.unwrap();
    }
    env.clock.advance(TimeDelta::minutes(1));
    let custom = AuditAction::custom("app_report_exported").unwrap();
    env.audit
        .append(NewAuditEvent::new(
            t.id,
            "user:3",
            custom.clone(),
            Outcome::Success,
        ))
        .await
        .unwrap();

    let q = |query: AuditQuery| {
        let (audit, admin) = (env.audit.clone(), env.admin.clone());
        async move { audit.query(&admin, query).await.unwrap() }
    };
    let fails = q(AuditQuery::tenant(t.id).action(actions::AUTHN_LOGIN_FAIL)).await;
    assert_eq!(fails.items.len(), 5);
    let by_actor = q(AuditQuery::tenant(t.id).actor("user:3")).await;
    assert_eq!(by_actor.items.len(), 2);
    let exported = q(AuditQuery::tenant(t.id).action(custom)).await;
    assert_eq!(exported.items.len(), 1);
    // [start+2min, start+4min) holds the events stamped at minutes 2 and 3.
    let window = q(AuditQuery::tenant(t.id)
        .since(start + TimeDelta::minutes(2))
        .until(start + TimeDelta::minutes(4)))
    .await;
    assert_eq!(
        window.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![3, 4]
    );

    let newest = q(AuditQuery::tenant(t.id).order(Order::NewestFirst).limit(2)).await;
    assert_eq!(
        newest.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![7, 6]
    );
    let older = q(AuditQuery::tenant(t.id)
        .order(Order::NewestFirst)
        .limit(2)
        .cursor(newest.next_cursor.clone()))
    .await;
    assert_eq!(
        older.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![5, 4]
    );

    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = q(AuditQuery::tenant(t.id).limit(3).cursor(cursor)).await;
        all.extend(page.items.iter().map(|e| e.seq));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(all, (1..=7).collect::<Vec<_>>());

    let reversed = env
        .audit
        .query(
            &env.admin,
            AuditQuery::tenant(t.id)
                .since(start + TimeDelta::hours(1))
                .until(start),
        )
        .await;
    assert_kind(reversed, ErrorKind::InvalidInput);
    let bad_cursor = Some(ate_core::Cursor::from_string("bm90LWEtY3Vyc29y"));
    assert_kind(
        env.audit
            .query(&env.admin, AuditQuery::tenant(t.id).cursor(bad_cursor))
            .await,
        ErrorKind::InvalidInput,
    );
    assert_kind(
        env.audit
            .query(&env.admin, AuditQuery::tenant(t.id).limit(0))
            .await,
        ErrorKind::InvalidInput,
    );
}

/// One tenant's principals can neither read another tenant's log nor see its events.
pub async fn tenants_are_isolated(env: Env) {
    let a = tenant(&env, "alpha").await;
    let b = tenant(&env, "beta").await;
    for n in 0..3 {
        env.audit.append(login_fail(a.id, n)).await.unwrap();
    }
    env.audit.append(login_fail(b.id, 9)).await.unwrap();
    let a_reader = member(a.id, &[Permission::AUDIT_READ]);
    let a_page = env
        .audit
        .query(&a_reader, AuditQuery::tenant(a.id))
        .await
        .unwrap();
    assert_eq!(a_page.items.len(), 4);
    assert!(a_page.items.iter().all(|e| e.tenant == a.id));
    assert_kind(
        env.audit.query(&a_reader, AuditQuery::tenant(b.id)).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        env.audit.verify_chain(&a_reader, b.id).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        env.audit.head(&a_reader, b.id).await,
        ErrorKind::PermissionDenied,
    );
    let no_perm = member(a.id, &[Permission::TENANT_READ]);
    assert_kind(
        env.audit.query(&no_perm, AuditQuery::tenant(a.id)).await,
        ErrorKind::PermissionDenied,
    );
    // Chains are independent: B's second event follows B's first, not A's last.
    let b_page = env
        .audit
        .query(&env.admin, AuditQuery::tenant(b.id))
        .await
        .unwrap();
    assert_eq!(
        b_page.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(b_page.items[1].prev_hash, b_page.items[0].hash);
    // A suspended tenant keeps recording, but its own principals cannot read.
    env.tenants
        .suspend(&env.admin, a.id, "audit")
        .await
        .unwrap();
    env.audit.append(login_fail(a.id, 4)).await.unwrap();
    assert_kind(
        env.audit.query(&a_reader, AuditQuery::tenant(a.id)).await,
        ErrorKind::PermissionDenied,
    );
    assert!(
        env.audit
            .verify_chain(&env.admin, a.id)
            .await
            .unwrap()
            .is_intact()
    );
}

/// Bad events are rejected whole: nothing is appended and the head does not move.
pub async fn invalid_appends_change_nothing(env: Env) {
    let t = tenant(&env, "acme").await;
    let head = env.audit.head(&env.admin, t.id).await.unwrap();
    let oversized = json!({ "blob": "x".repeat(MAX_METADATA_BYTES) });
    let bad = [
        login_fail(t.id, 1).metadata(oversized),
        login_fail(t.id, 1).metadata(json!([1, 2, 3])),
        NewAuditEvent::new(t.id, "", actions::AUTHZ_FAIL, Outcome::Denied),
        NewAuditEvent::new(t.id, "user:a\nforged", actions::AUTHZ_FAIL, Outcome::Denied),
        login_fail(t.id, 1).target("t".repeat(513)),
    ];
    for event in bad {
        assert_kind(env.audit.append(event).await, ErrorKind::InvalidInput);
    }
    assert_kind(
        env.audit.append(login_fail(TenantId::new(), 1)).await,
        ErrorKind::NotFound,
    );
    assert_eq!(env.audit.head(&env.admin, t.id).await.unwrap(), head);
    // A suspended tenant keeps auditing (what it is refused is worth recording).
    env.tenants
        .suspend(&env.admin, t.id, "billing")
        .await
        .unwrap();
    let suspended = env.audit.head(&env.admin, t.id).await.unwrap();
    let while_suspended = env.audit.append(login_fail(t.id, 3)).await.unwrap();
    assert_eq!(while_suspended.seq, suspended.seq + 1);
    assert_eq!(while_suspended.prev_hash, suspended.hash);
    // A deleted tenant's log is closed.
    env.tenants.delete(&env.admin, t.id).await.unwrap();
    let closed_head = env.audit.head(&env.admin, t.id).await.unwrap();
    assert_kind(
        env.audit.append(login_fail(t.id, 2)).await,
        ErrorKind::Conflict,
    );
    assert_eq!(env.audit.head(&env.admin, t.id).await.unwrap(), closed_head);
    assert!(
        env.audit
            .verify_chain(&env.admin, t.id)
            .await
            .unwrap()
            .is_intact()
    );
}

async fn chain_of(env: &Env, slug: &str, events: u32) -> Tenant {
    let t = tenant(env, slug).await;
    for n in 0..events {
        env.audit.append(login_fail(t.id, n)).await.unwrap();
    }
    t
}

async fn first_break(env: &Env, t: &Tenant) -> (u64, ChainProblem) {
    let report = env.audit.verify_chain(&env.admin, t.id).await.unwrap();
    let b = report.first_break.expect("tampering must be detected");
    (b.seq, b.problem)
}

/// Editing, deleting, re-linking or truncating stored events is detected and located.
pub async fn tampering_is_detected(env: Env) {
    // Edited content (6 events: 1 creation + 5 appends).
    let t = chain_of(&env, "edited", 5).await;
    exec(
        &env,
        "UPDATE audit_events SET metadata = '{\"attempt\":999}' WHERE tenant_id = $1 AND seq = 3",
        t.id,
    )
    .await;
    assert_eq!(
        first_break(&env, &t).await,
        (3, ChainProblem::ContentModified)
    );

    let t = chain_of(&env, "relabelled", 5).await;
    exec(
        &env,
        "UPDATE audit_events SET outcome = 'success' WHERE tenant_id = $1 AND seq = 4",
        t.id,
    )
    .await;
    assert_eq!(
        first_break(&env, &t).await,
        (4, ChainProblem::ContentModified)
    );

    // A deleted event in the middle.
    let t = chain_of(&env, "gap", 5).await;
    exec(
        &env,
        "DELETE FROM audit_events WHERE tenant_id = $1 AND seq = 3",
        t.id,
    )
    .await;
    assert_eq!(
        first_break(&env, &t).await,
        (4, ChainProblem::Missing { expected_seq: 3 })
    );

    // The newest events cut off.
    let t = chain_of(&env, "truncated", 5).await;
    exec(
        &env,
        "DELETE FROM audit_events WHERE tenant_id = $1 AND seq >= 5",
        t.id,
    )
    .await;
    assert_eq!(
        first_break(&env, &t).await,
        (4, ChainProblem::HeadMismatch { head_seq: 6 })
    );

    // A stored hash overwritten.
    let t = chain_of(&env, "forged", 5).await;
    exec(
        &env,
        "UPDATE audit_events SET hash = prev_hash WHERE tenant_id = $1 AND seq = 2",
        t.id,
    )
    .await;
    assert_eq!(
        first_break(&env, &t).await,
        (2, ChainProblem::ContentModified)
    );
    // An event pointing at the wrong predecessor (a splice or an insertion).
    let t = chain_of(&env, "spliced", 5).await;
    exec(
        &env,
        "UPDATE audit_events SET prev_hash = hash WHERE tenant_id = $1 AND seq = 5",
        t.id,
    )
    .await;
    assert_eq!(first_break(&env, &t).await, (5, ChainProblem::LinkBroken));

    // The head rewritten.
    let t = chain_of(&env, "head", 2).await;
    exec(&env, "UPDATE audit_chain_heads SET head_hash = \
         (SELECT prev_hash FROM audit_events WHERE tenant_id = $1 AND seq = 2) WHERE tenant_id = $1", t.id).await;
    assert_eq!(
        first_break(&env, &t).await,
        (3, ChainProblem::HeadMismatch { head_seq: 3 })
    );

    // Untouched chains still verify.
    let clean = chain_of(&env, "clean", 3).await;
    assert!(
        env.audit
            .verify_chain(&env.admin, clean.id)
            .await
            .unwrap()
            .is_intact()
    );
}

/// Verification streams through logs longer than one batch.
pub async fn verify_long_chain(env: Env) {
    let t = chain_of(&env, "long", 1100).await;
    let report = env.audit.verify_chain(&env.admin, t.id).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.events_checked, 1101);
    exec(
        &env,
        "UPDATE audit_events SET actor = 'user:mallory' WHERE tenant_id = $1 AND seq = 1050",
        t.id,
    )
    .await;
    assert_eq!(
        first_break(&env, &t).await,
        (1050, ChainProblem::ContentModified)
    );
}
