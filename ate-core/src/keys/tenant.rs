//! [`TenantSecrets`]: small secrets (credentials, tokens) sealed under a tenant's own keys,
//! so that crates other than storage can keep secrets per tenant without knowing the
//! keyring. `ate-storage`'s tenant keyring implements it (its data keys, with crypto-
//! shredding: destroying a tenant's keys makes its sealed secrets unreadable);
//! [`MasterKeySecrets`] seals under the master key, bound to the tenant, for hosts without
//! storage.
//!
//! Sealed form: `key id (u16 length ‖ UTF-8) ‖ envelope` ([`super::envelope`] format,
//! AES-256-GCM), the envelope's associated data binding the tenant and the caller's
//! context, so a sealed secret moved to another tenant or another purpose fails to open
//! (`Integrity`).

use super::envelope::{self, WrappedKey};
use super::provider::KeyProvider;
use super::secret::SecretBytes;
use crate::error::CoreError;
use crate::id::TenantId;
use std::sync::Arc;

/// Seals and opens small per-tenant secrets. Implementations must bind the tenant and the
/// context: opening with another tenant or context fails with `Integrity`.
#[async_trait::async_trait]
pub trait TenantSecrets: Send + Sync + std::fmt::Debug {
    /// Seals `secret` (1 byte to 64 KiB) for `tenant`, bound to `context`.
    async fn seal(
        &self,
        tenant: TenantId,
        secret: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, CoreError>;

    /// Opens what [`seal`](Self::seal) made for the same tenant and context.
    async fn open(
        &self,
        tenant: TenantId,
        sealed: &[u8],
        context: &[u8],
    ) -> Result<SecretBytes, CoreError>;
}

/// The associated data of a tenant secret: a label, the tenant, the caller's context.
pub fn tenant_context(tenant: TenantId, context: &[u8]) -> Vec<u8> {
    let mut aad = b"ate.tenant-secret.v1\0".to_vec();
    aad.extend_from_slice(tenant.as_bytes());
    aad.extend_from_slice(context);
    aad
}

/// Encodes a wrapped secret as bytes: `u16 key id length ‖ key id ‖ ciphertext`.
pub fn encode_sealed(wrapped: &WrappedKey) -> Vec<u8> {
    let id = wrapped.key_id.as_bytes();
    let len = u16::try_from(id.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(2 + id.len() + wrapped.ciphertext.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&id[..usize::from(len)]);
    out.extend_from_slice(&wrapped.ciphertext);
    out
}

/// Reads back what [`encode_sealed`] wrote; `InvalidInput` for bytes that are not such.
pub fn decode_sealed(sealed: &[u8]) -> Result<WrappedKey, CoreError> {
    let bad = || CoreError::invalid("sealed secret", "is not a sealed secret");
    let (len, rest) = sealed.split_at_checked(2).ok_or_else(bad)?;
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    let (id, ciphertext) = rest.split_at_checked(len).ok_or_else(bad)?;
    let key_id = std::str::from_utf8(id).map_err(|_| bad())?.to_owned();
    Ok(WrappedKey {
        key_id,
        ciphertext: ciphertext.to_vec(),
    })
}

/// [`TenantSecrets`] under the master key ([`KeyProvider`]), bound to the tenant.
#[derive(Debug, Clone)]
pub struct MasterKeySecrets {
    master: Arc<dyn KeyProvider>,
}

impl MasterKeySecrets {
    /// Seals under `master`.
    pub fn new(master: Arc<dyn KeyProvider>) -> Self {
        MasterKeySecrets { master }
    }
}

#[async_trait::async_trait]
impl TenantSecrets for MasterKeySecrets {
    async fn seal(
        &self,
        tenant: TenantId,
        secret: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, CoreError> {
        let wrapped = self
            .master
            .wrap(secret, &tenant_context(tenant, context))
            .await?;
        Ok(encode_sealed(&wrapped))
    }

    async fn open(
        &self,
        tenant: TenantId,
        sealed: &[u8],
        context: &[u8],
    ) -> Result<SecretBytes, CoreError> {
        let wrapped = decode_sealed(sealed)?;
        self.master
            .unwrap(&wrapped, &tenant_context(tenant, context))
            .await
    }
}

/// Seals `secret` under a data key `key` named `key_id` (for keyrings implementing
/// [`TenantSecrets`] with their own keys).
pub fn seal_with(
    key: &super::SecretKey,
    key_id: &str,
    tenant: TenantId,
    secret: &[u8],
    context: &[u8],
) -> Result<Vec<u8>, CoreError> {
    let wrapped = envelope::seal(key, key_id, secret, &tenant_context(tenant, context))?;
    Ok(encode_sealed(&wrapped))
}

/// Opens what [`seal_with`] made, with the key the sealed bytes name (`key_for`).
pub fn open_with(
    key: &super::SecretKey,
    wrapped: &WrappedKey,
    tenant: TenantId,
    context: &[u8],
) -> Result<SecretBytes, CoreError> {
    envelope::open(key, wrapped, &tenant_context(tenant, context))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{LocalKeyProvider, SecretKey};

    #[tokio::test]
    async fn sealed_secrets_are_bound_to_tenant_and_context() {
        let secrets = MasterKeySecrets::new(Arc::new(LocalKeyProvider::new(
            SecretKey::generate().unwrap(),
        )));
        let (a, b) = (TenantId::new(), TenantId::new());
        let sealed = secrets.seal(a, b"s3cret", b"endpoint:crm").await.unwrap();
        assert!(
            !sealed.windows(6).any(|w| w == b"s3cret"),
            "not in the clear"
        );
        let opened = secrets.open(a, &sealed, b"endpoint:crm").await.unwrap();
        assert_eq!(opened.expose_secret(), b"s3cret");
        for (tenant, context) in [(b, &b"endpoint:crm"[..]), (a, &b"endpoint:erp"[..])] {
            let e = secrets.open(tenant, &sealed, context).await.unwrap_err();
            assert_eq!(crate::Classify::kind(&e), crate::ErrorKind::Integrity);
        }
        let mut flipped = sealed.clone();
        if let Some(last) = flipped.last_mut() {
            *last ^= 1;
        }
        assert!(secrets.open(a, &flipped, b"endpoint:crm").await.is_err());
        for junk in [
            &b""[..],
            &b"\x00"[..],
            &b"\xff\xff"[..],
            &b"\x00\x01\xff"[..],
        ] {
            assert!(secrets.open(a, junk, b"endpoint:crm").await.is_err());
        }
    }
}
