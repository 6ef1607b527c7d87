//! [`SqlRollups`]: coarse history of metrics in the database (one point a minute, say, kept
//! for weeks, then merged into hourly points kept for a year), so dashboards and reports
//! cover hours and weeks rather than only the live window of a [`MetricsRecorder`].
//! Prometheus (or any scraper of `/metrics`) remains the place for full resolution.
//!
//! A point belongs to a *series* (`service`, `api`, `workflows`, `storage`, or the host's own
//! names), a tenant or the platform, a *subject* within the series (a service's name), and
//! the *source* that measured it: traffic is seen per host, so each host writes its own
//! points and reads merge them (counts add up, percentiles take the highest, an upper bound);
//! figures read from the database are written with an empty source, and any host may write
//! them (the last write of a bucket wins).
//!
//! Writing ([`SqlRollups::record`]) and compaction ([`SqlRollups::compact`]) are trusted host
//! work; reading ([`SqlRollups::query`]) checks the principal: a platform administrator reads
//! anything, a tenant's principal with [`HISTORY_READ`] only its own tenant's series.
//!
//! [`MetricsRecorder`]: super::MetricsRecorder

use crate::OrchestrateError;
use ate_core::{Permission, Principal, TenantId, with_pool, with_write_tx};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Read a tenant's history (its services' traffic, workflow outcomes, storage).
pub const HISTORY_READ: Permission = Permission::from_static("history:read");

/// The step of downsampled points.
pub const HOURLY: Duration = Duration::from_secs(3600);

/// Most buckets one query may ask for (range / step).
pub const MAX_QUERY_BUCKETS: u64 = 20_000;

/// One measured bucket.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RollupPoint {
    /// The series (`service`, `api`, `workflows`, `storage`, …): lower-case letters, digits,
    /// `_`, `.`, `-`, at most 64 bytes.
    pub series: String,
    /// The tenant, or `None` for the platform.
    pub tenant: Option<TenantId>,
    /// Within the series (a service's name), at most 256 bytes; empty when there is none.
    pub subject: String,
    /// Who measured it (a host's id), at most 256 bytes; empty for figures read from the
    /// database, which any host may write.
    pub source: String,
    /// The bucket's length: a whole number of seconds dividing an hour (1 s to 1 h).
    pub step: Duration,
    /// The bucket's start: a whole multiple of `step` since the epoch.
    pub bucket: DateTime<Utc>,
    /// Events in the bucket (requests, finished runs).
    pub count: u64,
    /// Of which failed.
    pub errors: u64,
    /// Latency percentiles in milliseconds, when measured.
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// A level at the bucket's time (bytes stored, runs in progress, availability 0 or 1).
    pub gauge: Option<f64>,
}

impl RollupPoint {
    /// A point of `series` for the bucket containing `at` (its start rounded down to `step`),
    /// with no figures yet.
    pub fn new(
        series: impl Into<String>,
        tenant: Option<TenantId>,
        subject: impl Into<String>,
        step: Duration,
        at: DateTime<Utc>,
    ) -> Self {
        let secs = step.as_secs().max(1) as i64;
        let start = at.timestamp().div_euclid(secs) * secs;
        RollupPoint {
            series: series.into(),
            tenant,
            subject: subject.into(),
            source: String::new(),
            step,
            bucket: DateTime::from_timestamp(start, 0).unwrap_or(at),
            count: 0,
            errors: 0,
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
            gauge: None,
        }
    }

    /// Measured by `source` (a host).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Events and failures.
    pub fn counts(mut self, count: u64, errors: u64) -> Self {
        self.count = count;
        self.errors = errors;
        self
    }

    /// Latency percentiles.
    pub fn latency(
        mut self,
        p50: Option<Duration>,
        p95: Option<Duration>,
        p99: Option<Duration>,
    ) -> Self {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        self.p50_ms = ms(p50);
        self.p95_ms = ms(p95);
        self.p99_ms = ms(p99);
        self
    }

    /// A level.
    pub fn gauge(mut self, value: f64) -> Self {
        self.gauge = Some(value);
        self
    }

