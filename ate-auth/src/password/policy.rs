//! [`PasswordPolicy`]: which new passwords may be set (OWASP ASVS 5.0 V6.2).

use std::collections::HashSet;
use std::sync::LazyLock;

use zeroize::Zeroizing;

use super::Password;
use crate::error::AuthError;

/// The shipped list of common passwords; provenance and license in its header and in
/// `ate-auth/data/README.md`.
const COMMON_PASSWORDS_FILE: &str = include_str!("../../data/common-passwords.txt");

/// Parsed once, on first use. The entries are lower case (a test checks it), so a lookup only
/// folds the candidate.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| parse_password_list(COMMON_PASSWORDS_FILE));

fn parse_password_list(text: &'static str) -> HashSet<&'static str> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
}

/// What is known about the user whose password is being set, so that
/// [`PasswordPolicy::check`] can refuse a password equal to it. Empty fields are ignored.
///
/// ```
/// use ate_auth::password::PolicyContext;
///
/// let context = PolicyContext::new()
///     .email("alice@example.com")
///     .username("alice")
///     .name("Alice Liddell");
/// assert_eq!(context.email, Some("alice@example.com"));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyContext<'a> {
    /// The user's email address.
    pub email: Option<&'a str>,
    /// The user's login name.
    pub username: Option<&'a str>,
    /// The user's display name.
    pub name: Option<&'a str>,
}

impl<'a> PolicyContext<'a> {
    /// A context that knows nothing about the user.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the email address.
    pub fn email(mut self, email: &'a str) -> Self {
        self.email = Some(email);
        self
    }

    /// Sets the login name.
    pub fn username(mut self, username: &'a str) -> Self {
        self.username = Some(username);
        self
    }

    /// Sets the display name.
    pub fn name(mut self, name: &'a str) -> Self {
        self.name = Some(name);
        self
    }
}

