//! Entity-key serialization, byte-for-byte Feast's `entity_key_serialization_version: 3`,
//! and a stable 64-bit hash of the serialized keys.
//!
//! One serialized key is
//!
//! ```text
//! u32le(number of join keys)
//! for each join key, sorted by name:   u32le(2)    u32le(len(name))  utf8(name)
//! for each value, in the same order:   u32le(type) u32le(len(bytes)) bytes
//! ```
//!
//! with value types `bytes = 1`, `string = 2`, `int32 = 3` (4 bytes LE), `int64 = 4`
//! (8 bytes LE) and `unix_timestamp = 8` (8 bytes LE, whole seconds since the epoch, rounded
//! towards negative infinity from the column's unit).
//!
//! The name part is the same for every row, so it is built once and copied; the output
//! buffer is sized exactly before the single pass over the rows.
//!
//! This module is also the one reader of key columns ([`KeyColumn`]) and the one in-memory
//! key hash ([`hash_fixed`], [`hash_bytes`], [`KeyColumn::hash`]) for every kernel: a key's
//! identity is what it serializes to, so a timestamp key is its whole second everywhere
//! (two keys equal to the second are one entity online, in `latest_per_key` and in the
//! as-of join alike).

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int32Type, Int64Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BinaryViewArray, StringViewArray, UInt32Array, UInt64Array,
};
use arrow_buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, TimeUnit};

use crate::{mem, Error, Result};

/// Feast `ValueType` numbers used in the serialized bytes.
const T_BYTES: u32 = 1;
const T_STRING: u32 = 2;
const T_INT32: u32 = 3;
const T_INT64: u32 = 4;
const T_UNIX_TIMESTAMP: u32 = 8;

/// The key column types accepted, for error messages.
pub(crate) const KEY_TYPES: &str = "int32, int64, string, large_string, string_view, binary, \
                                     large_binary, binary_view or timestamp";

/// Borrowed access to the bytes of a string or binary column, whatever its layout.
#[derive(Clone, Copy)]
pub(crate) enum ByteCol<'a> {
    Small { offsets: &'a [i32], data: &'a [u8] },
    Large { offsets: &'a [i64], data: &'a [u8] },
    StrView(&'a StringViewArray),
    BinView(&'a BinaryViewArray),
}

impl<'a> ByteCol<'a> {
    /// Reads `array` if it is one of the string or binary types.
    pub(crate) fn new(array: &'a dyn Array) -> Option<Self> {
        Some(match array.data_type() {
            DataType::Utf8 => {
                let a = array.as_string::<i32>();
                ByteCol::Small {
                    offsets: a.value_offsets(),
                    data: a.value_data(),
                }
            }
            DataType::LargeUtf8 => {
                let a = array.as_string::<i64>();
                ByteCol::Large {
                    offsets: a.value_offsets(),
                    data: a.value_data(),
                }
            }
            DataType::Binary => {
                let a = array.as_binary::<i32>();
                ByteCol::Small {
                    offsets: a.value_offsets(),
                    data: a.value_data(),
                }
            }
            DataType::LargeBinary => {
                let a = array.as_binary::<i64>();
                ByteCol::Large {
                    offsets: a.value_offsets(),
                    data: a.value_data(),
                }
            }
            DataType::Utf8View => ByteCol::StrView(array.as_string_view()),
            DataType::BinaryView => ByteCol::BinView(array.as_binary_view()),
            _ => return None,
        })
    }

    /// The bytes of row `i` (whatever is stored there if the row is null). Always inlined:
    /// the kernels' hot loops call it per row and lost ~25% when it was not.
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> &'a [u8] {
        match *self {
            ByteCol::Small { offsets, data } => &data[offsets[i] as usize..offsets[i + 1] as usize],
            ByteCol::Large { offsets, data } => &data[offsets[i] as usize..offsets[i + 1] as usize],
            ByteCol::StrView(a) => a.value(i).as_bytes(),
            ByteCol::BinView(a) => a.value(i),
        }
    }

    /// The number of value bytes of rows `lo..hi` (nulls included).
    pub(crate) fn range_len(&self, lo: usize, hi: usize) -> usize {
        match *self {
            ByteCol::Small { offsets, .. } => (offsets[hi] - offsets[lo]) as usize,
            ByteCol::Large { offsets, .. } => (offsets[hi] - offsets[lo]) as usize,
            ByteCol::StrView(a) => a.views()[lo..hi].iter().map(|v| *v as u32 as usize).sum(),
            ByteCol::BinView(a) => a.views()[lo..hi].iter().map(|v| *v as u32 as usize).sum(),
        }
    }

    /// The total number of value bytes over all rows (nulls included).
    pub(crate) fn total_len(&self) -> usize {
        match *self {
            ByteCol::Small { offsets, .. } => match (offsets.first(), offsets.last()) {
                (Some(a), Some(b)) => (*b - *a) as usize,
                _ => 0,
            },
            ByteCol::Large { offsets, .. } => match (offsets.first(), offsets.last()) {
                (Some(a), Some(b)) => (*b - *a) as usize,
                _ => 0,
            },
            ByteCol::StrView(a) => a.views().iter().map(|v| *v as u32 as usize).sum(),
            ByteCol::BinView(a) => a.views().iter().map(|v| *v as u32 as usize).sum(),
        }
    }
}

