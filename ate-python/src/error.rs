//! The one place where ATE errors become Python exceptions.
//!
//! Every ATE error carries an [`ErrorKind`]; each kind has one exception class in
//! `ate/_errors.py` (a subclass of `ate.AteError`, and of a builtin where the meaning
//! matches, e.g. `InvalidInputError` is a `ValueError`). Each exception carries `.kind` and
//! `.retryable`.

use ate_core::{Classify, ErrorKind};
use pyo3::prelude::*;
use pyo3::types::PyType;

/// An ATE error on its way to Python.
#[derive(Debug)]
pub(crate) struct Error {
    kind: ErrorKind,
    retryable: bool,
    message: String,
    /// An exception raised by the caller's own Python code (a file object's `read`, say),
    /// re-raised as it was.
    python: Option<PyErr>,
}

impl Error {
    /// An `InvalidInputError` for a bad argument.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::InvalidInput,
            retryable: false,
            message: message.into(),
            python: None,
        }
    }
}

impl Error {
    /// An `InternalError`: a bug or a failed runtime task, never the caller's fault.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Internal,
            retryable: false,
            message: message.into(),
            python: None,
        }
    }

    /// Carries an exception raised by the caller's Python code back to the caller unchanged.
    pub(crate) fn python(e: PyErr) -> Self {
        Error {
            kind: ErrorKind::InvalidInput,
            retryable: false,
            message: e.to_string(),
            python: Some(e),
        }
    }
}

impl<E: Classify> From<E> for Error {
    fn from(e: E) -> Self {
        Error {
            kind: e.kind(),
            retryable: e.is_retryable(),
            message: e.to_string(),
            python: None,
        }
    }
}

/// The exception class name for each kind.
fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "NotFoundError",
        ErrorKind::AlreadyExists => "AlreadyExistsError",
        ErrorKind::InvalidInput => "InvalidInputError",
        ErrorKind::Unauthenticated => "UnauthenticatedError",
        ErrorKind::PermissionDenied => "PermissionDeniedError",
        ErrorKind::QuotaExceeded => "QuotaExceededError",
        ErrorKind::Conflict => "ConflictError",
        ErrorKind::RateLimited => "RateLimitedError",
        ErrorKind::Integrity => "IntegrityError",
        ErrorKind::Unavailable => "UnavailableError",
        ErrorKind::Unsupported => "UnsupportedError",
        ErrorKind::Internal => "InternalError",
        _ => "AteError",
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        if let Some(original) = e.python {
            return original;
        }
        Python::attach(|py| {
            let class = py
                .import("ate._errors")
                .and_then(|m| m.getattr(class_name(e.kind)))
                .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
            match class {
                Ok(class) => PyErr::from_type(class, (e.message, e.kind.as_str(), e.retryable)),
                // The package is broken (ate._errors missing); report that rather than hide it.
                Err(import_error) => import_error,
            }
        })
    }
}

/// Every kind with its class name, exported so Python tests can check the mapping is total.
#[pyfunction]
pub(crate) fn _error_classes() -> Vec<(&'static str, &'static str)> {
    ErrorKind::ALL
        .iter()
        .map(|k| (k.as_str(), class_name(*k)))
        .collect()
}
