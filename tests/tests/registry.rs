//! The registry conformance matrix: every case of `tests::registry` against every registry
//! backend (memory, SQLite in memory, SQLite file, PostgreSQL).
//!
//! PostgreSQL cases need `ATE_TEST_POSTGRES_URL` (see `tests::support`); under `CI=true`
//! they fail rather than skip when it is missing or unreachable.

use tests::registry::{RegistryBackend, run};
use tests::support::Backend;

macro_rules! registry_matrix {
    ($($case:ident),* $(,)?) => {
        registry_matrix!(@backend memory, RegistryBackend::Memory, $($case),*);
        registry_matrix!(@backend sqlite_memory, RegistryBackend::Sql(Backend::SqliteMemory), $($case),*);
        registry_matrix!(@backend sqlite_file, RegistryBackend::Sql(Backend::SqliteFile), $($case),*);
        registry_matrix!(@backend postgres, RegistryBackend::Sql(Backend::Postgres), $($case),*);
    };
    (@backend $module:ident, $backend:expr, $($case:ident),*) => {
        mod $module {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    run($backend, tests::registry::$case).await;
                }
            )*
        }
    };
}

registry_matrix! {
    register_get_round_trip,
    new_instances_start_critical,
    discover_filters,
    duplicate_id_is_rejected,
    concurrent_duplicate_registers,
    invalid_input_writes_nothing,
    unknown_instance_is_not_found,
    heartbeat_updates_time,
    status_transitions,
    deregister_critical_reaps,
    watch_delivers_changes_in_order,
    slow_watcher_is_told_it_lagged,
    facade_enforces_tenancy,
    drain_hides_the_instance_once,
    maintenance_takes_an_instance_out_and_back,
    policies_round_trip,
    facade_guards_traffic,
}
