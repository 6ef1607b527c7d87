//! The `RegistryStore` conformance cases for traffic: draining instances and per-service
//! traffic policies, on every registry backend (see `tests/registry.rs`), plus the
//! `Registry` facade's tenancy rules for them.

use crate::assert_kind;
use crate::registry::{RegistryEnv, key, next_event, register_with, spec, svc};
use ate_core::{ErrorKind, Principal, TenantId};
use ate_orchestrate::registry::{
    HealthStatus, Query, REGISTRY_READ, REGISTRY_WRITE, Registry, RegistryEvent, Scope, Selector,
    TrafficGroup, TrafficPolicy, Visibility,
};
use chrono::TimeDelta;

fn canary(percent: u8) -> TrafficPolicy {
    TrafficPolicy::split([
        TrafficGroup::new(Selector::version("2"), percent),
        TrafficGroup::new(Selector::version("1"), 100 - percent),
    ])
}

/// A draining instance leaves healthy discovery whatever its health, keeps its first
/// `draining_since`, and is announced once; both handles see it.
pub async fn drain_hides_the_instance_once(env: RegistryEnv) {
    let s = &*env.store;
    let mut watch = env.other.watch().await.unwrap();
    let p = Scope::Platform;
    register_with(s, spec(p, "api", "a"), HealthStatus::Passing).await;
    register_with(s, spec(p, "api", "b"), HealthStatus::Passing).await;
    for _ in 0..4 {
        next_event(&mut watch).await; // two registrations, two status changes
    }
    let a = key(p, "api", "a");
    env.clock.advance(TimeDelta::seconds(5));
    let drained = s.drain(&a).await.unwrap();
    assert_eq!(drained.draining_since, Some(env.now()));
    assert_eq!(drained.status, HealthStatus::Passing);
    assert!(!drained.takes_traffic());
    match next_event(&mut watch).await {
        RegistryEvent::Draining { instance } => assert_eq!(instance, drained),
        other => panic!("expected Draining(a), got {other:?}"),
    }
    let healthy = Query::new(Visibility::All).service(svc("api"));
    let found = env.other.discover(&healthy).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].spec.id.as_str(), "b");
    let all = env
        .other
        .discover(&healthy.clone().include_unhealthy(true))
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], drained);
    assert_eq!(env.other.get(&a).await.unwrap(), drained);

    // Again: nothing changes, nothing is announced.
    env.clock.advance(TimeDelta::seconds(5));
    assert_eq!(s.drain(&a).await.unwrap(), drained);
    // Health keeps changing underneath, but the instance stays out.
    s.set_status(&a, HealthStatus::Warning, "slow")
        .await
        .unwrap();
    match next_event(&mut watch).await {
        RegistryEvent::StatusChanged { instance, .. } => {
            assert_eq!(instance.draining_since, drained.draining_since);
        }
        other => panic!("expected StatusChanged(a) (no second Draining), got {other:?}"),
    }
    assert_eq!(s.discover(&healthy).await.unwrap().len(), 1);
    assert_kind(s.drain(&key(p, "api", "nope")).await, ErrorKind::NotFound);
    // Deregistering a draining instance works as for any other.
    s.deregister(&a).await.unwrap();
    assert_kind(s.get(&a).await, ErrorKind::NotFound);
}

