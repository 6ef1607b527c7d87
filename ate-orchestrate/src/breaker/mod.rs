//! Circuit breakers (Resilience4j) and outlier ejection (Envoy), per endpoint.
//!
//! * [`CircuitBreaker`] / [`BreakerRegistry`]: count- or time-based sliding window,
//!   failure-rate and slow-call-rate thresholds, minimum calls, open wait, a limited number
//!   of half-open probes each with a timeout (`circuit.rs`, `config.rs`, `window.rs`).
//! * [`OutlierDetector`]: ejection after consecutive failures, growing ejection time, a cap
//!   on the share ejected (`outlier.rs`).
//! * Both are [`Availability`](crate::Availability) hooks for a
//!   [`Balancer`](crate::balance::Balancer) (the detector also hears every
//!   [`Outcome`](crate::Outcome) as an [`OutcomeObserver`](crate::OutcomeObserver)), and
//!   every state change goes to synchronous listeners and a broadcast stream (`events.rs`).
//! * Time comes from a [`MonotonicClock`](crate::clock::MonotonicClock), so tests move it
//!   by hand.
//!
//! Breakers know nothing of balancers: they meet through the crate-root vocabulary
//! ([`EndpointId`](crate::EndpointId), [`Availability`](crate::Availability),
//! [`Outcome`](crate::Outcome)), and a balancer's guard carries a breaker [`Permit`].
//!
//! Errors are judged by [`ErrorKind`](ate_core::ErrorKind), never by message: by default
//! only retryable kinds (`Unavailable`, `RateLimited`) count as failures; other errors mean
//! the endpoint answered.
//!
//! ```
//! use ate_orchestrate::EndpointId;
//! use ate_orchestrate::breaker::{BreakerConfig, BreakerRegistry, BreakerState, SlidingWindow};
//! use ate_core::ErrorKind;
//!
//! let breakers = BreakerRegistry::new(
//!     BreakerConfig::default()
//!         .window(SlidingWindow::Count { calls: 10 })
//!         .minimum_calls(4),
//! )?;
//! let a = EndpointId::new("billing-1");
//! for _ in 0..4 {
//!     breakers.try_acquire(&a)?.failure(ErrorKind::Unavailable);
//! }
//! assert_eq!(breakers.state("billing-1"), BreakerState::Open);
//! assert!(breakers.try_acquire(&a).is_err());
//! # Ok::<(), ate_orchestrate::OrchestrateError>(())
//! ```

mod circuit;
mod config;
mod events;
mod outlier;
mod registry;
mod window;

pub use circuit::{BreakerEvent, BreakerMetrics, BreakerState, CircuitBreaker, Permit};
pub use config::{BreakerConfig, FailurePredicate, MAX_WINDOW_SECONDS, SlidingWindow};
pub use events::{EVENT_STREAM_CAPACITY, Listener};
pub use outlier::{OutlierChange, OutlierConfig, OutlierDetector, OutlierEvent};
pub use registry::BreakerRegistry;

#[cfg(test)]
mod tests;
