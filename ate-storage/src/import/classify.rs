//! What a file is, from its path and content: language (GitHub Linguist's data, through the
//! `linguist` crate: filename, extension, modeline and content heuristics), vendored
//! (Linguist's vendor patterns), generated (the markers code generators write), binary (a
//! NUL byte early on, as git decides), and its code, comment and blank lines (`tokei`).
//!
//! Everything is decided from the bytes given; nothing is read from the file system (a
//! path is only a name here).

use std::path::Path;

/// How much of a file [`classify`] looks at: heuristics and line counts use at most this
/// many bytes (files longer than that get no line counts).
pub const CLASSIFY_BYTES: usize = 1 << 20;

/// How far into a file a NUL byte makes it binary (git's heuristic).
const BINARY_PROBE: usize = 8000;

/// How far into a file generated-code markers are looked for.
const GENERATED_PROBE: usize = 1024;

/// Lines of a text file, as `tokei` counts them (embedded languages, such as code blocks
/// in Markdown, included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LineCounts {
    /// Lines of code.
    pub code: u64,
    /// Comment lines.
    pub comments: u64,
    /// Blank lines.
    pub blanks: u64,
}

impl LineCounts {
    /// Line counts from the three stored columns (all set, or none).
    pub(crate) fn from_columns(
        code: Option<i64>,
        comments: Option<i64>,
        blanks: Option<i64>,
    ) -> Option<Self> {
        match (code, comments, blanks) {
            (Some(code), Some(comments), Some(blanks)) => Some(LineCounts {
                code: code.max(0) as u64,
                comments: comments.max(0) as u64,
                blanks: blanks.max(0) as u64,
            }),
            _ => None,
        }
    }
}

/// What [`classify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct FileClass {
    /// Linguist's name for the language (`"Rust"`, `"C++"`, `"Markdown"`), if one was found.
    pub language: Option<String>,
    /// Third-party code by Linguist's vendor patterns (`node_modules/`, `vendor/`, …).
    pub vendored: bool,
    /// Written by a tool, by a marker near its start (`@generated`, `DO NOT EDIT`, …) or a
    /// well-known lock file name.
    pub generated: bool,
    /// Not text: a NUL byte within its first 8000 bytes. Binary files get no language and
    /// no line counts.
    pub binary: bool,
    /// Line counts, for text files of at most [`CLASSIFY_BYTES`] whose language `tokei`
    /// knows.
    pub lines: Option<LineCounts>,
}

/// Classifies the file at `path` (a relative path in the codebase, `/`-separated) whose
/// content starts with `head` (at least its first [`CLASSIFY_BYTES`], or all of it);
/// `complete` says whether `head` is the whole file. Never fails: what cannot be decided is
/// left unset.
pub fn classify(path: &str, head: &[u8], complete: bool) -> FileClass {
    let vendored = linguist::is_vendored(path).unwrap_or(false);
    let binary = head[..head.len().min(BINARY_PROBE)].contains(&0);
    if binary {
        return FileClass {
            vendored,
            binary,
            generated: generated_name(path),
            ..FileClass::default()
        };
    }
    let sample = &head[..head.len().min(CLASSIFY_BYTES)];
    // Heuristics read text: a file cut mid-character keeps what decodes.
    let text = match std::str::from_utf8(sample) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&sample[..e.valid_up_to()]).unwrap_or(""),
    };
    let language = linguist::detect_language(path, Some(text))
        .ok()
        .and_then(|found| found.first().map(|l| l.name.to_owned()));
    let generated = generated_name(path) || generated_marker(text);
    let lines = if complete && head.len() <= CLASSIFY_BYTES {
        counter(path, language.as_deref()).map(|lang| {
            let stats = lang
                .parse_from_slice(head, &tokei::Config::default())
                .summarise();
            LineCounts {
                code: stats.code as u64,
                comments: stats.comments as u64,
                blanks: stats.blanks as u64,
            }
        })
    } else {
        None
    };
    FileClass {
        language,
        vendored,
        generated,
        binary,
        lines,
    }
}

/// tokei's counter for the file: by Linguist's language name, else by extension. (Never
/// `LanguageType::from_path`, which falls back to reading the file from disk.)
fn counter(path: &str, language: Option<&str>) -> Option<tokei::LanguageType> {
    language
        .and_then(tokei::LanguageType::from_name)
        .or_else(|| {
            let ext = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
            tokei::LanguageType::from_file_extension(&ext)
        })
}

