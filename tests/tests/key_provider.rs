//! The `KeyProvider` conformance suite against two genuinely different providers:
//! `LocalKeyProvider` (AES-256-GCM envelope in process memory) and `ProcessKms` (a KMS
//! stand-in in a separate process, with its own keys, cipher and wire format).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ate_core::keys::{KeyProvider, LocalKeyProvider, SecretKey};
use ate_core::{Classify, ErrorKind};
use tests::key_provider;
use tests::test_kms::TestKms;

fn local(seed: u8) -> LocalKeyProvider {
    LocalKeyProvider::new(SecretKey::from_bytes([seed; 32]))
}

fn kms() -> TestKms {
    TestKms::new(env!("CARGO_BIN_EXE_test-kms"))
}

macro_rules! single_provider_cases {
    ($($case:ident),* $(,)?) => {
        mod local_provider {
            $(
                #[tokio::test]
                async fn $case() {
                    tests::key_provider::$case(&super::local(1)).await;
                }
            )*
        }
        mod process_kms {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let kms = super::kms();
                    tests::key_provider::$case(&kms.start("k1", &[])).await;
                }
            )*
        }
    };
}

single_provider_cases! {
    round_trip,
    wraps_are_confidential_and_randomized,
    context_is_bound,
    damaged_wrapped_keys_fail_integrity,
    unknown_key_ids_are_not_found,
    input_limits,
    unwrap_key_needs_a_256_bit_secret,
    concurrent_use,
}

#[tokio::test]
async fn local_provider_every_case() {
    key_provider::every_case(&local(2)).await;
}

#[tokio::test]
async fn local_provider_rotation_keeps_retired_keys_readable() {
    let before = local(1);
    let after = local(2).with_retired(SecretKey::from_bytes([1; 32]));
    key_provider::rotation_keeps_retired_keys_readable(&before, &after).await;
}

#[tokio::test]
async fn local_provider_unknown_master_keys_are_not_found() {
    key_provider::unknown_master_keys_are_not_found(&local(1), &local(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_kms_rotation_keeps_retired_keys_readable() {
    let kms = kms();
    let before = kms.start("k1", &[]);
    let after = kms.start("k2", &["k1"]);
    key_provider::rotation_keeps_retired_keys_readable(&before, &after).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_kms_unknown_master_keys_are_not_found() {
    let kms = kms();
    key_provider::unknown_master_keys_are_not_found(&kms.start("k1", &[]), &kms.start("k3", &[]))
        .await;
}

/// The two providers do not understand each other's wrapped keys: the suite passes on two
/// implementations, not one seen twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_are_independent() {
    let (kms, local) = (kms(), local(1));
    let process = kms.start("k1", &[]);
    let by_local = local.wrap(&[7; 32], b"ctx").await.unwrap();
    let by_process = process.wrap(&[7; 32], b"ctx").await.unwrap();
    assert_ne!(by_local.key_id, by_process.key_id);
    assert_eq!(
        process.unwrap(&by_local, b"ctx").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        local.unwrap(&by_process, b"ctx").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// A KMS that is down is `Unavailable` and retryable, never `Integrity` or `NotFound`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_kms_outage_is_unavailable() {
    let kms = kms();
    let p = kms.start("k1", &[]);
    let wrapped = p.wrap(&[1; 32], b"ctx").await.unwrap();
    p.stop();
    for err in [
        p.wrap(&[1; 32], b"ctx").await.unwrap_err(),
        p.unwrap(&wrapped, b"ctx").await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.is_retryable());
    }
    // A restarted KMS with the same key store answers again.
    let again = kms.start("k1", &[]);
    assert_eq!(
        again
            .unwrap(&wrapped, b"ctx")
            .await
            .unwrap()
            .expose_secret(),
        &[1; 32]
    );
}
