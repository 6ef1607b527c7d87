//! The rollup store's conformance cases: SQLite (file and memory) and PostgreSQL must pass
//! each unchanged. `tests/rollups.rs` runs the matrix.

use crate::support::epoch;
use crate::{assert_kind, member};
use ate_core::{ErrorKind, Principal, TenantId};
use ate_orchestrate::metrics::{HISTORY_READ, RollupPoint, RollupQuery, SqlRollups};
use chrono::{DateTime, TimeDelta, Utc};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

fn at(secs: i64) -> DateTime<Utc> {
    epoch() + TimeDelta::seconds(secs)
}

fn admin() -> Principal {
    Principal::platform_admin("ops").unwrap()
}

fn svc(
    tenant: Option<TenantId>,
    subject: &str,
    secs: i64,
    host: &str,
    count: u64,
    errors: u64,
    p99_ms: u64,
) -> RollupPoint {
    RollupPoint::new("service", tenant, subject, MINUTE, at(secs))
        .source(host)
        .counts(count, errors)
        .latency(
            Some(Duration::from_millis(p99_ms / 2)),
            Some(Duration::from_millis(p99_ms - 1)),
            Some(Duration::from_millis(p99_ms)),
        )
        .gauge(1.0)
}

pub async fn points_merge_across_hosts_and_steps_within_a_tenant(db: ate_core::Db) {
    let store = SqlRollups::open(db).await.unwrap();
    let (a, b) = (TenantId::new(), TenantId::new());
    store
        .record(&[
            svc(Some(a), "billing", 0, "host-1", 10, 1, 40),
            svc(Some(a), "billing", 0, "host-2", 5, 0, 90),
            svc(Some(a), "billing", 60, "host-1", 7, 7, 20),
            svc(Some(a), "search", 0, "host-1", 3, 0, 10),
            svc(Some(b), "billing", 0, "host-1", 1000, 0, 5),
            svc(None, "auth", 0, "host-1", 50, 0, 8),
        ])
        .await
        .unwrap();
    // The same source writing a bucket again replaces its point.
    store
        .record(&[svc(Some(a), "search", 0, "host-1", 4, 1, 12)])
        .await
        .unwrap();

    let reader = member(a, &[HISTORY_READ]);
    let q = RollupQuery::new("service", Some(a), at(0), at(120), MINUTE);
    let got = store.query(&reader, &q).await.unwrap();
    let summary: Vec<(&str, i64, u64, u64, Option<f64>)> = got
        .iter()
        .map(|b| {
            (
                b.subject.as_str(),
                (b.bucket - epoch()).num_seconds(),
                b.count,
                b.errors,
                b.p99_ms,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("billing", 0, 15, 1, Some(90.0)),
            ("billing", 60, 7, 7, Some(20.0)),
            ("search", 0, 4, 1, Some(12.0)),
        ]
    );
    assert_eq!(got[0].gauge, Some(1.0));
    // One subject, in 5-minute buckets: the two minutes merge.
    let five = store
        .query(
            &reader,
            &RollupQuery::new("service", Some(a), at(0), at(600), Duration::from_secs(300))
                .subject("billing"),
        )
        .await
        .unwrap();
    assert_eq!(five.len(), 1);
    assert_eq!(
        (five[0].count, five[0].errors, five[0].p99_ms),
        (22, 8, Some(90.0))
    );
    // Tenants read only their own series; the platform's are for administrators.
    assert_kind(
        store
            .query(
                &reader,
                &RollupQuery::new("service", Some(b), at(0), at(120), MINUTE),
            )
            .await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        store.query(&member(a, &[]), &q).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        store
            .query(
                &reader,
                &RollupQuery::new("service", None, at(0), at(120), MINUTE),
            )
            .await,
        ErrorKind::PermissionDenied,
    );
    let platform = store
        .query(
            &admin(),
            &RollupQuery::new("service", None, at(0), at(120), MINUTE),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            platform.len(),
            platform[0].subject.as_str(),
            platform[0].count
        ),
        (1, "auth", 50)
    );
    let theirs = store
        .query(
            &admin(),
            &RollupQuery::new("service", Some(b), at(0), at(120), MINUTE),
        )
        .await
        .unwrap();
    assert_eq!(theirs[0].count, 1000);
    // Bad queries and points are refused, and a batch with one bad point writes nothing.
    for bad in [
        RollupQuery::new("service", Some(a), at(0), at(120), Duration::from_secs(7)),
        RollupQuery::new(
            "service",
            Some(a),
            at(0),
            at(120),
            Duration::from_secs(5400),
        ),
        RollupQuery::new("service", Some(a), at(120), at(120), MINUTE),
        RollupQuery::new(
            "service",
            Some(a),
            at(0),
            at(86_400 * 30),
            Duration::from_secs(60),
        ),
    ] {
        assert_kind(store.query(&reader, &bad).await, ErrorKind::InvalidInput);
    }
    let batch = [
        svc(Some(a), "new", 0, "host-1", 1, 0, 5),
        svc(Some(a), "new", 0, "host-1", 1, 2, 5),
    ];
    assert_kind(store.record(&batch).await, ErrorKind::InvalidInput);
    let none = store
        .query(
            &reader,
            &RollupQuery::new("service", Some(a), at(0), at(120), MINUTE).subject("new"),
        )
        .await
        .unwrap();
    assert!(none.is_empty());
}