/// Maintenance takes an instance out of rotation with a reason (announced once, seen by the
/// other handle, its health still changing underneath) and puts it back; bad input changes
/// nothing.
pub async fn maintenance_takes_an_instance_out_and_back(env: RegistryEnv) {
    let s = &*env.store;
    let mut watch = env.other.watch().await.unwrap();
    let t = Scope::Tenant(TenantId::new());
    register_with(s, spec(t, "api", "a"), HealthStatus::Passing).await;
    register_with(s, spec(t, "api", "b"), HealthStatus::Passing).await;
    for _ in 0..4 {
        next_event(&mut watch).await;
    }
    let a = key(t, "api", "a");
    env.clock.advance(TimeDelta::seconds(5));
    let out = s
        .set_maintenance(&a, Some("  kernel upgrade "))
        .await
        .unwrap();
    assert_eq!(out.maintenance.as_deref(), Some("kernel upgrade"));
    assert_eq!(out.maintenance_since, Some(env.now()));
    assert!(!out.takes_traffic());
    match next_event(&mut watch).await {
        RegistryEvent::Maintenance { instance } => assert_eq!(instance, out),
        other => panic!("expected Maintenance(a), got {other:?}"),
    }
    let healthy = Query::new(Visibility::All).service(svc("api"));
    let found = env.other.discover(&healthy).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].spec.id.as_str(), "b");
    assert_eq!(env.other.get(&a).await.unwrap(), out);
    // A new reason is kept without a second announcement or a new start time.
    env.clock.advance(TimeDelta::seconds(5));
    let again = s
        .set_maintenance(&a, Some("still upgrading"))
        .await
        .unwrap();
    assert_eq!(again.maintenance.as_deref(), Some("still upgrading"));
    assert_eq!(again.maintenance_since, out.maintenance_since);
    s.set_status(&a, HealthStatus::Critical, "rebooting")
        .await
        .unwrap();
    match next_event(&mut watch).await {
        RegistryEvent::StatusChanged { instance, .. } => {
            assert_eq!(instance.maintenance.as_deref(), Some("still upgrading"));
        }
        other => panic!("expected StatusChanged(a) (no second Maintenance), got {other:?}"),
    }
    // Bad input: an empty reason, an unknown instance.
    assert_kind(
        s.set_maintenance(&a, Some("  ")).await,
        ErrorKind::InvalidInput,
    );
    assert_kind(
        s.set_maintenance(&key(t, "api", "nope"), Some("x")).await,
        ErrorKind::NotFound,
    );
    assert_eq!(
        env.other.get(&a).await.unwrap().maintenance.as_deref(),
        Some("still upgrading")
    );
    // Back: announced, and discovered again once healthy.
    s.set_status(&a, HealthStatus::Passing, "ok").await.unwrap();
    next_event(&mut watch).await;
    let back = s.set_maintenance(&a, None).await.unwrap();
    assert_eq!((back.maintenance, back.maintenance_since), (None, None));
    match next_event(&mut watch).await {
        RegistryEvent::Maintenance { instance } => assert!(instance.maintenance.is_none()),
        other => panic!("expected Maintenance(a) back, got {other:?}"),
    }
    assert_eq!(env.other.discover(&healthy).await.unwrap().len(), 2);
    // Back again: nothing changes.
    assert_eq!(s.set_maintenance(&a, None).await.unwrap().maintenance, None);
}

