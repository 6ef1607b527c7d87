//! What a user is: roles and the permissions they carry, status, the public [`User`], and
//! the rules for emails, usernames, names and grants.

use crate::error::AuthError;
use ate_core::{Permission, Principal, TenantId, UserId};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// Read the users of a tenant.
pub const USERS_READ: Permission = Permission::from_static("users:read");
/// Create, update, disable and reset the passwords of the users of a tenant.
pub const USERS_MANAGE: Permission = Permission::from_static("users:manage");

/// Longest accepted email address (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Role {
    /// A member of the tenant.
    User,
    /// Manages the users of its own tenant.
    Admin,
    /// A platform administrator (acts in every tenant).
    SuperAdmin,
}

impl Role {
    /// The stored and token name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::SuperAdmin => "super_admin",
        }
    }

    /// Parses a stored or given name.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        match s {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            "super_admin" => Ok(Role::SuperAdmin),
            other => Err(AuthError::invalid(
                "role",
                format!(
                    "{:?} is not a role (user, admin, super_admin)",
                    other.chars().take(40).collect::<String>()
                ),
            )),
        }
    }

    /// The permissions the role carries within its tenant.
    pub fn permissions(self) -> Vec<Permission> {
        match self {
            Role::User => Vec::new(),
            Role::Admin => vec![
                USERS_READ,
                USERS_MANAGE,
                Permission::TENANT_READ,
                Permission::AUDIT_READ,
            ],
            // Platform administrators hold every permission through their principal.
            Role::SuperAdmin => Vec::new(),
        }
    }
}

/// Permissions each role carries in one deployment beyond its built-in ones
/// ([`Role::permissions`]): a host whose members manage codebases gives `user` the
/// storage permissions, for example, instead of granting them user by user. Set it in
/// [`AuthConfig::role_permissions`](crate::AuthConfig::role_permissions); every principal
/// built from a user (at verification) includes them, and the grant rules of
/// [`authorize_grant`] count them as held.
///
/// ```
/// use ate_auth::Role;
/// use ate_auth::users::RolePermissions;
/// use ate_core::Permission;
///
/// let extra = RolePermissions::new()
///     .grant(Role::User, [Permission::new("projects:read").unwrap()]);
/// assert_eq!(extra.of(Role::User).count(), 1);
/// assert_eq!(extra.of(Role::Admin).count(), 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolePermissions(BTreeMap<Role, BTreeSet<Permission>>);

impl RolePermissions {
    /// No extra permissions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `permissions` to what `role` carries.
    pub fn grant(mut self, role: Role, permissions: impl IntoIterator<Item = Permission>) -> Self {
        self.0.entry(role).or_default().extend(permissions);
        self
    }

    /// The extra permissions of `role`.
    pub fn of(&self, role: Role) -> impl Iterator<Item = &Permission> {
        self.0.get(&role).into_iter().flatten()
    }
}

/// A user's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UserStatus {
    /// May log in.
    Active,
    /// Disabled by an administrator: no login, every session ended.
    Disabled,
    /// Locked permanently after repeated temporary lockouts, until an administrator unlocks.
    Locked,
}

impl UserStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
            UserStatus::Locked => "locked",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, AuthError> {
        match s {
            "active" => Ok(UserStatus::Active),
            "disabled" => Ok(UserStatus::Disabled),
            "locked" => Ok(UserStatus::Locked),
            other => Err(AuthError::Crypto(format!(
                "stored user status {other:?} is unknown"
            ))),
        }
    }
}

/// How many users a tenant has, by status ([`UserStore::count`](super::UserStore::count)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct UserCounts {
    /// Every user, against the tenant's `max_users` quota.
    pub total: u64,
    /// Users who may log in.
    pub active: u64,
    /// Disabled users.
    pub disabled: u64,
    /// Locked users (until an administrator unlocks them).
    pub locked: u64,
}

