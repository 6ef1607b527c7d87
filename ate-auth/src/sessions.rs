//! Login sessions: one per login, each a refresh-token family (the tokens themselves, starting
//! a session with its first token and the refresh flow are in
//! [`tokens::refresh`](crate::tokens::refresh)).
//!
//! Sessions end at an **absolute** lifetime and after an **idle** lifetime without a
//! refresh; users list their sessions and end one or all of them.

use crate::error::AuthError;
use crate::verify_cache::VerifyCache;
use ate_core::db::{from_micros, to_micros};
use ate_core::{Clock, Db, TenantId, UserId, with_pool};
use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Arc;
use uuid::Uuid;

/// Session lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionPolicy {
    /// A session ends this long after login, refreshed or not (default 30 days).
    pub absolute_lifetime: TimeDelta,
    /// A session ends after this long without a refresh (default 7 days).
    pub idle_lifetime: TimeDelta,
    /// How long after a spend the same token still yields the same successor (default 10 s;
    /// zero disables).
    pub reuse_grace: TimeDelta,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            absolute_lifetime: TimeDelta::days(30),
            idle_lifetime: TimeDelta::days(7),
            reuse_grace: TimeDelta::seconds(10),
        }
    }
}

impl SessionPolicy {
    /// Validates the policy.
    pub fn validate(&self) -> Result<(), AuthError> {
        if self.idle_lifetime <= TimeDelta::zero() || self.absolute_lifetime < self.idle_lifetime {
            return Err(AuthError::invalid(
                "session policy",
                "idle_lifetime must be positive and at most absolute_lifetime",
            ));
        }
        if self.reuse_grace < TimeDelta::zero() || self.reuse_grace > TimeDelta::minutes(1) {
            return Err(AuthError::invalid(
                "session policy",
                "reuse_grace must be 0 to 60 seconds",
            ));
        }
        Ok(())
    }
}

/// A login session (a refresh-token family), without secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Session {
    /// The session id.
    pub id: Uuid,
    /// The tenant.
    pub tenant: TenantId,
    /// The user.
    pub user: UserId,
    /// Login time.
    pub created_at: DateTime<Utc>,
    /// Last refresh (or login).
    pub last_used_at: DateTime<Utc>,
    /// The absolute end.
    pub expires_at: DateTime<Utc>,
    /// The idle end, pushed forward by each refresh.
    pub idle_expires_at: DateTime<Utc>,
    /// When it was ended, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why (`logout`, `token_reuse`, `user_disabled`, `password_changed`, …).
    pub revoked_reason: Option<String>,
    /// Client address at login.
    pub client_addr: Option<String>,
    /// User agent at login.
    pub user_agent: Option<String>,
}

/// A stored session, with its secret (the key its successor tokens are derived with).
#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: Uuid,
    tenant_id: Uuid,
    user_id: Uuid,
    pub(crate) secret: Vec<u8>,
    created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    idle_expires_at: i64,
    revoked_at: Option<i64>,
    revoked_reason: Option<String>,
    client_addr: Option<String>,
    user_agent: Option<String>,
}

/// The columns of `auth_sessions` read into [`SessionRow`].
macro_rules! session_columns {
    () => {
        "id, tenant_id, user_id, secret, created_at, last_used_at, expires_at, idle_expires_at, \
         revoked_at, revoked_reason, client_addr, user_agent"
    };
}
pub(crate) use session_columns;

impl SessionRow {
    pub(crate) fn session(&self) -> Result<Session, AuthError> {
        Ok(Session {
            id: self.id,
            tenant: TenantId::from_uuid(self.tenant_id)?,
            user: UserId::from_uuid(self.user_id)?,
            created_at: from_micros(self.created_at)?,
            last_used_at: from_micros(self.last_used_at)?,
            expires_at: from_micros(self.expires_at)?,
            idle_expires_at: from_micros(self.idle_expires_at)?,
            revoked_at: self.revoked_at.map(from_micros).transpose()?,
            revoked_reason: self.revoked_reason.clone(),
            client_addr: self.client_addr.clone(),
            user_agent: self.user_agent.clone(),
        })
    }
}

/// Sessions in a [`Db`] (refreshing one is in [`tokens::refresh`](crate::tokens::refresh)).
#[derive(Debug, Clone)]
pub struct SessionStore {
    pub(crate) db: Db,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) policy: SessionPolicy,
    cache: Option<Arc<VerifyCache>>,
}

impl SessionStore {
    /// A store over `db` (migrated by [`UserStore::open`](crate::UserStore::open)).
    pub fn new(db: Db, clock: Arc<dyn Clock>, policy: SessionPolicy) -> Result<Self, AuthError> {
        policy.validate()?;
        Ok(SessionStore {
            db,
            clock,
            policy,
            cache: None,
        })
    }

    /// Shares `Auth`'s verification cache, so ended sessions leave it at once.
    pub(crate) fn with_verify_cache(mut self, cache: Arc<VerifyCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    pub(crate) fn forget_cached(&self, user: UserId) {
        if let Some(cache) = &self.cache {
            cache.forget_user(user);
        }
    }

    /// The user's sessions, newest first (ended ones included, for a security page).
    pub async fn list(&self, tenant: TenantId, user: UserId) -> Result<Vec<Session>, AuthError> {
        let rows: Vec<SessionRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                session_columns!(),
                " FROM auth_sessions WHERE tenant_id = $1 AND user_id = $2 ORDER BY id DESC"
            ))
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .fetch_all(pool)
            .await?
        });
        rows.iter().map(SessionRow::session).collect()
    }

    /// Ends one of the user's sessions (or all of them with `None`); returns how many
    /// were still open.
    pub(crate) async fn end(
        &self,
        tenant: TenantId,
        user: UserId,
        session: Option<Uuid>,
        reason: &str,
    ) -> Result<u64, AuthError> {
        let now = to_micros(self.clock.now());
        let n = with_pool!(self.db, |pool| {
            sqlx::query(
                "UPDATE auth_sessions SET revoked_at = $4, revoked_reason = $5 \
                 WHERE tenant_id = $1 AND user_id = $2 AND ($3 IS NULL OR id = $3) \
                 AND revoked_at IS NULL",
            )
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .bind(session)
            .bind(now)
            .bind(reason)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.forget_cached(user);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_validate() {
        assert!(SessionPolicy::default().validate().is_ok());
        let p = SessionPolicy {
            idle_lifetime: TimeDelta::days(40),
            ..SessionPolicy::default()
        };
        assert!(p.validate().is_err());
        let p = SessionPolicy {
            reuse_grace: TimeDelta::minutes(5),
            ..SessionPolicy::default()
        };
        assert!(p.validate().is_err());
    }
}
