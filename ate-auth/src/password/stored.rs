//! Stored hashes: [`PasswordHash`], reading the formats ATE verifies (Argon2 PHC strings,
//! bcrypt), and [`import_bcrypt`].

use std::str::FromStr;

use argon2::password_hash::phc;
use argon2::{Algorithm, Argon2, PasswordVerifier, Version};

use super::{Argon2Params, Password};
use crate::error::AuthError;

/// Salt length of the hashes ATE writes, in bytes (the PHC format's recommendation).
pub(crate) const SALT_LEN: usize = 16;

/// The lowest bcrypt cost [`import_bcrypt`] accepts (OWASP: a work factor of 10 or more).
pub const BCRYPT_MIN_COST: u32 = 10;

/// The highest bcrypt cost accepted, on import and at verification: 16 already takes
/// seconds, and a higher stored cost would let one bad row tie up the host.
pub const BCRYPT_MAX_COST: u32 = 16;

/// A stored password hash: an Argon2id PHC string made by
/// [`PasswordHasher::hash`](super::PasswordHasher::hash) (for example
/// `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), or a legacy hash accepted by
/// [`import_bcrypt`]. Store [`as_str`](Self::as_str) as is.
///
/// `Debug` shows the algorithm and parameters but not the salt or hash, which would help
/// an offline guessing attack. There is deliberately no `PartialEq`: a password is checked
/// with [`PasswordHasher::verify`](super::PasswordHasher::verify), never by comparing hashes.
#[derive(Clone)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub(crate) fn new(stored: String) -> Self {
        PasswordHash(stored)
    }

    /// Reads a stored hash that came from elsewhere (a database row, another system's
    /// export) and checks that this host can verify it, without computing anything: an
    /// Argon2 PHC string (argon2id, argon2i or argon2d, version 0x10 or 0x13) whose
    /// parameters are within [`Argon2Params`]' limits, or a bcrypt hash of cost at most
    /// [`BCRYPT_MAX_COST`]. Integrity checks use it to find rows a login would fail on.
    ///
    /// ```
    /// use ate_auth::password::PasswordHash;
    ///
    /// let stored = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
    ///               AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    /// assert!(PasswordHash::parse(stored).is_ok());
    /// assert!(PasswordHash::parse("$argon2id$v=19$m=999999999,t=2,p=1$c29tZXNhbHQ$AAAA").is_err());
    /// assert!(PasswordHash::parse("plain text").is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidInput`] (`what = "stored password hash"`) with a fixed phrase
    /// saying what is wrong (unknown format, malformed, over the limits); the message never
    /// contains any part of the hash.
    pub fn parse(stored: &str) -> Result<PasswordHash, AuthError> {
        StoredHash::parse(stored)
            .map_err(|Unreadable(why)| AuthError::invalid("stored password hash", why))?;
        Ok(PasswordHash(stored.to_owned()))
    }

    /// The string to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The string to store, by value.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for PasswordHash {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<PasswordHash> for String {
    fn from(hash: PasswordHash) -> Self {
        hash.0
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PasswordHash(\"{}$[REDACTED]\")", public_prefix(&self.0))
    }
}

/// The part of a stored hash that says how it was made, without salt or output:
/// `$argon2id$v=19$m=19456,t=2,p=1` or `$2b$12`; empty for anything unrecognised (which
/// might be a password stored by mistake).
fn public_prefix(stored: &str) -> String {
    const KNOWN: [&str; 7] = ["argon2id", "argon2i", "argon2d", "2a", "2b", "2y", "2x"];
    let mut fields = stored.split('$');
    let id = match (fields.next(), fields.next()) {
        (Some(""), Some(id)) if KNOWN.contains(&id) => id,
        _ => return String::new(),
    };
    let mut prefix = format!("${id}");
    // Parameters (`v=19`, `m=…,t=…,p=…`) or a bcrypt cost (`12`); the salt is neither.
    for field in fields.take_while(|field| {
        field.contains('=') || (field.len() == 2 && field.bytes().all(|b| b.is_ascii_digit()))
    }) {
        prefix.push('$');
        prefix.push_str(field);
    }
    prefix
}

