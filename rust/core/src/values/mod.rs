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

mod columns;
mod cursor;
mod encode;
mod rows;
mod schema;
#[cfg(test)]
mod tests;

pub use columns::{decode_values, decode_values_array, Decoded};
pub use encode::{encode_values, encode_values_with_fields};
pub use rows::{RowValue, Scalar, ValueDecoder};
pub use schema::schema_fingerprint;

use cursor::*;
use schema::*;
