//! Postgres `COPY ... (FORMAT BINARY)` data for the online store's bulk writes, built from
//! Arrow rows in one pass (the Python loop took longer than Postgres took to load them).

use std::collections::HashSet;

use crate::error::Result;
use crate::mem;
use crate::wire::Rows;

/// Signature, flags, no header extension.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The end-of-data marker (a field count of -1).
pub const TRAILER: &[u8] = b"\xff\xff";

/// True when no key occurs twice (linear when the keys come sorted, as materialization
/// sends them).
pub fn keys_unique(keys: &[&[u8]]) -> bool {
    if keys.is_sorted() {
        keys.windows(2).all(|w| w[0] != w[1])
    } else {
        let mut seen = HashSet::with_capacity(keys.len());
        keys.iter().all(|k| seen.insert(*k))
    }
}

/// The rows `(entity_key bytea, event_ts int8, created_ts int8, value bytea)` as COPY
/// binary data (a null created time is 0), or None when a key repeats (the caller then
/// keeps one row per key first: an upsert may not touch a row twice). Null values must
/// have been refused (`Rows::require_values`).
pub fn copy_rows(rows: &Rows<'_>) -> Result<Option<Vec<u8>>> {
    if !keys_unique(&rows.keys) {
        return Ok(None);
    }
    let n = rows.len();
    let size: usize = rows.keys.iter().map(|k| k.len()).sum::<usize>()
        + rows
            .values
            .iter()
            .map(|v| v.map_or(0, <[u8]>::len))
            .sum::<usize>()
        + n * (2 + 4 * 4 + 8 * 2)
        + HEADER.len()
        + TRAILER.len();
    let mut out = mem::with_capacity(size, "encoding the Postgres COPY rows")?;
    out.extend_from_slice(HEADER);
    for (i, key) in rows.keys.iter().enumerate() {
        let value = rows.value(i);
        out.extend_from_slice(&4i16.to_be_bytes());
        out.extend_from_slice(&(key.len() as i32).to_be_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&rows.event(i).to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&rows.created(i).to_be_bytes());
        out.extend_from_slice(&(value.len() as i32).to_be_bytes());
        out.extend_from_slice(value);
    }
    out.extend_from_slice(TRAILER);
    debug_assert_eq!(out.len(), size);
    Ok(Some(out))
}

/// Postgres type oids of the array parameters' elements.
const BYTEA_OID: i32 = 17;
const INT8_OID: i32 = 20;

/// The rows as the four parameters of one `INSERT ... SELECT FROM unnest($1, $2, $3, $4)`:
/// `bytea[]`, `int8[]`, `int8[]`, `bytea[]` in Postgres' binary array format (a null
/// created time is 0), or None when a key repeats (as [`copy_rows`]). A small write (a push)
/// sends them as binary parameters of one statement: one round trip, no Python object per
/// row, where COPY would take a staging table and more round trips. Null values must have
/// been refused (`Rows::require_values`).
pub fn array_params(rows: &Rows<'_>) -> Result<Option<[Vec<u8>; 4]>> {
    if !keys_unique(&rows.keys) {
        return Ok(None);
    }
    let n = rows.len();
    let what = "encoding the Postgres write parameters";
    let mut keys = array_header(n, BYTEA_OID, rows.keys.iter().map(|k| k.len()).sum(), what)?;
    let mut values = array_header(
        n,
        BYTEA_OID,
        rows.values.iter().map(|v| v.map_or(0, <[u8]>::len)).sum(),
        what,
    )?;
    let mut events = array_header(n, INT8_OID, n * 8, what)?;
    let mut created = array_header(n, INT8_OID, n * 8, what)?;
    for (i, key) in rows.keys.iter().enumerate() {
        push_field(&mut keys, key);
        push_field(&mut values, rows.value(i));
        push_field(&mut events, &rows.event(i).to_be_bytes());
        push_field(&mut created, &rows.created(i).to_be_bytes());
    }
    Ok(Some([keys, events, created, values]))
}

/// A one-dimensional array's header (no nulls, lower bound 1; no dimension when empty, as
/// Postgres sends an empty array), with room for `n` elements of `payload` bytes in all.
fn array_header(n: usize, oid: i32, payload: usize, what: &str) -> Result<Vec<u8>> {
    let mut out = mem::with_capacity(20 + 4 * n + payload, what)?;
    out.extend_from_slice(&i32::from(n > 0).to_be_bytes()); // dimensions
    out.extend_from_slice(&0i32.to_be_bytes()); // flags: no nulls
    out.extend_from_slice(&oid.to_be_bytes());
    if n > 0 {
        out.extend_from_slice(&(n as i32).to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes()); // lower bound
    }
    Ok(out)
}

