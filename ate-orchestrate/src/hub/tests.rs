//! The hub end to end, against real HTTP servers on loopback: health checks drive
//! discovery and balancing, breakers take failing instances out, tenancy holds, several
//! hubs share one SQL registry.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::OrchestrateError;
use crate::balance::Strategy;
use crate::breaker::{BreakerConfig, BreakerState, SlidingWindow};
use crate::health::{CheckId, CheckKind, CheckSpec};
use crate::registry::{
    HealthStatus, InstanceId, InstanceKey, InstanceSpec, MemoryRegistry, Query, REGISTRY_WRITE,
    Scope, ServiceName, Visibility,
};
use ate_core::{Classify, ErrorKind, Principal, TenantId};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A loopback HTTP server answering every request with the status it is told.
struct Server {
    url: String,
    status: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn server() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let status = Arc::new(AtomicU16::new(200));
    let answer = status.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let status = answer.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = socket.read(&mut buf).await;
                let body = "ok";
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Server {
        url: format!("http://{addr}"),
        status,
        task,
    }
}

pub(super) fn name(s: &str) -> ServiceName {
    ServiceName::new(s).unwrap()
}

pub(super) fn iid(s: &str) -> InstanceId {
    InstanceId::new(s).unwrap()
}

pub(super) fn key(scope: Scope, service: &str, id: &str) -> InstanceKey {
    InstanceKey::new(scope, name(service), iid(id))
}

pub(super) fn admin() -> Principal {
    Principal::platform_admin("ops:tests").unwrap()
}

fn fast_check(scope: Scope, service: &str, id: &str, url: &str) -> CheckSpec {
    CheckSpec::new(
        CheckId::new(format!("{id}-http")).unwrap(),
        key(scope, service, id),
        CheckKind::http(format!("{url}/health")),
    )
    .interval(Duration::from_millis(40))
    .timeout(Duration::from_millis(30))
}

fn hub() -> ServiceHub {
    ServiceHub::builder(Arc::new(MemoryRegistry::new()))
        .build()
        .unwrap()
}

/// Waits (bounded) until `cond` holds.
pub(super) async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

async fn status_of(hub: &ServiceHub, service: &str, id: &str) -> HealthStatus {
    hub.registry()
        .get(&admin(), &key(Scope::Platform, service, id))
        .await
        .unwrap()
        .status
}

