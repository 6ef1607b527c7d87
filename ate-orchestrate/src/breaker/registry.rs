//! Breakers for every endpoint of a service (or of many), created on first use.

use super::circuit::{BreakerEvent, BreakerState, CircuitBreaker, Permit};
use super::config::BreakerConfig;
use super::events::{EventHub, Listener};
use crate::OrchestrateError;
use crate::clock::{MonotonicClock, SystemMonotonicClock};
use crate::endpoint::{Availability, EndpointId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

/// One [`CircuitBreaker`] per endpoint, sharing a config, a clock and one event stream.
///
/// As a balancer's [`Availability`] hook it skips endpoints whose breaker refuses calls
/// (lock-free per breaker; one read lock on the map). Endpoints without a breaker yet are
/// available.
pub struct BreakerRegistry {
    config: Arc<BreakerConfig>,
    clock: Arc<dyn MonotonicClock>,
    events: Arc<EventHub<BreakerEvent>>,
    breakers: RwLock<HashMap<EndpointId, Arc<CircuitBreaker>>>,
}

impl BreakerRegistry {
    /// A registry on the system's monotonic clock.
    ///
    /// Behavior: fails with [`OrchestrateError::InvalidInput`] when the config does not
    /// validate ([`BreakerConfig::validate`]).
    pub fn new(config: BreakerConfig) -> Result<Self, OrchestrateError> {
        Self::with_clock(config, Arc::new(SystemMonotonicClock::new()))
    }

    /// A registry on the given clock (tests use a
    /// [`ManualMonotonicClock`](crate::clock::ManualMonotonicClock)).
    pub fn with_clock(
        config: BreakerConfig,
        clock: Arc<dyn MonotonicClock>,
    ) -> Result<Self, OrchestrateError> {
        config.validate()?;
        Ok(BreakerRegistry {
            config: Arc::new(config),
            clock,
            events: Arc::new(EventHub::new()),
            breakers: RwLock::new(HashMap::new()),
        })
    }

    /// The endpoint's breaker, created closed on first use.
    pub fn get(&self, endpoint: &EndpointId) -> Arc<CircuitBreaker> {
        if let Some(b) = self.read().get(endpoint.as_str()) {
            return Arc::clone(b);
        }
        let mut map = self
            .breakers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(map.entry(endpoint.clone()).or_insert_with(|| {
            Arc::new(CircuitBreaker::new(
                endpoint.clone(),
                Arc::clone(&self.config),
                Arc::clone(&self.clock),
                Arc::clone(&self.events),
            ))
        }))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<EndpointId, Arc<CircuitBreaker>>> {
        self.breakers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// [`CircuitBreaker::try_acquire`] on the endpoint's breaker.
    pub fn try_acquire(&self, endpoint: &EndpointId) -> Result<Permit, OrchestrateError> {
        self.get(endpoint).try_acquire()
    }

    /// The endpoint's state ([`BreakerState::Closed`] for an endpoint never seen).
    pub fn state(&self, endpoint: &str) -> BreakerState {
        let breaker = self.read().get(endpoint).cloned();
        breaker.map_or(BreakerState::Closed, |b| b.state())
    }

    /// Every known endpoint's state, sorted by endpoint id (for metrics).
    pub fn states(&self) -> Vec<(EndpointId, BreakerState)> {
        let breakers: Vec<Arc<CircuitBreaker>> = self.read().values().cloned().collect();
        let mut states: Vec<_> = breakers
            .iter()
            .map(|b| (b.endpoint().clone(), b.state()))
            .collect();
        states.sort_by(|a, b| a.0.cmp(&b.0));
        states
    }

    /// Forgets the breakers of endpoints not in `keep` (endpoints that left the set).
    pub fn retain<'a>(&self, keep: impl IntoIterator<Item = &'a EndpointId>) {
        let keep: std::collections::HashSet<&str> = keep.into_iter().map(|e| e.as_str()).collect();
        self.breakers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|id, _| keep.contains(id.as_str()));
    }

    /// Calls `listener` for every state change of every breaker, on the thread that caused
    /// it, after the breaker's lock was released. It must be quick and must not panic.
    pub fn add_listener(&self, listener: Listener<BreakerEvent>) {
        self.events.add_listener(listener);
    }

    /// A stream of every state change from now on. A subscriber more than
    /// [`EVENT_STREAM_CAPACITY`](super::EVENT_STREAM_CAPACITY) events behind loses the
    /// oldest (`RecvError::Lagged`); use [`add_listener`](Self::add_listener) where no
    /// event may be lost.
    pub fn subscribe(&self) -> broadcast::Receiver<BreakerEvent> {
        self.events.subscribe()
    }

    /// The shared config.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }
}

impl Availability for BreakerRegistry {
    fn is_available(&self, endpoint: &EndpointId) -> bool {
        self.read()
            .get(endpoint.as_str())
            .is_none_or(|b| b.is_call_permitted())
    }
}

impl fmt::Debug for BreakerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerRegistry")
            .field("config", &self.config)
            .field("breakers", &self.read().len())
            .field("events", &self.events)
            .finish()
    }
}
