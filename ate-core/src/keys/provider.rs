//! Where the master key comes from: [`KeyProvider`].

use super::envelope::{self, WrappedKey};
use super::secret::{SecretBytes, SecretKey};
use crate::error::CoreError;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The largest secret ATE asks a [`KeyProvider`] to wrap, and so the least every provider
/// must accept: data keys are 32 bytes, signing keys at most an RSA-4096 private key in
/// PKCS#8 (about 2.4 KiB).
pub const MIN_SECRET_CAPACITY: usize = 4096;

/// The longest context every [`KeyProvider`] must bind. ATE's contexts are a short label
/// plus ids (`ate.tenant-key.v1 ‖ tenant ‖ version`, `ate.jwt-signing-key.v1 ‖ kid`).
pub const MIN_CONTEXT_CAPACITY: usize = 1024;

/// Wraps and unwraps data keys under a master key.
///
/// ATE never needs the master key itself, only these two operations, so a host can keep the
/// master key in an HSM or a cloud KMS (Vault transit, AWS KMS with an encryption context)
/// by implementing this trait; [`LocalKeyProvider`] holds it in memory for the embedded
/// setup.
///
/// # Contract
///
/// ATE relies on every implementation behaving as follows (the errors are [`CoreError`]s,
/// judged by their [`kind`](crate::Classify::kind)):
///
/// * **Round trip.** `unwrap(&wrap(secret, context)?, context)` returns exactly `secret`,
///   for every secret of 1 to [`MIN_SECRET_CAPACITY`] bytes and every context of 0 to
///   [`MIN_CONTEXT_CAPACITY`] arbitrary bytes (not necessarily UTF-8; the empty context is
///   a context like any other). The methods take `&self` and are called from many tasks at
///   once.
/// * **Key ids.** [`key_id`](KeyProvider::key_id) is not empty and names the master key new
///   wraps use; every [`WrappedKey`] records the `key_id` it was made with. The id changes
///   when, and only when, the master key is rotated, so a rotation can rewrap exactly the
///   keys still under an old master key.
/// * **Confidentiality.** The wrapped bytes do not contain the secret, and two wraps of the
///   same secret under the same context differ (equal ciphertexts would reveal equal keys).
/// * **Context binding.** `unwrap` with any context other than the one given to `wrap`
///   (another, a prefix, an extension, the empty one) fails with
///   [`Integrity`](crate::ErrorKind::Integrity).
/// * **Tamper evidence.** A wrapped key whose ciphertext was modified, truncated (to any
///   length, empty included) or extended, or whose `key_id` was changed to another master
///   key the provider knows, fails with `Integrity`: never `Ok`, never another kind. A
///   malformed envelope is damaged stored data, not bad caller input.
/// * **Rotation and unknown keys.** A provider configured with retired master keys unwraps
///   what they wrapped (context binding and tamper evidence hold for them too). `unwrap` of
///   a key wrapped under a master key the provider does not know fails with
///   [`NotFound`](crate::ErrorKind::NotFound), and the message names that key id, so an
///   operator knows which key to restore.
/// * **Input limits.** An empty secret fails with
///   [`InvalidInput`](crate::ErrorKind::InvalidInput). A secret longer than
///   [`MIN_SECRET_CAPACITY`] (or a context longer than [`MIN_CONTEXT_CAPACITY`]) either
///   works like any other or fails with `InvalidInput`; it is never wrapped in part.
/// * **Data keys.** [`unwrap_key`](KeyProvider::unwrap_key) of a secret that is not 256 bits
///   fails with `Integrity` (the provided method does this; an override must too).
/// * **Outages.** When the key service cannot be reached or times out, the error is
///   [`Unavailable`](crate::ErrorKind::Unavailable) (retryable), never `Integrity` or
///   `NotFound`, which would tell an operator that data is lost.
///
/// # Conformance suite
///
/// The workspace's `tests` crate checks this contract, one `pub async fn` per clause, in
/// `tests/src/key_provider.rs`: `tests::key_provider::every_case(&provider)` runs all the
/// single-provider cases, and `rotation_keeps_retired_keys_readable(&before, &after)` and
/// `unknown_master_keys_are_not_found(&before, &stranger)` take a provider before and after
/// a master-key rotation, and one that shares no key with it. `tests/tests/key_provider.rs`
/// runs them against [`LocalKeyProvider`] and against a KMS stand-in that wraps in a
/// separate process over a line protocol (`tests/src/bin/test-kms.rs`). To check your own
/// provider, call the same functions from a `#[tokio::test]` (inside this workspace, or
/// with `tests` as a git dependency; shown as text, since ate-core cannot depend on
/// `tests`):
///
/// ```text
/// #[tokio::test]
/// async fn my_kms_meets_the_key_provider_contract() {
///     let kms = MyKmsProvider::connect(test_config()).await.unwrap();
///     tests::key_provider::every_case(&kms).await;
/// }
/// ```
///
/// Run it with `cargo test -p tests --test key_provider`.
#[async_trait::async_trait]
pub trait KeyProvider: Send + Sync + std::fmt::Debug {
    /// Id of the master key that [`wrap`](KeyProvider::wrap) uses now.
    fn key_id(&self) -> &str;

