//! Private signing keys and the ring of keys that rotates them.

use super::jwk::VerificationKey;
use super::kid::{check_kid, random_kid};
use super::{Claims, KeySet, SigningAlgorithm};
use crate::AuthError;
use ate_core::keys::SecretBytes;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::rsa::PublicKeyComponents;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use serde::Serialize;
use std::fmt;

/// A private key that signs ATE's access tokens.
///
/// Holds its `kid`, its algorithm, the private key as PKCS#8 DER in a [`SecretBytes`]
/// (zeroized on drop, never printed) and the matching [`VerificationKey`].
///
/// * **Signing** is done by *ring* (constant-time, including RSA, whose RustCrypto
///   implementation has a known timing side channel, RUSTSEC-2023-0071). The DER is parsed
///   for each signature, so the only long-lived copy of the private key is the zeroizing
///   one; *ring*'s short-lived parsed copy is not zeroized.
/// * **Verification** uses `jsonwebtoken`'s RustCrypto provider, an independent
///   implementation: every key is checked on creation by signing with one and verifying
///   with the other (a pairwise-consistency test), so a corrupted or mismatched key fails
///   at load time, not on the first token.
///
/// ```
/// use ate_auth::jwt::{SigningAlgorithm, SigningKey};
///
/// let key = SigningKey::generate(SigningAlgorithm::default())?;
/// assert_eq!(key.public_jwk()["kty"], "OKP");
/// assert!(format!("{key:?}").contains("REDACTED"));
/// // Store `key.to_pkcs8()` wrapped under the master key; load it back with `from_pkcs8`.
/// let again = SigningKey::from_pkcs8(key.algorithm(), key.kid(), key.to_pkcs8().expose_secret())?;
/// assert_eq!(again.public_jwk(), key.public_jwk());
/// # Ok::<(), ate_auth::AuthError>(())
/// ```
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    algorithm: SigningAlgorithm,
    pkcs8: SecretBytes,
    public: VerificationKey,
}

