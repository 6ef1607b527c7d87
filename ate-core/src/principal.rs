//! Who is calling: [`Principal`] and [`Permission`].
//!
//! Every ATE operation is performed on behalf of a principal. A principal belongs to exactly
//! one tenant and carries the permissions its roles grant there; it can never act in another
//! tenant. The one exception is the **platform administrator**, which can only be created
//! explicitly with [`Principal::platform_admin`]: no role name (not even `"super_admin"`)
//! implies platform powers, so a mis-mapped role cannot escalate across tenants.

use crate::error::CoreError;
use crate::id::TenantId;
use std::collections::BTreeSet;
use std::fmt;

/// A named permission such as `tenant:read` or `audit:read`.
///
/// Permissions are `resource:action` strings of lowercase ASCII letters, digits, `_` and
/// `-`, at most 64 bytes. Crates declare the ones they check as constants.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Permission(std::borrow::Cow<'static, str>);

impl Permission {
    /// Read the tenant's own record.
    pub const TENANT_READ: Permission = Permission::from_static("tenant:read");
    /// Change the tenant's name and settings.
    pub const TENANT_UPDATE: Permission = Permission::from_static("tenant:update");
    /// Read the tenant's audit log and verify its chain.
    pub const AUDIT_READ: Permission = Permission::from_static("audit:read");
    /// Append events to the tenant's audit log.
    pub const AUDIT_WRITE: Permission = Permission::from_static("audit:write");

    /// A permission from a compile-time literal, which must follow the rules of
    /// [`Permission::new`] (the built-in constants are tested to); use [`Permission::new`]
    /// for anything that is not a literal.
    pub const fn from_static(s: &'static str) -> Self {
        Permission(std::borrow::Cow::Borrowed(s))
    }

    /// Parses and validates a permission name.
    pub fn new(s: impl Into<String>) -> Result<Self, CoreError> {
        let s = s.into();
        validate_permission(&s)?;
        Ok(Permission(std::borrow::Cow::Owned(s)))
    }

    /// The permission's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate_permission(s: &str) -> Result<(), CoreError> {
    const WHAT: &str = "permission";
    if s.is_empty() || s.len() > 64 {
        return Err(CoreError::invalid(
            WHAT,
            format!("must be 1 to 64 bytes, got {}", s.len()),
        ));
    }
    let Some((resource, action)) = s.split_once(':') else {
        return Err(CoreError::invalid(
            WHAT,
            format!("{s:?} must have the form resource:action"),
        ));
    };
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    if !part_ok(resource) || !part_ok(action) {
        return Err(CoreError::invalid(
            WHAT,
            format!("{s:?} may only use a-z, 0-9, '_' and '-' around a single ':'"),
        ));
    }
    Ok(())
}

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permission({})", self.0)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Permission {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        Permission::new(s)
    }
}

impl<'de> serde::Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Permission::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// An authenticated caller acting within one tenant.
///
/// ```
/// use ate_core::{Permission, Principal, TenantId};
///
/// let tenant = TenantId::new();
/// let alice = Principal::new(tenant, "user:alice")
///     .unwrap()
///     .role("admin")
///     .permission(Permission::AUDIT_READ);
/// assert!(alice.require(tenant, &Permission::AUDIT_READ).is_ok());
/// // A tenant-level "admin" is still confined to its tenant.
/// assert!(alice.require(TenantId::new(), &Permission::AUDIT_READ).is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    tenant: Option<TenantId>,
    subject: String,
    roles: BTreeSet<String>,
    permissions: BTreeSet<Permission>,
    platform_admin: bool,
}

impl Principal {
    /// A principal of `tenant` identified by `subject` (a user id, a service name), with no
    /// roles or permissions yet. The subject is 1 to 256 bytes with no control characters.
    pub fn new(tenant: TenantId, subject: impl Into<String>) -> Result<Self, CoreError> {
        let subject = validate_subject(subject.into())?;
        Ok(Principal {
            tenant: Some(tenant),
            subject,
            roles: BTreeSet::new(),
            permissions: BTreeSet::new(),
            platform_admin: false,
        })
    }

    /// A platform-level administrator: may act in every tenant and create tenants.
    ///
    /// This is the only way to obtain platform powers. Use it for the host's own
    /// maintenance jobs and for users the host has explicitly marked as super-admins.
    pub fn platform_admin(subject: impl Into<String>) -> Result<Self, CoreError> {
        let subject = validate_subject(subject.into())?;
        Ok(Principal {
            tenant: None,
            subject,
            roles: BTreeSet::new(),
            permissions: BTreeSet::new(),
            platform_admin: true,
        })
    }

