//! Wycheproof JSON Web Signature and JSON Web Key vectors
//! (`tests/vectors/wycheproof/json_web_{signature,key}_test.json`, vendored) through ATE's JWS
//! layer (`KeySet::verify_jws`), with every group's key loaded through `KeySet::from_jwks`.
//!
//! * Tokens whose `alg` ATE supports (EdDSA, ES256, RS256): valid ones must verify, invalid
//!   ones must not.
//! * Tokens with any other `alg` (HS*, PS*, RS384/512, ES384/512, none, ...) must be rejected,
//!   valid or not, both with the group's own key set (usually refused by `from_jwks`) and
//!   with a substitute set holding a supported key under the same `kid`, so the rejection
//!   is the verifier's doing, not a missing key's.
//!
//! Counts per algorithm are printed (`cargo test -- --nocapture`) and pinned, so a change
//! in the vectors or in the verifier shows. A missing vector file is a failure, never a skip.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ate_auth::jwt::{DEFAULT_MAX_TOKEN_BYTES, KeySet, SigningAlgorithm, SigningKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn vectors(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/wycheproof")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The algorithm a vector is counted under: its header's `alg`, read leniently, or, when
/// the header is unreadable (a vector for malformed encodings), the group key's `alg`.
/// Bookkeeping only; the verifier is strict.
fn vector_alg(token: &str, group_alg: &str) -> String {
    let header = token.split('.').next().unwrap_or_default();
    URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| group_alg.to_owned())
}

fn supported(alg: &str) -> bool {
    SigningAlgorithm::from_jose_name(alg).is_some()
}

/// A key set with a supported key under `kid`: the group's RSA modulus relabelled RS256 if
/// it has one, else a fresh ES256 key.
fn substitute_key_set(kid: &str, jwk: &Value) -> KeySet {
    if let (Some(n), Some(e)) = (jwk["n"].as_str(), jwk["e"].as_str()) {
        let relabelled =
            json!({"keys": [{"kty": "RSA", "kid": kid, "alg": "RS256", "n": n, "e": e}]});
        if let Ok(set) = KeySet::from_jwks(&relabelled.to_string()) {
            return set;
        }
    }
    let fresh = SigningKey::generate(SigningAlgorithm::ES256).unwrap();
    let key = SigningKey::from_pkcs8(
        SigningAlgorithm::ES256,
        kid,
        fresh.to_pkcs8().expose_secret(),
    )
    .unwrap();
    let mut set = KeySet::new();
    set.insert(key.verification_key().clone()).unwrap();
    set
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    valid_accepted: usize,
    invalid_rejected: usize,
    /// Unsupported `alg`, rejected (of which `unsupported_valid` were "valid" vectors).
    unsupported_rejected: usize,
    unsupported_valid: usize,
}

type Tallies = BTreeMap<String, Tally>;

/// Runs one vector; returns nothing, panics with the vector id on a wrong verdict.
fn check_vector(
    tallies: &mut Tallies,
    file: &str,
    test: &Value,
    keys: Option<&KeySet>,
    group_alg: &str,
    substitute: impl FnOnce() -> KeySet,
) {
    let id = &test["tcId"];
    let comment = test["comment"].as_str().unwrap_or_default();
    let token = test["jws"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| test["jws"].to_string());
    let valid = match test["result"].as_str().unwrap() {
        "valid" => true,
        "invalid" => false,
        other => panic!("{file} #{id}: unexpected result {other}"),
    };
    let alg = vector_alg(&token, group_alg);
    let outcome = keys.map(|k| k.verify_jws(&token, DEFAULT_MAX_TOKEN_BYTES));
    let accepted = matches!(outcome, Some(Ok(_)));
    let tally = tallies.entry(alg.clone()).or_default();
    if supported(&alg) {
        if valid {
            assert!(
                accepted,
                "{file} #{id} ({comment}, {alg}): valid but rejected: {outcome:?}"
            );
            tally.valid_accepted += 1;
        } else {
            assert!(
                !accepted,
                "{file} #{id} ({comment}, {alg}): invalid but accepted"
            );
            tally.invalid_rejected += 1;
        }
    } else {
        assert!(
            !accepted,
            "{file} #{id} ({comment}, {alg}): unsupported alg accepted"
        );
        let with_key = substitute().verify_jws(&token, DEFAULT_MAX_TOKEN_BYTES);
        assert!(
            with_key.is_err(),
            "{file} #{id} ({comment}, {alg}): unsupported alg accepted with a key under its kid"
        );
        tally.unsupported_rejected += 1;
        tally.unsupported_valid += usize::from(valid);
    }
}

fn print_tallies(title: &str, tallies: &Tallies) {
    println!("{title}");
    println!(
        "  {:<18} {:>14} {:>16} {:>22}",
        "alg", "valid accepted", "invalid rejected", "unsupported rejected"
    );
    for (alg, t) in tallies {
        println!(
            "  {:<18} {:>14} {:>16} {:>13} ({} valid)",
            alg, t.valid_accepted, t.invalid_rejected, t.unsupported_rejected, t.unsupported_valid
        );
    }
}

