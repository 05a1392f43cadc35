//! The sliding computations: one running state per function, driven by two pointers over
//! each group's sorted feature rows.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_buffer::NullBuffer;
use hashbrown::HashMap;
use rayon::prelude::*;

use super::hll::SlidingHll;
use super::layout::Layout;
use super::{float64, int64, uint32, Function, Spec, Values, OP};
use crate::error::{Error, Result};
use crate::keys::{hash_bytes, hash_fixed, ByteCol};
use crate::mem;

/// A running aggregate over the window `lo..hi` of sorted feature positions.
trait Acc {
    type Out: Copy + Send + Sync + Default;
    /// Position `j` entered the window.
    fn add(&mut self, j: usize);
    /// Position `j` left the window (positions leave in the order they entered).
    fn remove(&mut self, j: usize);
    /// The aggregate of `lo..hi` and whether it is non-null.
    fn emit(&mut self, lo: usize, hi: usize) -> (Self::Out, bool);
    /// Forget everything (a new group starts).
    fn clear(&mut self);
}

/// Validity of the gathered values (`None`: all valid).
#[derive(Clone, Copy)]
struct Valid<'a>(Option<&'a [bool]>);

impl Valid<'_> {
    #[inline(always)]
    fn at(&self, j: usize) -> bool {
        self.0.is_none_or(|v| v[j])
    }
}

/// Value columns gathered into the layout's feature order, once per column however many
/// aggregates read it (the gathers are random reads: the costly part on large inputs).
#[derive(Default)]
pub(crate) struct Cache {
    ints: HashMap<usize, Arc<Vec<i64>>>,
    floats: HashMap<usize, Arc<Vec<f64>>>,
    valid: HashMap<usize, Option<Arc<Vec<bool>>>>,
}

impl Cache {
    fn ints(&mut self, idx: usize, fperm: &[u32], src: &[i64]) -> Result<Arc<Vec<i64>>> {
        if let Some(v) = self.ints.get(&idx) {
            return Ok(Arc::clone(v));
        }
        let v = Arc::new(gather(fperm, src)?);
        self.ints.insert(idx, Arc::clone(&v));
        Ok(v)
    }

    fn floats(&mut self, idx: usize, fperm: &[u32], src: &[f64]) -> Result<Arc<Vec<f64>>> {
        if let Some(v) = self.floats.get(&idx) {
            return Ok(Arc::clone(v));
        }
        let v = Arc::new(gather(fperm, src)?);
        self.floats.insert(idx, Arc::clone(&v));
        Ok(v)
    }

    fn valid(
        &mut self,
        idx: usize,
        fperm: &[u32],
        nulls: Option<&NullBuffer>,
    ) -> Result<Option<Arc<Vec<bool>>>> {
        if let Some(v) = self.valid.get(&idx) {
            return Ok(v.clone());
        }
        let v = match nulls.filter(|n| n.null_count() > 0) {
            None => None,
            Some(nb) => {
                let mut v = mem::filled(fperm.len(), false, OP)?;
                v.par_iter_mut()
                    .zip(fperm.par_iter())
                    .for_each(|(o, &r)| *o = nb.is_valid(r as usize));
                Some(Arc::new(v))
            }
        };
        self.valid.insert(idx, v.clone());
        Ok(v)
    }
}

