//! `a.registry`: service discovery, health checks, balancing, metrics and alerts for Python,
//! over `ate_orchestrate::hub::ServiceHub` (the client's hub lives in `crate::hub`).
//!
//! * `api`: the `Registry` and `AsyncRegistry` classes and the operations behind them;
//! * `args`: call arguments converted from Python (caller and scope, targets, queries,
//!   registrations, alert rules);
//! * `checks`: `CheckDefinition` and `http_check`, `tcp_check`, `ttl_check`;
//! * `pick`: `Pick` and `PendingPick`.
//!
//! Tenancy: every call acts as `actor` (a `Principal` from `a.auth.verify`) or, by default,
//! as the client's platform administrator; `tenant` picks the scope (default: the actor's
//! tenant, or the platform). The Rust facade checks every call.

mod api;
mod args;
mod checks;
mod pick;

pub(crate) use api::{AsyncRegistry, Registry};
pub(crate) use checks::{CheckDefinition, http_check, tcp_check, ttl_check};
pub(crate) use pick::{PendingPick, Pick};