/// Checks that `hash` is a well-formed bcrypt hash worth importing (`$2a$`, `$2b$` or `$2y$`,
/// cost 10 to 16) and returns it ready to store. ATE verifies it as bcrypt and reports
/// `needs_rehash` on the first successful login, so it is replaced by Argon2id.
///
/// ```
/// let stored = ate_auth::password::import_bcrypt(
///     "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
/// )?;
/// assert!(stored.as_str().starts_with("$2b$10$"));
/// assert!(ate_auth::password::import_bcrypt("$2b$04$not-a-hash").is_err());
/// # Ok::<(), ate_auth::AuthError>(())
/// ```
///
/// # Errors
///
/// [`AuthError::InvalidInput`] (`what = "bcrypt hash"`) saying what is wrong; the message
/// never contains the hash.
pub fn import_bcrypt(hash: &str) -> Result<PasswordHash, AuthError> {
    let refuse = |reason: String| Err(AuthError::invalid("bcrypt hash", reason));
    if !is_bcrypt(hash) {
        return refuse("must start with $2a$, $2b$ or $2y$".into());
    }
    let Ok(parts) = bcrypt::HashParts::from_str(hash) else {
        return refuse(
            "is malformed: expected 60 characters, $2b$NN$ then 53 characters of bcrypt base64"
                .into(),
        );
    };
    let cost = parts.get_cost();
    if cost < BCRYPT_MIN_COST {
        return refuse(format!(
            "cost {cost} is below the minimum of {BCRYPT_MIN_COST}"
        ));
    }
    if cost > BCRYPT_MAX_COST {
        return refuse(format!(
            "cost {cost} is above the maximum of {BCRYPT_MAX_COST}"
        ));
    }
    Ok(PasswordHash::new(hash.to_owned()))
}

fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|prefix| stored.starts_with(prefix))
}

/// Why a stored hash cannot be checked. Fixed phrases only: never any part of the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unreadable(pub(crate) &'static str);

impl From<Unreadable> for AuthError {
    fn from(Unreadable(why): Unreadable) -> Self {
        AuthError::Crypto(format!("stored password hash is unreadable: {why}"))
    }
}

/// A stored hash, parsed and within this host's limits, ready to be checked.
pub(crate) enum StoredHash {
    /// Boxed: a parsed PHC string is a few hundred bytes.
    Argon2(Box<StoredArgon2>),
    Bcrypt,
}

impl StoredHash {
    pub(crate) fn parse(stored: &str) -> Result<Self, Unreadable> {
        if stored.starts_with("$argon2") {
            return StoredArgon2::parse(stored).map(|argon2| StoredHash::Argon2(Box::new(argon2)));
        }
        if is_bcrypt(stored) {
            let parts = bcrypt::HashParts::from_str(stored)
                .map_err(|_| Unreadable("malformed bcrypt hash"))?;
            if parts.get_cost() > BCRYPT_MAX_COST {
                return Err(Unreadable("bcrypt cost above the limit of 16"));
            }
            return Ok(StoredHash::Bcrypt);
        }
        Err(Unreadable("unknown format"))
    }

    /// Whether `password` matches. bcrypt reads at most 72 bytes of the password, as the
    /// system that made the hash did.
    pub(crate) fn matches(&self, password: &Password, stored: &str) -> Result<bool, Unreadable> {
        match self {
            StoredHash::Argon2(argon2) => argon2.matches(password),
            StoredHash::Bcrypt => bcrypt::verify(password.expose_secret(), stored)
                .map_err(|_| Unreadable("bcrypt verification failed")),
        }
    }

    /// Whether a successful login should replace this hash with one made with `configured`.
    pub(crate) fn needs_rehash(&self, configured: &Argon2Params) -> bool {
        match self {
            StoredHash::Argon2(argon2) => argon2.needs_rehash(configured),
            StoredHash::Bcrypt => true,
        }
    }
}

/// A parsed Argon2 PHC string (argon2id, argon2i or argon2d).
pub(crate) struct StoredArgon2 {
    phc: phc::PasswordHash,
    algorithm: Algorithm,
    version: Version,
    params: argon2::Params,
}

impl StoredArgon2 {
    fn parse(stored: &str) -> Result<Self, Unreadable> {
        let phc = phc::PasswordHash::new(stored).map_err(|_| Unreadable("malformed PHC string"))?;
        let algorithm = Algorithm::new(phc.algorithm.as_str())
            .map_err(|_| Unreadable("unknown Argon2 variant"))?;
        // As the argon2 crate does when it verifies: no `v=` means the current version.
        let version = match phc.version {
            None => Version::default(),
            Some(v) => Version::try_from(v).map_err(|_| Unreadable("unknown Argon2 version"))?,
        };
        if phc.salt.is_none() || phc.hash.is_none() {
            return Err(Unreadable("salt or hash missing"));
        }
        // The PHC format names each parameter once; the parser here does not check that,
        // and Argon2 would then take the last value while another reader (an auditor's
        // script, the system the hash came from) may take the first. Found by fuzzing:
        // `m=21,t=2,p=536,m=640045,t=13,p=1` read as cheap by one and costly by the other.
        let names: Vec<String> = phc
            .params
            .iter()
            .map(|(name, _)| name.to_string())
            .collect();
        if names
            .iter()
            .enumerate()
            .any(|(i, name)| names[..i].contains(name))
        {
            return Err(Unreadable("an Argon2 parameter is given twice"));
        }
        let params =
            argon2::Params::try_from(&phc).map_err(|_| Unreadable("invalid Argon2 parameters"))?;
        Argon2Params::of(&params)
            .to_argon2()
            .map_err(|_| Unreadable("Argon2 parameters outside the limits this host accepts"))?;
        Ok(StoredArgon2 {
            phc,
            algorithm,
            version,
            params,
        })
    }

