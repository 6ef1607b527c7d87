//! One service's balancing state inside a [`ServiceHub`](super::ServiceHub): balancers per
//! (visibility, strategy, environment), breakers and the outlier detector.

use super::config::HubConfig;
use super::pick::Pick;
use crate::OrchestrateError;
use crate::alerts::AlertEngine;
use crate::balance::consistent_hash::Ring;
use crate::balance::{Balancer, Endpoint, PickGuard, Strategy};
use crate::breaker::{BreakerRegistry, BreakerState, OutlierDetector};
use crate::endpoint::EndpointId;
use crate::metrics::{BreakerStateMetric, MetricsRecorder, ServiceMetrics};
use crate::outcome::{Outcome, OutcomeObserver};
use crate::registry::{
    Environment, Instance, InstanceId, InstanceKey, Query, Registry, Scope, Selector, ServiceName,
    TrafficPolicy, Visibility,
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

/// One view's routing: the traffic policy it was built under and a balancer per group (one
/// group holding every instance when there is no policy).
pub(super) struct Routing {
    policy: Option<TrafficPolicy>,
    groups: Vec<Group>,
}

struct Group {
    selector: Option<Selector>,
    percent: u8,
    balancer: Balancer<Instance>,
}

impl Routing {
    /// The groups to try for one pick, in order: the one the key's hash (or a random draw)
    /// lands in, then, for a split, the other groups with a share, largest first.
    fn order(&self, key: Option<&[u8]>) -> Vec<usize> {
        if self.groups.len() == 1 {
            return vec![0];
        }
        let bucket = match key {
            Some(k) => (Ring::hash_key(k) % 100) as u8,
            None => fastrand::u8(0..100),
        };
        let mut upto = 0u32;
        let first = self
            .groups
            .iter()
            .position(|g| {
                upto += u32::from(g.percent);
                u32::from(bucket) < upto
            })
            .unwrap_or(0);
        let mut order = vec![first];
        if self.policy.as_ref().is_some_and(TrafficPolicy::falls_back) {
            let mut rest: Vec<usize> = (0..self.groups.len())
                .filter(|&i| i != first && self.groups[i].percent > 0)
                .collect();
            rest.sort_by_key(|&i| std::cmp::Reverse(self.groups[i].percent));
            order.extend(rest);
        }
        order
    }
}

pub(super) struct BalancerEntry {
    routing: std::sync::RwLock<Arc<Routing>>,
    /// The service generation this set was built from, plus one (0: never built).
    built: AtomicU64,
    refresh: tokio::sync::Mutex<()>,
}

impl BalancerEntry {
    fn routing(&self) -> Arc<Routing> {
        self.routing
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

pub(super) struct ServiceState {
    service: ServiceName,
    generation: AtomicU64,
    breakers: Arc<BreakerRegistry>,
    outliers: Arc<OutlierDetector>,
    observer: Arc<MetricsObserver>,
    panic_threshold: f64,
    balancers: Mutex<HashMap<BalancerKey, Arc<BalancerEntry>>>,
    /// Picks not yet finished, per endpoint, over every view (a drain waits for zero).
    in_flight: Mutex<HashMap<EndpointId, Arc<AtomicU64>>>,
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
            in_flight: Mutex::new(HashMap::new()),
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
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&gone);
        self.invalidate();
    }

    /// Brings back instances whose ejection time has passed.
    pub(super) fn sweep(&self) {
        self.outliers.sweep();
    }

    /// One instance's breaker (if called) and whether it is ejected now.
    pub(super) fn traffic_state(&self, key: &InstanceKey) -> (Option<BreakerState>, bool) {
        let endpoint = endpoint_id(key.scope(), key.id());
        let breaker = self
            .breakers
            .states()
            .into_iter()
            .find(|(e, _)| *e == endpoint)
            .map(|(_, s)| s);
        (breaker, self.outliers.is_ejected(endpoint.as_str()))
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

    fn new_balancer(&self, strategy: Strategy) -> Result<Balancer<Instance>, OrchestrateError> {
        Balancer::builder(self.service.as_str(), strategy)
            .panic_threshold(self.panic_threshold)
            .availability(self.breakers.clone())
            .availability(self.outliers.clone())
            .observer(self.observer.clone())
            .observer(self.outliers.clone())
            .build::<Instance>()
    }

    /// The balancers for this view of the service, rebuilt from the registry (instances and
    /// traffic policy) if anything changed since they were built. Checks that `principal`
    /// may read `visibility` on every call, cached or not.
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
                    let routing = Routing {
                        policy: None,
                        groups: vec![Group {
                            selector: None,
                            percent: 100,
                            balancer: self.new_balancer(strategy)?,
                        }],
                    };
                    let e = Arc::new(BalancerEntry {
                        routing: std::sync::RwLock::new(Arc::new(routing)),
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
                self.rebuild(registry, &entry, visibility, strategy, environment)
                    .await?;
                entry.built.store(generation + 1, Ordering::Release);
            }
        }
        Ok(entry)
    }

    async fn rebuild(
        &self,
        registry: &Registry,
        entry: &BalancerEntry,
        visibility: Visibility,
        strategy: Strategy,
        environment: Option<Environment>,
    ) -> Result<(), OrchestrateError> {
        let store = registry.store();
        let mut query = Query::new(visibility)
            .service(self.service.clone())
            .include_unhealthy(true);
        if let Some(env) = environment {
            query = query.environment(env);
        }
        // One read: every instance of the service (the outlier detector's ejection cap
        // counts them all), then this view's share of it.
        let all = store
            .discover(
                &Query::new(Visibility::All)
                    .service(self.service.clone())
                    .include_unhealthy(true),
            )
            .await?;
        // The most specific policy: the tenant's for a tenant's view, else the platform's.
        let mut policy = None;
        if let Visibility::Tenant(t) = visibility {
            policy = store.policy(Scope::Tenant(t), &self.service).await?;
        }
        if policy.is_none() {
            policy = store.policy(Scope::Platform, &self.service).await?;
        }
        let policy = policy.map(|p| p.policy);
        let ids: Vec<EndpointId> = all
            .iter()
            .map(|i| endpoint_id(i.spec.scope, &i.spec.id))
            .collect();
        self.outliers.set_endpoints(ids.iter());
        let current = entry.routing();
        let groups: Vec<(Option<Selector>, u8)> = match &policy {
            Some(p) => p
                .groups()
                .into_iter()
                .map(|(s, pc)| (Some(s), pc))
                .collect(),
            None => vec![(None, 100)],
        };
        let mut sets: Vec<Vec<Endpoint<Instance>>> = groups.iter().map(|_| Vec::new()).collect();
        // Draining instances and those in maintenance take no new picks: they leave every set.
        for i in all
            .into_iter()
            .filter(|i| query.matches(i) && i.in_rotation())
        {
            let Some(g) = groups
                .iter()
                .position(|(sel, _)| sel.as_ref().is_none_or(|s| s.matches(&i)))
            else {
                continue;
            };
            let id = endpoint_id(i.spec.scope, &i.spec.id);
            let (weight, healthy) = (i.spec.weight, i.status.is_healthy());
            sets[g].push(Endpoint::new(id, i).weight(weight).healthy(healthy));
        }
        if current.policy == policy {
            for (group, set) in current.groups.iter().zip(sets) {
                group.balancer.update(set)?;
            }
        } else {
            let mut built = Vec::with_capacity(groups.len());
            for ((selector, percent), set) in groups.into_iter().zip(sets) {
                let balancer = self.new_balancer(strategy)?;
                balancer.update(set)?;
                built.push(Group {
                    selector,
                    percent,
                    balancer,
                });
            }
            *entry.routing.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Routing {
                policy,
                groups: built,
            });
        }
        Ok(())
    }

    /// Picks from `entry`: the group the traffic policy sends this pick to (then the others,
    /// for a split), taking the breaker's permit (another instance if the chosen one's
    /// half-open probes are all out).
    pub(super) fn pick(
        &self,
        entry: &BalancerEntry,
        key: Option<&[u8]>,
        avoid: &[InstanceKey],
    ) -> Result<Pick, OrchestrateError> {
        let avoid: Vec<EndpointId> = avoid
            .iter()
            .map(|k| endpoint_id(k.scope(), k.id()))
            .collect();
        let routing = entry.routing();
        let mut last = None;
        for g in routing.order(key) {
            match self.pick_in(&routing.groups[g].balancer, key, &avoid) {
                Ok(pick) => return Ok(pick),
                Err(e) => last = Some((g, e)),
            }
        }
        let Some((g, e)) = last else {
            return Err(OrchestrateError::NoAvailableInstance {
                service: self.service.to_string(),
                reason: "no instance".into(),
            });
        };
        match (&routing.groups[g].selector, e) {
            (Some(selector), OrchestrateError::NoAvailableInstance { service, reason }) => {
                Err(OrchestrateError::NoAvailableInstance {
                    service,
                    reason: format!(
                        "the traffic policy's groups have nothing available (last tried: {selector}: {reason})"
                    ),
                })
            }
            (_, e) => Err(e),
        }
    }

    fn pick_in(
        &self,
        balancer: &Balancer<Instance>,
        key: Option<&[u8]>,
        avoid: &[EndpointId],
    ) -> Result<Pick, OrchestrateError> {
        let mut last = None;
        for attempt in 0..PICK_ATTEMPTS {
            // Avoided instances only when nothing else is left (the last attempt).
            let drawn = if avoid.is_empty() || attempt + 1 == PICK_ATTEMPTS {
                balancer.pick(key)
            } else {
                match balancer.pick_avoiding(key, avoid) {
                    Ok(g) => Ok(g),
                    Err(OrchestrateError::NoAvailableInstance { .. }) => balancer.pick(key),
                    Err(e) => Err(e),
                }
            };
            match self.admit(drawn?) {
                Ok(pick) => return Ok(pick),
                Err(e) => last = Some(e),
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

    /// Takes the breaker's permit for a drawn endpoint (refused while its half-open probes
    /// are all out) and counts it in flight.
    fn admit(&self, mut guard: PickGuard<Instance>) -> Result<Pick, OrchestrateError> {
        match self.breakers.try_acquire(guard.id()) {
            Ok(permit) => {
                guard.attach_permit(permit);
                guard.attach_counter(self.in_flight_counter(guard.id()));
                Ok(Pick::new(guard))
            }
            Err(e) => Err(e),
        }
    }

    fn in_flight_counter(&self, id: &EndpointId) -> Arc<AtomicU64> {
        let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id.clone()).or_default().clone()
    }

    /// Picks of `instance` not finished yet, over every view of this host.
    pub(super) fn in_flight(&self, instance: &InstanceKey) -> u64 {
        let id = endpoint_id(instance.scope(), instance.id());
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .map_or(0, |c| c.load(Ordering::Acquire))
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
