//! Row-group pruning by Parquet statistics: a row group none of whose timestamps can fall in
//! the time range, or none of whose keys can be among the entity keys, is never read; one
//! whose timestamps all fall inside the range (and none is null) is read without the time
//! filter. Every decision is conservative: unknown or inexact statistics keep the row group.

use arrow_schema::{DataType, TimeUnit};
use parquet::basic::{LogicalType, TimeUnit as PqUnit, Type as Physical};
use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};
use parquet::file::statistics::Statistics;

use super::keyset::KeyRange;

/// The time range in the raw values of the dataset's timestamp column (its own unit).
#[derive(Clone, Copy, Debug)]
pub struct RawBounds {
    pub lo: Option<i64>,
    pub hi: Option<i64>,
}

impl RawBounds {
    pub fn unbounded(&self) -> bool {
        self.lo.is_none() && self.hi.is_none()
    }
}

/// What the statistics say about a row group's timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Time {
    /// No row can be in the range: skip the row group.
    Outside,
    /// Every row is in the range and none is null: no filter needed.
    Inside,
    /// Some may be: filter row by row.
    Filter,
}

/// The bounds as raw values of `t` (the dataset's timestamp column), from microseconds:
/// seconds and milliseconds are floored (so no row inside the window is lost), nanoseconds
/// multiplied; a date is the day (floored). `None` for a type that is not a time.
pub fn raw_bounds(lo_us: Option<i64>, hi_us: Option<i64>, t: &DataType) -> Option<RawBounds> {
    let conv = |us: i64| -> Option<i64> {
        Some(match t {
            DataType::Timestamp(TimeUnit::Second, _) => us.div_euclid(1_000_000),
            DataType::Timestamp(TimeUnit::Millisecond, _) => us.div_euclid(1_000),
            DataType::Timestamp(TimeUnit::Microsecond, _) => us,
            DataType::Timestamp(TimeUnit::Nanosecond, _) => us.saturating_mul(1_000),
            DataType::Date32 => us.div_euclid(86_400_000_000),
            DataType::Date64 => us.div_euclid(86_400_000_000) * 86_400_000,
            _ => return None,
        })
    };
    if !matches!(
        t,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
    ) {
        return None;
    }
    Some(RawBounds {
        lo: lo_us.and_then(conv),
        hi: hi_us.and_then(conv),
    })
}

/// Nanoseconds per raw unit of a dataset column type.
fn ds_factor(t: &DataType) -> Option<i128> {
    Some(match t {
        DataType::Timestamp(u, _) => unit_ns(*u),
        DataType::Date32 => 86_400_000_000_000,
        DataType::Date64 => 1_000_000,
        _ => return None,
    })
}

