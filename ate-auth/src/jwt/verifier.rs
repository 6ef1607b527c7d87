//! Token verifiers: [`Verifier`] for ATE's own access tokens, [`ExternalVerifier`] for
//! another OpenID Connect provider's.

use super::claims::{Expectations, Profile, ate_claims, check_registered};
use super::json::parse_object;
use super::jws::{DEFAULT_MAX_TOKEN_BYTES, verify_compact};
use super::{Claims, KeySet};
use crate::AuthError;
use chrono::TimeDelta;
use serde_json::{Map, Value};

/// The default allowance for clock skew between issuer and verifier.
pub const DEFAULT_LEEWAY: TimeDelta = TimeDelta::seconds(30);
/// The largest leeway a verifier accepts: more would stretch every token's lifetime.
pub const MAX_LEEWAY: TimeDelta = TimeDelta::seconds(300);
/// The range a verifier's token length limit may be set in, in bytes.
pub const MAX_TOKEN_BYTES_RANGE: std::ops::RangeInclusive<usize> = 512..=64 * 1024;

/// What both verifiers share: who the tokens must come from and be for, and the limits.
#[derive(Clone, Debug)]
struct Policy {
    issuer: String,
    audience: String,
    leeway_secs: i64,
    max_token_bytes: usize,
}

impl Policy {
    fn new(keys: &KeySet, issuer: String, audience: String) -> Result<Policy, AuthError> {
        if keys.is_empty() {
            return Err(AuthError::invalid(
                "key set",
                "a verifier needs at least one key",
            ));
        }
        if issuer.is_empty() {
            return Err(AuthError::invalid("issuer", "must not be empty"));
        }
        if audience.is_empty() {
            return Err(AuthError::invalid("audience", "must not be empty"));
        }
        Ok(Policy {
            issuer,
            audience,
            leeway_secs: DEFAULT_LEEWAY.num_seconds(),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        })
    }

    fn set_leeway(&mut self, leeway: TimeDelta) -> Result<(), AuthError> {
        if leeway < TimeDelta::zero() || leeway > MAX_LEEWAY {
            return Err(AuthError::invalid(
                "leeway",
                format!("must be 0 to {} s", MAX_LEEWAY.num_seconds()),
            ));
        }
        self.leeway_secs = leeway.num_seconds();
        Ok(())
    }

    fn set_max_token_bytes(&mut self, bytes: usize) -> Result<(), AuthError> {
        if !MAX_TOKEN_BYTES_RANGE.contains(&bytes) {
            return Err(AuthError::invalid(
                "token length limit",
                format!(
                    "must be {} to {} bytes",
                    MAX_TOKEN_BYTES_RANGE.start(),
                    MAX_TOKEN_BYTES_RANGE.end()
                ),
            ));
        }
        self.max_token_bytes = bytes;
        Ok(())
    }

    /// Verifies the JWS and parses its payload as a strict JSON object.
    fn verified_claims(&self, keys: &KeySet, token: &str) -> Result<Map<String, Value>, AuthError> {
        let jws = verify_compact(token, keys, self.max_token_bytes)?;
        parse_object(jws.payload()).map_err(|e| AuthError::token(format!("payload: {e}")))
    }

    fn expectations(&self, now: i64) -> Expectations<'_> {
        Expectations {
            issuer: &self.issuer,
            audience: &self.audience,
            now,
            leeway: self.leeway_secs,
        }
    }
}

macro_rules! policy_setters {
    () => {
        /// Allowed clock skew for `exp`, `nbf` and `iat` (default 30 s, 0 to 5 min; whole
        /// seconds, rounded down).
        pub fn with_leeway(mut self, leeway: TimeDelta) -> Result<Self, AuthError> {
            self.policy.set_leeway(leeway)?;
            Ok(self)
        }

        /// The longest token accepted, in bytes (default 8 KiB, allowed 512 B to 64 KiB).
        /// Longer tokens are rejected before any parsing.
        pub fn with_max_token_bytes(mut self, bytes: usize) -> Result<Self, AuthError> {
            self.policy.set_max_token_bytes(bytes)?;
            Ok(self)
        }

        /// The keys tokens are checked against.
        pub fn keys(&self) -> &KeySet {
            &self.keys
        }

        /// Replaces the keys (after a rotation or a JWKS refresh). Errors if `keys` is
        /// empty, leaving the old keys in place.
        pub fn set_keys(&mut self, keys: KeySet) -> Result<(), AuthError> {
            if keys.is_empty() {
                return Err(AuthError::invalid(
                    "key set",
                    "a verifier needs at least one key",
                ));
            }
            self.keys = keys;
            Ok(())
        }
    };
}

