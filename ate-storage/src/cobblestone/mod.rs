//! Cobblestone-256: [c2sp.org/chunked-encryption] with HKDF-Expand-SHA-512 and AES-256-GCM.
//!
//! ```text
//! key ‖ base nonce ‖ commitment = HKDF-Expand-SHA-512(prk = input key,
//!     info = "c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM" 0x00 ‖ salt ‖ context, 76)
//! ciphertext = salt (24) ‖ commitment (32) ‖ AES-256-GCM(chunk 0) ‖ … ‖ AES-256-GCM(final chunk)
//! ```
//!
//! Plaintext is cut into 16 KiB chunks; the final chunk is always shorter (possibly empty), so
//! truncation at a chunk boundary and trailing data are both detected. Chunk *k* is sealed
//! with the base nonce XOR *k* (big-endian) and no AAD. The commitment is checked in constant
//! time before any chunk is decrypted, so a wrong key or context fails fast and a ciphertext
//! cannot be made to decrypt under two keys.
//!
//! Three ways in, all checked against the Wycheproof vectors:
//!
//! * one-shot: [`Cobblestone::seal`] / [`Cobblestone::open`], using every core for large inputs,
//!   and [`Cobblestone::seal_into`] / [`Cobblestone::open_into`] writing into a caller's
//!   buffer (sized with [`Cobblestone::sealed_len`] / [`Cobblestone::opened_len`]);
//! * streaming: [`Encryptor`] / [`Decryptor`] (push) and [`EncryptWriter`] / [`DecryptReader`]
//!   (`std::io`), holding at most a couple of chunks whatever the message size;
//! * random access: [`RandomAccess`], which decrypts only the chunks a byte range needs.
//!
//! ```
//! use ate_storage::cobblestone::Cobblestone;
//!
//! let c = Cobblestone::default();
//! let key = [7u8; 32];
//! let sealed = c.seal(&key, b"hello", b"tenant:acme/object:1")?;
//! assert_eq!(c.open(&key, &sealed, b"tenant:acme/object:1")?, b"hello");
//! assert!(c.open(&key, &sealed, b"tenant:evil/object:1").is_err());
//! # Ok::<(), ate_storage::StorageError>(())
//! ```
//!
//! [c2sp.org/chunked-encryption]: https://c2sp.org/chunked-encryption

mod layout;
mod pieces;
pub mod provider;
mod random_access;
mod span;
mod stream;

pub use provider::CryptoProvider;
pub use random_access::{RandomAccess, ReadAt};
pub use stream::{DecryptReader, Decryptor, EncryptWriter, Encryptor};

pub(crate) use layout::Layout;
pub(crate) use pieces::Pieces;
pub(crate) use span::OutByte;

use crate::error::StorageError;
use hmac::{KeyInit, Mac};
use provider::AeadKey;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Plaintext bytes per chunk.
pub const CHUNK_LEN: usize = 16 * 1024;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Ciphertext bytes per full chunk.
pub const ENCRYPTED_CHUNK_LEN: usize = CHUNK_LEN + TAG_LEN;
/// Salt length.
pub const SALT_LEN: usize = 24;
/// Commitment length.
pub const COMMITMENT_LEN: usize = 32;
/// Salt plus commitment.
pub const HEADER_LEN: usize = SALT_LEN + COMMITMENT_LEN;
/// Input key length.
pub const KEY_LEN: usize = 32;
/// The specification's chunk limit (4 PiB of plaintext).
pub const MAX_CHUNKS: u64 = 1 << 38;

const NONCE_LEN: usize = 12;
const INFO_PREFIX: &[u8] = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\0";
/// Below this many chunks, one-shot calls stay on the calling thread.
const PARALLEL_MIN_CHUNKS: usize = 16;

/// Cobblestone-256 over a [`CryptoProvider`].
#[derive(Debug, Clone, Copy)]
pub struct Cobblestone {
    provider: &'static CryptoProvider,
    max_threads: usize,
}

impl Default for Cobblestone {
    fn default() -> Self {
        Cobblestone::new(CryptoProvider::default())
    }
}

/// The per-message keys derived from the input key, salt and context (crate-internal).
pub(crate) struct MessageKeys {
    aead: Box<dyn AeadKey>,
    base_nonce: [u8; NONCE_LEN],
}

