//! [`HubBuilder`]: how a [`ServiceHub`] is put together: the registry facade, the health
//! scheduler reporting into it, metrics, alerts, and the background registry watch.

use super::config::HubConfig;
use super::health_reports::Reporter;
use super::registry_watch::follow_registry;
use super::service_hub::ServiceHub;
use super::shared::{Inner, lock};
use crate::OrchestrateError;
use crate::alerts::{AlertEngine, AlertHistory, AlertSink};
use crate::health::HealthScheduler;
use crate::metrics::{MetricsRecorder, ServiceMetrics};
use crate::registry::{Registry, RegistryStore};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// Builds a [`ServiceHub`].
pub struct HubBuilder {
    store: Arc<dyn RegistryStore>,
    config: HubConfig,
    alerts: Option<(Arc<dyn AlertSink>, Arc<dyn AlertHistory>)>,
    clock: Option<Arc<dyn ate_core::Clock>>,
}

impl fmt::Debug for HubBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubBuilder")
            .field("store", &self.store)
            .field("config", &self.config)
            .field("alerts", &self.alerts.is_some())
            .finish()
    }
}

impl HubBuilder {
    /// Replaces the configuration.
    pub fn config(mut self, config: HubConfig) -> Self {
        self.config = config;
        self
    }

    /// Evaluates alert rules every [`HubConfig::alert_interval`], delivering firing and
    /// resolved events to `sink` and keeping them in `history`.
    pub fn alerts(mut self, sink: Arc<dyn AlertSink>, history: Arc<dyn AlertHistory>) -> Self {
        self.alerts = Some((sink, history));
        self
    }

    /// The wall clock of the window aggregates (tests).
    pub fn clock(mut self, clock: Arc<dyn ate_core::Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The hub. Must be called inside a tokio runtime (it starts the health scheduler, the
    /// registry watch and, with alerts, the evaluation loop; all stop when the last clone
    /// of the hub is dropped).
    ///
    /// Errors: [`OrchestrateError::InvalidInput`] for a configuration out of range or
    /// outside a tokio runtime.
    pub fn build(self) -> Result<ServiceHub, OrchestrateError> {
        let config = self.config;
        if !(0.0..=1.0).contains(&config.panic_threshold) {
            return Err(OrchestrateError::invalid(
                "panic threshold",
                format!("{} is outside 0.0..=1.0", config.panic_threshold),
            ));
        }
        config.breaker.validate()?;
        config.outlier.validate()?;
        config.recorder.validate()?;
        if config.alert_interval.is_zero() {
            return Err(OrchestrateError::invalid(
                "alert interval",
                "must be longer than zero",
            ));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            OrchestrateError::invalid("service hub", "must be built inside a tokio runtime")
        })?;
        let metrics = ServiceMetrics::new();
        let mut prometheus = prometheus_client::registry::Registry::default();
        metrics.register(&mut prometheus);
        let mut recorder =
            MetricsRecorder::new(config.recorder.clone())?.with_exporter(metrics.clone());
        if let Some(clock) = self.clock {
            recorder = recorder.with_clock(clock);
        }
        let recorder = Arc::new(recorder);
        let alerts = self
            .alerts
            .map(|(sink, history)| AlertEngine::new(recorder.clone(), sink, history));
        let slot = Arc::new(OnceLock::new());
        let health = HealthScheduler::new(
            Arc::new(Reporter { hub: slot.clone() }),
            config.scheduler.clone(),
        )?;
        let (started, watching) = tokio::sync::watch::channel(false);
        let inner = Arc::new(Inner {
            registry: Registry::new(self.store),
            health,
            metrics,
            prometheus,
            recorder,
            alerts,
            alert_loop: Mutex::new(None),
            services: RwLock::new(HashMap::new()),
            watch: Mutex::new(None),
            watching,
            config,
        });
        // The scheduler reports through a weak reference: no cycle keeps the hub alive.
        let _ = slot.set(Arc::downgrade(&inner));
        if let Some(engine) = &inner.alerts {
            let handle = engine.spawn(inner.config.alert_interval)?;
            *lock(&inner.alert_loop) = Some(handle);
        }
        let watch = runtime.spawn(follow_registry(Arc::downgrade(&inner), started));
        *lock(&inner.watch) = Some(watch);
        Ok(ServiceHub { inner })
    }
}

impl ServiceHub {
    /// A builder over `store` (memory, SQLite or PostgreSQL registry).
    pub fn builder(store: Arc<dyn RegistryStore>) -> HubBuilder {
        HubBuilder {
            store,
            config: HubConfig::default(),
            alerts: None,
            clock: None,
        }
    }
}
