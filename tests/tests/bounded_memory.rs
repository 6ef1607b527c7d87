//! The bounded-memory import case, alone in its test binary: it compares the process's peak
//! memory before and after a 256 MiB import, which only means something when no other test
//! shares the process (`cargo test` runs a binary's tests as threads of one process).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_archives_stream_in_bounded_memory() {
    tests::snapshots::run(
        tests::support::Backend::SqliteFile,
        tests::support::BlobBackendKind::Fs,
        tests::archives::large_archives_stream_in_bounded_memory,
    )
    .await;
}
