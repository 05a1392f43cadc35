//! Decoding many blobs into Arrow columns (materialized reads, `decode_values`).

use super::*;

/// Values being decoded for one column or for a list's elements.
pub(super) enum ScalarBuf {
    Bool(BooleanBufferBuilder),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes { offsets: Vec<i64>, data: Vec<u8> },
}

impl ScalarBuf {
    pub(super) fn new(dt: &DataType, rows: usize, bytes_hint: usize) -> Self {
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
    pub(super) fn read(&mut self, cur: &mut Cursor<'_>) -> Dec<()> {
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
    pub(super) fn read_n(&mut self, cur: &mut Cursor<'_>, n: usize) -> Dec<()> {
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
    pub(super) fn push_null(&mut self) {
        match self {
            ScalarBuf::Bool(b) => b.append(false),
            ScalarBuf::I32(v) => v.push(0),
            ScalarBuf::I64(v) => v.push(0),
            ScalarBuf::F32(v) => v.push(0.0),
            ScalarBuf::F64(v) => v.push(0.0),
            ScalarBuf::Bytes { offsets, data } => offsets.push(data.len() as i64),
        }
    }

    pub(super) fn finish(
        self,
        dt: &DataType,
        nulls: Option<NullBuffer>,
        column: &str,
    ) -> Result<ArrayRef> {
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

pub(super) enum BodyBuf {
    Scalar(ScalarBuf),
    List {
        offsets: Vec<i64>,
        elem_field: FieldRef,
        elem_nulls: NullBufferBuilder,
        elems: ScalarBuf,
        large: bool,
    },
}

pub(super) struct ColBuf {
    field: FieldRef,
    nulls: NullBufferBuilder,
    body: BodyBuf,
}

impl ColBuf {
    pub(super) fn new(field: &FieldRef, rows: usize, bytes_hint: usize) -> Self {
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
    pub(super) fn read(&mut self, cur: &mut Cursor<'_>) -> Dec<()> {
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
    pub(super) fn push_null(&mut self) {
        self.nulls.append_null();
        match &mut self.body {
            BodyBuf::Scalar(s) => s.push_null(),
            BodyBuf::List { offsets, .. } => {
                let last = *offsets.last().expect("starts at 0");
                offsets.push(last);
            }
        }
    }

    pub(super) fn finish(mut self) -> Result<ArrayRef> {
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

/// [`decode_values`] over borrowed blob bytes, under a schema checked here.
pub(super) fn decode(
    blobs: ByteCol<'_>,
    blob_nulls: Option<&NullBuffer>,
    rows: usize,
    fields: &[FieldRef],
) -> Result<Decoded> {
    ValueDecoder::new(fields)?.decode_bytes(blobs, blob_nulls, rows)
}

impl ValueDecoder {
    pub(super) fn decode_bytes(
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
