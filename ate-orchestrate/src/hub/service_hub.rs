//! [`ServiceHub`]: the handle hosts hold, and every operation it offers.

use super::pick::{Pick, PickOptions};
use super::shared::{Inner, lock};
use crate::OrchestrateError;
use crate::alerts::AlertEngine;
use crate::health::{CheckSpec, HealthScheduler};
use crate::metrics::{MetricsRecorder, ServiceMetrics, WindowStats, render_openmetrics};
use crate::outcome::Outcome;
use crate::registry::{
    HealthStatus, Instance, InstanceId, InstanceKey, InstanceSpec, Query, Registry, ServiceName,
    Visibility,
};
use ate_core::{Classify, Principal};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The registry, health checks, balancing, breakers, metrics and alerts of one host;
/// cheap to clone. See the [module documentation](super).
#[derive(Clone)]
pub struct ServiceHub {
    pub(super) inner: Arc<Inner>,
}

impl fmt::Debug for ServiceHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceHub")
            .field("store", self.inner.registry.store())
            .field("services", &self.inner.read_services().len())
            .field("alerts", &self.inner.alerts.is_some())
            .finish_non_exhaustive()
    }
}

impl ServiceHub {
    /// The registry facade (tenancy-checked reads and writes).
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The health-check scheduler (results of each check, TTL updates).
    pub fn health(&self) -> &HealthScheduler {
        self.inner.health()
    }

    /// The Prometheus families; register them into the host's own registry with
    /// [`ServiceMetrics::register`] to export them next to the host's metrics.
    pub fn metrics(&self) -> &ServiceMetrics {
        &self.inner.metrics
    }

    /// The window aggregates (p50/p95/p99, rates, error rates).
    pub fn recorder(&self) -> &Arc<MetricsRecorder> {
        &self.inner.recorder
    }

    /// The alert engine, if the hub was built with [`HubBuilder::alerts`](super::HubBuilder::alerts).
    pub fn alerts(&self) -> Option<&AlertEngine> {
        self.inner.alerts.as_ref()
    }

    /// Registers an instance and schedules its `checks` (each must name the instance's
    /// [`key`](InstanceSpec::key)). The instance starts critical and takes traffic once its
    /// checks pass; with no checks it stays critical until someone sets its status.
    ///
    /// Behavior: every check is validated first; if the registration or any check fails,
    /// nothing stays behind (checks added are removed, the instance is deregistered).
    /// Errors: [`OrchestrateError::InvalidInput`] (spec or check), `AlreadyExists` (the
    /// instance or a check id), `PermissionDenied` (scope not the caller's).
    pub async fn register(
        &self,
        principal: &Principal,
        spec: InstanceSpec,
        checks: Vec<CheckSpec>,
    ) -> Result<Instance, OrchestrateError> {
        spec.validate()?;
        let health = self.inner.health();
        let key = spec.key();
        for check in &checks {
            check.validate()?;
            if check.instance != key {
                return Err(OrchestrateError::invalid(
                    "check",
                    format!(
                        "check {} is for {}, not for the instance being registered ({key})",
                        check.id, check.instance,
                    ),
                ));
            }
        }
        self.inner.service(key.service())?;
        let instance = self.inner.registry.register(principal, spec).await?;
        self.inner.observe_status(&instance);
        for check in checks {
            if let Err(e) = health.add_check(check) {
                health.remove_instance(&key);
                // The caller just registered it, so the facade lets it undo that.
                if let Err(undo) = self.inner.registry.deregister(principal, &key).await {
                    tracing::warn!(error = %undo, "service hub: could not undo a failed registration");
                }
                self.inner.invalidate(key.service());
                return Err(e);
            }
        }
        self.inner.invalidate(key.service());
        Ok(instance)
    }

    /// Deregisters an instance: its checks stop and every series, breaker and ejection of
    /// it is forgotten. Errors: `NotFound`, `PermissionDenied`.
    pub async fn deregister(
        &self,
        principal: &Principal,
        key: &InstanceKey,
    ) -> Result<Instance, OrchestrateError> {
        let instance = self.inner.registry.deregister(principal, key).await?;
        self.inner.deregistered(&instance);
        Ok(instance)
    }

