//! `ValueDecoder`: a schema checked once; blob heads and row-by-row decoding into borrowed
//! scalars (the online read path builds Python objects from them).

use super::*;

/// A schema checked and fingerprinted once, for decoding many batches (the online path
/// decodes a few blobs per request with the same schema).
pub struct ValueDecoder {
    pub(super) fields: Vec<FieldRef>,
    pub(super) tags: Vec<u8>,
    pub(super) fp_named: u32,
    pub(super) fp_types: u32,
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
    pub(super) fn read_head(&self, cur: &mut Cursor<'_>) -> Dec<(i64, Option<i64>, u8)> {
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
pub(super) fn read_scalar<'a>(cur: &mut Cursor<'a>, tag: u8) -> Dec<Scalar<'a>> {
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
