//! The Redis store's encoders for Python (`banquet_core::wire::{resp, slot}`): write calls
//! as one RESP buffer and Redis Cluster key slots, each built with the GIL released.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt16Type;
use arrow_array::{Array, UInt16Array};
use banquet_core::wire::{resp, slot};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3_arrow::PyArray;

use crate::codec::to_pyarrow;
use crate::errors::KernelTypeError;
use crate::rows::{rows_error, ArrowRows};

/// `EVALSHA <sha> <n> <prefix+key>... <head>... <stamp+blob>...` per call, concatenated,
/// from Arrow rows (binary keys and blobs, int64 or timestamp[us] times, a null created
/// time is 0). A call holds at most `per_call` consecutive rows, all of one `groups` value
/// when given (a uint16 array, one per row: the Redis Cluster slots of rows ordered by
/// slot). Returns (the RESP bytes, number of calls).
#[pyfunction]
#[pyo3(signature = (sha, prefix, head, keys, event_ts, created_ts, blobs, per_call, groups=None))]
#[allow(clippy::too_many_arguments)]
fn resp_evalsha<'py>(
    py: Python<'py>,
    sha: &[u8],
    prefix: &[u8],
    head: Vec<Vec<u8>>,
    keys: PyArray,
    event_ts: PyArray,
    created_ts: Option<PyArray>,
    blobs: PyArray,
    per_call: usize,
    groups: Option<PyArray>,
) -> PyResult<(Bound<'py, PyBytes>, usize)> {
    let rows = ArrowRows::new("resp_evalsha", keys, event_ts, created_ts, blobs)?
        .require_values("resp_evalsha")?;
    let rows = rows.slices("resp_evalsha")?;
    let groups = groups.map(|g| g.into_inner().0);
    let groups: Option<&[u16]> = match &groups {
        None => None,
        Some(g) => match g.as_primitive_opt::<UInt16Type>() {
            Some(g) if g.null_count() == 0 => Some(g.values()),
            _ => {
                return Err(KernelTypeError::new_err(format!(
                    "resp_evalsha: groups must be uint16 without nulls, got {}",
                    g.data_type()
                )))
            }
        },
    };
    let (out, calls) = py
        .detach(|| resp::evalsha_calls(sha, prefix, &head, &rows, per_call, groups))
        .map_err(rows_error)?;
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

/// Where the `n` replies at `buf[pos..]` end when all are integer replies (the write
/// script's); -1: the buffer ends first; -2: another reply (an error) among them.
#[pyfunction]
fn resp_int_replies(buf: &[u8], pos: usize, n: usize) -> i64 {
    match resp::int_replies(buf, pos, n) {
        resp::IntReplies::Complete(end) => end as i64,
        resp::IntReplies::Incomplete => -1,
        resp::IntReplies::Other => -2,
    }
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
    m.add_function(wrap_pyfunction!(resp_int_replies, m)?)?;
    m.add_function(wrap_pyfunction!(key_slot, m)?)?;
    m.add_function(wrap_pyfunction!(key_slots, m)?)?;
    Ok(())
}
