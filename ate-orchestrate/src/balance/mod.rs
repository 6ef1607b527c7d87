//! Load balancing over a set of endpoints (Envoy's and tower's model).
//!
//! A [`Balancer`] holds the current endpoint set of one service and hands out
//! [`PickGuard`]s. Strategies ([`Strategy`]):
//!
//! | strategy | weights | per pick | file |
//! | --- | --- | --- | --- |
//! | [`Strategy::RoundRobin`] | ignored | one atomic `fetch_add` | `round_robin.rs` |
//! | [`Strategy::SmoothWeighted`] | nginx's smooth weighted round robin | one `fetch_add` (precomputed cycle) | `weighted.rs` |
//! | [`Strategy::LeastRequest`] | in-flight ÷ weight | two random draws, two atomic loads | `least_request.rs` |
//! | [`Strategy::Random`] | proportional | one draw (two and an alias-table read if weights differ) | `random.rs` |
//! | [`Strategy::ConsistentHash`] | points on the ring | hash + bucket index + search within the bucket | `consistent_hash.rs` |
//!
//! **Concurrency.** The set lives behind an `RwLock<Arc<snapshot>>`: a pick takes the read
//! lock only to read the snapshot (no writer blocks picks except during the pointer swap);
//! [`Balancer::update`] builds the new snapshot (schedules, rings) outside the lock and swaps
//! it in. Per-endpoint state (the in-flight count) is carried over to the new snapshot for
//! every endpoint id that stays, so least-request stays accurate across updates and guards
//! from before the update still decrement the right counter.
//!
//! **Health and panic mode.** Only endpoints flagged healthy take traffic, unless their share
//! falls below the panic threshold (Envoy's `healthy_panic_threshold`, default 50%): then the
//! balancer spreads over all endpoints, healthy or not, on the theory that a mass health-check
//! failure is more likely a broken check than a dead fleet, and that concentrating the whole
//! load on the few survivors would take them down too.
//!
//! **Breakers and ejection: the [`Availability`] hook.** Each candidate is checked against
//! the balancer's [`Availability`] hooks ([`BreakerRegistry`](crate::breaker::BreakerRegistry),
//! [`OutlierDetector`](crate::breaker::OutlierDetector), or the host's own); unavailable
//! candidates are skipped by the strategy's own rule (next in order, the other of two
//! choices, the next point on the ring). If every eligible endpoint is unavailable, the pick
//! fails with [`OrchestrateError::NoAvailableInstance`] rather than calling an endpoint known
//! to be failing. The hook only *filters*: a breaker's half-open probe permit is still taken
//! with [`CircuitBreaker::try_acquire`](crate::breaker::CircuitBreaker::try_acquire) after the
//! pick (and may attach to the guard with [`PickGuard::attach_permit`]); if that fails because
//! another caller took the last probe in between, pick again.
//!
//! **Outcomes.** Completing or dropping a guard reports its [`Outcome`](crate::Outcome) to
//! the balancer's [`OutcomeObserver`]s (metrics, the outlier detector).
//!
//! ```
//! use ate_orchestrate::balance::{Balancer, Endpoint, Strategy};
//!
//! let balancer = Balancer::builder("billing", Strategy::SmoothWeighted).build()?;
//! balancer.update([
//!     Endpoint::new("a", "http://10.0.0.1").weight(5),
//!     Endpoint::new("b", "http://10.0.0.2"),
//!     Endpoint::new("c", "http://10.0.0.3"),
//! ])?;
//! let picks: Vec<String> = (0..7)
//!     .map(|_| balancer.pick(None).map(|g| g.id().to_string()))
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(picks, ["a", "a", "b", "a", "c", "a", "a"]);
//! # Ok::<(), ate_orchestrate::OrchestrateError>(())
//! ```

pub(crate) mod consistent_hash;
mod endpoint;
mod guard;
mod least_request;
mod random;
mod round_robin;
mod weighted;

pub use consistent_hash::{DEFAULT_VNODES_PER_WEIGHT, MAX_RING_POINTS};
pub use endpoint::Endpoint;
pub use guard::PickGuard;
pub use weighted::{MAX_SCHEDULE, MAX_SCHEDULE_WORK};

use crate::OrchestrateError;
use crate::clock::{MonotonicClock, SystemMonotonicClock};
use crate::endpoint::{Availability, EndpointId};
use crate::outcome::OutcomeObserver;
use guard::{EndpointStats, Shared, Slot};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};

