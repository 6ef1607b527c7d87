//! Refresh tokens: one family per login session.
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
//!
//! The session they belong to is in [`sessions`](crate::sessions).

use crate::error::AuthError;
use crate::sessions::{Session, SessionRow, SessionStore, session_columns};
use crate::users::RESET_ATTEMPTS;
use ate_core::audit::{NewAuditEvent, Outcome, ValidEvent, actions};
use ate_core::db::{from_micros, to_micros};
use ate_core::{CoreTx, TenantId, UserId, with_pool, with_write_tx};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use uuid::Uuid;
use zeroize::Zeroizing;

/// The prefix of every refresh token (lets secret scanners recognize leaked ones).
pub const REFRESH_TOKEN_PREFIX: &str = "atr_";

/// A refresh token as handed to a client. Zeroized on drop, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(Zeroizing<String>);

impl RefreshToken {
    pub(crate) fn random() -> Result<Self, AuthError> {
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

    pub(crate) fn hash(&self) -> [u8; 32] {
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

/// Who is logging in, from where: what a new session records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Login<'a> {
    pub(crate) tenant: TenantId,
    pub(crate) user: UserId,
    pub(crate) client_addr: Option<IpAddr>,
    pub(crate) user_agent: Option<&'a str>,
}

/// Why a session ends when one of its spent tokens comes back.
const REUSE_REASON: &str = "token_reuse";

impl SessionStore {
    /// Starts a session for a user who has just authenticated and returns it with its first
    /// refresh token. The login's other writes commit with it, in one transaction: the
    /// user's failed-attempt counters start again and `event` (the login's audit event,
    /// naming session `id`) joins the tenant's chain. A tenant deleted meanwhile refuses the
    /// login and nothing is written.
    pub(crate) async fn start(
        &self,
        login: &Login<'_>,
        id: Uuid,
        event: &ValidEvent,
    ) -> Result<(Session, RefreshToken), AuthError> {
        let now = self.clock.now();
        let token = RefreshToken::random()?;
        let mut secret = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut secret[..])
            .map_err(|e| AuthError::Crypto(format!("no randomness: {e}")))?;
        let ua = login
            .user_agent
            .map(|u| u.chars().take(512).collect::<String>());
        let expires = now + self.policy.absolute_lifetime;
        let idle = (now + self.policy.idle_lifetime).min(expires);
        let row: SessionRow = with_write_tx!(self.db, |tx| {
            sqlx::query(RESET_ATTEMPTS)
                .bind(login.user.as_uuid())
                .execute(&mut *tx)
                .await?;
            let row: SessionRow = sqlx::query_as(concat!(
                "INSERT INTO auth_sessions (",
                session_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $5, $6, $7, NULL, NULL, $8, $9) RETURNING ",
                session_columns!()
            ))
            .bind(id)
            .bind(login.tenant.as_uuid())
            .bind(login.user.as_uuid())
            .bind(&secret[..])
            .bind(to_micros(now))
            .bind(to_micros(expires))
            .bind(to_micros(idle))
            .bind(login.client_addr.map(|a| a.to_string()))
            .bind(&ua)
            .fetch_one(&mut *tx)
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
            if tx.append_audit_if_live(event, now).await?.is_none() {
                return Err(AuthError::InvalidCredentials);
            }
            row
        });
        Ok((row.session()?, token))
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
    /// [`AuthError::InvalidToken`]; reuse also revokes the family and is audited. A first
    /// spend appends `event` (the caller's `authn_token_created` for this session) in the
    /// same transaction; a retry within the grace period appends nothing; a tenant deleted
    /// meanwhile refuses the refresh without spending the token.
    pub(crate) async fn refresh(
        &self,
        token: &RefreshToken,
        event: &ValidEvent,
    ) -> Result<Refreshed, AuthError> {
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
                    let row: SessionRow = sqlx::query_as(concat!(
                        "UPDATE auth_sessions SET last_used_at = $2, idle_expires_at = $3 \
                         WHERE id = $1 RETURNING ",
                        session_columns!()
                    ))
                    .bind(session_id)
                    .bind(to_micros(now))
                    .bind(to_micros(idle))
                    .fetch_one(&mut *tx)
                    .await?;
                    if tx.append_audit_if_live(event, now).await?.is_none() {
                        return Err(AuthError::token("the tenant is not active"));
                    }
                    Step::Fresh(row.session()?, successor)
                }
            }))
        }
        .await;
        match step? {
            Step::Fresh(session, token) => Ok(Refreshed {
                session,
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
}
