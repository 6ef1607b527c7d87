//! # ate-orchestrate
//!
//! Service orchestration for ATE, as a library: a service registry with health checks,
//! load balancing, circuit breakers, outlier ejection, retries, metrics and alerts. The host
//! brings its transport; ATE opens no port of its own (health checks connect out, nothing
//! listens).
//!
//! Start with [`ServiceHub`]: every part below wired together behind one handle. Register
//! instances with their checks, pick a healthy instance per request, report how the call
//! went, read metrics and alerts:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use ate_core::Principal;
//! use ate_orchestrate::{
//!     HealthStatus, InstanceId, InstanceSpec, MemoryRegistry, PickOptions, Scope, ServiceHub,
//!     ServiceName,
//! };
//! use std::sync::Arc;
//!
//! let hub = ServiceHub::builder(Arc::new(MemoryRegistry::new())).build()?;
//! let admin = Principal::platform_admin("ops:deploy")?;
//! let billing = ServiceName::new("billing")?;
//! let spec = InstanceSpec::new(
//!     Scope::Platform,
//!     billing.clone(),
//!     InstanceId::new("billing-1")?,
//!     "http://127.0.0.1:8081",
//! )?;
//! // No checks here (see `health::CheckSpec`): mark it passing by hand.
//! let instance = hub.register(&admin, spec, vec![]).await?;
//! hub.set_status(&admin, &instance.key(), HealthStatus::Passing, "deployed").await?;
//!
//! let pick = hub.pick(&admin, &billing, PickOptions::new()).await?;
//! assert_eq!(pick.instance().spec.endpoint.as_str(), "http://127.0.0.1:8081/");
//! pick.success(); // or pick.failure(kind), or pick.record(&result)
//! assert!(hub.metrics_text()?.contains(r#"outcome="success"} 1"#));
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
//!
//! # The parts
//!
//! * [`hub`]: [`ServiceHub`], [`HubConfig`], [`Pick`]: how the parts meet (a table of
//!   which event causes what is in the module's documentation).
//! * [`registry`]: service instances on Consul's model (environments, tenant or platform
//!   [`Scope`], passing/warning/critical [`HealthStatus`], new instances start critical),
//!   each named by an [`InstanceKey`]; the [`RegistryStore`] trait with
//!   [`MemoryRegistry`] and [`SqlRegistry`] (SQLite, PostgreSQL; a watch that sees other
//!   processes' changes), behind the [`Registry`] facade that checks every caller's
//!   tenancy.
//! * [`health`]: HTTP (Consul's status mapping), TCP, TTL and custom checks with
//!   thresholds, run by one [`HealthScheduler`] with bounded concurrency.
//! * [`balance`]: a [`Balancer`] with round robin, smooth weighted round robin, least
//!   request with two random choices, random and consistent hashing ([`Strategy`]); a
//!   panic threshold; [`PickGuard`]s that count requests in flight and report outcomes.
//! * [`breaker`]: [`CircuitBreaker`]s on Resilience4j's model ([`BreakerRegistry`] keeps
//!   one per endpoint) and Envoy's outlier ejection ([`OutlierDetector`]).
//! * [`retry`]: exponential backoff with jitter ([`RetryPolicy`]) under a [`RetryBudget`].
//! * [`metrics`]: `prometheus-client` families in a registry the host owns
//!   ([`ServiceMetrics`]), and windowed aggregates: p50/p95/p99, rates, error rates
//!   ([`MetricsRecorder`]).
//! * [`alerts`]: threshold rules ([`AlertRule`]) over metrics and states, evaluated by an
//!   [`AlertEngine`]; firing and resolved events delivered once each to an [`AlertSink`]
//!   and kept in an [`AlertHistory`] (in memory or the database).
//! * `layer` (feature `tower`): a tower `BalanceLayer` that balances, breaks and retries
//!   outgoing HTTP calls, over a plain balancer or the hub.
//!
//! Below them sits the vocabulary they share, so that none depends on another's insides:
//! [`EndpointId`] and [`Availability`] ([`endpoint`]), [`Outcome`] and [`OutcomeObserver`]
//! ([`outcome`]), and the monotonic clocks of [`clock`]. Every error is an
//! [`OrchestrateError`] with an [`ErrorKind`](ate_core::ErrorKind).
//!
//! The main types are re-exported here; the modules hold the rest (limits, settings,
//! events).
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
pub mod integrations;
#[cfg(feature = "tower")]
pub mod layer;
pub mod metrics;
mod name;
pub mod outcome;
pub mod registry;
pub mod retry;
pub mod workflow;

pub use alerts::{
    AlertEngine, AlertEvent, AlertHistory, AlertRule, AlertSink, Condition, MemoryAlertHistory,
    Severity, SqlAlertHistory,
};
pub use balance::{Balancer, Endpoint, PickGuard, Strategy};
pub use breaker::{
    BreakerConfig, BreakerRegistry, BreakerState, CircuitBreaker, OutlierConfig, OutlierDetector,
};
pub use endpoint::{Availability, EndpointId};
pub use error::OrchestrateError;
pub use health::{CheckId, CheckKind, CheckSpec, HealthScheduler};
#[cfg(feature = "tower")]
pub use hub::HubPicker;
pub use hub::{HubConfig, Pick, PickOptions, ServiceHub};
#[cfg(feature = "tower")]
pub use layer::{BalanceLayer, GuardedBalancer};
pub use metrics::{MetricsRecorder, ServiceMetrics, WindowStats};
pub use name::MAX_NAME_LEN;
pub use outcome::{Outcome, OutcomeObserver};
pub use registry::{
    Environment, HealthStatus, Instance, InstanceId, InstanceKey, InstanceSpec, MemoryRegistry,
    Query, Registry, RegistryStore, Scope, ServiceName, SqlRegistry, Visibility,
};
pub use retry::{RetryBudget, RetryPolicy};

/// `ate-orchestrate`'s migrations (registry, alert history), for [`ate_core::Db::migrate`].
pub fn migrations() -> ate_core::Migrations {
    ate_core::Migrations::new(
        "orchestrate",
        sqlx::migrate!("migrations/sqlite"),
        sqlx::migrate!("migrations/postgres"),
    )
}
