//! Public keys and their JWK form (RFC 7517; RFC 7518 §6; RFC 8037 §2).

use super::SigningAlgorithm;
use super::kid::kid_problem;
use crate::AuthError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde_json::{Map, Value, json};
use std::fmt;

/// Smallest RSA modulus accepted, in bits (NIST SP 800-57: 2048 is the floor to 2030).
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (bounds verification cost; the RSA verifier under
/// `jsonwebtoken` refuses larger moduli anyway).
pub const MAX_RSA_BITS: usize = 4096;

/// Members that only private (or symmetric) JWKs carry (RFC 7518 §6.2.2, §6.3.2, §6.4;
/// RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// JWE key-management algorithms (RFC 7518 §4.1): a key that names one is an encryption
/// key, never a signature key.
const ENCRYPTION_ALGS: [&str; 19] = [
    "RSA1_5",
    "RSA-OAEP",
    "RSA-OAEP-256",
    "RSA-OAEP-384",
    "RSA-OAEP-512",
    "A128KW",
    "A192KW",
    "A256KW",
    "dir",
    "ECDH-ES",
    "ECDH-ES+A128KW",
    "ECDH-ES+A192KW",
    "ECDH-ES+A256KW",
    "A128GCMKW",
    "A192GCMKW",
    "A256GCMKW",
    "PBES2-HS256+A128KW",
    "PBES2-HS384+A192KW",
    "PBES2-HS512+A256KW",
];

/// A public key that verifies one algorithm, under one `kid`.
///
/// The algorithm belongs to the key, fixed when the key is created or loaded; a token's
/// `alg` header must name the same algorithm or it is rejected (RFC 8725 §3.1). Made by
/// [`SigningKey::verification_key`](super::SigningKey::verification_key) for ATE's own keys
/// or parsed from a JWK with [`VerificationKey::from_jwk`] (usually through
/// [`KeySet::from_jwks`](super::KeySet::from_jwks)).
#[derive(Clone)]
pub struct VerificationKey {
    kid: String,
    algorithm: SigningAlgorithm,
    material: PublicMaterial,
    decoding: DecodingKey,
}

/// The public key itself, in the forms the JWK uses.
#[derive(Clone, PartialEq, Eq)]
enum PublicMaterial {
    Ed25519 {
        x: [u8; 32],
    },
    P256 {
        x: [u8; 32],
        y: [u8; 32],
    },
    /// Big-endian, without leading zero bytes.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

/// What became of one JWK in a JWKS.
pub(crate) enum JwkOutcome {
    /// A signature key ATE can use.
    Usable(VerificationKey),
    /// A well-formed key that is not for us (encryption, unsupported algorithm or curve).
    Skipped { kid: String, reason: String },
}

impl VerificationKey {
    /// An Ed25519 key (`x`: the 32-byte public key).
    pub(crate) fn ed25519(kid: String, x: &[u8]) -> Result<Self, String> {
        let x: [u8; 32] = x
            .try_into()
            .map_err(|_| format!("Ed25519 \"x\" must be 32 bytes, got {}", x.len()))?;
        if is_small_order_ed25519(&x) {
            return Err("Ed25519 public key is a small-order point".to_owned());
        }
        let decoding = DecodingKey::from_ed_der(&x);
        probe(&decoding, SigningAlgorithm::EdDSA)
            .map_err(|()| "Ed25519 \"x\" is not a valid curve point".to_owned())?;
        Ok(VerificationKey {
            kid,
            algorithm: SigningAlgorithm::EdDSA,
            material: PublicMaterial::Ed25519 { x },
            decoding,
        })
    }

    /// A P-256 key from its affine coordinates (32 bytes each).
    pub(crate) fn p256(kid: String, x: &[u8], y: &[u8]) -> Result<Self, String> {
        let coordinate = |name: &str, c: &[u8]| -> Result<[u8; 32], String> {
            c.try_into()
                .map_err(|_| format!("P-256 \"{name}\" must be 32 bytes, got {}", c.len()))
        };
        let (x, y) = (coordinate("x", x)?, coordinate("y", y)?);
        let mut point = Vec::with_capacity(65);
        point.push(0x04);
        point.extend_from_slice(&x);
        point.extend_from_slice(&y);
        let decoding = DecodingKey::from_ec_der(&point);
        probe(&decoding, SigningAlgorithm::ES256)
            .map_err(|()| "P-256 (x, y) is not a point on the curve".to_owned())?;
        Ok(VerificationKey {
            kid,
            algorithm: SigningAlgorithm::ES256,
            material: PublicMaterial::P256 { x, y },
            decoding,
        })
    }

    /// An RSA key from its modulus and public exponent (big-endian; leading zero bytes are
    /// tolerated and dropped).
    pub(crate) fn rsa(kid: String, n: &[u8], e: &[u8]) -> Result<Self, String> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        let bits = bit_length(n);
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(format!(
                "RSA modulus has {bits} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} are accepted"
            ));
        }
        if n.last().is_none_or(|b| b & 1 == 0) {
            return Err("RSA modulus is even".to_owned());
        }
        if e.len() > 4 {
            return Err("RSA public exponent is larger than 2^32".to_owned());
        }
        let exponent = e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        if exponent < 3 || exponent % 2 == 0 {
            return Err(format!(
                "RSA public exponent {exponent} is not an odd number of at least 3"
            ));
        }
        if is_roca_modulus(n) {
            return Err(
                "RSA modulus has the ROCA fingerprint (CVE-2017-15361); the private key is \
                 recoverable"
                    .to_owned(),
            );
        }
        Ok(VerificationKey {
            kid,
            algorithm: SigningAlgorithm::RS256,
            decoding: DecodingKey::from_rsa_raw_components(n, e),
            material: PublicMaterial::Rsa {
                n: n.to_vec(),
                e: e.to_vec(),
            },
        })
    }

    /// Parses one public JWK, strictly.
    ///
    /// The key must be a signature key for a supported algorithm: `OKP`/`Ed25519`/`EdDSA`,
    /// `EC`/`P-256`/`ES256` or `RSA`/`RS256` (2048 to 4096 bits). `alg` may be absent, in
    /// which case it is implied by the key type (RSA keys without `alg` are RS256 keys);
    /// `use`, if present, must be `"sig"`; `key_ops`, if present, must include `"verify"`;
    /// `kid` is required. Keys with private members (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`,
    /// `k`), symmetric `oct` keys, invalid curve points, small-order Ed25519 points, RSA
    /// exponents below 3 or even, and RSA moduli with the ROCA fingerprint are refused.
    ///
    /// Errors are [`AuthError::InvalidInput`] naming the problem.
    pub fn from_jwk(jwk: &Value) -> Result<VerificationKey, AuthError> {
        match parse_public_jwk(jwk) {
            Ok(JwkOutcome::Usable(key)) => Ok(key),
            Ok(JwkOutcome::Skipped { reason, .. }) | Err(reason) => {
                Err(AuthError::invalid("JWK", reason))
            }
        }
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The public JWK: `kty`, `crv`/`x`/`y` or `n`/`e`, `kid`, `alg` and `"use": "sig"`.
    pub fn to_jwk(&self) -> Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let mut jwk = match &self.material {
            PublicMaterial::Ed25519 { x } => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(x)}),
            PublicMaterial::P256 { x, y } => {
                json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)})
            }
            PublicMaterial::Rsa { n, e } => json!({"kty": "RSA", "n": b64(n), "e": b64(e)}),
        };
        if let Value::Object(map) = &mut jwk {
            map.insert("kid".into(), Value::String(self.kid.clone()));
            map.insert("alg".into(), self.algorithm.as_str().into());
            map.insert("use".into(), "sig".into());
        }
        jwk
    }

    /// The key in `jsonwebtoken`'s form, for its signature verification.
    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// The exact length of a valid signature under this key, in bytes.
    pub(crate) fn signature_len(&self) -> usize {
        match &self.material {
            PublicMaterial::Ed25519 { .. } | PublicMaterial::P256 { .. } => 64,
            PublicMaterial::Rsa { n, .. } => n.len(),
        }
    }
}

