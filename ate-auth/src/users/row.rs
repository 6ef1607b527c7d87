//! How a user is stored: the columns of `auth_users`, the row they are read into, and the
//! statements that read users by id, by email and page by page.

use super::model::{Role, User, UserStatus};
use crate::error::AuthError;
use ate_core::db::from_micros;
use ate_core::{Permission, TenantId, UserId};
use std::collections::BTreeSet;
use uuid::Uuid;

/// The columns of `auth_users` read into [`UserRow`].
macro_rules! user_columns {
    () => {
        "id, tenant_id, email, username, display_name, status, roles, permissions, \
         password_hash, not_before, failed_attempts, lockouts, locked_until, revision, \
         created_at, updated_at"
    };
}
pub(crate) use user_columns;

/// A stored user row, with its secret and lockout columns.
#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub(crate) id: Uuid,
    pub(crate) tenant_id: Uuid,
    pub(crate) email: String,
    pub(crate) username: Option<String>,
    pub(crate) display_name: String,
    pub(crate) status: String,
    pub(crate) roles: String,
    pub(crate) permissions: String,
    pub(crate) password_hash: Option<String>,
    pub(crate) not_before: i64,
    pub(crate) failed_attempts: i64,
    pub(crate) locked_until: Option<i64>,
    pub(crate) revision: i64,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl UserRow {
    pub(crate) fn user(&self) -> Result<User, AuthError> {
        let corrupt =
            |what: &str| AuthError::Crypto(format!("stored user has an unreadable {what}"));
        let roles: Vec<String> =
            serde_json::from_str(&self.roles).map_err(|_| corrupt("role list"))?;
        let permissions: Vec<String> =
            serde_json::from_str(&self.permissions).map_err(|_| corrupt("permission list"))?;
        Ok(User {
            id: UserId::from_uuid(self.id)?,
            tenant: TenantId::from_uuid(self.tenant_id)?,
            email: self.email.clone(),
            username: self.username.clone(),
            name: self.display_name.clone(),
            status: UserStatus::parse(&self.status)?,
            roles: roles
                .iter()
                .map(|r| Role::parse(r))
                .collect::<Result<_, _>>()?,
            permissions: permissions
                .into_iter()
                .map(Permission::new)
                .collect::<Result<_, _>>()?,
            has_password: self.password_hash.is_some(),
            not_before: from_micros(self.not_before)?,
            locked_until: self.locked_until.map(from_micros).transpose()?,
            revision: self.revision,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
        })
    }
}

/// Role names as stored (a JSON array).
pub(crate) fn roles_json(roles: &BTreeSet<Role>) -> String {
    serde_json::to_string(&roles.iter().map(|r| r.as_str()).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

/// Permissions as stored (a JSON array).
pub(crate) fn permissions_json(perms: &BTreeSet<Permission>) -> String {
    serde_json::to_string(&perms.iter().map(|p| p.as_str()).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

/// One user by tenant and id.
pub(crate) const BY_ID: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM auth_users WHERE tenant_id = $1 AND id = $2"
);
/// One user by tenant and normalized email.
pub(crate) const BY_EMAIL: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM auth_users WHERE tenant_id = $1 AND email_norm = $2"
);
/// A page of a tenant's users, by id after the cursor `$2`.
pub(crate) const LIST: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM auth_users WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
);
/// A new user (its columns, then the normalized email and username).
pub(crate) const INSERT: &str = concat!(
    "INSERT INTO auth_users (",
    user_columns!(),
    ", email_norm, username_norm) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
     $13, $14, $15, $16, $17, $18)"
);

/// `Option<i32>` read as an optional boolean (SQLite has no boolean type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OptionBool(pub(crate) Option<bool>);

impl From<Option<i32>> for OptionBool {
    fn from(v: Option<i32>) -> Self {
        OptionBool(v.map(|n| n != 0))
    }
}