impl MessageKeys {
    fn nonce(&self, chunk: u64) -> [u8; NONCE_LEN] {
        let mut nonce = self.base_nonce;
        for (n, c) in nonce[NONCE_LEN - 8..].iter_mut().zip(chunk.to_be_bytes()) {
            *n ^= c;
        }
        nonce
    }

    /// Seals one chunk slot: `slot` holds the plaintext followed by `TAG_LEN` bytes of room.
    fn seal_slot(&self, chunk: u64, slot: &mut [u8]) {
        let (body, tag) = slot.split_at_mut(slot.len() - TAG_LEN);
        tag.copy_from_slice(&self.aead.seal_in_place(&self.nonce(chunk), &[], body));
    }

    /// Opens chunk `chunk` from `ciphertext` (body ‖ tag) into `out` (`body.len()` bytes,
    /// which need not be initialized).
    fn open_into<B: OutByte>(
        &self,
        chunk: u64,
        ciphertext: &[u8],
        out: &mut [B],
    ) -> Result<(), StorageError> {
        let split = ciphertext.len() - TAG_LEN;
        let (body, tag) = ciphertext.split_at(split);
        let mut tag_bytes = [0u8; TAG_LEN];
        tag_bytes.copy_from_slice(tag);
        let (out, result) = B::open(&*self.aead, &self.nonce(chunk), body, &tag_bytes, out);
        result.map_err(|_| {
            out.fill(0);
            StorageError::Integrity(format!(
                "chunk {chunk} failed authentication: the ciphertext was modified, \
                     truncated, extended or reordered"
            ))
        })
    }
}

/// HKDF-Expand with SHA-512 (RFC 5869 §2.3), for the 76 bytes Cobblestone-256 needs.
fn hkdf_expand_sha512(prk: &[u8], info: &[&[u8]], out: &mut [u8]) {
    type HmacSha512 = hmac::Hmac<sha2::Sha512>;
    let mut previous: Option<Zeroizing<[u8; 64]>> = None;
    for (i, block) in out.chunks_mut(64).enumerate() {
        // HMAC accepts keys of any length.
        let mut mac = <HmacSha512 as KeyInit>::new_from_slice(prk)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        if let Some(t) = &previous {
            mac.update(&t[..]);
        }
        for part in info {
            mac.update(part);
        }
        mac.update(&[(i + 1) as u8]);
        let t = Zeroizing::new(<[u8; 64]>::from(mac.finalize().into_bytes()));
        block.copy_from_slice(&t[..block.len()]);
        previous = Some(t);
    }
}

