//! The point-in-time (as-of) join kernel.
//!
//! [`asof_join`] answers, for every entity row, "which feature row was current for this key
//! at this instant?". It returns one `UInt32` per entity row: the index of the matching
//! feature row, or null.
//!
//! # Semantics
//!
//! A feature row `f` is a *candidate* for entity row `e` when
//!
//! * every key column is equal on both sides (key column `i` of the entity side is compared
//!   with key column `i` of the feature side; the two must have the same Arrow type), and
//! * `entity_ts[e] - ttl <= feature_ts[f] <= entity_ts[e]`, both ends inclusive. A `ttl` of
//!   `None` or `0` means unbounded (only `feature_ts <= entity_ts` is required).
//!
//! Among the candidates the winner is the **maximum** of the tuple
//! `(feature_ts, created, row index)`:
//!
//! 1. the latest `feature_ts` wins;
//! 2. on equal `feature_ts`, the larger `created` timestamp wins; a null `created` (or no
//!    `created` column at all) is smaller than every non-null value;
//! 3. on a full tie, the **largest feature row index** wins, so the result is deterministic
//!    and does not depend on sort stability or thread scheduling.
//!
//! A row with a null in any key column or a null event timestamp never matches: such an
//! entity row gets null, such a feature row is ignored. The output is in entity input
//! order; entity rows may repeat. With zero key columns on both sides every row belongs to
//! one group (an "entityless" join).
//!
//! Timestamps are `i64` microseconds since the Unix epoch: `Timestamp(Microsecond, any tz)`
//! or `Int64`, read by [`crate::ord::TsColumn`]; the tie-break is [`crate::ord::TieBreak`].
//! Key columns may be `Int32`, `Int64`, `Timestamp(any unit)`, `Utf8`, `LargeUtf8`,
//! `Utf8View`, `Binary`, `LargeBinary`, `BinaryView`, read by [`crate::keys::KeyColumn`]:
//! keys are equal when they serialize equally, so a timestamp key is compared by its whole
//! second (as online, where the serialized key stores seconds).
//!
//! # Algorithm
//!
//! 1. **Group ids.** Entity rows get dense group ids by key: for a single integer key,
//!    `key - min` when the key range is dense, else an open-addressing table keyed by the
//!    value; for any other key, a table keyed by a 64-bit row hash, with exact equality
//!    against the group's key (kept in a compact arena) so hash collisions cannot merge
//!    keys. Feature rows are looked up in the same table, in parallel, in batches whose
//!    table lines are prefetched together. Rows with a key absent on the entity side drop
//!    out here.
//! 2. **Entity layout.** Groups are cut into buckets of `2^k` consecutive ids (about 8K
//!    entity rows each). Entity rows are partitioned by bucket, then each bucket does a
//!    counting sort by group and a sort by timestamp within each group, giving *slots*
//!    ordered by `(group, entity_ts)`.
//! 3. **Feature stream.** Feature rows are partitioned by the same buckets (a parallel,
//!    stable scatter). Each bucket is then merged on its own, in parallel, with its slots
//!    in cache: every feature row goes to the first slot of its group with
//!    `entity_ts >= feature_ts` (a branch-free count for small groups, a binary search for
//!    larger ones; for buckets of large groups the bucket's feature rows are sorted by
//!    `(group, ts)` and merged linearly instead, which is nearly free when the feature
//!    side is already sorted by time). Each slot keeps the best feature row offered to it.
//!    Rows later than every entity row of their group, or too old under the ttl even for
//!    that first slot, are dropped.
//! 4. **Prefix maximum.** Walking each group's slots in timestamp order with a running
//!    best gives every entity row the best feature row with `feature_ts <= entity_ts`; it is
//!    kept only if `feature_ts >= entity_ts - ttl` (no other candidate has a later
//!    timestamp, so if the best fails the ttl every candidate does).
//!
//! A bucket holding a large share of the feature rows (few keys) is itself processed in
//! parallel. Cost: `O(E log E_g + F log E_g)` for `E` entity rows, `F` feature rows and
//! `E_g` entity rows per key (the feature side is never sorted globally); memory
//! `O(E + F)`; no allocation per row.
//!
//! Files: this one validates and dispatches; `table.rs` is the open-addressing group table,
//! `groups.rs` maps rows to group ids, `merge.rs` lays out entity rows and merges the
//! feature stream.

pub(crate) mod groups;
mod merge;
mod table;
#[cfg(test)]
mod tests;

use arrow_array::{Array, ArrayRef, UInt32Array};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};

use crate::error::{Error, Result};
use crate::keys::KeyColumn;
use crate::mem;
use crate::ord::{TieBreak, TsColumn};

