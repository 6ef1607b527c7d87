#![allow(clippy::unwrap_used)]

use super::*;
use crate::error::OrchestrateError;
use crate::metrics::{MetricsRecorder, RecorderConfig};
use crate::outcome::Outcome;
use crate::registry::{HealthStatus, InstanceId, ServiceName};
use ate_core::{Classify, Clock, ErrorKind, ManualClock};
use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use uuid::Uuid;

fn svc(s: &str) -> ServiceName {
    ServiceName::new(s).unwrap()
}
fn inst(s: &str) -> InstanceId {
    InstanceId::new(s).unwrap()
}

/// A sink that fails its first `failures` calls, then collects.
#[derive(Debug, Default)]
struct FlakySink {
    failures: AtomicUsize,
    calls: AtomicUsize,
    inner: CollectingSink,
}

impl FlakySink {
    fn failing(n: usize) -> Self {
        FlakySink {
            failures: AtomicUsize::new(n),
            ..Default::default()
        }
    }
}

#[async_trait::async_trait]
impl AlertSink for FlakySink {
    async fn deliver(&self, event: &AlertEvent) -> Result<(), OrchestrateError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(OrchestrateError::Unavailable("pager is down".into()));
        }
        self.inner.deliver(event).await
    }
}

/// A history whose first `failures` appends fail.
#[derive(Debug, Default)]
struct FlakyHistory {
    failures: AtomicUsize,
    inner: MemoryAlertHistory,
}

#[async_trait::async_trait]
impl AlertHistory for FlakyHistory {
    async fn append(&self, event: &AlertEvent) -> Result<(), OrchestrateError> {
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(OrchestrateError::Unavailable("database is down".into()));
        }
        self.inner.append(event).await
    }
    async fn mark_delivered(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        attempts: u32,
    ) -> Result<(), OrchestrateError> {
        self.inner.mark_delivered(id, at, attempts).await
    }
    async fn get(&self, id: Uuid) -> Result<Option<AlertRecord>, OrchestrateError> {
        self.inner.get(id).await
    }
    async fn query(&self, q: &AlertQuery) -> Result<Vec<AlertRecord>, OrchestrateError> {
        self.inner.query(q).await
    }
    async fn purge_before(&self, before: DateTime<Utc>) -> Result<u64, OrchestrateError> {
        self.inner.purge_before(before).await
    }
}

struct Fixture<S: AlertSink + 'static, H: AlertHistory + 'static> {
    clock: Arc<ManualClock>,
    recorder: Arc<MetricsRecorder>,
    sink: Arc<S>,
    history: Arc<H>,
    engine: AlertEngine,
}

fn fixture_with<S: AlertSink + 'static, H: AlertHistory + 'static>(
    sink: S,
    history: H,
) -> Fixture<S, H> {
    let clock = Arc::new(ManualClock::new(
        DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
    ));
    let recorder = Arc::new(
        MetricsRecorder::new(RecorderConfig::default())
            .unwrap()
            .with_clock(clock.clone()),
    );
    let sink = Arc::new(sink);
    let history = Arc::new(history);
    let engine = AlertEngine::new(recorder.clone(), sink.clone(), history.clone());
    Fixture {
        clock,
        recorder,
        sink,
        history,
        engine,
    }
}

fn fixture() -> Fixture<CollectingSink, MemoryAlertHistory> {
    fixture_with(CollectingSink::new(), MemoryAlertHistory::new())
}

impl<S: AlertSink + 'static, H: AlertHistory + 'static> Fixture<S, H> {
    /// Records one second of traffic (`ok` successes, `failed` errors), evaluates, and moves
    /// the clock one second on.
    async fn second(&self, ok: u32, failed: u32) -> EvaluationReport {
        let (s, i) = (svc("billing"), inst("billing-1"));
        for _ in 0..ok {
            self.recorder
                .record(&s, &i, Duration::from_millis(10), Outcome::Success);
        }
        for _ in 0..failed {
            self.recorder.record(
                &s,
                &i,
                Duration::from_millis(10),
                Outcome::Failure(ErrorKind::Unavailable),
            );
        }
        let report = self.engine.evaluate(self.clock.now()).await;
        self.clock.advance(TimeDelta::seconds(1));
        report
    }

    fn state(&self, rule: &str) -> AlertState {
        self.engine.status(rule).unwrap().state
    }
}

fn error_rule(for_secs: u64) -> AlertRule {
    AlertRule::new(
        "billing-errors",
        "Billing error rate",
        Condition::error_rate_above(svc("billing"), 0.5, Duration::from_secs(5)),
    )
    .for_duration(Duration::from_secs(for_secs))
    .severity(Severity::Critical)
    .label("team", "payments")
}

