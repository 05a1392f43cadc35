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
//! or `Int64`. Key columns may be `Int32`, `Int64`, `Timestamp(any unit)`, `Utf8`,
//! `LargeUtf8`, `Utf8View`, `Binary`, `LargeBinary`.
//!
//! # Algorithm
//!
//! Entity rows are grouped by key into dense group ids (single integer key: `key - min`
//! when the key range is dense, else an open-addressing table keyed by the value; any other
//! key: a table keyed by a 64-bit row hash with exact column-wise equality on collision).
//! A counting sort by group id followed by a per-group sort by timestamp lays the entity
//! rows out as *slots* sorted by `(group, entity_ts)`.
//!
//! The feature side is never sorted. In one parallel pass every feature row is mapped to
//! the first slot of its group whose `entity_ts >= feature_ts` (binary search; rows whose
//! key is absent on the entity side, that lie in the future of every entity row of their
//! group, or that are already too old for that slot under the ttl are dropped). A second
//! pass keeps, per slot, the maximum `(feature_ts, created, index)` assigned to it (the
//! slots are partitioned between threads so no two threads write the same slot). Finally a
//! prefix maximum over each group's slots, in timestamp order, yields for every entity row
//! the best feature row with `feature_ts <= entity_ts`; it is kept only if its
//! `feature_ts >= entity_ts - ttl` (no other candidate can have a later timestamp, so if
//! the best fails the ttl every candidate does).
//!
//! Cost: `O(E log E_g + F log E_g)` for `E` entity rows, `F` feature rows and `E_g` entity
//! rows per key; memory `O(E + F)`; no allocation per row. Because the feature side is
//! streamed, an already sorted feature side needs no special path.

use std::borrow::Cow;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int32Type, Int64Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, ArrayRef, BinaryViewArray, StringViewArray, UInt32Array};
use arrow_buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use arrow_schema::{DataType, TimeUnit};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// "No value" marker for group ids, slot positions and result indices.
const NONE: u32 = u32::MAX;

/// Rows per parallel task when streaming the feature side.
const CHUNK: usize = 1 << 15;

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
    if entity_keys.len() != feature_keys.len() {
        return Err(Error::Mismatch(format!(
            "entity side has {} key columns, feature side has {}",
            entity_keys.len(),
            feature_keys.len()
        )));
    }
    let ttl = match ttl {
        None | Some(0) => 0,
        Some(t) if t < 0 => return Err(Error::Invalid(format!("ttl must be >= 0, got {t}"))),
        Some(t) => t,
    };
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
    let ets = timestamps("entity_ts", entity_ts)?;
    let fts = timestamps("feature_ts", feature_ts)?;
    let created = match feature_created {
        Some(c) => {
            if c.len() != n_feat {
                return Err(Error::Mismatch(format!(
                    "feature_created has {} rows, feature_ts has {n_feat}",
                    c.len()
                )));
            }
            Some((timestamps("feature_created", c)?, c.logical_nulls()))
        }
        None => None,
    };
    let ecols = key_cols("entity", entity_keys)?;
    let fcols = key_cols("feature", feature_keys)?;

    if n_ent == 0 {
        return Ok(UInt32Array::from(Vec::<u32>::new()));
    }
    if n_feat == 0 {
        return Ok(UInt32Array::new_null(n_ent));
    }

    // Row validity: every key and the timestamp non-null.
    let evalid = row_validity(entity_keys, entity_ts);
    let fvalid = row_validity(feature_keys, feature_ts);

    // ---- grouping ----------------------------------------------------------------------
    let single_int = match (ecols.first(), fcols.first()) {
        (Some(e), Some(f)) if ecols.len() == 1 => e.int_values().zip(f.int_values()),
        _ => None,
    };
    let groups = match single_int {
        Some((ek, fk)) => group_int(ek, fk, evalid.as_ref()),
        None => group_rows(&ecols, &fcols, n_ent, evalid.as_ref()),
    };
    let vals = match created {
        None => match &groups {
            Grouping::Dense(g) => join_core(ets, fts, fvalid.as_ref(), g, ttl, |f| f as u64 + 1),
            Grouping::IntHash(g) => join_core(ets, fts, fvalid.as_ref(), g, ttl, |f| f as u64 + 1),
            Grouping::Rows(g) => join_core(ets, fts, fvalid.as_ref(), g, ttl, |f| f as u64 + 1),
        },
        Some((cts, cnulls)) => {
            let tie = |f: usize| created_tie(cts, cnulls.as_ref(), f);
            match &groups {
                Grouping::Dense(g) => join_core(ets, fts, fvalid.as_ref(), g, ttl, tie),
                Grouping::IntHash(g) => join_core(ets, fts, fvalid.as_ref(), g, ttl, tie),
                Grouping::Rows(g) => join_core(ets, fts, fvalid.as_ref(), g, ttl, tie),
            }
        }
    };
    Ok(finish(vals))
}

/// Turns the raw result (with [`NONE`] for "no match") into a `UInt32Array`.
fn finish(mut vals: Vec<u32>) -> UInt32Array {
    let valid = BooleanBuffer::collect_bool(vals.len(), |i| vals[i] != NONE);
    let nulls = if valid.count_set_bits() == vals.len() {
        None
    } else {
        vals.iter_mut().for_each(|v| {
            if *v == NONE {
                *v = 0
            }
        });
        Some(NullBuffer::new(valid))
    };
    UInt32Array::new(ScalarBuffer::from(vals), nulls)
}

// ---- inputs ------------------------------------------------------------------------------

fn timestamps<'a>(name: &str, a: &'a dyn Array) -> Result<&'a [i64]> {
    match a.data_type() {
        DataType::Int64 => Ok(a.as_primitive::<Int64Type>().values()),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Ok(a.as_primitive::<TimestampMicrosecondType>().values())
        }
        other => Err(Error::UnsupportedType {
            column: name.to_string(),
            found: other.clone(),
            expected: "timestamp[us] or int64".to_string(),
        }),
    }
}

