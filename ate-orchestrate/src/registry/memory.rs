//! [`MemoryRegistry`]: the registry in process memory.

use super::model::{HealthStatus, Instance, InstanceKey, InstanceSpec, Scope, ServiceName};
use super::policy::{ServicePolicy, TrafficPolicy};
use super::store::{
    DeregisterReason, Query, RegistryEvent, RegistryStore, RegistryWatch, Visibility, clean_output,
    critical_cutoff, new_instance, not_found, sort_instances,
};
use crate::error::OrchestrateError;
use async_trait::async_trait;
use ate_core::{Clock, SystemClock};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

/// Events a watcher may fall behind by before it receives [`RegistryEvent::Lagged`]
/// (default of [`MemoryRegistry::with_watch_capacity`]).
pub const DEFAULT_WATCH_CAPACITY: usize = 1024;

/// A registry in process memory: for tests and single-process hosts.
///
/// Clones share the same instances and watchers. Watches are fed by a
/// `tokio::sync::broadcast` channel, written under the same lock as the change, so every
/// watcher sees changes in the order they happened.
#[derive(Debug, Clone)]
pub struct MemoryRegistry {
    inner: Arc<Inner>,
    clock: Arc<dyn Clock>,
}

#[derive(Debug)]
struct Inner {
    instances: Mutex<BTreeMap<InstanceKey, Instance>>,
    policies: Mutex<BTreeMap<(Scope, ServiceName), ServicePolicy>>,
    events: broadcast::Sender<RegistryEvent>,
}

