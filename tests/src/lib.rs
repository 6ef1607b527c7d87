//! Cross-crate integration tests and the conformance suites.
//!
//! Each suite is a module of `pub async fn case(env: Env)` functions that use only the public
//! store traits, so the same case runs against every backend ([`support::Backend`]). A new
//! backend is added by making these suites pass; `tests/conformance.rs` lists the matrix.
//!
//! [`key_provider`] is the suite for master-key providers: its cases take
//! `&dyn KeyProvider`, and `tests/key_provider.rs` runs them against `LocalKeyProvider` and
//! against [`test_kms`], a KMS stand-in in a separate process.

#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

pub mod alert_history;
pub mod analysis;
pub mod analysis_batch;
pub mod archives;
pub mod audit_sink;
pub mod auth;
pub mod backup;
pub mod blob_store;
pub mod crash;
pub mod integrations;
pub mod key_provider;
pub mod keyring;
pub mod object_store;
pub mod project_keys;
pub mod project_store;
pub mod project_verify;
pub mod registry;
pub mod registry_traffic;
pub mod repack;
pub mod retention;
pub mod rollups;
pub mod scanner;
pub mod snapshot_life;
pub mod snapshots;
pub mod support;
pub mod tenant_backup;
pub mod tenant_store;
pub mod test_kms;
pub mod workflow_batches;
pub mod workflow_engine;
pub mod workflow_store;

use ate_core::{Classify, ErrorKind, Permission, Principal, TenantId, with_pool};
use support::Env;

/// Asserts that `result` failed with `kind`, showing the error otherwise.
#[track_caller]
pub fn assert_kind<T: std::fmt::Debug, E: Classify>(result: Result<T, E>, kind: ErrorKind) {
    match result {
        Ok(v) => panic!("expected a {kind} error, got Ok({v:?})"),
        Err(e) => assert_eq!(e.kind(), kind, "unexpected error: {e}"),
    }
}

/// A principal of `tenant` holding `permissions`.
pub fn member(tenant: TenantId, permissions: &[Permission]) -> Principal {
    permissions
        .iter()
        .fold(Principal::new(tenant, "user:member").unwrap(), |p, perm| {
            p.permission(perm.clone())
        })
}

/// Counts the rows of `table` (a literal table name from the tests).
pub async fn count_rows(env: &Env, table: &'static str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    with_pool!(env.db, |pool| {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_one(pool)
            .await
            .unwrap()
    })
}

/// Runs raw SQL with `$1` bound to `tenant` (used to tamper with stored rows).
pub async fn exec(env: &Env, sql: &'static str, tenant: TenantId) {
    with_pool!(env.db, |pool| {
        sqlx::query(sql)
            .bind(tenant.as_uuid())
            .execute(pool)
            .await
            .unwrap();
    })
}

impl Env {
    /// The manual clock's current time.
    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        ate_core::Clock::now(&*self.clock)
    }
}

/// The Rust examples in the top-level README, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
