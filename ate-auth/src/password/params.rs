//! [`Argon2Params`]: Argon2 cost parameters and the OWASP floor.

use crate::error::AuthError;

/// Argon2 cost parameters, as in a PHC string's `m=…,t=…,p=…`.
///
/// The default is the OWASP minimum for Argon2id, 19 MiB of memory, 2 iterations, 1 lane
/// ([`OWASP_MINIMUM`](Self::OWASP_MINIMUM)).
///
/// ```
/// use ate_auth::password::Argon2Params;
///
/// assert_eq!(Argon2Params::default(), Argon2Params::new(19_456, 2, 1));
/// assert!(Argon2Params::new(47_104, 1, 1).meets_owasp_minimum());
/// assert!(!Argon2Params::new(4_096, 3, 1).meets_owasp_minimum());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Argon2Params {
    /// Memory in KiB (`m`).
    pub memory_kib: u32,
    /// Passes over the memory (`t`).
    pub iterations: u32,
    /// Lanes (`p`).
    pub parallelism: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::OWASP_MINIMUM
    }
}

impl Argon2Params {
    /// OWASP's minimum for Argon2id: m = 19 MiB (19,456 KiB), t = 2, p = 1.
    pub const OWASP_MINIMUM: Self = Self::new(19_456, 2, 1);

    /// The five Argon2id configurations the OWASP Password Storage Cheat Sheet lists as
    /// equally strong (less memory traded for more iterations), [`OWASP_MINIMUM`] among them.
    ///
    /// [`OWASP_MINIMUM`]: Self::OWASP_MINIMUM
    pub const OWASP_EQUIVALENTS: [Self; 5] = [
        Self::new(47_104, 1, 1),
        Self::new(19_456, 2, 1),
        Self::new(12_288, 3, 1),
        Self::new(9_216, 4, 1),
        Self::new(7_168, 5, 1),
    ];

    /// Fast, weak parameters for tests only: 64 KiB, 1 iteration, 1 lane. Accepted only by
    /// [`PasswordHasher::insecure_for_tests`](super::PasswordHasher::insecure_for_tests).
    pub const INSECURE_FOR_TESTS: Self = Self::new(64, 1, 1);

    /// The most memory accepted, configured or read from a stored hash: 1 GiB.
    pub const MAX_MEMORY_KIB: u32 = 1 << 20;
    /// The most iterations accepted, configured or read from a stored hash.
    pub const MAX_ITERATIONS: u32 = 64;
    /// The most lanes accepted, configured or read from a stored hash.
    pub const MAX_PARALLELISM: u32 = 64;

    /// Parameters with the given memory (KiB), iterations and lanes. Nothing is checked
    /// until they are given to a [`PasswordHasher`](super::PasswordHasher).
    pub const fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Self {
        Argon2Params {
            memory_kib,
            iterations,
            parallelism,
        }
    }

    /// Whether these are at least as strong as one of the [`OWASP_EQUIVALENTS`]: as much
    /// memory and as many iterations as one of its rows, and at least one lane.
    ///
    /// [`OWASP_EQUIVALENTS`]: Self::OWASP_EQUIVALENTS
    pub fn meets_owasp_minimum(&self) -> bool {
        self.parallelism >= 1
            && Self::OWASP_EQUIVALENTS
                .iter()
                .any(|row| self.memory_kib >= row.memory_kib && self.iterations >= row.iterations)
    }

    /// Checks what any Argon2 computation here needs, weak or not: valid Argon2 parameters
    /// within this host's limits (so a corrupted or hostile stored hash cannot ask for
    /// gigabytes or minutes). Returns the `argon2` crate's parameters.
    pub(crate) fn to_argon2(self) -> Result<argon2::Params, &'static str> {
        if self.memory_kib > Self::MAX_MEMORY_KIB {
            return Err("memory exceeds the 1 GiB limit");
        }
        if self.iterations > Self::MAX_ITERATIONS {
            return Err("iterations exceed the limit of 64");
        }
        if self.parallelism > Self::MAX_PARALLELISM {
            return Err("parallelism exceeds the limit of 64");
        }
        argon2::Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(argon2::Params::DEFAULT_OUTPUT_LEN),
        )
        .map_err(|_| {
            "not valid Argon2 parameters (at least 1 iteration, 1 lane and 8 KiB of memory per lane)"
        })
    }

    /// Checks parameters a host configures: within limits and at least the OWASP minimum.
    pub(crate) fn validate(self) -> Result<argon2::Params, AuthError> {
        let argon2 = self
            .to_argon2()
            .map_err(|why| self.refuse(why.to_owned()))?;
        if !self.meets_owasp_minimum() {
            return Err(self.refuse(
                "weaker than the OWASP minimum (m=19456 KiB and t=2, or an equivalent: m=47104 \
                 t=1, m=12288 t=3, m=9216 t=4, m=7168 t=5); tests may use \
                 PasswordHasher::insecure_for_tests()"
                    .to_owned(),
            ));
        }
        Ok(argon2)
    }

    fn refuse(&self, why: String) -> AuthError {
        AuthError::invalid(
            "argon2 parameters",
            format!(
                "m={}, t={}, p={}: {why}",
                self.memory_kib, self.iterations, self.parallelism
            ),
        )
    }

    /// The cost parameters of the `argon2` crate's parameters.
    pub(crate) fn of(params: &argon2::Params) -> Self {
        Self::new(params.m_cost(), params.t_cost(), params.p_cost())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_params_owasp_rows_pass_and_weaker_fail() {
        for row in Argon2Params::OWASP_EQUIVALENTS {
            assert!(row.validate().is_ok(), "{row:?}");
        }
        assert!(
            Argon2Params::new(65_536, 3, 4).validate().is_ok(),
            "RFC 9106's second choice"
        );
        for weak in [
            Argon2Params::new(19_455, 2, 1),
            Argon2Params::new(19_456, 1, 1),
            Argon2Params::new(47_103, 1, 1),
            Argon2Params::new(7_167, 64, 1),
            Argon2Params::INSECURE_FOR_TESTS,
        ] {
            let error = weak.validate().unwrap_err();
            assert!(
                error.to_string().contains("weaker than the OWASP minimum"),
                "{error}"
            );
        }
    }

    #[test]
    fn argon2_params_out_of_limits_are_refused() {
        for (params, why) in [
            (
                Argon2Params::new(Argon2Params::MAX_MEMORY_KIB + 1, 2, 1),
                "1 GiB",
            ),
            (Argon2Params::new(19_456, 65, 1), "iterations"),
            (Argon2Params::new(19_456, 2, 65), "parallelism"),
            (Argon2Params::new(19_456, 2, 0), "lane"),
            (Argon2Params::new(19_456, 0, 1), "iteration"),
        ] {
            let error = params.validate().unwrap_err();
            assert!(
                matches!(&error, AuthError::InvalidInput { what: "argon2 parameters", reason }
                    if reason.contains(why)),
                "{params:?}: {error}"
            );
        }
    }
}
