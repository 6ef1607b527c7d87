//! Byte streams between Python and the stores: bytes-like values and binary file objects
//! read and written a part at a time, and a path or a file object as a tokio reader or
//! writer, for puts, downloads, imports, exports, backups and analysis payloads.
//!
//! A path is opened by Rust (no GIL needed). A file object is pumped by a task running
//! beside the store's operation: parts are read with `read(n)` (or written with
//! `write(b)`) on a blocking thread with the GIL, while the store works on the previous
//! part. An exception raised by the file object is what the call raises, and it stops the
//! operation the way a broken stream does: nothing is committed from a stream that failed.

use crate::error::Error;
use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How much of a file object a put reads at a time.
const FILE_PART: usize = 4 << 20;

/// What a put stores: bytes-like content (copied once) or a readable binary file object.
pub(crate) enum Source {
    Bytes(Vec<u8>),
    File(Py<PyAny>),
}

/// A copy of a bytes-like object's contents (`bytes`, `bytearray`, `memoryview`, `array`,
/// …), or `None` if it is not one. (The buffer protocol is not in the stable ABI before
/// Python 3.11, so anything else goes through `memoryview`.)
pub(crate) fn bytes_like(value: &Bound<'_, PyAny>) -> Option<Vec<u8>> {
    if let Ok(b) = value.cast::<PyBytes>() {
        return Some(b.as_bytes().to_vec());
    }
    if let Ok(b) = value.cast::<PyByteArray>() {
        return Some(b.to_vec());
    }
    let view = value
        .py()
        .import("builtins")
        .and_then(|m| m.getattr("memoryview"))
        .and_then(|mv| mv.call1((value,)))
        .ok()?;
    let bytes = view.call_method0("tobytes").ok()?;
    bytes.cast::<PyBytes>().ok().map(|b| b.as_bytes().to_vec())
}

impl Source {
    pub(crate) fn from_py(data: &Bound<'_, PyAny>) -> Result<Self, Error> {
        if let Some(bytes) = bytes_like(data) {
            return Ok(Source::Bytes(bytes));
        }
        if data.hasattr("read").unwrap_or(false) {
            return Ok(Source::File(data.clone().unbind()));
        }
        Err(Error::invalid(format!(
            "data must be bytes-like or a binary file object with read(), not {}",
            type_name(data)
        )))
    }
}

pub(crate) fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Reads up to [`FILE_PART`] bytes from `file` on a blocking thread; `None` at the end.
pub(crate) async fn read_part(file: Arc<Py<PyAny>>) -> Result<Option<Bytes>, Error> {
    tokio::task::spawn_blocking(move || {
        Python::attach(|py| {
            let chunk = file
                .call_method1(py, "read", (FILE_PART,))
                .map_err(Error::python)?;
            let chunk = chunk.bind(py);
            if chunk.is_none() {
                return Err(Error::invalid(
                    "the file object returned None from read() (non-blocking and not ready)",
                ));
            }
            let bytes = bytes_like(chunk).ok_or_else(|| {
                Error::invalid(format!(
                    "the file object's read() returned {}, not bytes: open it in binary mode ('rb')",
                    type_name(chunk)
                ))
            })?;
            Ok((!bytes.is_empty()).then(|| Bytes::from(bytes)))
        })
    })
    .await
    .map_err(|e| Error::internal(format!("reading the file object: {e}")))?
}

/// Writes all of `chunk` to `file` on a blocking thread (retrying short writes).
pub(crate) async fn write_part(file: Arc<Py<PyAny>>, chunk: Vec<u8>) -> Result<(), Error> {
    tokio::task::spawn_blocking(move || {
        Python::attach(|py| {
            let mut done = 0;
            while done < chunk.len() {
                let written = file
                    .call_method1(py, "write", (PyBytes::new(py, &chunk[done..]),))
                    .map_err(Error::python)?;
                // Buffered files write everything and may return None; raw ones report.
                done = match written.extract::<Option<usize>>(py) {
                    Ok(Some(0)) => {
                        return Err(Error::invalid("the file object accepted no bytes"));
                    }
                    Ok(Some(n)) => done + n.min(chunk.len() - done),
                    _ => chunk.len(),
                };
            }
            Ok(())
        })
    })
    .await
    .map_err(|e| Error::internal(format!("writing to the file object: {e}")))?
}

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
