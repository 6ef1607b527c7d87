//! The [`KeyProvider`] conformance suite: one case per clause of the trait's contract (see
//! its rustdoc), using only the public trait, so a KMS implementer can run it against their
//! own provider.
//!
//! * Single-provider cases take `&dyn KeyProvider`; [`every_case`] runs them all.
//! * [`rotation_keeps_retired_keys_readable`] takes a provider before and after a master-key
//!   rotation (the second keeps the first's key as retired);
//!   [`unknown_master_keys_are_not_found`] takes two providers that share no master key.
//!
//! `tests/tests/key_provider.rs` runs every case against [`LocalKeyProvider`] and against
//! [`ProcessKms`](crate::test_kms::ProcessKms), a KMS stand-in in a separate process.
//!
//! [`LocalKeyProvider`]: ate_core::keys::LocalKeyProvider

use crate::assert_kind;
use ate_core::keys::{
    KeyProvider, MIN_CONTEXT_CAPACITY, MIN_SECRET_CAPACITY, SecretBytes, SecretKey, WrappedKey,
};
use ate_core::{Classify, CoreError, ErrorKind};

/// Recognisable, non-repeating bytes (so a leak or a partial wrap would show).
fn secret(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

/// Unwraps, failing the test with the error if it does not succeed.
async fn unwrap_ok(p: &dyn KeyProvider, w: &WrappedKey, context: &[u8]) -> SecretBytes {
    match p.unwrap(w, context).await {
        Ok(s) => s,
        Err(e) => panic!("unwrap under {:?} failed: {e}", w.key_id),
    }
}

/// Asserts `result` failed with `NotFound` and a message naming `key_id`.
#[track_caller]
fn assert_names_unknown_key(result: Result<SecretBytes, CoreError>, key_id: &str) {
    match result {
        Ok(_) => panic!("unwrap under unknown master key {key_id:?} succeeded"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::NotFound, "{key_id:?}: {e}");
            assert!(e.to_string().contains(key_id), "names {key_id:?}: {e}");
        }
    }
}

/// Runs every single-provider case, in order.
pub async fn every_case(p: &dyn KeyProvider) {
    round_trip(p).await;
    wraps_are_confidential_and_randomized(p).await;
    context_is_bound(p).await;
    damaged_wrapped_keys_fail_integrity(p).await;
    unknown_key_ids_are_not_found(p).await;
    input_limits(p).await;
    unwrap_key_needs_a_256_bit_secret(p).await;
    concurrent_use(p).await;
}

/// Secrets of 1 to [`MIN_SECRET_CAPACITY`] bytes round-trip under contexts of 0 to
/// [`MIN_CONTEXT_CAPACITY`] arbitrary bytes; every wrap records the current, stable key id;
/// data keys round-trip through `wrap_key` / `unwrap_key`.
pub async fn round_trip(p: &dyn KeyProvider) {
    let id = p.key_id().to_owned();
    assert!(!id.is_empty(), "key_id is empty");
    let long_context = vec![0xA5; MIN_CONTEXT_CAPACITY];
    let contexts: [&[u8]; 5] = [
        b"",
        b"tenant:acme/v1",
        // Bytes a text protocol might trip on: NUL, newline, space, CR, high bytes.
        &[0, b'\n', b' ', b'\r', 0xFF, 0x80, b'%'],
        "tenant:å/v1".as_bytes(),
        &long_context,
    ];
    for len in [1, 16, 32, 33, 1000, MIN_SECRET_CAPACITY] {
        for (i, context) in contexts.iter().enumerate() {
            let s = secret(len, i as u8);
            let w = p
                .wrap(&s, context)
                .await
                .unwrap_or_else(|e| panic!("wrapping {len} bytes under context #{i} failed: {e}"));
            assert_eq!(w.key_id, id, "the wrap records the current key id");
            let back = unwrap_ok(p, &w, context).await;
            assert!(
                back.expose_secret() == s.as_slice(),
                "{len} bytes, context #{i}"
            );
        }
    }
    assert_eq!(p.key_id(), id, "key_id is stable without a rotation");

    let data_key = SecretKey::generate().unwrap();
    let w = p
        .wrap_key(&data_key, b"tenant:acme/data-key:1")
        .await
        .unwrap();
    assert_eq!(
        p.unwrap_key(&w, b"tenant:acme/data-key:1").await.unwrap(),
        data_key
    );
    // A wrapped key survives its stored form (ATE keeps them as JSON and in columns).
    let stored = serde_json::to_string(&w).unwrap();
    let loaded: WrappedKey = serde_json::from_str(&stored).unwrap();
    assert_eq!(
        p.unwrap_key(&loaded, b"tenant:acme/data-key:1")
            .await
            .unwrap(),
        data_key
    );
}

