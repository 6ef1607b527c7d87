//! Byte streams between Python and the stores: a path or a binary file object as a tokio
//! reader or writer, for imports, exports, backups and analysis payloads.
//!
//! A path is opened by Rust (no GIL needed). A file object is pumped by a task running
//! beside the store's operation: parts are read with `read(n)` (or written with
//! `write(b)`) on a blocking thread with the GIL, while the store works on the previous
//! part. An exception raised by the file object is what the call raises, and it stops the
//! operation the way a broken stream does: nothing is committed from a stream that failed.

use crate::error::Error;
use crate::storage::{read_part, type_name, write_part};
use bytes::Bytes;
use pyo3::prelude::*;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How many parts may wait between a file object and the store.
const PARTS_IN_FLIGHT: usize = 2;
/// The pipe between the store and a file object being written.
const PIPE_BYTES: usize = 1 << 20;

/// A path (`str` or `os.PathLike`), or a binary file object.
pub(crate) enum Endpoint {
    Path(PathBuf),
    File(Py<PyAny>),
}

impl Endpoint {
    /// `value` as a path, or as a file object with `method` (`"read"` or `"write"`).
    pub(crate) fn from_py(value: &Bound<'_, PyAny>, method: &str) -> Result<Self, Error> {
        if let Ok(path) = value.extract::<PathBuf>() {
            return Ok(Endpoint::Path(path));
        }
        if value.hasattr(method).unwrap_or(false) {
            return Ok(Endpoint::File(value.clone().unbind()));
        }
        Err(Error::invalid(format!(
            "expected a path or a binary file object with {method}(), not {}",
            type_name(value)
        )))
    }
}

fn path_error(path: &std::path::Path, e: std::io::Error) -> Error {
    let message = format!("{}: {e}", path.display());
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::from(ate_core::CoreError::not_found("file", message))
        }
        _ => Error::invalid(message),
    }
}

/// Runs `op` on a reader of `input`. A file object's exception is re-raised as it was.
pub(crate) async fn reading<T, F, Fut>(input: Endpoint, op: F) -> Result<T, Error>
where
    F: FnOnce(Box<dyn AsyncRead + Send + Unpin>) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let file = match input {
        Endpoint::Path(path) => {
            let f = tokio::fs::File::open(&path)
                .await
                .map_err(|e| path_error(&path, e))?;
            return op(Box::new(f)).await;
        }
        Endpoint::File(file) => Arc::new(file),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(PARTS_IN_FLIGHT);
    let reader = tokio_util::io::StreamReader::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let pump = async move {
        loop {
            match read_part(file.clone()).await {
                Ok(Some(part)) => {
                    if tx.send(Ok(part)).await.is_err() {
                        return Ok(()); // the operation stopped reading
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    // The operation must see a failure, never an early end of the stream.
                    let _ = tx
                        .send(Err(std::io::Error::other(
                            "the file object's read() failed",
                        )))
                        .await;
                    return Err(e);
                }
            }
        }
    };
    let (out, pumped) = tokio::join!(op(Box::new(reader)), pump);
    pumped?;
    out
}

/// Runs `op` on a writer into `output`. A path is created (or truncated), flushed to disk
/// at the end, and removed if `op` fails; a file object's exception is re-raised as it was.
pub(crate) async fn writing<T, F, Fut>(output: Endpoint, op: F) -> Result<T, Error>
where
    F: FnOnce(Box<dyn AsyncWrite + Send + Unpin>) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    enum Sink {
        Disk(tokio::fs::File),
        Python(Arc<Py<PyAny>>),
    }
    let (mut sink, path) = match output {
        Endpoint::Path(path) => {
            let f = tokio::fs::File::create(&path)
                .await
                .map_err(|e| path_error(&path, e))?;
            (Sink::Disk(f), Some(path))
        }
        Endpoint::File(file) => (Sink::Python(Arc::new(file)), None),
    };
    let disk_error = |e: std::io::Error| Error::invalid(format!("writing the output file: {e}"));
    let (tx, mut rx) = tokio::io::duplex(PIPE_BYTES);
    // When `op` completes, `join!` drops it and the writer it owns: the pump then sees the
    // end of the stream.
    let pump = async move {
        let mut buf = vec![0u8; PIPE_BYTES];
        loop {
            let n = rx
                .read(&mut buf)
                .await
                .map_err(|e| Error::internal(format!("the output pipe: {e}")))?;
            match &mut sink {
                Sink::Disk(f) if n == 0 => {
                    f.flush().await.map_err(disk_error)?;
                    return f.sync_all().await.map_err(disk_error);
                }
                Sink::Disk(f) => f.write_all(&buf[..n]).await.map_err(disk_error)?,
                Sink::Python(_) if n == 0 => return Ok(()),
                Sink::Python(file) => write_part(file.clone(), buf[..n].to_vec()).await?,
            }
        }
    };
    let (out, pumped) = tokio::join!(op(Box::new(tx)), pump);
    let out = pumped.and(out);
    if let (Err(_), Some(path)) = (&out, path) {
        let _ = tokio::fs::remove_file(&path).await;
    }
    out
}
