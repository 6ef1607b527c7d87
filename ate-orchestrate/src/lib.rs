//! # ate-orchestrate
//!
//! Service orchestration for ATE, as a library: the host brings its transport, ATE opens no
//! port of its own (health checks connect out; nothing listens).
//!
//! * [`hub`]: [`ServiceHub`](hub::ServiceHub), everything below wired together behind one
//!   handle: register instances with their checks, pick an instance per request, record
//!   outcomes, read metrics and alerts. Start here.
//! * [`registry`]: service instances on Consul's model (environments, tenant or platform
//!   scope, passing/warning/critical, new instances start critical), stored in memory,
//!   SQLite or PostgreSQL, with a watch stream that sees other processes' changes, and a
//!   tenancy facade.
//! * [`health`]: HTTP (Consul's status mapping), TCP, TTL and custom checks with
//!   thresholds, run by one scheduler with bounded concurrency.
//! * [`balance`]: round robin, smooth weighted round robin, least request with two random
//!   choices, random, consistent hashing; a panic threshold; pick guards that count
//!   in-flight requests and report outcomes.
//! * [`breaker`]: circuit breakers on Resilience4j's model and Envoy's outlier ejection.
//! * [`retry`]: exponential backoff with jitter under a retry budget.
//! * [`metrics`]: `prometheus-client` families in a registry the host owns, and windowed
//!   aggregates (p50/p95/p99, rates, error rates).
//! * [`alerts`]: threshold rules over metrics and states, firing and resolved events
//!   delivered once each to a sink, and an alert history in the database.
//! * `layer` (feature `tower`): a tower `Layer` that balances, breaks and retries outgoing
//!   HTTP calls.
//!
//! The durable workflow engine comes later.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod alerts;
pub mod balance;
pub mod breaker;
pub mod clock;
pub mod endpoint;
pub mod error;
pub mod health;
pub mod hub;
#[cfg(feature = "tower")]
pub mod layer;
pub mod metrics;
pub mod outcome;
pub mod registry;
pub mod retry;

pub use endpoint::{Availability, EndpointId};
pub use error::OrchestrateError;
pub use outcome::{Outcome, OutcomeObserver};

/// `ate-orchestrate`'s migrations (registry, alert history), for [`ate_core::Db::migrate`].
pub fn migrations() -> ate_core::Migrations {
    ate_core::Migrations::new(
        "orchestrate",
        sqlx::migrate!("migrations/sqlite"),
        sqlx::migrate!("migrations/postgres"),
    )
}
