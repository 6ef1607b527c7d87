//! Recording outcomes from outside and querying recent aggregates over a window.

use super::families::{InstanceMetrics, ServiceMetrics};
use super::window::{Merged, Ring};
use crate::error::OrchestrateError;
use crate::outcome::Outcome;
use crate::registry::{InstanceId, ServiceName};
use ate_core::{Clock, SystemClock};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The longest window a recorder may keep (1 hour).
pub const MAX_WINDOW: Duration = Duration::from_secs(3600);

/// Tuning for a [`MetricsRecorder`]. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecorderConfig {
    /// The longest window queries may ask for, in whole seconds, 1 s to [`MAX_WINDOW`]
    /// (default 5 minutes). Each series keeps one slot per second of it.
    pub max_window: Duration,
    /// The most (service, instance) series kept (default 10,000). Records for a new series
    /// beyond it are dropped and counted in [`MetricsRecorder::dropped_records`].
    pub max_series: usize,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            max_window: Duration::from_secs(300),
            max_series: 10_000,
        }
    }
}

impl RecorderConfig {
    /// Sets [`RecorderConfig::max_window`].
    pub fn max_window(mut self, window: Duration) -> Self {
        self.max_window = window;
        self
    }

    /// Sets [`RecorderConfig::max_series`].
    pub fn max_series(mut self, n: usize) -> Self {
        self.max_series = n;
        self
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), OrchestrateError> {
        validate_window("max window", self.max_window, MAX_WINDOW)?;
        if self.max_series == 0 {
            return Err(OrchestrateError::invalid(
                "max series",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Checks that `window` is a whole number of seconds between 1 s and `max`.
pub(crate) fn validate_window(
    what: &'static str,
    window: Duration,
    max: Duration,
) -> Result<(), OrchestrateError> {
    if window < Duration::from_secs(1) {
        return Err(OrchestrateError::invalid(
            what,
            format!("{window:?} is shorter than 1 s"),
        ));
    }
    if window.subsec_nanos() != 0 {
        return Err(OrchestrateError::invalid(
            what,
            format!("{window:?} is not a whole number of seconds"),
        ));
    }
    if window > max {
        return Err(OrchestrateError::invalid(
            what,
            format!("{window:?} is longer than the maximum {max:?}"),
        ));
    }
    Ok(())
}

/// Aggregates of one service (or instance) over a recent window.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WindowStats {
    /// The window the figures cover: the seconds `(now - window, now]`, the current second
    /// included even though it is not over.
    pub window: Duration,
    /// Requests recorded in the window.
    pub count: u64,
    /// Of which failed.
    pub errors: u64,
    /// `errors / count`, 0 when there were no requests.
    pub error_rate: f64,
    /// Throughput: `count / window` in requests per second.
    pub rate_per_sec: f64,
    /// Median latency (within 2 % relative error, see [`RELATIVE_ERROR`](super::RELATIVE_ERROR)); `None` without requests.
    pub p50: Option<Duration>,
    /// 95th percentile latency.
    pub p95: Option<Duration>,
    /// 99th percentile latency.
    pub p99: Option<Duration>,
}

impl WindowStats {
    fn from_merged(window: Duration, m: &Merged) -> Self {
        let secs = window.as_secs_f64();
        WindowStats {
            window,
            count: m.count,
            errors: m.errors,
            error_rate: if m.count == 0 {
                0.0
            } else {
                m.errors as f64 / m.count as f64
            },
            rate_per_sec: m.count as f64 / secs,
            p50: m.latencies.quantile(0.50, m.count),
            p95: m.latencies.quantile(0.95, m.count),
            p99: m.latencies.quantile(0.99, m.count),
        }
    }
}

#[derive(Debug)]
struct Series {
    ring: Mutex<Ring>,
    exported: Option<InstanceMetrics>,
}

type SeriesMap = HashMap<String, HashMap<String, Arc<Series>>>;

/// Records request outcomes per (service, instance) and answers windowed aggregates.
///
/// Memory is bounded: each series is a ring of one slot per second of
/// [`RecorderConfig::max_window`]; a slot holds two counters and the latency buckets it saw
/// (sparse, at most 552 entries of 6 bytes, usually a handful), and there are at most
/// [`RecorderConfig::max_series`] series. Percentiles are within 2 % relative error of the
/// exact nearest-rank percentile for latencies between 1 µs and 1 h.
///
/// Cost of [`MetricsRecorder::record`]: a shared read lock on the series map (taken
/// exclusively only when a series is created), two hash lookups, one logarithm and one
/// uncontended per-series mutex; no lock is held across series. If an exporter is attached
/// ([`MetricsRecorder::with_exporter`]) it also updates the Prometheus families through
/// pre-resolved handles (atomics only).
///
/// Time comes from the recorder's [`Clock`] (the system clock unless
/// [`MetricsRecorder::with_clock`] is used), so tests move time without sleeping.
#[derive(Debug)]
pub struct MetricsRecorder {
    config: RecorderConfig,
    clock: Arc<dyn Clock>,
    series: RwLock<SeriesMap>,
    series_count: AtomicU64,
    exporter: Option<ServiceMetrics>,
    dropped: AtomicU64,
}

impl MetricsRecorder {
    /// A recorder with `config` on the system clock.
    ///
    /// Errors: [`OrchestrateError::InvalidInput`] for a configuration that fails
    /// [`RecorderConfig::validate`].
    pub fn new(config: RecorderConfig) -> Result<Self, OrchestrateError> {
        config.validate()?;
        Ok(MetricsRecorder {
            config,
            clock: Arc::new(SystemClock),
            series: RwLock::new(HashMap::new()),
            series_count: AtomicU64::new(0),
            exporter: None,
            dropped: AtomicU64::new(0),
        })
    }

    /// Uses `clock` for the time of records and queries.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Also records every outcome into `metrics` (the Prometheus families).
    pub fn with_exporter(mut self, metrics: ServiceMetrics) -> Self {
        self.exporter = Some(metrics);
        self
    }

    /// The attached Prometheus families, if any.
    pub fn exporter(&self) -> Option<&ServiceMetrics> {
        self.exporter.as_ref()
    }

    /// The clock in use.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The longest window queries may ask for.
    pub fn max_window(&self) -> Duration {
        self.config.max_window
    }

    /// Records dropped because [`RecorderConfig::max_series`] was reached, or because their
    /// time was older than the longest window.
    pub fn dropped_records(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records one finished request at the clock's current time.
    pub fn record(
        &self,
        service: &ServiceName,
        instance: &InstanceId,
        latency: Duration,
        outcome: Outcome,
    ) {
        self.record_at(service, instance, latency, outcome, self.clock.now());
    }

    /// Records one finished request at time `at`.
    ///
    /// Behavior: never fails. An [`Outcome::Cancelled`] request is not recorded anywhere
    /// (the caller gave up: the instance's answer is unknown, as the hub's picks treat it).
    /// A record whose series would exceed
    /// [`RecorderConfig::max_series`], or whose time is older than the longest window
    /// relative to the newest record of its series, is counted in
    /// [`MetricsRecorder::dropped_records`] instead (the Prometheus families still count it
    /// unless the series limit was the reason).
    pub fn record_at(
        &self,
        service: &ServiceName,
        instance: &InstanceId,
        latency: Duration,
        outcome: Outcome,
        at: DateTime<Utc>,
    ) {
        if outcome == Outcome::Cancelled {
            return;
        }
        let Some(series) = self.series_for(service, instance) else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if let Some(exported) = &series.exported {
            exported.record(latency, outcome);
        }
        let added = series.ring.lock().unwrap_or_else(|p| p.into_inner()).add(
            at.timestamp(),
            latency,
            outcome.is_failure(),
        );
        if !added {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn series_for(&self, service: &ServiceName, instance: &InstanceId) -> Option<Arc<Series>> {
        {
            let map = self.series.read().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = map
                .get(service.as_str())
                .and_then(|m| m.get(instance.as_str()))
            {
                return Some(s.clone());
            }
        }
        let mut map = self.series.write().unwrap_or_else(|p| p.into_inner());
        let by_instance = map.entry(service.as_str().to_owned()).or_default();
        if let Some(s) = by_instance.get(instance.as_str()) {
            return Some(s.clone());
        }
        if self.series_count.load(Ordering::Relaxed) >= self.config.max_series as u64 {
            if by_instance.is_empty() {
                map.remove(service.as_str());
            }
            return None;
        }
        let series = Arc::new(Series {
            ring: Mutex::new(Ring::new(self.config.max_window.as_secs() as usize)),
            exported: self
                .exporter
                .as_ref()
                .map(|e| e.instance(service, instance)),
        });
        by_instance.insert(instance.as_str().to_owned(), series.clone());
        self.series_count.fetch_add(1, Ordering::Relaxed);
        Some(series)
    }

    /// Aggregates of every instance of `service` over the last `window`, at the clock's
    /// current time.
    ///
    /// Errors: [`OrchestrateError::InvalidInput`] when `window` is not a whole number of
    /// seconds between 1 s and [`MetricsRecorder::max_window`]. An unknown service yields
    /// empty figures (count 0), not an error.
    pub fn service_stats(
        &self,
        service: &ServiceName,
        window: Duration,
    ) -> Result<WindowStats, OrchestrateError> {
        self.stats_at(service, None, window, self.clock.now())
    }

    /// Aggregates of one instance over the last `window` (see
    /// [`MetricsRecorder::service_stats`]).
    pub fn instance_stats(
        &self,
        service: &ServiceName,
        instance: &InstanceId,
        window: Duration,
    ) -> Result<WindowStats, OrchestrateError> {
        self.stats_at(service, Some(instance), window, self.clock.now())
    }

    /// Aggregates of a set of `service`'s instances over the last `window`, merged as one
    /// (the percentiles are those of all their requests together, not an average of each
    /// instance's). For a caller that may see only some instances of a service, such as one
    /// tenant's. Unknown instances add nothing; errors as
    /// [`MetricsRecorder::service_stats`].
    pub fn instances_stats(
        &self,
        service: &ServiceName,
        instances: &[InstanceId],
        window: Duration,
    ) -> Result<WindowStats, OrchestrateError> {
        self.instances_stats_at(service, instances, window, self.clock.now())
    }

    /// [`MetricsRecorder::instances_stats`] over the seconds `(now - window, now]`: for a
    /// past interval, such as the minute that just ended (pass its last second as `now`).
    pub fn instances_stats_at(
        &self,
        service: &ServiceName,
        instances: &[InstanceId],
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<WindowStats, OrchestrateError> {
        validate_window("window", window, self.config.max_window)?;
        let selected: Vec<Arc<Series>> = {
            let map = self.series.read().unwrap_or_else(|p| p.into_inner());
            map.get(service.as_str()).map_or_else(Vec::new, |m| {
                instances
                    .iter()
                    .filter_map(|i| m.get(i.as_str()).cloned())
                    .collect()
            })
        };
        Ok(self.merge(selected, window, now))
    }

    fn merge(
        &self,
        selected: Vec<Arc<Series>>,
        window: Duration,
        now: DateTime<Utc>,
    ) -> WindowStats {
        let mut merged = Merged::new();
        for s in selected {
            s.ring.lock().unwrap_or_else(|p| p.into_inner()).merge(
                now.timestamp(),
                window.as_secs() as i64,
                &mut merged,
            );
        }
        WindowStats::from_merged(window, &merged)
    }

    /// Aggregates over the seconds `(now - window, now]` of one instance, or of every
    /// instance of the service when `instance` is `None`.
    pub fn stats_at(
        &self,
        service: &ServiceName,
        instance: Option<&InstanceId>,
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<WindowStats, OrchestrateError> {
        validate_window("window", window, self.config.max_window)?;
        let selected: Vec<Arc<Series>> = {
            let map = self.series.read().unwrap_or_else(|p| p.into_inner());
            match (map.get(service.as_str()), instance) {
                (None, _) => Vec::new(),
                (Some(m), None) => m.values().cloned().collect(),
                (Some(m), Some(i)) => m.get(i.as_str()).cloned().into_iter().collect(),
            }
        };
        Ok(self.merge(selected, window, now))
    }

    /// Forgets one instance: its windowed history and, if an exporter is attached, its
    /// Prometheus series. Call it when the instance is deregistered.
    pub fn forget_instance(&self, service: &ServiceName, instance: &InstanceId) {
        {
            let mut map = self.series.write().unwrap_or_else(|p| p.into_inner());
            if let Some(m) = map.get_mut(service.as_str()) {
                if m.remove(instance.as_str()).is_some() {
                    self.series_count.fetch_sub(1, Ordering::Relaxed);
                }
                if m.is_empty() {
                    map.remove(service.as_str());
                }
            }
        }
        if let Some(e) = &self.exporter {
            e.forget_instance(service, instance);
        }
    }
}