    /// Encrypts `secret` under the current master key, bound to `context`.
    async fn wrap(&self, secret: &[u8], context: &[u8]) -> Result<WrappedKey, CoreError>;

    /// Decrypts a wrapped secret with the master key it names.
    async fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<SecretBytes, CoreError>;

    /// Wraps a 256-bit data key.
    async fn wrap_key(&self, key: &SecretKey, context: &[u8]) -> Result<WrappedKey, CoreError> {
        self.wrap(key.expose_secret(), context).await
    }

    /// Unwraps a 256-bit data key.
    async fn unwrap_key(
        &self,
        wrapped: &WrappedKey,
        context: &[u8],
    ) -> Result<SecretKey, CoreError> {
        let bytes = self.unwrap(wrapped, context).await?;
        SecretKey::from_slice(bytes.expose_secret()).map_err(|_| {
            CoreError::Integrity(format!(
                "unwrapped secret is {} bytes, not a 256-bit key",
                bytes.len()
            ))
        })
    }
}

/// A master key held in process memory, loaded from an environment variable, a file, or
/// given directly; optionally with retired master keys kept for unwrapping only.
///
/// Accepted encodings (surrounding whitespace ignored): 64 hex digits, or base64 (standard
/// or URL-safe, padded or not) of 32 bytes; a file may also hold the 32 raw bytes.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use ate_core::keys::{KeyProvider, LocalKeyProvider, SecretKey};
///
/// let provider = LocalKeyProvider::new(SecretKey::generate()?);
/// let data_key = SecretKey::generate()?;
/// let wrapped = provider.wrap_key(&data_key, b"tenant:acme/v1").await?;
/// assert_eq!(provider.unwrap_key(&wrapped, b"tenant:acme/v1").await?, data_key);
/// assert!(provider.unwrap_key(&wrapped, b"tenant:evil/v1").await.is_err());
/// # Ok::<(), ate_core::CoreError>(()) }).unwrap();
/// ```
pub struct LocalKeyProvider {
    current: (String, SecretKey),
    retired: Vec<(String, SecretKey)>,
}

