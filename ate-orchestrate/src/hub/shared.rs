//! What every clone of a [`ServiceHub`](super::ServiceHub) and its background tasks share
//! ([`Inner`]), and what follows a change to an instance (balancers rebuilt, metrics,
//! alerts, checks and breakers kept in step).

use super::config::HubConfig;
use super::service_state::ServiceState;
use crate::OrchestrateError;
use crate::alerts::{AlertEngine, AlertLoop};
use crate::health::HealthScheduler;
use crate::metrics::{MetricsRecorder, ServiceMetrics};
use crate::registry::{Instance, Registry, ServiceName};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// The hub's state behind its `Arc`: one per hub, shared by its clones, its builder's
/// background tasks (weakly) and the health reporter (weakly).
pub(super) struct Inner {
    /// Every write on a caller's behalf goes through the facade (tenancy checks); only the
    /// hub's own trusted work (health verdicts, the watch, balancer refreshes after
    /// [`Registry::authorize_read`]) uses its store directly.
    pub(super) registry: Registry,
    pub(super) health: HealthScheduler,
    pub(super) metrics: ServiceMetrics,
    pub(super) prometheus: prometheus_client::registry::Registry,
    pub(super) recorder: Arc<MetricsRecorder>,
    pub(super) alerts: Option<AlertEngine>,
    pub(super) alert_loop: Mutex<Option<AlertLoop>>,
    pub(super) services: RwLock<HashMap<ServiceName, Arc<ServiceState>>>,
    pub(super) watch: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// `true` once the watch holds its position in the registry's change log (or could not
    /// be opened). A balancer built from a read before that could miss every change made
    /// between the read and the position, so picks wait for it.
    pub(super) watching: tokio::sync::watch::Receiver<bool>,
    pub(super) config: HubConfig,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(watch) = lock(&self.watch).take() {
            watch.abort();
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every value behind these mutexes is replaced whole; a panic elsewhere cannot leave
    // one half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    pub(super) fn read_services(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<ServiceName, Arc<ServiceState>>> {
        self.services.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the registry watch holds its position (at once after the first time).
    /// If the watch task is gone, there is nothing to wait for.
    pub(super) async fn watch_started(&self) {
        let mut watching = self.watching.clone();
        let _ = watching.wait_for(|started| *started).await;
    }

    pub(super) fn health(&self) -> &HealthScheduler {
        &self.health
    }

    /// The service's state, created on first use.
    pub(super) fn service(
        &self,
        service: &ServiceName,
    ) -> Result<Arc<ServiceState>, OrchestrateError> {
        if let Some(s) = self.read_services().get(service) {
            return Ok(s.clone());
        }
        let mut services = self.services.write().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = services.get(service) {
            return Ok(s.clone());
        }
        let state = Arc::new(ServiceState::new(
            service.clone(),
            &self.config,
            self.metrics.clone(),
            self.recorder.clone(),
            self.alerts.clone(),
        )?);
        services.insert(service.clone(), state.clone());
        Ok(state)
    }

    /// Marks the service's balancers stale (an instance came, went or changed health).
    pub(super) fn invalidate(&self, service: &ServiceName) {
        if let Some(s) = self.read_services().get(service) {
            s.invalidate();
        }
    }

    pub(super) fn invalidate_all(&self) {
        for s in self.read_services().values() {
            s.invalidate();
        }
    }

    /// Forgets what the hub keeps about a departed instance.
    pub(super) fn forget(&self, instance: &Instance) {
        let key = instance.key();
        let (service, id) = (&instance.spec.service, &instance.spec.id);
        self.health.remove_instance(&key);
        self.recorder.forget_instance(service, id);
        if let Some(alerts) = &self.alerts {
            alerts.forget_instance(service, id);
        }
        if let Some(s) = self.read_services().get(service) {
            s.forget(&key);
        }
    }

    /// After an instance's status was written: failover at once (the service's balancers
    /// are rebuilt before the next pick, without waiting for the watch), and the status
    /// metric and alert input follow.
    pub(super) fn status_written(&self, instance: &Instance) {
        self.invalidate(&instance.spec.service);
        self.observe_status(instance);
    }

    /// After an instance was deregistered: balancers rebuilt, everything kept about it
    /// forgotten.
    pub(super) fn deregistered(&self, instance: &Instance) {
        self.invalidate(&instance.spec.service);
        self.forget(instance);
    }

    pub(super) fn observe_status(&self, instance: &Instance) {
        let (service, id) = (&instance.spec.service, &instance.spec.id);
        self.metrics.set_health_status(service, id, instance.status);
        if let Some(alerts) = &self.alerts {
            alerts.set_instance_status(service, id, instance.status);
        }
    }
}
