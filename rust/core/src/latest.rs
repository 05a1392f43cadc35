//! `latest_per_key`: the winning row per distinct entity key within a time window, the
//! step materialization runs before writing the online store.
//!
//! One pass over the rows with an open-addressing hash table keyed on the entity key. Each
//! slot keeps the key, the current winner's event timestamp and its row index; a candidate
//! replaces the winner when it ranks higher by the rule in [`crate::ord`] (event ts, then
//! created ts with null smallest, then row index). Rows are visited in ascending order, so
//! on a full tie the later row wins.
//!
//! Keys are compared as they serialize in [`crate::keys`]: a timestamp key by its whole
//! second, int32 and int64 by value, strings and bytes by their bytes. A single int32,
//! int64 or timestamp key uses an `i64`-keyed table; a single string or binary key hashes its
//! bytes in place; several key columns are first packed into one byte string per row.

use arrow_array::{Array, ArrayRef, UInt32Array};
use arrow_buffer::ScalarBuffer;
use hashbrown::HashTable;

use crate::keys::{hash_bytes, hash_fixed, ByteCol, KeyColumn, KeyValues};
use crate::ord::{TieBreak, TsColumn};
use crate::{mem, Error, Result};

/// What an allocation failure names.
const OP: &str = "the latest-per-key reduction (latest_per_key)";

/// Indices (ascending) of the winning row per distinct key among the rows whose event
/// timestamp lies in `[start, end]` (inclusive; `None` is unbounded).
///
/// * `keys`: one or more key columns (int32, int64, string/large/view, binary/large/view,
///   timestamp of any unit), all of the same length.
/// * `event_ts`: Timestamp(µs, any tz) or Int64 microseconds.
/// * `created`: same types, nullable; null ranks below any value.
///
/// Rows with a null in any key column or a null event timestamp are skipped.
pub fn latest_per_key(
    keys: &[ArrayRef],
    event_ts: &ArrayRef,
    created: Option<&ArrayRef>,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<UInt32Array> {
    if keys.is_empty() {
        return Err(Error::Invalid(
            "latest_per_key needs at least one key column".to_string(),
        ));
    }
    let rows = event_ts.len();
    if rows > u32::MAX as usize {
        return Err(Error::Invalid(format!(
            "{rows} rows is more than latest_per_key can index (u32)"
        )));
    }
    for (i, k) in keys.iter().enumerate() {
        if k.len() != rows {
            return Err(Error::Mismatch(format!(
                "key column {i} has {} rows but event_ts has {rows}",
                k.len()
            )));
        }
    }
    if let Some(c) = created {
        if c.len() != rows {
            return Err(Error::Mismatch(format!(
                "created_ts has {} rows but event_ts has {rows}",
                c.len()
            )));
        }
    }
    let ts = TsColumn::new(event_ts.as_ref(), "event_ts")?;
    let created = created
        .map(|c| TsColumn::new(c.as_ref(), "created_ts"))
        .transpose()?;
    let cols = keys
        .iter()
        .enumerate()
        .map(|(i, k)| KeyColumn::new(k, &format!("key {i}")))
        .collect::<Result<Vec<_>>>()?;

    // The peak working set (candidate rows twice while they are scattered, the table, the
    // winners as they grow: up to ~90 bytes per row, measured under RLIMIT_AS), checked
    // before anything is built.
    mem::check(OP, mem::bytes(rows, 96, 0))?;

    let window = Window {
        ts,
        tie: TieBreak::new(created),
        start: start.unwrap_or(i64::MIN),
        end: end.unwrap_or(i64::MAX),
    };

    let mut winners = if cols.len() == 1 {
        let col = cols[0];
        match col.values {
            KeyValues::String(b) | KeyValues::Bytes(b) => {
                latest_bytes(&window, rows, OneBytes(col, b))?
            }
            _ => latest_fixed(&window, rows, |i| {
                if col.is_null(i) {
                    None
                } else {
                    col.values.fixed(i)
                }
            })?,
        }
    } else {
        latest_bytes(
            &window,
            rows,
            Packed {
                cols,
                scratch: Vec::new(),
            },
        )?
    };
    ascending(&mut winners, rows);
    Ok(UInt32Array::new(ScalarBuffer::from(winners), None))
}

/// Sorts distinct row indices below `rows`: a comparison sort when there are few, else a
/// bitmap over the rows read back in order (linear, and far faster for millions of winners).
fn ascending(winners: &mut Vec<u32>, rows: usize) {
    if winners.len() < 4096 || winners.len() < rows / 256 {
        winners.sort_unstable();
        return;
    }
    let mut bits = vec![0u64; rows.div_ceil(64)];
    for &r in winners.iter() {
        bits[r as usize / 64] |= 1 << (r % 64);
    }
    winners.clear();
    for (w, &word) in bits.iter().enumerate() {
        let mut word = word;
        while word != 0 {
            winners.push((w * 64) as u32 + word.trailing_zeros());
            word &= word - 1;
        }
    }
}

/// The time inputs and bounds shared by both table flavours.
struct Window<'a> {
    ts: TsColumn<'a>,
    tie: TieBreak<'a>,
    start: i64,
    end: i64,
}

