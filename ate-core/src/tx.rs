//! Core operations inside another crate's write transaction: [`CoreTx`].
//!
//! Stores in other ATE crates (objects, keys, users, sessions) keep their own tables, but
//! many of their writes must agree with a tenant's state and be audited *atomically*: a user
//! is created only while the tenant exists and only together with its `user_created` event;
//! an object is committed only under the tenant's quotas. Those stores never name a core
//! table in SQL. They open a write transaction on the shared [`Db`](crate::Db) (with
//! [`with_write_tx!`](crate::with_write_tx)) and call these typed operations on it:
//!
//! | operation | contract |
//! | --- | --- |
//! | [`CoreTx::lock_tenant`] | takes the tenant's write lock until the transaction ends and returns its status, settings and quotas ([`LockedTenant`]) |
//! | [`CoreTx::append_audit`] | appends an event to the tenant's hash chain, committed or rolled back with the caller's rows |
//! | [`CoreTx::insert_tenant`] | creates a tenant prepared by [`SqlTenantStore::prepare_create`](crate::SqlTenantStore::prepare_create), with its `tenant_created` event |
//!
//! `CoreTx` is implemented for the transactions of every backend `Db` supports, so a body
//! written once inside `with_write_tx!` type-checks against each of them.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use ate_core::audit::{actions, AuditQuery, NewAuditEvent, Outcome};
//! use ate_core::{AuditSink, CoreError, CoreTx, Db, NewTenant, Principal, SqlAuditSink};
//! use ate_core::{SqlTenantStore, TenantStore, with_write_tx};
//!
//! let db = Db::open("sqlite::memory:").await?;
//! let admin = Principal::platform_admin("system:setup")?;
//! let acme = SqlTenantStore::new(db.clone()).create(&admin, NewTenant::new("acme", "Acme")).await?;
//!
//! // A store in another crate: check the tenant and audit its write in one transaction.
//! let event = NewAuditEvent::new(acme.id, "user:alice", actions::USER_CREATED, Outcome::Success)
//!     .validate()?;
//! let now = chrono::Utc::now();
//! let quotas = with_write_tx!(db, |tx| {
//!     let tenant = tx.lock_tenant(acme.id).await?;
//!     tenant.require_active()?;
//!     // ... the store's own INSERT/UPDATE statements on `&mut *tx` go here ...
//!     tx.append_audit(&event, now).await?;
//!     tenant.settings.quotas
//! });
//! assert_eq!(quotas.max_users, None);
//! let log = SqlAuditSink::new(db).query(&admin, AuditQuery::tenant(acme.id)).await?;
//! assert_eq!(log.items.len(), 2); // tenant_created, user_created
//! # Ok::<(), CoreError>(()) }).unwrap();
//! ```

use crate::audit::{AuditEvent, GENESIS_HASH, ValidEvent, next_event};
use crate::db::{from_micros, is_unique_violation, to_micros};
use crate::error::CoreError;
use crate::id::TenantId;
use crate::tenant::{PreparedTenant, TenantSettings, TenantStatus};
use chrono::{DateTime, Utc};
use std::future::Future;

/// A tenant whose row is write-locked by the caller's transaction (see
/// [`CoreTx::lock_tenant`]). What it says stays true until that transaction ends: no other
/// writer can change the tenant's status or settings in between.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LockedTenant {
    /// The tenant.
    pub id: TenantId,
    /// Its lifecycle state.
    pub status: TenantStatus,
    /// Its settings, quotas included.
    pub settings: TenantSettings,
    /// Its revision (grows with every change to the tenant record).
    pub revision: i64,
    /// When its state last changed.
    pub updated_at: DateTime<Utc>,
}

impl LockedTenant {
    /// Succeeds for an active tenant. A suspended tenant is `PermissionDenied`; a deleted one
    /// is `NotFound`, as if it did not exist (the same answers as
    /// [`TenantStore::require_active`](crate::TenantStore::require_active)).
    pub fn require_active(&self) -> Result<(), CoreError> {
        match self.status {
            TenantStatus::Active => Ok(()),
            TenantStatus::Suspended => Err(CoreError::PermissionDenied(format!(
                "tenant {} is suspended",
                self.id
            ))),
            TenantStatus::Deleted => Err(CoreError::not_found("tenant", self.id)),
        }
    }
}

