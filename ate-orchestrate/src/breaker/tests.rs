use super::*;
use crate::OrchestrateError;
use crate::clock::ManualMonotonicClock;
use crate::endpoint::{Availability, EndpointId};
use ate_core::ErrorKind;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FAIL: ErrorKind = ErrorKind::Unavailable;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

struct Fixture {
    clock: Arc<ManualMonotonicClock>,
    registry: BreakerRegistry,
    events: Arc<Mutex<Vec<(BreakerState, BreakerState)>>>,
    id: EndpointId,
}

fn fixture(config: BreakerConfig) -> Fixture {
    let clock = Arc::new(ManualMonotonicClock::new());
    let registry = BreakerRegistry::with_clock(config, clock.clone()).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    registry.add_listener(Arc::new(move |e: &BreakerEvent| {
        sink.lock().unwrap().push((e.from, e.to));
    }));
    Fixture {
        clock,
        registry,
        events,
        id: EndpointId::new("billing-1"),
    }
}

/// Count window of 10, 50% failures, 4 minimum calls, 10 s open, 2 probes timing out after 5 s.
fn config() -> BreakerConfig {
    BreakerConfig::default()
        .window(SlidingWindow::Count { calls: 10 })
        .minimum_calls(4)
        .wait_in_open(secs(10))
        .half_open(2, secs(5))
}

impl Fixture {
    fn ok(&self) {
        self.registry.try_acquire(&self.id).unwrap().success();
    }
    fn fail(&self) {
        self.registry.try_acquire(&self.id).unwrap().failure(FAIL);
    }
    fn state(&self) -> BreakerState {
        self.registry.state(self.id.as_str())
    }
    fn events(&self) -> Vec<(BreakerState, BreakerState)> {
        self.events.lock().unwrap().clone()
    }
    fn open(&self) {
        for _ in 0..4 {
            self.fail();
        }
        assert_eq!(self.state(), BreakerState::Open);
    }
}

use BreakerState::{Closed, HalfOpen, Open};

#[test]
fn opens_when_failure_rate_reaches_threshold_after_minimum_calls() {
    let f = fixture(config());
    f.fail();
    f.fail();
    f.fail();
    // Three failures are 100%, but fewer than the 4 minimum calls.
    assert_eq!(f.state(), Closed);
    f.ok();
    // 3 of 4 = 75% ≥ 50%.
    assert_eq!(f.state(), Open);
    let err = f.registry.try_acquire(&f.id).unwrap_err();
    assert!(
        matches!(err, OrchestrateError::CircuitOpen { ref instance } if instance == "billing-1")
    );
    assert_eq!(f.events(), vec![(Closed, Open)]);
}

#[test]
fn stays_closed_below_the_failure_rate() {
    let f = fixture(config());
    for _ in 0..20 {
        f.ok();
        f.ok();
        f.fail();
    }
    assert_eq!(f.state(), Closed);
    let m = f.registry.get(&f.id).metrics();
    assert_eq!(m.calls, 10);
    assert!(m.failure_rate < 50.0);
}

#[test]
fn non_failure_kinds_count_as_successes() {
    let f = fixture(config());
    for _ in 0..10 {
        f.registry
            .try_acquire(&f.id)
            .unwrap()
            .failure(ErrorKind::NotFound);
    }
    assert_eq!(f.state(), Closed);
    let custom = fixture(config().with_failure_predicate(|k| k == ErrorKind::NotFound));
    for _ in 0..4 {
        custom
            .registry
            .try_acquire(&custom.id)
            .unwrap()
            .failure(ErrorKind::NotFound);
    }
    assert_eq!(custom.state(), Open);
}

#[test]
fn opens_on_slow_call_rate() {
    let f = fixture(config().slow_calls(50.0, secs(2)));
    for _ in 0..4 {
        let p = f.registry.try_acquire(&f.id).unwrap();
        f.clock.advance(secs(3));
        p.success();
    }
    assert_eq!(f.state(), Open);
}

#[test]
fn time_window_forgets_old_failures() {
    let f = fixture(config().window(SlidingWindow::Time { seconds: 10 }));
    f.fail();
    f.fail();
    f.fail();
    f.clock.advance(secs(11));
    f.ok();
    // The three failures left the window: 1 call, below the minimum.
    assert_eq!(f.state(), Closed);
    f.fail();
    f.fail();
    f.fail();
    assert_eq!(f.state(), Open);
}

