//! One service's balancing state inside a [`ServiceHub`](super::ServiceHub): balancers per
//! (visibility, strategy, environment), breakers and the outlier detector.

use super::config::HubConfig;
use super::pick::Pick;
use crate::OrchestrateError;
use crate::alerts::AlertEngine;
use crate::balance::{Balancer, Endpoint, Strategy};
use crate::breaker::{BreakerRegistry, BreakerState, OutlierDetector};
use crate::endpoint::EndpointId;
use crate::metrics::{BreakerStateMetric, MetricsRecorder, ServiceMetrics};
use crate::outcome::{Outcome, OutcomeObserver};
use crate::registry::{
    Environment, Instance, InstanceId, InstanceKey, Query, Registry, Scope, ServiceName, Visibility,
};
use ate_core::Principal;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many times a pick tries another instance when the chosen one's breaker refuses
/// (its half-open probes are taken) before giving up.
const PICK_ATTEMPTS: usize = 3;

type BalancerKey = (Visibility, Strategy, Option<Environment>);

/// The endpoint id of an instance: unique across scopes of one service (`platform/a`,
/// `tenant:<uuid>/a`). Instance ids never contain `/`.
pub(super) fn endpoint_id(scope: Scope, id: &InstanceId) -> EndpointId {
    EndpointId::new(format!("{scope}/{id}"))
}

pub(super) struct BalancerEntry {
    balancer: Balancer<Instance>,
    /// The service generation this set was built from, plus one (0: never built).
    built: AtomicU64,
    refresh: tokio::sync::Mutex<()>,
}

pub(super) struct ServiceState {
    service: ServiceName,
    generation: AtomicU64,
    breakers: Arc<BreakerRegistry>,
    outliers: Arc<OutlierDetector>,
    observer: Arc<MetricsObserver>,
    panic_threshold: f64,
    balancers: Mutex<HashMap<BalancerKey, Arc<BalancerEntry>>>,
}