/// Core operations that run inside a caller's open write transaction and commit or roll
/// back with it. See the [module documentation](self) for the contracts and an example.
///
/// Implemented for `sqlx::Transaction` on every backend [`Db`](crate::Db) supports. Every
/// method fails with the error it describes and leaves the transaction usable only for
/// rolling back: propagate the error (`?`) so the caller's `with_write_tx!` rolls back.
pub trait CoreTx: Send {
    /// Takes `tenant`'s write lock for the rest of this transaction and returns its state.
    ///
    /// Behaviour:
    /// * Concurrent transactions that lock the same tenant run one after the other, so a
    ///   check made under the lock (a quota, a count of rows) stays true until commit. On
    ///   SQLite every write transaction is already serialized; on PostgreSQL this is the
    ///   tenant row's lock.
    /// * A tenant that does not exist (never created, or purged) is `NotFound`.
    /// * Deleted and suspended tenants are returned, not refused: callers decide (most call
    ///   [`LockedTenant::require_active`]).
    /// * Stored settings that do not parse are `Integrity`.
    fn lock_tenant(
        &mut self,
        tenant: TenantId,
    ) -> impl Future<Output = Result<LockedTenant, CoreError>> + Send;

    /// Appends `event` to its tenant's audit chain, stamped `now`, and returns the stored
    /// event (with its sequence number and link hash).
    ///
    /// Behaviour:
    /// * The event is visible to readers only if the caller's transaction commits; a
    ///   rollback leaves no event and no gap in the chain.
    /// * Concurrent appends to one tenant's chain serialize on its head row.
    /// * The tenant's status is not checked here (lock the tenant first when it matters).
    /// * A corrupt chain head is `Integrity`.
    fn append_audit(
        &mut self,
        event: &ValidEvent,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<AuditEvent, CoreError>> + Send;

    /// [`append_audit`](Self::append_audit), if the event's tenant exists and is not
    /// deleted (suspended tenants keep auditing); `None`, writing nothing, otherwise. The
    /// check is part of the statement that takes the chain's head, so it costs no extra
    /// round trip.
    fn append_audit_if_live(
        &mut self,
        event: &ValidEvent,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<AuditEvent>, CoreError>> + Send;

    /// Inserts the tenant `prepared` describes, stamped `now`, with its `tenant_created`
    /// audit event.
    ///
    /// Behaviour: a slug already taken (by any tenant not yet purged, deleted ones
    /// included) is `AlreadyExists`, and nothing is written.
    fn insert_tenant(
        &mut self,
        prepared: &PreparedTenant,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), CoreError>> + Send;
}

/// Takes the row lock and reads the row in one statement: the no-op update locks the row
/// on PostgreSQL (SQLite's `BEGIN IMMEDIATE` already holds the database's write lock).
const LOCK_TENANT: &str = "UPDATE tenants SET revision = revision WHERE id = $1 \
     RETURNING status, settings, revision, updated_at";

const INSERT_TENANT: &str = "INSERT INTO tenants (id, slug, name, status, status_reason, \
     settings, revision, created_at, updated_at, deleted_at, purge_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// Creates the head on first use or bumps it, in one statement. The upsert takes the row
/// lock (the write lock on SQLite), so concurrent appends to one tenant serialize here;
/// RETURNING gives the new sequence number and the previous link's hash.
const BUMP_CHAIN_HEAD: &str = "INSERT INTO audit_chain_heads (tenant_id, seq, head_hash) \
     VALUES ($1, 1, $2) ON CONFLICT (tenant_id) DO UPDATE SET seq = audit_chain_heads.seq + 1 \
     RETURNING seq, head_hash";

/// [`BUMP_CHAIN_HEAD`] only for a tenant that exists and is not deleted: no row (and no
/// change) otherwise.
const BUMP_LIVE_CHAIN_HEAD: &str = "INSERT INTO audit_chain_heads (tenant_id, seq, head_hash) \
     SELECT id, 1, $2 FROM tenants WHERE id = $1 AND status <> 'deleted' \
     ON CONFLICT (tenant_id) DO UPDATE SET seq = audit_chain_heads.seq + 1 \
     RETURNING seq, head_hash";

const INSERT_EVENT: &str = "INSERT INTO audit_events (tenant_id, seq, id, occurred_at, actor, \
     action, target, outcome, client_addr, user_agent, metadata, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

fn locked_tenant(
    id: TenantId,
    (status, settings, revision, updated_at): (String, String, i64, i64),
) -> Result<LockedTenant, CoreError> {
    let settings: TenantSettings = serde_json::from_str(&settings)
        .map_err(|e| CoreError::Integrity(format!("tenant {id} has unreadable settings: {e}")))?;
    Ok(LockedTenant {
        id,
        status: TenantStatus::parse(&status)?,
        settings,
        revision,
        updated_at: from_micros(updated_at)?,
    })
}

/// The second half of an audit append, once the head is taken: the event row (whose insert
/// trigger moves the head to it).
trait LinkAudit {
    /// Writes the event that takes link `seq` after `prev`; the head follows it.
    fn link_audit(
        &mut self,
        ev: &ValidEvent,
        seq: i64,
        prev: &[u8],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<AuditEvent, CoreError>> + Send;
}

/// Writes `CoreTx` once for each backend's transaction type.
macro_rules! impl_core_tx {
    ($db:ty) => {
        impl CoreTx for sqlx::Transaction<'_, $db> {
            async fn lock_tenant(&mut self, tenant: TenantId) -> Result<LockedTenant, CoreError> {
                let row: Option<(String, String, i64, i64)> = sqlx::query_as(LOCK_TENANT)
                    .bind(tenant.as_uuid())
                    .fetch_optional(&mut **self)
                    .await?;
                let row = row.ok_or_else(|| CoreError::not_found("tenant", tenant))?;
                locked_tenant(tenant, row)
            }

            async fn append_audit(
                &mut self,
                ev: &ValidEvent,
                now: DateTime<Utc>,
            ) -> Result<AuditEvent, CoreError> {
                let (seq, prev): (i64, Vec<u8>) = sqlx::query_as(BUMP_CHAIN_HEAD)
                    .bind(ev.tenant.as_uuid())
                    .bind(&GENESIS_HASH[..])
                    .fetch_one(&mut **self)
                    .await?;
                self.link_audit(ev, seq, &prev, now).await
            }

            async fn append_audit_if_live(
                &mut self,
                ev: &ValidEvent,
                now: DateTime<Utc>,
            ) -> Result<Option<AuditEvent>, CoreError> {
                let head: Option<(i64, Vec<u8>)> = sqlx::query_as(BUMP_LIVE_CHAIN_HEAD)
                    .bind(ev.tenant.as_uuid())
                    .bind(&GENESIS_HASH[..])
                    .fetch_optional(&mut **self)
                    .await?;
                match head {
                    Some((seq, prev)) => Ok(Some(self.link_audit(ev, seq, &prev, now).await?)),
                    None => Ok(None),
                }
            }

            async fn insert_tenant(
                &mut self,
                p: &PreparedTenant,
                now: DateTime<Utc>,
            ) -> Result<(), CoreError> {
                let inserted = sqlx::query(INSERT_TENANT)
                    .bind(p.tenant.id.as_uuid())
                    .bind(p.tenant.slug.as_str())
                    .bind(&p.tenant.name)
                    .bind(p.tenant.status.as_str())
                    .bind(None::<String>)
                    .bind(&p.settings_json)
                    .bind(p.tenant.revision)
                    .bind(to_micros(now))
                    .bind(to_micros(now))
                    .bind(None::<i64>)
                    .bind(None::<i64>)
                    .execute(&mut **self)
                    .await;
                match inserted {
                    Ok(_) => {}
                    Err(e) if is_unique_violation(&e) => {
                        return Err(CoreError::AlreadyExists {
                            what: "tenant with slug",
                            key: p.tenant.slug.to_string(),
                        });
                    }
                    Err(e) => return Err(CoreError::from(e)),
                }
                self.append_audit(&p.event, now).await?;
                Ok(())
            }
        }

        impl LinkAudit for sqlx::Transaction<'_, $db> {
            async fn link_audit(
                &mut self,
                ev: &ValidEvent,
                seq: i64,
                prev: &[u8],
                now: DateTime<Utc>,
            ) -> Result<AuditEvent, CoreError> {
                let tenant = ev.tenant.as_uuid();
                let stored = next_event(ev, seq, prev, now)?;
                sqlx::query(INSERT_EVENT)
                    .bind(tenant)
                    .bind(seq)
                    .bind(stored.id.as_uuid())
                    .bind(to_micros(stored.occurred_at))
                    .bind(&ev.actor)
                    .bind(&ev.action)
                    .bind(&ev.target)
                    .bind(ev.outcome.as_str())
                    .bind(&ev.client_addr)
                    .bind(&ev.user_agent)
                    .bind(&ev.metadata)
                    .bind(&stored.prev_hash[..])
                    .bind(&stored.hash[..])
                    .execute(&mut **self)
                    .await?;
                // The insert's trigger (migration 0003) moved the head to this event.
                Ok(stored)
            }
        }
    };
}

impl_core_tx!(sqlx::Sqlite);
#[cfg(feature = "postgres")]
impl_core_tx!(sqlx::Postgres);
