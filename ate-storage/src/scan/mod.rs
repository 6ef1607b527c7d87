//! Content scanning: a [`ContentScanner`] sees every file an import brings in, before it is
//! stored, and says whether it is clean.
//!
//! The import (issue 12, still to come) calls the scanner on each file and, by
//! [`InfectedPolicy`], refuses the whole import or stores the file in quarantine. A scanner
//! that fails (unreachable, timed out, over its size limit) fails the file: an error is
//! never taken for "clean".
//!
//! [`ClamdScanner`] speaks ClamAV's `clamd` protocol (`INSTREAM`) over TCP or a Unix
//! socket; hosts with another engine implement the trait.

mod clamd;

pub use clamd::{ClamdAddr, ClamdScanner};

use crate::StorageError;
use tokio::io::AsyncRead;

/// What a scanner found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Nothing found.
    Clean,
    /// Malware (or a test signature) found: `signature` names it, as the engine does.
    Infected {
        /// The engine's name for what it found.
        signature: String,
    },
}

/// What an import does with an infected file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum InfectedPolicy {
    /// The whole import fails and nothing of it becomes visible (the default).
    #[default]
    RefuseImport,
    /// The file is stored flagged as quarantined, readable only by administrators; the rest
    /// of the import goes on.
    Quarantine,
}

/// Scans file contents. Implementations must be cheap to share between tasks.
#[async_trait::async_trait]
pub trait ContentScanner: Send + Sync + std::fmt::Debug {
    /// Scans the content read from `content` (the file at `path` of the import, for the
    /// engine's logs). An error means the file was not scanned: the caller must not treat
    /// it as clean.
    async fn scan(
        &self,
        path: &str,
        content: &mut (dyn AsyncRead + Unpin + Send),
    ) -> Result<Verdict, StorageError>;
}
