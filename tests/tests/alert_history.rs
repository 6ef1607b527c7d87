//! The alert-history suite against every backend: memory, SQLite (memory and file) and
//! PostgreSQL (`ATE_TEST_POSTGRES_URL`; skipped when unset, a failure under `CI=true`).

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