    fn validate(&self) -> Result<(), OrchestrateError> {
        let series_ok = !self.series.is_empty()
            && self.series.len() <= 64
            && self.series.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
            });
        if !series_ok {
            return Err(OrchestrateError::invalid(
                "rollup series",
                format!("{:?} is not 1 to 64 of a-z, 0-9, _ . -", self.series),
            ));
        }
        if self.subject.len() > 256 || self.source.len() > 256 {
            return Err(OrchestrateError::invalid(
                "rollup point",
                "subject and source are at most 256 bytes",
            ));
        }
        validate_step(self.step)?;
        let secs = self.step.as_secs() as i64;
        if self.bucket.timestamp_subsec_nanos() != 0 || self.bucket.timestamp() % secs != 0 {
            return Err(OrchestrateError::invalid(
                "rollup bucket",
                format!("{} does not start a {secs} s step", self.bucket),
            ));
        }
        if self.errors > self.count {
            return Err(OrchestrateError::invalid(
                "rollup point",
                format!("{} errors of {} events", self.errors, self.count),
            ));
        }
        let finite = [self.p50_ms, self.p95_ms, self.p99_ms, self.gauge]
            .into_iter()
            .flatten()
            .all(f64::is_finite);
        if !finite {
            return Err(OrchestrateError::invalid(
                "rollup point",
                "percentiles and gauge must be finite",
            ));
        }
        Ok(())
    }
}

fn validate_step(step: Duration) -> Result<(), OrchestrateError> {
    let secs = step.as_secs();
    if step.subsec_nanos() != 0 || secs == 0 || secs > 3600 || !3600u64.is_multiple_of(secs) {
        return Err(OrchestrateError::invalid(
            "rollup step",
            format!("{step:?} is not a whole number of seconds dividing an hour"),
        ));
    }
    Ok(())
}

/// What [`SqlRollups::query`] reads.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RollupQuery {
    /// The series.
    pub series: String,
    /// The tenant, or `None` for the platform's series.
    pub tenant: Option<TenantId>,
    /// Only this subject (default: every subject).
    pub subject: Option<String>,
    /// From (inclusive).
    pub from: DateTime<Utc>,
    /// To (exclusive).
    pub to: DateTime<Utc>,
    /// The step of the answer's buckets: points are merged into it. A step finer than the
    /// stored points (hourly ones, for old ranges) yields one bucket per stored point.
    pub step: Duration,
}

impl RollupQuery {
    /// `series` of `tenant` over `[from, to)` in buckets of `step`.
    pub fn new(
        series: impl Into<String>,
        tenant: Option<TenantId>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        step: Duration,
    ) -> Self {
        RollupQuery {
            series: series.into(),
            tenant,
            subject: None,
            from,
            to,
            step,
        }
    }

    /// Only `subject`.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }
}

/// One bucket of a query's answer, every source merged.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RollupBucket {
    /// The subject.
    pub subject: String,
    /// The bucket's start.
    pub bucket: DateTime<Utc>,
    /// Events (summed).
    pub count: u64,
    /// Failures (summed).
    pub errors: u64,
    /// The highest p50 of the merged points (an upper bound of the merged p50).
    pub p50_ms: Option<f64>,
    /// The highest p95.
    pub p95_ms: Option<f64>,
    /// The highest p99.
    pub p99_ms: Option<f64>,
    /// The mean of the merged points' levels.
    pub gauge: Option<f64>,
}

/// What [`SqlRollups::compact`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactReport {
    /// Fine rows merged into hourly ones (and removed).
    pub downsampled: u64,
    /// Hourly rows removed for age.
    pub expired: u64,
}

#[derive(sqlx::FromRow)]
struct BucketRow {
    subject: String,
    b: i64,
    count: i64,
    errors: i64,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
    gauge: Option<f64>,
}

/// Rollups in a [`Db`](ate_core::Db); cheap to clone.
#[derive(Debug, Clone)]
pub struct SqlRollups {
    db: ate_core::Db,
}

fn tenant_key(t: Option<TenantId>) -> String {
    t.map(|t| t.to_string()).unwrap_or_default()
}