/// A user (never its password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// The tenant it belongs to.
    pub tenant: TenantId,
    /// Email as given.
    pub email: String,
    /// Optional username as given.
    pub username: Option<String>,
    /// Display name.
    pub name: String,
    /// State.
    pub status: UserStatus,
    /// Roles.
    pub roles: BTreeSet<Role>,
    /// Permissions granted beyond the roles'.
    pub permissions: BTreeSet<Permission>,
    /// Whether a password is set.
    pub has_password: bool,
    /// Tokens issued before this instant are invalid.
    pub not_before: DateTime<Utc>,
    /// Until when a temporary lockout lasts.
    pub locked_until: Option<DateTime<Utc>>,
    /// Optimistic-concurrency revision.
    pub revision: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl User {
    /// The principal this user acts as: `user:<id>` in its tenant, with its roles and every
    /// permission they carry; a `super_admin` is a platform administrator.
    pub fn principal(&self) -> Result<Principal, AuthError> {
        self.principal_with(&RolePermissions::default())
    }

    /// [`principal`](Self::principal) with the deployment's extra role permissions.
    pub fn principal_with(&self, extra: &RolePermissions) -> Result<Principal, AuthError> {
        let subject = format!("user:{}", self.id);
        let mut p = if self.roles.contains(&Role::SuperAdmin) {
            Principal::platform_admin(subject)?
        } else {
            Principal::new(self.tenant, subject)?
        };
        for role in &self.roles {
            p = p.role(role.as_str());
            for perm in role.permissions() {
                p = p.permission(perm);
            }
            for perm in extra.of(*role) {
                p = p.permission(perm.clone());
            }
        }
        for perm in &self.permissions {
            p = p.permission(perm.clone());
        }
        Ok(p)
    }
}

/// Checks that `actor` may give `roles` and `permissions` to a user of `tenant`: platform
/// administrators may give anything; anyone else must hold [`USERS_MANAGE`] in that tenant,
/// hold every permission they give and each role they give or a higher one (roles are
/// ordered `user` < `admin` < `super_admin`), and can never give `super_admin`.
pub fn authorize_grant(
    actor: &Principal,
    tenant: TenantId,
    roles: &BTreeSet<Role>,
    permissions: &BTreeSet<Permission>,
) -> Result<(), AuthError> {
    actor.require(tenant, &USERS_MANAGE)?;
    if actor.is_platform_admin() {
        return Ok(());
    }
    let deny = |what: String| {
        AuthError::Core(ate_core::CoreError::PermissionDenied(format!(
            "{} may not grant {what} it does not hold",
            actor.subject()
        )))
    };
    // Roles are ordered (user < admin < super_admin): holding one covers those below it.
    let highest = actor.roles().filter_map(|r| Role::parse(r).ok()).max();
    for role in roles {
        if *role == Role::SuperAdmin || highest.is_none_or(|h| h < *role) {
            return Err(deny(format!("role {}", role.as_str())));
        }
    }
    for perm in permissions {
        if !actor.has_permission(perm) {
            return Err(deny(format!("permission {perm}")));
        }
    }
    Ok(())
}

