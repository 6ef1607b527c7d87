//! What every [`BalanceService`](super::BalanceService) made by one layer shares: the
//! picker, the retry policy and budget, the response classifier and the retried methods.

use super::picker::Picker;
use crate::retry::{RetryBudget, RetryPolicy};
use ate_core::ErrorKind;
use http::{HeaderName, Method, StatusCode};
use std::fmt;
use std::sync::Arc;

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
