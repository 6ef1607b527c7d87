//! Service metrics: Prometheus families in a registry the host owns, and windowed
//! aggregates (rate, error rate, p50/p95/p99) for alerting and dashboards.
//!
//! * [`ServiceMetrics`]: the `ate_*` metric families (requests, errors, latency, health
//!   status, breaker state, check durations), registered with
//!   [`ServiceMetrics::register`] into the host's [`Registry`] and rendered with
//!   [`render_openmetrics`].
//! * [`MetricsRecorder`]: `record(service, instance, latency, outcome)` from anywhere (the
//!   crate's one [`Outcome`](crate::Outcome)), and recent aggregates over a window
//!   ([`WindowStats`]), with bounded memory per series.
//! * [`SqlRollups`]: coarse history in the database (points a minute, merged hourly when
//!   old), read back per tenant, and [`Trend`] to project a series forward.
//!
//! ```
//! use ate_orchestrate::Outcome;
//! use ate_orchestrate::metrics::{render_openmetrics, MetricsRecorder, RecorderConfig, ServiceMetrics};
//! use ate_orchestrate::registry::{InstanceId, ServiceName};
//! use prometheus_client::registry::Registry;
//! use std::time::Duration;
//!
//! let mut registry = Registry::default();
//! let families = ServiceMetrics::new();
//! families.register(&mut registry);
//! let recorder = MetricsRecorder::new(RecorderConfig::default())?.with_exporter(families);
//!
//! let (svc, inst) = (ServiceName::new("billing")?, InstanceId::new("billing-1")?);
//! recorder.record(&svc, &inst, Duration::from_millis(12), Outcome::Success);
//!
//! let stats = recorder.service_stats(&svc, Duration::from_secs(60))?;
//! assert_eq!(stats.count, 1);
//! let text = render_openmetrics(&registry)?;
//! assert!(text.contains(r#"ate_requests_total{service="billing",instance="billing-1",outcome="success"} 1"#));
//! # Ok::<(), ate_orchestrate::OrchestrateError>(())
//! ```

mod families;
pub(crate) mod histogram;
mod recorder;
mod rollups;
mod window;

#[cfg(test)]
mod tests;

pub use families::{
    BreakerStateMetric, CHECK_DURATION_BUCKETS, InstanceMetrics, REQUEST_LATENCY_BUCKETS,
    ServiceMetrics,
};
pub use histogram::{MAX_TRACKED, MIN_TRACKED, RELATIVE_ERROR};
pub(crate) use recorder::validate_window;
pub use recorder::{MAX_WINDOW, MetricsRecorder, RecorderConfig, WindowStats};
pub use rollups::{
    CompactReport, HISTORY_READ, HOURLY, MAX_QUERY_BUCKETS, RollupBucket, RollupPoint, RollupQuery,
    SqlRollups, Trend,
};

use crate::error::OrchestrateError;
use ate_core::CoreError;
use prometheus_client::registry::Registry;

/// The OpenMetrics text exposition of `registry` (ending in `# EOF`), as served on a
/// `/metrics` endpoint with content type
/// `application/openmetrics-text; version=1.0.0; charset=utf-8`.
///
/// Errors: [`OrchestrateError::Core`] (`Internal`) if a custom collector in the registry
/// fails to encode; the metrics of this crate never do.
pub fn render_openmetrics(registry: &Registry) -> Result<String, OrchestrateError> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).map_err(|_| {
        OrchestrateError::Core(CoreError::Internal(
            "encoding the metrics registry failed (a collector returned an error)".into(),
        ))
    })?;
    Ok(out)
}