impl SigningKey {
    /// A new key pair with a random `kid` (16 random bytes, base64url).
    ///
    /// EdDSA and ES256 keys come from ring; RS256 keys are 3072-bit, generated with the
    /// `rsa` crate (slow: around a second) and then used through ring like imported ones.
    pub fn generate(algorithm: SigningAlgorithm) -> Result<SigningKey, AuthError> {
        let rng = SystemRandom::new();
        let document = match algorithm {
            SigningAlgorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng),
            SigningAlgorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
            SigningAlgorithm::RS256 => {
                // 3072-bit keys (NIST SP 800-57's 128-bit level). Only generation uses the
                // `rsa` crate (and PKCS#1 import, below); signing and verification do not.
                use rsa::pkcs8::EncodePrivateKey;
                let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 3072)
                    .map_err(|e| AuthError::Crypto(format!("RSA key generation failed: {e}")))?;
                let der = key
                    .to_pkcs8_der()
                    .map_err(|e| AuthError::Crypto(format!("RSA key encoding failed: {e}")))?;
                let pkcs8 = SecretBytes::new(der.as_bytes().to_vec());
                return SigningKey::from_parts(algorithm, random_kid()?, pkcs8);
            }
        }
        .map_err(|_| AuthError::Crypto(format!("{algorithm} key generation failed")))?;
        // ring's `Document` is not zeroized on drop; our copy is.
        let pkcs8 = SecretBytes::new(document.as_ref().to_vec());
        SigningKey::from_parts(algorithm, random_kid()?, pkcs8)
    }

    /// Loads a key from unencrypted PKCS#8 DER (RFC 5958), for example one unwrapped from
    /// storage.
    ///
    /// `der` must hold a key of `algorithm`'s type: Ed25519 (PKCS#8 v1 or v2), P-256 (with
    /// its public key, as OpenSSL and ring write it) or RSA of 2048 to 4096 bits with a
    /// public exponent of at least 65537. `kid` must be 1 to 128 characters from
    /// `[A-Za-z0-9-_.~@:+=]`. Errors: [`AuthError::InvalidInput`] for a malformed or
    /// mismatched key or kid; [`AuthError::Crypto`] if the key pair is inconsistent.
    pub fn from_pkcs8(
        algorithm: SigningAlgorithm,
        kid: impl Into<String>,
        der: &[u8],
    ) -> Result<SigningKey, AuthError> {
        let kid = kid.into();
        check_kid(&kid)?;
        SigningKey::from_parts(algorithm, kid, SecretBytes::new(der.to_vec()))
    }

    /// Loads an RS256 key from a DER PKCS#1 `RSAPrivateKey` (OpenSSL's "traditional" RSA
    /// format); it is kept, and returned by [`to_pkcs8`](Self::to_pkcs8), as PKCS#8.
    pub fn from_rsa_pkcs1(kid: impl Into<String>, der: &[u8]) -> Result<SigningKey, AuthError> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::pkcs8::EncodePrivateKey;
        let kid = kid.into();
        check_kid(&kid)?;
        // RustCrypto's DER codecs re-encode the key; ring then checks it like any PKCS#8 key.
        // Both the parsed key and the new document zeroize themselves on drop.
        let key = rsa::RsaPrivateKey::from_pkcs1_der(der).map_err(|e| {
            AuthError::invalid(
                "signing key",
                format!("not a DER PKCS#1 RSAPrivateKey ({e})"),
            )
        })?;
        let pkcs8 = key.to_pkcs8_der().map_err(|e| {
            AuthError::invalid("signing key", format!("cannot be encoded as PKCS#8 ({e})"))
        })?;
        let pkcs8 = SecretBytes::new(pkcs8.as_bytes().to_vec());
        SigningKey::from_parts(SigningAlgorithm::RS256, kid, pkcs8)
    }

    fn from_parts(
        algorithm: SigningAlgorithm,
        kid: String,
        pkcs8: SecretBytes,
    ) -> Result<SigningKey, AuthError> {
        let der = pkcs8.expose_secret();
        let rejected = |e: ring::error::KeyRejected| {
            AuthError::invalid(
                "signing key",
                format!("not a usable {algorithm} PKCS#8 key ({e})"),
            )
        };
        let public = match algorithm {
            SigningAlgorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(rejected)?;
                VerificationKey::ed25519(kid.clone(), pair.public_key().as_ref())
            }
            SigningAlgorithm::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                    &SystemRandom::new(),
                )
                .map_err(rejected)?;
                let point = pair.public_key().as_ref();
                // ring returns the uncompressed SEC1 point: 0x04 || x || y.
                VerificationKey::p256(kid.clone(), &point[1..33], &point[33..])
            }
            SigningAlgorithm::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(der).map_err(rejected)?;
                let components = PublicKeyComponents::<Vec<u8>>::from(pair.public());
                VerificationKey::rsa(kid.clone(), &components.n, &components.e)
            }
        }
        .map_err(|reason| AuthError::invalid("signing key", reason))?;
        let key = SigningKey {
            kid,
            algorithm,
            pkcs8,
            public,
        };
        key.check_pairwise_consistency()?;
        Ok(key)
    }

    /// Signs a fixed message with ring and verifies it with `jsonwebtoken`.
    fn check_pairwise_consistency(&self) -> Result<(), AuthError> {
        const MESSAGE: &[u8] = b"ate-auth signing key pairwise consistency check";
        let signature = URL_SAFE_NO_PAD.encode(self.sign_message(MESSAGE)?);
        let verified = jsonwebtoken::crypto::verify(
            &signature,
            MESSAGE,
            self.public.decoding_key(),
            self.algorithm.jsonwebtoken(),
        );
        match verified {
            Ok(true) => Ok(()),
            _ => Err(AuthError::Crypto(format!(
                "{} key {}: its signature does not verify under its own public key",
                self.algorithm, self.kid
            ))),
        }
    }

    /// The key id, carried in the `kid` header of every token this key signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The private key as unencrypted PKCS#8 DER, for storage: wrap it under the master key
    /// before it goes anywhere.
    pub fn to_pkcs8(&self) -> SecretBytes {
        self.pkcs8.clone()
    }

    /// The public half, for a [`KeySet`].
    pub fn verification_key(&self) -> &VerificationKey {
        &self.public
    }

    /// The public JWK (`kty`, `crv`/`x`/`y` or `n`/`e`, `kid`, `alg`, `"use": "sig"`).
    pub fn public_jwk(&self) -> serde_json::Value {
        self.public.to_jwk()
    }

    /// Signs `claims` into a compact JWS (RFC 7515 §7.1) with the header
    /// `{"alg": <algorithm>, "typ": "JWT", "kid": <kid>}`.
    ///
    /// The claims are checked first ([`Claims::check`]): an access token ATE's own
    /// [`Verifier`](super::Verifier) would reject for its shape is never issued.
    pub fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        claims.check()?;
        let payload = serde_json::to_vec(claims)
            .map_err(|e| AuthError::invalid("claims", format!("cannot serialize: {e}")))?;
        self.sign_with_header(&self.header_json()?, &payload)
    }

    /// The JSON of this key's standard header.
    fn header_json(&self) -> Result<Vec<u8>, AuthError> {
        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'static str,
            typ: &'static str,
            kid: &'a str,
        }
        serde_json::to_vec(&Header {
            alg: self.algorithm.as_str(),
            typ: "JWT",
            kid: &self.kid,
        })
        .map_err(|e| AuthError::Crypto(format!("cannot serialize a JWS header: {e}")))
    }

    /// `base64url(header) . base64url(payload) . base64url(signature)`.
    pub(crate) fn sign_with_header(
        &self,
        header: &[u8],
        payload: &[u8],
    ) -> Result<String, AuthError> {
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = self.sign_message(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    /// The raw JWS signature of `message` (64 bytes for EdDSA and ES256, the modulus size for
    /// RS256).
    pub(crate) fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, AuthError> {
        let der = self.pkcs8.expose_secret();
        let failed =
            |what: &str| AuthError::Crypto(format!("{} signing failed: {what}", self.algorithm));
        let rng = SystemRandom::new();
        match self.algorithm {
            SigningAlgorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|_| failed("key rejected"))?;
                Ok(pair.sign(message).as_ref().to_vec())
            }
            SigningAlgorithm::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
                    .map_err(|_| failed("key rejected"))?;
                let signature = pair.sign(&rng, message).map_err(|_| failed("ring error"))?;
                Ok(signature.as_ref().to_vec())
            }
            SigningAlgorithm::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(der).map_err(|_| failed("key rejected"))?;
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(|_| failed("ring error"))?;
                Ok(signature)
            }
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("private_key", &"[REDACTED]")
            .finish()
    }
}

