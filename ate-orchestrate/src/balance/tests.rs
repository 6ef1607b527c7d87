use super::*;
use crate::breaker::{
    BreakerConfig, BreakerRegistry, BreakerState, OutlierConfig, OutlierDetector, SlidingWindow,
};
use crate::clock::ManualMonotonicClock;
use crate::outcome::Outcome;
use ate_core::ErrorKind;
use std::collections::HashMap;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

fn balancer(strategy: Strategy) -> Balancer<()> {
    Balancer::builder("svc", strategy).build().unwrap()
}

fn eps(ids: &[&str]) -> Vec<Endpoint<()>> {
    ids.iter().map(|id| Endpoint::new(*id, ())).collect()
}

fn picks(b: &Balancer<()>, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| b.pick(None).unwrap().id().to_string())
        .collect()
}

fn counts(ids: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for id in ids {
        *m.entry(id.clone()).or_default() += 1;
    }
    m
}

#[derive(Debug, Default)]
struct Recorder(StdMutex<Vec<(String, Outcome, Duration)>>);

impl OutcomeObserver for Recorder {
    fn on_outcome(&self, endpoint: &EndpointId, outcome: Outcome, latency: Duration) {
        self.0
            .lock()
            .unwrap()
            .push((endpoint.to_string(), outcome, latency));
    }
}

#[derive(Debug, Default)]
struct Deny(StdMutex<Vec<String>>);

impl Availability for Deny {
    fn is_available(&self, endpoint: &EndpointId) -> bool {
        !self
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|d| d == endpoint.as_str())
    }
}

#[test]
fn round_robin_takes_each_endpoint_in_order() {
    let b = balancer(Strategy::RoundRobin);
    b.update(eps(&["a", "b", "c"])).unwrap();
    assert_eq!(picks(&b, 7), ["a", "b", "c", "a", "b", "c", "a"]);
}

#[test]
fn smooth_weighted_5_1_1_is_nginx_sequence_every_cycle() {
    let b = balancer(Strategy::SmoothWeighted);
    b.update(vec![
        Endpoint::new("a", ()).weight(5),
        Endpoint::new("b", ()),
        Endpoint::new("c", ()),
    ])
    .unwrap();
    let expected = ["a", "a", "b", "a", "c", "a", "a"];
    assert_eq!(picks(&b, 7), expected);
    assert_eq!(picks(&b, 7), expected);
}

#[test]
fn least_request_prefers_the_less_loaded() {
    let deny = Arc::new(Deny::default());
    let b: Balancer<()> = Balancer::builder("svc", Strategy::LeastRequest)
        .availability(deny.clone())
        .build()
        .unwrap();
    b.update(eps(&["busy", "idle"])).unwrap();
    // Load "busy" with 10 requests in flight while "idle" is refused.
    deny.0.lock().unwrap().push("idle".into());
    let held: Vec<_> = (0..10).map(|_| b.pick(None).unwrap()).collect();
    deny.0.lock().unwrap().clear();
    assert!(held.iter().all(|g| g.id().as_str() == "busy"));
    assert_eq!(b.in_flight("busy"), Some(10));
    // With two endpoints, P2C always compares both: every pick goes to the idle one.
    for _ in 0..50 {
        assert_eq!(b.pick(None).unwrap().id().as_str(), "idle");
    }
}

#[test]
fn least_request_respects_weights() {
    let b = balancer(Strategy::LeastRequest);
    b.update(vec![
        Endpoint::new("big", ()).weight(4),
        Endpoint::new("small", ()),
    ])
    .unwrap();
    let mut held = Vec::new();
    for _ in 0..50 {
        held.push(b.pick(None).unwrap());
    }
    let big = b.in_flight("big").unwrap();
    let small = b.in_flight("small").unwrap();
    // Loads stay proportional to weight: 40 / 10 give or take one.
    assert!((39..=41).contains(&big), "big {big}, small {small}");
}

#[test]
fn random_covers_every_endpoint_and_follows_weights() {
    let b = balancer(Strategy::Random);
    b.update(eps(&["a", "b", "c", "d"])).unwrap();
    let c = counts(&picks(&b, 2000));
    assert_eq!(c.len(), 4);
    assert!(c.values().all(|&n| n > 300), "{c:?}");

    b.update(vec![
        Endpoint::new("heavy", ()).weight(9),
        Endpoint::new("light", ()),
    ])
    .unwrap();
    let c = counts(&picks(&b, 5000));
    assert!((4200..=4800).contains(&c["heavy"]), "{c:?}");
}

