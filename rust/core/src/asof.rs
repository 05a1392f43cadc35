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

use std::borrow::Cow;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int32Type, Int64Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, ArrayRef, BinaryViewArray, StringViewArray, UInt32Array};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};
use arrow_schema::{DataType, TimeUnit};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::mem;

/// What an allocation failure names.
const OP: &str = "the point-in-time join (asof_join)";

/// "No value" marker for group ids, slot positions and result indices.
const NONE: u32 = u32::MAX;

/// Rows per parallel task when streaming the feature side. (The tests use small values
/// for this and the other size thresholds so that every code path runs on small inputs.)
const CHUNK: usize = if cfg!(test) { 1 << 8 } else { 1 << 15 };

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
        (Some(e), Some(f)) if ecols.len() == 1 => e.int_values().zip(f.int_values()),
        _ => None,
    };
    let groups = match single_int {
        Some((ek, fk)) => group_int(ek, fk, evalid.as_ref())?,
        None => group_rows(&ecols, &fcols, n_ent, evalid.as_ref())?,
    };
    let vals = match created {
        None => {
            let beats = |a: u32, b: u32| a > b;
            match &groups {
                Grouping::Dense(g) => join_core(ets, fts, fvalid.as_ref(), g, ttl, beats),
                Grouping::IntHash(g) => join_core(ets, fts, fvalid.as_ref(), g, ttl, beats),
                Grouping::Rows(g) => join_core(ets, fts, fvalid.as_ref(), g, ttl, beats),
            }
        }
        Some((cts, cnulls)) => {
            let cnulls = cnulls.filter(|n| n.null_count() > 0);
            // `None` (null) sorts below every value; the value under a null is ignored.
            let key = |f: u32| {
                let f = f as usize;
                is_valid(cnulls.as_ref(), f).then(|| cts[f])
            };
            // Equal ts: larger created wins (null is smallest), then the larger index.
            let beats = |a: u32, b: u32| (key(a), a) > (key(b), b);
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
            _ => hash_bytes(self.bytes(i)),
        }
    }

    /// The bytes of row `i` of a string or binary column.
    #[inline]
    fn bytes(&self, i: usize) -> &[u8] {
        match self {
            KeyCol::Bytes(o, d) => &d[o[i] as usize..o[i + 1] as usize],
            KeyCol::LargeBytes(o, d) => &d[o[i] as usize..o[i + 1] as usize],
            KeyCol::StrView(a) => a.value(i).as_bytes(),
            KeyCol::BinView(a) => a.value(i),
            KeyCol::I32(_) | KeyCol::I64(_) => unreachable!("not a byte column"),
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
    /// Free for the user (the row grouping keeps the key's arena offset here).
    aux: u32,
}

const EMPTY_ENTRY: Entry = Entry {
    tag: 0,
    gid: NONE,
    aux: 0,
};

/// Rows looked up per batch: the table lines of a batch are prefetched together so their
/// cache misses overlap.
const BATCH: usize = 16;

/// Hints the CPU to bring `p`'s cache line in (a no-op off x86-64).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults and has no other effect, whatever
    // the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p as *const i8)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Open-addressing (linear probing) table from a 64-bit tag to a group id. The caller
/// supplies the hash and, for tags that are hashes rather than values, an exact equality
/// check.
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
    fn home(&self, hash: u64) -> usize {
        (hash >> self.shift) as usize
    }

    /// The first entry on `hash`'s probe path.
    #[inline]
    fn first(&self, hash: u64) -> Entry {
        self.slots[self.home(hash)]
    }

    #[inline]
    fn prefetch(&self, hash: u64) {
        prefetch(self.slots.as_ptr().wrapping_add(self.home(hash)));
    }

    #[inline]
    fn find(&self, hash: u64, tag: u64, mut eq: impl FnMut(Entry) -> bool) -> u32 {
        let mask = self.slots.len() - 1;
        let mut i = self.home(hash);
        loop {
            let e = self.slots[i];
            if e.gid == NONE {
                return NONE;
            }
            if e.tag == tag && eq(e) {
                return e.gid;
            }
            i = (i + 1) & mask;
        }
    }

    /// The group id of `tag`, inserting it with id `self.len` (and `aux`) if absent.
    #[inline]
    fn find_or_insert(
        &mut self,
        hash: u64,
        tag: u64,
        aux: u32,
        mut eq: impl FnMut(Entry) -> bool,
        rehash: impl Fn(u64) -> u64,
    ) -> u32 {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow(rehash);
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(hash);
        loop {
            let e = self.slots[i];
            if e.gid == NONE {
                let gid = self.len as u32;
                self.slots[i] = Entry { tag, gid, aux };
                self.len += 1;
                return gid;
            }
            if e.tag == tag && eq(e) {
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
            let mut i = self.home(rehash(e.tag));
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
    /// Group ids of feature rows `base..base + out.len()` into `out` (pre-filled with
    /// `NONE`): rows that are valid and whose key exists on the entity side.
    fn feature_gids(&self, base: usize, fvalid: Option<&NullBuffer>, out: &mut [u32]);
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

/// Any key: a table keyed by a row hash, with exact equality against the group's key.
struct RowGroups<'a> {
    egid: Vec<u32>,
    fcols: &'a [KeyCol<'a>],
    keys: KeyArena,
    table: GroupTable,
}

/// The key of every group, encoded back to back (compact, so equality checks stay in
/// cache): per column, integers as little-endian bytes, byte strings as a `u64` length and
/// the bytes. Both sides have the same column types, so the encoding is unambiguous.
#[derive(Default)]
struct KeyArena {
    bytes: Vec<u8>,
    starts: Vec<usize>,
}

impl KeyArena {
    fn push(&mut self, cols: &[KeyCol<'_>], i: usize) {
        self.starts.push(self.bytes.len());
        for c in cols {
            match c {
                KeyCol::I32(v) => self.bytes.extend_from_slice(&v[i].to_le_bytes()),
                KeyCol::I64(v) => self.bytes.extend_from_slice(&v[i].to_le_bytes()),
                _ => {
                    let b = c.bytes(i);
                    self.bytes
                        .extend_from_slice(&(b.len() as u64).to_le_bytes());
                    self.bytes.extend_from_slice(b);
                }
            }
        }
    }

    /// Start of the key of the group in table entry `e`: the entry keeps it in `aux` while
    /// the arena is addressable with 32 bits (saves a dependent load), else `starts`.
    #[inline]
    fn start(&self, e: Entry) -> usize {
        if self.bytes.len() <= u32::MAX as usize {
            e.aux as usize
        } else {
            self.starts[e.gid as usize]
        }
    }

    #[inline]
    fn prefetch(&self, e: Entry) {
        if e.gid != NONE {
            prefetch(self.bytes.as_ptr().wrapping_add(self.start(e)));
        }
    }

    /// The key starting at `at` equals row `i` of `cols`.
    #[inline]
    fn eq(&self, at: usize, cols: &[KeyCol<'_>], i: usize) -> bool {
        let mut k = &self.bytes[at..];
        for c in cols {
            let (same, rest) = match c {
                KeyCol::I32(v) => (v[i].to_le_bytes() == k[..4], &k[4..]),
                KeyCol::I64(v) => (v[i].to_le_bytes() == k[..8], &k[8..]),
                _ => {
                    let b = c.bytes(i);
                    let len = u64::from_le_bytes(k[..8].try_into().unwrap()) as usize;
                    if len != b.len() {
                        return false;
                    }
                    (bytes_eq(&k[8..8 + len], b), &k[8 + len..])
                }
            };
            if !same {
                return false;
            }
            k = rest;
        }
        true
    }
}

/// Equality of two equally long byte strings, without a libc call for short ones.
#[inline]
fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() <= 16 {
        let mut x = [0u8; 16];
        let mut y = [0u8; 16];
        x[..a.len()].copy_from_slice(a);
        y[..b.len()].copy_from_slice(b);
        x == y
    } else {
        a == b
    }
}

impl Groups for DenseGroups<'_> {
    fn entity_gids(&self) -> &[u32] {
        &self.egid
    }
    fn n_groups(&self) -> usize {
        self.n
    }
    fn feature_gids(&self, base: usize, fvalid: Option<&NullBuffer>, out: &mut [u32]) {
        let keys = &self.fkeys[base..base + out.len()];
        for (j, (o, &k)) in out.iter_mut().zip(keys).enumerate() {
            let d = k.wrapping_sub(self.min) as u64;
            if d < self.n as u64 && is_valid(fvalid, base + j) {
                *o = d as u32;
            }
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
    fn feature_gids(&self, base: usize, fvalid: Option<&NullBuffer>, out: &mut [u32]) {
        let keys = &self.fkeys[base..base + out.len()];
        for (out, keys) in out.chunks_mut(BATCH).zip(keys.chunks(BATCH)) {
            let mut hs = [0u64; BATCH];
            for (h, &k) in hs.iter_mut().zip(keys) {
                *h = fmix64(k as u64);
                self.table.prefetch(*h);
            }
            for (j, o) in out.iter_mut().enumerate() {
                let k = keys[j] as u64;
                *o = self.table.find(hs[j], k, |_| true);
            }
        }
        if let Some(v) = fvalid {
            for (j, o) in out.iter_mut().enumerate() {
                if !v.is_valid(base + j) {
                    *o = NONE;
                }
            }
        }
    }
}

impl Groups for RowGroups<'_> {
    fn entity_gids(&self) -> &[u32] {
        &self.egid
    }
    fn n_groups(&self) -> usize {
        self.table.len
    }
    fn feature_gids(&self, base: usize, fvalid: Option<&NullBuffer>, out: &mut [u32]) {
        let mut b0 = base;
        for out in out.chunks_mut(BATCH) {
            let mut hs = [0u64; BATCH];
            for (j, h) in hs.iter_mut().enumerate().take(out.len()) {
                if is_valid(fvalid, b0 + j) {
                    *h = row_hash(self.fcols, b0 + j);
                    self.table.prefetch(*h);
                }
            }
            for (j, &h) in hs.iter().enumerate().take(out.len()) {
                if is_valid(fvalid, b0 + j) {
                    self.keys.prefetch(self.table.first(h));
                }
            }
            for (j, o) in out.iter_mut().enumerate() {
                if is_valid(fvalid, b0 + j) {
                    let f = b0 + j;
                    *o = self.table.find(hs[j], hs[j], |e| {
                        self.keys.eq(self.keys.start(e), self.fcols, f)
                    });
                }
            }
            b0 += out.len();
        }
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

fn group_int<'a>(
    ekeys: Cow<'a, [i64]>,
    fkeys: Cow<'a, [i64]>,
    evalid: Option<&NullBuffer>,
) -> Result<Grouping<'a>> {
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
        return Ok(Grouping::Dense(DenseGroups {
            egid: mem::filled(n, NONE, OP)?,
            fkeys,
            min: 0,
            n: 0,
        }));
    }
    let range = (max as i128 - min as i128) as u128 + 1;
    if range <= (2 * n_valid as u128 + 1024).min(NONE as u128 - 1) {
        let mut egid = mem::with_capacity(n, OP)?;
        egid.extend(ekeys.iter().enumerate().map(|(i, &k)| {
            if is_valid(evalid, i) {
                k.wrapping_sub(min) as u32
            } else {
                NONE
            }
        }));
        return Ok(Grouping::Dense(DenseGroups {
            egid,
            fkeys,
            min,
            n: range as usize,
        }));
    }
    let mut table = GroupTable::with_capacity(n_valid.min(1 << 16));
    let mut egid = mem::filled(n, NONE, OP)?;
    for (i, (g, &k)) in egid.iter_mut().zip(ekeys.iter()).enumerate() {
        if let Some(&ahead) = ekeys.get(i + BATCH) {
            table.prefetch(fmix64(ahead as u64));
        }
        if is_valid(evalid, i) {
            let k = k as u64;
            *g = table.find_or_insert(fmix64(k), k, 0, |_| true, fmix64);
        }
    }
    Ok(Grouping::IntHash(IntHashGroups { egid, fkeys, table }))
}

fn group_rows<'a>(
    ecols: &'a [KeyCol<'a>],
    fcols: &'a [KeyCol<'a>],
    n_ent: usize,
    evalid: Option<&NullBuffer>,
) -> Result<Grouping<'a>> {
    let mut hashes: Vec<u64> = mem::filled(n_ent, 0, OP)?;
    hashes
        .par_iter_mut()
        .with_min_len(CHUNK)
        .enumerate()
        .for_each(|(i, h)| {
            if is_valid(evalid, i) {
                *h = row_hash(ecols, i)
            }
        });
    let n_valid = evalid.map_or(n_ent, |v| n_ent - v.null_count());
    let mut table = GroupTable::with_capacity(n_valid.min(1 << 16));
    let mut keys = KeyArena::default();
    let mut egid = mem::filled(n_ent, NONE, OP)?;
    for (i, (g, &h)) in egid.iter_mut().zip(&hashes).enumerate() {
        if let Some(&ahead) = hashes.get(i + BATCH) {
            table.prefetch(ahead);
        }
        if let Some(&ahead) = hashes.get(i + BATCH / 2) {
            keys.prefetch(table.first(ahead));
        }
        if !is_valid(evalid, i) {
            continue;
        }
        let at = keys.bytes.len() as u32; // truncation is harmless: see KeyArena::start
        let id = table.find_or_insert(h, h, at, |e| keys.eq(keys.start(e), ecols, i), |t| t);
        if id as usize == keys.starts.len() {
            keys.push(ecols, i);
        }
        *g = id;
    }
    Ok(Grouping::Rows(RowGroups {
        egid,
        fcols,
        keys,
        table,
    }))
}

