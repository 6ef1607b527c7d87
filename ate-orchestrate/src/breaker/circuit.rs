//! One endpoint's circuit breaker (Resilience4j's state machine).

use super::config::BreakerConfig;
use super::events::EventHub;
use super::window::Window;
use crate::OrchestrateError;
use crate::clock::{MonotonicClock, as_nanos};
use crate::endpoint::EndpointId;
use ate_core::{Classify, ErrorKind};
use chrono::{DateTime, Utc};
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls flow; outcomes fill the sliding window.
    Closed,
    /// Calls are refused until the open wait has passed.
    Open,
    /// A limited number of probe calls decide between closing and opening again.
    HalfOpen,
    /// Opened by hand ([`CircuitBreaker::force_open`]): refuses calls until
    /// [`CircuitBreaker::reset`].
    ForcedOpen,
    /// Turned off by hand ([`CircuitBreaker::disable`]): every call passes, nothing is
    /// recorded, until [`CircuitBreaker::reset`].
    Disabled,
}

impl BreakerState {
    /// The stable lowercase name (`closed`, `open`, `half_open`, `forced_open`,
    /// `disabled`), for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
            BreakerState::ForcedOpen => "forced_open",
            BreakerState::Disabled => "disabled",
        }
    }

    fn to_u8(self) -> u8 {
        self as u8
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => BreakerState::Closed,
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            3 => BreakerState::ForcedOpen,
            _ => BreakerState::Disabled,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A breaker changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerEvent {
    /// The endpoint whose breaker changed.
    pub endpoint: EndpointId,
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
    /// When the change was observed, on the breaker's monotonic clock.
    pub at: Duration,
    /// The same moment on the wall clock (for logs and alert history).
    pub wall: DateTime<Utc>,
}

/// Calls, failures and slow calls currently in a breaker's window.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct BreakerMetrics {
    /// The state.
    pub state: BreakerState,
    /// Calls in the window.
    pub calls: u64,
    /// Failed calls in the window.
    pub failures: u64,
    /// Slow calls in the window.
    pub slow_calls: u64,
    /// `failures / calls` in percent (0 without calls).
    pub failure_rate: f64,
    /// `slow_calls / calls` in percent (0 without calls).
    pub slow_call_rate: f64,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    /// Bumped on every transition: permits from an earlier state are not counted.
    epoch: u64,
    window: Window,
    opened_at: Duration,
    /// Half-open: outstanding probes (id, issued at), probes recorded, failed, slow.
    probes: Vec<(u64, Duration)>,
    recorded: u32,
    probe_failures: u32,
    probe_slow: u32,
    next_probe: u64,
}

/// One endpoint's circuit breaker.
///
/// Closed → Open when, with at least `minimum_calls` in the window, the failure rate or the
/// slow-call rate reaches its threshold. Open → HalfOpen once `wait_in_open` has passed
/// (checked lazily, by the next [`try_acquire`](Self::try_acquire),
/// [`state`](Self::state) or record). HalfOpen lets `half_open_permits` probes through:
/// it opens again as soon as the probes' failure (or slow-call) rate is certain to reach
/// the threshold, and closes (with an empty window) once every probe succeeded within it.
/// A probe neither completed nor dropped within `probe_timeout` counts as a failed probe,
/// so a stuck call cannot hold the breaker half-open forever.
///
/// Every transition goes to the breaker's listeners and event stream (see
/// [`BreakerRegistry`](super::BreakerRegistry)). Records from a permit taken in an
/// earlier state (a slow call that started while closed and ends after the breaker
/// opened) are ignored.
pub struct CircuitBreaker {
    endpoint: EndpointId,
    config: Arc<BreakerConfig>,
    clock: Arc<dyn MonotonicClock>,
    events: Arc<EventHub<BreakerEvent>>,
    inner: Mutex<Inner>,
    /// Lock-free mirror for [`CircuitBreaker::is_call_permitted`].
    state_hint: AtomicU8,
    /// Open: when probes may start. HalfOpen and full: when the oldest probe times out.
    retry_at_nanos: AtomicU64,
}

