//! The conformance matrix: every suite case against every metadata backend.
//!
//! PostgreSQL cases need `ATE_TEST_POSTGRES_URL` (see `tests::support`); under `CI=true`
//! they fail rather than skip when it is missing or unreachable.

use tests::support::{Backend, run};
use tests::{audit_sink, integrations, keyring, project_keys, project_store, tenant_store};

macro_rules! matrix {
    ($($suite:ident :: $case:ident),* $(,)?) => {
        mod sqlite_memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    run(Backend::SqliteMemory, $suite::$case).await;
                }
            )*
        }
        mod sqlite_file {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    run(Backend::SqliteFile, $suite::$case).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    run(Backend::Postgres, $suite::$case).await;
                }
            )*
        }
    };
}

matrix! {
    project_store::projects_are_created_and_read,
    project_store::project_names_are_unique_without_case,
    project_store::bad_project_input_writes_nothing,
    project_store::projects_list_with_filters_and_pages,
    project_store::project_updates_are_optimistic,
    project_store::project_quota_holds_under_parallel_creates,
    project_store::project_access_is_checked,
    project_store::projects_are_deleted,
    project_keys::project_keys_are_made_and_rotated,
    project_keys::project_keys_are_bound_to_their_project,
    project_keys::deleting_a_project_shreds_its_keys,
    project_keys::project_keys_follow_the_tenant_key,
    tenant_store::create_and_get,
    tenant_store::duplicate_slug_is_rejected,
    tenant_store::concurrent_duplicate_creates,
    tenant_store::invalid_input_writes_nothing,
    tenant_store::unknown_tenant_is_not_found,
    tenant_store::list_paginates,
    tenant_store::update_is_audited_and_optimistic,
    tenant_store::suspend_and_reactivate,
    tenant_store::delete_restore_and_purge,
    tenant_store::authorization_is_enforced,
    tenant_store::concurrent_updates_serialize,
    tenant_store::changes_are_published_after_commit,
    tenant_store::core_tx_contract,
    tenant_store::every_quota_is_accepted,
    audit_sink::append_links_events,
    audit_sink::concurrent_appends_never_fork,
    audit_sink::query_filters_and_pages,
    audit_sink::tenants_are_isolated,
    audit_sink::invalid_appends_change_nothing,
    audit_sink::tampering_is_detected,
    audit_sink::verify_long_chain,
    keyring::first_key_is_created_once,
    keyring::rotation_keeps_old_versions_readable,
    keyring::master_rotation_rewraps_keys,
    keyring::destroy_crypto_shreds,
    keyring::tenant_secrets_follow_the_tenant_keys,
    integrations::endpoints_are_sealed_called_and_probed,
    integrations::the_default_client_refuses_internal_addresses,
    keyring::wrapped_keys_are_bound_to_tenant_and_version,
    keyring::tenant_state_and_unknowns,
    keyring::unwrapped_keys_are_cached_and_invalidated,
}

/// The blob-store suite against every blob backend, opened by URL and as an OpenDAL
/// operator built by hand (`BlobStore::from_operator`).
macro_rules! blob_matrix {
    ($($module:ident: $kind:ident),* $(,)? ; $cases:tt) => {
        $(
            mod $module {
                use tests::support::{BlobBackendKind, run_blobs};
                blob_matrix!(@cases $kind; $cases);
            }
        )*
    };
    (@cases $kind:ident; [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                run_blobs(BlobBackendKind::$kind, tests::blob_store::$case).await;
            }
        )*
    };
}

blob_matrix! {
    blob_memory: Memory,
    blob_fs: Fs,
    blob_s3: S3,
    blob_memory_operator: MemoryOperator,
    blob_fs_operator: FsOperator,
    blob_s3_operator: S3Operator;
    [
    put_read_delete,
    streaming_uploads,
    tenants_are_separate,
    bad_urls_and_unreachable_servers,
    ]
}

#[test]
fn blob_operators_lacking_a_capability_are_refused() {
    tests::blob_store::refuses_operators_lacking_a_capability();
}

/// The object-store suite on every metadata × blob backend combination.
macro_rules! object_matrix {
    ($($module:ident: $db:ident + $blobs:ident),* $(,)? ; $cases:tt) => {
        $(
            mod $module {
                use tests::support::{Backend, BlobBackendKind};
                object_matrix!(@cases $db, $blobs; $cases);
            }
        )*
    };
    (@cases $db:ident, $blobs:ident; [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                tests::object_store::run(Backend::$db, BlobBackendKind::$blobs, tests::object_store::$case).await;
            }
        )*
    };
}