impl PartialEq for VerificationKey {
    fn eq(&self, other: &Self) -> bool {
        self.kid == other.kid
            && self.algorithm == other.algorithm
            && self.material == other.material
    }
}

impl Eq for VerificationKey {}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Classifies one member of a JWKS `keys` array. `Err` is fatal for the whole document.
pub(crate) fn parse_public_jwk(jwk: &Value) -> Result<JwkOutcome, String> {
    let Value::Object(jwk) = jwk else {
        return Err("key is not a JSON object".to_owned());
    };
    let kty = optional_str(jwk, "kty")?.ok_or("key has no \"kty\"")?;
    if kty == "oct" {
        return Err("symmetric (\"oct\") keys are never accepted from a JWKS".to_owned());
    }
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(format!(
            "key has the private member \"{member}\"; a JWKS must hold public keys only"
        ));
    }
    let kid = optional_str(jwk, "kid")?.ok_or("key has no \"kid\"")?;
    if let Some(problem) = kid_problem(kid) {
        return Err(problem.to_owned());
    }
    let kid = kid.to_owned();
    let skip = |reason: String| {
        Ok(JwkOutcome::Skipped {
            kid: kid.clone(),
            reason,
        })
    };

    if let Some(usage) = optional_str(jwk, "use")?
        && usage != "sig"
    {
        return skip(format!("\"use\" is \"{}\", not \"sig\"", printable(usage)));
    }
    if let Some(ops) = jwk.get("key_ops") {
        let ops = ops
            .as_array()
            .filter(|ops| ops.iter().all(Value::is_string))
            .ok_or("\"key_ops\" must be an array of strings")?;
        if !ops.iter().any(|op| op == "verify") {
            return skip("\"key_ops\" does not include \"verify\"".to_owned());
        }
    }
    let alg = optional_str(jwk, "alg")?;
    if let Some(alg) = alg
        && ENCRYPTION_ALGS.contains(&alg)
    {
        return skip(format!("\"alg\" {alg} is an encryption algorithm"));
    }
    let mismatch = |alg: &str, what: &str| -> Result<JwkOutcome, String> {
        Err(format!(
            "\"alg\" \"{}\" does not fit a {what} key",
            printable(alg)
        ))
    };
    let unsupported = |what: &str| skip(format!("{what} keys are not supported"));

    match kty {
        "OKP" => {
            let crv = optional_str(jwk, "crv")?.ok_or("OKP key has no \"crv\"")?;
            match (crv, alg) {
                ("Ed25519", None | Some("EdDSA")) => {
                    let x = b64_member(jwk, "x")?;
                    VerificationKey::ed25519(kid.clone(), &x).map(JwkOutcome::Usable)
                }
                ("Ed25519", Some("Ed25519")) => unsupported("fully-specified \"Ed25519\" alg"),
                ("Ed448", None | Some("EdDSA" | "Ed448")) => unsupported("Ed448"),
                ("X25519" | "X448", None) => unsupported("key-agreement (X25519/X448)"),
                ("Ed25519" | "Ed448" | "X25519" | "X448", Some(alg)) => mismatch(alg, crv),
                _ => Err(format!("unknown OKP curve \"{}\"", printable(crv))),
            }
        }
        "EC" => {
            let crv = optional_str(jwk, "crv")?.ok_or("EC key has no \"crv\"")?;
            match (crv, alg) {
                ("P-256", None | Some("ES256")) => {
                    let (x, y) = (b64_member(jwk, "x")?, b64_member(jwk, "y")?);
                    VerificationKey::p256(kid.clone(), &x, &y).map(JwkOutcome::Usable)
                }
                ("P-384", None | Some("ES384")) => unsupported("P-384 (ES384)"),
                ("P-521", None | Some("ES512")) => unsupported("P-521 (ES512)"),
                ("secp256k1", None | Some("ES256K")) => unsupported("secp256k1 (ES256K)"),
                ("P-256" | "P-384" | "P-521" | "secp256k1", Some(alg)) => mismatch(alg, crv),
                _ => Err(format!("unknown EC curve \"{}\"", printable(crv))),
            }
        }
        "RSA" => match alg {
            None | Some("RS256") => {
                let (n, e) = (b64_member(jwk, "n")?, b64_member(jwk, "e")?);
                VerificationKey::rsa(kid.clone(), &n, &e).map(JwkOutcome::Usable)
            }
            Some(alg @ ("RS384" | "RS512" | "PS256" | "PS384" | "PS512")) => {
                unsupported(&format!("RSA {alg}"))
            }
            Some(alg) => mismatch(alg, "RSA"),
        },
        other => skip(format!(
            "key type \"{}\" is not supported",
            printable(other)
        )),
    }
}

