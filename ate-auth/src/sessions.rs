//! Login sessions and their refresh tokens (one family per session).
//!
//! A refresh token is 256 random bits, shown to the client once as `atr_<base64url>` and
//! stored only as its SHA-256. Each refresh *spends* the presented token and issues its
//! successor in one transaction, so two concurrent refreshes of one token can never both
//! succeed as "first": the database serializes them and the second sees a spent token.
//!
//! * Presenting a **spent** token is reuse: the whole family (session) is revoked and a
//!   critical `authn_token_reuse` event is recorded — unless it comes within the short
//!   **grace** period after the spend, when the client most likely retried after losing the
//!   response: then it gets the *same* successor again. The successor is derived as
//!   `HMAC-SHA256(session secret, spent token)`, so it can be handed out again without ever
//!   being stored; the session secret alone (readable in the database) derives nothing
//!   without the token, which is stored only as a hash.
//! * Sessions end at an **absolute** lifetime and after an **idle** lifetime without a
//!   refresh; users list their sessions and end one or all of them.

use crate::error::AuthError;
use crate::verify_cache::VerifyCache;
use ate_core::audit::{NewAuditEvent, Outcome, actions};
use ate_core::db::{from_micros, to_micros};
use ate_core::{Clock, CoreError, CoreTx, Db, TenantId, UserId, with_pool, with_write_tx};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::Arc;
use uuid::Uuid;
use zeroize::Zeroizing;

/// The prefix of every refresh token (lets secret scanners recognize leaked ones).
pub const REFRESH_TOKEN_PREFIX: &str = "atr_";

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

/// A refresh token as handed to a client. Zeroized on drop, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(Zeroizing<String>);

impl RefreshToken {
    fn random() -> Result<Self, AuthError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut bytes[..])
            .map_err(|e| AuthError::Crypto(format!("no randomness: {e}")))?;
        Ok(Self::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8; 32]) -> Self {
        RefreshToken(Zeroizing::new(format!(
            "{REFRESH_TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(bytes)
        )))
    }

    /// Wraps a token presented by a client (checked when used).
    pub fn from_client(token: impl Into<String>) -> Self {
        RefreshToken(Zeroizing::new(token.into()))
    }

    /// The token text, to hand to the client. Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    fn well_formed(&self) -> bool {
        self.0.len() == REFRESH_TOKEN_PREFIX.len() + 43
            && self.0.starts_with(REFRESH_TOKEN_PREFIX)
            && URL_SAFE_NO_PAD
                .decode(&self.0[REFRESH_TOKEN_PREFIX.len()..])
                .is_ok_and(|b| b.len() == 32)
    }

    /// The successor of this token in a session with `secret`.
    fn successor(&self, secret: &[u8]) -> Self {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        let tag = ring::hmac::sign(&key, self.0.as_bytes());
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(tag.as_ref());
        Self::from_bytes(&bytes)
    }
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken([REDACTED])")
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

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    tenant_id: Uuid,
    user_id: Uuid,
    secret: Vec<u8>,
    created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    idle_expires_at: i64,
    revoked_at: Option<i64>,
    revoked_reason: Option<String>,
    client_addr: Option<String>,
    user_agent: Option<String>,
}

macro_rules! session_columns {
    () => {
        "id, tenant_id, user_id, secret, created_at, last_used_at, expires_at, idle_expires_at, \
         revoked_at, revoked_reason, client_addr, user_agent"
    };
}

