//! Entry paths: what an import accepts and how it normalizes them.

use super::ImportLimits;
use crate::StorageError;

/// Normalizes an entry's path, or refuses it (`ImportRefused` naming the rule it breaks).
///
/// A stored path is relative, `/`-separated, UTF-8, and made of non-empty components other
/// than `.` and `..`. Leading `./` components and repeated or trailing slashes are
/// normalized away (`./src//lib.rs` → `src/lib.rs`); everything else that could point
/// outside the codebase or mean something else on another system is refused:
///
/// | path | outcome |
/// | --- | --- |
/// | `../x`, `a/../../x`, `a/..` | refused: `..` components are never stored |
/// | `/etc/passwd` | refused: absolute |
/// | `C:/x`, `C:x` | refused: a Windows drive |
/// | `a\b` | refused: a backslash (a separator on Windows) |
/// | a NUL byte, a name that is not UTF-8 | refused |
/// | longer than [`ImportLimits::max_path_bytes`], deeper than [`ImportLimits::max_depth`] | refused |
pub fn normalize_path(raw: &str, limits: &ImportLimits) -> Result<String, StorageError> {
    let refuse = |why: &str| StorageError::refused(Some(raw), why);
    if raw.contains('\0') {
        return Err(refuse("a path holds a NUL byte"));
    }
    if raw.contains('\\') {
        return Err(refuse(
            "a path holds a backslash (a Windows separator); not stored",
        ));
    }
    if raw.starts_with('/') {
        return Err(refuse("an absolute path"));
    }
    let bytes = raw.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(refuse("a Windows drive letter"));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => continue,
            ".." => {
                return Err(refuse(
                    "a `..` component (the path could leave the codebase)",
                ));
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(refuse("an empty path"));
    }
    if parts.len() > limits.max_depth {
        return Err(refuse(&format!(
            "deeper than {} directories",
            limits.max_depth
        )));
    }
    let path = parts.join("/");
    if path.len() > limits.max_path_bytes {
        return Err(refuse(&format!(
            "longer than {} bytes",
            limits.max_path_bytes
        )));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize_or_are_refused() {
        let l = ImportLimits::default();
        for (raw, want) in [
            ("src/lib.rs", "src/lib.rs"),
            ("./src//lib.rs", "src/lib.rs"),
            ("a/./b/", "a/b"),
            ("ünïcode/文件.rs", "ünïcode/文件.rs"),
            ("..foo/x..", "..foo/x.."),
        ] {
            assert_eq!(normalize_path(raw, &l).ok().as_deref(), Some(want), "{raw}");
        }
        for raw in [
            "../x",
            "a/../../x",
            "a/..",
            "/etc/passwd",
            "C:/x",
            "c:x",
            "a\\b",
            "a\0b",
            "",
            ".",
            "./",
        ] {
            assert!(
                matches!(
                    normalize_path(raw, &l),
                    Err(StorageError::ImportRefused { .. })
                ),
                "{raw:?}"
            );
        }
        let tight = ImportLimits {
            max_depth: 2,
            max_path_bytes: 8,
            ..ImportLimits::default()
        };
        assert!(normalize_path("a/b", &tight).is_ok());
        assert!(normalize_path("a/b/c", &tight).is_err());
        assert!(normalize_path("abcdefghi", &tight).is_err());
    }
}
