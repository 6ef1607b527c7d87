//! Envelope encryption of data keys under a master key (AES-256-GCM).
//!
//! Wire format of [`WrappedKey::ciphertext`] (version 1):
//!
//! ```text
//! 0x01 ‖ nonce (12 random bytes) ‖ AES-256-GCM(secret) ‖ tag (16 bytes)
//! AAD = "ate.envelope.v1" 0x00 ‖ u32be(len(key_id)) ‖ key_id ‖ context
//! ```
//!
//! The associated data binds the master key's id and the caller's context (for example
//! `tenant:<id>/data-key:<version>`), so a wrapped key copied to another tenant, version or
//! master key fails to unwrap with [`CoreError::Integrity`]. A fresh random nonce per wrap is
//! safe far beyond any realistic number of data keys (the 2^32-messages-per-key bound).

use super::SecretKey;
use super::secret::{SecretBytes, fill_random};
use crate::error::CoreError;
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Largest secret a local envelope wraps (RSA private keys fit easily).
pub const MAX_SECRET_LEN: usize = 64 * 1024;

/// A secret encrypted under a master key, with the id of that key.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WrappedKey {
    /// Which master key wrapped it ([`KeyProvider::key_id`](super::KeyProvider::key_id)).
    pub key_id: String,
    /// The envelope, in the provider's format.
    #[serde(with = "hex_vec")]
    pub ciphertext: Vec<u8>,
}

mod hex_vec {
    pub(super) fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The ciphertext is safe to show, but it is noise in logs; its length is enough.
        f.debug_struct("WrappedKey")
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

fn aad(key_id: &str, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(20 + key_id.len() + context.len());
    aad.extend_from_slice(b"ate.envelope.v1\0");
    aad.extend_from_slice(
        &u32::try_from(key_id.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    aad.extend_from_slice(key_id.as_bytes());
    aad.extend_from_slice(context);
    aad
}

/// Encrypts `secret` under `master` (identified as `key_id`), binding `context`.
pub fn seal(
    master: &SecretKey,
    key_id: &str,
    secret: &[u8],
    context: &[u8],
) -> Result<WrappedKey, CoreError> {
    if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
        return Err(CoreError::invalid(
            "secret to wrap",
            format!("must be 1 to {MAX_SECRET_LEN} bytes, got {}", secret.len()),
        ));
    }
    let cipher = Aes256Gcm::new(master.expose_secret().into());
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let sealed = cipher
        .encrypt(
            &nonce.into(),
            Payload {
                msg: secret,
                aad: &aad(key_id, context),
            },
        )
        .map_err(|_| CoreError::Internal("AES-GCM refused to encrypt a short key".into()))?;
    let mut ciphertext = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    ciphertext.push(VERSION);
    ciphertext.extend_from_slice(&nonce);
    ciphertext.extend_from_slice(&sealed);
    Ok(WrappedKey {
        key_id: key_id.to_owned(),
        ciphertext,
    })
}

/// Decrypts a [`WrappedKey`] made by [`seal`] with the same master key and context.
///
/// A wrong master key, a wrong context or any modified byte fails with
/// [`CoreError::Integrity`]; a malformed envelope with [`CoreError::InvalidInput`].
pub fn open(
    master: &SecretKey,
    wrapped: &WrappedKey,
    context: &[u8],
) -> Result<SecretBytes, CoreError> {
    let c = &wrapped.ciphertext;
    if c.len() < 1 + NONCE_LEN + TAG_LEN + 1 {
        return Err(CoreError::invalid(
            "wrapped key",
            format!("is {} bytes, too short to be an envelope", c.len()),
        ));
    }
    if c[0] != VERSION {
        return Err(CoreError::invalid(
            "wrapped key",
            format!("has unknown envelope version {}", c[0]),
        ));
    }
    let nonce: [u8; NONCE_LEN] = c[1..1 + NONCE_LEN]
        .try_into()
        .map_err(|_| CoreError::Internal("nonce slice length".into()))?;
    let cipher = Aes256Gcm::new(master.expose_secret().into());
    let plain = cipher
        .decrypt(
            &nonce.into(),
            Payload {
                msg: &c[1 + NONCE_LEN..],
                aad: &aad(&wrapped.key_id, context),
            },
        )
        .map_err(|_| {
            CoreError::Integrity(format!(
                "cannot unwrap key: wrong master key ({}), wrong context, or a modified envelope",
                wrapped.key_id
            ))
        })?;
    Ok(SecretBytes::new(plain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorKind};

    #[test]
    fn round_trip() {
        let master = SecretKey::generate().unwrap();
        let data_key = SecretKey::generate().unwrap();
        let w = seal(&master, "local:1", data_key.expose_secret(), b"tenant:a/v1").unwrap();
        assert_eq!(w.ciphertext.len(), 1 + 12 + 32 + 16);
        let back = open(&master, &w, b"tenant:a/v1").unwrap();
        assert_eq!(back.expose_secret(), data_key.expose_secret());
    }

    #[test]
    fn wrong_context_key_id_master_or_bytes_fail_integrity() {
        let master = SecretKey::generate().unwrap();
        let w = seal(&master, "local:1", &[9; 32], b"tenant:a/v1").unwrap();
        let kind = |r: Result<SecretBytes, CoreError>| r.unwrap_err().kind();
        assert_eq!(
            kind(open(&master, &w, b"tenant:b/v1")),
            ErrorKind::Integrity
        );
        assert_eq!(kind(open(&master, &w, b"")), ErrorKind::Integrity);
        let other = SecretKey::generate().unwrap();
        assert_eq!(kind(open(&other, &w, b"tenant:a/v1")), ErrorKind::Integrity);
        let mut relabelled = w.clone();
        relabelled.key_id = "local:2".into();
        assert_eq!(
            kind(open(&master, &relabelled, b"tenant:a/v1")),
            ErrorKind::Integrity
        );
        for i in 1..w.ciphertext.len() {
            let mut flipped = w.clone();
            flipped.ciphertext[i] ^= 0x01;
            assert_eq!(
                kind(open(&master, &flipped, b"tenant:a/v1")),
                ErrorKind::Integrity,
                "byte {i}"
            );
        }
    }

    #[test]
    fn malformed_envelopes_are_invalid_input() {
        let master = SecretKey::generate().unwrap();
        let mut w = seal(&master, "k", &[1; 32], b"").unwrap();
        w.ciphertext[0] = 2;
        assert_eq!(
            open(&master, &w, b"").unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        w.ciphertext.truncate(20);
        assert_eq!(
            open(&master, &w, b"").unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert!(seal(&master, "k", &[], b"").is_err());
    }

    #[test]
    fn nonces_are_fresh() {
        let master = SecretKey::generate().unwrap();
        let a = seal(&master, "k", &[1; 32], b"").unwrap();
        let b = seal(&master, "k", &[1; 32], b"").unwrap();
        assert_ne!(a.ciphertext, b.ciphertext);
    }
}