impl Window<'_> {
    /// The event timestamp of row `i` if the row is eligible (non-null and in the window).
    #[inline(always)]
    fn eligible(&self, i: usize) -> Option<i64> {
        if self.ts.is_null(i) {
            return None;
        }
        let t = self.ts.values[i];
        (t >= self.start && t <= self.end).then_some(t)
    }

    /// Does row `cand` (event ts `cand_ts`) beat the current winner `cur` (event ts `cur_ts`)?
    #[inline(always)]
    fn beats(&self, cand: usize, cand_ts: i64, cur: usize, cur_ts: i64) -> bool {
        self.tie.beats(cand_ts, cand, cur_ts, cur)
    }
}

/// Distinct keys after which the single table gives way to partitions (its slots no longer
/// fit in the L2 cache).
const SPILL_AT: usize = 1 << 18;
/// Entries per partition aimed at once partitioned.
const PART_TARGET: usize = 1 << 13;

#[derive(Clone, Copy, Default)]
struct FixedSlot {
    key: i64,
    ts: i64,
    row: u32,
}

/// Offers `e` to the table: inserted if its key is new, else kept if it beats the winner.
#[inline(always)]
fn offer_fixed(w: &Window<'_>, table: &mut HashTable<FixedSlot>, e: FixedSlot) {
    let h = hash_fixed(e.key as u64);
    match table.entry(h, |s| s.key == e.key, |s| hash_fixed(s.key as u64)) {
        hashbrown::hash_table::Entry::Occupied(mut o) => {
            let slot = o.get_mut();
            if w.beats(e.row as usize, e.ts, slot.row as usize, slot.ts) {
                *slot = e;
            }
        }
        hashbrown::hash_table::Entry::Vacant(v) => {
            v.insert(e);
        }
    }
}

/// Single fixed-width key. One table while the number of distinct keys is small; past
/// [`SPILL_AT`], the remaining rows and the winners so far are radix-partitioned by hash and
/// each partition is reduced with a cache-sized table. The winner rule is a total order, so
/// the order in which candidates are offered does not matter.
fn latest_fixed(
    w: &Window<'_>,
    rows: usize,
    key: impl Fn(usize) -> Option<i64>,
) -> Result<Vec<u32>> {
    let mut table: HashTable<FixedSlot> = HashTable::with_capacity(rows.min(1 << 12));
    for i in 0..rows {
        if table.len() >= SPILL_AT && rows - i >= SPILL_AT {
            return latest_fixed_partitioned(w, rows, i, table, key);
        }
        let Some(t) = w.eligible(i) else { continue };
        let Some(k) = key(i) else { continue };
        offer_fixed(
            w,
            &mut table,
            FixedSlot {
                key: k,
                ts: t,
                row: i as u32,
            },
        );
    }
    Ok(table.iter().map(|s| s.row).collect())
}

