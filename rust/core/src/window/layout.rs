//! Entity and feature rows laid out by group: entity rows sorted by timestamp, feature rows
//! by the tie-break order, each group a contiguous range.

use arrow_array::{Array, ArrayRef};
use rayon::prelude::*;

use super::OP;
use crate::asof::groups::{group_int, group_rows, int_values, Grouping, Groups};
use crate::asof::{check_sides, key_cols, row_validity, NONE};
use crate::error::Result;
use crate::mem;
use crate::ord::TsColumn;

/// Rows per parallel task when looking feature rows up.
const CHUNK: usize = if cfg!(test) { 1 << 6 } else { 1 << 15 };

pub(crate) struct Layout {
    pub(crate) n_ent: usize,
    /// Entity rows with a valid key and timestamp, by (group, timestamp).
    pub(crate) eperm: Vec<u32>,
    /// Their timestamps, in `eperm` order.
    pub(crate) ets: Vec<i64>,
    /// Group `g`'s entity slots are `eoff[g]..eoff[g + 1]`.
    pub(crate) eoff: Vec<usize>,
    /// Feature rows of an entity row's key (valid key and timestamp), by (group, tie-break).
    pub(crate) fperm: Vec<u32>,
    /// Their event timestamps, in `fperm` order.
    pub(crate) fts: Vec<i64>,
    pub(crate) foff: Vec<usize>,
}

impl Layout {
    pub(crate) fn build(
        entity_keys: &[ArrayRef],
        entity_ts: &dyn Array,
        feature_keys: &[ArrayRef],
        feature_ts: &dyn Array,
        feature_created: Option<&dyn Array>,
    ) -> Result<Layout> {
        let (n_ent, n_feat) = check_sides(
            entity_keys,
            entity_ts,
            feature_keys,
            feature_ts,
            feature_created,
        )?;
        let ets_all = TsColumn::new(entity_ts, "entity_ts")?.values;
        let fts_all = TsColumn::new(feature_ts, "feature_ts")?.values;
        let created = match feature_created {
            Some(c) => Some(TsColumn::new(c, "feature_created")?),
            None => None,
        };
        let ecols = key_cols("entity", entity_keys)?;
        let fcols = key_cols("feature", feature_keys)?;
        let evalid = row_validity(entity_keys, entity_ts);
        let fvalid = row_validity(feature_keys, feature_ts);

        let single_int = match (ecols.first(), fcols.first()) {
            (Some(e), Some(f)) if ecols.len() == 1 => int_values(e).zip(int_values(f)),
            _ => None,
        };
        let (egid, fgid, n_groups) = if ecols.is_empty() {
            // no keys: one group holding every valid row
            let gid = |valid: Option<&arrow_buffer::NullBuffer>, n: usize| -> Result<Vec<u32>> {
                let mut v = mem::filled(n, 0u32, OP)?;
                if let Some(nb) = valid {
                    v.iter_mut()
                        .enumerate()
                        .for_each(|(i, g)| *g = if nb.is_valid(i) { 0 } else { NONE });
                }
                Ok(v)
            };
            (
                gid(evalid.as_ref(), n_ent)?,
                gid(fvalid.as_ref(), n_feat)?,
                1,
            )
        } else {
            let groups = match single_int {
                Some((ek, fk)) => group_int(ek, fk, evalid.as_ref())?,
                None => group_rows(&ecols, &fcols, n_ent, evalid.as_ref())?,
            };
            match &groups {
                Grouping::Dense(g) => gids(g, n_feat, fvalid.as_ref())?,
                Grouping::IntHash(g) => gids(g, n_feat, fvalid.as_ref())?,
                Grouping::Rows(g) => gids(g, n_feat, fvalid.as_ref())?,
            }
        };

        let (mut eperm, eoff) = counting_sort(&egid, n_groups)?;
        drop(egid);
        let (mut fperm, foff) = counting_sort(&fgid, n_groups)?;
        drop(fgid);

        // Within a group: entity rows by timestamp, feature rows by (ts, created, row). The
        // counting sort kept rows in index order, so a stable sort by ts is (ts, row).
        for_each_group(&mut eperm, &eoff, |rows| {
            rows.sort_by_key(|&r| ets_all[r as usize]);
        });
        match created {
            None => for_each_group(&mut fperm, &foff, |rows| {
                rows.sort_by_key(|&r| fts_all[r as usize]);
            }),
            Some(c) => for_each_group(&mut fperm, &foff, |rows| {
                rows.sort_by_key(|&r| (fts_all[r as usize], c.get(r as usize)));
            }),
        }
        let ets = gather(&eperm, ets_all)?;
        let fts = gather(&fperm, fts_all)?;
        Ok(Layout {
            n_ent,
            eperm,
            ets,
            eoff,
            fperm,
            fts,
            foff,
        })
    }