/// The rules a new password must meet, following OWASP ASVS 5.0 V6.2 (and NIST SP 800-63B):
///
/// * **length** between [`min_length`](Self::min_length) (default 8, never less: V6.2.1; 15
///   is recommended, see [`recommended`](Self::recommended)) and
///   [`max_length`](Self::max_length) (default 128, never less than 64: V6.2.9). Longer
///   passwords are refused with a message, never truncated. Length is counted in Unicode
///   scalar values (`char`s) of the password as typed; it is not NFC-normalized first (no
///   normalization crate is a dependency), so a decomposed "é" counts two;
/// * **no composition rules** (V6.2.5): any characters, spaces included;
/// * **not a common password** (V6.2.4): not equal, ignoring case, to one of the 30,000
///   passwords of the shipped list (zxcvbn's, MIT; see `ate-auth/data/README.md`);
/// * **not the user's own identifiers**: not equal, ignoring case, to the email address,
///   its local part, the username or the display name given in a [`PolicyContext`];
/// * **not a context word** (V6.2.11): not equal, ignoring case, to a word the host lists
///   with [`context_words`](Self::context_words) (its product or company name).
///
/// The check applies when a password is set or changed, not at login: an existing password
/// keeps working when the policy tightens (V6.2.10). Checking against breached-password
/// services (V6.2.12) is left to the host.
///
/// ```
/// use ate_auth::password::{Password, PasswordPolicy, PolicyContext};
///
/// let policy = PasswordPolicy::default();
/// let context = PolicyContext::new().email("alice@example.com");
/// assert!(policy.check(&Password::new("correct horse battery staple"), &context).is_ok());
///
/// let refused = policy.check(&Password::new("Password"), &context).unwrap_err();
/// assert!(refused.to_string().contains("too common"), "{refused}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    min_length: usize,
    max_length: usize,
    /// Lower case.
    context_words: Vec<String>,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl PasswordPolicy {
    /// The smallest minimum length ASVS 5.0 V6.2.1 allows, and the default: 8 characters.
    pub const ASVS_MIN_LENGTH: usize = 8;
    /// The minimum length ASVS 5.0 V6.2.1 strongly recommends: 15 characters.
    pub const RECOMMENDED_MIN_LENGTH: usize = 15;
    /// The smallest maximum length ASVS 5.0 V6.2.9 allows: 64 characters.
    pub const ASVS_MAX_LENGTH_FLOOR: usize = 64;
    /// The default maximum length: 128 characters.
    pub const DEFAULT_MAX_LENGTH: usize = 128;

    /// The default policy: 8 to 128 characters, plus the list and identifier checks.
    pub fn new() -> Self {
        PasswordPolicy {
            min_length: Self::ASVS_MIN_LENGTH,
            max_length: Self::DEFAULT_MAX_LENGTH,
            context_words: Vec::new(),
        }
    }

    /// The default policy with ASVS's recommended minimum of 15 characters.
    pub fn recommended() -> Self {
        PasswordPolicy {
            min_length: Self::RECOMMENDED_MIN_LENGTH,
            ..Self::new()
        }
    }

    /// Sets the minimum length in characters: at least 8 and at most the maximum length.
    pub fn min_length(mut self, chars: usize) -> Result<Self, AuthError> {
        if chars < Self::ASVS_MIN_LENGTH {
            return Err(AuthError::invalid(
                "password policy",
                format!(
                    "the minimum length must be at least {} characters (ASVS 5.0 V6.2.1), got {chars}",
                    Self::ASVS_MIN_LENGTH
                ),
            ));
        }
        if chars > self.max_length {
            return Err(AuthError::invalid(
                "password policy",
                format!(
                    "the minimum length ({chars}) must not exceed the maximum length ({})",
                    self.max_length
                ),
            ));
        }
        self.min_length = chars;
        Ok(self)
    }

    /// Sets the maximum length in characters: at least 64 and at least the minimum length.
    pub fn max_length(mut self, chars: usize) -> Result<Self, AuthError> {
        if chars < Self::ASVS_MAX_LENGTH_FLOOR {
            return Err(AuthError::invalid(
                "password policy",
                format!(
                    "the maximum length must be at least {} characters (ASVS 5.0 V6.2.9), got {chars}",
                    Self::ASVS_MAX_LENGTH_FLOOR
                ),
            ));
        }
        if chars < self.min_length {
            return Err(AuthError::invalid(
                "password policy",
                format!(
                    "the maximum length ({chars}) must not be below the minimum length ({})",
                    self.min_length
                ),
            ));
        }
        self.max_length = chars;
        Ok(self)
    }

    /// Adds words a password must not equal, ignoring case: the product, company or site
    /// name (ASVS 5.0 V6.2.11). Blank words are ignored.
    pub fn context_words<I, S>(mut self, words: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.context_words.extend(
            words
                .into_iter()
                .map(|word| word.as_ref().trim().to_lowercase())
                .filter(|word| !word.is_empty()),
        );
        self
    }

    /// The accepted lengths in characters, from the minimum to the maximum.
    pub fn length_range(&self) -> std::ops::RangeInclusive<usize> {
        self.min_length..=self.max_length
    }

    /// Checks `password` against every rule, in the order listed on [`PasswordPolicy`].
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidInput`] with `what = "password"` and a reason naming the first
    /// rule that failed (for example "must be at least 8 characters long"). The reason
    /// never contains the password.
    pub fn check(&self, password: &Password, context: &PolicyContext<'_>) -> Result<(), AuthError> {
        let refuse = |reason: String| Err(AuthError::invalid("password", reason));

        let length = password.char_count();
        if length < self.min_length {
            return refuse(format!(
                "must be at least {} characters long",
                self.min_length
            ));
        }
        if length > self.max_length {
            return refuse(format!(
                "must be at most {} characters long (longer passwords are refused, not truncated)",
                self.max_length
            ));
        }

        // A folded copy of a secret is a secret too.
        let folded = Zeroizing::new(password.expose_secret().to_lowercase());
        let same_as = |value: Option<&str>| {
            value.is_some_and(|value| !value.is_empty() && value.to_lowercase() == *folded)
        };
        if same_as(context.email) {
            return refuse("must not be the same as the email address".into());
        }
        let local_part = context
            .email
            .and_then(|email| email.rsplit_once('@'))
            .map(|(local, _domain)| local);
        if same_as(local_part) {
            return refuse(
                "must not be the same as the part of the email address before the @".into(),
            );
        }
        if same_as(context.username) {
            return refuse("must not be the same as the username".into());
        }
        if same_as(context.name) {
            return refuse("must not be the same as the user's name".into());
        }
        if self.context_words.contains(&*folded) {
            return refuse("must not be the name of this service or a word tied to it".into());
        }
        if COMMON_PASSWORDS.contains(folded.as_str()) {
            return refuse(
                "is too common: it is on a list of the most frequently used passwords".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ate_core::{Classify, ErrorKind};

    fn check(password: &str) -> Result<(), AuthError> {
        PasswordPolicy::default().check(&Password::new(password), &PolicyContext::new())
    }

    /// The reason of an `InvalidInput { what: "password" }`, after checking it does not echo
    /// the password.
    fn refusal(policy: &PasswordPolicy, password: &str, context: &PolicyContext<'_>) -> String {
        let error = policy
            .check(&Password::new(password), context)
            .expect_err("the policy should refuse it");
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
        let AuthError::InvalidInput { what, reason } = &error else {
            panic!("expected InvalidInput, got {error:?}");
        };
        assert_eq!(*what, "password");
        // (The common-password message itself says "passwords".)
        let echoes = reason.replace("passwords", "").contains(password);
        assert!(!echoes, "the reason echoes the password: {reason}");
        reason.clone()
    }

    fn refused(password: &str) -> String {
        refusal(&PasswordPolicy::default(), password, &PolicyContext::new())
    }

    #[test]
    fn password_policy_length_limits() {
        assert!(refused("7 chars").contains("at least 8 characters"));
        assert!(check("8 chars!").is_ok());
        assert!(check(&"x7".repeat(32)).is_ok(), "64 characters");
        assert!(check(&"y".repeat(128)).is_ok(), "exactly the maximum");
        let reason = refused(&"z".repeat(129));
        assert!(reason.contains("at most 128 characters"), "{reason}");
        assert!(reason.contains("not truncated"), "{reason}");
    }

    #[test]
    fn password_policy_configured_limits_apply_at_the_edges() {
        let policy = PasswordPolicy::recommended()
            .max_length(64)
            .expect("64 is allowed");
        let none = PolicyContext::new();
        assert_eq!(*policy.length_range().start(), 15);
        assert!(refusal(&policy, "fourteen chars", &none).contains("at least 15"));
        assert!(
            policy
                .check(&Password::new("fifteen chars!!"), &none)
                .is_ok()
        );
        assert!(policy.check(&Password::new("q".repeat(64)), &none).is_ok());
        assert!(refusal(&policy, &"q".repeat(65), &none).contains("at most 64"));
    }

    #[test]
    fn password_policy_counts_unicode_characters() {
        assert!(
            refused(&"🔐".repeat(7)).contains("at least 8"),
            "28 bytes, 7 chars"
        );
        assert!(check(&"🔐".repeat(8)).is_ok());
        assert!(check("密码是八个字符长").is_ok(), "8 CJK characters");
        assert!(refused("密码是七个字符").contains("at least 8"));
        assert!(check(&"🦀".repeat(128)).is_ok(), "512 bytes, 128 chars");
        assert!(refused(&"🦀".repeat(129)).contains("at most 128"));
    }

    #[test]
    fn password_policy_has_no_composition_rules() {
        for ok in [
            "correct horse battery staple",
            "all lower case words",
            "        spaces all around        ",
            "8888888x",
            "ÀÉÎÕÜ àéîõü",
        ] {
            assert!(check(ok).is_ok(), "{ok:?} should be accepted");
        }
    }

    #[test]
    fn password_policy_refuses_common_passwords_ignoring_case() {
        for common in [
            "password",
            "Password",
            "PASSWORD",
            "123456789",
            "iloveyou",
            "trustno1",
        ] {
            let reason = refused(common);
            assert!(reason.contains("too common"), "{common}: {reason}");
        }
    }

    #[test]
    fn password_policy_refuses_the_users_identifiers() {
        let policy = PasswordPolicy::default();
        let context = PolicyContext::new()
            .email("Alice.Liddell@Example.com")
            .username("wonderland7")
            .name("Alice Liddell");
        let cases = [
            ("alice.liddell@example.com", "email address"),
            ("ALICE.LIDDELL@EXAMPLE.COM", "email address"),
            ("Alice.Liddell", "before the @"),
            ("wonderland7", "username"),
            ("WonderLand7", "username"),
            ("alice liddell", "user's name"),
        ];
        for (password, rule) in cases {
            let reason = refusal(&policy, password, &context);
            assert!(reason.contains(rule), "{password}: {reason}");
        }
        assert!(
            policy
                .check(&Password::new("alice.liddell.example"), &context)
                .is_ok(),
            "only equality is refused"
        );
    }

    #[test]
    fn password_policy_ignores_empty_identifiers() {
        let context = PolicyContext::new().email("@").username("");
        assert!(
            PasswordPolicy::default()
                .check(&Password::new("unrelated long phrase"), &context)
                .is_ok()
        );
    }

    #[test]
    fn password_policy_refuses_context_words() {
        let policy = PasswordPolicy::default().context_words(["ATE Platform", " "]);
        let reason = refusal(&policy, "ate platform", &PolicyContext::new());
        assert!(reason.contains("this service"), "{reason}");
        assert!(
            policy
                .check(&Password::new("ate platform rocks"), &PolicyContext::new())
                .is_ok()
        );
    }

    #[test]
    fn password_policy_refuses_weak_configuration() {
        for error in [
            PasswordPolicy::default().min_length(7).unwrap_err(),
            PasswordPolicy::default().max_length(63).unwrap_err(),
            PasswordPolicy::default().min_length(129).unwrap_err(),
            PasswordPolicy::recommended()
                .max_length(64)
                .unwrap()
                .min_length(65)
                .unwrap_err(),
        ] {
            assert!(
                matches!(
                    error,
                    AuthError::InvalidInput {
                        what: "password policy",
                        ..
                    }
                ),
                "{error:?}"
            );
        }
        assert_eq!(
            PasswordPolicy::default()
                .max_length(256)
                .unwrap()
                .min_length(20)
                .unwrap()
                .length_range(),
            20..=256
        );
    }

    #[test]
    fn password_list_is_loaded_lower_case_and_complete() {
        assert_eq!(COMMON_PASSWORDS.len(), 30_000);
        assert!(COMMON_PASSWORDS.contains("123456"));
        assert!(!COMMON_PASSWORDS.iter().any(|entry| entry.starts_with('#')));
        let not_folded: Vec<_> = COMMON_PASSWORDS
            .iter()
            .filter(|entry| entry.to_lowercase() != **entry)
            .collect();
        assert!(not_folded.is_empty(), "{not_folded:?}");
        let long_enough = COMMON_PASSWORDS
            .iter()
            .filter(|entry| entry.chars().count() >= PasswordPolicy::ASVS_MIN_LENGTH)
            .count();
        assert!(
            long_enough >= 3_000,
            "ASVS V6.2.4 asks for 3,000; {long_enough}"
        );
    }
}