#[inline]
fn push_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{BinaryArray, Int64Array, TimestampMicrosecondArray};

    #[test]
    fn rows_as_copy_binary() {
        let keys = BinaryArray::from(vec![&b"ab"[..], b""]);
        let ev = TimestampMicrosecondArray::from(vec![-1, 258]);
        let cr = Int64Array::from(vec![Some(3), None]);
        let vals = BinaryArray::from(vec![&b"v"[..], b""]);
        let rows = Rows::new("t", &keys, &ev, Some(&cr), &vals).unwrap();
        let out = copy_rows(&rows).unwrap().unwrap();
        let want: Vec<u8> = [
            &b"PGCOPY\n\xff\r\n\0"[..],
            &[0, 0, 0, 0], // flags
            &[0, 0, 0, 0], // header extension length
            &[0, 4],       // four fields
            &[0, 0, 0, 2], // key length
            b"ab",
            &[0, 0, 0, 8],
            &[0xff; 8], // event -1
            &[0, 0, 0, 8],
            &[0, 0, 0, 0, 0, 0, 0, 3],
            &[0, 0, 0, 1],
            b"v",
            &[0, 4],
            &[0, 0, 0, 0], // empty key
            &[0, 0, 0, 8],
            &[0, 0, 0, 0, 0, 0, 1, 2],
            &[0, 0, 0, 8],
            &[0; 8],       // null created time -> 0
            &[0, 0, 0, 0], // empty value
            &[0xff, 0xff],
        ]
        .concat();
        assert_eq!(out, want);
    }

    #[test]
    fn rows_as_binary_array_params() {
        let keys = BinaryArray::from(vec![&b"ab"[..], b""]);
        let ev = TimestampMicrosecondArray::from(vec![-1, 258]);
        let cr = Int64Array::from(vec![Some(3), None]);
        let vals = BinaryArray::from(vec![&b"v"[..], b"w"]);
        let rows = Rows::new("t", &keys, &ev, Some(&cr), &vals).unwrap();
        let [k, e, c, v] = array_params(&rows).unwrap().unwrap();
        let header = |oid: u8| -> Vec<u8> {
            [
                [0, 0, 0, 1],
                [0, 0, 0, 0],
                [0, 0, 0, oid],
                [0, 0, 0, 2],
                [0, 0, 0, 1],
            ]
            .concat()
        };
        let want_k = [
            header(17),
            vec![0, 0, 0, 2],
            b"ab".to_vec(),
            vec![0, 0, 0, 0],
        ]
        .concat();
        assert_eq!(k, want_k);
        let eight = vec![0, 0, 0, 8];
        let want_e = [
            header(20),
            eight.clone(),
            vec![0xff; 8],
            eight.clone(),
            vec![0, 0, 0, 0, 0, 0, 1, 2],
        ]
        .concat();
        assert_eq!(e, want_e);
        let want_c = [
            header(20),
            eight.clone(),
            vec![0, 0, 0, 0, 0, 0, 0, 3],
            eight,
            vec![0; 8],
        ];
        assert_eq!(c, want_c.concat()); // a null created time is 0
        let want_v = [
            header(17),
            vec![0, 0, 0, 1],
            b"v".to_vec(),
            vec![0, 0, 0, 1],
            b"w".to_vec(),
        ];
        assert_eq!(v, want_v.concat());

        let none = BinaryArray::from(Vec::<&[u8]>::new());
        let ev = Int64Array::from(Vec::<i64>::new());
        let rows = Rows::new("t", &none, &ev, None, &none).unwrap();
        let [k, ..] = array_params(&rows).unwrap().unwrap();
        assert_eq!(k, [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 17]].concat()); // '{}'
    }

    #[test]
    fn repeated_keys_are_refused_sorted_or_not() {
        let ev = Int64Array::from(vec![1, 2, 3]);
        for keys in [vec![&b"a"[..], b"b", b"b"], vec![&b"b"[..], b"a", b"b"]] {
            let keys = BinaryArray::from(keys);
            let rows = Rows::new("t", &keys, &ev, None, &keys).unwrap();
            assert!(copy_rows(&rows).unwrap().is_none());
            assert!(array_params(&rows).unwrap().is_none());
        }
        assert!(keys_unique(&[b"b", b"a", b"c"]));
        assert!(keys_unique(&[]));
    }
}