/// How a [`Balancer`] chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Strategy {
    /// Each endpoint in turn; weights ignored.
    RoundRobin,
    /// nginx's smooth weighted round robin: exact shares per cycle, spread out.
    SmoothWeighted,
    /// Fewer requests in flight (relative to weight) wins, between two random choices.
    LeastRequest,
    /// At random, in proportion to weight.
    Random,
    /// The same key goes to the same endpoint while it stays (ring hash, see
    /// `consistent_hash.rs`); a pick without a key is random.
    ConsistentHash,
}

/// Default panic threshold: below half of the endpoints healthy, balance over all.
pub const DEFAULT_PANIC_THRESHOLD: f64 = 0.5;

/// Builds a [`Balancer`].
#[derive(Debug)]
pub struct BalancerBuilder {
    service: String,
    strategy: Strategy,
    panic_threshold: f64,
    vnodes_per_weight: u32,
    clock: Arc<dyn MonotonicClock>,
    observers: Vec<Arc<dyn OutcomeObserver>>,
    availability: Vec<Arc<dyn Availability>>,
}

impl BalancerBuilder {
    /// The share of healthy endpoints (0.0 to 1.0) below which the balancer ignores health
    /// flags and spreads over every endpoint. 0 disables panic mode. Default
    /// [`DEFAULT_PANIC_THRESHOLD`].
    pub fn panic_threshold(mut self, share: f64) -> Self {
        self.panic_threshold = share;
        self
    }

    /// Ring points per unit of weight for [`Strategy::ConsistentHash`] (default
    /// [`DEFAULT_VNODES_PER_WEIGHT`]; more points spread keys more evenly, cost memory).
    pub fn vnodes_per_weight(mut self, vnodes: u32) -> Self {
        self.vnodes_per_weight = vnodes;
        self
    }

    /// The clock guards measure latency with (default: the system's monotonic clock).
    pub fn clock(mut self, clock: Arc<dyn MonotonicClock>) -> Self {
        self.clock = clock;
        self
    }

