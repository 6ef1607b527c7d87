#![allow(clippy::unwrap_used)]

use super::*;
use crate::outcome::Outcome;
use crate::registry::{HealthStatus, InstanceId, ServiceName};
use ate_core::{Classify, ErrorKind, ManualClock};
use chrono::{DateTime, TimeDelta};
use std::sync::Arc;
use std::time::Duration;

fn svc(s: &str) -> ServiceName {
    ServiceName::new(s).unwrap()
}
fn inst(s: &str) -> InstanceId {
    InstanceId::new(s).unwrap()
}
fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
    ))
}
fn recorder(clock: &Arc<ManualClock>) -> MetricsRecorder {
    MetricsRecorder::new(RecorderConfig::default())
        .unwrap()
        .with_clock(clock.clone())
}

fn exact(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn assert_close(got: Option<Duration>, want: Duration, what: &str) {
    let got = got.unwrap();
    let err = (got.as_secs_f64() - want.as_secs_f64()).abs() / want.as_secs_f64();
    assert!(
        err <= RELATIVE_ERROR + 1e-6,
        "{what}: got {got:?}, exact {want:?}, relative error {err}"
    );
}

#[test]
fn percentiles_are_within_the_documented_error_of_exact_samples() {
    let clock = clock();
    let rec = recorder(&clock);
    let (s, i) = (svc("search"), inst("search-1"));
    let mut rng = fastrand::Rng::with_seed(7);
    let mut samples = Vec::new();
    for second in 0..20 {
        for _ in 0..1_000 {
            // Log-uniform between 100 µs and 2 s, plus a slow tail.
            let exp = rng.f64() * (2.0f64 / 0.0001).ln();
            let mut secs = 0.0001 * exp.exp();
            if rng.u32(0..100) == 0 {
                secs *= 5.0;
            }
            let d = Duration::from_secs_f64(secs);
            samples.push(d);
            rec.record(&s, &i, d, Outcome::Success);
        }
        if second < 19 {
            clock.advance(TimeDelta::seconds(1));
        }
    }
    samples.sort();
    let stats = rec.service_stats(&s, Duration::from_secs(60)).unwrap();
    assert_eq!(stats.count, 20_000);
    assert_close(stats.p50, exact(&samples, 0.50), "p50");
    assert_close(stats.p95, exact(&samples, 0.95), "p95");
    assert_close(stats.p99, exact(&samples, 0.99), "p99");
}

#[test]
fn small_samples_use_nearest_rank() {
    let clock = clock();
    let rec = recorder(&clock);
    let (s, i) = (svc("a"), inst("a-1"));
    for ms in [10, 20, 30, 40, 1000] {
        rec.record(&s, &i, Duration::from_millis(ms), Outcome::Success);
    }
    let stats = rec.instance_stats(&s, &i, Duration::from_secs(10)).unwrap();
    assert_close(stats.p50, Duration::from_millis(30), "p50");
    assert_close(stats.p95, Duration::from_millis(1000), "p95");
    assert_close(stats.p99, Duration::from_millis(1000), "p99");
}

#[test]
fn a_subset_of_instances_merges_as_one_and_leaves_the_others_out() {
    let clock = clock();
    let rec = recorder(&clock);
    let s = svc("web");
    // Two instances one caller may see (fast, one error) and one it may not (slow).
    for ms in [10, 20, 30] {
        rec.record(&s, &inst("a"), Duration::from_millis(ms), Outcome::Success);
    }
    rec.record(
        &s,
        &inst("b"),
        Duration::from_millis(40),
        Outcome::Failure(ErrorKind::Unavailable),
    );
    for _ in 0..10 {
        rec.record(&s, &inst("other"), Duration::from_secs(5), Outcome::Success);
    }
    let window = Duration::from_secs(10);
    let mine = rec
        .instances_stats(&s, &[inst("a"), inst("b"), inst("gone")], window)
        .unwrap();
    assert_eq!((mine.count, mine.errors), (4, 1));
    // Percentiles of the four requests together: nearest rank 2 of 4 is 20 ms, 4 of 4 40 ms.
    assert_close(mine.p50, Duration::from_millis(20), "p50");
    assert_close(mine.p99, Duration::from_millis(40), "p99");
    let all = rec.service_stats(&s, window).unwrap();
    assert_eq!(all.count, 14);
    let none = rec.instances_stats(&s, &[], window).unwrap();
    assert_eq!((none.count, none.p50), (0, None));
    assert!(
        rec.instances_stats(&s, &[inst("a")], Duration::ZERO)
            .is_err()
    );
}

#[test]
fn old_records_leave_the_window_as_time_moves() {
    let clock = clock();
    let rec = recorder(&clock);
    let (s, i) = (svc("a"), inst("a-1"));
    for _ in 0..10 {
        rec.record(&s, &i, Duration::from_millis(500), Outcome::Success);
    }
    clock.advance(TimeDelta::seconds(30));
    for _ in 0..5 {
        rec.record(&s, &i, Duration::from_millis(5), Outcome::Success);
    }
    let wide = rec.service_stats(&s, Duration::from_secs(60)).unwrap();
    assert_eq!(wide.count, 15);
    let narrow = rec.service_stats(&s, Duration::from_secs(10)).unwrap();
    assert_eq!(narrow.count, 5);
    assert_close(
        narrow.p99,
        Duration::from_millis(5),
        "p99 of the narrow window",
    );

    // 31 s after the first batch, a 30 s window no longer holds it.
    clock.advance(TimeDelta::seconds(1));
    assert_eq!(
        rec.service_stats(&s, Duration::from_secs(30))
            .unwrap()
            .count,
        5
    );

    // Far past the longest window, a slot reused by a new second holds only the new data.
    clock.advance(TimeDelta::seconds(600));
    let empty = rec.service_stats(&s, Duration::from_secs(300)).unwrap();
    assert_eq!(empty.count, 0);
    assert_eq!(empty.p50, None);
    assert_eq!(empty.error_rate, 0.0);
    rec.record(&s, &i, Duration::from_millis(7), Outcome::Success);
    assert_eq!(
        rec.service_stats(&s, Duration::from_secs(300))
            .unwrap()
            .count,
        1
    );
}

#[test]
fn rates_and_error_rates_per_service_and_instance() {
    let clock = clock();
    let rec = recorder(&clock);
    let s = svc("pay");
    let (a, b) = (inst("pay-a"), inst("pay-b"));
    for _ in 0..60 {
        rec.record(&s, &a, Duration::from_millis(1), Outcome::Success);
        rec.record(&s, &a, Duration::from_millis(1), Outcome::Success);
        rec.record(
            &s,
            &b,
            Duration::from_millis(1),
            Outcome::Failure(ErrorKind::Unavailable),
        );
        clock.advance(TimeDelta::seconds(1));
    }
    // The last second recorded is now one second back; a 60 s window ending now holds 59 s.
    clock.advance(TimeDelta::seconds(-1));
    let all = rec.service_stats(&s, Duration::from_secs(60)).unwrap();
    assert_eq!((all.count, all.errors), (180, 60));
    assert!(
        (all.rate_per_sec - 3.0).abs() < 1e-9,
        "{}",
        all.rate_per_sec
    );
    assert!((all.error_rate - 1.0 / 3.0).abs() < 1e-9);
    let only_b = rec.instance_stats(&s, &b, Duration::from_secs(60)).unwrap();
    assert_eq!(only_b.error_rate, 1.0);
    assert!((only_b.rate_per_sec - 1.0).abs() < 1e-9);
    let unknown = rec
        .service_stats(&svc("nobody"), Duration::from_secs(60))
        .unwrap();
    assert_eq!(unknown.count, 0);
}

#[test]
fn invalid_windows_and_configs_are_rejected() {
    let clock = clock();
    let rec = recorder(&clock);
    let s = svc("a");
    for w in [
        Duration::ZERO,
        Duration::from_millis(500),
        Duration::from_millis(1500),
        Duration::from_secs(301),
    ] {
        let err = rec.service_stats(&s, w).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{w:?}: {err}");
    }
    for config in [
        RecorderConfig::default().max_window(Duration::ZERO),
        RecorderConfig::default().max_window(Duration::from_secs(7200)),
        RecorderConfig::default().max_series(0),
    ] {
        let err = MetricsRecorder::new(config).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
}

#[test]
fn series_beyond_the_limit_are_dropped_and_counted() {
    let rec = MetricsRecorder::new(RecorderConfig::default().max_series(2)).unwrap();
    let s = svc("a");
    for n in 0..3 {
        rec.record(
            &s,
            &inst(&format!("a-{n}")),
            Duration::from_millis(1),
            Outcome::Success,
        );
    }
    assert_eq!(rec.dropped_records(), 1);
    assert_eq!(
        rec.service_stats(&s, Duration::from_secs(5)).unwrap().count,
        2
    );
    // Forgetting one frees room for another.
    rec.forget_instance(&s, &inst("a-0"));
    rec.record(&s, &inst("a-2"), Duration::from_millis(1), Outcome::Success);
    assert_eq!(rec.dropped_records(), 1);
    assert_eq!(
        rec.service_stats(&s, Duration::from_secs(5)).unwrap().count,
        2
    );
}

#[test]
fn text_rendering_has_every_family_with_its_labels_and_values() {
    let mut registry = Registry::default();
    let families = ServiceMetrics::new();
    families.register(&mut registry);
    let rec = MetricsRecorder::new(RecorderConfig::default())
        .unwrap()
        .with_exporter(families.clone());
    let (s, i) = (svc("billing"), inst("billing-1"));
    rec.record(&s, &i, Duration::from_millis(3), Outcome::Success);
    rec.record(&s, &i, Duration::from_millis(30), Outcome::Success);
    let failed: Result<(), OrchestrateError> = Err(OrchestrateError::Timeout {
        what: "call".into(),
        millis: 10,
    });
    rec.record(&s, &i, Duration::from_secs(2), Outcome::of(&failed));
    families.set_health_status(&s, &i, HealthStatus::Warning);
    families.set_breaker_state(&s, &i, BreakerStateMetric::Open);
    families.set_breaker_state(&s, &i, BreakerStateMetric::HalfOpen);
    families.observe_check_duration(&s, &i, "http", Duration::from_millis(4));

    let text = render_openmetrics(&registry).unwrap();
    let l = r#"service="billing",instance="billing-1""#;
    for line in [
        "# TYPE ate_requests counter".to_owned(),
        format!("ate_requests_total{{{l},outcome=\"success\"}} 2"),
        format!("ate_requests_total{{{l},outcome=\"error\"}} 1"),
        format!("ate_request_errors_total{{{l},kind=\"unavailable\"}} 1"),
        "# TYPE ate_request_duration_seconds histogram".to_owned(),
        "# UNIT ate_request_duration_seconds seconds".to_owned(),
        format!("ate_request_duration_seconds_count{{{l}}} 3"),
        format!("ate_request_duration_seconds_bucket{{le=\"0.005\",{l}}} 1"),
        format!("ate_request_duration_seconds_bucket{{le=\"0.05\",{l}}} 2"),
        format!("ate_instance_health_status{{{l},status=\"warning\"}} 1"),
        format!("ate_instance_health_status{{{l},status=\"passing\"}} 0"),
        format!("ate_instance_health_status{{{l},status=\"critical\"}} 0"),
        format!("ate_circuit_breaker_state{{{l}}} 2"),
        format!("ate_circuit_breaker_transitions_total{{{l},to=\"open\"}} 1"),
        format!("ate_circuit_breaker_transitions_total{{{l},to=\"half_open\"}} 1"),
        format!("ate_health_check_duration_seconds_count{{{l},kind=\"http\"}} 1"),
    ] {
        assert!(text.contains(&line), "missing {line:?} in:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));

    // Deregistration removes every series of the instance.
    rec.forget_instance(&s, &i);
    let text = render_openmetrics(&registry).unwrap();
    assert!(!text.contains("billing-1"), "{text}");
    assert_eq!(
        rec.service_stats(&s, Duration::from_secs(60))
            .unwrap()
            .count,
        0
    );
}

#[test]
fn concurrent_records_are_all_counted() {
    let rec = Arc::new(MetricsRecorder::new(RecorderConfig::default()).unwrap());
    let s = svc("a");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let rec = rec.clone();
            let s = s.clone();
            std::thread::spawn(move || {
                let i = inst(&format!("a-{}", t % 2));
                for _ in 0..2_000 {
                    rec.record(&s, &i, Duration::from_micros(50), Outcome::Success);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // The system clock may cross a few seconds while the threads run; the 60 s window holds
    // them all.
    assert_eq!(
        rec.service_stats(&s, Duration::from_secs(60))
            .unwrap()
            .count,
        8_000
    );
}

#[test]
fn cancelled_calls_are_not_recorded() {
    let mut registry = Registry::default();
    let families = ServiceMetrics::new();
    families.register(&mut registry);
    let clock = clock();
    let rec = recorder(&clock).with_exporter(families);
    let (s, i) = (svc("billing"), inst("billing-1"));
    rec.record(&s, &i, Duration::from_millis(3), Outcome::Cancelled);
    assert_eq!(
        rec.service_stats(&s, Duration::from_secs(60))
            .unwrap()
            .count,
        0
    );
    assert_eq!(rec.dropped_records(), 0);
    let text = render_openmetrics(&registry).unwrap();
    assert!(!text.contains("billing-1"), "{text}");
    // The same instance's answered calls still count.
    rec.record(&s, &i, Duration::from_millis(3), Outcome::Success);
    assert_eq!(
        rec.service_stats(&s, Duration::from_secs(60))
            .unwrap()
            .count,
        1
    );
}
