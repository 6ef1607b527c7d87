//! Passwords: the secret itself, the policy for setting one, and how it is stored and checked.
//!
//! * [`Password`] holds what the user typed: zeroized on drop, `[REDACTED]` in `Debug`,
//!   never `Display`ed.
//! * [`PasswordPolicy`] decides whether a new password may be set (ASVS 5.0 V6.2).
//! * [`PasswordHasher`] turns a password into a [`PasswordHash`] (an Argon2id PHC string)
//!   and checks passwords against stored hashes, including imported bcrypt hashes
//!   ([`import_bcrypt`]).
//!
//! ```
//! use ate_auth::password::{Password, PasswordHasher, PasswordPolicy, PolicyContext};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ate_auth::AuthError> {
//! let policy = PasswordPolicy::default();
//! let hasher = PasswordHasher::default();
//!
//! // Registration: check, then hash and store the PHC string.
//! let password = Password::new("correct horse battery staple");
//! policy.check(&password, &PolicyContext::new().email("alice@example.com"))?;
//! let stored = hasher.hash(&password).await?.into_string();
//!
//! // Login: verify, and store a fresh hash when the stored one is outdated.
//! let verified = hasher.verify(&password, &stored).await?;
//! if verified.needs_rehash {
//!     let _upgraded = hasher.hash(&password).await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Choices
//!
//! * **Argon2id at the OWASP minimum or stronger.** The default is m = 19 MiB, t = 2, p = 1,
//!   the OWASP Password Storage Cheat Sheet's minimum. [`PasswordHasher::new`] refuses
//!   anything weaker than one of the cheat sheet's equivalent rows
//!   ([`Argon2Params::OWASP_EQUIVALENTS`]); only [`PasswordHasher::insecure_for_tests`]
//!   bypasses that. Hashes carry a 16-byte random salt and a 32-byte output, as RFC 9106
//!   recommends. One default hash takes about 25–40 ms of one core on the development
//!   machine, in release and dev builds alike (dependencies build with opt-level 2);
//!   benches measure it precisely.
//! * **PHC strings and rehash on login.** The stored string names its algorithm and
//!   parameters, so raising the parameters never locks anyone out: [`PasswordHasher::verify`]
//!   checks with the stored parameters and answers [`Verified::needs_rehash`] when they
//!   differ from the configured ones (weaker or stronger) or the algorithm is not
//!   Argon2id (bcrypt, Argon2i, Argon2d).
//! * **Off the async runtime, bounded.** Each computation takes tens of milliseconds of CPU
//!   and `m` of memory. The async methods run on tokio's blocking pool behind a semaphore
//!   (default: one permit per CPU), so a burst of logins queues instead of starving the
//!   runtime or exhausting memory.
//! * **Unknown users cost the same.** [`PasswordHasher::verify_dummy`] checks the password
//!   against a dummy hash with the configured parameters and always fails, so "no such
//!   user" takes as long as "wrong password" (OWASP Authentication Cheat Sheet). Tests
//!   check that it spends exactly the configured Argon2 parameters rather than timing it;
//!   timings belong in benches.
//! * **Constant-time comparison.** Outputs are compared by the `argon2` and `bcrypt` crates
//!   in constant time; nothing compares hashes with `==` ([`PasswordHash`] has no
//!   `PartialEq`).
//! * **Unreadable stored hashes** (unknown format, malformed, or parameters beyond
//!   [`Argon2Params::MAX_MEMORY_KIB`] and friends or bcrypt cost above
//!   [`BCRYPT_MAX_COST`]) are [`AuthError::Crypto`], kind `Integrity`: operators see that a
//!   row is damaged, while the message holds no part of the hash, and the dummy's work is
//!   spent first so the answer does not come back faster. Hosts answer clients with a
//!   generic error. At import time, [`import_bcrypt`] refuses such input with
//!   [`AuthError::InvalidInput`] instead.
//! * **Legacy bcrypt.** Hashes `$2a$`/`$2b$`/`$2y$` with cost 10 to 16 can be imported and
//!   verify until the first login rehashes them. bcrypt reads only the first 72 bytes of a
//!   password, as the system that made the hash did; the Argon2id hash that replaces it
//!   covers the whole password.
//! * **The policy** follows ASVS 5.0 V6.2: at least 8 characters (15 recommended), at least
//!   64 accepted (128 by default) and longer refused rather than truncated, no composition
//!   rules, no common passwords (a shipped list of 30,000 from zxcvbn, MIT), nothing equal
//!   to the user's email, its local part, username or name. Lengths count Unicode scalar
//!   values as typed, without NFC normalization, and the password is hashed exactly as
//!   received (V6.2.8).
//!
//! Not here: a pepper (a host-held secret mixed into every hash), checks against
//! breached-password services (ASVS 5.0 V6.2.12), and attempt limits (the user store's
//! lockout).
//!
//! # References
//!
//! * OWASP Password Storage Cheat Sheet,
//!   <https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html>
//! * OWASP Application Security Verification Standard 5.0, V6.2 "Password Security",
//!   <https://owasp.org/www-project-application-security-verification-standard/>
//! * OWASP Authentication Cheat Sheet (authentication responses),
//!   <https://cheatsheetseries.owasp.org/cheatsheets/Authentication_Cheat_Sheet.html>
//! * NIST SP 800-63B, Digital Identity Guidelines: Authentication,
//!   <https://pages.nist.gov/800-63-4/sp800-63b.html>
//! * RFC 9106, Argon2 Memory-Hard Function, <https://www.rfc-editor.org/rfc/rfc9106>
//! * PHC string format,
//!   <https://github.com/P-H-C/phc-string-format/blob/master/phc-sf-spec.md>
//!
//! [`AuthError::Crypto`]: crate::AuthError::Crypto
//! [`AuthError::InvalidInput`]: crate::AuthError::InvalidInput

mod hasher;
mod params;
mod policy;
mod secret;
mod stored;

pub use hasher::{PasswordHasher, Verified};
pub use params::Argon2Params;
pub use policy::{PasswordPolicy, PolicyContext};
pub use secret::Password;
pub use stored::{BCRYPT_MAX_COST, BCRYPT_MIN_COST, PasswordHash, import_bcrypt};