/// The signing keys of one issuer, oldest first: the newest signs, all of them verify.
///
/// Rotation is [`rotate`](Self::rotate) (the new key signs from now on) followed, once
/// every token signed by an old key has expired (its lifetime plus the verifier's leeway),
/// by [`retire`](Self::retire). [`key_set`](Self::key_set) gives the public keys of all
/// keys still held, for the [`Verifier`](super::Verifier) and for JWKS publication. Where
/// the keys are stored and when to rotate is the caller's policy.
///
/// ```
/// use ate_auth::jwt::{SigningAlgorithm, SigningKey, SigningKeyRing};
///
/// let mut ring = SigningKeyRing::new(SigningKey::generate(SigningAlgorithm::EdDSA)?);
/// let old = ring.current().kid().to_owned();
/// ring.rotate(SigningKey::generate(SigningAlgorithm::EdDSA)?)?;
/// assert_ne!(ring.current().kid(), old);
/// assert_eq!(ring.key_set().len(), 2); // the old key still verifies
/// ring.retire(&old)?;
/// assert_eq!(ring.key_set().len(), 1);
/// # Ok::<(), ate_auth::AuthError>(())
/// ```
#[derive(Clone, Debug)]
pub struct SigningKeyRing {
    /// Oldest first; never empty; kids unique.
    keys: Vec<SigningKey>,
}

impl SigningKeyRing {
    /// A ring holding one key, which signs.
    pub fn new(current: SigningKey) -> SigningKeyRing {
        SigningKeyRing {
            keys: vec![current],
        }
    }

    /// A ring from stored keys, ordered oldest first: the last one signs. Errors if `keys`
    /// is empty or two keys share a `kid`.
    pub fn from_keys(keys: Vec<SigningKey>) -> Result<SigningKeyRing, AuthError> {
        let mut iter = keys.into_iter();
        let first = iter
            .next()
            .ok_or_else(|| AuthError::invalid("signing keys", "at least one key is needed"))?;
        let mut ring = SigningKeyRing::new(first);
        for key in iter {
            ring.rotate(key)?;
        }
        Ok(ring)
    }

