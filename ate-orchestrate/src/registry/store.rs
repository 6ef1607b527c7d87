//! The store trait every registry backend implements: [`RegistryStore`], with its
//! [`Query`], [`Visibility`] and the [`RegistryEvent`]s a [`watch`](RegistryStore::watch)
//! delivers.

use super::model::{
    Environment, HealthStatus, Instance, InstanceKey, InstanceSpec, Scope, ServiceName,
    validate_name,
};
use super::policy::{ServicePolicy, TrafficPolicy};
use crate::error::OrchestrateError;
use async_trait::async_trait;
use ate_core::TenantId;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;

/// Longest status output a store keeps (bytes); longer output is cut on a character
/// boundary. Matches the health checks' own limit.
pub const MAX_STATUS_OUTPUT_LEN: usize = 4096;

/// The stream [`RegistryStore::watch`] returns. It never ends while the store lives;
/// dropping it stops the watch (and, for SQL stores, its polling).
pub type RegistryWatch = BoxStream<'static, RegistryEvent>;

/// Which scopes a read sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Visibility {
    /// Only the platform scope.
    Platform,
    /// One tenant's scope plus the platform scope: what that tenant's callers see.
    Tenant(TenantId),
    /// Every scope (trusted host code such as the health scheduler; the [`Registry`]
    /// facade allows it only to platform administrators).
    ///
    /// [`Registry`]: super::Registry
    All,
}

impl Visibility {
    /// Whether an instance in `scope` is visible.
    pub fn includes(&self, scope: &Scope) -> bool {
        match (self, scope) {
            (Visibility::All, _) | (_, Scope::Platform) => true,
            (Visibility::Tenant(t), Scope::Tenant(s)) => t == s,
            (Visibility::Platform, Scope::Tenant(_)) => false,
        }
    }
}

/// What [`RegistryStore::discover`] looks for. Every filter that is set must match.
///
/// ```
/// use ate_orchestrate::registry::{Environment, Query, ServiceName, Visibility};
///
/// let query = Query::new(Visibility::Platform)
///     .service(ServiceName::new("billing")?)
///     .tag("eu-west")
///     .environment(Environment::Staging);
/// assert!(!query.include_unhealthy);
/// # Ok::<(), ate_orchestrate::OrchestrateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Query {
    /// The scopes searched.
    pub visibility: Visibility,
    /// Only this service (`None`: every service).
    pub service: Option<ServiceName>,
    /// Only instances offering this capability.
    pub capability: Option<String>,
    /// Only instances carrying every one of these tags.
    pub tags: BTreeSet<String>,
    /// Only instances of this environment.
    pub environment: Option<Environment>,
    /// Also return critical and draining instances (default `false`: passing and warning
    /// instances that are not draining).
    pub include_unhealthy: bool,
}

impl Query {
    /// Every healthy instance visible in `visibility`.
    pub fn new(visibility: Visibility) -> Self {
        Query {
            visibility,
            service: None,
            capability: None,
            tags: BTreeSet::new(),
            environment: None,
            include_unhealthy: false,
        }
    }

    /// Restricts to one service.
    pub fn service(mut self, service: ServiceName) -> Self {
        self.service = Some(service);
        self
    }

    /// Requires a capability.
    pub fn capability(mut self, capability: impl Into<String>) -> Self {
        self.capability = Some(capability.into());
        self
    }

    /// Requires a tag (several calls: all of them).
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.insert(tag.into());
        self
    }

    /// Restricts to one environment.
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = Some(environment);
        self
    }

    /// Whether critical and draining instances are returned too.
    pub fn include_unhealthy(mut self, include: bool) -> Self {
        self.include_unhealthy = include;
        self
    }

    /// Checks the capability and tags follow the naming rules of
    /// [`InstanceSpec::validate`] (a filter no instance could match is a caller's mistake).
    pub fn validate(&self) -> Result<(), OrchestrateError> {
        if let Some(c) = &self.capability {
            validate_name("capability", c)?;
        }
        for t in &self.tags {
            validate_name("tag", t)?;
        }
        Ok(())
    }

    /// Whether `instance` satisfies every filter (visibility and health included).
    pub fn matches(&self, instance: &Instance) -> bool {
        let spec = &instance.spec;
        self.visibility.includes(&spec.scope)
            && self.service.as_ref().is_none_or(|s| *s == spec.service)
            && self
                .capability
                .as_ref()
                .is_none_or(|c| spec.capabilities.contains(c))
            && self.tags.is_subset(&spec.tags)
            && self.environment.is_none_or(|e| e == spec.environment)
            && (self.include_unhealthy || instance.takes_traffic())
    }
}

