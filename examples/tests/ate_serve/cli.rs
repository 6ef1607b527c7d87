//! The operator CLI (`ate tenants|users|projects|audit|verify`) on the same data as `ate serve`.

use crate::server::{Database, Server, ate, tar_gz};
use crate::token;
use reqwest::StatusCode;
use serde_json::{Value, json};
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

/// `ate verify` checks every tenant (or one), prints what is wrong and exits 9; `--repair`
/// deletes orphan blobs (and only those); bad arguments are refused.
#[test]
fn verify_reports_damage_and_repairs_orphans() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    let created = json_of(&run(
        d,
        &["--json", "tenants", "create", "acme", "Acme"],
        &[],
    ));
    let tenant = created["id"].as_str().expect("tenant id").to_owned();
    json_of(&run(
        d,
        &["--json", "tenants", "create", "beta", "Beta"],
        &[],
    ));
    let src = d.join("code");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("main.py"), b"print('hi')\n").expect("write");
    let snap = json_of(&run(
        d,
        &[
            "--json",
            "projects",
            "import",
            src.to_str().expect("utf-8"),
            "--tenant",
            "acme",
            "--project",
            "code",
        ],
        &[],
    ));
    let project = snap["project_id"].as_str().expect("project id").to_owned();

    let clean = json_of(&run(d, &["--json", "verify"], &[]));
    assert_eq!(clean["problems"], 0, "{clean}");
    let checked = &clean["tenants"][0]["projects"];
    assert_eq!(
        (
            &checked["projects"],
            &checked["snapshots"],
            &checked["files"],
            &checked["packs"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(1)),
        "{clean}"
    );
    assert_eq!(
        clean["tenants"].as_array().map(Vec::len),
        Some(2),
        "{clean}"
    );
    assert_eq!(
        clean["tenants"][0]["audit"]["first_break"],
        Value::Null,
        "{clean}"
    );
    let text = run(d, &["verify", "--tenant", "acme", "--read-all"], &[]);
    assert!(text.status.success(), "{text:?}");
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("no problems"),
        "{text:?}"
    );

    // A blob no index row points at, as an upload that crashed before its commit leaves
    // (its UUIDv7 dates it to 2024, well past the grace period).
    let orphan_dir = d.join(format!("ate-data/blobs/t/{tenant}/o"));
    std::fs::create_dir_all(&orphan_dir).expect("mkdir");
    let orphan = orphan_dir.join("018f0000-0000-7000-8000-000000000001");
    std::fs::write(&orphan, b"half an upload").expect("write");
    // And a pack blob no row records, as an import that died leaves.
    let stray_name = format!("t/{tenant}/p/{project}/k/018f0000-0000-7000-8000-000000000002");
    let stray = d.join("ate-data/blobs").join(&stray_name);
    std::fs::write(&stray, b"half a pack").expect("write");
    let found = run(d, &["--json", "verify"], &[]);
    assert_eq!(found.status.code(), Some(9), "{found:?}");
    let report: Value = serde_json::from_slice(&found.stdout).expect("the report is printed");
    assert_eq!(report["problems"], 2, "{report}");
    let problem = &report["tenants"][0]["objects"]["problems"][0];
    assert_eq!(problem["kind"], "orphan_blob", "{report}");
    assert_eq!(problem["object_id"], "018f0000-0000-7000-8000-000000000001");
    assert_eq!(problem["repaired"], false);
    let problem = &report["tenants"][0]["projects"]["problems"][0];
    assert_eq!(problem["kind"], "orphan_blob", "{report}");
    assert_eq!(problem["project_id"], project.as_str());
    assert_eq!(problem["blob"], stray_name.as_str());
    assert!(
        orphan.exists() && stray.exists(),
        "verify without --repair changes nothing"
    );
    assert!(String::from_utf8_lossy(&found.stderr).contains("2 problem(s) found"));
    // An upload younger than the grace period is in progress, not a problem.
    let young = json_of(&run(
        d,
        &[
            "--json",
            "verify",
            "--tenant",
            "acme",
            "--grace-secs",
            "3153600000",
        ],
        &[],
    ));
    assert_eq!(young["tenants"][0]["objects"]["in_progress"], 1, "{young}");
    assert_eq!(young["tenants"][0]["projects"]["in_progress"], 1, "{young}");

    let repaired = run(d, &["verify", "--tenant", "acme", "--repair"], &[]);
    assert!(repaired.status.success(), "{repaired:?}");
    assert!(
        String::from_utf8_lossy(&repaired.stdout).contains("(repaired)"),
        "{repaired:?}"
    );
    assert!(!orphan.exists() && !stray.exists());
    assert_eq!(json_of(&run(d, &["--json", "verify"], &[]))["problems"], 0);

    for (args, code) in [
        (&["verify", "--tenant", "nope"][..], 4),
        (&["verify", "--grace-secs=-1"][..], 3),
        (&["verify", "--grace-secs", "9223372036854775807"][..], 3),
        (
            &[
                "gc",
                "--tenant",
                "acme",
                "--grace-secs",
                "9223372036854775807",
            ][..],
            3,
        ),
    ] {
        let out = run(d, args, &[]);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
    }
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
