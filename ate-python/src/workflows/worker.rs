//! A running worker (`Worker`, `AsyncWorker`) and run-event streams (`RunEvents`,
//! `AsyncRunEvents`).

use crate::error::Error;
use crate::runtime::{awaitable, block, lock};
use crate::types::workflows::RunEvent;
use ate_orchestrate::workflow::{self as wf, WatchGap};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The worker, until it is shut down.
type Slot = Arc<Mutex<Option<wf::Worker>>>;

/// Shuts the worker in `slot` down (once): `(finished, released)`.
async fn shutdown(slot: Slot, grace: Duration) -> Result<(usize, usize), Error> {
    let worker = lock(&slot).take();
    match worker {
        Some(worker) => {
            let report = worker.shutdown(grace).await;
            Ok((report.finished, report.released))
        }
        None => Ok((0, 0)),
    }
}

fn grace(seconds: f64) -> Result<Duration, Error> {
    crate::convert::seconds(seconds, "grace")
}

/// A running worker (from `a.workflows.start_worker`). `shutdown(grace)` stops it
/// gracefully; a `with` block does so on leaving. Dropped without a shutdown, it stops
/// like a crashed process (its leases expire and other workers take the nodes over).
#[pyclass(module = "ate.workflows", frozen)]
pub(crate) struct Worker {
    slot: Slot,
}

impl Worker {
    pub(crate) fn new(worker: wf::Worker) -> Self {
        Worker {
            slot: Arc::new(Mutex::new(Some(worker))),
        }
    }
}

#[pymethods]
impl Worker {
    /// Stops claiming, lets running steps finish for up to `grace` seconds, then gives
    /// the rest back (another worker takes them at once). Returns `(finished, released)`.
    /// Calling it again does nothing.
    #[pyo3(signature = (grace = 10.0))]
    fn shutdown(&self, py: Python<'_>, grace: f64) -> PyResult<(usize, usize)> {
        let grace = self::grace(grace)?;
        Ok(block(py, shutdown(self.slot.clone(), grace))?)
    }

    /// Whether it still runs.
    #[getter]
    fn running(&self) -> bool {
        lock(&self.slot).is_some()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.shutdown(py, 10.0)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("Worker(running={})", self.running())
    }
}

/// A running worker (asyncio): `await w.shutdown(grace)`, or `async with`.
#[pyclass(module = "ate.workflows", frozen)]
pub(crate) struct AsyncWorker {
    slot: Slot,
}

impl AsyncWorker {
    pub(crate) fn new(worker: wf::Worker) -> Self {
        AsyncWorker {
            slot: Arc::new(Mutex::new(Some(worker))),
        }
    }
}

#[pymethods]
impl AsyncWorker {
    /// As `Worker.shutdown`, awaitable.
    #[pyo3(signature = (grace = 10.0))]
    fn shutdown<'py>(&self, py: Python<'py>, grace: f64) -> PyResult<Bound<'py, PyAny>> {
        let grace = self::grace(grace)?;
        awaitable(py, shutdown(self.slot.clone(), grace))
    }

    /// Whether it still runs.
    #[getter]
    fn running(&self) -> bool {
        lock(&self.slot).is_some()
    }

    fn __aenter__<'py>(slf: Py<Self>, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        pyo3_async_runtimes::tokio::future_into_py(py, async move { Ok(slf) })
    }

    #[pyo3(signature = (*_exc))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _exc: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let slot = self.slot.clone();
        awaitable(py, async move {
            shutdown(slot, Duration::from_secs(10)).await?;
            Ok(false)
        })
    }

    fn __repr__(&self) -> String {
        format!("AsyncWorker(running={})", self.running())
    }
}

/// The watch, shared by the calls that read it one after the other.
type Watch = Arc<tokio::sync::Mutex<wf::RunWatch>>;

/// The next event of `watch`: `None` when the store is gone; an `UnavailableError` when
/// the watcher fell behind and events were dropped (read the run again and watch anew).
async fn next(watch: Watch) -> Result<Option<RunEvent>, Error> {
    match watch.lock().await.next().await {
        Some(Ok(event)) => Ok(Some(event.into())),
        Some(Err(WatchGap::Lagged(n))) => Err(Error::from(ate_core::CoreError::Unavailable {
            message: format!(
                "the watcher fell {n} events behind; read the run again and watch anew"
            ),
            source: None,
        })),
        Some(Err(_)) | None => Ok(None),
    }
}

/// A run's (or a tenant's) events, from `a.workflows.watch`: iterate to receive each
/// `RunEvent` as it is committed (each step blocks with the GIL released).
#[pyclass(module = "ate.workflows", frozen)]
pub(crate) struct RunEvents {
    watch: Watch,
}

impl RunEvents {
    pub(crate) fn new(watch: wf::RunWatch) -> Self {
        RunEvents {
            watch: Arc::new(tokio::sync::Mutex::new(watch)),
        }
    }
}

#[pymethods]
impl RunEvents {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<RunEvent>> {
        Ok(block(py, next(self.watch.clone()))?)
    }
}

/// As `RunEvents`, for `async for`.
#[pyclass(module = "ate.workflows", frozen)]
pub(crate) struct AsyncRunEvents {
    watch: Watch,
}

impl AsyncRunEvents {
    pub(crate) fn new(watch: wf::RunWatch) -> Self {
        AsyncRunEvents {
            watch: Arc::new(tokio::sync::Mutex::new(watch)),
        }
    }
}

#[pymethods]
impl AsyncRunEvents {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let watch = self.watch.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            match next(watch).await? {
                Some(event) => Ok(event),
                None => Err(pyo3::exceptions::PyStopAsyncIteration::new_err(())),
            }
        })
    }
}
