//! The JWS layer: compact serialization, protected header rules, signature verification.
//! It knows nothing of claims; [`Verifier`](super::Verifier) builds on it.

use super::json::parse_object;
use super::kid::kid_problem;
use super::{KeySet, SigningAlgorithm};
use crate::AuthError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// The default limit on a token's length, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Header parameters that point at, or carry, a key (RFC 7515 §4.1.2 to §4.1.8). Trusting
/// any of them lets the token choose its own verification key; ATE never reads them.
const KEY_SOURCE_PARAMETERS: [&str; 6] = ["jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256"];

/// Header parameters that would change how the token is processed: `crit` (extensions we
/// do not implement, RFC 7515 §4.1.11), `b64` (unencoded payloads, RFC 7797), `zip`
/// (compression: JWE only, a decompression bomb anywhere), `cty` (nested or non-JWT
/// content, RFC 7519 §5.2).
const PROCESSING_PARAMETERS: [&str; 4] = ["crit", "b64", "zip", "cty"];

/// Accepted `typ` values, compared case-insensitively (RFC 7519 §5.1; RFC 9068 §2.1).
const ACCEPTED_TYPES: [&str; 4] = ["JWT", "at+jwt", "application/jwt", "application/at+jwt"];

/// A JWS whose header passed the rules and whose signature verified.
#[derive(Clone, Debug)]
pub struct VerifiedJws {
    header: Map<String, Value>,
    payload: Vec<u8>,
    kid: String,
    algorithm: SigningAlgorithm,
}

impl VerifiedJws {
    /// The protected header.
    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }

    /// The payload bytes (not yet interpreted: checking claims is the next layer's job).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload, by value.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// The `kid` of the key that verified the signature.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm of that key (equal to the header's `alg`).
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }
}

/// Verifies a compact JWS against `keys`. See the module documentation for the rules.
pub(crate) fn verify_compact(
    token: &str,
    keys: &KeySet,
    max_token_bytes: usize,
) -> Result<VerifiedJws, AuthError> {
    // Length first: nothing else is read from an oversized token.
    if token.len() > max_token_bytes {
        return Err(AuthError::token(format!(
            "token is longer than {max_token_bytes} bytes"
        )));
    }
    let (header_b64, payload_b64, signature_b64) = split_compact(token)?;
    let header_json = decode_part(header_b64, "header")?;
    let header =
        parse_object(&header_json).map_err(|e| AuthError::token(format!("header: {e}")))?;
    let (algorithm, kid) = check_header(&header)?;

    let key = keys
        .get(kid)
        .ok_or_else(|| AuthError::token(format!("unknown kid {kid}")))?;
    // The key decides the algorithm; the header may only agree (RFC 8725 §3.1).
    if key.algorithm() != algorithm {
        return Err(AuthError::token(format!(
            "alg {algorithm} does not match the {} key {kid}",
            key.algorithm()
        )));
    }
    let signature = decode_part(signature_b64, "signature")?;
    if signature.len() != key.signature_len() {
        return Err(AuthError::token(format!(
            "signature is {} bytes; {algorithm} key {kid} makes {}",
            signature.len(),
            key.signature_len()
        )));
    }
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    let verified = jsonwebtoken::crypto::verify(
        signature_b64,
        signing_input.as_bytes(),
        key.decoding_key(),
        algorithm.jsonwebtoken(),
    );
    if !matches!(verified, Ok(true)) {
        return Err(AuthError::token("signature does not verify"));
    }
    let payload = decode_part(payload_b64, "payload")?;
    Ok(VerifiedJws {
        kid: kid.to_owned(),
        header,
        payload,
        algorithm,
    })
}

