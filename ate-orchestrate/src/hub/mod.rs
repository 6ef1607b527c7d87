//! [`ServiceHub`]: the registry, health checks, balancing, breakers, outlier ejection,
//! metrics and alerts wired together, so a host gets them with one handle.
//!
//! ```no_run
//! use ate_core::Principal;
//! use ate_orchestrate::health::{CheckKind, CheckSpec, CheckId};
//! use ate_orchestrate::hub::{PickOptions, ServiceHub};
//! use ate_orchestrate::registry::{InstanceId, InstanceSpec, MemoryRegistry, Scope, ServiceName};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! # async fn example() -> Result<(), ate_orchestrate::OrchestrateError> {
//! let hub = ServiceHub::builder(Arc::new(MemoryRegistry::new())).build()?;
//! let admin = Principal::platform_admin("ops:deploy")?;
//! let billing = ServiceName::new("billing")?;
//! let id = InstanceId::new("billing-1")?;
//! let spec = InstanceSpec::new(Scope::Platform, billing.clone(), id.clone(), "http://127.0.0.1:8081")?;
//! let check = CheckSpec::new(
//!     CheckId::new("billing-1-http")?,
//!     spec.key(),
//!     CheckKind::http("http://127.0.0.1:8081/health"),
//! )
//! .interval(Duration::from_secs(5))
//! .timeout(Duration::from_secs(1));
//! hub.register(&admin, spec, vec![check]).await?;
//! // ... once the check passes:
//! let pick = hub.pick(&admin, &billing, PickOptions::new()).await?;
//! let url = pick.instance().spec.endpoint.clone();
//! // call `url` with the host's client, then:
//! pick.success();
//! println!("{}", hub.metrics_text()?);
//! # Ok(()) }
//! ```
//!
//! # How the parts meet
//!
//! | event | what follows |
//! | --- | --- |
//! | [`ServiceHub::register`] | the instance is stored (critical, Consul's rule), then its checks are scheduled; if a check cannot be added nothing stays behind |
//! | a check result turns an instance passing, warning or critical | the registry stores the new status and the service's balancers are rebuilt before the next pick, so a critical instance takes no new request from then on (failover), unless fewer than [`HubConfig::panic_threshold`] of the instances are healthy: then, as in Envoy, picks spread over all of them (set it to 0 to fail instead) |
//! | a check stays critical longer than its `deregister_critical_after` | the instance is deregistered |
//! | [`Pick::success`] / [`Pick::failure`] / dropping a [`Pick`] | in-flight count down, latency and outcome into the metrics and the window aggregates, the breaker's window, the outlier detector |
//! | a breaker opens (or an instance is ejected) | the instance is skipped by picks until it is allowed again; the breaker state is a metric and an alert input |
//! | another process changes the shared registry | the registry watch marks the service's balancers stale; they are rebuilt before the next pick |
//! | [`ServiceHub::deregister`] | checks removed, breaker, outlier and metrics series of the instance forgotten |
//!
//! Tenancy follows the [`Registry`] facade: every call takes the caller's [`Principal`]; a
//! tenant's caller registers in its own scope and picks among its own and the platform's
//! instances, never another tenant's.

mod pick;
mod service;

pub use pick::{Pick, PickOptions};

use crate::OrchestrateError;
use crate::alerts::{AlertEngine, AlertHistory, AlertLoop, AlertSink};
use crate::balance::{DEFAULT_PANIC_THRESHOLD, Strategy};
use crate::breaker::{BreakerConfig, OutlierConfig};
use crate::health::{
    CheckRun, CheckSpec, DeregisterRequest, HealthReporter, HealthScheduler, SchedulerConfig,
    StatusChange,
};
use crate::metrics::{
    MetricsRecorder, RecorderConfig, ServiceMetrics, WindowStats, render_openmetrics,
};
use crate::outcome::Outcome;
use crate::registry::{
    HealthStatus, Instance, InstanceId, InstanceKey, InstanceSpec, Query, Registry, RegistryEvent,
    RegistryStore, ServiceName, Visibility,
};
use ate_core::{Classify, ErrorKind, Principal};
use futures::StreamExt;
use service::ServiceState;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

/// How a [`ServiceHub`] balances, breaks and measures. `Default` gives the documented
/// defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HubConfig {
    /// The strategy when a pick names none (default least request, two random choices).
    pub strategy: Strategy,
    /// Below this share of healthy instances, balance over all (default 0.5; 0 disables).
    pub panic_threshold: f64,
    /// Circuit breakers, one per instance.
    pub breaker: BreakerConfig,
    /// Outlier ejection, per service.
    pub outlier: OutlierConfig,
    /// Window aggregates (p50/p95/p99, rates).
    pub recorder: RecorderConfig,
    /// The health-check scheduler.
    pub scheduler: SchedulerConfig,
    /// How often alert rules are evaluated (default 1 s).
    pub alert_interval: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            strategy: Strategy::LeastRequest,
            panic_threshold: DEFAULT_PANIC_THRESHOLD,
            breaker: BreakerConfig::default(),
            outlier: OutlierConfig::default(),
            recorder: RecorderConfig::default(),
            scheduler: SchedulerConfig::default(),
            alert_interval: Duration::from_secs(1),
        }
    }
}

