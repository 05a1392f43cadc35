//! Online aggregation tiles: per entity key and aggregated view, partial aggregates over
//! `slide`-long tiles, kept in the online store as one blob per key and merged at read time
//! (ARCHITECTURE.md, "Online aggregation tiles").
//!
//! A tile with end `e` (a multiple of the spec's slide on the UTC epoch) holds the rows with
//! event time in `(e - slide, e]`, so a hopping window `(T - w, T]` with `T = floor(now,
//! slide)` and `slide | w` is exactly the tiles with `T - w < e <= T`. A tile holds what
//! its function needs: the non-null count; an exact `i128` sum (integers) or a
//! Neumaier-compensated sum with non-finite values counted apart (floats); Welford's mean and
//! M2 (stddev, merged with Chan's formula); the extreme value (min/max, `f64::total_cmp`);
//! the latest value by (event time, created time, arrival); the distinct values
//! (count_distinct) or their distinct 64-bit hashes (approx_count_distinct: the read builds
//! the precision-14 HyperLogLog registers of the window from them, the offline kernel's
//! hashes and estimate, so the estimate equals the offline one).
//!
//! Blob layout (little-endian; "var" = LEB128, "zig" = zigzag LEB128): magic `BT`, version
//! 2, `u8` spec count, `i64` newest event time of the key; per spec: `u8` function, `u8`
//! kind, `i64` window, `i64` slide, var count of non-empty tiles, then per tile (ascending
//! end) its index `end / slide` (zig for the first, var delta after), var `n` (float
//! sum/mean: var `n << 4 | flags`, flags saying which of compensation, NaN, +inf, -inf
//! counts follow the `f64` sum) and the function's partial (integer sums zig `i128`).
//! A 7-day mean of hourly tiles is ~1.9 kB instead of 7.4 kB in version 1 (fixed-width
//! fields), so a key's blob fits an SQLite page rather than spilling into overflow pages.
//! Version 1 blobs are still read (re-written as version 2 at the next write). The spec
//! header is checked at every read and merge: a blob written for another definition is
//! `Error::Corrupt` naming the fix (re-materialize).
//!
//! The online read (`read_window`) never builds the key's tile map: it walks the blob once
//! and folds each window tile's fields, borrowed from the bytes, into one accumulator per
//! aggregate, with `Partial::merge`'s operations in its order (the numeric part is the same
//! `Num::merge`), so the value is bit for bit the decode-then-merge one, which the tests
//! check; the write path's `decode` walks the same reader into owned partials.

#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::keys::{hash_bytes, hash_fixed};
use crate::window::{float_sum, neumaier};

const MAGIC: &[u8; 2] = b"BT";
/// Version 2 (compact: varints, tile-index deltas, no empty tiles) is written; version 1
/// blobs are still read.
const VERSION: u8 = 2;

/// The aggregate functions are the offline kernel's; a tile blob stores one as its
/// discriminant (`spec.func as u8`), so their order is part of the format.
pub use crate::window::Function as Func;

/// How a spec's values are represented: integers (int32/int64/bool/timestamps), floats or
/// bytes (strings, binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int = 0,
    Float = 1,
    Bytes = 2,
}

/// One aggregation: function, value kind, window and slide in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileSpec {
    pub func: Func,
    pub kind: Kind,
    pub window: i64,
    pub slide: i64,
}

impl TileSpec {
    pub fn check(&self) -> Result<()> {
        if self.slide <= 0 || self.window <= 0 || self.window % self.slide != 0 {
            return Err(Error::Invalid(format!(
                "tiles need a positive slide dividing the window (window {} us, slide {} us)",
                self.window, self.slide
            )));
        }
        Ok(())
    }

    /// The end of the tile holding event time `t`: `ceil(t / slide) * slide`.
    #[inline]
    pub fn tile_end(&self, t: i64) -> i64 {
        let r = t.rem_euclid(self.slide);
        if r == 0 {
            t
        } else {
            t - r + self.slide
        }
    }

    /// The window's end for a read at `at`: `floor(at / slide) * slide`.
    #[inline]
    pub fn window_end(&self, at: i64) -> i64 {
        at - at.rem_euclid(self.slide)
    }
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    I(i64),
    F(f64),
    B(Vec<u8>),
}

impl Val {
    fn cmp_total(&self, other: &Val) -> Ordering {
        match (self, other) {
            (Val::I(a), Val::I(b)) => a.cmp(b),
            (Val::F(a), Val::F(b)) => a.total_cmp(b),
            (Val::B(a), Val::B(b)) => a.cmp(b),
            _ => Ordering::Equal,
        }
    }

