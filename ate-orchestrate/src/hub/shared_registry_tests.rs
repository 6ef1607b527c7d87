//! Hubs in different processes sharing one SQL registry: each follows the others' changes
//! through the registry's change log, including changes made while its watch was opening.

#![allow(clippy::unwrap_used)]

use super::tests::{admin, eventually, iid, key, name};
use super::*;
use crate::OrchestrateError;
use crate::registry::{
    HealthStatus, Instance, InstanceKey, InstanceSpec, Query, RegistryStore, RegistryWatch, Scope,
    ServiceName, ServicePolicy, SqlRegistry, TrafficPolicy, Visibility,
};
use ate_core::Db;
use std::sync::Arc;
use std::time::Duration;

/// A SQL registry whose watch takes `delay` to open, as a loaded machine may: the hub must
/// not build a balancer from a read its watch cannot follow.
#[derive(Debug)]
struct SlowWatch {
    inner: SqlRegistry,
    delay: Duration,
}

#[async_trait::async_trait]
impl RegistryStore for SlowWatch {
    async fn register(&self, spec: InstanceSpec) -> Result<Instance, OrchestrateError> {
        self.inner.register(spec).await
    }
    async fn deregister(&self, key: &InstanceKey) -> Result<Instance, OrchestrateError> {
        self.inner.deregister(key).await
    }
    async fn heartbeat(&self, key: &InstanceKey) -> Result<Instance, OrchestrateError> {
        self.inner.heartbeat(key).await
    }
    async fn set_status(
        &self,
        key: &InstanceKey,
        status: HealthStatus,
        output: &str,
    ) -> Result<Instance, OrchestrateError> {
        self.inner.set_status(key, status, output).await
    }
    async fn get(&self, key: &InstanceKey) -> Result<Instance, OrchestrateError> {
        self.inner.get(key).await
    }
    async fn discover(&self, query: &Query) -> Result<Vec<Instance>, OrchestrateError> {
        self.inner.discover(query).await
    }
    async fn services(
        &self,
        visibility: &Visibility,
    ) -> Result<Vec<ServiceName>, OrchestrateError> {
        self.inner.services(visibility).await
    }
    async fn deregister_critical(
        &self,
        older_than: Duration,
    ) -> Result<Vec<Instance>, OrchestrateError> {
        self.inner.deregister_critical(older_than).await
    }
    async fn watch(&self) -> Result<RegistryWatch, OrchestrateError> {
        tokio::time::sleep(self.delay).await;
        self.inner.watch().await
    }
    async fn drain(&self, key: &InstanceKey) -> Result<Instance, OrchestrateError> {
        self.inner.drain(key).await
    }
    async fn set_maintenance(
        &self,
        key: &InstanceKey,
        reason: Option<&str>,
    ) -> Result<Instance, OrchestrateError> {
        self.inner.set_maintenance(key, reason).await
    }
    async fn set_policy(
        &self,
        scope: Scope,
        service: &ServiceName,
        policy: Option<TrafficPolicy>,
    ) -> Result<Option<ServicePolicy>, OrchestrateError> {
        self.inner.set_policy(scope, service, policy).await
    }
    async fn policy(
        &self,
        scope: Scope,
        service: &ServiceName,
    ) -> Result<Option<ServicePolicy>, OrchestrateError> {
        self.inner.policy(scope, service).await
    }
}

/// A hub on the SQLite registry at `url`; its watch opens after `watch_delay`.
async fn open_hub(url: &str, watch_delay: Duration) -> ServiceHub {
    let db = Db::open(url).await.unwrap();
    let store = SqlRegistry::open(db)
        .await
        .unwrap()
        .with_poll_interval(Duration::from_millis(20));
    let store: Arc<dyn RegistryStore> = if watch_delay.is_zero() {
        Arc::new(store)
    } else {
        Arc::new(SlowWatch {
            inner: store,
            delay: watch_delay,
        })
    };
    // No panic mode: with its only instance critical, a pick must fail.
    let config = HubConfig::default().panic_threshold(0.0);
    ServiceHub::builder(store).config(config).build().unwrap()
}

/// `first` registers an instance and turns it passing then critical; `second` must follow.
async fn second_follows_first(first: &ServiceHub, second: &ServiceHub) {
    let spec =
        InstanceSpec::new(Scope::Platform, name("api"), iid("a"), "http://127.0.0.1:9").unwrap();
    first.register(&admin(), spec, vec![]).await.unwrap();
    // Not passing yet: the second hub has nothing to pick.
    assert!(
        second
            .pick(&admin(), &name("api"), PickOptions::new())
            .await
            .is_err()
    );
    first
        .set_status(
            &admin(),
            &key(Scope::Platform, "api", "a"),
            HealthStatus::Passing,
            "",
        )
        .await
        .unwrap();
    eventually("the second hub picks the instance", || async {
        second
            .pick(&admin(), &name("api"), PickOptions::new())
            .await
            .is_ok()
    })
    .await;
    first
        .set_status(
            &admin(),
            &key(Scope::Platform, "api", "a"),
            HealthStatus::Critical,
            "down",
        )
        .await
        .unwrap();
    eventually("the second hub stops picking it", || async {
        second
            .pick(&admin(), &name("api"), PickOptions::new())
            .await
            .is_err()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubs_sharing_a_sql_registry_see_each_others_changes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/registry.db", dir.path().display());
    let first = open_hub(&url, Duration::ZERO).await;
    let second = open_hub(&url, Duration::ZERO).await;
    second_follows_first(&first, &second).await;
}

/// The second hub's watch opens only after the first hub's changes: its first pick waits
/// for the watch, so the balancer it caches is one the watch keeps up to date. (Before,
/// the pick cached a balancer at once, the change landed before the watch's position and
/// the second hub never picked the instance: a CI failure on a loaded machine.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pick_waits_for_the_watch_to_hold_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/registry.db", dir.path().display());
    let first = open_hub(&url, Duration::ZERO).await;
    let second = open_hub(&url, Duration::from_millis(300)).await;
    second_follows_first(&first, &second).await;
}
