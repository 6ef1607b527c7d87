//! Traffic policies and draining through the hub: canary splits (random and keyed), the
//! split's fallback, blue-green without one, tenant policies over the platform's, drains that
//! wait for picks in flight, and a second hub on the same SQL registry following both.

#![allow(clippy::unwrap_used)]

use super::tests::{admin, eventually, key, name};
use super::*;
use crate::OrchestrateError;
use crate::balance::Strategy;
use crate::registry::{
    HealthStatus, InstanceSpec, MemoryRegistry, REGISTRY_WRITE, RegistryStore, Scope, Selector,
    SqlRegistry, TrafficGroup, TrafficPolicy,
};
use ate_core::{Classify, Db, ErrorKind, Principal, TenantId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

fn hub_on(store: Arc<dyn RegistryStore>) -> ServiceHub {
    // No panic mode: a group with nothing healthy must not spill onto unhealthy instances.
    let config = HubConfig::default().panic_threshold(0.0);
    ServiceHub::builder(store).config(config).build().unwrap()
}

/// Registers `id` of `api` in `scope` with the given version and tags, passing.
async fn up(
    hub: &ServiceHub,
    who: &Principal,
    scope: Scope,
    id: &str,
    version: &str,
    tags: &[&str],
) {
    let mut spec = InstanceSpec::new(
        scope,
        name("api"),
        super::tests::iid(id),
        "http://127.0.0.1:9",
    )
    .unwrap()
    .meta("version", version);
    for t in tags {
        spec = spec.tag(*t);
    }
    hub.register(who, spec, vec![]).await.unwrap();
    hub.set_status(who, &key(scope, "api", id), HealthStatus::Passing, "")
        .await
        .unwrap();
}

async fn set_status(hub: &ServiceHub, id: &str, status: HealthStatus) {
    hub.set_status(&admin(), &key(Scope::Platform, "api", id), status, "")
        .await
        .unwrap();
}

/// Picks `n` times as `who` (with `key` if given) and counts picks per instance.
async fn spread(
    hub: &ServiceHub,
    who: &Principal,
    n: usize,
    pick_key: Option<&[u8]>,
) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let mut options = PickOptions::new().strategy(Strategy::RoundRobin);
        if let Some(k) = pick_key {
            options = options.key(k);
        }
        let pick = hub.pick(who, &name("api"), options).await.unwrap();
        *counts
            .entry(pick.instance().spec.id.to_string())
            .or_insert(0) += 1;
        pick.success();
    }
    counts
}