/// The AND of the validity of all key columns and the timestamp column; `None` = all valid.
fn row_validity(keys: &[ArrayRef], ts: &dyn Array) -> Option<NullBuffer> {
    let mut acc = ts.logical_nulls();
    for k in keys {
        acc = NullBuffer::union(acc.as_ref(), k.logical_nulls().as_ref());
    }
    acc.filter(|n| n.null_count() > 0)
}

#[inline]
fn is_valid(nulls: Option<&NullBuffer>, i: usize) -> bool {
    nulls.is_none_or(|n| n.is_valid(i))
}

/// A borrowed view of one key column.
enum KeyCol<'a> {
    I32(&'a [i32]),
    I64(&'a [i64]),
    Bytes(&'a [i32], &'a [u8]),
    LargeBytes(&'a [i64], &'a [u8]),
    StrView(&'a StringViewArray),
    BinView(&'a BinaryViewArray),
}

fn key_cols<'a>(side: &str, keys: &'a [ArrayRef]) -> Result<Vec<KeyCol<'a>>> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            let a = k.as_ref();
            Ok(match a.data_type() {
                DataType::Int32 => KeyCol::I32(a.as_primitive::<Int32Type>().values()),
                DataType::Int64 => KeyCol::I64(a.as_primitive::<Int64Type>().values()),
                DataType::Timestamp(unit, _) => KeyCol::I64(match unit {
                    TimeUnit::Second => a.as_primitive::<TimestampSecondType>().values(),
                    TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().values(),
                    TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().values(),
                    TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().values(),
                }),
                DataType::Utf8 => {
                    let s = a.as_string::<i32>();
                    KeyCol::Bytes(s.value_offsets(), s.value_data())
                }
                DataType::LargeUtf8 => {
                    let s = a.as_string::<i64>();
                    KeyCol::LargeBytes(s.value_offsets(), s.value_data())
                }
                DataType::Binary => {
                    let s = a.as_binary::<i32>();
                    KeyCol::Bytes(s.value_offsets(), s.value_data())
                }
                DataType::LargeBinary => {
                    let s = a.as_binary::<i64>();
                    KeyCol::LargeBytes(s.value_offsets(), s.value_data())
                }
                DataType::Utf8View => KeyCol::StrView(a.as_string_view()),
                DataType::BinaryView => KeyCol::BinView(a.as_binary_view()),
                other => {
                    return Err(Error::UnsupportedType {
                        column: format!("{side} key column {i}"),
                        found: other.clone(),
                        expected: "int32, int64, timestamp, string, large_string, string_view, \
                                   binary, large_binary or binary_view"
                            .to_string(),
                    })
                }
            })
        })
        .collect()
}

impl KeyCol<'_> {
    /// The values as `i64`, for integer-like columns.
    fn int_values(&self) -> Option<Cow<'_, [i64]>> {
        match self {
            KeyCol::I64(v) => Some(Cow::Borrowed(v)),
            KeyCol::I32(v) => Some(Cow::Owned(v.iter().map(|&x| x as i64).collect())),
            _ => None,
        }
    }

    #[inline]
    fn hash(&self, i: usize) -> u64 {
        match self {
            KeyCol::I32(v) => fmix64(v[i] as i64 as u64),
            KeyCol::I64(v) => fmix64(v[i] as u64),
            KeyCol::Bytes(o, d) => hash_bytes(&d[o[i] as usize..o[i + 1] as usize]),
            KeyCol::LargeBytes(o, d) => hash_bytes(&d[o[i] as usize..o[i + 1] as usize]),
            KeyCol::StrView(a) => hash_bytes(a.value(i).as_bytes()),
            KeyCol::BinView(a) => hash_bytes(a.value(i)),
        }
    }

    /// Row `i` of `self` equals row `j` of `other` (a column of the same type).
    #[inline]
    fn eq(&self, i: usize, other: &KeyCol<'_>, j: usize) -> bool {
        match (self, other) {
            (KeyCol::I32(a), KeyCol::I32(b)) => a[i] == b[j],
            (KeyCol::I64(a), KeyCol::I64(b)) => a[i] == b[j],
            (KeyCol::Bytes(ao, ad), KeyCol::Bytes(bo, bd)) => {
                ad[ao[i] as usize..ao[i + 1] as usize] == bd[bo[j] as usize..bo[j + 1] as usize]
            }
            (KeyCol::LargeBytes(ao, ad), KeyCol::LargeBytes(bo, bd)) => {
                ad[ao[i] as usize..ao[i + 1] as usize] == bd[bo[j] as usize..bo[j + 1] as usize]
            }
            (KeyCol::StrView(a), KeyCol::StrView(b)) => a.value(i) == b.value(j),
            (KeyCol::BinView(a), KeyCol::BinView(b)) => a.value(i) == b.value(j),
            _ => false, // types are checked equal up front
        }
    }
}

// ---- hashing -----------------------------------------------------------------------------

/// A 64-bit finaliser with full avalanche (the MurmurHash3 `fmix64` mixer).
#[inline]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

/// A simple word-at-a-time byte hash; quality only affects speed (equality is exact).
#[inline]
fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = (b.len() as u64).wrapping_mul(MUL) ^ 0x2545_f491_4f6c_dd1d;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap());
        h = (h ^ w).wrapping_mul(MUL).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(buf))
            .wrapping_mul(MUL)
            .rotate_left(29);
    }
    fmix64(h)
}

// ---- group tables ------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Entry {
    tag: u64,
    gid: u32,
}

const EMPTY_ENTRY: Entry = Entry { tag: 0, gid: NONE };