pub(crate) fn run(
    lay: &Layout,
    spec: &Spec,
    vals: Values<'_>,
    nulls: Option<&NullBuffer>,
    cache: &mut Cache,
) -> Result<ArrayRef> {
    let valid_s = cache.valid(spec.value, &lay.fperm, nulls)?;
    let valid = Valid(valid_s.as_deref().map(|v| v.as_slice()));
    let overflow = AtomicBool::new(false);
    let fperm = &lay.fperm;
    let out = match (spec.function, vals) {
        (Function::Count, _) => {
            let (v, ok) = drive(lay, spec, || Count { valid, n: 0 })?;
            int64(v, ok)
        }
        (Function::Last, _) => {
            let (v, ok) = drive(lay, spec, || Last {
                valid,
                last: usize::MAX,
                fperm,
            })?;
            uint32(v, ok)
        }
        (Function::Sum | Function::Mean, Values::Int(src)) => {
            let v_s = cache.ints(spec.value, fperm, src)?;
            let mean = spec.function == Function::Mean;
            let make = || SumInt {
                v: &v_s,
                valid,
                n: 0,
                s: 0,
                overflow: &overflow,
            };
            if mean {
                let (v, ok) = drive(lay, spec, || MeanInt(make()))?;
                float64(v, ok)
            } else {
                let (v, ok) = drive(lay, spec, make)?;
                if overflow.load(Ordering::Relaxed) {
                    return Err(Error::Invalid(
                        "an integer sum overflows int64 (cast the column to a float)".into(),
                    ));
                }
                int64(v, ok)
            }
        }
        (Function::Sum | Function::Mean, Values::Float(src)) => {
            let v_s = cache.floats(spec.value, fperm, src)?;
            let mean = spec.function == Function::Mean;
            let (v, ok) = drive(lay, spec, || SumFloat {
                v: &v_s,
                valid,
                n: 0,
                s: KSum::default(),
                mean,
            })?;
            float64(v, ok)
        }
        (Function::Stddev, Values::Int(src)) => {
            let v_s: Vec<f64> = cache
                .ints(spec.value, fperm, src)?
                .iter()
                .map(|&x| x as f64)
                .collect();
            let (v, ok) = drive(lay, spec, || Stddev::new(&v_s, valid))?;
            float64(v, ok)
        }
        (Function::Stddev, Values::Float(src)) => {
            let v_s = cache.floats(spec.value, fperm, src)?;
            let (v, ok) = drive(lay, spec, || Stddev::new(&v_s, valid))?;
            float64(v, ok)
        }
        (Function::Min | Function::Max, Values::Int(src)) => {
            let v_s = cache.ints(spec.value, fperm, src)?;
            let max = spec.function == Function::Max;
            let (v, ok) = drive(lay, spec, || Extreme {
                v: &v_s,
                valid,
                fperm,
                max,
                dq: VecDeque::new(),
                better: |a: &i64, b: &i64| a.cmp(b),
            })?;
            uint32(v, ok)
        }
        (Function::Min | Function::Max, Values::Float(src)) => {
            let v_s = cache.floats(spec.value, fperm, src)?;
            let max = spec.function == Function::Max;
            let (v, ok) = drive(lay, spec, || Extreme {
                v: &v_s,
                valid,
                fperm,
                max,
                dq: VecDeque::new(),
                better: |a: &f64, b: &f64| a.total_cmp(b),
            })?;
            uint32(v, ok)
        }
        (Function::CountDistinct, Values::Int(src)) => {
            let v_s = cache.ints(spec.value, fperm, src)?;
            let (v, ok) = drive(lay, spec, || Distinct {
                get: |j: usize| v_s[j],
                valid,
                map: HashMap::with_hasher(KeyHash),
            })?;
            int64(v, ok)
        }
        (Function::CountDistinct, Values::Bytes(col)) => {
            let (v, ok) = drive(lay, spec, || Distinct {
                get: |j: usize| col.get(fperm[j] as usize),
                valid,
                map: HashMap::with_hasher(KeyHash),
            })?;
            int64(v, ok)
        }
        (Function::ApproxCountDistinct, Values::Int(src)) => {
            let h_s: Vec<u64> = cache
                .ints(spec.value, fperm, src)?
                .iter()
                .map(|&x| hash_int(x as u64))
                .collect();
            let (v, ok) = drive(lay, spec, || Approx {
                h: &h_s,
                valid,
                hll: SlidingHll::new(),
            })?;
            int64(v, ok)
        }
        (Function::ApproxCountDistinct, Values::Bytes(col)) => {
            let h_s = hash_bytes_sorted(fperm, col)?;
            let (v, ok) = drive(lay, spec, || Approx {
                h: &h_s,
                valid,
                hll: SlidingHll::new(),
            })?;
            int64(v, ok)
        }
        (f, _) => {
            return Err(Error::Invalid(format!(
                "{f:?} cannot take this value column"
            )))
        }
    };
    Ok(out)
}

/// The HyperLogLog hash of an integer value: the keys' `fmix64` on the value offset by a
/// constant (so 0 does not hash to 0).
#[inline]
pub(crate) fn hash_int(x: u64) -> u64 {
    hash_fixed(x ^ 0x9e37_79b9_7f4a_7c15)
}