use groups::{group_int, group_rows, int_values, Grouping};
use merge::join_core;

/// What an allocation failure names.
const OP: &str = "the point-in-time join (asof_join)";

/// "No value" marker for group ids, slot positions and result indices.
pub(crate) const NONE: u32 = u32::MAX;

/// Rows per parallel task when streaming the feature side. (The tests use small values
/// for this and the other size thresholds so that every code path runs on small inputs.)
const CHUNK: usize = if cfg!(test) { 1 << 8 } else { 1 << 15 };

/// The checks every kernel over an entity side and a feature side makes (the as-of join,
/// windowed aggregation): as many key columns on both sides, pairwise equal key types, every
/// column as long as its side's timestamps, fewer than `u32::MAX` rows a side. Returns the
/// row counts `(entity, feature)`.
pub(crate) fn check_sides(
    entity_keys: &[ArrayRef],
    entity_ts: &dyn Array,
    feature_keys: &[ArrayRef],
    feature_ts: &dyn Array,
    feature_created: Option<&dyn Array>,
) -> Result<(usize, usize)> {
    if entity_keys.len() != feature_keys.len() {
        return Err(Error::Mismatch(format!(
            "entity side has {} key columns, feature side has {}",
            entity_keys.len(),
            feature_keys.len()
        )));
    }
    let n_ent = entity_ts.len();
    let n_feat = feature_ts.len();
    for (side, n) in [("entity", n_ent), ("feature", n_feat)] {
        if n >= NONE as usize {
            return Err(Error::Invalid(format!(
                "{side} side has {n} rows, at most {} are supported",
                NONE - 1
            )));
        }
    }
    for (i, (ek, fk)) in entity_keys.iter().zip(feature_keys).enumerate() {
        if ek.data_type() != fk.data_type() {
            return Err(Error::Mismatch(format!(
                "key column {i}: entity side has type {}, feature side has type {}",
                ek.data_type(),
                fk.data_type()
            )));
        }
        if ek.len() != n_ent {
            return Err(Error::Mismatch(format!(
                "entity key column {i} has {} rows, entity_ts has {n_ent}",
                ek.len()
            )));
        }
        if fk.len() != n_feat {
            return Err(Error::Mismatch(format!(
                "feature key column {i} has {} rows, feature_ts has {n_feat}",
                fk.len()
            )));
        }
    }
    if let Some(c) = feature_created {
        if c.len() != n_feat {
            return Err(Error::Mismatch(format!(
                "feature_created has {} rows, feature_ts has {n_feat}",
                c.len()
            )));
        }
    }
    Ok((n_ent, n_feat))
}

