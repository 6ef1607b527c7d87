//! The Prometheus metric families, registered into a registry the host owns.

use crate::outcome::Outcome;
use crate::registry::{HealthStatus, InstanceId, ServiceName};
use ate_core::ErrorKind;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Upper bounds (seconds) of the request latency histogram's buckets: 0.5 ms to 10 s.
pub const REQUEST_LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds (seconds) of the health check duration histogram's buckets: 1 ms to 30 s.
pub const CHECK_DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// A circuit breaker's state as exported by `ate_circuit_breaker_state` (0 closed, 1 open,
/// 2 half-open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerStateMetric {
    /// Calls flow (gauge value 0).
    Closed,
    /// Calls are refused (gauge value 1).
    Open,
    /// A limited number of probes are let through (gauge value 2).
    HalfOpen,
}

impl BreakerStateMetric {
    /// The gauge value: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> i64 {
        match self {
            BreakerStateMetric::Closed => 0,
            BreakerStateMetric::Open => 1,
            BreakerStateMetric::HalfOpen => 2,
        }
    }

    /// The `to` label value of `ate_circuit_breaker_transitions_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerStateMetric::Closed => "closed",
            BreakerStateMetric::Open => "open",
            BreakerStateMetric::HalfOpen => "half_open",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    service: String,
    instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    service: String,
    instance: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    service: String,
    instance: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    service: String,
    instance: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    service: String,
    instance: String,
    to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    service: String,
    instance: String,
    kind: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_LATENCY_BUCKETS)
}

fn check_histogram() -> Histogram {
    Histogram::new(CHECK_DURATION_BUCKETS)
}

const STATUSES: [HealthStatus; 3] = [
    HealthStatus::Passing,
    HealthStatus::Warning,
    HealthStatus::Critical,
];
const BREAKER_STATES: [BreakerStateMetric; 3] = [
    BreakerStateMetric::Closed,
    BreakerStateMetric::Open,
    BreakerStateMetric::HalfOpen,
];

/// The service metric families, exported through a `prometheus_client` [`Registry`] the host
/// owns. Cheap to clone: clones share the same series.
///
/// | family | type | labels |
/// | --- | --- | --- |
/// | `ate_requests_total` | counter | `service`, `instance`, `outcome` (`success`, `error`: an [`Outcome::Failure`] of any kind) |
/// | `ate_request_errors_total` | counter | `service`, `instance`, `kind` ([`ErrorKind::as_str`]) |
/// | `ate_request_duration_seconds` | histogram ([`REQUEST_LATENCY_BUCKETS`]) | `service`, `instance` |
/// | `ate_instance_health_status` | gauge (1 for the current status, 0 for the others) | `service`, `instance`, `status` |
/// | `ate_circuit_breaker_state` | gauge (0 closed, 1 open, 2 half-open) | `service`, `instance` |
/// | `ate_circuit_breaker_transitions_total` | counter | `service`, `instance`, `to` |
/// | `ate_outlier_ejected` | gauge (1 while ejected by outlier detection) | `service`, `instance` |
/// | `ate_health_check_duration_seconds` | histogram ([`CHECK_DURATION_BUCKETS`]) | `service`, `instance`, `kind` |
///
/// **Cardinality** is bounded by construction: the only open-ended label values are service
/// names and instance ids, which are validated registry names; every other label takes a
/// value from a fixed set (2 outcomes, 12 error kinds, 3 statuses, 3 breaker states, and
/// check kinds, which are `&'static str` chosen by code, not by input). An instance therefore
/// owns at most `2 + 12 + 1 + 3 + 1 + 3 + 1 + kinds` series. Call
/// [`ServiceMetrics::forget_instance`] when an instance is deregistered so its series stop
/// being exported.
#[derive(Debug, Clone)]
pub struct ServiceMetrics {
    requests: Family<OutcomeLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    latency: HistogramFamily<InstanceLabels>,
    health: Family<StatusLabels, Gauge>,
    breaker: Family<InstanceLabels, Gauge>,
    transitions: Family<TransitionLabels, Counter>,
    ejected: Family<InstanceLabels, Gauge>,
    check_duration: HistogramFamily<CheckLabels>,
    check_kinds: Arc<RwLock<BTreeSet<&'static str>>>,
}

