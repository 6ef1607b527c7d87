//! # ate-orchestrate
//!
//! Service orchestration for ATE. **Not yet implemented**: this crate compiles so the
//! workspace layout is fixed, and exports nothing until its issue lands.
//!
//! It will own:
//!
//! * a **service registry** on Consul's model: check kinds, passing/warning/critical,
//!   thresholds, deregistration after a critical period;
//! * **balancing** (round robin, weighted, least-request with two random choices),
//!   **circuit breakers** on Resilience4j's model and **retries** with backoff, as tower
//!   layers a host can drop into axum or tonic;
//! * **metrics** through `prometheus-client` into a registry the host owns, and alerts;
//! * the **durable workflow engine**: DAG executions stored in the database, work claimed
//!   with leases, steps run at least once with their completion recorded exactly once.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