impl std::fmt::Debug for LocalKeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKeyProvider")
            .field("key_id", &self.current.0)
            .field(
                "retired_key_ids",
                &self
                    .retired
                    .iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A public, stable id for a master key: a truncated hash, which reveals nothing usable
/// about a 256-bit key but lets operators tell keys apart.
fn local_key_id(key: &SecretKey) -> String {
    let mut h = Sha256::new();
    h.update(b"ate.master-key-id.v1\0");
    h.update(key.expose_secret());
    format!("local:{}", hex::encode(&h.finalize()[..8]))
}

/// Decodes a textual master key (hex or base64) into 32 bytes.
fn decode_text_key(text: &str, source: &str) -> Result<SecretKey, CoreError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(CoreError::invalid(
            "master key",
            format!("{source} is empty"),
        ));
    }
    let decoded: Option<Vec<u8>> =
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            use base64::engine::general_purpose::{
                STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
            };
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(text).ok())
        };
    let bytes = zeroize::Zeroizing::new(decoded.ok_or_else(|| {
        CoreError::invalid(
            "master key",
            format!("{source} is neither 64 hex digits nor base64"),
        )
    })?);
    SecretKey::from_slice(&bytes).map_err(|_| {
        CoreError::invalid(
            "master key",
            format!(
                "{source} decodes to {} bytes; a master key is {} bytes (256 bits)",
                bytes.len(),
                SecretKey::LEN
            ),
        )
    })
}

impl LocalKeyProvider {
    /// Uses `key` as the current master key.
    pub fn new(key: SecretKey) -> Self {
        LocalKeyProvider {
            current: (local_key_id(&key), key),
            retired: Vec::new(),
        }
    }

    /// Reads the master key from environment variable `var` (read once, here).
    pub fn from_env(var: &str) -> Result<Self, CoreError> {
        let value = zeroize::Zeroizing::new(std::env::var(var).map_err(|e| {
            CoreError::invalid(
                "master key",
                match e {
                    std::env::VarError::NotPresent => {
                        format!("environment variable {var} is not set")
                    }
                    std::env::VarError::NotUnicode(_) => {
                        format!("environment variable {var} is not valid UTF-8")
                    }
                },
            )
        })?);
        Ok(Self::new(decode_text_key(
            &value,
            &format!("environment variable {var}"),
        )?))
    }

    /// Reads the master key from a file, which must not be accessible to group or others
    /// (like an SSH private key): `chmod 600`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, CoreError> {
        let path = path.as_ref();
        let shown = path.display();
        let read_err = |e: std::io::Error| {
            CoreError::invalid("master key", format!("cannot read key file {shown}: {e}"))
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        check_private(path, &meta)?;
        let raw = zeroize::Zeroizing::new(std::fs::read(path).map_err(read_err)?);
        if raw.len() == SecretKey::LEN {
            return Ok(Self::new(SecretKey::from_slice(&raw)?));
        }
        let text = std::str::from_utf8(&raw).map_err(|_| {
            CoreError::invalid(
                "master key",
                format!(
                    "key file {shown} holds {} bytes that are not text; expected 32 raw bytes, hex or base64",
                    raw.len()
                ),
            )
        })?;
        Ok(Self::new(decode_text_key(
            text,
            &format!("key file {shown}"),
        )?))
    }

