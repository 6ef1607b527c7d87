//! Wycheproof vectors (`tests/vectors/wycheproof/`, vendored) through every provider and every
//! way in: one-shot, streaming (push and `Read`), and random access. A missing vector file is
//! a failure, never a skip.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ate_core::{Classify, ErrorKind};
use ate_storage::StorageError;
use ate_storage::cobblestone::{
    Cobblestone, CryptoProvider, DecryptReader, Decryptor, RandomAccess, SALT_LEN,
};
use serde_json::Value;
use sha2::{Digest, Sha512};
use std::io::Read;
use std::path::PathBuf;

fn vectors(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/wycheproof")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn hex_field(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(
        v[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} missing")),
    )
    .unwrap()
}

#[test]
fn aes_256_gcm_vectors_pass_on_every_provider() {
    let file = vectors("aes_gcm_test.json");
    for provider in CryptoProvider::all() {
        let (mut checked, mut other_sizes) = (0, 0);
        for group in file["testGroups"].as_array().unwrap() {
            if group["keySize"] != 256 {
                continue;
            }
            let tests = group["tests"].as_array().unwrap();
            if group["ivSize"] != 96 || group["tagSize"] != 128 {
                // Providers take exactly 96-bit nonces and produce 128-bit tags, enforced by
                // their types; other sizes cannot even be expressed.
                other_sizes += tests.len();
                continue;
            }
            for t in tests {
                let id = &t["tcId"];
                let key: [u8; 32] = hex_field(t, "key").try_into().unwrap();
                let iv: [u8; 12] = hex_field(t, "iv").try_into().unwrap();
                let (aad, msg, ct) = (hex_field(t, "aad"), hex_field(t, "msg"), hex_field(t, "ct"));
                let tag: [u8; 16] = hex_field(t, "tag").try_into().unwrap();
                let aead = provider.aes_256_gcm.key(&key);
                let mut opened = ct.clone();
                let result = aead.open_in_place(&iv, &aad, &mut opened, &tag);
                // The same vector opened from one buffer into another.
                let mut out = vec![0xEE; ct.len()];
                let to = aead.open_to(&iv, &aad, &ct, &tag, &mut out);
                assert_eq!(
                    to.is_ok(),
                    result.is_ok(),
                    "{} tc {id}: open_to",
                    provider.name
                );
                match t["result"].as_str().unwrap() {
                    "valid" => {
                        assert!(
                            result.is_ok(),
                            "{} tc {id}: valid vector rejected",
                            provider.name
                        );
                        assert_eq!(opened, msg, "{} tc {id}", provider.name);
                        assert_eq!(out, msg, "{} tc {id}: open_to", provider.name);
                        let mut sealed = msg.clone();
                        let got_tag = aead.seal_in_place(&iv, &aad, &mut sealed);
                        assert_eq!((sealed, got_tag), (ct, tag), "{} tc {id}", provider.name);
                    }
                    _ => assert!(
                        result.is_err(),
                        "{} tc {id}: invalid vector accepted",
                        provider.name
                    ),
                }
                checked += 1;
            }
        }
        assert_eq!(
            checked, 66,
            "{}: AES-256-GCM 96-bit-IV vectors checked",
            provider.name
        );
        assert!(other_sizes > 0);
        // `open_to` refuses an output of another length than the ciphertext.
        let aead = provider.aes_256_gcm.key(&[1; 32]);
        let mut sealed = vec![7u8; 40];
        let tag = aead.seal_in_place(&[2; 12], b"", &mut sealed);
        for n in [39, 41] {
            let mut out = vec![0; n];
            assert!(
                aead.open_to(&[2; 12], b"", &sealed, &tag, &mut out)
                    .is_err(),
                "{n}"
            );
        }
        let mut out = vec![0; 40];
        assert!(aead.open_to(&[2; 12], b"", &sealed, &tag, &mut out).is_ok());
        assert_eq!(out, vec![7u8; 40], "{}", provider.name);
    }
}

struct Vector {
    id: u64,
    key: Vec<u8>,
    ctx: Vec<u8>,
    ct: Vec<u8>,
    msg_len: usize,
    msg_sha512: Vec<u8>,
    valid: bool,
    flags: Vec<String>,
}