/// The wrapped bytes do not contain the secret, and two wraps of the same secret differ.
pub async fn wraps_are_confidential_and_randomized(p: &dyn KeyProvider) {
    let s = secret(64, 7);
    let a = p.wrap(&s, b"ctx").await.unwrap();
    let b = p.wrap(&s, b"ctx").await.unwrap();
    for w in [&a, &b] {
        assert!(
            !w.ciphertext
                .windows(16)
                .any(|win| s.windows(16).any(|x| x == win)),
            "the wrapped bytes contain 16 bytes of the secret"
        );
    }
    assert_ne!(
        a.ciphertext, b.ciphertext,
        "two wraps of one secret are equal"
    );
    for w in [&a, &b] {
        assert!(unwrap_ok(p, w, b"ctx").await.expose_secret() == s.as_slice());
    }
}

/// Unwrapping with any context but the wrap's fails with `Integrity`; the right one still
/// works afterwards.
pub async fn context_is_bound(p: &dyn KeyProvider) {
    let s = secret(32, 3);
    let right: &[u8] = b"tenant:acme/v1";
    let w = p.wrap(&s, right).await.unwrap();
    let wrong: [&[u8]; 7] = [
        b"tenant:acme/v2",
        b"tenant:evil/v1",
        b"",
        b"tenant:acme/v",
        b"tenant:acme/v1\0",
        b"tenant:acme/v1 ",
        b"TENANT:ACME/V1",
    ];
    for context in wrong {
        assert_kind(p.unwrap(&w, context).await, ErrorKind::Integrity);
    }
    assert!(unwrap_ok(p, &w, right).await.expose_secret() == s.as_slice());
    // The empty context is a context like any other.
    let empty = p.wrap(&s, b"").await.unwrap();
    assert_kind(p.unwrap(&empty, b"\0").await, ErrorKind::Integrity);
    assert_kind(p.unwrap(&empty, right).await, ErrorKind::Integrity);
    assert!(unwrap_ok(p, &empty, b"").await.expose_secret() == s.as_slice());
}

/// Every modified byte, every truncation (down to empty) and every extension of a wrapped
/// key fails with `Integrity`, never `Ok` and never another kind.
pub async fn damaged_wrapped_keys_fail_integrity(p: &dyn KeyProvider) {
    let context: &[u8] = b"tenant:acme/v1";
    let w = p.wrap(&secret(32, 9), context).await.unwrap();
    let n = w.ciphertext.len();
    assert!(n > 0, "a wrapped key has bytes");
    for i in 0..n {
        for bit in [0x01u8, 0x80] {
            let mut flipped = w.clone();
            flipped.ciphertext[i] ^= bit;
            let r = p.unwrap(&flipped, context).await;
            assert!(
                matches!(&r, Err(e) if e.kind() == ErrorKind::Integrity),
                "byte {i} ^ {bit:#04x}: {r:?}"
            );
        }
    }
    for len in 0..n {
        let mut short = w.clone();
        short.ciphertext.truncate(len);
        let r = p.unwrap(&short, context).await;
        assert!(
            matches!(&r, Err(e) if e.kind() == ErrorKind::Integrity),
            "truncated to {len} of {n} bytes: {r:?}"
        );
    }
    for extra in [&[0u8][..], &[0xFF; 16][..], &w.ciphertext[..]] {
        let mut long = w.clone();
        long.ciphertext.extend_from_slice(extra);
        let r = p.unwrap(&long, context).await;
        assert!(
            matches!(&r, Err(e) if e.kind() == ErrorKind::Integrity),
            "extended by {} bytes: {r:?}",
            extra.len()
        );
    }
    // The original is untouched by all that.
    assert!(unwrap_ok(p, &w, context).await.expose_secret() == secret(32, 9).as_slice());
}

/// A wrapped key naming a master key the provider does not know fails with `NotFound`,
/// naming that key.
pub async fn unknown_key_ids_are_not_found(p: &dyn KeyProvider) {
    let w = p.wrap(&secret(32, 1), b"ctx").await.unwrap();
    for unknown in [
        format!("{}-restored-from-elsewhere", p.key_id()),
        "no-such-master-key".to_owned(),
    ] {
        let mut relabelled = w.clone();
        relabelled.key_id = unknown.clone();
        assert_names_unknown_key(p.unwrap(&relabelled, b"ctx").await, &unknown);
    }
    let mut nameless = w;
    nameless.key_id = String::new();
    assert_kind(p.unwrap(&nameless, b"ctx").await, ErrorKind::NotFound);
}

/// An empty secret is `InvalidInput`; inputs beyond the required capacities work or fail
/// with `InvalidInput`, never anything else, and never wrap in part.
pub async fn input_limits(p: &dyn KeyProvider) {
    assert_kind(p.wrap(b"", b"ctx").await, ErrorKind::InvalidInput);
    assert_kind(p.wrap(b"", b"").await, ErrorKind::InvalidInput);
    let huge = secret(1 << 20, 5);
    match p.wrap(&huge, b"ctx").await {
        Ok(w) => assert!(
            unwrap_ok(p, &w, b"ctx").await.expose_secret() == huge.as_slice(),
            "a 1 MiB secret was accepted but did not round-trip whole"
        ),
        Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidInput, "1 MiB secret: {e}"),
    }
    let long_context = vec![0x3C; 64 * 1024];
    let s = secret(32, 6);
    match p.wrap(&s, &long_context).await {
        Ok(w) => {
            assert!(unwrap_ok(p, &w, &long_context).await.expose_secret() == s.as_slice());
            let mut other = long_context.clone();
            *other.last_mut().unwrap() ^= 1;
            assert_kind(p.unwrap(&w, &other).await, ErrorKind::Integrity);
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidInput, "64 KiB context: {e}"),
    }
}

