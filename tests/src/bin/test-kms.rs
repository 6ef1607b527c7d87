//! `test-kms <key-store file>`: the KMS stand-in of the `KeyProvider` conformance suite.
//! Answers the line protocol of `tests::test_kms` on stdin/stdout until stdin closes.

use std::process::ExitCode;
use tests::test_kms::server::{KeyStore, serve};

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: test-kms <key-store file>");
        return ExitCode::from(2);
    };
    let keys = match std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| KeyStore::parse(&text))
    {
        Ok(keys) => keys,
        Err(e) => {
            eprintln!("test-kms: {}: {e}", path.to_string_lossy());
            return ExitCode::from(2);
        }
    };
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    match serve(&keys, stdin, stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("test-kms: {e}");
            ExitCode::FAILURE
        }
    }
}
