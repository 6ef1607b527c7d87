//! Changing users: name, roles and permissions (with the grant rules of
//! [`authorize_grant`]), and status (disable, enable, unlock).

use super::create::user_event;
use super::model::{Role, USERS_MANAGE, User, UserStatus, authorize_grant, validate_name};
use super::row::{permissions_json, roles_json};
use super::store::UserStore;
use crate::error::AuthError;
use ate_core::audit::{AuditAction, actions};
use ate_core::db::to_micros;
use ate_core::{CoreError, CoreTx, Permission, Principal, TenantId, UserId, with_write_tx};
use serde_json::json;
use std::collections::BTreeSet;

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct UserUpdate {
    /// New display name.
    pub name: Option<String>,
    /// New roles.
    pub roles: Option<BTreeSet<Role>>,
    /// New extra permissions.
    pub permissions: Option<BTreeSet<Permission>>,
    /// Fail with `Conflict` unless the stored revision is this one.
    pub expected_revision: Option<i64>,
}

impl UserUpdate {
    /// No changes yet.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Replaces the roles.
    pub fn roles(mut self, roles: impl IntoIterator<Item = Role>) -> Self {
        self.roles = Some(roles.into_iter().collect());
        self
    }
    /// Replaces the extra permissions.
    pub fn permissions(mut self, permissions: impl IntoIterator<Item = Permission>) -> Self {
        self.permissions = Some(permissions.into_iter().collect());
        self
    }
    /// Requires the stored revision to match.
    pub fn expected_revision(mut self, revision: i64) -> Self {
        self.expected_revision = Some(revision);
        self
    }
}

impl UserStore {
    /// Changes a user's name, roles or permissions. Needs [`USERS_MANAGE`] and, for roles and
    /// permissions, to hold what is given; nobody changes their own roles or permissions.
    pub async fn update(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: UserId,
        update: UserUpdate,
    ) -> Result<User, AuthError> {
        actor.require(tenant, &USERS_MANAGE)?;
        let current = self.fetch(tenant, id).await?;
        let roles = update.roles.clone().unwrap_or(current.roles.clone());
        let permissions = update
            .permissions
            .clone()
            .unwrap_or(current.permissions.clone());
        if roles.is_empty() {
            return Err(AuthError::invalid(
                "roles",
                "a user needs at least one role",
            ));
        }
        let privileges_change = roles != current.roles || permissions != current.permissions;
        if privileges_change {
            if actor.subject() == format!("user:{id}") && !actor.is_platform_admin() {
                return Err(CoreError::PermissionDenied(
                    "nobody changes their own roles or permissions".into(),
                )
                .into());
            }
            authorize_grant(actor, tenant, &roles, &permissions)?;
            // Taking privileges away also needs them: an admin cannot demote a super-admin.
            authorize_grant(actor, tenant, &current.roles, &current.permissions)?;
        }
        let name = match &update.name {
            Some(n) => validate_name(n)?,
            None => current.name.clone(),
        };
        let action = if privileges_change {
            actions::PRIVILEGE_PERMISSIONS_CHANGED
        } else {
            actions::USER_UPDATED
        };
        let expected = update.expected_revision.unwrap_or(current.revision);
        let change = Change {
            name: &name,
            roles: &roles,
            permissions: &permissions,
            expected,
            action,
        };
        self.write_update(actor, tenant, id, change).await
    }

    /// Changes the display name of the actor's own user: what every user may change about
    /// itself (roles and permissions stay an administrator's).
    pub async fn update_own_name(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: UserId,
        name: &str,
    ) -> Result<User, AuthError> {
        let elsewhere = actor.tenant().is_some_and(|t| t != tenant);
        if actor.subject() != format!("user:{id}") || elsewhere {
            return Err(CoreError::PermissionDenied(format!(
                "{} is not user {id}",
                actor.subject()
            ))
            .into());
        }
        let current = self.fetch(tenant, id).await?;
        let name = validate_name(name)?;
        let change = Change {
            name: &name,
            roles: &current.roles,
            permissions: &current.permissions,
            expected: current.revision,
            action: actions::USER_UPDATED,
        };
        self.write_update(actor, tenant, id, change).await
    }

    /// Stores a checked change with its audit event, if the user is still at the expected
    /// revision.
    async fn write_update(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: UserId,
        change: Change<'_>,
    ) -> Result<User, AuthError> {
        let Change {
            name,
            roles,
            permissions,
            expected,
            action,
        } = change;
        let now = self.clock.now();
        let event = user_event(
            tenant,
            actor.subject(),
            action,
            id,
            json!({
                "roles": roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                "permissions": permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            }),
        )?;
        with_write_tx!(self.db, |tx| {
            let changed = sqlx::query(
                "UPDATE auth_users SET display_name = $3, roles = $4, permissions = $5, \
                 revision = revision + 1, updated_at = $6 \
                 WHERE tenant_id = $1 AND id = $2 AND revision = $7",
            )
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .bind(name)
            .bind(roles_json(roles))
            .bind(permissions_json(permissions))
            .bind(to_micros(now))
            .bind(expected)
            .execute(&mut *tx)
            .await?;
            if changed.rows_affected() == 0 {
                return Err(CoreError::Conflict(format!(
                    "user {id} changed meanwhile (expected revision {expected})"
                ))
                .into());
            }
            tx.append_audit(&event, now).await?;
        });
        self.cache.forget_user(id);
        self.fetch(tenant, id).await
    }

    /// Sets a user's status (disable, enable, unlock). Disabling ends every session at once
    /// and invalidates every access token issued so far. Needs [`USERS_MANAGE`]; an admin
    /// cannot disable a user holding privileges it does not hold, nor itself.
    pub async fn set_status(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: UserId,
        status: UserStatus,
    ) -> Result<User, AuthError> {
        actor.require(tenant, &USERS_MANAGE)?;
        let current = self.fetch(tenant, id).await?;
        authorize_grant(actor, tenant, &current.roles, &current.permissions)?;
        if status == UserStatus::Disabled && actor.subject() == format!("user:{id}") {
            return Err(AuthError::invalid(
                "status",
                "users cannot disable themselves",
            ));
        }
        let now = self.clock.now();
        let event = user_event(
            tenant,
            actor.subject(),
            actions::USER_UPDATED,
            id,
            json!({ "status": status.as_str() }),
        )?;
        with_write_tx!(self.db, |tx| {
            sqlx::query(
                "UPDATE auth_users SET status = $3, failed_attempts = 0, lockouts = 0, \
                 locked_until = NULL, revision = revision + 1, updated_at = $4, \
                 not_before = CASE WHEN $3 = 'disabled' THEN $4 ELSE not_before END \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .bind(status.as_str())
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await?;
            if status == UserStatus::Disabled {
                sqlx::query(
                    "UPDATE auth_sessions SET revoked_at = $2, revoked_reason = 'user_disabled' \
                     WHERE user_id = $1 AND revoked_at IS NULL",
                )
                .bind(id.as_uuid())
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await?;
            }
            tx.append_audit(&event, now).await?;
        });
        self.cache.forget_user(id);
        self.fetch(tenant, id).await
    }
}

/// A checked change of a user's name, roles and permissions.
struct Change<'a> {
    name: &'a str,
    roles: &'a BTreeSet<Role>,
    permissions: &'a BTreeSet<Permission>,
    expected: i64,
    action: AuditAction,
}