/// One key column, typed.
#[derive(Clone, Copy)]
pub(crate) enum KeyValues<'a> {
    Int32(&'a [i32]),
    Int64(&'a [i64]),
    /// Raw values and the divisor that turns them into whole seconds.
    Timestamp(&'a [i64], i64),
    String(ByteCol<'a>),
    Bytes(ByteCol<'a>),
}

impl KeyValues<'_> {
    /// The value of a fixed-width key as an `i64` (timestamps in seconds); `None` for
    /// strings and bytes.
    #[inline]
    pub(crate) fn fixed(&self, i: usize) -> Option<i64> {
        match *self {
            KeyValues::Int32(v) => Some(v[i] as i64),
            KeyValues::Int64(v) => Some(v[i]),
            KeyValues::Timestamp(v, div) => Some(v[i].div_euclid(div)),
            KeyValues::String(_) | KeyValues::Bytes(_) => None,
        }
    }
}

/// A key column: its values and validity.
#[derive(Clone, Copy)]
pub(crate) struct KeyColumn<'a> {
    pub(crate) values: KeyValues<'a>,
    pub(crate) nulls: Option<&'a NullBuffer>,
}

impl<'a> KeyColumn<'a> {
    /// Reads `array` as a key column; `name` is used in the error for other types.
    pub(crate) fn new(array: &'a ArrayRef, name: &str) -> Result<Self> {
        let values = match array.data_type() {
            DataType::Int32 => KeyValues::Int32(array.as_primitive::<Int32Type>().values()),
            DataType::Int64 => KeyValues::Int64(array.as_primitive::<Int64Type>().values()),
            DataType::Timestamp(unit, _) => match unit {
                TimeUnit::Second => {
                    KeyValues::Timestamp(array.as_primitive::<TimestampSecondType>().values(), 1)
                }
                TimeUnit::Millisecond => KeyValues::Timestamp(
                    array.as_primitive::<TimestampMillisecondType>().values(),
                    1_000,
                ),
                TimeUnit::Microsecond => KeyValues::Timestamp(
                    array.as_primitive::<TimestampMicrosecondType>().values(),
                    1_000_000,
                ),
                TimeUnit::Nanosecond => KeyValues::Timestamp(
                    array.as_primitive::<TimestampNanosecondType>().values(),
                    1_000_000_000,
                ),
            },
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                KeyValues::String(ByteCol::new(array.as_ref()).expect("string type"))
            }
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
                KeyValues::Bytes(ByteCol::new(array.as_ref()).expect("binary type"))
            }
            other => {
                return Err(Error::UnsupportedType {
                    column: name.to_string(),
                    found: other.clone(),
                    expected: KEY_TYPES.to_string(),
                })
            }
        };
        Ok(KeyColumn {
            values,
            nulls: array.nulls().filter(|n| n.null_count() > 0),
        })
    }

    /// True when row `i` is null.
    #[inline]
    pub(crate) fn is_null(&self, i: usize) -> bool {
        self.nulls.is_some_and(|n| n.is_null(i))
    }

    /// The in-memory hash of row `i`'s key value (equal keys hash equally: timestamps by
    /// their whole second).
    #[inline]
    pub(crate) fn hash(&self, i: usize) -> u64 {
        match self.values {
            KeyValues::String(b) | KeyValues::Bytes(b) => hash_bytes(b.get(i)),
            fixed => hash_fixed(fixed.fixed(i).expect("fixed-width key") as u64),
        }
    }
}

