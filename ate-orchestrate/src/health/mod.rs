//! Health checks on Consul's model, run by one [`HealthScheduler`].
//!
//! * Kinds ([`CheckKind`]): HTTP (2xx passing, 429 warning, anything else critical, and so
//!   are a refused connection, a timeout or an answer that is not HTTP), TCP connect, TTL
//!   (the instance reports in through [`HealthScheduler::heartbeat`] /
//!   [`HealthScheduler::update_ttl`], or turns critical when the TTL runs out) and custom
//!   ([`CustomCheck`], implemented by the host).
//! * A check ([`CheckSpec`]) belongs to one instance ([`InstanceKey`]) and has an
//!   interval, a timeout, a jitter, Consul's thresholds (successes before passing, failures
//!   before critical; see [`ThresholdState`]) and an optional "deregister after critical
//!   for this long". New checks start **critical**.
//! * The scheduler keeps the last results of every check ([`HealthScheduler::results`]) and
//!   the aggregate status of every instance (the worst of its checks), and tells a
//!   [`HealthReporter`] (implemented for the registry) once per change, as soon as it
//!   happens: an instance that turns critical leaves discovery and balancing at once.
//!
//! The scheduler runs on the host's tokio runtime: one driver task ordered by due time (not
//! one timer per check) and at most [`SchedulerConfig::max_concurrent_checks`] probes in
//! flight. It opens no port; it only connects out.

mod custom;
mod http;
mod scheduler;
mod spec;
mod state;
mod tcp;

pub use custom::CustomCheck;
pub use scheduler::{HealthScheduler, SchedulerConfig};
pub use spec::{CheckKind, CheckSpec, MAX_CHECK_PERIOD};
pub use state::ThresholdState;

use crate::error::OrchestrateError;
use crate::registry::{HealthStatus, InstanceKey};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::fmt;
use std::time::Duration;

/// Longest check id (bytes).
pub const MAX_CHECK_ID_LEN: usize = 256;
/// Longest output kept for one result (bytes); longer outputs are cut (Consul keeps 4 KiB).
pub const MAX_OUTPUT_LEN: usize = 4096;

/// A check's id, chosen by the host and unique within one [`HealthScheduler`]
/// (`billing-1:http`, `service:billing-1`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CheckId(String);

impl CheckId {
    /// Validates `s`: 1 to [`MAX_CHECK_ID_LEN`] bytes of visible ASCII (no spaces or control
    /// characters).
    pub fn new(s: impl Into<String>) -> Result<Self, OrchestrateError> {
        let s = s.into();
        if s.is_empty() {
            return Err(OrchestrateError::invalid("check id", "must not be empty"));
        }
        if s.len() > MAX_CHECK_ID_LEN {
            return Err(OrchestrateError::invalid(
                "check id",
                format!("{} bytes is longer than {MAX_CHECK_ID_LEN}", s.len()),
            ));
        }
        if let Some(c) = s.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(OrchestrateError::invalid(
                "check id",
                format!("character {c:?} is not allowed (use visible ASCII)"),
            ));
        }
        Ok(CheckId(s))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for CheckId {
    type Error = OrchestrateError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        CheckId::new(s)
    }
}

/// One run of a check, as observed (before thresholds).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckResult {
    /// When the run started (for a TTL update or expiry: when it happened).
    pub at: DateTime<Utc>,
    /// What this run saw.
    pub status: HealthStatus,
    /// For humans: `HTTP 503 Service Unavailable`, `connection refused`, `timed out after
    /// 200 ms`, a custom check's text. At most [`MAX_OUTPUT_LEN`] bytes.
    pub output: String,
    /// How long the run took (zero for TTL updates).
    pub duration: Duration,
}

/// An instance's aggregate status changed (or was first set).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatusChange {
    /// The instance.
    pub instance: InstanceKey,
    /// The previous aggregate status; `None` when the scheduler starts tracking the
    /// instance (its first check was added), so the registry learns the starting
    /// (critical) status even if it believed otherwise.
    pub from: Option<HealthStatus>,
    /// The new aggregate status: the worst status among the instance's checks.
    pub to: HealthStatus,
    /// The check whose result (or addition, or removal) caused the change.
    pub check: CheckId,
    /// That check's output, for humans.
    pub output: String,
}

/// An instance's check stayed critical longer than its `deregister_critical_after`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeregisterRequest {
    /// The instance.
    pub instance: InstanceKey,
    /// The check that stayed critical.
    pub check: CheckId,
    /// How long it had been critical when the request was made.
    pub critical_for: Duration,
}

/// Where the scheduler reports health changes; the host (or the registry glue)
/// implements it.
///
/// Behavior: calls arrive from one task, one at a time, in the order the changes
/// happened, each change exactly once. A slow reporter delays later reports but never the
/// checks themselves. An `Err` is logged (`tracing::warn!`) and not retried: the next
/// change reports the then-current status again.
#[async_trait]
pub trait HealthReporter: Send + Sync {
    /// The instance's aggregate status changed. Critical means "take it out of discovery
    /// and balancing now".
    async fn status_changed(&self, change: StatusChange) -> Result<(), OrchestrateError>;

    /// A check of the instance stayed critical longer than its
    /// `deregister_critical_after`: deregister the instance. By then the scheduler has
    /// already removed every check of that instance (it stops probing it).
    async fn deregister_requested(
        &self,
        request: DeregisterRequest,
    ) -> Result<(), OrchestrateError>;

    /// Whether [`check_ran`](Self::check_ran) should be called for every probe run. Asked
    /// once, when the scheduler is created. Default `false`: at thousands of checks per
    /// second a report per run costs CPU (see `benches/README.md`).
    fn wants_check_runs(&self) -> bool {
        false
    }

    /// A check ran (every probe run; not TTL updates), with how long it took: for
    /// metrics such as `ate_health_check_duration_seconds`. Called only when
    /// [`wants_check_runs`](Self::wants_check_runs) says so, in order with the other
    /// reports; must be cheap. The default does nothing.
    async fn check_ran(&self, run: CheckRun) {
        let _ = run;
    }
}

/// One probe run, as [`HealthReporter::check_ran`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckRun {
    /// The instance.
    pub instance: InstanceKey,
    /// The check.
    pub check: CheckId,
    /// The check kind's stable name (`http`, `tcp`, `custom`).
    pub kind: &'static str,
    /// What the run saw.
    pub status: HealthStatus,
    /// How long it took.
    pub duration: Duration,
}

/// Cuts `s` to at most [`MAX_OUTPUT_LEN`] bytes on a character boundary.
fn cap_output(mut s: String) -> String {
    if s.len() > MAX_OUTPUT_LEN {
        let mut end = MAX_OUTPUT_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn millis(d: Duration) -> u128 {
    d.as_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_ids_are_validated() {
        assert!(CheckId::new("billing-1:http").is_ok());
        for bad in ["", "has space", "tab\t", &"x".repeat(MAX_CHECK_ID_LEN + 1)] {
            let err = CheckId::new(bad).unwrap_err();
            assert!(matches!(
                err,
                OrchestrateError::InvalidInput {
                    what: "check id",
                    ..
                }
            ));
        }
    }

    #[test]
    fn long_output_is_cut_on_a_char_boundary() {
        let s = "é".repeat(MAX_OUTPUT_LEN);
        let cut = cap_output(s);
        assert!(cut.len() <= MAX_OUTPUT_LEN);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(cap_output("short".into()), "short");
    }
}