/// Why an instance left the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeregisterReason {
    /// [`RegistryStore::deregister`] was called.
    Requested,
    /// [`RegistryStore::deregister_critical`] reaped it after it stayed critical too long.
    CriticalTooLong,
}

/// A change to the registry, as delivered by [`RegistryStore::watch`]. Heartbeats are not
/// changes (they would flood every watcher); status output changes without a status change
/// are not either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RegistryEvent {
    /// An instance was registered (it starts critical).
    Registered {
        /// The instance as stored.
        instance: Instance,
    },
    /// An instance was removed.
    Deregistered {
        /// The instance as it was when removed.
        instance: Instance,
        /// Why.
        reason: DeregisterReason,
    },
    /// An instance's health status changed.
    StatusChanged {
        /// The instance after the change.
        instance: Instance,
        /// The previous status.
        from: HealthStatus,
        /// The new status (also `instance.status`).
        to: HealthStatus,
    },
    /// An instance started draining ([`RegistryStore::drain`]): it takes no new picks.
    Draining {
        /// The instance after the change.
        instance: Instance,
    },
    /// An instance went into maintenance or came back
    /// ([`RegistryStore::set_maintenance`]).
    Maintenance {
        /// The instance after the change.
        instance: Instance,
    },
    /// A service's traffic policy in one scope was set or cleared
    /// ([`RegistryStore::set_policy`]).
    PolicyChanged {
        /// The scope.
        scope: Scope,
        /// The service.
        service: ServiceName,
        /// The new policy (`None`: cleared).
        policy: Option<TrafficPolicy>,
    },
    /// The watcher fell behind and `missed` events were dropped (a slow consumer, or an
    /// SQL change log pruned past the watcher's position). Re-read the registry with
    /// [`RegistryStore::discover`] to resynchronize.
    Lagged {
        /// How many events were lost.
        missed: u64,
    },
}

impl RegistryEvent {
    /// The instance the event is about (`None` for [`RegistryEvent::Lagged`]).
    pub fn instance(&self) -> Option<&Instance> {
        match self {
            RegistryEvent::Registered { instance }
            | RegistryEvent::Deregistered { instance, .. }
            | RegistryEvent::StatusChanged { instance, .. }
            | RegistryEvent::Draining { instance }
            | RegistryEvent::Maintenance { instance } => Some(instance),
            RegistryEvent::PolicyChanged { .. } | RegistryEvent::Lagged { .. } => None,
        }
    }

    /// The scope the event is about (`None` for [`RegistryEvent::Lagged`]).
    pub fn scope(&self) -> Option<Scope> {
        match self {
            RegistryEvent::PolicyChanged { scope, .. } => Some(*scope),
            other => other.instance().map(|i| i.spec.scope),
        }
    }

    /// The service the event is about (`None` for [`RegistryEvent::Lagged`]).
    pub fn service(&self) -> Option<&ServiceName> {
        match self {
            RegistryEvent::PolicyChanged { service, .. } => Some(service),
            other => other.instance().map(|i| &i.spec.service),
        }
    }
}

/// A registry backend: where instances live. Hosts normally go through the
/// [`Registry`](super::Registry) facade, which adds tenancy checks; the store itself trusts
/// its caller (a health scheduler, the facade).
///
/// Every backend passes the same conformance suite (`tests/src/registry.rs`). Times come
/// from the store's injected [`Clock`](ate_core::Clock), truncated to microseconds.
/// Every write either happens completely (with its watch event) or not at all.
#[async_trait]
pub trait RegistryStore: Send + Sync + std::fmt::Debug {
    /// Registers an instance.
    ///
    /// Behavior: validates `spec` ([`InstanceSpec::validate`]; `InvalidInput`, nothing
    /// written). The new instance starts [`HealthStatus::Critical`] with empty output and
    /// `registered_at = last_heartbeat = status_since = now`, so it is not discovered until
    /// a check (or [`set_status`](Self::set_status)) marks it passing or warning. If its
    /// [`key`](InstanceSpec::key) is taken, fails with `AlreadyExists` and changes nothing (of
    /// concurrent registrations of one key exactly one wins). Emits
    /// [`RegistryEvent::Registered`].
    async fn register(&self, spec: InstanceSpec) -> Result<Instance, OrchestrateError>;

