//! The error of a [`BalanceService`](super::BalanceService).

use crate::OrchestrateError;
use crate::endpoint::EndpointId;
use ate_core::{Classify, ErrorKind};
use std::fmt;

/// Why a call through a [`BalanceService`](super::BalanceService) produced no response.
///
/// A call that got an HTTP response, even a `503` after every retry, is `Ok`: the last
/// response is returned as it is. Errors are either ATE's ([`LayerError::Orchestrate`]:
/// no endpoint could be picked, a request could not be addressed to the endpoint) or the
/// inner service's, after the last attempt ([`LayerError::Inner`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum LayerError<E> {
    /// The layer could not make the call: no endpoint available
    /// ([`NoAvailableInstance`](OrchestrateError::NoAvailableInstance),
    /// [`CircuitOpen`](OrchestrateError::CircuitOpen)) or a request URI that cannot be
    /// rewritten to the endpoint ([`InvalidInput`](OrchestrateError::InvalidInput)).
    Orchestrate(OrchestrateError),
    /// The inner service failed: while getting ready (`endpoint` is `None`), or on the last
    /// attempt, against `endpoint`.
    Inner {
        /// The endpoint of the failed attempt, if one was picked.
        endpoint: Option<EndpointId>,
        /// The inner service's error.
        source: E,
    },
}

impl<E> LayerError<E> {
    /// The kind of failure: the [`OrchestrateError`]'s kind, or
    /// [`ErrorKind::Unavailable`] for an inner-service error (a transport failure).
    pub fn kind(&self) -> ErrorKind {
        match self {
            LayerError::Orchestrate(e) => e.kind(),
            LayerError::Inner { .. } => ErrorKind::Unavailable,
        }
    }

    /// The inner service's error, if that is what this is.
    pub fn inner(&self) -> Option<&E> {
        match self {
            LayerError::Inner { source, .. } => Some(source),
            LayerError::Orchestrate(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for LayerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerError::Orchestrate(e) => fmt::Display::fmt(e, f),
            LayerError::Inner {
                endpoint: Some(endpoint),
                source,
            } => write!(f, "call to {endpoint} failed: {source}"),
            LayerError::Inner {
                endpoint: None,
                source,
            } => write!(f, "client not ready: {source}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for LayerError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LayerError::Orchestrate(e) => Some(e),
            LayerError::Inner { source, .. } => Some(source),
        }
    }
}

impl<E: std::error::Error + 'static> Classify for LayerError<E> {
    fn kind(&self) -> ErrorKind {
        LayerError::kind(self)
    }

    fn is_retryable(&self) -> bool {
        match self {
            LayerError::Orchestrate(e) => e.is_retryable(),
            LayerError::Inner { .. } => true,
        }
    }
}

impl<E> From<OrchestrateError> for LayerError<E> {
    fn from(e: OrchestrateError) -> Self {
        LayerError::Orchestrate(e)
    }
}
