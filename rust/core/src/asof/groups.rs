//! Rows to dense group ids: entity rows get an id per distinct key, feature rows are looked
//! up in the same table (rows whose key no entity row has drop out). Keys are read, compared
//! and hashed through [`crate::keys`].

use std::borrow::Cow;

use arrow_buffer::NullBuffer;
use rayon::prelude::*;

use super::table::{prefetch, Entry, GroupTable, BATCH};
use super::{is_valid, CHUNK, NONE, OP};
use crate::error::Result;
use crate::keys::{hash_fixed, row_hash, KeyColumn, KeyValues};
use crate::mem;

/// Entity rows mapped to dense group ids, plus a way to look feature rows up.
pub(crate) trait Groups: Sync {
    /// Group id of every entity row (`NONE` for invalid rows).
    fn entity_gids(&self) -> &[u32];
    /// Number of group ids (some may be empty).
    fn n_groups(&self) -> usize;
    /// Group ids of feature rows `base..base + out.len()` into `out` (pre-filled with
    /// `NONE`): rows that are valid and whose key exists on the entity side.
    fn feature_gids(&self, base: usize, fvalid: Option<&NullBuffer>, out: &mut [u32]);
}

pub(crate) enum Grouping<'a> {
    Dense(DenseGroups<'a>),
    IntHash(IntHashGroups<'a>),
    Rows(RowGroups<'a>),
}

/// Single integer key with a small value range: the group id is `key - min`.
pub(crate) struct DenseGroups<'a> {
    egid: Vec<u32>,
    fkeys: Cow<'a, [i64]>,
    min: i64,
    n: usize,
}

/// Single integer key: a table keyed by the value itself.
pub(crate) struct IntHashGroups<'a> {
    egid: Vec<u32>,
    fkeys: Cow<'a, [i64]>,
    table: GroupTable,
}

/// Any key: a table keyed by a row hash, with exact equality against the group's key.
pub(crate) struct RowGroups<'a> {
    egid: Vec<u32>,
    fcols: &'a [KeyColumn<'a>],
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
    fn push(&mut self, cols: &[KeyColumn<'_>], i: usize) {
        self.starts.push(self.bytes.len());
        for c in cols {
            match c.values {
                KeyValues::Int32(v) => self.bytes.extend_from_slice(&v[i].to_le_bytes()),
                KeyValues::String(b) | KeyValues::Bytes(b) => {
                    let b = b.get(i);
                    self.bytes
                        .extend_from_slice(&(b.len() as u64).to_le_bytes());
                    self.bytes.extend_from_slice(b);
                }
                fixed => {
                    let v = fixed.fixed(i).expect("fixed-width key");
                    self.bytes.extend_from_slice(&v.to_le_bytes())
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
    fn eq(&self, at: usize, cols: &[KeyColumn<'_>], i: usize) -> bool {
        let mut k = &self.bytes[at..];
        for c in cols {
            let (same, rest) = match c.values {
                KeyValues::Int32(v) => (v[i].to_le_bytes() == k[..4], &k[4..]),
                KeyValues::String(b) | KeyValues::Bytes(b) => {
                    let b = b.get(i);
                    let len = u64::from_le_bytes(k[..8].try_into().unwrap()) as usize;
                    if len != b.len() {
                        return false;
                    }
                    (bytes_eq(&k[8..8 + len], b), &k[8 + len..])
                }
                fixed => {
                    let v = fixed.fixed(i).expect("fixed-width key");
                    (v.to_le_bytes() == k[..8], &k[8..])
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
                *h = hash_fixed(k as u64);
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

/// A single fixed-width key column as `i64` values (a timestamp as its whole second, the
/// serialized identity); `None` for strings and bytes.
pub(crate) fn int_values<'a>(c: &KeyColumn<'a>) -> Option<Cow<'a, [i64]>> {
    match c.values {
        KeyValues::Int64(v) | KeyValues::Timestamp(v, 1) => Some(Cow::Borrowed(v)),
        KeyValues::Int32(v) => Some(Cow::Owned(v.iter().map(|&x| x as i64).collect())),
        KeyValues::Timestamp(v, div) => {
            Some(Cow::Owned(v.iter().map(|&x| x.div_euclid(div)).collect()))
        }
        KeyValues::String(_) | KeyValues::Bytes(_) => None,
    }
}

pub(crate) fn group_int<'a>(
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
            table.prefetch(hash_fixed(ahead as u64));
        }
        if is_valid(evalid, i) {
            let k = k as u64;
            *g = table.find_or_insert(hash_fixed(k), k, 0, |_| true, hash_fixed);
        }
    }
    Ok(Grouping::IntHash(IntHashGroups { egid, fkeys, table }))
}

pub(crate) fn group_rows<'a>(
    ecols: &'a [KeyColumn<'a>],
    fcols: &'a [KeyColumn<'a>],
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
