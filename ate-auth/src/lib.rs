//! # ate-auth
//!
//! Authentication and authorization for ATE, as a library: the host brings the transport.
//!
//! * [`Auth`]: register a user with a new organization (one transaction), create users,
//!   log in (Argon2id, uniform failures, exact lockout, rate limits), refresh (rotating
//!   refresh-token families with reuse detection and a retry grace), log out (one session
//!   or everywhere), verify access tokens into a [`Principal`](ate_core::Principal), change
//!   and reset passwords. Every event is audited with OWASP's vocabulary.
//! * [`users`]: users, roles (`user` < `admin` < `super_admin`), grants that never exceed
//!   the granter's, the `max_users` quota, the lockout policy.
//! * [`sessions`]: login sessions.
//! * [`tokens`]: access tokens ([`tokens::access`]: signing keys in the database, wrapped
//!   under the master key, rotated, published as a JWKS; the denylist for single logout) and
//!   refresh tokens ([`tokens::refresh`]: rotating families with reuse detection).
//! * [`jwt`]: EdDSA/ES256/RS256 keys, strict JWS/JWT verification for ATE's tokens and for
//!   external OIDC issuers (`ExternalVerifier`), checked against Wycheproof.
//! * [`password`]: Argon2id hashing off the async runtime with bounded concurrency, bcrypt
//!   import, the dummy hash, the ASVS 5 password policy.
//! * [`ratelimit`]: keyed fixed-window limits shared through the database.
//! * `layer` (feature `tower`): a tower `Layer` that authenticates `Authorization: Bearer`
//!   requests and hands the [`Principal`](ate_core::Principal) to the inner service (axum,
//!   tonic, hyper); `examples/src/bin/auth_server.rs` uses it in an axum API.
//!
//! Python: `a.auth` and `ate.auth.JwtVerifier` in the `ate` package (`ate-python`).
//!
//! Verification cost: [`Auth::verify`] checks the tenant, the user and the session on every
//! call through a short-lived in-process cache ([`verify_cache`]) that every change made
//! through ATE in this process invalidates at once; it costs 1.01–1.04× a bare
//! `jsonwebtoken` decode (`benches/README.md`).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod auth;
pub mod error;
pub mod jwt;
#[cfg(feature = "tower")]
pub mod layer;
pub mod password;
pub mod ratelimit;
pub mod sessions;
pub mod tokens;
pub mod users;
pub mod verify_cache;

pub use auth::{Auth, AuthConfig, ClientInfo, Tokens};
pub use error::AuthError;
pub use sessions::{Session, SessionPolicy, SessionStore};
pub use tokens::{AccessToken, RefreshToken, Refreshed, TokenConfig, TokenService};
pub use users::{LockoutPolicy, NewUser, Role, User, UserStatus, UserStore, UserUpdate};

/// `ate-auth`'s migrations (users, sessions, refresh tokens, signing keys, denylist), for
/// [`Db::migrate`](ate_core::Db::migrate); the stores run them when opened.
pub fn migrations() -> ate_core::Migrations {
    ate_core::Migrations::new(
        "auth",
        sqlx::migrate!("migrations/sqlite"),
        sqlx::migrate!("migrations/postgres"),
    )
}
