//! Observing an import as it goes ([`ImportOptions::progress`](super::ImportOptions::progress)).

use crate::StorageError;

/// Where an import stands, after one more entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress<'a> {
    /// The normalized path of the entry just added.
    pub path: &'a str,
    /// Entries (files and links) added so far, this one included.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Told of an import's progress after every entry it adds.
///
/// Called on the importing task, between entries: keep it short (update a counter, send on
/// a channel); a slow observer slows the import down.
pub trait ImportProgress: Send + Sync + std::fmt::Debug {
    /// The import has added one more entry. Returning an error stops the import: it is
    /// abandoned (nothing of it stays) and the error is what the import returns.
    fn entry_added(&self, progress: Progress<'_>) -> Result<(), StorageError>;
}
