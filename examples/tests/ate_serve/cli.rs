//! The operator CLI (`ate tenants|users|projects|audit`) on the same data as `ate serve`.

use crate::server::{Database, Server, ate, tar_gz};
use crate::token;
use reqwest::StatusCode;
use serde_json::Value;
use std::path::Path;
use std::process::Output;

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = ate(dir);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run ate")
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_manage_tenants_users_and_codebases() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    let created = json_of(&run(
        d,
        &["--json", "tenants", "create", "acme", "Acme Inc"],
        &[],
    ));
    assert_eq!(created["slug"], "acme");
    // Exit statuses by kind: already exists 5, not found 4, invalid input 3.
    let again = run(d, &["tenants", "create", "acme", "Acme"], &[]);
    assert_eq!(again.status.code(), Some(5), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let missing = run(d, &["users", "list", "--tenant", "nope"], &[]);
    assert_eq!(missing.status.code(), Some(4), "{missing:?}");
    let bad = run(d, &["tenants", "create", "Not A Slug", "x"], &[]);
    assert_eq!(bad.status.code(), Some(3), "{bad:?}");
    let usage = run(d, &["tenants", "frobnicate"], &[]);
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");

    let listed = json_of(&run(d, &["--json", "tenants", "list"], &[]));
    assert!(
        listed
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["slug"] == "acme")),
        "{listed}"
    );

    // The password comes from the environment, never the command line.
    let unset = run(
        d,
        &[
            "users",
            "create",
            "--tenant",
            "acme",
            "--email",
            "ops@acme.example",
            "--password-env",
            "NOT_SET_HERE",
        ],
        &[],
    );
    assert_eq!(unset.status.code(), Some(3), "{unset:?}");
    let user = json_of(&run(
        d,
        &[
            "--json",
            "users",
            "create",
            "--tenant",
            "acme",
            "--email",
            "ops@acme.example",
            "--role",
            "admin",
            "--password-env",
            "OPS_PW",
        ],
        &[("OPS_PW", "operator made passphrase")],
    ));
    assert_eq!(user["roles"], serde_json::json!(["admin"]));
    let users = json_of(&run(
        d,
        &["--json", "users", "list", "--tenant", "acme"],
        &[],
    ));
    assert_eq!(users.as_array().map(Vec::len), Some(1));

    // A directory and an archive import; progress goes to stderr as plain lines (not a
    // terminal here), and stays off with --json.
    let src = d.join("src-tree");
    std::fs::create_dir_all(src.join("src")).expect("mkdir");
    std::fs::write(src.join("src/lib.rs"), b"pub fn one() -> u8 { 1 }\n").expect("write");
    std::fs::write(src.join("README.md"), b"# tree\n").expect("write");
    let imported = run(
        d,
        &[
            "projects",
            "import",
            src.to_str().expect("utf-8"),
            "--tenant",
            "acme",
            "--project",
            "tree",
            "--label",
            "v1",
        ],
        &[],
    );
    assert!(imported.status.success(), "{imported:?}");
    assert!(
        String::from_utf8_lossy(&imported.stdout).contains("imported 2 files"),
        "{imported:?}"
    );
    let progress = String::from_utf8_lossy(&imported.stderr);
    assert!(
        progress.contains("import: ") && progress.contains("bytes"),
        "{progress}"
    );
    let archive = d.join("code.tar.gz");
    std::fs::write(
        &archive,
        tar_gz(&[("a/b.py", b"print(1)\n"), ("c.txt", b"c\n")]),
    )
    .expect("write");
    let snap = json_of(&run(
        d,
        &[
            "--json",
            "projects",
            "import",
            archive.to_str().expect("utf-8"),
            "--tenant",
            "acme",
            "--project",
            "tree",
        ],
        &[],
    ));
    assert_eq!(snap["files"], 2);
    let exported = d.join("out.tar");
    let out = run(
        d,
        &[
            "--json",
            "projects",
            "export",
            "--tenant",
            "acme",
            "--project",
            "tree",
            exported.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(out.stderr.is_empty(), "--json prints no progress: {out:?}");
    let mut names: Vec<String> = tar::Archive::new(std::fs::File::open(&exported).expect("tar"))
        .entries()
        .expect("entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["a/b.py", "c.txt"]);
    let none = run(
        d,
        &[
            "projects",
            "export",
            "--tenant",
            "acme",
            "--project",
            "nothing",
            d.join("x.tar").to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(none.status.code(), Some(4), "{none:?}");
    assert!(!d.join("x.tar").exists() && !d.join("x.tar.partial").exists());

    let chain = json_of(&run(
        d,
        &["--json", "audit", "verify", "--tenant", "acme"],
        &[],
    ));
    assert_eq!(chain["first_break"], Value::Null, "{chain}");

    // What the CLI made, the server serves.
    let s = Server::start(d, &Database::Sqlite, &[]);
    let t = token(
        &s.login("acme", "ops@acme.example", "operator made passphrase")
            .await,
    );
    let projects = s.get("/api/projects", Some(&t)).await;
    projects.expect(StatusCode::OK);
    assert_eq!(projects.body["items"][0]["name"], "tree");
}

/// On a terminal the import draws an indicatif bar: run in a tmux pane and captured.
#[test]
fn import_draws_a_progress_bar_on_a_terminal() {
    if std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_err()
    {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(!in_ci, "CI=true but tmux is not installed");
        eprintln!("SKIPPED: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    assert!(
        run(d, &["tenants", "create", "acme", "Acme"], &[])
            .status
            .success()
    );
    // Large enough that the bar is drawn before the import ends.
    let big: Vec<u8> = (0..24u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let archive = d.join("big.tar.gz");
    std::fs::write(&archive, tar_gz(&[("big.bin", &big)])).expect("write");
    let session = format!("ate-progress-{}", std::process::id());
    let script = d.join("run.sh");
    std::fs::write(
        &script,
        format!(
            "cd {dir} && ATE_AUTH__INSECURE_FAST_HASHING_FOR_TESTS=true {bin} projects import {archive} --tenant acme --project big; echo EXIT=$?; sleep 30\n",
            dir = d.display(),
            bin = env!("CARGO_BIN_EXE_ate"),
            archive = archive.display()
        ),
    )
    .expect("script");
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(args)
            .output()
            .expect("tmux")
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "160",
        "-y",
        "20",
        "sh",
        script.to_str().expect("utf-8"),
    ]);
    assert!(started.status.success(), "{started:?}");
    let mut seen_bar = false;
    let mut pane = String::new();
    for _ in 0..600 {
        pane = String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &session]).stdout)
            .into_owned();
        // indicatif's bar: "import [=====>    ] 12.00 MiB/24.00 MiB 8.00 MiB/s ETA 2s"
        if pane.contains("import [") && pane.contains("MiB") && pane.contains("ETA") {
            seen_bar = true;
        }
        if pane.contains("EXIT=") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = tmux(&["kill-session", "-t", &session]);
    assert!(
        pane.contains("EXIT=0"),
        "the import failed or hung:\n{pane}"
    );
    assert!(seen_bar, "no progress bar was drawn:\n{pane}");
}