/// A string member, if present; a non-string is an error.
fn optional_str<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("\"{name}\" must be a string")),
    }
}

/// A required base64url member, decoded strictly (no padding, no whitespace).
fn b64_member(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = optional_str(jwk, name)?.ok_or_else(|| format!("key has no \"{name}\""))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("\"{name}\" is not unpadded base64url"))
}

/// `s` if it is short printable ASCII, else a placeholder (keeps error messages inert).
fn printable(s: &str) -> &str {
    if s.len() <= 32 && s.bytes().all(|b| b.is_ascii_graphic()) {
        s
    } else {
        "<unprintable>"
    }
}

/// `Ok` if `jsonwebtoken` accepts `key` as a public key for `alg` (it parses the key before
/// looking at the signature, so a bad point is an `Err` and a bad signature is `Ok(false)`).
fn probe(key: &DecodingKey, alg: SigningAlgorithm) -> Result<(), ()> {
    jsonwebtoken::crypto::verify("AA", b"probe", key, alg.jsonwebtoken())
        .map(|_| ())
        .map_err(|_| ())
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

fn bit_length(big_endian: &[u8]) -> usize {
    match big_endian.first() {
        None => 0,
        Some(&top) => big_endian.len() * 8 - top.leading_zeros() as usize,
    }
}

/// Whether an Ed25519 public key encodes a point of order 1, 2, 4 or 8 (any sign bit,
/// canonical or not). Such a "key" lets anyone forge signatures that a cofactorless
/// verifier accepts for many messages. The list is libsodium's (`ge25519_has_small_order`).
fn is_small_order_ed25519(x: &[u8; 32]) -> bool {
    const SMALL_ORDER: [[u8; 32]; 7] = [
        [0; 32],
        [
            1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0,
        ],
        [
            0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef,
            0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88,
            0x6d, 0x53, 0xfc, 0x05,
        ],
        [
            0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10,
            0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77,
            0x92, 0xac, 0x03, 0x7a,
        ],
        // p - 1, p, p + 1 (the last two are non-canonical encodings of 0 and 1).
        [
            0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0x7f,
        ],
        [
            0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0x7f,
        ],
        [
            0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0x7f,
        ],
    ];
    let mut y = *x;
    y[31] &= 0x7f; // the sign bit of x does not change the order
    SMALL_ORDER.contains(&y)
}

/// Whether an RSA modulus has the ROCA fingerprint (Nemec et al., CCS 2017): primes made by
/// the vulnerable Infineon library leave `n mod r` inside the subgroup generated by 65537
/// for every small prime `r`. A random modulus passes all 38 tests with probability far
/// below 2^-100, so there are no false positives in practice.
fn is_roca_modulus(n: &[u8]) -> bool {
    const PRIMES: [u32; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];
    PRIMES.iter().all(|&r| {
        let residue = n
            .iter()
            .fold(0u32, |acc, &b| ((acc << 8) | u32::from(b)) % r);
        // Walk the cyclic subgroup <65537> mod r (at most r - 1 steps).
        let generator = 65537 % r;
        let mut element = 1;
        loop {
            if element == residue {
                break true;
            }
            element = element * generator % r;
            if element == 1 {
                break false;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::test_support::{TEST_RSA_E, TEST_RSA_N, b64d};

    fn ok(jwk: Value) -> VerificationKey {
        VerificationKey::from_jwk(&jwk).unwrap_or_else(|e| panic!("{jwk}: {e}"))
    }

    fn err(jwk: Value) -> String {
        match VerificationKey::from_jwk(&jwk) {
            Ok(_) => panic!("accepted {jwk}"),
            Err(e) => e.to_string(),
        }
    }

    const EC_X: &str = "04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY";
    const EC_Y: &str = "UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw";
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn jwt_jwk_supported_keys_parse_and_round_trip() {
        let ec = ok(json!({"kty":"EC","crv":"P-256","x":EC_X,"y":EC_Y,"kid":"e","alg":"ES256"}));
        assert_eq!(ec.algorithm(), SigningAlgorithm::ES256);
        let ed = ok(json!({"kty":"OKP","crv":"Ed25519","x":ED_X,"kid":"d"}));
        assert_eq!(ed.algorithm(), SigningAlgorithm::EdDSA);
        let rsa = ok(json!({"kty":"RSA","n":TEST_RSA_N,"e":TEST_RSA_E,"kid":"r","use":"sig"}));
        assert_eq!(rsa.algorithm(), SigningAlgorithm::RS256);
        assert_eq!(rsa.signature_len(), 256);
        for key in [ec, ed, rsa] {
            let jwk = key.to_jwk();
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["alg"], key.algorithm().as_str());
            assert_eq!(jwk["kid"], key.kid());
            assert_eq!(VerificationKey::from_jwk(&jwk).unwrap(), key);
        }
    }

    #[test]
    fn jwt_jwk_rejects_private_and_symmetric_keys() {
        let e = err(json!({"kty":"oct","k":"AAAA","kid":"h","alg":"HS256"}));
        assert!(e.contains("symmetric"), "{e}");
        for member in PRIVATE_MEMBERS {
            let mut jwk = json!({"kty":"EC","crv":"P-256","x":EC_X,"y":EC_Y,"kid":"e"});
            jwk[member] = json!("AAAA");
            let e = err(jwk);
            assert!(e.contains("private member"), "{member}: {e}");
        }
    }

    #[test]
    fn jwt_jwk_rejects_wrong_use_ops_curve_alg_and_points() {
        let base = json!({"kty":"EC","crv":"P-256","x":EC_X,"y":EC_Y,"kid":"e"});
        let with = |k: &str, v: Value| {
            let mut j = base.clone();
            j[k] = v;
            j
        };
        let cases = [
            (with("use", json!("enc")), "use"),
            (with("use", json!(1)), "must be a string"),
            (with("key_ops", json!(["encrypt"])), "key_ops"),
            (with("key_ops", json!("verify")), "key_ops"),
            (with("alg", json!("ES384")), "does not fit"),
            (with("alg", json!("ES224")), "does not fit"),
            (with("alg", json!("HS256")), "does not fit"),
            (with("alg", json!("ECDH-ES")), "encryption"),
            (with("crv", json!("P-384")), "not supported"),
            (with("crv", json!("P-999")), "unknown EC curve"),
            (with("kty", json!("RSA")), "has no \"n\""),
            (with("kty", json!("XYZ")), "not supported"),
            (with("kid", json!("../x")), "kid"),
            (with("kid", json!(7)), "must be a string"),
            // Last character of y changed: not on the curve (Wycheproof "invalid_point").
            (
                with("y", json!("UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgnw")),
                "not a point",
            ),
            (with("x", json!("AAAA")), "32 bytes"),
            (with("x", json!(format!("{EC_X}="))), "base64url"),
        ];
        for (jwk, expected) in cases {
            let e = err(jwk.clone());
            assert!(e.contains(expected), "{jwk}: {e}");
        }
        let mut no_kid = base.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        assert!(err(no_kid).contains("kid"));
        assert!(ok(with("key_ops", json!(["verify"]))).kid() == "e");
    }

    #[test]
    fn jwt_jwk_rejects_weak_ed25519_keys() {
        for x in [
            "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", // identity
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", // order 4
            "7P_______________________________________38", // p - 1: order 2
            "JuiVj8KyJ7BFw_SJ8u-Y8NXfrAXTxjM5sTgCiG1T_IU", // order 8, sign bit set
        ] {
            let e = err(json!({"kty":"OKP","crv":"Ed25519","x":x,"kid":"d"}));
            assert!(e.contains("small-order"), "{x}: {e}");
        }
        let e = err(json!({"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"d"}));
        assert!(e.contains("32 bytes"), "{e}");
        let e = err(json!({"kty":"OKP","crv":"Ed25519","x":ED_X,"kid":"d","alg":"ES256"}));
        assert!(e.contains("does not fit"), "{e}");
    }

    #[test]
    fn jwt_jwk_rejects_weak_rsa_keys() {
        let n = b64d(TEST_RSA_N);
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let rsa = |n: &str, e: &str| json!({"kty":"RSA","n":n,"e":e,"kid":"r"});
        assert!(err(rsa(&b64(&n[..128]), TEST_RSA_E)).contains("1024 bits"));
        assert!(err(rsa(TEST_RSA_N, "AQ")).contains("exponent 1"));
        assert!(err(rsa(TEST_RSA_N, "Ag")).contains("exponent 2"));
        assert!(err(rsa(TEST_RSA_N, "AQAAAAE")).contains("larger than"));
        let mut even = n.clone();
        *even.last_mut().unwrap() &= 0xfe;
        assert!(err(rsa(&b64(&even), TEST_RSA_E)).contains("even"));
        // A leading zero byte (non-minimal, seen in the wild) is tolerated and dropped.
        let mut padded = vec![0u8];
        padded.extend_from_slice(&n);
        let key = ok(rsa(&b64(&padded), TEST_RSA_E));
        assert_eq!(key.to_jwk()["n"], TEST_RSA_N);
        assert!(
            err(json!({"kty":"RSA","n":TEST_RSA_N,"e":"AQAB","kid":"r","alg":"ES256"}))
                .contains("does not fit")
        );
        assert!(
            err(json!({"kty":"RSA","n":TEST_RSA_N,"e":"AQAB","kid":"r","alg":"PS256"}))
                .contains("not supported")
        );
    }

    #[test]
    fn jwt_roca_fingerprint_detection() {
        // Wycheproof json_web_key_test.json, "jws_rsa_roca_key".
        let roca = "AanFpofbj7KjD4Lf-N2hVMKR7yewSyXhhbirIMTGpfYEhZ_lnt5UoK98DnKIgArXGTu3MaW_\
                    HhFw16HGaTDUHqPrId7fe4r11CqRw09yBFuW79V8sYIwHdzCaWflUI6auImYbVfoN9_nD5n8N8S\
                    Y9DwXw7mwZM9wREPXoDPgOoIWl6q_MPsp7n0zs3Z5ZaiQWOOzl1S9OhwAfSiiOwz6efnXEaxuTE\
                    tPd7BjSx7NaFka8Dx9U7YqXy2RFj1O9PjyaDGuRh7YXsX3iMUSP_wSyHQg_c_qHRtKUsNSGCT7O\
                    Zg0hzm2KphtjnayKJvC64vAbROBR4Ubg6Bxg9IQVZ-QYyE";
        assert!(is_roca_modulus(&b64d(roca)));
        assert!(!is_roca_modulus(&b64d(TEST_RSA_N)));
        let e = err(json!({"kty":"RSA","n":roca,"e":"AQAB","kid":"r"}));
        assert!(e.contains("ROCA"), "{e}");
    }
}
