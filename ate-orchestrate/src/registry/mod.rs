//! The service registry on Consul's model.

mod model;

pub use model::{
    Environment, HealthStatus, Instance, InstanceId, InstanceSpec, MAX_METADATA_ENTRIES,
    MAX_METADATA_VALUE_LEN, MAX_NAME_LEN, MAX_WEIGHT, Scope, ServiceName, parse_endpoint,
};
