//! One pick of an instance for one request: [`Pick`] (finished by `success()`, `failure()`
//! or a `with`/`async with` block) and [`PendingPick`], what `AsyncRegistry.pick` returns
//! (awaitable, and an async context manager that picks on entry).

use crate::core::View;
use crate::error::Error;
use crate::registry::args::error_kind;
use crate::runtime::{awaitable, lock};
use crate::types::registry::Instance;
use ate_core::ErrorKind;
use ate_orchestrate::hub::PickOptions;
use ate_orchestrate::registry::ServiceName;
use pyo3::prelude::*;
use std::sync::{Arc, Mutex};

/// A pick to make: who picks which service, how.
pub(crate) struct PickRequest {
    pub(crate) view: View,
    pub(crate) principal: ate_core::Principal,
    pub(crate) service: ServiceName,
    pub(crate) options: PickOptions,
}

impl PickRequest {
    /// Picks an instance (reading the registry on a cache miss).
    pub(crate) async fn run(self) -> Result<Pick, Error> {
        let hub = self.view.core.hub().await?;
        let pick = hub
            .hub
            .pick(&self.principal, &self.service, self.options)
            .await?;
        let spec = &pick.instance().spec;
        let label = (
            spec.service.to_string(),
            spec.id.to_string(),
            spec.endpoint.to_string(),
        );
        Ok(Pick {
            instance: pick.instance().clone().into(),
            label,
            guard: Mutex::new(Some(pick)),
        })
    }
}

/// One picked instance for one request (`a.registry.pick(...)`).
///
/// Finish it with `success()` or `failure(kind)`: the latency since the pick and the outcome
/// go to the metrics, the window statistics, the instance's circuit breaker and outlier
/// detection. As a context manager (`with` or `async with`), a normal exit is a success and
/// an exception a failure of kind `unavailable` (the exception propagates). Dropping it
/// unfinished counts as cancelled: nothing is recorded against the instance.
#[pyclass(module = "ate.registry", frozen)]
pub(crate) struct Pick {
    /// The instance to call.
    #[pyo3(get)]
    instance: Instance,
    /// Service, instance id and endpoint, for `repr`.
    label: (String, String, String),
    guard: Mutex<Option<ate_orchestrate::hub::Pick>>,
}

impl Pick {
    fn take(&self) -> Result<ate_orchestrate::hub::Pick, Error> {
        lock(&self.guard).take().ok_or_else(|| {
            Error::invalid("this pick is already finished (success() or failure() was called)")
        })
    }

    /// Finishes the pick at the end of a `with` block, unless already finished: an
    /// exception (`exc_type` set) is a failure of kind `unavailable`, else a success.
    fn finish_block(&self, exc_type: Option<&Bound<'_, PyAny>>) {
        if let Some(pick) = lock(&self.guard).take() {
            match exc_type {
                Some(t) if !t.is_none() => pick.failure(ErrorKind::Unavailable),
                _ => pick.success(),
            }
        }
    }
}

#[pymethods]
impl Pick {
    /// The call succeeded.
    fn success(&self) -> PyResult<()> {
        self.take()?.success();
        Ok(())
    }

    /// The call failed with an error of `kind` (`unavailable`, `internal`, `rate_limited`,
    /// …; retryable kinds count against the instance's breaker).
    #[pyo3(signature = (kind = "unavailable"))]
    fn failure(&self, kind: &str) -> PyResult<()> {
        let kind = error_kind(kind)?;
        self.take()?.failure(kind);
        Ok(())
    }

    /// Whether `success()` or `failure()` was called.
    #[getter]
    fn finished(&self) -> bool {
        lock(&self.guard).is_none()
    }

    /// Seconds since the pick (`None` once finished).
    #[getter]
    fn elapsed(&self) -> Option<f64> {
        lock(&self.guard)
            .as_ref()
            .map(|p| p.elapsed().as_secs_f64())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (exc_type, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        self.finish_block(exc_type);
        false
    }

    fn __aenter__(slf: Py<Self>, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        pyo3_async_runtimes::tokio::future_into_py(py, async move { Ok(slf) })
    }

    #[pyo3(signature = (exc_type, _exc = None, _tb = None))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        exc_type: Option<&Bound<'py, PyAny>>,
        _exc: Option<&Bound<'py, PyAny>>,
        _tb: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.finish_block(exc_type);
        pyo3_async_runtimes::tokio::future_into_py(py, async move { Ok(false) })
    }

    fn __repr__(&self) -> String {
        format!(
            "Pick(service='{}', instance='{}', endpoint='{}', finished={})",
            self.label.0,
            self.label.1,
            self.label.2,
            self.finished()
        )
    }
}

/// What `AsyncRegistry.pick(...)` returns: `await` it for a [`Pick`], or use it in
/// `async with` to pick on entry and finish on exit (a normal exit is a success, an exception
/// a failure of kind `unavailable`). Either works once.
#[pyclass(module = "ate.registry", frozen)]
pub(crate) struct PendingPick {
    request: Mutex<Option<PickRequest>>,
    /// The pick `__aenter__` made, for `__aexit__` to finish.
    entered: Arc<Mutex<Option<Py<Pick>>>>,
}

impl PendingPick {
    pub(crate) fn new(request: PickRequest) -> Self {
        PendingPick {
            request: Mutex::new(Some(request)),
            entered: Arc::default(),
        }
    }

    fn take(&self) -> Result<PickRequest, Error> {
        lock(&self.request).take().ok_or_else(|| {
            Error::invalid(
                "this pending pick was already awaited or entered; call registry.pick(...) again",
            )
        })
    }
}

#[pymethods]
impl PendingPick {
    fn __await__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let request = self.take()?;
        awaitable(py, request.run())?.call_method0("__await__")
    }

    fn __aenter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let request = self.take()?;
        let entered = self.entered.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let pick = request.run().await?;
            Python::attach(|py| {
                let pick = Py::new(py, pick)?;
                *lock(&entered) = Some(pick.clone_ref(py));
                Ok(pick)
            })
        })
    }

    #[pyo3(signature = (exc_type, _exc = None, _tb = None))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        exc_type: Option<&Bound<'py, PyAny>>,
        _exc: Option<&Bound<'py, PyAny>>,
        _tb: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(pick) = lock(&self.entered).take() {
            pick.get().finish_block(exc_type);
        }
        pyo3_async_runtimes::tokio::future_into_py(py, async move { Ok(false) })
    }

    fn __repr__(&self) -> String {
        let state = match (lock(&self.request).as_ref(), lock(&self.entered).as_ref()) {
            (Some(r), _) => format!("service='{}'", r.service),
            (None, Some(_)) => "entered".to_owned(),
            (None, None) => "spent".to_owned(),
        };
        format!("PendingPick({state})")
    }
}
