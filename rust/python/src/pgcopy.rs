//! Postgres `COPY ... (FORMAT BINARY)` data for the online store's bulk writes, built from
//! Arrow in one pass (the Python loop took longer than Postgres took to load the rows).

use std::collections::HashSet;

use arrow_array::{Array, ArrayRef};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3_arrow::PyArray;

use crate::sqlite::{byte_slices, micros};

/// Signature, flags, no header extension.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The rows `(entity_key bytea, event_ts int8, created_ts int8, value bytea)` as COPY
/// binary data (a null created time is 0), or None when a key repeats (the caller then
/// keeps one row per key first: an upsert may not touch a row twice).
#[pyfunction]
fn pg_copy_rows<'py>(
    py: Python<'py>,
    keys: PyArray,
    event_ts: PyArray,
    created_ts: Option<PyArray>,
    values: PyArray,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let keys: ArrayRef = keys.into_inner().0;
    let values: ArrayRef = values.into_inner().0;
    let event_ts: ArrayRef = event_ts.into_inner().0;
    let created_ts: Option<ArrayRef> = created_ts.map(|c| c.into_inner().0);
    let n = keys.len();
    if values.len() != n || event_ts.len() != n || created_ts.as_ref().is_some_and(|c| c.len() != n)
    {
        return Err(PyTypeError::new_err(
            "pg_copy_rows: keys, event_ts, created_ts and values must have the same length",
        ));
    }
    if keys.null_count() + values.null_count() + event_ts.null_count() > 0 {
        return Err(PyTypeError::new_err(
            "pg_copy_rows: keys, values and event times must not hold nulls",
        ));
    }
    let key_bytes = byte_slices(&keys, "keys")?;
    let value_bytes = byte_slices(&values, "values")?;
    let event = micros(&event_ts, "event_ts")?;
    let created = created_ts
        .as_ref()
        .map(|c| micros(c, "created_ts"))
        .transpose()?;
    // GIL released: Python threads run while the rows are copied
    let out = py.detach(|| {
        let keys: Vec<&[u8]> = key_bytes.iter().map(|k| k.unwrap_or_default()).collect();
        let unique = if keys.is_sorted() {
            keys.windows(2).all(|w| w[0] != w[1])
        } else {
            let mut seen = HashSet::with_capacity(n);
            keys.iter().all(|k| seen.insert(*k))
        };
        if !unique {
            return None;
        }
        let size: usize = keys.iter().map(|k| k.len()).sum::<usize>()
            + value_bytes
                .iter()
                .map(|v| v.map_or(0, <[u8]>::len))
                .sum::<usize>()
            + n * (2 + 4 * 4 + 8 * 2)
            + HEADER.len()
            + 2;
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(HEADER);
        for i in 0..n {
            let value = value_bytes[i].unwrap_or_default();
            let created_i = match (&created, &created_ts) {
                (Some(c), Some(arr)) if arr.is_valid(i) => c[i],
                _ => 0,
            };
            out.extend_from_slice(&4i16.to_be_bytes());
            out.extend_from_slice(&(keys[i].len() as i32).to_be_bytes());
            out.extend_from_slice(keys[i]);
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&event[i].to_be_bytes());
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&created_i.to_be_bytes());
            out.extend_from_slice(&(value.len() as i32).to_be_bytes());
            out.extend_from_slice(value);
        }
        out.extend_from_slice(b"\xff\xff"); // end of data
        debug_assert_eq!(out.len(), size);
        Some(out)
    });
    Ok(out.map(|b| PyBytes::new(py, &b)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(pg_copy_rows, m)?)?;
    Ok(())
}