    /// The HyperLogLog hash the offline kernel uses for this value.
    fn hll_hash(&self) -> u64 {
        match self {
            Val::I(x) => hash_fixed((*x as u64) ^ 0x9e37_79b9_7f4a_7c15),
            Val::F(x) => hash_fixed(x.to_bits() ^ 0x9e37_79b9_7f4a_7c15),
            Val::B(b) => hash_bytes(b),
        }
    }
}

/// A tile's non-null count and numeric partials: the integer or compensated float sum with
/// its non-finite counts (sum/mean), Welford's mean and M2 (stddev). The owned partial and
/// the read's borrowed tile both hold one, so they merge with the same code.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Num {
    pub n: i64,
    pub sum_i: i128,
    pub sum_f: f64,
    pub comp: f64,
    pub nan: u32,
    pub pos_inf: u32,
    pub neg_inf: u32,
    pub mean: f64,
    pub m2: f64,
}

impl Num {
    /// Merge `other` (rows of the same tile, `other.n > 0`) into `self`: the count, and
    /// `func`'s sums or moments.
    #[inline]
    pub fn merge(&mut self, func: Func, other: &Num) {
        let n0 = self.n;
        self.n += other.n;
        match func {
            Func::Sum | Func::Mean => self.merge_sums(other),
            Func::Stddev => self.merge_moments(n0, other),
            _ => {}
        }
    }

    /// Sum/mean: add `other`'s sums (the counts are added apart, before). `Partial::merge`
    /// and the read's fold both call this (the fold in its own single dispatch on the
    /// function: a second one per tile cost ~5% of the read), so the read's float sums
    /// are the decode-then-merge ones bit for bit.
    #[inline(always)]
    fn merge_sums(&mut self, other: &Num) {
        self.sum_i += other.sum_i;
        neumaier(&mut self.sum_f, &mut self.comp, other.sum_f);
        self.comp += other.comp;
        self.nan += other.nan;
        self.pos_inf += other.pos_inf;
        self.neg_inf += other.neg_inf;
    }

    /// Stddev: Chan's formula; `n0` is `self`'s count before `other`'s was added.
    #[inline(always)]
    fn merge_moments(&mut self, n0: i64, other: &Num) {
        if n0 == 0 {
            self.mean = other.mean;
            self.m2 = other.m2;
        } else {
            let (na, nb, n) = (n0 as f64, other.n as f64, self.n as f64);
            let d = other.mean - self.mean;
            self.mean += d * nb / n;
            self.m2 += other.m2 + d * d * na * nb / n;
        }
    }
}

/// A tile's partial aggregate (the fields its function uses).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Partial {
    pub num: Num,
    pub ext: Option<Val>,
    /// (event time, created time or i64::MIN when null, value)
    pub last: Option<(i64, i64, Val)>,
    pub distinct: Vec<Val>,
    pub hashes: Vec<u64>,
}

impl Partial {
    /// Add one non-null value of a row at (`ts`, `created`).
    pub fn add(&mut self, spec: &TileSpec, v: Val, ts: i64, created: i64) {
        self.num.n += 1;
        match spec.func {
            Func::Count => {}
            Func::Sum | Func::Mean => match v {
                Val::I(x) => self.num.sum_i += x as i128,
                Val::F(x) => self.add_float(x),
                Val::B(_) => {}
            },
            Func::Stddev => {
                let x = match v {
                    Val::I(x) => x as f64,
                    Val::F(x) => x,
                    Val::B(_) => return,
                };
                let d = x - self.num.mean;
                self.num.mean += d / self.num.n as f64;
                self.num.m2 += d * (x - self.num.mean);
            }
            Func::Min | Func::Max => {
                if beats_ext(spec.func, self.ext.as_ref(), |e| v.cmp_total(e)) {
                    self.ext = Some(v);
                }
            }
            Func::Last => {
                if beats_last(self.last.as_ref(), ts, created) {
                    self.last = Some((ts, created, v));
                }
            }
            Func::CountDistinct => {
                if let Err(i) = self.distinct.binary_search_by(|x| x.cmp_total(&v)) {
                    self.distinct.insert(i, v);
                }
            }
            Func::ApproxCountDistinct => {
                let h = v.hll_hash();
                if let Err(i) = self.hashes.binary_search(&h) {
                    self.hashes.insert(i, h);
                }
            }
        }
    }

