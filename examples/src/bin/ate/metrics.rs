//! The host's metrics registry: HTTP requests by method, matched route and status, and
//! their latency, next to the `ate_*` families of ate-orchestrate; served at `/metrics` as
//! OpenMetrics text.

use ate_core::ErrorKind;
use ate_orchestrate::Outcome;
use ate_orchestrate::metrics::MetricsRecorder;
use ate_orchestrate::registry::{InstanceId, ServiceName};
use axum::http::{Method, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::time::Duration;

/// Latency buckets in seconds: 1 ms to 10 s.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

/// The HTTP metric families, and the windowed figures of the API's traffic as a whole
/// (the history's `api` series).
#[derive(Debug)]
pub(crate) struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    traffic: Arc<MetricsRecorder>,
    names: Option<(ServiceName, InstanceId)>,
}

/// The recorder's service name for the API's traffic (one instance, [`API_INSTANCE`]).
pub(crate) const API_SERVICE: &str = "api";
/// The recorder's instance name for the API's traffic.
pub(crate) const API_INSTANCE: &str = "host";

impl HttpMetrics {
    /// New families, registered in `registry`.
    pub(crate) fn new(registry: &mut Registry, traffic: Arc<MetricsRecorder>) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(BUCKETS));
        registry.register(
            "ate_http_requests",
            "HTTP requests served, by method, matched route and status",
            requests.clone(),
        );
        registry.register_with_unit(
            "ate_http_request_duration",
            "Time to the response head, by method and matched route",
            Unit::Seconds,
            latency.clone(),
        );
        let names = ServiceName::new(API_SERVICE)
            .ok()
            .zip(InstanceId::new(API_INSTANCE).ok());
        HttpMetrics {
            requests,
            latency,
            traffic,
            names,
        }
    }

    /// Counts one request.
    pub(crate) fn record(&self, method: &Method, route: &str, status: StatusCode, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.as_str().to_owned(),
                route: route.to_owned(),
                status: status.as_u16(),
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.as_str().to_owned(),
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
        if let Some((service, instance)) = &self.names {
            let outcome = if status.is_server_error() {
                Outcome::Failure(ErrorKind::Unavailable)
            } else {
                Outcome::Success
            };
            self.traffic.record(service, instance, took, outcome);
        }
    }
}
