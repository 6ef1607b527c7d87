//! AES-256-GCM from RustCrypto's `aes-gcm`.

use super::{AeadKey, Aes256Gcm, AuthenticationFailed};
use aes_gcm::aead::{AeadInOut, KeyInit};

#[derive(Debug)]
pub(super) struct RustCryptoAes256Gcm;

struct Key(aes_gcm::Aes256Gcm);

impl Aes256Gcm for RustCryptoAes256Gcm {
    fn key(&self, key: &[u8; 32]) -> Box<dyn AeadKey> {
        // `aes-gcm` is built with its `zeroize` feature: the expanded key is wiped on drop.
        Box::new(Key(aes_gcm::Aes256Gcm::new(key.into())))
    }
}

impl AeadKey for Key {
    fn seal_in_place(&self, nonce: &[u8; 12], aad: &[u8], in_out: &mut [u8]) -> [u8; 16] {
        let tag = self
            .0
            .encrypt_inout_detached(nonce.into(), aad, in_out.into())
            // Only fails for inputs beyond GCM's 64 GiB per-message limit; Cobblestone chunks
            // are 16 KiB and the envelope's secrets 64 KiB at most.
            .unwrap_or_else(|_| unreachable_gcm_limit());
        tag.into()
    }

    fn open_in_place(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), AuthenticationFailed> {
        self.0
            .decrypt_inout_detached(nonce.into(), aad, in_out.into(), tag.into())
            .map_err(|_| AuthenticationFailed)
    }
}

#[cold]
fn unreachable_gcm_limit() -> aes_gcm::Tag {
    panic!("AES-GCM input over 64 GiB: callers bound every input far below that")
}
