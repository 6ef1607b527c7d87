//! A short-lived, in-process cache of what [`Auth::verify`](crate::Auth::verify) reads from
//! the database: the tenant's status, the user's row and whether the token's session is
//! still open.
//!
//! Why: that one read is most of the cost of verifying a token (a SQLite round trip is
//! 100–150 µs against 40–400 µs for the signature; `benches/README.md`). Hosts verify the
//! same user's token on every request, so a cache turns the read into a hash lookup.
//!
//! What it may cost, and how that is bounded:
//!
//! * **Changes made through this process take effect at once.** Every write that can make
//!   a token unusable (disable, lock, role change, password change or reset, logout, "log
//!   out everywhere", a refresh-token reuse that revokes a family) drops the user's entries
//!   before it returns, and a tenant change through any tenant store on the same
//!   [`Db`](ate_core::Db) handle (suspend, delete, purge) drops every entry
//!   (it follows the [`TenantChanges`](ate_core::TenantChanges) generation). A read that raced with such a
//!   write is not stored: every invalidation bumps a generation, and an entry read before
//!   the bump is discarded instead of inserted.
//! * **Changes made by another process** sharing the database are seen after at most
//!   the time to live ([`AuthConfig::verify_cache_ttl`](crate::AuthConfig), default 1 s),
//!   the same bound as the denylist cache of single logouts. A zero TTL turns the cache
//!   off: every verification reads the database.
//! * Lock expiry is evaluated at verification time, not cache time, so a lock that ends is
//!   not extended by the cache and a lock taken elsewhere is the only thing that waits.
//! * Memory is bounded: at most [`AuthConfig::verify_cache_capacity`](crate::AuthConfig) entries; when full, expired
//!   entries are dropped, and if none are, the whole cache is cleared (misses, never
//!   stale answers).
//!
//! Paths that issue tokens (login, refresh) never use it: they always read the database.

use crate::users::User;
use ate_core::{Principal, UserId};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Default time to live of a cached entry.
pub const DEFAULT_VERIFY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Default number of entries (user × session) at most.
pub const DEFAULT_VERIFY_CACHE_CAPACITY: usize = 100_000;

/// What verification needs about a user, as read at `fetched_at`, with the principal the
/// user acts as (built once, not on every verification).
#[derive(Debug, Clone)]
pub(crate) struct VerifyFacts {
    pub(crate) tenant_active: bool,
    pub(crate) user: User,
    pub(crate) session_open: bool,
    pub(crate) principal: Principal,
}

#[derive(Debug)]
struct Entry {
    facts: Arc<VerifyFacts>,
    fetched_at: DateTime<Utc>,
    tenant_generation: u64,
}

/// The cache; shared (behind an `Arc`) by the user and session stores of one `Auth`.
#[derive(Debug)]
pub(crate) struct VerifyCache {
    ttl: TimeDelta,
    capacity: usize,
    /// Bumped by every invalidation; a read that started before a bump is not stored.
    generation: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    users: HashMap<UserId, HashMap<Option<Uuid>, Entry>>,
    len: usize,
}

/// A ticket taken before reading the database, redeemed to store what was read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    generation: u64,
    tenant_generation: u64,
}