/// The hash of several key columns at row `i`, combining [`KeyColumn::hash`].
#[inline]
pub(crate) fn row_hash(cols: &[KeyColumn<'_>], i: usize) -> u64 {
    let mut h = 0x243f_6a88_85a3_08d3u64;
    for c in cols {
        h = hash_fixed(h.rotate_left(23) ^ c.hash(i));
    }
    h
}

/// The hash of a fixed-width key value (an integer, a timestamp's second): the MurmurHash3
/// `fmix64` finaliser, full avalanche, so both the low and the high bits are usable.
#[inline(always)]
pub(crate) fn hash_fixed(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// The hash of a string or binary key value (xxh3-64, the hash [`hash_keys`] publishes).
#[inline]
pub(crate) fn hash_bytes(b: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(b)
}

/// Serializes N entity keys (one column per join key, N rows each) into N blobs.
///
/// `names[i]` is the join key held by `columns[i]`. Keys are written sorted by name. A null
/// in any key column is an error naming that column.
pub fn serialize_entity_keys(names: &[String], columns: &[ArrayRef]) -> Result<BinaryArray> {
    if names.len() != columns.len() {
        return Err(Error::Mismatch(format!(
            "{} join key names but {} key columns",
            names.len(),
            columns.len()
        )));
    }
    if names.is_empty() {
        return Err(Error::Invalid(
            "no join key columns, so no row count: serialize the empty key with \
             empty_entity_keys(rows)"
                .to_string(),
        ));
    }
    let rows = columns[0].len();
    for (name, col) in names.iter().zip(columns) {
        if col.len() != rows {
            return Err(Error::Mismatch(format!(
                "join key column '{name}' has {} rows, expected {rows} (as '{}')",
                col.len(),
                names[0]
            )));
        }
    }

    // Sort the key columns by name; refuse duplicates.
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by(|&a, &b| names[a].cmp(&names[b]));
    for w in order.windows(2) {
        if names[w[0]] == names[w[1]] {
            return Err(Error::Invalid(format!(
                "join key '{}' is given twice",
                names[w[0]]
            )));
        }
    }

    // The row prefix: the key count and the sorted names, identical for every row.
    let mut prefix = Vec::new();
    prefix.extend_from_slice(&(names.len() as u32).to_le_bytes());
    for &k in &order {
        let name = names[k].as_bytes();
        prefix.extend_from_slice(&T_STRING.to_le_bytes());
        prefix.extend_from_slice(&(name.len() as u32).to_le_bytes());
        prefix.extend_from_slice(name);
    }

    let mut cols = Vec::with_capacity(order.len());
    let mut total = prefix.len() * rows;
    for &k in &order {
        let col = KeyColumn::new(&columns[k], &names[k])?;
        if let Some(nulls) = col.nulls {
            let first = (0..rows).find(|&i| nulls.is_null(i)).unwrap_or(0);
            return Err(Error::Invalid(format!(
                "join key column '{}' has {} null value(s) (first at row {first}); entity keys \
                 cannot be null",
                names[k],
                nulls.null_count()
            )));
        }
        total += 8 * rows
            + match col.values {
                KeyValues::Int32(_) => 4 * rows,
                KeyValues::Int64(_) | KeyValues::Timestamp(..) => 8 * rows,
                KeyValues::String(b) | KeyValues::Bytes(b) => b.total_len(),
            };
        cols.push(col.values);
    }
    if total > i32::MAX as usize {
        return Err(Error::Invalid(format!(
            "the serialized keys take {total} bytes, more than a binary array holds (2 GiB)"
        )));
    }

    const OP: &str = "serializing entity keys (serialize_entity_keys)";
    let mut data: Vec<u8> = mem::with_capacity(total, OP)?;
    let mut offsets: Vec<i32> = mem::with_capacity(rows + 1, OP)?;
    offsets.push(0);
    for i in 0..rows {
        data.extend_from_slice(&prefix);
        for col in &cols {
            write_key_value(&mut data, col, i);
        }
        offsets.push(data.len() as i32);
    }
    debug_assert_eq!(data.len(), total);

    // SAFETY-free construction: offsets are monotonic by construction.
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    Ok(BinaryArray::new(offsets, Buffer::from_vec(data), None))
}

/// `rows` copies of the key with no join keys, Feast v3's bytes for an empty `EntityKey`:
/// just `u32le(0)`, the key count. (Feast's entity-less views store under its dummy key
/// `{"__dummy_id": ""}` instead, which [`serialize_entity_keys`] writes as Feast does; banquet
/// stores no key without join keys, so no stored data depends on these bytes.)
pub fn empty_entity_keys(rows: usize) -> Result<BinaryArray> {
    const OP: &str = "serializing empty entity keys (empty_entity_keys)";
    let total = rows.checked_mul(4).filter(|&n| n <= i32::MAX as usize);
    let Some(total) = total else {
        return Err(Error::Invalid(format!(
            "{rows} empty keys take more bytes than a binary array holds (2 GiB)"
        )));
    };
    let data: Vec<u8> = mem::filled(total, 0u8, OP)?;
    let mut offsets: Vec<i32> = mem::with_capacity(rows + 1, OP)?;
    offsets.extend((0..=rows).map(|i| (4 * i) as i32));
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    Ok(BinaryArray::new(offsets, Buffer::from_vec(data), None))
}

#[inline]
fn write_key_value(out: &mut Vec<u8>, col: &KeyValues<'_>, i: usize) {
    let mut head = |t: u32, len: u32| {
        out.extend_from_slice(&t.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
    };
    match *col {
        KeyValues::Int32(v) => {
            head(T_INT32, 4);
            out.extend_from_slice(&v[i].to_le_bytes());
        }
        KeyValues::Int64(v) => {
            head(T_INT64, 8);
            out.extend_from_slice(&v[i].to_le_bytes());
        }
        KeyValues::Timestamp(v, div) => {
            head(T_UNIX_TIMESTAMP, 8);
            out.extend_from_slice(&v[i].div_euclid(div).to_le_bytes());
        }
        KeyValues::String(b) => {
            let s = b.get(i);
            head(T_STRING, s.len() as u32);
            out.extend_from_slice(s);
        }
        KeyValues::Bytes(b) => {
            let s = b.get(i);
            head(T_BYTES, s.len() as u32);
            out.extend_from_slice(s);
        }
    }
}

/// xxh3-64 of each serialized key; a null key hashes to null. Stable across runs, versions
/// and platforms (xxh3 with the default seed).
pub fn hash_keys(keys: &BinaryArray) -> UInt64Array {
    let values: Vec<u64> = (0..keys.len())
        .map(|i| xxhash_rust::xxh3::xxh3_64(keys.value(i)))
        .collect();
    UInt64Array::new(ScalarBuffer::from(values), keys.nulls().cloned())
}

/// Serialized entity keys from any binary-like array (binary, large_binary, binary_view).
fn serialized_keys(keys: &ArrayRef) -> Result<ByteCol<'_>> {
    match keys.data_type() {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            Ok(ByteCol::new(keys.as_ref()).expect("binary type"))
        }
        other => Err(Error::UnsupportedType {
            column: "keys".to_string(),
            found: other.clone(),
            expected: "binary (serialized entity keys)".to_string(),
        }),
    }
}

/// [`hash_keys`] over any binary-like array (binary, large_binary, binary_view).
pub fn hash_keys_array(keys: &ArrayRef) -> Result<UInt64Array> {
    let bytes = serialized_keys(keys)?;
    let values: Vec<u64> = (0..keys.len())
        .map(|i| xxhash_rust::xxh3::xxh3_64(bytes.get(i)))
        .collect();
    Ok(UInt64Array::new(
        ScalarBuffer::from(values),
        keys.nulls().cloned(),
    ))
}

/// The row order (uint32 indices) that sorts serialized keys bytewise; stable, so equal keys
/// keep their order. Stores keyed by a B-tree insert sorted keys markedly faster. Nulls sort
/// first.
pub fn key_order(keys: &ArrayRef) -> Result<UInt32Array> {
    let bytes = serialized_keys(keys)?;
    if keys.len() > u32::MAX as usize {
        return Err(Error::Invalid(format!(
            "{} keys: more than 2^32",
            keys.len()
        )));
    }
    // The sort permutation and its keys (slices, then (key, index) pairs: about 48 bytes
    // per key), checked before they are built.
    mem::check(
        "sorting entity keys (key_order)",
        mem::bytes(keys.len(), 48, 0),
    )?;
    let nulls = keys.nulls();
    let slices: Vec<Option<&[u8]>> = (0..keys.len())
        .map(|i| (!nulls.is_some_and(|n| n.is_null(i))).then(|| bytes.get(i)))
        .collect();
    // Keys of one view share a long prefix (key count, join key names, value headers):
    // compare only what follows it.
    let mut common = slices.iter().flatten().next().map_or(0, |k| k.len());
    let first = slices.iter().flatten().next().copied().unwrap_or_default();
    for k in slices.iter().flatten() {
        common = common.min(k.iter().zip(first).take_while(|(a, b)| a == b).count());
    }
    // The usual case, fixed-width keys of at most 16 bytes past the prefix (an int64 key
    // has 8): sort big-endian integers, several times faster than comparing slices.
    let width = slices
        .iter()
        .flatten()
        .next()
        .map_or(0, |k| k.len() - common);
    if width <= 16
        && slices
            .iter()
            .all(|k| k.is_some_and(|k| k.len() - common == width))
    {
        let mut order: Vec<(u128, u32)> = slices
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let mut buf = [0u8; 16];
                buf[..width].copy_from_slice(&k.expect("no nulls")[common..]);
                (u128::from_be_bytes(buf), i as u32)
            })
            .collect();
        order.sort_unstable();
        return Ok(UInt32Array::from_iter_values(
            order.into_iter().map(|(_, i)| i),
        ));
    }
    let mut order: Vec<(Option<&[u8]>, u32)> = slices
        .iter()
        .enumerate()
        .map(|(i, k)| (k.map(|k| &k[common..]), i as u32))
        .collect();
    // unstable, but the index breaks ties: the same order as a stable sort
    order.sort_unstable();
    let order: Vec<u32> = order.into_iter().map(|(_, i)| i).collect();
    Ok(UInt32Array::from(order))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        Int32Array, Int64Array, LargeStringArray, StringArray, TimestampMillisecondArray,
        TimestampNanosecondArray,
    };

    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn golden_single_int64() {
        let out = serialize_entity_keys(
            &names(&["driver_id"]),
            &[Arc::new(Int64Array::from(vec![1001])) as ArrayRef],
        )
        .unwrap();
        assert_eq!(
            out.value(0),
            hex("01000000 02000000 09000000 6472697665725f6964 04000000 08000000 e903000000000000")
        );
    }

    #[test]
    fn golden_two_keys_sorted_by_name() {
        let out = serialize_entity_keys(
            &names(&["driver_id", "customer_id"]),
            &[
                Arc::new(Int64Array::from(vec![1001])) as ArrayRef,
                Arc::new(StringArray::from(vec!["c1"])) as ArrayRef,
            ],
        )
        .unwrap();
        assert_eq!(
            out.value(0),
            hex(
                "02000000 02000000 0b000000 637573746f6d65725f6964 02000000 09000000 \
                 6472697665725f6964 02000000 02000000 6331 04000000 08000000 e903000000000000"
            )
        );
    }

    #[test]
    fn golden_int32() {
        let out = serialize_entity_keys(
            &names(&["k"]),
            &[Arc::new(Int32Array::from(vec![7])) as ArrayRef],
        )
        .unwrap();
        assert_eq!(
            out.value(0),
            hex("01000000 02000000 01000000 6b 03000000 04000000 07000000")
        );
    }

    #[test]
    fn many_rows_and_layouts() {
        let s = Arc::new(StringArray::from(vec!["a", "", "ccc"])) as ArrayRef;
        let ls = Arc::new(LargeStringArray::from(vec!["a", "", "ccc"])) as ArrayRef;
        let vs = Arc::new(StringViewArray::from(vec![
            "a",
            "",
            "a string longer than 12",
        ])) as ArrayRef;
        let a = serialize_entity_keys(&names(&["s"]), std::slice::from_ref(&s)).unwrap();
        let b = serialize_entity_keys(&names(&["s"]), &[ls]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 3);
        assert_eq!(
            a.value(1),
            hex("01000000 02000000 01000000 73 02000000 00000000")
        );
        let c = serialize_entity_keys(&names(&["s"]), &[vs]).unwrap();
        assert_eq!(c.value(0), a.value(0));
        assert!(c.value(2).ends_with(b"a string longer than 12"));
        // a slice keeps its own rows
        let sliced = serialize_entity_keys(&names(&["s"]), &[s.slice(1, 2)]).unwrap();
        assert_eq!(sliced.value(1), a.value(2));
    }

    #[test]
    fn binary_and_timestamps() {
        let b = Arc::new(BinaryArray::from(vec![&b"\x00\xff"[..]])) as ArrayRef;
        let out = serialize_entity_keys(&names(&["b"]), &[b]).unwrap();
        assert_eq!(
            out.value(0),
            hex("01000000 02000000 01000000 62 01000000 02000000 00ff")
        );

        let ms = Arc::new(TimestampMillisecondArray::from(vec![1_700_000_000_999, -1])) as ArrayRef;
        let ns = Arc::new(
            TimestampNanosecondArray::from(vec![1_700_000_000_000_000_001, -1])
                .with_timezone("UTC"),
        ) as ArrayRef;
        let a = serialize_entity_keys(&names(&["t"]), &[ms]).unwrap();
        let b = serialize_entity_keys(&names(&["t"]), &[ns]).unwrap();
        assert_eq!(a, b);
        let mut want = hex("01000000 02000000 01000000 74 08000000 08000000");
        want.extend_from_slice(&1_700_000_000i64.to_le_bytes());
        assert_eq!(a.value(0), want.as_slice());
        // floor towards negative infinity
        assert!(a.value(1).ends_with(&(-1i64).to_le_bytes()));
    }

    #[test]
    fn errors() {
        let with_null = Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef;
        let err = serialize_entity_keys(&names(&["driver_id"]), &[with_null]).unwrap_err();
        assert!(err.to_string().contains("driver_id"), "{err}");
        assert!(err.to_string().contains("row 1"), "{err}");

        let f = Arc::new(arrow_array::Float64Array::from(vec![1.0])) as ArrayRef;
        let err = serialize_entity_keys(&names(&["f"]), &[f]).unwrap_err();
        assert!(matches!(err, Error::UnsupportedType { .. }), "{err}");

        let a = Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef;
        let b = Arc::new(Int64Array::from(vec![1])) as ArrayRef;
        assert!(matches!(
            serialize_entity_keys(&names(&["a", "b"]), &[a.clone(), b]),
            Err(Error::Mismatch(_))
        ));
        assert!(matches!(
            serialize_entity_keys(&names(&["a", "a"]), &[a.clone(), a.clone()]),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            serialize_entity_keys(&names(&["a"]), &[]),
            Err(Error::Mismatch(_))
        ));
    }

    #[test]
    fn empty_key_is_feasts() {
        // Feast 0.67: serialize_entity_key(EntityKey(), 3) == b"\x00\x00\x00\x00"
        let out = empty_entity_keys(3).unwrap();
        assert_eq!(out.len(), 3);
        for i in 0..3 {
            assert_eq!(out.value(i), hex("00000000"));
        }
        assert_eq!(empty_entity_keys(0).unwrap().len(), 0);
        assert!(matches!(
            serialize_entity_keys(&[], &[]),
            Err(Error::Invalid(m)) if m.contains("empty_entity_keys")
        ));
    }

    #[test]
    fn feast_dummy_entity_key() {
        // Feast 0.67's key of an entity-less view's rows: {"__dummy_id": ""} (a string)
        let out = serialize_entity_keys(
            &names(&["__dummy_id"]),
            &[Arc::new(StringArray::from(vec![""])) as ArrayRef],
        )
        .unwrap();
        assert_eq!(
            out.value(0),
            hex("01000000 02000000 0a000000 5f5f64756d6d795f6964 02000000 00000000")
        );
    }

    #[test]
    fn empty_input() {
        let a = Arc::new(Int64Array::from(Vec::<i64>::new())) as ArrayRef;
        let out = serialize_entity_keys(&names(&["a"]), &[a]).unwrap();
        assert_eq!(out.len(), 0);
    }

    #[test]
    fn xxh3_is_stable() {
        let keys = BinaryArray::from_opt_vec(vec![Some(b""), None]);
        let h = hash_keys(&keys);
        // xxh3-64 of the empty input with the default seed (reference value).
        assert_eq!(h.value(0), 0x2D06_8005_38D3_94C2);
        assert!(h.is_null(1));

        let key = serialize_entity_keys(
            &names(&["driver_id"]),
            &[Arc::new(Int64Array::from(vec![1001])) as ArrayRef],
        )
        .unwrap();
        let h = hash_keys(&key);
        assert_eq!(h.value(0), GOLDEN_DRIVER_1001_HASH);
        let any = hash_keys_array(&(Arc::new(key) as ArrayRef)).unwrap();
        assert_eq!(any, h);
    }

    /// xxh3-64 of the serialized key `{driver_id: int64 1001}` (checked against the Python
    /// `xxhash` package).
    const GOLDEN_DRIVER_1001_HASH: u64 = 0x3334_7E92_3A74_14D9;

    #[test]
    fn key_order_sorts_bytewise_and_stably() {
        let keys: ArrayRef = Arc::new(BinaryArray::from(vec![
            Some(&b"b"[..]),
            Some(&b"a\xff"[..]),
            None,
            Some(&b"b"[..]),
            Some(&b""[..]),
            Some(&b"a"[..]),
        ]));
        let order = key_order(&keys).unwrap();
        assert_eq!(order.values().to_vec(), vec![2, 4, 5, 1, 0, 3]);
        // fixed-width keys (the packed-integer path) give the same order as slices do
        let ids = vec![5i64, -1, 300, 5, 0, i64::MAX, i64::MIN, 256];
        let names = vec!["user_id".to_string()];
        let fixed: ArrayRef = Arc::new(
            serialize_entity_keys(&names, &[Arc::new(Int64Array::from(ids)) as ArrayRef]).unwrap(),
        );
        let bin = fixed.as_binary::<i32>();
        let mut want: Vec<u32> = (0..bin.len() as u32).collect();
        want.sort_by_key(|&i| bin.value(i as usize));
        assert_eq!(key_order(&fixed).unwrap().values().to_vec(), want);
        let bad: ArrayRef = Arc::new(Int32Array::from(vec![1]));
        assert!(matches!(
            key_order(&bad),
            Err(Error::UnsupportedType { .. })
        ));
    }
}
