//! Bindings for banquet_core::values and banquet_core::latest (see python/banquet/_core.pyi for the contract).

use std::sync::Arc;

use arrow_array::ArrayRef;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use pyo3_arrow::{PyArray, PySchema};

use crate::gil::run_detached;

/// A `pyarrow.Array` over `array` (zero-copy, through the C data interface).
pub(crate) fn to_pyarrow(py: Python<'_>, array: ArrayRef) -> PyResult<Bound<'_, PyAny>> {
    let array = Bound::new(py, PyArray::from_array_ref(array))?;
    py.import(intern!(py, "pyarrow"))?
        .getattr(intern!(py, "array"))?
        .call1((array,))
}

/// Indices (uint32, ascending) of the latest row per key within [start_us, end_us].
#[pyfunction]
#[pyo3(signature = (keys, event_ts, created_ts, start_us, end_us))]
fn latest_per_key<'py>(
    py: Python<'py>,
    keys: Vec<PyArray>,
    event_ts: PyArray,
    created_ts: Option<PyArray>,
    start_us: Option<i64>,
    end_us: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let keys: Vec<ArrayRef> = keys.into_iter().map(|k| k.into_inner().0).collect();
    let event_ts = event_ts.into_inner().0;
    let created_ts = created_ts.map(|c| c.into_inner().0);
    let out = run_detached(py, move || {
        banquet_core::latest::latest_per_key(
            &keys,
            &event_ts,
            created_ts.as_ref(),
            start_us,
            end_us,
        )
    })?;
    to_pyarrow(py, Arc::new(out))
}

/// Encode N rows into N binary blobs; with `schema`, the blobs' fingerprint covers the
/// feature names too.
#[pyfunction]
#[pyo3(signature = (event_ts, created_ts, columns, schema=None))]
fn encode_values<'py>(
    py: Python<'py>,
    event_ts: PyArray,
    created_ts: Option<PyArray>,
    columns: Vec<PyArray>,
    schema: Option<PySchema>,
) -> PyResult<Bound<'py, PyAny>> {
    let event_ts = event_ts.into_inner().0;
    let created_ts = created_ts.map(|c| c.into_inner().0);
    let columns: Vec<ArrayRef> = columns.into_iter().map(|c| c.into_inner().0).collect();
    let schema = schema.map(PySchema::into_inner);
    let out = run_detached(py, move || match &schema {
        Some(schema) => banquet_core::values::encode_values_with_fields(
            &event_ts,
            created_ts.as_ref(),
            &columns,
            schema.fields(),
        ),
        None => banquet_core::values::encode_values(&event_ts, created_ts.as_ref(), &columns),
    })?;
    to_pyarrow(py, Arc::new(out))
}

/// Decode N blobs into (event_ts, created_ts, [one array per schema field]).
#[pyfunction]
fn decode_values<'py>(
    py: Python<'py>,
    blobs: PyArray,
    schema: PySchema,
) -> PyResult<Bound<'py, PyTuple>> {
    let blobs = blobs.into_inner().0;
    let schema = schema.into_inner();
    let (event, created, columns) = run_detached(py, move || {
        banquet_core::values::decode_values_array(&blobs, schema.fields())
    })?;
    let columns = columns
        .into_iter()
        .map(|c| to_pyarrow(py, c))
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(
        py,
        [
            to_pyarrow(py, Arc::new(event))?,
            to_pyarrow(py, Arc::new(created))?,
            PyList::new(py, columns)?.into_any(),
        ],
    )
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(latest_per_key, m)?)?;
    m.add_function(wrap_pyfunction!(encode_values, m)?)?;
    m.add_function(wrap_pyfunction!(decode_values, m)?)?;
    Ok(())
}
