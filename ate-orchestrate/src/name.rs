//! Names shared by the crate's domains (service names, instance ids, tags, rule ids, workflow
//! node ids and step names): the rules they follow and the macro that makes a validated name
//! type.

use crate::error::OrchestrateError;

/// Longest service name, instance id, tag, capability, workflow node id or step name (bytes).
pub const MAX_NAME_LEN: usize = 128;

/// 1 to `max` bytes of ASCII letters, digits, `-`, `_`, `.` and `:` (names, tags, rule
/// ids, label keys).
pub(crate) fn validate_token(
    what: &'static str,
    s: &str,
    max: usize,
) -> Result<(), OrchestrateError> {
    if s.is_empty() {
        return Err(OrchestrateError::invalid(what, "must not be empty"));
    }
    if s.len() > max {
        return Err(OrchestrateError::invalid(
            what,
            format!("{} bytes is longer than {max}", s.len()),
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(OrchestrateError::invalid(
            what,
            format!("character {c:?} is not allowed (use ASCII letters, digits, - _ . :)"),
        ));
    }
    Ok(())
}

pub(crate) fn validate_name(what: &'static str, s: &str) -> Result<(), OrchestrateError> {
    validate_token(what, s, MAX_NAME_LEN)?;
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(OrchestrateError::invalid(
            what,
            "must start with a letter or digit",
        ));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, ::serde::Serialize, ::serde::Deserialize,
        )]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `s`: 1 to [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) ASCII letters, digits, `-`, `_`, `.`
            /// or `:`, starting with a letter or digit.
            pub fn new(s: impl Into<String>) -> Result<Self, $crate::OrchestrateError> {
                let s = s.into();
                $crate::name::validate_name($what, &s)?;
                Ok($name(s))
            }

            /// The name as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::OrchestrateError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $name::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = $crate::OrchestrateError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                $name::new(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(crate) use name_type;
