//! [`Password`]: what the user typed, wiped on drop and never printed.

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A password exactly as the user typed it: zeroized on drop, redacted in `Debug`, compared
/// in constant time, and deliberately without `Display` or `Serialize`.
///
/// It is used byte for byte as received (ASVS 5.0 V6.2.8): no trimming, no case folding,
/// no truncation, no Unicode normalization.
///
/// `Password` implements `Deserialize` (as a plain string), so a host can read it straight
/// out of a login or registration body.
///
/// ```
/// use ate_auth::password::Password;
///
/// let password = Password::new("correct horse battery staple");
/// assert_eq!(format!("{password:?}"), "Password([REDACTED])");
/// assert_eq!(password.char_count(), 28);
/// ```
#[derive(Clone, Zeroize, ZeroizeOnDrop, serde::Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// Takes ownership of `password`. Passing a `String` moves its buffer in, so no copy is
    /// left behind; a `&str` is copied, and wiping the original is the caller's business.
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The password. Keep the borrow short and never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Length in Unicode scalar values (Rust `char`s), the unit of [`PasswordPolicy`]'s
    /// limits: `"🔐"` and `"密"` count one each.
    ///
    /// [`PasswordPolicy`]: super::PasswordPolicy
    pub fn char_count(&self) -> usize {
        self.0.chars().count()
    }
}

impl From<String> for Password {
    fn from(password: String) -> Self {
        Password(password)
    }
}

impl From<&str> for Password {
    fn from(password: &str) -> Self {
        Password(password.to_owned())
    }
}

impl PartialEq for Password {
    /// Constant time in the contents (the lengths may differ observably).
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Password {}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_debug_is_redacted() {
        let password = Password::new("hunter2-but-longer");
        let shown = format!("{password:?} {password:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(format!("{password:?}"), "Password([REDACTED])");
    }

    #[test]
    fn password_is_used_as_received() {
        let password = Password::new("  Spaces And CASE  ");
        assert_eq!(password.expose_secret(), "  Spaces And CASE  ");
        assert_eq!(password.char_count(), 19);
    }

    #[test]
    fn password_counts_chars_not_bytes() {
        assert_eq!(Password::new("🔐密é").char_count(), 3);
        assert_eq!(Password::new("🔐密é").expose_secret().len(), 9);
    }

    #[test]
    fn password_compares_by_value() {
        assert_eq!(
            Password::from("same password"),
            Password::new("same password")
        );
        assert_ne!(
            Password::from("same password"),
            Password::new("same passworD")
        );
        assert_ne!(Password::from("short"), Password::new("longer one"));
    }

    #[test]
    fn password_zeroize_clears_it() {
        let mut password = Password::new("to be wiped");
        password.zeroize();
        assert_eq!(password.expose_secret(), "");
    }

    #[test]
    fn password_deserializes_from_a_json_string() {
        let password: Password = serde_json::from_str(r#""from a login body""#).unwrap();
        assert_eq!(password.expose_secret(), "from a login body");
    }
}
