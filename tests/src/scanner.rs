//! [`ClamdScanner`] against a real clamd (started by `scripts/test` on loopback, its only
//! signature an MD5 of the EICAR test file), and against fake servers for the answers a
//! real clamd does not give.

use crate::support::in_ci;
use ate_core::{Classify, ErrorKind};
use ate_storage::scan::{ClamdScanner, ContentScanner, Verdict};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

/// The environment variable naming the test clamd (`host:port`).
pub const CLAMD_ADDR_VAR: &str = "ATE_TEST_CLAMD_ADDR";

/// The test clamd's address; `None` (never under `CI=true`) when it is not set.
fn clamd() -> Option<String> {
    match std::env::var(CLAMD_ADDR_VAR) {
        Ok(addr) => Some(addr),
        Err(_) if in_ci() => {
            panic!("CI=true but {CLAMD_ADDR_VAR} is not set: clamd tests cannot be skipped in CI")
        }
        Err(_) => {
            eprintln!("SKIPPED: {CLAMD_ADDR_VAR} is not set, so this clamd case did not run");
            None
        }
    }
}

/// The EICAR anti-virus test file, put together here so that no file of the repository
/// holds it whole.
fn eicar() -> Vec<u8> {
    let halves = [
        r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STAN",
        "DARD-ANTIVIRUS-TEST-FILE!$H+H*",
    ];
    halves.concat().into_bytes()
}

/// Gives its bytes a few at a time, as a slow network would.
struct Trickle {
    data: Vec<u8>,
    at: usize,
    step: usize,
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let end = (self.at + self.step)
            .min(self.data.len())
            .min(self.at + buf.remaining());
        let at = self.at;
        buf.put_slice(&self.data[at..end]);
        self.at = end;
        Poll::Ready(Ok(()))
    }
}

async fn scan(
    scanner: &ClamdScanner,
    data: Vec<u8>,
    step: usize,
) -> Result<Verdict, ate_storage::StorageError> {
    let mut reader = Trickle { data, at: 0, step };
    scanner.scan("file", &mut reader).await
}

/// Clean content is clean, the test file is found (whole, or a few bytes at a time), and
/// content sent in many chunks is scanned whole.
pub async fn clamd_finds_the_test_signature() {
    let Some(addr) = clamd() else { return };
    let scanner = ClamdScanner::tcp(&addr).chunk_size(1024);
    scanner.ping().await.unwrap();
    assert_eq!(
        scan(&scanner, b"fn main() {}\n".to_vec(), 4096)
            .await
            .unwrap(),
        Verdict::Clean
    );
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(scan(&scanner, big, 7000).await.unwrap(), Verdict::Clean);
    for step in [68, 5] {
        match scan(&scanner, eicar(), step).await.unwrap() {
            Verdict::Infected { signature } => {
                assert!(signature.starts_with("Eicar-Test-Signature"), "{signature}")
            }
            other => panic!("the test file passed as {other:?}"),
        }
    }
    // One byte more and it is another file.
    let mut changed = eicar();
    changed.push(b'\n');
    assert_eq!(scan(&scanner, changed, 4096).await.unwrap(), Verdict::Clean);
}

/// Content over clamd's size limit, or over the scanner's own, and a clamd that cannot be
/// reached are errors of their kind, never "clean".
pub async fn clamd_limits_and_failures_are_errors() {
    let Some(addr) = clamd() else { return };
    // scripts/test starts clamd with StreamMaxLength 1M.
    let over = vec![b'a'; 2 << 20];
    let e = scan(&ClamdScanner::tcp(&addr), over.clone(), 65536)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("StreamMaxLength"), "{e}");
    let e = scan(
        &ClamdScanner::tcp(&addr).max_bytes(1000),
        vec![b'a'; 2000],
        4096,
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let e = scan(&ClamdScanner::tcp(closed.to_string()), eicar(), 4096)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable());
    assert_eq!(
        ClamdScanner::tcp(closed.to_string())
            .ping()
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Unavailable
    );
}

