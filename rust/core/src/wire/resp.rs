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

/// The calls' row ranges: consecutive rows, at most `per_call` a call, and a new call
/// wherever `groups` (one value per row, e.g. a Redis Cluster slot) changes.
fn call_bounds(n: usize, per_call: usize, groups: Option<&[u16]>) -> Vec<(usize, usize)> {
    let mut bounds = Vec::with_capacity(n / per_call + 1);
    let mut lo = 0;
    while lo < n {
        let mut hi = (lo + per_call).min(n);
        if let Some(g) = groups {
            let at = g[lo];
            if let Some(off) = g[lo + 1..hi].iter().position(|&x| x != at) {
                hi = lo + 1 + off;
            }
        }
        bounds.push((lo, hi));
        lo = hi;
    }
    bounds
}

/// `EVALSHA <sha> <m> <prefix+key>... <head>... <stamp+blob>...` per call, concatenated;
/// returns the bytes and the number of calls. A call holds at most `per_call` consecutive
/// rows, all of one `groups` value when given (the keys of one script call must share a
/// Redis Cluster slot: pass the rows ordered by slot, and their slots). Null values must
/// have been refused (`Rows::require_values`).
pub fn evalsha_calls<H: AsRef<[u8]>>(
    sha: &[u8],
    prefix: &[u8],
    head: &[H],
    rows: &Rows<'_>,
    per_call: usize,
    groups: Option<&[u16]>,
) -> Result<(Vec<u8>, usize)> {
    let n = rows.len();
    if per_call == 0 {
        return Err(Error::Invalid("per_call must be positive".into()));
    }
    if groups.is_some_and(|g| g.len() != n) {
        return Err(Error::Invalid(format!(
            "{n} rows but {} groups",
            groups.map_or(0, <[u16]>::len)
        )));
    }
    let bounds = call_bounds(n, per_call, groups);
    // the exact size first, so the buffer is allocated once
    let head_len: usize = head.iter().map(|h| bulk_len(h.as_ref().len())).sum();
    let mut size = 0;
    for &(lo, hi) in &bounds {
        let m = hi - lo;
        let args = 3 + 2 * m + head.len();
        size += 1 + digits(args) + 2 + bulk_len(7) + bulk_len(sha.len()) + bulk_len(digits(m));
        size += head_len;
        for i in lo..hi {
            size += bulk_len(prefix.len() + rows.keys[i].len());
            size += bulk_len(16 + rows.value(i).len());
        }
    }

    let mut out = mem::with_capacity(size, "encoding the Redis write calls")?;
    for &(lo, hi) in &bounds {
        let m = hi - lo;
        out.push(b'*');
        out.extend_from_slice((3 + 2 * m + head.len()).to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        put_bulk(&mut out, b"EVALSHA");
        put_bulk(&mut out, sha);
        put_bulk(&mut out, m.to_string().as_bytes());
        for key in &rows.keys[lo..hi] {
            put_prefixed(&mut out, prefix, key);
        }
        for h in head {
            put_bulk(&mut out, h.as_ref());
        }
        for i in lo..hi {
            put_value(&mut out, rows.event(i), rows.created(i), rows.value(i));
        }
    }
    debug_assert_eq!(out.len(), size);
    Ok((out, bounds.len()))
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

/// What [`int_replies`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum IntReplies {
    /// All of them integer replies; the position after the last.
    Complete(usize),
    /// The buffer ends first (read more, then ask again).
    Incomplete,
    /// Another kind of reply (an error) among them: parse them one by one.
    Other,
}

/// Checks that the `n` replies starting at `buf[pos..]` are RESP integer replies
/// (`:<digits>\r\n`, what the write script returns), in one pass over the bytes: a wave
/// of script calls is checked without a Python object per reply.
pub fn int_replies(buf: &[u8], pos: usize, n: usize) -> IntReplies {
    let mut at = pos;
    for _ in 0..n {
        match buf.get(at) {
            None => return IntReplies::Incomplete,
            Some(b':') => {}
            Some(_) => return IntReplies::Other,
        }
        let line = &buf[at + 1..];
        let Some(nl) = line.iter().position(|&b| b == b'\n') else {
            return IntReplies::Incomplete;
        };
        let digits = match line[..nl].strip_suffix(b"\r") {
            Some(d) => d.strip_prefix(b"-").unwrap_or(d),
            None => return IntReplies::Other,
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return IntReplies::Other;
        }
        at += 1 + nl + 1;
    }
    IntReplies::Complete(at)
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

    fn rows_of<'a>(
        keys: &'a BinaryArray,
        ev: &'a Int64Array,
        cr: &'a Int64Array,
        blobs: &'a BinaryArray,
    ) -> Rows<'a> {
        Rows::new("t", keys, ev, Some(cr), blobs).unwrap()
    }

    #[test]
    fn one_evalsha_call() {
        let keys = BinaryArray::from(vec![&b"k1"[..], b""]);
        let ev = Int64Array::from(vec![0, i64::MIN]);
        let cr = Int64Array::from(vec![Some(1), None]);
        let blobs = BinaryArray::from(vec![&b"xy"[..], b""]);
        let rows = rows_of(&keys, &ev, &cr, &blobs);
        let head: [&[u8]; 2] = [b"view", b"3600"];
        let (out, calls) = evalsha_calls(b"abc", b"p:", &head, &rows, 500, None).unwrap();
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
    fn evalsha_chunks_per_call_and_group() {
        let keys: Vec<Vec<u8>> = (0..12).map(|i| vec![b'a' + i as u8; i]).collect();
        let blobs: Vec<Vec<u8>> = (0..12).map(|i| vec![7; 130 * i]).collect();
        let keys = BinaryArray::from_iter_values(&keys);
        let blobs = BinaryArray::from_iter_values(&blobs);
        let ev = Int64Array::from_iter_values((0..12).map(|i| i * 1_000_000_007));
        let cr = Int64Array::from(vec![0; 12]);
        let rows = rows_of(&keys, &ev, &cr, &blobs);
        let head: [&[u8]; 1] = [b"f"];
        let (all, calls) = evalsha_calls(b"s", b"", &head, &rows, 5, None).unwrap();
        assert_eq!(calls, 3); // 5 + 5 + 2
                              // the concatenation of the calls made one chunk at a time
        let one = |lo: usize, hi: usize| {
            let (k, e, c, b) = (
                keys.slice(lo, hi - lo),
                ev.slice(lo, hi - lo),
                cr.slice(lo, hi - lo),
                blobs.slice(lo, hi - lo),
            );
            let part = rows_of(&k, &e, &c, &b);
            let (bytes, calls) = evalsha_calls(b"s", b"", &head, &part, 5, None).unwrap();
            assert_eq!(calls, 1);
            bytes
        };
        let want: Vec<u8> = [(0, 5), (5, 10), (10, 12)]
            .iter()
            .flat_map(|&(lo, hi)| one(lo, hi))
            .collect();
        assert_eq!(all, want);
        assert!(
            all.starts_with(b"*14\r\n$7\r\nEVALSHA\r\n$1\r\ns\r\n$1\r\n5\r\n$0\r\n\r\n$1\r\nb\r\n")
        );
        // groups: a call never spans two group values
        let groups = [1u16, 1, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3];
        let (grouped, calls) = evalsha_calls(b"s", b"", &head, &rows, 5, Some(&groups)).unwrap();
        assert_eq!(calls, 4); // [0,2) [2,7) [7,9) [9,12)
        let want: Vec<u8> = [(0, 2), (2, 7), (7, 9), (9, 12)]
            .iter()
            .flat_map(|&(lo, hi)| one(lo, hi))
            .collect();
        assert_eq!(grouped, want);
        let (e0, c0, k0) = (ev.slice(0, 0), cr.slice(0, 0), keys.slice(0, 0));
        let none = rows_of(&k0, &e0, &c0, &k0);
        let (bytes, calls) = evalsha_calls(b"s", b"", &head, &none, 5, None).unwrap();
        assert_eq!((bytes.len(), calls), (0, 0));
    }

    #[test]
    fn evalsha_refuses_bad_arguments() {
        let k = BinaryArray::from(vec![&b"k"[..]]);
        let ev = Int64Array::from(vec![1]);
        let rows = rows_of(&k, &ev, &ev, &k);
        let head: [&[u8]; 0] = [];
        assert!(evalsha_calls(b"s", b"", &head, &rows, 0, None).is_err());
        assert!(evalsha_calls(b"s", b"", &head, &rows, 5, Some(&[1, 2])).is_err());
    }

    #[test]
    fn integer_replies_in_bulk() {
        let buf = b"+OK\r\n:1\r\n:500\r\n:-3\r\n-ERR x\r\n:7";
        assert_eq!(int_replies(buf, 5, 0), IntReplies::Complete(5));
        assert_eq!(int_replies(buf, 5, 3), IntReplies::Complete(20));
        assert_eq!(int_replies(buf, 0, 1), IntReplies::Other);
        assert_eq!(int_replies(buf, 5, 4), IntReplies::Other); // the error reply
        assert_eq!(int_replies(buf, 28, 1), IntReplies::Incomplete); // ":7" without CRLF
        assert_eq!(int_replies(buf, 5, 9), IntReplies::Other);
        assert_eq!(int_replies(b":1\r\n", 0, 2), IntReplies::Incomplete);
        assert_eq!(int_replies(b":\r\n", 0, 1), IntReplies::Other);
        assert_eq!(int_replies(b":1x\r\n", 0, 1), IntReplies::Other);
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
