//! The registry's data model: names, instances, environments, scopes and health.
//!
//! Every type validates on construction, so a value that exists is valid: a
//! [`ServiceName`] is never empty, an [`InstanceSpec`] never has a zero weight or an
//! endpoint without a host.

use crate::error::OrchestrateError;
pub use crate::name::MAX_NAME_LEN;
pub(crate) use crate::name::{name_type, validate_name, validate_token};
use ate_core::TenantId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use url::Url;

/// Largest weight an instance may carry.
pub const MAX_WEIGHT: u32 = 10_000;
/// Most metadata entries on one instance.
pub const MAX_METADATA_ENTRIES: usize = 64;
/// Longest metadata value (bytes).
pub const MAX_METADATA_VALUE_LEN: usize = 1024;
/// Most tags on one instance (and, separately, most capabilities).
pub const MAX_TAGS: usize = 64;

name_type!(
    /// A service's name (`billing`, `search.v2`).
    ServiceName,
    "service name"
);
name_type!(
    /// An instance's id, unique within its service and scope (`billing-1`, a host:port).
    InstanceId,
    "instance id"
);

/// The deployment environment an instance serves.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Environment {
    /// Development.
    Development,
    /// Staging.
    Staging,
    /// Production (the default).
    #[default]
    Production,
}

impl Environment {
    /// Every environment.
    pub const ALL: [Environment; 3] = [
        Environment::Development,
        Environment::Staging,
        Environment::Production,
    ];

    /// The stable lowercase name (`development`, `staging`, `production`).
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }

    /// Parses [`Environment::as_str`]'s names (also `dev`, `prod`).
    pub fn parse(s: &str) -> Result<Self, OrchestrateError> {
        match s {
            "development" | "dev" => Ok(Environment::Development),
            "staging" => Ok(Environment::Staging),
            "production" | "prod" => Ok(Environment::Production),
            other => Err(OrchestrateError::invalid(
                "environment",
                format!(
                    "{:?} is not one of development, staging, production",
                    other.chars().take(32).collect::<String>()
                ),
            )),
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who can see an instance: one tenant, or the whole platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Shared by every tenant (registered by a platform administrator).
    Platform,
    /// Private to one tenant.
    Tenant(TenantId),
}

impl Scope {
    /// The tenant, for a tenant scope.
    pub fn tenant(&self) -> Option<TenantId> {
        match self {
            Scope::Platform => None,
            Scope::Tenant(t) => Some(*t),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Platform => f.write_str("platform"),
            Scope::Tenant(t) => write!(f, "tenant:{t}"),
        }
    }
}

/// Health on Consul's scale. Ordered from best to worst, so `max` of several check
/// results is the instance's aggregate status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HealthStatus {
    /// Healthy: takes traffic.
    Passing,
    /// Degraded but still taking traffic (Consul's default for discovery).
    Warning,
    /// Unhealthy: leaves discovery and balancing at once. New instances start here.
    Critical,
}

impl HealthStatus {
    /// The stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Passing => "passing",
            HealthStatus::Warning => "warning",
            HealthStatus::Critical => "critical",
        }
    }

    /// Parses [`HealthStatus::as_str`]'s names.
    pub fn parse(s: &str) -> Result<Self, OrchestrateError> {
        match s {
            "passing" => Ok(HealthStatus::Passing),
            "warning" => Ok(HealthStatus::Warning),
            "critical" => Ok(HealthStatus::Critical),
            other => Err(OrchestrateError::invalid(
                "health status",
                format!(
                    "{:?} is not one of passing, warning, critical",
                    other.chars().take(32).collect::<String>()
                ),
            )),
        }
    }

    /// Whether an instance in this state takes traffic (passing or warning).
    pub fn is_healthy(self) -> bool {
        !matches!(self, HealthStatus::Critical)
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What identifies a registered instance: its [`Scope`], its [`ServiceName`] and its
/// [`InstanceId`]. Instance ids are unique within one service and scope, so the same id may
/// exist once in the platform scope and once in each tenant's.
///
/// Every operation on one instance takes its key: the [`RegistryStore`](super::RegistryStore)
/// and the [`Registry`](super::Registry) facade, the
/// [`HealthScheduler`](crate::health::HealthScheduler)'s checks and reports, the
/// [`ServiceHub`](crate::hub::ServiceHub). Get one from [`InstanceKey::new`], from a spec
/// ([`InstanceSpec::key`]) or from a registered instance ([`Instance::key`]).
///
/// Displayed as `scope/service/id` (`platform/billing/billing-1`,
/// `tenant:<uuid>/billing/billing-1`), the form error messages use. Ordered by service,
/// then scope (platform first), then id: the order in which
/// [`RegistryStore::discover`](super::RegistryStore::discover) lists instances.
///
/// ```
/// use ate_orchestrate::registry::{InstanceId, InstanceKey, Scope, ServiceName};
///
/// let key = InstanceKey::new(
///     Scope::Platform,
///     ServiceName::new("billing")?,
///     InstanceId::new("billing-1")?,
/// );
/// assert_eq!(key.to_string(), "platform/billing/billing-1");
/// assert_eq!(key.service().as_str(), "billing");
/// # Ok::<(), ate_orchestrate::OrchestrateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceKey {
    // Field order is the sort order (derived `Ord`): service, scope, id.
    service: ServiceName,
    scope: Scope,
    id: InstanceId,
}