#[tokio::test]
async fn a_spike_shorter_than_for_never_fires() {
    let f = fixture();
    f.engine.add_rule(error_rule(10)).unwrap();
    // 3 s of errors: pending, never firing.
    for _ in 0..3 {
        f.second(0, 10).await;
        assert_eq!(f.state("billing-errors"), AlertState::Pending);
    }
    // Recovery: once the 5 s window no longer holds the spike, back to inactive.
    for _ in 0..20 {
        let r = f.second(10, 0).await;
        assert_eq!(r.fired, 0);
    }
    assert_eq!(f.state("billing-errors"), AlertState::Inactive);
    assert!(f.sink.events().is_empty());
    assert!(
        f.history
            .query(&AlertQuery::new())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_sustained_breach_fires_once_and_recovery_resolves_once() {
    let f = fixture();
    f.engine.add_rule(error_rule(10)).unwrap();
    let mut fired_at = None;
    for n in 0..30 {
        let r = f.second(1, 9).await;
        if r.fired == 1 {
            assert!(fired_at.is_none(), "fired twice");
            fired_at = Some(n);
        }
    }
    // Pending at second 0, firing once 10 s have passed.
    assert_eq!(fired_at, Some(10));
    assert_eq!(f.state("billing-errors"), AlertState::Firing);
    let mut resolved = 0;
    for _ in 0..30 {
        resolved += f.second(10, 0).await.resolved;
    }
    assert_eq!(resolved, 1);
    assert_eq!(f.state("billing-errors"), AlertState::Resolved);

    let events = f.sink.events();
    assert_eq!(events.len(), 2, "{events:?}");
    let (firing, resolved) = (&events[0], &events[1]);
    assert_eq!(firing.state, AlertEventState::Firing);
    assert_eq!(firing.rule_id, "billing-errors");
    assert_eq!(firing.severity, Severity::Critical);
    assert_eq!(
        firing.labels.get("team").map(String::as_str),
        Some("payments")
    );
    assert!((firing.value - 0.9).abs() < 1e-9, "{}", firing.value);
    assert!(firing.summary.contains("billing"), "{}", firing.summary);
    assert_eq!(resolved.state, AlertEventState::Resolved);
    assert_eq!(resolved.firing_id, Some(firing.id));
    assert!(resolved.at > firing.at);

    let records = f.history.query(&AlertQuery::new()).await.unwrap();
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|r| r.delivered_at.is_some() && r.attempts == 1)
    );
    assert_eq!(f.engine.queued_events(), 0);

    // A new breach starts a new cycle with new event ids.
    for _ in 0..15 {
        f.second(0, 10).await;
    }
    let events = f.sink.events();
    assert_eq!(events.len(), 3);
    assert_ne!(events[2].id, firing.id);
}

#[tokio::test]
async fn a_failing_sink_gets_the_event_again_and_one_delivery_is_recorded() {
    let f = fixture_with(FlakySink::failing(2), MemoryAlertHistory::new());
    f.engine.add_rule(error_rule(0)).unwrap();

    let r = f.second(0, 10).await;
    assert_eq!(
        (r.fired, r.delivered, r.delivery_failures, r.queued),
        (1, 0, 1, 1)
    );
    let firing_id = f.history.query(&AlertQuery::new()).await.unwrap()[0]
        .event
        .id;
    // The event is in the history already, not yet delivered.
    let rec = f.history.get(firing_id).await.unwrap().unwrap();
    assert_eq!((rec.delivered_at, rec.attempts), (None, 0));

    // Recovery while the firing event is still undelivered: the resolved event waits.
    for _ in 0..10 {
        f.second(10, 0).await;
        if f.state("billing-errors") == AlertState::Resolved {
            break;
        }
    }
    assert_eq!(f.state("billing-errors"), AlertState::Resolved);
    // Second failure was at the evaluation after the first; from the third on it works.
    for _ in 0..3 {
        f.second(10, 0).await;
    }
    let delivered = f.sink.inner.events();
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    assert_eq!(delivered[0].id, firing_id);
    assert_eq!(delivered[0].state, AlertEventState::Firing);
    assert_eq!(delivered[1].state, AlertEventState::Resolved);
    // Two failed calls, then one per event: never a second successful call for one event.
    assert_eq!(f.sink.calls.load(Ordering::SeqCst), 4);

    let rec = f.history.get(firing_id).await.unwrap().unwrap();
    assert!(rec.delivered_at.is_some());
    assert_eq!(rec.attempts, 3);
    let all = f.history.query(&AlertQuery::new()).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(f.engine.queued_events(), 0);
}