#[test]
fn consistent_hash_is_stable_for_a_key_and_moves_few_keys() {
    let b = balancer(Strategy::ConsistentHash);
    let ids: Vec<String> = (0..10).map(|i| format!("node-{i}")).collect();
    b.update(ids.iter().map(|i| Endpoint::new(i.as_str(), ())))
        .unwrap();
    let owner = |b: &Balancer<()>, k: usize| {
        b.pick(Some(format!("tenant-{k}").as_bytes()))
            .unwrap()
            .id()
            .to_string()
    };
    let before: Vec<String> = (0..2000).map(|k| owner(&b, k)).collect();
    let again: Vec<String> = (0..2000).map(|k| owner(&b, k)).collect();
    assert_eq!(before, again);

    // Removing node-3 moves only node-3's keys.
    b.update(
        ids.iter()
            .filter(|i| *i != "node-3")
            .map(|i| Endpoint::new(i.as_str(), ())),
    )
    .unwrap();
    let after: Vec<String> = (0..2000).map(|k| owner(&b, k)).collect();
    let moved = before
        .iter()
        .zip(&after)
        .filter(|(x, y)| x != y)
        .inspect(|(x, _)| assert_eq!(x.as_str(), "node-3"))
        .count();
    // Expected 2000 / 10 = 200.
    assert!((80..=350).contains(&moved), "{moved}");
}

#[test]
fn panic_threshold_balances_over_all_when_too_few_are_healthy() {
    let b = balancer(Strategy::RoundRobin);
    b.update(vec![
        Endpoint::new("a", ()),
        Endpoint::new("b", ()).healthy(false),
        Endpoint::new("c", ()),
    ])
    .unwrap();
    assert!(!b.is_panicking());
    assert!(picks(&b, 6).iter().all(|p| p != "b"));

    // 1 of 3 healthy is below 50%: every endpoint takes traffic.
    b.update(vec![
        Endpoint::new("a", ()),
        Endpoint::new("b", ()).healthy(false),
        Endpoint::new("c", ()).healthy(false),
    ])
    .unwrap();
    assert!(b.is_panicking());
    assert_eq!(counts(&picks(&b, 6)).len(), 3);

    // Panic mode off: only the healthy one.
    let strict: Balancer<()> = Balancer::builder("svc", Strategy::RoundRobin)
        .panic_threshold(0.0)
        .build()
        .unwrap();
    strict
        .update(vec![
            Endpoint::new("a", ()),
            Endpoint::new("b", ()).healthy(false),
            Endpoint::new("c", ()).healthy(false),
        ])
        .unwrap();
    assert!(picks(&strict, 6).iter().all(|p| p == "a"));
    strict
        .update(vec![Endpoint::new("a", ()).healthy(false)])
        .unwrap();
    let err = strict.pick(None).unwrap_err();
    assert!(matches!(err, OrchestrateError::NoAvailableInstance { .. }));
}

#[test]
fn bad_sets_are_rejected_and_change_nothing() {
    let b = balancer(Strategy::SmoothWeighted);
    b.update(eps(&["a"])).unwrap();
    for bad in [
        vec![Endpoint::new("x", ()).weight(0)],
        vec![Endpoint::new("x", ()).weight(crate::registry::MAX_WEIGHT + 1)],
        vec![Endpoint::new("x", ()), Endpoint::new("x", ())],
    ] {
        let err = b.update(bad).unwrap_err();
        assert!(
            matches!(err, OrchestrateError::InvalidInput { .. }),
            "{err}"
        );
        assert!(err.to_string().contains('x'), "{err}");
    }
    assert_eq!(b.eligible(), vec![EndpointId::new("a")]);
    assert!(
        Balancer::builder("svc", Strategy::Random)
            .panic_threshold(1.5)
            .build::<()>()
            .is_err()
    );
}

