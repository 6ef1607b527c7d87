//! Keyed rate limits for login and refresh: per tenant and per client address.
//!
//! Fixed-window counters in the database (`auth_rate_limits`), so every host process that
//! shares the database shares the limits. Each hit is one upsert that starts a new window or
//! counts in the current one and returns the count, atomically on SQLite and PostgreSQL: a
//! burst of parallel requests cannot exceed the limit.

use crate::error::AuthError;
use ate_core::{Clock, Db, TenantId, with_pool};
use chrono::TimeDelta;
use std::net::IpAddr;
use std::sync::Arc;

/// One limit: at most `max` hits per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Hits allowed per window.
    pub max: u32,
    /// The window.
    pub window: TimeDelta,
}

impl Limit {
    /// `max` hits per `window`.
    pub fn new(max: u32, window: TimeDelta) -> Self {
        Limit { max, window }
    }

    fn validate(&self) -> Result<(), AuthError> {
        if self.max == 0 || self.window < TimeDelta::seconds(1) || self.window > TimeDelta::days(1)
        {
            return Err(AuthError::invalid(
                "rate limit",
                "max must be positive and the window 1 s to 1 day",
            ));
        }
        Ok(())
    }
}

/// The rate limits of login and refresh (`None`: no limit of that kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimits {
    /// Logins per tenant (default 300 a minute).
    pub login_per_tenant: Option<Limit>,
    /// Logins per client address (default 20 a minute).
    pub login_per_client: Option<Limit>,
    /// Refreshes per client address (default 120 a minute).
    pub refresh_per_client: Option<Limit>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            login_per_tenant: Some(Limit::new(300, TimeDelta::minutes(1))),
            login_per_client: Some(Limit::new(20, TimeDelta::minutes(1))),
            refresh_per_client: Some(Limit::new(120, TimeDelta::minutes(1))),
        }
    }
}

impl RateLimits {
    /// No limits at all.
    pub fn none() -> Self {
        RateLimits {
            login_per_tenant: None,
            login_per_client: None,
            refresh_per_client: None,
        }
    }

    /// Validates every limit.
    pub fn validate(&self) -> Result<(), AuthError> {
        [
            self.login_per_tenant,
            self.login_per_client,
            self.refresh_per_client,
        ]
        .iter()
        .flatten()
        .try_for_each(Limit::validate)
    }
}

/// Counts hits against [`RateLimits`].
#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    db: Db,
    clock: Arc<dyn Clock>,
    limits: RateLimits,
}

impl RateLimiter {
    pub(crate) fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        limits: RateLimits,
    ) -> Result<Self, AuthError> {
        limits.validate()?;
        Ok(RateLimiter { db, clock, limits })
    }

    /// Counts a login attempt against the tenant's and the client's limits.
    pub(crate) async fn login(
        &self,
        tenant: TenantId,
        client: Option<IpAddr>,
    ) -> Result<(), AuthError> {
        if let Some(limit) = self.limits.login_per_tenant {
            self.hit(&format!("login:tenant:{tenant}"), limit).await?;
        }
        if let (Some(limit), Some(addr)) = (self.limits.login_per_client, client) {
            self.hit(&format!("login:client:{}", client_key(addr)), limit)
                .await?;
        }
        Ok(())
    }

    /// Counts a refresh against the client's limit.
    pub(crate) async fn refresh(&self, client: Option<IpAddr>) -> Result<(), AuthError> {
        if let (Some(limit), Some(addr)) = (self.limits.refresh_per_client, client) {
            self.hit(&format!("refresh:client:{}", client_key(addr)), limit)
                .await?;
        }
        Ok(())
    }

    async fn hit(&self, key: &str, limit: Limit) -> Result<(), AuthError> {
        let now = self.clock.now().timestamp_micros();
        let window = limit.window.num_microseconds().unwrap_or(i64::MAX).max(1);
        let start = now - now.rem_euclid(window);
        let hits: i64 = with_pool!(self.db, |pool| {
            sqlx::query_scalar(
                "INSERT INTO auth_rate_limits (key, window_start, hits) VALUES ($1, $2, 1) \
                 ON CONFLICT (key) DO UPDATE SET \
                 hits = CASE WHEN auth_rate_limits.window_start = $2 \
                             THEN auth_rate_limits.hits + 1 ELSE 1 END, \
                 window_start = $2 \
                 RETURNING hits",
            )
            .bind(key)
            .bind(start)
            .fetch_one(pool)
            .await?
        });
        if hits > i64::from(limit.max) {
            let retry = (start + window - now).max(0);
            return Err(AuthError::RateLimited {
                retry_after_secs: u64::try_from(retry).unwrap_or(0).div_ceil(1_000_000).max(1),
            });
        }
        Ok(())
    }
}

/// The key a client address is limited under: IPv4 per address, IPv6 per /64 (one
/// subscriber's allocation; an IPv4-mapped address as its IPv4 address). Hosts keying
/// limits of their own use it too.
///
/// ```
/// use ate_auth::ratelimit::client_key;
/// assert_eq!(client_key("2001:db8:1:2::7".parse().unwrap()), "2001:db8:1:2::/64");
/// ```
pub fn client_key(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = a.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_keyed_by_address_or_v6_prefix() {
        assert_eq!(client_key("203.0.113.9".parse().unwrap()), "203.0.113.9");
        assert_eq!(
            client_key("2001:db8:1:2:aaaa::1".parse().unwrap()),
            client_key("2001:db8:1:2:bbbb::9".parse().unwrap())
        );
        assert_ne!(
            client_key("2001:db8:1:2::1".parse().unwrap()),
            client_key("2001:db8:1:3::1".parse().unwrap())
        );
        assert_eq!(client_key("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1");
    }

    #[test]
    fn limits_validate() {
        assert!(RateLimits::default().validate().is_ok());
        let bad = RateLimits {
            login_per_client: Some(Limit::new(0, TimeDelta::minutes(1))),
            ..RateLimits::default()
        };
        assert!(bad.validate().is_err());
    }
}
