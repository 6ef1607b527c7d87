//! The coarse history `ate serve` keeps in its database (ate-orchestrate's
//! [`SqlRollups`](ate_orchestrate::metrics::SqlRollups)), for the dashboard's charts,
//! trends and reports. Every `[history] sample_secs` (at whole multiples of it), for the
//! bucket that just ended:
//!
//! - `service` (per tenant scope, or the platform's, and service name; measured by this
//!   host): requests, errors and p50/p95/p99 of the instances of that scope, and the gauge 1
//!   when at least one instance was passing (0 otherwise): availability;
//! - `api` (the platform's; this host): the API's requests, server errors and latency;
//! - `workflows` (per tenant; from the database): runs that finished in the bucket (count),
//!   of which failed (errors), and runs in progress (gauge);
//! - `storage` (per tenant; from the database, every `storage_every` samples): bytes that
//!   count against the storage quota (gauge).
//!
//! Once an hour, points older than `fine_days` are merged into hourly ones and hourly ones
//! older than `hourly_days` dropped.

use crate::host::Host;
use crate::metrics::{API_INSTANCE, API_SERVICE};
use ate_core::{TenantId, TenantStore};
use ate_orchestrate::metrics::RollupPoint;
use ate_orchestrate::registry::{HealthStatus, InstanceId, Query, Scope, ServiceName, Visibility};
use ate_orchestrate::workflow::RunStatus;
use ate_storage::projects::SnapshotStore;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

/// Runs until `stop` turns true.
pub(crate) async fn run(host: Host, source: String, mut stop: watch::Receiver<bool>) {
    let step = Duration::from_secs(host.config.history.sample_secs);
    let mut sampler = Sampler {
        host,
        source,
        step,
        samples: 0,
        finished: BTreeMap::new(),
        last_compact: None,
    };
    loop {
        // Sleep to the next whole multiple of the step (and a little past it).
        let now = Utc::now();
        let secs = step.as_secs() as i64;
        let next = (now.timestamp().div_euclid(secs) + 1) * secs;
        let wait =
            DateTime::from_timestamp(next, 0).unwrap_or(now) - now + TimeDelta::milliseconds(50);
        tokio::select! {
            () = tokio::time::sleep(wait.to_std().unwrap_or(step)) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let at = Utc::now();
        if let Err(e) = sampler.sample(at).await {
            tracing::warn!(error = %e, "history sample failed");
        }
        if sampler
            .last_compact
            .is_none_or(|t| at - t >= TimeDelta::hours(1))
        {
            sampler.last_compact = Some(at);
            let h = &sampler.host.config.history;
            let fine = Duration::from_secs(u64::from(h.fine_days) * 86_400);
            let hourly = Duration::from_secs(u64::from(h.hourly_days) * 86_400);
            match sampler.host.rollups.compact(at, fine, hourly).await {
                Ok(r) => tracing::debug!(?r, "history compacted"),
                Err(e) => tracing::warn!(error = %e, "history compaction failed"),
            }
        }
    }
}

struct Sampler {
    host: Host,
    source: String,
    step: Duration,
    samples: u64,
    /// Finished runs per tenant and status at the previous sample.
    finished: BTreeMap<TenantId, [u64; 3]>,
    last_compact: Option<DateTime<Utc>>,
}

impl Sampler {
    /// Points for the bucket that ended at (or just before) `at`.
    async fn sample(&mut self, at: DateTime<Utc>) -> Result<(), crate::host::BoxError> {
        let step = TimeDelta::from_std(self.step)?;
        let bucket_time = at - step;
        // The bucket that just ended is [start, start + step); its last whole second:
        let secs = step.num_seconds().max(1);
        let start = bucket_time.timestamp().div_euclid(secs) * secs;
        let last_second = DateTime::from_timestamp(start + secs - 1, 0).unwrap_or(bucket_time);
        let point = |series: &str, tenant: Option<TenantId>, subject: &str| {
            RollupPoint::new(series, tenant, subject, self.step, bucket_time)
        };
        let mut points = Vec::new();

        // Services, per scope: only this host's traffic, and availability from the registry.
        let mut query = Query::new(Visibility::All);
        query.include_unhealthy = true;
        let instances = self.host.hub.registry().store().discover(&query).await?;
        let mut groups: BTreeMap<(Option<TenantId>, String), Vec<_>> = BTreeMap::new();
        for i in &instances {
            let tenant = match i.spec.scope {
                Scope::Tenant(t) => Some(t),
                _ => None,
            };
            groups
                .entry((tenant, i.spec.service.as_str().to_owned()))
                .or_default()
                .push(i);
        }
        for ((tenant, name), members) in groups {
            let service = ServiceName::new(&name)?;
            let ids: Vec<InstanceId> = members.iter().map(|i| i.spec.id.clone()).collect();
            let s = self.host.hub.recorder().instances_stats_at(
                &service,
                &ids,
                self.step,
                last_second,
            )?;
            let up = members.iter().any(|i| i.status == HealthStatus::Passing);
            points.push(
                point("service", tenant, &name)
                    .source(&self.source)
                    .counts(s.count, s.errors)
                    .latency(s.p50, s.p95, s.p99)
                    .gauge(if up { 1.0 } else { 0.0 }),
            );
        }

        // The API's own traffic through this host.
        let s = self.host.api_traffic.instances_stats_at(
            &ServiceName::new(API_SERVICE)?,
            &[InstanceId::new(API_INSTANCE)?],
            self.step,
            last_second,
        )?;
        points.push(
            point("api", None, "")
                .source(&self.source)
                .counts(s.count, s.errors)
                .latency(s.p50, s.p95, s.p99),
        );

        // Workflow outcomes since the previous sample, and runs in progress.
        let stats = self.host.workflows.store().stats().await?;
        for (tenant, load) in &stats.tenants {
            let n = |s: RunStatus| load.runs.get(&s).copied().unwrap_or(0);
            let now = [
                n(RunStatus::Succeeded),
                n(RunStatus::Failed),
                n(RunStatus::Cancelled),
            ];
            let in_progress = n(RunStatus::Running) + n(RunStatus::Pending);
            let mut p = point("workflows", Some(*tenant), "").gauge(in_progress as f64);
            if let Some(before) = self.finished.get(tenant) {
                // Counts fall when old runs are purged: never negative.
                let d: Vec<u64> = now
                    .iter()
                    .zip(before)
                    .map(|(a, b)| a.saturating_sub(*b))
                    .collect();
                p = p.counts(d[0] + d[1] + d[2], d[1]);
            }
            self.finished.insert(*tenant, now);
            points.push(p);
        }

        // Storage against quota, every `storage_every` samples.
        if self
            .samples
            .is_multiple_of(u64::from(self.host.config.history.storage_every))
        {
            let mut cursor = None;
            loop {
                let page = self
                    .host
                    .tenants
                    .list(
                        &self.host.system,
                        ate_core::ListTenants::new().limit(1000).cursor(cursor),
                    )
                    .await?;
                for t in &page.items {
                    let usage = self
                        .host
                        .snapshots
                        .tenant_usage(&self.host.system, t.id)
                        .await?;
                    points.push(point("storage", Some(t.id), "").gauge(usage.storage_bytes as f64));
                }
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
        self.samples += 1;
        self.host.rollups.record(&points).await?;
        Ok(())
    }
}