#[test]
fn empty_set_gives_no_available_instance() {
    for strategy in [
        Strategy::RoundRobin,
        Strategy::SmoothWeighted,
        Strategy::LeastRequest,
        Strategy::Random,
        Strategy::ConsistentHash,
    ] {
        let b = balancer(strategy);
        let err = b.pick(Some(b"k")).unwrap_err();
        match err {
            OrchestrateError::NoAvailableInstance { service, .. } => assert_eq!(service, "svc"),
            other => panic!("{other}"),
        }
        b.update(eps(&["a"])).unwrap();
        assert!(b.pick(Some(b"k")).is_ok());
        b.update(Vec::new()).unwrap();
        assert!(b.pick(None).is_err());
    }
}

#[test]
fn guards_count_in_flight_until_completed_or_dropped() {
    let b = balancer(Strategy::RoundRobin);
    b.update(eps(&["a"])).unwrap();
    let g1 = b.pick(None).unwrap();
    let g2 = b.pick(None).unwrap();
    let g3 = b.pick(None).unwrap();
    assert_eq!(b.in_flight("a"), Some(3));
    g1.success();
    g2.failure(ErrorKind::Unavailable);
    assert_eq!(b.in_flight("a"), Some(1));
    drop(g3);
    assert_eq!(b.in_flight("a"), Some(0));
}

#[test]
fn in_flight_counts_survive_updates_for_endpoints_that_stay() {
    let b = balancer(Strategy::LeastRequest);
    b.update(eps(&["a"])).unwrap();
    let g = b.pick(None).unwrap();
    b.update(eps(&["a", "b"])).unwrap();
    assert_eq!(b.in_flight("a"), Some(1));
    drop(g);
    assert_eq!(b.in_flight("a"), Some(0));
    // A removed endpoint's old guard completes harmlessly.
    let g = b.pick(None).unwrap();
    b.update(eps(&["c"])).unwrap();
    g.success();
    assert_eq!(b.in_flight("c"), Some(0));
}

#[test]
fn observers_get_outcome_and_latency() {
    let clock = Arc::new(ManualMonotonicClock::new());
    let recorder = Arc::new(Recorder::default());
    let b: Balancer<&str> = Balancer::builder("svc", Strategy::RoundRobin)
        .clock(clock.clone())
        .observer(recorder.clone())
        .build()
        .unwrap();
    b.update([Endpoint::new("a", "http://10.0.0.1")]).unwrap();
    let g = b.pick(None).unwrap();
    assert_eq!(*g.value(), "http://10.0.0.1");
    clock.advance(Duration::from_millis(120));
    g.failure(ErrorKind::Unavailable);
    let g = b.pick(None).unwrap();
    clock.advance(Duration::from_millis(5));
    drop(g);
    b.pick(None).unwrap().success();
    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (
                "a".to_string(),
                Outcome::Failure(ErrorKind::Unavailable),
                Duration::from_millis(120)
            ),
            (
                "a".to_string(),
                Outcome::Cancelled,
                Duration::from_millis(5)
            ),
            ("a".to_string(), Outcome::Success, Duration::ZERO),
        ]
    );
}

#[test]
fn unavailable_endpoints_are_skipped_by_every_strategy() {
    for strategy in [
        Strategy::RoundRobin,
        Strategy::SmoothWeighted,
        Strategy::LeastRequest,
        Strategy::Random,
        Strategy::ConsistentHash,
    ] {
        let deny = Arc::new(Deny::default());
        let b: Balancer<()> = Balancer::builder("svc", strategy)
            .availability(deny.clone())
            .build()
            .unwrap();
        b.update(eps(&["a", "b", "c"])).unwrap();
        deny.0.lock().unwrap().push("b".into());
        for k in 0..60 {
            let key = format!("k{k}");
            let id = b.pick(Some(key.as_bytes())).unwrap().id().to_string();
            assert_ne!(id, "b", "{strategy:?}");
        }
        deny.0.lock().unwrap().extend(["a".into(), "c".into()]);
        let err = b.pick(Some(b"k")).unwrap_err();
        assert!(
            err.to_string().contains("unavailable"),
            "{strategy:?}: {err}"
        );
    }
}

