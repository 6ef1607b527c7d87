//! [`Registry`]: the tenancy-checked front of a [`RegistryStore`].

use super::model::{HealthStatus, Instance, InstanceKey, InstanceSpec, Scope, ServiceName};
use super::policy::{ServicePolicy, TrafficPolicy};
use super::store::{Query, RegistryStore, RegistryWatch, Visibility};
use crate::error::OrchestrateError;
use ate_core::{CoreError, Permission, Principal};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// Register, deregister, heartbeat, drain and set the status of instances, and set traffic
/// policies, in the principal's tenant scope.
pub const REGISTRY_WRITE: Permission = Permission::from_static("registry:write");
/// Read (get, discover, list, watch) the principal's tenant scope and the platform scope.
/// [`REGISTRY_WRITE`] implies it.
pub const REGISTRY_READ: Permission = Permission::from_static("registry:read");

/// The registry as hosts use it: every operation takes the calling [`Principal`].
///
/// Rules:
///
/// * **Writes** (register, deregister, heartbeat, set status) in a tenant scope need
///   [`REGISTRY_WRITE`] in that tenant; in the platform scope, a platform administrator.
///   A tenant principal writing elsewhere gets `PermissionDenied`.
/// * **Reads** by a tenant principal need [`REGISTRY_READ`] (or [`REGISTRY_WRITE`]) and see
///   its own tenant scope plus the platform scope, never another tenant's: reading another
///   tenant's instance is `NotFound`, exactly like an instance that does not exist, so
///   callers cannot probe for other tenants' instances. Discovering, listing or watching
///   with a [`Visibility`] beyond their own is `PermissionDenied`.
/// * A platform administrator may do everything, including [`Visibility::All`] and
///   [`Registry::deregister_critical`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use ate_core::{Principal, TenantId};
/// use ate_orchestrate::registry::*;
/// use std::sync::Arc;
///
/// let registry = Registry::new(Arc::new(MemoryRegistry::new()));
/// let tenant = TenantId::new();
/// let ops = Principal::new(tenant, "service:deployer")?.permission(REGISTRY_WRITE);
/// let billing = ServiceName::new("billing")?;
/// let spec = InstanceSpec::new(
///     Scope::Tenant(tenant),
///     billing.clone(),
///     InstanceId::new("billing-1")?,
///     "http://127.0.0.1:8080",
/// )?;
/// let instance = registry.register(&ops, spec).await?;
/// assert_eq!(instance.status, HealthStatus::Critical); // not discovered until passing
/// registry
///     .set_status(&ops, &instance.key(), HealthStatus::Passing, "ok")
///     .await?;
/// let found = registry
///     .discover(&ops, &Query::new(Visibility::Tenant(tenant)).service(billing))
///     .await?;
/// assert_eq!(found.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Registry {
    store: Arc<dyn RegistryStore>,
}

impl Registry {
    /// A registry over `store`.
    pub fn new(store: Arc<dyn RegistryStore>) -> Self {
        Registry { store }
    }

    /// The store underneath, for trusted host code (a health scheduler): it checks no
    /// principal.
    pub fn store(&self) -> &Arc<dyn RegistryStore> {
        &self.store
    }

    /// Checks that `principal` may read the instances in `visibility`: the rule
    /// [`discover`](Self::discover), [`services`](Self::services) and
    /// [`watch`](Self::watch) apply (a tenant principal with [`REGISTRY_READ`] or
    /// [`REGISTRY_WRITE`] may read its own tenant and the platform; a platform administrator
    /// anything).
    ///
    /// For host code that reads through [`store`](Self::store) on a principal's behalf and
    /// filters to that principal's view itself (the
    /// [`ServiceHub`](crate::hub::ServiceHub)'s balancers read every scope of a service
    /// once, for outlier ejection's cap, and keep the caller's share). Errors:
    /// `PermissionDenied`.
    pub fn authorize_read(
        &self,
        principal: &Principal,
        visibility: &Visibility,
    ) -> Result<(), OrchestrateError> {
        authorize_visibility(principal, visibility)
    }

    /// Registers `spec` ([`RegistryStore::register`]) after checking the principal may
    /// write in `spec.scope`.
    pub async fn register(
        &self,
        principal: &Principal,
        spec: InstanceSpec,
    ) -> Result<Instance, OrchestrateError> {
        authorize_write(principal, spec.scope)?;
        self.store.register(spec).await
    }

    /// Deregisters an instance ([`RegistryStore::deregister`]).
    pub async fn deregister(
        &self,
        principal: &Principal,
        key: &InstanceKey,
    ) -> Result<Instance, OrchestrateError> {
        authorize_write(principal, key.scope())?;
        self.store.deregister(key).await
    }

    /// Records a heartbeat ([`RegistryStore::heartbeat`]).
    pub async fn heartbeat(
        &self,
        principal: &Principal,
        key: &InstanceKey,
    ) -> Result<Instance, OrchestrateError> {
        authorize_write(principal, key.scope())?;
        self.store.heartbeat(key).await
    }

    /// Sets an instance's status ([`RegistryStore::set_status`]).
    pub async fn set_status(
        &self,
        principal: &Principal,
        key: &InstanceKey,
        status: HealthStatus,
        output: &str,
    ) -> Result<Instance, OrchestrateError> {
        authorize_write(principal, key.scope())?;
        self.store.set_status(key, status, output).await
    }

    /// Puts an instance into maintenance, or back ([`RegistryStore::set_maintenance`]).
    pub async fn set_maintenance(
        &self,
        principal: &Principal,
        key: &InstanceKey,
        reason: Option<&str>,
    ) -> Result<Instance, OrchestrateError> {
        authorize_write(principal, key.scope())?;
        self.store.set_maintenance(key, reason).await
    }