impl InstanceKey {
    /// The key of instance `id` of `service` in `scope`. Every part is already validated
    /// by its own type, so any combination is a valid key.
    pub fn new(scope: Scope, service: ServiceName, id: InstanceId) -> Self {
        InstanceKey { service, scope, id }
    }

    /// Who can see the instance.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The service it belongs to.
    pub fn service(&self) -> &ServiceName {
        &self.service
    }

    /// Its id within the service and scope.
    pub fn id(&self) -> &InstanceId {
        &self.id
    }

    /// The parts: `(scope, service, id)`.
    pub fn into_parts(self) -> (Scope, ServiceName, InstanceId) {
        (self.scope, self.service, self.id)
    }
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.scope, self.service, self.id)
    }
}

/// What a host registers: everything about an instance except its observed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InstanceSpec {
    /// The service it belongs to.
    pub service: ServiceName,
    /// Its id, unique within (scope, service).
    pub id: InstanceId,
    /// Where to reach it (`http`, `https`, `tcp`, `grpc` … with a host).
    pub endpoint: Url,
    /// Free-form tags (`primary`, `eu-west`).
    pub tags: BTreeSet<String>,
    /// What it can do (`pdf-render`, `gpu`); discovery can filter on them.
    pub capabilities: BTreeSet<String>,
    /// Free-form key/value pairs.
    pub metadata: BTreeMap<String, String>,
    /// Relative share of traffic for weighted balancing, 1 to [`MAX_WEIGHT`] (default 1).
    pub weight: u32,
    /// The environment it serves (default production).
    pub environment: Environment,
    /// Who can see it.
    pub scope: Scope,
}

impl InstanceSpec {
    /// A spec with default weight (1), environment (production), no tags, capabilities or
    /// metadata. `endpoint` must be an absolute URL with a host.
    pub fn new(
        scope: Scope,
        service: ServiceName,
        id: InstanceId,
        endpoint: &str,
    ) -> Result<Self, OrchestrateError> {
        let endpoint = parse_endpoint(endpoint)?;
        Ok(InstanceSpec {
            service,
            id,
            endpoint,
            tags: BTreeSet::new(),
            capabilities: BTreeSet::new(),
            metadata: BTreeMap::new(),
            weight: 1,
            environment: Environment::default(),
            scope,
        })
    }

    /// The key the instance will be registered under: its scope, service and id.
    pub fn key(&self) -> InstanceKey {
        InstanceKey::new(self.scope, self.service.clone(), self.id.clone())
    }

