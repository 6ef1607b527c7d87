//! Key ids (`kid`): how they are made and which ones are accepted.

use crate::AuthError;
use ate_core::CoreError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The longest `kid` accepted, in bytes.
pub const MAX_KID_LEN: usize = 128;

/// Bytes of randomness in a generated `kid` (encoded as 22 base64url characters).
const RANDOM_KID_BYTES: usize = 16;

/// Why `kid` is not acceptable, or `None` if it is.
///
/// A `kid` arrives from an unauthenticated token and is used as a lookup key. ATE looks it
/// up only in its in-memory key set, but it also reaches logs and error messages, so it is
/// held to a small, inert alphabet before anything looks it up: ASCII letters and digits
/// plus `- _ . ~ @ : + = /` (base64url, standard base64 as AWS Cognito uses, UUIDs, hex,
/// e-mail-like ids), 1 to [`MAX_KID_LEN`] bytes, and no `..` (so no path can climb out of
/// a directory if a host ever maps kids to files). Quotes, backslashes, semicolons,
/// spaces, control characters and NUL never pass.
pub(crate) fn kid_problem(kid: &str) -> Option<&'static str> {
    if kid.is_empty() {
        return Some("kid is empty");
    }
    if kid.len() > MAX_KID_LEN {
        return Some("kid is longer than 128 bytes");
    }
    if !kid
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.~@:+=/".contains(&b))
    {
        return Some("kid contains characters outside [A-Za-z0-9-_.~@:+=/]");
    }
    if kid.contains("..") {
        return Some("kid contains \"..\"");
    }
    None
}

/// Checks a `kid` chosen by the caller (not read from a token).
pub(crate) fn check_kid(kid: &str) -> Result<(), AuthError> {
    match kid_problem(kid) {
        None => Ok(()),
        Some(reason) => Err(AuthError::invalid("kid", reason)),
    }
}

/// A fresh random `kid`: 16 bytes from the OS CSPRNG, base64url without padding.
pub(crate) fn random_kid() -> Result<String, AuthError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<RANDOM_KID_BYTES>()?))
}

/// `N` bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| {
        AuthError::Core(CoreError::Unavailable {
            message: format!("the operating system's random number generator failed: {e}"),
            source: None,
        })
    })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_kid_charset_and_length() {
        for ok in [
            "a",
            "kid-ec-sign",
            "RS256_2048",
            "bilbo.baggins@hobbiton.example",
            "018c0ae5-4d9b-471b-bfd6-eef314bc7037",
            "abcdefghijklmnopqrsexample=",
            "P6qHkOE2WEqFhhB4b9Z2ccFtbpaRvSd0VtO10+4BmpE=",
            // AWS Cognito publishes standard-base64 kids, '/' included.
            "1P2y7Cq1oV2B8N+Y3aHfJ+rG/cW0mv8ZQ3b6xgP0nS8=",
            "/starts/with/a/slash=",
            &"k".repeat(MAX_KID_LEN),
        ] {
            assert_eq!(kid_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "../etc/passwd",
            "..",
            "a/../b",
            "/..",
            "\\",
            "x' OR '1'='1",
            "a;DROP TABLE keys",
            "a\"b",
            "a b",
            "a\0b",
            "a\nb",
            "é",
            &"k".repeat(MAX_KID_LEN + 1),
        ] {
            assert!(kid_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn jwt_random_kids_are_url_safe_and_distinct() {
        let a = random_kid().unwrap();
        let b = random_kid().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 22);
        assert_eq!(kid_problem(&a), None);
    }
}