fn hash_bytes_sorted(fperm: &[u32], col: ByteCol<'_>) -> Result<Vec<u64>> {
    let mut h = mem::filled(fperm.len(), 0u64, OP)?;
    h.par_iter_mut()
        .zip(fperm.par_iter())
        .for_each(|(o, &r)| *o = hash_bytes(col.get(r as usize)));
    Ok(h)
}

fn gather<T: Copy + Send + Sync + Default>(perm: &[u32], src: &[T]) -> Result<Vec<T>> {
    let mut out = mem::filled(perm.len(), T::default(), OP)?;
    out.par_iter_mut()
        .zip(perm.par_iter())
        .for_each(|(o, &r)| *o = src[r as usize]);
    Ok(out)
}

/// Walks every group's entity slots in time order, moving the window's two ends forward,
/// and returns the outputs and validity per entity row (input order).
fn drive<A, F>(lay: &Layout, spec: &Spec, make: F) -> Result<(Vec<A::Out>, Option<NullBuffer>)>
where
    A: Acc,
    F: Fn() -> A + Sync,
{
    let n_slots = lay.eperm.len();
    let mut out: Vec<A::Out> = mem::filled(n_slots, A::Out::default(), OP)?;
    let mut ok: Vec<bool> = mem::filled(n_slots, false, OP)?;
    // parallel tasks: runs of groups of about CHUNK rows (entity + feature)
    let n = lay.n_groups();
    let mut bounds = vec![0usize];
    let mut acc_rows = 0usize;
    for g in 0..n {
        acc_rows += lay.eoff[g + 1] - lay.eoff[g] + lay.foff[g + 1] - lay.foff[g];
        if acc_rows >= TASK_ROWS || g + 1 == n {
            bounds.push(g + 1);
            acc_rows = 0;
        }
    }
    let mut tasks = Vec::with_capacity(bounds.len());
    let (mut rest_o, mut rest_k) = (&mut out[..], &mut ok[..]);
    for w in bounds.windows(2) {
        let len = lay.eoff[w[1]] - lay.eoff[w[0]];
        let (o, ro) = std::mem::take(&mut rest_o).split_at_mut(len);
        let (k, rk) = std::mem::take(&mut rest_k).split_at_mut(len);
        tasks.push((w[0], w[1], o, k));
        rest_o = ro;
        rest_k = rk;
    }
    let window = spec.window;
    tasks.into_par_iter().for_each(|(g0, g1, o, k)| {
        let mut acc = make();
        let base = lay.eoff[g0];
        for g in g0..g1 {
            acc.clear();
            let (mut lo, mut hi, fend) = (lay.foff[g], lay.foff[g], lay.foff[g + 1]);
            for s in lay.eoff[g]..lay.eoff[g + 1] {
                let end = spec.end(lay.ets[s]);
                let start = end.saturating_sub(window);
                // rows wholly before the window need not enter it
                if lo == hi {
                    while hi < fend && lay.fts[hi] <= start {
                        hi += 1;
                    }
                    lo = hi;
                }
                while hi < fend && lay.fts[hi] <= end {
                    acc.add(hi);
                    hi += 1;
                }
                while lo < hi && lay.fts[lo] <= start {
                    acc.remove(lo);
                    lo += 1;
                }
                let (v, valid) = acc.emit(lo, hi);
                o[s - base] = v;
                k[s - base] = valid;
            }
        }
    });
    // slot order -> entity row order; rows without a valid key/ts stay null
    let mut vals: Vec<A::Out> = mem::filled(lay.n_ent, A::Out::default(), OP)?;
    let mut valid: Vec<bool> = mem::filled(lay.n_ent, false, OP)?;
    for (s, &r) in lay.eperm.iter().enumerate() {
        vals[r as usize] = out[s];
        valid[r as usize] = ok[s];
    }
    let nulls = if valid.iter().all(|&v| v) {
        None
    } else {
        Some(NullBuffer::from(valid))
    };
    Ok((vals, nulls))
}

const TASK_ROWS: usize = if cfg!(test) { 64 } else { 1 << 15 };

// ---- count, last ---------------------------------------------------------------------

struct Count<'a> {
    valid: Valid<'a>,
    n: i64,
}

