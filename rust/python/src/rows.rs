//! Rows to write, as the online stores' bulk writes take them from Python: the Arrow arrays
//! are checked and read by `banquet_core::wire::Rows`; a bad row set is a KernelTypeError
//! (a `TypeError` and a `BanquetError`) naming the calling function.

use arrow_array::ArrayRef;
use banquet_core::wire::Rows;
use pyo3::prelude::*;
use pyo3_arrow::PyArray;

use crate::errors::{to_py, KernelTypeError};

/// The arrays of a write, taken over from Python (no copy).
pub(crate) struct ArrowRows {
    keys: ArrayRef,
    event_ts: ArrayRef,
    created_ts: Option<ArrayRef>,
    values: ArrayRef,
    require_values: bool,
}

/// Borrowed views of [`ArrowRows`]' buffers, for the rows' loop (the GIL may be released).
pub(crate) type RowSlices<'a> = Rows<'a>;

impl ArrowRows {
    /// `what`: the calling function, for the error messages.
    pub fn new(
        what: &str,
        keys: PyArray,
        event_ts: PyArray,
        created_ts: Option<PyArray>,
        values: PyArray,
    ) -> PyResult<Self> {
        let _ = what; // checked in `slices`, where the rows are read once
        Ok(ArrowRows {
            keys: keys.into_inner().0,
            event_ts: event_ts.into_inner().0,
            created_ts: created_ts.map(|c| c.into_inner().0),
            values: values.into_inner().0,
            require_values: false,
        })
    }

    /// Refuses null values (stores without a NOT NULL column of their own to do it).
    pub fn require_values(mut self, what: &str) -> PyResult<Self> {
        let _ = what;
        self.require_values = true;
        Ok(self)
    }

    /// The rows, checked: equal lengths, binary keys and values, int64 or timestamp[us]
    /// times, no null key or event time (nor value after `require_values`).
    pub fn slices(&self, what: &str) -> PyResult<RowSlices<'_>> {
        let rows = Rows::new(
            what,
            &self.keys,
            &self.event_ts,
            self.created_ts.as_deref(),
            &self.values,
        );
        let rows = if self.require_values {
            rows.and_then(|r| r.require_values(what))
        } else {
            rows
        };
        rows.map_err(rows_error)
    }
}

/// Bad rows are a TypeError (what the stub promised, and what the stores catch); anything
/// else (out of memory) maps as every kernel error does.
pub(crate) fn rows_error(err: banquet_core::Error) -> PyErr {
    use banquet_core::Error;
    match err {
        Error::Invalid(_) | Error::UnsupportedType { .. } => {
            KernelTypeError::new_err(err.to_string())
        }
        other => to_py(other),
    }
}
