//! The seams of the workspace stay closed. Crates meet through ate-core's typed API
//! ([`ate_core::CoreTx`], [`ate_core::TenantStore`], [`ate_core::TenantChanges`]), never
//! through its tables or hidden macros, and the repository stands alone (no test or build
//! step reads outside it).
//!
//! Scope of the table rule: the library and host code of every crate but ate-core (`src/`,
//! and the Python package). Tests that tamper with the audit log on purpose and the bench's
//! plain-SQL baseline exercise ate-core itself and are not scanned.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn files_under(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(
                name.as_str(),
                "target" | ".venv" | "node_modules" | "__pycache__"
            ) {
                files_under(&path, exts, out);
            }
        } else if exts.iter().any(|e| name.ends_with(e)) {
            out.push(path);
        }
    }
}

/// The tables ate-core's migrations create, read from the migrations themselves so a new
/// core table is covered without editing this test.
fn core_tables() -> BTreeSet<String> {
    let mut files = Vec::new();
    files_under(&repo().join("ate-core/migrations"), &[".sql"], &mut files);
    assert!(!files.is_empty(), "no ate-core migrations found");
    let mut tables = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap().to_lowercase();
        let words: Vec<String> = tokens(&text).into_iter().map(|(_, t)| t).collect();
        for i in 0..words.len().saturating_sub(2) {
            if words[i] == "create" && words[i + 1] == "table" {
                // CREATE TABLE name, or CREATE TABLE IF NOT EXISTS name
                let at = if words[i + 2] == "if" { i + 5 } else { i + 2 };
                tables.insert(words[at].clone());
            }
        }
    }
    assert!(tables.contains("tenants"), "{tables:?}");
    assert!(tables.contains("audit_events"), "{tables:?}");
    tables
}

/// Identifier-like tokens with their line numbers.
fn tokens(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for t in line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !t.is_empty() {
                out.push((n + 1, t.to_lowercase()));
            }
        }
    }
    out
}

/// Lines where SQL names one of `tables` (`FROM t`, `JOIN t`, `INTO t`, `UPDATE t`,
/// `TABLE t`, `REFERENCES t`).
fn sql_mentions(text: &str, tables: &BTreeSet<String>) -> Vec<(usize, String)> {
    let tokens = tokens(text);
    tokens
        .windows(2)
        .filter(|w| {
            matches!(
                w[0].1.as_str(),
                "from" | "join" | "into" | "update" | "table" | "references"
            ) && tables.contains(&w[1].1)
        })
        .map(|w| (w[1].0, format!("{} {}", w[0].1, w[1].1)))
        .collect()
}

fn rel(path: &Path) -> String {
    path.strip_prefix(repo()).unwrap().display().to_string()
}

#[test]
fn the_detector_finds_sql_on_core_tables_and_nothing_else() {
    let tables: BTreeSet<String> = ["tenants", "audit_events"].map(String::from).into();
    let found = sql_mentions(
        "let a = \"SELECT settings FROM tenants WHERE id = $1\";\n\
         // tenants of the platform, FROM the user's point of view\n\
         sqlx::query(\"UPDATE tenants SET revision = revision\");\n\
         \"INSERT INTO audit_events (x)\"; \"... JOIN\n tenants t ON\"",
        &tables,
    );
    let lines: Vec<usize> = found.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, vec![1, 3, 4, 5], "{found:?}");
}

