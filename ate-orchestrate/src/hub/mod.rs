//! [`ServiceHub`]: the registry, health checks, balancing, breakers, outlier ejection,
//! metrics and alerts wired together, so a host gets them with one handle.
//!
//! ```no_run
//! use ate_core::Principal;
//! use ate_orchestrate::health::{CheckKind, CheckSpec, CheckId};
//! use ate_orchestrate::hub::{PickOptions, ServiceHub};
//! use ate_orchestrate::registry::{InstanceId, InstanceSpec, MemoryRegistry, Scope, ServiceName};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! # async fn example() -> Result<(), ate_orchestrate::OrchestrateError> {
//! let hub = ServiceHub::builder(Arc::new(MemoryRegistry::new())).build()?;
//! let admin = Principal::platform_admin("ops:deploy")?;
//! let billing = ServiceName::new("billing")?;
//! let id = InstanceId::new("billing-1")?;
//! let spec = InstanceSpec::new(Scope::Platform, billing.clone(), id.clone(), "http://127.0.0.1:8081")?;
//! let check = CheckSpec::new(
//!     CheckId::new("billing-1-http")?,
//!     spec.key(),
//!     CheckKind::http("http://127.0.0.1:8081/health"),
//! )
//! .interval(Duration::from_secs(5))
//! .timeout(Duration::from_secs(1));
//! hub.register(&admin, spec, vec![check]).await?;
//! // ... once the check passes:
//! let pick = hub.pick(&admin, &billing, PickOptions::new()).await?;
//! let url = pick.instance().spec.endpoint.clone();
//! // call `url` with the host's client, then:
//! pick.success();
//! println!("{}", hub.metrics_text()?);
//! # Ok(()) }
//! ```
//!
//! # How the parts meet
//!
//! | event | what follows |
//! | --- | --- |
//! | [`ServiceHub::register`] | the instance is stored (critical, Consul's rule), then its checks are scheduled; if a check cannot be added nothing stays behind |
//! | a check result turns an instance passing, warning or critical | the registry stores the new status and the service's balancers are rebuilt before the next pick, so a critical instance takes no new request from then on (failover), unless fewer than [`HubConfig::panic_threshold`] of the instances are healthy: then, as in Envoy, picks spread over all of them (set it to 0 to fail instead) |
//! | a check stays critical longer than its `deregister_critical_after` | the instance is deregistered |
//! | [`Pick::success`] / [`Pick::failure`] / dropping a [`Pick`] | in-flight count down, latency and outcome into the metrics and the window aggregates, the breaker's window, the outlier detector |
//! | a breaker opens (or an instance is ejected) | the instance is skipped by picks until it is allowed again; the breaker state is a metric and an alert input |
//! | another process changes the shared registry | the registry watch marks the service's balancers stale; they are rebuilt before the next pick |
//! | [`ServiceHub::deregister`] | checks removed, breaker, outlier and metrics series of the instance forgotten |
//! | [`ServiceHub::set_policy`] (canary split, blue-green switch) | stored in the registry; every hub's balancers for the service are rebuilt with one balancer per group before their next pick |
//! | [`ServiceHub::drain`] | the instance is marked draining (no new picks on any hub, not discovered), the call waits for this hub's picks of it to finish, then deregisters it |
//!
//! Where things are: [`ServiceHub`]'s operations in `service_hub.rs`, its construction and
//! background tasks in `builder.rs`, `registry_watch.rs` (the watch and ejection sweeps) and
//! `health_reports.rs` (check verdicts into the registry); what follows a change to an
//! instance in `shared.rs`; one service's balancers, breakers and pick path in
//! `service_state.rs`; [`Pick`] in `pick.rs`; traffic policies and draining in
//! `traffic.rs`; the tower adapter in `tower_picker.rs`.
//!
//! Tenancy follows the [`Registry`](crate::Registry) facade: every call takes the caller's
//! [`Principal`](ate_core::Principal); a tenant's caller registers in its own scope and
//! picks among its own and the platform's instances, never another tenant's.

mod builder;
mod config;
mod health_reports;
mod pick;
mod registry_watch;
mod service_hub;
mod service_state;
mod shared;
#[cfg(feature = "tower")]
mod tower_picker;
mod traffic;

pub use builder::HubBuilder;
pub use config::HubConfig;
pub use pick::{Pick, PickOptions};
pub use service_hub::ServiceHub;
#[cfg(feature = "tower")]
pub use tower_picker::HubPicker;
pub use traffic::DrainOptions;

#[cfg(test)]
mod shared_registry_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod traffic_tests;
