//! Bindings for banquet_core::partition (see python/banquet/_core.pyi for the contract).

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, UInt32Array};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3_arrow::{PyArray, PyRecordBatch};

use crate::codec::to_pyarrow;
use crate::gil::run_pooled;

/// One partition id (uint32) per row from its key hash; null keys get `n`.
#[pyfunction]
#[pyo3(signature = (keys, n, seed=0))]
fn partition_ids<'py>(
    py: Python<'py>,
    keys: Vec<PyArray>,
    n: u32,
    seed: u64,
) -> PyResult<Bound<'py, PyAny>> {
    let keys: Vec<ArrayRef> = keys.into_iter().map(|k| k.into_inner().0).collect();
    let out = run_pooled(py, move || {
        banquet_core::partition::partition_ids(&keys, n, seed)
    })?;
    to_pyarrow(py, Arc::new(out))
}

/// (the stable order grouping rows by partition, the n + 2 partition offsets).
#[pyfunction]
fn partition_order<'py>(py: Python<'py>, ids: PyArray, n: u32) -> PyResult<Bound<'py, PyTuple>> {
    let ids = ids.into_inner().0;
    let (order, offsets) = run_pooled(py, move || {
        let ids = ids.as_any().downcast_ref::<UInt32Array>().ok_or_else(|| {
            banquet_core::Error::Invalid(format!(
                "partition ids must be uint32, got {}",
                ids.data_type()
            ))
        })?;
        banquet_core::partition::partition_order(ids, n)
    })?;
    PyTuple::new(
        py,
        [
            to_pyarrow(py, Arc::new(order))?,
            offsets.into_pyobject(py)?.into_any(),
        ],
    )
}

/// The per-partition join: entity [keys.., ts, row_id] x features [keys.., ts, created?,
/// features..] -> [row_id, features..].
#[pyfunction]
#[pyo3(signature = (entity, features, n_keys, has_created, ttl_us))]
fn join_partition<'py>(
    py: Python<'py>,
    entity: PyRecordBatch,
    features: PyRecordBatch,
    n_keys: usize,
    has_created: bool,
    ttl_us: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let entity = entity.into_inner();
    let features = features.into_inner();
    let out = run_pooled(py, move || {
        banquet_core::partition::join_partition(&entity, &features, n_keys, has_created, ttl_us)
    })?;
    PyRecordBatch::new(out).into_pyarrow(py)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(partition_ids, m)?)?;
    m.add_function(wrap_pyfunction!(partition_order, m)?)?;
    m.add_function(wrap_pyfunction!(join_partition, m)?)
}
