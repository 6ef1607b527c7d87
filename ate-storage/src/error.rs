//! `ate-storage`'s error type.

use ate_core::{Classify, CoreError, ErrorKind};

/// Errors raised by `ate-storage`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A key of the wrong size was supplied.
    #[error("invalid key: Cobblestone-256 keys are 32 bytes, got {0}")]
    InvalidKeySize(usize),
    /// Input that does not meet the documented rules (ranges, sizes, paths).
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// What was being validated.
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A ciphertext failed authentication: wrong key or context, modified, truncated,
    /// extended or reordered. Nothing of the failing part was released.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// The data key of this version was destroyed (crypto-shredded): what it protected is
    /// unrecoverable.
    #[error(
        "tenant {tenant} key version {version} was destroyed; the data it protected is unrecoverable"
    )]
    KeyDestroyed {
        /// The tenant.
        tenant: ate_core::TenantId,
        /// The destroyed version.
        version: u32,
    },
    /// A blob backend failed.
    #[error("blob backend error: {message}")]
    Backend {
        /// What kind of failure it was.
        kind: ErrorKind,
        /// Whether retrying may succeed.
        retryable: bool,
        /// What failed, with the backend's message.
        message: String,
    },
    /// An OpenDAL operator lacks a capability ATE needs; it was refused when the
    /// [`BlobStore`](crate::BlobStore) was built, before any request.
    #[error("blob backend {scheme:?} lacks {}: {reason}", .missing.join(", "))]
    UnsupportedBackend {
        /// The operator's scheme (`"gcs"`, `"hdfs"`, …).
        scheme: String,
        /// The missing [`opendal::Capability`] fields, by name (`"list"`, `"stat"`, …).
        missing: Vec<&'static str>,
        /// What ATE uses them for.
        reason: String,
    },
    /// A content scanner could not give a verdict (unreachable, timed out, over its size
    /// limit, or an answer it could not read). The content was not scanned.
    #[error("content scanner: {message}")]
    Scanner {
        /// What kind of failure it was.
        kind: ErrorKind,
        /// What failed.
        message: String,
    },
    /// An import refused its input: a path that is not allowed, an entry of a kind it does
    /// not store, a limit exceeded, an infected file, a malformed archive. Nothing of the
    /// import was kept.
    #[error("import refused{}: {reason}", .entry.as_deref().map(|e| format!(" at {e:?}")).unwrap_or_default())]
    ImportRefused {
        /// The entry at fault, when there is one (as named by the source).
        entry: Option<String>,
        /// Why.
        reason: String,
    },
    /// An I/O error from the underlying reader or writer.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// An error from `ate-core`.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl StorageError {
    pub(crate) fn refused(entry: Option<&str>, reason: impl Into<String>) -> Self {
        StorageError::ImportRefused {
            entry: entry.map(str::to_owned),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        StorageError::InvalidInput {
            what,
            reason: reason.into(),
        }
    }
}

impl Classify for StorageError {
    fn kind(&self) -> ErrorKind {
        match self {
            StorageError::InvalidKeySize(_)
            | StorageError::InvalidInput { .. }
            | StorageError::ImportRefused { .. } => ErrorKind::InvalidInput,
            StorageError::Integrity(_) => ErrorKind::Integrity,
            StorageError::KeyDestroyed { .. } => ErrorKind::NotFound,
            StorageError::UnsupportedBackend { .. } => ErrorKind::Unsupported,
            StorageError::Io(_) => ErrorKind::Unavailable,
            StorageError::Backend { kind, .. } | StorageError::Scanner { kind, .. } => *kind,
            StorageError::Core(e) => e.kind(),
        }
    }

    fn is_retryable(&self) -> bool {
        match self {
            StorageError::Core(e) => e.is_retryable(),
            StorageError::Backend { retryable, .. } => *retryable,
            other => other.kind().is_retryable(),
        }
    }
}

/// A cheap copy of an error, for readers that must keep failing with the same error.
pub(crate) fn replay(e: &StorageError) -> StorageError {
    match e {
        StorageError::InvalidKeySize(n) => StorageError::InvalidKeySize(*n),
        StorageError::InvalidInput { what, reason } => StorageError::InvalidInput {
            what,
            reason: reason.clone(),
        },
        StorageError::Integrity(m) => StorageError::Integrity(m.clone()),
        StorageError::KeyDestroyed { tenant, version } => StorageError::KeyDestroyed {
            tenant: *tenant,
            version: *version,
        },
        StorageError::Backend {
            kind,
            retryable,
            message,
        } => StorageError::Backend {
            kind: *kind,
            retryable: *retryable,
            message: message.clone(),
        },
        StorageError::UnsupportedBackend {
            scheme,
            missing,
            reason,
        } => StorageError::UnsupportedBackend {
            scheme: scheme.clone(),
            missing: missing.clone(),
            reason: reason.clone(),
        },
        StorageError::Scanner { kind, message } => StorageError::Scanner {
            kind: *kind,
            message: message.clone(),
        },
        StorageError::ImportRefused { entry, reason } => StorageError::ImportRefused {
            entry: entry.clone(),
            reason: reason.clone(),
        },
        StorageError::Io(io) => StorageError::Io(std::io::Error::new(io.kind(), io.to_string())),
        StorageError::Core(c) => StorageError::Integrity(c.to_string()),
    }
}
