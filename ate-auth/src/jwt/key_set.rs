//! Sets of public keys by `kid`, and their JWKS form (RFC 7517 §5).

use super::json::parse_object;
use super::jwk::{JwkOutcome, VerificationKey, parse_public_jwk};
use super::jws::{VerifiedJws, verify_compact};
use crate::AuthError;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The largest JWKS document [`KeySet::from_jwks`] reads, in bytes.
pub const MAX_JWKS_LEN: usize = 64 * 1024;
/// The most keys [`KeySet::from_jwks`] reads from one document.
pub const MAX_JWKS_KEYS: usize = 64;

/// Public keys by `kid`: what a verifier trusts.
///
/// For ATE's own tokens, build it from the signing keys
/// ([`SigningKeyRing::key_set`](super::SigningKeyRing::key_set)); publish it with
/// [`to_jwks`](Self::to_jwks). For another issuer's tokens, load its JWKS with
/// [`from_jwks`](Self::from_jwks). Keys are only ever looked up by a token's `kid` after
/// that `kid` passed the header rules, and each key carries its own algorithm.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: BTreeMap<String, VerificationKey>,
    skipped: Vec<SkippedKey>,
}

/// A key in a JWKS that [`KeySet::from_jwks`] left out because it is not a signature key
/// ATE can use (an encryption key, an unsupported algorithm or curve).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedKey {
    /// Its `kid`.
    pub kid: String,
    /// Why it was left out.
    pub reason: String,
}

impl KeySet {
    /// An empty set.
    pub fn new() -> KeySet {
        KeySet::default()
    }

    /// Adds a key. Errors if a key with the same `kid` is already in the set.
    pub fn insert(&mut self, key: VerificationKey) -> Result<(), AuthError> {
        if self.keys.contains_key(key.kid()) {
            return Err(AuthError::invalid(
                "key set",
                format!("duplicate kid {}", key.kid()),
            ));
        }
        self.insert_unchecked(key);
        Ok(())
    }

    /// Adds a key whose `kid` the caller knows is new.
    pub(crate) fn insert_unchecked(&mut self, key: VerificationKey) {
        self.keys.insert(key.kid().to_owned(), key);
    }