object_matrix! {
    objects_sqlite_memory: SqliteMemory + Memory,
    objects_sqlite_fs: SqliteFile + Fs,
    objects_sqlite_s3: SqliteFile + S3,
    objects_postgres_memory: Postgres + Memory,
    objects_postgres_fs: Postgres + Fs,
    objects_postgres_s3: Postgres + S3,
    objects_sqlite_memory_operator: SqliteMemory + MemoryOperator,
    objects_sqlite_fs_operator: SqliteFile + FsOperator,
    objects_postgres_s3_operator: Postgres + S3Operator;
    [
    put_get_round_trip,
    streaming_put_and_get,
    overwrite_replaces,
    list_by_prefix,
    list_dir_by_level,
    ranges_of_an_opened_version,
    delete_and_copy,
    bad_paths_write_nothing,
    tenants_are_isolated,
    context_binding,
    key_rotation_and_shredding,
    quotas_are_enforced,
    garbage_collection,
    tenant_state_is_enforced,
    reencryption_is_resumable,
    abandoned_uploads_leave_nothing,
    purged_tenants_leave_nothing,
    verify_finds_every_problem,
    verify_while_writing_reports_nothing,
    ]
}

/// The snapshot suite on every metadata × blob backend combination.
macro_rules! snapshot_matrix {
    ($($module:ident: $db:ident + $blobs:ident),* $(,)? ; $cases:tt) => {
        $(
            mod $module {
                use tests::support::{Backend, BlobBackendKind};
                snapshot_matrix!(@cases $db, $blobs; $cases);
            }
        )*
    };
    (@cases $db:ident, $blobs:ident; [$($suite:ident :: $case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                tests::snapshots::run(Backend::$db, BlobBackendKind::$blobs, tests::$suite::$case).await;
            }
        )*
    };
}

snapshot_matrix! {
    snapshots_sqlite_memory: SqliteMemory + Memory,
    snapshots_sqlite_fs: SqliteFile + Fs,
    snapshots_sqlite_s3: SqliteFile + S3,
    snapshots_postgres_memory: Postgres + Memory,
    snapshots_postgres_fs: Postgres + Fs,
    snapshots_postgres_s3: Postgres + S3;
    [
    snapshots::directories_import_and_read_back,
    snapshots::reimports_are_deduplicated,
    snapshots::reimports_check_their_guesses,
    snapshot_life::files_are_listed_with_filters,
    snapshot_life::snapshots_are_diffed,
    snapshot_life::failed_imports_leave_nothing,
    snapshot_life::imports_report_progress,
    snapshot_life::imports_are_charged_to_the_quota,
    snapshot_life::snapshots_are_isolated,
    snapshot_life::garbage_is_collected,
    snapshot_life::usage_adds_up,
    snapshot_life::parallel_writers_respect_the_quota,
    project_verify::verify_finds_every_problem_in_projects,
    project_verify::verify_while_writing_reports_nothing,
    project_verify::imports_under_destroyed_keys_are_refused,
    project_verify::imports_work_again_after_the_tenant_keys_are_destroyed,
    repack::projects_are_reencrypted_and_repacked,
    repack::dead_bytes_are_reclaimed,
    analysis::results_are_recorded_and_listed,
    analysis::results_move_forward_only,
    analysis::payloads_round_trip_encrypted,
    analysis::payloads_are_charged_to_the_quota,
    analysis::results_go_with_their_snapshot_and_project,
    analysis::results_are_isolated,
    analysis_batch::batches_apply_all_or_nothing,
    ]
}

snapshot_matrix! {
    archives_sqlite_memory: SqliteMemory + Memory,
    archives_postgres_fs: Postgres + Fs,
    archives_sqlite_s3: SqliteFile + S3;
    [
    archives::every_format_imports,
    archives::hostile_archives_are_refused,
    archives::archive_entries_have_safe_outcomes,
    archives::exports_round_trip,
    ]
}

snapshot_matrix! {
    retention_sqlite_fs: SqliteFile + Fs,
    retention_postgres_memory: Postgres + Memory;
    [
    retention::retention_keeps_what_policies_say,
    retention::legal_holds_block_every_deletion,
    retention::deleted_projects_are_purged,
    backup::backups_restore_elsewhere_byte_for_byte,
    tenant_backup::tenant_backups_restore_elsewhere,
    ]
}

/// The ate-auth suite on every metadata backend.
macro_rules! auth_matrix {
    ($($case:ident),* $(,)?) => {
        mod auth_sqlite_memory { use tests::support::Backend; auth_matrix!(@cases SqliteMemory; $($case),*); }
        mod auth_sqlite_file { use tests::support::Backend; auth_matrix!(@cases SqliteFile; $($case),*); }
        mod auth_postgres { use tests::support::Backend; auth_matrix!(@cases Postgres; $($case),*); }
    };
    (@cases $db:ident; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                tests::support::run(Backend::$db, tests::auth::$case).await;
            }
        )*
    };
}