impl Acc for Count<'_> {
    type Out = i64;
    fn add(&mut self, j: usize) {
        self.n += self.valid.at(j) as i64;
    }
    fn remove(&mut self, j: usize) {
        self.n -= self.valid.at(j) as i64;
    }
    fn emit(&mut self, _: usize, _: usize) -> (i64, bool) {
        (self.n, true)
    }
    fn clear(&mut self) {
        self.n = 0;
    }
}

struct Last<'a> {
    valid: Valid<'a>,
    last: usize,
    fperm: &'a [u32],
}

impl Acc for Last<'_> {
    type Out = u32;
    fn add(&mut self, j: usize) {
        if self.valid.at(j) {
            self.last = j; // positions are in tie-break order: the later one wins
        }
    }
    fn remove(&mut self, _: usize) {}
    fn emit(&mut self, lo: usize, _: usize) -> (u32, bool) {
        if self.last != usize::MAX && self.last >= lo {
            (self.fperm[self.last], true)
        } else {
            (0, false)
        }
    }
    fn clear(&mut self) {
        self.last = usize::MAX;
    }
}

// ---- sum, mean -------------------------------------------------------------------------

struct SumInt<'a> {
    v: &'a [i64],
    valid: Valid<'a>,
    n: i64,
    s: i128,
    overflow: &'a AtomicBool,
}

impl Acc for SumInt<'_> {
    type Out = i64;
    fn add(&mut self, j: usize) {
        if self.valid.at(j) {
            self.n += 1;
            self.s += self.v[j] as i128;
        }
    }
    fn remove(&mut self, j: usize) {
        if self.valid.at(j) {
            self.n -= 1;
            self.s -= self.v[j] as i128;
        }
    }
    fn emit(&mut self, _: usize, _: usize) -> (i64, bool) {
        if self.n == 0 {
            return (0, false);
        }
        match i64::try_from(self.s) {
            Ok(x) => (x, true),
            Err(_) => {
                self.overflow.store(true, Ordering::Relaxed);
                (0, false)
            }
        }
    }
    fn clear(&mut self) {
        self.n = 0;
        self.s = 0;
    }
}

struct MeanInt<'a>(SumInt<'a>);

impl Acc for MeanInt<'_> {
    type Out = f64;
    fn add(&mut self, j: usize) {
        self.0.add(j)
    }
    fn remove(&mut self, j: usize) {
        self.0.remove(j)
    }
    fn emit(&mut self, _: usize, _: usize) -> (f64, bool) {
        let s = &self.0;
        if s.n == 0 {
            (0.0, false)
        } else {
            (s.s as f64 / s.n as f64, true)
        }
    }
    fn clear(&mut self) {
        self.0.clear()
    }
}

/// A Neumaier-compensated sum of finite values, with non-finite values counted apart.
#[derive(Default, Clone, Copy)]
pub(crate) struct KSum {
    s: f64,
    c: f64,
    n_finite: u64,
    nan: u32,
    pos_inf: u32,
    neg_inf: u32,
}

/// One compensated (Neumaier) summation step: `s + c` keeps the sum of finite values.
#[inline]
pub(crate) fn neumaier(s: &mut f64, c: &mut f64, x: f64) {
    let t = *s + x;
    if s.abs() >= x.abs() {
        *c += (*s - t) + x;
    } else {
        *c += (x - t) + *s;
    }
    *s = t;
}

/// A float sum from its compensated finite part and the non-finite values seen: NaN if any
/// NaN or both infinities, else the infinity seen, else `s + c`. The offline kernel and the
/// online tiles both finish their sums here, so they agree on special values.
#[inline]
pub(crate) fn float_sum(s: f64, c: f64, nan: u32, pos_inf: u32, neg_inf: u32) -> f64 {
    if nan > 0 || (pos_inf > 0 && neg_inf > 0) {
        f64::NAN
    } else if pos_inf > 0 {
        f64::INFINITY
    } else if neg_inf > 0 {
        f64::NEG_INFINITY
    } else {
        s + c
    }
}

impl KSum {
    #[inline]
    fn acc(&mut self, x: f64) {
        neumaier(&mut self.s, &mut self.c, x);
    }

    #[inline]
    pub(crate) fn add(&mut self, x: f64) {
        if x.is_finite() {
            self.n_finite += 1;
            self.acc(x);
        } else if x.is_nan() {
            self.nan += 1;
        } else if x > 0.0 {
            self.pos_inf += 1;
        } else {
            self.neg_inf += 1;
        }
    }

