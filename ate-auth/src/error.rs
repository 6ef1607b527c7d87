//! `ate-auth`'s error type.
//!
//! Authentication failures are deliberately vague towards the caller: a wrong password, an
//! unknown user, a locked or disabled account all read "invalid credentials"
//! ([`AuthError::InvalidCredentials`]), so answers reveal nothing about which accounts exist
//! or are locked. The precise reason goes to the audit log, never into the error message.

use ate_core::{Classify, CoreError, ErrorKind};

/// Errors raised by `ate-auth`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Input that does not meet the documented rules (emails, passwords, claims, keys).
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// What was being validated.
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A login or password check failed. The same answer for every cause.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A token (access or refresh) was rejected. `reason` is safe to log; hosts should answer
    /// clients with a generic 401.
    #[error("invalid token: {reason}")]
    InvalidToken {
        /// Why it was rejected (never contains the token).
        reason: String,
    },
    /// Too many attempts; retry after the given number of seconds.
    #[error("too many attempts; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the next attempt may succeed.
        retry_after_secs: u64,
    },
    /// A cryptographic operation failed on our own material (a corrupted key, say).
    #[error("crypto error: {0}")]
    Crypto(String),
    /// An error from `ate-core` (database, authorization, tenants, keys).
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl AuthError {
    /// An [`AuthError::InvalidInput`].
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        AuthError::InvalidInput {
            what,
            reason: reason.into(),
        }
    }

    /// An [`AuthError::InvalidToken`].
    pub fn token(reason: impl Into<String>) -> Self {
        AuthError::InvalidToken {
            reason: reason.into(),
        }
    }
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        AuthError::Core(CoreError::from(e))
    }
}

impl Classify for AuthError {
    fn kind(&self) -> ErrorKind {
        match self {
            AuthError::InvalidInput { .. } => ErrorKind::InvalidInput,
            AuthError::InvalidCredentials | AuthError::InvalidToken { .. } => {
                ErrorKind::Unauthenticated
            }
            AuthError::RateLimited { .. } => ErrorKind::RateLimited,
            AuthError::Crypto(_) => ErrorKind::Integrity,
            AuthError::Core(e) => e.kind(),
        }
    }

    fn is_retryable(&self) -> bool {
        match self {
            AuthError::Core(e) => e.is_retryable(),
            other => other.kind().is_retryable(),
        }
    }
}