fn count_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl SqlRollups {
    /// Opens the store in `db`, running this crate's migrations first.
    pub async fn open(db: ate_core::Db) -> Result<Self, OrchestrateError> {
        db.migrate(&crate::migrations()).await?;
        Ok(SqlRollups { db })
    }

    /// Writes `points` in one transaction; a point of a bucket already written by the same
    /// source replaces it. Trusted host work (no principal). `InvalidInput` names the first
    /// bad point, and nothing is written then.
    pub async fn record(&self, points: &[RollupPoint]) -> Result<(), OrchestrateError> {
        for p in points {
            p.validate()?;
        }
        if points.is_empty() {
            return Ok(());
        }
        with_write_tx!(self.db, |tx| {
            for p in points {
                sqlx::query(
                    "INSERT INTO orchestrate_rollups (series, tenant_key, subject, source, \
                     step_secs, bucket, count, errors, p50_ms, p95_ms, p99_ms, gauge) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (series, tenant_key, subject, step_secs, bucket, source) \
                     DO UPDATE SET count = excluded.count, errors = excluded.errors, \
                     p50_ms = excluded.p50_ms, p95_ms = excluded.p95_ms, \
                     p99_ms = excluded.p99_ms, gauge = excluded.gauge",
                )
                .bind(&p.series)
                .bind(tenant_key(p.tenant))
                .bind(&p.subject)
                .bind(&p.source)
                .bind(p.step.as_secs() as i64)
                .bind(p.bucket.timestamp())
                .bind(count_i64(p.count))
                .bind(count_i64(p.errors))
                .bind(p.p50_ms)
                .bind(p.p95_ms)
                .bind(p.p99_ms)
                .bind(p.gauge)
                .execute(&mut *tx)
                .await
                .map_err(ate_core::CoreError::from)?;
            }
        });
        Ok(())
    }

    /// The buckets of `query`, by subject then time; buckets with no point are absent.
    /// A platform administrator reads any series; a tenant's principal needs
    /// [`HISTORY_READ`] in that tenant and cannot read the platform's (`PermissionDenied`).
    /// `InvalidInput` for a step that does not divide an hour, an empty range, or more than
    /// [`MAX_QUERY_BUCKETS`] buckets.
    pub async fn query(
        &self,
        actor: &Principal,
        query: &RollupQuery,
    ) -> Result<Vec<RollupBucket>, OrchestrateError> {
        match query.tenant {
            Some(t) => actor.require(t, &HISTORY_READ)?,
            None => actor.require_platform_admin("reading the platform's history")?,
        }
        let step = query.step.as_secs();
        if query.step.subsec_nanos() != 0
            || step == 0
            || (step < 3600 && !3600u64.is_multiple_of(step))
            || (step >= 3600 && !step.is_multiple_of(3600))
        {
            return Err(OrchestrateError::invalid(
                "history step",
                format!(
                    "{:?} is not a whole number of seconds dividing an hour, or whole hours",
                    query.step
                ),
            ));
        }
        let (from, to) = (query.from.timestamp(), query.to.timestamp());
        if to <= from {
            return Err(OrchestrateError::invalid(
                "history range",
                "`to` must be after `from`",
            ));
        }
        let buckets = (to - from).unsigned_abs().div_ceil(step);
        if buckets > MAX_QUERY_BUCKETS {
            return Err(OrchestrateError::invalid(
                "history range",
                format!(
                    "{buckets} buckets of {step} s; at most {MAX_QUERY_BUCKETS}: use a longer step"
                ),
            ));
        }
        let step = step as i64;
        let rows: Vec<BucketRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(
                "SELECT subject, (bucket / $1) * $1 AS b, \
                 CAST(SUM(count) AS BIGINT) AS count, CAST(SUM(errors) AS BIGINT) AS errors, \
                 MAX(p50_ms) AS p50_ms, MAX(p95_ms) AS p95_ms, MAX(p99_ms) AS p99_ms, \
                 AVG(gauge) AS gauge \
                 FROM orchestrate_rollups \
                 WHERE series = $2 AND tenant_key = $3 AND bucket >= $4 AND bucket < $5 \
                 AND ($6 = '' OR subject = $6) \
                 GROUP BY subject, b ORDER BY subject, b",
            )
            .bind(step)
            .bind(&query.series)
            .bind(tenant_key(query.tenant))
            .bind(from)
            .bind(to)
            .bind(query.subject.clone().unwrap_or_default())
            .fetch_all(pool)
            .await
            .map_err(ate_core::CoreError::from)?
        });
        Ok(rows
            .into_iter()
            .map(|r| RollupBucket {
                subject: r.subject,
                bucket: DateTime::from_timestamp(r.b, 0).unwrap_or_default(),
                count: u64::try_from(r.count).unwrap_or(0),
                errors: u64::try_from(r.errors).unwrap_or(0),
                p50_ms: r.p50_ms,
                p95_ms: r.p95_ms,
                p99_ms: r.p99_ms,
                gauge: r.gauge,
            })
            .collect())
    }

    /// Merges points finer than an hour that are older than `fine_for` (whole hours before
    /// `now - fine_for`) into hourly points, per series, tenant, subject and source, and
    /// drops them; drops hourly points older than `hourly_for`. One transaction: a range is
    /// always covered by one resolution. Trusted host work; run it now and then (hourly).
    pub async fn compact(
        &self,
        now: DateTime<Utc>,
        fine_for: Duration,
        hourly_for: Duration,
    ) -> Result<CompactReport, OrchestrateError> {
        let hour = 3600i64;
        let cutoff = (now.timestamp() - fine_for.as_secs() as i64).div_euclid(hour) * hour;
        let expire = now.timestamp() - hourly_for.as_secs() as i64;
        let report = with_write_tx!(self.db, |tx| {
            sqlx::query(
                "INSERT INTO orchestrate_rollups (series, tenant_key, subject, source, \
                 step_secs, bucket, count, errors, p50_ms, p95_ms, p99_ms, gauge) \
                 SELECT series, tenant_key, subject, source, 3600, (bucket / 3600) * 3600, \
                 CAST(SUM(count) AS BIGINT), CAST(SUM(errors) AS BIGINT), MAX(p50_ms), \
                 MAX(p95_ms), MAX(p99_ms), AVG(gauge) \
                 FROM orchestrate_rollups WHERE step_secs < 3600 AND bucket < $1 \
                 GROUP BY series, tenant_key, subject, source, (bucket / 3600) * 3600 \
                 ON CONFLICT (series, tenant_key, subject, step_secs, bucket, source) \
                 DO UPDATE SET count = orchestrate_rollups.count + excluded.count, \
                 errors = orchestrate_rollups.errors + excluded.errors, \
                 p50_ms = CASE WHEN excluded.p50_ms > orchestrate_rollups.p50_ms OR orchestrate_rollups.p50_ms IS NULL THEN excluded.p50_ms ELSE orchestrate_rollups.p50_ms END, \
                 p95_ms = CASE WHEN excluded.p95_ms > orchestrate_rollups.p95_ms OR orchestrate_rollups.p95_ms IS NULL THEN excluded.p95_ms ELSE orchestrate_rollups.p95_ms END, \
                 p99_ms = CASE WHEN excluded.p99_ms > orchestrate_rollups.p99_ms OR orchestrate_rollups.p99_ms IS NULL THEN excluded.p99_ms ELSE orchestrate_rollups.p99_ms END, \
                 gauge = COALESCE(excluded.gauge, orchestrate_rollups.gauge)",
            )
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(ate_core::CoreError::from)?;
            let downsampled = sqlx::query(
                "DELETE FROM orchestrate_rollups WHERE step_secs < 3600 AND bucket < $1",
            )
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(ate_core::CoreError::from)?
            .rows_affected();
            let expired = sqlx::query(
                "DELETE FROM orchestrate_rollups WHERE step_secs >= 3600 AND bucket < $1",
            )
            .bind(expire)
            .execute(&mut *tx)
            .await
            .map_err(ate_core::CoreError::from)?
            .rows_affected();
            CompactReport {
                downsampled,
                expired,
            }
        });
        Ok(report)
    }
}