/// Open-addressing (linear probing) table from a 64-bit tag to a group id. The caller
/// supplies the hash and, for tags that are hashes rather than values, an exact equality
/// check on the group's representative row.
struct GroupTable {
    slots: Vec<Entry>,
    shift: u32,
    len: usize,
}

impl GroupTable {
    fn with_capacity(n: usize) -> Self {
        let bits = (n.max(8) * 2).next_power_of_two().trailing_zeros();
        GroupTable {
            slots: vec![EMPTY_ENTRY; 1 << bits],
            shift: 64 - bits,
            len: 0,
        }
    }

    #[inline]
    fn find(&self, hash: u64, tag: u64, mut eq: impl FnMut(u32) -> bool) -> u32 {
        let mask = self.slots.len() - 1;
        let mut i = (hash >> self.shift) as usize;
        loop {
            let e = self.slots[i];
            if e.gid == NONE {
                return NONE;
            }
            if e.tag == tag && eq(e.gid) {
                return e.gid;
            }
            i = (i + 1) & mask;
        }
    }

    /// The group id of `tag`, inserting it with id `self.len` if absent.
    #[inline]
    fn find_or_insert(
        &mut self,
        hash: u64,
        tag: u64,
        mut eq: impl FnMut(u32) -> bool,
        rehash: impl Fn(u64) -> u64,
    ) -> u32 {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow(rehash);
        }
        let mask = self.slots.len() - 1;
        let mut i = (hash >> self.shift) as usize;
        loop {
            let e = self.slots[i];
            if e.gid == NONE {
                let gid = self.len as u32;
                self.slots[i] = Entry { tag, gid };
                self.len += 1;
                return gid;
            }
            if e.tag == tag && eq(e.gid) {
                return e.gid;
            }
            i = (i + 1) & mask;
        }
    }

    #[cold]
    fn grow(&mut self, rehash: impl Fn(u64) -> u64) {
        let bits = (self.slots.len() * 2).trailing_zeros();
        let old = std::mem::replace(&mut self.slots, vec![EMPTY_ENTRY; 1 << bits]);
        self.shift = 64 - bits;
        let mask = self.slots.len() - 1;
        for e in old.into_iter().filter(|e| e.gid != NONE) {
            let mut i = (rehash(e.tag) >> self.shift) as usize;
            while self.slots[i].gid != NONE {
                i = (i + 1) & mask;
            }
            self.slots[i] = e;
        }
    }
}

// ---- grouping ----------------------------------------------------------------------------

/// Entity rows mapped to dense group ids, plus a way to look feature rows up.
trait Groups: Sync {
    /// Group id of every entity row (`NONE` for invalid rows).
    fn entity_gids(&self) -> &[u32];
    /// Number of group ids (some may be empty).
    fn n_groups(&self) -> usize;
    /// Group id of (valid) feature row `f`, `NONE` if its key is absent on the entity side.
    fn feature_gid(&self, f: usize) -> u32;
}

enum Grouping<'a> {
    Dense(DenseGroups<'a>),
    IntHash(IntHashGroups<'a>),
    Rows(RowGroups<'a>),
}

/// Single integer key with a small value range: the group id is `key - min`.
struct DenseGroups<'a> {
    egid: Vec<u32>,
    fkeys: Cow<'a, [i64]>,
    min: i64,
    n: usize,
}

/// Single integer key: a table keyed by the value itself.
struct IntHashGroups<'a> {
    egid: Vec<u32>,
    fkeys: Cow<'a, [i64]>,
    table: GroupTable,
}

/// Any key: a table keyed by a row hash, with exact equality against a representative row.
struct RowGroups<'a> {
    egid: Vec<u32>,
    ecols: &'a [KeyCol<'a>],
    fcols: &'a [KeyCol<'a>],
    reps: Vec<u32>,
    table: GroupTable,
}

impl Groups for DenseGroups<'_> {
    fn entity_gids(&self) -> &[u32] {
        &self.egid
    }
    fn n_groups(&self) -> usize {
        self.n
    }
    #[inline]
    fn feature_gid(&self, f: usize) -> u32 {
        let d = self.fkeys[f].wrapping_sub(self.min) as u64;
        if d < self.n as u64 {
            d as u32
        } else {
            NONE
        }
    }
}

impl Groups for IntHashGroups<'_> {
    fn entity_gids(&self) -> &[u32] {
        &self.egid
    }
    fn n_groups(&self) -> usize {
        self.table.len
    }
    #[inline]
    fn feature_gid(&self, f: usize) -> u32 {
        let k = self.fkeys[f] as u64;
        self.table.find(fmix64(k), k, |_| true)
    }
}

impl Groups for RowGroups<'_> {
    fn entity_gids(&self) -> &[u32] {
        &self.egid
    }
    fn n_groups(&self) -> usize {
        self.table.len
    }
    #[inline]
    fn feature_gid(&self, f: usize) -> u32 {
        let h = row_hash(self.fcols, f);
        self.table.find(h, h, |g| {
            rows_eq(self.ecols, self.reps[g as usize] as usize, self.fcols, f)
        })
    }
}

