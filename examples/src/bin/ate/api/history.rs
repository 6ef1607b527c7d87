//! `/api/history` and `/api/reports`: the coarse history [`crate::history`] keeps (traffic
//! per service, the API's traffic, workflow outcomes, storage per tenant) over hours and
//! weeks, the storage trend with a forecast against the quota, and a report per tenant or
//! for the platform as JSON or CSV.
//!
//! A tenant's principals read their own tenant's series (`history:read`); the platform's
//! series (its services, the API) and other tenants' are for platform administrators.

use super::Query;
use super::problem::ApiError;
use super::users::tenant_or_own;
use crate::host::Host;
use ate_core::{Principal, TenantId, TenantStore};
use ate_orchestrate::metrics::{RollupBucket, RollupQuery, Trend};
use ate_storage::projects::SnapshotStore;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<Host> {
    OpenApiRouter::new()
        .routes(routes!(history))
        .routes(routes!(report))
}

/// The steps a caller may ask for, in seconds.
const STEPS: [u64; 9] = [1, 10, 60, 300, 900, 3600, 6 * 3600, 86_400, 7 * 86_400];

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// `service` (traffic and availability per service), `api` (the API's traffic; the
    /// platform's), `workflows` (finished and failed runs, runs in progress) or `storage`
    /// (bytes against the storage quota, with a trend).
    series: String,
    /// The tenant (platform administrators; default: the caller's, or the platform's series
    /// for a platform administrator).
    tenant_id: Option<String>,
    /// Only this subject (a service's name).
    subject: Option<String>,
    /// From (default: `to` minus a day).
    from: Option<DateTime<Utc>>,
    /// To (default: now).
    to: Option<DateTime<Utc>>,
    /// Bucket length in seconds: 1, 10, 60, 300, 900, 3600, 21600, 86400 or 604800 (default:
    /// the finest giving at most 500 buckets).
    step_secs: Option<u64>,
}

/// One bucket of a series.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HistoryPoint {
    subject: String,
    at: DateTime<Utc>,
    count: u64,
    errors: u64,
    /// `count` per second of the bucket.
    rate_per_sec: f64,
    /// `errors / count` (absent without events).
    error_rate: Option<f64>,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
    /// The level: availability 0 to 1 (`service`), runs in progress (`workflows`), bytes
    /// (`storage`).
    gauge: Option<f64>,
}

/// A line fitted to the storage gauge, and when it reaches the quota.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TrendView {
    /// Bytes per day (negative: shrinking).
    per_day: f64,
    /// The fitted value now.
    latest: f64,
    /// How well the line fits, 0 to 1.
    fit: f64,
    quota: Option<u64>,
    /// Days until the quota is reached at this growth (absent: no quota, or not growing).
    days_to_quota: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HistoryView {
    series: String,
    tenant_id: Option<String>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step_secs: u64,
    /// By subject, then time; buckets without data are absent.
    points: Vec<HistoryPoint>,
    /// `storage` only.
    trend: Option<TrendView>,
    /// Full-resolution history, when the host names a Prometheus.
    prometheus_url: Option<String>,
}

/// The tenant a history read is about: `None` for the platform's series.
fn history_tenant(p: &Principal, named: Option<&str>) -> Result<Option<TenantId>, ApiError> {
    match named {
        Some(_) => Ok(Some(tenant_or_own(p, named)?)),
        None if p.is_platform_admin() => Ok(None),
        None => Ok(Some(tenant_or_own(p, None)?)),
    }
}

fn range(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    step: Option<u64>,
) -> Result<(DateTime<Utc>, DateTime<Utc>, u64), ApiError> {
    let to = to.unwrap_or_else(Utc::now);
    let from = from.unwrap_or(to - TimeDelta::days(1));
    if from >= to {
        return Err(ApiError::invalid("`from` must be before `to`"));
    }
    let span = (to - from).num_seconds().max(1) as u64;
    let step = match step {
        Some(s) if STEPS.contains(&s) => s,
        Some(s) => {
            return Err(ApiError::invalid(format!(
                "step_secs {s} is not one of {STEPS:?}"
            )));
        }
        None => STEPS
            .iter()
            .copied()
            .find(|s| span / s <= 500)
            .unwrap_or(7 * 86_400),
    };
    Ok((from, to, step))
}

