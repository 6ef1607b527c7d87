//! The signature algorithms ATE signs and verifies with.

use crate::AuthError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A JWS signature algorithm ATE supports (RFC 7518 §3.1, RFC 8037 §3.1).
///
/// Deliberately small: one Edwards curve, one NIST curve, one RSA scheme. HMAC (`HS*`) is
/// absent on purpose: a shared secret cannot be published in a JWKS, and accepting it is what
/// makes algorithm confusion possible. Everything else (`PS*`, `ES384`, `ES512`, `RS384`,
/// `RS512`, `none`) is rejected.
///
/// Serialized (serde, `Display`, [`as_str`](Self::as_str)) as its JOSE name, so it can be
/// stored next to a key.
///
/// ```
/// use ate_auth::jwt::SigningAlgorithm;
///
/// assert_eq!(SigningAlgorithm::default(), SigningAlgorithm::EdDSA);
/// assert_eq!("ES256".parse::<SigningAlgorithm>()?, SigningAlgorithm::ES256);
/// assert!("HS256".parse::<SigningAlgorithm>().is_err());
/// assert!("es256".parse::<SigningAlgorithm>().is_err()); // JOSE names are case-sensitive
/// # Ok::<(), ate_auth::AuthError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SigningAlgorithm {
    /// Ed25519 signatures (RFC 8037). The default: small keys, deterministic signatures,
    /// no parameter choices to get wrong.
    #[default]
    EdDSA,
    /// ECDSA over P-256 with SHA-256, signatures as 64-byte `r || s` (RFC 7518 §3.4).
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3), for relying parties that only speak
    /// RSA. Keys of 2048 to 4096 bits.
    RS256,
}

impl SigningAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [SigningAlgorithm; 3] = [
        SigningAlgorithm::EdDSA,
        SigningAlgorithm::ES256,
        SigningAlgorithm::RS256,
    ];

    /// The JOSE `alg` name: `"EdDSA"`, `"ES256"` or `"RS256"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::EdDSA => "EdDSA",
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::RS256 => "RS256",
        }
    }

    /// The algorithm with this exact (case-sensitive) JOSE name, if ATE supports it.
    pub fn from_jose_name(name: &str) -> Option<SigningAlgorithm> {
        SigningAlgorithm::ALL
            .into_iter()
            .find(|alg| alg.as_str() == name)
    }

    /// The same algorithm in `jsonwebtoken`'s terms (its crypto does the verification).
    pub(crate) fn jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            SigningAlgorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            SigningAlgorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            SigningAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlgorithm {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SigningAlgorithm::from_jose_name(s).ok_or_else(|| {
            AuthError::invalid(
                "signing algorithm",
                "supported: EdDSA, ES256, RS256 (case-sensitive)",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_algorithm_names_round_trip_and_are_case_sensitive() {
        for alg in SigningAlgorithm::ALL {
            assert_eq!(alg.as_str().parse::<SigningAlgorithm>().unwrap(), alg);
            assert_eq!(
                serde_json::to_value(alg).unwrap(),
                serde_json::json!(alg.as_str())
            );
            assert_eq!(alg.to_string(), alg.as_str());
        }
        for bad in [
            "none", "HS256", "PS256", "ES384", "RS512", "eddsa", "Es256", "", " EdDSA",
        ] {
            assert!(SigningAlgorithm::from_jose_name(bad).is_none(), "{bad}");
            assert!(bad.parse::<SigningAlgorithm>().is_err(), "{bad}");
        }
    }
}