impl SessionRow {
    fn session(&self) -> Result<Session, AuthError> {
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

/// What a successful refresh gives.
#[derive(Debug)]
#[non_exhaustive]
pub struct Refreshed {
    /// The session.
    pub session: Session,
    /// The successor token.
    pub token: RefreshToken,
    /// Whether this was a retry inside the grace period (the same successor as before).
    pub retried: bool,
}

/// Sessions and refresh tokens in a [`Db`].
#[derive(Debug, Clone)]
pub struct SessionStore {
    db: Db,
    clock: Arc<dyn Clock>,
    policy: SessionPolicy,
    cache: Option<Arc<VerifyCache>>,
}

const REUSE_REASON: &str = "token_reuse";

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

    fn forget_cached(&self, user: UserId) {
        if let Some(cache) = &self.cache {
            cache.forget_user(user);
        }
    }

    /// Starts a session for a user who has just authenticated; returns it with its first
    /// refresh token.
    pub(crate) async fn start(
        &self,
        tenant: TenantId,
        user: UserId,
        client_addr: Option<IpAddr>,
        user_agent: Option<&str>,
    ) -> Result<(Session, RefreshToken), AuthError> {
        let now = self.clock.now();
        let id = Uuid::now_v7();
        let token = RefreshToken::random()?;
        let mut secret = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut secret[..])
            .map_err(|e| AuthError::Crypto(format!("no randomness: {e}")))?;
        let ua = user_agent.map(|u| u.chars().take(512).collect::<String>());
        let expires = now + self.policy.absolute_lifetime;
        let idle = (now + self.policy.idle_lifetime).min(expires);
        with_write_tx!(self.db, |tx| {
            sqlx::query(concat!(
                "INSERT INTO auth_sessions (",
                session_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $5, $6, $7, NULL, NULL, $8, $9)"
            ))
            .bind(id)
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .bind(&secret[..])
            .bind(to_micros(now))
            .bind(to_micros(expires))
            .bind(to_micros(idle))
            .bind(client_addr.map(|a| a.to_string()))
            .bind(&ua)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO auth_refresh_tokens (token_hash, session_id, generation, issued_at) \
                 VALUES ($1, $2, 1, $3)",
            )
            .bind(&token.hash()[..])
            .bind(id)
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await?;
        });
        let session = self.get(id).await?;
        Ok((session, token))
    }

    async fn get(&self, id: Uuid) -> Result<Session, AuthError> {
        let row: Option<SessionRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                session_columns!(),
                " FROM auth_sessions WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        row.ok_or_else(|| CoreError::not_found("session", id))?
            .session()
    }

    /// The session `token` belongs to, without spending it (so a caller can check the user
    /// first: a refused refresh must not burn the token).
    pub(crate) async fn peek(&self, token: &RefreshToken) -> Result<Session, AuthError> {
        if !token.well_formed() {
            return Err(AuthError::token("not a refresh token"));
        }
        let row: Option<SessionRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                session_columns!(),
                " FROM auth_sessions WHERE id = \
                 (SELECT session_id FROM auth_refresh_tokens WHERE token_hash = $1)"
            ))
            .bind(&token.hash()[..])
            .fetch_optional(pool)
            .await?
        });
        row.ok_or_else(|| AuthError::token("unknown refresh token"))?
            .session()
    }

    /// Spends `token` and issues its successor (see the module docs). Every failure is
    /// [`AuthError::InvalidToken`]; reuse also revokes the family and is audited.
    pub(crate) async fn refresh(&self, token: &RefreshToken) -> Result<Refreshed, AuthError> {
        if !token.well_formed() {
            return Err(AuthError::token("not a refresh token"));
        }
        let hash = token.hash();
        let now = self.clock.now();
        enum Step {
            Fresh(Session, RefreshToken),
            Retry(Session, RefreshToken),
            Reused(Session),
        }
        let step: Result<Step, AuthError> = async {
            Ok(with_write_tx!(self.db, |tx| {
                // Lock the token's session row first so concurrent refreshes serialize.
                let found: Option<(Uuid, i64)> = sqlx::query_as(
                    "SELECT session_id, generation FROM auth_refresh_tokens WHERE token_hash = $1",
                )
                .bind(&hash[..])
                .fetch_optional(&mut *tx)
                .await?;
                let Some((session_id, generation)) = found else {
                    return Err(AuthError::token("unknown refresh token"));
                };
                let row: SessionRow = sqlx::query_as(concat!(
                    "UPDATE auth_sessions SET last_used_at = last_used_at WHERE id = $1 RETURNING ",
                    session_columns!()
                ))
                .bind(session_id)
                .fetch_one(&mut *tx)
                .await?;
                // Re-read under the lock: a concurrent refresh may have spent it meanwhile.
                let (spent_at, successor_hash): (Option<i64>, Option<Vec<u8>>) = sqlx::query_as(
                    "SELECT spent_at, successor_hash FROM auth_refresh_tokens WHERE token_hash = $1",
                )
                .bind(&hash[..])
                .fetch_one(&mut *tx)
                .await?;
                let session = row.session()?;
                if session.revoked_at.is_some() {
                    return Err(AuthError::token("the session has ended"));
                }
                if now >= session.expires_at || now >= session.idle_expires_at {
                    return Err(AuthError::token("the session has expired"));
                }
                let successor = token.successor(&row.secret);
                if let Some(spent) = spent_at {
                    let within_grace = now - from_micros(spent)? <= self.policy.reuse_grace;
                    let same = successor_hash
                        .as_deref()
                        .is_some_and(|h| h == successor.hash().as_slice());
                    if within_grace && same {
                        Step::Retry(session, successor)
                    } else {
                        sqlx::query(
                            "UPDATE auth_sessions SET revoked_at = $2, revoked_reason = $3 \
                             WHERE id = $1",
                        )
                        .bind(session_id)
                        .bind(to_micros(now))
                        .bind(REUSE_REASON)
                        .execute(&mut *tx)
                        .await?;
                        Step::Reused(session)
                    }
                } else {
                    sqlx::query(
                        "UPDATE auth_refresh_tokens SET spent_at = $2, successor_hash = $3 \
                         WHERE token_hash = $1",
                    )
                    .bind(&hash[..])
                    .bind(to_micros(now))
                    .bind(&successor.hash()[..])
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO auth_refresh_tokens (token_hash, session_id, generation, \
                         issued_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&successor.hash()[..])
                    .bind(session_id)
                    .bind(generation + 1)
                    .bind(to_micros(now))
                    .execute(&mut *tx)
                    .await?;
                    let idle = (now + self.policy.idle_lifetime).min(session.expires_at);
                    sqlx::query(
                        "UPDATE auth_sessions SET last_used_at = $2, idle_expires_at = $3 \
                         WHERE id = $1",
                    )
                    .bind(session_id)
                    .bind(to_micros(now))
                    .bind(to_micros(idle))
                    .execute(&mut *tx)
                    .await?;
                    Step::Fresh(session, successor)
                }
            }))
        }
        .await;
        match step? {
            Step::Fresh(s, token) => Ok(Refreshed {
                session: self.get(s.id).await?,
                token,
                retried: false,
            }),
            Step::Retry(s, token) => Ok(Refreshed {
                session: s,
                token,
                retried: true,
            }),
            Step::Reused(s) => {
                self.forget_cached(s.user);
                self.audit_reuse(&s).await?;
                Err(AuthError::token(
                    "refresh token reused: the session has been revoked",
                ))
            }
        }
    }

    async fn audit_reuse(&self, s: &Session) -> Result<(), AuthError> {
        let event = NewAuditEvent::new(
            s.tenant,
            format!("user:{}", s.user),
            actions::AUTHN_TOKEN_REUSE,
            Outcome::Failure,
        )
        .target(format!("session:{}", s.id))
        .metadata(json!({ "severity": "critical", "family_revoked": true }))
        .validate()?;
        let now = self.clock.now();
        with_write_tx!(self.db, |tx| {
            tx.append_audit(&event, now).await?;
        });
        Ok(())
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
    fn tokens_are_prefixed_random_and_redacted() {
        let a = RefreshToken::random().unwrap();
        let b = RefreshToken::random().unwrap();
        assert_ne!(a, b);
        assert!(a.well_formed());
        assert!(a.expose_secret().starts_with(REFRESH_TOKEN_PREFIX));
        assert!(!format!("{a:?}").contains(&a.expose_secret()[4..]));
        for bad in [
            "",
            "atr_",
            "atr_!!!",
            "xyz_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(!RefreshToken::from_client(bad).well_formed(), "{bad:?}");
        }
        // The successor is a function of the token and the session secret only.
        assert_eq!(a.successor(b"s1"), a.successor(b"s1"));
        assert_ne!(a.successor(b"s1"), a.successor(b"s2"));
        assert_ne!(a.successor(b"s1"), b.successor(b"s1"));
        assert!(a.successor(b"s1").well_formed());
    }

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