#[inline]
fn row_hash(cols: &[KeyCol<'_>], i: usize) -> u64 {
    let mut h = 0x243f_6a88_85a3_08d3u64;
    for c in cols {
        h = fmix64(h.rotate_left(23) ^ c.hash(i));
    }
    h
}

#[inline]
fn rows_eq(a: &[KeyCol<'_>], i: usize, b: &[KeyCol<'_>], j: usize) -> bool {
    a.iter().zip(b).all(|(x, y)| x.eq(i, y, j))
}

fn group_int<'a>(
    ekeys: Cow<'a, [i64]>,
    fkeys: Cow<'a, [i64]>,
    evalid: Option<&NullBuffer>,
) -> Grouping<'a> {
    let n = ekeys.len();
    let mut n_valid = 0usize;
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    for (i, &k) in ekeys.iter().enumerate() {
        if is_valid(evalid, i) {
            n_valid += 1;
            min = min.min(k);
            max = max.max(k);
        }
    }
    if n_valid == 0 {
        return Grouping::Dense(DenseGroups {
            egid: vec![NONE; n],
            fkeys,
            min: 0,
            n: 0,
        });
    }
    let range = (max as i128 - min as i128) as u128 + 1;
    if range <= (2 * n_valid as u128 + 1024).min(NONE as u128 - 1) {
        let egid = ekeys
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                if is_valid(evalid, i) {
                    k.wrapping_sub(min) as u32
                } else {
                    NONE
                }
            })
            .collect();
        return Grouping::Dense(DenseGroups {
            egid,
            fkeys,
            min,
            n: range as usize,
        });
    }
    let mut table = GroupTable::with_capacity(n_valid.min(1 << 16));
    let egid = ekeys
        .iter()
        .enumerate()
        .map(|(i, &k)| {
            if is_valid(evalid, i) {
                let k = k as u64;
                table.find_or_insert(fmix64(k), k, |_| true, fmix64)
            } else {
                NONE
            }
        })
        .collect();
    Grouping::IntHash(IntHashGroups { egid, fkeys, table })
}

fn group_rows<'a>(
    ecols: &'a [KeyCol<'a>],
    fcols: &'a [KeyCol<'a>],
    n_ent: usize,
    evalid: Option<&NullBuffer>,
) -> Grouping<'a> {
    let hashes: Vec<u64> = (0..n_ent)
        .into_par_iter()
        .with_min_len(CHUNK)
        .map(|i| {
            if is_valid(evalid, i) {
                row_hash(ecols, i)
            } else {
                0
            }
        })
        .collect();
    let n_valid = evalid.map_or(n_ent, |v| n_ent - v.null_count());
    let mut table = GroupTable::with_capacity(n_valid.min(1 << 16));
    let mut reps: Vec<u32> = Vec::new();
    let mut egid = vec![NONE; n_ent];
    for (i, (g, &h)) in egid.iter_mut().zip(&hashes).enumerate() {
        if !is_valid(evalid, i) {
            continue;
        }
        let id = table.find_or_insert(
            h,
            h,
            |g| rows_eq(ecols, reps[g as usize] as usize, ecols, i),
            |t| t,
        );
        if id as usize == reps.len() {
            reps.push(i as u32);
        }
        *g = id;
    }
    Grouping::Rows(RowGroups {
        egid,
        ecols,
        fcols,
        reps,
        table,
    })
}

// ---- the join ----------------------------------------------------------------------------

/// Tie-breaker of a feature row below its timestamp; larger wins. `EMPTY` (all zeros)
/// is smaller than every real value, which always encodes `index + 1` in its low bits.
trait Tie: Copy + Ord + Send + Sync {
    const EMPTY: Self;
    fn index(self) -> u32;
}

/// Without created timestamps: `index + 1`.
impl Tie for u64 {
    const EMPTY: Self = 0;
    #[inline]
    fn index(self) -> u32 {
        (self - 1) as u32
    }
}

/// With created timestamps: `(created as order-preserving u64, valid << 32 | index + 1)`.
/// A null created encodes as `(0, index + 1)`, below any valid created (even `i64::MIN`,
/// which encodes as `(0, 1 << 32 | index + 1)`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct CreatedTie(u64, u64);

impl Tie for CreatedTie {
    const EMPTY: Self = CreatedTie(0, 0);
    #[inline]
    fn index(self) -> u32 {
        ((self.1 & 0xffff_ffff) - 1) as u32
    }
}

#[inline]
fn created_tie(cts: &[i64], cnulls: Option<&NullBuffer>, f: usize) -> CreatedTie {
    if is_valid(cnulls, f) {
        CreatedTie((cts[f] as u64) ^ (1 << 63), (1 << 32) | (f as u64 + 1))
    } else {
        CreatedTie(0, f as u64 + 1)
    }
}

/// An entity row in its sorted slot.
#[derive(Clone, Copy, Default)]
struct Slot {
    ts: i64,
    row: u32,
}

/// The best feature row seen for a slot; compares by `(ts, tie)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Best<T> {
    ts: i64,
    tie: T,
}

