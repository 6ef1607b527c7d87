//! # ate-storage
//!
//! Encrypted object storage for ATE. **Not yet implemented**: this crate compiles so the
//! workspace layout is fixed, and exports nothing until its issue lands.
//!
//! It will own:
//!
//! * **Cobblestone-256** (c2sp.org/chunked-encryption with HKDF-Expand-SHA-512 and
//!   AES-256-GCM): one-shot, streaming and random-access encryption, behind a pluggable cipher
//!   provider (RustCrypto `aes-gcm` always, a faster one behind a feature), checked against
//!   the Wycheproof vectors;
//! * the **tenant keyring**: per-tenant data keys wrapped under the master key from
//!   [`ate_core::keys::KeyProvider`], with versions, rotation and crypto-shredding;
//! * **blob backends** over Apache OpenDAL (`memory://`, `fs://`, `s3://`), with object
//!   names derived from tenant and object ids only;
//! * the **metadata index** and the object store API scoped to an
//!   [`ate_core::Principal`]: put, get, ranged get, stat, delete, list, copy, and quotas.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
