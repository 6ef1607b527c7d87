//! [`Pick`] and [`PickOptions`].

use crate::balance::{PickGuard, Strategy};
use crate::registry::{Environment, Instance, InstanceKey, Visibility};
use ate_core::{Classify, ErrorKind};
use std::time::Duration;

/// How [`ServiceHub::pick`](super::ServiceHub::pick) chooses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PickOptions {
    /// The strategy (default: the hub's, least request).
    pub strategy: Option<Strategy>,
    /// The key for [`Strategy::ConsistentHash`] (a tenant id for tenant affinity).
    pub key: Option<Vec<u8>>,
    /// Only instances of this environment.
    pub environment: Option<Environment>,
    /// Which scopes to pick from (default: the caller's tenant and the platform, or the
    /// platform for a platform principal).
    pub visibility: Option<Visibility>,
    /// Instances to pick only when nothing else is available (a retry avoids the instances
    /// its request already failed on).
    pub avoid: Vec<InstanceKey>,
}

impl PickOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = Some(strategy);
        self
    }

    /// Sets the consistent-hashing key.
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Only instances of `environment`.
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = Some(environment);
        self
    }

    /// Avoids `instance` unless nothing else is available (several calls: all of them).
    pub fn avoid(mut self, instance: InstanceKey) -> Self {
        self.avoid.push(instance);
        self
    }

    /// Picks among `visibility`'s scopes (checked against the caller).
    pub fn visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = Some(visibility);
        self
    }
}

/// One picked instance, counted in flight (least-request balancing reads it) and holding
/// its circuit breaker's permit until finished.
///
/// Finish it with [`Pick::success`], [`Pick::failure`] or [`Pick::record`]: the latency
/// since the pick and the outcome go to the metrics, the window aggregates, the breaker
/// and the outlier detector. Dropping it unfinished counts as cancelled (the caller gave
/// up): the permit is released and nothing is recorded against the instance.
#[derive(Debug)]
pub struct Pick {
    guard: PickGuard<Instance>,
}

impl Pick {
    pub(super) fn new(guard: PickGuard<Instance>) -> Self {
        Pick { guard }
    }

    /// The instance to call.
    pub fn instance(&self) -> &Instance {
        self.guard.value()
    }

    /// Time since the pick.
    pub fn elapsed(&self) -> Duration {
        self.guard.elapsed()
    }

    /// The call succeeded.
    pub fn success(self) {
        self.guard.success();
    }

    /// The call failed with this kind of error (retryable kinds count against the
    /// instance's breaker by default).
    pub fn failure(self, kind: ErrorKind) {
        self.guard.failure(kind);
    }

    /// Records a result: `Ok` a success, `Err(e)` a failure of `e.kind()`.
    pub fn record<T, E: Classify>(self, result: &Result<T, E>) {
        self.guard.record(result);
    }

    /// The underlying guard (for the tower layer and other adapters).
    pub fn into_guard(self) -> PickGuard<Instance> {
        self.guard
    }
}