fn unit_ns(u: TimeUnit) -> i128 {
    match u {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// Nanoseconds per stored value of Parquet leaf `leaf` (an INT64 timestamp or INT32 date).
fn stored_factor(meta: &ParquetMetaData, leaf: usize) -> Option<i128> {
    let col = meta.file_metadata().schema_descr().column(leaf);
    match (col.physical_type(), col.logical_type_ref()) {
        (Physical::INT64, Some(LogicalType::Timestamp(t))) => Some(match t.unit {
            PqUnit::MILLIS => 1_000_000,
            PqUnit::MICROS => 1_000,
            PqUnit::NANOS => 1,
        }),
        (Physical::INT32, Some(LogicalType::Date)) => Some(86_400_000_000_000),
        (Physical::INT64, None) | (Physical::INT32, None) => {
            use parquet::basic::ConvertedType as C;
            match col.converted_type() {
                C::TIMESTAMP_MILLIS => Some(1_000_000),
                C::TIMESTAMP_MICROS => Some(1_000),
                C::DATE => Some(86_400_000_000_000),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The statistics' min and max of an integer leaf, if known.
fn int_min_max(rg: &RowGroupMetaData, leaf: usize) -> Option<(i64, i64)> {
    match rg.column(leaf).statistics()? {
        Statistics::Int32(s) => Some((*s.min_opt()? as i64, *s.max_opt()? as i64)),
        Statistics::Int64(s) => Some((*s.min_opt()?, *s.max_opt()?)),
        _ => None,
    }
}

/// What row group `rg`'s statistics on timestamp leaf `leaf` say about `bounds` (raw values
/// of the dataset's column type `ds_type`).
pub fn time(
    meta: &ParquetMetaData,
    rg: usize,
    leaf: usize,
    ds_type: &DataType,
    bounds: RawBounds,
) -> Time {
    if bounds.unbounded() {
        return Time::Inside;
    }
    let group = meta.row_group(rg);
    let Some(stats) = group.column(leaf).statistics() else {
        return Time::Filter;
    };
    let rows = group.num_rows() as u64;
    if stats.null_count_opt() == Some(rows) && rows > 0 {
        return Time::Outside; // every timestamp is null: the filter drops them all
    }
    let (Some(sf), Some(df), Some((min, max))) = (
        stored_factor(meta, leaf),
        ds_factor(ds_type),
        int_min_max(group, leaf),
    ) else {
        return Time::Filter;
    };
    // The stored extremes in the dataset's unit, widened to cover any rounding of the cast.
    let (min_ns, max_ns) = (min as i128 * sf, max as i128 * sf);
    let lo_ds = min_ns.div_euclid(df);
    let hi_ds = -((-max_ns).div_euclid(df));
    if bounds.lo.is_some_and(|lo| hi_ds < lo as i128)
        || bounds.hi.is_some_and(|hi| lo_ds > hi as i128)
    {
        return Time::Outside;
    }
    let inside = bounds.lo.is_none_or(|lo| lo_ds >= lo as i128)
        && bounds.hi.is_none_or(|hi| hi_ds <= hi as i128)
        && stats.null_count_opt() == Some(0);
    if inside {
        Time::Inside
    } else {
        Time::Filter
    }
}

/// False when row group `rg`'s statistics on key leaf `leaf` show none of its keys can be
/// within `range` (the entity keys' range of that column).
pub fn keys_may_match(meta: &ParquetMetaData, rg: usize, leaf: usize, range: &KeyRange) -> bool {
    let group = meta.row_group(rg);
    match range {
        KeyRange::Empty => false,
        KeyRange::Any => true,
        KeyRange::Int(lo, hi) => {
            let col = meta.file_metadata().schema_descr().column(leaf);
            let unsigned = matches!(
                col.logical_type_ref(),
                Some(LogicalType::Integer(t)) if !t.is_signed
            );
            if unsigned {
                return true;
            }
            match int_min_max(group, leaf) {
                Some((min, max)) => !(max < *lo || min > *hi),
                None => true,
            }
        }
        KeyRange::Bytes(lo, hi) => match group.column(leaf).statistics() {
            Some(Statistics::ByteArray(s)) => {
                // A truncated min is still a lower bound; a max only when exact.
                let below =
                    s.max_is_exact() && s.max_opt().is_some_and(|m| m.data() < lo.as_slice());
                let above = s.min_opt().is_some_and(|m| m.data() > hi.as_slice());
                !(below || above)
            }
            _ => true,
        },
    }
}

/// The Parquet leaf index of top-level column `name`, if it is a plain (non-nested) column.
pub fn leaf_of(meta: &ParquetMetaData, name: &str) -> Option<usize> {
    let schema = meta.file_metadata().schema_descr();
    (0..schema.num_columns()).find(|&i| {
        let col = schema.column(i);
        let parts = col.path().parts();
        parts.len() == 1 && parts[0] == name
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_round_outward_in_coarse_units() {
        let b = raw_bounds(
            Some(1_500_000),
            Some(2_500_000),
            &DataType::Timestamp(TimeUnit::Second, None),
        )
        .unwrap();
        assert_eq!((b.lo, b.hi), (Some(1), Some(2)));
        let b = raw_bounds(
            Some(-1),
            None,
            &DataType::Timestamp(TimeUnit::Millisecond, None),
        )
        .unwrap();
        assert_eq!((b.lo, b.hi), (Some(-1), None));
        let b = raw_bounds(
            Some(7),
            Some(8),
            &DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        )
        .unwrap();
        assert_eq!((b.lo, b.hi), (Some(7_000), Some(8_000)));
        let b = raw_bounds(Some(86_400_000_001), None, &DataType::Date32).unwrap();
        assert_eq!(b.lo, Some(1));
        let b = raw_bounds(Some(86_400_000_001), None, &DataType::Date64).unwrap();
        assert_eq!(b.lo, Some(86_400_000));
        assert!(raw_bounds(Some(1), None, &DataType::Utf8).is_none());
    }
}