    fn add_float(&mut self, x: f64) {
        if x.is_finite() {
            neumaier(&mut self.num.sum_f, &mut self.num.comp, x);
        } else if x.is_nan() {
            self.num.nan += 1;
        } else if x > 0.0 {
            self.num.pos_inf += 1;
        } else {
            self.num.neg_inf += 1;
        }
    }

    /// Merge `other` (rows of the same tile) into `self`.
    pub fn merge(&mut self, spec: &TileSpec, other: &Partial) {
        if other.num.n == 0 {
            return;
        }
        let n0 = self.num.n;
        self.num.merge(spec.func, &other.num);
        match spec.func {
            Func::Count | Func::Sum | Func::Mean | Func::Stddev => {}
            Func::Min | Func::Max | Func::Last => {
                if let Some(v) = &other.ext {
                    self.num.n -= 1; // add() counts again
                    self.add(spec, v.clone(), 0, 0);
                }
                if let Some((t, c, v)) = &other.last {
                    self.num.n -= 1;
                    self.add(spec, v.clone(), *t, *c);
                }
            }
            Func::CountDistinct => {
                for v in &other.distinct {
                    self.num.n -= 1;
                    self.add(spec, v.clone(), 0, 0);
                }
                self.num.n = n0 + other.num.n;
            }
            Func::ApproxCountDistinct => {
                for h in &other.hashes {
                    if let Err(i) = self.hashes.binary_search(h) {
                        self.hashes.insert(i, *h);
                    }
                }
            }
        }
    }
}

/// Min/max: whether a value replaces the kept extreme `kept` (none yet: it does); `cmp`
/// orders the value against it. Shared by `Partial::add` and the read's fold.
#[inline]
fn beats_ext<E>(func: Func, kept: Option<&E>, cmp: impl FnOnce(&E) -> Ordering) -> bool {
    let wins = if func == Func::Max {
        Ordering::Greater
    } else {
        Ordering::Less
    };
    kept.is_none_or(|e| cmp(e) == wins)
}

/// Last: whether a value at (`ts`, `created`) replaces the kept latest one; a full tie goes
/// to the later row (arrival order), as offline's row index.
#[inline]
fn beats_last<V>(kept: Option<&(i64, i64, V)>, ts: i64, created: i64) -> bool {
    kept.is_none_or(|(t, c, _)| (ts, created) >= (*t, *c))
}

/// The tiles of one key: per spec, partials by tile end; and the newest event time seen.
#[derive(Debug, Clone, PartialEq)]
pub struct TileSet {
    pub newest: i64,
    pub tiles: Vec<BTreeMap<i64, Partial>>,
}

impl TileSet {
    pub fn new(n_specs: usize) -> TileSet {
        TileSet {
            newest: i64::MIN,
            tiles: vec![BTreeMap::new(); n_specs],
        }
    }

    /// Add a row's values (one per spec, None = null) at (`ts`, `created`).
    pub fn add_row(&mut self, specs: &[TileSpec], ts: i64, created: i64, vals: Vec<Option<Val>>) {
        self.newest = self.newest.max(ts);
        for ((spec, tiles), v) in specs.iter().zip(&mut self.tiles).zip(vals) {
            let tile = tiles.entry(spec.tile_end(ts)).or_default();
            if let Some(v) = v {
                tile.add(spec, v, ts, created);
            }
        }
    }

    /// Pushed rows: add `other`'s tiles to ours (at-least-once: a row pushed twice counts
    /// twice).
    pub fn add_tiles(&mut self, specs: &[TileSpec], other: &TileSet) {
        self.newest = self.newest.max(other.newest);
        for ((spec, mine), theirs) in specs.iter().zip(&mut self.tiles).zip(&other.tiles) {
            for (end, p) in theirs {
                mine.entry(*end).or_default().merge(spec, p);
            }
        }
    }

    /// A materialization read the source rows in `(lo, hi]` (`other`): every tile lying
    /// wholly after `lo` (and the one holding `hi`) is replaced by `other`'s, or goes when
    /// the source has no rows for it (idempotent). Tiles only partly read keep their value.
    pub fn replace_tiles(&mut self, specs: &[TileSpec], other: &TileSet, lo: i64, hi: i64) {
        self.newest = self.newest.max(other.newest);
        for ((spec, mine), theirs) in specs.iter().zip(&mut self.tiles).zip(&other.tiles) {
            let a = spec.tile_end(lo.saturating_add(spec.slide));
            let b = spec.tile_end(hi);
            mine.retain(|e, _| *e < a || *e > b);
            for (end, p) in theirs.range(a..=b) {
                mine.insert(*end, p.clone());
            }
        }
    }

