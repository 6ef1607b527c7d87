//! Tenant-change notification: [`TenantChanges`].
//!
//! Anything that keeps tenant-derived facts in memory (a verification cache, a quota
//! cache, a list on a dashboard) needs to know when a tenant changes, at once rather than
//! after a TTL. Every [`SqlTenantStore`](super::SqlTenantStore) on one [`Db`](crate::Db)
//! handle (or its clones) publishes into one feed, after the change has committed:
//!
//! * [`TenantChanges::generation`] is a number that grows with every change: a cache
//!   remembers it when it reads, and treats what it read as stale once it has moved. It costs
//!   one atomic load, so it fits a hot path.
//! * [`TenantChanges::subscribe`] delivers each [`TenantChange`] (which tenant, what
//!   happened) to a task that wants to react.
//!
//! Scope: changes made through this process's tenant stores. Another process sharing the
//! database publishes into its own feed; caches bound that staleness with a TTL.

use crate::id::TenantId;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::broadcast;

/// How many changes a slow subscriber may fall behind before it sees
/// [`broadcast::error::RecvError::Lagged`].
const CAPACITY: usize = 1024;

/// What happened to a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TenantChangeKind {
    /// It was created.
    Created,
    /// Its name or settings (quotas included) changed.
    Updated,
    /// It was suspended.
    Suspended,
    /// It was reactivated after a suspension.
    Reactivated,
    /// It was deleted (soft: restorable until its purge time).
    Deleted,
    /// It was restored after a deletion.
    Restored,
    /// It was purged for good.
    Purged,
    /// Its data keys changed: rotated, rewrapped or destroyed (published by the key stores,
    /// so caches of unwrapped keys on the same handle drop what they hold).
    KeysChanged,
}

/// One committed change to one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantChange {
    /// The tenant.
    pub tenant: TenantId,
    /// What happened.
    pub kind: TenantChangeKind,
    /// The feed's [generation](TenantChanges::generation) right after this change.
    pub generation: u64,
}

/// The feed of tenant changes shared by every tenant store on one database handle; cheap to
/// clone. Get it from [`TenantStore::changes`](super::TenantStore::changes).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use ate_core::{Db, NewTenant, Principal, SqlTenantStore, TenantChangeKind, TenantStore};
///
/// let db = Db::open("sqlite::memory:").await?;
/// let tenants = SqlTenantStore::new(db.clone());
/// let feed = tenants.changes();
/// let mut events = feed.subscribe();
/// let seen = feed.generation();
///
/// let admin = Principal::platform_admin("system:setup")?;
/// // Another store on a clone of the same handle publishes into the same feed.
/// let acme = SqlTenantStore::new(db).create(&admin, NewTenant::new("acme", "Acme")).await?;
///
/// assert!(feed.generation() > seen); // what a cache read before is stale now
/// let change = events.recv().await.unwrap();
/// assert_eq!((change.tenant, change.kind), (acme.id, TenantChangeKind::Created));
/// # Ok::<(), ate_core::CoreError>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct TenantChanges {
    inner: Arc<Feed>,
}

struct Feed {
    generation: AtomicU64,
    sender: broadcast::Sender<TenantChange>,
}

impl fmt::Debug for TenantChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantChanges")
            .field("generation", &self.generation())
            .field("subscribers", &self.inner.sender.receiver_count())
            .finish()
    }
}

impl Default for TenantChanges {
    fn default() -> Self {
        TenantChanges::new()
    }
}

impl TenantChanges {
    /// A new, empty feed (a [`Db`](crate::Db) makes one per handle; tenant store
    /// implementations other than `SqlTenantStore` make their own).
    pub fn new() -> Self {
        TenantChanges {
            inner: Arc::new(Feed {
                generation: AtomicU64::new(0),
                sender: broadcast::channel(CAPACITY).0,
            }),
        }
    }

    /// A number that grows with every published change (starting at 0). Equal numbers
    /// mean no tenant changed in between.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Receives every change published from now on. A subscriber more than 1,024 changes
    /// behind gets `Lagged` once and continues with the newest: treat that as "any tenant
    /// may have changed".
    pub fn subscribe(&self) -> broadcast::Receiver<TenantChange> {
        self.inner.sender.subscribe()
    }

    /// Announces a committed change to `tenant`. Tenant stores call it after their
    /// transaction commits, never before: a reader woken by it must see the change.
    pub fn publish(&self, tenant: TenantId, kind: TenantChangeKind) {
        let generation = self.inner.generation.fetch_add(1, Ordering::AcqRel) + 1;
        // No subscriber is not an error: the generation alone serves caches.
        let _ = self.inner.sender.send(TenantChange {
            tenant,
            kind,
            generation,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_grows_and_subscribers_see_changes_in_order() {
        let feed = TenantChanges::new();
        assert_eq!(feed.generation(), 0);
        let mut rx = feed.subscribe();
        let (a, b) = (TenantId::new(), TenantId::new());
        feed.publish(a, TenantChangeKind::Suspended);
        feed.clone().publish(b, TenantChangeKind::Purged);
        assert_eq!(feed.generation(), 2);
        let first = rx.try_recv().unwrap();
        assert_eq!(
            (first.tenant, first.kind, first.generation),
            (a, TenantChangeKind::Suspended, 1)
        );
        let second = rx.try_recv().unwrap();
        assert_eq!(
            (second.tenant, second.kind, second.generation),
            (b, TenantChangeKind::Purged, 2)
        );
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn publishing_without_subscribers_still_moves_the_generation() {
        let feed = TenantChanges::new();
        feed.publish(TenantId::new(), TenantChangeKind::Updated);
        assert_eq!(feed.generation(), 1);
    }
}