    /// Adds `key` as the newest key: it signs every token from now on; the older keys
    /// stay for verification. Errors if its `kid` is already in the ring.
    pub fn rotate(&mut self, key: SigningKey) -> Result<(), AuthError> {
        if self.get(key.kid()).is_some() {
            return Err(AuthError::invalid(
                "signing keys",
                format!("kid {} is already in the ring", key.kid()),
            ));
        }
        self.keys.push(key);
        Ok(())
    }

    /// Removes an old key: tokens it signed stop verifying. The current key cannot be
    /// retired (rotate first).
    pub fn retire(&mut self, kid: &str) -> Result<SigningKey, AuthError> {
        if self.current().kid() == kid {
            return Err(AuthError::invalid(
                "signing keys",
                "the current key cannot be retired; rotate to a new key first",
            ));
        }
        let index = self
            .keys
            .iter()
            .position(|key| key.kid() == kid)
            .ok_or_else(|| AuthError::invalid("signing keys", format!("no key with kid {kid}")))?;
        Ok(self.keys.remove(index))
    }

    /// The key that signs: the newest.
    pub fn current(&self) -> &SigningKey {
        // Invariant: `keys` is never empty (constructors take a key; `retire` keeps the
        // current one).
        &self.keys[self.keys.len() - 1]
    }

