//! Bindings for banquet_core::window (see python/banquet/_core.pyi for the contract).

use arrow_array::ArrayRef;
use banquet_core::window::{Function, Spec};
use pyo3::prelude::*;
use pyo3::types::PyList;
use pyo3_arrow::PyArray;

use crate::codec::to_pyarrow;
use crate::errors::to_py;
use crate::gil::run_pooled;

/// One array per spec, one row per entity row: windowed aggregates of the feature rows.
/// A spec is `(function, value column index, window_us, slide_us or None)`.
#[pyfunction]
#[pyo3(signature = (entity_keys, entity_ts, feature_keys, feature_ts, feature_created, values, specs))]
#[allow(clippy::too_many_arguments)]
fn window_aggregate<'py>(
    py: Python<'py>,
    entity_keys: Vec<PyArray>,
    entity_ts: PyArray,
    feature_keys: Vec<PyArray>,
    feature_ts: PyArray,
    feature_created: Option<PyArray>,
    values: Vec<PyArray>,
    specs: Vec<(String, usize, i64, Option<i64>)>,
) -> PyResult<Bound<'py, PyList>> {
    let inner = |a: PyArray| -> ArrayRef { a.into_inner().0 };
    let entity_keys: Vec<ArrayRef> = entity_keys.into_iter().map(inner).collect();
    let feature_keys: Vec<ArrayRef> = feature_keys.into_iter().map(inner).collect();
    let values: Vec<ArrayRef> = values.into_iter().map(inner).collect();
    let entity_ts = inner(entity_ts);
    let feature_ts = inner(feature_ts);
    let feature_created = feature_created.map(inner);
    let specs = specs
        .into_iter()
        .map(|(f, value, window, slide)| {
            Ok(Spec {
                function: Function::parse(&f)?,
                value,
                window,
                slide,
            })
        })
        .collect::<banquet_core::Result<Vec<Spec>>>()
        .map_err(to_py)?;
    let out = run_pooled(py, move || {
        banquet_core::window::window_aggregate(
            &entity_keys,
            entity_ts.as_ref(),
            &feature_keys,
            feature_ts.as_ref(),
            feature_created.as_deref(),
            &values,
            &specs,
        )
    })?;
    let list = PyList::empty(py);
    for a in out {
        list.append(to_pyarrow(py, a)?)?;
    }
    Ok(list)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(window_aggregate, m)?)
}
