//! [`PasswordHasher`]: Argon2id hashing and verification, off the async runtime and bounded
//! in concurrency.

use std::num::NonZeroUsize;
use std::sync::Arc;

use argon2::{Algorithm, Argon2, PasswordHasher as _, Version};
use ate_core::CoreError;
use base64::Engine as _;
use tokio::sync::Semaphore;

use super::stored::{SALT_LEN, StoredHash};
use super::{Argon2Params, Password, PasswordHash};
use crate::error::AuthError;

/// The outcome of a successful [`PasswordHasher::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct Verified {
    /// The stored hash is not what this hasher writes today (another algorithm, such as
    /// bcrypt or Argon2i, or other parameters): hash the password again and store the
    /// result while it is at hand.
    pub needs_rehash: bool,
}

/// Hashes passwords with Argon2id and checks them against stored hashes.
///
/// * **Parameters:** the OWASP minimum (m = 19 MiB, t = 2, p = 1) by default; anything
///   weaker is refused by [`new`](Self::new) (only [`insecure_for_tests`] accepts it).
/// * **Off the runtime, bounded:** the `async` methods run Argon2 on tokio's blocking pool,
///   and at most [`max_concurrent`](Self::max_concurrent) computations (default: the number
///   of CPUs) run at once. Each one holds `m` of memory, so a burst of logins waits for a
///   permit instead of exhausting memory or starving the runtime. A caller that gives up
///   while waiting costs nothing; one that gives up later lets the computation finish.
/// * **Constant time:** hashes are compared by the `argon2` and `bcrypt` crates in
///   constant time, never with `==`.
/// * **Self-describing hashes:** [`verify`](Self::verify) reads algorithm and parameters from
///   the stored string, so hashes made under older settings keep working and report
///   [`Verified::needs_rehash`].
///
/// Cloning is cheap and clones share the concurrency limit.
///
/// ```
/// use ate_auth::password::{Password, PasswordHasher};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ate_auth::AuthError> {
/// let hasher = PasswordHasher::default();
/// let password = Password::new("correct horse battery staple");
/// let stored = hasher.hash(&password).await?;
/// assert!(stored.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
///
/// let verified = hasher.verify(&password, stored.as_str()).await?;
/// assert!(!verified.needs_rehash);
/// # Ok(())
/// # }
/// ```
///
/// [`insecure_for_tests`]: Self::insecure_for_tests
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Argon2Params,
    argon2: argon2::Params,
    max_concurrent: usize,
    permits: Arc<Semaphore>,
    /// The target of [`PasswordHasher::verify_dummy`]: an Argon2id hash with exactly the
    /// configured parameters, a fixed salt and an all-zero output that no password
    /// produces (except with probability 2^-256, and even then the answer is a failure).
    /// It is a formatted string, not a computed hash, so it is made up front at no cost.
    dummy: String,
    #[cfg(test)]
    probe: probe::Probe,
}

impl Default for PasswordHasher {
    /// OWASP's minimum parameters and one concurrent computation per CPU.
    fn default() -> Self {
        let params = Argon2Params::OWASP_MINIMUM;
        // Invariant: the OWASP minimum is within limits (a unit test checks it).
        let argon2 = params
            .to_argon2()
            .expect("the OWASP minimum is valid Argon2 parameters");
        Self::build(params, argon2, default_max_concurrent())
    }
}

