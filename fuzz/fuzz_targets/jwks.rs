//! JWK and JWKS documents as a provider publishes them (`KeySet::from_jwks`,
//! `VerificationKey::from_jwk`). Nothing may panic, and whatever is accepted survives a
//! round trip through `to_jwks` / `to_jwk` unchanged.
#![no_main]

use ate_auth::jwt::{KeySet, VerificationKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(set) = KeySet::from_jwks(text) {
        let again =
            KeySet::from_jwks(&set.to_jwks().to_string()).expect("a published set reads back");
        assert_eq!(again.len(), set.len());
        for key in set.iter() {
            let back = again.get(key.kid()).expect("the same kids");
            assert_eq!(back.algorithm(), key.algorithm());
            assert_eq!(back.to_jwk(), key.to_jwk());
        }
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
        && let Ok(key) = VerificationKey::from_jwk(&value)
    {
        let back = VerificationKey::from_jwk(&key.to_jwk()).expect("a published key reads back");
        assert_eq!(back.kid(), key.kid());
        assert_eq!(back.algorithm(), key.algorithm());
        assert_eq!(back.to_jwk(), key.to_jwk());
    }
});