#[tokio::test]
async fn a_failing_history_is_retried_and_delivery_is_not_held_back() {
    let f = fixture_with(
        CollectingSink::new(),
        FlakyHistory {
            failures: AtomicUsize::new(1),
            ..Default::default()
        },
    );
    f.engine.add_rule(error_rule(0)).unwrap();
    let r = f.second(0, 10).await;
    assert_eq!(
        (r.fired, r.delivered, r.history_failures, r.queued),
        (1, 1, 1, 1)
    );
    assert!(
        f.history
            .query(&AlertQuery::new())
            .await
            .unwrap()
            .is_empty()
    );
    let r = f.second(0, 10).await;
    assert_eq!(
        (r.fired, r.delivered, r.history_failures, r.queued),
        (0, 0, 0, 0)
    );
    let records = f.history.query(&AlertQuery::new()).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].attempts, 1);
    assert!(records[0].delivered_at.is_some());
    assert_eq!(f.sink.events().len(), 1);
}

#[tokio::test]
async fn state_conditions_follow_what_the_host_feeds() {
    let f = fixture();
    let s = svc("billing");
    let (a, b) = (inst("billing-1"), inst("billing-2"));
    f.engine
        .add_rule(AlertRule::new(
            "critical",
            "Billing instance critical",
            Condition::instance_critical(s.clone()),
        ))
        .unwrap();
    f.engine
        .add_rule(AlertRule::new(
            "breaker-b",
            "Breaker of billing-2 open",
            Condition::breaker_open(s.clone()).for_instance(b.clone()),
        ))
        .unwrap();
    f.engine.set_instance_status(&s, &a, HealthStatus::Warning);
    f.engine.set_breaker_open(&s, &a, true);
    f.second(0, 0).await;
    assert_eq!(f.state("critical"), AlertState::Inactive);
    assert_eq!(
        f.state("breaker-b"),
        AlertState::Inactive,
        "only billing-2 counts"
    );

    f.engine.set_instance_status(&s, &a, HealthStatus::Critical);
    f.engine.set_breaker_open(&s, &b, true);
    let r = f.second(0, 0).await;
    assert_eq!(r.fired, 2);
    let firing = f.sink.drain();
    let critical = firing.iter().find(|e| e.rule_id == "critical").unwrap();
    assert_eq!(critical.value, 1.0);
    assert!(
        critical.summary.contains("billing-1"),
        "{}",
        critical.summary
    );

    f.engine.forget_instance(&s, &a);
    f.engine.set_breaker_open(&s, &b, false);
    let r = f.second(0, 0).await;
    assert_eq!(r.resolved, 2);
}

#[tokio::test]
async fn latency_and_rate_conditions() {
    let f = fixture();
    let s = svc("billing");
    f.engine
        .add_rule(AlertRule::new(
            "slow",
            "Billing p95 slow",
            Condition::latency_above(
                s.clone(),
                Quantile::P95,
                Duration::from_millis(100),
                Duration::from_secs(10),
            ),
        ))
        .unwrap();
    f.engine
        .add_rule(AlertRule::new(
            "quiet",
            "Billing traffic dropped",
            Condition::request_rate_below(s.clone(), 5.0, Duration::from_secs(10)),
        ))
        .unwrap();
    f.engine
        .add_rule(AlertRule::new(
            "surge",
            "Billing surge",
            Condition::request_rate_above(s.clone(), 50.0, Duration::from_secs(10)),
        ))
        .unwrap();
    // 10 requests per second at 10 ms: nothing breached after the window fills.
    for _ in 0..10 {
        f.second(10, 0).await;
    }
    f.sink.drain();
    let r = f.second(10, 0).await;
    assert_eq!(r.fired, 0, "{:?}", f.engine.statuses());
    for rule in ["slow", "quiet", "surge"] {
        assert_ne!(f.state(rule), AlertState::Firing, "{rule}");
    }
    // Slow calls: one in ten at 2 s is above p95 → at 10 %, p95 is 2 s.
    let i = inst("billing-1");
    for _ in 0..10 {
        for _ in 0..2 {
            f.recorder
                .record(&s, &i, Duration::from_secs(2), Outcome::Success);
        }
        f.second(10, 0).await;
    }
    assert_eq!(f.state("slow"), AlertState::Firing);
    let slow = f.sink.drain();
    assert_eq!(slow.len(), 1);
    assert!(
        (slow[0].value - 2.0).abs() / 2.0 <= 0.021,
        "{}",
        slow[0].value
    );
    // A surge.
    for _ in 0..10 {
        f.second(100, 0).await;
    }
    assert_eq!(f.state("surge"), AlertState::Firing);
    // Silence.
    for _ in 0..12 {
        f.second(0, 0).await;
    }
    assert_eq!(f.state("quiet"), AlertState::Firing);
    assert_eq!(f.state("surge"), AlertState::Resolved);
    assert_eq!(f.state("slow"), AlertState::Resolved);
}