/// The finest step for fitting a trend over `[from, to)`: the sampling step, or coarser
/// when that would be too many points; never coarser than the chart's `step`.
fn trend_step(host: &Host, from: DateTime<Utc>, to: DateTime<Utc>, step: u64) -> u64 {
    let span = (to - from).num_seconds().max(1) as u64;
    let sample = host.config.history.sample_secs;
    STEPS
        .iter()
        .copied()
        .filter(|s| *s >= sample)
        .find(|s| span / s <= ate_orchestrate::metrics::MAX_QUERY_BUCKETS / 2)
        .map_or(step, |s| s.min(step))
}

fn point(b: &RollupBucket, step: u64) -> HistoryPoint {
    HistoryPoint {
        subject: b.subject.clone(),
        at: b.bucket,
        count: b.count,
        errors: b.errors,
        rate_per_sec: b.count as f64 / step as f64,
        error_rate: (b.count > 0).then(|| b.errors as f64 / b.count as f64),
        p50_ms: b.p50_ms,
        p95_ms: b.p95_ms,
        p99_ms: b.p99_ms,
        gauge: b.gauge,
    }
}

async fn storage_trend(
    host: &Host,
    p: &Principal,
    tenant: TenantId,
    buckets: &[RollupBucket],
) -> Result<Option<TrendView>, ApiError> {
    let pts: Vec<(DateTime<Utc>, f64)> = buckets
        .iter()
        .filter_map(|b| b.gauge.map(|g| (b.bucket, g)))
        .collect();
    let Some(trend) = Trend::fit(&pts) else {
        return Ok(None);
    };
    let quota = host
        .tenants
        .get(p, tenant)
        .await?
        .settings
        .quotas
        .max_storage_bytes;
    Ok(Some(TrendView {
        per_day: trend.per_day,
        latest: trend.latest,
        fit: trend.fit,
        quota,
        days_to_quota: quota.and_then(|q| trend.days_until(q as f64)),
    }))
}

