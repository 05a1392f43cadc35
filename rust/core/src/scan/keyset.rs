//! The semi-join key set: the distinct key tuples of the entity rows, so a scan keeps only
//! the feature rows whose key occurs among them (a null key never matches).
//!
//! Keys are read and hashed through [`crate::keys`], so equality is the kernels' one rule
//! (a timestamp key is its whole second). Integer widths may differ between the entity rows
//! and the files (both are compared as `i64`), and so may string layouts (`string`,
//! `large_string` and `string_view` holding the same bytes are equal).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef};
use arrow_buffer::{BooleanBuffer, BooleanBufferBuilder};
use arrow_cast::{cast_with_options, CastOptions};
use arrow_schema::DataType;
use hashbrown::HashTable;

use crate::keys::{hash_fixed, row_hash, KeyColumn, KeyValues};
use crate::{Error, Result};

/// What the entity rows hold in one key column, for row-group pruning by statistics.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyRange {
    /// Integer keys between these bounds (inclusive).
    Int(i64, i64),
    /// Byte-string keys between these bounds (inclusive, byte order).
    Bytes(Vec<u8>, Vec<u8>),
    /// No usable bound (timestamp keys, whose stored unit differs from the compared one).
    Any,
    /// No non-null key at all: nothing can match.
    Empty,
}

enum Table {
    /// One integer key with a small value range: a bit per value from `min`.
    Bitmap { min: i64, bits: Vec<u64> },
    /// One integer key.
    Ints(HashTable<i64>),
    /// Any keys: the tuples encoded back to back (integers as 8 bytes, byte strings as an
    /// 8-byte length and the bytes), the table holding each tuple's start.
    Rows {
        arena: Vec<u8>,
        table: HashTable<(u64, usize)>,
    },
}

/// A one-integer-column key set, probed one `i64` at a time (the scans' hot loop).
pub(crate) enum IntProbe<'a> {
    Bitmap {
        min: i64,
        span: u64,
        bits: &'a [u64],
    },
    Hash(&'a HashTable<i64>),
}

impl IntProbe<'_> {
    #[inline]
    pub(crate) fn contains(&self, v: i64) -> bool {
        match self {
            IntProbe::Bitmap { min, span, bits } => {
                let d = v.wrapping_sub(*min) as u64;
                d < *span && (bits[(d >> 6) as usize] >> (d & 63)) & 1 == 1
            }
            IntProbe::Hash(table) => table.find(hash_fixed(v as u64), |&x| x == v).is_some(),
        }
    }
}

/// The distinct key tuples of the entity rows.
pub struct KeySet {
    table: Table,
    ranges: Vec<KeyRange>,
    n_cols: usize,
}

/// A key column made readable by [`KeyColumn`]: narrow and unsigned integers widened to
/// `int64` (a value that does not fit becomes null, so it matches nothing), dictionary
/// columns decoded.
pub(crate) fn normalize(a: &ArrayRef) -> Result<ArrayRef> {
    let target = match a.data_type() {
        DataType::Int8
        | DataType::Int16
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DataType::Int64,
        DataType::Dictionary(_, v) => v.as_ref().clone(),
        _ => return Ok(Arc::clone(a)),
    };
    let opts = CastOptions {
        safe: true,
        ..Default::default()
    };
    Ok(cast_with_options(a, &target, &opts)?)
}

