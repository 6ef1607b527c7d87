//! Test helpers: a fixed RSA key, base64url, hand-forged tokens.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use super::{Claims, KeySet, SigningKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

pub(crate) const ISS: &str = "https://ate.test";
pub(crate) const AUD: &str = "ate-api";

// The 2048-bit RSA key "kid-rsa-sign" from Wycheproof's json_web_signature_test.json (a
// published test key; never use it for anything real).
pub(crate) const TEST_RSA_N: &str = "kqGboBfAWttWPCA-0cGRgsY6SaYoIARt0B_PkaEcIq9HPYNdu9n6UuWHuuTHrjF_ZoQW97r5HaAorNvrMEGT\
    GdxCHZdEtkHvNVVmrtxTBLiQCbCozXhFoIrVcr3qUBrdGnNn_M3jJi7Wg7p_-x62nS5gNG875oyheRkutHsQ\
    XikFZwsN3q_TsPNOVlCiHy8mxzaFTUQGm-X8UYexFyAivlDSjgDJLAZSWfxd7k9Gxuwa3AUfQqQcVcegmgKG\
    CaErQ3qQbh1x7WB6iopE3_-GZ8HMAVtR9AmrVscqYsnjhaCehfAI0iKKs8zXr8tISc0ORbaalrkk03H1ZrsE\
    nDKEWQ";
pub(crate) const TEST_RSA_E: &str = "AQAB";
pub(crate) const TEST_RSA_D: &str = "YsfIRYN6rDqSz5KRf1E9q7HK1o6-_UK-j7S-asb0Y1FdVs1GuiRQhMPoOjmhY3Io93EI3_7vj8uzWzAUMsAa\
    TxOY3sJnIbktYuqTcD0xGD8VmdGPBkx963db8B6M2UYfqZARf7dbzP9EuB1N1miMcTsqyGgfHGOk7CXQ1vkI\
    v8Uww38KMtEdJ3iB8r-f3qcu-UJjE7Egw9CxKOMjArOXxZEr4VnoIXrImrcTxBfjdY8GbzXGATiPQLur5GT9\
    9ZDW78falsir-b5Ean6HNyOeuaJuceT-yjgCXn57Rd3oIHD94CrjNtjBusoLdjbr489L8K9ksCh1gynzLGke\
    eWgVGQ";
pub(crate) const TEST_RSA_P: &str = "0xalbl1PJbSBGD4XOjIYJLwMYyHMiM06SBauMGzBfCask5DN5jH68Kw1yPS4wkLpx4ltGLuy0X5mMaZzrSOk\
    BGb27-NizBgB2-L279XotznWeh2jbF05Kqzkoz3VaX_7dRhCHEhOopMQh619hA1bwaJyW1k8aNlLPTl3Botk\
    P4M";
pub(crate) const TEST_RSA_Q: &str = "sdQsQVz3tI7hmisAgiIjppOssEnZaZO0ONeRRDxBHGLe3BCo1FJoMMQryOAlglayjQnnWjQ-BpwUpa0r9YQh\
    VLweoNEIig6Beph7iYRZgOHEiiTTgUIGgXAL6xhsby1PueUfT0xsN1Y7qt5f5EwOfu7tnFqNyJXIp9W1NQgU\
    6fM";
pub(crate) const TEST_RSA_DP: &str = "kEpEnuJNfdqa-_VFb1RayJF6bjDmXQTcN_a47wUIZVMSWHR9KkMz41v0D_-oY7HVl73Kw0NagnVCaeH75Hge\
    X5v6ZBQsrpIigynr3hl8T_LLNwIXebVnpFI2n5de0BTZ0DraxfZvOhYJEJV43NE8zWm7fdHLx2fxVFJ5mBGk\
    Xv0";
pub(crate) const TEST_RSA_DQ: &str = "U_xJCnXF51iz5AP7MXq-K6YDIR8_t0UzEMV-riNm_OkVKAoWMnDZFG8R3sU98djQaxwKT-fsg2KjvbuTz1ig\
    BUzzijAvQESpkiUB82i2fNAj6rqJybpNKESq3FWkoL1dsgYsS19knJ31gDWWRFRHZFujjPyXiexz4BBmjK1M\
    c1E";
