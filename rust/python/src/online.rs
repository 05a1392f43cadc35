//! The online hot path: decode a handful of blobs straight into Python lists.
//!
//! `decode_values` returns pyarrow arrays, which costs ~10 µs per column to hand over: fine
//! for materialization-sized batches, too slow for a 1-entity request. `ValueCodec` keeps the
//! view's fields on the Rust side (no schema import per call) and builds Python objects
//! directly from the decoded Arrow buffers.

use arrow_array::builder::BinaryBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, FieldRef};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};
use pyo3_arrow::PySchema;

use crate::gil::run_detached;

/// Decodes blobs of one feature view into Python lists.
#[pyclass(frozen, module = "banquet._core")]
pub struct ValueCodec {
    fields: Vec<FieldRef>,
}

#[pymethods]
impl ValueCodec {
    #[new]
    fn new(schema: PySchema) -> Self {
        let schema = schema.into_inner();
        ValueCodec {
            fields: schema.fields().iter().cloned().collect(),
        }
    }

    /// `(event_ts, columns)`: the event time (UTC µs, None for a missing blob) of each blob,
    /// and one list per field with its values (None for nulls and missing blobs). Timestamps
    /// come back as UTC microseconds.
    fn decode_rows<'py>(
        &self,
        py: Python<'py>,
        blobs: &Bound<'py, PyList>,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
        let mut builder = BinaryBuilder::with_capacity(blobs.len(), 256 * blobs.len());
        for item in blobs.iter() {
            if item.is_none() {
                builder.append_null();
            } else {
                builder.append_value(item.cast::<PyBytes>()?.as_bytes());
            }
        }
        let array = builder.finish();
        let fields = &self.fields;
        let (event, _created, columns) =
            run_detached(py, || banquet_core::values::decode_values(&array, fields))?;
        let event_list = to_pylist(py, &event)?;
        let cols = PyList::empty(py);
        for col in &columns {
            cols.append(to_pylist(py, col)?)?;
        }
        Ok((event_list, cols))
    }
}

/// Python objects for every slot of `array` (None for nulls).
fn to_pylist<'py>(py: Python<'py>, array: &dyn Array) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for i in 0..array.len() {
        out.append(value(py, array, i)?)?;
    }
    Ok(out)
}

fn value<'py>(py: Python<'py>, array: &dyn Array, i: usize) -> PyResult<Bound<'py, PyAny>> {
    if array.is_null(i) {
        return Ok(py.None().into_bound(py));
    }
    Ok(match array.data_type() {
        DataType::Boolean => array
            .as_boolean()
            .value(i)
            .into_pyobject(py)?
            .to_owned()
            .into_any(),
        DataType::Int32 => array
            .as_primitive::<Int32Type>()
            .value(i)
            .into_pyobject(py)?
            .into_any(),
        DataType::Int64 => array
            .as_primitive::<Int64Type>()
            .value(i)
            .into_pyobject(py)?
            .into_any(),
        DataType::Float32 => (array.as_primitive::<Float32Type>().value(i) as f64)
            .into_pyobject(py)?
            .into_any(),
        DataType::Float64 => array
            .as_primitive::<Float64Type>()
            .value(i)
            .into_pyobject(py)?
            .into_any(),
        DataType::Timestamp(..) => array
            .as_primitive::<TimestampMicrosecondType>()
            .value(i)
            .into_pyobject(py)?
            .into_any(),
        DataType::Utf8 => PyString::new(py, array.as_string::<i32>().value(i)).into_any(),
        DataType::LargeUtf8 => PyString::new(py, array.as_string::<i64>().value(i)).into_any(),
        DataType::Utf8View => PyString::new(py, array.as_string_view().value(i)).into_any(),
        DataType::Binary => PyBytes::new(py, array.as_binary::<i32>().value(i)).into_any(),
        DataType::LargeBinary => PyBytes::new(py, array.as_binary::<i64>().value(i)).into_any(),
        DataType::BinaryView => PyBytes::new(py, array.as_binary_view().value(i)).into_any(),
        DataType::List(_) => list_value(py, array.as_list::<i32>().value(i))?,
        DataType::LargeList(_) => list_value(py, array.as_list::<i64>().value(i))?,
        other => {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "cannot convert {other} values to Python"
            )))
        }
    })
}

fn list_value(py: Python<'_>, items: ArrayRef) -> PyResult<Bound<'_, PyAny>> {
    Ok(to_pylist(py, items.as_ref())?.into_any())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ValueCodec>()?;
    m.add_function(wrap_pyfunction!(serialize_key_rows, m)?)
}

/// Serialize entity keys given as Python lists (one per join key, same length), for the
/// online path: no pyarrow round trip. `kinds` are banquet type names: int64, int32, string,
/// bytes. A value of another Python type raises TypeError (the caller then reports it with
/// the entity's name).
#[pyfunction]
pub fn serialize_key_rows<'py>(
    py: Python<'py>,
    names: Vec<String>,
    columns: Vec<Bound<'py, PyList>>,
    kinds: Vec<String>,
) -> PyResult<Bound<'py, PyList>> {
    use arrow_array::{BinaryArray, Int32Array, Int64Array, StringArray};
    use std::sync::Arc;

    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (col, kind) in columns.iter().zip(&kinds) {
        let array: ArrayRef = match kind.as_str() {
            "int64" => Arc::new(Int64Array::from(
                col.iter()
                    .map(|v| v.extract::<i64>())
                    .collect::<PyResult<Vec<_>>>()?,
            )),
            "int32" => Arc::new(Int32Array::from(
                col.iter()
                    .map(|v| v.extract::<i32>())
                    .collect::<PyResult<Vec<_>>>()?,
            )),
            "string" => {
                let items: Vec<Bound<'py, PyString>> = col
                    .iter()
                    .map(|v| v.cast_into::<PyString>().map_err(PyErr::from))
                    .collect::<PyResult<_>>()?;
                let strs = items
                    .iter()
                    .map(|s| s.to_str())
                    .collect::<PyResult<Vec<&str>>>()?;
                Arc::new(StringArray::from(strs))
            }
            "bytes" => {
                let items: Vec<Bound<'py, PyBytes>> = col
                    .iter()
                    .map(|v| v.cast_into::<PyBytes>().map_err(PyErr::from))
                    .collect::<PyResult<_>>()?;
                Arc::new(BinaryArray::from(
                    items.iter().map(|b| b.as_bytes()).collect::<Vec<_>>(),
                ))
            }
            other => {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "no fast path for {other} keys"
                )))
            }
        };
        arrays.push(array);
    }
    let keys = run_detached(py, || {
        banquet_core::keys::serialize_entity_keys(&names, &arrays)
    })?;
    let out = PyList::empty(py);
    for i in 0..keys.len() {
        out.append(PyBytes::new(py, keys.value(i)))?;
    }
    Ok(out)
}