fn latest_fixed_partitioned(
    w: &Window<'_>,
    rows: usize,
    from: usize,
    table: HashTable<FixedSlot>,
    key: impl Fn(usize) -> Option<i64>,
) -> Result<Vec<u32>> {
    let estimate = table.len() + (rows - from);
    let bits = (estimate / PART_TARGET).max(2).ilog2().min(12);
    let mask = (1usize << bits) - 1;
    // partition on hash bits the per-partition table does not use (low bits pick the
    // bucket, the top 7 the control byte)
    let part = |k: i64| ((hash_fixed(k as u64) >> 40) as usize) & mask;
    let candidate = |i: usize| -> Option<FixedSlot> {
        let ts = w.eligible(i)?;
        let key = key(i)?;
        Some(FixedSlot {
            key,
            ts,
            row: i as u32,
        })
    };

    let mut counts = vec![0usize; mask + 1];
    for s in table.iter() {
        counts[part(s.key)] += 1;
    }
    for i in from..rows {
        if let Some(e) = candidate(i) {
            counts[part(e.key)] += 1;
        }
    }
    let mut pos = Vec::with_capacity(mask + 2);
    let mut acc = 0;
    for c in &counts {
        pos.push(acc);
        acc += c;
    }
    pos.push(acc);
    let bounds = pos.clone();
    let mut entries = mem::filled(acc, FixedSlot::default(), OP)?;
    for s in table.iter() {
        let p = part(s.key);
        entries[pos[p]] = *s;
        pos[p] += 1;
    }
    drop(table);
    for i in from..rows {
        if let Some(e) = candidate(i) {
            let p = part(e.key);
            entries[pos[p]] = e;
            pos[p] += 1;
        }
    }

    let mut winners = Vec::new();
    let mut table: HashTable<FixedSlot> = HashTable::with_capacity(2 * PART_TARGET);
    for p in 0..=mask {
        table.clear();
        for e in &entries[bounds[p]..bounds[p + 1]] {
            offer_fixed(w, &mut table, *e);
        }
        winners.extend(table.iter().map(|s| s.row));
    }
    Ok(winners)
}

/// Where a byte-string key comes from.
trait BytesKey {
    /// The key bytes of row `i`, `None` when any part of the key is null.
    fn key(&mut self, i: usize) -> Option<&[u8]>;
    /// Do the (non-null) keys of rows `a` and `b` equal?
    fn same(&self, a: usize, b: usize) -> bool;
}

/// A single string or binary column: the bytes in place.
struct OneBytes<'a>(KeyColumn<'a>, ByteCol<'a>);

impl BytesKey for OneBytes<'_> {
    #[inline(always)]
    fn key(&mut self, i: usize) -> Option<&[u8]> {
        (!self.0.is_null(i)).then(|| self.1.get(i))
    }

    // Kept out of line: it runs only on a 64-bit hash match, and a small eq closure lets
    // hashbrown's probe loop inline into the partitioned reduction, as before the kernel
    // split (with `get` always inlined, the closure grew and became an indirect call per
    // probe; string keys, 4M rows / 1M keys: ~5-10% more CPU time, measured under load).
    #[inline(never)]
    fn same(&self, a: usize, b: usize) -> bool {
        self.1.get(a) == self.1.get(b)
    }
}

/// Several columns packed into a scratch buffer. Within a column every row has the same
/// type, so fixed-width values are written raw and strings/bytes with a u32 length prefix:
/// the packing is injective.
struct Packed<'a> {
    cols: Vec<KeyColumn<'a>>,
    scratch: Vec<u8>,
}

impl BytesKey for Packed<'_> {
    #[inline(always)]
    fn key(&mut self, i: usize) -> Option<&[u8]> {
        self.scratch.clear();
        for c in &self.cols {
            if c.is_null(i) {
                return None;
            }
            match c.values {
                KeyValues::Int32(v) => self.scratch.extend_from_slice(&v[i].to_le_bytes()),
                KeyValues::Int64(_) | KeyValues::Timestamp(..) => {
                    let v = c.values.fixed(i).expect("fixed-width key");
                    self.scratch.extend_from_slice(&v.to_le_bytes());
                }
                KeyValues::String(b) | KeyValues::Bytes(b) => {
                    let s = b.get(i);
                    self.scratch
                        .extend_from_slice(&(s.len() as u32).to_le_bytes());
                    self.scratch.extend_from_slice(s);
                }
            }
        }
        Some(&self.scratch)
    }

    #[inline(always)]
    fn same(&self, a: usize, b: usize) -> bool {
        self.cols.iter().all(|c| match c.values {
            KeyValues::String(v) | KeyValues::Bytes(v) => v.get(a) == v.get(b),
            fixed => fixed.fixed(a) == fixed.fixed(b),
        })
    }
}

#[derive(Clone, Copy)]
struct BytesSlot {
    hash: u64,
    /// The key's bytes in the arena.
    off: usize,
    len: u32,
    row: u32,
    ts: i64,
}

