//! Choosing the endpoint for one attempt: the [`Picker`] trait and its implementations.

use crate::OrchestrateError;
use crate::balance::{Balancer, PickGuard};
use crate::breaker::BreakerRegistry;
use crate::registry::Instance;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use url::Url;

/// The future a [`Picker`] returns.
pub type PickFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<PickGuard<T>, OrchestrateError>> + Send + 'a>>;

/// Chooses the endpoint of one attempt of an outgoing call.
///
/// Behavior: resolves to a [`PickGuard`] counting the attempt in flight, with the
/// endpoint's circuit-breaker permit attached when the picker checks breakers, or to an
/// [`OrchestrateError`] (typically
/// [`NoAvailableInstance`](OrchestrateError::NoAvailableInstance) or
/// [`CircuitOpen`](OrchestrateError::CircuitOpen)) when no endpoint may take the call. The
/// caller completes the guard with the attempt's outcome. `key` is an affinity key for
/// consistent hashing (a tenant id); pickers that do not hash ignore it. Called once per
/// attempt, from many tasks at once; dropping the future must be harmless.
///
/// Implemented by [`Balancer`] (no breaker permits) and [`GuardedBalancer`] (a balancer plus
/// a [`BreakerRegistry`]); a host may implement it over its own discovery.
pub trait Picker<T>: Send + Sync + fmt::Debug + 'static {
    /// Picks an endpoint for one attempt.
    fn pick<'a>(&'a self, key: Option<&'a [u8]>) -> PickFuture<'a, T>;
}

impl<T: Send + Sync + 'static> Picker<T> for Balancer<T> {
    fn pick<'a>(&'a self, key: Option<&'a [u8]>) -> PickFuture<'a, T> {
        let picked = Balancer::pick(self, key);
        Box::pin(std::future::ready(picked))
    }
}

/// Default for [`GuardedBalancer::with_max_picks`].
pub const DEFAULT_MAX_PICKS: u32 = 3;

/// A [`Balancer`] whose picks also take the endpoint's circuit-breaker permit.
///
/// Behavior: picks from the balancer, then asks the [`BreakerRegistry`] for a permit on the
/// picked endpoint and attaches it to the guard, so completing the guard records the outcome
/// in the breaker as well. When the breaker refuses (its circuit is open, or another caller
/// took the last half-open probe between the pick and the permit), the guard is dropped
/// (observers see [`Outcome::Cancelled`](crate::Outcome::Cancelled)) and the
/// balancer picks again, at most `max_picks` times in all; then the pick fails with the
/// breaker's [`CircuitOpen`](OrchestrateError::CircuitOpen). A failed balancer pick
/// ([`NoAvailableInstance`](OrchestrateError::NoAvailableInstance)) is returned at once.
///
/// Give the balancer the same registry as an
/// [`availability`](crate::balance::BalancerBuilder::availability) hook: open circuits are
/// then skipped while picking and the permit is refused only in races. Without it, every
/// pick that lands on an open circuit costs one of the `max_picks`.
pub struct GuardedBalancer<T> {
    balancer: Arc<Balancer<T>>,
    breakers: Arc<BreakerRegistry>,
    max_picks: u32,
}

impl<T> GuardedBalancer<T> {
    /// Guards `balancer`'s picks with `breakers`, trying at most [`DEFAULT_MAX_PICKS`]
    /// endpoints per pick.
    pub fn new(balancer: Arc<Balancer<T>>, breakers: Arc<BreakerRegistry>) -> Self {
        GuardedBalancer {
            balancer,
            breakers,
            max_picks: DEFAULT_MAX_PICKS,
        }
    }

    /// Sets how many endpoints one pick tries before giving up (0 is taken as 1).
    pub fn with_max_picks(mut self, max_picks: u32) -> Self {
        self.max_picks = max_picks.max(1);
        self
    }

    /// The balancer.
    pub fn balancer(&self) -> &Arc<Balancer<T>> {
        &self.balancer
    }

    /// The breakers.
    pub fn breakers(&self) -> &Arc<BreakerRegistry> {
        &self.breakers
    }

    /// Picks synchronously (what [`Picker::pick`] resolves to).
    pub fn pick_now(&self, key: Option<&[u8]>) -> Result<PickGuard<T>, OrchestrateError> {
        let mut refused = None;
        for _ in 0..self.max_picks {
            let mut guard = self.balancer.pick(key)?;
            match self.breakers.try_acquire(guard.id()) {
                Ok(permit) => {
                    guard.attach_permit(permit);
                    return Ok(guard);
                }
                Err(e) => refused = Some(e),
            }
        }
        Err(
            refused.unwrap_or_else(|| OrchestrateError::NoAvailableInstance {
                service: self.balancer.service().to_owned(),
                reason: "no pick attempted".to_owned(),
            }),
        )
    }
}

impl<T: Send + Sync + 'static> Picker<T> for GuardedBalancer<T> {
    fn pick<'a>(&'a self, key: Option<&'a [u8]>) -> PickFuture<'a, T> {
        Box::pin(std::future::ready(self.pick_now(key)))
    }
}

impl<T> fmt::Debug for GuardedBalancer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedBalancer")
            .field("balancer", &self.balancer)
            .field("breakers", &self.breakers)
            .field("max_picks", &self.max_picks)
            .finish()
    }
}

/// An endpoint payload that says where to send HTTP requests.
///
/// Behavior: returns the endpoint's base URL; the layer keeps its scheme, host and port and
/// prefixes its path (without a trailing `/`) to every request's path. Its query and
/// fragment are ignored.
pub trait EndpointUrl {
    /// The base URL requests to this endpoint go to.
    fn base_url(&self) -> &Url;
}

impl EndpointUrl for Url {
    fn base_url(&self) -> &Url {
        self
    }
}

impl EndpointUrl for Instance {
    fn base_url(&self) -> &Url {
        &self.spec.endpoint
    }
}

impl<U: EndpointUrl + ?Sized> EndpointUrl for Arc<U> {
    fn base_url(&self) -> &Url {
        (**self).base_url()
    }
}
