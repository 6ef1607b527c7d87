//! [`UserStore`]: the users of every tenant in a [`Db`], read one at a time or page by page,
//! and the facts that verifying an access token needs (cached in `Auth`'s verification cache).
//! Creating users is in [`create`](super::create), changing them in [`update`](super::update)
//! and [`credentials`](super::credentials), login attempts in [`lockout`](super::lockout).

use super::model::{RolePermissions, USERS_READ, User, UserCounts};
use super::row::{BY_ID, LIST, OptionBool, UserRow, user_columns};
use crate::error::AuthError;
use crate::verify_cache::{VerifyCache, VerifyFacts};
use ate_core::{
    Clock, CoreError, Cursor, Db, Page, Principal, SqlTenantStore, SystemClock, TenantChanges,
    TenantId, TenantStatus, TenantStore, UserId, with_pool,
};
use std::sync::Arc;

/// Users of every tenant in a [`Db`].
#[derive(Debug, Clone)]
pub struct UserStore {
    pub(super) db: Db,
    pub(super) tenants: SqlTenantStore,
    /// The tenant-change feed the verification cache follows (one per `Db` handle).
    pub(super) tenant_changes: TenantChanges,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) cache: Arc<VerifyCache>,
    /// The deployment's extra role permissions, in every principal built here.
    pub(super) role_permissions: Arc<RolePermissions>,
}

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

const CURSOR_KIND: &str = "users";

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
            role_permissions: Arc::default(),
        })
    }

    /// Adds `extra` to what each role carries ([`RolePermissions`]).
    pub fn with_role_permissions(mut self, extra: RolePermissions) -> Self {
        self.role_permissions = Arc::new(extra);
        self
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

    pub(super) async fn fetch(&self, tenant: TenantId, id: UserId) -> Result<User, AuthError> {
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
                    principal: user.principal_with(&self.role_permissions)?,
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

    /// User `id` wherever it is, for an actor that does not know its tenant: a platform
    /// administrator, or an actor allowed to read it in its own tenant (as
    /// [`get`](Self::get)). A user of another tenant is `NotFound`, like a missing one.
    pub async fn get_any(&self, actor: &Principal, id: UserId) -> Result<User, AuthError> {
        let tenant = match self.tenant_of(id).await? {
            Some(t) if actor.is_platform_admin() || actor.tenant() == Some(t) => t,
            _ => return Err(CoreError::not_found("user", id).into()),
        };
        self.get(actor, tenant, id).await
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

    /// How many users `tenant` has, by status: what counts against its `max_users` quota.
    /// Needs [`USERS_READ`].
    pub async fn count(
        &self,
        actor: &Principal,
        tenant: TenantId,
    ) -> Result<UserCounts, AuthError> {
        actor.require(tenant, &USERS_READ)?;
        let rows: Vec<(String, i64)> = with_pool!(self.db, |pool| {
            sqlx::query_as(
                "SELECT status, CAST(COUNT(*) AS BIGINT) FROM auth_users \
                 WHERE tenant_id = $1 GROUP BY status",
            )
            .bind(tenant.as_uuid())
            .fetch_all(pool)
            .await?
        });
        let mut counts = UserCounts::default();
        for (status, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            counts.total += n;
            match status.as_str() {
                "active" => counts.active += n,
                "disabled" => counts.disabled += n,
                _ => counts.locked += n,
            }
        }
        Ok(counts)
    }
}
