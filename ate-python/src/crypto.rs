//! `ate.crypto`: Cobblestone-256 for Python.
//!
//! Inputs are read straight from the caller's `bytes` (no copy) with the GIL released while
//! the cipher runs, on every core for large inputs.

use crate::error::Error;
use ate_storage::cobblestone::Cobblestone;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Encrypts `plaintext` under a 32-byte `key`, bound to `context`.
#[pyfunction]
#[pyo3(signature = (key, plaintext, context = b"".as_slice()), text_signature = "(key, plaintext, context=b'')")]
pub(crate) fn cobblestone_seal<'py>(
    py: Python<'py>,
    key: &[u8],
    plaintext: &[u8],
    context: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let sealed = py
        .detach(|| Cobblestone::default().seal(key, plaintext, context))
        .map_err(Error::from)?;
    Ok(PyBytes::new(py, &sealed))
}

/// Decrypts a Cobblestone-256 message; raises `IntegrityError` if it does not authenticate
/// under `key` and `context`, `InvalidInputError` for a key that is not 32 bytes.
#[pyfunction]
#[pyo3(signature = (key, ciphertext, context = b"".as_slice()), text_signature = "(key, ciphertext, context=b'')")]
pub(crate) fn cobblestone_open<'py>(
    py: Python<'py>,
    key: &[u8],
    ciphertext: &[u8],
    context: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let opened = py
        .detach(|| Cobblestone::default().open(key, ciphertext, context))
        .map_err(Error::from)?;
    Ok(PyBytes::new(py, &opened))
}

/// Registers the functions (re-exported as `ate.crypto`).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cobblestone_seal, m)?)?;
    m.add_function(wrap_pyfunction!(cobblestone_open, m)?)?;
    Ok(())
}
