//! # ate-auth
//!
//! Authentication and authorization for ATE. **Under construction** (issue 4): the modules
//! below are real and tested; users, sessions, refresh-token families, lockout, the tower
//! layer and the Python surface are not here yet.
//!
//! * [`password`]: Argon2id hashing (OWASP minimum or stronger, PHC strings, rehash on
//!   login), bcrypt import, a dummy hash for unknown users, bounded concurrency off the async
//!   runtime, and the ASVS 5 password policy;
//! * [`jwt`]: signing keys (EdDSA by default, ES256, RS256), JWKS export, and strict token
//!   verification for ATE's own tokens and for external OIDC issuers.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod error;
pub mod jwt;
pub mod password;

pub use error::AuthError;