/// Normalizes and validates an email address; returns (as given, trimmed; normalized).
pub fn normalize_email(email: &str) -> Result<(String, String), AuthError> {
    let given = email.trim();
    let bad = |reason: &str| AuthError::invalid("email", reason.to_string());
    if given.is_empty() {
        return Err(bad("is empty"));
    }
    if given.len() > MAX_EMAIL_BYTES {
        return Err(bad("is longer than 254 bytes"));
    }
    let Some((local, domain)) = given.rsplit_once('@') else {
        return Err(bad("has no '@'"));
    };
    if local.is_empty() || local.len() > 64 {
        return Err(bad("local part must be 1 to 64 bytes"));
    }
    if local
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '@')
    {
        return Err(bad(
            "local part contains whitespace, control characters or '@'",
        ));
    }
    let domain = domain.to_ascii_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels.iter().any(|l| {
            l.is_empty()
                || l.len() > 63
                || l.starts_with('-')
                || l.ends_with('-')
                || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
    {
        return Err(bad(
            "domain must be a dotted ASCII host name (internationalized domains in punycode)",
        ));
    }
    Ok((
        given.to_owned(),
        format!("{}@{domain}", local.to_lowercase()),
    ))
}

/// Normalizes and validates a username: 3 to 64 of `a-z 0-9 . _ -`, case-insensitive.
pub fn normalize_username(username: &str) -> Result<(String, String), AuthError> {
    let given = username.trim();
    let norm = given.to_ascii_lowercase();
    if !(3..=64).contains(&norm.len())
        || !norm
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(AuthError::invalid(
            "username",
            "must be 3 to 64 characters of a-z, 0-9, '.', '_' and '-'",
        ));
    }
    if norm.contains('@') {
        return Err(AuthError::invalid(
            "username",
            "must not look like an email",
        ));
    }
    Ok((given.to_owned(), norm))
}

/// Validates a display name: at most 200 characters, no control characters.
pub fn validate_name(name: &str) -> Result<String, AuthError> {
    let name = name.trim();
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(AuthError::invalid(
            "name",
            "must be at most 200 characters without control characters",
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_normalize_and_reject_garbage() {
        assert_eq!(
            normalize_email("  Alice.Smith@Example.COM ").unwrap(),
            (
                "Alice.Smith@Example.COM".into(),
                "alice.smith@example.com".into()
            )
        );
        for bad in [
            "",
            "no-at",
            "@example.com",
            "a@",
            "a@localhost",
            "a@exa mple.com",
            "a b@example.com",
            "a@-x.com",
            "a@x..com",
            "a@exämple.com",
            "a\0@example.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(65))).is_err());
        assert!(normalize_email(&format!("a@{}.com", "b".repeat(250))).is_err());
    }

    #[test]
    fn usernames_and_names() {
        assert_eq!(normalize_username("Ana_B").unwrap().1, "ana_b");
        for bad in ["ab", "has space", "a@b", "ünï", &"x".repeat(65)] {
            assert!(normalize_username(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name("Ana Beatriz").is_ok());
        assert!(validate_name("bad\u{7}").is_err());
        assert!(validate_name(&"n".repeat(201)).is_err());
    }

    #[test]
    fn grants_need_what_they_give() {
        let t = TenantId::new();
        let admin = Principal::new(t, "user:admin")
            .unwrap()
            .role("admin")
            .permission(USERS_MANAGE);
        let roles = |r: &[Role]| r.iter().copied().collect::<BTreeSet<_>>();
        let none: BTreeSet<Permission> = BTreeSet::new();
        let no_roles: BTreeSet<Role> = BTreeSet::new();
        assert!(authorize_grant(&admin, t, &roles(&[Role::Admin]), &none).is_ok());
        assert!(authorize_grant(&admin, t, &roles(&[Role::SuperAdmin]), &none).is_err());
        assert!(authorize_grant(&admin, TenantId::new(), &no_roles, &none).is_err());
        let perms: BTreeSet<_> = [Permission::AUDIT_WRITE].into_iter().collect();
        assert!(authorize_grant(&admin, t, &no_roles, &perms).is_err());
        let member = Principal::new(t, "user:m")
            .unwrap()
            .permission(USERS_MANAGE);
        assert!(authorize_grant(&member, t, &roles(&[Role::Admin]), &none).is_err());
        // Holding admin covers user.
        assert!(authorize_grant(&admin, t, &roles(&[Role::User]), &none).is_ok());
        let user_only = member.clone().role("user");
        assert!(authorize_grant(&user_only, t, &roles(&[Role::User]), &none).is_ok());
        assert!(authorize_grant(&user_only, t, &roles(&[Role::Admin]), &none).is_err());
        let root = Principal::platform_admin("system:root").unwrap();
        assert!(authorize_grant(&root, t, &roles(&[Role::SuperAdmin]), &perms).is_ok());
    }
}
