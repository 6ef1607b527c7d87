//! `a.registry`: service discovery, health checks, balancing, metrics and alerts for Python,
//! over `ate_orchestrate::hub::ServiceHub` (the client's hub lives in `crate::hub`).
//!
//! * `api`: the `Registry` and `AsyncRegistry` classes and the operations behind them;
//! * `args`: call arguments converted from Python (caller and scope, targets, queries,
//!   registrations, alert rules);
//! * `checks`: `CheckDefinition` and `http_check`, `tcp_check`, `ttl_check`;
//! * `pick`: `Pick` and `PendingPick`.
//!
//! Tenancy: every call acts as the client's principal (`a.acting_as(principal).registry`
//! for a user's) or, for one call, as `actor=`; `tenant=` picks the scope (default: the
//! principal's tenant, or the platform). The Rust facade checks registry reads and writes;
//! the hub-wide calls on this process's memory (statistics, metrics, checks, breakers,
//! alerts) are for platform administrators.

mod api;
mod args;
mod checks;
mod pick;

pub(crate) use api::{AsyncRegistry, Registry};
pub(crate) use checks::{CheckDefinition, http_check, tcp_check, ttl_check};
pub(crate) use pick::{PendingPick, Pick};
