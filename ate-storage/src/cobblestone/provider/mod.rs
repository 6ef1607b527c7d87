//! Pluggable AES-256-GCM implementations, in the manner of rustls' `CryptoProvider`.
//!
//! Cobblestone only needs one primitive, AES-256-GCM with 96-bit nonces and 128-bit tags.
//! A [`CryptoProvider`] names an implementation of it; [`CryptoProvider::rustcrypto`] is always
//! available, [`CryptoProvider::ring`] (feature `ring`, on by default) is faster,
//! [`CryptoProvider::aws_lc`] (feature `aws-lc`, on by default) is faster still where the CPU
//! has VAES/AVX-512 and decrypts into a separate buffer in one pass, and
//! [`CryptoProvider::default`] picks the fastest one compiled in. Every provider must pass the
//! same test vectors (Wycheproof AES-GCM and Cobblestone); the test suite runs each of them.

#[cfg(feature = "aws-lc")]
mod aws_lc;
#[cfg(feature = "ring")]
mod ring;
mod rustcrypto;

use std::fmt;

/// An AES-GCM key was used with a nonce/tag that did not authenticate the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthenticationFailed;

/// A keyed AES-256-GCM instance.
///
/// Contract: `seal_in_place` encrypts `in_out` and returns the tag; `open_in_place` decrypts
/// `in_out` only if the tag authenticates it, and otherwise returns
/// [`AuthenticationFailed`] (the contents of `in_out` are then unspecified and must not be
/// used). Implementations zeroize or otherwise release key material when dropped.
pub trait AeadKey: Send + Sync {
    /// Encrypts in place and returns the 16-byte tag.
    fn seal_in_place(&self, nonce: &[u8; 12], aad: &[u8], in_out: &mut [u8]) -> [u8; 16];

    /// Decrypts in place after checking the tag.
    fn open_in_place(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), AuthenticationFailed>;

    /// Decrypts `ciphertext` into `out` (the same length) after checking the tag. The default
    /// copies and decrypts in place; a provider that reads one buffer and writes another in
    /// a single pass overrides it. On failure `out`'s contents are unspecified.
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
        out.copy_from_slice(ciphertext);
        self.open_in_place(nonce, aad, out, tag)
    }
}

/// An implementation of AES-256-GCM.
pub trait Aes256Gcm: Send + Sync + fmt::Debug {
    /// Prepares `key` for use.
    fn key(&self, key: &[u8; 32]) -> Box<dyn AeadKey>;
}

/// A named set of cryptographic implementations.
#[derive(Debug)]
#[non_exhaustive]
pub struct CryptoProvider {
    /// A short name for logs and benchmark labels (`rustcrypto`, `ring`, `aws-lc`).
    pub name: &'static str,
    /// The AES-256-GCM implementation.
    pub aes_256_gcm: &'static dyn Aes256Gcm,
}

static RUSTCRYPTO: CryptoProvider = CryptoProvider {
    name: "rustcrypto",
    aes_256_gcm: &rustcrypto::RustCryptoAes256Gcm,
};

#[cfg(feature = "ring")]
static RING: CryptoProvider = CryptoProvider {
    name: "ring",
    aes_256_gcm: &ring::RingAes256Gcm,
};

#[cfg(feature = "aws-lc")]
static AWS_LC: CryptoProvider = CryptoProvider {
    name: "aws-lc",
    aes_256_gcm: &aws_lc::AwsLcAes256Gcm,
};

impl CryptoProvider {
    /// RustCrypto's `aes-gcm` (pure Rust, AES-NI and CLMUL when the CPU has them).
    pub fn rustcrypto() -> &'static CryptoProvider {
        &RUSTCRYPTO
    }

    /// `ring`'s AES-GCM (assembly from BoringSSL).
    #[cfg(feature = "ring")]
    pub fn ring() -> &'static CryptoProvider {
        &RING
    }

    /// `aws-lc-rs`'s AES-GCM (assembly from AWS-LC).
    #[cfg(feature = "aws-lc")]
    pub fn aws_lc() -> &'static CryptoProvider {
        &AWS_LC
    }

    /// The fastest provider compiled in: `aws-lc`, else `ring`, else `rustcrypto`.
    #[allow(clippy::should_implement_trait)] // returns a shared static, not a new value
    pub fn default() -> &'static CryptoProvider {
        #[cfg(feature = "aws-lc")]
        {
            &AWS_LC
        }
        #[cfg(all(feature = "ring", not(feature = "aws-lc")))]
        {
            &RING
        }
        #[cfg(not(any(feature = "ring", feature = "aws-lc")))]
        {
            &RUSTCRYPTO
        }
    }

    /// Every provider compiled in (tests and benches run each).
    pub fn all() -> Vec<&'static CryptoProvider> {
        vec![
            &RUSTCRYPTO,
            #[cfg(feature = "ring")]
            &RING,
            #[cfg(feature = "aws-lc")]
            &AWS_LC,
        ]
    }
}
