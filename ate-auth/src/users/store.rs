//! The user store: users in the database (SQLite or PostgreSQL), every change audited in
//! the same transaction, and the lockout counters that stay exact under parallel attempts.
//!
//! **Lockout** follows Keycloak's brute-force detection. A login first *reserves* an
//! attempt with one conditional `UPDATE … SET failed_attempts = failed_attempts + 1 WHERE
//! failed_attempts < max AND not locked`, before the password is checked: the database
//! serializes reservations on the user's row, so of N parallel guesses at most the
//! remaining allowance ever reach the password check. A success resets the counters; the
//! failure that uses the last slot locks the account for a wait that doubles with each
//! temporary lockout in a row (up to a maximum), and after a configured number of them the
//! lockout becomes permanent (status `locked`) until an administrator unlocks.

use crate::error::AuthError;
use crate::users::{
    Role, USERS_MANAGE, USERS_READ, User, UserRow, UserStatus, authorize_grant, normalize_email,
    normalize_username, permissions_json, roles_json, user_columns, validate_name,
};
use crate::verify_cache::{VerifyCache, VerifyFacts};
use ate_core::TenantStatus;
use ate_core::audit::{NewAuditEvent, Outcome, actions};
use ate_core::db::{is_unique_violation, to_micros};
use ate_core::{
    Clock, CoreError, CoreTx, Cursor, Db, NewTenant, Page, Permission, Principal, SqlTenantStore,
    SystemClock, Tenant, TenantChangeKind, TenantChanges, TenantId, TenantStore, UserId, with_pool,
    with_write_tx,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::sync::Arc;

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

/// Lockout policy (Keycloak's brute-force detection, with its defaults where sensible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockoutPolicy {
    /// Failures in a row that lock the account (default 5).
    pub max_failures: u32,
    /// The first temporary lockout (default 1 minute); each one in a row doubles it.
    pub wait_increment: TimeDelta,
    /// The longest temporary lockout (default 15 minutes).
    pub max_wait: TimeDelta,
    /// Temporary lockouts in a row after which the account is locked until an administrator
    /// unlocks it (`None`, the default: never permanent).
    pub permanent_after: Option<u32>,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            max_failures: 5,
            wait_increment: TimeDelta::minutes(1),
            max_wait: TimeDelta::minutes(15),
            permanent_after: None,
        }
    }
}

impl LockoutPolicy {
    /// Sets the failures in a row that lock the account.
    pub fn with_max_failures(mut self, n: u32) -> Self {
        self.max_failures = n;
        self
    }

    /// Sets the first wait and the longest one.
    pub fn with_waits(mut self, increment: TimeDelta, max: TimeDelta) -> Self {
        self.wait_increment = increment;
        self.max_wait = max;
        self
    }

    /// Makes the lockout permanent after `n` temporary ones in a row.
    pub fn with_permanent_after(mut self, n: Option<u32>) -> Self {
        self.permanent_after = n;
        self
    }

    /// Validates the policy.
    pub fn validate(&self) -> Result<(), AuthError> {
        if self.max_failures == 0 || self.max_failures > 100 {
            return Err(AuthError::invalid(
                "lockout policy",
                "max_failures must be 1 to 100",
            ));
        }
        if self.wait_increment <= TimeDelta::zero() || self.max_wait < self.wait_increment {
            return Err(AuthError::invalid(
                "lockout policy",
                "wait_increment must be positive and at most max_wait",
            ));
        }
        if self.permanent_after == Some(0) {
            return Err(AuthError::invalid(
                "lockout policy",
                "permanent_after must be at least 1",
            ));
        }
        Ok(())
    }

    /// The wait after the `n`-th temporary lockout in a row (1-based).
    pub fn wait(&self, n: u32) -> TimeDelta {
        let factor = 1i32
            .checked_shl(n.saturating_sub(1).min(30))
            .unwrap_or(i32::MAX);
        self.wait_increment
            .checked_mul(factor)
            .map_or(self.max_wait, |w| w.min(self.max_wait))
    }
}

/// The outcome of reserving a login attempt.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// The account may try: its row (with the password hash) and the attempt's number.
    Proceed(Box<UserRow>, i64),
    /// No such user, or disabled, locked or out of attempts: answer "invalid credentials".
    Refused(Refusal),
}

/// Why an attempt was refused (for the audit log only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Unknown,
    Disabled,
    Locked,
}