impl fmt::Debug for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceState")
            .field("service", &self.service)
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl ServiceState {
    pub(super) fn new(
        service: ServiceName,
        config: &HubConfig,
        metrics: ServiceMetrics,
        recorder: Arc<MetricsRecorder>,
        alerts: Option<AlertEngine>,
    ) -> Result<Self, OrchestrateError> {
        let breakers = Arc::new(BreakerRegistry::new(config.breaker.clone())?);
        let outliers = Arc::new(OutlierDetector::new(config.outlier.clone())?);
        {
            let (service, metrics) = (service.clone(), metrics.clone());
            breakers.add_listener(Arc::new(move |event: &crate::breaker::BreakerEvent| {
                let Some(id) = instance_of(&event.endpoint) else {
                    return;
                };
                let metric = match event.to {
                    BreakerState::Closed | BreakerState::Disabled => BreakerStateMetric::Closed,
                    BreakerState::HalfOpen => BreakerStateMetric::HalfOpen,
                    _ => BreakerStateMetric::Open,
                };
                metrics.set_breaker_state(&service, &id, metric);
                if let Some(alerts) = &alerts {
                    alerts.set_breaker_open(&service, &id, metric == BreakerStateMetric::Open);
                }
                tracing::info!(
                    service = %service,
                    endpoint = %event.endpoint,
                    from = ?event.from,
                    to = ?event.to,
                    "circuit breaker changed state"
                );
            }));
        }
        {
            let service = service.clone();
            outliers.add_listener(Arc::new(move |event: &crate::breaker::OutlierEvent| {
                let Some(id) = instance_of(&event.endpoint) else {
                    return;
                };
                let ejected = matches!(event.change, crate::breaker::OutlierChange::Ejected { .. });
                metrics.set_ejected(&service, &id, ejected);
                tracing::info!(
                    service = %service,
                    endpoint = %event.endpoint,
                    change = ?event.change,
                    "outlier detection"
                );
            }));
        }
        let observer = Arc::new(MetricsObserver {
            service: service.clone(),
            recorder,
        });
        Ok(ServiceState {
            service,
            generation: AtomicU64::new(0),
            breakers,
            outliers,
            observer,
            panic_threshold: config.panic_threshold,
            balancers: Mutex::new(HashMap::new()),
        })
    }

    /// The registry changed for this service: rebuild balancers before their next pick.
    pub(super) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Forgets a departed instance's breaker.
    pub(super) fn forget(&self, instance: &InstanceKey) {
        let gone = endpoint_id(instance.scope(), instance.id());
        let keep: Vec<EndpointId> = self
            .breakers
            .states()
            .into_iter()
            .map(|(e, _)| e)
            .filter(|e| *e != gone)
            .collect();
        self.breakers.retain(keep.iter());
        self.invalidate();
    }

    /// Brings back instances whose ejection time has passed.
    pub(super) fn sweep(&self) {
        self.outliers.sweep();
    }

    pub(super) fn breaker_states(&self) -> Vec<(String, BreakerState)> {
        self.breakers
            .states()
            .into_iter()
            .map(|(e, s)| (e.as_str().to_owned(), s))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BalancerKey, Arc<BalancerEntry>>> {
        self.balancers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The balancer for this view of the service, rebuilt from the registry if anything
    /// changed since it was built. Checks that `principal` may read `visibility` on every
    /// call, cached or not.
    pub(super) async fn balancer(
        &self,
        registry: &Registry,
        principal: &Principal,
        visibility: Visibility,
        strategy: Strategy,
        environment: Option<Environment>,
    ) -> Result<Arc<BalancerEntry>, OrchestrateError> {
        registry.authorize_read(principal, &visibility)?;
        let key = (visibility, strategy, environment);
        let entry = {
            let mut map = self.lock();
            match map.get(&key) {
                Some(e) => e.clone(),
                None => {
                    let balancer = Balancer::builder(self.service.as_str(), strategy)
                        .panic_threshold(self.panic_threshold)
                        .availability(self.breakers.clone())
                        .availability(self.outliers.clone())
                        .observer(self.observer.clone())
                        .observer(self.outliers.clone())
                        .build::<Instance>()?;
                    let e = Arc::new(BalancerEntry {
                        balancer,
                        built: AtomicU64::new(0),
                        refresh: tokio::sync::Mutex::new(()),
                    });
                    map.insert(key, e.clone());
                    e
                }
            }
        };
        if entry.built.load(Ordering::Acquire) != self.generation.load(Ordering::Acquire) + 1 {
            let _refreshing = entry.refresh.lock().await;
            let generation = self.generation.load(Ordering::Acquire);
            if entry.built.load(Ordering::Acquire) != generation + 1 {
                let mut query = Query::new(visibility)
                    .service(self.service.clone())
                    .include_unhealthy(true);
                if let Some(env) = environment {
                    query = query.environment(env);
                }
                // One read: every instance of the service (the outlier detector's ejection
                // cap counts them all), then this view's share of it.
                let all = registry
                    .store()
                    .discover(
                        &Query::new(Visibility::All)
                            .service(self.service.clone())
                            .include_unhealthy(true),
                    )
                    .await?;
                let ids: Vec<EndpointId> = all
                    .iter()
                    .map(|i| endpoint_id(i.spec.scope, &i.spec.id))
                    .collect();
                let instances: Vec<Instance> =
                    all.into_iter().filter(|i| query.matches(i)).collect();
                self.outliers.set_endpoints(ids.iter());
                let endpoints = instances.into_iter().map(|i| {
                    let id = endpoint_id(i.spec.scope, &i.spec.id);
                    let (weight, healthy) = (i.spec.weight, i.status.is_healthy());
                    Endpoint::new(id, i).weight(weight).healthy(healthy)
                });
                entry.balancer.update(endpoints)?;
                entry.built.store(generation + 1, Ordering::Release);
            }
        }
        Ok(entry)
    }

    /// Picks from `entry`, taking the breaker's permit (another instance if the chosen
    /// one's half-open probes are all out).
    pub(super) fn pick(
        &self,
        entry: &BalancerEntry,
        key: Option<&[u8]>,
    ) -> Result<Pick, OrchestrateError> {
        let mut last = None;
        for _ in 0..PICK_ATTEMPTS {
            let mut guard = entry.balancer.pick(key)?;
            match self.breakers.try_acquire(guard.id()) {
                Ok(permit) => {
                    guard.attach_permit(permit);
                    return Ok(Pick::new(guard));
                }
                Err(e) => {
                    // Dropped unfinished: reported as cancelled, which no observer counts.
                    drop(guard);
                    last = Some(e);
                }
            }
        }
        Err(OrchestrateError::NoAvailableInstance {
            service: self.service.to_string(),
            reason: match last {
                Some(e) => format!("every instance tried refused: {e}"),
                None => "no instance".into(),
            },
        })
    }
}

/// The instance id in an [`endpoint_id`].
fn instance_of(endpoint: &EndpointId) -> Option<InstanceId> {
    let (_, id) = endpoint.as_str().rsplit_once('/')?;
    InstanceId::new(id).ok()
}

/// Feeds every finished pick into the metrics families and the window aggregates (which
/// record nothing for a cancelled pick: the caller gave up, the instance did not answer).
#[derive(Debug)]
struct MetricsObserver {
    service: ServiceName,
    recorder: Arc<MetricsRecorder>,
}

impl OutcomeObserver for MetricsObserver {
    fn on_outcome(&self, endpoint: &EndpointId, outcome: Outcome, latency: Duration) {
        if outcome == Outcome::Cancelled {
            return;
        }
        if let Some(id) = instance_of(endpoint) {
            self.recorder.record(&self.service, &id, latency, outcome);
        }
    }
}