    /// Marks an instance as draining ([`RegistryStore::drain`]).
    pub async fn drain(
        &self,
        principal: &Principal,
        key: &InstanceKey,
    ) -> Result<Instance, OrchestrateError> {
        authorize_write(principal, key.scope())?;
        self.store.drain(key).await
    }

    /// Sets or clears a service's traffic policy in `scope` ([`RegistryStore::set_policy`]);
    /// writing rules as for instances in that scope.
    pub async fn set_policy(
        &self,
        principal: &Principal,
        scope: Scope,
        service: &ServiceName,
        policy: Option<TrafficPolicy>,
    ) -> Result<Option<ServicePolicy>, OrchestrateError> {
        authorize_write(principal, scope)?;
        self.store.set_policy(scope, service, policy).await
    }

    /// A service's traffic policy in `scope` ([`RegistryStore::policy`]). A tenant
    /// principal may read its own tenant's and the platform's; asking for another tenant's
    /// scope is `PermissionDenied` whether or not it has a policy.
    pub async fn policy(
        &self,
        principal: &Principal,
        scope: Scope,
        service: &ServiceName,
    ) -> Result<Option<ServicePolicy>, OrchestrateError> {
        let own = readable(principal)?;
        if !own.includes(&scope) {
            return Err(OrchestrateError::Core(CoreError::PermissionDenied(
                format!(
                    "{} may only read its own tenant's and the platform's traffic policies",
                    principal.subject()
                ),
            )));
        }
        self.store.policy(scope, service).await
    }

    /// Reads one instance ([`RegistryStore::get`]); another tenant's is `NotFound`.
    pub async fn get(
        &self,
        principal: &Principal,
        key: &InstanceKey,
    ) -> Result<Instance, OrchestrateError> {
        let own = readable(principal)?;
        if !own.includes(&key.scope()) {
            return Err(OrchestrateError::not_found("instance", key.to_string()));
        }
        self.store.get(key).await
    }

    /// Discovers instances ([`RegistryStore::discover`]) within `query.visibility`, which a
    /// tenant principal may set to its own tenant or the platform.
    pub async fn discover(
        &self,
        principal: &Principal,
        query: &Query,
    ) -> Result<Vec<Instance>, OrchestrateError> {
        authorize_visibility(principal, &query.visibility)?;
        self.store.discover(query).await
    }

    /// The services visible in `visibility` ([`RegistryStore::services`]).
    pub async fn services(
        &self,
        principal: &Principal,
        visibility: &Visibility,
    ) -> Result<Vec<ServiceName>, OrchestrateError> {
        authorize_visibility(principal, visibility)?;
        self.store.services(visibility).await
    }

    /// Reaps instances critical for at least `older_than`
    /// ([`RegistryStore::deregister_critical`]): a platform administrator's job, since it
    /// spans every scope.
    pub async fn deregister_critical(
        &self,
        principal: &Principal,
        older_than: Duration,
    ) -> Result<Vec<Instance>, OrchestrateError> {
        principal
            .require_platform_admin("reaping critical registry instances")
            .map_err(OrchestrateError::Core)?;
        self.store.deregister_critical(older_than).await
    }

    /// Watches changes ([`RegistryStore::watch`]) to instances in `visibility`; events about
    /// other scopes are filtered out (a [`Lagged`](super::RegistryEvent::Lagged) notice
    /// passes through).
    pub async fn watch(
        &self,
        principal: &Principal,
        visibility: Visibility,
    ) -> Result<RegistryWatch, OrchestrateError> {
        authorize_visibility(principal, &visibility)?;
        let events = self.store.watch().await?;
        Ok(events
            .filter(move |event| {
                let keep = event.scope().is_none_or(|s| visibility.includes(&s));
                std::future::ready(keep)
            })
            .boxed())
    }
}

fn authorize_write(principal: &Principal, scope: Scope) -> Result<(), OrchestrateError> {
    let checked = match scope {
        Scope::Platform => {
            principal.require_platform_admin("writing to the registry's platform scope")
        }
        Scope::Tenant(t) => principal.require(t, &REGISTRY_WRITE),
    };
    checked.map_err(OrchestrateError::Core)
}

/// What the principal may read, after checking it may read at all.
fn readable(principal: &Principal) -> Result<Visibility, OrchestrateError> {
    if principal.is_platform_admin() {
        return Ok(Visibility::All);
    }
    let Some(tenant) = principal.tenant() else {
        // Only platform administrators have no tenant; kept total rather than panicking.
        return Err(OrchestrateError::Core(CoreError::PermissionDenied(
            format!("{} belongs to no tenant", principal.subject()),
        )));
    };
    if !principal.has_permission(&REGISTRY_READ) && !principal.has_permission(&REGISTRY_WRITE) {
        return Err(OrchestrateError::Core(CoreError::PermissionDenied(
            format!(
                "{} lacks permission {REGISTRY_READ} in tenant {tenant}",
                principal.subject()
            ),
        )));
    }
    Ok(Visibility::Tenant(tenant))
}

fn authorize_visibility(
    principal: &Principal,
    wanted: &Visibility,
) -> Result<(), OrchestrateError> {
    let own = readable(principal)?;
    let allowed = match (own, wanted) {
        (Visibility::All, _) | (_, Visibility::Platform) => true,
        (Visibility::Tenant(own), Visibility::Tenant(t)) => own == *t,
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(OrchestrateError::Core(CoreError::PermissionDenied(
            format!(
                "{} may only read its own tenant's and the platform's instances",
                principal.subject()
            ),
        )))
    }
}
