//! AES-256-GCM from `ring`.

use super::{AeadKey, Aes256Gcm, AuthenticationFailed};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};

#[derive(Debug)]
pub(super) struct RingAes256Gcm;

struct Key(LessSafeKey);

impl Aes256Gcm for RingAes256Gcm {
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
            // ring only refuses inputs beyond GCM's per-message limit; see the RustCrypto twin.
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
                Tag::from(*tag),
                in_out,
                0..,
            )
            .map(|_| ())
            .map_err(|_| AuthenticationFailed)
    }
}

#[cold]
fn unreachable_key() -> UnboundKey {
    panic!("ring rejected a 32-byte AES-256 key")
}

#[cold]
fn unreachable_limit() -> Tag {
    panic!("AES-GCM input over 64 GiB: callers bound every input far below that")
}
