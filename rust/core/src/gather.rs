//! Gather: the rows at given indices of columns held as several chunks (a table read batch
//! by batch), each into one array, in parallel.
//!
//! The one-pass join's last step: each entity row's winning feature row, for every feature
//! column. Before, each column was first copied into one chunk and then taken on one thread;
//! at 10M entity rows those random reads were half of the whole join. Here the rows are
//! located once per request (chunk, row) and every column is read straight from its chunks,
//! the output split over the cores.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    downcast_primitive, new_empty_array, new_null_array, Array, ArrayRef, ArrowPrimitiveType,
    PrimitiveArray, UInt32Array,
};
use arrow_buffer::{NullBuffer, ScalarBuffer};
use arrow_schema::DataType;
use rayon::prelude::*;

use crate::{mem, Error, Result};

const OP: &str = "gathering the joined rows";
/// Output rows per parallel task.
const TASK_ROWS: usize = 64 * 1024;
/// A null index: the output row is null.
const NONE: u64 = u64::MAX;

/// Where the rows at `indices` live among chunks of `chunk_lens` rows: `chunk << 32 | row`
/// per index, `NONE` for a null one. One location serves every column of the same chunking.
pub fn locate(chunk_lens: &[usize], indices: &UInt32Array) -> Result<Vec<u64>> {
    let mut starts = Vec::with_capacity(chunk_lens.len() + 1);
    starts.push(0usize);
    for &n in chunk_lens {
        starts.push(starts[starts.len() - 1] + n);
    }
    let total = starts[chunk_lens.len()];
    if let Some(bad) = indices.iter().flatten().find(|&i| i as usize >= total) {
        return Err(Error::Invalid(format!(
            "row index {bad} is out of range for {total} rows"
        )));
    }
    let mut out = mem::with_capacity(indices.len(), OP)?;
    let nulls = indices.nulls();
    let values = indices.values();
    (0..indices.len())
        .into_par_iter()
        .with_min_len(TASK_ROWS)
        .map(|i| {
            if nulls.is_some_and(|n| n.is_null(i)) {
                return NONE;
            }
            let at = values[i] as usize;
            // the last chunk starting at or before `at` (empty chunks are skipped over)
            let c = starts.partition_point(|&s| s <= at) - 1;
            ((c as u64) << 32) | (at - starts[c]) as u64
        })
        .collect_into_vec(&mut out);
    Ok(out)
}

/// The rows at `rows` (from [`locate`] over these `chunks`) of one column of type `dtype`,
/// as one array; a `NONE` location gives a null. Call inside the process's rayon pool.
pub fn gather(dtype: &DataType, chunks: &[ArrayRef], rows: &[u64]) -> Result<ArrayRef> {
    if let Some(c) = chunks.iter().find(|c| c.data_type() != dtype) {
        return Err(Error::Mismatch(format!(
            "a chunk of type {} in a column of type {dtype}",
            c.data_type()
        )));
    }
    if rows.is_empty() {
        return Ok(new_empty_array(dtype));
    }
    if chunks.is_empty() {
        if rows.iter().any(|&r| r != NONE) {
            return Err(Error::Invalid(
                "row indices into a column of no rows".into(),
            ));
        }
        return Ok(new_null_array(dtype, rows.len()));
    }
    macro_rules! primitive {
        ($t:ty) => {
            gather_primitive::<$t>(dtype, chunks, rows)
        };
    }
    downcast_primitive! {
        dtype => (primitive),
        _ => gather_any(dtype, chunks, rows),
    }
}

/// Fixed-width values: read straight from the chunks' buffers into the output.
fn gather_primitive<T: ArrowPrimitiveType>(
    dtype: &DataType,
    chunks: &[ArrayRef],
    rows: &[u64],
) -> Result<ArrayRef> {
    let arrays: Vec<&PrimitiveArray<T>> = chunks.iter().map(|c| c.as_primitive::<T>()).collect();
    let values: Vec<&[T::Native]> = arrays.iter().map(|a| a.values().as_ref()).collect();
    let split = |r: u64| ((r >> 32) as usize, (r & 0xffff_ffff) as usize);
    let mut out = mem::with_capacity(rows.len(), OP)?;
    rows.par_iter()
        .with_min_len(TASK_ROWS)
        .map(|&r| {
            if r == NONE {
                return T::Native::default();
            }
            let (c, i) = split(r);
            values[c][i]
        })
        .collect_into_vec(&mut out);
    let any_null = arrays.iter().any(|a| a.null_count() > 0) || rows.contains(&NONE);
    let nulls = if any_null {
        let mut valid: Vec<bool> = mem::with_capacity(rows.len(), OP)?;
        rows.par_iter()
            .with_min_len(TASK_ROWS)
            .map(|&r| {
                let (c, i) = split(r);
                r != NONE && arrays[c].is_valid(i)
            })
            .collect_into_vec(&mut valid);
        Some(NullBuffer::from(valid))
    } else {
        None
    };
    let array = PrimitiveArray::<T>::new(ScalarBuffer::from(out), nulls);
    Ok(Arc::new(array.with_data_type(dtype.clone())))
}

/// Any other type (strings, booleans, nested): arrow's `interleave` per task, then joined.
fn gather_any(dtype: &DataType, chunks: &[ArrayRef], rows: &[u64]) -> Result<ArrayRef> {
    let null = new_null_array(dtype, 1);
    let mut sources: Vec<&dyn Array> = chunks.iter().map(|c| c.as_ref()).collect();
    sources.push(null.as_ref());
    let null_at = (chunks.len(), 0usize);
    let parts = rows
        .par_chunks(TASK_ROWS * 4)
        .map(|part| {
            let pairs: Vec<(usize, usize)> = part
                .iter()
                .map(|&r| {
                    if r == NONE {
                        null_at
                    } else {
                        ((r >> 32) as usize, (r & 0xffff_ffff) as usize)
                    }
                })
                .collect();
            Ok(arrow_select::interleave::interleave(&sources, &pairs)?)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    if parts.len() == 1 {
        return Ok(parts.into_iter().next().expect("one part"));
    }
    let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
    Ok(arrow_select::concat::concat(&refs)?)
}

#[cfg(test)]
#[path = "gather_tests.rs"]
mod tests;
