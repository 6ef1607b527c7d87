//! The alert-history conformance suite: every [`AlertHistory`] backend (memory, SQLite,
//! PostgreSQL) must pass each case unchanged. `tests/alert_history.rs` runs the matrix.

use crate::assert_kind;
use crate::support::epoch;
use ate_core::{ErrorKind, ManualClock};
use ate_orchestrate::alerts::{
    AlertEngine, AlertEvent, AlertEventState, AlertHistory, AlertQuery, AlertRule, CollectingSink,
    Condition, Quantile, Severity, SqlAlertRules, SyncReport,
};
use ate_orchestrate::metrics::{MetricsRecorder, RecorderConfig};
use ate_orchestrate::registry::{InstanceId, ServiceName};
use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Arc;
use std::time::Duration;

/// The history under test.
pub type History = Arc<dyn AlertHistory>;

fn rule(id: &str) -> AlertRule {
    AlertRule::new(
        id,
        format!("Rule {id}"),
        Condition::breaker_open(ServiceName::new("billing").unwrap()),
    )
    .severity(Severity::Critical)
    .label("team", "payments")
    .label("env", "prod")
}

fn at(secs: i64) -> DateTime<Utc> {
    epoch() + TimeDelta::seconds(secs)
}

fn event(rule_id: &str, state: AlertEventState, secs: i64) -> AlertEvent {
    AlertEvent::new(
        &rule(rule_id),
        state,
        0.25,
        format!("{rule_id} at {secs}"),
        at(secs),
    )
}

/// An appended event reads back field for field, undelivered.
pub async fn append_and_get_round_trip(h: History) {
    let firing = event("r1", AlertEventState::Firing, 0);
    let mut resolved = AlertEvent::new(
        &rule("r1"),
        AlertEventState::Resolved,
        0.0,
        "r1 — résolu ✓",
        at(90) + TimeDelta::microseconds(123),
    );
    resolved.firing_id = Some(firing.id);
    h.append(&firing).await.unwrap();
    h.append(&resolved).await.unwrap();

    let got = h.get(firing.id).await.unwrap().unwrap();
    assert_eq!(got.event, firing);
    assert_eq!((got.delivered_at, got.attempts), (None, 0));
    let got = h.get(resolved.id).await.unwrap().unwrap();
    assert_eq!(got.event, resolved);
    assert_eq!(got.event.firing_id, Some(firing.id));
    assert_eq!(got.event.labels.len(), 2);
    assert_eq!(got.event.severity, Severity::Critical);

    assert!(h.get(uuid::Uuid::now_v7()).await.unwrap().is_none());
}

/// Appending an id twice fails and leaves the first record as it was.
pub async fn duplicate_append_is_rejected(h: History) {
    let e = event("r1", AlertEventState::Firing, 0);
    h.append(&e).await.unwrap();
    let mut changed = e.clone();
    changed.summary = "something else".into();
    assert_kind(h.append(&changed).await, ErrorKind::AlreadyExists);
    let got = h.get(e.id).await.unwrap().unwrap();
    assert_eq!(got.event.summary, e.summary);
    assert_eq!(h.query(&AlertQuery::new()).await.unwrap().len(), 1);
}

/// The first delivery mark wins; unknown ids are not found.
pub async fn delivery_is_recorded_once(h: History) {
    let e = event("r1", AlertEventState::Firing, 0);
    h.append(&e).await.unwrap();
    h.mark_delivered(e.id, at(5), 3).await.unwrap();
    h.mark_delivered(e.id, at(9), 7).await.unwrap();
    let got = h.get(e.id).await.unwrap().unwrap();
    assert_eq!(got.delivered_at, Some(at(5)));
    assert_eq!(got.attempts, 3);
    assert_kind(
        h.mark_delivered(uuid::Uuid::now_v7(), at(5), 1).await,
        ErrorKind::NotFound,
    );
}