impl PasswordHasher {
    /// A hasher with `params`, which must meet the OWASP minimum
    /// ([`Argon2Params::meets_owasp_minimum`]) and stay within the limits
    /// ([`Argon2Params::MAX_MEMORY_KIB`] and friends); one concurrent computation per CPU.
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidInput`] (`what = "argon2 parameters"`) saying what is wrong.
    pub fn new(params: Argon2Params) -> Result<Self, AuthError> {
        let argon2 = params.validate()?;
        Ok(Self::build(params, argon2, default_max_concurrent()))
    }

    /// A hasher with [`Argon2Params::INSECURE_FOR_TESTS`] (64 KiB, t = 1): thousands of
    /// times faster than the OWASP minimum and offering no protection. For tests only.
    pub fn insecure_for_tests() -> Self {
        let params = Argon2Params::INSECURE_FOR_TESTS;
        // Invariant: the test parameters are valid Argon2 parameters (a unit test checks it).
        let argon2 = params
            .to_argon2()
            .expect("INSECURE_FOR_TESTS is valid Argon2 parameters");
        Self::build(params, argon2, default_max_concurrent())
    }

    /// The same hasher with at most `max_concurrent` Argon2 computations at once (across
    /// clones made after this call). Peak memory is about `max_concurrent × memory_kib`.
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidInput`] if `max_concurrent` is 0 or absurdly large.
    pub fn with_max_concurrent(self, max_concurrent: usize) -> Result<Self, AuthError> {
        if max_concurrent == 0 || max_concurrent > Semaphore::MAX_PERMITS {
            return Err(AuthError::invalid(
                "max_concurrent",
                format!(
                    "must be between 1 and {}, got {max_concurrent}",
                    Semaphore::MAX_PERMITS
                ),
            ));
        }
        Ok(Self::build(
            self.inner.params,
            self.inner.argon2.clone(),
            max_concurrent,
        ))
    }

    fn build(params: Argon2Params, argon2: argon2::Params, max_concurrent: usize) -> Self {
        PasswordHasher {
            inner: Arc::new(Inner {
                params,
                argon2,
                max_concurrent,
                permits: Arc::new(Semaphore::new(max_concurrent)),
                dummy: dummy_hash(&params),
                #[cfg(test)]
                probe: probe::Probe::default(),
            }),
        }
    }

    /// The parameters new hashes are made with.
    pub fn params(&self) -> Argon2Params {
        self.inner.params
    }

    /// How many Argon2 computations may run at once.
    pub fn max_concurrent(&self) -> usize {
        self.inner.max_concurrent
    }

    /// Hashes `password` with the configured parameters and a fresh 16-byte salt, giving a
    /// PHC string such as `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`.
    ///
    /// It does not apply a [`PasswordPolicy`](super::PasswordPolicy): check the password
    /// first when it is being set.
    ///
    /// # Errors
    ///
    /// [`AuthError::Core`] (unavailable) if the operating system's random number generator
    /// fails or the runtime is shutting down; [`AuthError::Crypto`] if Argon2 fails.
    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, AuthError> {
        let password = password.clone();
        self.off_runtime(move |inner| inner.hash(&password)).await
    }

    /// Checks `password` against `stored`: an Argon2 PHC string (argon2id, argon2i or
    /// argon2d, any version and parameters within the limits) or a bcrypt hash (`$2a$`,
    /// `$2b$`, `$2y$`; bcrypt reads only the first 72 bytes of the password).
    ///
    /// # Errors
    ///
    /// * [`AuthError::InvalidCredentials`] if the password does not match;
    /// * [`AuthError::Crypto`] (kind `Integrity`) if `stored` is unreadable: an unknown
    ///   format, malformed, or asking for more work than the limits allow. The message says
    ///   which of these, for operators, and never contains the hash. Before answering, the
    ///   same Argon2 work as [`verify_dummy`](Self::verify_dummy) is spent, so the answer
    ///   does not come back faster. Hosts should answer clients with a generic server error
    ///   (or the same "invalid credentials" as a wrong password), never with the message.
    /// * [`AuthError::Core`] (unavailable) if the runtime is shutting down.
    pub async fn verify(&self, password: &Password, stored: &str) -> Result<Verified, AuthError> {
        let password = password.clone();
        let stored = stored.to_owned();
        self.off_runtime(move |inner| inner.verify(&password, &stored))
            .await
    }

    /// Spends the work of a failed [`verify`](Self::verify) against a hash with the
    /// configured parameters, then returns [`AuthError::InvalidCredentials`]. Call it when
    /// there is no hash to check (unknown user, account without a password), so that such
    /// answers take as long as a wrong password and timing does not tell which accounts
    /// exist.
    ///
    /// ```
    /// use ate_auth::AuthError;
    /// use ate_auth::password::{Password, PasswordHasher, Verified};
    ///
    /// async fn login(
    ///     hasher: &PasswordHasher,
    ///     stored: Option<&str>,
    ///     password: &Password,
    /// ) -> Result<Verified, AuthError> {
    ///     match stored {
    ///         Some(stored) => hasher.verify(password, stored).await,
    ///         None => Err(hasher.verify_dummy(password).await),
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let hasher = PasswordHasher::default();
    /// let answer = login(&hasher, None, &Password::new("anything at all")).await;
    /// assert!(matches!(answer, Err(AuthError::InvalidCredentials)));
    /// # }
    /// ```
    pub async fn verify_dummy(&self, password: &Password) -> AuthError {
        let password = password.clone();
        // Whatever happened (even a runtime shutting down), the answer is the same.
        let _ = self
            .off_runtime(move |inner| {
                inner.verify_dummy(&password);
                Ok(())
            })
            .await;
        AuthError::InvalidCredentials
    }

    /// [`hash`](Self::hash) on the calling thread, for callers without an async runtime.
    /// It blocks for the whole computation and is not counted against
    /// [`max_concurrent`](Self::max_concurrent); never call it on an async runtime's thread.
    pub fn hash_blocking(&self, password: &Password) -> Result<PasswordHash, AuthError> {
        self.inner.hash(password)
    }

    /// [`verify`](Self::verify) on the calling thread; see
    /// [`hash_blocking`](Self::hash_blocking) for the caveats.
    pub fn verify_blocking(
        &self,
        password: &Password,
        stored: &str,
    ) -> Result<Verified, AuthError> {
        self.inner.verify(password, stored)
    }

    /// [`verify_dummy`](Self::verify_dummy) on the calling thread; see
    /// [`hash_blocking`](Self::hash_blocking) for the caveats.
    pub fn verify_dummy_blocking(&self, password: &Password) -> AuthError {
        self.inner.verify_dummy(password);
        AuthError::InvalidCredentials
    }

    /// Runs `job` on the blocking pool once a permit is free.
    async fn off_runtime<T, F>(&self, job: F) -> Result<T, AuthError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, AuthError> + Send + 'static,
    {
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| unavailable("the password hasher's permits are closed"))?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            // Held until the computation ends, even if the caller stopped waiting.
            let _permit = permit;
            #[cfg(test)]
            let _running = inner.probe.start();
            job(&inner)
        })
        .await
        .map_err(|e| {
            if e.is_panic() {
                AuthError::Core(CoreError::Internal(
                    "a password hashing task panicked".into(),
                ))
            } else {
                unavailable("a password hashing task was cancelled (runtime shutting down)")
            }
        })?
    }
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .field("max_concurrent", &self.inner.max_concurrent)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn hash(&self, password: &Password) -> Result<PasswordHash, AuthError> {
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|e| {
            unavailable(&format!(
                "the operating system's random number generator failed: {e}"
            ))
        })?;
        #[cfg(test)]
        self.probe.record(self.params);
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.argon2.clone())
            .hash_password_with_salt(password.expose_secret().as_bytes(), &salt)
            .map_err(|e| AuthError::Crypto(format!("Argon2id hashing failed: {e}")))?;
        Ok(PasswordHash::new(phc.to_string()))
    }

    fn verify(&self, password: &Password, stored: &str) -> Result<Verified, AuthError> {
        let outcome = StoredHash::parse(stored).and_then(|hash| {
            self.record(&hash);
            let matched = hash.matches(password, stored)?;
            Ok(matched.then(|| Verified {
                needs_rehash: hash.needs_rehash(&self.params),
            }))
        });
        match outcome {
            Ok(Some(verified)) => Ok(verified),
            Ok(None) => Err(AuthError::InvalidCredentials),
            Err(unreadable) => {
                // Spend what a readable hash costs, so a damaged row does not answer faster.
                self.verify_dummy(password);
                Err(unreadable.into())
            }
        }
    }

    fn verify_dummy(&self, password: &Password) {
        let outcome = StoredHash::parse(&self.dummy).and_then(|hash| {
            self.record(&hash);
            hash.matches(password, &self.dummy)
        });
        let _ = std::hint::black_box(outcome);
    }

    /// Notes, in tests, which Argon2 parameters a check is about to spend.
    fn record(&self, _hash: &StoredHash) {
        #[cfg(test)]
        if let StoredHash::Argon2(argon2) = _hash {
            self.probe.record(argon2.cost());
        }
    }
}

