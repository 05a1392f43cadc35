//! The Parquet scan (core's `scan`) for Python: `ParquetDataset` (opened once: listing and
//! footers), its `scan` as a `pyarrow.RecordBatchReader` over the Arrow C stream, and the
//! one-call forms `scan_parquet` / `parquet_schema`. Opening and every wave of row groups run
//! with the GIL released inside banquet's rayon pool.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use banquet_core::scan::{Dataset, Scan, ScanRequest};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3_arrow::{PyArray, PyRecordBatch, PyRecordBatchReader, PySchema};

use crate::gil::run_pooled;
use crate::threads;

/// A `FileSource`'s dataset: its files and footers, read once.
#[pyclass(frozen, module = "banquet._core")]
pub struct ParquetDataset {
    inner: Arc<Dataset>,
}

/// Pulls the scan's batches, each wave inside this process's rayon pool.
struct Pooled {
    scan: Scan,
    schema: SchemaRef,
}

impl Iterator for Pooled {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let scan = &mut self.scan;
        match threads::install(|| scan.next()) {
            Ok(Some(Ok(b))) => Some(Ok(b)),
            Ok(Some(Err(e))) => Some(Err(ArrowError::ExternalError(Box::new(e)))),
            Ok(None) => None,
            Err(_) => Some(Err(ArrowError::ComputeError(
                "could not start banquet's worker threads".to_string(),
            ))),
        }
    }
}

impl RecordBatchReader for Pooled {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

fn open(
    py: Python<'_>,
    path: String,
    options: Option<HashMap<String, String>>,
) -> PyResult<Arc<Dataset>> {
    run_pooled(py, move || {
        Dataset::open(&path, options.as_ref()).map(Arc::new)
    })
}

#[allow(clippy::too_many_arguments)]
fn start<'py>(
    py: Python<'py>,
    ds: &Arc<Dataset>,
    columns: Vec<String>,
    ts_column: Option<String>,
    lo_us: Option<i64>,
    hi_us: Option<i64>,
    key_columns: Vec<String>,
    entity_keys: Option<Vec<PyArray>>,
    batch_rows: usize,
    locate: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let entity_keys: Option<Vec<ArrayRef>> =
        entity_keys.map(|v| v.into_iter().map(|a| a.into_inner().0).collect());
    let req = ScanRequest {
        columns,
        ts_column,
        lo_us,
        hi_us,
        key_columns,
        entity_keys,
        batch_rows,
        locate,
    };
    let ds = Arc::clone(ds);
    let scan = run_pooled(py, move || ds.scan(req))?;
    let schema = scan.schema();
    let reader: Box<dyn RecordBatchReader + Send> = Box::new(Pooled { scan, schema });
    PyRecordBatchReader::new(reader).into_pyarrow(py)
}

#[pymethods]
impl ParquetDataset {
    /// Lists `path` (a Parquet file, a directory, a hive-partitioned directory, or
    /// `s3://bucket/key`) and reads every file's footer.
    #[new]
    #[pyo3(signature = (path, storage_options=None))]
    fn new(
        py: Python<'_>,
        path: String,
        storage_options: Option<HashMap<String, String>>,
    ) -> PyResult<Self> {
        Ok(ParquetDataset {
            inner: open(py, path, storage_options)?,
        })
    }

    /// The dataset's schema: the first file's columns, then the partition columns.
    #[getter]
    fn schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        PySchema::new(Arc::clone(&self.inner.schema)).into_pyarrow(py)
    }

    /// The files, in the order they are read.
    #[getter]
    fn files(&self) -> Vec<String> {
        self.inner.files.iter().map(|f| f.display.clone()).collect()
    }

    /// A `pyarrow.RecordBatchReader` over the rows of `columns` with `lo_us <= ts <= hi_us`
    /// (None: unbounded) and, when `entity_keys` is given, whose `key_columns` tuple occurs
    /// among the entity keys' tuples; in file order. With `locate`, each batch ends with a
    /// `__banquet_row` column (UInt64): the row's locator for `take`.
    #[pyo3(signature = (columns, ts_column=None, lo_us=None, hi_us=None, key_columns=Vec::new(), entity_keys=None, batch_rows=65536, locate=false))]
    #[allow(clippy::too_many_arguments)]
    fn scan<'py>(
        &self,
        py: Python<'py>,
        columns: Vec<String>,
        ts_column: Option<String>,
        lo_us: Option<i64>,
        hi_us: Option<i64>,
        key_columns: Vec<String>,
        entity_keys: Option<Vec<PyArray>>,
        batch_rows: usize,
        locate: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        start(
            py,
            &self.inner,
            columns,
            ts_column,
            lo_us,
            hi_us,
            key_columns,
            entity_keys,
            batch_rows,
            locate,
        )
    }

    /// The rows of `columns` at `locators` (a `locate` scan's `__banquet_row` values, UInt64,
    /// nulls allowed) as one `pyarrow.RecordBatch`, one row per locator in its order (a null
    /// locator: nulls). Each row group is read with a selection of its asked rows only.
    fn take<'py>(
        &self,
        py: Python<'py>,
        columns: Vec<String>,
        locators: PyArray,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (arr, _) = locators.into_inner();
        let Some(locs) = arr.as_primitive_opt::<arrow_array::types::UInt64Type>() else {
            return Err(PyTypeError::new_err(format!(
                "locators must be uint64, got {}",
                arr.data_type()
            )));
        };
        let locs = locs.clone();
        let ds = Arc::clone(&self.inner);
        let batch = run_pooled(py, move || ds.take(&columns, &locs))?;
        PyRecordBatch::new(batch).into_pyarrow(py)
    }

    /// Rows in the dataset (every row group of every file, per the footers).
    #[getter]
    fn num_rows(&self) -> u64 {
        self.inner
            .files
            .iter()
            .map(|f| f.meta.metadata().file_metadata().num_rows().max(0) as u64)
            .sum()
    }
}

/// `ParquetDataset(path_or_url, storage_options).scan(...)` in one call.
#[pyfunction]
#[pyo3(signature = (path_or_url, columns, ts_column=None, lo_us=None, hi_us=None, key_columns=Vec::new(), entity_keys=None, storage_options=None, batch_rows=65536))]
#[allow(clippy::too_many_arguments)]
fn scan_parquet<'py>(
    py: Python<'py>,
    path_or_url: String,
    columns: Vec<String>,
    ts_column: Option<String>,
    lo_us: Option<i64>,
    hi_us: Option<i64>,
    key_columns: Vec<String>,
    entity_keys: Option<Vec<PyArray>>,
    storage_options: Option<HashMap<String, String>>,
    batch_rows: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let ds = open(py, path_or_url, storage_options)?;
    start(
        py,
        &ds,
        columns,
        ts_column,
        lo_us,
        hi_us,
        key_columns,
        entity_keys,
        batch_rows,
        false,
    )
}

/// The schema of the dataset at `path_or_url` (first file + partition columns).
#[pyfunction]
#[pyo3(signature = (path_or_url, storage_options=None))]
fn parquet_schema<'py>(
    py: Python<'py>,
    path_or_url: String,
    storage_options: Option<HashMap<String, String>>,
) -> PyResult<Bound<'py, PyAny>> {
    let ds = open(py, path_or_url, storage_options)?;
    PySchema::new(Arc::clone(&ds.schema)).into_pyarrow(py)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ParquetDataset>()?;
    m.add_function(wrap_pyfunction!(scan_parquet, m)?)?;
    m.add_function(wrap_pyfunction!(parquet_schema, m)?)
}