impl Cobblestone {
    /// Cobblestone-256 over `provider`, using up to every available core for large one-shot
    /// calls.
    pub fn new(provider: &'static CryptoProvider) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Cobblestone {
            provider,
            max_threads: cores,
        }
    }

    /// Limits one-shot calls to `threads` threads (1: never leave the calling thread).
    pub fn with_max_threads(mut self, threads: usize) -> Self {
        self.max_threads = threads.max(1);
        self
    }

    /// The provider in use.
    pub fn provider(&self) -> &'static CryptoProvider {
        self.provider
    }

    fn check_key(key: &[u8]) -> Result<&[u8; KEY_LEN], StorageError> {
        key.try_into()
            .map_err(|_| StorageError::InvalidKeySize(key.len()))
    }

    /// Derives the message keys and the commitment for `salt` and `context`.
    fn derive(
        &self,
        key: &[u8; KEY_LEN],
        salt: &[u8; SALT_LEN],
        context: &[u8],
    ) -> (MessageKeys, [u8; COMMITMENT_LEN]) {
        let mut okm = Zeroizing::new([0u8; KEY_LEN + NONCE_LEN + COMMITMENT_LEN]);
        hkdf_expand_sha512(key, &[INFO_PREFIX, salt, context], &mut okm[..]);
        let mut aead_key = Zeroizing::new([0u8; KEY_LEN]);
        aead_key.copy_from_slice(&okm[..KEY_LEN]);
        let mut base_nonce = [0u8; NONCE_LEN];
        base_nonce.copy_from_slice(&okm[KEY_LEN..KEY_LEN + NONCE_LEN]);
        let mut commitment = [0u8; COMMITMENT_LEN];
        commitment.copy_from_slice(&okm[KEY_LEN + NONCE_LEN..]);
        let keys = MessageKeys {
            aead: self.provider.aes_256_gcm.key(&aead_key),
            base_nonce,
        };
        (keys, commitment)
    }

    /// Starts a message: a fresh random salt, the derived keys, and the 56-byte header.
    pub(crate) fn begin(
        &self,
        key: &[u8],
        context: &[u8],
        salt: Option<[u8; SALT_LEN]>,
    ) -> Result<(MessageKeys, [u8; HEADER_LEN]), StorageError> {
        let key = Self::check_key(key)?;
        let salt = match salt {
            Some(s) => s,
            None => {
                let mut s = [0u8; SALT_LEN];
                getrandom::fill(&mut s).map_err(|e| {
                    StorageError::Io(std::io::Error::other(format!(
                        "the operating system's random number generator failed: {e}"
                    )))
                })?;
                s
            }
        };
        let (keys, commitment) = self.derive(key, &salt, context);
        let mut header = [0u8; HEADER_LEN];
        header[..SALT_LEN].copy_from_slice(&salt);
        header[SALT_LEN..].copy_from_slice(&commitment);
        Ok((keys, header))
    }

    /// Checks a message header against `key` and `context`, in constant time, before any
    /// chunk is touched; returns the message keys.
    pub(crate) fn verify_header(
        &self,
        key: &[u8],
        context: &[u8],
        header: &[u8],
    ) -> Result<MessageKeys, StorageError> {
        let key = Self::check_key(key)?;
        let header: &[u8; HEADER_LEN] = header.try_into().map_err(|_| {
            StorageError::Integrity(format!(
                "ciphertext is {} bytes, shorter than the {HEADER_LEN}-byte header",
                header.len()
            ))
        })?;
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&header[..SALT_LEN]);
        let (keys, commitment) = self.derive(key, &salt, context);
        if !bool::from(commitment.ct_eq(&header[SALT_LEN..])) {
            return Err(StorageError::Integrity(
                "key commitment mismatch: wrong key or context, or a modified header".into(),
            ));
        }
        Ok(keys)
    }

    /// Encrypts `plaintext` under `key` (32 bytes) bound to `context`.
    pub fn seal(
        &self,
        key: &[u8],
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, StorageError> {
        self.seal_inner(key, plaintext, context, None)
    }

    /// Like [`seal`](Self::seal) with a caller-chosen salt. **Hazmat**: a salt must never
    /// repeat for the same key; this exists to check the implementation against published
    /// vectors byte for byte.
    #[doc(hidden)]
    pub fn seal_with_salt(
        &self,
        key: &[u8],
        plaintext: &[u8],
        context: &[u8],
        salt: [u8; SALT_LEN],
    ) -> Result<Vec<u8>, StorageError> {
        self.seal_inner(key, plaintext, context, Some(salt))
    }

    /// The length of the message that encrypts `plaintext_len` bytes; `InvalidInput` beyond
    /// Cobblestone's 4 PiB.
    pub fn sealed_len(plaintext_len: usize) -> Result<usize, StorageError> {
        let layout = Layout::for_plaintext(plaintext_len as u64)?;
        usize::try_from(layout.ciphertext_len)
            .map_err(|_| StorageError::invalid("message", "too long for this platform"))
    }

    /// The plaintext length a message of `ciphertext_len` bytes carries (authenticated only
    /// by opening it); `Integrity` for a length no message has.
    pub fn opened_len(ciphertext_len: usize) -> Result<usize, StorageError> {
        Ok(Layout::of(ciphertext_len as u64)?.plaintext_len as usize)
    }

    /// Like [`seal`](Self::seal), writing the message into `out[..n]` and returning `n`
    /// ([`sealed_len`](Self::sealed_len)); `InvalidInput` if `out` is shorter. No allocation
    /// as large as the message.
    pub fn seal_into(
        &self,
        key: &[u8],
        plaintext: &[u8],
        context: &[u8],
        out: &mut [u8],
    ) -> Result<usize, StorageError> {
        let n = Self::sealed_len(plaintext.len())?;
        let out = sized(out, n, "the output buffer for the sealed message")?;
        self.seal_to(key, plaintext, context, None, out)?;
        Ok(n)
    }

    /// Like [`open`](Self::open), writing the plaintext into `out[..n]` and returning `n`
    /// ([`opened_len`](Self::opened_len)); `InvalidInput` if `out` is shorter. If any part of
    /// the message fails to authenticate, `out[..n]` is zeroed before the error is returned:
    /// no unauthenticated plaintext is left behind.
    pub fn open_into(
        &self,
        key: &[u8],
        ciphertext: &[u8],
        context: &[u8],
        out: &mut [u8],
    ) -> Result<usize, StorageError> {
        let n = Self::opened_len(ciphertext.len())?;
        let out = sized(out, n, "the output buffer for the plaintext")?;
        let keys = self.verify_header(key, context, &ciphertext[..HEADER_LEN])?;
        if let Err(e) = self.open_to(&keys, ciphertext, out) {
            out.fill(0);
            return Err(e);
        }
        Ok(n)
    }

    fn seal_inner(
        &self,
        key: &[u8],
        plaintext: &[u8],
        context: &[u8],
        salt: Option<[u8; SALT_LEN]>,
    ) -> Result<Vec<u8>, StorageError> {
        let mut out = vec![0u8; Self::sealed_len(plaintext.len())?];
        self.seal_to(key, plaintext, context, salt, &mut out)?;
        Ok(out)
    }

    /// Seals into `out`, exactly [`sealed_len`](Self::sealed_len) bytes.
    fn seal_to(
        &self,
        key: &[u8],
        plaintext: &[u8],
        context: &[u8],
        salt: Option<[u8; SALT_LEN]>,
        out: &mut [u8],
    ) -> Result<(), StorageError> {
        let (keys, header) = self.begin(key, context, salt)?;
        out[..HEADER_LEN].copy_from_slice(&header);
        // Each worker copies its chunks into their slots and seals them in place, so the copy
        // (and the first touch of the fresh pages) is spread over the threads too.
        let slots: Vec<&mut [u8]> = out[HEADER_LEN..].chunks_mut(ENCRYPTED_CHUNK_LEN).collect();
        self.for_each_parallel(slots, |k, slot| {
            let start = k * CHUNK_LEN;
            let body = slot.len() - TAG_LEN;
            slot[..body].copy_from_slice(&plaintext[start..start + body]);
            keys.seal_slot(k as u64, slot);
            Ok(())
        })
    }

    /// Decrypts a whole message; fails with `Integrity` if any part of it does not
    /// authenticate, and then releases no plaintext at all.
    pub fn open(
        &self,
        key: &[u8],
        ciphertext: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, StorageError> {
        let n = Self::opened_len(ciphertext.len())?;
        let keys = self.verify_header(key, context, &ciphertext[..HEADER_LEN])?;
        let mut out = vec![0u8; n];
        self.open_to(&keys, ciphertext, &mut out)?;
        Ok(out)
    }

    /// Opens every chunk of `ciphertext` (whose header `keys` came from) into `out`,
    /// exactly its plaintext length.
    fn open_to(
        &self,
        keys: &MessageKeys,
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<(), StorageError> {
        let full = out.len().is_multiple_of(CHUNK_LEN);
        let mut slots: Vec<&mut [u8]> = out.chunks_mut(CHUNK_LEN).collect();
        if full {
            slots.push(&mut []); // the empty final chunk
        }
        let body = &ciphertext[HEADER_LEN..];
        self.for_each_parallel(slots, |k, slot| {
            let start = k * ENCRYPTED_CHUNK_LEN;
            keys.open_into(k as u64, &body[start..start + slot.len() + TAG_LEN], slot)
        })
    }

    /// Runs `f(index, slot)` over every slot, spread over up to `max_threads` scoped threads
    /// when there are enough slots to make it worthwhile. Stops at the first error.
    fn for_each_parallel<T, F>(&self, mut slots: Vec<T>, f: F) -> Result<(), StorageError>
    where
        T: Send,
        F: Fn(usize, &mut T) -> Result<(), StorageError> + Sync,
    {
        let threads = self
            .max_threads
            .min(slots.len() / (PARALLEL_MIN_CHUNKS / 2).max(1))
            .max(1);
        if threads == 1 || slots.len() < PARALLEL_MIN_CHUNKS {
            return slots
                .iter_mut()
                .enumerate()
                .try_for_each(|(k, slot)| f(k, slot));
        }
        let per_thread = slots.len().div_ceil(threads);
        let f = &f;
        let run = move |t: usize, group: &mut [T]| {
            group
                .iter_mut()
                .enumerate()
                .try_for_each(|(i, slot)| f(t * per_thread + i, slot))
        };
        std::thread::scope(|scope| {
            // The calling thread takes the first group itself: one thread fewer to start.
            let mut groups = slots.chunks_mut(per_thread).enumerate();
            let mine = groups.next();
            let handles: Vec<_> = groups
                .map(|(t, group)| scope.spawn(move || run(t, group)))
                .collect();
            let own = mine.map_or(Ok(()), |(t, group)| run(t, group));
            // The scope joins every thread before returning, error or not.
            let others = handles.into_iter().try_for_each(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            });
            own.and(others)
        })
    }
}

/// `out[..n]`, or `InvalidInput` naming `what` when `out` is shorter.
fn sized<'a>(
    out: &'a mut [u8],
    n: usize,
    what: &'static str,
) -> Result<&'a mut [u8], StorageError> {
    let len = out.len();
    out.get_mut(..n)
        .ok_or_else(|| StorageError::invalid(what, format!("{len} bytes, {n} are needed")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `seal_into` / `open_into` agree with `seal` / `open` at every shape of message (empty,
    /// chunk boundaries, enough chunks to go parallel), write only `n` bytes of a larger
    /// buffer, refuse a short one, and zero the plaintext they wrote when a later chunk fails.
    #[test]
    fn into_variants_round_trip_and_leave_nothing_behind() {
        let c = Cobblestone::default();
        let key = [9u8; KEY_LEN];
        for len in [
            0,
            1,
            CHUNK_LEN - 1,
            CHUNK_LEN,
            CHUNK_LEN + 1,
            5 * CHUNK_LEN,
            70 * CHUNK_LEN + 3,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let n = Cobblestone::sealed_len(len).unwrap();
            let mut sealed = vec![0xEEu8; n + 5];
            assert_eq!(c.seal_into(&key, &plain, b"ctx", &mut sealed).unwrap(), n);
            assert_eq!(&sealed[n..], &[0xEE; 5], "nothing past the message");
            assert_eq!(c.open(&key, &sealed[..n], b"ctx").unwrap(), plain);
            assert_eq!(Cobblestone::opened_len(n).unwrap(), len);
            let mut opened = vec![0xAAu8; len + 3];
            assert_eq!(
                c.open_into(&key, &sealed[..n], b"ctx", &mut opened)
                    .unwrap(),
                len
            );
            assert_eq!(&opened[..len], &plain[..]);
            assert_eq!(&opened[len..], &[0xAA; 3]);
            // Short buffers are refused, naming the sizes.
            let err = c
                .seal_into(&key, &plain, b"ctx", &mut vec![0; n - 1])
                .unwrap_err();
            assert!(matches!(err, StorageError::InvalidInput { .. }), "{err}");
            assert!(
                err.to_string().contains(&format!("{n} are needed")),
                "{err}"
            );
            if len > 0 {
                let err = c
                    .open_into(&key, &sealed[..n], b"ctx", &mut vec![0; len - 1])
                    .unwrap_err();
                assert!(matches!(err, StorageError::InvalidInput { .. }), "{err}");
            }
            // The last chunk damaged: every chunk before it opened into `out` first; all of
            // it is zeroed.
            let mut damaged = sealed[..n].to_vec();
            damaged[n - 1] ^= 1;
            let mut out = vec![0xAAu8; len + 3];
            let err = c.open_into(&key, &damaged, b"ctx", &mut out).unwrap_err();
            assert!(matches!(err, StorageError::Integrity(_)), "{err}");
            assert!(
                out[..len].iter().all(|&b| b == 0),
                "len {len}: plaintext left behind"
            );
            assert_eq!(&out[len..], &[0xAA; 3]);
            // A wrong context fails before anything is written.
            let mut untouched = vec![0xAAu8; len];
            assert!(
                c.open_into(&key, &sealed[..n], b"other", &mut untouched)
                    .is_err()
            );
            assert!(untouched.iter().all(|&b| b == 0xAA));
        }
        assert!(Cobblestone::opened_len(HEADER_LEN).is_err());
    }

    #[test]
    fn counter_is_xored_big_endian_into_the_nonce() {
        let keys = MessageKeys {
            aead: CryptoProvider::rustcrypto().aes_256_gcm.key(&[0; 32]),
            base_nonce: [0xAA; 12],
        };
        assert_eq!(keys.nonce(0), [0xAA; 12]);
        let n = keys.nonce(0x1_0000_0001);
        assert_eq!(&n[..7], &[0xAA; 7]);
        assert_eq!(&n[7..], &[0xAB, 0xAA, 0xAA, 0xAA, 0xAB]);
    }
}