    /// Adds a role name (informational: roles are mapped to permissions by `ate-auth`).
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.roles.insert(role.into());
        self
    }

    /// Grants a permission within the principal's tenant.
    pub fn permission(mut self, permission: Permission) -> Self {
        self.permissions.insert(permission);
        self
    }

    /// The tenant this principal acts in; `None` for a platform administrator.
    pub fn tenant(&self) -> Option<TenantId> {
        self.tenant
    }

    /// Who the principal is, as recorded in audit events.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The principal's role names.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(String::as_str)
    }

    /// The principal's permissions.
    pub fn permissions(&self) -> impl Iterator<Item = &Permission> {
        self.permissions.iter()
    }

    /// Whether this is an explicit platform administrator.
    pub fn is_platform_admin(&self) -> bool {
        self.platform_admin
    }

    /// Whether the principal holds `permission` (ignoring tenant).
    pub fn has_permission(&self, permission: &Permission) -> bool {
        self.platform_admin || self.permissions.contains(permission)
    }

    /// Succeeds if the principal may exercise `permission` in `tenant`; otherwise
    /// [`CoreError::PermissionDenied`] saying which permission was missing.
    pub fn require(&self, tenant: TenantId, permission: &Permission) -> Result<(), CoreError> {
        if self.platform_admin {
            return Ok(());
        }
        if self.tenant != Some(tenant) {
            return Err(CoreError::PermissionDenied(format!(
                "{} may not act in tenant {tenant}",
                self.subject
            )));
        }
        if !self.permissions.contains(permission) {
            return Err(CoreError::PermissionDenied(format!(
                "{} lacks permission {permission} in tenant {tenant}",
                self.subject
            )));
        }
        Ok(())
    }

    /// Succeeds only for a platform administrator.
    pub fn require_platform_admin(&self, action: &str) -> Result<(), CoreError> {
        if self.platform_admin {
            Ok(())
        } else {
            Err(CoreError::PermissionDenied(format!(
                "{action} requires a platform administrator; {} is not one",
                self.subject
            )))
        }
    }
}

fn validate_subject(subject: String) -> Result<String, CoreError> {
    if subject.is_empty() || subject.len() > 256 {
        return Err(CoreError::invalid(
            "principal subject",
            format!("must be 1 to 256 bytes, got {}", subject.len()),
        ));
    }
    if subject.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            "principal subject",
            "must not contain control characters",
        ));
    }
    Ok(subject)
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("tenant", &self.tenant)
            .field("subject", &self.subject)
            .field("roles", &self.roles)
            .field("permissions", &self.permissions)
            .field("platform_admin", &self.platform_admin)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorKind};

    #[test]
    fn super_admin_role_name_does_not_imply_platform_powers() {
        let tenant = TenantId::new();
        let p = Principal::new(tenant, "user:mallory")
            .unwrap()
            .role("super_admin")
            .role("admin");
        assert!(!p.is_platform_admin());
        let err = p.require(tenant, &Permission::TENANT_UPDATE).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("tenant:update"), "{err}");
        assert!(p.require_platform_admin("creating a tenant").is_err());
    }

    #[test]
    fn platform_admin_acts_everywhere() {
        let p = Principal::platform_admin("system:ops").unwrap();
        assert!(p.require(TenantId::new(), &Permission::AUDIT_READ).is_ok());
        assert!(p.require_platform_admin("x").is_ok());
        assert_eq!(p.tenant(), None);
    }

    #[test]
    fn permissions_are_confined_to_their_tenant() {
        let (a, b) = (TenantId::new(), TenantId::new());
        let p = Principal::new(a, "user:alice")
            .unwrap()
            .permission(Permission::AUDIT_READ);
        assert!(p.require(a, &Permission::AUDIT_READ).is_ok());
        assert_eq!(
            p.require(b, &Permission::AUDIT_READ).unwrap_err().kind(),
            ErrorKind::PermissionDenied
        );
    }

    #[test]
    fn permission_names_are_validated() {
        for ok in ["tenant:read", "storage:put", "a-b:c_d"] {
            assert!(Permission::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "tenant",
            "Tenant:read",
            "a:b:c",
            ":read",
            "tenant:",
            "x y:z",
        ] {
            let e = Permission::new(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}");
        }
        assert!(Permission::new("a:".to_string() + &"b".repeat(70)).is_err());
        // The built-in constants obey the same rules.
        for p in [
            Permission::TENANT_READ,
            Permission::TENANT_UPDATE,
            Permission::AUDIT_READ,
            Permission::AUDIT_WRITE,
        ] {
            assert!(Permission::new(p.as_str()).is_ok());
        }
    }

    #[test]
    fn subjects_are_validated() {
        let t = TenantId::new();
        assert!(Principal::new(t, "").is_err());
        assert!(Principal::new(t, "a\nb").is_err());
        assert!(Principal::new(t, "x".repeat(257)).is_err());
    }
}