/// An Argon2id PHC string with `params`, a fixed salt and an all-zero 32-byte output.
fn dummy_hash(params: &Argon2Params) -> String {
    const SALT: &[u8; SALT_LEN] = b"ate: dummy salt.";
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.memory_kib,
        params.iterations,
        params.parallelism,
        b64.encode(SALT),
        b64.encode([0u8; argon2::Params::DEFAULT_OUTPUT_LEN]),
    )
}

fn default_max_concurrent() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

fn unavailable(message: &str) -> AuthError {
    AuthError::Core(CoreError::Unavailable {
        message: message.to_owned(),
        source: None,
    })
}

/// What the tests observe from inside: how many computations ran at once, and with which
/// Argon2 parameters.
#[cfg(test)]
mod probe {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::Argon2Params;

    #[derive(Debug, Default)]
    pub(super) struct Probe {
        running: AtomicUsize,
        pub(super) most_running: AtomicUsize,
        pub(super) argon2_runs: Mutex<Vec<Argon2Params>>,
    }

    impl Probe {
        pub(super) fn start(&self) -> Running<'_> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_running.fetch_max(now, Ordering::SeqCst);
            Running(self)
        }

        pub(super) fn record(&self, params: Argon2Params) {
            self.argon2_runs.lock().unwrap().push(params);
        }