impl CircuitBreaker {
    /// A closed breaker for `endpoint` (the config is assumed validated, see
    /// [`BreakerConfig::validate`]).
    pub(crate) fn new(
        endpoint: EndpointId,
        config: Arc<BreakerConfig>,
        clock: Arc<dyn MonotonicClock>,
        events: Arc<EventHub<BreakerEvent>>,
    ) -> Self {
        let window = Window::new(config.window);
        CircuitBreaker {
            endpoint,
            config,
            clock,
            events,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                epoch: 0,
                window,
                opened_at: Duration::ZERO,
                probes: Vec::new(),
                recorded: 0,
                probe_failures: 0,
                probe_slow: 0,
                next_probe: 0,
            }),
            state_hint: AtomicU8::new(BreakerState::Closed.to_u8()),
            retry_at_nanos: AtomicU64::new(0),
        }
    }

    /// The endpoint this breaker guards.
    pub fn endpoint(&self) -> &EndpointId {
        &self.endpoint
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state machine keeps its invariants between statements that could panic.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Asks to make one call.
    ///
    /// Behavior: closed or disabled: always a permit. Open or forced open:
    /// [`OrchestrateError::CircuitOpen`]. Half-open: a probe permit while fewer than
    /// `half_open_permits` probes are outstanding or recorded, else `CircuitOpen`. Complete
    /// the permit with [`Permit::success`] / [`Permit::failure`]; dropping it releases it
    /// unrecorded (a cancelled call says nothing about the endpoint).
    pub fn try_acquire(self: &Arc<Self>) -> Result<Permit, OrchestrateError> {
        let now = self.clock.now();
        let mut events = Vec::new();
        let result = {
            let mut inner = self.lock();
            self.advance(&mut inner, now, &mut events);
            match inner.state {
                BreakerState::Closed | BreakerState::Disabled => Ok(Permit {
                    breaker: Arc::clone(self),
                    epoch: inner.epoch,
                    probe: None,
                    started: now,
                    done: false,
                }),
                BreakerState::HalfOpen
                    if inner.recorded + (inner.probes.len() as u32)
                        < self.config.half_open_permits =>
                {
                    let id = inner.next_probe;
                    inner.next_probe += 1;
                    inner.probes.push((id, now));
                    self.update_hint(&inner);
                    Ok(Permit {
                        breaker: Arc::clone(self),
                        epoch: inner.epoch,
                        probe: Some(id),
                        started: now,
                        done: false,
                    })
                }
                _ => Err(OrchestrateError::CircuitOpen {
                    instance: self.endpoint.to_string(),
                }),
            }
        };
        self.events.emit(events);
        result
    }

    /// A cheap, lock-free guess of whether [`try_acquire`](Self::try_acquire) would
    /// succeed now (used to skip endpoints while balancing; `try_acquire` decides).
    pub fn is_call_permitted(&self) -> bool {
        match BreakerState::from_u8(self.state_hint.load(Ordering::Acquire)) {
            BreakerState::Closed | BreakerState::Disabled => true,
            BreakerState::ForcedOpen => false,
            BreakerState::Open | BreakerState::HalfOpen => {
                let at = self.retry_at_nanos.load(Ordering::Acquire);
                at == 0 || as_nanos(self.clock.now()) >= at
            }
        }
    }

    /// The current state, after applying what time alone changes (open → half-open once
    /// the wait has passed, timed-out probes counted as failures).
    pub fn state(&self) -> BreakerState {
        let mut events = Vec::new();
        let state = {
            let mut inner = self.lock();
            self.advance(&mut inner, self.clock.now(), &mut events);
            inner.state
        };
        self.events.emit(events);
        state
    }

    /// The window's counts and rates, with the state.
    pub fn metrics(&self) -> BreakerMetrics {
        let now = self.clock.now();
        let mut events = Vec::new();
        let metrics = {
            let mut inner = self.lock();
            self.advance(&mut inner, now, &mut events);
            let totals = inner.window.totals(now);
            let rate = |n: u64| {
                if totals.calls == 0 {
                    0.0
                } else {
                    n as f64 * 100.0 / totals.calls as f64
                }
            };
            BreakerMetrics {
                state: inner.state,
                calls: totals.calls,
                failures: totals.failures,
                slow_calls: totals.slow,
                failure_rate: rate(totals.failures),
                slow_call_rate: rate(totals.slow),
            }
        };
        self.events.emit(events);
        metrics
    }

    /// Opens the breaker until [`reset`](Self::reset), whatever the calls do.
    pub fn force_open(&self) {
        self.manual(BreakerState::ForcedOpen);
    }

    /// Lets every call through without recording until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.manual(BreakerState::Disabled);
    }

    /// Back to closed with an empty window.
    pub fn reset(&self) {
        self.manual(BreakerState::Closed);
    }

    fn manual(&self, to: BreakerState) {
        let now = self.clock.now();
        let mut events = Vec::new();
        {
            let mut inner = self.lock();
            self.transition(&mut inner, to, now, &mut events);
        }
        self.events.emit(events);
    }

    fn record(&self, epoch: u64, probe: Option<u64>, started: Duration, failed: bool) {
        let now = self.clock.now();
        let slow = now.saturating_sub(started) >= self.config.slow_call_duration;
        let mut events = Vec::new();
        {
            let mut inner = self.lock();
            self.advance(&mut inner, now, &mut events);
            if inner.epoch == epoch {
                match inner.state {
                    BreakerState::Closed => {
                        inner.window.record(now, failed, slow);
                        if self.window_trips(&mut inner, now) {
                            self.transition(&mut inner, BreakerState::Open, now, &mut events);
                        }
                    }
                    BreakerState::HalfOpen => {
                        if let Some(i) =
                            probe.and_then(|id| inner.probes.iter().position(|&(p, _)| p == id))
                        {
                            inner.probes.swap_remove(i);
                            self.probe_result(&mut inner, failed, slow, now, &mut events);
                        }
                    }
                    _ => {}
                }
            }
        }
        self.events.emit(events);
    }

    fn release(&self, epoch: u64, probe: Option<u64>) {
        let Some(id) = probe else { return };
        let mut inner = self.lock();
        if inner.epoch == epoch
            && let Some(i) = inner.probes.iter().position(|&(p, _)| p == id)
        {
            inner.probes.swap_remove(i);
            self.update_hint(&inner);
        }
    }

    fn window_trips(&self, inner: &mut Inner, now: Duration) -> bool {
        let totals = inner.window.totals(now);
        let minimum = match inner.window.capacity() {
            Some(cap) => u64::from(self.config.minimum_calls).min(cap),
            None => u64::from(self.config.minimum_calls),
        };
        if totals.calls == 0 || totals.calls < minimum {
            return false;
        }
        let calls = totals.calls as f64;
        totals.failures as f64 * 100.0 / calls >= self.config.failure_rate_threshold
            || totals.slow as f64 * 100.0 / calls >= self.config.slow_call_rate_threshold
    }

    fn probe_result(
        &self,
        inner: &mut Inner,
        failed: bool,
        slow: bool,
        now: Duration,
        events: &mut Vec<BreakerEvent>,
    ) {
        inner.recorded += 1;
        inner.probe_failures += u32::from(failed);
        inner.probe_slow += u32::from(slow);
        let permits = f64::from(self.config.half_open_permits);
        // Open as soon as the rate over all permitted probes must reach the threshold,
        // whatever the remaining probes do.
        let reopen = f64::from(inner.probe_failures) * 100.0
            >= self.config.failure_rate_threshold * permits
            || f64::from(inner.probe_slow) * 100.0
                >= self.config.slow_call_rate_threshold * permits;
        if reopen {
            self.transition(inner, BreakerState::Open, now, events);
        } else if inner.recorded >= self.config.half_open_permits {
            self.transition(inner, BreakerState::Closed, now, events);
        } else {
            self.update_hint(inner);
        }
    }

    /// Applies what time alone changes.
    fn advance(&self, inner: &mut Inner, now: Duration, events: &mut Vec<BreakerEvent>) {
        if inner.state == BreakerState::Open
            && now.saturating_sub(inner.opened_at) >= self.config.wait_in_open
        {
            self.transition(inner, BreakerState::HalfOpen, now, events);
        }
        while inner.state == BreakerState::HalfOpen {
            let timeout = self.config.probe_timeout;
            let Some(i) = inner
                .probes
                .iter()
                .position(|&(_, at)| now.saturating_sub(at) >= timeout)
            else {
                break;
            };
            // The stuck probe's permit is reclaimed and counted as a failed probe.
            inner.probes.swap_remove(i);
            self.probe_result(inner, true, true, now, events);
        }
    }

    fn transition(
        &self,
        inner: &mut Inner,
        to: BreakerState,
        now: Duration,
        events: &mut Vec<BreakerEvent>,
    ) {
        let from = inner.state;
        inner.state = to;
        inner.epoch += 1;
        inner.probes.clear();
        inner.recorded = 0;
        inner.probe_failures = 0;
        inner.probe_slow = 0;
        match to {
            BreakerState::Open => inner.opened_at = now,
            BreakerState::Closed | BreakerState::Disabled | BreakerState::ForcedOpen => {
                inner.window.clear()
            }
            BreakerState::HalfOpen => {}
        }
        self.update_hint(inner);
        if from != to {
            tracing::info!(endpoint = %self.endpoint, %from, %to, "circuit breaker state change");
            events.push(BreakerEvent {
                endpoint: self.endpoint.clone(),
                from,
                to,
                at: now,
                wall: Utc::now(),
            });
        }
    }

    fn update_hint(&self, inner: &Inner) {
        let retry_at = match inner.state {
            BreakerState::Open => as_nanos(inner.opened_at + self.config.wait_in_open),
            BreakerState::HalfOpen
                if inner.recorded + inner.probes.len() as u32 >= self.config.half_open_permits =>
            {
                inner
                    .probes
                    .iter()
                    .map(|&(_, at)| as_nanos(at + self.config.probe_timeout))
                    .min()
                    // All permits recorded but not yet decided cannot happen (the last
                    // record decides), so this is only a safe default.
                    .unwrap_or(u64::MAX)
            }
            _ => 0,
        };
        self.retry_at_nanos.store(retry_at, Ordering::Release);
        self.state_hint
            .store(inner.state.to_u8(), Ordering::Release);
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("endpoint", &self.endpoint)
            .field(
                "state",
                &BreakerState::from_u8(self.state_hint.load(Ordering::Acquire)),
            )
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Permission for one call through a [`CircuitBreaker`].
///
/// Complete it with [`Permit::success`], [`Permit::failure`] or [`Permit::record`]; the
/// call's duration (from `try_acquire` to completion, on the breaker's clock) decides
/// whether it was slow. Dropping it uncompleted releases it without recording (a
/// cancelled call); a half-open probe permit held past the probe timeout is reclaimed and
/// counted as a failed probe.
pub struct Permit {
    breaker: Arc<CircuitBreaker>,
    epoch: u64,
    probe: Option<u64>,
    started: Duration,
    done: bool,
}

impl Permit {
    /// The endpoint the permit is for.
    pub fn endpoint(&self) -> &EndpointId {
        &self.breaker.endpoint
    }

    /// Whether this permit is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe.is_some()
    }

    /// The call succeeded.
    pub fn success(mut self) {
        self.done = true;
        self.breaker
            .record(self.epoch, self.probe, self.started, false);
    }

    /// The call failed with an error of this kind; it counts as a failure only if the
    /// config's predicate says so (by default: retryable kinds), else as a success.
    pub fn failure(mut self, kind: ErrorKind) {
        self.done = true;
        let failed = (self.breaker.config.is_failure)(kind);
        self.breaker
            .record(self.epoch, self.probe, self.started, failed);
    }

    /// Records a call's result: `Ok` is a success, `Err(e)` a failure of `e.kind()`.
    pub fn record<R, E: Classify>(self, result: &Result<R, E>) {
        match result {
            Ok(_) => self.success(),
            Err(e) => self.failure(e.kind()),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.release(self.epoch, self.probe);
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("endpoint", &self.breaker.endpoint)
            .field("probe", &self.probe.is_some())
            .field("started", &self.started)
            .finish()
    }
}