    /// Records a heartbeat: the registry's `last_heartbeat`, and a pass for each TTL check
    /// of the instance. Errors: `NotFound`, `PermissionDenied`.
    pub async fn heartbeat(
        &self,
        principal: &Principal,
        key: &InstanceKey,
    ) -> Result<Instance, OrchestrateError> {
        let instance = self.inner.registry.heartbeat(principal, key).await?;
        let health = self.inner.health();
        for check in health.instance_checks(key) {
            match health.heartbeat(&check) {
                // Only TTL checks take heartbeats; the others run on their own.
                Ok(()) | Err(OrchestrateError::InvalidInput { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(instance)
    }

    /// Sets an instance's status by hand (instances without checks, maintenance).
    pub async fn set_status(
        &self,
        principal: &Principal,
        key: &InstanceKey,
        status: HealthStatus,
        output: &str,
    ) -> Result<Instance, OrchestrateError> {
        let instance = self
            .inner
            .registry
            .set_status(principal, key, status, output)
            .await?;
        self.inner.status_written(&instance);
        Ok(instance)
    }

    /// Discovers instances (see [`Query`]); healthy ones only unless the query says
    /// otherwise.
    pub async fn discover(
        &self,
        principal: &Principal,
        query: &Query,
    ) -> Result<Vec<Instance>, OrchestrateError> {
        self.inner.registry.discover(principal, query).await
    }

    /// Picks an instance of `service` for one request. Finish the returned [`Pick`] with
    /// [`Pick::success`] / [`Pick::failure`] (dropping it counts as cancelled).
    ///
    /// Visibility: a tenant's principal picks among its tenant's and the platform's
    /// instances; a platform principal among the platform's (or what
    /// [`PickOptions::visibility`] names, which the registry facade checks).
    ///
    /// Errors: [`OrchestrateError::NoAvailableInstance`] when no instance is registered,
    /// healthy (beyond the panic threshold) and allowed by its breaker and the outlier
    /// detector; `PermissionDenied` for a visibility the caller may not read.
    pub async fn pick(
        &self,
        principal: &Principal,
        service: &ServiceName,
        options: PickOptions,
    ) -> Result<Pick, OrchestrateError> {
        let visibility = match options.visibility {
            Some(v) => v,
            None => match principal.tenant() {
                Some(t) => Visibility::Tenant(t),
                None => Visibility::Platform,
            },
        };
        let strategy = options.strategy.unwrap_or(self.inner.config.strategy);
        self.inner.watch_started().await;
        let state = self.inner.service(service)?;
        let balancer = state
            .balancer(
                &self.inner.registry,
                principal,
                visibility,
                strategy,
                options.environment,
            )
            .await?;
        state.pick(&balancer, options.key.as_deref(), &options.avoid)
    }

    /// Records a request the host made without [`ServiceHub::pick`] (response time and
    /// outcome), into the same metrics and aggregates.
    pub fn record(
        &self,
        service: &ServiceName,
        instance: &InstanceId,
        latency: Duration,
        outcome: Outcome,
    ) {
        self.inner
            .recorder
            .record(service, instance, latency, outcome);
    }

    /// Records a result: `Ok` a success, `Err(e)` an error of `e.kind()`.
    pub fn record_result<T, E: Classify>(
        &self,
        service: &ServiceName,
        instance: &InstanceId,
        latency: Duration,
        result: &Result<T, E>,
    ) {
        self.record(service, instance, latency, Outcome::of(result));
    }

    /// Aggregates of `service` (or one instance of it) over the last `window`.
    pub fn stats(
        &self,
        service: &ServiceName,
        instance: Option<&InstanceId>,
        window: Duration,
    ) -> Result<WindowStats, OrchestrateError> {
        match instance {
            Some(i) => self.inner.recorder.instance_stats(service, i, window),
            None => self.inner.recorder.service_stats(service, window),
        }
    }

    /// Aggregates of some instances of `service` over the last `window`, merged as one
    /// ([`MetricsRecorder::instances_stats`]): a tenant's share of a service name.
    pub fn instances_stats(
        &self,
        service: &ServiceName,
        instances: &[InstanceId],
        window: Duration,
    ) -> Result<WindowStats, OrchestrateError> {
        self.inner
            .recorder
            .instances_stats(service, instances, window)
    }

    /// What this hub's traffic says of one instance: its circuit breaker (`None` until the
    /// hub has called it) and whether outlier detection has ejected it now.
    pub fn instance_traffic_state(
        &self,
        key: &InstanceKey,
    ) -> (Option<crate::breaker::BreakerState>, bool) {
        let services = self.inner.read_services();
        let Some(state) = services.get(key.service()) else {
            return (None, false);
        };
        state.traffic_state(key)
    }

    /// The circuit-breaker state of every instance of `service` the hub has called, keyed
    /// `{scope}/{instance}` (`platform/api-1`, `tenant:<id>/api-1`).
    pub fn breaker_states(
        &self,
        service: &ServiceName,
    ) -> Vec<(String, crate::breaker::BreakerState)> {
        self.inner
            .read_services()
            .get(service)
            .map(|s| s.breaker_states())
            .unwrap_or_default()
    }

    /// The OpenMetrics text of the hub's families (requests, errors, latency, health,
    /// breakers, check durations).
    pub fn metrics_text(&self) -> Result<String, OrchestrateError> {
        render_openmetrics(&self.inner.prometheus)
    }

    /// Stops the health checks and the alert loop (idempotent). Later registrations fail
    /// with `Unavailable`; picks keep working on what is registered.
    pub async fn shutdown(&self) {
        self.inner.health.shutdown().await;
        let alert_loop = lock(&self.inner.alert_loop).take();
        if let Some(l) = alert_loop {
            l.stop().await;
        }
    }
}
