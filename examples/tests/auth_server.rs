//! Runs the `auth_server` binary's `--self-test` (register → login → /me → refresh → logout
//! → /me refused, over real HTTP on loopback) in a temporary data directory, twice: the
//! second run reopens the database and the master key file the first one created.

use std::process::{Command, Output};

fn auth_server(args: &[&str], data: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_auth_server"))
        .args(args)
        .arg("--data")
        .arg(data)
        .env_remove("PORT")
        .output()
        .expect("run auth_server")
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn self_test_passes_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    for run in ["first", "second"] {
        let out = auth_server(&["--self-test"], dir.path());
        assert!(out.status.success(), "{run} run: {}", describe(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        for step in [
            "ok  POST /register → 201",
            "ok  GET /me → 200",
            "ok  POST /refresh → 200",
            "ok  POST /logout → 204",
            "ok  GET /me after logout → 401",
            "self-test passed",
        ] {
            assert!(stdout.contains(step), "{run} run lacks {step:?}: {stdout}");
        }
    }
    assert!(dir.path().join("master.key").is_file());
    assert!(dir.path().join("auth.db").is_file());
}

#[test]
fn bad_arguments_exit_with_usage() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = auth_server(&["--port", "not-a-port"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: auth_server"));
}
