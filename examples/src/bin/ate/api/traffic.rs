//! `/api/services/{service}/policy` and `…/instances/{id}/drain`: the seeds' blue-green,
//! canary and rolling deployments, set at run time. Policies are stored in the registry,
//! so every host's gateway applies the same one (within its registry watch's poll
//! interval); the balancing itself is ate-orchestrate's.

use super::problem::ApiError;
use super::services::{InstanceView, ScopeParam, key, scope_of};
use super::{Body, Path, Query};
use crate::host::Host;
use ate_core::Principal;
use ate_orchestrate::hub::DrainOptions;
use ate_orchestrate::registry::{
    Scope, Selector, ServiceName, ServicePolicy, TrafficGroup, TrafficPolicy,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<Host> {
    OpenApiRouter::new()
        .routes(routes!(get_policy, set_policy, clear_policy))
        .routes(routes!(drain))
        .routes(routes!(maintenance))
}

/// Maintenance on or off.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MaintenanceRequest {
    /// Why the instance is out of rotation (not empty); `null` puts it back.
    reason: Option<String>,
}

/// Puts an instance into maintenance (out of rotation on every host, whatever its health;
/// its checks go on) with a reason, or back with `{"reason": null}`. Unlike a drain, it is
/// not deregistered and can come back.
#[utoipa::path(put, path = "/api/services/{service}/instances/{id}/maintenance", tag = "services",
    params(("service" = String, Path), ("id" = String, Path), ScopeParam), request_body = MaintenanceRequest,
    security(("bearer" = [])),
    responses((status = 200, body = InstanceView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn maintenance(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path((service, id)): Path<(String, String)>,
    Query(s): Query<ScopeParam>,
    Body(r): Body<MaintenanceRequest>,
) -> Result<Json<InstanceView>, ApiError> {
    let key = key(&p, s.scope.as_deref(), &service, &id)?;
    let instance = host
        .hub
        .set_maintenance(&p, &key, r.reason.as_deref())
        .await?;
    Ok(Json(InstanceView::from(&instance)))
}

/// A set of instances: those with `tag`, those whose `version` metadata is `version`, or
/// (both given) those with both.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SelectorBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
}

/// One group of a split: `percent` of the picks go to the instances `selector` names.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupBody {
    selector: SelectorBody,
    /// 0 to 100; the groups add up to 100.
    percent: u16,
}

/// A traffic policy: `split` (canary: percentages per group, a group with nothing
/// available passes its share on) or `blue_green` (every pick to `active`, never back to
/// the others).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum PolicyBody {
    Split { groups: Vec<GroupBody> },
    BlueGreen { active: SelectorBody },
}

impl From<SelectorBody> for Selector {
    fn from(s: SelectorBody) -> Self {
        Selector::new(s.tag, s.version)
    }
}

impl From<&Selector> for SelectorBody {
    fn from(s: &Selector) -> Self {
        SelectorBody {
            tag: s.tag.clone(),
            version: s.version.clone(),
        }
    }
}

impl TryFrom<PolicyBody> for TrafficPolicy {
    type Error = ApiError;

    fn try_from(p: PolicyBody) -> Result<Self, ApiError> {
        Ok(match p {
            PolicyBody::Split { groups } => {
                let mut out = Vec::with_capacity(groups.len());
                for (i, g) in groups.into_iter().enumerate() {
                    let percent = u8::try_from(g.percent)
                        .ok()
                        .filter(|p| *p <= 100)
                        .ok_or_else(|| {
                            ApiError::invalid(format!(
                                "groups[{i}].percent is {}; use 0 to 100",
                                g.percent
                            ))
                        })?;
                    out.push(TrafficGroup::new(g.selector.into(), percent));
                }
                TrafficPolicy::split(out)
            }
            PolicyBody::BlueGreen { active } => TrafficPolicy::blue_green(active.into()),
        })
    }
}

/// The stored policy of a service in one scope.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PolicyView {
    service: String,
    /// `platform`, or the tenant's id.
    scope: String,
    policy: PolicyBody,
    updated_at: DateTime<Utc>,
}

fn view(stored: &ServicePolicy) -> Result<PolicyView, ApiError> {
    let policy = match &stored.policy {
        TrafficPolicy::Split { groups } => PolicyBody::Split {
            groups: groups
                .iter()
                .map(|g| GroupBody {
                    selector: (&g.selector).into(),
                    percent: u16::from(g.percent),
                })
                .collect(),
        },
        TrafficPolicy::BlueGreen { active } => PolicyBody::BlueGreen {
            active: active.into(),
        },
        other => return Err(ApiError::internal(format!("unknown policy {other:?}"))),
    };
    Ok(PolicyView {
        service: stored.service.as_str().to_owned(),
        scope: match stored.scope {
            Scope::Platform => "platform".to_owned(),
            Scope::Tenant(t) => t.to_string(),
        },
        policy,
        updated_at: stored.updated_at,
    })
}