auth_matrix! {
    register_login_refresh_logout,
    verification_cache_follows_changes,
    failures_look_alike,
    lockout_is_exact_under_parallel_attempts,
    refresh_token_reuse_revokes_the_family,
    sessions_expire_and_can_be_ended,
    disabled_users_lose_access_at_once,
    admins_stay_in_their_tenant,
    password_changes,
    rate_limits_apply,
    signing_keys_rotate,
    remembered_tokens_still_expire_and_are_revoked,
    delegated_tokens_verify_only_for_their_audience,
    delegated_tokens_are_reused_for_half_their_lifetime,
    every_algorithm_signs_and_verifies,
    hashes_are_upgraded_on_login,
    locks_apply_to_refresh,
    user_quota_is_enforced,
    users_manage_their_own_profile,
    roles_carry_the_deployments_permissions,
}

/// The workflow store suite on every metadata backend.
macro_rules! workflow_matrix {
    ($($case:ident),* $(,)?) => {
        mod workflow_sqlite_memory { use tests::support::Backend; workflow_matrix!(@cases SqliteMemory; $($case),*); }
        mod workflow_sqlite_file { use tests::support::Backend; workflow_matrix!(@cases SqliteFile; $($case),*); }
        mod workflow_postgres { use tests::support::Backend; workflow_matrix!(@cases Postgres; $($case),*); }
    };
    (@cases $db:ident; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                tests::support::run(Backend::$db, tests::workflow_store::$case).await;
            }
        )*
    };
}

workflow_matrix! {
    submit_and_get,
    submissions_are_idempotent,
    batches_submit_all_or_nothing,
    list_filters_and_paginates,
    cancel_is_idempotent_and_audited,
    tenancy_is_enforced,
    claims_and_completions_drive_a_run,
    leases_expire_and_tokens_fence,
    failures_retry_then_fail_the_run,
    cancel_reaches_running_attempts,
    maintenance_starts_and_times_out_runs,
    concurrent_claims_never_share_a_node,
    signals_complete_waiting_nodes,
    signal_timeouts_fail_runs,
    logs_are_filtered_and_paged,
    claims_are_fair_across_tenants,
    global_running_limit_holds,
    watchers_follow_run_changes,
    child_runs_belong_to_their_parent,
    schedules_fire_each_tick_once,
    stats_feed_metrics_and_alerts,
    claims_take_only_known_steps,
    failed_runs_retry_from_their_failure,
    claims_rotate_across_tenants,
    batched_completions_are_independent,
    results_and_claims_go_together,
    batches_see_what_they_waited_for,
}

/// The workflow engine end to end (workers and handlers) on every metadata backend.
macro_rules! engine_matrix {
    ($($case:ident),* $(,)?) => {
        mod engine_sqlite_memory { use tests::support::Backend; engine_matrix!(@cases SqliteMemory; $($case),*); }
        mod engine_sqlite_file { use tests::support::Backend; engine_matrix!(@cases SqliteFile; $($case),*); }
        mod engine_postgres { use tests::support::Backend; engine_matrix!(@cases Postgres; $($case),*); }
    };
    (@cases $db:ident; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                tests::support::run(Backend::$db, tests::workflow_engine::$case).await;
            }
        )*
    };
}

engine_matrix! {
    runs_complete_end_to_end,
    events_wake_idle_workers,
    child_runs_are_awaited_and_cancelled_with_their_parent,
    schedules_are_checked_against_the_engine,
    engines_with_different_steps_share_a_database,
    integration_step_calls_endpoints,
    failing_steps_are_retried,
    cancellation_reaches_handlers,
    shutdown_releases_unfinished_attempts,
    workers_share_the_work,
    silent_handlers_time_out,
}

/// The ClamAV adapter against the clamd `scripts/test` starts (one engine, no matrix).
mod clamd {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clamd_finds_the_test_signature() {
        tests::scanner::clamd_finds_the_test_signature().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clamd_limits_and_failures_are_errors() {
        tests::scanner::clamd_limits_and_failures_are_errors().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn imports_are_scanned() {
        tests::scanner::imports_are_scanned().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn odd_answers_are_errors() {
        tests::scanner::odd_answers_are_errors().await;
    }
}

/// The key cache against a change made through another database handle (another process).
mod key_cache_across_handles {
    use tests::support::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_file() {
        tests::keyring::another_handle_is_bounded_by_the_ttl(Backend::SqliteFile).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        tests::keyring::another_handle_is_bounded_by_the_ttl(Backend::Postgres).await;
    }
}