    /// The parameters the check will spend.
    pub(crate) fn cost(&self) -> Argon2Params {
        Argon2Params::of(&self.params)
    }

    fn matches(&self, password: &Password) -> Result<bool, Unreadable> {
        // Recomputes with the stored salt and parameters; the argon2 crate compares the
        // outputs in constant time.
        let argon2 = Argon2::new(self.algorithm, self.version, self.params.clone());
        match argon2.verify_password(password.expose_secret().as_bytes(), &self.phc) {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(_) => Err(Unreadable("Argon2 verification failed")),
        }
    }

    /// True unless this is exactly what a hasher configured with `configured` writes today:
    /// Argon2id, version 0x13, the same m/t/p (stronger counts as different too, so lowering
    /// the cost to meet a latency budget takes effect), a 32-byte output, a 16-byte or longer
    /// salt, no key id or associated data.
    fn needs_rehash(&self, configured: &Argon2Params) -> bool {
        let salt_len = self.phc.salt.as_ref().map_or(0, |salt| salt.len());
        self.algorithm != Algorithm::Argon2id
            || self.phc.version != Some(Version::V0x13.into())
            || self.cost() != *configured
            || self.params.output_len() != Some(argon2::Params::DEFAULT_OUTPUT_LEN)
            || salt_len < SALT_LEN
            || !self.params.keyid().is_empty()
            || !self.params.data().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with fixed inputs, for parsing tests only (no hashing involved).
    const SALT: &str = "c29tZXNhbHRzb21lc2FsdA"; // 16 bytes
    const OUTPUT: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"; // 32 bytes

    fn phc(prefix: &str) -> String {
        format!("{prefix}${SALT}${OUTPUT}")
    }

    fn rehash(stored: &str, configured: Argon2Params) -> bool {
        StoredHash::parse(stored)
            .unwrap_or_else(|e| panic!("{stored}: {e:?}"))
            .needs_rehash(&configured)
    }

    #[test]
    fn password_rehash_decision_follows_configured_params() {
        let owasp = Argon2Params::OWASP_MINIMUM;
        assert!(!rehash(&phc("$argon2id$v=19$m=19456,t=2,p=1"), owasp));
        for weaker_or_different in [
            "$argon2id$v=19$m=19456,t=1,p=1",
            "$argon2id$v=19$m=65536,t=3,p=4",
            "$argon2id$v=19$m=19456,t=2,p=2",
            "$argon2id$v=16$m=19456,t=2,p=1",
            "$argon2id$m=19456,t=2,p=1",
            "$argon2i$v=19$m=19456,t=2,p=1",
            "$argon2d$v=19$m=19456,t=2,p=1",
        ] {
            assert!(
                rehash(&phc(weaker_or_different), owasp),
                "{weaker_or_different}"
            );
        }
        let short_salt = format!("$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ${OUTPUT}");
        assert!(rehash(&short_salt, owasp), "8-byte salt");
        let short_output = format!("$argon2id$v=19$m=19456,t=2,p=1${SALT}$AAAAAAAAAAAAAAAAAAAAAA");
        assert!(rehash(&short_output, owasp), "16-byte output");
        let stronger = Argon2Params::new(65_536, 3, 4);
        assert!(!rehash(&phc("$argon2id$v=19$m=65536,t=3,p=4"), stronger));
        assert!(rehash(
            "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
            owasp
        ));
    }

    #[test]
    fn password_stored_hash_unreadable_cases() {
        for (stored, why) in [
            ("", "unknown format"),
            ("plaintext password", "unknown format"),
            (
                "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
                "unknown format",
            ),
            ("$argon2id$v=19$m=19456,t=2,p=1", "salt or hash missing"),
            (
                "$argon2id$v=19$m=19456,t=2,p=1$!!!$???",
                "malformed PHC string",
            ),
            (
                &phc("$argon2x$v=19$m=19456,t=2,p=1"),
                "unknown Argon2 variant",
            ),
            (
                &phc("$argon2id$v=18$m=19456,t=2,p=1"),
                "unknown Argon2 version",
            ),
            (
                &phc("$argon2id$v=19$m=4194304,t=2,p=1"),
                "outside the limits",
            ),
            (
                &phc("$argon2id$v=19$m=19456,t=1000,p=1"),
                "outside the limits",
            ),
            (
                &phc("$argon2d$v=16$m=21,t=2,p=536,m=640045,t=13,p=1"),
                "given twice",
            ),
            (
                &phc("$argon2id$v=19$m=19456,m=19456,t=2,p=1"),
                "given twice",
            ),
            (
                &phc("$argon2id$v=19$m=19456,t=2,p=1,x=3"),
                "invalid Argon2 parameters",
            ),
            ("$2b$10$tooshort", "malformed bcrypt hash"),
            (
                "$2b$17$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
                "above the limit",
            ),
        ] {
            let Err(Unreadable(reason)) = StoredHash::parse(stored) else {
                panic!("{stored:?} should be unreadable");
            };
            assert!(reason.contains(why), "{stored:?}: {reason}");
            let error = AuthError::from(Unreadable(reason)).to_string();
            assert!(error.starts_with("crypto error: stored password hash is unreadable"));
            if stored.len() > 12 {
                assert!(!error.contains(&stored[stored.len() - 12..]), "{error}");
            }
        }
    }

    #[test]
    fn password_import_bcrypt_checks_format_and_cost() {
        let good = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let hash = good.replacen("$2b$", prefix, 1);
            assert_eq!(import_bcrypt(&hash).unwrap().as_str(), hash);
        }
        for (bad, why) in [
            ("", "must start with"),
            (
                "$2x$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
                "must start with",
            ),
            (
                "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$AAAA",
                "must start with",
            ),
            (
                "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhW",
                "malformed",
            ),
            (
                "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lh!y",
                "malformed",
            ),
            (
                "$2b$04$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
                "cost 4 is below the minimum of 10",
            ),
            (
                "$2b$09$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
                "cost 9 is below",
            ),
            (
                "$2b$17$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
                "cost 17 is above",
            ),
        ] {
            let error = import_bcrypt(bad).unwrap_err();
            let AuthError::InvalidInput {
                what: "bcrypt hash",
                reason,
            } = &error
            else {
                panic!("{bad:?}: {error:?}");
            };
            assert!(reason.contains(why), "{bad:?}: {reason}");
            assert!(!reason.contains("N9qo8uLO"), "{reason}");
        }
    }

