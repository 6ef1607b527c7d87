//! Per-client and per-tenant request rate limits (GCRA, governor): over the limit a request
//! is answered `429` with `Retry-After` before any handler runs.
//!
//! The counts live in this process: with several hosts behind a balancer, a client's
//! effective limit is the sum of theirs. The limits that must hold across hosts (login and
//! refresh attempts, lockout) are ate-auth's, counted in the database.

use super::problem::ApiError;
use crate::config::HttpSection;
use ate_auth::ratelimit::client_key;
use ate_core::{ErrorKind, Principal, TenantId};
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// The limiters of one host.
#[derive(Debug)]
pub(crate) struct Limits {
    per_client: Option<Keyed<String>>,
    per_tenant: Option<Keyed<TenantId>>,
}

impl Limits {
    /// Limiters from `[http]`; a rate of 0 turns one off. Keys not seen for a minute are
    /// forgotten (a task prunes them), so memory follows the active clients.
    pub(crate) fn new(http: &HttpSection) -> Arc<Limits> {
        let burst = NonZeroU32::new(http.rate_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota =
            |rate: u32| NonZeroU32::new(rate).map(|r| Quota::per_second(r).allow_burst(burst));
        let limits = Arc::new(Limits {
            per_client: quota(http.client_rate_per_sec).map(RateLimiter::keyed),
            per_tenant: quota(http.tenant_rate_per_sec).map(RateLimiter::keyed),
        });
        let weak = Arc::downgrade(&limits);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let Some(l) = weak.upgrade() else { return };
                if let Some(limiter) = &l.per_client {
                    limiter.retain_recent();
                    limiter.shrink_to_fit();
                }
                if let Some(limiter) = &l.per_tenant {
                    limiter.retain_recent();
                    limiter.shrink_to_fit();
                }
            }
        });
        limits
    }
}

fn refuse(wait: Duration, whom: &str) -> Response {
    let mut e = ApiError::new(
        ErrorKind::RateLimited,
        format!("too many requests from this {whom}; retry later"),
    );
    e.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
    e.into_response()
}

/// The refusal when `key` is over its rate.
fn check<K: Clone + Eq + std::hash::Hash>(
    limiter: &Keyed<K>,
    key: K,
    whom: &str,
) -> Option<Response> {
    let not_until = limiter.check_key(&key).err()?;
    Some(refuse(
        not_until.wait_time_from(DefaultClock::default().now()),
        whom,
    ))
}

/// Limits every request by its client's address.
pub(crate) async fn per_client(
    State(limits): State<Arc<Limits>>,
    req: Request,
    next: Next,
) -> Response {
    if let (Some(limiter), Some(ConnectInfo(peer))) = (
        &limits.per_client,
        req.extensions().get::<ConnectInfo<SocketAddr>>(),
    ) && let Some(refusal) = check(limiter, client_key(peer.ip()), "client")
    {
        return refusal;
    }
    next.run(req).await
}

/// Limits authenticated requests by their principal's tenant (platform administrators are
/// not limited).
pub(crate) async fn per_tenant(
    State(limits): State<Arc<Limits>>,
    req: Request,
    next: Next,
) -> Response {
    let tenant = req
        .extensions()
        .get::<Principal>()
        .and_then(Principal::tenant);
    if let (Some(limiter), Some(tenant)) = (&limits.per_tenant, tenant)
        && let Some(refusal) = check(limiter, tenant, "tenant")
    {
        return refusal;
    }
    next.run(req).await
}
