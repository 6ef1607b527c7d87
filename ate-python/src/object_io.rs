//! Streaming reads and writes of one object: `a.storage.open` (`ObjectReader`,
//! `AsyncObjectReader`) and `a.storage.writer` (`ObjectWriter`, `AsyncObjectWriter`).
//!
//! Each class holds the core reader or writer behind an async mutex, so calls from several
//! Python threads (or tasks) take turns instead of interleaving half-done parts.

use crate::core::View;
use crate::error::Error;
use crate::runtime::{Done, awaitable, block};
use crate::streams::{bytes_like, type_name};
use crate::types::storage::ObjectInfo;
use ate_core::TenantId;
use ate_storage::objects::{ObjectReader as CoreReader, ObjectWriter as CoreWriter, PutOptions};
use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use std::sync::Arc;

// ---------------------------------------------------------------------------------------
// Streaming readers.

/// A reader's position: the core reader and what a `read(n)` left over.
pub(crate) struct ReaderState {
    reader: Option<CoreReader>,
    leftover: Bytes,
}

impl ReaderState {
    /// The next piece (at most `limit` bytes if given); empty at the end.
    async fn next(&mut self, limit: Option<usize>) -> Result<Bytes, Error> {
        if self.leftover.is_empty()
            && let Some(reader) = &mut self.reader
        {
            match reader.next_chunk().await? {
                Some(chunk) => self.leftover = Bytes::from(chunk),
                None => self.reader = None,
            }
        }
        let n = limit.map_or(self.leftover.len(), |l| l.min(self.leftover.len()));
        Ok(self.leftover.split_to(n))
    }

    /// Everything left (at most `limit` bytes if given).
    async fn read(&mut self, limit: Option<usize>) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        loop {
            let want = limit.map(|l| l - out.len());
            if want == Some(0) {
                break;
            }
            let piece = self.next(want).await?;
            if piece.is_empty() {
                break;
            }
            out.extend_from_slice(&piece);
        }
        Ok(out)
    }
}

type SharedReader = Arc<tokio::sync::Mutex<ReaderState>>;

fn read_limit(size: Option<i64>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

async fn read_shared(state: SharedReader, limit: Option<usize>) -> Result<Py<PyBytes>, Error> {
    let bytes = state.lock().await.read(limit).await?;
    Ok(Python::attach(|py| PyBytes::new(py, &bytes).unbind()))
}

async fn next_shared(state: SharedReader) -> Result<Option<Py<PyBytes>>, Error> {
    let piece = state.lock().await.next(None).await?;
    Ok((!piece.is_empty()).then(|| Python::attach(|py| PyBytes::new(py, &piece).unbind())))
}

/// A streaming read of one object (`a.storage.open`): iterate for pieces of about 1 MiB,
/// or `read(n)`. Every byte returned has been authenticated; a tampered object raises
/// `IntegrityError` at the piece that fails, and every later call raises it again.
#[pyclass(module = "ate.storage", frozen)]
pub(crate) struct ObjectReader {
    state: SharedReader,
    #[pyo3(get)]
    info: ObjectInfo,
}

#[pymethods]
impl ObjectReader {
    /// Reads up to `size` bytes (everything left if `size` is negative or omitted); `b""`
    /// at the end.
    #[pyo3(signature = (size = -1), text_signature = "(self, size=-1)")]
    fn read(&self, py: Python<'_>, size: i64) -> PyResult<Py<PyBytes>> {
        Ok(block(
            py,
            read_shared(self.state.clone(), read_limit(Some(size))),
        )?)
    }

    fn readable(&self) -> bool {
        true
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        Ok(block(py, next_shared(self.state.clone()))?)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "ObjectReader(path={:?}, size={})",
            self.info.path(),
            self.info.size()
        )
    }
}

/// The asyncio twin of `ObjectReader`: `async for piece in reader`, `await reader.read(n)`.
#[pyclass(module = "ate.storage", frozen)]
pub(crate) struct AsyncObjectReader {
    state: SharedReader,
    #[pyo3(get)]
    info: ObjectInfo,
}

