//! The service registry on Consul's model.
//!
//! * The model: [`InstanceSpec`] (what a host registers), [`Instance`] (plus what
//!   the registry observed), [`InstanceKey`] (scope, service and id: what every operation
//!   on one instance takes), [`Scope`] (one tenant or the platform), [`Environment`] and
//!   [`HealthStatus`] (passing, warning, critical; new instances start critical and are not
//!   discovered until a check passes).
//! * [`RegistryStore`]: the backend trait with its written contracts, including
//!   [`watch`](RegistryStore::watch), a stream of [`RegistryEvent`]s so a host reacts to
//!   changes without polling.
//! * Backends: [`MemoryRegistry`] (one process) and [`SqlRegistry`] (SQLite or PostgreSQL,
//!   shared by several processes; watches follow a change log in the database).
//! * Traffic: [`TrafficPolicy`] (canary splits by percentage, blue-green switches) per
//!   service and scope, and draining ([`RegistryStore::drain`]), both stored so that every
//!   host balancing a service applies them.
//! * [`Registry`]: the front hosts use, which checks every call's [`Principal`]
//!   (`ate_core::Principal`) against tenant and platform scopes.
//!
//! [`Principal`]: ate_core::Principal

mod facade;
mod memory;
pub(crate) mod model;
mod policy;
mod sql;
mod store;

pub use facade::{REGISTRY_READ, REGISTRY_WRITE, Registry};
pub use memory::{DEFAULT_WATCH_CAPACITY, MemoryRegistry};
pub use model::{
    Environment, HealthStatus, Instance, InstanceId, InstanceKey, InstanceSpec,
    MAX_METADATA_ENTRIES, MAX_METADATA_VALUE_LEN, MAX_NAME_LEN, MAX_TAGS, MAX_WEIGHT, Scope,
    ServiceName, parse_endpoint,
};
pub use policy::{
    MAX_SPLIT_GROUPS, Selector, ServicePolicy, TrafficGroup, TrafficPolicy, VERSION_METADATA_KEY,
};
pub use sql::{DEFAULT_CHANGE_LOG_CAPACITY, DEFAULT_POLL_INTERVAL, SqlRegistry};
pub use store::{
    DeregisterReason, MAX_STATUS_OUTPUT_LEN, Query, RegistryEvent, RegistryStore, RegistryWatch,
    Visibility,
};