/// `unwrap_key` of a secret that is not 256 bits fails with `Integrity`.
pub async fn unwrap_key_needs_a_256_bit_secret(p: &dyn KeyProvider) {
    for len in [1, 31, 33, 64] {
        let w = p.wrap(&secret(len, 2), b"ctx").await.unwrap();
        assert_kind(p.unwrap_key(&w, b"ctx").await, ErrorKind::Integrity);
    }
    let w = p.wrap(&secret(32, 2), b"ctx").await.unwrap();
    assert_eq!(
        p.unwrap_key(&w, b"ctx").await.unwrap().expose_secret(),
        secret(32, 2).as_slice()
    );
}

/// Many wraps and unwraps at once each get their own answer.
pub async fn concurrent_use(p: &dyn KeyProvider) {
    let jobs = (0..48u8).map(|i| async move {
        let s = secret(32 + usize::from(i), i);
        let context = format!("tenant:{i}/v1").into_bytes();
        let w = p.wrap(&s, &context).await.unwrap();
        let back = unwrap_ok(p, &w, &context).await;
        assert!(back.expose_secret() == s.as_slice(), "job {i}");
        (w, context)
    });
    let done = futures::future::join_all(jobs).await;
    // And the wraps stay bound to their own contexts.
    let pairs = done.iter().zip(done.iter().skip(1));
    let checks = pairs.map(|((w, _), (_, other))| p.unwrap(w, other));
    for r in futures::future::join_all(checks).await {
        assert_kind(r, ErrorKind::Integrity);
    }
}

/// After a master-key rotation (`after` keeps `before`'s key as retired): what `before`
/// wrapped still unwraps, bound as before; new wraps use the new key id; a key id moved
/// between the two keys fails with `Integrity`; `before` does not know the new key.
pub async fn rotation_keeps_retired_keys_readable(
    before: &dyn KeyProvider,
    after: &dyn KeyProvider,
) {
    let (old_id, new_id) = (before.key_id().to_owned(), after.key_id().to_owned());
    assert_ne!(old_id, new_id, "a rotation changes the key id");
    let context: &[u8] = b"tenant:acme/v1";
    let s_old = secret(32, 11);
    let under_old = before.wrap(&s_old, context).await.unwrap();
    assert_eq!(under_old.key_id, old_id);
    assert!(unwrap_ok(after, &under_old, context).await.expose_secret() == s_old.as_slice());
    assert_kind(
        after.unwrap(&under_old, b"tenant:acme/v2").await,
        ErrorKind::Integrity,
    );
    let mut damaged = under_old.clone();
    damaged.ciphertext[0] ^= 0x40;
    assert_kind(after.unwrap(&damaged, context).await, ErrorKind::Integrity);

    // Rewrapping (what a master-key rotation does to every stored key) moves it to the new id.
    let rewrapped = after
        .wrap(
            unwrap_ok(after, &under_old, context).await.expose_secret(),
            context,
        )
        .await
        .unwrap();
    assert_eq!(rewrapped.key_id, new_id);
    assert!(unwrap_ok(after, &rewrapped, context).await.expose_secret() == s_old.as_slice());

    // A wrapped key relabelled to the other master key fails the check, both ways.
    let mut old_as_new = under_old.clone();
    old_as_new.key_id = new_id.clone();
    assert_kind(
        after.unwrap(&old_as_new, context).await,
        ErrorKind::Integrity,
    );
    let mut new_as_old = rewrapped.clone();
    new_as_old.key_id = old_id.clone();
    assert_kind(
        after.unwrap(&new_as_old, context).await,
        ErrorKind::Integrity,
    );

    // The provider from before the rotation has never heard of the new key.
    assert_names_unknown_key(before.unwrap(&rewrapped, context).await, &new_id);
    assert_eq!(before.key_id(), old_id);
    assert_eq!(after.key_id(), new_id);
}

/// A provider that does not know the master key a secret was wrapped under fails with
/// `NotFound`, naming that key, whatever the context.
pub async fn unknown_master_keys_are_not_found(
    before: &dyn KeyProvider,
    stranger: &dyn KeyProvider,
) {
    assert_ne!(before.key_id(), stranger.key_id());
    let w = before.wrap(&secret(32, 12), b"ctx").await.unwrap();
    assert_names_unknown_key(stranger.unwrap(&w, b"ctx").await, before.key_id());
    assert_names_unknown_key(stranger.unwrap(&w, b"other").await, before.key_id());
    assert_kind(stranger.unwrap_key(&w, b"ctx").await, ErrorKind::NotFound);
}
