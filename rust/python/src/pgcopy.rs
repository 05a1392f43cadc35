//! `pg_copy_rows`: Postgres binary COPY data from Arrow rows (`banquet_core::wire::pgcopy`),
//! built with the GIL released; `pg_array_params`: the same rows as the binary array
//! parameters of one upsert statement (a small write).

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3_arrow::PyArray;

use crate::rows::{rows_error, ArrowRows};

/// The rows `(entity_key bytea, event_ts int8, created_ts int8, value bytea)` as COPY
/// binary data (a null created time is 0), or None when a key repeats.
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
    let out = py
        .detach(|| banquet_core::wire::pgcopy::copy_rows(&rows))
        .map_err(rows_error)?;
    Ok(out.map(|b| PyBytes::new(py, &b)))
}

/// The rows as four binary array parameters (`bytea[]`, `int8[]`, `int8[]`, `bytea[]`; a
/// null created time is 0), or None when a key repeats.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn pg_array_params<'py>(
    py: Python<'py>,
    keys: PyArray,
    event_ts: PyArray,
    created_ts: Option<PyArray>,
    values: PyArray,
) -> PyResult<
    Option<(
        Bound<'py, PyBytes>,
        Bound<'py, PyBytes>,
        Bound<'py, PyBytes>,
        Bound<'py, PyBytes>,
    )>,
> {
    let rows = ArrowRows::new("pg_array_params", keys, event_ts, created_ts, values)?
        .require_values("pg_array_params")?;
    let rows = rows.slices("pg_array_params")?;
    let out = py
        .detach(|| banquet_core::wire::pgcopy::array_params(&rows))
        .map_err(rows_error)?;
    Ok(out.map(|[k, e, c, v]| {
        (
            PyBytes::new(py, &k),
            PyBytes::new(py, &e),
            PyBytes::new(py, &c),
            PyBytes::new(py, &v),
        )
    }))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(pg_copy_rows, m)?)?;
    m.add_function(wrap_pyfunction!(pg_array_params, m)?)?;
    Ok(())
}
