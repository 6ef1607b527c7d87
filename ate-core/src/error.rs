//! The shared error vocabulary.
//!
//! Every ATE crate has its own `thiserror` enum with detailed, private-to-the-crate context,
//! and every such enum maps onto the one public [`ErrorKind`] through the [`Classify`]
//! trait. Callers, retry loops and circuit breakers decide by [`Classify::kind`] and
//! [`Classify::is_retryable`], never by matching message strings.
//!
//! The pattern each crate follows (this crate's [`CoreError`] is the first instance):
//!
//! 1. a `#[non_exhaustive]` enum whose `Display` is one line that says what was wrong;
//! 2. `impl Classify for MyError` mapping every variant to an [`ErrorKind`];
//! 3. `From<ate_core::CoreError> for MyError` so core failures pass through unchanged.

use std::fmt;

/// What kind of failure happened, independent of which crate raised it.
///
/// The set is deliberately small and stable; bindings (the Python package, an HTTP host)
/// map each kind to one exception class or status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The thing asked for does not exist (or is not visible to the caller).
    NotFound,
    /// A thing with the same unique key already exists.
    AlreadyExists,
    /// The input was malformed or out of range; retrying the same input fails again.
    InvalidInput,
    /// The caller did not prove who it is.
    Unauthenticated,
    /// The caller is known but may not do this.
    PermissionDenied,
    /// A quota or size limit would be exceeded.
    QuotaExceeded,
    /// The operation conflicts with the current state (for example, updating a deleted tenant).
    Conflict,
    /// Too many requests; retry after a delay.
    RateLimited,
    /// Stored or supplied data failed an integrity check (authentication tag, hash chain).
    Integrity,
    /// A backend could not be reached or is overloaded; retrying may succeed.
    Unavailable,
    /// The operation or backend is not supported by this build or configuration.
    Unsupported,
    /// A bug or an invariant violation inside ATE.
    Internal,
}

impl ErrorKind {
    /// Every kind, in declaration order (useful for bindings that register one class each).
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::InvalidInput,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::QuotaExceeded,
        ErrorKind::Conflict,
        ErrorKind::RateLimited,
        ErrorKind::Integrity,
        ErrorKind::Unavailable,
        ErrorKind::Unsupported,
        ErrorKind::Internal,
    ];

    /// Whether an operation that failed with this kind may succeed if simply retried
    /// (with backoff). Individual errors can refine this through [`Classify::is_retryable`],
    /// for example a database serialization failure is a retryable `Conflict`.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Unavailable | ErrorKind::RateLimited)
    }

    /// A stable `snake_case` name, used in logs, metrics labels and bindings.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::Conflict => "conflict",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Integrity => "integrity",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every ATE error type: maps it onto the shared [`ErrorKind`].
pub trait Classify: std::error::Error {
    /// The kind of this failure.
    fn kind(&self) -> ErrorKind;

    /// Whether retrying the same call may succeed. Defaults to the kind's answer.
    fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }
}

/// Errors raised by `ate-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// Input that does not meet the documented rules.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// What was being validated ("tenant slug", "database URL", ...).
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// No such entity (or not visible to the caller).
    #[error("{what} not found: {key}")]
    NotFound {
        /// The entity type.
        what: &'static str,
        /// The id or key that was looked up.
        key: String,
    },
    /// A unique key is taken.
    #[error("{what} already exists: {key}")]
    AlreadyExists {
        /// The entity type.
        what: &'static str,
        /// The conflicting key.
        key: String,
    },
    /// The principal lacks a permission.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The operation is not valid in the entity's current state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A configured limit would be exceeded.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// Data failed an integrity check.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// The backend is unreachable, overloaded, or timed out.
    #[error("unavailable: {message}")]
    Unavailable {
        /// What could not be reached.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Not supported by this build or configuration.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A database error that is not one of the cases above.
    #[error("database error: {message}")]
    Database {
        /// A one-line description.
        message: String,
        /// Whether the database reported a transient condition (serialization failure,
        /// deadlock) worth retrying.
        retryable: bool,
        /// The driver error.
        #[source]
        source: Option<sqlx::Error>,
    },
    /// A bug inside ATE.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// Shorthand for [`CoreError::InvalidInput`].
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        CoreError::InvalidInput {
            what,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`CoreError::NotFound`].
    pub fn not_found(what: &'static str, key: impl fmt::Display) -> Self {
        CoreError::NotFound {
            what,
            key: key.to_string(),
        }
    }
}

impl Classify for CoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            CoreError::InvalidInput { .. } => ErrorKind::InvalidInput,
            CoreError::NotFound { .. } => ErrorKind::NotFound,
            CoreError::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            CoreError::PermissionDenied(_) => ErrorKind::PermissionDenied,
            CoreError::Conflict(_) => ErrorKind::Conflict,
            CoreError::QuotaExceeded(_) => ErrorKind::QuotaExceeded,
            CoreError::Integrity(_) => ErrorKind::Integrity,
            CoreError::Unavailable { .. } => ErrorKind::Unavailable,
            CoreError::Unsupported(_) => ErrorKind::Unsupported,
            CoreError::Database { retryable, .. } => {
                if *retryable {
                    ErrorKind::Conflict
                } else {
                    ErrorKind::Internal
                }
            }
            CoreError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn is_retryable(&self) -> bool {
        match self {
            CoreError::Database { retryable, .. } => *retryable,
            other => other.kind().is_retryable(),
        }
    }
}

/// `Result` with [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_kinds_are_retryable() {
        let retryable: Vec<ErrorKind> = ErrorKind::ALL
            .into_iter()
            .filter(|k| k.is_retryable())
            .collect();
        assert_eq!(retryable, [ErrorKind::RateLimited, ErrorKind::Unavailable]);
    }

    #[test]
    fn kind_names_are_unique_snake_case() {
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn serialization_failures_are_retryable_conflicts() {
        let e = CoreError::Database {
            message: "could not serialize access".into(),
            retryable: true,
            source: None,
        };
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.is_retryable());
        let e = CoreError::invalid("tenant slug", "empty");
        assert!(!e.is_retryable());
        assert_eq!(e.to_string(), "invalid tenant slug: empty");
    }
}
