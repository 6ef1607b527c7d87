//! Retries: exponential backoff with full jitter, only for retryable errors, under a retry
//! budget so that retries cannot multiply an outage.
//!
//! * [`RetryPolicy`] (`policy.rs`): attempts, delays, jitter, which errors.
//! * [`RetryBudget`] (`budget.rs`): retries allowed = `min_per_sec × ttl + ratio × requests`
//!   over a sliding TTL window.
//! * [`retry`] (`run.rs`): the loop.
//! * [`Sleeper`] (`sleep.rs`): how waits are waited, replaceable in tests.

mod budget;
mod policy;
mod run;
mod sleep;

pub use budget::RetryBudget;
pub use policy::{Jitter, RetryPolicy, RetryPredicate};
pub use run::retry;
pub use sleep::{SleepFuture, Sleeper, TokioSleeper};

#[cfg(test)]
mod tests;