/// Verifies ATE's own access tokens.
///
/// A token is accepted only if every rule holds (see the [module documentation](super)):
/// size limit; compact form with strict base64url; a header with a supported `alg` (never
/// `none`), a well-formed `kid` naming a key in the set whose algorithm equals `alg`, no
/// embedded or referenced keys, no `crit`, `typ` JWT or at+jwt if present; a valid
/// signature; a payload that is a JSON object with `iss` equal to the issuer, `aud`
/// naming the audience, `sub`, `tenant`, `jti` non-empty strings, `exp`, `iat`, `nbf`
/// integers with `now - leeway < exp`, `nbf <= now + leeway`, `iat <= now + leeway`,
/// `iat`/`nbf` before `exp`, and `roles`, if present, an array of strings.
///
/// Every rejection is an [`AuthError::InvalidToken`] whose reason is safe to log (it never
/// contains the token); answer the client with a plain 401.
///
/// ```
/// use ate_auth::jwt::{Claims, SigningAlgorithm, SigningKey, SigningKeyRing, Verifier};
///
/// let ring = SigningKeyRing::new(SigningKey::generate(SigningAlgorithm::EdDSA)?);
/// let verifier = Verifier::new(ring.key_set(), "https://auth.example", "api")?;
/// let now = 1_700_000_000;
/// let claims = Claims::new("https://auth.example", "api", "user-1", "tenant-1", now,
///                          now + 900, Claims::random_jti()?);
/// let token = ring.sign(&claims)?;
/// assert_eq!(verifier.verify(&token, now + 60)?, claims);
/// assert!(verifier.verify(&token, now + 3600).is_err()); // expired
/// # Ok::<(), ate_auth::AuthError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Verifier {
    keys: KeySet,
    policy: Policy,
}

impl Verifier {
    /// A verifier for tokens issued by `issuer` for `audience`, signed by one of `keys`.
    /// Errors if `keys` is empty or `issuer` or `audience` is empty.
    pub fn new(
        keys: KeySet,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Verifier, AuthError> {
        let policy = Policy::new(&keys, issuer.into(), audience.into())?;
        Ok(Verifier { keys, policy })
    }

    policy_setters!();

    /// Verifies `token` as of `now`, in seconds since the Unix epoch (pass
    /// `clock.now().timestamp()` from an [`ate_core::Clock`]; tests pass fixed times).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, AuthError> {
        let claims = self.policy.verified_claims(&self.keys, token)?;
        ate_claims(&claims, &self.policy.expectations(now))
    }
}

/// Verifies tokens minted by another OpenID Connect provider, with that provider's JWKS.
///
/// The same header, signature and type rules as [`Verifier`]; of the claims, `iss` (equal
/// to the issuer), `aud` (naming the audience) and `exp` are required, `nbf` and `iat` are
/// checked when present, `sub` and `jti` must be non-empty strings when present. ATE's
/// `tenant` and `roles` are not required: the claims come back as the raw JSON object for
/// the caller to map.
///
/// ```
/// use ate_auth::jwt::{ExternalVerifier, SigningAlgorithm, SigningKey, SigningKeyRing};
///
/// let provider = SigningKeyRing::new(SigningKey::generate(SigningAlgorithm::ES256)?);
/// let jwks = provider.key_set().to_jwks().to_string(); // what the provider publishes
/// let verifier = ExternalVerifier::from_jwks(&jwks, "https://idp.example", "my-app")?;
/// assert!(verifier.verify("not.a.token", 1_700_000_000).is_err());
/// # Ok::<(), ate_auth::AuthError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ExternalVerifier {
    keys: KeySet,
    policy: Policy,
}

