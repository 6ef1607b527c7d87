//! [`ClamdScanner`]: ClamAV's daemon, over its `INSTREAM` command.
//!
//! The protocol (clamd(8)): the client sends `zINSTREAM\0`, then the content as chunks, each
//! prefixed by its length as 4 bytes in network order, then a zero length; clamd answers
//! `stream: OK`, `stream: <signature> FOUND`, or `<reason> ERROR`, ended by a NUL. A stream
//! longer than clamd's `StreamMaxLength` is refused (`INSTREAM size limit exceeded`), and
//! clamd may close the connection before the client has sent everything.

use super::{ContentScanner, Verdict};
use crate::StorageError;
use ate_core::ErrorKind;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClamdAddr {
    /// `TCPAddr:TCPSocket`, as `host:port`.
    Tcp(String),
    /// `LocalSocket`, a Unix socket's path.
    Unix(PathBuf),
}

impl std::fmt::Display for ClamdAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClamdAddr::Tcp(addr) => write!(f, "tcp://{addr}"),
            ClamdAddr::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// The longest reply read from clamd.
const MAX_REPLY: usize = 4096;

/// A [`ContentScanner`] backed by a clamd daemon; cheap to clone. Every scan opens its own
/// connection.
#[derive(Debug, Clone)]
pub struct ClamdScanner {
    addr: ClamdAddr,
    chunk: usize,
    timeout: Duration,
    max_bytes: Option<u64>,
}

trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

fn failed(kind: ErrorKind, message: impl Into<String>) -> StorageError {
    StorageError::Scanner {
        kind,
        message: message.into(),
    }
}

impl ClamdScanner {
    /// A scanner talking to clamd at `addr`, sending 64 KiB chunks, giving up on a scan
    /// after 60 s, with no size limit of its own (clamd's `StreamMaxLength` applies).
    pub fn new(addr: ClamdAddr) -> Self {
        ClamdScanner {
            addr,
            chunk: 64 * 1024,
            timeout: Duration::from_secs(60),
            max_bytes: None,
        }
    }

    /// clamd on TCP at `addr` (`host:port`).
    pub fn tcp(addr: impl Into<String>) -> Self {
        Self::new(ClamdAddr::Tcp(addr.into()))
    }

    /// clamd on the Unix socket at `path`.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self::new(ClamdAddr::Unix(path.into()))
    }

    /// Gives up on a scan (or a ping) after `timeout`, as `Unavailable`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends chunks of `bytes` (kept between 1 KiB and 8 MiB; clamd refuses a chunk larger
    /// than its `StreamMaxLength`).
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk = bytes.clamp(1024, 8 << 20);
        self
    }

    /// Refuses content longer than `bytes` without sending the rest (`InvalidInput`): set
    /// it to clamd's `StreamMaxLength` to fail early.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    async fn connect(&self) -> Result<Box<dyn Conn>, StorageError> {
        let unreachable = |e: std::io::Error| {
            failed(
                ErrorKind::Unavailable,
                format!("cannot reach clamd at {}: {e}", self.addr),
            )
        };
        Ok(match &self.addr {
            ClamdAddr::Tcp(addr) => Box::new(
                tokio::net::TcpStream::connect(addr.as_str())
                    .await
                    .map_err(unreachable)?,
            ),
            #[cfg(unix)]
            ClamdAddr::Unix(path) => Box::new(
                tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(unreachable)?,
            ),
            #[cfg(not(unix))]
            ClamdAddr::Unix(_) => {
                return Err(failed(
                    ErrorKind::Unsupported,
                    "Unix sockets need a Unix host",
                ));
            }
        })
    }

    /// `PING` → `PONG`: clamd is up and answering.
    pub async fn ping(&self) -> Result<(), StorageError> {
        let exchange = async {
            let mut conn = self.connect().await?;
            conn.write_all(b"zPING\0")
                .await
                .map_err(|e| lost(&self.addr, e))?;
            let reply = read_reply(&mut conn, &self.addr).await?;
            if reply == "PONG" {
                Ok(())
            } else {
                Err(failed(
                    ErrorKind::Internal,
                    format!("clamd answered PING with {reply:?}"),
                ))
            }
        };
        self.in_time(exchange).await
    }

    async fn in_time<T>(
        &self,
        work: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(failed(
                    ErrorKind::Unavailable,
                    format!(
                        "clamd at {} did not answer within {:?}",
                        self.addr, self.timeout
                    ),
                ))
            })
    }

    async fn instream(
        &self,
        content: &mut (dyn AsyncRead + Unpin + Send),
    ) -> Result<Verdict, StorageError> {
        let mut conn = self.connect().await?;
        conn.write_all(b"zINSTREAM\0")
            .await
            .map_err(|e| lost(&self.addr, e))?;
        let mut buf = vec![0u8; self.chunk];
        let mut sent: u64 = 0;
        let mut open = true;
        loop {
            let n = fill(content, &mut buf).await?;
            if n == 0 {
                break;
            }
            sent += n as u64;
            if let Some(max) = self.max_bytes
                && sent > max
            {
                return Err(failed(
                    ErrorKind::InvalidInput,
                    format!("the content is larger than the scanner's limit of {max} bytes"),
                ));
            }
            let len = u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
            let written = async {
                conn.write_all(&len).await?;
                conn.write_all(&buf[..n]).await
            }
            .await;
            if written.is_err() {
                // clamd stopped reading (its size limit, say): its reply says why.
                open = false;
                break;
            }
        }
        if open {
            // The end; a failure here also leaves the reply to explain.
            let _ = conn.write_all(&0u32.to_be_bytes()).await;
            let _ = conn.flush().await;
        }
        let reply = read_reply(&mut conn, &self.addr).await?;
        verdict(&reply)
    }
}