// ---- the join
/// Entity slots per bucket the layout aims for: the slots and their running best of one
/// bucket (32 bytes each) then stay in L2 while the bucket's feature rows stream through.
const TARGET_SLOTS: usize = if cfg!(test) { 64 } else { 8 * 1024 };
/// Upper bound on the number of buckets (the fan-out of the partitioning scatter).
const MAX_BUCKETS: usize = 4096;
/// A bucket with more feature rows than this is itself processed in parallel.
const BIG_BUCKET: usize = if cfg!(test) { 1 << 10 } else { 1 << 18 };
/// Buckets whose groups average at least this many entity rows sort their feature rows
/// and merge instead of binary-searching each one.
const BIG_GROUP: usize = if cfg!(test) { 8 } else { 64 };

/// An entity row in its sorted slot.
#[derive(Clone, Copy, Default)]
struct Slot {
    ts: i64,
    row: u32,
}

/// An entity row on its way to its bucket.
#[derive(Clone, Copy)]
struct ERec {
    ts: i64,
    row: u32,
    gid: u32,
}

/// A feature row on its way to its bucket. In big buckets `gid` is later overwritten with
/// the row's target slot.
#[derive(Clone, Copy)]
struct FRec {
    ts: i64,
    row: u32,
    gid: u32,
}

