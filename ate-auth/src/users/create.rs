//! Creating users: one in an existing tenant ([`Auth::create_user`](crate::Auth::create_user))
//! or the first one with a new organization
//! ([`Auth::register`](crate::Auth::register)). Both run in one transaction that locks the
//! tenant (through ate-core's [`CoreTx`]) and counts its users against
//! [`Quotas::max_users`](ate_core::Quotas::max_users), so parallel creations can never pass
//! the quota together.

use super::model::{
    Role, User, UserStatus, authorize_grant, normalize_email, normalize_username, validate_name,
};
use super::row::{INSERT, permissions_json, roles_json};
use super::store::UserStore;
use crate::error::AuthError;
use ate_core::audit::{NewAuditEvent, Outcome, actions};
use ate_core::db::{is_unique_violation, to_micros};
use ate_core::{
    CoreError, CoreTx, NewTenant, Permission, Principal, Tenant, TenantChangeKind, TenantId,
    UserId, with_write_tx,
};
use serde_json::json;
use std::collections::BTreeSet;

/// A user to create.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewUser {
    /// Email (unique per tenant, case-insensitively).
    pub email: String,
    /// Optional username (unique per tenant, case-insensitively).
    pub username: Option<String>,
    /// Display name.
    pub name: String,
    /// Roles (default: `user`).
    pub roles: BTreeSet<Role>,
    /// Extra permissions.
    pub permissions: BTreeSet<Permission>,
}

impl NewUser {
    /// A plain `user` with this email.
    pub fn new(email: impl Into<String>) -> Self {
        NewUser {
            email: email.into(),
            username: None,
            name: String::new(),
            roles: [Role::User].into_iter().collect(),
            permissions: BTreeSet::new(),
        }
    }

    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the username.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Sets the roles.
    pub fn roles(mut self, roles: impl IntoIterator<Item = Role>) -> Self {
        self.roles = roles.into_iter().collect();
        self
    }

    /// Grants a permission.
    pub fn permission(mut self, permission: Permission) -> Self {
        self.permissions.insert(permission);
        self
    }
}

/// A validated user, ready to insert.
struct Prepared {
    id: UserId,
    email: (String, String),
    username: Option<(String, String)>,
    name: String,
    roles: BTreeSet<Role>,
    permissions: BTreeSet<Permission>,
}

fn prepare(new: &NewUser) -> Result<Prepared, AuthError> {
    if new.roles.is_empty() {
        return Err(AuthError::invalid(
            "roles",
            "a user needs at least one role",
        ));
    }
    Ok(Prepared {
        id: UserId::new(),
        email: normalize_email(&new.email)?,
        username: new
            .username
            .as_deref()
            .map(normalize_username)
            .transpose()?,
        name: validate_name(&new.name)?,
        roles: new.roles.clone(),
        permissions: new.permissions.clone(),
    })
}

macro_rules! insert_user {
    ($tx:ident, $tenant:expr, $p:expr, $hash:expr, $now:expr) => {{
        let p: &Prepared = $p;
        let inserted = sqlx::query(INSERT)
            .bind(p.id.as_uuid())
            .bind($tenant.as_uuid())
            .bind(&p.email.0)
            .bind(p.username.as_ref().map(|u| &u.0))
            .bind(&p.name)
            .bind(UserStatus::Active.as_str())
            .bind(roles_json(&p.roles))
            .bind(permissions_json(&p.permissions))
            .bind($hash)
            .bind(0i64)
            .bind(0i64)
            .bind(0i64)
            .bind(None::<i64>)
            .bind(1i64)
            .bind(to_micros($now))
            .bind(to_micros($now))
            .bind(&p.email.1)
            .bind(p.username.as_ref().map(|u| &u.1))
            .execute(&mut *$tx)
            .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(AuthError::Core(CoreError::AlreadyExists {
                    what: "user with this email or username in tenant",
                    key: $tenant.to_string(),
                }));
            }
            Err(e) => return Err(e.into()),
        }
    }};
}