fn target(
    p: &Principal,
    scope: Option<&str>,
    service: &str,
) -> Result<(Scope, ServiceName), ApiError> {
    Ok((scope_of(p, scope)?, ServiceName::new(service)?))
}

/// The traffic policy of a service in a scope (the caller's tenant by default).
#[utoipa::path(get, path = "/api/services/{service}/policy", tag = "services",
    params(("service" = String, Path), ScopeParam),
    security(("bearer" = [])),
    responses((status = 200, body = PolicyView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn get_policy(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(service): Path<String>,
    Query(s): Query<ScopeParam>,
) -> Result<Json<PolicyView>, ApiError> {
    let (scope, name) = target(&p, s.scope.as_deref(), &service)?;
    match host.hub.policy(&p, scope, &name).await? {
        Some(stored) => Ok(Json(view(&stored)?)),
        None => Err(ApiError::not_found(&format!("a traffic policy for {name}"))),
    }
}

/// Sets the traffic policy of a service in a scope; every host follows it.
#[utoipa::path(put, path = "/api/services/{service}/policy", tag = "services",
    params(("service" = String, Path), ScopeParam), request_body = PolicyBody,
    security(("bearer" = [])),
    responses((status = 200, body = PolicyView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn set_policy(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(service): Path<String>,
    Query(s): Query<ScopeParam>,
    Body(body): Body<PolicyBody>,
) -> Result<Json<PolicyView>, ApiError> {
    let (scope, name) = target(&p, s.scope.as_deref(), &service)?;
    let stored = host
        .hub
        .set_policy(&p, scope, &name, Some(body.try_into()?))
        .await?
        .ok_or_else(|| ApiError::internal("a policy just set was not returned"))?;
    Ok(Json(view(&stored)?))
}

/// Clears the traffic policy of a service in a scope (every healthy instance takes traffic
/// again). Clearing an absent policy is not an error.
#[utoipa::path(delete, path = "/api/services/{service}/policy", tag = "services",
    params(("service" = String, Path), ScopeParam),
    security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn clear_policy(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(service): Path<String>,
    Query(s): Query<ScopeParam>,
) -> Result<StatusCode, ApiError> {
    let (scope, name) = target(&p, s.scope.as_deref(), &service)?;
    host.hub.set_policy(&p, scope, &name, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How a drain waits before the instance is deregistered.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DrainQuery {
    /// `platform` or a tenant id (default: the caller's tenant, or the platform).
    scope: Option<String>,
    /// Wait at least this long, so every host stops picking it (default 1).
    settle_secs: Option<u64>,
    /// Wait at most this long for requests in flight through this host (default 30, at most
    /// 3600).
    timeout_secs: Option<u64>,
}

/// Drains an instance: from now on it takes no new traffic on any host; once this host's
/// requests to it have finished, it is deregistered. Answers at once with the draining
/// instance; the deregistration follows in the background.
#[utoipa::path(post, path = "/api/services/{service}/instances/{id}/drain", tag = "services",
    params(("service" = String, Path), ("id" = String, Path), DrainQuery),
    security(("bearer" = [])),
    responses((status = 202, body = InstanceView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn drain(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path((service, id)): Path<(String, String)>,
    Query(q): Query<DrainQuery>,
) -> Result<(StatusCode, Json<InstanceView>), ApiError> {
    let key = key(&p, q.scope.as_deref(), &service, &id)?;
    let timeout = q.timeout_secs.unwrap_or(30);
    if timeout > 3600 || q.settle_secs.unwrap_or(1) > 3600 {
        return Err(ApiError::invalid(
            "settle_secs and timeout_secs must be at most 3600",
        ));
    }
    // Out of this host's picks before the answer; the rest (waiting, deregistering) follows.
    let draining = host.hub.start_drain(&p, &key).await?;
    let options = DrainOptions::new()
        .settle(Duration::from_secs(q.settle_secs.unwrap_or(1)))
        .timeout(Duration::from_secs(timeout));
    let hub = host.hub.clone();
    tokio::spawn(async move {
        if let Err(e) = hub.drain(&p, &key, options).await {
            tracing::warn!(instance = %key, error = %e, "drain did not finish");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(InstanceView::from(&draining))))
}