    /// For development: loads the key file at `path`, creating it with a fresh random key
    /// (mode 600) if it does not exist. Production hosts should provision keys explicitly.
    pub fn load_or_create_file(path: impl AsRef<Path>) -> Result<Self, CoreError> {
        let path = path.as_ref();
        match create_key_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(CoreError::invalid(
                    "master key",
                    format!("cannot create key file {}: {e}", path.display()),
                ));
            }
        }
        Self::from_file(path)
    }

    /// Keeps `key` for unwrapping secrets wrapped before a master-key rotation.
    pub fn with_retired(mut self, key: SecretKey) -> Self {
        let id = local_key_id(&key);
        if id != self.current.0 && !self.retired.iter().any(|(r, _)| *r == id) {
            self.retired.push((id, key));
        }
        self
    }

    /// Keeps every key of `old` (its current and retired ones) for unwrapping, as after a
    /// master-key rotation away from `old`.
    pub fn with_retired_from(mut self, old: LocalKeyProvider) -> Self {
        let LocalKeyProvider { current, retired } = old;
        for (_, key) in std::iter::once(current).chain(retired) {
            self = self.with_retired(key);
        }
        self
    }

    fn key_for(&self, id: &str) -> Result<&SecretKey, CoreError> {
        if self.current.0 == id {
            return Ok(&self.current.1);
        }
        self.retired
            .iter()
            .find(|(r, _)| r == id)
            .map(|(_, k)| k)
            .ok_or_else(|| {
                CoreError::not_found(
                    "master key",
                    format!("{id} (configure it as a retired key to unwrap keys wrapped under it)"),
                )
            })
    }
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<(), CoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(CoreError::invalid(
            "master key",
            format!(
                "key file {} is accessible to other users (mode {:o}); run chmod 600 on it",
                path.display(),
                mode & 0o777
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), CoreError> {
    Ok(())
}

fn create_key_file(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let key = SecretKey::generate().map_err(std::io::Error::other)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let encoded = zeroize::Zeroizing::new(hex::encode(key.expose_secret()));
    file.write_all(encoded.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[async_trait::async_trait]
impl KeyProvider for LocalKeyProvider {
    fn key_id(&self) -> &str {
        &self.current.0
    }

    async fn wrap(&self, secret: &[u8], context: &[u8]) -> Result<WrappedKey, CoreError> {
        envelope::seal(&self.current.1, &self.current.0, secret, context)
    }

    async fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<SecretBytes, CoreError> {
        let key = self.key_for(&wrapped.key_id)?;
        // A malformed envelope (too short, unknown version) is damaged stored data: the
        // trait's contract makes every damaged wrapped key an `Integrity` failure.
        envelope::open(key, wrapped, context).map_err(|e| match e {
            CoreError::InvalidInput { reason, .. } => CoreError::Integrity(format!(
                "wrapped key under master key {}: {reason}",
                wrapped.key_id
            )),
            other => other,
        })
    }
}

/// Where a [`LocalKeyProvider`] got its key, for configuration structs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MasterKeySource {
    /// An environment variable.
    Env(String),
    /// A key file.
    File(PathBuf),
}

impl MasterKeySource {
    /// Loads the provider.
    pub fn load(&self) -> Result<LocalKeyProvider, CoreError> {
        match self {
            MasterKeySource::Env(var) => LocalKeyProvider::from_env(var),
            MasterKeySource::File(path) => LocalKeyProvider::from_file(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorKind};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn write_private(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        path
    }

    #[test]
    fn every_text_encoding_decodes_to_the_same_key() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let raw = [0xFBu8; 32];
        let want = SecretKey::from_bytes(raw);
        for text in [
            hex::encode(raw),
            hex::encode_upper(raw),
            STANDARD.encode(raw),
            URL_SAFE_NO_PAD.encode(raw),
            format!("  {}\n", STANDARD.encode(raw)),
        ] {
            assert_eq!(decode_text_key(&text, "test").unwrap(), want, "{text}");
        }
    }

    #[test]
    fn wrong_length_master_keys_are_rejected() {
        use base64::engine::general_purpose::STANDARD;
        for n in [0usize, 1, 16, 31, 33, 48, 64] {
            let text = STANDARD.encode(vec![1u8; n]);
            let err = decode_text_key(&text, "ATE_MASTER_KEY").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            if n > 0 {
                assert!(
                    err.to_string().contains(&format!("decodes to {n} bytes")),
                    "{err}"
                );
            }
        }
        assert!(decode_text_key("not a key!", "x").is_err());
        assert!(decode_text_key(&"g".repeat(64), "x").is_err());
    }

    #[test]
    fn files_raw_or_text_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let raw = write_private(dir.path(), "raw.key", &[3u8; 32]);
        let text = write_private(dir.path(), "text.key", hex::encode([3u8; 32]).as_bytes());
        let a = LocalKeyProvider::from_file(&raw).unwrap();
        let b = LocalKeyProvider::from_file(&text).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        let short = write_private(dir.path(), "short.key", &[3u8; 16]);
        assert!(LocalKeyProvider::from_file(&short).is_err());
        let missing = LocalKeyProvider::from_file(dir.path().join("nope")).unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::InvalidInput);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&raw, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = LocalKeyProvider::from_file(&raw).unwrap_err();
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn load_or_create_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = LocalKeyProvider::load_or_create_file(&path).unwrap();
        let b = LocalKeyProvider::load_or_create_file(&path).unwrap();
        assert_eq!(a.key_id(), b.key_id());
    }

    #[test]
    fn env_provider_reports_unset_variable() {
        let err = LocalKeyProvider::from_env("ATE_TEST_SURELY_UNSET_VARIABLE_1234").unwrap_err();
        assert!(err.to_string().contains("is not set"), "{err}");
    }

    #[test]
    fn rotation_keeps_old_wraps_readable_and_names_unknown_keys() {
        rt().block_on(async {
            let old = SecretKey::generate().unwrap();
            let new = SecretKey::generate().unwrap();
            let before = LocalKeyProvider::new(old.clone());
            let wrapped = before.wrap(b"data key bytes", b"ctx").await.unwrap();

            let after = LocalKeyProvider::new(new.clone());
            let err = after.unwrap(&wrapped, b"ctx").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound);
            assert!(err.to_string().contains(before.key_id()), "{err}");

            let after = after.with_retired(old);
            let back = after.unwrap(&wrapped, b"ctx").await.unwrap();
            assert_eq!(back.expose_secret(), b"data key bytes");
            assert_ne!(after.key_id(), before.key_id());
            let rewrapped = after.wrap(back.expose_secret(), b"ctx").await.unwrap();
            assert_eq!(rewrapped.key_id, after.key_id());
        });
    }

    #[test]
    fn retiring_a_whole_provider_keeps_all_its_keys() {
        rt().block_on(async {
            let (k1, k2, k3) = (
                SecretKey::from_bytes([1; 32]),
                SecretKey::from_bytes([2; 32]),
                SecretKey::from_bytes([3; 32]),
            );
            let first = LocalKeyProvider::new(k1.clone());
            let under_k1 = first.wrap(b"one", b"c").await.unwrap();
            let second = LocalKeyProvider::new(k2.clone()).with_retired(k1.clone());
            let under_k2 = second.wrap(b"two", b"c").await.unwrap();
            // The third generation inherits the second's current and retired keys.
            let third = LocalKeyProvider::new(k3).with_retired_from(second);
            assert_eq!(
                third.unwrap(&under_k1, b"c").await.unwrap().expose_secret(),
                b"one"
            );
            assert_eq!(
                third.unwrap(&under_k2, b"c").await.unwrap().expose_secret(),
                b"two"
            );
            // Retiring the current key itself is a no-op, not a duplicate.
            let same =
                LocalKeyProvider::new(k2.clone()).with_retired_from(LocalKeyProvider::new(k2));
            assert!(same.retired.is_empty(), "{same:?}");
        });
    }

    #[test]
    fn damaged_envelopes_unwrap_as_integrity_failures() {
        rt().block_on(async {
            let p = LocalKeyProvider::new(SecretKey::from_bytes([4; 32]));
            let w = p.wrap(&[1; 32], b"ctx").await.unwrap();
            let mut versioned = w.clone();
            versioned.ciphertext[0] = 9;
            let mut short = w.clone();
            short.ciphertext.truncate(5);
            let mut empty = w;
            empty.ciphertext.clear();
            for damaged in [versioned, short, empty] {
                let err = p.unwrap(&damaged, b"ctx").await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
                assert!(err.to_string().contains(p.key_id()), "{err}");
            }
        });
    }

    #[test]
    fn debug_shows_ids_not_keys() {
        let key = SecretKey::from_bytes([0x5A; 32]);
        let p = LocalKeyProvider::new(key);
        let shown = format!("{p:?}");
        assert!(shown.contains("local:"));
        assert!(!shown.contains("5a5a"), "{shown}");
    }
}
