//! The rules for the fields of an analysis result and its payloads.

use super::AnalysisStatus;
use crate::StorageError;
use serde_json::Value;

/// The longest kind, in bytes.
pub const MAX_KIND_BYTES: usize = 64;
/// The longest analyzer name, in bytes.
pub const MAX_ANALYZER_BYTES: usize = 128;
/// The longest analyzer version, in bytes.
pub const MAX_VERSION_BYTES: usize = 64;
/// The largest summary, in bytes of compact JSON.
pub const MAX_SUMMARY_BYTES: usize = 64 * 1024;
/// The deepest nesting of arrays and objects in a summary.
pub const MAX_SUMMARY_DEPTH: usize = 32;
/// The longest error message, in bytes.
pub const MAX_ERROR_BYTES: usize = 4096;
/// The most payloads a result holds.
pub const MAX_PAYLOADS: usize = 32;
/// The longest payload name, in bytes.
pub const MAX_PAYLOAD_NAME_BYTES: usize = 128;
/// The longest content type, in bytes.
pub const MAX_CONTENT_TYPE_BYTES: usize = 255;

/// 1 to [`MAX_KIND_BYTES`] of `a-z`, `0-9`, `.`, `_`, `-`, starting with a letter or digit.
pub(crate) fn kind(kind: &str) -> Result<(), StorageError> {
    let ok = !kind.is_empty()
        && kind.len() <= MAX_KIND_BYTES
        && kind.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StorageError::invalid(
            "analysis kind",
            format!(
                "{:?} must be 1 to {MAX_KIND_BYTES} bytes of a-z, 0-9, '.', '_' or '-', \
                 starting with a letter or digit",
                shown(kind)
            ),
        ))
    }
}

/// 1 to `max` bytes, no control characters, no space at either end.
pub(crate) fn label(what: &'static str, value: &str, max: usize) -> Result<(), StorageError> {
    if value.is_empty() || value.len() > max {
        return Err(StorageError::invalid(
            what,
            format!("must be 1 to {max} bytes, got {}", value.len()),
        ));
    }
    if value.chars().any(char::is_control) || value.trim() != value {
        return Err(StorageError::invalid(
            what,
            format!(
                "{:?} must not hold control characters or start or end with spaces",
                shown(value)
            ),
        ));
    }
    Ok(())
}

/// A JSON object of at most [`MAX_SUMMARY_BYTES`] and [`MAX_SUMMARY_DEPTH`] levels.
pub(crate) fn summary(summary: &Value) -> Result<(), StorageError> {
    if !summary.is_object() {
        return Err(StorageError::invalid(
            "analysis summary",
            "must be a JSON object",
        ));
    }
    if depth(summary) > MAX_SUMMARY_DEPTH {
        return Err(StorageError::invalid(
            "analysis summary",
            format!("must nest at most {MAX_SUMMARY_DEPTH} levels deep"),
        ));
    }
    let size = summary.to_string().len();
    if size > MAX_SUMMARY_BYTES {
        return Err(StorageError::invalid(
            "analysis summary",
            format!("must be at most {MAX_SUMMARY_BYTES} bytes as JSON, got {size}"),
        ));
    }
    Ok(())
}

/// The nesting depth of `value` (a scalar is 0), without recursion.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(d + 1);
        stack.extend(children.map(|c| (c, d + 1)));
    }
    deepest
}

/// An error only with `failed`, at most [`MAX_ERROR_BYTES`] without NUL.
pub(crate) fn error(status: AnalysisStatus, error: Option<&str>) -> Result<(), StorageError> {
    let Some(error) = error else { return Ok(()) };
    if status != AnalysisStatus::Failed {
        return Err(StorageError::invalid(
            "analysis error",
            format!("an error goes only with the status failed, not {status}"),
        ));
    }
    if error.len() > MAX_ERROR_BYTES || error.contains('\0') {
        return Err(StorageError::invalid(
            "analysis error",
            format!("must be at most {MAX_ERROR_BYTES} bytes without NUL"),
        ));
    }
    Ok(())
}

