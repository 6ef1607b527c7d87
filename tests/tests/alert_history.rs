//! The alert-history suite against every backend: memory, SQLite (memory and file) and
//! PostgreSQL (`ATE_TEST_POSTGRES_URL`; skipped when unset, a failure under `CI=true`),
//! and the stored alert rules on the SQL backends.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ate_orchestrate::alerts::{MemoryAlertHistory, SqlAlertHistory};
use std::sync::Arc;
use tests::alert_history::{self as suite, History};
use tests::support::{Backend, TestDb};

async fn run_sql<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(History) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(db) = TestDb::open(backend).await else {
        return;
    };
    let history = SqlAlertHistory::open(db.db.clone()).await.unwrap();
    case(Arc::new(history)).await;
    db.cleanup().await;
}

macro_rules! matrix {
    ($($case:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    suite::$case(Arc::new(MemoryAlertHistory::new())).await;
                }
            )*
        }
        mod sqlite_memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    run_sql(Backend::SqliteMemory, suite::$case).await;
                }
            )*
        }
        mod sqlite_file {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    run_sql(Backend::SqliteFile, suite::$case).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    run_sql(Backend::Postgres, suite::$case).await;
                }
            )*
        }
    };
}

matrix! {
    append_and_get_round_trip,
    duplicate_append_is_rejected,
    delivery_is_recorded_once,
    query_filters_orders_and_limits,
    invalid_queries_are_rejected,
    purge_removes_only_older_events,
    concurrent_appends_all_land,
    engine_keeps_one_record_per_transition,
}

/// The stored-rules suite on every SQL backend.
mod rules {
    use super::*;

    async fn on(backend: Backend, case: impl AsyncFnOnce(ate_core::Db)) {
        let Some(db) = TestDb::open(backend).await else {
            return;
        };
        case(db.db.clone()).await;
        db.cleanup().await;
    }

    macro_rules! rules_matrix {
        ($($case:ident),* $(,)?) => {
            $(
                mod $case {
                    use super::*;
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn sqlite_memory() {
                        on(Backend::SqliteMemory, tests::alert_history::$case).await;
                    }
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn sqlite_file() {
                        on(Backend::SqliteFile, tests::alert_history::$case).await;
                    }
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn postgres() {
                        on(Backend::Postgres, tests::alert_history::$case).await;
                    }
                }
            )*
        };
    }

    rules_matrix!(stored_rules_round_trip, stored_rules_sync_into_engines);
}