    #[inline]
    pub(crate) fn remove(&mut self, x: f64) {
        if x.is_finite() {
            self.n_finite -= 1;
            if self.n_finite == 0 {
                // nothing finite left: drop the rounding residue too
                self.s = 0.0;
                self.c = 0.0;
            } else {
                self.acc(-x);
            }
        } else if x.is_nan() {
            self.nan -= 1;
        } else if x > 0.0 {
            self.pos_inf -= 1;
        } else {
            self.neg_inf -= 1;
        }
    }

    #[inline]
    pub(crate) fn value(&self) -> f64 {
        float_sum(self.s, self.c, self.nan, self.pos_inf, self.neg_inf)
    }
}

struct SumFloat<'a> {
    v: &'a [f64],
    valid: Valid<'a>,
    n: u64,
    s: KSum,
    mean: bool,
}

impl Acc for SumFloat<'_> {
    type Out = f64;
    fn add(&mut self, j: usize) {
        if self.valid.at(j) {
            self.n += 1;
            self.s.add(self.v[j]);
        }
    }
    fn remove(&mut self, j: usize) {
        if self.valid.at(j) {
            self.n -= 1;
            self.s.remove(self.v[j]);
        }
    }
    fn emit(&mut self, _: usize, _: usize) -> (f64, bool) {
        if self.n == 0 {
            (0.0, false)
        } else if self.mean {
            (self.s.value() / self.n as f64, true)
        } else {
            (self.s.value(), true)
        }
    }
    fn clear(&mut self) {
        self.n = 0;
        self.s = KSum::default();
    }
}

// ---- stddev ----------------------------------------------------------------------------

/// Count, mean and sum of squared deviations of finite values (Welford / Chan et al.), plus
/// the number of non-finite ones.
#[derive(Clone, Copy, Default)]
struct Moments {
    n: u64,
    non_finite: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    #[inline]
    fn push(&mut self, x: f64) {
        if !x.is_finite() {
            self.non_finite += 1;
            return;
        }
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    /// The moments of both sets (Chan et al.'s pairwise combination; no subtraction of
    /// values, so nothing drifts as the window slides).
    #[inline]
    fn merge(&self, o: &Moments) -> Moments {
        let non_finite = self.non_finite + o.non_finite;
        if self.n == 0 {
            return Moments { non_finite, ..*o };
        }
        if o.n == 0 {
            return Moments {
                non_finite,
                ..*self
            };
        }
        let n = self.n + o.n;
        let d = o.mean - self.mean;
        let (a, b) = (self.n as f64, o.n as f64);
        Moments {
            n,
            non_finite,
            mean: self.mean + d * b / n as f64,
            m2: self.m2 + o.m2 + d * d * a * b / n as f64,
        }
    }
}

/// The sample standard deviation over a sliding window as a two-stack queue: the window's
/// older part keeps suffix moments (rebuilt from the values when it empties, each value
/// once), the newer part a running total; a window's moments are one merge of the two.
/// Removal never subtracts, so a window of equal values gives exactly 0.
struct Stddev<'a> {
    v: &'a [f64],
    valid: Valid<'a>,
    /// Moments of the older part's suffixes: the last entry covers the whole older part
    /// (from the window's first position), the one before it one position less, and so on.
    suffix: Vec<Moments>,
    hi: usize,
    back: Moments,
}

impl<'a> Stddev<'a> {
    fn new(v: &'a [f64], valid: Valid<'a>) -> Self {
        Stddev {
            v,
            valid,
            suffix: Vec::new(),
            hi: 0,
            back: Moments::default(),
        }
    }
}

