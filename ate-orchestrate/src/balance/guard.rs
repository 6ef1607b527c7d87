//! The pick guard: counts a request in flight and reports how it ended.

use super::endpoint::Endpoint;
use crate::breaker::Permit;
use crate::clock::MonotonicClock;
use crate::endpoint::EndpointId;
use crate::outcome::{Outcome, OutcomeObserver};
use ate_core::{Classify, ErrorKind};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What a balancer shares with every guard it hands out.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) clock: Arc<dyn MonotonicClock>,
    pub(crate) observers: Vec<Arc<dyn OutcomeObserver>>,
}

/// Per-endpoint counters, kept across set updates for endpoints that stay.
#[derive(Debug, Default)]
pub(crate) struct EndpointStats {
    pub(crate) in_flight: AtomicU64,
}

/// One endpoint as seen by one snapshot of the set.
#[derive(Debug)]
pub(crate) struct Slot<T> {
    pub(crate) endpoint: Endpoint<T>,
    pub(crate) stats: Arc<EndpointStats>,
    pub(crate) shared: Arc<Shared>,
}

impl<T> Slot<T> {
    pub(crate) fn in_flight(&self) -> u64 {
        self.stats.in_flight.load(Ordering::Relaxed)
    }
}

/// A picked endpoint, counted as one request in flight until the guard completes.
///
/// Finish it with [`PickGuard::success`] or [`PickGuard::failure`] (or
/// [`PickGuard::record`]); dropping it unfinished reports [`Outcome::Cancelled`]. Either
/// way the in-flight count (which least-request balancing reads) goes back down exactly
/// once, the latency since the pick and the outcome go to the balancer's
/// [`OutcomeObserver`]s, and an attached breaker [`Permit`] is completed with the same
/// outcome (a cancelled guard releases the permit unrecorded).
///
/// The guard keeps the endpoint as it was when picked, even if the set has been updated
/// since.
pub struct PickGuard<T = ()> {
    slot: Arc<Slot<T>>,
    started: Duration,
    permit: Option<Permit>,
    /// Another in-flight count the guard holds one unit of (the hub's per-instance count,
    /// which outlives balancer rebuilds), released when it finishes.
    counter: Option<Arc<AtomicU64>>,
    finished: bool,
}

impl<T> PickGuard<T> {
    pub(crate) fn new(slot: Arc<Slot<T>>) -> Self {
        slot.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let started = slot.shared.clock.now();
        PickGuard {
            slot,
            started,
            permit: None,
            counter: None,
            finished: false,
        }
    }

    /// The picked endpoint.
    pub fn endpoint(&self) -> &Endpoint<T> {
        &self.slot.endpoint
    }

    /// The picked endpoint's id.
    pub fn id(&self) -> &EndpointId {
        &self.slot.endpoint.id
    }

    /// The picked endpoint's payload.
    pub fn value(&self) -> &T {
        &self.slot.endpoint.value
    }

    /// Time since the pick, on the balancer's clock.
    pub fn elapsed(&self) -> Duration {
        self.slot.shared.clock.now().saturating_sub(self.started)
    }

    /// Attaches the endpoint's circuit-breaker permit, so that completing this guard also
    /// completes the permit with the same outcome. Replaces (and releases) a permit
    /// attached before.
    pub fn attach_permit(&mut self, permit: Permit) {
        self.permit = Some(permit);
    }

    /// Counts this guard in `counter` until it finishes (one unit, added now).
    pub(crate) fn attach_counter(&mut self, counter: Arc<AtomicU64>) {
        counter.fetch_add(1, Ordering::AcqRel);
        if let Some(old) = self.counter.replace(counter) {
            old.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The call succeeded.
    pub fn success(mut self) {
        self.finish(Outcome::Success);
    }

    /// The call failed with an error of this kind.
    pub fn failure(mut self, kind: ErrorKind) {
        self.finish(Outcome::Failure(kind));
    }

    /// Records a call's result: `Ok` is a success, `Err(e)` a failure of `e.kind()`.
    pub fn record<R, E: Classify>(self, result: &Result<R, E>) {
        match result {
            Ok(_) => self.success(),
            Err(e) => self.failure(e.kind()),
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.slot.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(counter) = self.counter.take() {
            counter.fetch_sub(1, Ordering::AcqRel);
        }
        // The clock is read only for someone who looks at the latency.
        let observers = &self.slot.shared.observers;
        if !observers.is_empty() {
            let latency = self.elapsed();
            for observer in observers {
                observer.on_outcome(&self.slot.endpoint.id, outcome, latency);
            }
        }
        if let Some(permit) = self.permit.take() {
            match outcome {
                Outcome::Success => permit.success(),
                Outcome::Failure(kind) => permit.failure(kind),
                // Dropping the permit releases it without recording anything.
                Outcome::Cancelled => drop(permit),
            }
        }
    }
}

impl<T> Drop for PickGuard<T> {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled);
    }
}

impl<T> fmt::Debug for PickGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PickGuard")
            .field("endpoint", &self.slot.endpoint.id)
            .field("started", &self.started)
            .field("permit", &self.permit)
            .field("finished", &self.finished)
            .finish()
    }
}