/// Splits `header.payload.signature`. Only base64url characters and exactly two dots are
/// allowed (no whitespace, no padding); header and signature must be non-empty. The
/// payload may be empty (RFC 7515 allows it; a JWT payload never is, and the claims layer
/// rejects it).
fn split_compact(token: &str) -> Result<(&str, &str, &str), AuthError> {
    if let Some(bad) = token
        .bytes()
        .find(|&b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'))
    {
        return Err(AuthError::token(if bad == b'=' {
            "token contains base64 padding"
        } else {
            "token contains characters outside base64url and '.'"
        }));
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(signature), None) => {
            if header.is_empty() {
                return Err(AuthError::token("token has an empty header"));
            }
            if signature.is_empty() {
                return Err(AuthError::token("token has no signature"));
            }
            Ok((header, payload, signature))
        }
        _ => Err(AuthError::token(
            "token must have exactly three dot-separated parts (compact JWS)",
        )),
    }
}

/// Strict base64url: canonical, unpadded (the alphabet was checked by `split_compact`).
fn decode_part(part: &str, what: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::token(format!("{what} is not canonical unpadded base64url")))
}

/// Applies the header rules; returns the algorithm the header names and its `kid`.
fn check_header(header: &Map<String, Value>) -> Result<(SigningAlgorithm, &str), AuthError> {
    let alg = match header.get("alg") {
        None => return Err(AuthError::token("header has no alg")),
        Some(Value::String(alg)) => alg,
        Some(_) => return Err(AuthError::token("header alg must be a string")),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(AuthError::token("alg none is never accepted"));
    }
    let algorithm = SigningAlgorithm::from_jose_name(alg).ok_or_else(|| {
        AuthError::token(
            if alg.len() <= 16 && alg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+') {
                format!("alg {alg} is not accepted (EdDSA, ES256, RS256 are)")
            } else {
                "alg is not accepted (EdDSA, ES256, RS256 are)".to_owned()
            },
        )
    })?;
    if let Some(name) = KEY_SOURCE_PARAMETERS
        .iter()
        .find(|name| header.contains_key(**name))
    {
        return Err(AuthError::token(format!(
            "header parameter {name} is never trusted; keys come from the configured key set"
        )));
    }
    if let Some(name) = PROCESSING_PARAMETERS
        .iter()
        .find(|name| header.contains_key(**name))
    {
        return Err(AuthError::token(format!(
            "header parameter {name} is not supported"
        )));
    }
    match header.get("typ") {
        None => {}
        Some(Value::String(typ)) if ACCEPTED_TYPES.iter().any(|t| t.eq_ignore_ascii_case(typ)) => {}
        Some(_) => {
            return Err(AuthError::token(
                "header typ must be JWT or at+jwt when present",
            ));
        }
    }
    let kid = match header.get("kid") {
        None => return Err(AuthError::token("header has no kid")),
        Some(Value::String(kid)) => kid,
        Some(_) => return Err(AuthError::token("header kid must be a string")),
    };
    if let Some(problem) = kid_problem(kid) {
        // Checked before any lookup; the kid itself is not echoed.
        return Err(AuthError::token(format!("header {problem}")));
    }
    Ok((algorithm, kid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::SigningKey;
    use crate::jwt::test_support::{
        b64, b64d, forge, forge_hs256, keys_of, public_key_pem, rsa_test_key,
    };
    use serde_json::json;

    fn reason(result: Result<VerifiedJws, AuthError>) -> String {
        match result {
            Ok(jws) => panic!("accepted a token (kid {})", jws.kid()),
            Err(AuthError::InvalidToken { reason }) => reason,
            Err(other) => panic!("wrong error kind: {other:?}"),
        }
    }

    fn setup() -> (SigningKey, SigningKey, SigningKey, KeySet) {
        let ed = SigningKey::generate(SigningAlgorithm::EdDSA).unwrap();
        let ec = SigningKey::generate(SigningAlgorithm::ES256).unwrap();
        let rsa = rsa_test_key();
        let keys = keys_of(&[&ed, &ec, &rsa]);
        (ed, ec, rsa, keys)
    }

    fn header(key: &SigningKey) -> Value {
        json!({"alg": key.algorithm().as_str(), "typ": "JWT", "kid": key.kid()})
    }

    #[test]
    fn jwt_jws_valid_tokens_verify_for_every_algorithm() {
        let (ed, ec, rsa, keys) = setup();
        for key in [&ed, &ec, &rsa] {
            let token = forge(key, &header(key), b"payload bytes");
            let jws = verify_compact(&token, &keys, DEFAULT_MAX_TOKEN_BYTES).unwrap();
            assert_eq!(jws.payload(), b"payload bytes");
            assert_eq!(jws.kid(), key.kid());
            assert_eq!(jws.algorithm(), key.algorithm());
            assert_eq!(jws.header()["typ"], "JWT");
        }
        // Empty payloads are legal JWS.
        let token = forge(&ed, &header(&ed), b"");
        assert!(
            verify_compact(&token, &keys, DEFAULT_MAX_TOKEN_BYTES)
                .unwrap()
                .payload()
                .is_empty()
        );
    }

    #[test]
    fn jwt_jws_size_limit_is_checked_before_parsing() {
        let (ed, _, _, keys) = setup();
        let token = forge(&ed, &header(&ed), &[b'x'; 7000]);
        assert!(token.len() > 7000 && token.len() < DEFAULT_MAX_TOKEN_BYTES + 2000);
        verify_compact(&token, &keys, token.len()).unwrap();
        let r = reason(verify_compact(&token, &keys, token.len() - 1));
        assert!(r.contains("longer than"), "{r}");
        // Garbage of the wrong size is refused for its size, not its content.
        let junk = "!".repeat(DEFAULT_MAX_TOKEN_BYTES + 1);
        assert!(reason(verify_compact(&junk, &keys, DEFAULT_MAX_TOKEN_BYTES)).contains("longer"));
    }

    #[test]
    fn jwt_jws_compact_form_is_strict() {
        let (ed, _, _, keys) = setup();
        let token = forge(&ed, &header(&ed), b"{}");
        let parts: Vec<&str> = token.split('.').collect();
        let (h, p, s) = (parts[0], parts[1], parts[2]);
        let cases = [
            (String::new(), "three"),
            (format!("{h}.{p}"), "three"),
            (format!("{h}.{p}.{s}."), "three"),
            (format!("{h}.{p}.{s}.{s}"), "three"),
            (format!("{h}.{p}.{s}.{p}.{s}"), "three"),
            (format!(".{p}.{s}"), "empty header"),
            (format!("{h}.{p}."), "no signature"),
            (format!("{h}=.{p}.{s}"), "padding"),
            (format!("{h}.{p}=.{s}"), "padding"),
            (format!(" {token}"), "characters"),
            (format!("{token}\n"), "characters"),
            (format!("{h}.{p}.{s}+"), "characters"),
            (format!("{h}.{p} .{s}"), "characters"),
            (format!("{h}.{p}/.{s}"), "characters"),
            (format!("{h}.{p}.{}", &s[1..]), "base64url"),
            (format!("{}.{p}.{s}", &h[..h.len() - 1]), "header"),
        ];
        for (bad, expected) in cases {
            let r = reason(verify_compact(&bad, &keys, DEFAULT_MAX_TOKEN_BYTES));
            assert!(r.contains(expected), "{bad:?}: {r}");
        }
        // Non-canonical base64 (unused low bits set) in the payload.
        let mut last = p.as_bytes().to_vec();
        let n = last.len() - 1;
        last[n] = if last[n] == b'Q' { b'R' } else { b'Q' };
        let noncanonical = format!("{h}.{}.{s}", String::from_utf8(last).unwrap());
        assert!(verify_compact(&noncanonical, &keys, DEFAULT_MAX_TOKEN_BYTES).is_err());
    }

    #[test]
    fn jwt_jws_header_must_be_a_strict_json_object() {
        let (ed, _, _, keys) = setup();
        let sign_raw = |header: &[u8]| ed.sign_with_header(header, b"{}").unwrap();
        for raw in [
            b"not json".as_slice(),
            b"[]",
            b"\"EdDSA\"",
            b"{\"alg\":\"EdDSA\"",
            b"\xff\xfe",
        ] {
            let r = reason(verify_compact(
                &sign_raw(raw),
                &keys,
                DEFAULT_MAX_TOKEN_BYTES,
            ));
            assert!(r.starts_with("header"), "{raw:?}: {r}");
        }
        let dup = format!(r#"{{"alg":"EdDSA","kid":"{}","alg":"none"}}"#, ed.kid());
        let r = reason(verify_compact(
            &sign_raw(dup.as_bytes()),
            &keys,
            DEFAULT_MAX_TOKEN_BYTES,
        ));
        assert!(r.contains("duplicate"), "{r}");
    }

    #[test]
    fn jwt_jws_alg_none_in_every_casing_is_rejected() {
        let (ed, _, _, keys) = setup();
        for none in ["none", "None", "NONE", "nOnE", "NoNe", "nonE"] {
            let h = json!({"alg": none, "kid": ed.kid()});
            for signature in ["", "AA", &b64(&ed.sign_message(b"x").unwrap())] {
                let token = format!(
                    "{}.{}.{signature}",
                    b64(h.to_string().as_bytes()),
                    b64(b"{}")
                );
                let r = reason(verify_compact(&token, &keys, DEFAULT_MAX_TOKEN_BYTES));
                assert!(
                    r.contains("none") || r.contains("no signature"),
                    "{none}: {r}"
                );
            }
            // Even correctly "signed" by a real key, none is none.
            let r = reason(verify_compact(
                &forge(&ed, &h, b"{}"),
                &keys,
                DEFAULT_MAX_TOKEN_BYTES,
            ));
            assert!(r.contains("alg none"), "{none}: {r}");
        }
    }

    #[test]
    fn jwt_jws_alg_must_be_a_supported_string() {
        let (ed, _, _, keys) = setup();
        for alg in [
            json!(null),
            json!(1),
            json!(["EdDSA"]),
            json!({"a": 1}),
            json!(true),
        ] {
            let r = reason(verify_compact(
                &forge(&ed, &json!({"alg": alg, "kid": ed.kid()}), b"{}"),
                &keys,
                DEFAULT_MAX_TOKEN_BYTES,
            ));
            assert!(r.contains("must be a string"), "{alg}: {r}");
        }
        let r = reason(verify_compact(
            &forge(&ed, &json!({"kid": ed.kid()}), b"{}"),
            &keys,
            DEFAULT_MAX_TOKEN_BYTES,
        ));
        assert!(r.contains("no alg"), "{r}");
        for alg in [
            "HS256",
            "PS256",
            "RS384",
            "ES512",
            "eddsa",
            "EdDSA ",
            "ES256\u{0}",
        ] {
            let r = reason(verify_compact(
                &forge(&ed, &json!({"alg": alg, "kid": ed.kid()}), b"{}"),
                &keys,
                DEFAULT_MAX_TOKEN_BYTES,
            ));
            assert!(r.contains("not accepted"), "{alg}: {r}");
            assert!(!r.contains('\0'));
        }
    }

    #[test]
    fn jwt_jws_kid_is_required_and_inert() {
        let (ed, _, _, keys) = setup();
        let check = |kid: Value, expected: &str| {
            let r = reason(verify_compact(
                &forge(&ed, &json!({"alg": "EdDSA", "kid": kid}), b"{}"),
                &keys,
                DEFAULT_MAX_TOKEN_BYTES,
            ));
            assert!(r.contains(expected), "{kid}: {r}");
        };
        for kid in [
            "../../etc/passwd",
            "/../etc/passwd",
            "x' OR '1'='1",
            "k'; DROP TABLE signing_keys; --",
            "a;b",
            "nul\0byte",
            "..",
            "",
            &"a".repeat(129),
        ] {
            // Rejected for its form, before lookup: the reason is never "unknown kid".
            check(json!(kid), "header kid");
        }
        // '/' is in the alphabet (standard-base64 kids, AWS Cognito's), but a path without
        // ".." is only ever a key-set lookup that finds nothing.
        check(json!("/etc/passwd"), "unknown kid /etc/passwd");
        check(json!("a/b"), "unknown kid a/b");
        check(json!(1), "kid must be a string");
        check(json!(null), "kid must be a string");
        check(
            json!("well-formed-but-unknown"),
            "unknown kid well-formed-but-unknown",
        );
        let r = reason(verify_compact(
            &forge(&ed, &json!({"alg": "EdDSA"}), b"{}"),
            &keys,
            DEFAULT_MAX_TOKEN_BYTES,
        ));
        assert!(r.contains("no kid"), "{r}");
    }

    #[test]
    fn jwt_jws_embedded_keys_and_critical_extensions_are_rejected() {
        let (ed, _, _, keys) = setup();
        let mut names: Vec<&str> = KEY_SOURCE_PARAMETERS.to_vec();
        names.extend(PROCESSING_PARAMETERS);
        for name in names {
            let mut h = header(&ed);
            h[name] = json!(if name == "crit" {
                json!(["exp"])
            } else {
                json!("x")
            });
            let r = reason(verify_compact(
                &forge(&ed, &h, b"{}"),
                &keys,
                DEFAULT_MAX_TOKEN_BYTES,
            ));
            assert!(r.contains(name), "{name}: {r}");
        }
        // An attacker-supplied jwk matching the real key changes nothing: still rejected.
        let mut h = header(&ed);
        h["jwk"] = ed.public_jwk();
        assert!(verify_compact(&forge(&ed, &h, b"{}"), &keys, DEFAULT_MAX_TOKEN_BYTES).is_err());
    }

    #[test]
    fn jwt_jws_typ_when_present_is_jwt_or_at_jwt() {
        let (ed, _, _, keys) = setup();
        for typ in ["JWT", "jwt", "at+jwt", "AT+JWT", "application/at+jwt"] {
            let mut h = header(&ed);
            h["typ"] = json!(typ);
            verify_compact(&forge(&ed, &h, b"{}"), &keys, DEFAULT_MAX_TOKEN_BYTES).unwrap();
        }
        let mut h = header(&ed);
        h.as_object_mut().unwrap().remove("typ");
        verify_compact(&forge(&ed, &h, b"{}"), &keys, DEFAULT_MAX_TOKEN_BYTES).unwrap();
        for typ in [
            json!("JWS"),
            json!("secevent+jwt"),
            json!(""),
            json!(1),
            json!(null),
        ] {
            let mut h = header(&ed);
            h["typ"] = typ.clone();
            let r = reason(verify_compact(
                &forge(&ed, &h, b"{}"),
                &keys,
                DEFAULT_MAX_TOKEN_BYTES,
            ));
            assert!(r.contains("typ"), "{typ}: {r}");
        }
    }

    #[test]
    fn jwt_jws_algorithm_comes_from_the_key_not_the_token() {
        let (ed, ec, rsa, keys) = setup();
        // A header naming another supported algorithm than the key's is refused before
        // any crypto, whatever the signature.
        for (key, claimed) in [
            (&ed, "ES256"),
            (&ec, "EdDSA"),
            (&ec, "RS256"),
            (&rsa, "ES256"),
        ] {
            let h = json!({"alg": claimed, "kid": key.kid()});
            let r = reason(verify_compact(
                &forge(key, &h, b"{}"),
                &keys,
                DEFAULT_MAX_TOKEN_BYTES,
            ));
            assert!(r.contains("does not match"), "{claimed}: {r}");
        }
    }

    #[test]
    fn jwt_jws_hs256_with_the_public_key_as_secret_is_rejected() {
        let (ed, ec, rsa, keys) = setup();
        for key in [&ed, &ec, &rsa] {
            let jwk = key.public_jwk();
            let raw_point: Vec<u8> = match key.algorithm() {
                SigningAlgorithm::EdDSA => b64d(jwk["x"].as_str().unwrap()),
                SigningAlgorithm::ES256 => {
                    let mut p = vec![4];
                    p.extend(b64d(jwk["x"].as_str().unwrap()));
                    p.extend(b64d(jwk["y"].as_str().unwrap()));
                    p
                }
                SigningAlgorithm::RS256 => b64d(jwk["n"].as_str().unwrap()),
            };
            let spki_pem = public_key_pem(key);
            let secrets: Vec<Vec<u8>> = vec![
                raw_point,
                spki_pem.clone().into_bytes(),
                spki_pem.replace('\n', "\r\n").into_bytes(),
                jwk.to_string().into_bytes(),
                key.kid().as_bytes().to_vec(),
            ];
            for secret in secrets {
                for alg in ["HS256", "HS384", "HS512", "hs256"] {
                    let h = json!({"alg": alg, "typ": "JWT", "kid": key.kid()});
                    let token = forge_hs256(&secret, &h, br#"{"sub":"admin"}"#);
                    let r = reason(verify_compact(&token, &keys, DEFAULT_MAX_TOKEN_BYTES));
                    assert!(r.contains("not accepted"), "{alg}: {r}");
                }
            }
        }
    }

    #[test]
    fn jwt_jws_tampering_is_detected() {
        let (ed, ec, rsa, keys) = setup();
        for key in [&ed, &ec, &rsa] {
            let token = forge(key, &header(key), br#"{"sub":"alice","admin":false}"#);
            let parts: Vec<&str> = token.split('.').collect();
            let tampered_payload = format!(
                "{}.{}.{}",
                parts[0],
                b64(br#"{"sub":"alice","admin":true}"#),
                parts[2]
            );
            let r = reason(verify_compact(
                &tampered_payload,
                &keys,
                DEFAULT_MAX_TOKEN_BYTES,
            ));
            assert!(r.contains("does not verify"), "{r}");
            let mut sig = b64d(parts[2]);
            sig[5] ^= 1;
            let tampered_sig = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
            let r = reason(verify_compact(
                &tampered_sig,
                &keys,
                DEFAULT_MAX_TOKEN_BYTES,
            ));
            assert!(r.contains("does not verify"), "{r}");
            sig.push(0);
            let longer = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
            let r = reason(verify_compact(&longer, &keys, DEFAULT_MAX_TOKEN_BYTES));
            assert!(r.contains("bytes"), "{r}");
            // Another key's valid signature, presented under this key's kid.
            if key.algorithm() != SigningAlgorithm::RS256 {
                let stranger = SigningKey::generate(key.algorithm()).unwrap();
                let forged = forge(&stranger, &header(key), br#"{"sub":"alice"}"#);
                let r = reason(verify_compact(&forged, &keys, DEFAULT_MAX_TOKEN_BYTES));
                assert!(r.contains("does not verify"), "{r}");
            }
        }
    }

    #[test]
    fn jwt_jws_zero_and_malformed_ecdsa_signatures_are_rejected() {
        let (_, ec, _, keys) = setup();
        let h = b64(header(&ec).to_string().as_bytes());
        let p = b64(b"{}");
        let n = b64d("_____wAAAAD__________7zm-q2nF56E87nKwvxjJVE");
        let mut n_and_one = n.clone();
        n_and_one.extend_from_slice(&[0; 31]);
        n_and_one.push(1);
        for signature in [
            vec![0u8; 64],                           // r = s = 0
            [vec![0u8; 32], vec![1u8; 32]].concat(), // r = 0
            [vec![1u8; 32], vec![0u8; 32]].concat(), // s = 0
            n_and_one,                               // r = n
            vec![0xff; 64],                          // r, s > n
        ] {
            let token = format!("{h}.{p}.{}", b64(&signature));
            let r = reason(verify_compact(&token, &keys, DEFAULT_MAX_TOKEN_BYTES));
            assert!(r.contains("does not verify"), "{r}");
        }
        // DER-encoded ECDSA (what OpenSSL emits) is not JWS: wrong length.
        let mut der = vec![0x30, 0x44, 0x02, 0x20];
        der.extend([1u8; 32]);
        der.extend([0x02, 0x20]);
        der.extend([1u8; 32]);
        let r = reason(verify_compact(
            &format!("{h}.{p}.{}", b64(&der)),
            &keys,
            DEFAULT_MAX_TOKEN_BYTES,
        ));
        assert!(r.contains("bytes"), "{r}");
    }
}
