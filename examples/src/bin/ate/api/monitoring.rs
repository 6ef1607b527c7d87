//! `/api/monitoring/alerts`: alert rules (stored in the database, so every host evaluates
//! the same ones), the alerts' current states on this host, and the alert history.
//!
//! Rules watch the platform's service metrics and instance states, which span tenants, so
//! this area is for platform administrators. The rule body is ate-orchestrate's
//! [`AlertRule`] JSON: `{"id", "name", "severity"?, "labels"?, "for_secs"?, "condition":
//! {"kind": "error_rate_above" | "latency_above" | "request_rate_below" |
//! "request_rate_above" | "instance_status" | "breaker_open" | "workflow_backlog_above",
//! …}}`.

use super::problem::ApiError;
use super::{Body, Path, Query};
use crate::host::Host;
use ate_core::Principal;
use ate_orchestrate::alerts::{
    AlertEventState, AlertHistory, AlertQuery, AlertRecord, AlertRule, AlertState, StoredRule,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<Host> {
    OpenApiRouter::new()
        .routes(routes!(alerts))
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(get_rule, replace_rule, delete_rule))
        .routes(routes!(history))
}

fn platform_only(p: &Principal) -> Result<(), ApiError> {
    p.require_platform_admin("monitoring")?;
    Ok(())
}

/// A stored rule.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RuleView {
    /// The rule as given (`id`, `name`, `severity`, `labels`, `for_secs`, `condition`).
    #[schema(value_type = Object)]
    rule: Value,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Grows with every change.
    revision: i64,
}

