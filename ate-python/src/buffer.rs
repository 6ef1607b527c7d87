//! Writing into a caller's buffer (`bytearray`, `memoryview`, a NumPy `uint8` array…), for
//! the `*_into` functions, and filling a new `bytes` without zeroing it first: the one
//! place the crate uses `unsafe` itself.

use crate::error::Error;
use pyo3::buffer::PyBuffer;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::mem::MaybeUninit;

/// The buffer of `out` if it is a writable, C-contiguous buffer of bytes; anything else is
/// `InvalidInputError`, naming `what`.
pub(crate) fn writable(out: &Bound<'_, PyAny>, what: &str) -> PyResult<PyBuffer<u8>> {
    let buffer = PyBuffer::<u8>::get(out).map_err(|_| {
        Error::invalid(format!(
            "{what} must be a writable bytes-like object (bytearray, memoryview, array of \
             unsigned bytes), not {}",
            out.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    if buffer.readonly() {
        return Err(Error::invalid(format!("{what} is read-only")).into());
    }
    if !buffer.is_c_contiguous() {
        return Err(Error::invalid(format!("{what} is not contiguous")).into());
    }
    Ok(buffer)
}

/// Runs `f` on the bytes of `out` as a mutable slice, with the GIL released (so `f` can use
/// every core and other Python threads keep running). `out` must be [`writable`].
///
/// While `f` runs, other Python threads must not read or write `out` (as with
/// `io.RawIOBase.readinto`): the bytes change under them.
pub(crate) fn write_into<R: Send>(
    py: Python<'_>,
    out: &Bound<'_, PyAny>,
    what: &str,
    f: impl FnOnce(&mut [u8]) -> R + Send,
) -> PyResult<R> {
    let buffer = writable(out, what)?;
    let (ptr, len) = (buffer.buf_ptr().cast::<u8>(), buffer.len_bytes());
    if len == 0 {
        return Ok(py.detach(|| f(&mut [])));
    }
    #[allow(unsafe_code)]
    // SAFETY: `buffer` holds the exporter's buffer until it is dropped at the end of this
    // function, so the memory stays allocated and cannot be resized (a `bytearray` refuses
    // to resize while exported). It is writable and C-contiguous (checked by `writable`), so
    // `len_bytes` bytes from `buf_ptr` are one region of initialized `u8`s (every bit
    // pattern is a valid `u8`). No other Rust reference to it exists: the functions that
    // call this take their other inputs as `bytes`, which are immutable objects with their
    // own storage. Python threads writing it concurrently are excluded by the contract above.
    let bytes: &mut [u8] = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
    let result = py.detach(|| f(bytes));
    drop(buffer);
    Ok(result)
}

/// A new `bytes` of `len` bytes filled by `fill` with the GIL released, without zeroing
/// its storage first (for large reads, the zeroing pass cost as much as copying the data:
/// the decrypting threads now touch those fresh pages instead). `fill` must write every
/// byte when it returns `Ok`; on an error the object is freed unseen.
pub(crate) fn new_bytes<E: Send>(
    py: Python<'_>,
    len: usize,
    fill: impl FnOnce(&mut [MaybeUninit<u8>]) -> Result<(), E> + Send,
) -> PyResult<Result<Bound<'_, PyBytes>, E>> {
    let size = ffi::Py_ssize_t::try_from(len)
        .map_err(|_| Error::invalid(format!("{len} bytes do not fit in one bytes object")))?;
    #[allow(unsafe_code)]
    // SAFETY: `PyBytes_FromStringAndSize(NULL, size)` returns a new reference to a `bytes`
    // whose `size` bytes of storage are allocated but not initialized (or NULL with an
    // exception set, turned into `Err` by `from_owned_ptr_or_err`), so the cast is to its
    // real type. `PyBytes_AsString` of that object points at those `size` bytes, which
    // live as long as the object, and we hold the only reference until this function
    // returns it: no Python code can see the object, let alone read it, while `fill`
    // writes it. Viewing uninitialized bytes as `MaybeUninit<u8>` is always valid.
    let (object, storage) = unsafe {
        let object = Bound::from_owned_ptr_or_err(
            py,
            ffi::PyBytes_FromStringAndSize(std::ptr::null(), size),
        )?
        .cast_into_unchecked::<PyBytes>();
        let data = ffi::PyBytes_AsString(object.as_ptr()).cast::<MaybeUninit<u8>>();
        (object, std::slice::from_raw_parts_mut(data, len))
    };
    // `fill` writes every byte on success (its contract), so a `bytes` handed out is fully
    // initialized; on failure the half-written object is dropped here, never returned.
    Ok(py.detach(|| fill(storage)).map(|()| object))
}