        pub(super) fn take_runs(&self) -> Vec<Argon2Params> {
            std::mem::take(&mut *self.argon2_runs.lock().unwrap())
        }
    }

    pub(super) struct Running<'a>(&'a Probe);

    impl Drop for Running<'_> {
        fn drop(&mut self) {
            self.0.running.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use ate_core::{Classify, ErrorKind};

    use super::*;
    use crate::password::import_bcrypt;

    fn pw(text: &str) -> Password {
        Password::new(text)
    }

    #[tokio::test]
    async fn password_hash_round_trip_with_owasp_defaults() {
        let hasher = PasswordHasher::default();
        assert_eq!(hasher.params(), Argon2Params::new(19_456, 2, 1));
        let stored = hasher
            .hash(&pw("correct horse battery staple"))
            .await
            .unwrap();
        assert!(
            stored
                .as_str()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            stored.as_str()
        );
        let verified = hasher
            .verify(&pw("correct horse battery staple"), stored.as_str())
            .await
            .unwrap();
        assert!(!verified.needs_rehash);

        let again = hasher
            .hash(&pw("correct horse battery staple"))
            .await
            .unwrap();
        assert_ne!(again.as_str(), stored.as_str(), "a fresh salt each time");
    }

    #[tokio::test]
    async fn password_wrong_password_is_invalid_credentials() {
        let hasher = PasswordHasher::insecure_for_tests();
        let stored = hasher.hash(&pw("the right one")).await.unwrap();
        for wrong in ["the right on", "The right one", "the right one ", ""] {
            let error = hasher
                .verify(&pw(wrong), stored.as_str())
                .await
                .unwrap_err();
            assert!(
                matches!(error, AuthError::InvalidCredentials),
                "{wrong:?}: {error:?}"
            );
            assert_eq!(error.kind(), ErrorKind::Unauthenticated);
        }
    }

    #[tokio::test]
    async fn password_needs_rehash_when_configured_params_differ() {
        let weak = PasswordHasher::insecure_for_tests();
        let owasp = PasswordHasher::default();
        let stronger = PasswordHasher::new(Argon2Params::new(19_456, 3, 1)).unwrap();

        let weak_hash = weak.hash(&pw("same password")).await.unwrap();
        let verified = weak.verify(&pw("same password"), weak_hash.as_str()).await;
        assert!(!verified.unwrap().needs_rehash, "same params");
        let verified = owasp.verify(&pw("same password"), weak_hash.as_str()).await;
        assert!(verified.unwrap().needs_rehash, "weaker than configured");

        let owasp_hash = owasp.hash(&pw("same password")).await.unwrap();
        let verified = stronger
            .verify(&pw("same password"), owasp_hash.as_str())
            .await;
        assert!(verified.unwrap().needs_rehash, "configured stronger since");
        // The check itself used the stored parameters, not the configured ones.
        assert_eq!(
            stronger.inner.probe.take_runs(),
            vec![Argon2Params::OWASP_MINIMUM]
        );
    }

    #[tokio::test]
    async fn password_argon2i_hashes_verify_and_need_rehash() {
        let params = argon2::Params::new(64, 1, 1, None).unwrap();
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
            .hash_password_with_salt(b"legacy password", b"sixteen byte slt")
            .unwrap()
            .to_string();
        let hasher = PasswordHasher::insecure_for_tests();
        let verified = hasher
            .verify(&pw("legacy password"), &argon2i)
            .await
            .unwrap();
        assert!(verified.needs_rehash);
        let error = hasher.verify(&pw("other"), &argon2i).await.unwrap_err();
        assert!(matches!(error, AuthError::InvalidCredentials));
    }

    #[tokio::test]
    async fn password_bcrypt_imports_verify_and_need_rehash() {
        let legacy = bcrypt::hash("from the old system", 10).unwrap();
        let imported = import_bcrypt(&legacy).unwrap();
        let hasher = PasswordHasher::insecure_for_tests();
        let verified = hasher
            .verify(&pw("from the old system"), imported.as_str())
            .await
            .unwrap();
        assert!(verified.needs_rehash);
        let error = hasher
            .verify(&pw("From the old system"), imported.as_str())
            .await
            .unwrap_err();
        assert!(matches!(error, AuthError::InvalidCredentials), "{error:?}");

        let cheap = bcrypt::hash("from the old system", 4).unwrap();
        let error = import_bcrypt(&cheap).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("cost 4 is below the minimum of 10"),
            "{error}"
        );
        // A cheap hash already in the database still verifies (and is replaced).
        let verified = hasher
            .verify(&pw("from the old system"), &cheap)
            .await
            .unwrap();
        assert!(verified.needs_rehash);
    }

    #[tokio::test]
    async fn password_unreadable_stored_hash_is_an_integrity_error() {
        let hasher = PasswordHasher::insecure_for_tests();
        let good = hasher.hash(&pw("a password")).await.unwrap();
        hasher.inner.probe.take_runs();
        let without_output = &good.as_str()[..good.as_str().rfind('$').unwrap()];
        let unknown_variant = good.as_str().replace("$argon2id$", "$argon2xy$");
        for stored in [
            without_output,
            &unknown_variant,
            "",
            "plaintext!",
            "$2b$10$short",
        ] {
            let error = hasher.verify(&pw("a password"), stored).await.unwrap_err();
            assert!(
                matches!(error, AuthError::Crypto(_)),
                "{stored:?}: {error:?}"
            );
            assert_eq!(error.kind(), ErrorKind::Integrity);
            let message = error.to_string();
            assert!(
                message.contains("stored password hash is unreadable"),
                "{message}"
            );
            assert!(!message.contains(&good.as_str()[30..40]), "{message}");
            assert_eq!(
                hasher.inner.probe.take_runs(),
                vec![Argon2Params::INSECURE_FOR_TESTS],
                "{stored:?}: the dummy's work was spent"
            );
        }
    }

    #[tokio::test]
    async fn password_verify_dummy_fails_and_spends_the_configured_work() {
        for hasher in [
            PasswordHasher::insecure_for_tests(),
            PasswordHasher::new(Argon2Params::new(12_288, 3, 1)).unwrap(),
        ] {
            let configured = hasher.params();
            for password in ["", "anything", "correct horse battery staple"] {
                let error = hasher.verify_dummy(&pw(password)).await;
                assert!(matches!(error, AuthError::InvalidCredentials), "{error:?}");
                assert_eq!(hasher.inner.probe.take_runs(), vec![configured]);
            }
            // The dummy has exactly the shape of a fresh hash, so checking it costs what
            // checking a current user's hash costs.
            let dummy = StoredHash::parse(&hasher.inner.dummy).unwrap();
            assert!(!dummy.needs_rehash(&configured));
            let real = hasher.hash(&pw("a real password")).await.unwrap();
            hasher.inner.probe.take_runs();
            let error = hasher
                .verify(&pw("wrong"), real.as_str())
                .await
                .unwrap_err();
            assert!(matches!(error, AuthError::InvalidCredentials));
            assert_eq!(
                hasher.inner.probe.take_runs(),
                vec![configured],
                "a failed real check spends the same parameters"
            );
            assert!(matches!(
                hasher.verify_dummy_blocking(&pw("x")),
                AuthError::InvalidCredentials
            ));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn password_hashing_respects_max_concurrent() {
        let hasher = PasswordHasher::default().with_max_concurrent(1).unwrap();
        assert_eq!(hasher.max_concurrent(), 1);
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let hasher = hasher.clone();
                tokio::spawn(async move {
                    let password = pw(&format!("parallel password {i}"));
                    let stored = hasher.hash(&password).await?;
                    hasher.verify(&password, stored.as_str()).await
                })
            })
            .collect();
        for task in tasks {
            assert!(!task.await.unwrap().unwrap().needs_rehash);
        }
        assert_eq!(hasher.inner.probe.most_running.load(Ordering::SeqCst), 1);
        assert_eq!(hasher.inner.probe.take_runs().len(), 12);
        assert_eq!(hasher.inner.permits.available_permits(), 1);
    }

    #[test]
    fn password_hasher_refuses_weak_params_and_zero_concurrency() {
        let error = PasswordHasher::new(Argon2Params::new(4_096, 1, 1)).unwrap_err();
        assert!(
            matches!(&error, AuthError::InvalidInput { what: "argon2 parameters", reason }
                if reason.contains("OWASP")),
            "{error:?}"
        );
        assert!(PasswordHasher::new(Argon2Params::INSECURE_FOR_TESTS).is_err());
        assert!(PasswordHasher::new(Argon2Params::OWASP_MINIMUM).is_ok());
        let error = PasswordHasher::insecure_for_tests()
            .with_max_concurrent(0)
            .unwrap_err();
        assert!(matches!(
            error,
            AuthError::InvalidInput {
                what: "max_concurrent",
                ..
            }
        ));
        assert_eq!(
            PasswordHasher::insecure_for_tests().params(),
            Argon2Params::INSECURE_FOR_TESTS
        );
    }

    #[test]
    fn password_blocking_variants_round_trip() {
        let hasher = PasswordHasher::insecure_for_tests();
        let stored = hasher.hash_blocking(&pw("no runtime here")).unwrap();
        assert!(
            !hasher
                .verify_blocking(&pw("no runtime here"), stored.as_str())
                .unwrap()
                .needs_rehash
        );
        assert!(matches!(
            hasher.verify_blocking(&pw("no runtime her"), stored.as_str()),
            Err(AuthError::InvalidCredentials)
        ));
    }

    #[test]
    fn password_hasher_debug_shows_no_secrets() {
        let hasher = PasswordHasher::default();
        let shown = format!("{hasher:?}");
        assert_eq!(
            shown,
            "PasswordHasher { params: Argon2Params { memory_kib: 19456, iterations: 2, \
             parallelism: 1 }, max_concurrent: "
                .to_owned()
                + &hasher.max_concurrent().to_string()
                + ", .. }"
        );
        assert!(!shown.contains('$'), "{shown}");
    }
}
