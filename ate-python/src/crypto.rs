//! `ate.crypto`: Cobblestone-256 for Python.
//!
//! Inputs are read straight from the caller's `bytes` (no copy) with the GIL released while
//! the cipher runs, on every core for large inputs. Results are written once: straight into
//! the `bytes` object returned, or into the caller's own buffer with the `*_into` functions.

use crate::buffer::write_into;
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
    let n = Cobblestone::sealed_len(plaintext.len()).map_err(Error::from)?;
    PyBytes::new_with(py, n, |out| {
        py.detach(|| Cobblestone::default().seal_into(key, plaintext, context, out))
            .map_err(|e| Error::from(e).into())
            .map(drop)
    })
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
    let n = Cobblestone::opened_len(ciphertext.len()).map_err(Error::from)?;
    PyBytes::new_with(py, n, |out| {
        py.detach(|| Cobblestone::default().open_into(key, ciphertext, context, out))
            .map_err(|e| Error::from(e).into())
            .map(drop)
    })
}

/// Encrypts `plaintext` into the writable buffer `out` (a `bytearray`, `memoryview`, NumPy
/// `uint8` array…), which must hold at least `cobblestone_sealed_len(len(plaintext))` bytes;
/// returns how many bytes were written (from the start of `out`).
#[pyfunction]
#[pyo3(signature = (key, plaintext, out, context = b"".as_slice()), text_signature = "(key, plaintext, out, context=b'')")]
pub(crate) fn cobblestone_seal_into(
    py: Python<'_>,
    key: &[u8],
    plaintext: &[u8],
    out: &Bound<'_, PyAny>,
    context: &[u8],
) -> PyResult<usize> {
    write_into(py, out, "out", |out| {
        Cobblestone::default().seal_into(key, plaintext, context, out)
    })?
    .map_err(|e| Error::from(e).into())
}

/// Decrypts a Cobblestone-256 message into the writable buffer `out`, which must hold at
/// least `cobblestone_opened_len(len(ciphertext))` bytes; returns how many bytes were
/// written. If the message does not authenticate, raises `IntegrityError` and leaves
/// those bytes zeroed: no unauthenticated plaintext stays in `out`.
#[pyfunction]
#[pyo3(signature = (key, ciphertext, out, context = b"".as_slice()), text_signature = "(key, ciphertext, out, context=b'')")]
pub(crate) fn cobblestone_open_into(
    py: Python<'_>,
    key: &[u8],
    ciphertext: &[u8],
    out: &Bound<'_, PyAny>,
    context: &[u8],
) -> PyResult<usize> {
    write_into(py, out, "out", |out| {
        Cobblestone::default().open_into(key, ciphertext, context, out)
    })?
    .map_err(|e| Error::from(e).into())
}

/// The length of the message that encrypts `plaintext_len` bytes.
#[pyfunction]
pub(crate) fn cobblestone_sealed_len(plaintext_len: usize) -> PyResult<usize> {
    Ok(Cobblestone::sealed_len(plaintext_len).map_err(Error::from)?)
}

/// The plaintext length a message of `ciphertext_len` bytes carries (authenticated only by
/// opening it); raises `IntegrityError` for a length no message has.
#[pyfunction]
pub(crate) fn cobblestone_opened_len(ciphertext_len: usize) -> PyResult<usize> {
    Ok(Cobblestone::opened_len(ciphertext_len).map_err(Error::from)?)
}

/// Registers the functions (re-exported as `ate.crypto`).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cobblestone_seal, m)?)?;
    m.add_function(wrap_pyfunction!(cobblestone_open, m)?)?;
    m.add_function(wrap_pyfunction!(cobblestone_seal_into, m)?)?;
    m.add_function(wrap_pyfunction!(cobblestone_open_into, m)?)?;
    m.add_function(wrap_pyfunction!(cobblestone_sealed_len, m)?)?;
    m.add_function(wrap_pyfunction!(cobblestone_opened_len, m)?)?;
    Ok(())
}