impl HubConfig {
    /// Sets [`HubConfig::strategy`].
    pub fn with_strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Sets [`HubConfig::panic_threshold`].
    pub fn with_panic_threshold(mut self, share: f64) -> Self {
        self.panic_threshold = share;
        self
    }

    /// Sets [`HubConfig::breaker`].
    pub fn with_breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }

    /// Sets [`HubConfig::outlier`].
    pub fn with_outlier(mut self, outlier: OutlierConfig) -> Self {
        self.outlier = outlier;
        self
    }

    /// Sets [`HubConfig::recorder`].
    pub fn with_recorder(mut self, recorder: RecorderConfig) -> Self {
        self.recorder = recorder;
        self
    }

    /// Sets [`HubConfig::scheduler`].
    pub fn with_scheduler(mut self, scheduler: SchedulerConfig) -> Self {
        self.scheduler = scheduler;
        self
    }

    /// Sets [`HubConfig::alert_interval`].
    pub fn with_alert_interval(mut self, interval: Duration) -> Self {
        self.alert_interval = interval;
        self
    }
}

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
            config,
        });
        // The scheduler reports through a weak reference: no cycle keeps the hub alive.
        let _ = slot.set(Arc::downgrade(&inner));
        if let Some(engine) = &inner.alerts {
            let handle = engine.spawn(inner.config.alert_interval)?;
            *lock(&inner.alert_loop) = Some(handle);
        }
        let watch = runtime.spawn(follow_registry(Arc::downgrade(&inner)));
        *lock(&inner.watch) = Some(watch);
        Ok(ServiceHub { inner })
    }
}

/// The registry, health checks, balancing, breakers, metrics and alerts of one host;
/// cheap to clone. See the [module documentation](self).
#[derive(Clone)]
pub struct ServiceHub {
    inner: Arc<Inner>,
}

