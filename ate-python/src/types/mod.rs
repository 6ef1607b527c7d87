//! The objects ATE returns to Python: immutable, with attributes (never raw dicts), one
//! file per domain.

#[macro_use]
mod page;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod projects;
pub(crate) mod registry;
pub(crate) mod storage;
pub(crate) mod tenants;
pub(crate) mod workflows;
