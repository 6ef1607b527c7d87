//! Conversions between Python values and ATE's Rust types.

use crate::error::Error;
use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use pyo3::types::{PyDateTime, PyFrozenSet, PyString, PyTzInfoAccess};
use std::str::FromStr;
use std::time::Duration;

/// Parses an id argument, naming the parameter in the error.
pub(crate) fn parse_id<T: FromStr<Err = ate_core::CoreError>>(value: &str) -> Result<T, Error> {
    T::from_str(value).map_err(Error::from)
}

/// Converts a Python object to JSON through the standard `json` module, so anything
/// `json.dumps` accepts is accepted and everything else is an `InvalidInputError`.
pub(crate) fn to_json(value: &Bound<'_, PyAny>, what: &str) -> Result<serde_json::Value, Error> {
    let py = value.py();
    let text: String = py
        .import("json")
        .and_then(|json| json.call_method1("dumps", (value,)))
        .and_then(|s| s.extract())
        .map_err(|e| Error::invalid(format!("{what} must be JSON-serializable: {e}")))?;
    serde_json::from_str(&text).map_err(|e| Error::invalid(format!("{what}: {e}")))
}

/// Converts JSON to Python objects (dicts, lists, str, int, float, bool, None).
pub(crate) fn from_json<'py>(
    py: Python<'py>,
    value: &serde_json::Value,
) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?
        .call_method1("loads", (value.to_string(),))
}

/// Converts an aware `datetime` to UTC; naive datetimes are rejected because their zone is
/// a guess.
pub(crate) fn to_utc(value: &Bound<'_, PyDateTime>, what: &str) -> Result<DateTime<Utc>, Error> {
    if value.get_tzinfo().is_none() {
        return Err(Error::invalid(format!(
            "{what} is a naive datetime; pass a timezone-aware one (e.g. tzinfo=datetime.timezone.utc)"
        )));
    }
    value
        .extract::<DateTime<Utc>>()
        .map_err(|e| Error::invalid(format!("{what}: {e}")))
}

/// Names from an iterable of `str` (roles, permissions, tags, capabilities). A lone `str`
/// is refused: it would iterate as its letters.
pub(crate) fn names(value: &Bound<'_, PyAny>, what: &str) -> Result<Vec<String>, Error> {
    let not_names = || {
        Error::invalid(format!(
            "{what} must be an iterable of names such as ('a', 'b'), not a single str"
        ))
    };
    if value.is_instance_of::<PyString>() {
        return Err(not_names());
    }
    value
        .try_iter()
        .map_err(|_| not_names())?
        .map(|item| {
            item.and_then(|i| i.extract::<String>())
                .map_err(|_| not_names())
        })
        .collect()
}

/// A duration from a Python number of seconds, which must be finite and not negative.
pub(crate) fn seconds(value: f64, what: &str) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        Error::invalid(format!(
            "{what} must be a finite, non-negative number of seconds, not {value}"
        ))
    })
}

/// Names as a Python `frozenset[str]`.
pub(crate) fn frozenset<'py>(
    py: Python<'py>,
    items: impl IntoIterator<Item = impl AsRef<str>>,
) -> PyResult<Bound<'py, PyFrozenSet>> {
    let items: Vec<String> = items.into_iter().map(|s| s.as_ref().to_owned()).collect();
    PyFrozenSet::new(py, &items)
}
