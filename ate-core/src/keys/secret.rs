//! Secret values that wipe themselves and never print.

use crate::error::CoreError;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A 256-bit symmetric key: zeroized on drop, redacted in `Debug`, compared in constant time.
///
/// ```
/// use ate_core::keys::SecretKey;
///
/// let key = SecretKey::generate()?;
/// assert_eq!(format!("{key:?}"), "SecretKey([REDACTED])");
/// assert!(SecretKey::from_slice(&[0u8; 16]).is_err());
/// # Ok::<(), ate_core::CoreError>(())
/// ```
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; SecretKey::LEN]);

impl SecretKey {
    /// Key length in bytes.
    pub const LEN: usize = 32;

    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, CoreError> {
        let mut bytes = [0u8; Self::LEN];
        fill_random(&mut bytes)?;
        Ok(SecretKey(bytes))
    }

    /// Takes ownership of raw key bytes.
    pub fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        SecretKey(bytes)
    }

    /// Copies a key from a slice, which must be exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CoreError> {
        let array: [u8; Self::LEN] = bytes.try_into().map_err(|_| {
            CoreError::invalid(
                "key",
                format!("must be {} bytes, got {}", Self::LEN, bytes.len()),
            )
        })?;
        Ok(SecretKey(array))
    }

    /// The raw key bytes. Keep the borrow short and never log it.
    pub fn expose_secret(&self) -> &[u8; Self::LEN] {
        &self.0
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretKey {}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey([REDACTED])")
    }
}

/// Secret bytes of any length (an unwrapped private key, say): zeroized on drop, redacted
/// in `Debug`, compared in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    /// The secret bytes. Keep the borrow short and never log it.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretBytes {}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes([REDACTED; {}])", self.0.len())
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), CoreError> {
    getrandom::fill(buf).map_err(|e| CoreError::Unavailable {
        message: format!("the operating system's random number generator failed: {e}"),
        source: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = SecretKey::from_bytes([0xAB; 32]);
        let shown = format!("{key:?} {key:#?}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        let bytes = SecretBytes::new(vec![0xCD; 5]);
        assert_eq!(format!("{bytes:?}"), "SecretBytes([REDACTED; 5])");
    }

    #[test]
    fn wrong_lengths_are_rejected() {
        for n in [0, 16, 31, 33, 64] {
            let e = SecretKey::from_slice(&vec![1u8; n]).unwrap_err();
            assert!(e.to_string().contains(&format!("got {n}")), "{e}");
        }
        assert!(SecretKey::from_slice(&[1u8; 32]).is_ok());
    }

    #[test]
    fn generated_keys_differ_and_compare_by_value() {
        let a = SecretKey::generate().unwrap();
        let b = SecretKey::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a, a.clone());
    }

    #[test]
    fn zeroize_clears_the_bytes() {
        let mut key = SecretKey::from_bytes([7; 32]);
        key.zeroize();
        assert_eq!(key.expose_secret(), &[0; 32]);
    }
}