#[pymethods]
impl AsyncObjectReader {
    /// Reads up to `size` bytes (everything left if negative or omitted); `b""` at the end.
    #[pyo3(signature = (size = -1), text_signature = "(self, size=-1)")]
    fn read<'py>(&self, py: Python<'py>, size: i64) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, read_shared(self.state.clone(), read_limit(Some(size))))
    }

    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            match next_shared(state).await {
                Ok(Some(piece)) => Ok(piece),
                Ok(None) => Err(pyo3::exceptions::PyStopAsyncIteration::new_err(())),
                Err(e) => Err(PyErr::from(e)),
            }
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "AsyncObjectReader(path={:?}, size={})",
            self.info.path(),
            self.info.size()
        )
    }
}

fn new_reader(state: ReaderState) -> (SharedReader, ObjectInfo) {
    let info = state
        .reader
        .as_ref()
        .map(|r| ObjectInfo::from(r.info().clone()))
        .unwrap_or_default();
    (Arc::new(tokio::sync::Mutex::new(state)), info)
}

/// Opens the object at `path` for streaming reads.
async fn open_object(view: View, tenant: TenantId, path: String) -> Result<ReaderState, Error> {
    let reader = view.core.objects()?.get(&view.actor, tenant, &path).await?;
    Ok(ReaderState {
        reader: Some(reader),
        leftover: Bytes::new(),
    })
}

pub(crate) async fn open_sync(
    view: View,
    tenant: TenantId,
    path: String,
) -> Result<ObjectReader, Error> {
    let (state, info) = new_reader(open_object(view, tenant, path).await?);
    Ok(ObjectReader { state, info })
}

pub(crate) async fn open_async(
    view: View,
    tenant: TenantId,
    path: String,
) -> Result<AsyncObjectReader, Error> {
    let (state, info) = new_reader(open_object(view, tenant, path).await?);
    Ok(AsyncObjectReader { state, info })
}

// ---------------------------------------------------------------------------------------
// Streaming writers.

/// A writer's state: the core writer until it is committed or aborted, and the bytes
/// written so far.
struct WriterState {
    writer: Option<CoreWriter>,
    path: String,
    written: u64,
}

type SharedWriter = Arc<tokio::sync::Mutex<WriterState>>;

impl WriterState {
    fn open(&mut self) -> Result<&mut CoreWriter, Error> {
        self.writer.as_mut().ok_or_else(|| {
            Error::invalid(format!(
                "the writer of {:?} is closed (committed or aborted)",
                self.path
            ))
        })
    }

    async fn write(&mut self, data: Bytes) -> Result<u64, Error> {
        let n = data.len() as u64;
        let result = self.open()?.write_bytes(data).await;
        if let Err(e) = result {
            // A failed part leaves the object unfinishable: release the upload now.
            if let Some(w) = self.writer.take() {
                let _ = w.abort().await;
            }
            return Err(e.into());
        }
        self.written += n;
        Ok(n)
    }

    async fn commit(&mut self) -> Result<ObjectInfo, Error> {
        self.open()?;
        let writer = self
            .writer
            .take()
            .ok_or_else(|| Error::internal("writer vanished"))?;
        Ok(writer.commit().await?.into())
    }

    async fn abort(&mut self) -> Result<Done, Error> {
        if let Some(w) = self.writer.take() {
            w.abort().await?;
        }
        Ok(Done)
    }
}

fn new_writer(writer: CoreWriter, path: String) -> SharedWriter {
    Arc::new(tokio::sync::Mutex::new(WriterState {
        writer: Some(writer),
        path,
        written: 0,
    }))
}

/// Starts a streaming put (authorization and key lookup happen here).
async fn start_writer(
    view: View,
    tenant: TenantId,
    path: String,
    options: PutOptions,
) -> Result<SharedWriter, Error> {
    let writer = view
        .core
        .objects()?
        .writer(&view.actor, tenant, &path, options)
        .await?;
    Ok(new_writer(writer, path))
}

pub(crate) async fn writer_sync(
    view: View,
    tenant: TenantId,
    path: String,
    options: PutOptions,
) -> Result<ObjectWriter, Error> {
    let state = start_writer(view, tenant, path.clone(), options).await?;
    Ok(ObjectWriter { state, path })
}

pub(crate) async fn writer_async(
    view: View,
    tenant: TenantId,
    path: String,
    options: PutOptions,
) -> Result<AsyncObjectWriter, Error> {
    let state = start_writer(view, tenant, path.clone(), options).await?;
    Ok(AsyncObjectWriter { state, path })
}