    /// Drop tiles no read at or after the newest event can use: ends at or before
    /// `newest - window - slide` (the tiles' ttl is window + slide).
    pub fn expire(&mut self, specs: &[TileSpec]) {
        let newest = self.newest;
        for (spec, tiles) in specs.iter().zip(&mut self.tiles) {
            let cut = newest.saturating_sub(spec.window + spec.slide);
            tiles.retain(|e, p| *e > cut && p.num.n > 0);
        }
    }

    /// Spec `i`'s partial over the window of a read at `at`: the merge of the tiles with
    /// `T - w < end <= T`, `T = floor(at, slide)`.
    pub fn window(&self, specs: &[TileSpec], i: usize, at: i64) -> Partial {
        let spec = &specs[i];
        let t = spec.window_end(at);
        let mut acc = Partial::default();
        for (_, p) in self.tiles[i].range(t - spec.window + 1..=t) {
            acc.merge(spec, p);
        }
        acc
    }
}

/// A finished aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Null,
    Int(i64),
    Float(f64),
    Val(Val),
}

/// The aggregate of a window's partial, with the offline kernel's rules: empty windows give
/// count 0 (and distinct counts 0), null otherwise; stddev is the sample one, null below two
/// values; an integer sum that overflows int64 is an error.
pub fn finish(spec: &TileSpec, p: &Partial) -> Result<Out> {
    Ok(match spec.func {
        Func::Count => Out::Int(p.num.n),
        Func::CountDistinct => Out::Int(p.distinct.len() as i64),
        Func::ApproxCountDistinct => Out::Int(if p.hashes.is_empty() {
            0
        } else {
            hll_estimate(&p.hashes)
        }),
        _ if p.num.n == 0 => Out::Null,
        Func::Sum | Func::Mean => {
            let (s, float) = match spec.kind {
                Kind::Int => (p.num.sum_i as f64, false),
                _ => (
                    float_sum(
                        p.num.sum_f,
                        p.num.comp,
                        p.num.nan,
                        p.num.pos_inf,
                        p.num.neg_inf,
                    ),
                    true,
                ),
            };
            if spec.func == Func::Mean {
                Out::Float(s / p.num.n as f64)
            } else if float {
                Out::Float(s)
            } else {
                Out::Int(i64::try_from(p.num.sum_i).map_err(|_| {
                    Error::Invalid(
                        "an integer sum overflows int64 (cast the column to a float)".into(),
                    )
                })?)
            }
        }
        Func::Stddev => {
            if p.num.n < 2 {
                Out::Null
            } else {
                Out::Float((p.num.m2 / (p.num.n - 1) as f64).max(0.0).sqrt())
            }
        }
        Func::Min | Func::Max => p.ext.clone().map_or(Out::Null, Out::Val),
        Func::Last => p
            .last
            .as_ref()
            .map_or(Out::Null, |(_, _, v)| Out::Val(v.clone())),
    })
}

/// Precision-14 HyperLogLog estimate of a set of hashes: the registers and estimate of the
/// offline kernel (`window::hll`), so both sides agree.
fn hll_estimate(hashes: &[u64]) -> i64 {
    const P: u32 = 14;
    const M: usize = 1 << P;
    let mut regs = vec![0u8; M];
    for h in hashes {
        let idx = (h >> (64 - P)) as usize;
        let w = (h << P) | (1 << (P - 1));
        let rank = (w.leading_zeros() + 1) as u8;
        regs[idx] = regs[idx].max(rank);
    }
    const ONE: u128 = 1 << 52;
    let z: u128 = regs.iter().map(|&r| ONE >> r).sum();
    let zeros = regs.iter().filter(|&&r| r == 0).count();
    let m = M as f64;
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let e = alpha * m * m / (z as f64 / ONE as f64);
    let e = if e <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else {
        e
    };
    e.round() as i64
}

// ---- codec ---------------------------------------------------------------------------------

struct W(Vec<u8>);

