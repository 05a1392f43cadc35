//! Bindings for banquet_core::gather (see python/banquet/_core.pyi for the contract).

use arrow_array::cast::AsArray;
use arrow_array::ArrayRef;
use arrow_schema::DataType;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3_arrow::{PyArray, PyChunkedArray};

use crate::codec::to_pyarrow;
use crate::gil::run_pooled;

/// The rows at `indices` (uint32; null: a null row) of each column, one array per column.
#[pyfunction]
fn take_rows<'py>(
    py: Python<'py>,
    columns: Vec<PyChunkedArray>,
    indices: PyArray,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let indices = indices.into_inner().0;
    if indices.data_type() != &DataType::UInt32 {
        return Err(PyTypeError::new_err(format!(
            "take_rows: indices must be uint32, not {}",
            indices.data_type()
        )));
    }
    let columns: Vec<(Vec<ArrayRef>, DataType)> = columns
        .into_iter()
        .map(|c| {
            let (chunks, field) = c.into_inner();
            (chunks, field.data_type().clone())
        })
        .collect();
    let out = run_pooled(py, move || {
        let indices = indices.as_primitive();
        // one location per chunking (the columns of one table share theirs)
        let mut located: Vec<(Vec<usize>, Vec<u64>)> = Vec::new();
        let mut out = Vec::with_capacity(columns.len());
        for (chunks, dtype) in &columns {
            let lens: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
            let k = match located.iter().position(|(l, _)| *l == lens) {
                Some(k) => k,
                None => {
                    let rows = banquet_core::gather::locate(&lens, indices)?;
                    located.push((lens, rows));
                    located.len() - 1
                }
            };
            out.push(banquet_core::gather::gather(dtype, chunks, &located[k].1)?);
        }
        Ok(out)
    })?;
    out.into_iter().map(|a| to_pyarrow(py, a)).collect()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(take_rows, m)?)
}
