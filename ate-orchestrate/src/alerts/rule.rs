//! Alert rules: what to watch, how bad is too bad, for how long.

use crate::error::OrchestrateError;
use crate::metrics::validate_window;
use crate::registry::{HealthStatus, InstanceId, ServiceName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Longest rule id, label key and label value (bytes).
pub const MAX_RULE_ID_LEN: usize = 128;
/// Longest rule name (bytes).
pub const MAX_RULE_NAME_LEN: usize = 256;
/// Most labels on one rule.
pub const MAX_RULE_LABELS: usize = 32;
/// Longest `for` duration a rule may have (1 day).
pub const MAX_FOR: Duration = Duration::from_secs(86_400);
/// Longest window a rule may use (1 hour); the engine's recorder may allow less.
pub const MAX_RULE_WINDOW: Duration = Duration::from_secs(3600);

/// How urgent an alert is.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// For information.
    Info,
    /// Needs attention soon (the default).
    #[default]
    Warning,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// The stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// Parses [`Severity::as_str`]'s names.
    pub fn parse(s: &str) -> Result<Self, OrchestrateError> {
        match s {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            other => Err(OrchestrateError::invalid(
                "severity",
                format!(
                    "{:?} is not one of info, warning, critical",
                    other.chars().take(32).collect::<String>()
                ),
            )),
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A latency percentile a rule can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Quantile {
    /// The median.
    P50,
    /// The 95th percentile.
    P95,
    /// The 99th percentile.
    P99,
}

impl Quantile {
    /// `p50`, `p95` or `p99`.
    pub fn as_str(self) -> &'static str {
        match self {
            Quantile::P50 => "p50",
            Quantile::P95 => "p95",
            Quantile::P99 => "p99",
        }
    }
}

/// What a rule watches. Metric conditions read the engine's
/// [`MetricsRecorder`](crate::metrics::MetricsRecorder) over `window`, for one instance or,
/// with `instance: None`, the whole service; state conditions read what the host fed the
/// engine ([`AlertEngine::set_instance_status`](super::AlertEngine::set_instance_status),
/// [`AlertEngine::set_breaker_open`](super::AlertEngine::set_breaker_open)).
///
/// As JSON (how [`SqlAlertRules`](super::SqlAlertRules) keeps it and hosts take it), the
/// variant is named by `kind` (`error_rate_above`, `latency_above`, …), windows are
/// `window_secs`, a latency threshold `threshold_ms`, a backlog `oldest_ready_secs`:
/// `{"kind": "error_rate_above", "service": "billing", "threshold": 0.05, "window_secs": 60}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Condition {
    /// Breached when the error rate over `window` is above `threshold` (0 to 1) and at least
    /// `min_requests` requests were recorded.
    ErrorRateAbove {
        /// The service.
        service: ServiceName,
        /// One instance, or `None` for the whole service.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<InstanceId>,
        /// The error rate, 0 to 1.
        threshold: f64,
        /// The window, whole seconds.
        #[serde(rename = "window_secs", with = "whole_secs")]
        window: Duration,
        /// Fewest requests for the rate to count (default 1), so two calls do not page.
        #[serde(default = "one")]
        min_requests: u64,
    },
    /// Breached when the latency percentile over `window` is above `threshold` (no requests:
    /// not breached).
    LatencyAbove {
        /// The service.
        service: ServiceName,
        /// One instance, or `None` for the whole service.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<InstanceId>,
        /// Which percentile.
        quantile: Quantile,
        /// The latency limit.
        #[serde(rename = "threshold_ms", with = "whole_millis")]
        threshold: Duration,
        /// The window, whole seconds.
        #[serde(rename = "window_secs", with = "whole_secs")]
        window: Duration,
    },
    /// Breached when the request rate over `window` is below `per_second` (traffic dropped).
    /// A service with no recorded traffic at all counts as rate 0, so such a rule breaches
    /// from the first evaluation until traffic arrives; give it a `for` duration.
    RequestRateBelow {
        /// The service.
        service: ServiceName,
        /// One instance, or `None` for the whole service.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<InstanceId>,
        /// Requests per second.
        per_second: f64,
        /// The window, whole seconds.
        #[serde(rename = "window_secs", with = "whole_secs")]
        window: Duration,
    },
    /// Breached when the request rate over `window` is above `per_second` (a surge).
    RequestRateAbove {
        /// The service.
        service: ServiceName,
        /// One instance, or `None` for the whole service.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<InstanceId>,
        /// Requests per second.
        per_second: f64,
        /// The window, whole seconds.
        #[serde(rename = "window_secs", with = "whole_secs")]
        window: Duration,
    },
    /// Breached while the instance (or, with `None`, any instance of the service) has a
    /// health status at least as bad as `at_least` (usually critical).
    InstanceStatus {
        /// The service.
        service: ServiceName,
        /// One instance, or `None` for any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<InstanceId>,
        /// The status that counts as breached, and every worse one.
        at_least: HealthStatus,
    },
    /// Breached while the instance's (or, with `None`, any instance's) circuit breaker is
    /// open.
    BreakerOpen {
        /// The service.
        service: ServiceName,
        /// One instance, or `None` for any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<InstanceId>,
    },
    /// Breached while the longest-waiting due workflow node of the tenant (or, with
    /// `None`, of any tenant) has waited longer than `oldest_ready`: workers are missing,
    /// stuck or too few. Fed by [`AlertEngine::set_workflow_stats`](super::AlertEngine::set_workflow_stats);
    /// never breached before the first feed.
    WorkflowBacklogAbove {
        /// One tenant, or `None` for any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<ate_core::TenantId>,
        /// The longest acceptable wait.
        #[serde(rename = "oldest_ready_secs", with = "whole_secs")]
        oldest_ready: Duration,
    },
}

impl Condition {
    /// The oldest due workflow node of `tenant` (or any tenant) waited longer than
    /// `oldest_ready`.
    pub fn workflow_backlog_above(
        tenant: Option<ate_core::TenantId>,
        oldest_ready: Duration,
    ) -> Self {
        Condition::WorkflowBacklogAbove {
            tenant,
            oldest_ready,
        }
    }

    /// Error rate of the whole service above `threshold` over `window` (min 1 request).
    pub fn error_rate_above(service: ServiceName, threshold: f64, window: Duration) -> Self {
        Condition::ErrorRateAbove {
            service,
            instance: None,
            threshold,
            window,
            min_requests: 1,
        }
    }

    /// A latency percentile of the whole service above `threshold` over `window`.
    pub fn latency_above(
        service: ServiceName,
        quantile: Quantile,
        threshold: Duration,
        window: Duration,
    ) -> Self {
        Condition::LatencyAbove {
            service,
            instance: None,
            quantile,
            threshold,
            window,
        }
    }

    /// Like [`Condition::latency_above`] with the threshold in seconds, as bindings pass it.
    ///
    /// Errors: [`OrchestrateError::InvalidInput`] for a negative, NaN or infinite threshold.
    pub fn latency_above_secs(
        service: ServiceName,
        quantile: Quantile,
        threshold_secs: f64,
        window: Duration,
    ) -> Result<Self, OrchestrateError> {
        let threshold = Duration::try_from_secs_f64(threshold_secs).map_err(|_| {
            OrchestrateError::invalid(
                "latency threshold",
                format!("{threshold_secs} s is not a non-negative, finite number of seconds"),
            )
        })?;
        Ok(Self::latency_above(service, quantile, threshold, window))
    }

    /// Request rate of the whole service below `per_second` over `window`.
    pub fn request_rate_below(service: ServiceName, per_second: f64, window: Duration) -> Self {
        Condition::RequestRateBelow {
            service,
            instance: None,
            per_second,
            window,
        }
    }

    /// Request rate of the whole service above `per_second` over `window`.
    pub fn request_rate_above(service: ServiceName, per_second: f64, window: Duration) -> Self {
        Condition::RequestRateAbove {
            service,
            instance: None,
            per_second,
            window,
        }
    }

    /// Any instance of `service` critical.
    pub fn instance_critical(service: ServiceName) -> Self {
        Condition::InstanceStatus {
            service,
            instance: None,
            at_least: HealthStatus::Critical,
        }
    }

    /// Any instance of `service` with an open breaker.
    pub fn breaker_open(service: ServiceName) -> Self {
        Condition::BreakerOpen {
            service,
            instance: None,
        }
    }

    /// Narrows the condition to one instance (a workflow condition has none: unchanged).
    pub fn for_instance(mut self, id: InstanceId) -> Self {
        match &mut self {
            Condition::ErrorRateAbove { instance, .. }
            | Condition::LatencyAbove { instance, .. }
            | Condition::RequestRateBelow { instance, .. }
            | Condition::RequestRateAbove { instance, .. }
            | Condition::InstanceStatus { instance, .. }
            | Condition::BreakerOpen { instance, .. } => *instance = Some(id),
            Condition::WorkflowBacklogAbove { .. } => {}
        }
        self
    }

    /// The service watched (`None` for a workflow condition).
    pub fn service(&self) -> Option<&ServiceName> {
        match self {
            Condition::ErrorRateAbove { service, .. }
            | Condition::LatencyAbove { service, .. }
            | Condition::RequestRateBelow { service, .. }
            | Condition::RequestRateAbove { service, .. }
            | Condition::InstanceStatus { service, .. }
            | Condition::BreakerOpen { service, .. } => Some(service),
            Condition::WorkflowBacklogAbove { .. } => None,
        }
    }

    /// The metric window, for metric conditions.
    pub fn window(&self) -> Option<Duration> {
        match self {
            Condition::ErrorRateAbove { window, .. }
            | Condition::LatencyAbove { window, .. }
            | Condition::RequestRateBelow { window, .. }
            | Condition::RequestRateAbove { window, .. } => Some(*window),
            Condition::InstanceStatus { .. }
            | Condition::BreakerOpen { .. }
            | Condition::WorkflowBacklogAbove { .. } => None,
        }
    }

    /// Checks thresholds and windows (windows up to [`MAX_RULE_WINDOW`]).
    pub fn validate(&self) -> Result<(), OrchestrateError> {
        if let Some(window) = self.window() {
            validate_window("alert window", window, MAX_RULE_WINDOW)?;
        }
        match self {
            Condition::ErrorRateAbove { threshold, .. } => {
                if !(0.0..=1.0).contains(threshold) {
                    return Err(OrchestrateError::invalid(
                        "error rate threshold",
                        format!("{threshold} is outside 0..=1"),
                    ));
                }
            }
            Condition::RequestRateBelow { per_second, .. }
            | Condition::RequestRateAbove { per_second, .. } => {
                if !per_second.is_finite() || *per_second < 0.0 {
                    return Err(OrchestrateError::invalid(
                        "request rate threshold",
                        format!("{per_second} is not a finite, non-negative rate"),
                    ));
                }
            }
            Condition::WorkflowBacklogAbove { oldest_ready, .. } => {
                if oldest_ready.is_zero() {
                    return Err(OrchestrateError::invalid(
                        "workflow backlog threshold",
                        "must be positive",
                    ));
                }
            }
            Condition::LatencyAbove { threshold, .. } => {
                if threshold.is_zero() {
                    return Err(OrchestrateError::invalid(
                        "latency threshold",
                        "must be positive",
                    ));
                }
            }
            Condition::InstanceStatus { .. } | Condition::BreakerOpen { .. } => {}
        }
        Ok(())
    }
}

/// A threshold rule: a [`Condition`] that must hold for `for_duration` before the alert
/// fires.
///
/// As JSON: `{"id", "name", "severity"?, "labels"?, "condition", "for_secs"?}` (unknown
/// fields refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AlertRule {
    /// Unique id within an engine: 1 to [`MAX_RULE_ID_LEN`] ASCII letters, digits, `-`, `_`,
    /// `.` or `:`.
    pub id: String,
    /// Human-readable name, 1 to [`MAX_RULE_NAME_LEN`] bytes.
    pub name: String,
    /// How urgent (default warning).
    #[serde(default)]
    pub severity: Severity,
    /// Free-form labels copied into every event (`team=payments`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// What is watched.
    pub condition: Condition,
    /// How long the condition must hold before firing (0: fire on the first breached
    /// evaluation; at most [`MAX_FOR`]).
    #[serde(default, rename = "for_secs", with = "whole_secs")]
    pub for_duration: Duration,
}