/// Lock files and other well-known outputs of tools, by name.
fn generated_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    matches!(
        name,
        "Cargo.lock"
            | "package-lock.json"
            | "npm-shrinkwrap.json"
            | "yarn.lock"
            | "pnpm-lock.yaml"
            | "poetry.lock"
            | "Pipfile.lock"
            | "composer.lock"
            | "Gemfile.lock"
            | "go.sum"
            | "flake.lock"
    ) || name.ends_with(".min.js")
        || name.ends_with(".min.css")
        || name.ends_with(".pb.go")
        || name.ends_with("_pb2.py")
        || name.ends_with(".designer.cs")
}

/// The markers code generators put near the top of what they write.
fn generated_marker(text: &str) -> bool {
    let mut end = text.len().min(GENERATED_PROBE);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let top = &text[..end];
    [
        "@generated",
        "DO NOT EDIT",
        "Code generated by",
        "auto-generated",
        "autogenerated",
    ]
    .iter()
    .any(|marker| top.contains(marker))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(path: &str, content: &str) -> FileClass {
        classify(path, content.as_bytes(), true)
    }

    #[test]
    fn languages_come_from_linguist() {
        let rust = whole(
            "src/main.rs",
            "// entry\nfn main() {\n\n    println!(\"hi\");\n}\n",
        );
        assert_eq!(rust.language.as_deref(), Some("Rust"));
        assert_eq!(
            rust.lines,
            Some(LineCounts {
                code: 3,
                comments: 1,
                blanks: 1
            })
        );
        // Ambiguous extension settled by content; filenames; modelines.
        assert_eq!(
            whole("w.h", "#include <iostream>\nclass W {};\n")
                .language
                .as_deref(),
            Some("C++")
        );
        assert_eq!(
            whole("Makefile", "all:\n\ttrue\n").language.as_deref(),
            Some("Makefile")
        );
        assert_eq!(
            whole("notes.txt", "# vim: ft=ruby\nputs 1\n")
                .language
                .as_deref(),
            Some("Ruby")
        );
        assert_eq!(whole("x.unknownext", "stuff\n").language, None);
    }

    #[test]
    fn flags_follow_path_and_content() {
        assert!(whole("node_modules/react/index.js", "x\n").vendored);
        assert!(!whole("src/index.js", "x\n").vendored);
        assert!(whole("api.pb.go", "package api\n").generated);
        assert!(whole("gen.rs", "// @generated by build.rs\nfn f() {}\n").generated);
        assert!(whole("Cargo.lock", "# This file is automatically\n").generated);
        assert!(!whole("lib.rs", "fn f() {}\n").generated);
        let png = classify("logo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", true);
        assert!(png.binary);
        assert_eq!((png.language, png.lines), (None, None));
    }

    #[test]
    fn large_or_partial_files_get_no_counts() {
        let big = "x = 1\n".repeat(CLASSIFY_BYTES / 6 + 10);
        let c = classify("big.py", big.as_bytes(), true);
        assert_eq!(c.language.as_deref(), Some("Python"));
        assert_eq!(c.lines, None);
        let partial = classify("a.py", b"x = 1\n", false);
        assert_eq!(
            (partial.language.as_deref(), partial.lines),
            (Some("Python"), None)
        );
        // Cut in the middle of a character: what decodes is used.
        let cut = classify("a.py", "x = 'é'\n".as_bytes().split_at(6).0, false);
        assert_eq!(cut.language.as_deref(), Some("Python"));
        // Odd input never fails.
        for path in ["", "/", "..", "a\0b", "noext"] {
            let _ = classify(path, b"", true);
        }
    }

    /// This crate's own sources and migrations, read from the repository: real files.
    #[test]
    fn this_crate_is_classified() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = 0;
        let mut dirs = vec![root.join("src"), root.join("migrations")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                let content = std::fs::read(&path).unwrap();
                let c = classify(&rel, &content, true);
                let want = if rel.ends_with(".rs") { "Rust" } else { "SQL" };
                assert!(
                    c.language.as_deref().is_some_and(|l| l.contains(want)),
                    "{rel}: {c:?}"
                );
                assert!(!c.binary && !c.vendored && !c.generated, "{rel}: {c:?}");
                let lines = c.lines.unwrap_or_else(|| panic!("{rel}: no line counts"));
                assert!(lines.code > 0, "{rel}: {lines:?}");
                files += 1;
            }
        }
        assert!(files > 30, "{files} files");
    }
}