/// The bytes of a bytes-like `data` (copied once).
fn part(data: &Bound<'_, PyAny>) -> Result<Bytes, Error> {
    bytes_like(data).map(Bytes::from).ok_or_else(|| {
        Error::invalid(format!(
            "data must be bytes-like (bytes, bytearray, memoryview), not {}",
            type_name(data)
        ))
    })
}

/// Releases an uncommitted upload when the Python object goes away without `commit()` or
/// `abort()` (garbage collection removes whatever this cannot).
fn release(state: &SharedWriter) {
    if let Ok(mut s) = state.try_lock()
        && let Some(w) = s.writer.take()
    {
        pyo3_async_runtimes::tokio::get_runtime().spawn(async move {
            let _ = w.abort().await;
        });
    }
}

/// A streaming put (`a.storage.writer(tenant_id, path)`): `write(data)` appends, `commit()`
/// makes the object visible at its path and returns its `ObjectInfo`; `abort()` abandons it.
/// As a context manager it commits when the block ends normally and aborts when it raises.
/// Each write is encrypted and uploaded as it comes, so memory stays bounded whatever the
/// object's size. After a failed write the writer is closed and nothing is committed.
#[pyclass(module = "ate.storage", frozen)]
pub(crate) struct ObjectWriter {
    state: SharedWriter,
    path: String,
}

#[pymethods]
impl ObjectWriter {
    /// Appends `data` (bytes-like); returns the number of bytes written.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<u64> {
        let data = part(data)?;
        let state = self.state.clone();
        Ok(block(
            py,
            async move { state.lock().await.write(data).await },
        )?)
    }

    /// Makes the object visible at its path (replacing any object there).
    fn commit(&self, py: Python<'_>) -> PyResult<ObjectInfo> {
        let state = self.state.clone();
        Ok(block(py, async move { state.lock().await.commit().await })?)
    }

    /// Abandons the put; the path keeps what it had. Does nothing once closed.
    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        let state = self.state.clone();
        block(py, async move { state.lock().await.abort().await })?;
        Ok(())
    }

    /// Bytes written so far.
    #[getter]
    fn written(&self, py: Python<'_>) -> u64 {
        let state = self.state.clone();
        py.detach(|| state.blocking_lock().written)
    }

    /// Whether the writer was committed, aborted or failed.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        let state = self.state.clone();
        py.detach(|| state.blocking_lock().writer.is_none())
    }

    fn writable(&self) -> bool {
        true
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Commits when the block ended normally, aborts when it raised.
    #[pyo3(signature = (exc_type, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let state = self.state.clone();
        let failed = exc_type.is_some_and(|t| !t.is_none());
        block(py, async move {
            let mut s = state.lock().await;
            if failed {
                s.abort().await
            } else if s.writer.is_some() {
                s.commit().await.map(|_| Done)
            } else {
                Ok(Done)
            }
        })?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("ObjectWriter(path={:?})", self.path)
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        release(&self.state);
    }
}

/// The asyncio twin of `ObjectWriter`: `await w.write(data)`, `await w.commit()`,
/// `async with` (commits on a normal exit, aborts on an exception).
#[pyclass(module = "ate.storage", frozen)]
pub(crate) struct AsyncObjectWriter {
    state: SharedWriter,
    path: String,
}

#[pymethods]
impl AsyncObjectWriter {
    fn write<'py>(&self, py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let data = part(data)?;
        let state = self.state.clone();
        awaitable(py, async move { state.lock().await.write(data).await })
    }

    fn commit<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        awaitable(py, async move { state.lock().await.commit().await })
    }

    fn abort<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        awaitable(py, async move { state.lock().await.abort().await })
    }

    fn __aenter__<'py>(slf: Py<Self>, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        pyo3_async_runtimes::tokio::future_into_py(py, async move { Ok(slf) })
    }

    #[pyo3(signature = (*exc))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        exc: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let failed = exc.get_item(0).is_ok_and(|t| !t.is_none());
        let state = self.state.clone();
        awaitable(py, async move {
            let mut s = state.lock().await;
            if failed {
                s.abort().await?;
            } else if s.writer.is_some() {
                s.commit().await?;
            }
            Ok(false)
        })
    }

    fn __repr__(&self) -> String {
        format!("AsyncObjectWriter(path={:?})", self.path)
    }
}

impl Drop for AsyncObjectWriter {
    fn drop(&mut self) {
        release(&self.state);
    }
}