/// A fake clamd that reads the request, then answers `reply` (or nothing, or never).
async fn fake(reply: Option<&'static [u8]>, hang: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).await;
            if hang {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            if let Some(reply) = reply {
                let _ = conn.write_all(reply).await;
            }
        }
    });
    addr
}

/// Answers no real clamd gives (none, garbage, silence) are errors, never "clean".
pub async fn odd_answers_are_errors() {
    for (reply, hang, kind) in [
        (None, false, ErrorKind::Unavailable),
        (Some(&b"stream: maybe\0"[..]), false, ErrorKind::Internal),
        (Some(&b"PONG\0"[..]), false, ErrorKind::Internal),
        (
            Some(&b"Unknown command ERROR\0"[..]),
            false,
            ErrorKind::Unavailable,
        ),
        (None, true, ErrorKind::Unavailable),
    ] {
        let addr = fake(reply, hang).await;
        let scanner = ClamdScanner::tcp(&addr).timeout(Duration::from_millis(300));
        let e = scan(&scanner, b"content".to_vec(), 4096).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{reply:?}: {e}");
    }
    let endless = fake(Some(&[b'x'; 8192]), false).await;
    let e = scan(&ClamdScanner::tcp(&endless), b"c".to_vec(), 16)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
}

/// Imports scan every file through the real clamd: an infected file refuses the import (and
/// nothing of it stays), or is kept flagged as quarantined; clean files pass untouched.
pub async fn imports_are_scanned() {
    use crate::snapshots::{owner, rows_where, tenant_with_project};
    use crate::support::{Backend, BlobBackendKind};
    use ate_storage::import::ImportOptions;
    use ate_storage::projects::SnapshotStore;
    use ate_storage::scan::InfectedPolicy;
    use std::sync::Arc;
    let Some(addr) = clamd() else { return };
    crate::snapshots::run(Backend::SqliteFile, BlobBackendKind::Fs, |s| async move {
        let (t, p) = tenant_with_project(&s, "acme").await;
        let scanner: Arc<dyn ContentScanner> = Arc::new(ClamdScanner::tcp(&addr));
        let big_clean = vec![b'a'; 300_000];
        // Refused: the error names the file and the signature; nothing is kept.
        let mut imp = s
            .snapshots
            .begin_import(
                &owner(t),
                t,
                p,
                ImportOptions::new().scanner(scanner.clone(), InfectedPolicy::RefuseImport),
            )
            .await
            .unwrap();
        let id = imp.snapshot_id();
        imp.add_file("clean.txt", 0o644, &mut &big_clean[..])
            .await
            .unwrap();
        let e = imp
            .add_file("docs/eicar.com", 0o644, &mut &eicar()[..])
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("docs/eicar.com") && text.contains("Eicar"),
            "{text}"
        );
        assert_eq!(rows_where(&s, "snapshots", "id", id.as_uuid()).await, 0);
        // Quarantined: the import goes on, the file is flagged.
        let mut imp = s
            .snapshots
            .begin_import(
                &owner(t),
                t,
                p,
                ImportOptions::new().scanner(scanner, InfectedPolicy::Quarantine),
            )
            .await
            .unwrap();
        let clean = imp
            .add_file("clean.txt", 0o644, &mut &big_clean[..])
            .await
            .unwrap();
        assert_eq!(clean.quarantined, None);
        let flagged = imp
            .add_file("eicar.com", 0o644, &mut &eicar()[..])
            .await
            .unwrap();
        assert!(
            flagged
                .quarantined
                .as_deref()
                .is_some_and(|f| f.contains("Eicar"))
        );
        let snap = imp.commit().await.unwrap();
        let stored = s
            .snapshots
            .file(&owner(t), t, snap.id, "eicar.com")
            .await
            .unwrap();
        assert_eq!(stored.quarantined, flagged.quarantined);
    })
    .await;
}
