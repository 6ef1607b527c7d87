//! A KMS stand-in for the [`KeyProvider`](ate_core::keys::KeyProvider) conformance suite:
//! master keys live in a separate process (the `test-kms` binary of this crate) that ATE
//! reaches only through a line protocol on its stdin and stdout, as it would reach a cloud
//! KMS or an HSM over the network. It has its own key store, cipher (ChaCha20-Poly1305) and
//! wire format, so the suite checks the trait's contract, not ATE's local envelope.
//!
//! Protocol (one request line, one reply line; binary fields are lowercase hex, possibly
//! empty):
//!
//! ```text
//! current                              → ok <key name>
//! wrap <context> <secret>              → ok <key name> <blob>
//! unwrap <key name> <context> <blob>   → ok <secret>
//! any                                  → err <invalid|integrity|unknown-key|unavailable> <message>
//! ```
//!
//! Not a KMS to deploy: secrets cross the pipe in hex and are not zeroized.

mod client;
pub mod server;

pub use client::ProcessKms;

use ate_core::keys::SecretKey;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Master keys by name, and the key-store files that start KMS processes with them.
#[derive(Debug)]
pub struct TestKms {
    program: PathBuf,
    dir: tempfile::TempDir,
    keys: Mutex<HashMap<String, String>>,
}

impl TestKms {
    /// Uses `program`, the `test-kms` binary (`env!("CARGO_BIN_EXE_test-kms")` in an
    /// integration test).
    pub fn new(program: impl Into<PathBuf>) -> TestKms {
        TestKms {
            program: program.into(),
            dir: tempfile::tempdir().expect("temporary directory"),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a KMS process whose current master key is `current`, also holding the
    /// `retired` ones (each name gets a fresh random key the first time it is used).
    pub fn start(&self, current: &str, retired: &[&str]) -> ProcessKms {
        let mut keys = self.keys.lock().expect("key map");
        let mut store = String::new();
        for name in std::iter::once(current).chain(retired.iter().copied()) {
            let key = keys.entry(name.to_owned()).or_insert_with(|| {
                hex::encode(SecretKey::generate().expect("random key").expose_secret())
            });
            store.push_str(&format!("{name} {key}\n"));
        }
        let path = self
            .dir
            .path()
            .join(format!("{current}-{}.keys", retired.join("-")));
        std::fs::write(&path, store).expect("write the key store");
        ProcessKms::spawn(&self.program, &path).expect("start the test KMS")
    }
}
