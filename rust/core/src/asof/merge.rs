//! The join proper: entity rows laid out in slots by (group, ts), bucket by bucket; the
//! feature rows streamed into the buckets; a prefix maximum per group.

use arrow_buffer::NullBuffer;
use rayon::prelude::*;

use super::groups::Groups;
use super::{CHUNK, NONE, OP};
use crate::error::Result;
use crate::mem;

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

pub(super) fn join_core<G: Groups>(
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
