//! A short-lived cache of unwrapped data keys, so an object operation does not pay a
//! database read and a [`KeyProvider`](ate_core::keys::KeyProvider) call (a KMS round trip,
//! with a remote provider) every time.
//!
//! **What keeps it correct.** An entry is used only while two things hold:
//!
//! * the [tenant-change generation](ate_core::TenantChanges::generation) of the database
//!   handle is the one it was read under. Every change made in this process (a tenant
//!   suspended, deleted or purged through any `SqlTenantStore` on the handle, a key rotated,
//!   rewrapped or destroyed through any keyring on it) moves the generation, so the next
//!   operation reads again: such a change takes effect at once;
//! * it is younger than the TTL (one second by default). A change made by **another
//!   process** sharing the database cannot move this process's generation: that is the
//!   bound on how long this process may still use a key another process destroyed, or
//!   encrypt for a tenant another process suspended.
//!
//! The same rule covers what the cache remembers about tenants: that a tenant was active
//! (so an object read or write skips the tenant-state query). A suspension or deletion made
//! here is refused at the next operation; one made by another process within the TTL.
//!
//! A TTL of zero turns the cache off. Keys are zeroized when an entry is dropped, replaced
//! or evicted; they are never logged. The cache holds at most [`MAX_ENTRIES`] keys (then it
//! starts over) so a scan over many tenants cannot grow it without bound.

use ate_core::keys::SecretKey;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The TTL a keyring starts with.
pub const DEFAULT_TTL: Duration = Duration::from_secs(1);

/// The most keys kept at once.
pub const MAX_ENTRIES: usize = 10_000;

/// An unwrapped key, when it was read, and under which generation.
struct Entry {
    key: SecretKey,
    generation: u64,
    at: Instant,
}

/// A tenant's active key version (and that the tenant was active), as last seen.
struct Active {
    version: u32,
    generation: u64,
    at: Instant,
}

/// That a scope's tenant was active, as last seen.
struct Live {
    generation: u64,
    at: Instant,
}

/// The cache (one per keyring, shared by its clones) of the keys of scopes `S` (tenants,
/// or projects), by version.
pub(crate) struct KeyCache<S> {
    ttl: Duration,
    keys: Mutex<HashMap<(S, u32), Entry>>,
    active: Mutex<HashMap<S, Active>>,
    live: Mutex<HashMap<S, Live>>,
}

impl<S> std::fmt::Debug for KeyCache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("ttl", &self.ttl)
            .field("keys", &self.keys.lock().map(|k| k.len()).unwrap_or(0))
            .finish_non_exhaustive()
    }
}

impl<S: Copy + Eq + Hash> KeyCache<S> {
    pub(crate) fn new(ttl: Duration) -> Self {
        KeyCache {
            ttl,
            keys: Mutex::new(HashMap::new()),
            active: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
        }
    }

    fn fresh(&self, generation: u64, entry_generation: u64, at: Instant) -> bool {
        !self.ttl.is_zero() && entry_generation == generation && at.elapsed() < self.ttl
    }

    /// Key `version` of `scope`, if cached and still usable under `generation`.
    pub(crate) fn key(&self, scope: S, version: u32, generation: u64) -> Option<SecretKey> {
        let keys = self.keys.lock().ok()?;
        let entry = keys.get(&(scope, version))?;
        self.fresh(generation, entry.generation, entry.at)
            .then(|| entry.key.clone())
    }

    /// The scope's active version, if it was seen (and its tenant active) under
    /// `generation` within the TTL.
    pub(crate) fn active(&self, scope: S, generation: u64) -> Option<u32> {
        let active = self.active.lock().ok()?;
        let entry = active.get(&scope)?;
        self.fresh(generation, entry.generation, entry.at)
            .then_some(entry.version)
    }

    /// Whether the scope's tenant was seen active under `generation` within the TTL (an
    /// active key version seen counts).
    pub(crate) fn live(&self, scope: S, generation: u64) -> bool {
        if self.active(scope, generation).is_some() {
            return true;
        }
        let Ok(live) = self.live.lock() else {
            return false;
        };
        live.get(&scope)
            .is_some_and(|e| self.fresh(generation, e.generation, e.at))
    }

