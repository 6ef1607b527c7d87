//! Traffic operations of a [`ServiceHub`]: traffic policies (canary, blue-green) and
//! draining an instance.

use super::ServiceHub;
use crate::OrchestrateError;
use crate::registry::{Instance, InstanceKey, Scope, ServiceName, ServicePolicy, TrafficPolicy};
use ate_core::{Classify, ErrorKind, Principal};
use std::time::Duration;

/// How [`ServiceHub::drain`] waits before it deregisters the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainOptions {
    /// How long to wait at least, so that the other hosts sharing the registry stop picking
    /// the instance before it goes (they see the drain within their watch's poll interval,
    /// [`DEFAULT_POLL_INTERVAL`](crate::registry::DEFAULT_POLL_INTERVAL) for SQL registries)
    /// and the requests they already sent finish. Default 1 s.
    pub settle: Duration,
    /// How long to wait at most for this host's requests in flight to the instance to
    /// finish; the instance is deregistered after it even if some are still running (they
    /// are not cut off: the connections stay the caller's). Default 30 s.
    pub timeout: Duration,
}

impl Default for DrainOptions {
    fn default() -> Self {
        DrainOptions {
            settle: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
        }
    }
}

impl DrainOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`DrainOptions::settle`].
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// Sets [`DrainOptions::timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// How often a drain looks at the in-flight count.
const DRAIN_POLL: Duration = Duration::from_millis(10);

impl ServiceHub {
    /// Sets (`Some`) or clears (`None`) the traffic policy of `service` in `scope`
    /// ([`Registry::set_policy`](crate::registry::Registry::set_policy)). This hub's picks
    /// follow it at once; other hubs on the same registry within their watch's poll
    /// interval. Errors: `InvalidInput` (the policy), `PermissionDenied`.
    pub async fn set_policy(
        &self,
        principal: &Principal,
        scope: Scope,
        service: &ServiceName,
        policy: Option<TrafficPolicy>,
    ) -> Result<Option<ServicePolicy>, OrchestrateError> {
        let stored = self
            .inner
            .registry
            .set_policy(principal, scope, service, policy)
            .await?;
        self.inner.invalidate(service);
        Ok(stored)
    }

    /// The traffic policy of `service` in `scope`, if one is set. Errors:
    /// `PermissionDenied` for a scope the caller may not read.
    pub async fn policy(
        &self,
        principal: &Principal,
        scope: Scope,
        service: &ServiceName,
    ) -> Result<Option<ServicePolicy>, OrchestrateError> {
        self.inner.registry.policy(principal, scope, service).await
    }

    /// Picks of the instance made through this hub and not finished yet.
    pub fn in_flight(&self, instance: &InstanceKey) -> u64 {
        self.inner
            .read_services()
            .get(instance.service())
            .map_or(0, |s| s.in_flight(instance))
    }

    /// Marks an instance as draining in the registry and takes it out of this hub's picks
    /// at once (other hubs follow the registry's change): the first half of
    /// [`ServiceHub::drain`], for a host that answers before the drain has finished and
    /// runs the rest in the background. Errors: `NotFound`, `PermissionDenied`.
    pub async fn start_drain(
        &self,
        principal: &Principal,
        key: &InstanceKey,
    ) -> Result<Instance, OrchestrateError> {
        let draining = self.inner.registry.drain(principal, key).await?;
        self.inner.invalidate(key.service());
        Ok(draining)
    }

    /// Puts an instance into maintenance with `reason`, or back with `None`
    /// ([`Registry::set_maintenance`](crate::registry::Registry::set_maintenance)), and
    /// applies it to this hub's picks at once (other hubs follow the registry's change).
    /// Errors: `NotFound`, `PermissionDenied`, `InvalidInput` (an empty reason).
    pub async fn set_maintenance(
        &self,
        principal: &Principal,
        key: &InstanceKey,
        reason: Option<&str>,
    ) -> Result<Instance, OrchestrateError> {
        let instance = self
            .inner
            .registry
            .set_maintenance(principal, key, reason)
            .await?;
        self.inner.invalidate(key.service());
        Ok(instance)
    }

    /// Drains an instance, then deregisters it: it is marked draining in the registry at
    /// once (no new picks on any host, no longer discovered), the call waits
    /// [`DrainOptions::settle`] and until this hub's picks of it have finished (at most
    /// [`DrainOptions::timeout`]), then deregisters it and returns it as it was.
    ///
    /// If the instance is deregistered by someone else meanwhile, the drain ends there and
    /// returns it as it was when it started draining. If the host stops during the wait,
    /// the instance stays draining (taking no traffic) until deregistered; draining it again
    /// resumes. Errors: `NotFound`, `PermissionDenied`.
    pub async fn drain(
        &self,
        principal: &Principal,
        key: &InstanceKey,
        options: DrainOptions,
    ) -> Result<Instance, OrchestrateError> {
        let draining = self.inner.registry.drain(principal, key).await?;
        self.inner.invalidate(key.service());
        let started = tokio::time::Instant::now();
        tokio::time::sleep(options.settle).await;
        while self.in_flight(key) > 0 && started.elapsed() < options.timeout {
            tokio::time::sleep(DRAIN_POLL).await;
        }
        let left = self.in_flight(key);
        if left > 0 {
            tracing::warn!(
                instance = %key,
                in_flight = left,
                "drain timed out: deregistering with requests still in flight"
            );
        }
        match self.deregister(principal, key).await {
            Ok(instance) => Ok(instance),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(draining),
            Err(e) => Err(e),
        }
    }
}
