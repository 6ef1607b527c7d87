//! The rules for a project's fields, each with an `InvalidInput` that says what was wrong.

use crate::StorageError;
use serde_json::Value;
use std::collections::BTreeMap;

/// Longest project name, in characters.
pub const MAX_PROJECT_NAME_CHARS: usize = 100;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;
/// Most labels on a project.
pub const MAX_LABELS: usize = 32;
/// Longest label key, in bytes.
pub const MAX_LABEL_KEY_BYTES: usize = 63;
/// Longest label value, in bytes.
pub const MAX_LABEL_VALUE_BYTES: usize = 256;
/// Largest settings, as JSON bytes.
pub const MAX_SETTINGS_BYTES: usize = 16 * 1024;

/// A project name: 1 to [`MAX_PROJECT_NAME_CHARS`] ASCII letters, digits, `.`, `_` and `-`,
/// starting with a letter, digit or `_` (so never `.`, `..` or an option-like `-x`). Safe in
/// a URL path segment and a file name as it is. Unique in its tenant without regard to case
/// ([`ProjectName::key`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ProjectName(String);

impl ProjectName {
    /// Checks `name`; `InvalidInput` saying which rule it breaks.
    pub fn new(name: &str) -> Result<Self, StorageError> {
        let shown: String = name.chars().take(40).collect();
        let bad = |reason: &str| {
            Err(StorageError::invalid(
                "project name",
                format!("{shown:?} {reason}"),
            ))
        };
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_PROJECT_NAME_CHARS {
            return Err(StorageError::invalid(
                "project name",
                format!("must have 1 to {MAX_PROJECT_NAME_CHARS} characters, got {chars}"),
            ));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return bad(&format!(
                "contains {c:?}: only ASCII letters, digits, '.', '_' and '-' are allowed"
            ));
        }
        if name.starts_with(['.', '-']) {
            return bad("must start with a letter, a digit or '_'");
        }
        Ok(ProjectName(name.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name without case: what uniqueness in a tenant is decided on.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl std::fmt::Display for ProjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Free text: at most [`MAX_DESCRIPTION_BYTES`], no control characters but newlines and
/// tabs.
pub(super) fn description(text: &str) -> Result<(), StorageError> {
    if text.len() > MAX_DESCRIPTION_BYTES {
        return Err(StorageError::invalid(
            "project description",
            format!(
                "must be at most {MAX_DESCRIPTION_BYTES} bytes, got {}",
                text.len()
            ),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(StorageError::invalid(
            "project description",
            "must not contain control characters other than newlines and tabs",
        ));
    }
    Ok(())
}

/// At most [`MAX_LABELS`]; keys of 1 to [`MAX_LABEL_KEY_BYTES`] lower-case ASCII letters,
/// digits, `.`, `_`, `-` and `/`, starting with a letter or digit; values of at most
/// [`MAX_LABEL_VALUE_BYTES`] without control characters.
pub(super) fn labels(labels: &BTreeMap<String, String>) -> Result<(), StorageError> {
    if labels.len() > MAX_LABELS {
        return Err(StorageError::invalid(
            "project labels",
            format!("at most {MAX_LABELS} are allowed, got {}", labels.len()),
        ));
    }
    for (key, value) in labels {
        label(key, value)?;
    }
    Ok(())
}

/// One label (also a filter of a listing).
pub(super) fn label(key: &str, value: &str) -> Result<(), StorageError> {
    let shown: String = key.chars().take(40).collect();
    let key_ok = !key.is_empty()
        && key.len() <= MAX_LABEL_KEY_BYTES
        && key.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && key.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/')
        });
    if !key_ok {
        return Err(StorageError::invalid(
            "project label",
            format!(
                "key {shown:?} must be 1 to {MAX_LABEL_KEY_BYTES} lower-case ASCII letters, \
                 digits, '.', '_', '-' or '/', starting with a letter or digit"
            ),
        ));
    }
    if value.len() > MAX_LABEL_VALUE_BYTES || value.chars().any(char::is_control) {
        return Err(StorageError::invalid(
            "project label",
            format!(
                "the value of {shown:?} must be at most {MAX_LABEL_VALUE_BYTES} bytes without \
                 control characters"
            ),
        ));
    }
    Ok(())
}

/// A JSON object of at most [`MAX_SETTINGS_BYTES`].
pub(super) fn settings(settings: &Value) -> Result<(), StorageError> {
    if !settings.is_object() {
        return Err(StorageError::invalid(
            "project settings",
            "must be a JSON object",
        ));
    }
    let size = settings.to_string().len();
    if size > MAX_SETTINGS_BYTES {
        return Err(StorageError::invalid(
            "project settings",
            format!("must be at most {MAX_SETTINGS_BYTES} bytes as JSON, got {size}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        for good in [
            "a",
            "billing-api",
            "A.b_c-1",
            "_x",
            "9lives",
            &"n".repeat(100),
        ] {
            assert!(ProjectName::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "-rf",
            ".hidden",
            "a/b",
            "a\\b",
            "a b",
            "ä",
            "a\0b",
            "a\nb",
            &"n".repeat(101),
        ] {
            let e = ProjectName::new(bad).unwrap_err();
            assert!(e.to_string().contains("project name"), "{bad:?}: {e}");
        }
        assert_eq!(
            ProjectName::new("Billing-API").unwrap().key(),
            "billing-api"
        );
    }

    #[test]
    fn fields_are_bounded() {
        assert!(description(&"d".repeat(MAX_DESCRIPTION_BYTES)).is_ok());
        assert!(description(&"d".repeat(MAX_DESCRIPTION_BYTES + 1)).is_err());
        assert!(description("two\nlines\tand a tab").is_ok());
        assert!(description("bell\u{7}").is_err());
        assert!(label("team", "payments").is_ok());
        assert!(label("app.kubernetes.io/name", "x").is_ok());
        for key in ["", "Team", "-x", "a b", &"k".repeat(64)] {
            assert!(label(key, "v").is_err(), "{key:?}");
        }
        assert!(label("k", &"v".repeat(257)).is_err());
        assert!(label("k", "line\nbreak").is_err());
        let many: BTreeMap<String, String> =
            (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(labels(&many).is_err());
        assert!(settings(&serde_json::json!({"a": 1})).is_ok());
        assert!(settings(&serde_json::json!([1])).is_err());
        assert!(settings(&serde_json::json!({"a": "x".repeat(MAX_SETTINGS_BYTES)})).is_err());
    }
}