fn join_core<T: Tie, G: Groups>(
    ets: &[i64],
    fts: &[i64],
    fvalid: Option<&NullBuffer>,
    groups: &G,
    ttl: i64,
    tie: impl Fn(usize) -> T + Sync,
) -> Vec<u32> {
    let n_ent = ets.len();
    let n_feat = fts.len();
    let egid = groups.entity_gids();
    let n_groups = groups.n_groups();

    // 1. Counting sort of entity rows by group, then by timestamp within each group.
    let mut offsets = vec![0u32; n_groups + 1];
    for &g in egid {
        if g != NONE {
            offsets[g as usize + 1] += 1;
        }
    }
    for g in 0..n_groups {
        offsets[g + 1] += offsets[g];
    }
    let n_slots = offsets[n_groups] as usize;
    let mut slots = vec![Slot::default(); n_slots];
    {
        let mut cursor = offsets[..n_groups].to_vec();
        for (row, &g) in egid.iter().enumerate() {
            if g != NONE {
                let c = &mut cursor[g as usize];
                slots[*c as usize] = Slot {
                    ts: ets[row],
                    row: row as u32,
                };
                *c += 1;
            }
        }
    }
    let parts = rayon::current_num_threads().max(1);
    for_each_group_part(&offsets, parts * 4, &mut slots, |offs, part| {
        let base = offs[0] as usize;
        for w in offs.windows(2) {
            let g = &mut part[w[0] as usize - base..w[1] as usize - base];
            if g.len() > 1 {
                g.sort_unstable_by_key(|s| s.ts);
            }
        }
    });

    // 2. Map every feature row to the first slot of its group with entity_ts >= feature_ts.
    let mut fslot = vec![NONE; n_feat];
    fslot
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, out)| {
            let base = c * CHUNK;
            for (j, o) in out.iter_mut().enumerate() {
                let f = base + j;
                if !is_valid(fvalid, f) {
                    continue;
                }
                let g = groups.feature_gid(f);
                if g == NONE {
                    continue;
                }
                let (lo, hi) = (
                    offsets[g as usize] as usize,
                    offsets[g as usize + 1] as usize,
                );
                let t = fts[f];
                let p = lo + slots[lo..hi].partition_point(|s| s.ts < t);
                if p == hi {
                    continue; // later than every entity row of the group
                }
                if ttl > 0 && t < slots[p].ts.saturating_sub(ttl) {
                    continue; // too old even for the earliest entity row that can see it
                }
                *o = p as u32;
            }
        });

    // 3. Per slot, the maximum (ts, tie) assigned to it. Each task owns a slot range.
    let empty = Best {
        ts: i64::MIN,
        tie: T::EMPTY,
    };
    let mut best = vec![empty; n_slots];
    let per = n_slots.div_ceil(parts).max(1);
    best.par_chunks_mut(per).enumerate().for_each(|(k, part)| {
        let base = (k * per) as u32;
        let len = part.len();
        for (f, &s) in fslot.iter().enumerate() {
            let s = s.wrapping_sub(base) as usize;
            if s < len {
                let cand = Best {
                    ts: fts[f],
                    tie: tie(f),
                };
                if cand > part[s] {
                    part[s] = cand;
                }
            }
        }
    });
    drop(fslot);

    // 4. Prefix maximum within each group; keep it if it is within the ttl.
    let mut res = vec![NONE; n_slots];
    {
        let best = &best;
        let slots = &slots;
        for_each_group_part(&offsets, parts * 4, &mut res, |offs, part| {
            let base = offs[0] as usize;
            for w in offs.windows(2) {
                let mut run = empty;
                for s in w[0] as usize..w[1] as usize {
                    if best[s] > run {
                        run = best[s];
                    }
                    if run.tie != T::EMPTY
                        && (ttl == 0 || run.ts >= slots[s].ts.saturating_sub(ttl))
                    {
                        part[s - base] = run.tie.index();
                    }
                }
            }
        });
    }

    // 5. Back to entity order.
    let mut out = vec![NONE; n_ent];
    for (s, r) in slots.iter().zip(&res) {
        out[s.row as usize] = *r;
    }
    out
}

