//! How a call to an endpoint ended ([`Outcome`]), and who hears about it
//! ([`OutcomeObserver`]).
//!
//! One vocabulary for every part that learns of a finished call: a
//! [`PickGuard`](crate::balance::PickGuard) reports its outcome to observers (the
//! [`OutlierDetector`](crate::breaker::OutlierDetector), the hub's metrics), a breaker
//! [`Permit`](crate::breaker::Permit) is completed with it, and the
//! [`MetricsRecorder`](crate::metrics::MetricsRecorder) records it.

use crate::endpoint::EndpointId;
use ate_core::{Classify, ErrorKind};
use std::fmt;
use std::time::Duration;

/// How a call ended.
///
/// ```
/// use ate_core::ErrorKind;
/// use ate_orchestrate::{OrchestrateError, Outcome};
///
/// let failed: Result<(), _> = Err(OrchestrateError::Unavailable("connection refused".into()));
/// assert_eq!(Outcome::of(&failed), Outcome::Failure(ErrorKind::Unavailable));
/// assert!(Outcome::of(&failed).is_failure());
/// assert_eq!(Outcome::of(&Ok::<_, OrchestrateError>(())), Outcome::Success);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The endpoint answered and the call succeeded.
    Success,
    /// The call failed with this kind of error. Breakers and outlier ejection count only
    /// some kinds against the endpoint (retryable ones by default, see
    /// [`FailurePredicate`](crate::breaker::FailurePredicate)); the metrics count every
    /// failure as an error.
    Failure(ErrorKind),
    /// The caller gave up before the call ended (a timeout above it, a cancelled future,
    /// a [`PickGuard`](crate::balance::PickGuard) dropped unfinished). Says nothing about
    /// the endpoint's health: breakers, outlier ejection and metrics record nothing for it.
    Cancelled,
}

impl Outcome {
    /// The outcome of a finished call: `Success` for an `Ok`, `Failure(e.kind())` for an
    /// `Err(e)`.
    pub fn of<T, E: Classify>(result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) => Outcome::Failure(e.kind()),
        }
    }

    /// Whether the call failed (of any kind).
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failure(_))
    }
}

/// Receives every finished pick: metrics, outlier detection, logs.
///
/// Behavior: called exactly once per [`PickGuard`](crate::balance::PickGuard), on the
/// thread that completes or drops it, after the in-flight count was decremented. Must be
/// cheap and must not block (it runs on the request path); it must not panic.
pub trait OutcomeObserver: Send + Sync + fmt::Debug {
    /// `endpoint` finished a request with `outcome` after `latency` (from the pick).
    fn on_outcome(&self, endpoint: &EndpointId, outcome: Outcome, latency: Duration);
}
