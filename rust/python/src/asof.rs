//! Bindings for banquet_core::asof (see python/banquet/_core.pyi for the contract).

use std::sync::Arc;

use arrow_array::ArrayRef;
use pyo3::prelude::*;
use pyo3_arrow::PyArray;

use crate::codec::to_pyarrow;
use crate::gil::run_pooled;

/// For each entity row, the index (uint32) of the matching feature row, or null.
#[pyfunction]
#[pyo3(signature = (entity_keys, entity_ts, feature_keys, feature_ts, feature_created, ttl_us))]
fn asof_join<'py>(
    py: Python<'py>,
    entity_keys: Vec<PyArray>,
    entity_ts: PyArray,
    feature_keys: Vec<PyArray>,
    feature_ts: PyArray,
    feature_created: Option<PyArray>,
    ttl_us: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let inner = |a: PyArray| -> ArrayRef { a.into_inner().0 };
    let entity_keys: Vec<ArrayRef> = entity_keys.into_iter().map(inner).collect();
    let feature_keys: Vec<ArrayRef> = feature_keys.into_iter().map(inner).collect();
    let entity_ts = inner(entity_ts);
    let feature_ts = inner(feature_ts);
    let feature_created = feature_created.map(inner);
    let out = run_pooled(py, move || {
        banquet_core::asof::asof_join(
            &entity_keys,
            entity_ts.as_ref(),
            &feature_keys,
            feature_ts.as_ref(),
            feature_created.as_deref(),
            ttl_us,
        )
    })?;
    to_pyarrow(py, Arc::new(out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(asof_join, m)?)
}
