//! `SqliteStore`: banquet_core::sqlite for Python (see python/banquet/_core.pyi). Every call
//! runs with the GIL released while SQLite works.

use arrow_array::{Array, BinaryArray};
use banquet_core::sqlite::Row;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3_arrow::PyArray;
use rusqlite::types::Value;

use crate::gil::run_detached;
use crate::rows::ArrowRows;

/// The embedded online store at one path.
#[pyclass(frozen, module = "banquet._core")]
pub struct SqliteStore {
    pub(crate) inner: banquet_core::sqlite::SqliteStore,
}

#[pymethods]
impl SqliteStore {
    #[new]
    fn new(path: std::path::PathBuf) -> Self {
        SqliteStore {
            inner: banquet_core::sqlite::SqliteStore::new(path),
        }
    }

    #[getter]
    fn path(&self) -> std::path::PathBuf {
        self.inner.path().to_path_buf()
    }

    /// True while a background checkpoint runs.
    #[getter]
    fn checkpointing(&self) -> bool {
        self.inner.checkpointing()
    }

    fn create_view(&self, py: Python<'_>, project: &str, view: &str) -> PyResult<()> {
        run_detached(py, || self.inner.create_view(project, view))
    }

    fn drop_view(&self, py: Python<'_>, project: &str, view: &str) -> PyResult<()> {
        run_detached(py, || self.inner.drop_view(project, view))
    }

    fn teardown(&self, py: Python<'_>, project: &str) -> PyResult<()> {
        run_detached(py, || self.inner.teardown(project))
    }

    fn close(&self) {
        self.inner.close()
    }

    /// Hold back background checkpoints (counted) until the matching release.
    fn hold_checkpoints(&self) {
        self.inner.hold_checkpoints()
    }

    /// Undo one hold; the last release starts the checkpoint held back, in the background.
    fn release_checkpoints(&self) {
        self.inner.release_checkpoints()
    }

    /// Upsert rows given as Arrow arrays: binary keys and values, event and created times
    /// as int64 or timestamp[us] (a null created time is stored as 0).
    #[pyo3(signature = (project, view, keys, event_ts, created_ts, values, overwrite=false))]
    #[allow(clippy::too_many_arguments)] // the OnlineStore.write_arrays signature, plus `py`
    fn write_arrays(
        &self,
        py: Python<'_>,
        project: &str,
        view: &str,
        keys: PyArray,
        event_ts: PyArray,
        created_ts: Option<PyArray>,
        values: PyArray,
        overwrite: bool,
    ) -> PyResult<usize> {
        let rows = ArrowRows::new("write_arrays", keys, event_ts, created_ts, values)?;
        let rows = rows.slices("write_arrays")?;
        let n = rows.len();
        run_detached(py, || {
            // In key order: SQLite's B-tree takes sorted inserts ~20% faster. The sort is
            // stable, so duplicate keys keep their order (the later of two equal rows wins).
            let mut order: Vec<usize> = (0..n).collect();
            if !rows.keys.is_sorted() {
                order.sort_by_key(|&i| rows.keys[i]);
            }
            self.inner.write_rows(
                project,
                view,
                order.into_iter().map(|i| Row {
                    key: rows.keys[i],
                    event_ts: rows.event(i),
                    created_ts: rows.created(i),
                    value: rows.values[i],
                }),
                overwrite,
            )
        })
    }

    /// For each `(view, keys)` pair, the stored value per key (None when absent).
    fn read<'py>(
        &self,
        py: Python<'py>,
        project: &str,
        requests: Vec<(String, Vec<PyBackedBytes>)>,
    ) -> PyResult<Bound<'py, PyList>> {
        let blobs = run_detached(py, || {
            let reqs: Vec<(&str, Vec<&[u8]>)> = requests
                .iter()
                .map(|(v, keys)| (v.as_str(), keys.iter().map(|k| &k[..]).collect()))
                .collect();
            self.inner.read(project, &reqs)
        })?;
        let out = PyList::empty(py);
        for arr in &blobs {
            out.append(blob_list(py, arr)?)?;
        }
        Ok(out)
    }

    /// Rows of one SQL statement as tuples (int, float, str, bytes or None): for inspection
    /// and tests through the store's own SQLite.
    #[pyo3(signature = (sql, params=Vec::new()))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        sql: &str,
        params: Vec<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let params = params
            .iter()
            .map(to_sql_value)
            .collect::<PyResult<Vec<_>>>()?;
        let rows = run_detached(py, || self.inner.query(sql, &params))?;
        let out = PyList::empty(py);
        for row in rows {
            let items = row
                .into_iter()
                .map(|v| from_sql_value(py, v))
                .collect::<PyResult<Vec<_>>>()?;
            out.append(PyTuple::new(py, items)?)?;
        }
        Ok(out)
    }
}

/// A list of `bytes` (None for nulls) over a binary array.
pub(crate) fn blob_list<'py>(py: Python<'py>, arr: &BinaryArray) -> PyResult<Bound<'py, PyList>> {
    let items = (0..arr.len()).map(|i| {
        if arr.is_null(i) {
            py.None().into_bound(py)
        } else {
            PyBytes::new(py, arr.value(i)).into_any()
        }
    });
    PyList::new(py, items)
}

/// The bytes of each row (None for nulls) of a binary, large_binary or binary_view array.
fn to_sql_value(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    Ok(if v.is_none() {
        Value::Null
    } else if let Ok(b) = v.cast::<PyBytes>() {
        Value::Blob(b.as_bytes().to_vec())
    } else if let Ok(s) = v.cast::<PyString>() {
        Value::Text(s.to_str()?.to_string())
    } else if v.is_instance_of::<PyInt>() {
        Value::Integer(v.extract()?)
    } else if v.is_instance_of::<PyFloat>() {
        Value::Real(v.extract()?)
    } else {
        return Err(PyTypeError::new_err(format!(
            "query: cannot bind a {} parameter",
            v.get_type().name()?
        )));
    })
}

fn from_sql_value(py: Python<'_>, v: Value) -> PyResult<Bound<'_, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Integer(i) => i.into_pyobject(py)?.into_any(),
        Value::Real(f) => f.into_pyobject(py)?.into_any(),
        Value::Text(s) => PyString::new(py, &s).into_any(),
        Value::Blob(b) => PyBytes::new(py, &b).into_any(),
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SqliteStore>()
}
