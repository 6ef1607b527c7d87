//! [`BalanceLayer`]: the settings shared by every [`BalanceService`] it makes.

use super::config::{Config, default_classifier, idempotent_methods};
use super::picker::Picker;
use super::service::BalanceService;
use crate::retry::{RetryBudget, RetryPolicy};
use ate_core::ErrorKind;
use http::{HeaderName, Method, StatusCode};
use std::fmt;
use std::sync::Arc;
use tower_layer::Layer;

/// Balances, breaks and retries outgoing HTTP calls; see the [module documentation](super).
///
/// Defaults: [`RetryPolicy::default`] (3 attempts, 50 ms to 2 s full jitter),
/// [`RetryBudget::default_budget`] (shared by every service this layer makes), no affinity
/// key, [`default_classifier`], retries for [`idempotent_methods`] only.
pub struct BalanceLayer<T> {
    config: Config<T>,
}

impl<T> BalanceLayer<T> {
    /// A layer that picks each attempt's endpoint with `picker` (a
    /// [`GuardedBalancer`](super::GuardedBalancer), a [`Balancer`](crate::balance::Balancer),
    /// or the host's own [`Picker`]).
    pub fn new(picker: Arc<dyn Picker<T>>) -> Self {
        BalanceLayer {
            config: Config {
                picker,
                policy: RetryPolicy::default(),
                budget: Arc::new(RetryBudget::default_budget()),
                key_header: None,
                classifier: Arc::new(default_classifier),
                retry_methods: idempotent_methods(),
            },
        }
    }

    /// Sets the retry policy: attempts in all, backoff, and which failure kinds are retried
    /// (the policy sees the attempt's [`ErrorKind`]). `max_attempts` of 0 or 1 disables
    /// retries.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.config.policy = policy;
        self
    }

    /// Sets the retry budget (share one budget between every layer calling the same
    /// service).
    pub fn retry_budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.config.budget = budget;
        self
    }

    /// Picks by the value of this request header (a tenant id), for
    /// [`Strategy::ConsistentHash`](crate::balance::Strategy::ConsistentHash) affinity.
    /// Requests without the header are picked without a key.
    pub fn key_header(mut self, header: HeaderName) -> Self {
        self.config.key_header = Some(header);
        self
    }

    /// Replaces [`default_classifier`].
    pub fn classify_with(
        mut self,
        classifier: impl Fn(StatusCode) -> Option<ErrorKind> + Send + Sync + 'static,
    ) -> Self {
        self.config.classifier = Arc::new(classifier);
        self
    }

    /// Sets the methods whose requests may be retried (default [`idempotent_methods`]).
    /// Add `POST` only for endpoints that deduplicate (an idempotency key): a retried
    /// request may already have been processed by the endpoint that failed to answer.
    pub fn retry_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.config.retry_methods = methods.into_iter().collect();
        self
    }
}

impl<T> Clone for BalanceLayer<T> {
    fn clone(&self) -> Self {
        BalanceLayer {
            config: self.config.clone(),
        }
    }
}

impl<T> fmt::Debug for BalanceLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalanceLayer")
            .field("config", &self.config)
            .finish()
    }
}

impl<S, T> Layer<S> for BalanceLayer<T> {
    type Service = BalanceService<S, T>;

    fn layer(&self, inner: S) -> BalanceService<S, T> {
        BalanceService::new(inner, Arc::new(self.config.clone()))
    }
}
