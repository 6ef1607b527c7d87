//! [`BalanceLayer`]: the settings shared by every [`BalanceService`] it makes.

use super::picker::Picker;
use super::service::BalanceService;
use crate::retry::{RetryBudget, RetryPolicy};
use ate_core::ErrorKind;
use http::{HeaderName, Method, StatusCode};
use std::fmt;
use std::sync::Arc;
use tower_layer::Layer;

/// Decides whether a response is a failure, and of which kind (`None`: success).
pub type StatusClassifier = Arc<dyn Fn(StatusCode) -> Option<ErrorKind> + Send + Sync>;

/// The default [`StatusClassifier`]: `429 Too Many Requests` is
/// [`ErrorKind::RateLimited`], every `5xx` is [`ErrorKind::Unavailable`], anything else
/// (`1xx`–`4xx`) a success: the endpoint answered, the request was the problem.
pub fn default_classifier(status: StatusCode) -> Option<ErrorKind> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        Some(ErrorKind::RateLimited)
    } else if status.is_server_error() {
        Some(ErrorKind::Unavailable)
    } else {
        None
    }
}

/// The methods retried by default: RFC 9110's idempotent ones (`GET`, `HEAD`, `OPTIONS`,
/// `TRACE`, `PUT`, `DELETE`).
pub fn idempotent_methods() -> Vec<Method> {
    vec![
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
}

/// What every service made by one layer shares.
pub(super) struct Config<T> {
    pub(super) picker: Arc<dyn Picker<T>>,
    pub(super) policy: RetryPolicy,
    pub(super) budget: Arc<RetryBudget>,
    pub(super) key_header: Option<HeaderName>,
    pub(super) classifier: StatusClassifier,
    pub(super) retry_methods: Vec<Method>,
}

impl<T> Clone for Config<T> {
    fn clone(&self) -> Self {
        Config {
            picker: Arc::clone(&self.picker),
            policy: self.policy.clone(),
            budget: Arc::clone(&self.budget),
            key_header: self.key_header.clone(),
            classifier: Arc::clone(&self.classifier),
            retry_methods: self.retry_methods.clone(),
        }
    }
}

impl<T> fmt::Debug for Config<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("picker", &self.picker)
            .field("policy", &self.policy)
            .field("budget", &self.budget)
            .field("key_header", &self.key_header)
            .field("retry_methods", &self.retry_methods)
            .finish_non_exhaustive()
    }
}

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