/// The best feature row seen so far: `row1` is the row index + 1, 0 = none yet.
#[derive(Clone, Copy)]
struct Best {
    ts: i64,
    row1: u32,
}

const NO_BEST: Best = Best {
    ts: i64::MIN,
    row1: 0,
};

/// `a` (a real candidate) beats `b` under the tie rule: later ts, then `beats` (created,
/// then index) on equal ts; anything beats "none yet".
#[inline]
fn better(a: Best, b: Best, beats: &impl Fn(u32, u32) -> bool) -> bool {
    a.ts > b.ts || (a.ts == b.ts && (b.row1 == 0 || beats(a.row1 - 1, b.row1 - 1)))
}

/// A raw pointer that may be shared between the tasks of one parallel pass.
///
/// Every user writes a set of positions disjoint from every other task's (each is argued
/// at the write), so there are no data races.
struct SharedMut<T>(*mut T);
impl<T> Clone for SharedMut<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SharedMut<T> {}
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// # Safety
    /// `i` is in bounds of the allocation and no other task reads or writes position `i`
    /// during the pass.
    #[inline]
    unsafe fn write(self, i: usize, v: T) {
        // SAFETY: upheld by the caller.
        unsafe { self.0.add(i).write(v) }
    }
}

/// Stable partition of the rows `0..n` with `bucket_of(i) != NONE` into buckets, in
/// parallel: returns the records, bucket by bucket, and the bucket starts (`n_buckets + 1`).
fn partition<R: Send + Sync>(
    n: usize,
    n_buckets: usize,
    bucket_of: impl Fn(usize) -> u32 + Sync,
    make: impl Fn(usize) -> R + Sync,
) -> Result<(Vec<R>, Vec<usize>)> {
    // At most 256 chunks, so the per-chunk histograms stay small for huge inputs.
    let size = CHUNK.max(n.div_ceil(256));
    let n_chunks = n.div_ceil(size);
    let chunk = |c: usize| c * size..((c + 1) * size).min(n);
    let hists: Vec<Vec<u32>> = (0..n_chunks)
        .into_par_iter()
        .map(|c| {
            let mut h = vec![0u32; n_buckets];
            for i in chunk(c) {
                let b = bucket_of(i);
                if b != NONE {
                    h[b as usize] += 1;
                }
            }
            h
        })
        .collect();
    // Cursor of every (chunk, bucket): buckets in order, chunks in order within a bucket.
    let mut starts = vec![0usize; n_buckets + 1];
    let mut cursors: Vec<Vec<usize>> = vec![vec![0; n_buckets]; n_chunks];
    let mut at = 0usize;
    for b in 0..n_buckets {
        starts[b] = at;
        for c in 0..n_chunks {
            cursors[c][b] = at;
            at += hists[c][b] as usize;
        }
    }
    starts[n_buckets] = at;
    drop(hists);
    let total = at;
    let mut out: Vec<R> = mem::with_capacity(total, OP)?;
    let ptr = SharedMut(out.as_mut_ptr());
    cursors
        .into_par_iter()
        .enumerate()
        .for_each(|(c, mut cur)| {
            for i in chunk(c) {
                let b = bucket_of(i);
                if b != NONE {
                    let at = &mut cur[b as usize];
                    // SAFETY: chunk `c` owns positions `cursors[c][b] .. + hists[c][b]` of
                    // bucket `b`; these ranges are disjoint and together cover `0..total`
                    // exactly once, all within the capacity.
                    unsafe { ptr.write(*at, make(i)) };
                    *at += 1;
                }
            }
        });
    // SAFETY: every position below `total` was written exactly once above.
    unsafe { out.set_len(total) };
    Ok((out, starts))
}