fn tally(valid_accepted: usize, invalid_rejected: usize) -> Tally {
    Tally {
        valid_accepted,
        invalid_rejected,
        ..Tally::default()
    }
}

fn unsupported(rejected: usize, valid: usize) -> Tally {
    Tally {
        unsupported_rejected: rejected,
        unsupported_valid: valid,
        ..Tally::default()
    }
}

#[test]
fn wycheproof_json_web_signature_vectors() {
    let file = vectors("json_web_signature_test.json");
    let mut tallies = Tallies::new();
    let mut total = 0;
    for group in file["testGroups"].as_array().unwrap() {
        // Groups give a public key, a private one, or both; a private JWK must never load.
        let jwk = group.get("public").unwrap_or(&group["private"]);
        let kid = jwk["kid"].as_str().unwrap();
        let group_alg = jwk["alg"].as_str().unwrap_or("(key without alg)");
        let keys = KeySet::from_jwks(&json!({ "keys": [jwk] }).to_string());
        if group.get("public").is_none() {
            assert!(
                keys.is_err(),
                "{}: a private JWK was accepted",
                group["comment"]
            );
        }
        for test in group["tests"].as_array().unwrap() {
            check_vector(
                &mut tallies,
                "json_web_signature_test",
                test,
                keys.as_ref().ok(),
                group_alg,
                || substitute_key_set(kid, jwk),
            );
            total += 1;
        }
    }
    print_tallies("Wycheproof json_web_signature_test.json", &tallies);
    assert_eq!(total, file["numberOfTests"].as_u64().unwrap() as usize);

    // Supported algorithms: every vector decided correctly (the asserts above); pinned here
    // so coverage cannot silently shrink. Wycheproof has no EdDSA JWS vectors; EdDSA is
    // covered by the RFC 8037 known-answer test in the crate's unit tests.
    assert_eq!(tallies["ES256"], tally(2, 38));
    assert_eq!(tallies["RS256"], tally(8, 228));
    assert!(!tallies.contains_key("EdDSA"));
    // Everything else is rejected, including the 36 "valid" vectors.
    assert_eq!(tallies["HS256"], unsupported(40, 10));
    assert_eq!(tallies["PS256"], unsupported(49, 6));
    assert_eq!(tallies["PS384"], unsupported(8, 6));
    assert_eq!(tallies["PS512"], unsupported(11, 4));
    assert_eq!(tallies["RS384"], unsupported(5, 4));
    assert_eq!(tallies["RS512"], unsupported(5, 4));
    assert_eq!(tallies["ES512"], unsupported(2, 2));
    assert_eq!(tallies["none"], unsupported(4, 0));
    assert_eq!(tallies["NONE"], unsupported(1, 0));
    assert_eq!(tallies.len(), 11);
}

#[test]
fn wycheproof_json_web_key_vectors() {
    let file = vectors("json_web_key_test.json");
    let mut tallies = Tallies::new();
    let (mut sets_accepted, mut sets_rejected, mut total) = (0, 0, 0);
    for group in file["testGroups"].as_array().unwrap() {
        let comment = group["comment"].as_str().unwrap();
        let set = group.get("public").unwrap_or(&group["private"]);
        let keys = KeySet::from_jwks(&set.to_string());
        match &keys {
            Ok(_) => sets_accepted += 1,
            Err(e) => {
                println!("  key set {comment:<24} rejected: {e}");
                sets_rejected += 1;
            }
        }
        if group.get("public").is_none() {
            assert!(keys.is_err(), "{comment}: a private key set was accepted");
        }
        let first = &set["keys"][0];
        let kid = first["kid"].as_str().unwrap();
        let group_alg = first["alg"].as_str().unwrap_or("(key without alg)");
        for test in group["tests"].as_array().unwrap() {
            check_vector(
                &mut tallies,
                "json_web_key_test",
                test,
                keys.as_ref().ok(),
                group_alg,
                || substitute_key_set(kid, first),
            );
            total += 1;
        }
    }
    print_tallies("Wycheproof json_web_key_test.json", &tallies);
    println!("  key sets: {sets_accepted} accepted, {sets_rejected} rejected");
    assert_eq!(total, file["numberOfTests"].as_u64().unwrap() as usize);
    // The one acceptable key set: RS256, 2048 bits, use "sig". Rejected: private and
    // symmetric sets, wrong use, ROCA, 1024-bit RSA, exponent 1, mismatched alg/curve/kty,
    // invalid point, AES keys.
    assert_eq!(sets_accepted, 1);
    assert_eq!(tallies["RS256"], tally(1, 4));
    assert_eq!(tallies["ES256"], tally(0, 6));
    assert_eq!(tallies["HS256"], unsupported(9, 2));
    assert_eq!(tallies["HS384"], unsupported(3, 1));
    assert_eq!(tallies["HS512"], unsupported(3, 1));
    assert_eq!(tallies.len(), 5);
}
