//! Workflow metrics: Prometheus families in the host's registry ([`WorkflowMetrics`]),
//! rendered with the rest by [`render_openmetrics`](crate::metrics::render_openmetrics).
//!
//! | family | type | labels | from |
//! |---|---|---|---|
//! | `ate_workflow_runs` | gauge | `tenant`, `status` | the database ([`WorkflowStats`]) |
//! | `ate_workflow_ready_nodes` | gauge | `tenant` | the database: the queue of due nodes |
//! | `ate_workflow_oldest_ready_seconds` | gauge | `tenant` | the database: how long the longest-waiting due node has waited |
//! | `ate_workflow_running_nodes` | gauge | `tenant` | the database |
//! | `ate_workflow_node_attempts_total` | counter | `step`, `outcome` | this process's workers |
//! | `ate_workflow_node_attempt_duration_seconds` | histogram | `step` | this process's workers |
//! | `ate_workflow_lease_expiries_total` | counter | | this process's maintenance passes |
//! | `ate_workflow_schedule_ticks_total` | counter | | this process's maintenance passes |
//!
//! The database gauges describe every host's work: refresh them from one place with
//! [`WorkflowMetrics::observe`] (workers given the metrics do so every
//! [`WorkerConfig::stats_interval`](crate::workflow::WorkerConfig::stats_interval)); the
//! counters count what this process did, so sum them across hosts.
//!
//! Attempt outcomes: `succeeded`, `failed` (a recorded failure, retried or not), `lost`
//! (the lease was taken back: nothing recorded), `released` (given back at shutdown).
//!
//! An alert such as "the oldest ready node of any tenant has waited over 60 s" is
//! `max(ate_workflow_oldest_ready_seconds) > 60` in Prometheus, or
//! [`alerts::Condition::WorkflowBacklogAbove`](crate::alerts::Condition::WorkflowBacklogAbove)
//! in ATE's own alert engine.

use super::state::RunStatus;
use super::store::{Maintenance, WorkflowStats};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Upper bounds (seconds) of the attempt duration histogram's buckets: 5 ms to 1 hour.
pub const ATTEMPT_DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 120.0, 600.0, 3600.0,
];

/// How an attempt ended, as counted by `ate_workflow_node_attempts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// Its output was recorded.
    Succeeded,
    /// Its failure was recorded (retried or not).
    Failed,
    /// Its lease was taken back; nothing was recorded.
    Lost,
    /// Given back unfinished at shutdown.
    Released,
}

impl AttemptOutcome {
    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Lost => "lost",
            AttemptOutcome::Released => "released",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct RunLabels {
    tenant: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    step: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    step: String,
}

fn attempt_histogram() -> Histogram {
    Histogram::new(ATTEMPT_DURATION_BUCKETS)
}

/// The label sets the database gauges were last set for, so that a tenant whose work is
/// gone is removed instead of frozen at its last value.
#[derive(Debug, Default)]
struct Seen {
    tenants: BTreeSet<TenantLabels>,
    runs: BTreeSet<RunLabels>,
}

/// The workflow metric families; cheap to clone (clones share the series).
#[derive(Debug, Clone)]
pub struct WorkflowMetrics {
    runs: Family<RunLabels, Gauge>,
    ready: Family<TenantLabels, Gauge>,
    oldest_ready: Family<TenantLabels, Gauge<f64, AtomicU64>>,
    running: Family<TenantLabels, Gauge>,
    attempts: Family<AttemptLabels, Counter>,
    attempt_duration: Family<StepLabels, Histogram, fn() -> Histogram>,
    lease_expiries: Counter,
    schedule_ticks: Counter,
    seen: Arc<Mutex<Seen>>,
}

impl Default for WorkflowMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkflowMetrics {
    /// Empty families, not yet registered anywhere.
    pub fn new() -> Self {
        WorkflowMetrics {
            runs: Family::default(),
            ready: Family::default(),
            oldest_ready: Family::default(),
            running: Family::default(),
            attempts: Family::default(),
            attempt_duration: Family::new_with_constructor(attempt_histogram),
            lease_expiries: Counter::default(),
            schedule_ticks: Counter::default(),
            seen: Arc::default(),
        }
    }

    /// Registers every family into `registry` (once per registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "ate_workflow_runs",
            "Workflow runs stored, by tenant and status",
            self.runs.clone(),
        );
        registry.register(
            "ate_workflow_ready_nodes",
            "Workflow nodes due and waiting for a worker, by tenant",
            self.ready.clone(),
        );
        registry.register_with_unit(
            "ate_workflow_oldest_ready",
            "How long the longest-waiting due workflow node has waited, by tenant",
            Unit::Seconds,
            self.oldest_ready.clone(),
        );
        registry.register(
            "ate_workflow_running_nodes",
            "Workflow nodes running now, by tenant",
            self.running.clone(),
        );
        registry.register(
            "ate_workflow_node_attempts",
            "Workflow node attempts run by this process's workers, by step and outcome",
            self.attempts.clone(),
        );
        registry.register_with_unit(
            "ate_workflow_node_attempt_duration",
            "Duration of workflow node attempts run by this process's workers, by step",
            Unit::Seconds,
            self.attempt_duration.clone(),
        );
        registry.register(
            "ate_workflow_lease_expiries",
            "Workflow attempts taken back after their lease expired (their worker died or hung)",
            self.lease_expiries.clone(),
        );
        registry.register(
            "ate_workflow_schedule_ticks",
            "Workflow schedule ticks fired by this process",
            self.schedule_ticks.clone(),
        );
    }

    /// Sets the database gauges from `stats`; tenants (and statuses) no longer in it are
    /// removed.
    pub fn observe(&self, stats: &WorkflowStats) {
        let mut tenants = BTreeSet::new();
        let mut runs = BTreeSet::new();
        for (tenant, work) in &stats.tenants {
            let t = TenantLabels {
                tenant: tenant.to_string(),
            };
            let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            self.ready.get_or_create(&t).set(gauge(work.ready_nodes));
            self.running
                .get_or_create(&t)
                .set(gauge(work.running_nodes));
            self.oldest_ready
                .get_or_create(&t)
                .set(stats.oldest_ready_age(*tenant).as_secs_f64());
            for (status, n) in &work.runs {
                let labels = RunLabels {
                    tenant: t.tenant.clone(),
                    status: status_label(*status),
                };
                self.runs.get_or_create(&labels).set(gauge(*n));
                runs.insert(labels);
            }
            tenants.insert(t);
        }
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        for gone in seen.tenants.difference(&tenants) {
            self.ready.remove(gone);
            self.running.remove(gone);
            self.oldest_ready.remove(gone);
        }
        for gone in seen.runs.difference(&runs) {
            self.runs.remove(gone);
        }
        *seen = Seen { tenants, runs };
    }

    /// Counts one attempt of `step` that ended as `outcome` after `took`.
    pub fn record_attempt(&self, step: &str, outcome: AttemptOutcome, took: Duration) {
        self.attempts
            .get_or_create(&AttemptLabels {
                step: step.to_owned(),
                outcome: outcome.as_str(),
            })
            .inc();
        self.attempt_duration
            .get_or_create(&StepLabels {
                step: step.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts what a maintenance pass did (lease expiries, schedule ticks).
    pub fn record_maintenance(&self, done: &Maintenance) {
        self.lease_expiries
            .inc_by(u64::try_from(done.expired_leases).unwrap_or(u64::MAX));
        self.schedule_ticks
            .inc_by(u64::try_from(done.schedules_fired).unwrap_or(u64::MAX));
    }
}

fn status_label(status: RunStatus) -> &'static str {
    status.as_str()
}