    #[test]
    fn password_hash_debug_hides_salt_and_output() {
        let argon2 = PasswordHash::new(phc("$argon2id$v=19$m=19456,t=2,p=1"));
        let shown = format!("{argon2:?}");
        assert_eq!(
            shown,
            "PasswordHash(\"$argon2id$v=19$m=19456,t=2,p=1$[REDACTED]\")"
        );
        let bcrypt = PasswordHash::new(
            "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy".into(),
        );
        assert_eq!(format!("{bcrypt:?}"), "PasswordHash(\"$2b$10$[REDACTED]\")");
        let no_version = PasswordHash::new(phc("$argon2i$m=4096,t=3,p=1"));
        assert_eq!(
            format!("{no_version:?}"),
            "PasswordHash(\"$argon2i$m=4096,t=3,p=1$[REDACTED]\")"
        );
        for garbage in ["garbage", "pa$$word", "$hunter2$x"] {
            let shown = format!("{:?}", PasswordHash::new(garbage.into()));
            assert_eq!(shown, "PasswordHash(\"$[REDACTED]\")", "{garbage}");
        }
    }

    #[test]
    fn password_hash_parse_accepts_what_a_login_can_check_and_names_the_rest() {
        for ok in [
            phc("$argon2id$v=19$m=19456,t=2,p=1"),
            phc("$argon2i$v=16$m=65536,t=3,p=4"),
            phc("$argon2d$m=64,t=1,p=1"),
            "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy".into(),
            // Below import's minimum cost, still checkable at login (a row written earlier).
            "$2a$04$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy".into(),
        ] {
            let parsed = PasswordHash::parse(&ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(parsed.as_str(), ok);
        }
        for (bad, why) in [
            (String::new(), "unknown format"),
            ("hunter2".into(), "unknown format"),
            (
                "$argon2id$v=19$m=19456,t=2,p=1".into(),
                "salt or hash missing",
            ),
            (
                phc("$argon2id$v=19$m=4194304,t=2,p=1"),
                "outside the limits",
            ),
            (
                "$2b$17$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy".into(),
                "cost above the limit",
            ),
            ("$2b$10$short".into(), "malformed bcrypt"),
        ] {
            let err = PasswordHash::parse(&bad).expect_err(&bad);
            assert!(
                matches!(
                    err,
                    AuthError::InvalidInput {
                        what: "stored password hash",
                        ..
                    }
                ),
                "{bad}: {err:?}"
            );
            let message = err.to_string();
            assert!(message.contains(why), "{bad}: {message}");
            if bad.len() > 8 {
                assert!(
                    !message.contains(&bad[bad.len() - 8..]),
                    "the message shows the hash: {message}"
                );
            }
        }
    }
}