/// A series of the coarse history (one point per `[history] sample_secs`, hourly when
/// older than `[history] fine_days`), in buckets of `step_secs`.
#[utoipa::path(get, path = "/api/history", tag = "monitoring", params(HistoryQuery),
    security(("bearer" = [])),
    responses((status = 200, body = HistoryView), (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn history(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<HistoryView>, ApiError> {
    if !["service", "api", "workflows", "storage"].contains(&q.series.as_str()) {
        return Err(ApiError::invalid(format!(
            "series {:?} is not one of service, api, workflows, storage",
            q.series.chars().take(40).collect::<String>()
        )));
    }
    let tenant = history_tenant(&p, q.tenant_id.as_deref())?;
    match (q.series.as_str(), tenant) {
        ("api", Some(_)) => {
            return Err(ApiError::invalid(
                "the api series is the platform's: leave tenant_id out",
            ));
        }
        ("workflows" | "storage", None) => {
            return Err(ApiError::invalid(format!(
                "the {} series is per tenant: name tenant_id",
                q.series
            )));
        }
        _ => {}
    }
    let (from, to, step) = range(q.from, q.to, q.step_secs)?;
    let mut query = RollupQuery::new(
        q.series.clone(),
        tenant,
        from,
        to,
        Duration::from_secs(step),
    );
    if let Some(s) = q.subject {
        query = query.subject(s);
    }
    let buckets = host.rollups.query(&p, &query).await?;
    let trend = match (q.series.as_str(), tenant) {
        ("storage", Some(t)) => {
            // The line is fitted to the finest points kept, not the chart's buckets.
            let fine = trend_step(&host, from, to, step);
            let points = if fine == step {
                buckets.clone()
            } else {
                let q = RollupQuery::new("storage", Some(t), from, to, Duration::from_secs(fine));
                host.rollups.query(&p, &q).await?
            };
            storage_trend(&host, &p, t, &points).await?
        }
        _ => None,
    };
    Ok(Json(HistoryView {
        series: q.series,
        tenant_id: tenant.map(|t| t.to_string()),
        from,
        to,
        step_secs: step,
        points: buckets.iter().map(|b| point(b, step)).collect(),
        trend,
        prometheus_url: host.config.history.prometheus_url.clone(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReportQuery {
    /// The tenant (platform administrators: leave out for the platform's report, which
    /// covers every tenant).
    tenant_id: Option<String>,
    /// From (default: `to` minus 30 days).
    from: Option<DateTime<Utc>>,
    /// To (default: now).
    to: Option<DateTime<Utc>>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// A service over the report's period.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ServiceLine {
    service: String,
    /// Share of sampled buckets with at least one passing instance (absent without samples).
    availability: Option<f64>,
    requests: u64,
    errors: u64,
    error_rate: Option<f64>,
    /// The highest p95 of any bucket.
    worst_p95_ms: Option<f64>,
}

/// One tenant over the report's period.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantLine {
    tenant_id: String,
    slug: String,
    name: String,
    services: Vec<ServiceLine>,
    runs_finished: u64,
    runs_failed: u64,
    /// Finished runs that did not fail (absent without finished runs).
    workflow_success_rate: Option<f64>,
    storage_bytes: u64,
    storage_quota: Option<u64>,
    /// Bytes per day over the period.
    storage_per_day: Option<f64>,
    days_to_storage_quota: Option<f64>,
    projects: u64,
    objects: u64,
    snapshots: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Report {
    /// A tenant's id, or `platform`.
    scope: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    generated_at: DateTime<Utc>,
    /// The platform's services and the API (the platform's report only).
    platform_services: Vec<ServiceLine>,
    tenants: Vec<TenantLine>,
}

fn service_lines(buckets: &[RollupBucket]) -> Vec<ServiceLine> {
    let mut by: BTreeMap<&str, Vec<&RollupBucket>> = BTreeMap::new();
    for b in buckets {
        by.entry(b.subject.as_str()).or_default().push(b);
    }
    by.into_iter()
        .map(|(name, bs)| {
            let requests: u64 = bs.iter().map(|b| b.count).sum();
            let errors: u64 = bs.iter().map(|b| b.errors).sum();
            let gauges: Vec<f64> = bs.iter().filter_map(|b| b.gauge).collect();
            ServiceLine {
                service: if name.is_empty() {
                    "api".to_owned()
                } else {
                    name.to_owned()
                },
                availability: (!gauges.is_empty())
                    .then(|| gauges.iter().sum::<f64>() / gauges.len() as f64),
                requests,
                errors,
                error_rate: (requests > 0).then(|| errors as f64 / requests as f64),
                worst_p95_ms: bs.iter().filter_map(|b| b.p95_ms).reduce(f64::max),
            }
        })
        .collect()
}

async fn tenant_line(
    host: &Host,
    p: &Principal,
    tenant: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<TenantLine, ApiError> {
    let hour = Duration::from_secs(3600);
    let read = |series: &'static str| RollupQuery::new(series, Some(tenant), from, to, hour);
    let services = host.rollups.query(p, &read("service")).await?;
    let runs = host.rollups.query(p, &read("workflows")).await?;
    let fine = Duration::from_secs(trend_step(host, from, to, 3600));
    let storage = host
        .rollups
        .query(
            p,
            &RollupQuery::new("storage", Some(tenant), from, to, fine),
        )
        .await?;
    let t = host.tenants.get(p, tenant).await?;
    let usage = host.snapshots.tenant_usage(p, tenant).await?;
    let trend = storage_trend(host, p, tenant, &storage).await?;
    let finished: u64 = runs.iter().map(|b| b.count).sum();
    let failed: u64 = runs.iter().map(|b| b.errors).sum();
    Ok(TenantLine {
        tenant_id: tenant.to_string(),
        slug: t.slug.as_str().to_owned(),
        name: t.name.clone(),
        services: service_lines(&services),
        runs_finished: finished,
        runs_failed: failed,
        workflow_success_rate: (finished > 0).then(|| (finished - failed) as f64 / finished as f64),
        storage_bytes: usage.storage_bytes,
        storage_quota: t.settings.quotas.max_storage_bytes,
        storage_per_day: trend.as_ref().map(|t| t.per_day),
        days_to_storage_quota: trend.and_then(|t| t.days_to_quota),
        projects: usage.projects,
        objects: usage.objects,
        snapshots: usage.snapshots,
    })
}

/// A report over a period (default: the last 30 days): service availability, requests and
/// errors, workflow success rate, storage and its growth against the quota, usage. Per
/// tenant, or for the platform (its services and the API, and every tenant). `format=csv`
/// answers a download (`section,tenant,subject,metric,value` rows).
#[utoipa::path(get, path = "/api/reports", tag = "monitoring", params(ReportQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Report, description = "JSON, or `text/csv` with `format=csv`"),
        (status = "4XX", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn report(
    State(host): State<Host>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "format {:?} is not json or csv",
                other.chars().take(20).collect::<String>()
            )));
        }
    };
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q.from.unwrap_or(to - TimeDelta::days(30));
    if from >= to || to - from > TimeDelta::days(800) {
        return Err(ApiError::invalid(
            "`from` must be before `to`, at most 800 days apart",
        ));
    }
    let tenant = history_tenant(&p, q.tenant_id.as_deref())?;
    let hour = Duration::from_secs(3600);
    let mut report = Report {
        scope: tenant.map_or_else(|| "platform".to_owned(), |t| t.to_string()),
        from,
        to,
        generated_at: Utc::now(),
        platform_services: Vec::new(),
        tenants: Vec::new(),
    };
    match tenant {
        Some(t) => report
            .tenants
            .push(tenant_line(&host, &p, t, from, to).await?),
        None => {
            let mut buckets = host
                .rollups
                .query(&p, &RollupQuery::new("service", None, from, to, hour))
                .await?;
            buckets.extend(
                host.rollups
                    .query(&p, &RollupQuery::new("api", None, from, to, hour))
                    .await?,
            );
            report.platform_services = service_lines(&buckets);
            let mut cursor = None;
            loop {
                let page = host
                    .tenants
                    .list(&p, ate_core::ListTenants::new().limit(1000).cursor(cursor))
                    .await?;
                for t in &page.items {
                    report
                        .tenants
                        .push(tenant_line(&host, &p, t.id, from, to).await?);
                }
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
    }
    if !csv {
        return Ok(Json(report).into_response());
    }
    let mut response = report_csv(&report).into_response();
    let h = response.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    let name = format!(
        "attachment; filename=\"ate-report-{}-{}.csv\"",
        report.scope,
        to.format("%Y%m%d")
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// One CSV field: quoted when it holds a comma, quote or line break; a leading `=`, `+`,
/// `-` or `@` is prefixed with `'` so spreadsheets do not run it as a formula.
fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) && s.parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn report_csv(r: &Report) -> String {
    let mut rows: Vec<[String; 5]> = Vec::new();
    let mut row = |section: &str, tenant: &str, subject: &str, metric: &str, value: String| {
        rows.push([
            section.to_owned(),
            tenant.to_owned(),
            subject.to_owned(),
            metric.to_owned(),
            value,
        ]);
    };
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
    row("period", "", "", "from", r.from.to_rfc3339());
    row("period", "", "", "to", r.to.to_rfc3339());
    let services = |row: &mut dyn FnMut(&str, &str, &str, &str, String),
                    tenant: &str,
                    lines: &[ServiceLine]| {
        for s in lines {
            let name = s.service.as_str();
            row("service", tenant, name, "availability", opt(s.availability));
            row("service", tenant, name, "requests", s.requests.to_string());
            row("service", tenant, name, "errors", s.errors.to_string());
            row("service", tenant, name, "error_rate", opt(s.error_rate));
            row("service", tenant, name, "worst_p95_ms", opt(s.worst_p95_ms));
        }
    };
    services(&mut row, "platform", &r.platform_services);
    for t in &r.tenants {
        let slug = t.slug.as_str();
        services(&mut row, slug, &t.services);
        row(
            "workflows",
            slug,
            "",
            "runs_finished",
            t.runs_finished.to_string(),
        );
        row(
            "workflows",
            slug,
            "",
            "runs_failed",
            t.runs_failed.to_string(),
        );
        row(
            "workflows",
            slug,
            "",
            "success_rate",
            opt(t.workflow_success_rate),
        );
        row("storage", slug, "", "bytes", t.storage_bytes.to_string());
        let quota = t.storage_quota.map(|q| q.to_string()).unwrap_or_default();
        row("storage", slug, "", "quota_bytes", quota);
        row("storage", slug, "", "bytes_per_day", opt(t.storage_per_day));
        row(
            "storage",
            slug,
            "",
            "days_to_quota",
            opt(t.days_to_storage_quota),
        );
        row("usage", slug, "", "projects", t.projects.to_string());
        row("usage", slug, "", "objects", t.objects.to_string());
        row("usage", slug, "", "snapshots", t.snapshots.to_string());
    }
    let mut out = String::from("section,tenant,subject,metric,value\n");
    for r in rows {
        let line: Vec<String> = r.iter().map(|f| field(f)).collect();
        let _ = writeln!(out, "{}", line.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(field("-1,5"), "\"'-1,5\"");
        assert_eq!(field("-12.5"), "-12.5");
    }

    #[test]
    fn ranges_pick_a_step_and_refuse_nonsense() {
        let to = Utc::now();
        let (_, _, step) = range(Some(to - TimeDelta::hours(1)), Some(to), None).expect("range");
        assert_eq!(step, 10);
        let (_, _, step) = range(Some(to - TimeDelta::days(30)), Some(to), None).expect("range");
        assert_eq!(step, 21_600);
        assert!(range(Some(to), Some(to), None).is_err());
        assert!(range(None, Some(to), Some(7)).is_err());
    }
}
