//! # ate-core
//!
//! The foundation every ATE crate builds on:
//!
//! * [typed ids](id) over UUIDv7 ([`TenantId`], [`UserId`], …);
//! * the shared [error vocabulary](error) ([`ErrorKind`], [`Classify`], [`CoreError`]);
//! * [`Principal`] and [`Permission`]: who is acting, and what they may do;
//! * [tenants](tenant): [`Tenant`], [`Slug`] and the [`TenantStore`];
//! * the tamper-evident [audit log](audit): [`AuditSink`] with a per-tenant hash chain;
//! * the database handle [`Db`] (SQLite by default, PostgreSQL to scale out) with
//!   per-crate migrations ([`migrations`]);
//! * [`CoreTx`]: what other crates' stores do inside their own write transactions (lock a
//!   tenant and read its quotas, append an audit event, create a tenant), so no crate but
//!   this one names a core table;
//! * [`TenantChanges`]: the feed of tenant changes that caches subscribe to;
//! * [keys]: [`SecretKey`](keys::SecretKey), the master-key
//!   [`KeyProvider`](keys::KeyProvider) and envelope encryption of data keys;
//! * [`Clock`], so tests can move time.
//!
//! ATE is a library: nothing here opens a port, spawns a thread you did not ask for, or
//! installs global state.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use ate_core::audit::{AuditQuery, AuditSink, SqlAuditSink};
//! use ate_core::{Db, NewTenant, Principal, SqlTenantStore, TenantStore};
//!
//! let db = Db::open("sqlite::memory:").await?;
//! let tenants = SqlTenantStore::new(db.clone());
//! let audit = SqlAuditSink::new(db);
//! let admin = Principal::platform_admin("system:setup")?;
//!
//! let acme = tenants.create(&admin, NewTenant::new("acme", "Acme Corp")).await?;
//! let log = audit.query(&admin, AuditQuery::tenant(acme.id)).await?;
//! assert_eq!(log.items[0].action.as_str(), "tenant_created");
//! assert!(audit.verify_chain(&admin, acme.id).await?.is_intact());
//! # Ok::<(), ate_core::CoreError>(()) }).unwrap();
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod clock;
pub mod db;
pub mod error;
pub mod id;
pub mod keys;
pub mod page;
pub mod principal;
pub mod tenant;
pub mod tx;

pub use audit::{AuditEvent, AuditSink, NewAuditEvent, SqlAuditSink};
pub use clock::{Clock, ManualClock, SystemClock};
pub use db::{Db, DbBackend, DbOptions, DbPool, Migrations};
pub use error::{Classify, CoreError, ErrorKind};
pub use id::{
    AnalysisId, AuditEventId, KeyId, ObjectId, ProjectId, RunId, SnapshotId, TenantId, UserId,
};
pub use page::{Cursor, Page};
pub use principal::{Permission, Principal};
pub use tenant::{
    ListTenants, NewTenant, PreparedTenant, Quotas, Slug, SqlTenantStore, Tenant, TenantChange,
    TenantChangeKind, TenantChanges, TenantSettings, TenantStatus, TenantStore, TenantUpdate,
};
pub use tx::{CoreTx, LockedTenant};

/// `ate-core`'s migrations (tenants, audit log); [`Db::open`] runs them. Every ATE crate has
/// its own at the same place (`ate_storage::migrations()`, `ate_auth::migrations()`, …).
pub fn migrations() -> Migrations {
    Migrations::new(
        "core",
        sqlx::migrate!("migrations/sqlite"),
        sqlx::migrate!("migrations/postgres"),
    )
}
