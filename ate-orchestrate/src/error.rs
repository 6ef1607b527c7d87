//! `ate-orchestrate`'s error type.
//!
//! Every variant maps onto the shared [`ErrorKind`] through [`Classify`], so retry loops and
//! circuit breakers (this crate's own included) decide by kind, never by message.

use ate_core::{Classify, CoreError, ErrorKind};

/// Errors raised by `ate-orchestrate`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrchestrateError {
    /// Input that does not meet the documented rules (names, URLs, weights, intervals).
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// What was being validated.
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// The named service or instance does not exist (or is not visible to the caller).
    #[error("{what} not found: {key}")]
    NotFound {
        /// What was looked up (`service`, `instance`, `alert rule`).
        what: &'static str,
        /// Which one.
        key: String,
    },
    /// An instance (or rule) with this id already exists.
    #[error("{what} already exists: {key}")]
    AlreadyExists {
        /// What was being created.
        what: &'static str,
        /// Which one.
        key: String,
    },
    /// No instance of the service can take a request (none registered, none healthy, every
    /// breaker open).
    #[error("no available instance of service {service}: {reason}")]
    NoAvailableInstance {
        /// The service.
        service: String,
        /// Why none could be picked.
        reason: String,
    },
    /// The circuit breaker for this instance is open (or its half-open probes are taken).
    #[error("circuit open for {instance}")]
    CircuitOpen {
        /// The instance.
        instance: String,
    },
    /// A retry was wanted but the retry budget is spent.
    #[error("retry budget exhausted")]
    RetryBudgetExhausted,
    /// A call or check did not finish in time.
    #[error("timed out after {millis} ms: {what}")]
    Timeout {
        /// What timed out.
        what: String,
        /// The limit, in milliseconds.
        millis: u64,
    },
    /// A remote endpoint could not be reached or answered badly.
    #[error("{0}")]
    Unavailable(String),
    /// An error from `ate-core` (database, authorization, tenants).
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl OrchestrateError {
    /// An [`OrchestrateError::InvalidInput`].
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        OrchestrateError::InvalidInput {
            what,
            reason: reason.into(),
        }
    }

    /// An [`OrchestrateError::NotFound`].
    pub fn not_found(what: &'static str, key: impl std::fmt::Display) -> Self {
        OrchestrateError::NotFound {
            what,
            key: key.to_string(),
        }
    }

    /// An [`OrchestrateError::AlreadyExists`].
    pub fn already_exists(what: &'static str, key: impl std::fmt::Display) -> Self {
        OrchestrateError::AlreadyExists {
            what,
            key: key.to_string(),
        }
    }
}

impl From<sqlx::Error> for OrchestrateError {
    fn from(e: sqlx::Error) -> Self {
        OrchestrateError::Core(CoreError::from(e))
    }
}

impl Classify for OrchestrateError {
    fn kind(&self) -> ErrorKind {
        match self {
            OrchestrateError::InvalidInput { .. } => ErrorKind::InvalidInput,
            OrchestrateError::NotFound { .. } => ErrorKind::NotFound,
            OrchestrateError::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            OrchestrateError::NoAvailableInstance { .. }
            | OrchestrateError::CircuitOpen { .. }
            | OrchestrateError::Timeout { .. }
            | OrchestrateError::Unavailable(_) => ErrorKind::Unavailable,
            OrchestrateError::RetryBudgetExhausted => ErrorKind::RateLimited,
            OrchestrateError::Core(e) => e.kind(),
        }
    }

    fn is_retryable(&self) -> bool {
        match self {
            OrchestrateError::Core(e) => e.is_retryable(),
            // Retrying against a spent budget is exactly what the budget forbids.
            OrchestrateError::RetryBudgetExhausted => false,
            other => other.kind().is_retryable(),
        }
    }
}
