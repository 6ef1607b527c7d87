//! Login attempts and lockout: the counters that stay exact under parallel attempts.
//!
//! **Lockout** follows Keycloak's brute-force detection. A login first *reserves* an
//! attempt with one conditional `UPDATE … SET failed_attempts = failed_attempts + 1 WHERE
//! failed_attempts < max AND not locked`, before the password is checked: the database
//! serializes reservations on the user's row, so of N parallel guesses at most the
//! remaining allowance ever reach the password check. A success resets the counters; the
//! failure that uses the last slot locks the account for a wait that doubles with each
//! temporary lockout in a row (up to a maximum), and after a configured number of them the
//! lockout becomes permanent (status `locked`) until an administrator unlocks.

use super::model::{USERS_READ, UserStatus, normalize_email};
use super::row::{BY_EMAIL, UserRow, user_columns};
use super::store::UserStore;
use crate::error::AuthError;
use ate_core::db::to_micros;
use ate_core::{Principal, TenantId, UserId, with_pool, with_write_tx};
use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};

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
    pub fn max_failures(mut self, n: u32) -> Self {
        self.max_failures = n;
        self
    }

    /// Sets the first wait and the longest one.
    pub fn waits(mut self, increment: TimeDelta, max: TimeDelta) -> Self {
        self.wait_increment = increment;
        self.max_wait = max;
        self
    }

    /// Makes the lockout permanent after `n` temporary ones in a row.
    pub fn permanent_after(mut self, n: Option<u32>) -> Self {
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

/// A successful login: the user's counters start again. Runs in the transaction that starts
/// the session, so the two commit together.
pub(crate) const RESET_ATTEMPTS: &str =
    "UPDATE auth_users SET failed_attempts = 0, lockouts = 0, locked_until = NULL WHERE id = $1";

impl UserStore {
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
        assert!(p.max_failures(0).validate().is_err());
        assert!(p.permanent_after(Some(0)).validate().is_err());
        assert!(
            p.waits(TimeDelta::minutes(10), TimeDelta::minutes(1))
                .validate()
                .is_err()
        );
    }
}
