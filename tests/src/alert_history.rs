//! The alert-history conformance suite: every [`AlertHistory`] backend (memory, SQLite,
//! PostgreSQL) must pass each case unchanged. `tests/alert_history.rs` runs the matrix.

use crate::assert_kind;
use crate::support::epoch;
use ate_core::{ErrorKind, ManualClock};
use ate_orchestrate::alerts::{
    AlertEngine, AlertEvent, AlertEventState, AlertHistory, AlertQuery, AlertRule, CollectingSink,
    Condition, Severity,
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
