//! # ate-storage
//!
//! Encrypted, tenant-scoped object storage for ATE:
//!
//! * [`objects`]: the **object store** ([`ObjectStore`]), scoped to an
//!   [`ate_core::Principal`]: put (one-shot or streamed through an [`ObjectWriter`]), get
//!   (streamed and pipelined through an [`ObjectReader`]), ranged get, stat, delete, list,
//!   copy, quotas checked in the commit, re-encryption of a tenant's objects to its newest key,
//!   and garbage collection of orphan blobs. Objects are indexed in the database ([`Db`]) and
//!   stored as encrypted blobs.
//!
//! * [`projects`]: **codebase projects** ([`ProjectStore`], [`SqlProjectStore`]): a tenant's
//!   named projects with labels and settings, listed with filters and cursors, updated with
//!   optimistic concurrency, counted against the tenant's `max_projects` quota, audited;
//!   per-project keys; **snapshots** of a codebase ([`projects::SnapshotStore`]), imported
//!   from a directory or an archive stream, stored as deduplicated chunks ([`dedup`]).
//!
//! * [`analysis`]: **analysis results** ([`analysis::AnalysisStore`]) on a project or a
//!   snapshot: status moving forward only, a JSON summary, encrypted payloads streamed in and
//!   out, removed with their snapshot or project.
//!
//! * [`backup`]: **backups** of a project or a whole tenant (its projects and objects)
//!   ([`backup::BackupStore`]): exported under an operator key into a portable,
//!   authenticated stream, restored into any database and blob store, all or nothing.
//!
//! * [`retention`]: **retention policies and legal holds** per tenant and per project, and
//!   a resumable, audited [`retention::RetentionStore::apply_retention`] sweep with a dry run.
//!
//! * [`import`]: imports, and what an import learns about each file ([`import::classify`]:
//!   language by GitHub Linguist's data, vendored, generated, binary, line counts by `tokei`).
//!
//! * [`scan`]: **content scanning** ([`scan::ContentScanner`]), with a ClamAV adapter
//!   ([`scan::ClamdScanner`], clamd's `INSTREAM`), called on every imported file.
//!
//! * [`keyring`]: the **tenant keyring** ([`TenantKeyring`]): per-tenant data keys wrapped
//!   under the master key from [`ate_core::keys::KeyProvider`], with versions, rotation,
//!   master-key rotation and crypto-shredding, every change audited atomically; unwrapped
//!   keys are cached for a second at most ([`key_cache`]).
//!
//! * [`cobblestone`]: **Cobblestone-256** ([`Cobblestone`]: c2sp.org/chunked-encryption with
//!   HKDF-Expand-SHA-512 and AES-256-GCM), one-shot, streaming and random access, over a
//!   pluggable [`CryptoProvider`] (RustCrypto always, `ring` and `aws-lc` behind default
//!   features of those names; `aws-lc` is the default when compiled in), each checked
//!   against every Wycheproof vector.
//!
//! * [`blob`]: **blob backends** over Apache OpenDAL ([`BlobStore`]): any OpenDAL operator a
//!   host brings ([`BlobStore::from_operator`]: GCS, Azure, HDFS, …), checked for the
//!   capabilities ATE needs, or one named by URL (`memory://`, `fs://`, `s3://`). Blob names
//!   are derived from tenant and object ids only.
//!
//! Every error is a [`StorageError`], classified by [`ate_core::Classify`].
//!
//! On S3 (and other object stores), an upload that a crash interrupts leaves an incomplete
//! multipart upload that only the bucket can clean: give the bucket a lifecycle rule that
//! aborts incomplete multipart uploads after a day. On file systems, garbage collection
//! removes such leftovers itself.
//!
//! [`Db`]: ate_core::Db

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod analysis;
pub mod backup;
pub mod blob;
pub mod cobblestone;
pub mod dedup;
mod error;
pub mod import;
pub mod key_cache;
pub mod keyring;
pub mod objects;
pub mod projects;
pub mod retention;
pub mod scan;
mod sql;
pub mod verify;

pub use blob::{BlobBackend, BlobStore, BlobWriter, S3Credentials};
pub use cobblestone::{Cobblestone, CryptoProvider};
pub use error::StorageError;
pub use keyring::{DataKey, KeyInfo, KeyState, MasterRotation, TenantKeyring};
pub use objects::{
    DirEntry, FetchedRange, GcReport, ObjectInfo, ObjectReader, ObjectStore, ObjectWriter,
    PutOptions, ReencryptProgress,
};
pub use projects::{
    Project, ProjectQuery, ProjectSpec, ProjectStore, ProjectUpdate, SqlProjectStore,
};
pub use verify::{Problem, ProblemKind, VerifyOptions, VerifyReport};

/// `ate-storage`'s migrations (tenant keys, the object index, projects, snapshots, analysis
/// results), for
/// [`Db::migrate`](ate_core::Db::migrate); the stores run them when opened.
pub fn migrations() -> ate_core::Migrations {
    ate_core::Migrations::new(
        "storage",
        sqlx::migrate!("migrations/sqlite"),
        sqlx::migrate!("migrations/postgres"),
    )
}