impl From<&StoredRule> for RuleView {
    fn from(s: &StoredRule) -> Self {
        RuleView {
            rule: serde_json::to_value(&s.rule).unwrap_or(Value::Null),
            created_by: s.created_by.clone(),
            created_at: s.created_at,
            updated_at: s.updated_at,
            revision: s.revision,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RuleList {
    /// By id.
    items: Vec<RuleView>,
}

/// Refuses a rule this host's engine could not evaluate (a window longer than the metrics
/// it keeps), before it is stored.
fn check_window(host: &Host, rule: &AlertRule) -> Result<(), ApiError> {
    let max = host.hub.recorder().max_window();
    match rule.condition.window() {
        Some(w) if w > max => Err(ApiError::invalid(format!(
            "condition.window_secs is {}; this host keeps metrics for {} s at most",
            w.as_secs(),
            max.as_secs()
        ))),
        _ => Ok(()),
    }
}

/// The alert rules, by id.
#[utoipa::path(get, path = "/api/monitoring/alerts/rules", tag = "monitoring",
    security(("bearer" = [])),
    responses((status = 200, body = RuleList), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn list_rules(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
) -> Result<Json<RuleList>, ApiError> {
    platform_only(&p)?;
    let all = host.alert_rules.list(&p).await?;
    Ok(Json(RuleList {
        items: all.iter().map(RuleView::from).collect(),
    }))
}

/// Creates an alert rule; every host evaluates it from its next sync (this one at once).
#[utoipa::path(post, path = "/api/monitoring/alerts/rules", tag = "monitoring",
    request_body(content = Object, description = "An AlertRule: id, name, severity?, labels?, for_secs?, condition"),
    security(("bearer" = [])),
    responses((status = 201, body = RuleView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn create_rule(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Body(rule): Body<AlertRule>,
) -> Result<(StatusCode, Json<RuleView>), ApiError> {
    platform_only(&p)?;
    check_window(&host, &rule)?;
    let stored = host.alert_rules.create(&p, &rule).await?;
    host.rule_sync.now();
    Ok((StatusCode::CREATED, Json(RuleView::from(&stored))))
}

/// One alert rule.
#[utoipa::path(get, path = "/api/monitoring/alerts/rules/{id}", tag = "monitoring",
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = RuleView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn get_rule(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<RuleView>, ApiError> {
    platform_only(&p)?;
    Ok(Json(RuleView::from(&host.alert_rules.get(&p, &id).await?)))
}

/// Replaces an alert rule (its `id` must be the path's). A firing alert whose new condition
/// no longer holds resolves at the next evaluation.
#[utoipa::path(put, path = "/api/monitoring/alerts/rules/{id}", tag = "monitoring",
    params(("id" = String, Path)),
    request_body(content = Object, description = "An AlertRule with the path's id"),
    security(("bearer" = [])),
    responses((status = 200, body = RuleView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn replace_rule(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Body(rule): Body<AlertRule>,
) -> Result<Json<RuleView>, ApiError> {
    platform_only(&p)?;
    if rule.id != id {
        return Err(ApiError::invalid(format!(
            "the body's id {:?} is not the path's {id:?}; a rule cannot be renamed",
            rule.id
        )));
    }
    check_window(&host, &rule)?;
    let stored = host.alert_rules.replace(&p, &rule).await?;
    host.rule_sync.now();
    Ok(Json(RuleView::from(&stored)))
}

/// Deletes an alert rule (its history stays; a firing alert is dropped without a resolved
/// event).
#[utoipa::path(delete, path = "/api/monitoring/alerts/rules/{id}", tag = "monitoring",
    params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn delete_rule(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    platform_only(&p)?;
    host.alert_rules.delete(&p, &id).await?;
    host.rule_sync.now();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AlertsQuery {
    /// `inactive`, `pending`, `firing` or `resolved`: only alerts in this state.
    state: Option<String>,
}

/// A rule's alert as this host sees it now.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AlertView {
    rule_id: String,
    name: String,
    severity: String,
    labels: BTreeMap<String, String>,
    /// `inactive`, `pending`, `firing` or `resolved`.
    state: String,
    /// Since when (none before the first evaluation).
    since: Option<DateTime<Utc>>,
    /// The value seen at the last evaluation.
    value: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AlertList {
    /// Firing first, then pending, then the rest; by rule id within each.
    items: Vec<AlertView>,
}

fn parse_state(s: &str) -> Result<AlertState, ApiError> {
    [
        AlertState::Inactive,
        AlertState::Pending,
        AlertState::Firing,
        AlertState::Resolved,
    ]
    .into_iter()
    .find(|st| st.as_str() == s)
    .ok_or_else(|| {
        ApiError::invalid(format!(
            "state {s:?} is not one of inactive, pending, firing, resolved"
        ))
    })
}

/// Every rule's alert on this host (each host evaluates the rules against the traffic it
/// sees): firing and pending ones first.
#[utoipa::path(get, path = "/api/monitoring/alerts", tag = "monitoring", params(AlertsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = AlertList), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn alerts(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(q): Query<AlertsQuery>,
) -> Result<Json<AlertList>, ApiError> {
    platform_only(&p)?;
    let want = q.state.as_deref().map(parse_state).transpose()?;
    let Some(engine) = host.hub.alerts() else {
        return Ok(Json(AlertList { items: Vec::new() }));
    };
    let rules: BTreeMap<String, AlertRule> = engine
        .rules()
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let mut items: Vec<AlertView> = engine
        .statuses()
        .into_iter()
        .filter(|s| want.is_none_or(|w| w == s.state))
        .filter_map(|s| {
            let rule = rules.get(&s.rule_id)?;
            Some(AlertView {
                rule_id: s.rule_id,
                name: rule.name.clone(),
                severity: rule.severity.as_str().to_owned(),
                labels: rule.labels.clone(),
                state: s.state.as_str().to_owned(),
                since: s.since,
                value: s.value,
            })
        })
        .collect();
    let rank = |s: &str| match s {
        "firing" => 0,
        "pending" => 1,
        _ => 2,
    };
    items.sort_by(|a, b| {
        rank(&a.state)
            .cmp(&rank(&b.state))
            .then(a.rule_id.cmp(&b.rule_id))
    });
    Ok(Json(AlertList { items }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// Only this rule's events.
    rule_id: Option<String>,
    /// `firing` or `resolved`.
    state: Option<String>,
    /// Only events at or after this time.
    since: Option<DateTime<Utc>>,
    /// Only events before this time (for the next page: the last item's `at`).
    until: Option<DateTime<Utc>>,
    /// 1 to 1000 (default 100).
    limit: Option<u32>,
}

/// One firing or resolved event.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventView {
    id: String,
    rule_id: String,
    rule_name: String,
    severity: String,
    labels: BTreeMap<String, String>,
    /// `firing` or `resolved`.
    state: String,
    value: f64,
    summary: String,
    at: DateTime<Utc>,
    /// For a resolved event, the firing event it ends.
    firing_id: Option<String>,
    /// When the sink (this host's log) took it.
    delivered_at: Option<DateTime<Utc>>,
}

impl From<&AlertRecord> for EventView {
    fn from(r: &AlertRecord) -> Self {
        let e = &r.event;
        EventView {
            id: e.id.to_string(),
            rule_id: e.rule_id.clone(),
            rule_name: e.rule_name.clone(),
            severity: e.severity.as_str().to_owned(),
            labels: e.labels.clone(),
            state: e.state.as_str().to_owned(),
            value: e.value,
            summary: e.summary.clone(),
            at: e.at,
            firing_id: e.firing_id.map(|f| f.to_string()),
            delivered_at: r.delivered_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventList {
    /// Newest first.
    items: Vec<EventView>,
}

/// The alert history: firing and resolved events, newest first (kept
/// `[monitoring] history_days`).
#[utoipa::path(get, path = "/api/monitoring/alerts/history", tag = "monitoring", params(HistoryQuery),
    security(("bearer" = [])),
    responses((status = 200, body = EventList), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn history(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<EventList>, ApiError> {
    platform_only(&p)?;
    let mut query = AlertQuery::new();
    if let Some(r) = q.rule_id {
        query = query.rule(r);
    }
    if let Some(s) = q.state.as_deref() {
        query = query.state(AlertEventState::parse(s)?);
    }
    query.since = q.since;
    query.until = q.until;
    if let Some(l) = q.limit {
        query = query.limit(l);
    }
    let records = host.alert_history.query(&query).await?;
    Ok(Json(EventList {
        items: records.iter().map(EventView::from).collect(),
    }))
}