impl Acc for Stddev<'_> {
    type Out = f64;
    fn add(&mut self, j: usize) {
        if self.valid.at(j) {
            self.back.push(self.v[j]);
        }
        self.hi = j + 1;
    }
    fn remove(&mut self, j: usize) {
        if self.suffix.is_empty() {
            // the older part is empty: the window is j..hi, all in the newer part; turn it
            // into suffix moments, newest position first, so `j`'s (the whole) ends on top
            let mut acc = Moments::default();
            for p in (j..self.hi).rev() {
                if self.valid.at(p) {
                    acc.push(self.v[p]);
                }
                self.suffix.push(acc);
            }
            self.back = Moments::default();
        }
        self.suffix.pop();
    }
    fn emit(&mut self, _: usize, _: usize) -> (f64, bool) {
        let m = match self.suffix.last() {
            Some(f) => f.merge(&self.back),
            None => self.back,
        };
        let n = m.n + m.non_finite;
        if n < 2 {
            (0.0, false)
        } else if m.non_finite > 0 {
            (f64::NAN, true)
        } else {
            ((m.m2.max(0.0) / (m.n - 1) as f64).sqrt(), true)
        }
    }
    fn clear(&mut self) {
        self.suffix.clear();
        self.back = Moments::default();
        self.hi = 0;
    }
}

// ---- min, max --------------------------------------------------------------------------

/// A monotonic deque of positions: the front is the window's extreme (on equal values the
/// later row).
struct Extreme<'a, T, C> {
    v: &'a [T],
    valid: Valid<'a>,
    fperm: &'a [u32],
    max: bool,
    dq: VecDeque<usize>,
    better: C,
}

impl<T: Copy, C: Fn(&T, &T) -> std::cmp::Ordering> Acc for Extreme<'_, T, C> {
    type Out = u32;
    fn add(&mut self, j: usize) {
        if !self.valid.at(j) {
            return;
        }
        let x = self.v[j];
        while let Some(&b) = self.dq.back() {
            let ord = (self.better)(&self.v[b], &x);
            let dominated = if self.max { ord.is_le() } else { ord.is_ge() };
            if !dominated {
                break;
            }
            self.dq.pop_back();
        }
        self.dq.push_back(j);
    }
    fn remove(&mut self, j: usize) {
        if self.dq.front() == Some(&j) {
            self.dq.pop_front();
        }
    }
    fn emit(&mut self, _: usize, _: usize) -> (u32, bool) {
        match self.dq.front() {
            Some(&j) => (self.fperm[j], true),
            None => (0, false),
        }
    }
    fn clear(&mut self) {
        self.dq.clear();
    }
}

// ---- count_distinct, approx_count_distinct ---------------------------------------------

/// Hashes map keys with the key hashes of [`crate::keys`] (no second hash function).
#[derive(Clone, Copy, Default)]
struct KeyHash;

struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = hash_fixed(self.0.rotate_left(23) ^ hash_bytes(bytes));
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = hash_fixed(self.0.rotate_left(23) ^ x);
    }
    fn write_i64(&mut self, x: i64) {
        self.write_u64(x as u64)
    }
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64)
    }
}

impl BuildHasher for KeyHash {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0x243f_6a88_85a3_08d3)
    }
}

struct Distinct<'a, K, G> {
    get: G,
    valid: Valid<'a>,
    map: HashMap<K, u32, KeyHash>,
}

impl<K: std::hash::Hash + Eq, G: Fn(usize) -> K> Acc for Distinct<'_, K, G> {
    type Out = i64;
    fn add(&mut self, j: usize) {
        if self.valid.at(j) {
            *self.map.entry((self.get)(j)).or_insert(0) += 1;
        }
    }
    fn remove(&mut self, j: usize) {
        if !self.valid.at(j) {
            return;
        }
        let k = (self.get)(j);
        if let Some(c) = self.map.get_mut(&k) {
            *c -= 1;
            if *c == 0 {
                self.map.remove(&k);
            }
        }
    }
    fn emit(&mut self, _: usize, _: usize) -> (i64, bool) {
        (self.map.len() as i64, true)
    }
    fn clear(&mut self) {
        self.map.clear();
    }
}

struct Approx<'a> {
    h: &'a [u64],
    valid: Valid<'a>,
    hll: SlidingHll,
}

impl Acc for Approx<'_> {
    type Out = i64;
    fn add(&mut self, j: usize) {
        if self.valid.at(j) {
            self.hll.add(self.h[j]);
        }
    }
    fn remove(&mut self, j: usize) {
        if self.valid.at(j) {
            self.hll.remove(self.h[j]);
        }
    }
    fn emit(&mut self, _: usize, _: usize) -> (i64, bool) {
        (self.hll.estimate().round() as i64, true)
    }
    fn clear(&mut self) {
        self.hll.clear();
    }
}
