//! Endpoints: what a [`Balancer`](super::Balancer) chooses between.

use crate::endpoint::EndpointId;
use crate::registry::{Instance, MAX_WEIGHT};

/// One endpoint of a balancer: an id, a weight, a health flag and the host's payload
/// (`T`: a URL, a registry [`Instance`], a client handle, or `()`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoint<T = ()> {
    /// Unique within one balancer's set.
    pub id: EndpointId,
    /// Relative share of traffic, 1 to [`MAX_WEIGHT`]; strategies that ignore weights
    /// (round robin) ignore it.
    pub weight: u32,
    /// Whether health checks pass. Unhealthy endpoints take traffic only in panic mode.
    pub healthy: bool,
    /// The host's payload, handed back by [`PickGuard::value`](super::PickGuard::value).
    pub value: T,
}

impl<T> Endpoint<T> {
    /// A healthy endpoint of weight 1.
    pub fn new(id: impl Into<EndpointId>, value: T) -> Self {
        Endpoint {
            id: id.into(),
            weight: 1,
            healthy: true,
            value,
        }
    }

    /// Sets the weight (checked by [`Balancer::update`](super::Balancer::update): 1 to
    /// [`MAX_WEIGHT`]).
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Sets the health flag.
    pub fn healthy(mut self, healthy: bool) -> Self {
        self.healthy = healthy;
        self
    }
}

impl Endpoint<Instance> {
    /// The endpoint for a registry instance: its id, its weight, healthy when its status
    /// is passing or warning (Consul's rule), and the instance itself as payload.
    pub fn from_instance(instance: Instance) -> Self {
        Endpoint {
            id: EndpointId::from(&instance.spec.id),
            weight: instance.spec.weight,
            healthy: instance.status.is_healthy(),
            value: instance,
        }
    }
}

/// Checks a weight against the registry's rule (1 to [`MAX_WEIGHT`]).
pub(crate) fn check_weight(id: &EndpointId, weight: u32) -> Result<(), crate::OrchestrateError> {
    if weight == 0 || weight > MAX_WEIGHT {
        return Err(crate::OrchestrateError::invalid(
            "endpoint weight",
            format!("endpoint {id}: weight {weight} is outside 1..={MAX_WEIGHT}"),
        ));
    }
    Ok(())
}