/// Users of every tenant in a [`Db`].
#[derive(Debug, Clone)]
pub struct UserStore {
    db: Db,
    tenants: SqlTenantStore,
    /// The tenant-change feed the verification cache follows (one per `Db` handle).
    tenant_changes: TenantChanges,
    clock: Arc<dyn Clock>,
    cache: Arc<VerifyCache>,
}

const BY_ID: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM auth_users WHERE tenant_id = $1 AND id = $2"
);
const BY_EMAIL: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM auth_users WHERE tenant_id = $1 AND email_norm = $2"
);
const LIST: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM auth_users WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
);
const INSERT: &str = concat!(
    "INSERT INTO auth_users (",
    user_columns!(),
    ", email_norm, username_norm) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
     $13, $14, $15, $16, $17, $18)"
);
/// `$1` tenant, `$2` user, `$3` session (or NULL).
const VERIFY_STATE: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", (SELECT CASE WHEN s.revoked_at IS NULL THEN 1 ELSE 0 END FROM auth_sessions s \
       WHERE s.id = $3 AND s.user_id = auth_users.id) AS session_open \
     FROM auth_users WHERE tenant_id = $1 AND id = $2"
);

/// The row [`UserStore::verify_state`] reads.
#[derive(sqlx::FromRow)]
struct VerifyState {
    #[sqlx(flatten)]
    user: UserRow,
    #[sqlx(try_from = "Option<i32>")]
    session_open: OptionBool,
}

/// `Option<i32>` read as an optional boolean (SQLite has no boolean type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OptionBool(pub(crate) Option<bool>);

impl From<Option<i32>> for OptionBool {
    fn from(v: Option<i32>) -> Self {
        OptionBool(v.map(|n| n != 0))
    }
}

const CURSOR_KIND: &str = "users";

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

