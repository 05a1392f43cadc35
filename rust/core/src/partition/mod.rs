//! Hash partitioning by join key, and the per-partition join kernel.
//!
//! A join larger than memory is cut into key partitions: every row (entity or feature side)
//! goes to partition [`partition_ids`] of its key, computed from the one in-memory key hash
//! of [`crate::keys`] (so equal keys, compared as they serialize, land in the same partition
//! on both sides, whatever their Arrow layout: `int32` and `int64`, `utf8` and `large_utf8`,
//! a timestamp key by its whole second). A row with a null in any key column can match
//! nothing; it gets the reserved id `n` (one past the last partition) so callers can drop it
//! (feature side) or route it wherever they like (entity side: it gets nulls anyway).
//!
//! [`partition_order`] turns the ids into a stable order and the partition boundaries: one
//! `take` by the order and one slice per partition scatters a batch, each partition keeping
//! its rows' relative order (the as-of tie-break "the later feature row wins" depends on it).
//!
//! [`join_partition`] is the public building block: the entity rows and the feature rows of
//! one key partition in, the joined rows out, by [`crate::asof::asof_join`] (one rule, one
//! implementation) and a `take`. Any engine that hands out partitions (banquet's own spill
//! path, Spark's `mapInArrow`) runs it per partition.

mod join;
#[cfg(test)]
mod tests;

pub use join::join_partition;

use arrow_array::{Array, ArrayRef, UInt32Array};
use arrow_buffer::ScalarBuffer;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::keys::{hash_fixed, row_hash, KeyColumn};
use crate::mem;

/// What an allocation failure names.
const OP: &str = "partitioning rows by key (partition_ids)";

/// Rows per parallel task.
const CHUNK: usize = 1 << 16;

/// One partition id (`0..n`) per row from the hash of its key columns, mixed with `seed`
/// (a different seed splits the rows differently, for re-partitioning a partition that is
/// still too large). A row with a null in any key column gets `n`. With no key columns every
/// row gets 0. Errors: `n == 0` or `n == u32::MAX`, key columns of unequal lengths, an
/// unsupported key type.
pub fn partition_ids(keys: &[ArrayRef], n: u32, seed: u64) -> Result<UInt32Array> {
    if n == 0 || n == u32::MAX {
        return Err(Error::Invalid(format!(
            "the number of partitions must be in 1..{}, got {n}",
            u32::MAX
        )));
    }
    let rows = keys.first().map_or(0, |k| k.len());
    if let Some((i, k)) = keys.iter().enumerate().find(|(_, k)| k.len() != rows) {
        return Err(Error::Mismatch(format!(
            "key column {i} has {} rows, key column 0 has {rows}",
            k.len()
        )));
    }
    let cols = keys
        .iter()
        .enumerate()
        .map(|(i, k)| KeyColumn::new(k, &format!("key column {i}")))
        .collect::<Result<Vec<_>>>()?;
    let mut out = mem::filled(rows, 0u32, OP)?;
    let seed = hash_fixed(seed ^ 0x9e37_79b9_7f4a_7c15);
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, part)| {
        let base = c * CHUNK;
        for (j, slot) in part.iter_mut().enumerate() {
            let i = base + j;
            *slot = if cols.iter().any(|k| k.is_null(i)) {
                n
            } else {
                // multiply-shift range reduction on the high bits: no modulo, no bias to speak of
                let h = hash_fixed(row_hash(&cols, i) ^ seed);
                ((h as u128 * n as u128) >> 64) as u32
            };
        }
    });
    Ok(UInt32Array::new(ScalarBuffer::from(out), None))
}

/// The stable order that groups rows by partition id, and where each partition starts:
/// rows `order[offsets[p]..offsets[p + 1]]` are partition `p`'s, in their input order.
/// `offsets` has `n + 2` entries: ids equal to `n` (null keys) form the last range.
/// Errors: an id above `n`, or a null id.
pub fn partition_order(ids: &UInt32Array, n: u32) -> Result<(UInt32Array, Vec<u64>)> {
    if ids.null_count() > 0 {
        return Err(Error::Invalid("partition ids must not be null".into()));
    }
    if ids.len() >= u32::MAX as usize {
        return Err(Error::Invalid(format!(
            "{} rows, at most {} are supported",
            ids.len(),
            u32::MAX - 1
        )));
    }
    let buckets = n as usize + 1;
    let mut counts = vec![0u64; buckets + 1];
    for &p in ids.values().iter() {
        if p > n {
            return Err(Error::Invalid(format!(
                "partition id {p} is out of range for {n} partitions"
            )));
        }
        counts[p as usize + 1] += 1;
    }
    for p in 1..counts.len() {
        counts[p] += counts[p - 1];
    }
    let offsets = counts.clone();
    let mut order = mem::filled(ids.len(), 0u32, OP)?;
    for (i, &p) in ids.values().iter().enumerate() {
        let at = &mut counts[p as usize];
        order[*at as usize] = i as u32;
        *at += 1;
    }
    Ok((UInt32Array::new(ScalarBuffer::from(order), None), offsets))
}