    /// Adds an observer of every finished pick.
    pub fn observer(mut self, observer: Arc<dyn OutcomeObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Adds an availability hook; an endpoint is picked only if every hook allows it.
    pub fn availability(mut self, hook: Arc<dyn Availability>) -> Self {
        self.availability.push(hook);
        self
    }

    /// The balancer, with an empty endpoint set.
    ///
    /// Behavior: fails with [`OrchestrateError::InvalidInput`] when the panic threshold is
    /// not within 0.0..=1.0 or `vnodes_per_weight` is 0.
    pub fn build<T>(self) -> Result<Balancer<T>, OrchestrateError> {
        if !(0.0..=1.0).contains(&self.panic_threshold) {
            return Err(OrchestrateError::invalid(
                "panic threshold",
                format!("{} is outside 0.0..=1.0", self.panic_threshold),
            ));
        }
        if self.vnodes_per_weight == 0 {
            return Err(OrchestrateError::invalid(
                "vnodes per weight",
                "must be at least 1",
            ));
        }
        let shared = Arc::new(Shared {
            clock: self.clock,
            observers: self.observers,
        });
        Ok(Balancer {
            service: self.service,
            strategy: self.strategy,
            panic_threshold: self.panic_threshold,
            vnodes_per_weight: self.vnodes_per_weight,
            availability: self.availability,
            snapshot: RwLock::new(Arc::new(Snapshot::empty())),
            update_lock: Mutex::new(()),
            cursor: AtomicUsize::new(0),
            shared,
        })
    }
}

/// The endpoint set of one service and the strategy that picks among it.
///
/// `T` is the host's payload per endpoint (see [`Endpoint`]). Share it as `Arc<Balancer<T>>`;
/// every method takes `&self` and is safe to call from many threads.
pub struct Balancer<T = ()> {
    service: String,
    strategy: Strategy,
    panic_threshold: f64,
    vnodes_per_weight: u32,
    availability: Vec<Arc<dyn Availability>>,
    snapshot: RwLock<Arc<Snapshot<T>>>,
    /// Serialises updates, so per-endpoint state is carried over from the latest set.
    update_lock: Mutex<()>,
    /// Round-robin position (round robin, smooth weighted); survives updates.
    cursor: AtomicUsize,
    shared: Arc<Shared>,
}

/// One immutable version of the set.
struct Snapshot<T> {
    slots: Vec<Arc<Slot<T>>>,
    /// Positions in `slots` that take traffic (healthy ones, or all in panic mode).
    eligible: Vec<usize>,
    panic: bool,
    plan: Plan,
}

/// The strategy's precomputed state over `eligible`.
#[derive(Debug)]
enum Plan {
    RoundRobin,
    Smooth(weighted::Smooth),
    LeastRequest,
    Random(random::WeightedIndex),
    Hash(consistent_hash::Ring, random::WeightedIndex),
}

impl<T> Snapshot<T> {
    fn empty() -> Self {
        Snapshot {
            slots: Vec::new(),
            eligible: Vec::new(),
            panic: false,
            plan: Plan::RoundRobin,
        }
    }
}

impl Balancer<()> {
    /// Starts building a balancer for `service` (the name appears in errors).
    pub fn builder(service: impl Into<String>, strategy: Strategy) -> BalancerBuilder {
        BalancerBuilder {
            service: service.into(),
            strategy,
            panic_threshold: DEFAULT_PANIC_THRESHOLD,
            vnodes_per_weight: DEFAULT_VNODES_PER_WEIGHT,
            clock: Arc::new(SystemMonotonicClock::new()),
            observers: Vec::new(),
            availability: Vec::new(),
        }
    }
}

impl<T> Balancer<T> {
    /// The service this balancer serves.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Its strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    fn current(&self) -> Arc<Snapshot<T>> {
        // A poisoned lock still holds a valid Arc: the swap is a single assignment.
        self.snapshot
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replaces the endpoint set atomically.
    ///
    /// Behavior: validates the whole set first (every weight within 1..=
    /// [`MAX_WEIGHT`](crate::registry::MAX_WEIGHT), ids unique) and changes nothing on
    /// error ([`OrchestrateError::InvalidInput`] naming the endpoint). Endpoints whose id was
    /// already present keep their in-flight count; picks running concurrently see either the
    /// old or the new set, never a mix. An empty set is allowed (picks then fail).
    pub fn update(
        &self,
        endpoints: impl IntoIterator<Item = Endpoint<T>>,
    ) -> Result<(), OrchestrateError> {
        let endpoints: Vec<Endpoint<T>> = endpoints.into_iter().collect();
        if u32::try_from(endpoints.len()).is_err() {
            return Err(OrchestrateError::invalid(
                "endpoint set",
                format!("{} endpoints is more than {}", endpoints.len(), u32::MAX),
            ));
        }
        let mut seen = HashSet::with_capacity(endpoints.len());
        for e in &endpoints {
            endpoint::check_weight(&e.id, e.weight)?;
            if !seen.insert(e.id.as_str()) {
                return Err(OrchestrateError::invalid(
                    "endpoint set",
                    format!("endpoint id {} appears twice", e.id),
                ));
            }
        }
        drop(seen);

        let _serial = self
            .update_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let old = self.current();
        let old_stats: HashMap<&str, &Arc<EndpointStats>> = old
            .slots
            .iter()
            .map(|s| (s.endpoint.id.as_str(), &s.stats))
            .collect();
        let slots: Vec<Arc<Slot<T>>> = endpoints
            .into_iter()
            .map(|endpoint| {
                let stats = old_stats
                    .get(endpoint.id.as_str())
                    .map(|s| Arc::clone(s))
                    .unwrap_or_default();
                Arc::new(Slot {
                    endpoint,
                    stats,
                    shared: Arc::clone(&self.shared),
                })
            })
            .collect();
        drop(old_stats);

        let healthy: Vec<usize> = (0..slots.len())
            .filter(|&i| slots[i].endpoint.healthy)
            .collect();
        let panic =
            !slots.is_empty() && (healthy.len() as f64) < self.panic_threshold * slots.len() as f64;
        let eligible = if panic {
            (0..slots.len()).collect()
        } else {
            healthy
        };
        let weights: Vec<u32> = eligible.iter().map(|&i| slots[i].endpoint.weight).collect();
        let plan = match self.strategy {
            Strategy::RoundRobin => Plan::RoundRobin,
            Strategy::SmoothWeighted => Plan::Smooth(weighted::Smooth::new(&weights)),
            Strategy::LeastRequest => Plan::LeastRequest,
            Strategy::Random => Plan::Random(random::WeightedIndex::new(&weights)),
            Strategy::ConsistentHash => Plan::Hash(
                consistent_hash::Ring::new(
                    eligible
                        .iter()
                        .map(|&i| (slots[i].endpoint.id.as_str(), slots[i].endpoint.weight)),
                    self.vnodes_per_weight,
                ),
                random::WeightedIndex::new(&weights),
            ),
        };
        let snapshot = Arc::new(Snapshot {
            slots,
            eligible,
            panic,
            plan,
        });
        let previous = std::mem::replace(
            &mut *self
                .snapshot
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
            snapshot,
        );
        // The old snapshot (and its ring) is freed here, outside the write lock.
        drop(previous);
        Ok(())
    }