struct Inner {
    /// Every write on a caller's behalf goes through the facade (tenancy checks); only the
    /// hub's own trusted work (health verdicts, the watch, balancer refreshes after
    /// [`Registry::authorize_read`]) uses its store directly.
    registry: Registry,
    health: HealthScheduler,
    metrics: ServiceMetrics,
    prometheus: prometheus_client::registry::Registry,
    recorder: Arc<MetricsRecorder>,
    alerts: Option<AlertEngine>,
    alert_loop: Mutex<Option<AlertLoop>>,
    services: RwLock<HashMap<ServiceName, Arc<ServiceState>>>,
    watch: Mutex<Option<tokio::task::JoinHandle<()>>>,
    config: HubConfig,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(watch) = lock(&self.watch).take() {
            watch.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every value behind these mutexes is replaced whole; a panic elsewhere cannot leave
    // one half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
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

impl Inner {
    fn read_services(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<ServiceName, Arc<ServiceState>>> {
        self.services.read().unwrap_or_else(|p| p.into_inner())
    }

    fn health(&self) -> &HealthScheduler {
        &self.health
    }

    /// The service's state, created on first use.
    fn service(&self, service: &ServiceName) -> Result<Arc<ServiceState>, OrchestrateError> {
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
    fn invalidate(&self, service: &ServiceName) {
        if let Some(s) = self.read_services().get(service) {
            s.invalidate();
        }
    }

    fn invalidate_all(&self) {
        for s in self.read_services().values() {
            s.invalidate();
        }
    }

    /// Forgets what the hub keeps about a departed instance.
    fn forget(&self, instance: &Instance) {
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
    fn status_written(&self, instance: &Instance) {
        self.invalidate(&instance.spec.service);
        self.observe_status(instance);
    }

    /// After an instance was deregistered: balancers rebuilt, everything kept about it
    /// forgotten.
    fn deregistered(&self, instance: &Instance) {
        self.invalidate(&instance.spec.service);
        self.forget(instance);
    }

    fn observe_status(&self, instance: &Instance) {
        let (service, id) = (&instance.spec.service, &instance.spec.id);
        self.metrics.set_health_status(service, id, instance.status);
        if let Some(alerts) = &self.alerts {
            alerts.set_instance_status(service, id, instance.status);
        }
    }
}

/// How often the hub brings ejected instances back whose ejection time has passed (their
/// `Returned` events and metrics would otherwise wait for the next outcome).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Follows the registry's changes (this process's and, for SQL stores, other processes')
/// and sweeps outlier ejections, until the hub is dropped.
async fn follow_registry(hub: Weak<Inner>) {
    let mut events = {
        let Some(inner) = hub.upgrade() else { return };
        match inner.registry.store().watch().await {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(error = %e, "service hub: cannot watch the registry");
                return;
            }
        }
    };
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            event = events.next() => match event {
                Some(event) => event,
                None => return,
            },
            _ = sweep.tick() => {
                let Some(inner) = hub.upgrade() else { return };
                let services: Vec<Arc<ServiceState>> =
                    inner.read_services().values().cloned().collect();
                for s in services {
                    s.sweep();
                }
                continue;
            }
        };
        let Some(inner) = hub.upgrade() else { return };
        match &event {
            RegistryEvent::Registered { instance }
            | RegistryEvent::StatusChanged { instance, .. } => inner.status_written(instance),
            RegistryEvent::Deregistered { instance, .. } => inner.deregistered(instance),
            RegistryEvent::Lagged { missed } => {
                tracing::warn!(
                    missed,
                    "service hub: registry watch lagged; rebuilding every balancer"
                );
                inner.invalidate_all();
            }
        }
    }
}

/// Puts the scheduler's verdicts into the registry.
struct Reporter {
    hub: Arc<OnceLock<Weak<Inner>>>,
}

impl Reporter {
    fn hub(&self) -> Option<Arc<Inner>> {
        self.hub.get().and_then(Weak::upgrade)
    }
}

#[async_trait::async_trait]
impl HealthReporter for Reporter {
    async fn status_changed(&self, change: StatusChange) -> Result<(), OrchestrateError> {
        let Some(inner) = self.hub() else {
            return Ok(());
        };
        // The scheduler's verdict is trusted host work: no principal to check.
        let result = inner
            .registry
            .store()
            .set_status(&change.instance, change.to, &change.output)
            .await;
        match result {
            Ok(instance) => {
                inner.status_written(&instance);
                Ok(())
            }
            Err(e) => {
                inner.invalidate(change.instance.service());
                match e.kind() {
                    // Deregistered meanwhile: nothing to update.
                    ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                }
            }
        }
    }

    fn wants_check_runs(&self) -> bool {
        true
    }

    async fn check_ran(&self, run: CheckRun) {
        if let Some(inner) = self.hub() {
            inner.metrics.observe_check_duration(
                run.instance.service(),
                run.instance.id(),
                run.kind,
                run.duration,
            );
        }
    }

    async fn deregister_requested(
        &self,
        request: DeregisterRequest,
    ) -> Result<(), OrchestrateError> {
        let Some(inner) = self.hub() else {
            return Ok(());
        };
        tracing::info!(
            instance = %request.instance,
            critical_for_ms = request.critical_for.as_millis() as u64,
            "deregistering an instance critical for too long"
        );
        // The scheduler's request is trusted host work: no principal to check.
        match inner.registry.store().deregister(&request.instance).await {
            Ok(instance) => {
                inner.deregistered(&instance);
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
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

    /// The alert engine, if the hub was built with [`HubBuilder::alerts`].
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
        state.pick(&balancer, options.key.as_deref())
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

    /// The circuit-breaker state of every instance of `service` the hub has called.
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

/// The hub as a [`Picker`](crate::layer::Picker) for the tower
/// [`BalanceLayer`](crate::layer::BalanceLayer): every attempt is a [`ServiceHub::pick`]
/// of one service for one principal, with breakers, ejection, metrics and failover.
#[cfg(feature = "tower")]
#[derive(Debug, Clone)]
pub struct HubPicker {
    hub: ServiceHub,
    principal: Principal,
    service: ServiceName,
    options: PickOptions,
}

#[cfg(feature = "tower")]
impl HubPicker {
    /// Picks instances of `service` as `principal` with `options` (a request's key header,
    /// when the layer has one, replaces [`PickOptions::key`]).
    pub fn new(
        hub: ServiceHub,
        principal: Principal,
        service: ServiceName,
        options: PickOptions,
    ) -> Self {
        HubPicker {
            hub,
            principal,
            service,
            options,
        }
    }
}

#[cfg(feature = "tower")]
impl crate::layer::Picker<Instance> for HubPicker {
    fn pick<'a>(&'a self, key: Option<&'a [u8]>) -> crate::layer::PickFuture<'a, Instance> {
        Box::pin(async move {
            let mut options = self.options.clone();
            if let Some(key) = key {
                options.key = Some(key.to_vec());
            }
            self.hub
                .pick(&self.principal, &self.service, options)
                .await
                .map(Pick::into_guard)
        })
    }
}

#[cfg(test)]
mod tests;
