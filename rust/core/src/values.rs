//! The online value codec: one self-describing blob per (entity key, feature view) row.
//!
//! Layout (version 1, all integers little-endian; ARCHITECTURE.md, "The online value codec", has the full text):
//!
//! ```text
//! u8     version = 1
//! u8     flags: bit0 CREATED (a created ts follows), bit1 NAMED (the fingerprint covers the
//!        field names), bit2 NULLS (a validity bitmap follows); other bits 0
//! u16    field count F
//! u32    schema fingerprint
//! i64    event timestamp, µs since the epoch (UTC)
//! [i64   created timestamp, µs]                     if CREATED
//! [ceil(F/8) bytes validity, bit i = field i set]   if NULLS (else every field is set)
//! the set fields, in order:
//!   bool 1 byte (0|1); int32, float32 4 bytes; int64, float64, timestamp[us] 8 bytes;
//!   string, binary: uvarint length + bytes;
//!   list: uvarint (count << 1 | has_null_elements), [ceil(count/8) bytes element validity],
//!         then the non-null elements, each encoded as the scalar above.
//! ```
//!
//! Nothing may follow the last field. A truncated, extended or otherwise malformed blob
//! decodes to [`Error::Corrupt`]; so does a blob written under another schema (field count
//! or fingerprint differ), with a message saying the view must be re-materialized.

use std::sync::Arc;

use arrow_array::builder::BooleanBufferBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array,
    LargeBinaryArray, LargeListArray, LargeStringArray, ListArray, StringArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::{Buffer, NullBuffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, FieldRef, TimeUnit};

use crate::keys::ByteCol;
use crate::ord::TsColumn;
use crate::{mem, Error, Result};

/// What allocation failures name.
const ENCODE: &str = "encoding online values (encode_values)";
const DECODE: &str = "decoding online values (decode_values)";

/// The codec version written in byte 0.
pub const VERSION: u8 = 1;
const F_CREATED: u8 = 1;
const F_NAMED: u8 = 2;
const F_NULLS: u8 = 4;
const F_KNOWN: u8 = F_CREATED | F_NAMED | F_NULLS;
/// Bytes before the optional created timestamp.
const HEAD: usize = 16;

/// Scalar type tags, used in the fingerprint (a list is `0x10 | element tag`).
const T_BOOL: u8 = 1;
const T_I32: u8 = 2;
const T_I64: u8 = 3;
const T_F32: u8 = 4;
const T_F64: u8 = 5;
const T_TS: u8 = 6;
const T_STR: u8 = 7;
const T_BIN: u8 = 8;
const T_LIST: u8 = 0x10;

const SUPPORTED: &str = "bool, int32, int64, float32, float64, string, binary, timestamp[us] \
                         or a list / large_list of one of those";

/// The codec tag of a scalar type (string and binary layouts are interchangeable).
fn scalar_tag(dt: &DataType) -> Option<u8> {
    Some(match dt {
        DataType::Boolean => T_BOOL,
        DataType::Int32 => T_I32,
        DataType::Int64 => T_I64,
        DataType::Float32 => T_F32,
        DataType::Float64 => T_F64,
        DataType::Timestamp(TimeUnit::Microsecond, _) => T_TS,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => T_STR,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => T_BIN,
        _ => return None,
    })
}

/// The codec tag of a field type, or an `UnsupportedType` error naming `column`.
fn codec_tag(dt: &DataType, column: &str) -> Result<u8> {
    let tag = match dt {
        DataType::List(f) | DataType::LargeList(f) => scalar_tag(f.data_type()).map(|t| T_LIST | t),
        other => scalar_tag(other),
    };
    tag.ok_or_else(|| Error::UnsupportedType {
        column: column.to_string(),
        found: dt.clone(),
        expected: SUPPORTED.to_string(),
    })
}

/// The 32-bit schema fingerprint: xxh3-64 over each field's (length-prefixed name, when
/// `names` is given) and codec tag, folded to 32 bits.
fn fingerprint(names: Option<&[&str]>, tags: &[u8]) -> u32 {
    let mut bytes = Vec::with_capacity(tags.len() * 16);
    for (i, tag) in tags.iter().enumerate() {
        if let Some(names) = names {
            let n = names[i].as_bytes();
            bytes.extend_from_slice(&(n.len() as u32).to_le_bytes());
            bytes.extend_from_slice(n);
        }
        bytes.push(*tag);
    }
    let h = xxhash_rust::xxh3::xxh3_64(&bytes);
    (h ^ (h >> 32)) as u32
}

