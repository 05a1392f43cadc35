//! The one tie-break rule shared by `latest_per_key` and the as-of join, and the one reader
//! of an event/created timestamp column ([`TsColumn`]).
//!
//! Among candidate rows for the same key, the winner is the row with
//! 1. the largest event timestamp, then
//! 2. the largest created timestamp, a null created timestamp being smaller than any value,
//!    then
//! 3. the largest row index.
//!
//! [`Rank`] orders rows exactly that way (its derived `Ord` compares the fields in
//! declaration order, and `None < Some(_)` for `Option`), so "the winner" is simply the
//! maximum `Rank`.

use std::cmp::Ordering;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::Array;
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, TimeUnit};

use crate::{Error, Result};

/// The position of one row in the tie-break order; larger wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rank {
    /// Event timestamp, microseconds since the epoch (UTC).
    pub ts: i64,
    /// Created timestamp; `None` (null) ranks below every value.
    pub created: Option<i64>,
    /// Row index in the input.
    pub row: usize,
}

impl Rank {
    /// Builds the rank of row `row` from a timestamp value and an optional created column.
    #[inline]
    pub fn of(ts: i64, created: Option<&TsColumn<'_>>, row: usize) -> Rank {
        Rank {
            ts,
            created: created.and_then(|c| c.get(row)),
            row,
        }
    }
}

/// Compares two rows by the tie-break rule: `Greater` means `a` wins over `b`.
#[inline]
pub fn cmp_rows(
    a_ts: i64,
    a_created: Option<i64>,
    a_row: usize,
    b_ts: i64,
    b_created: Option<i64>,
    b_row: usize,
) -> Ordering {
    a_ts.cmp(&b_ts)
        .then(a_created.cmp(&b_created))
        .then(a_row.cmp(&b_row))
}

/// The tie-break rule over row indices, with the created column (if any) at hand. Both
/// kernels decide "does this row beat that one" through it.
#[derive(Debug, Clone, Copy)]
pub struct TieBreak<'a> {
    created: Option<TsColumn<'a>>,
}

impl<'a> TieBreak<'a> {
    /// The rule for rows with these created timestamps (`None`: no created column).
    #[inline]
    pub fn new(created: Option<TsColumn<'a>>) -> Self {
        TieBreak { created }
    }

    /// Does row `a` beat row `b` when their event timestamps are equal? The larger created
    /// timestamp (null smallest), then the larger row index.
    #[inline(always)]
    pub fn beats_at_equal_ts(&self, a: usize, b: usize) -> bool {
        match &self.created {
            None => a > b,
            Some(c) => (c.get(a), a) > (c.get(b), b),
        }
    }

    /// Does row `a` (event ts `a_ts`) beat row `b` (event ts `b_ts`)? The whole rule.
    #[inline(always)]
    pub fn beats(&self, a_ts: i64, a: usize, b_ts: i64, b: usize) -> bool {
        a_ts > b_ts || (a_ts == b_ts && self.beats_at_equal_ts(a, b))
    }
}

/// A borrowed view of an i64-microsecond timestamp column (Timestamp(µs, any tz) or Int64).
#[derive(Debug, Clone, Copy)]
pub struct TsColumn<'a> {
    /// The raw values (garbage where null).
    pub values: &'a [i64],
    /// Validity, if the column has nulls.
    pub nulls: Option<&'a NullBuffer>,
}

impl<'a> TsColumn<'a> {
    /// Reads `array` as microsecond timestamps; `what` names the argument in errors.
    pub fn new(array: &'a dyn Array, what: &str) -> Result<Self> {
        let (values, nulls) = match array.data_type() {
            DataType::Int64 => {
                let a = array.as_primitive::<Int64Type>();
                (a.values().as_ref(), a.nulls())
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                let a = array.as_primitive::<TimestampMicrosecondType>();
                (a.values().as_ref(), a.nulls())
            }
            other => {
                return Err(Error::UnsupportedType {
                    column: what.to_string(),
                    found: other.clone(),
                    expected: "timestamp[us] or int64 (microseconds since the epoch, UTC)"
                        .to_string(),
                })
            }
        };
        Ok(TsColumn {
            values,
            nulls: nulls.filter(|n| n.null_count() > 0),
        })
    }

    /// Number of rows.
    #[inline]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when the column has no rows.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// True when row `i` is null.
    #[inline]
    pub fn is_null(&self, i: usize) -> bool {
        self.nulls.is_some_and(|n| n.is_null(i))
    }

    /// The value of row `i`, `None` when null.
    #[inline]
    pub fn get(&self, i: usize) -> Option<i64> {
        if self.is_null(i) {
            None
        } else {
            Some(self.values[i])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_order_is_the_tie_break_rule() {
        let r = |ts, created, row| Rank { ts, created, row };
        // event ts first
        assert!(r(2, None, 0) > r(1, Some(100), 9));
        // then created, null smallest
        assert!(r(1, Some(i64::MIN), 0) > r(1, None, 9));
        assert!(r(1, Some(5), 0) > r(1, Some(4), 9));
        // then the larger row index
        assert!(r(1, Some(5), 9) > r(1, Some(5), 0));
        assert!(r(1, None, 9) > r(1, None, 0));
        assert_eq!(
            cmp_rows(1, None, 3, 1, None, 2),
            r(1, None, 3).cmp(&r(1, None, 2))
        );
    }

    #[test]
    fn tie_break_agrees_with_rank() {
        use arrow_array::TimestampMicrosecondArray;
        let created = TimestampMicrosecondArray::from(vec![Some(5), None, Some(5), Some(4)]);
        let col = TsColumn::new(&created, "created").unwrap();
        let ts = [1i64, 1, 1, 2];
        for tie in [TieBreak::new(None), TieBreak::new(Some(col))] {
            let c = |i: usize| tie.created.and_then(|c| c.get(i));
            for a in 0..4 {
                for b in 0..4 {
                    let want = Rank {
                        ts: ts[a],
                        created: c(a),
                        row: a,
                    } > Rank {
                        ts: ts[b],
                        created: c(b),
                        row: b,
                    };
                    assert_eq!(tie.beats(ts[a], a, ts[b], b), want, "{a} vs {b}");
                }
            }
        }
    }
}
