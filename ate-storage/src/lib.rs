//! # ate-storage
//!
//! Encrypted object storage for ATE. Available now:
//!
//! * [`cobblestone`]: **Cobblestone-256** (c2sp.org/chunked-encryption with HKDF-Expand-SHA-512
//!   and AES-256-GCM), one-shot, streaming and random access, over a pluggable
//!   [`CryptoProvider`](cobblestone::CryptoProvider) (RustCrypto always, `ring` behind the
//!   default `ring` feature), checked against every Wycheproof vector.
//!
//! * [`keyring`]: the **tenant keyring**: per-tenant data keys wrapped under the master key
//!   from [`ate_core::keys::KeyProvider`], with versions, rotation, master-key rotation and
//!   crypto-shredding, every change audited atomically.
//!
//! * [`blob`]: **blob backends** over Apache OpenDAL (`memory://`, `fs://`, `s3://`), with
//!   blob names derived from tenant and object ids only.
//!
//! Still to come (tracked in the issue for this crate): re-encryption of a tenant's objects
//! to its newest key, and
//!
//! * the **metadata index** and the object store API scoped to an
//!   [`ate_core::Principal`]: put, get, ranged get, stat, delete, list, copy, and quotas.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod blob;
pub mod cobblestone;
mod error;
pub mod keyring;
pub mod objects;

pub use error::StorageError;

/// `ate-storage`'s migrations (tenant keys, the object index), for
/// [`Db::migrate`](ate_core::Db::migrate); the stores run them when opened.
pub fn migrations() -> ate_core::Migrations {
    ate_core::Migrations::new(
        "storage",
        sqlx::migrate!("migrations/sqlite"),
        sqlx::migrate!("migrations/postgres"),
    )
}