impl W {
    fn i64(&mut self, x: i64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn u32(&mut self, x: u32) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn f64(&mut self, x: f64) {
        self.0.extend_from_slice(&x.to_bits().to_le_bytes());
    }
    /// LEB128.
    fn var(&mut self, mut x: u128) {
        while x >= 0x80 {
            self.0.push(x as u8 | 0x80);
            x >>= 7;
        }
        self.0.push(x as u8);
    }
    /// Zigzag, then LEB128.
    fn zig(&mut self, x: i128) {
        self.var(((x << 1) ^ (x >> 127)) as u128);
    }
    fn val(&mut self, v: &Val) {
        match v {
            Val::I(x) => self.i64(*x),
            Val::F(x) => self.0.extend_from_slice(&x.to_bits().to_le_bytes()),
            Val::B(b) => {
                self.u32(b.len() as u32);
                self.0.extend_from_slice(b);
            }
        }
    }
    fn opt(&mut self, v: &Option<Val>) {
        match v {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                self.val(v);
            }
        }
    }
}

/// Encode a key's tiles (the current version, 2; empty tiles are left out).
pub fn encode(specs: &[TileSpec], set: &TileSet) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(256));
    w.0.extend_from_slice(MAGIC);
    w.0.push(VERSION);
    w.0.push(specs.len() as u8);
    w.i64(set.newest);
    for (spec, tiles) in specs.iter().zip(&set.tiles) {
        w.0.push(spec.func as u8);
        w.0.push(spec.kind as u8);
        w.i64(spec.window);
        w.i64(spec.slide);
        w.var(tiles.values().filter(|p| p.num.n > 0).count() as u128);
        let mut prev: Option<i64> = None;
        for (end, p) in tiles.iter().filter(|(_, p)| p.num.n > 0) {
            // ends are multiples of the slide: the first as its index, then index deltas
            let idx = end.div_euclid(spec.slide);
            match prev {
                None => w.zig(idx as i128),
                Some(q) => w.var((idx - q) as u128),
            }
            prev = Some(idx);
            let float_sum = matches!(spec.func, Func::Sum | Func::Mean) && spec.kind != Kind::Int;
            if !float_sum {
                w.var(p.num.n as u128);
            }
            match spec.func {
                Func::Count => {}
                Func::Sum | Func::Mean => match spec.kind {
                    Kind::Int => w.zig(p.num.sum_i),
                    _ => {
                        // n and 4 flags in one varint: most tiles have no compensation
                        // and no non-finite values, so a tile is ~10 bytes
                        let flags = u128::from(p.num.comp.to_bits() != 0)
                            | u128::from(p.num.nan > 0) << 1
                            | u128::from(p.num.pos_inf > 0) << 2
                            | u128::from(p.num.neg_inf > 0) << 3;
                        w.var((p.num.n as u128) << 4 | flags);
                        w.f64(p.num.sum_f);
                        if p.num.comp.to_bits() != 0 {
                            w.f64(p.num.comp);
                        }
                        for c in [p.num.nan, p.num.pos_inf, p.num.neg_inf] {
                            if c > 0 {
                                w.var(c.into());
                            }
                        }
                    }
                },
                Func::Stddev => {
                    w.f64(p.num.mean);
                    w.f64(p.num.m2);
                }
                Func::Min | Func::Max => w.opt(&p.ext),
                Func::Last => match &p.last {
                    None => w.0.push(0),
                    Some((t, c, v)) => {
                        w.0.push(1);
                        w.i64(*t);
                        w.i64(*c);
                        w.val(v);
                    }
                },
                Func::CountDistinct => {
                    w.var(p.distinct.len() as u128);
                    for v in &p.distinct {
                        w.val(v);
                    }
                }
                Func::ApproxCountDistinct => {
                    w.var(p.hashes.len() as u128);
                    for h in &p.hashes {
                        w.i64(*h as i64);
                    }
                }
            }
        }
    }
    w.0
}

struct R<'a> {
    b: &'a [u8],
    pos: usize,
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt(format!("online aggregation tiles: {what}"))
}