impl KeySet {
    /// The set of the non-null key tuples of `columns` (one array per join key, equally
    /// long).
    pub fn new(columns: &[ArrayRef]) -> Result<KeySet> {
        if columns.is_empty() {
            return Err(Error::Invalid(
                "a key set needs at least one key column".into(),
            ));
        }
        let n = columns[0].len();
        if columns.iter().any(|c| c.len() != n) {
            return Err(Error::Mismatch(
                "the entity key columns differ in length".into(),
            ));
        }
        let arrays: Vec<ArrayRef> = columns.iter().map(normalize).collect::<Result<_>>()?;
        let cols: Vec<KeyColumn<'_>> = arrays
            .iter()
            .enumerate()
            .map(|(i, a)| KeyColumn::new(a, &format!("entity key {i}")))
            .collect::<Result<_>>()?;
        let valid = |i: usize| cols.iter().all(|c| !c.is_null(i));
        let ranges = cols.iter().map(|c| range(c, n, &valid)).collect();
        let table = if let [c] = cols.as_slice() {
            if is_fixed(c) {
                int_table(c, n, &valid)
            } else {
                rows_table(&cols, n, &valid)
            }
        } else {
            rows_table(&cols, n, &valid)
        };
        Ok(KeySet {
            table,
            ranges,
            n_cols: columns.len(),
        })
    }

    /// The set as a probe of single `i64` keys, when it is one integer key column.
    pub(crate) fn int_probe(&self) -> Option<IntProbe<'_>> {
        match &self.table {
            Table::Bitmap { min, bits } if self.n_cols == 1 => Some(IntProbe::Bitmap {
                min: *min,
                span: bits.len() as u64 * 64,
                bits,
            }),
            Table::Ints(table) if self.n_cols == 1 => Some(IntProbe::Hash(table)),
            _ => None,
        }
    }

    /// Per key column, the range of the entity keys (for pruning by statistics).
    pub fn ranges(&self) -> &[KeyRange] {
        &self.ranges
    }

    /// True for each row of `columns` (the feature rows' key columns, in the entity key
    /// order) whose key tuple is in the set and has no null.
    pub fn contains(&self, columns: &[ArrayRef]) -> Result<BooleanBuffer> {
        if columns.len() != self.n_cols {
            return Err(Error::Mismatch(format!(
                "{} key columns given, the key set has {}",
                columns.len(),
                self.n_cols
            )));
        }
        let n = columns.first().map_or(0, |c| c.len());
        let arrays: Vec<ArrayRef> = columns.iter().map(normalize).collect::<Result<_>>()?;
        let cols: Vec<KeyColumn<'_>> = arrays
            .iter()
            .enumerate()
            .map(|(i, a)| KeyColumn::new(a, &format!("key column {i}")))
            .collect::<Result<_>>()?;
        // The common case, one int64 key (narrower ones were widened above): a word of the
        // mask at a time straight off the values, nulls masked after.
        if let (Some(a), Some(probe)) =
            (arrays[0].as_primitive_opt::<Int64Type>(), self.int_probe())
        {
            let vals = a.values();
            let hits = BooleanBuffer::collect_bool(n, |i| probe.contains(vals[i]));
            return Ok(match a.nulls() {
                Some(nulls) => &hits & nulls.inner(),
                None => hits,
            });
        }
        let mut out = BooleanBufferBuilder::new(n);
        if let Some(probe) = self.int_probe() {
            // other fixed-width keys (timestamps as their second); byte strings never match
            let c = &cols[0];
            if !is_fixed(c) {
                out.append_n(n, false);
                return Ok(out.finish());
            }
            for i in 0..n {
                let hit = probe.contains(c.values.fixed(i).unwrap_or(0));
                out.append(hit && !c.is_null(i));
            }
            return Ok(out.finish());
        }
        match &self.table {
            Table::Bitmap { .. } | Table::Ints(_) => unreachable!("one integer column: probed"),
            Table::Rows { arena, table } => {
                let mut buf = Vec::new();
                for i in 0..n {
                    if cols.iter().any(|c| c.is_null(i)) {
                        out.append(false);
                        continue;
                    }
                    buf.clear();
                    encode(&cols, i, &mut buf);
                    let h = row_hash(&cols, i);
                    let hit = table
                        .find(h, |&(_, at)| arena[at..].starts_with(&buf))
                        .is_some();
                    out.append(hit);
                }
            }
        }
        Ok(out.finish())
    }
}

