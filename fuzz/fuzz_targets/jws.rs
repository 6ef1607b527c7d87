//! The strict JWS/JWT path: compact serialization, header rules, signature, then the claims
//! (ATE's access-token profile through `Verifier`, and an external provider's through
//! `ExternalVerifier`).
//!
//! Input: a mode byte, then
//! * `0`: the rest is the token, as sent;
//! * `1`: `header JSON \n payload bytes`, signed with the test Ed25519 key (so the claims
//!   parser is reached with headers and payloads the fuzzer chooses);
//! * `2`: payload bytes, signed under a well-formed header.
//!
//! Nothing may panic; a token only verifies if it was signed by the key, and then its claims
//! name the configured issuer and audience.
#![no_main]

use ate_auth::jwt::{ExternalVerifier, KeySet, VerificationKey, Verifier};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use libfuzzer_sys::fuzz_target;
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::sync::LazyLock;

const ISSUER: &str = "https://ate.fuzz";
const AUDIENCE: &str = "ate";
const NOW: i64 = 1_700_000_000;

struct Keys {
    pair: Ed25519KeyPair,
    verifier: Verifier,
    external: ExternalVerifier,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let pair = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("seed");
    let jwk = serde_json::json!({
        "kty": "OKP", "crv": "Ed25519", "kid": "k1", "alg": "EdDSA", "use": "sig",
        "x": B64.encode(pair.public_key().as_ref()),
    });
    let mut keys = KeySet::new();
    keys.insert(VerificationKey::from_jwk(&jwk).expect("valid JWK"))
        .expect("insert");
    Keys {
        pair,
        verifier: Verifier::new(keys.clone(), ISSUER, AUDIENCE).expect("verifier"),
        external: ExternalVerifier::new(keys, ISSUER, AUDIENCE).expect("external verifier"),
    }
});

fn signed(header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let signature = KEYS.pair.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature.as_ref()))
}

fn check(token: &str, genuine: bool) {
    if let Ok(claims) = KEYS.verifier.verify(token, NOW) {
        assert!(genuine, "a token the key never signed verified");
        assert_eq!(claims.iss, ISSUER);
        assert!(
            claims.exp >= NOW - ate_auth::jwt::DEFAULT_LEEWAY.num_seconds(),
            "an expired token verified"
        );
    }
    if let Ok(claims) = KEYS.external.verify(token, NOW) {
        assert!(genuine, "a token the key never signed verified (external)");
        assert_eq!(claims.get("iss").and_then(|v| v.as_str()), Some(ISSUER));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                check(token, false);
            }
        }
        1 => {
            let (header, payload) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &b""[..]),
            };
            check(&signed(header, payload), true);
        }
        _ => check(
            &signed(br#"{"alg":"EdDSA","kid":"k1","typ":"at+jwt"}"#, rest),
            true,
        ),
    }
});