#[async_trait::async_trait]
impl ContentScanner for ClamdScanner {
    async fn scan(
        &self,
        path: &str,
        content: &mut (dyn AsyncRead + Unpin + Send),
    ) -> Result<Verdict, StorageError> {
        let verdict = self.in_time(self.instream(content)).await;
        if let Ok(Verdict::Infected { signature }) = &verdict {
            tracing::warn!(path, signature, "clamd found malware");
        }
        verdict
    }
}

fn lost(addr: &ClamdAddr, e: std::io::Error) -> StorageError {
    failed(
        ErrorKind::Unavailable,
        format!("the connection to clamd at {addr} failed: {e}"),
    )
}

/// Reads into `buf` until it is full or the content ends; the number of bytes read.
async fn fill(
    content: &mut (dyn AsyncRead + Unpin + Send),
    buf: &mut [u8],
) -> Result<usize, StorageError> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = content.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// clamd's reply, up to its NUL (or the end of the connection), at most [`MAX_REPLY`] bytes.
async fn read_reply(conn: &mut Box<dyn Conn>, addr: &ClamdAddr) -> Result<String, StorageError> {
    let mut reply = Vec::new();
    let mut byte = [0u8; 256];
    loop {
        let n = conn.read(&mut byte).await.map_err(|e| lost(addr, e))?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&byte[..n]);
        if reply.contains(&0) || reply.len() > MAX_REPLY {
            break;
        }
    }
    if let Some(end) = reply.iter().position(|b| *b == 0) {
        reply.truncate(end);
    }
    if reply.is_empty() {
        return Err(failed(
            ErrorKind::Unavailable,
            format!("clamd at {addr} closed the connection without an answer"),
        ));
    }
    if reply.len() > MAX_REPLY {
        return Err(failed(ErrorKind::Internal, "clamd's answer is too long"));
    }
    Ok(String::from_utf8_lossy(&reply).trim().to_owned())
}

/// The verdict a reply to `INSTREAM` gives.
fn verdict(reply: &str) -> Result<Verdict, StorageError> {
    if reply == "stream: OK" {
        return Ok(Verdict::Clean);
    }
    if let Some(found) = reply
        .strip_prefix("stream: ")
        .and_then(|r| r.strip_suffix(" FOUND"))
        .filter(|s| !s.is_empty())
    {
        return Ok(Verdict::Infected {
            signature: found.to_owned(),
        });
    }
    if reply.contains("size limit exceeded") {
        return Err(failed(
            ErrorKind::InvalidInput,
            "the content is larger than clamd accepts (its StreamMaxLength)",
        ));
    }
    if reply.ends_with("ERROR") {
        return Err(failed(
            ErrorKind::Unavailable,
            format!("clamd failed: {reply}"),
        ));
    }
    Err(failed(
        ErrorKind::Internal,
        format!(
            "clamd answered {:?}, which is not a verdict",
            reply.chars().take(200).collect::<String>()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ate_core::Classify;

    #[test]
    fn replies_are_read_strictly() {
        assert_eq!(verdict("stream: OK").unwrap(), Verdict::Clean);
        assert_eq!(
            verdict("stream: Eicar-Test-Signature FOUND").unwrap(),
            Verdict::Infected {
                signature: "Eicar-Test-Signature".into()
            }
        );
        for (reply, kind) in [
            (
                "INSTREAM size limit exceeded. ERROR",
                ErrorKind::InvalidInput,
            ),
            ("Can't allocate memory ERROR", ErrorKind::Unavailable),
            ("stream:  FOUND", ErrorKind::Internal),
            ("stream: FOUND", ErrorKind::Internal),
            ("OK", ErrorKind::Internal),
            ("", ErrorKind::Internal),
            ("stream: ok", ErrorKind::Internal),
        ] {
            let e = verdict(reply).unwrap_err();
            assert_eq!(e.kind(), kind, "{reply:?}: {e}");
        }
    }
}