fn is_fixed(c: &KeyColumn<'_>) -> bool {
    !matches!(c.values, KeyValues::String(_) | KeyValues::Bytes(_))
}

fn range(c: &KeyColumn<'_>, n: usize, valid: &dyn Fn(usize) -> bool) -> KeyRange {
    let mut rows = (0..n).filter(|&i| valid(i)).peekable();
    if rows.peek().is_none() {
        return KeyRange::Empty;
    }
    match c.values {
        KeyValues::Int32(_) | KeyValues::Int64(_) => {
            let (mut lo, mut hi) = (i64::MAX, i64::MIN);
            for i in rows {
                let v = c.values.fixed(i).expect("integer key");
                lo = lo.min(v);
                hi = hi.max(v);
            }
            KeyRange::Int(lo, hi)
        }
        KeyValues::String(b) | KeyValues::Bytes(b) => {
            let first = rows.next().expect("peeked");
            let (mut lo, mut hi) = (b.get(first), b.get(first));
            for i in rows {
                let v = b.get(i);
                if v < lo {
                    lo = v;
                }
                if v > hi {
                    hi = v;
                }
            }
            KeyRange::Bytes(lo.to_vec(), hi.to_vec())
        }
        KeyValues::Timestamp(..) => KeyRange::Any,
    }
}

/// The span a bitmap may always cover: 2^23 bits, 1 MiB.
const BITMAP_BITS: u128 = 1 << 23;

