//! # ate-orchestrate
//!
//! Service orchestration for ATE, as a library: the host brings its transport, ATE opens no
//! port of its own.
//!
//! * [`registry`]: service instances on Consul's model (environments, tenant or platform
//!   scope, passing/warning/critical, new instances start critical), stored in memory,
//!   SQLite or PostgreSQL, with a watch stream.
//!
//! Balancing, circuit breakers, retries, health checks, metrics and alerts follow as their
//! modules land (see the crate's issue); the durable workflow engine comes later.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod alerts;
pub mod balance;
pub mod breaker;
pub mod error;
pub mod health;
pub mod hub;
pub mod metrics;
pub mod registry;
pub mod retry;

pub use error::OrchestrateError;

/// `ate-orchestrate`'s migrations (registry, alert history), for [`ate_core::Db::migrate`].
pub fn migrations() -> ate_core::Migrations {
    ate_core::Migrations::new(
        "orchestrate",
        sqlx::migrate!("migrations/sqlite"),
        sqlx::migrate!("migrations/postgres"),
    )
}
