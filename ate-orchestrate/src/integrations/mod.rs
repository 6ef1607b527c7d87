//! Integration endpoints (the seeds' "Integration Hub"): external HTTP endpoints a tenant
//! registers with their authentication ([`EndpointSpec`], [`EndpointAuth`]), kept with the
//! secret sealed under the tenant's keys ([`SqlIntegrations`]), called and probed with
//! per-endpoint metrics ([`IntegrationClient`]), and a built-in workflow step that calls one
//! ([`IntegrationStep`], registered as [`INTEGRATION_STEP`]).
//!
//! Permissions: `integrations:read` (see endpoints, never secrets), `integrations:write`
//! (register, change, delete), `integrations:call` (call, probe).
//!
//! Tenants choose the URLs, so by default the client connects to public addresses only
//! ([`Egress`]): a tenant cannot reach the host's loopback, private network or cloud
//! metadata service through a call or a probe.

mod client;
mod egress;
mod spec;
mod step;
mod store;

pub use client::{
    CallError, CallRequest, CallResponse, EndpointStats, IntegrationClient, MAX_RESPONSE_BYTES,
    ProbeReport,
};
pub use egress::Egress;
pub use spec::{
    DEFAULT_TIMEOUT, EndpointAuth, EndpointName, EndpointSpec, MAX_HEADERS, MAX_SECRET_LEN,
    MAX_TIMEOUT, MAX_URL_LEN,
};
pub use step::{INTEGRATION_STEP, IntegrationStep};
pub use store::{
    Endpoint, INTEGRATIONS_CALL, INTEGRATIONS_READ, INTEGRATIONS_WRITE, ResolvedEndpoint,
    SqlIntegrations,
};
