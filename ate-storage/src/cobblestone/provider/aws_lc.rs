//! AES-256-GCM from `aws-lc-rs` (AWS-LC's assembly: VAES/AVX-512 where the CPU has it), the
//! one provider that decrypts from one buffer into another in a single pass.

use super::{AeadKey, Aes256Gcm, AuthenticationFailed};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

#[derive(Debug)]
pub(super) struct AwsLcAes256Gcm;

/// AWS-LC keeps the expanded key in its own context and cleanses it when the key is freed.
struct Key(LessSafeKey);

impl Aes256Gcm for AwsLcAes256Gcm {
    fn key(&self, key: &[u8; 32]) -> Box<dyn AeadKey> {
        // A 32-byte key is always the right length for AES_256_GCM.
        let unbound = UnboundKey::new(&AES_256_GCM, key).unwrap_or_else(|_| unreachable_key());
        Box::new(Key(LessSafeKey::new(unbound)))
    }
}

impl AeadKey for Key {
    fn seal_in_place(&self, nonce: &[u8; 12], aad: &[u8], in_out: &mut [u8]) -> [u8; 16] {
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                in_out,
            )
            // AWS-LC only refuses inputs beyond GCM's per-message limit; see the RustCrypto twin.
            .unwrap_or_else(|_| unreachable_limit());
        let mut out = [0u8; 16];
        out.copy_from_slice(tag.as_ref());
        out
    }

    fn open_in_place(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), AuthenticationFailed> {
        self.0
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                tag,
                in_out,
            )
            .map(|_| ())
            .map_err(|_| AuthenticationFailed)
    }

    fn open_to(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; 16],
        out: &mut [u8],
    ) -> Result<(), AuthenticationFailed> {
        if ciphertext.len() != out.len() {
            return Err(AuthenticationFailed);
        }
        self.0
            .open_separate_gather(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                ciphertext,
                tag,
                out,
            )
            .map_err(|_| AuthenticationFailed)
    }
}

#[cold]
fn unreachable_key() -> UnboundKey {
    panic!("AWS-LC rejected a 32-byte AES-256 key")
}

#[cold]
fn unreachable_limit() -> aws_lc_rs::aead::Tag {
    panic!("AES-GCM input over 64 GiB: callers bound every input far below that")
}