impl VerifyCache {
    /// A cache keeping entries for `ttl` (zero: disabled), at most `capacity` of them.
    pub(crate) fn new(ttl: std::time::Duration, capacity: usize) -> Self {
        VerifyCache {
            ttl: TimeDelta::from_std(ttl).unwrap_or(TimeDelta::MAX),
            capacity,
            generation: AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// A cache that stores nothing.
    pub(crate) fn disabled() -> Self {
        VerifyCache::new(std::time::Duration::ZERO, 0)
    }

    fn enabled(&self) -> bool {
        self.ttl > TimeDelta::zero() && self.capacity > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map holds no invariant a panic elsewhere could break half-way.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached facts for `(user, session)`, if fresh at `now` and read after the last
    /// tenant change (`tenant_generation` is the tenant-change feed's current generation).
    pub(crate) fn get(
        &self,
        user: UserId,
        session: Option<Uuid>,
        now: DateTime<Utc>,
        tenant_generation: u64,
    ) -> Option<Arc<VerifyFacts>> {
        if !self.enabled() {
            return None;
        }
        let inner = self.lock();
        let entry = inner.users.get(&user)?.get(&session)?;
        let fresh = entry.tenant_generation == tenant_generation
            && now >= entry.fetched_at
            && now - entry.fetched_at < self.ttl;
        fresh.then(|| entry.facts.clone())
    }

    /// Take before reading the database.
    pub(crate) fn ticket(&self, tenant_generation: u64) -> Ticket {
        Ticket {
            generation: self.generation.load(Ordering::Acquire),
            tenant_generation,
        }
    }

    /// Stores what was read under `ticket`, unless an invalidation happened since.
    pub(crate) fn put(
        &self,
        ticket: Ticket,
        user: UserId,
        session: Option<Uuid>,
        facts: Arc<VerifyFacts>,
        now: DateTime<Utc>,
    ) {
        if !self.enabled() {
            return;
        }
        let mut inner = self.lock();
        // Checked under the lock: invalidations bump the generation while holding it.
        if self.generation.load(Ordering::Acquire) != ticket.generation {
            return;
        }
        if inner.len >= self.capacity {
            let ttl = self.ttl;
            let mut len = 0;
            inner.users.retain(|_, sessions| {
                sessions.retain(|_, e| now >= e.fetched_at && now - e.fetched_at < ttl);
                len += sessions.len();
                !sessions.is_empty()
            });
            inner.len = len;
            if inner.len >= self.capacity {
                inner.users.clear();
                inner.len = 0;
            }
        }
        let entry = Entry {
            facts,
            fetched_at: now,
            tenant_generation: ticket.tenant_generation,
        };
        if inner
            .users
            .entry(user)
            .or_default()
            .insert(session, entry)
            .is_none()
        {
            inner.len += 1;
        }
    }

    /// Drops every entry of `user` (call after any change to the user or its sessions).
    pub(crate) fn forget_user(&self, user: UserId) {
        let mut inner = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(sessions) = inner.users.remove(&user) {
            inner.len -= sessions.len();
        }
    }

    /// Drops everything.
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        inner.users.clear();
        inner.len = 0;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::users::{Role, UserStatus};
    use ate_core::TenantId;
    use std::time::Duration;

    fn user() -> User {
        let t = t0();
        User {
            id: UserId::new(),
            tenant: TenantId::new(),
            email: "a@example.com".into(),
            username: None,
            name: String::new(),
            status: UserStatus::Active,
            roles: [Role::User].into(),
            permissions: Default::default(),
            has_password: true,
            not_before: t,
            locked_until: None,
            revision: 1,
            created_at: t,
            updated_at: t,
        }
    }

    fn facts(u: &User) -> Arc<VerifyFacts> {
        Arc::new(VerifyFacts {
            tenant_active: true,
            user: u.clone(),
            session_open: true,
            principal: u.principal().unwrap(),
        })
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap()
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let c = VerifyCache::new(Duration::from_secs(1), 10);
        let u = user();
        let s = Some(Uuid::now_v7());
        c.put(c.ticket(0), u.id, s, facts(&u), t0());
        assert!(
            c.get(u.id, s, t0() + TimeDelta::milliseconds(999), 0)
                .is_some()
        );
        assert!(c.get(u.id, s, t0() + TimeDelta::seconds(1), 0).is_none());
        // A clock that went backwards does not make an entry fresh forever.
        assert!(c.get(u.id, s, t0() - TimeDelta::seconds(5), 0).is_none());
        // Another session of the same user is its own entry.
        assert!(c.get(u.id, None, t0(), 0).is_none());
    }

    #[test]
    fn a_tenant_change_makes_every_entry_stale() {
        let c = VerifyCache::new(Duration::from_secs(60), 10);
        let u = user();
        c.put(c.ticket(3), u.id, None, facts(&u), t0());
        assert!(c.get(u.id, None, t0(), 3).is_some());
        assert!(c.get(u.id, None, t0(), 4).is_none());
    }

    #[test]
    fn a_read_that_raced_with_an_invalidation_is_not_stored() {
        let c = VerifyCache::new(Duration::from_secs(60), 10);
        let u = user();
        let ticket = c.ticket(0);
        c.forget_user(UserId::new()); // any invalidation, even of another user
        c.put(ticket, u.id, None, facts(&u), t0());
        assert!(c.get(u.id, None, t0(), 0).is_none());
        c.put(c.ticket(0), u.id, None, facts(&u), t0());
        assert!(c.get(u.id, None, t0(), 0).is_some());
        c.forget_user(u.id);
        assert!(c.get(u.id, None, t0(), 0).is_none());
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn memory_stays_bounded() {
        let c = VerifyCache::new(Duration::from_secs(60), 100);
        for i in 0..1_000 {
            let u = user();
            c.put(
                c.ticket(0),
                u.id,
                None,
                facts(&u),
                t0() + TimeDelta::milliseconds(i),
            );
            assert!(c.len() <= 100);
        }
        c.clear();
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn zero_ttl_disables() {
        let c = VerifyCache::new(Duration::ZERO, 100);
        let u = user();
        c.put(c.ticket(0), u.id, None, facts(&u), t0());
        assert!(c.get(u.id, None, t0(), 0).is_none());
        let d = VerifyCache::disabled();
        d.put(d.ticket(0), u.id, None, facts(&u), t0());
        assert!(d.get(u.id, None, t0(), 0).is_none());
    }
}