fn int_table(c: &KeyColumn<'_>, n: usize, valid: &dyn Fn(usize) -> bool) -> Table {
    let vals: Vec<i64> = (0..n)
        .filter(|&i| valid(i))
        .map(|i| c.values.fixed(i).expect("integer key"))
        .collect();
    let (lo, hi) = vals
        .iter()
        .fold((i64::MAX, i64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    let span = (hi as i128 - lo as i128 + 1).max(0) as u128;
    // A bitmap when it stays cache-sized (up to 1 MiB) or at most 64 bits per key: one load
    // per lookup, several times cheaper than a hash probe on the scan's hot path.
    if !vals.is_empty() && span <= ((vals.len() as u128) * 64).max(BITMAP_BITS) {
        let mut bits = vec![0u64; (span as usize).div_ceil(64)];
        for v in &vals {
            let d = (v - lo) as usize;
            bits[d >> 6] |= 1 << (d & 63);
        }
        return Table::Bitmap { min: lo, bits };
    }
    let mut table = HashTable::with_capacity(vals.len());
    for v in vals {
        let h = hash_fixed(v as u64);
        if table.find(h, |&x| x == v).is_none() {
            table.insert_unique(h, v, |&x| hash_fixed(x as u64));
        }
    }
    Table::Ints(table)
}

fn rows_table(cols: &[KeyColumn<'_>], n: usize, valid: &dyn Fn(usize) -> bool) -> Table {
    let mut arena = Vec::new();
    let mut table: HashTable<(u64, usize)> = HashTable::new();
    let mut buf = Vec::new();
    for i in (0..n).filter(|&i| valid(i)) {
        buf.clear();
        encode(cols, i, &mut buf);
        let h = row_hash(cols, i);
        let seen = table.find(h, |&(_, at)| arena[at..].starts_with(&buf));
        if seen.is_none() {
            let at = arena.len();
            arena.extend_from_slice(&buf);
            table.insert_unique(h, (h, at), |&(h, _)| h);
        }
    }
    Table::Rows { arena, table }
}

/// Row `i`'s key tuple: integers (and timestamp seconds) as 8 bytes, byte strings as an
/// 8-byte length and the bytes. Self-delimiting, so a prefix match of the arena is a match
/// of the whole tuple.
fn encode(cols: &[KeyColumn<'_>], i: usize, out: &mut Vec<u8>) {
    for c in cols {
        match c.values {
            KeyValues::String(b) | KeyValues::Bytes(b) => {
                let v = b.get(i);
                out.push(1);
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                out.extend_from_slice(v);
            }
            fixed => {
                out.push(0);
                out.extend_from_slice(&fixed.fixed(i).expect("fixed key").to_le_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int32Array, Int64Array, LargeStringArray, StringArray, StringViewArray};

    fn bools(b: BooleanBuffer) -> Vec<bool> {
        b.iter().collect()
    }

    #[test]
    fn integer_widths_compare_as_i64() {
        let set = KeySet::new(&[Arc::new(Int64Array::from(vec![Some(3), None, Some(7)]))]).unwrap();
        assert_eq!(set.ranges(), &[KeyRange::Int(3, 7)]);
        let probe: ArrayRef = Arc::new(Int32Array::from(vec![Some(3), Some(4), None, Some(7)]));
        assert_eq!(
            bools(set.contains(&[probe]).unwrap()),
            [true, false, false, true]
        );
        let wide: ArrayRef = Arc::new(arrow_array::UInt64Array::from(vec![7, u64::MAX]));
        assert_eq!(bools(set.contains(&[wide]).unwrap()), [true, false]);
    }

    #[test]
    fn sparse_integers_use_the_hash_table() {
        let set = KeySet::new(&[Arc::new(Int64Array::from(vec![1, 1 << 40, -5]))]).unwrap();
        assert!(matches!(set.table, Table::Ints(_)));
        let probe: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 1 << 40, -5, -6]));
        assert_eq!(
            bools(set.contains(&[probe]).unwrap()),
            [true, false, true, true, false]
        );
    }

    #[test]
    fn few_keys_over_a_cache_sized_span_use_the_bitmap() {
        let top = (1i64 << 23) - 1;
        let set = KeySet::new(&[Arc::new(Int64Array::from(vec![0, 1000, top]))]).unwrap();
        assert!(matches!(set.table, Table::Bitmap { .. }));
        let probe: ArrayRef = Arc::new(Int64Array::from(vec![-1, 0, 999, 1000, top, top + 1]));
        assert_eq!(
            bools(set.contains(&[probe]).unwrap()),
            [false, true, false, true, true, false]
        );
        let wider = KeySet::new(&[Arc::new(Int64Array::from(vec![0, top + 1]))]).unwrap();
        assert!(matches!(wider.table, Table::Ints(_)));
    }

    #[test]
    fn string_layouts_are_equal_and_multi_column_keys() {
        let set = KeySet::new(&[
            Arc::new(StringArray::from(vec!["a", "bb", "a"])),
            Arc::new(Int64Array::from(vec![1, 2, 2])),
        ])
        .unwrap();
        assert_eq!(
            set.ranges(),
            &[
                KeyRange::Bytes(b"a".to_vec(), b"bb".to_vec()),
                KeyRange::Int(1, 2)
            ]
        );
        let s: ArrayRef = Arc::new(LargeStringArray::from(vec![
            Some("a"),
            Some("a"),
            Some("bb"),
            None,
            Some("b"),
        ]));
        let k: ArrayRef = Arc::new(Int32Array::from(vec![1, 3, 2, 1, 2]));
        assert_eq!(
            bools(set.contains(&[s, k]).unwrap()),
            [true, false, true, false, false]
        );
        let v: ArrayRef = Arc::new(StringViewArray::from(vec!["bb", "a"]));
        let k: ArrayRef = Arc::new(Int64Array::from(vec![2, 2]));
        assert_eq!(bools(set.contains(&[v, k]).unwrap()), [true, true]);
    }

    #[test]
    fn null_keys_never_match_and_an_empty_set_matches_nothing() {
        let set = KeySet::new(&[Arc::new(Int64Array::from(vec![None::<i64>]))]).unwrap();
        assert_eq!(set.ranges(), &[KeyRange::Empty]);
        let probe: ArrayRef = Arc::new(Int64Array::from(vec![Some(0), None]));
        assert_eq!(bools(set.contains(&[probe]).unwrap()), [false, false]);
    }
}