/// Power-of-two number of consecutive group ids per bucket, as a shift.
fn bucket_shift(n_groups: usize, n_slots: usize, n_feat: usize) -> u32 {
    let wanted = (n_slots / TARGET_SLOTS)
        .max(n_feat / (BIG_BUCKET / 4))
        .clamp(1, MAX_BUCKETS);
    n_groups
        .div_ceil(wanted)
        .max(1)
        .next_power_of_two()
        .trailing_zeros()
}

/// Splits `data` into consecutive pieces of the given lengths.
fn split_lens<T>(mut data: &mut [T], lens: impl Iterator<Item = usize>) -> Vec<&mut [T]> {
    let mut out = Vec::new();
    for len in lens {
        let (head, tail) = data.split_at_mut(len);
        out.push(head);
        data = tail;
    }
    out
}

fn join_core<G: Groups>(
    ets: &[i64],
    fts: &[i64],
    fvalid: Option<&NullBuffer>,
    groups: &G,
    ttl: i64,
    beats: impl Fn(u32, u32) -> bool + Sync,
) -> Result<Vec<u32>> {
    let mut out = mem::filled(ets.len(), NONE, OP)?;
    let Some(layout) = entity_layout(ets, groups.entity_gids(), groups.n_groups(), fts.len())?
    else {
        return Ok(out);
    };

    // Feature rows to their group ids, then partitioned by bucket.
    let mut fgid = mem::filled(fts.len(), NONE, OP)?;
    fgid.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, out)| groups.feature_gids(c * CHUNK, fvalid, out));
    let shift = layout.shift;
    let (mut frecs, fstarts) = partition(
        fts.len(),
        layout.n_buckets(),
        |f| match fgid[f] {
            NONE => NONE,
            g => g >> shift,
        },
        |f| FRec {
            ts: fts[f],
            row: f as u32,
            gid: fgid[f],
        },
    )?;
    drop(fgid);

    let mut best = mem::filled(layout.slots.len(), NO_BEST, OP)?;
    let out_ptr = SharedMut(out.as_mut_ptr());
    let n_buckets = layout.n_buckets();
    let recs = split_lens(
        &mut frecs,
        (0..n_buckets).map(|b| fstarts[b + 1] - fstarts[b]),
    );
    let bests = split_lens(&mut best, (0..n_buckets).map(|b| layout.bucket_len(b)));
    let layout = &layout;
    let beats = &beats;
    recs.into_iter()
        .zip(bests)
        .enumerate()
        .collect::<Vec<_>>()
        .into_par_iter()
        .for_each(|(b, (recs, best))| {
            let bucket = Bucket::new(layout, b);
            merge_bucket(&bucket, recs, best, ttl, beats, out_ptr)
        });
    Ok(out)
}