    /// Removes and returns the key with this `kid`.
    pub fn remove(&mut self, kid: &str) -> Option<VerificationKey> {
        self.keys.remove(kid)
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&VerificationKey> {
        self.keys.get(kid)
    }

    /// The keys, ordered by `kid`.
    pub fn iter(&self) -> impl Iterator<Item = &VerificationKey> {
        self.keys.values()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys [`from_jwks`](Self::from_jwks) left out, with the reason (worth a log line).
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// The set as a JWKS document, `{"keys": [...]}`, for publication (each key as
    /// [`VerificationKey::to_jwk`] renders it: public members only, `alg`, `"use": "sig"`).
    pub fn to_jwks(&self) -> Value {
        json!({ "keys": self.keys.values().map(VerificationKey::to_jwk).collect::<Vec<_>>() })
    }

    /// Loads another issuer's JWKS (RFC 7517 §5), strictly.
    ///
    /// **Rejects the whole document** (an [`AuthError::InvalidInput`] saying why) when it
    /// is longer than [`MAX_JWKS_LEN`] bytes or holds more than [`MAX_JWKS_KEYS`] keys; is
    /// not a JSON object with a `keys` array, or repeats a member name; when any key is a
    /// symmetric `oct` key (HMAC is never accepted from a JWKS) or carries a private member
    /// (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`: a JWKS must be public); when any key
    /// lacks a valid `kid` (keys are never assigned one: tokens name their key, and a key
    /// without a name cannot be chosen safely) or two keys share one; when a key meant
    /// for a supported algorithm is malformed or weak (a point off the curve, a
    /// small-order Ed25519 point, RSA under 2048 or over 4096 bits, an RSA exponent below
    /// 3 or even, the ROCA fingerprint, `alg` contradicting `kty`/`crv`); or when no usable
    /// key is left.
    ///
    /// **Skips a key** (listed in [`skipped`](Self::skipped)) that is well-formed but not
    /// a signature key ATE can use: `use` other than `"sig"`, `key_ops` without `"verify"`,
    /// a JWE `alg`, or a signature algorithm or curve ATE does not support (`PS256`,
    /// `RS384`, P-384, Ed448, an unknown `kty`, ...). Providers such as Keycloak publish
    /// encryption keys next to signing keys; refusing the whole document for them would
    /// make such providers unusable, and a skipped key can never verify anything.
    ///
    /// Keys without `alg` get the one their type implies (OKP/Ed25519: EdDSA, EC/P-256:
    /// ES256, RSA: RS256; some providers, Microsoft Entra ID among them, omit `alg`).
    /// `x5c`, `x5t` and other members are ignored; the key is `n`/`e` or `x`/`y`.
    pub fn from_jwks(json: &str) -> Result<KeySet, AuthError> {
        let bad = |reason: String| AuthError::invalid("JWKS", reason);
        if json.len() > MAX_JWKS_LEN {
            return Err(bad(format!("longer than {MAX_JWKS_LEN} bytes")));
        }
        let document = parse_object(json.as_bytes()).map_err(bad)?;
        let Some(Value::Array(keys)) = document.get("keys") else {
            return Err(bad("no \"keys\" array".to_owned()));
        };
        if keys.len() > MAX_JWKS_KEYS {
            return Err(bad(format!(
                "{} keys; at most {MAX_JWKS_KEYS} are read",
                keys.len()
            )));
        }
        let mut set = KeySet::new();
        for (index, jwk) in keys.iter().enumerate() {
            let outcome = parse_public_jwk(jwk).map_err(|e| bad(format!("key {index}: {e}")))?;
            let kid = match &outcome {
                JwkOutcome::Usable(key) => key.kid(),
                JwkOutcome::Skipped { kid, .. } => kid,
            };
            if set.keys.contains_key(kid) || set.skipped.iter().any(|s| s.kid == kid) {
                return Err(bad(format!("key {index}: duplicate kid {kid}")));
            }
            match outcome {
                JwkOutcome::Usable(key) => set.insert_unchecked(key),
                JwkOutcome::Skipped { kid, reason } => set.skipped.push(SkippedKey { kid, reason }),
            }
        }
        if set.is_empty() {
            let reasons: Vec<String> = set
                .skipped
                .iter()
                .map(|s| format!("{}: {}", s.kid, s.reason))
                .collect();
            return Err(bad(if reasons.is_empty() {
                "no keys".to_owned()
            } else {
                format!("no usable signature key ({})", reasons.join("; "))
            }));
        }
        Ok(set)
    }

    /// Verifies a compact JWS against this set: size limit, compact form, header rules,
    /// key lookup by `kid`, `alg` equal to the key's algorithm, signature. Returns the header
    /// and the payload bytes; interpreting the payload is the caller's business (see
    /// [`Verifier`](super::Verifier) for JWTs).
    ///
    /// Errors are always [`AuthError::InvalidToken`].
    pub fn verify_jws(
        &self,
        token: &str,
        max_token_bytes: usize,
    ) -> Result<VerifiedJws, AuthError> {
        verify_compact(token, self, max_token_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::test_support::{TEST_RSA_E, TEST_RSA_N, forge, keys_of, rsa_test_key};
    use crate::jwt::{DEFAULT_MAX_TOKEN_BYTES, SigningAlgorithm, SigningKey};
    use ate_core::{Classify, ErrorKind};

    fn rejected(json: &str, expected: &str) {
        match KeySet::from_jwks(json) {
            Ok(set) => panic!("accepted {json}: {set:?}"),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::InvalidInput);
                assert!(e.to_string().contains(expected), "{e} (wanted {expected})");
            }
        }
    }

    #[test]
    fn jwt_jwks_round_trips_and_verifies() {
        let ed = SigningKey::generate(SigningAlgorithm::EdDSA).unwrap();
        let ec = SigningKey::generate(SigningAlgorithm::ES256).unwrap();
        let rsa = rsa_test_key();
        let ours = keys_of(&[&ed, &ec, &rsa]);
        let jwks = ours.to_jwks();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 3);
        for jwk in jwks["keys"].as_array().unwrap() {
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(jwk.get(private).is_none());
            }
        }
        let theirs = KeySet::from_jwks(&jwks.to_string()).unwrap();
        assert!(theirs.skipped().is_empty());
        for key in [&ed, &ec, &rsa] {
            assert_eq!(theirs.get(key.kid()), Some(key.verification_key()));
            let h = serde_json::json!({"alg": key.algorithm().as_str(), "kid": key.kid()});
            theirs
                .verify_jws(&forge(key, &h, b"hi"), DEFAULT_MAX_TOKEN_BYTES)
                .unwrap();
        }
    }