#[test]
fn from_instance_maps_weight_and_health() {
    use crate::registry::{HealthStatus, InstanceId, InstanceSpec, Scope, ServiceName};
    let spec = InstanceSpec::new(
        Scope::Platform,
        ServiceName::new("billing").unwrap(),
        InstanceId::new("billing-1").unwrap(),
        "http://127.0.0.1:8080",
    )
    .unwrap()
    .weight(3);
    let now = chrono::Utc::now();
    let mut instance: crate::registry::Instance = serde_json::from_value(serde_json::json!({
        "spec": spec,
        "status": "critical",
        "status_output": "",
        "registered_at": now,
        "last_heartbeat": now,
        "status_since": now,
    }))
    .unwrap();
    let e = Endpoint::from_instance(instance.clone());
    assert_eq!(
        (e.id.as_str(), e.weight, e.healthy),
        ("billing-1", 3, false)
    );
    instance.status = HealthStatus::Warning;
    assert!(Endpoint::from_instance(instance).healthy);
}

#[test]
fn picks_are_safe_from_many_threads() {
    let b = Arc::new(balancer(Strategy::LeastRequest));
    b.update(eps(&["a", "b", "c", "d"])).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let b = Arc::clone(&b);
            std::thread::spawn(move || {
                for i in 0..2000 {
                    let g = b.pick(None).unwrap();
                    if (i + t) % 3 == 0 {
                        g.success();
                    }
                    if i == 1000 && t == 0 {
                        b.update(eps(&["a", "b", "c", "d", "e"])).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for id in ["a", "b", "c", "d", "e"] {
        assert_eq!(b.in_flight(id), Some(0), "{id}");
    }
}

// ---- breakers and outlier ejection as availability hooks ----

#[test]
fn balancer_skips_open_breakers() {
    let clock = Arc::new(ManualMonotonicClock::new());
    // Count window of 10, 50% failures, 4 minimum calls, 10 s open.
    let config = BreakerConfig::default()
        .window(SlidingWindow::Count { calls: 10 })
        .minimum_calls(4)
        .wait_in_open(Duration::from_secs(10))
        .half_open(2, Duration::from_secs(5));
    let registry = Arc::new(BreakerRegistry::with_clock(config, clock.clone()).unwrap());
    let b: Balancer<()> = Balancer::builder("billing", Strategy::RoundRobin)
        .availability(registry.clone())
        .build()
        .unwrap();
    b.update([Endpoint::new("a", ()), Endpoint::new("b", ())])
        .unwrap();
    let a = EndpointId::new("a");
    for _ in 0..4 {
        let mut g = (0..4)
            .map(|_| b.pick(None).unwrap())
            .find(|g| g.id() == &a)
            .unwrap();
        g.attach_permit(registry.try_acquire(&a).unwrap());
        g.failure(ErrorKind::Unavailable);
    }
    assert_eq!(registry.state("a"), BreakerState::Open);
    for _ in 0..10 {
        assert_eq!(b.pick(None).unwrap().id().as_str(), "b");
    }
    clock.advance(Duration::from_secs(10));
    assert!((0..4).any(|_| b.pick(None).unwrap().id() == &a));
}

#[test]
fn detector_as_observer_and_availability_of_a_balancer() {
    let clock = Arc::new(ManualMonotonicClock::new());
    let d = Arc::new(
        OutlierDetector::with_clock(
            OutlierConfig::default()
                .consecutive_failures(3)
                .ejection_time(Duration::from_secs(30), Duration::from_secs(100))
                .max_ejection_percent(50),
            clock.clone(),
        )
        .unwrap(),
    );
    let b: Balancer<()> = Balancer::builder("svc", Strategy::RoundRobin)
        .observer(d.clone())
        .availability(d.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    b.update([Endpoint::new("a", ()), Endpoint::new("b", ())])
        .unwrap();
    // Round robin alternates: a fails, b succeeds.
    for _ in 0..6 {
        let g = b.pick(None).unwrap();
        if g.id().as_str() == "a" {
            g.failure(ErrorKind::Unavailable);
        } else {
            g.success();
        }
    }
    assert!(d.is_ejected("a"));
    for _ in 0..6 {
        assert_eq!(b.pick(None).unwrap().id().as_str(), "b");
    }
    clock.advance(Duration::from_secs(30));
    assert!((0..2).any(|_| b.pick(None).unwrap().id().as_str() == "a"));
}
