//! The constructor's keywords (`ate.Ate(...)`, `ate.AsyncAte.open(...)`), checked and
//! converted before anything is opened: which domains to enable, the master key they wrap
//! their keys under, and the principal the process acts as.

use crate::convert::seconds;
use crate::error::Error;
use ate_auth::AuthConfig;
use ate_core::Principal;
use ate_core::keys::{KeyProvider, LocalKeyProvider, SecretKey};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::path::PathBuf;
use std::sync::Arc;

/// What the constructor's keyword arguments enable beyond tenants and the audit log:
/// storage, authentication, and the master key both of them wrap their keys under.
pub(crate) struct Options {
    pub(crate) storage_url: Option<String>,
    pub(crate) auth: Option<AuthConfig>,
    /// One set of keys for storage and auth, so a master-key rotation covers both.
    pub(crate) master: Option<MasterKeys>,
    /// How long storage keeps unwrapped data keys (`key_cache_seconds`).
    pub(crate) key_cache_ttl: std::time::Duration,
}

/// A master key as given: its bytes, or a key file not read yet.
enum KeySource {
    Raw(SecretKey),
    File(PathBuf),
}

impl KeySource {
    fn load(self) -> Result<LocalKeyProvider, Error> {
        match self {
            KeySource::Raw(key) => Ok(LocalKeyProvider::new(key)),
            KeySource::File(path) => Ok(LocalKeyProvider::from_file(path)?),
        }
    }
}

/// The current master key and the retired ones, checked but with key files not read yet:
/// [`MasterKeys::load`] reads them, on the runtime (`AsyncAte.open` must not read files on
/// the event loop's thread).
pub(crate) struct MasterKeys {
    current: KeySource,
    retired: Vec<KeySource>,
}

impl MasterKeys {
    /// The provider: the current key, able to unwrap under the retired ones. Reads key
    /// files (blocking I/O).
    pub(crate) fn load(self) -> Result<Arc<dyn KeyProvider>, Error> {
        let mut master = self.current.load()?;
        for old in self.retired {
            master = master.with_retired_from(old.load()?);
        }
        Ok(Arc::new(master))
    }
}

/// A master key argument: 32 raw bytes, or the path of a key file (`str` or `os.PathLike`;
/// raw, hex or base64, readable by its owner only).
fn master_key_from(value: &Bound<'_, PyAny>, what: &str) -> Result<KeySource, Error> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        let key = SecretKey::from_slice(bytes.as_bytes()).map_err(|_| {
            Error::invalid(format!(
                "{what} is {} bytes; a master key is 32 bytes (or the path of a key file)",
                bytes.as_bytes().len()
            ))
        })?;
        return Ok(KeySource::Raw(key));
    }
    let path: PathBuf = value.extract().map_err(|_| {
        Error::invalid(format!(
            "{what} must be 32 bytes or a key file path, not {}",
            value
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    Ok(KeySource::File(path))
}

/// The master keys from the constructor's arguments (key files are not read yet).
fn master_keys(
    master_key: &Bound<'_, PyAny>,
    retired_master_keys: Option<&Bound<'_, PyAny>>,
) -> Result<MasterKeys, Error> {
    let current = master_key_from(master_key, "master_key")?;
    let mut retired = Vec::new();
    if let Some(keys) = retired_master_keys {
        let items = keys
            .try_iter()
            .map_err(|_| Error::invalid("retired_master_keys must be a sequence"))?;
        for item in items {
            let item = item.map_err(|e| Error::invalid(format!("retired_master_keys: {e}")))?;
            retired.push(master_key_from(&item, "a retired master key")?);
        }
    }
    Ok(MasterKeys { current, retired })
}

impl Options {
    pub(crate) fn new(
        storage_url: Option<String>,
        master_key: Option<&Bound<'_, PyAny>>,
        retired_master_keys: Option<&Bound<'_, PyAny>>,
        auth: Option<AuthConfig>,
    ) -> Result<Self, Error> {
        let needs_master = storage_url.is_some() || auth.is_some();
        let master = match (master_key, needs_master) {
            (Some(key), true) => Some(master_keys(key, retired_master_keys)?),
            (None, false) if retired_master_keys.is_none() => None,
            (None, true) if storage_url.is_some() => {
                return Err(Error::invalid(
                    "storage_url needs master_key (32 bytes or a key file path)",
                ));
            }
            (None, true) => {
                return Err(Error::invalid(
                    "auth needs master_key (the token signing keys are wrapped under it): \
                     32 bytes or a key file path",
                ));
            }
            _ => {
                return Err(Error::invalid(
                    "master_key and retired_master_keys are only used with storage_url \
                     or auth_issuer/auth_audience",
                ));
            }
        };
        Ok(Options {
            storage_url,
            auth,
            master,
            key_cache_ttl: ate_storage::key_cache::DEFAULT_TTL,
        })
    }

    /// Sets how long storage keeps unwrapped tenant and project data keys
    /// (`key_cache_seconds`; 0 turns the cache off).
    pub(crate) fn key_cache_ttl(mut self, seconds_: f64) -> Result<Self, Error> {
        self.key_cache_ttl = seconds(seconds_, "key_cache_seconds")?;
        Ok(self)
    }
}

/// The auth configuration from the constructor's keywords; `None` when auth is not wanted.
///
/// `verify_cache_seconds` is `AuthConfig::verify_cache_ttl`: how long a verification may
/// trust a cached "user and session still active" answer (0 turns the cache off).
pub(crate) fn auth_config(
    issuer: Option<String>,
    audience: Option<String>,
    verify_cache_seconds: f64,
    insecure_fast_password_hashing: bool,
) -> Result<Option<AuthConfig>, Error> {
    let verify_cache_ttl = seconds(verify_cache_seconds, "auth_verify_cache_seconds")?;
    match (issuer, audience) {
        (Some(issuer), Some(audience)) => {
            let mut config = AuthConfig::new(issuer, audience);
            config.insecure_fast_hashing_for_tests = insecure_fast_password_hashing;
            config.verify_cache_ttl = verify_cache_ttl;
            Ok(Some(config))
        }
        (None, None) if insecure_fast_password_hashing => Err(Error::invalid(
            "insecure_fast_password_hashing is only used with auth_issuer and auth_audience",
        )),
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::invalid(
            "auth_issuer needs auth_audience (the audience of ATE's access tokens)",
        )),
        (None, Some(_)) => Err(Error::invalid(
            "auth_audience needs auth_issuer (the issuer of ATE's access tokens)",
        )),
    }
}

/// The Python process is the host: it acts as an explicit platform administrator whose
/// subject is recorded in every audit event it causes.
pub(crate) fn host_principal(actor: &str) -> Result<Principal, Error> {
    Ok(Principal::platform_admin(actor)?)
}