impl ExternalVerifier {
    /// A verifier for tokens from `issuer` for `audience`, signed by one of `keys`.
    pub fn new(
        keys: KeySet,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<ExternalVerifier, AuthError> {
        let policy = Policy::new(&keys, issuer.into(), audience.into())?;
        Ok(ExternalVerifier { keys, policy })
    }

    /// A verifier from the provider's JWKS document (see [`KeySet::from_jwks`] for what it
    /// accepts).
    pub fn from_jwks(
        jwks_json: &str,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<ExternalVerifier, AuthError> {
        ExternalVerifier::new(KeySet::from_jwks(jwks_json)?, issuer, audience)
    }

    policy_setters!();

    /// Verifies `token` as of `now` (seconds since the Unix epoch); returns all its claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<Map<String, Value>, AuthError> {
        let claims = self.policy.verified_claims(&self.keys, token)?;
        check_registered(&claims, &self.policy.expectations(now), Profile::External)?;
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::test_support::{claims, forge, rsa_test_key};
    use crate::jwt::{SigningAlgorithm, SigningKey, SigningKeyRing};
    use ate_core::{Classify, Clock, ErrorKind, ManualClock};
    use chrono::{TimeDelta, TimeZone, Utc};
    use serde_json::json;

    use crate::jwt::test_support::{AUD, ISS};

    const NOW: i64 = 1_700_000_000;

    fn reason(result: Result<impl std::fmt::Debug, AuthError>) -> String {
        match result {
            Ok(v) => panic!("accepted: {v:?}"),
            Err(AuthError::InvalidToken { reason }) => reason,
            Err(other) => panic!("wrong error kind: {other:?}"),
        }
    }

    fn ring(alg: SigningAlgorithm) -> SigningKeyRing {
        SigningKeyRing::new(match alg {
            SigningAlgorithm::RS256 => rsa_test_key(),
            alg => SigningKey::generate(alg).unwrap(),
        })
    }

    /// Signs an arbitrary JSON payload with the key's standard header.
    fn sign_json(key: &SigningKey, payload: &Value) -> String {
        let header = json!({"alg": key.algorithm().as_str(), "typ": "JWT", "kid": key.kid()});
        forge(key, &header, payload.to_string().as_bytes())
    }

    #[test]
    fn jwt_verifier_accepts_its_own_tokens_for_every_algorithm() {
        for alg in SigningAlgorithm::ALL {
            let ring = ring(alg);
            let verifier = Verifier::new(ring.key_set(), ISS, AUD).unwrap();
            let claims = claims(NOW).with_roles(["admin", "viewer"]);
            let token = ring.sign(&claims).unwrap();
            assert_eq!(verifier.verify(&token, NOW + 1).unwrap(), claims);
        }
    }

    #[test]
    fn jwt_verifier_time_comes_from_the_caller() {
        let ring = ring(SigningAlgorithm::EdDSA);
        let clock = ManualClock::new(Utc.timestamp_opt(NOW, 0).unwrap());
        let verifier = Verifier::new(ring.key_set(), ISS, AUD).unwrap();
        let token = ring.sign(&claims(NOW)).unwrap(); // lifetime 600 s
        verifier.verify(&token, clock.now().timestamp()).unwrap();
        clock.advance(TimeDelta::seconds(600 + 29));
        verifier.verify(&token, clock.now().timestamp()).unwrap();
        clock.advance(TimeDelta::seconds(1));
        assert!(reason(verifier.verify(&token, clock.now().timestamp())).contains("expired"));
    }

    #[test]
    fn jwt_verifier_leeway_is_configurable_and_bounded() {
        let ring = ring(SigningAlgorithm::EdDSA);
        let token = ring.sign(&claims(NOW)).unwrap();
        let strict = Verifier::new(ring.key_set(), ISS, AUD)
            .unwrap()
            .with_leeway(TimeDelta::zero())
            .unwrap();
        assert!(strict.verify(&token, NOW + 600).is_err());
        strict.verify(&token, NOW + 599).unwrap();
        let loose = Verifier::new(ring.key_set(), ISS, AUD)
            .unwrap()
            .with_leeway(MAX_LEEWAY)
            .unwrap();
        loose.verify(&token, NOW + 899).unwrap();
        assert!(loose.verify(&token, NOW + 900).is_err());
        loose.verify(&token, NOW - 300).unwrap(); // nbf/iat within leeway
        assert!(loose.verify(&token, NOW - 301).is_err());
        let e = Verifier::new(ring.key_set(), ISS, AUD)
            .unwrap()
            .with_leeway(MAX_LEEWAY + TimeDelta::seconds(1))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let e = Verifier::new(ring.key_set(), ISS, AUD)
            .unwrap()
            .with_leeway(TimeDelta::seconds(-1))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn jwt_verifier_token_length_limit_is_configurable_and_bounded() {
        let ring = ring(SigningAlgorithm::EdDSA);
        let roles: Vec<String> = (0..600).map(|i| format!("role-{i:04}")).collect();
        let token = ring.sign(&claims(NOW).with_roles(roles)).unwrap();
        assert!(token.len() > DEFAULT_MAX_TOKEN_BYTES);
        let verifier = Verifier::new(ring.key_set(), ISS, AUD).unwrap();
        assert!(reason(verifier.verify(&token, NOW)).contains("longer than 8192"));
        let roomy = verifier.with_max_token_bytes(16 * 1024).unwrap();
        assert_eq!(roomy.verify(&token, NOW).unwrap().roles.len(), 600);
        for bad in [0, 511, 64 * 1024 + 1] {
            let e = roomy.clone().with_max_token_bytes(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn jwt_verifier_configuration_is_validated() {
        let keys = ring(SigningAlgorithm::EdDSA).key_set();
        assert!(Verifier::new(KeySet::new(), ISS, AUD).is_err());
        assert!(Verifier::new(keys.clone(), "", AUD).is_err());
        assert!(Verifier::new(keys.clone(), ISS, "").is_err());
        assert!(ExternalVerifier::new(KeySet::new(), ISS, AUD).is_err());
        let mut verifier = Verifier::new(keys, ISS, AUD).unwrap();
        assert!(verifier.set_keys(KeySet::new()).is_err());
        assert_eq!(verifier.keys().len(), 1);
    }

    #[test]
    fn jwt_verifier_claims_are_strict() {
        let ring = ring(SigningAlgorithm::EdDSA);
        let key = ring.current();
        let verifier = Verifier::new(ring.key_set(), ISS, AUD).unwrap();
        let good = serde_json::to_value(claims(NOW)).unwrap();
        let with = |name: &str, value: Value| {
            let mut payload = good.clone();
            payload[name] = value;
            sign_json(key, &payload)
        };
        let without = |name: &str| {
            let mut payload = good.clone();
            payload.as_object_mut().unwrap().remove(name);
            sign_json(key, &payload)
        };
        verifier.verify(&sign_json(key, &good), NOW).unwrap();
        let cases = [
            (with("exp", json!("9999999999")), "integer"),
            (with("exp", json!(9_999_999_999.0)), "integer"),
            (with("nbf", json!(NOW as f64 + 0.5)), "integer"),
            (with("iat", json!(null)), "integer"),
            (with("iss", json!("https://evil.test")), "issuer"),
            (with("aud", json!("other-api")), "audience"),
            (with("aud", json!(["a", "b"])), "audience"),
            (with("tenant", json!(42)), "tenant"),
            (with("roles", json!("admin")), "roles"),
            (with("exp", json!(NOW - 31)), "expired"),
            (with("nbf", json!(NOW + 31)), "not valid yet"),
            (with("iat", json!(NOW + 31)), "future"),
            (without("tenant"), "tenant is missing"),
            (without("jti"), "jti is missing"),
            (without("nbf"), "nbf is missing"),
            (sign_json(key, &json!([1, 2])), "payload"),
            (
                forge(key, &json!({"alg": "EdDSA", "kid": key.kid()}), b""),
                "payload",
            ),
            (
                forge(
                    key,
                    &json!({"alg": "EdDSA", "kid": key.kid()}),
                    format!(r#"{{"sub":"a","sub":"b",{}"#, &good.to_string()[1..]).as_bytes(),
                ),
                "duplicate",
            ),
        ];
        for (token, expected) in cases {
            let r = reason(verifier.verify(&token, NOW));
            assert!(r.contains(expected), "{r} (wanted {expected})");
        }
        let array_aud = with("aud", json!(["other", AUD]));
        assert_eq!(
            verifier.verify(&array_aud, NOW).unwrap().aud,
            ["other", AUD]
        );
    }

    #[test]
    fn jwt_rotation_old_keys_verify_new_key_signs() {
        let mut ring = ring(SigningAlgorithm::EdDSA);
        let old_token = ring.sign(&claims(NOW)).unwrap();
        let old_kid = ring.current().kid().to_owned();
        ring.rotate(SigningKey::generate(SigningAlgorithm::ES256).unwrap())
            .unwrap();
        let new_token = ring.sign(&claims(NOW)).unwrap();
        let mut verifier = Verifier::new(ring.key_set(), ISS, AUD).unwrap();
        for token in [&old_token, &new_token] {
            verifier.verify(token, NOW).unwrap();
        }
        let header = |t: &str| crate::jwt::test_support::header_of(t);
        assert_eq!(header(&old_token)["kid"], old_kid.as_str());
        assert_eq!(header(&new_token)["kid"], ring.current().kid());
        assert_eq!(header(&new_token)["alg"], "ES256");
        ring.retire(&old_kid).unwrap();
        verifier.set_keys(ring.key_set()).unwrap();
        assert!(reason(verifier.verify(&old_token, NOW)).contains("unknown kid"));
        verifier.verify(&new_token, NOW).unwrap();
        let jwks = ring.key_set().to_jwks();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn jwt_external_verifier_returns_raw_claims() {
        let provider = ring(SigningAlgorithm::RS256);
        let key = provider.current();
        let jwks = provider.key_set().to_jwks().to_string();
        let verifier = ExternalVerifier::from_jwks(&jwks, ISS, AUD).unwrap();
        let token = sign_json(
            key,
            &json!({"iss": ISS, "aud": [AUD, "account"], "exp": NOW + 60, "sub": "abc",
                    "realm_access": {"roles": ["admin"]}, "email": "a@example.com"}),
        );
        let raw = verifier.verify(&token, NOW).unwrap();
        assert_eq!(raw["realm_access"]["roles"][0], "admin");
        assert_eq!(raw["email"], "a@example.com");
        for (payload, expected) in [
            (json!({"aud": AUD, "exp": NOW + 60}), "iss is missing"),
            (json!({"iss": ISS, "exp": NOW + 60}), "aud is missing"),
            (json!({"iss": ISS, "aud": AUD}), "exp is missing"),
            (json!({"iss": ISS, "aud": AUD, "exp": NOW - 60}), "expired"),
            (
                json!({"iss": ISS, "aud": AUD, "exp": NOW + 60, "nbf": NOW + 90}),
                "not valid yet",
            ),
            (
                json!({"iss": ISS, "aud": AUD, "exp": NOW + 60, "iat": "x"}),
                "integer",
            ),
            (
                json!({"iss": ISS, "aud": AUD, "exp": NOW + 60, "sub": 1}),
                "sub",
            ),
            (
                json!({"iss": "other", "aud": AUD, "exp": NOW + 60}),
                "issuer",
            ),
        ] {
            let r = reason(verifier.verify(&sign_json(key, &payload), NOW));
            assert!(r.contains(expected), "{payload}: {r}");
        }
        // Same header rules: an ATE key it was not given is unknown, alg none is refused.
        let stranger = ring(SigningAlgorithm::EdDSA);
        let foreign = stranger.sign(&claims(NOW)).unwrap();
        assert!(reason(verifier.verify(&foreign, NOW)).contains("unknown kid"));
        let e = ExternalVerifier::from_jwks("{}", ISS, AUD).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
