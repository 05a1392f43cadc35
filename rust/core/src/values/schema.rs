//! Codec type tags and the schema fingerprint.

use super::*;

/// The codec tag of a scalar type (string and binary layouts are interchangeable).
pub(super) fn scalar_tag(dt: &DataType) -> Option<u8> {
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
pub(super) fn codec_tag(dt: &DataType, column: &str) -> Result<u8> {
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
pub(super) fn fingerprint(names: Option<&[&str]>, tags: &[u8]) -> u32 {
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
