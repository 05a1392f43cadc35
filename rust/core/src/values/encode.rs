//! Encoding: Arrow columns -> one blob per row.

use super::*;

/// Scalar values of one column (or of a list's elements), borrowed.
#[derive(Clone, Copy)]
pub(super) enum Scalars<'a> {
    Bool(&'a BooleanArray),
    I32(&'a [i32]),
    I64(&'a [i64]),
    F32(&'a [f32]),
    F64(&'a [f64]),
    Bytes(ByteCol<'a>),
}

impl<'a> Scalars<'a> {
    pub(super) fn new(array: &'a dyn Array) -> Option<Self> {
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
    pub(super) fn size_bound(&self, lo: usize, hi: usize) -> usize {
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
    pub(super) fn put_range(&self, out: &mut Vec<u8>, lo: usize, hi: usize) {
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
    pub(super) fn put(&self, out: &mut Vec<u8>, i: usize) {
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
pub(super) enum Offsets<'a> {
    Small(&'a [i32]),
    Large(&'a [i64]),
}

impl Offsets<'_> {
    #[inline(always)]
    pub(super) fn range(&self, i: usize) -> (usize, usize) {
        match self {
            Offsets::Small(o) => (o[i] as usize, o[i + 1] as usize),
            Offsets::Large(o) => (o[i] as usize, o[i + 1] as usize),
        }
    }
}

pub(super) enum Body<'a> {
    Scalar(Scalars<'a>),
    List {
        offsets: Offsets<'a>,
        elem_nulls: Option<&'a NullBuffer>,
        elems: Scalars<'a>,
    },
}

pub(super) struct EncCol<'a> {
    nulls: Option<&'a NullBuffer>,
    body: Body<'a>,
}

impl<'a> EncCol<'a> {
    pub(super) fn new(array: &'a ArrayRef, column: &str) -> Result<Self> {
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

    pub(super) fn size_bound(&self, rows: usize) -> usize {
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
    pub(super) fn put(&self, out: &mut Vec<u8>, i: usize) {
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
pub(super) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline(always)]
pub(super) fn put_bitmap(out: &mut Vec<u8>, n: usize, set: impl Fn(usize) -> bool) {
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

pub(super) fn encode(
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