#[test]
fn no_crate_but_ate_core_names_a_core_table_in_sql() {
    let tables = core_tables();
    let root = repo();
    let mut files = Vec::new();
    for dir in [
        "ate-storage/src",
        "ate-auth/src",
        "ate-orchestrate/src",
        "ate-python/src",
        "ate-python/python",
        "examples/src",
    ] {
        let before = files.len();
        files_under(&root.join(dir), &[".rs", ".py", ".sql"], &mut files);
        assert!(files.len() > before, "nothing to scan in {dir}");
    }
    let mut offenders = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (line, what) in sql_mentions(&text, &tables) {
            offenders.push(format!("{}:{line}: {what}", rel(f)));
        }
    }
    // Other crates' migrations may do one thing with a core table, the documented contract
    // of `ate_core::tenant` for tenant-owned rows: `tenant_id … REFERENCES tenants (id) ON
    // DELETE CASCADE`, so purging a tenant removes them. Nothing else (no triggers, no
    // writes, no other core table).
    let mut migrations = Vec::new();
    for dir in [
        "ate-storage/migrations",
        "ate-auth/migrations",
        "ate-orchestrate/migrations",
    ] {
        files_under(&root.join(dir), &[".sql"], &mut migrations);
    }
    for f in &migrations {
        let text = std::fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (line, what) in sql_mentions(&text, &tables) {
            let source = lines[line - 1].to_lowercase();
            let cascade = what == "references tenants"
                && source.contains("references tenants (id) on delete cascade");
            if !cascade {
                offenders.push(format!("{}:{line}: {what}", rel(f)));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "these use ate-core's tables directly; use ate_core::CoreTx / TenantStore instead:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn no_hidden_ate_core_item_is_used_across_crates() {
    let root = repo();
    let mut files = Vec::new();
    for dir in [
        "ate-storage",
        "ate-auth",
        "ate-orchestrate",
        "ate-python/src",
        "examples",
        "benches",
        "tests/src",
        "tests/tests",
    ] {
        files_under(&root.join(dir), &[".rs"], &mut files);
    }
    let mut offenders = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains("ate_core::__") && !f.ends_with("tests/tests/seams.rs") {
                offenders.push(format!("{}:{}: {}", rel(f), n + 1, line.trim()));
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));

    // ate-core exports no hidden macro for other crates.
    let mut core = Vec::new();
    files_under(&root.join("ate-core/src"), &[".rs"], &mut core);
    for f in &core {
        let text = std::fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim() == "#[macro_export]" {
                let around = &lines[i.saturating_sub(2)..(i + 2).min(lines.len())];
                assert!(
                    !around.iter().any(|l| l.contains("doc(hidden)")),
                    "{}:{}: a hidden exported macro",
                    rel(f),
                    i + 1
                );
            }
        }
    }
}

#[test]
fn nothing_reads_outside_the_repository() {
    let root = repo();
    let mut files = Vec::new();
    for dir in [
        "ate-core",
        "ate-storage",
        "ate-auth",
        "ate-orchestrate",
        "ate-python",
        "examples",
        "benches",
        "tests/src",
        "tests/tests",
        "scripts",
        ".ci",
    ] {
        files_under(
            &root.join(dir),
            &[".rs", ".py", ".toml", ".sh", ".cfg", "run", "test"],
            &mut files,
        );
    }
    files.push(root.join("Cargo.toml"));
    // Built from parts, so that this file does not name the folder itself and needs no
    // exemption from its own check.
    let outside = ["..", "shared"].join("/");
    let vectors = ["shared", "testvectors"].join("/");
    let mut offenders = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains(&outside) || line.contains(&vectors) {
                offenders.push(format!("{}:{}: {}", rel(f), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "the repository must stand alone (vendor what tests need under tests/vectors):\n{}",
        offenders.join("\n")
    );
    // The vendored vectors are where the tests look for them.
    for name in [
        "LICENSE",
        "c2sp_chunked_encryption_aes_256_gcm_test.json",
        "aes_gcm_test.json",
        "json_web_signature_test.json",
        "json_web_key_test.json",
    ] {
        let p = root.join("tests/vectors/wycheproof").join(name);
        assert!(p.is_file(), "missing vendored vector file {}", p.display());
    }
}

#[test]
fn every_crate_with_migrations_has_the_one_entry_point() {
    let root = repo();
    let mut crates = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("migrations").is_dir() && dir.join("src/lib.rs").is_file() {
            crates.push(dir);
        }
    }
    assert!(crates.len() >= 4, "found only {crates:?}");
    for dir in crates {
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        let entry = lib.lines().any(|l| {
            l.starts_with("pub fn migrations() -> ")
                && (l.contains("ate_core::Migrations") || l.contains("-> Migrations"))
        });
        assert!(
            entry,
            "{}/src/lib.rs must offer `pub fn migrations() -> ate_core::Migrations`",
            rel(&dir)
        );
    }
}

/// Rooms of a readable size: no library or example source file (tests aside) grows past
/// 800 lines; split it by concern instead.
#[test]
fn no_source_file_is_over_800_lines() {
    const MAX_LINES: usize = 800;
    let root = repo();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("src").is_dir() && dir.file_name().is_some_and(|n| n != "tests") {
            files_under(&dir.join("src"), &[".rs", ".py"], &mut files);
        }
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let test_file = |p: &Path| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        name == "tests.rs"
            || name == "test_support.rs"
            || p.components().any(|c| c.as_os_str() == "tests")
    };
    let long: Vec<String> = files
        .iter()
        .filter(|f| !test_file(f))
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > MAX_LINES).then(|| format!("{}: {n} lines", rel(f)))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these by concern:\n{}",
        long.join("\n")
    );
}