#[test]
fn half_open_after_wait_then_closed_after_successful_probes() {
    let f = fixture(config());
    f.open();
    f.clock.advance(secs(9));
    assert_eq!(f.state(), Open);
    assert!(!f.registry.is_available(&f.id));
    f.clock.advance(secs(1));
    assert!(f.registry.is_available(&f.id));
    assert_eq!(f.state(), HalfOpen);
    let p1 = f.registry.try_acquire(&f.id).unwrap();
    let p2 = f.registry.try_acquire(&f.id).unwrap();
    assert!(p1.is_probe() && p2.is_probe());
    // Only two probes.
    assert!(f.registry.try_acquire(&f.id).is_err());
    assert!(!f.registry.is_available(&f.id));
    p1.success();
    assert_eq!(f.state(), HalfOpen);
    p2.success();
    assert_eq!(f.state(), Closed);
    // The window starts empty: three failures are below the minimum again.
    f.fail();
    f.fail();
    f.fail();
    assert_eq!(f.state(), Closed);
    assert_eq!(
        f.events(),
        vec![(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]
    );
}

#[test]
fn failed_probe_reopens() {
    let f = fixture(config());
    f.open();
    f.clock.advance(secs(10));
    let p1 = f.registry.try_acquire(&f.id).unwrap();
    let p2 = f.registry.try_acquire(&f.id).unwrap();
    // One failure of two permitted probes is 50%: the threshold is reached whatever p2 does.
    p1.failure(FAIL);
    assert_eq!(f.state(), Open);
    // p2 belonged to the half-open period: its late success changes nothing.
    p2.success();
    assert_eq!(f.state(), Open);
    assert_eq!(
        f.events(),
        vec![(Closed, Open), (Open, HalfOpen), (HalfOpen, Open)]
    );
    // And the open wait starts again.
    f.clock.advance(secs(9));
    assert_eq!(f.state(), Open);
    f.clock.advance(secs(1));
    assert_eq!(f.state(), HalfOpen);
}

#[test]
fn stuck_probe_is_reclaimed_after_its_timeout() {
    let f = fixture(config().half_open(1, secs(5)));
    f.open();
    f.clock.advance(secs(10));
    let stuck = f.registry.try_acquire(&f.id).unwrap();
    assert!(f.registry.try_acquire(&f.id).is_err());
    f.clock.advance(secs(4));
    assert_eq!(f.state(), HalfOpen);
    assert!(!f.registry.is_available(&f.id));
    f.clock.advance(secs(1));
    // The stuck probe counts as a failure: open again, and half-open after the wait.
    assert!(f.registry.is_available(&f.id));
    assert_eq!(f.state(), Open);
    f.clock.advance(secs(10));
    let probe = f.registry.try_acquire(&f.id).unwrap();
    // The stuck call finally returns: ignored.
    stuck.success();
    assert_eq!(f.state(), HalfOpen);
    probe.success();
    assert_eq!(f.state(), Closed);
}

#[test]
fn dropped_probe_returns_its_permit() {
    let f = fixture(config().half_open(1, secs(5)));
    f.open();
    f.clock.advance(secs(10));
    let p = f.registry.try_acquire(&f.id).unwrap();
    assert!(f.registry.try_acquire(&f.id).is_err());
    drop(p);
    f.registry.try_acquire(&f.id).unwrap().success();
    assert_eq!(f.state(), Closed);
}

#[test]
fn forced_open_and_disabled() {
    let f = fixture(config());
    let b = f.registry.get(&f.id);
    b.force_open();
    assert!(f.registry.try_acquire(&f.id).is_err());
    f.clock.advance(secs(1000));
    assert_eq!(f.state(), BreakerState::ForcedOpen);
    b.disable();
    for _ in 0..10 {
        f.fail();
    }
    assert_eq!(f.state(), BreakerState::Disabled);
    b.reset();
    assert_eq!(f.state(), Closed);
}

#[tokio::test]
async fn event_stream_sees_every_transition() {
    let f = fixture(config());
    let mut rx = f.registry.subscribe();
    f.open();
    f.clock.advance(secs(10));
    f.ok();
    let e = rx.recv().await.unwrap();
    assert_eq!(
        (e.endpoint.as_str(), e.from, e.to, e.at),
        ("billing-1", Closed, Open, secs(0))
    );
    let e = rx.recv().await.unwrap();
    assert_eq!((e.from, e.to, e.at), (Open, HalfOpen, secs(10)));
    assert!(rx.try_recv().is_err());
}

#[test]
fn invalid_configs_are_rejected() {
    for bad in [
        config().failure_rate_threshold(0.0),
        config().failure_rate_threshold(101.0),
        config().window(SlidingWindow::Count { calls: 0 }),
        config().window(SlidingWindow::Time { seconds: 0 }),
        config().minimum_calls(0),
        config().half_open(0, secs(1)),
        config().half_open(1, Duration::ZERO),
    ] {
        let err = BreakerRegistry::new(bad).unwrap_err();
        assert!(
            matches!(err, OrchestrateError::InvalidInput { .. }),
            "{err}"
        );
    }
}

// ---- outlier ejection ----

fn detector(clock: &Arc<ManualMonotonicClock>, percent: u32) -> OutlierDetector {
    OutlierDetector::with_clock(
        OutlierConfig::default()
            .consecutive_failures(3)
            .ejection_time(secs(30), secs(100))
            .max_ejection_percent(percent),
        clock.clone(),
    )
    .unwrap()
}

fn ids(n: usize) -> Vec<EndpointId> {
    (0..n).map(|i| EndpointId::new(format!("e{i}"))).collect()
}

#[test]
fn ejects_after_consecutive_failures_only() {
    let clock = Arc::new(ManualMonotonicClock::new());
    let d = detector(&clock, 50);
    let ids = ids(4);
    d.set_endpoints(&ids);
    d.record_failure(&ids[0], FAIL);
    d.record_failure(&ids[0], FAIL);
    d.record_success(&ids[0]);
    d.record_failure(&ids[0], FAIL);
    d.record_failure(&ids[0], FAIL);
    // A non-failure kind also breaks the streak.
    d.record_failure(&ids[0], ErrorKind::NotFound);
    d.record_failure(&ids[0], FAIL);
    assert!(!d.is_ejected("e0"));
    d.record_failure(&ids[0], FAIL);
    d.record_failure(&ids[0], FAIL);
    assert!(d.is_ejected("e0"));
    assert!(!d.is_available(&ids[0]));
    assert_eq!(d.ejected(), vec![ids[0].clone()]);
}

#[test]
fn ejection_time_grows_and_is_capped_and_endpoints_come_back() {
    let clock = Arc::new(ManualMonotonicClock::new());
    let d = detector(&clock, 50);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    d.add_listener(Arc::new(move |e: &OutlierEvent| {
        sink.lock().unwrap().push(e.change)
    }));
    let ids = ids(2);
    d.set_endpoints(&ids);
    let eject = || {
        for _ in 0..3 {
            d.record_failure(&ids[0], FAIL);
        }
    };
    let mut durations = Vec::new();
    for _ in 0..5 {
        eject();
        assert!(d.is_ejected("e0"));
        let Some(OutlierChange::Ejected { duration, .. }) = events.lock().unwrap().last().copied()
        else {
            panic!("no ejection event");
        };
        durations.push(duration);
        clock.advance(duration - Duration::from_millis(1));
        assert!(d.is_ejected("e0"));
        clock.advance(Duration::from_millis(1));
        assert!(!d.is_ejected("e0"));
        d.sweep();
        assert_eq!(
            events.lock().unwrap().last(),
            Some(&OutlierChange::Returned)
        );
    }
    assert_eq!(
        durations,
        [secs(30), secs(60), secs(90), secs(100), secs(100)]
    );

    // After staying healthy for a long time, the multiplier decays back.
    clock.advance(secs(30 * 10));
    eject();
    assert_eq!(
        events.lock().unwrap().last(),
        Some(&OutlierChange::Ejected {
            duration: secs(30),
            times: 1
        })
    );
}

#[test]
fn max_ejection_percent_caps_how_many_are_out() {
    let clock = Arc::new(ManualMonotonicClock::new());
    let d = detector(&clock, 30);
    let ids = ids(10);
    d.set_endpoints(&ids);
    for id in &ids {
        for _ in 0..3 {
            d.record_failure(id, FAIL);
        }
    }
    assert_eq!(d.ejected().len(), 3);
    // Once one returns, another failing endpoint may take its place.
    clock.advance(secs(30));
    d.record_failure(&ids[9], FAIL);
    assert!(d.is_ejected("e9"));

    // A small service may always lose one endpoint, never more than the cap allows.
    let d = detector(&clock, 10);
    let two = self::ids(2);
    d.set_endpoints(&two);
    for id in &two {
        for _ in 0..3 {
            d.record_failure(id, FAIL);
        }
    }
    assert_eq!(d.ejected(), vec![two[0].clone()]);
}

#[test]
fn invalid_outlier_configs_are_rejected() {
    for bad in [
        OutlierConfig::default().consecutive_failures(0),
        OutlierConfig::default().ejection_time(Duration::ZERO, secs(1)),
        OutlierConfig::default().ejection_time(secs(10), secs(1)),
        OutlierConfig::default().max_ejection_percent(101),
    ] {
        assert!(OutlierDetector::new(bad).is_err());
    }
}
