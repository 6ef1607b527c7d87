//! Checks the host implements.

use super::{cap_output, millis};
use crate::registry::HealthStatus;
use async_trait::async_trait;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

/// A health check the host implements (a database ping, a queue depth, a GPU probe).
///
/// Behavior: the scheduler calls [`CustomCheck::check`] once per interval, with at most
/// [`SchedulerConfig::max_concurrent_checks`](super::SchedulerConfig::max_concurrent_checks)
/// checks of any kind running at once. A call that outlives the check's timeout is
/// dropped and counts as critical (`timed out after … ms`); a call that panics counts as
/// critical (`custom check panicked`) and the check keeps running. The returned output is
/// cut to [`MAX_OUTPUT_LEN`](super::MAX_OUTPUT_LEN) bytes.
#[async_trait]
pub trait CustomCheck: Send + Sync {
    /// Runs the check once: the observed status and a line for humans.
    async fn check(&self) -> (HealthStatus, String);
}

pub(crate) async fn run(check: &dyn CustomCheck, timeout: Duration) -> (HealthStatus, String) {
    match tokio::time::timeout(timeout, AssertUnwindSafe(check.check()).catch_unwind()).await {
        Ok(Ok((status, output))) => (status, cap_output(output)),
        Ok(Err(_panic)) => (HealthStatus::Critical, "custom check panicked".to_owned()),
        Err(_) => (
            HealthStatus::Critical,
            format!("timed out after {} ms", millis(timeout)),
        ),
    }
}