impl Default for ServiceMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn labels(service: &ServiceName, instance: &InstanceId) -> InstanceLabels {
    InstanceLabels {
        service: service.as_str().to_owned(),
        instance: instance.as_str().to_owned(),
    }
}

impl ServiceMetrics {
    /// Empty families, not yet registered anywhere.
    pub fn new() -> Self {
        ServiceMetrics {
            requests: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(request_histogram),
            health: Family::default(),
            breaker: Family::default(),
            transitions: Family::default(),
            ejected: Family::default(),
            check_duration: Family::new_with_constructor(check_histogram),
            check_kinds: Arc::new(RwLock::new(BTreeSet::new())),
        }
    }

    /// Registers every family into `registry` (the host's; a sub-registry with a prefix or
    /// constant labels works too).
    ///
    /// Behavior: registering the same `ServiceMetrics` twice into one registry exports each
    /// family twice, which scrapers reject; register once per registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "ate_requests",
            "Requests sent to a service instance, by outcome",
            self.requests.clone(),
        );
        registry.register(
            "ate_request_errors",
            "Failed requests to a service instance, by error kind",
            self.errors.clone(),
        );
        registry.register_with_unit(
            "ate_request_duration",
            "Latency of requests to a service instance",
            Unit::Seconds,
            self.latency.clone(),
        );
        registry.register(
            "ate_instance_health_status",
            "Health of a service instance: 1 for its current status, 0 for the others",
            self.health.clone(),
        );
        registry.register(
            "ate_circuit_breaker_state",
            "Circuit breaker state of a service instance: 0 closed, 1 open, 2 half-open",
            self.breaker.clone(),
        );
        registry.register(
            "ate_circuit_breaker_transitions",
            "Circuit breaker state changes of a service instance, by new state",
            self.transitions.clone(),
        );
        registry.register(
            "ate_outlier_ejected",
            "Whether outlier detection has ejected a service instance: 1 ejected, 0 not",
            self.ejected.clone(),
        );
        registry.register_with_unit(
            "ate_health_check_duration",
            "Duration of health checks of a service instance, by check kind",
            Unit::Seconds,
            self.check_duration.clone(),
        );
    }

    /// Records one finished request.
    ///
    /// Behavior: increments `ate_requests_total{outcome}`, observes the latency, and for a
    /// failure increments `ate_request_errors_total{kind}`. An [`Outcome::Cancelled`]
    /// request records nothing (the instance never answered). Cost: a few label allocations
    /// and hash lookups; use [`ServiceMetrics::instance`] on hot paths.
    pub fn record_request(
        &self,
        service: &ServiceName,
        instance: &InstanceId,
        latency: Duration,
        outcome: Outcome,
    ) {
        self.instance(service, instance).record(latency, outcome);
    }

    /// Resolved handles for one instance: recording through them touches only atomics (and,
    /// for errors, one family lookup). A handle outlives [`ServiceMetrics::forget_instance`]
    /// but what it records after that is no longer exported.
    pub fn instance(&self, service: &ServiceName, instance: &InstanceId) -> InstanceMetrics {
        let base = labels(service, instance);
        let outcome = |outcome: &'static str| OutcomeLabels {
            service: base.service.clone(),
            instance: base.instance.clone(),
            outcome,
        };
        InstanceMetrics {
            success: self.requests.get_or_create_owned(&outcome("success")),
            failure: self.requests.get_or_create_owned(&outcome("error")),
            latency: self.latency.get_or_create_owned(&base),
            errors: self.errors.clone(),
            labels: base,
        }
    }

    /// Sets `ate_instance_health_status`: 1 for `status`, 0 for the other statuses.
    pub fn set_health_status(
        &self,
        service: &ServiceName,
        instance: &InstanceId,
        status: HealthStatus,
    ) {
        let base = labels(service, instance);
        for s in STATUSES {
            let l = StatusLabels {
                service: base.service.clone(),
                instance: base.instance.clone(),
                status: s.as_str(),
            };
            self.health.get_or_create(&l).set(i64::from(s == status));
        }
    }

    /// Sets `ate_circuit_breaker_state`; when the value changes (or is first set to a state
    /// other than closed), also increments `ate_circuit_breaker_transitions_total{to}`.
    pub fn set_breaker_state(
        &self,
        service: &ServiceName,
        instance: &InstanceId,
        state: BreakerStateMetric,
    ) {
        let base = labels(service, instance);
        let previous = self.breaker.get_or_create(&base).set(state.as_gauge());
        if previous != state.as_gauge() {
            self.transitions
                .get_or_create(&TransitionLabels {
                    service: base.service,
                    instance: base.instance,
                    to: state.as_str(),
                })
                .inc();
        }
    }

    /// Sets `ate_outlier_ejected` (1 while ejected).
    pub fn set_ejected(&self, service: &ServiceName, instance: &InstanceId, ejected: bool) {
        self.ejected
            .get_or_create(&labels(service, instance))
            .set(i64::from(ejected));
    }

    /// Observes one health check's duration. `kind` is the check kind's stable name
    /// (`http`, `tcp`, `ttl`, `custom`); being `&'static str` keeps the label set bounded.
    pub fn observe_check_duration(
        &self,
        service: &ServiceName,
        instance: &InstanceId,
        kind: &'static str,
        duration: Duration,
    ) {
        let known = self
            .check_kinds
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(kind);
        if !known {
            self.check_kinds
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(kind);
        }
        let base = labels(service, instance);
        self.check_duration
            .get_or_create(&CheckLabels {
                service: base.service,
                instance: base.instance,
                kind,
            })
            .observe(duration.as_secs_f64());
    }

    /// Removes every series of one instance (call it when the instance is deregistered).
    ///
    /// Behavior: the instance disappears from the next rendering; recording for it again
    /// creates fresh series starting from zero. Forgetting an unknown instance does nothing.
    pub fn forget_instance(&self, service: &ServiceName, instance: &InstanceId) {
        let base = labels(service, instance);
        let (s, i) = (&base.service, &base.instance);
        for outcome in ["success", "error"] {
            self.requests.remove(&OutcomeLabels {
                service: s.clone(),
                instance: i.clone(),
                outcome,
            });
        }
        for kind in ErrorKind::ALL {
            self.errors.remove(&ErrorLabels {
                service: s.clone(),
                instance: i.clone(),
                kind: kind.as_str(),
            });
        }
        self.latency.remove(&base);
        for status in STATUSES {
            self.health.remove(&StatusLabels {
                service: s.clone(),
                instance: i.clone(),
                status: status.as_str(),
            });
        }
        self.breaker.remove(&base);
        self.ejected.remove(&base);
        for to in BREAKER_STATES {
            self.transitions.remove(&TransitionLabels {
                service: s.clone(),
                instance: i.clone(),
                to: to.as_str(),
            });
        }
        let kinds: Vec<&'static str> = self
            .check_kinds
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        for kind in kinds {
            self.check_duration.remove(&CheckLabels {
                service: s.clone(),
                instance: i.clone(),
                kind,
            });
        }
    }
}

/// One instance's request metrics, resolved once (see [`ServiceMetrics::instance`]).
#[derive(Debug, Clone)]
pub struct InstanceMetrics {
    success: Counter,
    failure: Counter,
    latency: Histogram,
    errors: Family<ErrorLabels, Counter>,
    labels: InstanceLabels,
}

impl InstanceMetrics {
    /// Records one finished request (see [`ServiceMetrics::record_request`]).
    pub fn record(&self, latency: Duration, outcome: Outcome) {
        match outcome {
            Outcome::Success => {
                self.latency.observe(latency.as_secs_f64());
                self.success.inc();
            }
            Outcome::Failure(kind) => {
                self.latency.observe(latency.as_secs_f64());
                self.failure.inc();
                self.errors
                    .get_or_create(&ErrorLabels {
                        service: self.labels.service.clone(),
                        instance: self.labels.instance.clone(),
                        kind: kind.as_str(),
                    })
                    .inc();
            }
            // The caller gave up: no answer of the instance to count.
            Outcome::Cancelled => {}
        }
    }
}
