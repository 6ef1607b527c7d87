//! One pick of an instance for one request: [`Pick`], finished by `success()`, `failure()`
//! or a `with` block.

use crate::core::View;
use crate::error::Error;
use crate::registry::args::error_kind;
use crate::runtime::lock;
use crate::types::registry::Instance;
use ate_core::ErrorKind;
use ate_orchestrate::hub::PickOptions;
use ate_orchestrate::registry::ServiceName;
use pyo3::prelude::*;
use std::sync::Mutex;

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
/// detection. As a context manager, a normal exit is a success and an exception a failure of
/// kind `unavailable` (the exception propagates). Dropping it unfinished counts as cancelled:
/// nothing is recorded against the instance.
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