/// Entity rows laid out in slots ordered by (group, entity_ts), in buckets of `1 << shift`
/// consecutive group ids.
struct Layout {
    shift: u32,
    /// `offsets[g]..offsets[g + 1]` are the slots of group `g`.
    offsets: Vec<u32>,
    slots: Vec<Slot>,
}

impl Layout {
    fn n_groups(&self) -> usize {
        self.offsets.len() - 1
    }
    fn n_buckets(&self) -> usize {
        ((self.n_groups() - 1) >> self.shift) + 1
    }
    fn bucket_groups(&self, b: usize) -> std::ops::Range<usize> {
        (b << self.shift)..((b + 1) << self.shift).min(self.n_groups())
    }
    fn bucket_len(&self, b: usize) -> usize {
        let g = self.bucket_groups(b);
        (self.offsets[g.end] - self.offsets[g.start]) as usize
    }
}

/// One bucket's view of the layout: its groups' offsets (relative to the bucket's first
/// slot, one more than the groups) and its slots.
struct Bucket<'a> {
    g0: usize,
    offs: Vec<u32>,
    slots: &'a [Slot],
}

impl<'a> Bucket<'a> {
    fn new(layout: &'a Layout, b: usize) -> Self {
        let g = layout.bucket_groups(b);
        let abs = &layout.offsets[g.start..=g.end];
        let base = abs[0];
        Bucket {
            g0: g.start,
            offs: abs.iter().map(|&o| o - base).collect(),
            slots: &layout.slots[base as usize..abs[abs.len() - 1] as usize],
        }
    }
}