impl<'a> R<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| corrupt("truncated blob"))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    #[inline]
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    #[inline]
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    #[inline]
    fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_bits(self.i64()? as u64))
    }
    #[inline]
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    /// LEB128. Most varints of a blob (tile index deltas, counts) are one byte: that case
    /// first, inlined.
    #[inline]
    fn var(&mut self) -> Result<u128> {
        match self.b.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u128::from(b))
            }
            _ => self.var_long(),
        }
    }
    fn var_long(&mut self) -> Result<u128> {
        let mut x = 0u128;
        for shift in (0..128).step_by(7) {
            let b = self.u8()?;
            x |= u128::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(x);
            }
        }
        Err(corrupt("bad varint"))
    }
    #[inline]
    fn zig(&mut self) -> Result<i128> {
        let x = self.var()?;
        Ok((x >> 1) as i128 ^ -((x & 1) as i128))
    }
    /// A count (tiles, values, non-finite values) that must fit `T`.
    #[inline]
    fn count<T: TryFrom<u128>>(&mut self) -> Result<T> {
        T::try_from(self.var()?).map_err(|_| corrupt("count out of range"))
    }
    #[inline]
    fn val(&mut self, k: Kind) -> Result<ValRef<'a>> {
        Ok(match k {
            Kind::Int => ValRef::I(self.i64()?),
            Kind::Float => ValRef::F(self.f64()?),
            Kind::Bytes => {
                let n = self.u32()? as usize;
                ValRef::B(self.take(n)?)
            }
        })
    }
    #[inline]
    fn opt(&mut self, k: Kind) -> Result<Option<ValRef<'a>>> {
        Ok(match self.u8()? {
            0 => None,
            1 => Some(self.val(k)?),
            _ => return Err(corrupt("bad presence byte")),
        })
    }
}

/// A stored value, bytes borrowed from the blob: the read compares them in place and copies
/// only the window's result.
#[derive(Debug, Clone, Copy)]
enum ValRef<'a> {
    I(i64),
    F(f64),
    B(&'a [u8]),
}

impl ValRef<'_> {
    /// `Val::cmp_total` against an owned value.
    #[inline]
    fn cmp_total(&self, other: &Val) -> Ordering {
        match (self, other) {
            (ValRef::I(a), Val::I(b)) => a.cmp(b),
            (ValRef::F(a), Val::F(b)) => a.total_cmp(b),
            (ValRef::B(a), Val::B(b)) => (*a).cmp(b.as_slice()),
            _ => Ordering::Equal,
        }
    }

    /// `Val::cmp_total` between two borrowed values.
    #[inline]
    fn cmp_ref(&self, other: &ValRef<'_>) -> Ordering {
        match (self, other) {
            (ValRef::I(a), ValRef::I(b)) => a.cmp(b),
            (ValRef::F(a), ValRef::F(b)) => a.total_cmp(b),
            (ValRef::B(a), ValRef::B(b)) => a.cmp(b),
            _ => Ordering::Equal,
        }
    }

    fn to_val(self) -> Val {
        match self {
            ValRef::I(x) => Val::I(x),
            ValRef::F(x) => Val::F(x),
            ValRef::B(b) => Val::B(b.to_vec()),
        }
    }
}

/// One stored tile as the blob holds it: the fields of its function (the others stay at
/// their defaults), values borrowed; count_distinct's values and approx_count_distinct's
/// hashes as `items` encoded values in `raw`.
#[derive(Debug, Default)]
struct TileRef<'a> {
    num: Num,
    ext: Option<ValRef<'a>>,
    last: Option<(i64, i64, ValRef<'a>)>,
    items: u32,
    raw: &'a [u8],
}

impl<'a> TileRef<'a> {
    /// The `items` values in `raw` (checked when the tile was read).
    fn values(&self, k: Kind) -> impl Iterator<Item = ValRef<'a>> + 'a {
        let mut r = R {
            b: self.raw,
            pos: 0,
        };
        (0..self.items).map_while(move |_| r.val(k).ok())
    }

    fn hashes(&self) -> impl Iterator<Item = u64> + 'a {
        self.raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
    }

    /// The tile as an owned partial (decode: the write path's tile map).
    fn to_partial(&self, spec: &TileSpec) -> Partial {
        Partial {
            num: self.num,
            ext: self.ext.map(ValRef::to_val),
            last: self.last.map(|(t, c, v)| (t, c, v.to_val())),
            distinct: match spec.func {
                Func::CountDistinct => self.values(spec.kind).map(ValRef::to_val).collect(),
                _ => Vec::new(),
            },
            hashes: match spec.func {
                Func::ApproxCountDistinct => self.hashes().collect(),
                _ => Vec::new(),
            },
        }
    }
}

/// The read's accumulator of one spec: `Partial::merge` of the window's tiles, folded
/// straight from the blob (no partial per tile), with the extreme and latest values kept
/// borrowed until the end.
struct Acc<'a> {
    p: Partial,
    ext: Option<ValRef<'a>>,
    last: Option<(i64, i64, ValRef<'a>)>,
}