    /// Removes an instance and returns it as it was.
    ///
    /// Behavior: `NotFound` if absent. Emits [`RegistryEvent::Deregistered`] with
    /// [`DeregisterReason::Requested`].
    async fn deregister(&self, key: &InstanceKey) -> Result<Instance, OrchestrateError>;

    /// Records that the instance is alive: sets `last_heartbeat` to now.
    ///
    /// Behavior: `NotFound` if absent. Does not change the status (a TTL check decides
    /// that from `last_heartbeat`) and emits no event.
    async fn heartbeat(&self, key: &InstanceKey) -> Result<Instance, OrchestrateError>;

    /// Sets the instance's health status and output.
    ///
    /// Behavior: `NotFound` if absent. `output` is stored without NUL characters and cut to
    /// [`MAX_STATUS_OUTPUT_LEN`] bytes. `status_since` becomes now only when the status
    /// differs from the stored one; then [`RegistryEvent::StatusChanged`] is emitted. Setting
    /// the same status again only updates the output and emits nothing.
    async fn set_status(
        &self,
        key: &InstanceKey,
        status: HealthStatus,
        output: &str,
    ) -> Result<Instance, OrchestrateError>;

    /// Reads one instance, whatever its status.
    ///
    /// Behavior: `NotFound` if absent.
    async fn get(&self, key: &InstanceKey) -> Result<Instance, OrchestrateError>;

    /// The instances matching `query` ([`Query::matches`]), sorted by service, scope
    /// (platform first) and id.
    ///
    /// Behavior: `InvalidInput` for a malformed capability or tag filter. An unknown
    /// service is not an error: the result is empty (as in Consul), exactly as for a known
    /// service with no healthy instance.
    async fn discover(&self, query: &Query) -> Result<Vec<Instance>, OrchestrateError>;

    /// The names of the services with at least one instance (of any status) in a scope
    /// `visibility` includes, sorted and without duplicates.
    async fn services(&self, visibility: &Visibility)
    -> Result<Vec<ServiceName>, OrchestrateError>;

    /// Removes every instance (in every scope) that has been critical for at least
    /// `older_than` (`now - status_since >= older_than`) and returns them, sorted like
    /// [`discover`](Self::discover).
    ///
    /// Behavior: emits one [`RegistryEvent::Deregistered`] with
    /// [`DeregisterReason::CriticalTooLong`] per removed instance. Concurrent callers
    /// (several hosts on one SQL registry) never both return the same instance.
    async fn deregister_critical(
        &self,
        older_than: Duration,
    ) -> Result<Vec<Instance>, OrchestrateError>;

    /// A stream of every change made after this call returns, in the order the changes
    /// were made, for every scope (filter with [`Visibility::includes`] or use the facade's
    /// watch).
    ///
    /// Behavior: SQL stores also deliver changes made by other processes sharing the
    /// database, by polling a change log at their poll interval. A watcher that falls
    /// behind receives [`RegistryEvent::Lagged`] instead of the events it missed.
    async fn watch(&self) -> Result<RegistryWatch, OrchestrateError>;

    /// Marks the instance as draining: from now on it is not discovered (unless the query
    /// includes unhealthy instances) and balancers give it no new picks, whatever its health
    /// checks say, until it is deregistered. Requests already in flight are not affected.
    ///
    /// Behavior: `NotFound` if absent. Idempotent: draining an instance that already drains
    /// keeps its first `draining_since` and emits nothing; otherwise emits
    /// [`RegistryEvent::Draining`].
    async fn drain(&self, key: &InstanceKey) -> Result<Instance, OrchestrateError>;

    /// Puts the instance into maintenance with `reason` (at most
    /// [`MAX_STATUS_OUTPUT_LEN`](super::MAX_STATUS_OUTPUT_LEN) bytes kept), or back into
    /// rotation with `None`. In maintenance it takes no picks and is not discovered (unless
    /// the query includes unhealthy instances), whatever its health; its checks go on and its
    /// status keeps changing.
    ///
    /// Behavior: `NotFound` if absent; `InvalidInput` for an empty reason. Setting the same
    /// state again changes nothing and emits nothing (a new reason while in maintenance is
    /// kept, with the first `maintenance_since`); otherwise emits
    /// [`RegistryEvent::Maintenance`].
    async fn set_maintenance(
        &self,
        key: &InstanceKey,
        reason: Option<&str>,
    ) -> Result<Instance, OrchestrateError>;

