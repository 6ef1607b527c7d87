//! The rollup store on every SQL backend: SQLite (file and memory) and PostgreSQL
//! (`ATE_TEST_POSTGRES_URL`; required under `CI=true`).

use tests::support::{Backend, TestDb};

async fn on(backend: Backend, case: impl AsyncFnOnce(ate_core::Db)) {
    let Some(db) = TestDb::open(backend).await else {
        return;
    };
    case(db.db.clone()).await;
    db.cleanup().await;
}

macro_rules! matrix {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_memory() {
                    on(Backend::SqliteMemory, tests::rollups::$case).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_file() {
                    on(Backend::SqliteFile, tests::rollups::$case).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    on(Backend::Postgres, tests::rollups::$case).await;
                }
            }
        )*
    };
}

matrix!(
    points_merge_across_hosts_and_steps_within_a_tenant,
    old_points_are_downsampled_then_expired
);