/// Byte-string keys: each distinct key is copied once into an arena, so comparisons touch
/// only the table and the (compact) arena, never the scattered input rows.
fn latest_bytes(w: &Window<'_>, rows: usize, mut src: impl BytesKey) -> Result<Vec<u32>> {
    let mut table: HashTable<BytesSlot> = HashTable::with_capacity(rows.min(1 << 12));
    let mut arena: Vec<u8> = Vec::new();
    for i in 0..rows {
        if table.len() >= SPILL_AT && rows - i >= SPILL_AT {
            let so_far: Vec<HashedRow> = table
                .iter()
                .map(|s| HashedRow {
                    hash: s.hash,
                    ts: s.ts,
                    row: s.row,
                })
                .collect();
            drop(table);
            drop(arena);
            return latest_bytes_partitioned(w, rows, i, so_far, src);
        }
        let Some(t) = w.eligible(i) else { continue };
        let Some(k) = src.key(i) else { continue };
        let h = hash_bytes(k);
        let eq = |s: &BytesSlot| s.hash == h && &arena[s.off..s.off + s.len as usize] == k;
        match table.find_mut(h, eq) {
            Some(slot) => {
                if w.beats(i, t, slot.row as usize, slot.ts) {
                    slot.ts = t;
                    slot.row = i as u32;
                }
            }
            None => {
                let off = arena.len();
                arena.extend_from_slice(k);
                table.insert_unique(
                    h,
                    BytesSlot {
                        hash: h,
                        off,
                        len: k.len() as u32,
                        row: i as u32,
                        ts: t,
                    },
                    |s| s.hash,
                );
            }
        }
    }
    Ok(table.iter().map(|s| s.row).collect())
}

/// A candidate row for a byte-string key, by the hash of its key.
#[derive(Clone, Copy, Default)]
struct HashedRow {
    hash: u64,
    ts: i64,
    row: u32,
}

#[derive(Clone, Copy)]
struct HashedSlot {
    hash: u64,
    ts: i64,
    row: u32,
    /// A row holding the slot's key (compared through the input on a hash match).
    key_row: u32,
}

/// The partitioned reduction for byte-string keys: rows are scattered by key hash (the
/// winners so far first), then each partition is reduced with a small table. Keys are
/// compared through the input only when their 64-bit hashes match.
fn latest_bytes_partitioned(
    w: &Window<'_>,
    rows: usize,
    from: usize,
    so_far: Vec<HashedRow>,
    mut src: impl BytesKey,
) -> Result<Vec<u32>> {
    let estimate = so_far.len() + (rows - from);
    let bits = (estimate / PART_TARGET).max(2).ilog2().min(12);
    let mask = (1usize << bits) - 1;
    let part = |h: u64| ((h >> 40) as usize) & mask;

    // hash every remaining eligible row once
    let mut entries_in = so_far;
    mem::reserve(&mut entries_in, rows - from, OP)?;
    for i in from..rows {
        let Some(ts) = w.eligible(i) else { continue };
        let Some(k) = src.key(i) else { continue };
        entries_in.push(HashedRow {
            hash: hash_bytes(k),
            ts,
            row: i as u32,
        });
    }
    let mut counts = vec![0usize; mask + 1];
    for e in &entries_in {
        counts[part(e.hash)] += 1;
    }
    let mut pos = Vec::with_capacity(mask + 2);
    let mut acc = 0;
    for c in &counts {
        pos.push(acc);
        acc += c;
    }
    pos.push(acc);
    let bounds = pos.clone();
    let mut entries = mem::filled(acc, HashedRow::default(), OP)?;
    for e in &entries_in {
        let p = part(e.hash);
        entries[pos[p]] = *e;
        pos[p] += 1;
    }
    drop(entries_in);

    let mut winners = Vec::new();
    let mut table: HashTable<HashedSlot> = HashTable::with_capacity(2 * PART_TARGET);
    for p in 0..=mask {
        table.clear();
        for e in &entries[bounds[p]..bounds[p + 1]] {
            let eq =
                |s: &HashedSlot| s.hash == e.hash && src.same(s.key_row as usize, e.row as usize);
            match table.entry(e.hash, eq, |s| s.hash) {
                hashbrown::hash_table::Entry::Occupied(mut o) => {
                    let slot = o.get_mut();
                    if w.beats(e.row as usize, e.ts, slot.row as usize, slot.ts) {
                        slot.ts = e.ts;
                        slot.row = e.row;
                    }
                }
                hashbrown::hash_table::Entry::Vacant(v) => {
                    v.insert(HashedSlot {
                        hash: e.hash,
                        ts: e.ts,
                        row: e.row,
                        key_row: e.row,
                    });
                }
            }
        }
        winners.extend(table.iter().map(|s| s.row));
    }
    Ok(winners)
}

#[cfg(test)]
#[path = "latest_tests.rs"]
mod tests;