    /// Inserts into one of the maps, unless the cache is off; a full map starts over.
    fn remember<K: Eq + Hash, V>(&self, map: &Mutex<HashMap<K, V>>, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut map) = map.lock() {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(key, value);
        }
    }

    /// Remembers that the scope's tenant was active, read under `generation`.
    pub(crate) fn put_live(&self, scope: S, generation: u64) {
        let at = Instant::now();
        self.remember(&self.live, scope, Live { generation, at });
    }

    /// Remembers key `version` of `scope`, read under `generation` (taken before reading).
    pub(crate) fn put_key(&self, scope: S, version: u32, key: &SecretKey, generation: u64) {
        let (key, at) = (key.clone(), Instant::now());
        self.remember(
            &self.keys,
            (scope, version),
            Entry {
                key,
                generation,
                at,
            },
        );
    }

    /// Remembers that `scope` was active with key `version`, under `generation`.
    pub(crate) fn put_active(&self, scope: S, version: u32, generation: u64) {
        let entry = Active {
            version,
            generation,
            at: Instant::now(),
        };
        self.remember(&self.active, scope, entry);
    }

    /// Forgets everything about `scope` (its keys changed here).
    pub(crate) fn forget(&self, scope: S) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.retain(|(s, _), _| *s != scope);
        }
        if let Ok(mut active) = self.active.lock() {
            active.remove(&scope);
        }
        if let Ok(mut live) = self.live.lock() {
            live.remove(&scope);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ate_core::TenantId;

    #[test]
    fn entries_expire_with_the_generation_and_the_ttl() {
        let cache: KeyCache<TenantId> = KeyCache::new(Duration::from_millis(200));
        let (t, key) = (TenantId::new(), SecretKey::from_bytes([7; 32]));
        assert!(cache.key(t, 1, 5).is_none());
        cache.put_key(t, 1, &key, 5);
        cache.put_active(t, 1, 5);
        assert_eq!(
            cache.key(t, 1, 5).map(|k| *k.expose_secret()),
            Some([7; 32])
        );
        assert_eq!(cache.active(t, 5), Some(1));
        assert!(cache.live(t, 5), "an active key means an active tenant");
        let u = TenantId::new();
        assert!(!cache.live(u, 5));
        cache.put_live(u, 5);
        assert!(cache.live(u, 5) && !cache.live(u, 6));
        cache.forget(u);
        assert!(!cache.live(u, 5));
        // Another version, another tenant, another generation: misses.
        assert!(cache.key(t, 2, 5).is_none());
        assert!(cache.key(TenantId::new(), 1, 5).is_none());
        assert!(cache.key(t, 1, 6).is_none());
        assert!(cache.active(t, 6).is_none());
        // Forgotten at once.
        cache.forget(t);
        assert!(cache.key(t, 1, 5).is_none() && cache.active(t, 5).is_none());
        // And old after the TTL.
        cache.put_key(t, 1, &key, 5);
        std::thread::sleep(Duration::from_millis(250));
        assert!(cache.key(t, 1, 5).is_none());
        assert!(format!("{cache:?}").contains("keys: 1"));
        assert!(!format!("{cache:?}").contains("7, 7"));
    }

    #[test]
    fn a_zero_ttl_keeps_nothing_and_the_size_is_bounded() {
        let off: KeyCache<TenantId> = KeyCache::new(Duration::ZERO);
        let (t, key) = (TenantId::new(), SecretKey::from_bytes([1; 32]));
        off.put_key(t, 1, &key, 0);
        off.put_active(t, 1, 0);
        off.put_live(t, 0);
        assert!(off.key(t, 1, 0).is_none() && off.active(t, 0).is_none() && !off.live(t, 0));
        let cache: KeyCache<TenantId> = KeyCache::new(DEFAULT_TTL);
        for v in 0..=MAX_ENTRIES as u32 {
            cache.put_key(t, v, &key, 0);
        }
        let held = cache.keys.lock().map(|k| k.len()).unwrap_or(usize::MAX);
        assert!(held <= MAX_ENTRIES, "{held}");
        assert!(cache.key(t, MAX_ENTRIES as u32, 0).is_some());
    }
}