    /// Sets (`Some`) or clears (`None`) the traffic policy of `service` in `scope`, and
    /// returns what is stored afterwards.
    ///
    /// Behavior: validates the policy ([`TrafficPolicy::validate`]; `InvalidInput`, nothing
    /// written). A service need not have instances to have a policy (set it before the
    /// canary registers). Setting the stored policy again, or clearing an absent one,
    /// changes nothing and emits nothing; otherwise emits [`RegistryEvent::PolicyChanged`].
    async fn set_policy(
        &self,
        scope: Scope,
        service: &ServiceName,
        policy: Option<TrafficPolicy>,
    ) -> Result<Option<ServicePolicy>, OrchestrateError>;

    /// The traffic policy of `service` in `scope`, if one is set.
    async fn policy(
        &self,
        scope: Scope,
        service: &ServiceName,
    ) -> Result<Option<ServicePolicy>, OrchestrateError>;
}

/// The error every backend returns for an absent instance.
pub(crate) fn not_found(key: &InstanceKey) -> OrchestrateError {
    OrchestrateError::not_found("instance", key.to_string())
}

/// A fresh instance for `spec` at `now` (critical, empty output).
pub(crate) fn new_instance(spec: InstanceSpec, now: chrono::DateTime<chrono::Utc>) -> Instance {
    Instance {
        spec,
        status: HealthStatus::Critical,
        status_output: String::new(),
        registered_at: now,
        last_heartbeat: now,
        status_since: now,
        draining_since: None,
        maintenance: None,
        maintenance_since: None,
    }
}

/// A maintenance reason as stored: `None` stays `None`; an empty one is refused; the rest
/// is cleaned like a status output.
pub(crate) fn maintenance_reason(reason: Option<&str>) -> Result<Option<String>, OrchestrateError> {
    match reason {
        None => Ok(None),
        Some(r) if r.trim().is_empty() => Err(OrchestrateError::invalid(
            "maintenance reason",
            "say why the instance is in maintenance",
        )),
        Some(r) => Ok(Some(clean_output(r.trim()))),
    }
}

/// `output` without NUL characters (PostgreSQL text cannot hold them), cut to
/// [`MAX_STATUS_OUTPUT_LEN`] bytes on a character boundary.
pub(crate) fn clean_output(output: &str) -> String {
    let mut s: String = output.chars().filter(|c| *c != '\0').collect();
    if s.len() > MAX_STATUS_OUTPUT_LEN {
        let mut end = MAX_STATUS_OUTPUT_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// `older_than` as a chrono delta (saturating: a span too long to represent reaps nothing).
pub(crate) fn critical_cutoff(
    now: chrono::DateTime<chrono::Utc>,
    older_than: Duration,
) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::TimeDelta::from_std(older_than)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
}

/// Sort order shared by every backend: service, scope, id (the order of [`InstanceKey`],
/// compared here without building keys).
pub(crate) fn sort_instances(instances: &mut [Instance]) {
    instances.sort_by(|a, b| {
        (&a.spec.service, &a.spec.scope, &a.spec.id).cmp(&(
            &b.spec.service,
            &b.spec.scope,
            &b.spec.id,
        ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_cleaned_and_cut_on_a_char_boundary() {
        assert_eq!(clean_output("a\0b"), "ab");
        let long = "é".repeat(MAX_STATUS_OUTPUT_LEN);
        let cut = clean_output(&long);
        assert!(cut.len() <= MAX_STATUS_OUTPUT_LEN && cut.len() > MAX_STATUS_OUTPUT_LEN - 2);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn visibility_rules() {
        let (a, b) = (TenantId::new(), TenantId::new());
        assert!(Visibility::Tenant(a).includes(&Scope::Tenant(a)));
        assert!(Visibility::Tenant(a).includes(&Scope::Platform));
        assert!(!Visibility::Tenant(a).includes(&Scope::Tenant(b)));
        assert!(!Visibility::Platform.includes(&Scope::Tenant(a)));
        assert!(Visibility::All.includes(&Scope::Tenant(b)));
    }

    #[test]
    fn cutoff_saturates() {
        let now = chrono::Utc::now();
        assert!(critical_cutoff(now, Duration::MAX).is_none());
        assert_eq!(
            critical_cutoff(now, Duration::from_secs(1)),
            Some(now - chrono::TimeDelta::seconds(1))
        );
    }
}