pub(crate) const TEST_RSA_QI: &str = "Uvb84tWiJF3fB-U9wZSPi7juGgrzeXS_LYtf5fcdV0fZg_h_5nSVpXyYyQ-PK218qEC5MlDkaHKRD9wBOe_e\
    U_zJTNoXzB2oAcgl2MapBWUMytbiF84ghP_2K9UD63ZVsyrorSZhmsJIBBuqQjrmk0tIdpMdlMxLYhrbYwFx\
    Uqc";

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn b64d(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

/// The test RSA key as a PKCS#1 `RSAPrivateKey`, encoded by RustCrypto's `pkcs1` from the
/// published components (whose CRT values must match the ones it derives).
pub(crate) fn rsa_test_pkcs1() -> Vec<u8> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PrivateKeyParts;
    let int = |part: &str| rsa::BigUint::from_bytes_be(&b64d(part));
    let key = rsa::RsaPrivateKey::from_components(
        int(TEST_RSA_N),
        int(TEST_RSA_E),
        int(TEST_RSA_D),
        vec![int(TEST_RSA_P), int(TEST_RSA_Q)],
    )
    .unwrap();
    assert_eq!(key.dp(), Some(&int(TEST_RSA_DP)));
    assert_eq!(key.dq(), Some(&int(TEST_RSA_DQ)));
    assert_eq!(key.crt_coefficient(), Some(int(TEST_RSA_QI)));
    key.to_pkcs1_der().unwrap().as_bytes().to_vec()
}

/// The test RSA key as a signing key (kid "kid-rsa-sign").
pub(crate) fn rsa_test_key() -> SigningKey {
    SigningKey::from_rsa_pkcs1("kid-rsa-sign", &rsa_test_pkcs1()).unwrap()
}

/// A key set holding the public halves of `keys`.
pub(crate) fn keys_of(keys: &[&SigningKey]) -> KeySet {
    let mut set = KeySet::new();
    for key in keys {
        set.insert(key.verification_key().clone()).unwrap();
    }
    set
}

/// A compact JWS with any header, signed by `key` with its own algorithm.
pub(crate) fn forge(key: &SigningKey, header: &Value, payload: &[u8]) -> String {
    key.sign_with_header(header.to_string().as_bytes(), payload)
        .unwrap()
}

/// A compact JWS with any header, "signed" with HMAC-SHA-256 under `secret`.
pub(crate) fn forge_hs256(secret: &[u8], header: &Value, payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload));
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
        input.as_bytes(),
    );
    format!("{input}.{}", b64(tag.as_ref()))
}

/// The decoded header of a compact token.
pub(crate) fn header_of(token: &str) -> Value {
    serde_json::from_slice(&b64d(token.split('.').next().unwrap())).unwrap()
}

/// The public key as a PEM SubjectPublicKeyInfo, as an attacker would download it (DER from
/// RustCrypto's `spki`/`pkcs8` encoders).
pub(crate) fn public_key_pem(key: &SigningKey) -> String {
    use rsa::pkcs8::EncodePublicKey;
    use rsa::pkcs8::der::Encode;
    use rsa::pkcs8::der::asn1::{AnyRef, BitStringRef, ObjectIdentifier};
    use rsa::pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
    const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
    const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
    let jwk = key.public_jwk();
    let field = |name: &str| b64d(jwk[name].as_str().unwrap());
    let spki = |oid, parameters, key_bits: &[u8]| {
        SubjectPublicKeyInfoRef {
            algorithm: AlgorithmIdentifierRef { oid, parameters },
            subject_public_key: BitStringRef::from_bytes(key_bits).unwrap(),
        }
        .to_der()
        .unwrap()
    };
    let der = match jwk["kty"].as_str().unwrap() {
        "OKP" => spki(ED25519, None, &field("x")),
        "EC" => spki(
            EC_PUBLIC_KEY,
            Some(AnyRef::from(&P256)),
            &[vec![4], field("x"), field("y")].concat(),
        ),
        _ => rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(&field("n")),
            rsa::BigUint::from_bytes_be(&field("e")),
        )
        .unwrap()
        .to_public_key_der()
        .unwrap()
        .into_vec(),
    };
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

/// ATE claims from `ISS` for `AUD`, issued at `now`, valid for 600 s.
pub(crate) fn claims(now: i64) -> Claims {
    Claims::new(
        ISS,
        AUD,
        "user-1",
        "tenant-1",
        now,
        now + 600,
        Claims::random_jti().unwrap(),
    )
}
