//! # ate-auth
//!
//! Authentication and authorization for ATE. **Not yet implemented**: this crate compiles so
//! the workspace layout is fixed, and exports nothing until its issue lands.
//!
//! It will own:
//!
//! * **users** of a tenant, roles (`user`, `admin`, and the explicit platform-level
//!   `super_admin`, which maps to [`ate_core::Principal::platform_admin`]) and permissions;
//! * **passwords**: Argon2id at the OWASP minimum or stronger, hashed off the async runtime
//!   with bounded concurrency, a dummy hash for unknown users, an ASVS 5 password policy;
//! * **access tokens**: JWTs (EdDSA by default) whose `kid` resolves only to ATE's own keys,
//!   signing keys stored wrapped under the master key, rotated, and exported as a JWKS;
//! * **refresh tokens**: opaque, stored hashed, single-use, in families revoked on reuse;
//! * **lockout and rate limits** with atomic counters, and every auth event recorded in the
//!   [`ate_core::AuditSink`] with OWASP's vocabulary.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