/// Builds the [`Layout`]; `None` when no entity row is valid.
fn entity_layout(
    ets: &[i64],
    egid: &[u32],
    n_groups: usize,
    n_feat: usize,
) -> Result<Option<Layout>> {
    let n_slots = egid.iter().filter(|&&g| g != NONE).count();
    if n_slots == 0 {
        return Ok(None);
    }
    let shift = bucket_shift(n_groups, n_slots, n_feat);
    let n_buckets = ((n_groups - 1) >> shift) + 1;
    let (erecs, starts) = partition(
        ets.len(),
        n_buckets,
        |i| match egid[i] {
            NONE => NONE,
            g => g >> shift,
        },
        |i| ERec {
            ts: ets[i],
            row: i as u32,
            gid: egid[i],
        },
    )?;
    let mut offsets = mem::filled(n_groups + 1, 0u32, OP)?;
    offsets[n_groups] = n_slots as u32;
    let mut slots = mem::filled(n_slots, Slot::default(), OP)?;
    let slot_parts = split_lens(
        &mut slots,
        (0..n_buckets).map(|b| starts[b + 1] - starts[b]),
    );
    let off_parts: Vec<_> = offsets[..n_groups].chunks_mut(1 << shift).collect();
    slot_parts
        .into_par_iter()
        .zip(off_parts)
        .enumerate()
        .for_each(|(b, (slots, offs))| {
            let (lo, hi) = (starts[b], starts[b + 1]);
            layout_bucket(&erecs[lo..hi], slots, offs, b << shift, lo as u32)
        });
    Ok(Some(Layout {
        shift,
        offsets,
        slots,
    }))
}

/// Counting sort of one bucket's entity rows by group, then by timestamp within each
/// group. Writes the groups' absolute offsets (`base` = the bucket's first slot).
#[inline(never)]
fn layout_bucket(recs: &[ERec], slots: &mut [Slot], offs: &mut [u32], g0: usize, base: u32) {
    offs.fill(0);
    for r in recs {
        offs[r.gid as usize - g0] += 1;
    }
    let mut at = 0u32;
    for o in offs.iter_mut() {
        let c = *o;
        *o = at;
        at += c;
    }
    let mut cursor = offs.to_vec();
    for r in recs {
        let c = &mut cursor[r.gid as usize - g0];
        slots[*c as usize] = Slot {
            ts: r.ts,
            row: r.row,
        };
        *c += 1;
    }
    for (i, &o) in offs.iter().enumerate() {
        let end = offs.get(i + 1).map_or(slots.len(), |&e| e as usize);
        let g = &mut slots[o as usize..end];
        if g.len() > 1 {
            g.sort_unstable_by_key(|s| s.ts);
        }
    }
    for o in offs.iter_mut() {
        *o += base;
    }
}