    pub(crate) fn n_groups(&self) -> usize {
        self.eoff.len() - 1
    }
}

fn gids<G: Groups>(
    g: &G,
    n_feat: usize,
    fvalid: Option<&arrow_buffer::NullBuffer>,
) -> Result<(Vec<u32>, Vec<u32>, usize)> {
    let mut f = mem::filled(n_feat, NONE, OP)?;
    f.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, out)| g.feature_gids(c * CHUNK, fvalid, out));
    let mut e = mem::with_capacity(g.entity_gids().len(), OP)?;
    e.extend_from_slice(g.entity_gids());
    Ok((e, f, g.n_groups()))
}

/// Row indices grouped by id (ids `NONE` left out), in index order within a group, and
/// the `n + 1` group offsets.
fn counting_sort(ids: &[u32], n: usize) -> Result<(Vec<u32>, Vec<usize>)> {
    let mut off = mem::filled(n + 1, 0usize, OP)?;
    for &g in ids {
        if g != NONE {
            off[g as usize + 1] += 1;
        }
    }
    for i in 0..n {
        off[i + 1] += off[i];
    }
    let mut perm = mem::filled(off[n], 0u32, OP)?;
    let mut pos = off.clone();
    for (i, &g) in ids.iter().enumerate() {
        if g != NONE {
            perm[pos[g as usize]] = i as u32;
            pos[g as usize] += 1;
        }
    }
    Ok((perm, off))
}

/// Runs `f` on each group's slice of `perm`, groups in parallel (in runs of groups of
/// similar total size).
pub(crate) fn for_each_group<T: Send>(perm: &mut [T], off: &[usize], f: impl Fn(&mut [T]) + Sync) {
    let mut parts: Vec<(&mut [T], usize, usize)> = Vec::new();
    let cuts = cuts(off);
    let mut rest = perm;
    let mut base = 0usize;
    for w in cuts.windows(2) {
        let (g0, g1) = (w[0], w[1]);
        let len = off[g1] - off[g0];
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
        parts.push((head, g0, g1));
        rest = tail;
        base += len;
    }
    let _ = base;
    parts.into_par_iter().for_each(|(slice, g0, g1)| {
        let start = off[g0];
        for g in g0..g1 {
            f(&mut slice[off[g] - start..off[g + 1] - start]);
        }
    });
}

/// Group boundaries cutting `off`'s groups into parallel tasks of about `CHUNK` rows.
pub(crate) fn cuts(off: &[usize]) -> Vec<usize> {
    let n = off.len() - 1;
    let mut cuts = vec![0usize];
    let mut last = 0usize;
    for g in 1..=n {
        if off[g] - off[last] >= CHUNK || g == n {
            cuts.push(g);
            last = g;
        }
    }
    if n == 0 {
        cuts.push(0);
    }
    cuts
}

fn gather(perm: &[u32], src: &[i64]) -> Result<Vec<i64>> {
    let mut out = mem::filled(perm.len(), 0i64, OP)?;
    out.par_chunks_mut(CHUNK)
        .zip(perm.par_chunks(CHUNK))
        .for_each(|(o, p)| {
            for (o, &r) in o.iter_mut().zip(p) {
                *o = src[r as usize];
            }
        });
    Ok(out)
}
