//! Outlier ejection (Envoy's consecutive-failures detector).
//!
//! An endpoint that fails `consecutive_failures` calls in a row is ejected: balancers using
//! the detector as an [`Availability`] hook skip it for `base_ejection_time × times
//! ejected`, capped at `max_ejection_time`, after which it comes back by itself. The
//! multiplier decays by one for every `base_ejection_time` the endpoint then stays in, so an
//! endpoint that fails again soon is ejected for longer, one that recovered for good starts
//! over. At most `max_ejection_percent` of the service's endpoints are ejected at once, but
//! (as in Envoy) at least one may be whenever the service has two or more.
//!
//! Where breakers judge a window of calls, ejection reacts to a streak, and it caps how much
//! of the service it can take away: the two complement each other.

use super::config::FailurePredicate;
use super::events::{EventHub, Listener};
use crate::OrchestrateError;
use crate::clock::{MonotonicClock, SystemMonotonicClock};
use crate::endpoint::{Availability, EndpointId};
use crate::outcome::{Outcome, OutcomeObserver};
use ate_core::ErrorKind;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock, RwLockWriteGuard};
use std::time::Duration;
use tokio::sync::broadcast;

/// Outlier-ejection settings (Envoy's names and defaults).
#[derive(Clone)]
#[non_exhaustive]
pub struct OutlierConfig {
    /// Failures in a row that eject an endpoint (default 5).
    pub consecutive_failures: u32,
    /// First ejection's length; the n-th lasts n times as long (default 30 s).
    pub base_ejection_time: Duration,
    /// Longest ejection (default 300 s).
    pub max_ejection_time: Duration,
    /// Most endpoints ejected at once, in percent of the service's endpoints (default 10;
    /// at least one endpoint of a service of two or more may always be ejected).
    pub max_ejection_percent: u32,
    /// Which error kinds count as failures (default: retryable kinds). Other errors count
    /// as successes: the endpoint answered.
    pub is_failure: FailurePredicate,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_failures: 5,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
            is_failure: Arc::new(ErrorKind::is_retryable),
        }
    }
}

