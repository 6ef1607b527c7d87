//! JWT signing keys, JWKS, and strict access-token verification.
//!
//! # What is here
//!
//! * [`SigningKey`]: a private key (EdDSA by default, ES256, RS256) with a random `kid`,
//!   stored as zeroizing PKCS#8 DER, that signs [`Claims`] into a compact JWS with the
//!   header `{"alg", "typ": "JWT", "kid"}`. [`SigningKeyRing`] holds an issuer's keys for
//!   rotation: the newest signs, all verify until retired.
//! * [`KeySet`]: public keys by `kid` ([`VerificationKey`]), published with
//!   [`KeySet::to_jwks`] and loaded from another issuer with [`KeySet::from_jwks`].
//! * [`Verifier`] for ATE's own access tokens (returns [`Claims`]) and [`ExternalVerifier`]
//!   for another OpenID Connect provider's (returns the raw claims object).
//!
//! Verification has two layers. The JWS layer ([`KeySet::verify_jws`]) checks the
//! compact form, the protected header and the signature and yields the payload bytes; the
//! claims layer (the verifiers) parses the payload and checks the claims. Test vectors for
//! arbitrary payloads (Wycheproof) run against the first layer alone.
//!
//! # The rules
//!
//! They follow RFC 7515 (JWS), RFC 7519 (JWT) and RFC 8725 (JWT Best Current Practices),
//! tightened where those leave room. A token failing any of them is an
//! [`AuthError::InvalidToken`](crate::AuthError::InvalidToken).
//!
//! 1. **Size first.** A token longer than the limit (default [`DEFAULT_MAX_TOKEN_BYTES`],
//!    8 KiB; configurable from 512 B to 64 KiB) is refused before anything is decoded.
//! 2. **Compact form.** Exactly three dot-separated parts of unpadded, canonical base64url
//!    (RFC 7515 §7.1, §2): no whitespace, no `=`, no other characters, no JSON
//!    serialization. Header and signature must be non-empty. Header and payload must be
//!    UTF-8 JSON objects with **no duplicate member names** at any depth (RFC 7515 §5.2
//!    permits last-one-wins; two parsers disagreeing on which one wins is an exploit).
//! 3. **Header.** `alg` must be a string; `none` is refused in every casing (RFC 8725 §3.1);
//!    only `EdDSA`, `ES256`, `RS256` pass (exact case). `kid` is required: a string of 1 to
//!    128 characters from `[A-Za-z0-9-_.~@:+=]` without `..`, checked before any lookup,
//!    so path traversal, quotes, SQL, NUL and oversized values never reach a key store.
//!    `jku`, `jwk`, `x5u`, `x5c`, `x5t`, `x5t#S256` are refused: keys come only from the
//!    configured set (RFC 8725 §3.10). `crit` is refused (no extension is understood, RFC
//!    7515 §4.1.11), as are `b64`, `zip` and `cty` (unencoded payloads, compression,
//!    nested tokens). `typ`, if present, must be `JWT` or `at+jwt` (case-insensitive,
//!    `application/` prefix allowed; RFC 8725 §3.11, RFC 9068).
//! 4. **The key decides the algorithm.** The key found by `kid` carries one algorithm,
//!    fixed when it was created or loaded; a header `alg` that differs is refused before
//!    any cryptography. HMAC does not exist here, so the classic confusion (HS256 with the
//!    public key as the secret, RFC 8725 §2.1) has nothing to confuse.
//! 5. **Signature.** Verified by `jsonwebtoken`'s RustCrypto provider
//!    ([`jsonwebtoken::crypto::verify`]) after an exact length check (64 bytes for EdDSA
//!    and ES256, the modulus length for RS256). ECDSA signatures with `r` or `s` zero or
//!    not below the group order are invalid; tampering with any part fails.
//! 6. **Claims.** NumericDates (`exp`, `nbf`, `iat`) must be JSON **integers** (`i64`):
//!    strings such as `"9999999999"`, floats and fractions are refused. RFC 7519 allows
//!    non-integer dates, but no issuer we know sends them, and one spelling per value is
//!    what keeps validators in agreement. `iss` must equal the configured issuer (exact
//!    string); `aud` may be a string or a non-empty array of strings and must contain
//!    the configured audience. With `now` passed by the caller (`verify(token, now)`,
//!    typically from an [`ate_core::Clock`]) and a leeway (default 30 s, configurable
//!    from 0 to 5 min), a token is refused if `now - leeway >= exp`, `nbf > now + leeway`,
//!    `iat > now + leeway`, or `exp` is not after `iat`/`nbf`. ATE tokens require `iss`,
//!    `aud`, `sub`, `tenant`, `jti` (non-empty strings), `exp`, `iat`, `nbf`; `roles` is
//!    optional (an array of non-empty strings), as is `sid` (a non-empty string). External
//!    tokens require `iss`, `aud`, `exp`; `nbf`, `iat`, `sub`, `jti` are checked when
//!    present.
//!
//! # JWKS
//!
//! [`KeySet::from_jwks`] accepts only public signature keys ATE supports:
//! `OKP`/`Ed25519`/`EdDSA`, `EC`/`P-256`/`ES256`, `RSA`/`RS256` with a 2048- to 4096-bit
//! modulus. Documents with private members, `oct` keys, keys without `kid`, duplicate
//! kids, invalid points, weak RSA keys (small, even or tiny exponent, ROCA) are refused
//! whole; keys meant for something else (encryption, unsupported algorithms) are skipped
//! and listed. Its documentation has the details.
//!
//! # Keys and secrets
//!
//! Private keys live as PKCS#8 DER in [`ate_core::keys::SecretBytes`] (zeroized on drop,
//! redacted in `Debug`); [`SigningKey::to_pkcs8`] hands them out for storage, to be wrapped
//! under the master key. Signing uses *ring*; verification uses RustCrypto through
//! `jsonwebtoken`; each key is checked across the two when it is created.
//! [`SigningKey::generate`] makes EdDSA, ES256 and RS256 (3072-bit) keys; keys made elsewhere
//! are imported with [`SigningKey::from_pkcs8`] or, for RSA in OpenSSL's traditional format,
//! [`SigningKey::from_rsa_pkcs1`] (re-encoded as PKCS#8 with RustCrypto's `pkcs1`/`pkcs8`).

mod algorithm;
mod claims;
mod json;
mod jwk;
mod jws;
mod key_set;
mod kid;
mod signing_key;
#[cfg(test)]
mod test_support;
mod verifier;

pub use algorithm::SigningAlgorithm;
pub use claims::Claims;
pub use jwk::{MAX_RSA_BITS, MIN_RSA_BITS, VerificationKey};
pub use jws::{DEFAULT_MAX_TOKEN_BYTES, VerifiedJws};
pub use key_set::{KeySet, MAX_JWKS_KEYS, MAX_JWKS_LEN, SkippedKey};
pub use kid::MAX_KID_LEN;
pub use signing_key::{SigningKey, SigningKeyRing};
pub use verifier::{DEFAULT_LEEWAY, ExternalVerifier, MAX_LEEWAY, MAX_TOKEN_BYTES_RANGE, Verifier};