impl AlertRule {
    /// A warning rule with no labels that fires as soon as `condition` is breached.
    pub fn new(id: impl Into<String>, name: impl Into<String>, condition: Condition) -> Self {
        AlertRule {
            id: id.into(),
            name: name.into(),
            severity: Severity::default(),
            labels: BTreeMap::new(),
            condition,
            for_duration: Duration::ZERO,
        }
    }

    /// Sets the severity.
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets how long the condition must hold before firing.
    pub fn for_duration(mut self, d: Duration) -> Self {
        self.for_duration = d;
        self
    }

    /// Checks every field.
    ///
    /// Errors: [`OrchestrateError::InvalidInput`] naming the field: an empty or malformed id,
    /// an empty or overlong name, too many or malformed labels, a `for` above [`MAX_FOR`],
    /// or a condition failing [`Condition::validate`].
    pub fn validate(&self) -> Result<(), OrchestrateError> {
        validate_token("alert rule id", &self.id)?;
        if self.name.trim().is_empty() {
            return Err(OrchestrateError::invalid(
                "alert rule name",
                "must not be empty",
            ));
        }
        if self.name.len() > MAX_RULE_NAME_LEN {
            return Err(OrchestrateError::invalid(
                "alert rule name",
                format!(
                    "{} bytes is longer than {MAX_RULE_NAME_LEN}",
                    self.name.len()
                ),
            ));
        }
        if self.labels.len() > MAX_RULE_LABELS {
            return Err(OrchestrateError::invalid(
                "alert rule labels",
                format!(
                    "{} labels is more than {MAX_RULE_LABELS}",
                    self.labels.len()
                ),
            ));
        }
        for (k, v) in &self.labels {
            validate_token("alert label key", k)?;
            if v.len() > MAX_RULE_ID_LEN {
                return Err(OrchestrateError::invalid(
                    "alert label value",
                    format!("value of {k:?} is longer than {MAX_RULE_ID_LEN} bytes"),
                ));
            }
        }
        if self.for_duration > MAX_FOR {
            return Err(OrchestrateError::invalid(
                "alert for duration",
                format!("{:?} is longer than {MAX_FOR:?}", self.for_duration),
            ));
        }
        self.condition.validate()
    }
}

fn one() -> u64 {
    1
}

/// A duration as whole seconds.
mod whole_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// A duration as whole milliseconds.
mod whole_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

fn validate_token(what: &'static str, s: &str) -> Result<(), OrchestrateError> {
    crate::registry::model::validate_token(what, s, MAX_RULE_ID_LEN)
}