impl<'a> Acc<'a> {
    /// Exactly `Partial::merge(self, tile)`: the same `Num::merge` of the count, sums and
    /// moments, then the same extreme, latest and distinct steps, so the window's value is
    /// the decode-then-merge one.
    #[inline]
    fn fold(&mut self, spec: &TileSpec, t: &TileRef<'a>) {
        if t.num.n == 0 {
            return;
        }
        let p = &mut self.p;
        let n0 = p.num.n;
        p.num.n += t.num.n;
        match spec.func {
            Func::Count => {}
            Func::Sum | Func::Mean => p.num.merge_sums(&t.num),
            Func::Stddev => p.num.merge_moments(n0, &t.num),
            Func::Min | Func::Max => {
                if let Some(v) = t.ext {
                    if beats_ext(spec.func, self.ext.as_ref(), |e| v.cmp_ref(e)) {
                        self.ext = Some(v);
                    }
                }
            }
            Func::Last => {
                if let Some((ts, c, v)) = t.last {
                    if beats_last(self.last.as_ref(), ts, c) {
                        self.last = Some((ts, c, v));
                    }
                }
            }
            Func::CountDistinct => {
                for v in t.values(spec.kind) {
                    if let Err(i) = p.distinct.binary_search_by(|x| v.cmp_total(x).reverse()) {
                        p.distinct.insert(i, v.to_val());
                    }
                }
            }
            Func::ApproxCountDistinct => {
                for h in t.hashes() {
                    if let Err(i) = p.hashes.binary_search(&h) {
                        p.hashes.insert(i, h);
                    }
                }
            }
        }
    }

    fn finish(mut self, spec: &TileSpec) -> Result<Out> {
        self.p.ext = self.ext.map(ValRef::to_val);
        self.p.last = self.last.map(|(t, c, v)| (t, c, v.to_val()));
        finish(spec, &self.p)
    }
}

/// Decode a key's tiles written for `specs` (another definition: `Error::Corrupt`).
pub fn decode(specs: &[TileSpec], blob: &[u8]) -> Result<TileSet> {
    let (mut walk, newest) = Walk::open(specs, blob)?;
    let mut set = TileSet::new(specs.len());
    set.newest = newest;
    for (spec, map) in specs.iter().zip(&mut set.tiles) {
        let mut tiles = walk.spec(spec)?;
        while let Some((end, t)) = tiles.next()? {
            map.insert(end, t.to_partial(spec));
        }
    }
    walk.finish()?;
    Ok(set)
}

/// The read path: each spec's aggregate over the window of a read at `at`, straight from
/// the blob: the window's tiles folded into one local accumulator per spec as they are
/// read (its running sums stay in registers), nothing else kept; and the newest event time.
pub fn read_window(specs: &[TileSpec], blob: &[u8], at: i64) -> Result<(i64, Vec<Out>)> {
    let (mut walk, newest) = Walk::open(specs, blob)?;
    let mut outs = Vec::with_capacity(specs.len());
    for spec in specs {
        let hi = spec.window_end(at);
        let lo = hi - spec.window;
        let mut acc = Acc {
            p: Partial::default(),
            ext: None,
            last: None,
        };
        let mut tiles = walk.spec(spec)?;
        while let Some((end, t)) = tiles.next()? {
            if lo < end && end <= hi {
                acc.fold(spec, &t);
            }
        }
        outs.push(acc);
    }
    walk.finish()?;
    let outs = specs
        .iter()
        .zip(outs)
        .map(|(s, a)| a.finish(s))
        .collect::<Result<Vec<_>>>()?;
    Ok((newest, outs))
}

/// A reader of a blob written for `specs`: `open` checks the header, then `spec` gives each
/// spec's tiles in turn (checking its header), and `finish` that nothing follows.
struct Walk<'a> {
    r: R<'a>,
    v1: bool,
}

impl<'a> Walk<'a> {
    /// The reader and the blob's newest event time.
    fn open(specs: &[TileSpec], blob: &'a [u8]) -> Result<(Walk<'a>, i64)> {
        let mut r = R { b: blob, pos: 0 };
        if r.take(2)? != MAGIC {
            return Err(corrupt("not a tile blob"));
        }
        let version = r.u8()?;
        if version != 1 && version != VERSION {
            return Err(corrupt(&format!(
                "blob version {version} is not one this build reads (1, {VERSION}); \
                 re-materialize the view with this version"
            )));
        }
        if r.u8()? as usize != specs.len() {
            return Err(changed());
        }
        let newest = r.i64()?;
        Ok((
            Walk {
                r,
                v1: version == 1,
            },
            newest,
        ))
    }

