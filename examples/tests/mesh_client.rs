//! Runs the `mesh_client` binary's `--self-test`: three real HTTP servers on loopback, one
//! killed mid-way; every request must still answer 200 (retries move to the live servers),
//! the dead instance's breaker must open and traffic to it stop.

use std::process::{Command, Output};

fn mesh_client(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesh_client"))
        .args(args)
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .output()
        .expect("run mesh_client")
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
fn self_test_survives_a_dead_server() {
    let out = mesh_client(&["--self-test", "--requests", "60"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for step in [
        "killed greeter-3 after request 20",
        "ok  every request answered 200 (60 of 60)",
        "ok  breaker of greeter-3 is open",
        "ok  greeter-3 got no attempt after its breaker opened",
        "ok  greeter-3 served nothing after it was killed",
        "self-test passed",
    ] {
        assert!(stdout.contains(step), "lacks {step:?}: {}", describe(&out));
    }
    let table = stdout
        .lines()
        .rfind(|l| l.starts_with("greeter-3 ") && !l.contains("listening"))
        .expect("a table row for greeter-3");
    assert!(table.trim_end().ends_with("open"), "{table}");
}

#[test]
fn bad_arguments_exit_with_usage() {
    let out = mesh_client(&["--requests", "3"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: mesh_client"));
}