/// For each entity row, the index of the matching feature row or null (see the module
/// documentation for the exact semantics and tie rule).
///
/// * `entity_keys` / `feature_keys`: the key columns, pairwise of equal types. Every entity
///   key column has `entity_ts.len()` rows, every feature key column `feature_ts.len()`.
/// * `entity_ts`, `feature_ts`: event timestamps in microseconds (`Timestamp(us, _)` or
///   `Int64`).
/// * `feature_created`: optional created timestamps (same types), the first tie-breaker.
/// * `ttl`: maximum age in microseconds; `None` or `0` = unbounded, negative is an error.
///
/// Errors: [`Error::Mismatch`] for differing key counts, key types or lengths,
/// [`Error::UnsupportedType`] for a column type the kernel does not handle,
/// [`Error::Invalid`] for a negative ttl or more than `u32::MAX - 1` rows on a side.
pub fn asof_join(
    entity_keys: &[ArrayRef],
    entity_ts: &dyn Array,
    feature_keys: &[ArrayRef],
    feature_ts: &dyn Array,
    feature_created: Option<&dyn Array>,
    ttl: Option<i64>,
) -> Result<UInt32Array> {
    // ---- validation -------------------------------------------------------------------
    let (n_ent, n_feat) = check_sides(
        entity_keys,
        entity_ts,
        feature_keys,
        feature_ts,
        feature_created,
    )?;
    let ttl = match ttl {
        None | Some(0) => 0,
        Some(t) if t < 0 => return Err(Error::Invalid(format!("ttl must be >= 0, got {t}"))),
        Some(t) => t,
    };
    let ets = TsColumn::new(entity_ts, "entity_ts")?.values;
    let fts = TsColumn::new(feature_ts, "feature_ts")?.values;
    let created = match feature_created {
        Some(c) => Some(TsColumn::new(c, "feature_created")?),
        None => None,
    };
    let ecols = key_cols("entity", entity_keys)?;
    let fcols = key_cols("feature", feature_keys)?;

    if n_ent == 0 {
        return Ok(UInt32Array::from(Vec::<u32>::new()));
    }
    if n_feat == 0 {
        let zeros = mem::filled(n_ent, 0u32, OP)?;
        let nulls = NullBuffer::new(BooleanBuffer::new(bitmap(n_ent, |_| false)?, 0, n_ent));
        return Ok(UInt32Array::new(ScalarBuffer::from(zeros), Some(nulls)));
    }

    // The peak working set (group ids, records, slots, running bests, the output: about
    // 64 bytes per entity row and 24 per feature row), checked before anything is built.
    mem::check(OP, mem::bytes(n_ent, 64, n_feat.saturating_mul(24)))?;

    // Row validity: every key and the timestamp non-null.
    let evalid = row_validity(entity_keys, entity_ts);
    let fvalid = row_validity(feature_keys, feature_ts);

    // ---- grouping ----------------------------------------------------------------------
    let single_int = match (ecols.first(), fcols.first()) {
        (Some(e), Some(f)) if ecols.len() == 1 => int_values(e).zip(int_values(f)),
        _ => None,
    };
    let groups = match single_int {
        Some((ek, fk)) => group_int(ek, fk, evalid.as_ref())?,
        None => group_rows(&ecols, &fcols, n_ent, evalid.as_ref())?,
    };
    // Equal ts: the tie-break of `ord` (created, null smallest, then the larger index). One
    // closure per case, so the common "no created column" join compiles without it.
    let vals = match created {
        None => {
            let tie = TieBreak::new(None);
            let beats = |a: u32, b: u32| tie.beats_at_equal_ts(a as usize, b as usize);
            match &groups {
                Grouping::Dense(g) => join_core(ets, fts, fvalid.as_ref(), g, ttl, beats),
                Grouping::IntHash(g) => join_core(ets, fts, fvalid.as_ref(), g, ttl, beats),
                Grouping::Rows(g) => join_core(ets, fts, fvalid.as_ref(), g, ttl, beats),
            }
        }
        Some(cts) => {
            let tie = TieBreak::new(Some(cts));
            let beats = |a: u32, b: u32| tie.beats_at_equal_ts(a as usize, b as usize);
            match &groups {
                Grouping::Dense(g) => join_core(ets, fts, fvalid.as_ref(), g, ttl, beats),
                Grouping::IntHash(g) => join_core(ets, fts, fvalid.as_ref(), g, ttl, beats),
                Grouping::Rows(g) => join_core(ets, fts, fvalid.as_ref(), g, ttl, beats),
            }
        }
    };
    finish(vals?)
}

/// Turns the raw result (with [`NONE`] for "no match") into a `UInt32Array`.
fn finish(mut vals: Vec<u32>) -> Result<UInt32Array> {
    let n = vals.len();
    let nulls = if vals.iter().all(|&v| v != NONE) {
        None
    } else {
        let valid = BooleanBuffer::new(bitmap(n, |i| vals[i] != NONE)?, 0, n);
        vals.iter_mut().for_each(|v| {
            if *v == NONE {
                *v = 0
            }
        });
        Some(NullBuffer::new(valid))
    };
    Ok(UInt32Array::new(ScalarBuffer::from(vals), nulls))
}

/// An LSB-first bitmap of `n` bits, allocated fallibly (arrow-rs's builders abort when the
/// allocator refuses).
fn bitmap(n: usize, bit: impl Fn(usize) -> bool) -> Result<Buffer> {
    let mut words = mem::filled(n.div_ceil(64), 0u64, OP)?;
    for (w, word) in words.iter_mut().enumerate() {
        let base = w * 64;
        for j in 0..(n - base).min(64) {
            *word |= (bit(base + j) as u64) << j;
        }
    }
    // Little-endian words are the LSB-first byte layout Arrow expects.
    Ok(Buffer::from_vec(words))
}

// ---- inputs ------------------------------------------------------------------------------

/// The key columns of one side, read by the shared key reader.
pub(crate) fn key_cols<'a>(side: &str, keys: &'a [ArrayRef]) -> Result<Vec<KeyColumn<'a>>> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| KeyColumn::new(k, &format!("{side} key column {i}")))
        .collect()
}

/// The AND of the validity of all key columns and the timestamp column; `None` = all valid.
pub(crate) fn row_validity(keys: &[ArrayRef], ts: &dyn Array) -> Option<NullBuffer> {
    let mut acc = ts.logical_nulls();
    for k in keys {
        acc = NullBuffer::union(acc.as_ref(), k.logical_nulls().as_ref());
    }
    acc.filter(|n| n.null_count() > 0)
}

#[inline]
pub(crate) fn is_valid(nulls: Option<&NullBuffer>, i: usize) -> bool {
    nulls.is_none_or(|n| n.is_valid(i))
}