/// The fingerprint a blob carries for `fields` (with or without names), exposed for tests
/// and diagnostics.
pub fn schema_fingerprint(fields: &[FieldRef], named: bool) -> Result<u32> {
    let tags = fields
        .iter()
        .map(|f| codec_tag(f.data_type(), f.name()))
        .collect::<Result<Vec<_>>>()?;
    let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
    Ok(fingerprint(named.then_some(names.as_slice()), &tags))
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

/// Scalar values of one column (or of a list's elements), borrowed.
#[derive(Clone, Copy)]
enum Scalars<'a> {
    Bool(&'a BooleanArray),
    I32(&'a [i32]),
    I64(&'a [i64]),
    F32(&'a [f32]),
    F64(&'a [f64]),
    Bytes(ByteCol<'a>),
}

impl<'a> Scalars<'a> {
    fn new(array: &'a dyn Array) -> Option<Self> {
        Some(match array.data_type() {
            DataType::Boolean => Scalars::Bool(array.as_boolean()),
            DataType::Int32 => Scalars::I32(array.as_primitive::<Int32Type>().values()),
            DataType::Int64 => Scalars::I64(array.as_primitive::<Int64Type>().values()),
            DataType::Float32 => Scalars::F32(array.as_primitive::<Float32Type>().values()),
            DataType::Float64 => Scalars::F64(array.as_primitive::<Float64Type>().values()),
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                Scalars::I64(array.as_primitive::<TimestampMicrosecondType>().values())
            }
            _ => Scalars::Bytes(ByteCol::new(array)?),
        })
    }

    /// An upper bound on the encoded size of elements `lo..hi`.
    fn size_bound(&self, lo: usize, hi: usize) -> usize {
        let n = hi - lo;
        match self {
            Scalars::Bool(_) => n,
            Scalars::I32(_) | Scalars::F32(_) => 4 * n,
            Scalars::I64(_) | Scalars::F64(_) => 8 * n,
            Scalars::Bytes(b) => 5 * n + b.range_len(lo, hi),
        }
    }

    /// Writes elements `lo..hi` (all non-null), matching on the type once.
    #[inline(always)]
    fn put_range(&self, out: &mut Vec<u8>, lo: usize, hi: usize) {
        match self {
            Scalars::Bool(a) => out.extend((lo..hi).map(|j| a.value(j) as u8)),
            Scalars::I32(v) => v[lo..hi]
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Scalars::I64(v) => v[lo..hi]
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Scalars::F32(v) => v[lo..hi]
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Scalars::F64(v) => v[lo..hi]
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Scalars::Bytes(_) => (lo..hi).for_each(|j| self.put(out, j)),
        }
    }

    #[inline(always)]
    fn put(&self, out: &mut Vec<u8>, i: usize) {
        match self {
            Scalars::Bool(a) => out.push(a.value(i) as u8),
            Scalars::I32(v) => out.extend_from_slice(&v[i].to_le_bytes()),
            Scalars::I64(v) => out.extend_from_slice(&v[i].to_le_bytes()),
            Scalars::F32(v) => out.extend_from_slice(&v[i].to_le_bytes()),
            Scalars::F64(v) => out.extend_from_slice(&v[i].to_le_bytes()),
            Scalars::Bytes(b) => {
                let s = b.get(i);
                put_uvarint(out, s.len() as u64);
                out.extend_from_slice(s);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Offsets<'a> {
    Small(&'a [i32]),
    Large(&'a [i64]),
}

impl Offsets<'_> {
    #[inline(always)]
    fn range(&self, i: usize) -> (usize, usize) {
        match self {
            Offsets::Small(o) => (o[i] as usize, o[i + 1] as usize),
            Offsets::Large(o) => (o[i] as usize, o[i + 1] as usize),
        }
    }
}

enum Body<'a> {
    Scalar(Scalars<'a>),
    List {
        offsets: Offsets<'a>,
        elem_nulls: Option<&'a NullBuffer>,
        elems: Scalars<'a>,
    },
}

struct EncCol<'a> {
    nulls: Option<&'a NullBuffer>,
    body: Body<'a>,
}

impl<'a> EncCol<'a> {
    fn new(array: &'a ArrayRef, column: &str) -> Result<Self> {
        codec_tag(array.data_type(), column)?;
        let body = match array.data_type() {
            DataType::List(_) => {
                let l = array.as_list::<i32>();
                Body::List {
                    offsets: Offsets::Small(l.value_offsets()),
                    elem_nulls: l.values().nulls().filter(|n| n.null_count() > 0),
                    elems: Scalars::new(l.values().as_ref()).expect("checked element type"),
                }
            }
            DataType::LargeList(_) => {
                let l = array.as_list::<i64>();
                Body::List {
                    offsets: Offsets::Large(l.value_offsets()),
                    elem_nulls: l.values().nulls().filter(|n| n.null_count() > 0),
                    elems: Scalars::new(l.values().as_ref()).expect("checked element type"),
                }
            }
            _ => Body::Scalar(Scalars::new(array.as_ref()).expect("checked type")),
        };
        Ok(EncCol {
            nulls: array.nulls().filter(|n| n.null_count() > 0),
            body,
        })
    }

    fn size_bound(&self, rows: usize) -> usize {
        match &self.body {
            Body::Scalar(s) => s.size_bound(0, rows),
            Body::List { offsets, elems, .. } => {
                if rows == 0 {
                    return 0;
                }
                let (lo, _) = offsets.range(0);
                let (_, hi) = offsets.range(rows - 1);
                // header uvarint + bitmap bound + elements
                6 * rows + (hi - lo) / 8 + elems.size_bound(lo, hi)
            }
        }
    }

    #[inline(always)]
    fn put(&self, out: &mut Vec<u8>, i: usize) {
        match &self.body {
            Body::Scalar(s) => s.put(out, i),
            Body::List {
                offsets,
                elem_nulls,
                elems,
            } => {
                let (lo, hi) = offsets.range(i);
                let count = hi - lo;
                let has_null = elem_nulls.is_some_and(|n| (lo..hi).any(|j| n.is_null(j)));
                put_uvarint(out, ((count as u64) << 1) | has_null as u64);
                if has_null {
                    let n = elem_nulls.expect("has nulls");
                    put_bitmap(out, count, |k| n.is_valid(lo + k));
                    for j in lo..hi {
                        if n.is_valid(j) {
                            elems.put(out, j);
                        }
                    }
                } else {
                    elems.put_range(out, lo, hi);
                }
            }
        }
    }
}

#[inline(always)]
fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline(always)]
fn put_bitmap(out: &mut Vec<u8>, n: usize, set: impl Fn(usize) -> bool) {
    for byte in 0..n.div_ceil(8) {
        let mut b = 0u8;
        for bit in 0..8 {
            let k = byte * 8 + bit;
            if k < n && set(k) {
                b |= 1 << bit;
            }
        }
        out.push(b);
    }
}

/// Encodes N rows into N blobs; the fingerprint covers the column types only (no names).
///
/// Prefer [`encode_values_with_fields`], which also detects renamed or reordered features.
pub fn encode_values(
    event_ts: &ArrayRef,
    created_ts: Option<&ArrayRef>,
    columns: &[ArrayRef],
) -> Result<BinaryArray> {
    encode(event_ts, created_ts, columns, None)
}

/// Encodes N rows into N blobs under the schema `fields` (one per column, same codec
/// types): the fingerprint covers the field names and types.
pub fn encode_values_with_fields(
    event_ts: &ArrayRef,
    created_ts: Option<&ArrayRef>,
    columns: &[ArrayRef],
    fields: &[FieldRef],
) -> Result<BinaryArray> {
    encode(event_ts, created_ts, columns, Some(fields))
}

fn encode(
    event_ts: &ArrayRef,
    created_ts: Option<&ArrayRef>,
    columns: &[ArrayRef],
    fields: Option<&[FieldRef]>,
) -> Result<BinaryArray> {
    let rows = event_ts.len();
    let ts = TsColumn::new(event_ts, "event_ts")?;
    if let Some(nulls) = ts.nulls {
        let first = (0..rows).find(|&i| nulls.is_null(i)).unwrap_or(0);
        return Err(Error::Invalid(format!(
            "event_ts has {} null value(s) (first at row {first}); every row needs an event \
             timestamp",
            nulls.null_count()
        )));
    }
    let created = created_ts
        .map(|c| TsColumn::new(c, "created_ts"))
        .transpose()?;
    if let Some(c) = &created {
        if c.len() != rows {
            return Err(Error::Mismatch(format!(
                "created_ts has {} rows but event_ts has {rows}",
                c.len()
            )));
        }
    }
    if columns.len() > u16::MAX as usize {
        return Err(Error::Invalid(format!(
            "{} feature columns; a blob holds at most {}",
            columns.len(),
            u16::MAX
        )));
    }
    let mut names: Vec<String> = (0..columns.len()).map(|i| format!("column {i}")).collect();
    let mut tags = Vec::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        if c.len() != rows {
            return Err(Error::Mismatch(format!(
                "feature column {i} has {} rows but event_ts has {rows}",
                c.len()
            )));
        }
        tags.push(codec_tag(c.data_type(), &names[i])?);
    }
    let fp = match fields {
        Some(fields) => {
            if fields.len() != columns.len() {
                return Err(Error::Mismatch(format!(
                    "{} fields in the schema but {} feature columns",
                    fields.len(),
                    columns.len()
                )));
            }
            for (i, f) in fields.iter().enumerate() {
                names[i] = f.name().clone();
                let tag = codec_tag(f.data_type(), f.name())?;
                if tag != tags[i] {
                    return Err(Error::Mismatch(format!(
                        "feature '{}' is declared {} but the column is {}",
                        f.name(),
                        f.data_type(),
                        columns[i].data_type()
                    )));
                }
            }
            let n: Vec<&str> = names.iter().map(String::as_str).collect();
            fingerprint(Some(&n), &tags)
        }
        None => fingerprint(None, &tags),
    };
    let named = if fields.is_some() { F_NAMED } else { 0 };

    let cols = columns
        .iter()
        .zip(&names)
        .map(|(c, n)| EncCol::new(c, n))
        .collect::<Result<Vec<_>>>()?;
    let nullable: Vec<usize> = (0..cols.len())
        .filter(|&c| cols[c].nulls.is_some())
        .collect();
    let nfields = cols.len();
    let bitmap_len = nfields.div_ceil(8);

    let mut bound = rows * (HEAD + 8 + bitmap_len);
    for c in &cols {
        bound += c.size_bound(rows);
    }
    // The whole output is sized up front (its upper bound): a refusal is a typed error
    // before any row is encoded.
    let mut out: Vec<u8> = mem::with_capacity(bound, ENCODE)?;
    let mut offsets: Vec<i32> = mem::with_capacity(rows + 1, ENCODE)?;
    offsets.push(0);
    let mut bitmap = vec![0u8; bitmap_len];

    for i in 0..rows {
        let created_i = created.as_ref().and_then(|c| c.get(i));
        let any_null = nullable
            .iter()
            .any(|&c| cols[c].nulls.is_some_and(|n| n.is_null(i)));
        let mut flags = named;
        if created_i.is_some() {
            flags |= F_CREATED;
        }
        if any_null {
            flags |= F_NULLS;
        }
        out.push(VERSION);
        out.push(flags);
        out.extend_from_slice(&(nfields as u16).to_le_bytes());
        out.extend_from_slice(&fp.to_le_bytes());
        out.extend_from_slice(&ts.values[i].to_le_bytes());
        if let Some(c) = created_i {
            out.extend_from_slice(&c.to_le_bytes());
        }
        if any_null {
            bitmap.fill(0xff);
            if nfields % 8 != 0 {
                bitmap[bitmap_len - 1] = (1u8 << (nfields % 8)) - 1;
            }
            for &c in &nullable {
                if cols[c].nulls.is_some_and(|n| n.is_null(i)) {
                    bitmap[c / 8] &= !(1 << (c % 8));
                }
            }
            out.extend_from_slice(&bitmap);
            for (c, col) in cols.iter().enumerate() {
                if bitmap[c / 8] & (1 << (c % 8)) != 0 {
                    col.put(&mut out, i);
                }
            }
        } else {
            for col in &cols {
                col.put(&mut out, i);
            }
        }
        if out.len() > i32::MAX as usize {
            return Err(Error::Invalid(format!(
                "the encoded values pass 2 GiB at row {i}; encode fewer rows at a time"
            )));
        }
        offsets.push(out.len() as i32);
    }
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    Ok(BinaryArray::new(offsets, Buffer::from_vec(out), None))
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

/// A decoding failure inside one blob; turned into `Error::Corrupt` with the row number.
struct Bad(&'static str);

type Dec<T> = std::result::Result<T, Bad>;

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn take(&mut self, n: usize) -> Dec<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(Bad("the blob is truncated"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Dec<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }

    #[inline(always)]
    fn u8(&mut self) -> Dec<u8> {
        Ok(self.array::<1>()?[0])
    }

    #[inline(always)]
    fn uvarint(&mut self) -> Dec<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err(Bad("a length overflows 64 bits"));
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Bad("a length overflows 64 bits"))
    }

    #[inline(always)]
    fn len(&mut self) -> Dec<usize> {
        usize::try_from(self.uvarint()?).map_err(|_| Bad("a length does not fit in memory"))
    }
}

#[inline(always)]
fn bit(bitmap: &[u8], i: usize) -> bool {
    bitmap[i / 8] & (1 << (i % 8)) != 0
}

/// Values being decoded for one column or for a list's elements.
enum ScalarBuf {
    Bool(BooleanBufferBuilder),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes { offsets: Vec<i64>, data: Vec<u8> },
}

impl ScalarBuf {
    fn new(dt: &DataType, rows: usize, bytes_hint: usize) -> Self {
        match dt {
            DataType::Boolean => ScalarBuf::Bool(BooleanBufferBuilder::new(rows)),
            DataType::Int32 => ScalarBuf::I32(Vec::with_capacity(rows)),
            DataType::Int64 | DataType::Timestamp(..) => ScalarBuf::I64(Vec::with_capacity(rows)),
            DataType::Float32 => ScalarBuf::F32(Vec::with_capacity(rows)),
            DataType::Float64 => ScalarBuf::F64(Vec::with_capacity(rows)),
            _ => {
                let mut offsets = Vec::with_capacity(rows + 1);
                offsets.push(0);
                ScalarBuf::Bytes {
                    offsets,
                    data: Vec::with_capacity(bytes_hint),
                }
            }
        }
    }

    #[inline(always)]
    fn read(&mut self, cur: &mut Cursor<'_>) -> Dec<()> {
        match self {
            ScalarBuf::Bool(b) => match cur.u8()? {
                0 => b.append(false),
                1 => b.append(true),
                _ => return Err(Bad("a bool byte is neither 0 nor 1")),
            },
            ScalarBuf::I32(v) => v.push(i32::from_le_bytes(cur.array()?)),
            ScalarBuf::I64(v) => v.push(i64::from_le_bytes(cur.array()?)),
            ScalarBuf::F32(v) => v.push(f32::from_le_bytes(cur.array()?)),
            ScalarBuf::F64(v) => v.push(f64::from_le_bytes(cur.array()?)),
            ScalarBuf::Bytes { offsets, data } => {
                let n = cur.len()?;
                data.extend_from_slice(cur.take(n)?);
                offsets.push(data.len() as i64);
            }
        }
        Ok(())
    }

    /// Reads `n` consecutive non-null values, matching on the type once.
    #[inline(always)]
    fn read_n(&mut self, cur: &mut Cursor<'_>, n: usize) -> Dec<()> {
        fn fixed<T, const W: usize>(
            v: &mut Vec<T>,
            cur: &mut Cursor<'_>,
            n: usize,
            f: impl Fn([u8; W]) -> T,
        ) -> Dec<()> {
            let bytes = cur.take(n.checked_mul(W).ok_or(Bad("a list is too long"))?)?;
            v.extend(
                bytes
                    .chunks_exact(W)
                    .map(|c| f(c.try_into().expect("chunk of W bytes"))),
            );
            Ok(())
        }
        match self {
            ScalarBuf::I32(v) => fixed(v, cur, n, i32::from_le_bytes),
            ScalarBuf::I64(v) => fixed(v, cur, n, i64::from_le_bytes),
            ScalarBuf::F32(v) => fixed(v, cur, n, f32::from_le_bytes),
            ScalarBuf::F64(v) => fixed(v, cur, n, f64::from_le_bytes),
            _ => (0..n).try_for_each(|_| self.read(cur)),
        }
    }

    #[inline(always)]
    fn push_null(&mut self) {
        match self {
            ScalarBuf::Bool(b) => b.append(false),
            ScalarBuf::I32(v) => v.push(0),
            ScalarBuf::I64(v) => v.push(0),
            ScalarBuf::F32(v) => v.push(0.0),
            ScalarBuf::F64(v) => v.push(0.0),
            ScalarBuf::Bytes { offsets, data } => offsets.push(data.len() as i64),
        }
    }

    fn finish(self, dt: &DataType, nulls: Option<NullBuffer>, column: &str) -> Result<ArrayRef> {
        let corrupt = |e: arrow_schema::ArrowError| {
            Error::Corrupt(format!("column '{column}' does not decode to {dt}: {e}"))
        };
        Ok(match (self, dt) {
            (ScalarBuf::Bool(mut b), _) => Arc::new(BooleanArray::new(b.finish(), nulls)),
            (ScalarBuf::I32(v), _) => Arc::new(Int32Array::new(v.into(), nulls)),
            (ScalarBuf::I64(v), DataType::Timestamp(_, tz)) => Arc::new(
                TimestampMicrosecondArray::new(v.into(), nulls).with_timezone_opt(tz.clone()),
            ),
            (ScalarBuf::I64(v), _) => Arc::new(Int64Array::new(v.into(), nulls)),
            (ScalarBuf::F32(v), _) => Arc::new(Float32Array::new(v.into(), nulls)),
            (ScalarBuf::F64(v), _) => Arc::new(Float64Array::new(v.into(), nulls)),
            (ScalarBuf::Bytes { offsets, data }, dt) => {
                let data = Buffer::from_vec(data);
                let large = OffsetBuffer::new(ScalarBuffer::from(offsets));
                let small = |large: OffsetBuffer<i64>| -> Result<OffsetBuffer<i32>> {
                    if *large.last().unwrap_or(&0) > i32::MAX as i64 {
                        return Err(Error::Invalid(format!(
                            "column '{column}' decodes to more than 2 GiB; use a large_ type"
                        )));
                    }
                    Ok(OffsetBuffer::new(large.iter().map(|&o| o as i32).collect()))
                };
                match dt {
                    DataType::Utf8 => {
                        Arc::new(StringArray::try_new(small(large)?, data, nulls).map_err(corrupt)?)
                    }
                    DataType::LargeUtf8 => {
                        Arc::new(LargeStringArray::try_new(large, data, nulls).map_err(corrupt)?)
                    }
                    DataType::Binary => {
                        Arc::new(BinaryArray::try_new(small(large)?, data, nulls).map_err(corrupt)?)
                    }
                    DataType::LargeBinary => {
                        Arc::new(LargeBinaryArray::try_new(large, data, nulls).map_err(corrupt)?)
                    }
                    DataType::Utf8View => {
                        let a = LargeStringArray::try_new(large, data, nulls).map_err(corrupt)?;
                        arrow_cast::cast(&a, dt)?
                    }
                    _ => {
                        let a = LargeBinaryArray::try_new(large, data, nulls).map_err(corrupt)?;
                        arrow_cast::cast(&a, dt)?
                    }
                }
            }
        })
    }
}

enum BodyBuf {
    Scalar(ScalarBuf),
    List {
        offsets: Vec<i64>,
        elem_field: FieldRef,
        elem_nulls: NullBufferBuilder,
        elems: ScalarBuf,
        large: bool,
    },
}

struct ColBuf {
    field: FieldRef,
    nulls: NullBufferBuilder,
    body: BodyBuf,
}

impl ColBuf {
    fn new(field: &FieldRef, rows: usize, bytes_hint: usize) -> Self {
        let body = match field.data_type() {
            DataType::List(f) | DataType::LargeList(f) => {
                let mut offsets = Vec::with_capacity(rows + 1);
                offsets.push(0);
                BodyBuf::List {
                    offsets,
                    elem_field: f.clone(),
                    elem_nulls: NullBufferBuilder::new(rows),
                    elems: ScalarBuf::new(f.data_type(), rows, bytes_hint),
                    large: matches!(field.data_type(), DataType::LargeList(_)),
                }
            }
            dt => BodyBuf::Scalar(ScalarBuf::new(dt, rows, bytes_hint)),
        };
        ColBuf {
            field: field.clone(),
            nulls: NullBufferBuilder::new(rows),
            body,
        }
    }

    #[inline(always)]
    fn read(&mut self, cur: &mut Cursor<'_>) -> Dec<()> {
        self.nulls.append_non_null();
        match &mut self.body {
            BodyBuf::Scalar(s) => s.read(cur),
            BodyBuf::List {
                offsets,
                elem_nulls,
                elems,
                ..
            } => {
                let head = cur.uvarint()?;
                let count = usize::try_from(head >> 1).map_err(|_| Bad("a list is too long"))?;
                let len = *offsets.last().expect("starts at 0") as u64 + count as u64;
                if len > i64::MAX as u64 {
                    return Err(Bad("a list is too long"));
                }
                if head & 1 == 1 {
                    let bitmap = cur.take(count / 8 + usize::from(count % 8 != 0))?;
                    for k in 0..count {
                        if bit(bitmap, k) {
                            elem_nulls.append_non_null();
                            elems.read(cur)?;
                        } else {
                            elem_nulls.append_null();
                            elems.push_null();
                        }
                    }
                } else {
                    // every element takes at least one byte: refuse impossible counts early
                    if count > cur.buf.len() - cur.pos {
                        return Err(Bad("the blob is truncated"));
                    }
                    elem_nulls.append_n_non_nulls(count);
                    elems.read_n(cur, count)?;
                }
                offsets.push(len as i64);
                Ok(())
            }
        }
    }

    #[inline(always)]
    fn push_null(&mut self) {
        self.nulls.append_null();
        match &mut self.body {
            BodyBuf::Scalar(s) => s.push_null(),
            BodyBuf::List { offsets, .. } => {
                let last = *offsets.last().expect("starts at 0");
                offsets.push(last);
            }
        }
    }

    fn finish(mut self) -> Result<ArrayRef> {
        let nulls = self.nulls.finish();
        let name = self.field.name().clone();
        match self.body {
            BodyBuf::Scalar(s) => s.finish(self.field.data_type(), nulls, &name),
            BodyBuf::List {
                offsets,
                elem_field,
                mut elem_nulls,
                elems,
                large,
            } => {
                let values = elems.finish(elem_field.data_type(), elem_nulls.finish(), &name)?;
                let corrupt = |e: arrow_schema::ArrowError| {
                    Error::Corrupt(format!(
                        "column '{name}' does not decode to {}: {e}",
                        self.field.data_type()
                    ))
                };
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                if large {
                    Ok(Arc::new(
                        LargeListArray::try_new(elem_field, offsets, values, nulls)
                            .map_err(corrupt)?,
                    ))
                } else {
                    if *offsets.last().unwrap_or(&0) > i32::MAX as i64 {
                        return Err(Error::Invalid(format!(
                            "column '{name}' has more than 2^31 list elements; use large_list"
                        )));
                    }
                    let small = OffsetBuffer::new(offsets.iter().map(|&o| o as i32).collect());
                    Ok(Arc::new(
                        ListArray::try_new(elem_field, small, values, nulls).map_err(corrupt)?,
                    ))
                }
            }
        }
    }
}

/// The decoded rows: event timestamps, created timestamps (both `timestamp[us, UTC]`) and
/// one array per field.
pub type Decoded = (
    TimestampMicrosecondArray,
    TimestampMicrosecondArray,
    Vec<ArrayRef>,
);

/// Decodes N blobs (a null blob means "not found") under the schema `fields`. Null blobs
/// give nulls in every output, including both timestamps. Each output column has exactly
/// its field's type.
pub fn decode_values(blobs: &BinaryArray, fields: &[FieldRef]) -> Result<Decoded> {
    let bytes = ByteCol::Small {
        offsets: blobs.value_offsets(),
        data: blobs.value_data(),
    };
    decode(bytes, blobs.nulls(), blobs.len(), fields)
}

/// [`decode_values`] over any binary-like array (binary, large_binary, binary_view).
pub fn decode_values_array(blobs: &ArrayRef, fields: &[FieldRef]) -> Result<Decoded> {
    let bytes = match blobs.data_type() {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            ByteCol::new(blobs.as_ref()).expect("binary type")
        }
        other => {
            return Err(Error::UnsupportedType {
                column: "blobs".to_string(),
                found: other.clone(),
                expected: "binary".to_string(),
            })
        }
    };
    decode(bytes, blobs.nulls(), blobs.len(), fields)
}

/// A schema checked and fingerprinted once, for decoding many batches (the online path
/// decodes a few blobs per request with the same schema).
pub struct ValueDecoder {
    fields: Vec<FieldRef>,
    tags: Vec<u8>,
    fp_named: u32,
    fp_types: u32,
}

impl ValueDecoder {
    pub fn new(fields: &[FieldRef]) -> Result<Self> {
        let tags = fields
            .iter()
            .map(|f| codec_tag(f.data_type(), f.name()))
            .collect::<Result<Vec<_>>>()?;
        let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
        Ok(ValueDecoder {
            fp_named: fingerprint(Some(&names), &tags),
            fp_types: fingerprint(None, &tags),
            fields: fields.to_vec(),
            tags,
        })
    }

    /// [`decode_values`] under this decoder's schema.
    pub fn decode(&self, blobs: &BinaryArray) -> Result<Decoded> {
        let bytes = ByteCol::Small {
            offsets: blobs.value_offsets(),
            data: blobs.value_data(),
        };
        self.decode_bytes(bytes, blobs.nulls(), blobs.len())
    }
}

/// One decoded scalar, borrowing strings and bytes from the blob.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar<'a> {
    Bool(bool),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    /// Microseconds since the Unix epoch.
    Timestamp(i64),
    Str(&'a str),
    Bin(&'a [u8]),
}

/// One decoded field of a row, for [`ValueDecoder::decode_row`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowValue<'a> {
    Null,
    Scalar(Scalar<'a>),
    /// A list: its elements are `elems[start..start + len]` (None for a null element).
    List {
        start: usize,
        len: usize,
    },
}

impl ValueDecoder {
    /// A blob's fixed head, checked against this schema, and the created time after it:
    /// (event ts, created ts, flags); leaves `cur` at the null bitmap.
    fn read_head(&self, cur: &mut Cursor<'_>) -> Dec<(i64, Option<i64>, u8)> {
        let head: [u8; HEAD] = cur.array()?;
        let flags = head[1];
        if head[0] != VERSION {
            return Err(Bad("unknown codec version"));
        }
        if flags & !F_KNOWN != 0 {
            return Err(Bad("unknown flag bits"));
        }
        let count = u16::from_le_bytes([head[2], head[3]]) as usize;
        let fp = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
        let want = if flags & F_NAMED != 0 {
            self.fp_named
        } else {
            self.fp_types
        };
        if count != self.fields.len() || fp != want {
            return Err(Bad(SCHEMA_CHANGED));
        }
        let ts = i64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
        let created = if flags & F_CREATED != 0 {
            Some(i64::from_le_bytes(cur.array()?))
        } else {
            None
        };
        Ok((ts, created, flags))
    }

    /// Decodes one blob without building Arrow arrays (the online path reads a handful of
    /// rows): appends one [`RowValue`] per field to `values` and list elements to `elems`,
    /// and returns the event and created timestamps. The same checks as
    /// [`decode_values`], with the same errors (`row` names the blob in them).
    pub fn decode_row<'a>(
        &self,
        row: usize,
        blob: &'a [u8],
        values: &mut Vec<RowValue<'a>>,
        elems: &mut Vec<Option<Scalar<'a>>>,
    ) -> Result<(i64, Option<i64>)> {
        let nfields = self.fields.len();
        let mut cur = Cursor { buf: blob, pos: 0 };
        let out = (|| -> Dec<(i64, Option<i64>)> {
            let (ts, created, flags) = self.read_head(&mut cur)?;
            let bitmap = if flags & F_NULLS != 0 {
                Some(cur.take(nfields.div_ceil(8))?)
            } else {
                None
            };
            for (k, &tag) in self.tags.iter().enumerate() {
                if bitmap.is_some_and(|b| !bit(b, k)) {
                    values.push(RowValue::Null);
                } else if tag & T_LIST != 0 {
                    let head = cur.uvarint()?;
                    let count =
                        usize::try_from(head >> 1).map_err(|_| Bad("a list is too long"))?;
                    let start = elems.len();
                    if head & 1 == 1 {
                        let bits = cur.take(count / 8 + usize::from(count % 8 != 0))?;
                        let nullable = match self.fields[k].data_type() {
                            DataType::List(f) | DataType::LargeList(f) => f.is_nullable(),
                            _ => true,
                        };
                        for e in 0..count {
                            if bit(bits, e) {
                                elems.push(Some(read_scalar(&mut cur, tag & !T_LIST)?));
                            } else if nullable {
                                elems.push(None);
                            } else {
                                return Err(Bad("a list holds a null under a non-nullable child"));
                            }
                        }
                    } else {
                        if count > cur.buf.len() - cur.pos {
                            return Err(Bad("the blob is truncated"));
                        }
                        for _ in 0..count {
                            elems.push(Some(read_scalar(&mut cur, tag & !T_LIST)?));
                        }
                    }
                    values.push(RowValue::List { start, len: count });
                } else {
                    values.push(RowValue::Scalar(read_scalar(&mut cur, tag)?));
                }
            }
            if cur.pos != blob.len() {
                return Err(Bad("bytes follow the last field"));
            }
            Ok((ts, created))
        })();
        out.map_err(|b| corrupt_at(row, blob, b, nfields))
    }
}

#[inline(always)]
fn read_scalar<'a>(cur: &mut Cursor<'a>, tag: u8) -> Dec<Scalar<'a>> {
    Ok(match tag {
        T_BOOL => match cur.u8()? {
            0 => Scalar::Bool(false),
            1 => Scalar::Bool(true),
            _ => return Err(Bad("a bool byte is neither 0 nor 1")),
        },
        T_I32 => Scalar::I32(i32::from_le_bytes(cur.array()?)),
        T_I64 => Scalar::I64(i64::from_le_bytes(cur.array()?)),
        T_F32 => Scalar::F32(f32::from_le_bytes(cur.array()?)),
        T_F64 => Scalar::F64(f64::from_le_bytes(cur.array()?)),
        T_TS => Scalar::Timestamp(i64::from_le_bytes(cur.array()?)),
        T_STR => {
            let n = cur.len()?;
            let bytes = cur.take(n)?;
            Scalar::Str(std::str::from_utf8(bytes).map_err(|_| Bad("a string is not valid UTF-8"))?)
        }
        _ => {
            let n = cur.len()?;
            Scalar::Bin(cur.take(n)?)
        }
    })
}

fn decode(
    blobs: ByteCol<'_>,
    blob_nulls: Option<&NullBuffer>,
    rows: usize,
    fields: &[FieldRef],
) -> Result<Decoded> {
    ValueDecoder::new(fields)?.decode_bytes(blobs, blob_nulls, rows)
}

impl ValueDecoder {
    fn decode_bytes(
        &self,
        blobs: ByteCol<'_>,
        blob_nulls: Option<&NullBuffer>,
        rows: usize,
    ) -> Result<Decoded> {
        let (fields, tags) = (&self.fields, &self.tags);
        let nfields = fields.len();

        let var_fields = tags
            .iter()
            .filter(|t| matches!(*t & !T_LIST, T_STR | T_BIN))
            .count();
        let fixed = rows * (HEAD + nfields.div_ceil(8));
        let bytes_hint = blobs
            .total_len()
            .saturating_sub(fixed)
            .checked_div(var_fields)
            .unwrap_or(0);
        // The decoded columns: the values' bytes plus about 16 bytes per value and 24 per
        // row of timestamps and validity, checked before any is built.
        let need = mem::bytes(rows, 24 + 16 * nfields, blobs.total_len());
        mem::check(DECODE, need)?;
        let mut cols: Vec<ColBuf> = fields
            .iter()
            .map(|f| ColBuf::new(f, rows, bytes_hint))
            .collect();
        let mut event = mem::with_capacity(rows, DECODE)?;
        let mut created = mem::with_capacity(rows, DECODE)?;
        let mut event_nulls = NullBufferBuilder::new(rows);
        let mut created_nulls = NullBufferBuilder::new(rows);

        for i in 0..rows {
            if blob_nulls.is_some_and(|n| n.is_null(i)) {
                event.push(0);
                event_nulls.append_null();
                created.push(0);
                created_nulls.append_null();
                for c in &mut cols {
                    c.push_null();
                }
                continue;
            }
            let blob = blobs.get(i);
            let mut cur = Cursor { buf: blob, pos: 0 };
            let row = self.read_head(&mut cur);
            let (ts, c, flags) = row.map_err(|b| corrupt_at(i, blob, b, nfields))?;
            let body = (|| -> Dec<()> {
                if flags & F_NULLS != 0 {
                    let bitmap = cur.take(nfields.div_ceil(8))?;
                    for (k, col) in cols.iter_mut().enumerate() {
                        if bit(bitmap, k) {
                            col.read(&mut cur)?;
                        } else {
                            col.push_null();
                        }
                    }
                } else {
                    for col in cols.iter_mut() {
                        col.read(&mut cur)?;
                    }
                }
                if cur.pos != blob.len() {
                    return Err(Bad("bytes follow the last field"));
                }
                Ok(())
            })();
            body.map_err(|b| corrupt_at(i, blob, b, nfields))?;
            event.push(ts);
            event_nulls.append_non_null();
            created.push(c.unwrap_or(0));
            created_nulls.append(c.is_some());
        }

        let event =
            TimestampMicrosecondArray::new(event.into(), event_nulls.finish()).with_timezone("UTC");
        let created = TimestampMicrosecondArray::new(created.into(), created_nulls.finish())
            .with_timezone("UTC");
        let columns = cols
            .into_iter()
            .map(ColBuf::finish)
            .collect::<Result<Vec<_>>>()?;
        Ok((event, created, columns))
    }
}

const SCHEMA_CHANGED: &str = "schema changed";

fn corrupt_at(row: usize, blob: &[u8], bad: Bad, nfields: usize) -> Error {
    if bad.0 == SCHEMA_CHANGED {
        let count = blob.get(2..4).map(|b| u16::from_le_bytes([b[0], b[1]]));
        return Error::Corrupt(format!(
            "the value at row {row} was written under a different schema of the feature view \
             ({} fields, expected {nfields}; or the names or types differ): the view's schema \
             changed since it was materialized, re-materialize it",
            count.map_or("?".to_string(), |c| c.to_string()),
        ));
    }
    Error::Corrupt(format!(
        "the value at row {row} ({} bytes) cannot be decoded: {}",
        blob.len(),
        bad.0
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use arrow_array::builder::{
        BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder,
        LargeListBuilder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
    };
    use arrow_array::{BinaryViewArray, StringViewArray};
    use arrow_schema::Field;

    use super::*;

    fn field(name: &str, dt: DataType) -> FieldRef {
        Arc::new(Field::new(name, dt, true))
    }

    fn list_of(dt: DataType) -> DataType {
        DataType::List(Arc::new(Field::new("item", dt, true)))
    }

    fn ts(v: Vec<i64>) -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
    }

    /// One column of every supported type, 5 rows, with nulls, empty strings and lists.
    fn all_types() -> (Vec<FieldRef>, Vec<ArrayRef>) {
        let tsz = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let mut fields = vec![
            field("b", DataType::Boolean),
            field("i32", DataType::Int32),
            field("i64", DataType::Int64),
            field("f32", DataType::Float32),
            field("f64", DataType::Float64),
            field("s", DataType::Utf8),
            field("bin", DataType::Binary),
            field("t", tsz.clone()),
        ];
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(BooleanArray::from(vec![
                Some(true),
                None,
                Some(false),
                Some(true),
                None,
            ])),
            Arc::new(Int32Array::from(vec![
                Some(i32::MIN),
                Some(0),
                None,
                Some(7),
                Some(-1),
            ])),
            Arc::new(Int64Array::from(vec![
                Some(i64::MAX),
                None,
                Some(0),
                Some(-5),
                Some(1),
            ])),
            Arc::new(Float32Array::from(vec![
                Some(1.5),
                Some(f32::NAN),
                None,
                Some(-0.0),
                Some(3.0),
            ])),
            Arc::new(Float64Array::from(vec![
                None,
                Some(f64::INFINITY),
                Some(2.25),
                Some(0.0),
                Some(-1e300),
            ])),
            Arc::new(StringArray::from(vec![
                Some("héllo"),
                Some(""),
                None,
                Some("x"),
                Some("a longer string value"),
            ])),
            Arc::new(BinaryArray::from_opt_vec(vec![
                Some(b"\x00\x01"),
                None,
                Some(b""),
                Some(b"\xff"),
                Some(b"z"),
            ])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    Some(1),
                    None,
                    Some(-1),
                    Some(i64::MIN),
                    Some(i64::MAX),
                ])
                .with_timezone("UTC"),
            ),
        ];
        // lists: [ [v, null], null, [], [v], [null] ] for each scalar type
        fn lists<B: arrow_array::builder::ArrayBuilder>(
            mut b: ListBuilder<B>,
            mut push: impl FnMut(&mut B, Option<usize>),
        ) -> ArrayRef {
            push(b.values(), Some(0));
            push(b.values(), None);
            b.append(true);
            b.append(false);
            b.append(true);
            push(b.values(), Some(1));
            b.append(true);
            push(b.values(), None);
            b.append(true);
            Arc::new(b.finish())
        }
        cols.push(lists(ListBuilder::new(BooleanBuilder::new()), |b, v| {
            b.append_option(v.map(|v| v == 0))
        }));
        cols.push(lists(ListBuilder::new(Int32Builder::new()), |b, v| {
            b.append_option(v.map(|v| v as i32 - 3))
        }));
        cols.push(lists(ListBuilder::new(Int64Builder::new()), |b, v| {
            b.append_option(v.map(|v| v as i64 * 1_000_000_000_000))
        }));
        cols.push(lists(ListBuilder::new(Float32Builder::new()), |b, v| {
            b.append_option(v.map(|v| v as f32 + 0.5))
        }));
        cols.push(lists(ListBuilder::new(Float64Builder::new()), |b, v| {
            b.append_option(v.map(|v| v as f64 - 0.25))
        }));
        cols.push(lists(ListBuilder::new(StringBuilder::new()), |b, v| {
            b.append_option(v.map(|v| if v == 0 { "" } else { "élément" }))
        }));
        cols.push(lists(ListBuilder::new(BinaryBuilder::new()), |b, v| {
            b.append_option(v.map(|v| vec![v as u8; v * 3]))
        }));
        cols.push(lists(
            ListBuilder::new(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
            |b, v| b.append_option(v.map(|v| v as i64 + 1_700_000_000_000_000)),
        ));
        for (name, c) in ["lb", "li32", "li64", "lf32", "lf64", "ls", "lbin", "lt"]
            .iter()
            .zip(&cols[8..])
        {
            fields.push(field(name, c.data_type().clone()));
        }
        (fields, cols)
    }

    fn assert_same(a: &dyn Array, b: &dyn Array) {
        // NaN != NaN for PartialEq on arrays; compare the bit patterns through the data
        assert_eq!(a.to_data(), b.to_data(), "{a:?} vs {b:?}");
    }

    #[test]
    fn round_trip_every_type() {
        let (fields, cols) = all_types();
        let event = ts(vec![10, 20, 30, 40, 50]);
        let created = ts(vec![1, 2, 3, 4, 5]);
        let created = Arc::new(
            created
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .enumerate()
                .map(|(i, v)| if i == 2 { None } else { v })
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ) as ArrayRef;
        for named in [true, false] {
            let blobs = if named {
                encode_values_with_fields(&event, Some(&created), &cols, &fields).unwrap()
            } else {
                encode_values(&event, Some(&created), &cols).unwrap()
            };
            assert_eq!(blobs.len(), 5);
            assert_eq!(blobs.null_count(), 0);
            let (e, c, out) = decode_values(&blobs, &fields).unwrap();
            assert_eq!(e.values().to_vec(), vec![10, 20, 30, 40, 50]);
            assert_eq!(e.null_count(), 0);
            assert_eq!(
                e.data_type(),
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            );
            assert_eq!(
                c.iter().collect::<Vec<_>>(),
                vec![Some(1), Some(2), None, Some(4), Some(5)]
            );
            assert_eq!(out.len(), cols.len());
            for (i, (o, want)) in out.iter().zip(&cols).enumerate() {
                assert_eq!(o.data_type(), fields[i].data_type());
                assert_same(o.as_ref(), want.as_ref());
            }
        }
    }

    #[test]
    fn null_blobs_decode_to_nulls() {
        let (fields, cols) = all_types();
        let blobs = encode_values(&ts(vec![1, 2, 3, 4, 5]), None, &cols).unwrap();
        let with_nulls = BinaryArray::from_opt_vec(vec![None, Some(blobs.value(1)), None]);
        let (e, c, out) = decode_values(&with_nulls, &fields).unwrap();
        assert_eq!(e.iter().collect::<Vec<_>>(), vec![None, Some(2), None]);
        assert_eq!(c.null_count(), 3);
        for (o, want) in out.iter().zip(&cols) {
            assert_eq!(o.len(), 3);
            assert!(o.is_null(0) && o.is_null(2));
            assert_same(o.slice(1, 1).as_ref(), want.slice(1, 1).as_ref());
        }
    }

    #[test]
    fn other_layouts_and_slices() {
        // large / view inputs encode like the plain ones; decode follows the field types
        let s = Arc::new(StringArray::from(vec![
            Some("a"),
            None,
            Some(""),
            Some("dd"),
        ])) as ArrayRef;
        let v = Arc::new(StringViewArray::from(vec![
            Some("a"),
            None,
            Some(""),
            Some("dd"),
        ])) as ArrayRef;
        let lb = Arc::new(LargeBinaryArray::from_opt_vec(vec![
            Some(b"a"),
            None,
            Some(b""),
            Some(b"dd"),
        ])) as ArrayRef;
        let mut ll = LargeListBuilder::new(Int64Builder::new());
        ll.values().append_value(1);
        ll.append(true);
        ll.append(false);
        ll.append(true);
        ll.values().append_null();
        ll.values().append_value(2);
        ll.append(true);
        let ll = Arc::new(ll.finish()) as ArrayRef;
        let event = ts(vec![1, 2, 3, 4]);
        let a = encode_values(&event, None, &[s.clone(), lb.clone(), ll.clone()]).unwrap();
        let b = encode_values(&event, None, &[v.clone(), lb.clone(), ll.clone()]).unwrap();
        assert_eq!(a, b);

        let fields = vec![
            field("s", DataType::Utf8View),
            field("b", DataType::BinaryView),
            field("l", list_of(DataType::Int64)),
        ];
        let (_, _, out) = decode_values(&a, &fields).unwrap();
        assert_same(out[0].as_ref(), v.as_ref());
        let bv: BinaryViewArray = lb.as_binary::<i64>().iter().collect();
        assert_same(out[1].as_ref(), &bv);
        assert_eq!(out[2].data_type(), &list_of(DataType::Int64));
        let l = out[2].as_list::<i32>();
        assert_eq!(l.value_offsets().to_vec(), vec![0, 1, 1, 1, 3]);
        assert!(l.is_null(1) && !l.is_null(2));

        let fields = vec![
            field("s", DataType::LargeUtf8),
            field("b", DataType::LargeBinary),
            field("l", ll.data_type().clone()),
        ];
        let (_, _, out) = decode_values(&a, &fields).unwrap();
        assert_same(out[1].as_ref(), lb.as_ref());
        assert_same(out[2].as_ref(), ll.as_ref());

        // sliced inputs
        let sliced = encode_values(
            &event.slice(1, 3),
            None,
            &[s.slice(1, 3), lb.slice(1, 3), ll.slice(1, 3)],
        )
        .unwrap();
        for i in 0..3 {
            assert_eq!(sliced.value(i), a.value(i + 1));
        }
    }

    #[test]
    fn no_columns_and_int64_timestamps() {
        let event = Arc::new(Int64Array::from(vec![5, 6])) as ArrayRef;
        let blobs = encode_values(&event, Some(&event), &[]).unwrap();
        assert_eq!(blobs.value(0).len(), HEAD + 8);
        let (e, c, out) = decode_values(&blobs, &[]).unwrap();
        assert_eq!(e.values().to_vec(), vec![5, 6]);
        assert_eq!(c.values().to_vec(), vec![5, 6]);
        assert!(out.is_empty());
    }

    #[test]
    fn layout_is_as_documented() {
        let event = ts(vec![0x0102]);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(vec![Some(7)])),
            Arc::new(StringArray::from(vec![None::<&str>])),
            Arc::new(StringArray::from(vec!["hi"])),
        ];
        let created = ts(vec![3]);
        let blob = encode_values(&event, Some(&created), &cols).unwrap();
        let fields = vec![
            field("a", DataType::Int32),
            field("b", DataType::Utf8),
            field("c", DataType::Utf8),
        ];
        let fp = schema_fingerprint(&fields, false).unwrap();
        let mut want = vec![1u8, F_CREATED | F_NULLS, 3, 0];
        want.extend_from_slice(&fp.to_le_bytes());
        want.extend_from_slice(&0x0102i64.to_le_bytes());
        want.extend_from_slice(&3i64.to_le_bytes());
        want.push(0b101);
        want.extend_from_slice(&7i32.to_le_bytes());
        want.extend_from_slice(&[2, b'h', b'i']);
        assert_eq!(blob.value(0), want.as_slice());
    }

    #[test]
    fn schema_change_is_reported() {
        let cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![1]))];
        let fields = vec![field("a", DataType::Int64)];
        let blobs = encode_values_with_fields(&ts(vec![1]), None, &cols, &fields).unwrap();
        for other in [
            vec![field("renamed", DataType::Int64)],
            vec![field("a", DataType::Float64)],
            vec![field("a", DataType::Int64), field("b", DataType::Int64)],
            vec![],
        ] {
            let err = decode_values(&blobs, &other).unwrap_err();
            assert!(matches!(err, Error::Corrupt(_)), "{err}");
            assert!(err.to_string().contains("re-materialize"), "{err}");
        }
        // the unnamed fingerprint still catches type changes
        let blobs = encode_values(&ts(vec![1]), None, &cols).unwrap();
        assert!(decode_values(&blobs, &[field("renamed", DataType::Int64)]).is_ok());
        assert!(decode_values(&blobs, &[field("a", DataType::Int32)]).is_err());
        // encode-side mismatch between fields and columns
        assert!(matches!(
            encode_values_with_fields(&ts(vec![1]), None, &cols, &[field("a", DataType::Utf8)]),
            Err(Error::Mismatch(_))
        ));
    }

    #[test]
    fn bad_inputs() {
        let cols: Vec<ArrayRef> = vec![Arc::new(arrow_array::UInt8Array::from(vec![1]))];
        assert!(matches!(
            encode_values(&ts(vec![1]), None, &cols),
            Err(Error::UnsupportedType { .. })
        ));
        let null_ts = Arc::new(Int64Array::from(vec![None, Some(1)])) as ArrayRef;
        assert!(matches!(
            encode_values(&null_ts, None, &[]),
            Err(Error::Invalid(_))
        ));
        let cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![1, 2]))];
        assert!(matches!(
            encode_values(&ts(vec![1]), None, &cols),
            Err(Error::Mismatch(_))
        ));
        assert!(matches!(
            decode_values(
                &BinaryArray::from_vec(vec![]),
                &[field("x", DataType::Date32)]
            ),
            Err(Error::UnsupportedType { .. })
        ));
        // a non-nullable list element field cannot take null elements
        let (fields, cols) = all_types();
        let blobs = encode_values(&ts(vec![1, 2, 3, 4, 5]), None, &cols).unwrap();
        let mut strict = fields.clone();
        strict[9] = field(
            "li32",
            DataType::List(Arc::new(Field::new("item", DataType::Int32, false))),
        );
        assert!(matches!(
            decode_values(&blobs, &strict),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn truncated_and_garbage_blobs_are_corrupt_not_panics() {
        let (fields, cols) = all_types();
        let created = ts(vec![1, 2, 3, 4, 5]);
        let blobs = encode_values(&ts(vec![1, 2, 3, 4, 5]), Some(&created), &cols).unwrap();
        let mut x: u64 = 0x9E37_79B9;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..blobs.len() {
            let blob = blobs.value(i);
            // every strict prefix fails
            for cut in 0..blob.len() {
                let b = BinaryArray::from_vec(vec![&blob[..cut]]);
                let err = decode_values(&b, &fields).unwrap_err();
                assert!(matches!(err, Error::Corrupt(_)), "cut {cut}: {err}");
            }
            // an extra byte fails
            let mut longer = blob.to_vec();
            longer.push(0);
            assert!(decode_values(&BinaryArray::from_vec(vec![&longer]), &fields).is_err());
            // random byte flips never panic (they may happen to decode)
            for _ in 0..2000 {
                let mut b = blob.to_vec();
                for _ in 0..1 + rnd() % 4 {
                    let at = (rnd() as usize) % b.len();
                    b[at] = rnd() as u8;
                }
                let _ = decode_values(&BinaryArray::from_vec(vec![&b]), &fields);
            }
        }
        // pure garbage, with a valid header so the body parser is exercised
        let header = &blobs.value(0)[..HEAD];
        for _ in 0..20_000 {
            let n = (rnd() % 64) as usize;
            let mut b = if rnd() % 2 == 0 {
                header.to_vec()
            } else {
                vec![]
            };
            for _ in 0..n {
                b.push(rnd() as u8);
            }
            if let Err(e) = decode_values(&BinaryArray::from_vec(vec![&b]), &fields) {
                assert!(matches!(e, Error::Corrupt(_)), "{e}");
            }
        }
        // huge list counts and varint overflow
        let lf = vec![field("l", list_of(DataType::Int64))];
        let lfp = schema_fingerprint(&lf, false).unwrap();
        for body in [
            vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            vec![0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
            vec![
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            vec![0x80],
        ] {
            let mut b = vec![1u8, 0, 1, 0];
            b.extend_from_slice(&lfp.to_le_bytes());
            b.extend_from_slice(&0i64.to_le_bytes());
            b.extend_from_slice(&body);
            let err = decode_values(&BinaryArray::from_vec(vec![&b]), &lf).unwrap_err();
            assert!(matches!(err, Error::Corrupt(_)), "{err}");
        }
        // invalid utf-8 in a string field
        let sf = vec![field("s", DataType::Utf8)];
        let mut b = vec![1u8, 0, 1, 0];
        b.extend_from_slice(&schema_fingerprint(&sf, false).unwrap().to_le_bytes());
        b.extend_from_slice(&0i64.to_le_bytes());
        b.extend_from_slice(&[2, 0xc3, 0x28]);
        let err = decode_values(&BinaryArray::from_vec(vec![&b]), &sf).unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{err}");
    }

    /// Throughput check; run with `cargo test --release -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_codec() {
        // best of 3, CPU time of this thread (the machine is shared, wall time is noisy)
        fn cpu_ns() -> Option<u64> {
            let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
            s.split_whitespace().next()?.parse().ok()
        }
        fn timed<T>(f: impl Fn() -> T) -> (T, f64) {
            let mut best = f64::MAX;
            let mut out = None;
            for _ in 0..3 {
                let (t0, c0) = (Instant::now(), cpu_ns());
                out = Some(f());
                let dt = match (c0, cpu_ns()) {
                    (Some(a), Some(b)) => (b - a) as f64 / 1e9,
                    _ => t0.elapsed().as_secs_f64(),
                };
                best = best.min(dt);
            }
            (out.expect("ran"), best)
        }
        let n = 1_000_000usize;
        let event = ts((0..n as i64).collect());
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(
                (0..n).map(|i| i as f64 * 0.5).collect::<Vec<_>>(),
            )),
            Arc::new(Float32Array::from(
                (0..n)
                    .map(|i| if i % 10 == 0 { None } else { Some(i as f32) })
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                (0..n).map(|i| format!("value-{i}")).collect::<Vec<_>>(),
            )),
            Arc::new(BooleanArray::from(
                (0..n).map(|i| i % 3 == 0).collect::<Vec<_>>(),
            )),
        ];
        let fields: Vec<FieldRef> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| field(&format!("f{i}"), c.data_type().clone()))
            .collect();
        let (blobs, enc) =
            timed(|| encode_values_with_fields(&event, None, &cols, &fields).unwrap());
        let ((_, _, out), dec) = timed(|| decode_values(&blobs, &fields).unwrap());
        assert_eq!(out[3].as_ref(), cols[3].as_ref());
        println!(
            "5 features (int64, float64, float32 10% null, string, bool), {} B/blob: encode {:.1} M rows/s, decode {:.1} M rows/s",
            blobs.value_data().len() / n,
            n as f64 / enc / 1e6,
            n as f64 / dec / 1e6
        );
        let mut lb = ListBuilder::new(Float32Builder::new());
        for i in 0..n {
            for j in 0..16 {
                lb.values().append_value((i + j) as f32);
            }
            lb.append(true);
        }
        let cols: Vec<ArrayRef> = vec![Arc::new(lb.finish())];
        let fields = vec![field("emb", cols[0].data_type().clone())];
        let (blobs, enc) =
            timed(|| encode_values_with_fields(&event, None, &cols, &fields).unwrap());
        let (_, dec) = timed(|| decode_values(&blobs, &fields).unwrap());
        println!(
            "list<float32>[16]: encode {:.1} M rows/s, decode {:.1} M rows/s",
            n as f64 / enc / 1e6,
            n as f64 / dec / 1e6
        );
    }

    /// `v` (from `decode_row`) is the value at `arr[r]`.
    fn row_value_is(
        arr: &dyn Array,
        r: usize,
        v: &RowValue<'_>,
        elems: &[Option<Scalar<'_>>],
    ) -> bool {
        fn scalar_is(arr: &dyn Array, i: usize, s: &Scalar<'_>) -> bool {
            match *s {
                Scalar::Bool(b) => arr.as_boolean().value(i) == b,
                Scalar::I32(x) => arr.as_primitive::<Int32Type>().value(i) == x,
                Scalar::I64(x) => arr.as_primitive::<Int64Type>().value(i) == x,
                Scalar::F32(x) => {
                    arr.as_primitive::<Float32Type>().value(i).to_bits() == x.to_bits()
                }
                Scalar::F64(x) => {
                    arr.as_primitive::<Float64Type>().value(i).to_bits() == x.to_bits()
                }
                Scalar::Timestamp(x) => {
                    arr.as_primitive::<TimestampMicrosecondType>().value(i) == x
                }
                Scalar::Str(x) => ByteCol::new(arr).unwrap().get(i) == x.as_bytes(),
                Scalar::Bin(x) => ByteCol::new(arr).unwrap().get(i) == x,
            }
        }
        match v {
            RowValue::Null => arr.is_null(r),
            RowValue::Scalar(s) => arr.is_valid(r) && scalar_is(arr, r, s),
            RowValue::List { start, len } => {
                let items = match arr.data_type() {
                    DataType::List(_) => arr.as_list::<i32>().value(r),
                    _ => arr.as_list::<i64>().value(r),
                };
                arr.is_valid(r)
                    && items.len() == *len
                    && (0..*len).all(|e| match &elems[start + e] {
                        None => items.is_null(e),
                        Some(s) => items.is_valid(e) && scalar_is(items.as_ref(), e, s),
                    })
            }
        }
    }

    #[test]
    fn decode_row_agrees_with_decode_values() {
        let (fields, cols) = all_types();
        let created = ts(vec![1, 2, 3, 4, 5]);
        let blobs = encode_values_with_fields(
            &ts(vec![10, 20, 30, 40, 50]),
            Some(&created),
            &cols,
            &fields,
        )
        .unwrap();
        let dec = ValueDecoder::new(&fields).unwrap();
        let (event, created, out) = decode_values(&blobs, &fields).unwrap();
        for r in 0..blobs.len() {
            let (mut values, mut elems) = (Vec::new(), Vec::new());
            let (ev, cr) = dec
                .decode_row(r, blobs.value(r), &mut values, &mut elems)
                .unwrap();
            assert_eq!(
                (ev, cr),
                (
                    event.value(r),
                    created.is_valid(r).then(|| created.value(r))
                )
            );
            assert_eq!(values.len(), fields.len());
            for (k, v) in values.iter().enumerate() {
                assert!(
                    row_value_is(out[k].as_ref(), r, v, &elems),
                    "row {r} field {k}: {v:?}"
                );
            }
        }
        // damaged blobs: decode_row fails exactly when decode_values does
        let mut x: u64 = 0x2545_F491;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let agree = |b: &[u8]| {
            let arrow = decode_values(&BinaryArray::from_vec(vec![b]), &fields);
            let row = dec.decode_row(0, b, &mut Vec::new(), &mut Vec::new());
            assert_eq!(arrow.is_ok(), row.is_ok(), "{b:?}");
            if let (Err(a), Err(r)) = (arrow, row) {
                assert!(matches!(r, Error::Corrupt(_)), "{r}");
                assert_eq!(
                    a.to_string().contains("schema"),
                    r.to_string().contains("schema")
                );
            }
        };
        for r in 0..blobs.len() {
            let blob = blobs.value(r);
            (0..blob.len()).for_each(|cut| agree(&blob[..cut]));
            agree(&[blob, &[0]].concat());
            for _ in 0..2000 {
                let mut b = blob.to_vec();
                for _ in 0..1 + rnd() % 4 {
                    let at = (rnd() as usize) % b.len();
                    b[at] = rnd() as u8;
                }
                agree(&b);
            }
        }
    }
}
