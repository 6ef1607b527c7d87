//! The retry loop.

use super::budget::RetryBudget;
use super::policy::RetryPolicy;
use ate_core::Classify;
use std::future::Future;

/// Runs `op` until it succeeds, fails with an error the policy does not retry, runs out of
/// attempts, or the budget refuses a retry.
///
/// Behavior: `op` receives the attempt number, starting at 1. The call deposits one
/// request into `budget`; each retry first withdraws one from it, then waits
/// [`RetryPolicy::backoff`] on the policy's sleeper. Whatever stops the loop, the result is
/// the last attempt's: the success, or **the last error itself** (not
/// [`RetryBudgetExhausted`](crate::OrchestrateError::RetryBudgetExhausted)), so the caller
/// sees the real cause and its kind; a refused retry is logged at debug level and visible
/// as [`RetryBudget::remaining`] reaching 0. Dropping the future stops between or during
/// attempts.
///
/// ```
/// # async fn demo() -> Result<(), ate_orchestrate::OrchestrateError> {
/// use ate_orchestrate::OrchestrateError;
/// use ate_orchestrate::retry::{RetryBudget, RetryPolicy, retry};
/// use std::time::Duration;
///
/// let policy = RetryPolicy::new(3, Duration::from_millis(1), Duration::from_millis(10))?;
/// let budget = RetryBudget::default_budget();
/// let value = retry(&policy, &budget, |attempt| async move {
///     if attempt < 3 {
///         Err(OrchestrateError::Unavailable("connection refused".into()))
///     } else {
///         Ok(attempt)
///     }
/// })
/// .await?;
/// assert_eq!(value, 3);
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(demo()).unwrap();
/// ```
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    budget: &RetryBudget,
    mut op: F,
) -> Result<T, E>
where
    E: Classify,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    budget.deposit();
    let mut attempt = 1u32;
    loop {
        let error = match op(attempt).await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        if attempt >= policy.max_attempts || !policy.should_retry(&error) {
            return Err(error);
        }
        if !budget.try_withdraw() {
            tracing::debug!(attempt, kind = %error.kind(), "retry budget exhausted; not retrying");
            return Err(error);
        }
        policy.sleeper.sleep(policy.backoff(attempt)).await;
        attempt += 1;
    }
}