#[test]
fn invalid_rules_are_rejected_with_invalid_input() {
    let s = svc("billing");
    let w = Duration::from_secs(60);
    let ok = || AlertRule::new("r1", "Rule", Condition::error_rate_above(s.clone(), 0.1, w));
    assert!(ok().validate().is_ok());
    let bad = [
        ok().for_duration(Duration::from_secs(86_401)),
        AlertRule::new("", "Rule", Condition::error_rate_above(s.clone(), 0.1, w)),
        AlertRule::new(
            "has space",
            "Rule",
            Condition::error_rate_above(s.clone(), 0.1, w),
        ),
        AlertRule::new("r1", " ", Condition::error_rate_above(s.clone(), 0.1, w)),
        AlertRule::new(
            "r1",
            "x".repeat(300),
            Condition::error_rate_above(s.clone(), 0.1, w),
        ),
        AlertRule::new("r1", "Rule", Condition::error_rate_above(s.clone(), 1.5, w)),
        AlertRule::new(
            "r1",
            "Rule",
            Condition::error_rate_above(s.clone(), -0.1, w),
        ),
        AlertRule::new(
            "r1",
            "Rule",
            Condition::error_rate_above(s.clone(), f64::NAN, w),
        ),
        AlertRule::new(
            "r1",
            "Rule",
            Condition::error_rate_above(s.clone(), 0.1, Duration::ZERO),
        ),
        AlertRule::new(
            "r1",
            "Rule",
            Condition::error_rate_above(s.clone(), 0.1, Duration::from_secs(7200)),
        ),
        AlertRule::new(
            "r1",
            "Rule",
            Condition::request_rate_below(s.clone(), -1.0, w),
        ),
        AlertRule::new(
            "r1",
            "Rule",
            Condition::request_rate_above(s.clone(), f64::INFINITY, w),
        ),
        ok().label("bad key", "v"),
    ];
    for rule in bad {
        let err = rule.validate().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{rule:?}: {err}");
    }
    for secs in [-0.5, f64::NAN, f64::INFINITY] {
        let err = Condition::latency_above_secs(s.clone(), Quantile::P99, secs, w).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{secs}: {err}");
    }
    assert!(Condition::latency_above_secs(s.clone(), Quantile::P99, 0.25, w).is_ok());
}

#[tokio::test]
async fn engine_rejects_duplicates_unknowns_and_windows_beyond_the_recorder() {
    let f = fixture();
    f.engine.add_rule(error_rule(0)).unwrap();
    let dup = f.engine.add_rule(error_rule(5)).unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::AlreadyExists);
    let long = AlertRule::new(
        "long",
        "Long window",
        Condition::error_rate_above(svc("billing"), 0.1, Duration::from_secs(1800)),
    );
    assert!(long.validate().is_ok());
    let err = f.engine.add_rule(long).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(
        f.engine.remove_rule("nope").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        f.engine.remove_rule("billing-errors").unwrap().id,
        "billing-errors"
    );
    assert!(f.engine.rules().is_empty());
    assert_eq!(
        f.engine.spawn(Duration::ZERO).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spawned_loop_evaluates_until_dropped() {
    let f = fixture();
    let s = svc("billing");
    let i = inst("billing-1");
    f.engine
        .add_rule(AlertRule::new(
            "breaker",
            "Breaker open",
            Condition::breaker_open(s.clone()),
        ))
        .unwrap();
    let handle = f.engine.spawn(Duration::from_millis(5)).unwrap();
    f.engine.set_breaker_open(&s, &i, true);
    let mut fired = false;
    for _ in 0..400 {
        if !f.sink.events().is_empty() {
            fired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(fired, "the loop never evaluated");
    handle.stop().await;
    f.engine.set_breaker_open(&s, &i, false);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(f.sink.events().len(), 1, "a stopped loop must not evaluate");
    assert_eq!(f.state("breaker"), AlertState::Firing);

    // Dropping the handle stops a loop too.
    let handle = f.engine.spawn(Duration::from_millis(5)).unwrap();
    for _ in 0..400 {
        if f.sink.events().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(f.sink.events().len(), 2);
    drop(handle);
    f.engine.set_breaker_open(&s, &i, true);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(f.sink.events().len(), 2);
}