pub async fn old_points_are_downsampled_then_expired(db: ate_core::Db) {
    let store = SqlRollups::open(db).await.unwrap();
    let t = TenantId::new();
    let hour = 3600;
    // Three hours of minutes, from two hosts, and a storage gauge.
    let mut points = Vec::new();
    for m in 0..180 {
        points.push(svc(
            Some(t),
            "billing",
            m * 60,
            "host-1",
            2,
            1,
            10 + m as u64 % 7,
        ));
        points.push(svc(Some(t), "billing", m * 60, "host-2", 1, 0, 30));
        points.push(RollupPoint::new("storage", Some(t), "", MINUTE, at(m * 60)).gauge(m as f64));
    }
    store.record(&points).await.unwrap();
    let reader = member(t, &[HISTORY_READ]);
    let hourly = |store: SqlRollups, series: &'static str| {
        let reader = reader.clone();
        async move {
            store
                .query(
                    &reader,
                    &RollupQuery::new(
                        series,
                        Some(t),
                        at(0),
                        at(3 * hour),
                        Duration::from_secs(3600),
                    ),
                )
                .await
                .unwrap()
        }
    };
    let before = hourly(store.clone(), "service").await;
    let gauges_before = hourly(store.clone(), "storage").await;
    // Now is 3 h 30 min in; fine points are kept for 2 h: the first hour is merged.
    let now = at(3 * hour + 1800);
    let report = store
        .compact(
            now,
            Duration::from_secs(2 * hour as u64),
            Duration::from_secs(86_400),
        )
        .await
        .unwrap();
    assert_eq!((report.downsampled, report.expired), (180, 0));
    let after = hourly(store.clone(), "service").await;
    let totals = |v: &[ate_orchestrate::metrics::RollupBucket]| {
        v.iter()
            .map(|b| (b.count, b.errors, b.p99_ms))
            .collect::<Vec<_>>()
    };
    assert_eq!(totals(&after), totals(&before));
    let gauges = |v: &[ate_orchestrate::metrics::RollupBucket]| {
        v.iter().map(|b| b.gauge).collect::<Vec<_>>()
    };
    assert_eq!(
        gauges(&hourly(store.clone(), "storage").await),
        gauges(&gauges_before)
    );
    // The first hour now has one point per host and series: minute steps show one bucket.
    let fine = store
        .query(
            &reader,
            &RollupQuery::new("service", Some(t), at(0), at(hour), MINUTE),
        )
        .await
        .unwrap();
    assert_eq!(fine.len(), 1);
    assert_eq!((fine[0].count, fine[0].errors), (180, 60));
    // Compacting again changes nothing.
    let again = store
        .compact(
            now,
            Duration::from_secs(2 * hour as u64),
            Duration::from_secs(86_400),
        )
        .await
        .unwrap();
    assert_eq!((again.downsampled, again.expired), (0, 0));
    assert_eq!(
        totals(&hourly(store.clone(), "service").await),
        totals(&before)
    );
    // A day later every fine point is merged, and the hourly points older than a day expire.
    let later = at(3 * hour + 86_400 + 1);
    let report = store
        .compact(
            later,
            Duration::from_secs(2 * hour as u64),
            Duration::from_secs(86_400),
        )
        .await
        .unwrap();
    assert_eq!(report.downsampled, 360);
    assert!(report.expired >= 2, "{report:?}");
    let left = hourly(store.clone(), "service").await;
    assert!(left.len() <= 1, "{left:?}");
}