/// Picks `n` times (each finished as a success) and counts picks per instance.
async fn spread(
    hub: &ServiceHub,
    who: &Principal,
    service: &str,
    n: usize,
) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let pick = hub
            .pick(
                who,
                &name(service),
                PickOptions::new().strategy(Strategy::RoundRobin),
            )
            .await
            .unwrap();
        *counts
            .entry(pick.instance().spec.id.to_string())
            .or_insert(0) += 1;
        pick.success();
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_drive_failover_and_recovery() {
    let (a, b) = (server().await, server().await);
    let hub = hub();
    for (id, s) in [("api-a", &a), ("api-b", &b)] {
        let spec = InstanceSpec::new(Scope::Platform, name("api"), iid(id), &s.url).unwrap();
        let instance = hub
            .register(
                &admin(),
                spec,
                vec![fast_check(Scope::Platform, "api", id, &s.url)],
            )
            .await
            .unwrap();
        assert_eq!(
            instance.status,
            HealthStatus::Critical,
            "new instances start critical"
        );
    }
    // Nothing passes yet: no pick (no panic mode with every instance critical).
    eventually("both instances passing", || async {
        status_of(&hub, "api", "api-a").await == HealthStatus::Passing
            && status_of(&hub, "api", "api-b").await == HealthStatus::Passing
    })
    .await;
    let counts = spread(&hub, &admin(), "api", 20).await;
    assert_eq!(counts.get("api-a"), Some(&10));
    assert_eq!(counts.get("api-b"), Some(&10));

    // b starts failing its checks: it turns critical and takes no new request.
    b.status.store(503, Ordering::SeqCst);
    eventually("api-b critical", || async {
        status_of(&hub, "api", "api-b").await == HealthStatus::Critical
    })
    .await;
    let counts = spread(&hub, &admin(), "api", 20).await;
    assert_eq!(counts.get("api-a"), Some(&20), "{counts:?}");
    let results = hub
        .health()
        .results(&CheckId::new("api-b-http").unwrap())
        .unwrap();
    assert!(
        results.iter().any(|r| r.output.contains("503")),
        "{results:?}"
    );

    // It recovers and comes back.
    b.status.store(200, Ordering::SeqCst);
    eventually("api-b passing again", || async {
        status_of(&hub, "api", "api-b").await == HealthStatus::Passing
    })
    .await;
    let counts = spread(&hub, &admin(), "api", 20).await;
    assert_eq!(counts.get("api-b"), Some(&10), "{counts:?}");

    // The picks were measured.
    let text = hub.metrics_text().unwrap();
    assert!(text.contains("ate_requests_total"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("ate_requests_total")
            && l.contains("instance=\"api-b\"")
            && l.contains("outcome=\"success\"")),
        "{text}"
    );
    assert!(text.contains("ate_instance_health_status"), "{text}");
    // Every probe run's duration reached the check-duration histogram.
    assert!(
        text.lines()
            .any(|l| l.starts_with("ate_health_check_duration_seconds_count")
                && l.contains("instance=\"api-a\"")
                && l.contains("kind=\"http\"")
                && !l.ends_with(" 0")),
        "{text}"
    );
    let stats = hub
        .stats(&name("api"), None, Duration::from_secs(60))
        .unwrap();
    assert_eq!(stats.count, 60);
    assert_eq!(stats.errors, 0);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_takes_an_instance_out_until_it_recovers() {
    let config = HubConfig::default().breaker(
        BreakerConfig::default()
            .window(SlidingWindow::Count { calls: 4 })
            .minimum_calls(4)
            .failure_rate_threshold(50.0)
            .wait_in_open(Duration::from_secs(3600)),
    );
    let hub = ServiceHub::builder(Arc::new(MemoryRegistry::new()))
        .config(config)
        .build()
        .unwrap();
    for id in ["db-a", "db-b"] {
        let spec =
            InstanceSpec::new(Scope::Platform, name("db"), iid(id), "tcp://127.0.0.1:1").unwrap();
        hub.register(&admin(), spec, vec![]).await.unwrap();
        hub.set_status(
            &admin(),
            &key(Scope::Platform, "db", id),
            HealthStatus::Passing,
            "",
        )
        .await
        .unwrap();
    }
    // Every call to db-b fails; calls to db-a succeed.
    for _ in 0..20 {
        let pick = hub
            .pick(
                &admin(),
                &name("db"),
                PickOptions::new().strategy(Strategy::RoundRobin),
            )
            .await
            .unwrap();
        if pick.instance().spec.id.as_str() == "db-b" {
            pick.failure(ErrorKind::Unavailable);
        } else {
            pick.success();
        }
    }
    let states: HashMap<_, _> = hub.breaker_states(&name("db")).into_iter().collect();
    assert_eq!(
        states.get("platform/db-b"),
        Some(&BreakerState::Open),
        "{states:?}"
    );
    assert_eq!(states.get("platform/db-a"), Some(&BreakerState::Closed));
    // From then on only db-a is picked, though db-b is still "passing" in the registry.
    let counts = spread(&hub, &admin(), "db", 10).await;
    assert_eq!(counts.get("db-a"), Some(&10), "{counts:?}");
    let text = hub.metrics_text().unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("ate_circuit_breaker_state")
                && l.contains("instance=\"db-b\"")
                && l.ends_with(" 1")),
        "{text}"
    );
    // Failures were recorded with their kind.
    let stats = hub
        .stats(&name("db"), Some(&iid("db-b")), Duration::from_secs(60))
        .unwrap();
    assert_eq!(stats.count, stats.errors);
    assert!(stats.count >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_pick_only_their_own_and_platform_instances() {
    let hub = hub();
    let (acme, globex) = (TenantId::new(), TenantId::new());
    let member = |t: TenantId| {
        Principal::new(t, "user:svc")
            .unwrap()
            .permission(REGISTRY_WRITE)
    };
    for (scope, id) in [
        (Scope::Platform, "shared"),
        (Scope::Tenant(acme), "acme-1"),
        (Scope::Tenant(globex), "globex-1"),
    ] {
        let who = match scope {
            Scope::Platform => admin(),
            Scope::Tenant(t) => member(t),
        };
        let spec = InstanceSpec::new(scope, name("render"), iid(id), "http://127.0.0.1:9").unwrap();
        hub.register(&who, spec, vec![]).await.unwrap();
        hub.set_status(&who, &key(scope, "render", id), HealthStatus::Passing, "")
            .await
            .unwrap();
    }
    let counts = spread(&hub, &member(acme), "render", 30).await;
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(counts.contains_key("acme-1") && counts.contains_key("shared"));
    // Asking for another tenant's view is refused, cached balancer or not.
    let err = hub
        .pick(
            &member(acme),
            &name("render"),
            PickOptions::new().visibility(Visibility::Tenant(globex)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    spread(&hub, &member(globex), "render", 2).await;
    let err = hub
        .pick(
            &member(acme),
            &name("render"),
            PickOptions::new().visibility(Visibility::Tenant(globex)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    // A tenant cannot register in another tenant's scope or the platform's.
    let spec = InstanceSpec::new(
        Scope::Tenant(globex),
        name("render"),
        iid("x"),
        "http://127.0.0.1:9",
    )
    .unwrap();
    assert_eq!(
        hub.register(&member(acme), spec, vec![])
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::PermissionDenied
    );
    // Consistent hashing keeps a tenant on one instance.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10 {
        let pick = hub
            .pick(
                &admin(),
                &name("render"),
                PickOptions::new()
                    .strategy(Strategy::ConsistentHash)
                    .visibility(Visibility::All)
                    .key(acme.to_string()),
            )
            .await
            .unwrap();
        seen.insert(pick.instance().spec.id.to_string());
        pick.success();
    }
    assert_eq!(seen.len(), 1);
}

/// The hub's writes on one instance follow the registry facade's tenancy rules: a tenant's
/// caller cannot change another tenant's instance or a platform one, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_the_hub_are_checked_by_the_registry_facade() {
    let hub = hub();
    let (acme, globex) = (TenantId::new(), TenantId::new());
    let member = |t: TenantId| {
        Principal::new(t, "user:svc")
            .unwrap()
            .permission(REGISTRY_WRITE)
    };
    let theirs = key(Scope::Tenant(globex), "render", "globex-1");
    let shared = key(Scope::Platform, "render", "shared");
    for (who, k) in [(member(globex), &theirs), (admin(), &shared)] {
        let spec = InstanceSpec::new(
            k.scope(),
            k.service().clone(),
            k.id().clone(),
            "http://127.0.0.1:9",
        )
        .unwrap();
        hub.register(&who, spec, vec![]).await.unwrap();
        hub.set_status(&who, k, HealthStatus::Passing, "up")
            .await
            .unwrap();
    }
    let intruder = member(acme);
    for k in [&theirs, &shared] {
        let denied = [
            hub.set_status(&intruder, k, HealthStatus::Critical, "hijacked")
                .await
                .unwrap_err(),
            hub.heartbeat(&intruder, k).await.unwrap_err(),
            hub.deregister(&intruder, k).await.unwrap_err(),
        ];
        for err in denied {
            assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{k}: {err}");
        }
        let kept = hub.registry().get(&admin(), k).await.unwrap();
        assert_eq!(
            (kept.status, kept.status_output.as_str()),
            (HealthStatus::Passing, "up"),
            "{k}"
        );
    }
    // Their owner may.
    hub.deregister(&member(globex), &theirs).await.unwrap();
    assert_eq!(
        hub.registry()
            .get(&admin(), &theirs)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_registrations_leave_nothing_behind() {
    let hub = hub();
    let spec =
        || InstanceSpec::new(Scope::Platform, name("api"), iid("a"), "http://127.0.0.1:9").unwrap();
    // A check for another instance.
    let wrong = fast_check(Scope::Platform, "api", "b", "http://127.0.0.1:9");
    let err = hub
        .register(&admin(), spec(), vec![wrong])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    // A check whose timeout is longer than its interval.
    let slow = fast_check(Scope::Platform, "api", "a", "http://127.0.0.1:9")
        .timeout(Duration::from_millis(100));
    let err = hub
        .register(&admin(), spec(), vec![slow])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    // Two checks with one id: the second cannot be added; the instance is rolled back.
    let check = fast_check(Scope::Platform, "api", "a", "http://127.0.0.1:9");
    let err = hub
        .register(&admin(), spec(), vec![check.clone(), check])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    let all = hub
        .discover(
            &admin(),
            &Query::new(Visibility::All).include_unhealthy(true),
        )
        .await
        .unwrap();
    assert!(all.is_empty(), "{all:?}");
    assert!(hub.health().is_empty());
    // Zero weight, bad URL, unknown service.
    let mut heavy = spec();
    heavy.weight = 0;
    assert_eq!(
        hub.register(&admin(), heavy, vec![])
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    assert!(InstanceSpec::new(Scope::Platform, name("api"), iid("a"), "not a url").is_err());
    let err = hub
        .pick(&admin(), &name("nothing-here"), PickOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        matches!(err, OrchestrateError::NoAvailableInstance { .. }),
        "{err}"
    );
    // Duplicates are refused and the first stays.
    hub.register(&admin(), spec(), vec![]).await.unwrap();
    let mut other = spec();
    other.endpoint = "http://127.0.0.2:9".parse().unwrap();
    assert_eq!(
        hub.register(&admin(), other, vec![])
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::AlreadyExists
    );
    let kept = hub
        .registry()
        .get(&admin(), &key(Scope::Platform, "api", "a"))
        .await
        .unwrap();
    assert_eq!(kept.spec.endpoint.as_str(), "http://127.0.0.1:9/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_feed_ttl_checks_and_critical_instances_are_reaped() {
    let hub = hub();
    let ttl = CheckSpec::new(
        CheckId::new("worker-ttl").unwrap(),
        key(Scope::Platform, "worker", "w1"),
        CheckKind::ttl(Duration::from_secs(30)),
    );
    hub.register(
        &admin(),
        InstanceSpec::new(
            Scope::Platform,
            name("worker"),
            iid("w1"),
            "tcp://127.0.0.1:9",
        )
        .unwrap(),
        vec![ttl],
    )
    .await
    .unwrap();
    hub.heartbeat(&admin(), &key(Scope::Platform, "worker", "w1"))
        .await
        .unwrap();
    eventually("w1 passing after a heartbeat", || async {
        status_of(&hub, "worker", "w1").await == HealthStatus::Passing
    })
    .await;

    // An instance nobody answers for: deregistered after staying critical too long, and
    // its series leave the metrics.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let check = CheckSpec::new(
        CheckId::new("gone-tcp").unwrap(),
        key(Scope::Platform, "worker", "gone"),
        CheckKind::tcp(dead.to_string()),
    )
    .interval(Duration::from_millis(40))
    .timeout(Duration::from_millis(30))
    .deregister_critical_after(Duration::from_millis(150));
    hub.register(
        &admin(),
        InstanceSpec::new(
            Scope::Platform,
            name("worker"),
            iid("gone"),
            &format!("tcp://{dead}"),
        )
        .unwrap(),
        vec![check],
    )
    .await
    .unwrap();
    eventually("the dead instance deregistered", || async {
        hub.registry()
            .get(&admin(), &key(Scope::Platform, "worker", "gone"))
            .await
            .is_err()
    })
    .await;
    eventually("its series forgotten", || async {
        !hub.metrics_text().unwrap().contains("instance=\"gone\"")
    })
    .await;
    assert!(
        hub.health()
            .instance_checks(&key(Scope::Platform, "worker", "gone"))
            .is_empty()
    );
}

#[cfg(feature = "tower")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_layer_over_the_hub_survives_failure_and_recovery() {
    use crate::layer::BalanceLayer;
    use tower::{Layer, ServiceExt, service_fn};

    let (a, b) = (server().await, server().await);
    let config = HubConfig::default().breaker(
        BreakerConfig::default()
            .window(SlidingWindow::Count { calls: 4 })
            .minimum_calls(2)
            .failure_rate_threshold(50.0)
            .wait_in_open(Duration::from_millis(200)),
    );
    let hub = ServiceHub::builder(Arc::new(MemoryRegistry::new()))
        .config(config)
        .build()
        .unwrap();
    for (id, s) in [("web-a", &a), ("web-b", &b)] {
        let spec = InstanceSpec::new(Scope::Platform, name("web"), iid(id), &s.url).unwrap();
        hub.register(&admin(), spec, vec![]).await.unwrap();
        hub.set_status(
            &admin(),
            &key(Scope::Platform, "web", id),
            HealthStatus::Passing,
            "",
        )
        .await
        .unwrap();
    }
    let picker = HubPicker::new(
        hub.clone(),
        admin(),
        name("web"),
        PickOptions::new().strategy(Strategy::RoundRobin),
    );
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let client = service_fn(move |req: http::Request<String>| {
        let http = http.clone();
        async move {
            let req = reqwest::Request::try_from(req)?;
            let res = http.execute(req).await?;
            let status = res.status();
            let body = res.text().await?;
            let mut out = http::Response::new(body);
            *out.status_mut() = status;
            Ok::<_, reqwest::Error>(out)
        }
    });
    let service = BalanceLayer::new(Arc::new(picker)).layer(client);
    let call = |service: crate::layer::BalanceService<_, crate::registry::Instance>| async move {
        let request = http::Request::get("/work").body(String::new()).unwrap();
        service.oneshot(request).await.unwrap().status()
    };

    // b answers 503: every call still succeeds (retried on a), and b's breaker opens.
    b.status.store(503, Ordering::SeqCst);
    for _ in 0..12 {
        assert_eq!(call(service.clone()).await, 200);
    }
    let state = |hub: &ServiceHub| {
        hub.breaker_states(&name("web"))
            .into_iter()
            .find(|(e, _)| e == "platform/web-b")
            .map(|(_, s)| s)
    };
    assert_eq!(state(&hub), Some(BreakerState::Open));
    let failed = hub
        .stats(&name("web"), Some(&iid("web-b")), Duration::from_secs(60))
        .unwrap();
    assert!(failed.errors >= 2, "{failed:?}");

    // b recovers; after the open wait a probe reaches it and the breaker closes.
    b.status.store(200, Ordering::SeqCst);
    eventually("web-b's breaker closed again", || async {
        assert_eq!(call(service.clone()).await, 200);
        state(&hub) == Some(BreakerState::Closed)
    })
    .await;
    let text = hub.metrics_text().unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("ate_circuit_breaker_transitions_total")
                && l.contains("instance=\"web-b\"")
                && l.contains("to=\"half_open\"")
                && !l.ends_with(" 0")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejected_instances_come_back_by_themselves() {
    use crate::breaker::OutlierConfig;
    let config = HubConfig::default().outlier(
        OutlierConfig::default()
            .consecutive_failures(2)
            .ejection_time(Duration::from_millis(100), Duration::from_millis(100))
            .max_ejection_percent(50),
    );
    let hub = ServiceHub::builder(Arc::new(MemoryRegistry::new()))
        .config(config)
        .build()
        .unwrap();
    for id in ["q-a", "q-b"] {
        let spec = InstanceSpec::new(Scope::Platform, name("queue"), iid(id), "tcp://127.0.0.1:9")
            .unwrap();
        hub.register(&admin(), spec, vec![]).await.unwrap();
        hub.set_status(
            &admin(),
            &key(Scope::Platform, "queue", id),
            HealthStatus::Passing,
            "",
        )
        .await
        .unwrap();
    }
    let ejected = |hub: &ServiceHub| {
        hub.metrics_text()
            .unwrap()
            .lines()
            .find(|l| l.starts_with("ate_outlier_ejected") && l.contains("instance=\"q-b\""))
            .map(|l| l.ends_with(" 1"))
    };
    // q-b fails twice in a row: ejected, and only q-a is picked.
    let mut failures = 0;
    while failures < 2 {
        let pick = hub
            .pick(
                &admin(),
                &name("queue"),
                PickOptions::new().strategy(Strategy::RoundRobin),
            )
            .await
            .unwrap();
        if pick.instance().spec.id.as_str() == "q-b" {
            pick.failure(ErrorKind::Unavailable);
            failures += 1;
        } else {
            pick.success();
        }
    }
    assert_eq!(ejected(&hub), Some(true));
    let counts = spread(&hub, &admin(), "queue", 4).await;
    assert_eq!(counts.get("q-a"), Some(&4), "{counts:?}");
    // With no traffic at all, the hub's sweep brings it back after its ejection time.
    eventually("q-b back from ejection", || async {
        ejected(&hub) == Some(false)
    })
    .await;
    let counts = spread(&hub, &admin(), "queue", 4).await;
    assert_eq!(counts.get("q-b"), Some(&2), "{counts:?}");
}