/// Queries filter by rule, state and time range, come newest first, and honour the limit.
pub async fn query_filters_orders_and_limits(h: History) {
    let mut all = Vec::new();
    for (rule_id, state, secs) in [
        ("a", AlertEventState::Firing, 10),
        ("a", AlertEventState::Resolved, 20),
        ("b", AlertEventState::Firing, 20),
        ("a", AlertEventState::Firing, 30),
        ("b", AlertEventState::Resolved, 40),
    ] {
        let e = event(rule_id, state, secs);
        h.append(&e).await.unwrap();
        all.push(e);
    }
    let ids = |q: AlertQuery| {
        let h = h.clone();
        async move {
            h.query(&q)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.event.id)
                .collect::<Vec<_>>()
        }
    };
    // Newest first; the two events at 20 s by id, descending (UUIDv7: later created first).
    assert_eq!(
        ids(AlertQuery::new()).await,
        vec![all[4].id, all[3].id, all[2].id, all[1].id, all[0].id]
    );
    assert_eq!(
        ids(AlertQuery::new().rule("a")).await,
        vec![all[3].id, all[1].id, all[0].id]
    );
    assert_eq!(
        ids(AlertQuery::new().state(AlertEventState::Resolved)).await,
        vec![all[4].id, all[1].id]
    );
    assert_eq!(
        ids(AlertQuery::new().rule("b").state(AlertEventState::Firing)).await,
        vec![all[2].id]
    );
    // `since` is inclusive, `until` exclusive.
    assert_eq!(
        ids(AlertQuery::new().since(at(20)).until(at(40))).await,
        vec![all[3].id, all[2].id, all[1].id]
    );
    assert!(ids(AlertQuery::new().since(at(41))).await.is_empty());
    assert_eq!(
        ids(AlertQuery::new().limit(2)).await,
        vec![all[4].id, all[3].id]
    );
    assert!(ids(AlertQuery::new().rule("nobody")).await.is_empty());
}