    /// Sets the weight (validated by [`InstanceSpec::validate`]).
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Sets the environment.
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.insert(tag.into());
        self
    }

    /// Adds a capability.
    pub fn capability(mut self, capability: impl Into<String>) -> Self {
        self.capabilities.insert(capability.into());
        self
    }

    /// Adds a metadata entry.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Checks every field (the fields are public, so stores call this before writing).
    pub fn validate(&self) -> Result<(), OrchestrateError> {
        if self.weight == 0 || self.weight > MAX_WEIGHT {
            return Err(OrchestrateError::invalid(
                "weight",
                format!("{} is outside 1..={MAX_WEIGHT}", self.weight),
            ));
        }
        check_endpoint(&self.endpoint)?;
        for (what, set) in [("tags", &self.tags), ("capabilities", &self.capabilities)] {
            if set.len() > MAX_TAGS {
                return Err(OrchestrateError::invalid(
                    what,
                    format!("{} entries is more than {MAX_TAGS}", set.len()),
                ));
            }
        }
        for tag in &self.tags {
            validate_name("tag", tag)?;
        }
        for cap in &self.capabilities {
            validate_name("capability", cap)?;
        }
        if self.metadata.len() > MAX_METADATA_ENTRIES {
            return Err(OrchestrateError::invalid(
                "metadata",
                format!(
                    "{} entries is more than {MAX_METADATA_ENTRIES}",
                    self.metadata.len()
                ),
            ));
        }
        for (k, v) in &self.metadata {
            validate_name("metadata key", k)?;
            if v.len() > MAX_METADATA_VALUE_LEN {
                return Err(OrchestrateError::invalid(
                    "metadata value",
                    format!(
                        "value of {k:?} is {} bytes, more than {MAX_METADATA_VALUE_LEN}",
                        v.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Parses and checks an endpoint URL: absolute, with a host, no credentials.
pub fn parse_endpoint(s: &str) -> Result<Url, OrchestrateError> {
    let url = Url::parse(s).map_err(|e| {
        OrchestrateError::invalid(
            "endpoint URL",
            format!(
                "{:?} is not an absolute URL: {e}",
                s.chars().take(64).collect::<String>()
            ),
        )
    })?;
    check_endpoint(&url)?;
    Ok(url)
}

fn check_endpoint(url: &Url) -> Result<(), OrchestrateError> {
    if url.host_str().is_none_or(str::is_empty) {
        return Err(OrchestrateError::invalid(
            "endpoint URL",
            format!("{} has no host", url.scheme()),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Credentials would be stored in plain text and shown to every reader.
        return Err(OrchestrateError::invalid(
            "endpoint URL",
            "must not carry a user name or password",
        ));
    }
    Ok(())
}

/// A registered instance: its spec plus what the registry observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Instance {
    /// What was registered.
    pub spec: InstanceSpec,
    /// The current aggregate health (new instances start critical).
    pub status: HealthStatus,
    /// The last check's output (an HTTP status line, an error), for humans.
    pub status_output: String,
    /// When it was registered.
    pub registered_at: DateTime<Utc>,
    /// When it last heartbeat (or registered).
    pub last_heartbeat: DateTime<Utc>,
    /// Since when it has been in its current status.
    pub status_since: DateTime<Utc>,
    /// Since when it has been draining ([`RegistryStore::drain`](super::RegistryStore::drain)):
    /// it takes no new picks and is not discovered, whatever its health, until it is
    /// deregistered.
    #[serde(default)]
    pub draining_since: Option<DateTime<Utc>>,
    /// Why it is in maintenance ([`RegistryStore::set_maintenance`](super::RegistryStore::set_maintenance)):
    /// out of rotation (no picks, not discovered) until it is put back; its checks go on.
    #[serde(default)]
    pub maintenance: Option<String>,
    /// Since when it has been in maintenance.
    #[serde(default)]
    pub maintenance_since: Option<DateTime<Utc>>,
}

impl Instance {
    /// What identifies it: its scope, service and id.
    pub fn key(&self) -> InstanceKey {
        self.spec.key()
    }

    /// Whether it takes new picks: healthy and [in rotation](Self::in_rotation).
    pub fn takes_traffic(&self) -> bool {
        self.status.is_healthy() && self.in_rotation()
    }

    /// Whether it is in rotation at all, whatever its health: not draining and not in
    /// maintenance (a balancer keeps an unhealthy instance in rotation for its panic mode).
    pub fn in_rotation(&self) -> bool {
        self.draining_since.is_none() && self.maintenance.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scope: Scope, service: &str, id: &str) -> InstanceKey {
        InstanceKey::new(
            scope,
            ServiceName::new(service).unwrap(),
            InstanceId::new(id).unwrap(),
        )
    }

    #[test]
    fn instance_keys_sort_by_service_then_scope_then_id() {
        let tenant = TenantId::new();
        let mut keys = vec![
            key(Scope::Tenant(tenant), "api", "a"),
            key(Scope::Platform, "web", "a"),
            key(Scope::Platform, "api", "b"),
            key(Scope::Platform, "api", "a"),
        ];
        keys.sort();
        assert_eq!(
            keys,
            [
                key(Scope::Platform, "api", "a"),
                key(Scope::Platform, "api", "b"),
                key(Scope::Tenant(tenant), "api", "a"),
                key(Scope::Platform, "web", "a"),
            ]
        );
    }

    #[test]
    fn instance_key_shows_and_round_trips() {
        let tenant = TenantId::new();
        let k = key(Scope::Tenant(tenant), "billing", "billing-1");
        assert_eq!(k.to_string(), format!("tenant:{tenant}/billing/billing-1"));
        assert_eq!(k.scope(), Scope::Tenant(tenant));
        assert_eq!(k.service().as_str(), "billing");
        assert_eq!(k.id().as_str(), "billing-1");
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(serde_json::from_str::<InstanceKey>(&json).unwrap(), k);
        // Invalid parts are refused on the way in, as everywhere in the model.
        let bad = json.replace("billing-1", "no spaces");
        assert!(serde_json::from_str::<InstanceKey>(&bad).is_err());
        let spec = InstanceSpec::new(
            Scope::Tenant(tenant),
            ServiceName::new("billing").unwrap(),
            InstanceId::new("billing-1").unwrap(),
            "http://127.0.0.1:1",
        )
        .unwrap();
        assert_eq!(spec.key(), k);
        let (scope, service, id) = k.into_parts();
        assert_eq!((scope, service, id), (spec.scope, spec.service, spec.id));
    }
}
