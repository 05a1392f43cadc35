//! Postgres `COPY ... (FORMAT BINARY)` data for the online store's bulk writes, built from
//! Arrow in one pass (the Python loop took longer than Postgres took to load the rows).

use std::collections::HashSet;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3_arrow::PyArray;

use crate::rows::ArrowRows;

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
    let rows = ArrowRows::new("pg_copy_rows", keys, event_ts, created_ts, values)?
        .require_values("pg_copy_rows")?;
    let rows = rows.slices("pg_copy_rows")?;
    let n = rows.len();
    // GIL released: Python threads run while the rows are copied
    let out = py.detach(|| {
        let keys = &rows.keys;
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
            + rows
                .values
                .iter()
                .map(|v| v.map_or(0, <[u8]>::len))
                .sum::<usize>()
            + n * (2 + 4 * 4 + 8 * 2)
            + HEADER.len()
            + 2;
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(HEADER);
        for (i, key) in keys.iter().enumerate() {
            let value = rows.values[i].unwrap_or_default();
            out.extend_from_slice(&4i16.to_be_bytes());
            out.extend_from_slice(&(key.len() as i32).to_be_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&rows.event(i).to_be_bytes());
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&rows.created(i).to_be_bytes());
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