fn canary(percent: u8) -> TrafficPolicy {
    TrafficPolicy::split([
        TrafficGroup::new(Selector::version("2"), percent),
        TrafficGroup::new(Selector::version("1"), 100 - percent),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_split_shares_picks_by_percentage_and_keys_stay_on_their_side() {
    let hub = hub_on(Arc::new(MemoryRegistry::new()));
    let p = Scope::Platform;
    up(&hub, &admin(), p, "v1-a", "1", &[]).await;
    up(&hub, &admin(), p, "v1-b", "1", &[]).await;
    up(&hub, &admin(), p, "v2-a", "2", &[]).await;
    up(&hub, &admin(), p, "stray", "0.9", &[]).await;
    // Before the policy: all four share the picks.
    assert_eq!(spread(&hub, &admin(), 40, None).await.len(), 4);

    hub.set_policy(&admin(), p, &name("api"), Some(canary(20)))
        .await
        .unwrap();
    let counts = spread(&hub, &admin(), 4000, None).await;
    assert!(
        !counts.contains_key("stray"),
        "no group selects it: {counts:?}"
    );
    let v2 = counts["v2-a"] as f64 / 4000.0;
    // 20 % expected; binomial sd at n = 4000 is 0.63 %, so ±4 % is far beyond chance.
    assert!((0.16..=0.24).contains(&v2), "canary share {v2}: {counts:?}");
    // Inside the stable group, round robin still alternates.
    let (a, b) = (counts["v1-a"], counts["v1-b"]);
    assert!(a.abs_diff(b) <= 2, "{counts:?}");

    // A key (a tenant, a user) lands on one side and stays there.
    let mut on_canary = 0;
    for k in 0..400u32 {
        let picks = spread(&hub, &admin(), 4, Some(&k.to_be_bytes())).await;
        let canary_picks = picks.get("v2-a").copied().unwrap_or(0);
        assert!(
            canary_picks == 0 || canary_picks == 4,
            "key {k} moved: {picks:?}"
        );
        on_canary += usize::from(canary_picks == 4);
    }
    assert!(
        (40..=120).contains(&on_canary),
        "{on_canary} of 400 keys on the canary"
    );

    // Full rollout, then clearing: every instance again.
    hub.set_policy(&admin(), p, &name("api"), Some(canary(100)))
        .await
        .unwrap();
    assert_eq!(
        spread(&hub, &admin(), 50, None)
            .await
            .keys()
            .collect::<Vec<_>>(),
        ["v2-a"]
    );
    hub.set_policy(&admin(), p, &name("api"), None)
        .await
        .unwrap();
    assert_eq!(spread(&hub, &admin(), 40, None).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_falls_back_when_a_group_is_down_and_blue_green_does_not() {
    let hub = hub_on(Arc::new(MemoryRegistry::new()));
    let p = Scope::Platform;
    up(&hub, &admin(), p, "blue-1", "1", &["blue"]).await;
    up(&hub, &admin(), p, "green-1", "2", &["green"]).await;

    hub.set_policy(&admin(), p, &name("api"), Some(canary(50)))
        .await
        .unwrap();
    set_status(&hub, "green-1", HealthStatus::Critical).await;
    // The canary's half goes to the stable group: every pick succeeds.
    let counts = spread(&hub, &admin(), 200, None).await;
    assert_eq!(counts.get("blue-1"), Some(&200), "{counts:?}");
    set_status(&hub, "green-1", HealthStatus::Passing).await;

    let green = TrafficPolicy::blue_green(Selector::tag("green"));
    hub.set_policy(&admin(), p, &name("api"), Some(green))
        .await
        .unwrap();
    assert_eq!(
        spread(&hub, &admin(), 50, None).await.get("green-1"),
        Some(&50)
    );
    // Green down: no pick goes back to blue.
    set_status(&hub, "green-1", HealthStatus::Critical).await;
    let err = hub
        .pick(&admin(), &name("api"), PickOptions::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, OrchestrateError::NoAvailableInstance { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("tag \"green\""), "{err}");
    // Switching to blue moves everything at once.
    let blue = TrafficPolicy::blue_green(Selector::tag("blue"));
    hub.set_policy(&admin(), p, &name("api"), Some(blue))
        .await
        .unwrap();
    assert_eq!(
        spread(&hub, &admin(), 50, None).await.get("blue-1"),
        Some(&50)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_policy_overrides_the_platforms_for_its_own_picks() {
    let hub = hub_on(Arc::new(MemoryRegistry::new()));
    let tenant = TenantId::new();
    let deployer = Principal::new(tenant, "svc:deploy")
        .unwrap()
        .permission(REGISTRY_WRITE);
    let (p, t) = (Scope::Platform, Scope::Tenant(tenant));
    up(&hub, &admin(), p, "shared-v1", "1", &[]).await;
    up(&hub, &admin(), p, "shared-v2", "2", &[]).await;
    up(&hub, &deployer, t, "own-v2", "2", &[]).await;
    let only = |v: &str| TrafficPolicy::blue_green(Selector::version(v));
    hub.set_policy(&admin(), p, &name("api"), Some(only("1")))
        .await
        .unwrap();
    // The tenant has no policy yet: the platform's applies to its picks too.
    assert_eq!(
        spread(&hub, &deployer, 20, None)
            .await
            .keys()
            .collect::<Vec<_>>(),
        ["shared-v1"]
    );
    hub.set_policy(&deployer, t, &name("api"), Some(only("2")))
        .await
        .unwrap();
    let counts = spread(&hub, &deployer, 40, None).await;
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(
        counts.contains_key("own-v2") && counts.contains_key("shared-v2"),
        "{counts:?}"
    );
    // The platform's own picks still follow the platform's policy.
    assert_eq!(
        spread(&hub, &admin(), 20, None)
            .await
            .keys()
            .collect::<Vec<_>>(),
        ["shared-v1"]
    );
    // A tenant cannot set the platform's policy.
    let err = hub
        .set_policy(&deployer, p, &name("api"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_stops_new_picks_waits_for_those_in_flight_then_deregisters() {
    let hub = hub_on(Arc::new(MemoryRegistry::new()));
    let p = Scope::Platform;
    up(&hub, &admin(), p, "a", "1", &[]).await;
    up(&hub, &admin(), p, "b", "1", &[]).await;
    let a = key(p, "api", "a");
    let held = loop {
        let pick = hub
            .pick(&admin(), &name("api"), PickOptions::new())
            .await
            .unwrap();
        if pick.instance().spec.id.as_str() == "a" {
            break pick;
        }
    };
    assert_eq!(hub.in_flight(&a), 1);
    let drain = tokio::spawn({
        let (hub, a) = (hub.clone(), a.clone());
        async move {
            hub.drain(
                &admin(),
                &a,
                DrainOptions::new().settle(Duration::from_millis(20)),
            )
            .await
        }
    });
    eventually("the drain is stored", || async {
        hub.registry()
            .get(&admin(), &a)
            .await
            .unwrap()
            .draining_since
            .is_some()
    })
    .await;
    let counts = spread(&hub, &admin(), 50, None).await;
    assert_eq!(
        counts.get("b"),
        Some(&50),
        "a drained instance took picks: {counts:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !drain.is_finished(),
        "the drain ended with a pick in flight"
    );
    assert!(hub.registry().get(&admin(), &a).await.is_ok());
    held.success();
    let gone = tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(gone.spec.id.as_str(), "a");
    assert!(gone.draining_since.is_some());
    let err = hub.registry().get(&admin(), &a).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(hub.in_flight(&a), 0);

    // A pick that never finishes: the drain gives up waiting after its timeout.
    let b = key(p, "api", "b");
    let _stuck = hub
        .pick(&admin(), &name("api"), PickOptions::new())
        .await
        .unwrap();
    let options = DrainOptions::new()
        .settle(Duration::ZERO)
        .timeout(Duration::from_millis(100));
    let gone = tokio::time::timeout(Duration::from_secs(10), hub.drain(&admin(), &b, options))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gone.spec.id.as_str(), "b");
    // An instance that is gone cannot be drained.
    let err = hub
        .drain(&admin(), &b, DrainOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_in_maintenance_takes_no_picks_until_it_is_back() {
    let hub = hub_on(Arc::new(MemoryRegistry::new()));
    let p = Scope::Platform;
    up(&hub, &admin(), p, "a", "1", &[]).await;
    up(&hub, &admin(), p, "b", "1", &[]).await;
    assert_eq!(spread(&hub, &admin(), 10, None).await.len(), 2);
    let a = key(p, "api", "a");
    hub.set_maintenance(&admin(), &a, Some("patching"))
        .await
        .unwrap();
    // At once on this hub: the very next picks avoid it.
    assert!(!spread(&hub, &admin(), 10, None).await.contains_key("a"));
    // Only the scope's writers may do it.
    let reader = Principal::new(TenantId::new(), "user:r").unwrap();
    let denied = hub.set_maintenance(&reader, &a, None).await;
    assert_eq!(denied.unwrap_err().kind(), ErrorKind::PermissionDenied);
    hub.registry()
        .set_maintenance(&admin(), &a, None)
        .await
        .unwrap();
    eventually("a is back", || async {
        spread(&hub, &admin(), 10, None).await.contains_key("a")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_hub_on_the_sql_registry_follows_policies_and_drains() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/registry.db", dir.path().display());
    let open = || async {
        let store = SqlRegistry::open(Db::open(&url).await.unwrap())
            .await
            .unwrap()
            .with_poll_interval(Duration::from_millis(20));
        hub_on(Arc::new(store))
    };
    let (first, second) = (open().await, open().await);
    let p = Scope::Platform;
    up(&first, &admin(), p, "blue-1", "1", &["blue"]).await;
    up(&first, &admin(), p, "green-1", "2", &["green"]).await;
    up(&first, &admin(), p, "green-2", "2", &["green"]).await;
    assert_eq!(spread(&second, &admin(), 30, None).await.len(), 3);

    first
        .set_policy(
            &admin(),
            p,
            &name("api"),
            Some(TrafficPolicy::blue_green(Selector::tag("green"))),
        )
        .await
        .unwrap();
    eventually("the second hub switches to green", || async {
        !spread(&second, &admin(), 30, None)
            .await
            .contains_key("blue-1")
    })
    .await;
    let options = DrainOptions::new().settle(Duration::from_millis(100));
    first
        .drain(&admin(), &key(p, "api", "green-1"), options)
        .await
        .unwrap();
    eventually(
        "the second hub stops picking the drained instance",
        || async { spread(&second, &admin(), 30, None).await.get("green-2") == Some(&30) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_avoids_the_instances_it_failed_on_unless_nothing_else_is_left() {
    let hub = hub_on(Arc::new(MemoryRegistry::new()));
    let p = Scope::Platform;
    for id in ["a", "b", "c"] {
        up(&hub, &admin(), p, id, "1", &[]).await;
    }
    for strategy in [
        Strategy::LeastRequest,
        Strategy::RoundRobin,
        Strategy::Random,
    ] {
        for _ in 0..50 {
            let options = PickOptions::new()
                .strategy(strategy)
                .avoid(key(p, "api", "a"))
                .avoid(key(p, "api", "b"));
            let pick = hub.pick(&admin(), &name("api"), options).await.unwrap();
            assert_eq!(pick.instance().spec.id.as_str(), "c", "{strategy:?}");
            pick.success();
        }
    }
    // Everything avoided: an avoided instance rather than no answer.
    let mut all = PickOptions::new();
    for id in ["a", "b", "c"] {
        all = all.avoid(key(p, "api", id));
    }
    let pick = hub.pick(&admin(), &name("api"), all).await.unwrap();
    assert_eq!(hub.in_flight(&pick.instance().key()), 1);
}