impl OutlierConfig {
    /// Sets [`OutlierConfig::consecutive_failures`].
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = n;
        self
    }

    /// Sets [`OutlierConfig::base_ejection_time`] and [`OutlierConfig::max_ejection_time`].
    pub fn ejection_time(mut self, base: Duration, max: Duration) -> Self {
        self.base_ejection_time = base;
        self.max_ejection_time = max;
        self
    }

    /// Sets [`OutlierConfig::max_ejection_percent`].
    pub fn max_ejection_percent(mut self, percent: u32) -> Self {
        self.max_ejection_percent = percent;
        self
    }

    /// Sets [`OutlierConfig::is_failure`].
    pub fn with_failure_predicate(
        mut self,
        is_failure: impl Fn(ErrorKind) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.is_failure = Arc::new(is_failure);
        self
    }

    /// Checks every setting.
    ///
    /// Behavior: [`OrchestrateError::InvalidInput`] naming the setting when
    /// `consecutive_failures` is 0, a time is zero, the base is longer than the maximum, or
    /// the percentage is above 100.
    pub fn validate(&self) -> Result<(), OrchestrateError> {
        if self.consecutive_failures == 0 {
            return Err(OrchestrateError::invalid(
                "consecutive failures",
                "must be at least 1",
            ));
        }
        if self.base_ejection_time.is_zero() {
            return Err(OrchestrateError::invalid(
                "base ejection time",
                "must be longer than zero",
            ));
        }
        if self.max_ejection_time < self.base_ejection_time {
            return Err(OrchestrateError::invalid(
                "max ejection time",
                format!(
                    "{:?} is shorter than the base ejection time {:?}",
                    self.max_ejection_time, self.base_ejection_time
                ),
            ));
        }
        if self.max_ejection_percent > 100 {
            return Err(OrchestrateError::invalid(
                "max ejection percent",
                format!("{} is above 100", self.max_ejection_percent),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for OutlierConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutlierConfig")
            .field("consecutive_failures", &self.consecutive_failures)
            .field("base_ejection_time", &self.base_ejection_time)
            .field("max_ejection_time", &self.max_ejection_time)
            .field("max_ejection_percent", &self.max_ejection_percent)
            .finish_non_exhaustive()
    }
}

/// What happened to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutlierChange {
    /// Ejected for `duration`; this is its `times`-th ejection (after decay).
    Ejected {
        /// How long it stays out.
        duration: Duration,
        /// The multiplier used.
        times: u32,
    },
    /// Its ejection time passed: it takes traffic again.
    Returned,
}

/// An endpoint was ejected or came back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutlierEvent {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// What happened.
    pub change: OutlierChange,
    /// When, on the detector's monotonic clock (for a return: when its time ran out).
    pub at: Duration,
    /// When it was observed, on the wall clock.
    pub wall: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct Host {
    consecutive: u32,
    times_ejected: u32,
    ejected_until: Option<Duration>,
    returned_at: Option<Duration>,
}

/// Consecutive-failure outlier detection for one service's endpoints.
///
/// Feed it outcomes (as a balancer's [`OutcomeObserver`], or with
/// [`record_success`](Self::record_success) / [`record_failure`](Self::record_failure)),
/// tell it the service's endpoints with [`set_endpoints`](Self::set_endpoints) (the
/// percentage cap counts them; endpoints seen in outcomes count too), and use it as the
/// balancer's [`Availability`] hook. Returns are noticed lazily: an endpoint is available
/// again as soon as its time has passed, and its `Returned` event is emitted by the next
/// record or [`sweep`](Self::sweep) (call `sweep` periodically for prompt events).
pub struct OutlierDetector {
    config: OutlierConfig,
    clock: Arc<dyn MonotonicClock>,
    events: EventHub<OutlierEvent>,
    hosts: RwLock<HashMap<EndpointId, Host>>,
}

impl OutlierDetector {
    /// A detector on the system's monotonic clock.
    ///
    /// Behavior: fails with [`OrchestrateError::InvalidInput`] when the config does not
    /// validate ([`OutlierConfig::validate`]).
    pub fn new(config: OutlierConfig) -> Result<Self, OrchestrateError> {
        Self::with_clock(config, Arc::new(SystemMonotonicClock::new()))
    }

    /// A detector on the given clock.
    pub fn with_clock(
        config: OutlierConfig,
        clock: Arc<dyn MonotonicClock>,
    ) -> Result<Self, OrchestrateError> {
        config.validate()?;
        Ok(OutlierDetector {
            config,
            clock,
            events: EventHub::new(),
            hosts: RwLock::new(HashMap::new()),
        })
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<EndpointId, Host>> {
        self.hosts
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets the service's endpoints: unknown ones are added, absent ones forgotten (with
    /// their ejection).
    pub fn set_endpoints<'a>(&self, endpoints: impl IntoIterator<Item = &'a EndpointId>) {
        let keep: HashSet<&EndpointId> = endpoints.into_iter().collect();
        let mut hosts = self.write();
        hosts.retain(|id, _| keep.contains(id));
        for id in keep {
            hosts.entry(id.clone()).or_default();
        }
    }

    /// A call to `endpoint` succeeded: its failure streak ends.
    pub fn record_success(&self, endpoint: &EndpointId) {
        self.record(endpoint, false);
    }

    /// A call to `endpoint` failed with `kind` (a failure only if the config's predicate
    /// says so, else a success).
    pub fn record_failure(&self, endpoint: &EndpointId, kind: ErrorKind) {
        self.record(endpoint, (self.config.is_failure)(kind));
    }

    fn record(&self, endpoint: &EndpointId, failed: bool) {
        let now = self.clock.now();
        let mut events = Vec::new();
        {
            let mut hosts = self.write();
            Self::sweep_locked(&mut hosts, now, &mut events);
            let total = hosts.len() + usize::from(!hosts.contains_key(endpoint.as_str()));
            let ejected = hosts.values().filter(|h| h.ejected_until.is_some()).count();
            let host = hosts.entry(endpoint.clone()).or_default();
            if !failed {
                host.consecutive = 0;
            } else if host.ejected_until.is_none() {
                host.consecutive = host.consecutive.saturating_add(1);
                if host.consecutive >= self.config.consecutive_failures
                    && self.room_for_one_more(ejected, total)
                {
                    let base = self.config.base_ejection_time;
                    let decay = host
                        .returned_at
                        .map(|r| (now.saturating_sub(r).as_nanos() / base.as_nanos().max(1)) as u32)
                        .unwrap_or(0);
                    host.times_ejected = host.times_ejected.saturating_sub(decay).saturating_add(1);
                    let duration = base
                        .saturating_mul(host.times_ejected)
                        .min(self.config.max_ejection_time);
                    host.ejected_until = Some(now + duration);
                    host.consecutive = 0;
                    tracing::warn!(%endpoint, ?duration, times = host.times_ejected, "outlier ejected");
                    events.push(OutlierEvent {
                        endpoint: endpoint.clone(),
                        change: OutlierChange::Ejected {
                            duration,
                            times: host.times_ejected,
                        },
                        at: now,
                        wall: Utc::now(),
                    });
                }
            }
        }
        self.events.emit(events);
    }

    fn room_for_one_more(&self, ejected: usize, total: usize) -> bool {
        let cap = total * self.config.max_ejection_percent as usize / 100;
        let cap = if total >= 2 { cap.max(1) } else { cap };
        ejected < cap
    }

    fn sweep_locked(
        hosts: &mut HashMap<EndpointId, Host>,
        now: Duration,
        events: &mut Vec<OutlierEvent>,
    ) {
        for (id, host) in hosts.iter_mut() {
            if let Some(until) = host.ejected_until
                && now >= until
            {
                host.ejected_until = None;
                host.returned_at = Some(until);
                tracing::info!(endpoint = %id, "outlier returned");
                events.push(OutlierEvent {
                    endpoint: id.clone(),
                    change: OutlierChange::Returned,
                    at: until,
                    wall: Utc::now(),
                });
            }
        }
    }

    /// Brings back endpoints whose ejection time has passed and emits their `Returned`
    /// events.
    pub fn sweep(&self) {
        let now = self.clock.now();
        let mut events = Vec::new();
        Self::sweep_locked(&mut self.write(), now, &mut events);
        self.events.emit(events);
    }

    /// Whether `endpoint` is ejected right now.
    pub fn is_ejected(&self, endpoint: &str) -> bool {
        let now = self.clock.now();
        self.hosts
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(endpoint)
            .and_then(|h| h.ejected_until)
            .is_some_and(|until| now < until)
    }

    /// The endpoints ejected right now, sorted.
    pub fn ejected(&self) -> Vec<EndpointId> {
        let now = self.clock.now();
        let mut out: Vec<EndpointId> = self
            .hosts
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter(|(_, h)| h.ejected_until.is_some_and(|until| now < until))
            .map(|(id, _)| id.clone())
            .collect();
        out.sort();
        out
    }

    /// Calls `listener` for every ejection and return (after the detector's lock was
    /// released). It must be quick and must not panic.
    pub fn add_listener(&self, listener: Listener<OutlierEvent>) {
        self.events.add_listener(listener);
    }

    /// A stream of every ejection and return from now on (see
    /// [`BreakerRegistry::subscribe`](super::BreakerRegistry::subscribe) for lag).
    pub fn subscribe(&self) -> broadcast::Receiver<OutlierEvent> {
        self.events.subscribe()
    }
}

impl Availability for OutlierDetector {
    fn is_available(&self, endpoint: &EndpointId) -> bool {
        !self.is_ejected(endpoint.as_str())
    }
}

impl OutcomeObserver for OutlierDetector {
    fn on_outcome(&self, endpoint: &EndpointId, outcome: Outcome, _latency: Duration) {
        match outcome {
            Outcome::Success => self.record_success(endpoint),
            Outcome::Failure(kind) => self.record_failure(endpoint, kind),
            // A cancelled call says nothing about the endpoint.
            _ => {}
        }
    }
}

impl fmt::Debug for OutlierDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutlierDetector")
            .field("config", &self.config)
            .field("ejected", &self.ejected())
            .field("events", &self.events)
            .finish()
    }
}