/// Index of the first slot with `ts >= t` in a group's slots (sorted by ts).
#[inline]
fn first_at_or_after(g: &[Slot], t: i64) -> usize {
    if g.len() <= 16 {
        // Small groups (the common case): a branch-free count.
        return g.iter().map(|s| (s.ts < t) as usize).sum();
    }
    let mut lo = 0usize;
    let mut size = g.len();
    while size > 1 {
        let half = size / 2;
        if g[lo + half].ts < t {
            lo += half;
        }
        size -= half;
    }
    lo + (g[lo].ts < t) as usize
}

/// Target slot (bucket-relative) of a feature row: the first slot of its group with
/// `entity_ts >= feature_ts`; `NONE` if it can match nothing.
#[inline(always)]
fn target_slot(offs: &[u32], slots: &[Slot], g0: usize, ttl: i64, r: &FRec) -> u32 {
    let lg = r.gid as usize - g0;
    let (lo, hi) = (offs[lg] as usize, offs[lg + 1] as usize);
    let p = lo + first_at_or_after(&slots[lo..hi], r.ts);
    if p == hi || (ttl > 0 && r.ts < slots[p].ts.saturating_sub(ttl)) {
        NONE // later than every entity row of the group, or too old for all of them
    } else {
        p as u32
    }
}

/// Every feature row of the bucket goes to the first slot of its group with
/// `entity_ts >= feature_ts`, keeping the best per slot; then a prefix maximum over each
/// group's slots gives every entity row its answer (written to `out`).
#[inline(never)]
fn merge_bucket(
    bucket: &Bucket<'_>,
    recs: &mut [FRec],
    best: &mut [Best],
    ttl: i64,
    beats: &(impl Fn(u32, u32) -> bool + Sync),
    out: SharedMut<u32>,
) {
    let (offs, slots, g0) = (&bucket.offs[..], bucket.slots, bucket.g0);
    let target = |r: &FRec| target_slot(offs, slots, g0, ttl, r);
    let offer = |best: &mut Best, r: &FRec| {
        let cand = Best {
            ts: r.ts,
            row1: r.row + 1,
        };
        if better(cand, *best, beats) {
            *best = cand;
        }
    };
    // Prefix maximum over the groups `offs` (a window of the bucket's offsets); `best[0]`
    // is the best of slot `offs[0]`.
    let finish = |offs: &[u32], best: &[Best]| {
        let first = offs[0] as usize;
        for w in offs.windows(2) {
            let mut run = NO_BEST;
            for s in w[0] as usize..w[1] as usize {
                let b = best[s - first];
                if b.row1 != 0 && better(b, run, beats) {
                    run = b;
                }
                if run.row1 != 0 && (ttl == 0 || run.ts >= slots[s].ts.saturating_sub(ttl)) {
                    // SAFETY: each entity row occupies exactly one slot and each slot is
                    // finished by exactly one task, so no two writes hit the same row.
                    unsafe { out.write(slots[s].row as usize, run.row1 - 1) };
                }
            }
        }
    };
    let threads = rayon::current_num_threads();
    let big = recs.len() > BIG_BUCKET && threads > 1;
    let finish_all = |best: &[Best]| {
        if big {
            for_each_group_part(offs, threads * 4, |o| {
                finish(o, &best[o[0] as usize..o[o.len() - 1] as usize])
            });
        } else {
            finish(offs, best);
        }
    };
    if slots.len() >= BIG_GROUP * (offs.len() - 1) {
        // Large groups (few keys): binary searches would miss the cache, so sort the feature
        // rows by (group, ts) instead (cheap when they arrive sorted by time) and merge.
        if big {
            recs.par_sort_unstable_by_key(|r| (r.gid, r.ts));
        } else {
            recs.sort_unstable_by_key(|r| (r.gid, r.ts));
        }
        let mut i = 0;
        while i < recs.len() {
            let gid = recs[i].gid;
            let lg = gid as usize - g0;
            let hi = offs[lg + 1] as usize;
            let mut p = offs[lg] as usize;
            while i < recs.len() && recs[i].gid == gid {
                let r = &recs[i];
                while p < hi && slots[p].ts < r.ts {
                    p += 1;
                }
                if p == hi {
                    // The rest of the group is later than every entity row.
                    while i < recs.len() && recs[i].gid == gid {
                        i += 1;
                    }
                    break;
                }
                if ttl == 0 || r.ts >= slots[p].ts.saturating_sub(ttl) {
                    offer(&mut best[p], r);
                }
                i += 1;
            }
        }
        finish_all(best);
    } else if !big {
        for r in recs.iter() {
            let p = target(r);
            if p != NONE {
                offer(&mut best[p as usize], r);
            }
        }
        finish(offs, best);
    } else {
        // Many feature rows on small groups: find the targets in parallel, let each task
        // keep the best for its own range of slots, then finish runs of groups in parallel.
        recs.par_chunks_mut(CHUNK).for_each(|ch| {
            for r in ch {
                r.gid = target(r);
            }
        });
        let per = best.len().div_ceil(threads).max(1);
        let recs = &*recs;
        best.par_chunks_mut(per).enumerate().for_each(|(k, part)| {
            let lo = (k * per) as u32;
            for r in recs {
                let s = r.gid.wrapping_sub(lo) as usize;
                if s < part.len() {
                    offer(&mut part[s], r);
                }
            }
        });
        finish_all(best);
    }
}