    /// The next spec's tiles (`spec` must be the next of the `specs` given to `open`, and
    /// the previous spec's tiles all read).
    fn spec<'w>(&'w mut self, spec: &TileSpec) -> Result<Tiles<'a, 'w>> {
        let r = &mut self.r;
        let (f, k, w, s) = (r.u8()?, r.u8()?, r.i64()?, r.i64()?);
        if f != spec.func as u8 || k != spec.kind as u8 || w != spec.window || s != spec.slide {
            return Err(changed());
        }
        let left: u32 = if self.v1 { r.u32()? } else { r.count()? };
        Ok(Tiles {
            spec: *spec,
            float_sum: matches!(spec.func, Func::Sum | Func::Mean) && spec.kind != Kind::Int,
            left,
            first: true,
            idx: 0,
            w: self,
        })
    }

    fn finish(self) -> Result<()> {
        if self.r.pos != self.r.b.len() {
            return Err(corrupt("bytes after the last tile"));
        }
        Ok(())
    }
}

/// One spec's tiles, read one at a time in blob order (ascending end).
struct Tiles<'a, 'w> {
    w: &'w mut Walk<'a>,
    spec: TileSpec,
    float_sum: bool,
    left: u32,
    first: bool,
    idx: i64,
}

impl<'a> Tiles<'a, '_> {
    /// The next tile: its end and its fields borrowed from the blob; None after the last.
    /// Inlined into each caller's loop, so a tile's fields go straight to the fold.
    #[inline(always)]
    fn next(&mut self) -> Result<Option<(i64, TileRef<'a>)>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let (spec, v1) = (&self.spec, self.w.v1);
        let r = &mut self.w.r;
        let end = if v1 {
            r.i64()?
        } else {
            let d = if self.first {
                r.zig()?
            } else {
                r.var()? as i128
            };
            self.idx = i64::try_from(if self.first { d } else { self.idx as i128 + d })
                .map_err(|_| corrupt("tile index out of range"))?;
            self.first = false;
            self.idx
                .checked_mul(spec.slide)
                .ok_or_else(|| corrupt("tile end out of range"))?
        };
        let mut p = TileRef::default();
        let mut flags = 0u8;
        if v1 {
            p.num.n = r.i64()?;
        } else if self.float_sum {
            let x = r.var()?;
            p.num.n = i64::try_from(x >> 4).map_err(|_| corrupt("count out of range"))?;
            flags = (x & 0xf) as u8;
        } else {
            p.num.n = r.count()?;
        }
        match spec.func {
            Func::Count => {}
            Func::Sum | Func::Mean => match spec.kind {
                Kind::Int if v1 => {
                    p.num.sum_i = i128::from_le_bytes(r.take(16)?.try_into().unwrap())
                }
                Kind::Int => p.num.sum_i = r.zig()?,
                _ if v1 => {
                    p.num.sum_f = r.f64()?;
                    p.num.comp = r.f64()?;
                    p.num.nan = r.u32()?;
                    p.num.pos_inf = r.u32()?;
                    p.num.neg_inf = r.u32()?;
                }
                _ => {
                    p.num.sum_f = r.f64()?;
                    if flags & 1 != 0 {
                        p.num.comp = r.f64()?;
                    }
                    if flags & 2 != 0 {
                        p.num.nan = r.count()?;
                    }
                    if flags & 4 != 0 {
                        p.num.pos_inf = r.count()?;
                    }
                    if flags & 8 != 0 {
                        p.num.neg_inf = r.count()?;
                    }
                }
            },
            Func::Stddev => {
                p.num.mean = r.f64()?;
                p.num.m2 = r.f64()?;
            }
            Func::Min | Func::Max => p.ext = r.opt(spec.kind)?,
            Func::Last => {
                p.last = match r.u8()? {
                    0 => None,
                    1 => Some((r.i64()?, r.i64()?, r.val(spec.kind)?)),
                    _ => return Err(corrupt("bad presence byte")),
                }
            }
            Func::CountDistinct | Func::ApproxCountDistinct => {
                p.items = if v1 { r.u32()? } else { r.count()? };
                let start = r.pos;
                if spec.func == Func::CountDistinct {
                    for _ in 0..p.items {
                        r.val(spec.kind)?;
                    }
                } else {
                    let len = (p.items as usize)
                        .checked_mul(8)
                        .ok_or_else(|| corrupt("count out of range"))?;
                    r.take(len)?;
                }
                p.raw = &r.b[start..r.pos];
            }
        }
        Ok(Some((end, p)))
    }
}

fn changed() -> Error {
    corrupt(
        "the blob was written for another definition of the view's aggregations; \
         re-materialize the view",
    )
}
