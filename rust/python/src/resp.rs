//! RESP encoding of the Redis online store's write script calls, in bulk.
//!
//! Python's per-row `%`-formatting of a 100k-row batch took longer than Redis takes to run
//! the scripts; here the whole batch becomes one buffer in a few milliseconds. The layout is
//! the one `banquet.online.redis._evalsha` writes (the Python fallback, kept byte-identical).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use pyo3_arrow::PyArray;

use crate::rows::ArrowRows;

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

/// `EVALSHA <sha> <n> <prefix+key>... <head>... <stamp+blob>...` for consecutive chunks of
/// `per_call` rows, concatenated. The stamp is the event then the created timestamp, each
/// big-endian `u64` of `ts + 2^63`. Returns (the RESP bytes, number of calls).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn resp_evalsha<'py>(
    py: Python<'py>,
    sha: &[u8],
    prefix: &[u8],
    head: Vec<Vec<u8>>,
    keys: &Bound<'py, PyList>,
    event_ts: Vec<i64>,
    created_ts: Vec<i64>,
    blobs: &Bound<'py, PyList>,
    per_call: usize,
) -> PyResult<(Bound<'py, PyBytes>, usize)> {
    let n = keys.len();
    if event_ts.len() != n || created_ts.len() != n || blobs.len() != n {
        return Err(PyValueError::new_err(
            "keys, event_ts, created_ts and blobs must have the same length",
        ));
    }
    if per_call == 0 {
        return Err(PyValueError::new_err("per_call must be positive"));
    }
    let keys: Vec<Bound<'py, PyBytes>> = keys
        .iter()
        .map(|k| k.cast_into::<PyBytes>().map_err(PyErr::from))
        .collect::<PyResult<_>>()?;
    let blobs: Vec<Bound<'py, PyBytes>> = blobs
        .iter()
        .map(|b| b.cast_into::<PyBytes>().map_err(PyErr::from))
        .collect::<PyResult<_>>()?;

    // the exact size first, so the buffer is allocated once
    let head_len: usize = head.iter().map(|h| bulk_len(h.len())).sum();
    let mut size = 0;
    let mut calls = 0;
    for lo in (0..n).step_by(per_call) {
        let hi = (lo + per_call).min(n);
        let m = hi - lo;
        let args = 3 + 2 * m + head.len();
        size += 1 + digits(args) + 2 + bulk_len(7) + bulk_len(sha.len()) + bulk_len(digits(m));
        size += head_len;
        for (key, blob) in keys[lo..hi].iter().zip(&blobs[lo..hi]) {
            size += bulk_len(prefix.len() + key.as_bytes().len());
            size += bulk_len(16 + blob.as_bytes().len());
        }
        calls += 1;
    }

    let mut out = Vec::with_capacity(size);
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
            let key = key.as_bytes();
            put_bulk_head(&mut out, prefix.len() + key.len());
            out.extend_from_slice(prefix);
            out.extend_from_slice(key);
            out.extend_from_slice(b"\r\n");
        }
        for h in &head {
            put_bulk(&mut out, h);
        }
        let rows = blobs[lo..hi]
            .iter()
            .zip(&event_ts[lo..hi])
            .zip(&created_ts[lo..hi]);
        for ((blob, &event), &created) in rows {
            let blob = blob.as_bytes();
            put_bulk_head(&mut out, 16 + blob.len());
            put_stamp(&mut out, event, created);
            out.extend_from_slice(blob);
            out.extend_from_slice(b"\r\n");
        }
    }
    debug_assert_eq!(out.len(), size);
    Ok((PyBytes::new(py, &out), calls))
}

/// The 16-byte stamp of a stored value: event then created timestamp, each big-endian
/// `u64` of `ts + 2^63`, so bytewise order is numeric order.
fn put_stamp(out: &mut Vec<u8>, event: i64, created: i64) {
    out.extend_from_slice(&((event as u64) ^ (1 << 63)).to_be_bytes());
    out.extend_from_slice(&((created as u64) ^ (1 << 63)).to_be_bytes());
}

/// `HSETNX <prefix+key> <field> <stamp+blob>` per row, concatenated: the write of values
/// for hashes that have none for this view yet (no script needed to keep the newer one).
/// Rows from Arrow: binary keys and blobs, int64 or timestamp[us] times (a null created
/// time is 0).
#[pyfunction]
fn resp_hsetnx<'py>(
    py: Python<'py>,
    prefix: &[u8],
    field: &[u8],
    keys: PyArray,
    event_ts: PyArray,
    created_ts: PyArray,
    blobs: PyArray,
) -> PyResult<Bound<'py, PyBytes>> {
    let rows = ArrowRows::new("resp_hsetnx", keys, event_ts, Some(created_ts), blobs)?
        .require_values("resp_hsetnx")?;
    let rows = rows.slices("resp_hsetnx")?;
    let n = rows.len();
    let out = py.detach(|| {
        let size: usize = rows.keys.iter().map(|k| k.len()).sum::<usize>()
            + rows
                .values
                .iter()
                .map(|b| b.map_or(0, <[u8]>::len))
                .sum::<usize>()
            + n * (16 + 64 + prefix.len() + field.len());
        let mut out = Vec::with_capacity(size);
        for i in 0..n {
            let key = rows.keys[i];
            let blob = rows.values[i].unwrap_or_default();
            out.extend_from_slice(b"*4\r\n$6\r\nHSETNX\r\n");
            put_bulk_head(&mut out, prefix.len() + key.len());
            out.extend_from_slice(prefix);
            out.extend_from_slice(key);
            out.extend_from_slice(b"\r\n");
            put_bulk(&mut out, field);
            put_bulk_head(&mut out, 16 + blob.len());
            put_stamp(&mut out, rows.event(i), rows.created(i));
            out.extend_from_slice(blob);
            out.extend_from_slice(b"\r\n");
        }
        out
    });
    Ok(PyBytes::new(py, &out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(resp_hsetnx, m)?)?;
    m.add_function(wrap_pyfunction!(resp_evalsha, m)?)?;
    Ok(())
}
