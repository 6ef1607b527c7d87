//! The gateway's own counters, beside the hub's per-instance families (requests, errors,
//! latency, breakers, ejections) at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FailureLabels {
    service: String,
    /// `connect`, `transport`, `timeout` or `status_5xx`.
    reason: String,
}

/// Retries, retry-budget refusals and upstream failures, per service. Labels name only
/// services that were picked (registered ones), never a caller's arbitrary path.
#[derive(Debug, Clone)]
pub(crate) struct GatewayMetrics {
    retries: Family<ServiceLabel, Counter>,
    budget_exhausted: Family<ServiceLabel, Counter>,
    failures: Family<FailureLabels, Counter>,
}

impl GatewayMetrics {
    /// New families, registered in `registry`.
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let m = GatewayMetrics {
            retries: Family::default(),
            budget_exhausted: Family::default(),
            failures: Family::default(),
        };
        registry.register(
            "ate_gateway_retries",
            "Requests the gateway sent again to another pick",
            m.retries.clone(),
        );
        registry.register(
            "ate_gateway_retry_budget_exhausted",
            "Retries refused because the service's retry budget was spent",
            m.budget_exhausted.clone(),
        );
        registry.register(
            "ate_gateway_upstream_failures",
            "Upstream attempts that failed, by reason",
            m.failures.clone(),
        );
        m
    }

    fn label(service: &impl std::fmt::Display) -> ServiceLabel {
        ServiceLabel {
            service: service.to_string(),
        }
    }

    pub(crate) fn retried(&self, service: &impl std::fmt::Display) {
        self.retries.get_or_create(&Self::label(service)).inc();
    }

    pub(crate) fn budget_exhausted(&self, service: &impl std::fmt::Display) {
        self.budget_exhausted
            .get_or_create(&Self::label(service))
            .inc();
    }

    pub(crate) fn failed(&self, service: &impl std::fmt::Display, reason: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                service: service.to_string(),
                reason: reason.to_owned(),
            })
            .inc();
    }
}
