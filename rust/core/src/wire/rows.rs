//! The rows of an online write as the bulk encoders take them: binary keys and values,
//! int64 or timestamp[us] event and created times. One check (equal lengths, types, no null
//! key or event time) for every store.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::Array;
use arrow_schema::{DataType, TimeUnit};

use crate::error::{Error, Result};

/// Borrowed views of a write's arrays, checked; the rows' loops index them directly.
pub struct Rows<'a> {
    pub keys: Vec<&'a [u8]>,
    /// None where a value is null: only SQLite's write takes those (its NOT NULL refuses
    /// them); the other encoders call [`Rows::require_values`] first.
    pub values: Vec<Option<&'a [u8]>>,
    event: &'a [i64],
    created: Option<(&'a [i64], &'a dyn Array)>,
}

impl<'a> Rows<'a> {
    /// `what`: the calling function, for the error messages. A wrong type is
    /// `Error::UnsupportedType`; unequal lengths or a null key or event time `Error::Invalid`.
    pub fn new(
        what: &str,
        keys: &'a dyn Array,
        event_ts: &'a dyn Array,
        created_ts: Option<&'a dyn Array>,
        values: &'a dyn Array,
    ) -> Result<Self> {
        let n = keys.len();
        let lens = [
            values.len(),
            event_ts.len(),
            created_ts.map_or(n, |c| c.len()),
        ];
        if lens.iter().any(|&l| l != n) {
            return Err(Error::Invalid(format!(
                "{what}: {n} keys but {} values, {} event times, {} created times",
                lens[0], lens[1], lens[2]
            )));
        }
        if event_ts.null_count() > 0 {
            return Err(Error::Invalid(format!("{what}: event_ts holds nulls")));
        }
        Ok(Rows {
            keys: binary_values(what, "keys", keys)?,
            values: byte_slices(values, what, "values")?,
            event: micros(event_ts, what, "event_ts")?,
            created: match created_ts {
                Some(c) => Some((micros(c, what, "created_ts")?, c)),
                None => None,
            },
        })
    }

    /// Refuses null values (stores without a NOT NULL column of their own to do it).
    pub fn require_values(self, what: &str) -> Result<Self> {
        if self.values.iter().any(Option::is_none) {
            return Err(Error::Invalid(format!("{what}: values hold nulls")));
        }
        Ok(self)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
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

    /// The value of row `i`, empty when null (after `require_values` none is).
    pub fn value(&self, i: usize) -> &'a [u8] {
        self.values[i].unwrap_or_default()
    }
}

/// The bytes of each row of a binary, large_binary or binary_view array without nulls.
pub fn binary_values<'a>(what: &str, name: &str, array: &'a dyn Array) -> Result<Vec<&'a [u8]>> {
    if array.null_count() > 0 {
        return Err(Error::Invalid(format!("{what}: {name} hold nulls")));
    }
    Ok(byte_slices(array, what, name)?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect())
}

fn byte_slices<'a>(array: &'a dyn Array, what: &str, name: &str) -> Result<Vec<Option<&'a [u8]>>> {
    Ok(match array.data_type() {
        DataType::Binary => array.as_binary::<i32>().iter().collect(),
        DataType::LargeBinary => array.as_binary::<i64>().iter().collect(),
        DataType::BinaryView => array.as_binary_view().iter().collect(),
        other => return Err(unsupported(what, name, other, "binary")),
    })
}

/// The values of an int64 or timestamp[us] array (nulls read as 0 here; callers check).
fn micros<'a>(array: &'a dyn Array, what: &str, name: &str) -> Result<&'a [i64]> {
    Ok(match array.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().values(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            array.as_primitive::<TimestampMicrosecondType>().values()
        }
        other => return Err(unsupported(what, name, other, "int64 or timestamp[us]")),
    })
}

fn unsupported(what: &str, name: &str, found: &DataType, expected: &str) -> Error {
    Error::UnsupportedType {
        column: format!("{what}: {name}"),
        found: found.clone(),
        expected: expected.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        BinaryArray, Int32Array, Int64Array, LargeBinaryArray, TimestampMicrosecondArray,
    };

    #[test]
    fn reads_every_accepted_type() {
        let keys = LargeBinaryArray::from(vec![&b"a"[..], b"b"]);
        let ev = TimestampMicrosecondArray::from(vec![1, 2]).with_timezone("UTC");
        let cr = Int64Array::from(vec![Some(7), None]);
        let vals = BinaryArray::from(vec![Some(&b"x"[..]), None]);
        let rows = Rows::new("t", &keys, &ev, Some(&cr), &vals).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.keys, vec![&b"a"[..], b"b"]);
        assert_eq!((rows.event(1), rows.created(0), rows.created(1)), (2, 7, 0));
        assert_eq!(rows.values, vec![Some(&b"x"[..]), None]);
        let err = rows.require_values("t").err().unwrap().to_string();
        assert!(err.contains("values hold nulls"), "{err}");
        let none = Rows::new("t", &keys, &ev, None, &keys).unwrap();
        assert_eq!(none.created(0), 0);
    }

    #[test]
    fn refuses_bad_rows() {
        let keys = BinaryArray::from(vec![Some(&b"a"[..]), None]);
        let ok_keys = BinaryArray::from(vec![&b"a"[..], b"b"]);
        let ev = Int64Array::from(vec![1, 2]);
        let msg = |r: Result<Rows<'_>>| r.err().unwrap().to_string();
        assert!(msg(Rows::new("w", &keys, &ev, None, &ok_keys)).contains("w: keys hold nulls"));
        let null_ev = Int64Array::from(vec![Some(1), None]);
        assert!(msg(Rows::new("w", &ok_keys, &null_ev, None, &ok_keys)).contains("event_ts"));
        let short = Int64Array::from(vec![1]);
        assert!(msg(Rows::new("w", &ok_keys, &short, None, &ok_keys)).contains("2 keys but"));
        let ints = Int32Array::from(vec![1, 2]);
        let err = Rows::new("w", &ok_keys, &ints, None, &ok_keys)
            .err()
            .unwrap();
        assert!(matches!(err, Error::UnsupportedType { .. }), "{err}");
        assert!(err.to_string().contains("w: event_ts"), "{err}");
        let err = Rows::new("w", &ev, &ev, None, &ok_keys).err().unwrap();
        assert!(err.to_string().contains("expected binary"), "{err}");
    }
}
