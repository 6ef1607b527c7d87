//! A user's credentials: replacing the password hash (ending sessions), upgrading it to
//! stronger parameters, and invalidating every access token issued so far.

use super::create::user_event;
use super::store::UserStore;
use crate::error::AuthError;
use ate_core::audit::actions;
use ate_core::db::to_micros;
use ate_core::{CoreError, CoreTx, TenantId, UserId, with_pool, with_write_tx};
use serde_json::json;

impl UserStore {
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