/// 1 to [`MAX_PAYLOAD_NAME_BYTES`] of ASCII letters, digits, `.`, `_`, `-`, starting with
/// a letter or digit.
pub(crate) fn payload_name(name: &str) -> Result<(), StorageError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_PAYLOAD_NAME_BYTES
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StorageError::invalid(
            "payload name",
            format!(
                "{:?} must be 1 to {MAX_PAYLOAD_NAME_BYTES} bytes of ASCII letters, digits, \
                 '.', '_' or '-', starting with a letter or digit",
                shown(name)
            ),
        ))
    }
}

/// `type/subtype` (parameters allowed), printable ASCII, at most
/// [`MAX_CONTENT_TYPE_BYTES`].
pub(crate) fn content_type(value: &str) -> Result<(), StorageError> {
    let essence = value.split(';').next().unwrap_or_default().trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let well_formed = match essence.split_once('/') {
        Some((t, sub)) => token(t) && token(sub),
        None => false,
    };
    if value.len() <= MAX_CONTENT_TYPE_BYTES
        && well_formed
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        Ok(())
    } else {
        Err(StorageError::invalid(
            "payload content type",
            format!(
                "{:?} must be a media type such as application/json, printable ASCII, at most \
                 {MAX_CONTENT_TYPE_BYTES} bytes",
                shown(value)
            ),
        ))
    }
}

/// At most 80 characters of `s`, for error messages.
fn shown(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_follow_the_rules() {
        for good in ["sast", "sbom.cyclonedx", "license-scan", "9", "a_b"] {
            assert!(kind(good).is_ok(), "{good}");
        }
        for bad in ["", "SAST", "-x", ".x", "a b", "a/b", "é", &"k".repeat(65)] {
            let e = kind(bad).unwrap_err();
            assert!(e.to_string().contains("analysis kind"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn labels_are_bounded_and_printable() {
        assert!(label("analyzer", "semgrep", MAX_ANALYZER_BYTES).is_ok());
        assert!(label("analyzer", "Semgrep OSS (pro rules)", MAX_ANALYZER_BYTES).is_ok());
        for bad in ["", " x", "x ", "a\nb", "a\0b", &"v".repeat(129)] {
            assert!(
                label("analyzer", bad, MAX_ANALYZER_BYTES).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn summaries_are_bounded_objects() {
        assert!(summary(&json!({"findings": 3, "by": {"high": 1}})).is_ok());
        assert!(summary(&json!([1])).is_err());
        assert!(summary(&json!("x")).is_err());
        assert!(summary(&json!({"a": "x".repeat(MAX_SUMMARY_BYTES)})).is_err());
        let mut deep = json!(1);
        for _ in 0..MAX_SUMMARY_DEPTH {
            deep = json!([deep]);
        }
        assert!(summary(&json!({ "d": deep.clone() })).is_err());
        let mut ok = json!(1);
        for _ in 0..MAX_SUMMARY_DEPTH - 1 {
            ok = json!([ok]);
        }
        assert!(summary(&json!({ "d": ok })).is_ok());
    }

    #[test]
    fn errors_go_only_with_failed() {
        assert!(error(AnalysisStatus::Failed, Some("timeout")).is_ok());
        assert!(error(AnalysisStatus::Succeeded, Some("timeout")).is_err());
        assert!(error(AnalysisStatus::Failed, Some("a\0b")).is_err());
        assert!(
            error(
                AnalysisStatus::Failed,
                Some(&"e".repeat(MAX_ERROR_BYTES + 1))
            )
            .is_err()
        );
        assert!(error(AnalysisStatus::Running, None).is_ok());
    }

    #[test]
    fn payload_names_and_types() {
        for good in ["report.sarif", "SBOM-1.json", "a"] {
            assert!(payload_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".x", "a/b", "../x", "a b", "é", &"n".repeat(129)] {
            assert!(payload_name(bad).is_err(), "{bad:?}");
        }
        for good in [
            "application/json",
            "application/sarif+json",
            "text/plain; charset=utf-8",
        ] {
            assert!(content_type(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "json",
            "/json",
            "text/",
            "text/plain\n",
            "a b/c",
            "tëxt/plain",
        ] {
            assert!(content_type(bad).is_err(), "{bad:?}");
        }
    }
}