/// Splits `data` (laid out by the group `offsets`) into about `parts` pieces along group
/// boundaries and runs `f(offsets_of_piece, piece)` on them in parallel. `offsets_of_piece`
/// holds the piece's group boundaries (absolute positions), first to last.
fn for_each_group_part<D: Send>(
    offsets: &[u32],
    parts: usize,
    data: &mut [D],
    f: impl Fn(&[u32], &mut [D]) + Sync,
) {
    let n_groups = offsets.len() - 1;
    let total = offsets[n_groups] as usize;
    let mut cuts = vec![0usize];
    for k in 1..parts {
        let target = total * k / parts;
        let g = offsets
            .partition_point(|&o| (o as usize) < target)
            .min(n_groups);
        if g > *cuts.last().unwrap() {
            cuts.push(g);
        }
    }
    if *cuts.last().unwrap() < n_groups {
        cuts.push(n_groups);
    }
    let mut pieces = Vec::with_capacity(cuts.len());
    let mut rest = data;
    for w in cuts.windows(2) {
        let len = (offsets[w[1]] - offsets[w[0]]) as usize;
        let (head, tail) = rest.split_at_mut(len);
        pieces.push((&offsets[w[0]..=w[1]], head));
        rest = tail;
    }
    pieces
        .into_par_iter()
        .for_each(|(offs, piece)| f(offs, piece));
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        BinaryArray, Int32Array, Int64Array, LargeBinaryArray, LargeStringArray, StringArray,
        TimestampMicrosecondArray, TimestampSecondArray,
    };

    use super::*;

    fn i64s(v: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(v.to_vec()))
    }
    fn ts(v: &[i64]) -> Int64Array {
        Int64Array::from(v.to_vec())
    }
    fn out(a: &UInt32Array) -> Vec<Option<u32>> {
        a.iter().collect()
    }

    /// The semantics, spelled out with no cleverness at all.
    #[allow(clippy::too_many_arguments)]
    fn brute(
        ek: &[Vec<Option<i64>>],
        et: &[Option<i64>],
        fk: &[Vec<Option<i64>>],
        ft: &[Option<i64>],
        fc: Option<&[Option<i64>]>,
        ttl: i64,
    ) -> Vec<Option<u32>> {
        (0..et.len())
            .map(|e| {
                let t = et[e]?;
                let key: Vec<i64> = ek.iter().map(|c| c[e]).collect::<Option<_>>()?;
                let mut best: Option<(i64, (bool, i64), usize)> = None;
                for f in 0..ft.len() {
                    let Some(x) = ft[f] else { continue };
                    let Some(k) = fk.iter().map(|c| c[f]).collect::<Option<Vec<i64>>>() else {
                        continue;
                    };
                    if k != key || x > t || (ttl > 0 && (x as i128) < t as i128 - ttl as i128) {
                        continue;
                    }
                    let c = fc.and_then(|c| c[f]);
                    let cand = (x, (c.is_some(), c.unwrap_or(0)), f);
                    if best.is_none_or(|b| cand > b) {
                        best = Some(cand);
                    }
                }
                best.map(|b| b.2 as u32)
            })
            .collect()
    }

    #[test]
    fn simple() {
        let r = asof_join(
            &[i64s(&[Some(1), Some(2), Some(1), Some(3)])],
            &ts(&[10, 10, 5, 10]),
            &[i64s(&[Some(1), Some(1), Some(2), Some(1)])],
            &ts(&[4, 8, 10, 11]),
            None,
            None,
        )
        .unwrap();
        assert_eq!(out(&r), vec![Some(1), Some(2), Some(0), None]);
    }

    #[test]
    fn ties_created_then_index() {
        let k = || i64s(&[Some(7); 4]);
        let created = Int64Array::from(vec![Some(3), Some(5), None, Some(5)]);
        // Same feature_ts; created 5 appears at rows 1 and 3 -> the larger index, 3.
        let r = asof_join(
            &[i64s(&[Some(7)])],
            &ts(&[100]),
            &[k()],
            &ts(&[50; 4]),
            Some(&created),
            None,
        )
        .unwrap();
        assert_eq!(out(&r), vec![Some(3)]);
        // Without created: full tie -> largest index.
        let r = asof_join(
            &[i64s(&[Some(7)])],
            &ts(&[100]),
            &[k()],
            &ts(&[50; 4]),
            None,
            None,
        )
        .unwrap();
        assert_eq!(out(&r), vec![Some(3)]);
        // Null created is the smallest, even below i64::MIN.
        let created = Int64Array::from(vec![None, Some(i64::MIN), None]);
        let r = asof_join(
            &[i64s(&[Some(7)])],
            &ts(&[100]),
            &[i64s(&[Some(7); 3])],
            &ts(&[50; 3]),
            Some(&created),
            None,
        )
        .unwrap();
        assert_eq!(out(&r), vec![Some(1)]);
        // A later feature_ts beats a larger created.
        let created = Int64Array::from(vec![Some(100), Some(1)]);
        let r = asof_join(
            &[i64s(&[Some(7)])],
            &ts(&[100]),
            &[i64s(&[Some(7); 2])],
            &ts(&[50, 51]),
            Some(&created),
            None,
        )
        .unwrap();
        assert_eq!(out(&r), vec![Some(1)]);
    }

    #[test]
    fn ttl_boundaries() {
        let ek = [i64s(&[Some(1); 4])];
        let et = ts(&[100, 100, 100, 110]);
        let fk = [i64s(&[Some(1)])];
        // feature at exactly entity_ts - ttl (ttl 10) and exactly entity_ts.
        let r = asof_join(&ek, &et, &fk, &ts(&[90]), None, Some(10)).unwrap();
        assert_eq!(out(&r), vec![Some(0), Some(0), Some(0), None]);
        let r = asof_join(&ek, &et, &fk, &ts(&[100]), None, Some(10)).unwrap();
        assert_eq!(out(&r), vec![Some(0); 4]);
        let r = asof_join(&ek, &et, &fk, &ts(&[89]), None, Some(10)).unwrap();
        assert_eq!(out(&r), vec![None; 4]);
        // ttl 0 and None = unbounded.
        for ttl in [None, Some(0)] {
            let r = asof_join(&ek, &et, &fk, &ts(&[i64::MIN]), None, ttl).unwrap();
            assert_eq!(out(&r), vec![Some(0); 4]);
        }
        // Huge ttl does not overflow.
        let r = asof_join(
            &ek,
            &ts(&[i64::MIN + 5; 4]),
            &fk,
            &ts(&[i64::MIN]),
            None,
            Some(i64::MAX),
        )
        .unwrap();
        assert_eq!(out(&r), vec![Some(0); 4]);
        // The best candidate is out of the ttl -> null even if an older row exists.
        let r = asof_join(
            &[i64s(&[Some(1)])],
            &ts(&[100]),
            &[i64s(&[Some(1); 2])],
            &ts(&[80, 95]),
            None,
            Some(10),
        )
        .unwrap();
        assert_eq!(out(&r), vec![Some(1)]);
        let r = asof_join(
            &[i64s(&[Some(1)])],
            &ts(&[100]),
            &[i64s(&[Some(1); 2])],
            &ts(&[80, 85]),
            None,
            Some(10),
        )
        .unwrap();
        assert_eq!(out(&r), vec![None]);
        assert!(matches!(
            asof_join(&ek, &et, &fk, &ts(&[1]), None, Some(-1)),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn future_rows_excluded() {
        let r = asof_join(
            &[i64s(&[Some(1), Some(1)])],
            &ts(&[10, 20]),
            &[i64s(&[Some(1), Some(1)])],
            &ts(&[11, 21]),
            None,
            None,
        )
        .unwrap();
        assert_eq!(out(&r), vec![None, Some(0)]);
    }

    #[test]
    fn nulls_never_match() {
        let ek = [i64s(&[Some(1), None, Some(1), Some(2)])];
        let et = Int64Array::from(vec![Some(10), Some(10), None, Some(10)]);
        let fk = [i64s(&[Some(1), None, Some(2), Some(1), Some(2)])];
        let ft = Int64Array::from(vec![Some(5), Some(6), None, None, Some(1)]);
        let r = asof_join(&ek, &et, &fk, &ft, None, None).unwrap();
        assert_eq!(out(&r), vec![Some(0), None, None, Some(4)]);
        assert_eq!(r.null_count(), 2);
    }

    #[test]
    fn empty_sides() {
        let r = asof_join(
            &[i64s(&[])],
            &ts(&[]),
            &[i64s(&[Some(1)])],
            &ts(&[1]),
            None,
            None,
        )
        .unwrap();
        assert_eq!(r.len(), 0);
        let r = asof_join(
            &[i64s(&[Some(1), Some(2)])],
            &ts(&[1, 2]),
            &[i64s(&[])],
            &ts(&[]),
            None,
            None,
        )
        .unwrap();
        assert_eq!(out(&r), vec![None, None]);
    }

    #[test]
    fn string_keys() {
        for make in [
            |v: &[Option<&str>]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef,
            |v: &[Option<&str>]| Arc::new(LargeStringArray::from(v.to_vec())) as ArrayRef,
            |v: &[Option<&str>]| Arc::new(StringViewArray::from(v.to_vec())) as ArrayRef,
            |v: &[Option<&str>]| {
                Arc::new(BinaryArray::from(
                    v.iter().map(|s| s.map(str::as_bytes)).collect::<Vec<_>>(),
                )) as ArrayRef
            },
            |v: &[Option<&str>]| {
                Arc::new(LargeBinaryArray::from(
                    v.iter().map(|s| s.map(str::as_bytes)).collect::<Vec<_>>(),
                )) as ArrayRef
            },
            |v: &[Option<&str>]| {
                Arc::new(BinaryViewArray::from(
                    v.iter().map(|s| s.map(str::as_bytes)).collect::<Vec<_>>(),
                )) as ArrayRef
            },
        ] {
            let ek = [make(&[
                Some("alice"),
                Some("bob"),
                Some("a much longer key than twelve"),
                None,
                Some(""),
            ])];
            let fk = [make(&[
                Some("bob"),
                Some("alice"),
                Some("a much longer key than twelve"),
                Some("alic"),
                Some(""),
                None,
            ])];
            let r =
                asof_join(&ek, &ts(&[5; 5]), &fk, &ts(&[1, 2, 3, 4, 5, 5]), None, None).unwrap();
            assert_eq!(out(&r), vec![Some(1), Some(0), Some(2), None, Some(4)]);
        }
    }

    #[test]
    fn composite_keys() {
        let ek: [ArrayRef; 2] = [
            Arc::new(Int32Array::from(vec![1, 1, 2, 2])),
            Arc::new(StringArray::from(vec!["x", "y", "x", "y"])),
        ];
        let fk: [ArrayRef; 2] = [
            Arc::new(Int32Array::from(vec![1, 2, 2, 1, 1])),
            Arc::new(StringArray::from(vec!["y", "x", "y", "x", "y"])),
        ];
        let r = asof_join(&ek, &ts(&[10; 4]), &fk, &ts(&[1, 2, 3, 4, 11]), None, None).unwrap();
        assert_eq!(out(&r), vec![Some(3), Some(0), Some(1), Some(2)]);
    }

    #[test]
    fn int32_and_timestamp_keys() {
        let r = asof_join(
            &[Arc::new(Int32Array::from(vec![Some(-3), Some(4), None]))],
            &ts(&[10; 3]),
            &[Arc::new(Int32Array::from(vec![
                Some(4),
                Some(-3),
                Some(-3),
            ]))],
            &ts(&[1, 2, 3]),
            None,
            None,
        )
        .unwrap();
        assert_eq!(out(&r), vec![Some(2), Some(0), None]);
        let r = asof_join(
            &[Arc::new(
                TimestampSecondArray::from(vec![100, 200]).with_timezone("UTC"),
            )],
            &TimestampMicrosecondArray::from(vec![10, 10]).with_timezone("UTC"),
            &[Arc::new(
                TimestampSecondArray::from(vec![200, 100]).with_timezone("UTC"),
            )],
            &TimestampMicrosecondArray::from(vec![1, 2]),
            None,
            None,
        )
        .unwrap();
        assert_eq!(out(&r), vec![Some(1), Some(0)]);
    }

    #[test]
    fn sparse_int_keys_use_the_hash_table() {
        let keys: Vec<Option<i64>> = (0..5000i64)
            .map(|i| Some(i.wrapping_mul(0x9e37_79b9_7f4a_7c15u64 as i64)))
            .collect();
        let ek = [i64s(&keys)];
        let fk = [i64s(&keys.iter().rev().cloned().collect::<Vec<_>>())];
        let r = asof_join(
            &ek,
            &ts(&vec![10; 5000]),
            &fk,
            &ts(&vec![5; 5000]),
            None,
            None,
        )
        .unwrap();
        let want: Vec<Option<u32>> = (0..5000u32).map(|i| Some(4999 - i)).collect();
        assert_eq!(out(&r), want);
    }

    #[test]
    fn zero_key_columns_is_one_group() {
        let r = asof_join(&[], &ts(&[5, 15]), &[], &ts(&[1, 10, 20]), None, None).unwrap();
        assert_eq!(out(&r), vec![Some(0), Some(1)]);
    }

    #[test]
    fn errors() {
        let e = asof_join(
            &[i64s(&[Some(1)])],
            &ts(&[1]),
            &[Arc::new(Int32Array::from(vec![1]))],
            &ts(&[1]),
            None,
            None,
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::Mismatch(m) if m.contains("key column 0") && m.contains("Int64") && m.contains("Int32")),
            "{e}"
        );
        let e = asof_join(&[i64s(&[Some(1)])], &ts(&[1]), &[], &ts(&[1]), None, None).unwrap_err();
        assert!(matches!(e, Error::Mismatch(_)));
        let e = asof_join(
            &[i64s(&[Some(1)])],
            &ts(&[1, 2]),
            &[i64s(&[Some(1)])],
            &ts(&[1]),
            None,
            None,
        )
        .unwrap_err();
        assert!(matches!(e, Error::Mismatch(_)));
        let e = asof_join(
            &[i64s(&[Some(1)])],
            &ts(&[1]),
            &[i64s(&[Some(1), Some(2)])],
            &ts(&[1]),
            None,
            None,
        )
        .unwrap_err();
        assert!(matches!(e, Error::Mismatch(_)));
        let e = asof_join(
            &[i64s(&[Some(1)])],
            &ts(&[1]),
            &[i64s(&[Some(1)])],
            &ts(&[1]),
            Some(&ts(&[1, 2])),
            None,
        )
        .unwrap_err();
        assert!(matches!(e, Error::Mismatch(_)));
        let e = asof_join(
            &[i64s(&[Some(1)])],
            &TimestampSecondArray::from(vec![1]),
            &[i64s(&[Some(1)])],
            &ts(&[1]),
            None,
            None,
        )
        .unwrap_err();
        assert!(matches!(e, Error::UnsupportedType { .. }));
        let f: ArrayRef = Arc::new(arrow_array::Float64Array::from(vec![1.0]));
        let e = asof_join(
            std::slice::from_ref(&f),
            &ts(&[1]),
            std::slice::from_ref(&f),
            &ts(&[1]),
            None,
            None,
        )
        .unwrap_err();
        assert!(matches!(e, Error::UnsupportedType { .. }));
    }

    /// Tiny deterministic PRNG for the randomized comparison.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn opt(&mut self, n: u64, null_pct: u64) -> Option<i64> {
            (self.below(100) >= null_pct).then(|| self.below(n) as i64)
        }
    }

    #[test]
    fn randomized_against_brute_force() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for round in 0..3000 {
            let ne = rng.below(30) as usize;
            let nf = rng.below(40) as usize;
            let ncols = 1 + rng.below(2) as usize;
            let dom = 1 + rng.below(6);
            let tdom = 1 + rng.below(20);
            let nulls = if round % 3 == 0 { 10 } else { 0 };
            let sparse = round % 4 == 1;
            let key = |rng: &mut Rng| {
                rng.opt(dom, nulls).map(|k| {
                    if sparse {
                        k.wrapping_mul(0x5851_f42d_4c95_7f2d)
                    } else {
                        k - 2
                    }
                })
            };
            let ek: Vec<Vec<Option<i64>>> = (0..ncols)
                .map(|_| (0..ne).map(|_| key(&mut rng)).collect())
                .collect();
            let fk: Vec<Vec<Option<i64>>> = (0..ncols)
                .map(|_| (0..nf).map(|_| key(&mut rng)).collect())
                .collect();
            let et: Vec<Option<i64>> = (0..ne).map(|_| rng.opt(tdom, nulls)).collect();
            let ft: Vec<Option<i64>> = (0..nf).map(|_| rng.opt(tdom, nulls)).collect();
            let fc: Vec<Option<i64>> = (0..nf).map(|_| rng.opt(3, 20)).collect();
            let ttl = rng.below(6) as i64;
            let with_c = round % 2 == 0;
            let as_strings = round % 5 == 2;
            let col = |v: &Vec<Option<i64>>| -> ArrayRef {
                if as_strings {
                    Arc::new(StringArray::from_iter(
                        v.iter().map(|x| x.map(|x| format!("k{x}"))),
                    ))
                } else {
                    Arc::new(Int64Array::from(v.clone()))
                }
            };
            let got = asof_join(
                &ek.iter().map(col).collect::<Vec<_>>(),
                &Int64Array::from(et.clone()),
                &fk.iter().map(col).collect::<Vec<_>>(),
                &Int64Array::from(ft.clone()),
                with_c
                    .then(|| Int64Array::from(fc.clone()))
                    .as_ref()
                    .map(|a| a as &dyn Array),
                Some(ttl),
            )
            .unwrap();
            let want = brute(&ek, &et, &fk, &ft, with_c.then_some(&fc[..]), ttl);
            assert_eq!(out(&got), want, "round {round}");
        }
    }

    #[test]
    fn larger_randomized_parallel_paths() {
        // Big enough for several parallel chunks and both int paths.
        let mut rng = Rng(99);
        for (dom, sparse) in [(50u64, false), (3000, false), (3000, true), (1, false)] {
            let ne = if dom < 100 { 2_000 } else { 20_000 };
            let nf = 100_000;
            let mk = |rng: &mut Rng| -> Option<i64> {
                let k = rng.below(dom) as i64;
                Some(if sparse {
                    k.wrapping_mul(0x5851_f42d_4c95_7f2d)
                } else {
                    k
                })
            };
            let ek = vec![(0..ne).map(|_| mk(&mut rng)).collect::<Vec<_>>()];
            let fk = vec![(0..nf).map(|_| mk(&mut rng)).collect::<Vec<_>>()];
            let et: Vec<Option<i64>> = (0..ne).map(|_| Some(rng.below(1000) as i64)).collect();
            let ft: Vec<Option<i64>> = (0..nf).map(|_| Some(rng.below(1000) as i64)).collect();
            let got = asof_join(
                &[i64s(&ek[0])],
                &Int64Array::from(et.clone()),
                &[i64s(&fk[0])],
                &Int64Array::from(ft.clone()),
                None,
                Some(100),
            )
            .unwrap();
            // Brute force per key via a map from key to feature rows (keeps the test fast).
            let mut by_key: std::collections::HashMap<i64, Vec<usize>> = Default::default();
            for (f, k) in fk[0].iter().enumerate() {
                by_key.entry(k.unwrap()).or_default().push(f);
            }
            for e in 0..ne {
                let t = et[e].unwrap();
                let want = by_key.get(&ek[0][e].unwrap()).and_then(|rows| {
                    rows.iter()
                        .filter(|&&f| ft[f].unwrap() <= t && ft[f].unwrap() >= t - 100)
                        .max_by_key(|&&f| (ft[f].unwrap(), f))
                        .map(|&f| f as u32)
                });
                assert_eq!(
                    got.is_valid(e).then(|| got.value(e)),
                    want,
                    "dom {dom} row {e}"
                );
            }
        }
    }
}
