//! The Redis store's encoders for Python (`banquet_core::wire::{resp, slot}`): write calls
//! as one RESP buffer and Redis Cluster key slots, each built with the GIL released.

use std::sync::Arc;

use arrow_array::UInt16Array;
use banquet_core::wire::{resp, slot};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use pyo3_arrow::PyArray;

use crate::codec::to_pyarrow;
use crate::errors::to_py;
use crate::rows::{rows_error, ArrowRows};

/// `EVALSHA <sha> <n> <prefix+key>... <head>... <stamp+blob>...` for consecutive chunks of
/// `per_call` rows, concatenated. Returns (the RESP bytes, number of calls).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn resp_evalsha<'py>(
    py: Python<'py>,
    sha: &[u8],
    prefix: &[u8],
    head: Vec<Vec<u8>>,
    keys: &Bound<'py, PyList>,
    event_ts: Vec<i64>,
    created_ts: Vec<i64>,
    blobs: &Bound<'py, PyList>,
    per_call: usize,
) -> PyResult<(Bound<'py, PyBytes>, usize)> {
    // The bytes objects stay alive (and immutable) while `keys`/`blobs` hold them, so
    // their buffers can be read with the GIL released.
    let keys: Vec<Bound<'py, PyBytes>> = keys
        .iter()
        .map(|k| k.cast_into::<PyBytes>().map_err(PyErr::from))
        .collect::<PyResult<_>>()?;
    let blobs: Vec<Bound<'py, PyBytes>> = blobs
        .iter()
        .map(|b| b.cast_into::<PyBytes>().map_err(PyErr::from))
        .collect::<PyResult<_>>()?;
    let key_bytes: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    let blob_bytes: Vec<&[u8]> = blobs.iter().map(|b| b.as_bytes()).collect();
    let (out, calls) = py
        .detach(|| {
            resp::evalsha_calls(
                sha,
                prefix,
                &head,
                &key_bytes,
                &event_ts,
                &created_ts,
                &blob_bytes,
                per_call,
            )
        })
        .map_err(to_py)?; // unequal lengths, per_call 0: KernelError, a ValueError as before
    Ok((PyBytes::new(py, &out), calls))
}

/// `HSETNX <prefix+key> <field> <stamp+blob>` per row, concatenated. Rows from Arrow:
/// binary keys and blobs, int64 or timestamp[us] times (a null created time is 0).
#[pyfunction]
fn resp_hsetnx<'py>(
    py: Python<'py>,
    prefix: &[u8],
    field: &[u8],
    keys: PyArray,
    event_ts: PyArray,
    created_ts: PyArray,
    blobs: PyArray,
) -> PyResult<Bound<'py, PyBytes>> {
    let rows = ArrowRows::new("resp_hsetnx", keys, event_ts, Some(created_ts), blobs)?
        .require_values("resp_hsetnx")?;
    let rows = rows.slices("resp_hsetnx")?;
    let out = py
        .detach(|| resp::hsetnx_calls(prefix, field, &rows))
        .map_err(rows_error)?;
    Ok(PyBytes::new(py, &out))
}

/// The Redis Cluster slot of one key (its `{hash tag}` when it has one).
#[pyfunction]
fn key_slot(key: &[u8]) -> u16 {
    slot::key_slot(key)
}

/// The Redis Cluster slot of `prefix + key` for each key of a binary array, as a uint16
/// array (GIL released).
#[pyfunction]
#[pyo3(signature = (keys, prefix=b"".as_slice()))]
fn key_slots<'py>(py: Python<'py>, keys: PyArray, prefix: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let (keys, _) = keys.into_inner();
    let slots = py.detach(|| -> banquet_core::Result<UInt16Array> {
        let rows = banquet_core::wire::rows::binary_values("key_slots", "keys", &keys)?;
        Ok(UInt16Array::from(slot::prefixed_key_slots(prefix, &rows)))
    });
    let slots = slots.map_err(rows_error)?;
    to_pyarrow(py, Arc::new(slots))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(resp_hsetnx, m)?)?;
    m.add_function(wrap_pyfunction!(resp_evalsha, m)?)?;
    m.add_function(wrap_pyfunction!(key_slot, m)?)?;
    m.add_function(wrap_pyfunction!(key_slots, m)?)?;
    Ok(())
}
