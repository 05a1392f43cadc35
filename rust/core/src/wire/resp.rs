//! RESP of the Redis online store's writes, a whole batch in one buffer (Python's per-row
//! formatting of a 100k-row batch took longer than Redis takes to run the scripts).
//!
//! A stored value is a 16-byte stamp (event then created time, each big-endian `u64` of
//! `ts + 2^63`, so bytewise order is numeric order) followed by the value blob.

use crate::error::{Error, Result};
use crate::mem;
use crate::wire::Rows;

/// Decimal digits of `n`.
fn digits(n: usize) -> usize {
    let mut d = 1;
    let mut n = n / 10;
    while n > 0 {
        d += 1;
        n /= 10;
    }
    d
}

/// Size of a RESP bulk string of `len` bytes (`$<len>\r\n<bytes>\r\n`).
fn bulk_len(len: usize) -> usize {
    1 + digits(len) + 2 + len + 2
}

fn put_bulk_head(out: &mut Vec<u8>, len: usize) {
    out.push(b'$');
    out.extend_from_slice(len.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn put_bulk(out: &mut Vec<u8>, data: &[u8]) {
    put_bulk_head(out, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// `prefix + key` as one bulk string, without joining them first.
fn put_prefixed(out: &mut Vec<u8>, prefix: &[u8], key: &[u8]) {
    put_bulk_head(out, prefix.len() + key.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(key);
    out.extend_from_slice(b"\r\n");
}

/// The stamp and blob of a stored value as one bulk string.
fn put_value(out: &mut Vec<u8>, event: i64, created: i64, blob: &[u8]) {
    put_bulk_head(out, 16 + blob.len());
    put_stamp(out, event, created);
    out.extend_from_slice(blob);
    out.extend_from_slice(b"\r\n");
}

/// The 16-byte stamp of a stored value.
pub fn put_stamp(out: &mut Vec<u8>, event: i64, created: i64) {
    out.extend_from_slice(&((event as u64) ^ (1 << 63)).to_be_bytes());
    out.extend_from_slice(&((created as u64) ^ (1 << 63)).to_be_bytes());
}

/// `EVALSHA <sha> <m> <prefix+key>... <head>... <stamp+blob>...` for consecutive chunks of
/// `per_call` rows, concatenated; returns the bytes and the number of calls.
#[allow(clippy::too_many_arguments)]
pub fn evalsha_calls<H, K, B>(
    sha: &[u8],
    prefix: &[u8],
    head: &[H],
    keys: &[K],
    event_ts: &[i64],
    created_ts: &[i64],
    blobs: &[B],
    per_call: usize,
) -> Result<(Vec<u8>, usize)>
where
    H: AsRef<[u8]>,
    K: AsRef<[u8]>,
    B: AsRef<[u8]>,
{
    let n = keys.len();
    if event_ts.len() != n || created_ts.len() != n || blobs.len() != n {
        return Err(Error::Invalid(
            "keys, event_ts, created_ts and blobs must have the same length".into(),
        ));
    }
    if per_call == 0 {
        return Err(Error::Invalid("per_call must be positive".into()));
    }
    // the exact size first, so the buffer is allocated once
    let head_len: usize = head.iter().map(|h| bulk_len(h.as_ref().len())).sum();
    let mut size = 0;
    let mut calls = 0;
    for lo in (0..n).step_by(per_call) {
        let hi = (lo + per_call).min(n);
        let m = hi - lo;
        let args = 3 + 2 * m + head.len();
        size += 1 + digits(args) + 2 + bulk_len(7) + bulk_len(sha.len()) + bulk_len(digits(m));
        size += head_len;
        for (key, blob) in keys[lo..hi].iter().zip(&blobs[lo..hi]) {
            size += bulk_len(prefix.len() + key.as_ref().len());
            size += bulk_len(16 + blob.as_ref().len());
        }
        calls += 1;
    }

    let mut out = mem::with_capacity(size, "encoding the Redis write calls")?;
    for lo in (0..n).step_by(per_call) {
        let hi = (lo + per_call).min(n);
        let m = hi - lo;
        out.push(b'*');
        out.extend_from_slice((3 + 2 * m + head.len()).to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        put_bulk(&mut out, b"EVALSHA");
        put_bulk(&mut out, sha);
        put_bulk(&mut out, m.to_string().as_bytes());
        for key in &keys[lo..hi] {
            put_prefixed(&mut out, prefix, key.as_ref());
        }
        for h in head {
            put_bulk(&mut out, h.as_ref());
        }
        for i in lo..hi {
            put_value(&mut out, event_ts[i], created_ts[i], blobs[i].as_ref());
        }
    }
    debug_assert_eq!(out.len(), size);
    Ok((out, calls))
}

/// `HSETNX <prefix+key> <field> <stamp+blob>` per row, concatenated: the write of values
/// for hashes that have none for this view yet (no script needed to keep the newer one).
/// Null values must have been refused (`Rows::require_values`).
pub fn hsetnx_calls(prefix: &[u8], field: &[u8], rows: &Rows<'_>) -> Result<Vec<u8>> {
    let n = rows.len();
    // an upper bound: 64 bytes cover the command, the three lengths and the CRLFs
    let size: usize = rows.keys.iter().map(|k| k.len()).sum::<usize>()
        + rows
            .values
            .iter()
            .map(|b| b.map_or(0, <[u8]>::len))
            .sum::<usize>()
        + n * (16 + 64 + prefix.len() + field.len());
    let mut out = mem::with_capacity(size, "encoding the Redis HSETNX calls")?;
    for i in 0..n {
        out.extend_from_slice(b"*4\r\n$6\r\nHSETNX\r\n");
        put_prefixed(&mut out, prefix, rows.keys[i]);
        put_bulk(&mut out, field);
        put_value(&mut out, rows.event(i), rows.created(i), rows.value(i));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{BinaryArray, Int64Array};

    const MIN_STAMP: [u8; 8] = [0; 8]; // i64::MIN + 2^63
    const ZERO_STAMP: [u8; 8] = [0x80, 0, 0, 0, 0, 0, 0, 0];

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn stamps_order_bytewise_as_numbers() {
        let stamp = |e, c| {
            let mut v = Vec::new();
            put_stamp(&mut v, e, c);
            v
        };
        assert_eq!(stamp(i64::MIN, 0), cat(&[&MIN_STAMP, &ZERO_STAMP]));
        assert_eq!(
            stamp(i64::MAX, -1),
            cat(&[
                &[0xff; 8],
                &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
            ])
        );
        assert_eq!(stamp(258, 1)[..8], [0x80, 0, 0, 0, 0, 0, 1, 2]);
        let all: Vec<i64> = vec![i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        let stamps: Vec<Vec<u8>> = all.iter().map(|&t| stamp(t, 0)).collect();
        assert!(stamps.is_sorted());
    }

    #[test]
    fn one_evalsha_call() {
        let (out, calls) = evalsha_calls(
            b"abc",
            b"p:",
            &[b"view", b"3600"],
            &[&b"k1"[..], b""],
            &[0, i64::MIN],
            &[1, 0],
            &[&b"xy"[..], b""],
            500,
        )
        .unwrap();
        assert_eq!(calls, 1);
        let want = cat(&[
            b"*9\r\n$7\r\nEVALSHA\r\n$3\r\nabc\r\n$1\r\n2\r\n",
            b"$4\r\np:k1\r\n$2\r\np:\r\n",
            b"$4\r\nview\r\n$4\r\n3600\r\n",
            b"$18\r\n",
            &ZERO_STAMP,
            &[0x80, 0, 0, 0, 0, 0, 0, 1],
            b"xy\r\n",
            b"$16\r\n",
            &MIN_STAMP,
            &ZERO_STAMP,
            b"\r\n",
        ]);
        assert_eq!(out, want);
    }

    #[test]
    fn evalsha_chunks_per_call() {
        let keys: Vec<Vec<u8>> = (0..12).map(|i| vec![b'a' + i as u8; i]).collect();
        let blobs: Vec<Vec<u8>> = (0..12).map(|i| vec![7; 130 * i]).collect();
        let ev: Vec<i64> = (0..12).map(|i| i * 1_000_000_007).collect();
        let cr = vec![0; 12];
        let head: [&[u8]; 1] = [b"f"];
        let (all, calls) = evalsha_calls(b"s", b"", &head, &keys, &ev, &cr, &blobs, 5).unwrap();
        assert_eq!(calls, 3); // 5 + 5 + 2
                              // the concatenation of the calls made one chunk at a time
        let mut want = Vec::new();
        for lo in [0, 5, 10] {
            let hi = (lo + 5).min(12);
            let (one, c) = evalsha_calls(
                b"s",
                b"",
                &head,
                &keys[lo..hi],
                &ev[lo..hi],
                &cr[lo..hi],
                &blobs[lo..hi],
                5,
            )
            .unwrap();
            assert_eq!(c, 1);
            want.extend(one);
        }
        assert_eq!(all, want);
        assert!(
            all.starts_with(b"*14\r\n$7\r\nEVALSHA\r\n$1\r\ns\r\n$1\r\n5\r\n$0\r\n\r\n$1\r\nb\r\n")
        );
        let (none, calls) =
            evalsha_calls(b"s", b"", &head, &keys[..0], &[], &[], &blobs[..0], 5).unwrap();
        assert_eq!((none.len(), calls), (0, 0));
    }

    #[test]
    fn evalsha_refuses_bad_arguments() {
        let k: [&[u8]; 1] = [b"k"];
        let head: [&[u8]; 0] = [];
        assert!(evalsha_calls(b"s", b"", &head, &k, &[1], &[], &k, 5).is_err());
        assert!(evalsha_calls(b"s", b"", &head, &k, &[1], &[1], &k, 0).is_err());
    }

    #[test]
    fn hsetnx_per_row() {
        let keys = BinaryArray::from(vec![&b"k"[..], b"long key"]);
        let ev = Int64Array::from(vec![0, 1]);
        let cr = Int64Array::from(vec![None, Some(2)]);
        let blobs = BinaryArray::from(vec![&b""[..], b"v"]);
        let rows = Rows::new("t", &keys, &ev, Some(&cr), &blobs).unwrap();
        let out = hsetnx_calls(b"proj:", b"view", &rows).unwrap();
        let want = cat(&[
            b"*4\r\n$6\r\nHSETNX\r\n$6\r\nproj:k\r\n$4\r\nview\r\n$16\r\n",
            &ZERO_STAMP,
            &ZERO_STAMP,
            b"\r\n",
            b"*4\r\n$6\r\nHSETNX\r\n$13\r\nproj:long key\r\n$4\r\nview\r\n$17\r\n",
            &[0x80, 0, 0, 0, 0, 0, 0, 1],
            &[0x80, 0, 0, 0, 0, 0, 0, 2],
            b"v\r\n",
        ]);
        assert_eq!(out, want);
    }
}