    /// The key with this `kid`, if held.
    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|key| key.kid() == kid)
    }

    /// All keys, oldest first.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// Signs `claims` with the current key.
    pub fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        self.current().sign(claims)
    }

    /// The public keys of every key in the ring (for verification and the JWKS).
    pub fn key_set(&self) -> KeySet {
        let mut set = KeySet::new();
        for key in &self.keys {
            // Kids are unique in the ring and were checked when each key was made.
            set.insert_unchecked(key.verification_key().clone());
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::test_support::{b64d, claims, rsa_test_key, rsa_test_pkcs1};
    use ate_core::{Classify, ErrorKind};

    #[test]
    fn jwt_generated_keys_sign_and_reload_from_pkcs8() {
        for alg in [SigningAlgorithm::EdDSA, SigningAlgorithm::ES256] {
            let key = SigningKey::generate(alg).unwrap();
            assert_eq!(key.algorithm(), alg);
            assert_eq!(key.kid().len(), 22);
            let jwk = key.public_jwk();
            assert_eq!(jwk["alg"], alg.as_str());
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["kid"], key.kid());
            let again =
                SigningKey::from_pkcs8(alg, key.kid(), key.to_pkcs8().expose_secret()).unwrap();
            assert_eq!(again.public_jwk(), jwk);
            let token = again.sign(&claims(1_000)).unwrap();
            assert_eq!(token.split('.').count(), 3);
        }
    }

    #[test]
    fn jwt_rs256_keys_import_from_pkcs1_and_pkcs8() {
        let key = rsa_test_key();
        assert_eq!(key.algorithm(), SigningAlgorithm::RS256);
        let pkcs8 = key.to_pkcs8();
        assert_eq!(pkcs8.expose_secret()[0], 0x30);
        let again = SigningKey::from_pkcs8(SigningAlgorithm::RS256, "rsa-2", pkcs8.expose_secret())
            .unwrap();
        assert_eq!(again.public_jwk()["n"], key.public_jwk()["n"]);
        assert_eq!(again.sign_message(b"m").unwrap().len(), 256);
        let generated = SigningKey::generate(SigningAlgorithm::RS256).unwrap();
        assert_eq!(generated.sign_message(b"m").unwrap().len(), 384);
        let jwk = generated.public_jwk();
        assert_eq!(
            (jwk["kty"].as_str(), jwk["alg"].as_str()),
            (Some("RSA"), Some("RS256"))
        );
    }

    #[test]
    fn jwt_keys_are_bound_to_their_algorithm_and_kid_rules() {
        let ed = SigningKey::generate(SigningAlgorithm::EdDSA).unwrap();
        let der = ed.to_pkcs8();
        for alg in [SigningAlgorithm::ES256, SigningAlgorithm::RS256] {
            let e = SigningKey::from_pkcs8(alg, "k", der.expose_secret()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        }
        let e = SigningKey::from_rsa_pkcs1("k", der.expose_secret()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        for kid in ["", "a/../b", "x' OR '1'='1", &"k".repeat(129)] {
            let e = SigningKey::from_pkcs8(SigningAlgorithm::EdDSA, kid, der.expose_secret())
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{kid}");
        }
        assert!(SigningKey::from_pkcs8(SigningAlgorithm::EdDSA, "k", b"garbage").is_err());
        assert!(SigningKey::from_rsa_pkcs1("k", &rsa_test_pkcs1()[..100]).is_err());
    }

    #[test]
    fn jwt_debug_never_shows_key_material() {
        let key = SigningKey::generate(SigningAlgorithm::ES256).unwrap();
        let shown = format!("{key:?} {key:#?}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
        let der = key.to_pkcs8();
        let hex = hex::encode(&der.expose_secret()[40..48]);
        assert!(!shown.contains(&hex), "{shown}");
        assert!(!shown.contains(&format!("{:?}", &der.expose_secret()[40..48])));
    }

    #[test]
    fn jwt_claims_that_would_not_verify_are_not_signed() {
        let key = SigningKey::generate(SigningAlgorithm::EdDSA).unwrap();
        let mut bad = claims(1_000);
        bad.sub.clear();
        assert_eq!(key.sign(&bad).unwrap_err().kind(), ErrorKind::InvalidInput);
        let mut bad = claims(1_000);
        bad.exp = bad.iat;
        assert_eq!(key.sign(&bad).unwrap_err().kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn jwt_rfc8037_ed25519_known_answer() {
        // RFC 8037 A.1 (key) and A.4 (JWS). Ed25519 is deterministic: exact match.
        let seed = b64d("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
        let mut pkcs8_v1 = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        pkcs8_v1.extend_from_slice(&seed);
        let key = SigningKey::from_pkcs8(SigningAlgorithm::EdDSA, "rfc8037", &pkcs8_v1).unwrap();
        assert_eq!(
            key.public_jwk()["x"],
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        );
        let token = key
            .sign_with_header(br#"{"alg":"EdDSA"}"#, b"Example of Ed25519 signing")
            .unwrap();
        assert_eq!(
            token,
            "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7\
             -09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
    }

    #[test]
    fn jwt_rs256_signing_known_answer() {
        // Wycheproof json_web_signature_test.json #33, signed with the same key: PKCS#1 v1.5
        // is deterministic, so ring must reproduce it exactly.
        let expected = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImtpZC1yc2Etc2lnbiJ9.Zm9v.HUwxI1-cZrZgcuOgBQ7G7NE\
            -GrqK79l6GV1KT4DKXnSMFwC8pfZCzE7pmLE7mYpLCIvzC87yuOjuhT0uW5oe6aaAEtR978cm-q8dfly45flqMr\
            d_ifhi9GCsMlyi8dpQ42Ou1etZljFZuWjfyk8CN1c5DaHRwhqjScAPIFp6xmzKIRUJ_xdQfUSfSlujLaixtScU5\
            18EoNP4oo1v7E8RAz6ZO4g2N4Xqs8OvSxYydcoTEg42QnLHe9JnXgI37Q5gSwinwaPsG3Ry56UYiLoL8mCUa74S\
            51y02VsIgVmmGWgaXjM-i_lCiKQDBiBnvWlka4XhVuvd6ZWibM9cbCPtPg";
        let header = b64d(expected.split('.').next().unwrap());
        let token = rsa_test_key().sign_with_header(&header, b"foo").unwrap();
        assert_eq!(token, expected);
    }

    #[test]
    fn jwt_ring_rotates_and_retires() {
        let a = SigningKey::generate(SigningAlgorithm::EdDSA).unwrap();
        let b = SigningKey::generate(SigningAlgorithm::ES256).unwrap();
        let mut ring = SigningKeyRing::from_keys(vec![a.clone(), b.clone()]).unwrap();
        assert_eq!(ring.current().kid(), b.kid());
        assert!(ring.rotate(a.clone()).is_err(), "duplicate kid");
        assert!(ring.retire(b.kid()).is_err(), "current key");
        assert!(ring.retire("nope").is_err());
        assert!(SigningKeyRing::from_keys(vec![]).is_err());
        let set = ring.key_set();
        assert!(set.get(a.kid()).is_some() && set.get(b.kid()).is_some());
        assert_eq!(ring.retire(a.kid()).unwrap().kid(), a.kid());
        assert_eq!(ring.keys().len(), 1);
        assert!(ring.key_set().get(a.kid()).is_none());
    }
}