/// Malformed queries fail with `InvalidInput`.
pub async fn invalid_queries_are_rejected(h: History) {
    assert_kind(
        h.query(&AlertQuery::new().limit(0)).await,
        ErrorKind::InvalidInput,
    );
    assert_kind(
        h.query(&AlertQuery::new().limit(1001)).await,
        ErrorKind::InvalidInput,
    );
    assert_kind(
        h.query(&AlertQuery::new().since(at(10)).until(at(5))).await,
        ErrorKind::InvalidInput,
    );
    // An empty range is fine.
    assert!(
        h.query(&AlertQuery::new().since(at(5)).until(at(5)))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Purging removes exactly the events older than the cut-off.
pub async fn purge_removes_only_older_events(h: History) {
    let old = event("r1", AlertEventState::Firing, 0);
    let edge = event("r1", AlertEventState::Resolved, 60);
    let new = event("r1", AlertEventState::Firing, 120);
    for e in [&old, &edge, &new] {
        h.append(e).await.unwrap();
    }
    assert_eq!(h.purge_before(at(60)).await.unwrap(), 1);
    assert!(h.get(old.id).await.unwrap().is_none());
    assert!(h.get(edge.id).await.unwrap().is_some());
    assert_eq!(h.query(&AlertQuery::new()).await.unwrap().len(), 2);
    assert_eq!(h.purge_before(at(0)).await.unwrap(), 0);
}

/// Parallel appends of distinct events all land.
pub async fn concurrent_appends_all_land(h: History) {
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let h = h.clone();
            tokio::spawn(async move {
                h.append(&event(&format!("r{}", n % 4), AlertEventState::Firing, n))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(h.query(&AlertQuery::new()).await.unwrap().len(), 16);
    assert_eq!(
        h.query(&AlertQuery::new().rule("r1")).await.unwrap().len(),
        4
    );
}

/// The engine keeps exactly one firing and one resolved record, both marked delivered.
pub async fn engine_keeps_one_record_per_transition(h: History) {
    let clock = Arc::new(ManualClock::new(epoch()));
    let recorder = Arc::new(
        MetricsRecorder::new(RecorderConfig::default())
            .unwrap()
            .with_clock(clock.clone()),
    );
    let sink = Arc::new(CollectingSink::new());
    let engine = AlertEngine::new(recorder, sink.clone(), h.clone());
    engine
        .add_rule(rule("breaker").for_duration(Duration::from_secs(2)))
        .unwrap();
    let (s, i) = (
        ServiceName::new("billing").unwrap(),
        InstanceId::new("billing-1").unwrap(),
    );
    engine.set_breaker_open(&s, &i, true);
    for _ in 0..5 {
        engine.evaluate(ate_core::Clock::now(&*clock)).await;
        clock.advance(TimeDelta::seconds(1));
    }
    engine.set_breaker_open(&s, &i, false);
    for _ in 0..3 {
        engine.evaluate(ate_core::Clock::now(&*clock)).await;
        clock.advance(TimeDelta::seconds(1));
    }
    let firing = h
        .query(
            &AlertQuery::new()
                .rule("breaker")
                .state(AlertEventState::Firing),
        )
        .await
        .unwrap();
    let resolved = h
        .query(
            &AlertQuery::new()
                .rule("breaker")
                .state(AlertEventState::Resolved),
        )
        .await
        .unwrap();
    assert_eq!((firing.len(), resolved.len()), (1, 1));
    assert_eq!(firing[0].event.at, at(2));
    assert_eq!(resolved[0].event.at, at(5));
    assert_eq!(resolved[0].event.firing_id, Some(firing[0].event.id));
    for r in firing.iter().chain(&resolved) {
        assert_eq!(r.delivered_at, Some(r.event.at));
        assert_eq!(r.attempts, 1);
    }
    let delivered: Vec<_> = sink.events().into_iter().map(|e| e.id).collect();
    assert_eq!(delivered, vec![firing[0].event.id, resolved[0].event.id]);
}

/// One rule of each condition kind, with every optional field set somewhere.
fn every_kind() -> Vec<AlertRule> {
    let tenant = ate_core::TenantId::from_uuid(uuid::Uuid::from_u128(
        0x0196_a4b2_7c1e_7c3a_9f00_6d7e_8f90_1234,
    ))
    .unwrap();
    let billing = ServiceName::new("billing").unwrap();
    let one = InstanceId::new("billing-1").unwrap();
    let w = Duration::from_secs(60);
    vec![
        AlertRule::new(
            "errors",
            "Errors",
            Condition::ErrorRateAbove {
                service: billing.clone(),
                instance: Some(one.clone()),
                threshold: 0.05,
                window: w,
                min_requests: 20,
            },
        )
        .severity(Severity::Critical)
        .label("team", "payments")
        .for_duration(Duration::from_secs(120)),
        AlertRule::new(
            "latency",
            "Latency",
            Condition::latency_above(
                billing.clone(),
                Quantile::P99,
                Duration::from_millis(250),
                w,
            ),
        ),
        AlertRule::new(
            "quiet",
            "Quiet",
            Condition::request_rate_below(billing.clone(), 0.5, w),
        ),
        AlertRule::new(
            "surge",
            "Surge",
            Condition::request_rate_above(billing.clone(), 1000.0, w),
        ),
        AlertRule::new(
            "critical",
            "Critical",
            Condition::instance_critical(billing.clone()).for_instance(one),
        ),
        AlertRule::new("breaker", "Breaker", Condition::breaker_open(billing)),
        AlertRule::new(
            "backlog",
            "Backlog",
            Condition::workflow_backlog_above(Some(tenant), Duration::from_secs(30)),
        ),
    ]
}

/// Stored rules read back equal (every condition kind through its JSON form), in id order;
/// replacement bumps the revision; only platform administrators manage or read them; bad
/// rules, taken and unknown ids are typed errors that change nothing.
pub async fn stored_rules_round_trip(db: ate_core::Db) {
    let store = SqlAlertRules::open(db).await.unwrap();
    let admin = ate_core::Principal::platform_admin("ops").unwrap();
    for rule in every_kind() {
        let stored = store.create(&admin, &rule).await.unwrap();
        assert_eq!(stored.rule, rule);
        assert_eq!((stored.revision, stored.created_by.as_str()), (1, "ops"));
    }
    let listed = store.list(&admin).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|s| s.rule.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "backlog", "breaker", "critical", "errors", "latency", "quiet", "surge"
        ]
    );
    let mut by_id = every_kind();
    by_id.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        listed.into_iter().map(|s| s.rule).collect::<Vec<_>>(),
        by_id
    );

    // Its JSON form names the fields as documented.
    let json = serde_json::to_value(&every_kind()[1]).unwrap();
    assert_eq!(json["condition"]["kind"], "latency_above");
    assert_eq!(json["condition"]["threshold_ms"], 250);
    assert_eq!(json["condition"]["window_secs"], 60);
    assert_eq!(json["for_secs"], 0);

    let changed = rule("breaker").for_duration(Duration::from_secs(5));
    let replaced = store.replace(&admin, &changed).await.unwrap();
    assert_eq!((replaced.revision, &replaced.rule), (2, &changed));
    assert_eq!(store.get(&admin, "breaker").await.unwrap().rule, changed);

    let tenant_admin = ate_core::Principal::new(ate_core::TenantId::new(), "owner")
        .unwrap()
        .role("admin");
    assert_kind(
        store.create(&tenant_admin, &rule("mine")).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(store.list(&tenant_admin).await, ErrorKind::PermissionDenied);
    assert_kind(
        store.get(&tenant_admin, "breaker").await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        store.delete(&tenant_admin, "breaker").await,
        ErrorKind::PermissionDenied,
    );

    assert_kind(
        store.create(&admin, &rule("breaker")).await,
        ErrorKind::AlreadyExists,
    );
    assert_kind(
        store.replace(&admin, &rule("nope")).await,
        ErrorKind::NotFound,
    );
    assert_kind(store.delete(&admin, "nope").await, ErrorKind::NotFound);
    assert_kind(store.get(&admin, "nope").await, ErrorKind::NotFound);
    let bad = [
        AlertRule::new(
            "",
            "x",
            Condition::breaker_open(ServiceName::new("b").unwrap()),
        ),
        AlertRule::new(
            "bad id!",
            "x",
            Condition::breaker_open(ServiceName::new("b").unwrap()),
        ),
        AlertRule::new(
            "x",
            " ",
            Condition::breaker_open(ServiceName::new("b").unwrap()),
        ),
        AlertRule::new(
            "x",
            "x",
            Condition::error_rate_above(
                ServiceName::new("b").unwrap(),
                1.5,
                Duration::from_secs(60),
            ),
        ),
        AlertRule::new(
            "x",
            "x",
            Condition::error_rate_above(
                ServiceName::new("b").unwrap(),
                0.5,
                Duration::from_secs(7200),
            ),
        ),
        AlertRule::new(
            "x",
            "x",
            Condition::latency_above(
                ServiceName::new("b").unwrap(),
                Quantile::P50,
                Duration::ZERO,
                Duration::from_secs(60),
            ),
        ),
        rule("x").for_duration(Duration::from_secs(90_000)),
    ];
    for r in bad {
        assert_kind(store.create(&admin, &r).await, ErrorKind::InvalidInput);
    }
    assert_kind(
        store
            .replace(
                &admin,
                &rule("breaker").for_duration(Duration::from_secs(90_000)),
            )
            .await,
        ErrorKind::InvalidInput,
    );
    assert_eq!(store.get(&admin, "breaker").await.unwrap().revision, 2);
    assert_eq!(store.list(&admin).await.unwrap().len(), 7);
    store.delete(&admin, "breaker").await.unwrap();
    assert_eq!(store.list(&admin).await.unwrap().len(), 6);
}

/// `sync` makes an engine's rules equal to the stored ones, whichever store (host) wrote
/// them; a replaced rule keeps its alert's state, so a firing alert whose new condition no
/// longer holds resolves with its event, and a deleted rule leaves the engine.
pub async fn stored_rules_sync_into_engines(db: ate_core::Db) {
    let one = SqlAlertRules::open(db.clone()).await.unwrap();
    let other = SqlAlertRules::open(db).await.unwrap(); // a second host on the same database
    let admin = ate_core::Principal::platform_admin("ops").unwrap();
    let clock = Arc::new(ManualClock::new(epoch()));
    let recorder = Arc::new(
        MetricsRecorder::new(RecorderConfig::default())
            .unwrap()
            .with_clock(clock.clone()),
    );
    let sink = Arc::new(CollectingSink::new());
    let history = Arc::new(ate_orchestrate::alerts::MemoryAlertHistory::new());
    let engine = AlertEngine::new(recorder, sink.clone(), history);
    engine.add_rule(rule("not-stored")).unwrap();

    for r in every_kind() {
        one.create(&admin, &r).await.unwrap();
    }
    let report = other.sync(&engine).await.unwrap();
    assert_eq!((report.added, report.replaced, report.removed), (7, 0, 1));
    let mut ids: Vec<String> = engine.rules().into_iter().map(|r| r.id).collect();
    ids.sort();
    assert_eq!(ids.len(), 7);
    assert!(!ids.contains(&"not-stored".to_owned()));
    assert_eq!(other.sync(&engine).await.unwrap(), SyncReport::default());

    // The breaker rule fires; replaced by one about another service, it resolves.
    let (s, i) = (
        ServiceName::new("billing").unwrap(),
        InstanceId::new("billing-1").unwrap(),
    );
    engine.set_breaker_open(&s, &i, true);
    engine.evaluate(ate_core::Clock::now(&*clock)).await;
    assert_eq!(
        engine.status("breaker").unwrap().state,
        ate_orchestrate::alerts::AlertState::Firing
    );
    let moved = AlertRule::new(
        "breaker",
        "Breaker",
        Condition::breaker_open(ServiceName::new("ledger").unwrap()),
    );
    one.replace(&admin, &moved).await.unwrap();
    let report = other.sync(&engine).await.unwrap();
    assert_eq!((report.added, report.replaced, report.removed), (0, 1, 0));
    assert_eq!(
        engine.status("breaker").unwrap().state,
        ate_orchestrate::alerts::AlertState::Firing,
        "a replaced rule keeps its state until the next evaluation"
    );
    clock.advance(TimeDelta::seconds(1));
    engine.evaluate(ate_core::Clock::now(&*clock)).await;
    let events = sink.drain();
    let states: Vec<AlertEventState> = events
        .iter()
        .filter(|e| e.rule_id == "breaker")
        .map(|e| e.state)
        .collect();
    assert_eq!(states, [AlertEventState::Firing, AlertEventState::Resolved]);

    one.delete(&admin, "breaker").await.unwrap();
    let report = other.sync(&engine).await.unwrap();
    assert_eq!(report.removed, 1);
    assert!(engine.status("breaker").is_none());
}