/// Splits the groups described by `offsets` (slot positions) into about
/// `parts` runs of consecutive groups of similar total size and runs `f` on each run's
/// offsets in parallel.
fn for_each_group_part(offsets: &[u32], parts: usize, f: impl Fn(&[u32]) + Sync) {
    let n_groups = offsets.len() - 1;
    let (first, total) = (offsets[0] as usize, offsets[n_groups] as usize);
    let mut cuts = vec![0usize];
    for k in 1..parts {
        let target = first + (total - first) * k / parts;
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
    cuts.par_windows(2).for_each(|w| f(&offsets[w[0]..=w[1]]));
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
    fn values_under_nulls_are_ignored() {
        use arrow_buffer::{NullBuffer, ScalarBuffer};
        // Arbitrary values hidden under nulls must not influence anything.
        let with_nulls = |v: Vec<i64>, valid: Vec<bool>| {
            Int64Array::new(ScalarBuffer::from(v), Some(NullBuffer::from(valid)))
        };
        // Two null created values: the larger index wins, not the larger hidden value.
        let created = with_nulls(vec![99, 5, -7], vec![false, false, false]);
        let r = asof_join(
            &[i64s(&[Some(7)])],
            &ts(&[100]),
            &[i64s(&[Some(7); 3])],
            &ts(&[50; 3]),
            Some(&created),
            None,
        )
        .unwrap();
        assert_eq!(out(&r), vec![Some(2)]);
        // A null key hiding the right value and a null ts hiding a valid time never match.
        let fk: ArrayRef = Arc::new(with_nulls(vec![7, 7], vec![false, true]));
        let ft = with_nulls(vec![60, 70], vec![true, false]);
        let r = asof_join(&[i64s(&[Some(7)])], &ts(&[100]), &[fk], &ft, None, None).unwrap();
        assert_eq!(out(&r), vec![None]);
        let ek: ArrayRef = Arc::new(with_nulls(vec![7], vec![false]));
        let r = asof_join(
            &[ek],
            &ts(&[100]),
            &[i64s(&[Some(7)])],
            &ts(&[1]),
            None,
            None,
        )
        .unwrap();
        assert_eq!(out(&r), vec![None]);
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
        // (key domain, sparse keys, entity rows): small groups, many buckets, hashed keys,
        // one big group (sort + merge), and few entity rows under many feature rows (the
        // parallel in-bucket path).
        for (dom, sparse, ne) in [
            (50u64, false, 2_000),
            (3000, false, 20_000),
            (3000, true, 20_000),
            (1, false, 2_000),
            (1, false, 5),
            (2, true, 9),
        ] {
            let nf = 100_000;
            let mk = |rng: &mut Rng| -> Option<i64> {
                let k = rng.below(dom) as i64;
                Some(if sparse {
                    k.wrapping_mul(0x5851_f42d_4c95_7f2d)
                } else {
                    k
                })
            };
            let ek = [(0..ne).map(|_| mk(&mut rng)).collect::<Vec<_>>()];
            let fk = [(0..nf).map(|_| mk(&mut rng)).collect::<Vec<_>>()];
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
