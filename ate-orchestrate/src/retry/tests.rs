use super::*;
use crate::OrchestrateError;
use crate::clock::ManualMonotonicClock;
use ate_core::{Classify, ErrorKind};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Records requested waits and returns at once.
#[derive(Debug, Default)]
struct RecordingSleeper(Mutex<Vec<Duration>>);

impl Sleeper for RecordingSleeper {
    fn sleep(&self, duration: Duration) -> SleepFuture {
        self.0.lock().unwrap().push(duration);
        Box::pin(async {})
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn policy(attempts: u32, sleeper: &Arc<RecordingSleeper>) -> RetryPolicy {
    RetryPolicy::new(attempts, ms(100), ms(1000))
        .unwrap()
        .sleeper(sleeper.clone())
}

fn unlimited() -> RetryBudget {
    RetryBudget::new(Duration::from_secs(10), 1_000_000, 0.0).unwrap()
}

#[tokio::test]
async fn retries_retryable_errors_until_success() {
    let sleeper = Arc::new(RecordingSleeper::default());
    let policy = policy(5, &sleeper).jitter(Jitter::None);
    let seen = Mutex::new(Vec::new());
    let result = retry(&policy, &unlimited(), |attempt| {
        seen.lock().unwrap().push(attempt);
        async move {
            if attempt < 4 {
                Err(OrchestrateError::Unavailable("refused".into()))
            } else {
                Ok("done")
            }
        }
    })
    .await;
    assert_eq!(result.unwrap(), "done");
    assert_eq!(*seen.lock().unwrap(), [1, 2, 3, 4]);
    assert_eq!(*sleeper.0.lock().unwrap(), [ms(100), ms(200), ms(400)]);
}

#[tokio::test]
async fn does_not_retry_non_retryable_kinds() {
    let sleeper = Arc::new(RecordingSleeper::default());
    let policy = policy(5, &sleeper);
    let mut calls = 0;
    let result: Result<(), _> = retry(&policy, &unlimited(), |_| {
        calls += 1;
        async {
            Err(OrchestrateError::invalid(
                "weight",
                "0 is outside 1..=10000",
            ))
        }
    })
    .await;
    assert_eq!(result.unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(calls, 1);
    // RetryBudgetExhausted is RateLimited but explicitly not retryable.
    let mut calls = 0;
    let _ = retry(&policy, &unlimited(), |_| {
        calls += 1;
        async { Err::<(), _>(OrchestrateError::RetryBudgetExhausted) }
    })
    .await;
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn gives_up_after_max_attempts_with_the_last_error() {
    let sleeper = Arc::new(RecordingSleeper::default());
    let policy = policy(3, &sleeper);
    let mut calls = 0;
    let err = retry(&policy, &unlimited(), |attempt| {
        calls += 1;
        async move { Err::<(), _>(OrchestrateError::Unavailable(format!("attempt {attempt}"))) }
    })
    .await
    .unwrap_err();
    assert_eq!(calls, 3);
    assert_eq!(err.to_string(), "attempt 3");
    assert_eq!(sleeper.0.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn custom_predicate_decides() {
    let sleeper = Arc::new(RecordingSleeper::default());
    let policy = policy(3, &sleeper).with_predicate(|e| e.kind() == ErrorKind::NotFound);
    let mut calls = 0;
    let _ = retry(&policy, &unlimited(), |_| {
        calls += 1;
        async { Err::<(), _>(OrchestrateError::not_found("service", "billing")) }
    })
    .await;
    assert_eq!(calls, 3);
}

#[test]
fn backoff_stays_within_exponential_ceilings() {
    let policy = RetryPolicy::new(10, ms(100), ms(1000)).unwrap();
    assert_eq!(
        (1..=6).map(|n| policy.ceiling(n)).collect::<Vec<_>>(),
        [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
    );
    assert_eq!(policy.ceiling(u32::MAX), ms(1000));
    for n in 1..=6 {
        let samples: Vec<Duration> = (0..500).map(|_| policy.backoff(n)).collect();
        assert!(samples.iter().all(|d| *d <= policy.ceiling(n)));
        // Full jitter really spreads: some waits in the lower and upper quarters.
        assert!(samples.iter().any(|d| *d < policy.ceiling(n) / 4));
        assert!(samples.iter().any(|d| *d > policy.ceiling(n) * 3 / 4));
    }
}

#[test]
fn invalid_policies_and_budgets_are_rejected() {
    assert!(RetryPolicy::new(0, ms(1), ms(2)).is_err());
    assert!(RetryPolicy::new(3, ms(5), ms(2)).is_err());
    assert!(RetryBudget::new(Duration::ZERO, 1, 0.1).is_err());
    assert!(RetryBudget::new(Duration::from_secs(10), 1, -0.1).is_err());
}

#[tokio::test]
async fn budget_stops_a_retry_storm() {
    let clock = Arc::new(ManualMonotonicClock::new());
    // 1 retry/s floor over 10 s = 10, plus 10% of requests.
    let budget = RetryBudget::with_clock(Duration::from_secs(10), 1, 0.1, clock.clone()).unwrap();
    let sleeper = Arc::new(RecordingSleeper::default());
    let policy = policy(4, &sleeper);
    let calls = Mutex::new(0u32);
    for _ in 0..100 {
        let _ = retry(&policy, &budget, |_| {
            *calls.lock().unwrap() += 1;
            async { Err::<(), _>(OrchestrateError::Unavailable("down".into())) }
        })
        .await;
    }
    let calls = *calls.lock().unwrap();
    let retries = calls - 100;
    // Without a budget: 300 retries. With it: at most 10 + 0.1 × 100 = 20.
    assert!(retries <= 20, "{retries} retries");
    assert!(retries >= 10, "{retries} retries");
    assert_eq!(budget.remaining(), 0);

    // Once the window has passed, the floor is available again.
    clock.advance(Duration::from_secs(11));
    assert_eq!(budget.remaining(), 10);
}

#[test]
fn budget_grows_with_requests_and_forgets_old_ones() {
    let clock = Arc::new(ManualMonotonicClock::new());
    let budget = RetryBudget::with_clock(Duration::from_secs(10), 0, 0.5, clock.clone()).unwrap();
    assert!(!budget.try_withdraw());
    for _ in 0..10 {
        budget.deposit();
    }
    assert_eq!(budget.remaining(), 5);
    for _ in 0..5 {
        assert!(budget.try_withdraw());
    }
    assert!(!budget.try_withdraw());
    clock.advance(Duration::from_secs(10));
    for _ in 0..2 {
        budget.deposit();
    }
    assert_eq!(budget.remaining(), 1);
}