/// A straight line fitted to `(time, value)` points by least squares.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Trend {
    /// Change per day.
    pub per_day: f64,
    /// The fitted value at the last point's time.
    pub latest: f64,
    /// The last point's time.
    pub at: DateTime<Utc>,
    /// How well the line fits, 0 to 1 (R²).
    pub fit: f64,
}

impl Trend {
    /// Fits `points` (at least two distinct times; non-finite values are skipped).
    pub fn fit(points: &[(DateTime<Utc>, f64)]) -> Option<Trend> {
        let pts: Vec<(f64, f64)> = points
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(t, v)| (t.timestamp() as f64 / 86_400.0, *v))
            .collect();
        let n = pts.len() as f64;
        if pts.len() < 2 {
            return None;
        }
        let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
        let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
        if sxx <= 0.0 {
            return None;
        }
        let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let slope = sxy / sxx;
        let syy: f64 = pts.iter().map(|p| (p.1 - my).powi(2)).sum();
        let fit = if syy <= 0.0 {
            1.0
        } else {
            (sxy * sxy / (sxx * syy)).clamp(0.0, 1.0)
        };
        let last = points
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(t, _)| *t)
            .max()?;
        let lx = last.timestamp() as f64 / 86_400.0;
        Some(Trend {
            per_day: slope,
            latest: my + slope * (lx - mx),
            at: last,
            fit,
        })
    }

    /// Days from the last point until the line reaches `limit`: `None` when it does not
    /// grow towards it; zero when it is there already.
    pub fn days_until(&self, limit: f64) -> Option<f64> {
        if self.latest >= limit {
            return Some(0.0);
        }
        (self.per_day > 0.0).then(|| (limit - self.latest) / self.per_day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + d * 86_400, 0).unwrap_or_default()
    }

    #[test]
    fn a_line_is_fitted_and_projected_to_a_limit() {
        let pts: Vec<_> = (0..10).map(|d| (day(d), 100.0 + 10.0 * d as f64)).collect();
        let t = Trend::fit(&pts).expect("fits");
        assert!((t.per_day - 10.0).abs() < 1e-9 && (t.latest - 190.0).abs() < 1e-6);
        assert!((t.fit - 1.0).abs() < 1e-9);
        assert!((t.days_until(310.0).expect("grows") - 12.0).abs() < 1e-6);
        assert_eq!(t.days_until(150.0), Some(0.0));
        let flat = Trend::fit(&[(day(0), 5.0), (day(1), 5.0)]).expect("fits");
        assert_eq!(flat.days_until(10.0), None);
        assert!(Trend::fit(&[(day(0), 5.0)]).is_none());
        assert!(Trend::fit(&[(day(0), 5.0), (day(0), 6.0)]).is_none());
        assert!(Trend::fit(&[(day(0), f64::NAN), (day(1), 1.0)]).is_none());
    }

    #[test]
    fn points_are_checked() {
        let at = day(0) + chrono::TimeDelta::seconds(61);
        let p = RollupPoint::new("service", None, "billing", Duration::from_secs(60), at);
        assert_eq!(p.bucket.timestamp() % 60, 0);
        assert!(p.bucket <= at && at - p.bucket < chrono::TimeDelta::seconds(60));
        assert!(p.validate().is_ok());
        let bad = [
            RollupPoint::new("Service", None, "", Duration::from_secs(60), at),
            RollupPoint::new("", None, "", Duration::from_secs(60), at),
            RollupPoint::new("s", None, "", Duration::from_secs(7), at),
            RollupPoint::new("s", None, "", Duration::from_secs(7200), at),
            RollupPoint::new("s", None, "", Duration::from_millis(1500), at),
            RollupPoint::new("s", None, "", Duration::from_secs(60), at).counts(1, 2),
            RollupPoint::new("s", None, "", Duration::from_secs(60), at).gauge(f64::INFINITY),
            RollupPoint::new("s", None, "x".repeat(257), Duration::from_secs(60), at),
        ];
        for b in bad {
            assert!(b.validate().is_err(), "{b:?}");
        }
        let mut off = RollupPoint::new("s", None, "", Duration::from_secs(60), at);
        off.bucket = at;
        assert!(off.validate().is_err());
    }
}
