//! Bindings for banquet_core::keys (see python/banquet/_core.pyi for the contract).

use std::sync::Arc;

use arrow_array::ArrayRef;
use pyo3::prelude::*;
use pyo3_arrow::PyArray;

use crate::gil::run_detached;

/// Serialize N entity keys (one column per join key) to N Feast v3 blobs; with no join keys,
/// `rows` empty keys (Feast's bytes for an `EntityKey` without join keys).
#[pyfunction]
#[pyo3(signature = (names, columns, rows=None))]
fn serialize_entity_keys<'py>(
    py: Python<'py>,
    names: Vec<String>,
    columns: Vec<PyArray>,
    rows: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let columns: Vec<ArrayRef> = columns.into_iter().map(|c| c.into_inner().0).collect();
    let out = run_detached(py, move || match rows {
        Some(n) if names.is_empty() && columns.is_empty() => {
            banquet_core::keys::empty_entity_keys(n)
        }
        Some(n) if columns.first().is_some_and(|c| c.len() != n) => {
            Err(banquet_core::Error::Mismatch(format!(
                "rows={n}, but the key columns have {} rows",
                columns[0].len()
            )))
        }
        _ => banquet_core::keys::serialize_entity_keys(&names, &columns),
    })?;
    crate::codec::to_pyarrow(py, Arc::new(out))
}

/// xxh3-64 of each serialized key (uint64; null stays null).
#[pyfunction]
fn hash_entity_keys<'py>(py: Python<'py>, keys: PyArray) -> PyResult<Bound<'py, PyAny>> {
    let keys = keys.into_inner().0;
    let out = run_detached(py, move || banquet_core::keys::hash_keys_array(&keys))?;
    crate::codec::to_pyarrow(py, Arc::new(out))
}

/// The stable order (uint32 indices) that sorts serialized keys bytewise.
#[pyfunction]
fn key_order<'py>(py: Python<'py>, keys: PyArray) -> PyResult<Bound<'py, PyAny>> {
    let keys = keys.into_inner().0;
    let out = run_detached(py, move || banquet_core::keys::key_order(&keys))?;
    crate::codec::to_pyarrow(py, Arc::new(out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(serialize_entity_keys, m)?)?;
    m.add_function(wrap_pyfunction!(key_order, m)?)?;
    m.add_function(wrap_pyfunction!(hash_entity_keys, m)?)?;
    Ok(())
}