/// Refuses a new user in `tenant`, which has `users` already, when that reaches `max`.
/// Every user counts, disabled and locked ones included: they keep their seat until removed.
fn check_user_quota(tenant: TenantId, users: i64, max: u64) -> Result<(), AuthError> {
    if u64::try_from(users).unwrap_or(0) >= max {
        return Err(CoreError::QuotaExceeded(format!(
            "tenant {tenant} may have at most {max} users and has {users}"
        ))
        .into());
    }
    Ok(())
}

/// The audit event of a change to `user`, by `actor`.
pub(super) fn user_event(
    tenant: TenantId,
    actor: &str,
    action: ate_core::audit::AuditAction,
    user: UserId,
    metadata: serde_json::Value,
) -> Result<ate_core::audit::ValidEvent, AuthError> {
    Ok(NewAuditEvent::new(tenant, actor, action, Outcome::Success)
        .target(format!("user:{user}"))
        .metadata(metadata)
        .validate()?)
}

impl UserStore {
    /// Creates a user in `tenant` with an already hashed password (a PHC string) or none.
    /// The tenant must be active and below its `max_users` quota (`QuotaExceeded`).
    pub(crate) async fn create(
        &self,
        actor: &Principal,
        tenant: TenantId,
        new: &NewUser,
        password_hash: Option<String>,
    ) -> Result<User, AuthError> {
        let p = prepare(new)?;
        authorize_grant(actor, tenant, &p.roles, &p.permissions)?;
        let now = self.clock.now();
        let event = user_event(
            tenant,
            actor.subject(),
            actions::USER_CREATED,
            p.id,
            json!({ "roles": p.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>() }),
        )?;
        with_write_tx!(self.db, |tx| {
            // The lock serializes user creations in the tenant, so the count below stays true
            // until this transaction commits: parallel creations cannot pass the quota together.
            let locked = tx.lock_tenant(tenant).await?;
            locked.require_active()?;
            if let Some(max) = locked.settings.quotas.max_users {
                let users: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM auth_users WHERE tenant_id = $1")
                        .bind(tenant.as_uuid())
                        .fetch_one(&mut *tx)
                        .await?;
                check_user_quota(tenant, users, max)?;
            }
            insert_user!(tx, tenant, &p, password_hash.as_deref(), now);
            tx.append_audit(&event, now).await?;
        });
        self.fetch(tenant, p.id).await
    }

    /// Creates a tenant and its first user (an `admin` of it) in one transaction: neither
    /// exists unless both do. A `max_users` quota of 0 in the new tenant's settings refuses
    /// the registration with `QuotaExceeded`, and nothing is created.
    pub(crate) async fn register_with_org(
        &self,
        org: NewTenant,
        new: &NewUser,
        password_hash: String,
    ) -> Result<(Tenant, User), AuthError> {
        let mut new = new.clone();
        new.roles = [Role::Admin].into_iter().collect();
        new.permissions = BTreeSet::new();
        let p = prepare(&new)?;
        let now = self.clock.now();
        let registrar = Principal::platform_admin("system:registration")?;
        let prepared = self.tenants.prepare_create(&registrar, org, now)?;
        let tenant = prepared.tenant().id;
        if let Some(max) = prepared.tenant().settings.quotas.max_users {
            check_user_quota(tenant, 0, max)?;
        }
        let event = user_event(
            tenant,
            "system:registration",
            actions::USER_CREATED,
            p.id,
            json!({ "roles": ["admin"], "with_organization": true }),
        )?;
        with_write_tx!(self.db, |tx| {
            tx.insert_tenant(&prepared, now).await?;
            insert_user!(tx, tenant, &p, Some(password_hash.as_str()), now);
            tx.append_audit(&event, now).await?;
        });
        self.tenant_changes
            .publish(tenant, TenantChangeKind::Created);
        Ok((prepared.tenant().clone(), self.fetch(tenant, p.id).await?))
    }
}