    /// Picks an endpoint for one request.
    ///
    /// Behavior: `key` matters only to [`Strategy::ConsistentHash`] (the same key maps to
    /// the same endpoint while the set and availability stay the same; `None` picks at
    /// random); other strategies ignore it. Fails with
    /// [`OrchestrateError::NoAvailableInstance`] when the set is empty, when no endpoint is
    /// healthy and panic mode is off, or when every eligible endpoint is refused by an
    /// [`Availability`] hook. Never blocks on other picks (no mutex on the pick path, except
    /// for smooth weighted round robin over very large cycles, see [`MAX_SCHEDULE`]).
    pub fn pick(&self, key: Option<&[u8]>) -> Result<PickGuard<T>, OrchestrateError> {
        self.pick_with(key, &[])
    }

    /// [`Balancer::pick`], treating the endpoints in `avoid` as unavailable (a retry
    /// steering away from the endpoints its request already failed on). Fails like `pick`
    /// when only avoided endpoints are left.
    pub fn pick_avoiding(
        &self,
        key: Option<&[u8]>,
        avoid: &[EndpointId],
    ) -> Result<PickGuard<T>, OrchestrateError> {
        self.pick_with(key, avoid)
    }

    fn pick_with(
        &self,
        key: Option<&[u8]>,
        avoid: &[EndpointId],
    ) -> Result<PickGuard<T>, OrchestrateError> {
        let guard = self
            .snapshot
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let snap: &Snapshot<T> = &guard;
        let n = snap.eligible.len();
        if n == 0 {
            let reason = if snap.slots.is_empty() {
                "no endpoints"
            } else {
                "no healthy endpoint (panic mode is off)"
            };
            return Err(self.none_available(reason));
        }
        let slot = |p: usize| &snap.slots[snap.eligible[p]];
        let ok = |p: usize| {
            let id = &slot(p).endpoint.id;
            !avoid.contains(id) && self.availability.iter().all(|a| a.is_available(id))
        };
        let picked = match &snap.plan {
            Plan::RoundRobin => round_robin::pick(&self.cursor, n, ok),
            Plan::Smooth(smooth) => smooth.pick(&self.cursor, ok),
            Plan::LeastRequest => {
                least_request::pick(n, |p| slot(p).endpoint.weight, |p| slot(p).in_flight(), ok)
            }
            Plan::Random(index) => index.pick(ok),
            Plan::Hash(ring, index) => match key {
                Some(key) => ring.pick(consistent_hash::Ring::hash_key(key), ok),
                None => index.pick(ok),
            },
        };
        match picked {
            Some(p) => {
                let slot = Arc::clone(slot(p));
                drop(guard);
                Ok(PickGuard::new(slot))
            }
            None => Err(self.none_available(
                "every eligible endpoint is unavailable (circuit open or ejected)",
            )),
        }
    }

    fn none_available(&self, reason: &str) -> OrchestrateError {
        OrchestrateError::NoAvailableInstance {
            service: self.service.clone(),
            reason: reason.to_owned(),
        }
    }

    /// How many endpoints the set holds (healthy or not).
    pub fn len(&self) -> usize {
        self.current().slots.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the set is in panic mode (too few healthy endpoints: balancing over all).
    pub fn is_panicking(&self) -> bool {
        self.current().panic
    }

    /// Requests in flight on `endpoint` (guards not yet completed), `None` if it is not in
    /// the set.
    pub fn in_flight(&self, endpoint: &str) -> Option<u64> {
        self.current()
            .slots
            .iter()
            .find(|s| s.endpoint.id.as_str() == endpoint)
            .map(|s| s.in_flight())
    }

    /// The ids of the endpoints that currently take traffic (healthy ones, or all in panic
    /// mode), before availability hooks.
    pub fn eligible(&self) -> Vec<EndpointId> {
        let snap = self.current();
        snap.eligible
            .iter()
            .map(|&i| snap.slots[i].endpoint.id.clone())
            .collect()
    }
}

impl<T: Clone> Balancer<T> {
    /// A copy of the current endpoint set.
    pub fn endpoints(&self) -> Vec<Endpoint<T>> {
        self.current()
            .slots
            .iter()
            .map(|s| s.endpoint.clone())
            .collect()
    }
}

impl<T> fmt::Debug for Balancer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.current();
        f.debug_struct("Balancer")
            .field("service", &self.service)
            .field("strategy", &self.strategy)
            .field("panic_threshold", &self.panic_threshold)
            .field("endpoints", &snap.slots.len())
            .field("eligible", &snap.eligible.len())
            .field("panic", &snap.panic)
            .field("availability", &self.availability)
            .field("observers", &self.shared.observers)
            .finish()
    }
}

#[cfg(test)]
mod tests;
