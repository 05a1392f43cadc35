//! Rows to write, as the online stores' bulk writes take them from Python: Arrow arrays of
//! binary keys and values and int64 or timestamp[us] event and created times. One place
//! checks them (equal lengths, types, no null key or event time) for every store.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, TimeUnit};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3_arrow::PyArray;

/// The arrays of a write, checked.
pub(crate) struct ArrowRows {
    keys: ArrayRef,
    event_ts: ArrayRef,
    created_ts: Option<ArrayRef>,
    values: ArrayRef,
}

/// Borrowed views of [`ArrowRows`]' buffers, for the rows' loop (the GIL may be released).
pub(crate) struct RowSlices<'a> {
    pub keys: Vec<&'a [u8]>,
    /// None where a value is null: only SQLite's write takes those (its NOT NULL refuses them).
    pub values: Vec<Option<&'a [u8]>>,
    event: &'a [i64],
    created: Option<(&'a [i64], &'a ArrayRef)>,
}

impl RowSlices<'_> {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn event(&self, i: usize) -> i64 {
        self.event[i]
    }

    /// The created time of row `i`; 0 when missing or null.
    pub fn created(&self, i: usize) -> i64 {
        match self.created {
            Some((c, arr)) if arr.is_valid(i) => c[i],
            _ => 0,
        }
    }
}

impl ArrowRows {
    /// `what`: the calling function, for the error messages.
    pub fn new(
        what: &str,
        keys: PyArray,
        event_ts: PyArray,
        created_ts: Option<PyArray>,
        values: PyArray,
    ) -> PyResult<Self> {
        let rows = ArrowRows {
            keys: keys.into_inner().0,
            event_ts: event_ts.into_inner().0,
            created_ts: created_ts.map(|c| c.into_inner().0),
            values: values.into_inner().0,
        };
        let n = rows.keys.len();
        let lens = [
            rows.values.len(),
            rows.event_ts.len(),
            rows.created_ts.as_ref().map_or(n, |c| c.len()),
        ];
        if lens.iter().any(|&l| l != n) {
            return Err(PyTypeError::new_err(format!(
                "{what}: {n} keys but {} values, {} event times, {} created times",
                lens[0], lens[1], lens[2]
            )));
        }
        if rows.keys.null_count() > 0 {
            return Err(PyTypeError::new_err(format!("{what}: keys hold nulls")));
        }
        if rows.event_ts.null_count() > 0 {
            return Err(PyTypeError::new_err(format!(
                "{what}: event_ts holds nulls"
            )));
        }
        Ok(rows)
    }

    /// Refuses null values (stores without a NOT NULL column of their own to do it).
    pub fn require_values(self, what: &str) -> PyResult<Self> {
        if self.values.null_count() > 0 {
            return Err(PyTypeError::new_err(format!("{what}: values hold nulls")));
        }
        Ok(self)
    }

    pub fn slices(&self, what: &str) -> PyResult<RowSlices<'_>> {
        Ok(RowSlices {
            keys: byte_slices(&self.keys, what, "keys")?
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect(),
            values: byte_slices(&self.values, what, "values")?,
            event: micros(&self.event_ts, what, "event_ts")?,
            created: match &self.created_ts {
                Some(c) => Some((micros(c, what, "created_ts")?, c)),
                None => None,
            },
        })
    }
}

fn byte_slices<'a>(array: &'a ArrayRef, what: &str, name: &str) -> PyResult<Vec<Option<&'a [u8]>>> {
    Ok(match array.data_type() {
        DataType::Binary => array.as_binary::<i32>().iter().collect(),
        DataType::LargeBinary => array.as_binary::<i64>().iter().collect(),
        DataType::BinaryView => array.as_binary_view().iter().collect(),
        other => {
            return Err(PyTypeError::new_err(format!(
                "{what}: {name} must be binary, got {other}"
            )))
        }
    })
}

/// The values of an int64 or timestamp[us] array (nulls read as 0 here; callers check).
fn micros<'a>(array: &'a ArrayRef, what: &str, name: &str) -> PyResult<&'a [i64]> {
    Ok(match array.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().values(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            array.as_primitive::<TimestampMicrosecondType>().values()
        }
        other => {
            return Err(PyTypeError::new_err(format!(
                "{what}: {name} must be int64 or timestamp[us], got {other}"
            )))
        }
    })
}