    #[test]
    fn jwt_jwks_document_rules() {
        let ed = SigningKey::generate(SigningAlgorithm::EdDSA).unwrap();
        let jwk = ed.public_jwk();
        rejected("[]", "not a JSON object");
        rejected("{}", "no \"keys\"");
        rejected(r#"{"keys":{}}"#, "no \"keys\"");
        rejected(r#"{"keys":[]}"#, "no keys");
        rejected(r#"{"keys":[1]}"#, "not a JSON object");
        rejected(&format!(r#"{{"keys":[{jwk}],"keys":[]}}"#), "duplicate");
        rejected(&format!(r#"{{"keys":[{jwk},{jwk}]}}"#), "duplicate kid");
        rejected(&" ".repeat(MAX_JWKS_LEN + 1), "longer than");
        let many: Vec<Value> = (0..=MAX_JWKS_KEYS)
            .map(|i| {
                let mut k = jwk.clone();
                k["kid"] = json!(format!("k{i}"));
                k
            })
            .collect();
        rejected(&json!({ "keys": many }).to_string(), "at most");
        let mut no_kid = jwk.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        rejected(&json!({"keys": [jwk, no_kid]}).to_string(), "no \"kid\"");
        let hmac = json!({"kty": "oct", "k": "c2VjcmV0", "kid": "h", "alg": "HS256"});
        rejected(&json!({"keys": [jwk, hmac]}).to_string(), "symmetric");
        let mut private = jwk.clone();
        private["d"] = json!("AAAA");
        private["kid"] = json!("other");
        rejected(
            &json!({"keys": [jwk, private]}).to_string(),
            "private member \"d\"",
        );
    }

    #[test]
    fn jwt_jwks_skips_keys_that_are_not_for_signatures() {
        let ec = SigningKey::generate(SigningAlgorithm::ES256).unwrap();
        let enc = json!({"kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "kid": "enc-1",
                         "n": TEST_RSA_N, "e": TEST_RSA_E});
        let ps =
            json!({"kty": "RSA", "alg": "PS256", "kid": "ps-1", "n": TEST_RSA_N, "e": TEST_RSA_E});
        let ops = json!({"kty": "RSA", "key_ops": ["encrypt"], "kid": "ops-1",
                         "n": TEST_RSA_N, "e": TEST_RSA_E});
        let x25519 = json!({"kty": "OKP", "crv": "X25519", "kid": "x-1", "x": "AAAA"});
        let doc = json!({"keys": [enc, ps, ec.public_jwk(), ops, x25519]});
        let set = KeySet::from_jwks(&doc.to_string()).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.get(ec.kid()).is_some());
        let skipped: Vec<&str> = set.skipped().iter().map(|s| s.kid.as_str()).collect();
        assert_eq!(skipped, ["enc-1", "ps-1", "ops-1", "x-1"]);
        // A document of skipped keys only is useless, and says why.
        rejected(
            &json!({"keys": [json!({"kty": "RSA", "alg": "PS256", "kid": "ps-1",
            "n": TEST_RSA_N, "e": TEST_RSA_E})]})
            .to_string(),
            "no usable signature key (ps-1",
        );
        // A duplicate between a skipped key and a usable one is still a duplicate.
        let mut twin = ec.public_jwk();
        twin["use"] = json!("enc");
        rejected(
            &json!({"keys": [ec.public_jwk(), twin]}).to_string(),
            "duplicate kid",
        );
    }

    #[test]
    fn jwt_key_set_insert_remove() {
        let ed = SigningKey::generate(SigningAlgorithm::EdDSA).unwrap();
        let mut set = KeySet::new();
        assert!(set.is_empty());
        set.insert(ed.verification_key().clone()).unwrap();
        assert!(set.insert(ed.verification_key().clone()).is_err());
        assert_eq!(set.len(), 1);
        assert_eq!(set.iter().count(), 1);
        assert!(set.remove(ed.kid()).is_some());
        assert!(set.get(ed.kid()).is_none());
    }
}