impl Vector {
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

fn cobblestone_vectors() -> Vec<Vector> {
    let file = vectors("c2sp_chunked_encryption_aes_256_gcm_test.json");
    assert_eq!(file["algorithm"], "Cobblestone-256");
    let mut out = Vec::new();
    for group in file["testGroups"].as_array().unwrap() {
        assert_eq!(group["aead"], "AEAD_AES_256_GCM");
        assert_eq!(group["sha"], "SHA-512");
        for t in group["tests"].as_array().unwrap() {
            let compressed = hex_field(t, "ct");
            let mut ct = Vec::new();
            flate2::read::ZlibDecoder::new(&compressed[..])
                .read_to_end(&mut ct)
                .unwrap();
            out.push(Vector {
                id: t["tcId"].as_u64().unwrap(),
                key: hex_field(t, "key"),
                ctx: hex_field(t, "ctx"),
                ct,
                // Invalid vectors describe a message only when a valid prefix exists.
                msg_len: t["msgLength"].as_u64().unwrap_or(0) as usize,
                msg_sha512: t["msgSha512"]
                    .as_str()
                    .map(|h| hex::decode(h).unwrap())
                    .unwrap_or_default(),
                valid: t["result"] == "valid",
                flags: t["flags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap().to_owned())
                    .collect(),
            });
        }
    }
    assert_eq!(out.len(), 35, "every Cobblestone-256 vector is loaded");
    out
}

fn sha512(data: &[u8]) -> Vec<u8> {
    Sha512::digest(data).to_vec()
}

fn check_key_size_error(v: &Vector, e: &StorageError) {
    if v.has("InvalidKeySize") {
        assert!(
            matches!(e, StorageError::InvalidKeySize(_)),
            "tc {}: expected a key-size error, got {e}",
            v.id
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    } else {
        assert_eq!(e.kind(), ErrorKind::Integrity, "tc {}: {e}", v.id);
    }
}

fn providers() -> Vec<Cobblestone> {
    CryptoProvider::all()
        .into_iter()
        .flat_map(|p| [Cobblestone::new(p), Cobblestone::new(p).with_max_threads(1)])
        .collect()
}

#[test]
fn cobblestone_one_shot() {
    let vs = cobblestone_vectors();
    for c in providers() {
        for v in &vs {
            match c.open(&v.key, &v.ct, &v.ctx) {
                Ok(msg) => {
                    assert!(
                        v.valid,
                        "{} tc {}: invalid vector accepted",
                        c.provider().name,
                        v.id
                    );
                    assert_eq!(msg.len(), v.msg_len, "tc {}", v.id);
                    assert_eq!(sha512(&msg), v.msg_sha512, "tc {}", v.id);
                    // Encryption with the vector's salt reproduces the ciphertext exactly.
                    let salt: [u8; SALT_LEN] = v.ct[..SALT_LEN].try_into().unwrap();
                    let sealed = c.seal_with_salt(&v.key, &msg, &v.ctx, salt).unwrap();
                    assert!(sealed == v.ct, "tc {}: re-encryption differs", v.id);
                }
                Err(e) => {
                    assert!(
                        !v.valid,
                        "{} tc {}: valid vector rejected: {e}",
                        c.provider().name,
                        v.id
                    );
                    check_key_size_error(v, &e);
                }
            }
        }
    }
}

/// Feeds `ct` to a push decryptor in `piece`-byte pieces; returns the plaintext released and
/// the first error, after checking that the error repeats.
fn push_decrypt(c: &Cobblestone, v: &Vector, piece: usize) -> (Vec<u8>, Option<StorageError>) {
    let mut d = match Decryptor::new(c, &v.key, &v.ctx) {
        Ok(d) => d,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut out = Vec::new();
    let mut error = None;
    for part in v.ct.chunks(piece) {
        if let Err(e) = d.update(part, &mut out) {
            error = Some(e);
            break;
        }
    }
    if error.is_none() {
        error = d.finish(&mut out).err();
    }
    if error.is_some() {
        // A stream that failed keeps failing, whatever comes next.
        let len = out.len();
        assert!(d.update(b"more", &mut out).is_err(), "tc {}", v.id);
        assert!(d.finish(&mut out).is_err(), "tc {}", v.id);
        assert_eq!(
            out.len(),
            len,
            "tc {}: nothing released after the failure",
            v.id
        );
    }
    (out, error)
}

fn check_stream_result(
    c: &Cobblestone,
    v: &Vector,
    out: &[u8],
    error: Option<StorageError>,
    how: &str,
) {
    let name = c.provider().name;
    match error {
        None => {
            assert!(v.valid, "{name} {how} tc {}: invalid vector accepted", v.id);
            assert_eq!(out.len(), v.msg_len, "tc {}", v.id);
            assert_eq!(sha512(out), v.msg_sha512, "tc {}", v.id);
        }
        Some(e) => {
            assert!(
                !v.valid,
                "{name} {how} tc {}: valid vector rejected: {e}",
                v.id
            );
            check_key_size_error(v, &e);
            if v.has("PartialPlaintext") {
                // Only the valid prefix may come out; never a byte more.
                assert!(
                    out.len() <= v.msg_len,
                    "{how} tc {}: {} > {}",
                    v.id,
                    out.len(),
                    v.msg_len
                );
                if out.len() == v.msg_len {
                    assert_eq!(sha512(out), v.msg_sha512, "tc {}", v.id);
                }
            } else {
                assert!(out.is_empty() || v.msg_len > 0, "{how} tc {}", v.id);
                assert!(out.len() <= v.msg_len, "{how} tc {}", v.id);
            }
        }
    }
}

#[test]
fn cobblestone_streaming_push() {
    let vs = cobblestone_vectors();
    for c in providers() {
        for v in &vs {
            for piece in [1usize, 55, 16_400, 65_537] {
                if piece == 1 && v.ct.len() > 100_000 {
                    continue; // byte-at-a-time on 4 MiB vectors adds minutes, not coverage
                }
                let (out, error) = push_decrypt(&c, v, piece);
                check_stream_result(&c, v, &out, error, &format!("push/{piece}"));
            }
        }
    }
}

#[test]
fn header_failures_are_caught_before_any_chunk() {
    let vs = cobblestone_vectors();
    let mut seen = 0;
    for c in providers() {
        for v in vs.iter().filter(|v| v.has("HeaderFailure")) {
            seen += 1;
            // Feed the header alone (or all there is, if shorter): the error must come now.
            let Ok(mut d) = Decryptor::new(&c, &v.key, &v.ctx) else {
                assert!(v.has("InvalidKeySize"), "tc {}", v.id);
                continue;
            };
            let header = &v.ct[..v.ct.len().min(ate_storage::cobblestone::HEADER_LEN)];
            let mut out = Vec::new();
            let early = d.update(header, &mut out).and_then(|()| {
                if header.len() < ate_storage::cobblestone::HEADER_LEN {
                    d.finish(&mut out)
                } else {
                    Ok(())
                }
            });
            assert!(early.is_err(), "tc {}: header accepted", v.id);
            assert!(out.is_empty());
        }
    }
    assert!(seen > 0);
}

#[test]
fn cobblestone_streaming_reader() {
    let vs = cobblestone_vectors();
    for c in providers() {
        for v in &vs {
            let mut reader = match DecryptReader::new(&c, &v.key, &v.ctx, &v.ct[..]) {
                Ok(r) => r,
                Err(e) => {
                    check_stream_result(&c, v, &[], Some(e), "reader");
                    continue;
                }
            };
            let mut out = Vec::new();
            let mut buf = [0u8; 10_000];
            let error = loop {
                match reader.read(&mut buf) {
                    Ok(0) => break None,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    Err(e) => break Some(e),
                }
            };
            if let Some(e) = &error {
                // Keeps failing rather than reporting a clean end of file.
                assert!(reader.read(&mut buf).is_err(), "tc {}", v.id);
                assert!(reader.read(&mut buf).is_err(), "tc {}", v.id);
                let storage = match e.get_ref().and_then(|i| i.downcast_ref::<StorageError>()) {
                    Some(StorageError::InvalidKeySize(n)) => StorageError::InvalidKeySize(*n),
                    _ => StorageError::Integrity(e.to_string()),
                };
                check_stream_result(&c, v, &out, Some(storage), "reader");
            } else {
                check_stream_result(&c, v, &out, None, "reader");
            }
        }
    }
}

#[test]
fn cobblestone_random_access() {
    let vs = cobblestone_vectors();
    for c in providers() {
        let name = c.provider().name;
        for v in &vs {
            let ra = match RandomAccess::new(&c, &v.key, &v.ctx, &v.ct[..], v.ct.len() as u64) {
                Ok(_) if v.has("HeaderFailure") => {
                    panic!(
                        "{name} tc {}: header accepted; it must fail before any chunk",
                        v.id
                    )
                }
                Ok(ra) => ra,
                Err(e) => {
                    assert!(
                        !v.valid,
                        "{name} tc {}: valid vector rejected on open: {e}",
                        v.id
                    );
                    check_key_size_error(v, &e);
                    continue;
                }
            };
            // Authenticating the length (what seeking from the end does first).
            match ra.authenticated_len() {
                Ok(len) => {
                    assert!(
                        v.valid || v.has("ValidFinalChunk"),
                        "{name} tc {}: final chunk of an invalid vector authenticated",
                        v.id
                    );
                    if v.valid {
                        assert_eq!(len, v.msg_len as u64);
                    }
                }
                Err(e) => {
                    assert!(!v.valid, "{name} tc {}: {e}", v.id);
                    assert_eq!(e.kind(), ErrorKind::Integrity);
                }
            }
            // Reading the whole message.
            match ra.read_range(0..ra.claimed_len()) {
                Ok(msg) => {
                    assert!(v.valid, "{name} tc {}: invalid vector read whole", v.id);
                    assert_eq!(sha512(&msg), v.msg_sha512, "tc {}", v.id);
                }
                Err(e) => {
                    assert!(!v.valid, "{name} tc {}: valid vector failed: {e}", v.id);
                    assert_eq!(e.kind(), ErrorKind::Integrity, "tc {}: {e}", v.id);
                }
            }
            if v.valid && v.msg_len > 0 {
                // Ranges that straddle chunk boundaries decrypt to the same bytes.
                let whole = ra.read_range(0..v.msg_len as u64).unwrap();
                let len = v.msg_len as u64;
                for (start, end) in [
                    (0, 1),
                    (len / 2, len),
                    (len.saturating_sub(16_385), len),
                    (1, len),
                ] {
                    let part = ra.read_range(start..end).unwrap();
                    assert_eq!(
                        part,
                        &whole[start as usize..end as usize],
                        "tc {} {start}..{end}",
                        v.id
                    );
                }
                let tail = ra.read_tail(100).unwrap();
                assert_eq!(tail, &whole[whole.len().saturating_sub(100)..]);
            }
        }
    }
}