fn user_event(
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
    /// A user store over `db`, running `ate-auth`'s migrations.
    pub async fn open(db: Db) -> Result<Self, AuthError> {
        db.migrate(&crate::migrations()).await?;
        let tenants = SqlTenantStore::new(db.clone());
        Ok(UserStore {
            tenant_changes: tenants.changes(),
            tenants,
            db,
            clock: Arc::new(SystemClock),
            cache: Arc::new(VerifyCache::disabled()),
        })
    }

    /// Uses `clock` for times and lockouts.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.tenants = self.tenants.with_clock(clock.clone());
        self.clock = clock;
        self
    }

    /// Shares `cache` (owned by `Auth`) for verification reads and their invalidation.
    pub(crate) fn with_verify_cache(mut self, cache: Arc<VerifyCache>) -> Self {
        self.cache = cache;
        self
    }

    /// What verifying a token of user `id` (session `sid`) needs: from the verification
    /// cache when fresh there, else read now in one query and cached.
    pub(crate) async fn verify_facts(
        &self,
        tenant: TenantId,
        id: UserId,
        sid: Option<uuid::Uuid>,
    ) -> Result<Option<Arc<VerifyFacts>>, AuthError> {
        let now = self.clock.now();
        let generation = self.tenant_changes.generation();
        if let Some(facts) = self.cache.get(id, sid, now, generation)
            && facts.user.tenant == tenant
        {
            return Ok(Some(facts));
        }
        let ticket = self.cache.ticket(generation);
        let Some(facts) = self.verify_state(tenant, id, sid).await? else {
            return Ok(None);
        };
        let facts = Arc::new(facts);
        self.cache.put(ticket, id, sid, facts.clone(), now);
        Ok(Some(facts))
    }

    /// Drops what the verification cache holds about user `id`, or everything.
    pub(crate) fn forget_cached(&self, id: Option<UserId>) {
        match id {
            Some(id) => self.cache.forget_user(id),
            None => self.cache.clear(),
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Creates a user in `tenant` with an already hashed password (a PHC string) or none.
    pub(crate) async fn create(
        &self,
        actor: &Principal,
        tenant: TenantId,
        new: &NewUser,
        password_hash: Option<String>,
    ) -> Result<User, AuthError> {
        let p = prepare(new)?;
        authorize_grant(actor, tenant, &p.roles, &p.permissions)?;
        self.tenants.require_active(tenant).await?;
        let now = self.clock.now();
        let event = user_event(
            tenant,
            actor.subject(),
            actions::USER_CREATED,
            p.id,
            json!({ "roles": p.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>() }),
        )?;
        with_write_tx!(self.db, |tx| {
            tx.lock_tenant(tenant).await?;
            insert_user!(tx, tenant, &p, password_hash.as_deref(), now);
            tx.append_audit(&event, now).await?;
        });
        self.fetch(tenant, p.id).await
    }

    /// Creates a tenant and its first user (an `admin` of it) in one transaction: neither
    /// exists unless both do.
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

    pub(crate) async fn row(
        &self,
        tenant: TenantId,
        id: UserId,
    ) -> Result<Option<UserRow>, AuthError> {
        Ok(with_pool!(self.db, |pool| {
            sqlx::query_as(BY_ID)
                .bind(tenant.as_uuid())
                .bind(id.as_uuid())
                .fetch_optional(pool)
                .await?
        }))
    }

    async fn fetch(&self, tenant: TenantId, id: UserId) -> Result<User, AuthError> {
        self.row(tenant, id)
            .await?
            .ok_or_else(|| CoreError::not_found("user", id))?
            .user()
    }

    /// What verifying an access token needs: the user's row and whether session `sid` (if
    /// any) of that user is still open, in one query, and its tenant's status from the
    /// tenant store, read concurrently.
    pub(crate) async fn verify_state(
        &self,
        tenant: TenantId,
        id: UserId,
        sid: Option<uuid::Uuid>,
    ) -> Result<Option<VerifyFacts>, AuthError> {
        let user_state = async {
            let state: Option<VerifyState> = with_pool!(self.db, |pool| {
                sqlx::query_as(VERIFY_STATE)
                    .bind(tenant.as_uuid())
                    .bind(id.as_uuid())
                    .bind(sid)
                    .fetch_optional(pool)
                    .await?
            });
            Ok::<_, AuthError>(state)
        };
        let tenant_status = async { Ok(self.tenants.status(tenant).await?) };
        let (state, tenant_status) = tokio::try_join!(user_state, tenant_status)?;
        let tenant_active = tenant_status == Some(TenantStatus::Active);
        state
            .map(|state| {
                let user = state.user.user()?;
                Ok(VerifyFacts {
                    tenant_active,
                    principal: user.principal()?,
                    user,
                    session_open: state.session_open.0 == Some(true),
                })
            })
            .transpose()
    }

    /// The tenant of user `id`, if it exists.
    pub(crate) async fn tenant_of(&self, id: UserId) -> Result<Option<TenantId>, AuthError> {
        let t: Option<uuid::Uuid> = with_pool!(self.db, |pool| {
            sqlx::query_scalar("SELECT tenant_id FROM auth_users WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_optional(pool)
                .await?
        });
        Ok(t.map(TenantId::from_uuid).transpose()?)
    }

    /// A user of `tenant`. Needs [`USERS_READ`] there, or to be that user.
    pub async fn get(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: UserId,
    ) -> Result<User, AuthError> {
        if actor.tenant() != Some(tenant) || actor.subject() != format!("user:{id}") {
            actor.require(tenant, &USERS_READ)?;
        }
        self.fetch(tenant, id).await
    }

    /// The users of `tenant`, by id, paginated. Needs [`USERS_READ`].
    pub async fn list(
        &self,
        actor: &Principal,
        tenant: TenantId,
        limit: Option<u32>,
        cursor: Option<Cursor>,
    ) -> Result<Page<User>, AuthError> {
        actor.require(tenant, &USERS_READ)?;
        let limit = ate_core::page::page_size(limit)?;
        let after = cursor
            .map(|c| c.decode(CURSOR_KIND))
            .transpose()?
            .map(|s| {
                s.parse::<uuid::Uuid>()
                    .map_err(|_| AuthError::invalid("cursor", "is not from this listing"))
            })
            .transpose()?;
        let rows: Vec<UserRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(LIST)
                .bind(tenant.as_uuid())
                .bind(after)
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await?
        });
        let more = rows.len() > limit as usize;
        let items = rows
            .iter()
            .take(limit as usize)
            .map(UserRow::user)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = match (more, items.last()) {
            (true, Some(last)) => Some(Cursor::encode(CURSOR_KIND, &last.id.to_string())),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

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
        let now = self.clock.now();
        let action = if privileges_change {
            actions::PRIVILEGE_PERMISSIONS_CHANGED
        } else {
            actions::USER_UPDATED
        };
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
        let expected = update.expected_revision.unwrap_or(current.revision);
        with_write_tx!(self.db, |tx| {
            let changed = sqlx::query(
                "UPDATE auth_users SET display_name = $3, roles = $4, permissions = $5, \
                 revision = revision + 1, updated_at = $6 \
                 WHERE tenant_id = $1 AND id = $2 AND revision = $7",
            )
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .bind(&name)
            .bind(roles_json(&roles))
            .bind(permissions_json(&permissions))
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

    /// Replaces the password hash and ends sessions: all of them, or all but `keep` (the
    /// session that changed its own password). Audited as `authn_password_change`.
    pub(crate) async fn set_password_hash(
        &self,
        actor: &str,
        tenant: TenantId,
        id: UserId,
        hash: &str,
        keep: Option<uuid::Uuid>,
    ) -> Result<(), AuthError> {
        let now = self.clock.now();
        let event = user_event(
            tenant,
            actor,
            actions::AUTHN_PASSWORD_CHANGE,
            id,
            json!({ "sessions_kept": keep.is_some() }),
        )?;
        with_write_tx!(self.db, |tx| {
            let changed = sqlx::query(
                "UPDATE auth_users SET password_hash = $3, failed_attempts = 0, \
                 revision = revision + 1, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .bind(hash)
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await?;
            if changed.rows_affected() == 0 {
                return Err(CoreError::not_found("user", id).into());
            }
            sqlx::query(
                "UPDATE auth_sessions SET revoked_at = $2, revoked_reason = 'password_changed' \
                 WHERE user_id = $1 AND revoked_at IS NULL AND ($3 IS NULL OR id <> $3)",
            )
            .bind(id.as_uuid())
            .bind(to_micros(now))
            .bind(keep)
            .execute(&mut *tx)
            .await?;
            tx.append_audit(&event, now).await?;
        });
        self.cache.forget_user(id);
        Ok(())
    }

    /// Stores a rehashed password (stronger parameters) without ending any session.
    pub(crate) async fn upgrade_password_hash(
        &self,
        id: UserId,
        old: &str,
        new: &str,
    ) -> Result<(), AuthError> {
        // Only if unchanged meanwhile: a concurrent password change wins.
        with_pool!(self.db, |pool| {
            sqlx::query(
                "UPDATE auth_users SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
            )
            .bind(id.as_uuid())
            .bind(old)
            .bind(new)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Reserves a login attempt for `email` in `tenant` (see the module docs).
    pub(crate) async fn reserve_attempt(
        &self,
        tenant: TenantId,
        email: &str,
        policy: &LockoutPolicy,
    ) -> Result<Attempt, AuthError> {
        let now = to_micros(self.clock.now());
        let Ok((_, norm)) = normalize_email(email) else {
            self.count_refusal(tenant, email, now).await?;
            return Ok(Attempt::Refused(Refusal::Unknown));
        };
        // Every path makes the same round trips, one read and one committed write, so
        // the time an answer takes says nothing about whether the account exists: an
        // account that may try reserves its attempt (the write), any other login counts a
        // refusal (the write).
        let row: Option<UserRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(BY_EMAIL)
                .bind(tenant.as_uuid())
                .bind(&norm)
                .fetch_optional(pool)
                .await?
        });
        let may_try = row.as_ref().is_some_and(|r| {
            r.status == UserStatus::Active.as_str()
                && r.locked_until.is_none_or(|t| t <= now)
                && r.failed_attempts < i64::from(policy.max_failures)
        });
        if may_try {
            // The reservation itself is the conditional update: the database serializes
            // parallel attempts on the row, so no burst gets past the limit.
            let reserved: Option<UserRow> = with_pool!(self.db, |pool| {
                sqlx::query_as(concat!(
                    "UPDATE auth_users SET failed_attempts = failed_attempts + 1 \
                     WHERE tenant_id = $1 AND email_norm = $2 AND status = 'active' \
                     AND (locked_until IS NULL OR locked_until <= $3) AND failed_attempts < $4 \
                     RETURNING ",
                    user_columns!()
                ))
                .bind(tenant.as_uuid())
                .bind(&norm)
                .bind(now)
                .bind(i64::from(policy.max_failures))
                .fetch_optional(pool)
                .await?
            });
            if let Some(row) = reserved {
                let n = row.failed_attempts;
                return Ok(Attempt::Proceed(Box::new(row), n));
            }
            // Another attempt took the last slot meanwhile.
        }
        self.count_refusal(tenant, &norm, now).await?;
        Ok(Attempt::Refused(match row {
            None => Refusal::Unknown,
            Some(r) if r.status == UserStatus::Disabled.as_str() => Refusal::Disabled,
            Some(_) => Refusal::Locked,
        }))
    }

    /// Counts a refused login in the tenant's bucket for `email_norm`: one committed write,
    /// as a wrong password makes, so refusals and wrong passwords take the same time.
    async fn count_refusal(
        &self,
        tenant: TenantId,
        email_norm: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        let bucket = i32::from(Sha256::digest(email_norm.as_bytes())[0] & 0x0f);
        with_pool!(self.db, |pool| {
            sqlx::query(
                "INSERT INTO auth_login_refusals (tenant_id, bucket, refusals, last_at) \
                 VALUES ($1, $2, 1, $3) ON CONFLICT (tenant_id, bucket) \
                 DO UPDATE SET refusals = auth_login_refusals.refusals + 1, last_at = $3",
            )
            .bind(tenant.as_uuid())
            .bind(bucket)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Refused logins (unknown email, disabled or locked account) counted in `tenant` since
    /// it was created. Needs [`USERS_READ`] there.
    pub async fn refused_logins(
        &self,
        actor: &Principal,
        tenant: TenantId,
    ) -> Result<u64, AuthError> {
        actor.require(tenant, &USERS_READ)?;
        let n: Option<i64> = with_pool!(self.db, |pool| {
            sqlx::query_scalar(
                "SELECT CAST(SUM(refusals) AS BIGINT) FROM auth_login_refusals WHERE tenant_id = $1",
            )
            .bind(tenant.as_uuid())
            .fetch_one(pool)
            .await?
        });
        Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
    }

    /// A successful login: the counters start again.
    pub(crate) async fn attempt_succeeded(&self, id: UserId) -> Result<(), AuthError> {
        with_pool!(self.db, |pool| {
            sqlx::query(
                "UPDATE auth_users SET failed_attempts = 0, lockouts = 0, locked_until = NULL \
                 WHERE id = $1",
            )
            .bind(id.as_uuid())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// A failed attempt that used the last allowed slot locks the account; returns the lock
    /// (until when, or `None` for permanent) if this call locked it.
    pub(crate) async fn attempt_failed(
        &self,
        id: UserId,
        attempt: i64,
        policy: &LockoutPolicy,
    ) -> Result<Option<Option<DateTime<Utc>>>, AuthError> {
        if attempt < i64::from(policy.max_failures) {
            return Ok(None);
        }
        let now = self.clock.now();
        let locked: Option<i64> = with_write_tx!(self.db, |tx| {
            let lockouts: Option<i64> = sqlx::query_scalar(
                "UPDATE auth_users SET lockouts = lockouts + 1, failed_attempts = 0 \
                 WHERE id = $1 AND failed_attempts >= $2 RETURNING lockouts",
            )
            .bind(id.as_uuid())
            .bind(i64::from(policy.max_failures))
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(n) = lockouts {
                let permanent = policy.permanent_after.is_some_and(|p| n >= i64::from(p));
                let until = now + policy.wait(u32::try_from(n).unwrap_or(u32::MAX));
                sqlx::query(
                    "UPDATE auth_users SET locked_until = $2, \
                     status = CASE WHEN $3 THEN 'locked' ELSE status END WHERE id = $1",
                )
                .bind(id.as_uuid())
                .bind(to_micros(until))
                .bind(permanent)
                .execute(&mut *tx)
                .await?;
                Some(if permanent { -1 } else { to_micros(until) })
            } else {
                None
            }
        });
        if locked.is_some() {
            self.cache.forget_user(id);
        }
        Ok(locked.map(|t| {
            (t >= 0)
                .then(|| ate_core::db::from_micros(t).ok())
                .flatten()
        }))
    }

    /// Sets `not_before` to now: every access token issued so far stops verifying.
    pub(crate) async fn revoke_tokens_before_now(&self, id: UserId) -> Result<(), AuthError> {
        let now = to_micros(self.clock.now());
        with_pool!(self.db, |pool| {
            sqlx::query("UPDATE auth_users SET not_before = $2 WHERE id = $1")
                .bind(id.as_uuid())
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        self.cache.forget_user(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_waits_grow_to_the_maximum() {
        let p = LockoutPolicy::default();
        assert_eq!(p.wait(1), TimeDelta::minutes(1));
        assert_eq!(p.wait(2), TimeDelta::minutes(2));
        assert_eq!(p.wait(4), TimeDelta::minutes(8));
        assert_eq!(p.wait(5), TimeDelta::minutes(15));
        assert_eq!(p.wait(1000), TimeDelta::minutes(15));
        assert!(p.validate().is_ok());
        assert!(p.with_max_failures(0).validate().is_err());
        assert!(p.with_permanent_after(Some(0)).validate().is_err());
        assert!(
            p.with_waits(TimeDelta::minutes(10), TimeDelta::minutes(1))
                .validate()
                .is_err()
        );
    }
}
