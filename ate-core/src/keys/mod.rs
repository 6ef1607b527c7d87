//! Key material and envelope encryption.
//!
//! * [`SecretKey`] / [`SecretBytes`]: secrets that are zeroized on drop, redacted in `Debug`
//!   and compared in constant time.
//! * [`KeyProvider`]: wraps and unwraps data keys under the master key. [`LocalKeyProvider`]
//!   loads the master key from an environment variable or a file; a host can plug a KMS.
//! * [`envelope`]: the AES-256-GCM envelope format local providers use, binding a caller
//!   context (tenant, key version) so a wrapped key cannot be moved.
//!
//! * [`TenantSecrets`]: small secrets sealed under a tenant's keys (the storage keyring
//!   implements it; [`MasterKeySecrets`] without storage), e.g. integration credentials.
//!
//! Storage (tenant data keys) and auth (signing keys) both keep their secrets wrapped this way.

pub mod envelope;
mod provider;
mod secret;
pub mod tenant;

pub use envelope::WrappedKey;
pub use provider::{
    KeyProvider, LocalKeyProvider, MIN_CONTEXT_CAPACITY, MIN_SECRET_CAPACITY, MasterKeySource,
};
pub use secret::{SecretBytes, SecretKey};
pub use tenant::{MasterKeySecrets, TenantSecrets};