impl Default for MemoryRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRegistry {
    /// An empty registry on the system clock.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_WATCH_CAPACITY)
    }

    fn with_capacity(capacity: usize) -> Self {
        let (events, _) = broadcast::channel(capacity.max(1));
        MemoryRegistry {
            inner: Arc::new(Inner {
                instances: Mutex::new(BTreeMap::new()),
                policies: Mutex::new(BTreeMap::new()),
                events,
            }),
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses `clock` for every time it records.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// A fresh, empty registry whose watchers may fall `capacity` events behind (at least
    /// 1) before they receive [`RegistryEvent::Lagged`]. Keeps this handle's clock.
    pub fn with_watch_capacity(self, capacity: usize) -> Self {
        Self::with_capacity(capacity).with_clock(self.clock)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<InstanceKey, Instance>> {
        // A panic while holding the lock cannot leave a half-applied change: every change
        // is one map operation, so the data is consistent even if poisoned.
        self.inner
            .instances
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn emit(&self, event: RegistryEvent) {
        // No receivers is fine: nobody is watching.
        let _ = self.inner.events.send(event);
    }
}

#[async_trait]
impl RegistryStore for MemoryRegistry {
    async fn register(&self, spec: InstanceSpec) -> Result<Instance, OrchestrateError> {
        spec.validate()?;
        let k = spec.key();
        let mut map = self.lock();
        if map.contains_key(&k) {
            return Err(OrchestrateError::already_exists("instance", k.to_string()));
        }
        let instance = new_instance(spec, self.clock.now());
        map.insert(k, instance.clone());
        self.emit(RegistryEvent::Registered {
            instance: instance.clone(),
        });
        Ok(instance)
    }

    async fn deregister(&self, key: &InstanceKey) -> Result<Instance, OrchestrateError> {
        let mut map = self.lock();
        let instance = map.remove(key).ok_or_else(|| not_found(key))?;
        self.emit(RegistryEvent::Deregistered {
            instance: instance.clone(),
            reason: DeregisterReason::Requested,
        });
        Ok(instance)
    }

    async fn heartbeat(&self, key: &InstanceKey) -> Result<Instance, OrchestrateError> {
        let mut map = self.lock();
        let instance = map.get_mut(key).ok_or_else(|| not_found(key))?;
        instance.last_heartbeat = self.clock.now();
        Ok(instance.clone())
    }

    async fn set_status(
        &self,
        key: &InstanceKey,
        status: HealthStatus,
        output: &str,
    ) -> Result<Instance, OrchestrateError> {
        let output = clean_output(output);
        let mut map = self.lock();
        let instance = map.get_mut(key).ok_or_else(|| not_found(key))?;
        let from = instance.status;
        instance.status_output = output;
        if from != status {
            instance.status = status;
            instance.status_since = self.clock.now();
        }
        let out = instance.clone();
        if from != status {
            self.emit(RegistryEvent::StatusChanged {
                instance: out.clone(),
                from,
                to: status,
            });
        }
        Ok(out)
    }

    async fn get(&self, key: &InstanceKey) -> Result<Instance, OrchestrateError> {
        self.lock().get(key).cloned().ok_or_else(|| not_found(key))
    }

    async fn discover(&self, query: &Query) -> Result<Vec<Instance>, OrchestrateError> {
        query.validate()?;
        let mut out: Vec<Instance> = self
            .lock()
            .values()
            .filter(|i| query.matches(i))
            .cloned()
            .collect();
        sort_instances(&mut out);
        Ok(out)
    }

    async fn services(
        &self,
        visibility: &Visibility,
    ) -> Result<Vec<ServiceName>, OrchestrateError> {
        let names: BTreeSet<ServiceName> = self
            .lock()
            .keys()
            .filter(|key| visibility.includes(&key.scope()))
            .map(|key| key.service().clone())
            .collect();
        Ok(names.into_iter().collect())
    }

    async fn deregister_critical(
        &self,
        older_than: Duration,
    ) -> Result<Vec<Instance>, OrchestrateError> {
        let Some(cutoff) = critical_cutoff(self.clock.now(), older_than) else {
            return Ok(Vec::new());
        };
        let mut map = self.lock();
        let doomed: Vec<InstanceKey> = map
            .iter()
            .filter(|(_, i)| i.status == HealthStatus::Critical && i.status_since <= cutoff)
            .map(|(k, _)| k.clone())
            .collect();
        let mut removed = Vec::with_capacity(doomed.len());
        for k in doomed {
            if let Some(instance) = map.remove(&k) {
                removed.push(instance);
            }
        }
        sort_instances(&mut removed);
        for instance in &removed {
            self.emit(RegistryEvent::Deregistered {
                instance: instance.clone(),
                reason: DeregisterReason::CriticalTooLong,
            });
        }
        Ok(removed)
    }

    async fn watch(&self) -> Result<RegistryWatch, OrchestrateError> {
        let rx = self.inner.events.subscribe();
        Ok(BroadcastStream::new(rx)
            .map(|item| match item {
                Ok(event) => event,
                Err(BroadcastStreamRecvError::Lagged(missed)) => RegistryEvent::Lagged { missed },
            })
            .boxed())
    }

    async fn drain(&self, key: &InstanceKey) -> Result<Instance, OrchestrateError> {
        let mut map = self.lock();
        let instance = map.get_mut(key).ok_or_else(|| not_found(key))?;
        if instance.draining_since.is_some() {
            return Ok(instance.clone());
        }
        instance.draining_since = Some(self.clock.now());
        let out = instance.clone();
        self.emit(RegistryEvent::Draining {
            instance: out.clone(),
        });
        Ok(out)
    }

    async fn set_maintenance(
        &self,
        key: &InstanceKey,
        reason: Option<&str>,
    ) -> Result<Instance, OrchestrateError> {
        let reason = super::store::maintenance_reason(reason)?;
        let mut map = self.lock();
        let instance = map.get_mut(key).ok_or_else(|| not_found(key))?;
        if instance.maintenance.is_some() == reason.is_some() {
            if reason.is_some() {
                instance.maintenance = reason;
            }
            return Ok(instance.clone());
        }
        instance.maintenance_since = reason.as_ref().map(|_| self.clock.now());
        instance.maintenance = reason;
        let out = instance.clone();
        self.emit(RegistryEvent::Maintenance {
            instance: out.clone(),
        });
        Ok(out)
    }

    async fn set_policy(
        &self,
        scope: Scope,
        service: &ServiceName,
        policy: Option<TrafficPolicy>,
    ) -> Result<Option<ServicePolicy>, OrchestrateError> {
        if let Some(p) = &policy {
            p.validate()?;
        }
        let mut map = self
            .inner
            .policies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (scope, service.clone());
        let current = map.get(&key);
        if current.map(|c| &c.policy) == policy.as_ref() {
            return Ok(current.cloned());
        }
        let stored = match policy.clone() {
            Some(policy) => {
                let stored = ServicePolicy {
                    scope,
                    service: service.clone(),
                    policy,
                    updated_at: self.clock.now(),
                };
                map.insert(key, stored.clone());
                Some(stored)
            }
            None => {
                map.remove(&key);
                None
            }
        };
        self.emit(RegistryEvent::PolicyChanged {
            scope,
            service: service.clone(),
            policy,
        });
        Ok(stored)
    }

    async fn policy(
        &self,
        scope: Scope,
        service: &ServiceName,
    ) -> Result<Option<ServicePolicy>, OrchestrateError> {
        Ok(self
            .inner
            .policies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&(scope, service.clone()))
            .cloned())
    }
}