/// Policies are stored per (scope, service), read back through the other handle, announced
/// once per change, validated before anything is written, and cleared.
pub async fn policies_round_trip(env: RegistryEnv) {
    let s = &*env.store;
    let mut watch = env.other.watch().await.unwrap();
    let tenant = TenantId::new();
    let (p, t) = (Scope::Platform, Scope::Tenant(tenant));
    let api = svc("api");
    assert_eq!(s.policy(p, &api).await.unwrap(), None);

    let set = s
        .set_policy(p, &api, Some(canary(10)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((set.scope, &set.service), (p, &api));
    assert_eq!(set.policy, canary(10));
    assert_eq!(set.updated_at, env.now());
    assert_eq!(env.other.policy(p, &api).await.unwrap(), Some(set.clone()));
    // Another scope and another service have their own (none).
    assert_eq!(env.other.policy(t, &api).await.unwrap(), None);
    assert_eq!(env.other.policy(p, &svc("web")).await.unwrap(), None);
    match next_event(&mut watch).await {
        RegistryEvent::PolicyChanged {
            scope,
            service,
            policy,
        } => assert_eq!((scope, service, policy), (p, api.clone(), Some(canary(10)))),
        other => panic!("expected PolicyChanged, got {other:?}"),
    }

    // The same policy again: nothing changes (not even the time), nothing is announced.
    env.clock.advance(TimeDelta::seconds(1));
    assert_eq!(
        s.set_policy(p, &api, Some(canary(10))).await.unwrap(),
        Some(set.clone())
    );
    // Invalid policies write nothing.
    let bad = TrafficPolicy::split([TrafficGroup::new(Selector::tag("x"), 99)]);
    assert_kind(
        s.set_policy(p, &api, Some(bad)).await,
        ErrorKind::InvalidInput,
    );
    assert_eq!(s.policy(p, &api).await.unwrap(), Some(set));

    // A change, then a tenant's own policy, then clearing.
    env.clock.advance(TimeDelta::seconds(1));
    let green = TrafficPolicy::blue_green(Selector::tag("green"));
    let switched = s
        .set_policy(p, &api, Some(green.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (switched.policy.clone(), switched.updated_at),
        (green.clone(), env.now())
    );
    s.set_policy(t, &api, Some(canary(50))).await.unwrap();
    assert_eq!(s.set_policy(p, &api, None).await.unwrap(), None);
    assert_eq!(s.set_policy(p, &api, None).await.unwrap(), None); // absent: no event
    assert_eq!(env.other.policy(p, &api).await.unwrap(), None);
    assert_eq!(
        env.other.policy(t, &api).await.unwrap().map(|p| p.policy),
        Some(canary(50))
    );
    let mut seen = Vec::new();
    for _ in 0..3 {
        match next_event(&mut watch).await {
            RegistryEvent::PolicyChanged { scope, policy, .. } => seen.push((scope, policy)),
            other => panic!("expected PolicyChanged, got {other:?}"),
        }
    }
    assert_eq!(
        seen,
        [(p, Some(green)), (t, Some(canary(50))), (p, None)],
        "one event per change, in order"
    );
}

/// Through the facade: draining and setting policies need write access to the scope; a
/// tenant reads its own and the platform's policies, and its watch never shows another
/// tenant's policy changes.
pub async fn facade_guards_traffic(env: RegistryEnv) {
    let registry = Registry::new(env.store.clone());
    let (a, b) = (TenantId::new(), TenantId::new());
    let admin = Principal::platform_admin("system:ops").unwrap();
    let a_writer = crate::member(a, &[REGISTRY_WRITE]);
    let a_reader = crate::member(a, &[REGISTRY_READ]);
    let b_writer = crate::member(b, &[REGISTRY_WRITE]);
    let (ta, tb, p) = (Scope::Tenant(a), Scope::Tenant(b), Scope::Platform);
    let api = svc("api");
    let mut a_watch = registry
        .watch(&a_reader, Visibility::Tenant(a))
        .await
        .unwrap();

    let b1 = registry
        .register(&b_writer, spec(tb, "api", "b-1"))
        .await
        .unwrap();
    assert_kind(
        registry.drain(&a_writer, &b1.key()).await,
        ErrorKind::PermissionDenied,
    );
    registry
        .set_policy(&b_writer, tb, &api, Some(canary(20)))
        .await
        .unwrap();
    for (who, scope) in [(&a_writer, tb), (&a_writer, p), (&a_reader, ta)] {
        assert_kind(
            registry
                .set_policy(who, scope, &api, Some(canary(30)))
                .await,
            ErrorKind::PermissionDenied,
        );
    }
    assert_kind(
        registry.policy(&a_reader, tb, &api).await,
        ErrorKind::PermissionDenied,
    );
    registry
        .set_policy(&admin, p, &api, Some(canary(40)))
        .await
        .unwrap();
    registry
        .set_policy(&a_writer, ta, &api, Some(canary(60)))
        .await
        .unwrap();
    assert_eq!(
        registry
            .policy(&a_reader, p, &api)
            .await
            .unwrap()
            .map(|p| p.policy),
        Some(canary(40))
    );
    assert_eq!(
        registry
            .policy(&a_reader, ta, &api)
            .await
            .unwrap()
            .map(|p| p.policy),
        Some(canary(60))
    );
    // Tenant a's watch: b's registration and policy are not shown; the platform's and a's are.
    let mut seen = Vec::new();
    for _ in 0..2 {
        match next_event(&mut a_watch).await {
            RegistryEvent::PolicyChanged { scope, .. } => seen.push(scope),
            other => panic!("tenant a's watch showed {other:?}"),
        }
    }
    assert_eq!(seen, [p, ta]);
    let a1 = registry
        .register(&a_writer, spec(ta, "api", "a-1"))
        .await
        .unwrap();
    let drained = registry.drain(&a_writer, &a1.key()).await.unwrap();
    assert!(drained.draining_since.is_some());
}
