//! What balancers, breakers and outlier ejection agree on about an endpoint: its identity
//! ([`EndpointId`]) and whether it may take a request now ([`Availability`]).
//!
//! Both live here, below [`balance`](crate::balance) and [`breaker`](crate::breaker), so
//! that breakers plug into a balancer without either module depending on the other's
//! internals.

use crate::registry::InstanceId;
use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// An endpoint's identity inside one balancer (an instance id, a `host:port`).
///
/// Cheap to clone (a shared string). Breakers, outlier ejection and observers key their
/// per-endpoint state on it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(Arc<str>);

impl EndpointId {
    /// An id from any string. Ids are opaque: any string is accepted, equality is exact.
    pub fn new(id: impl AsRef<str>) -> Self {
        EndpointId(Arc::from(id.as_ref()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for EndpointId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for EndpointId {
    fn from(s: &str) -> Self {
        EndpointId::new(s)
    }
}

impl From<String> for EndpointId {
    fn from(s: String) -> Self {
        EndpointId(Arc::from(s))
    }
}

impl From<&InstanceId> for EndpointId {
    fn from(id: &InstanceId) -> Self {
        EndpointId::new(id.as_str())
    }
}

/// Whether an endpoint may be picked right now, beyond its health flag.
///
/// Behavior: called on the pick path for candidate endpoints, possibly from many threads at
/// once, so it must be cheap, must not block for long and must not panic. Returning `false`
/// makes the balancer skip the endpoint for this pick only. Implemented by
/// [`BreakerRegistry`](crate::breaker::BreakerRegistry) (open circuits) and
/// [`OutlierDetector`](crate::breaker::OutlierDetector) (ejected endpoints); a
/// [`Balancer`](crate::balance::Balancer) consults every hook it was built with.
pub trait Availability: Send + Sync + fmt::Debug {
    /// Whether `endpoint` may take a request now.
    fn is_available(&self, endpoint: &EndpointId) -> bool;
}
