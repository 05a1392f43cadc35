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

use std::cmp::Ordering;

use arrow_array::{Array, ArrayRef, UInt32Array};
use arrow_buffer::ScalarBuffer;
use hashbrown::HashTable;

use crate::keys::{ByteCol, KeyColumn, KeyValues};
use crate::ord::{cmp_rows, TsColumn};
use crate::{Error, Result};

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
    let ts = TsColumn::new(event_ts, "event_ts")?;
    let created = created
        .map(|c| TsColumn::new(c, "created_ts"))
        .transpose()?;
    let cols = keys
        .iter()
        .enumerate()
        .map(|(i, k)| KeyColumn::new(k, &format!("key {i}")))
        .collect::<Result<Vec<_>>>()?;

    let window = Window {
        ts,
        created,
        start: start.unwrap_or(i64::MIN),
        end: end.unwrap_or(i64::MAX),
    };

    let mut winners = if cols.len() == 1 {
        let col = cols[0];
        match col.values {
            KeyValues::String(b) | KeyValues::Bytes(b) => {
                latest_bytes(&window, rows, |i| (!col.is_null(i)).then(|| b.get(i)))
            }
            _ => latest_fixed(&window, rows, |i| {
                if col.is_null(i) {
                    None
                } else {
                    col.values.fixed(i)
                }
            }),
        }
    } else {
        let packed = pack_keys(&cols, rows);
        latest_bytes(&window, rows, |i| packed.get(i))
    };
    winners.sort_unstable();
    Ok(UInt32Array::new(ScalarBuffer::from(winners), None))
}

/// The time inputs and bounds shared by both table flavours.
struct Window<'a> {
    ts: TsColumn<'a>,
    created: Option<TsColumn<'a>>,
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
    /// `cand > cur` always holds here because rows are visited in order.
    #[inline(always)]
    fn beats(&self, cand: usize, cand_ts: i64, cur: usize, cur_ts: i64) -> bool {
        match cand_ts.cmp(&cur_ts) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => {
                let (cc, uc) = match &self.created {
                    Some(c) => (c.get(cand), c.get(cur)),
                    None => (None, None),
                };
                cmp_rows(cand_ts, cc, cand, cur_ts, uc, cur) == Ordering::Greater
            }
        }
    }
}

/// A 64-bit mix good in both the low bits (bucket) and the high bits (control byte).
#[inline(always)]
fn mix64(k: u64) -> u64 {
    let m = ((k ^ 0x243F_6A88_85A3_08D3) as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15u128);
    (m as u64) ^ ((m >> 64) as u64)
}

#[derive(Clone, Copy)]
struct FixedSlot {
    key: i64,
    ts: i64,
    row: u32,
}

fn latest_fixed(w: &Window<'_>, rows: usize, key: impl Fn(usize) -> Option<i64>) -> Vec<u32> {
    let mut table: HashTable<FixedSlot> = HashTable::with_capacity(rows.min(1 << 12));
    for i in 0..rows {
        let Some(t) = w.eligible(i) else { continue };
        let Some(k) = key(i) else { continue };
        let h = mix64(k as u64);
        match table.find_mut(h, |s| s.key == k) {
            Some(slot) => {
                if w.beats(i, t, slot.row as usize, slot.ts) {
                    slot.ts = t;
                    slot.row = i as u32;
                }
            }
            None => {
                table.insert_unique(
                    h,
                    FixedSlot {
                        key: k,
                        ts: t,
                        row: i as u32,
                    },
                    |s| mix64(s.key as u64),
                );
            }
        }
    }
    table.iter().map(|s| s.row).collect()
}

#[derive(Clone, Copy)]
struct BytesSlot {
    hash: u64,
    ts: i64,
    /// The row whose key bytes this slot holds (the first row seen with the key).
    key_row: u32,
    row: u32,
}

fn latest_bytes<'a>(
    w: &Window<'_>,
    rows: usize,
    key: impl Fn(usize) -> Option<&'a [u8]>,
) -> Vec<u32> {
    let mut table: HashTable<BytesSlot> = HashTable::with_capacity(rows.min(1 << 12));
    for i in 0..rows {
        let Some(t) = w.eligible(i) else { continue };
        let Some(k) = key(i) else { continue };
        let h = xxhash_rust::xxh3::xxh3_64(k);
        let found = table.find_mut(h, |s| {
            s.hash == h && key(s.key_row as usize).is_some_and(|sk| sk == k)
        });
        match found {
            Some(slot) => {
                if w.beats(i, t, slot.row as usize, slot.ts) {
                    slot.ts = t;
                    slot.row = i as u32;
                }
            }
            None => {
                table.insert_unique(
                    h,
                    BytesSlot {
                        hash: h,
                        ts: t,
                        key_row: i as u32,
                        row: i as u32,
                    },
                    |s| s.hash,
                );
            }
        }
    }
    table.iter().map(|s| s.row).collect()
}

/// Several key columns packed into one byte string per row (`None` where any key is null).
/// Within a column every row has the same type, so fixed-width values are written raw and
/// strings/bytes with a u32 length prefix: the packing is injective.
struct Packed {
    data: Vec<u8>,
    /// `offsets[i]..offsets[i + 1]` is row i.
    offsets: Vec<usize>,
    valid: Vec<bool>,
}

impl Packed {
    #[inline(always)]
    fn get(&self, i: usize) -> Option<&[u8]> {
        self.valid[i].then(|| &self.data[self.offsets[i]..self.offsets[i + 1]])
    }
}

fn pack_keys(cols: &[KeyColumn<'_>], rows: usize) -> Packed {
    let mut size = 0usize;
    for c in cols {
        size += match c.values {
            KeyValues::Int32(_) => 4 * rows,
            KeyValues::Int64(_) | KeyValues::Timestamp(..) => 8 * rows,
            KeyValues::String(b) | KeyValues::Bytes(b) => 4 * rows + b.total_len(),
        };
    }
    let mut data = Vec::with_capacity(size);
    let mut offsets = Vec::with_capacity(rows + 1);
    let mut valid = Vec::with_capacity(rows);
    offsets.push(0);
    for i in 0..rows {
        let ok = cols.iter().all(|c| !c.is_null(i));
        if ok {
            for c in cols {
                match c.values {
                    KeyValues::Int32(v) => data.extend_from_slice(&v[i].to_le_bytes()),
                    KeyValues::Int64(_) | KeyValues::Timestamp(..) => {
                        let v = c.values.fixed(i).expect("fixed-width key");
                        data.extend_from_slice(&v.to_le_bytes());
                    }
                    KeyValues::String(b) | KeyValues::Bytes(b) => write_bytes(&mut data, b, i),
                }
            }
        }
        valid.push(ok);
        offsets.push(data.len());
    }
    Packed {
        data,
        offsets,
        valid,
    }
}

#[inline(always)]
fn write_bytes(out: &mut Vec<u8>, b: ByteCol<'_>, i: usize) {
    let s = b.get(i);
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use arrow_array::{
        Int32Array, Int64Array, StringArray, TimestampMicrosecondArray, TimestampSecondArray,
    };

    use super::*;

    fn i64s(v: Vec<Option<i64>>) -> ArrayRef {
        Arc::new(Int64Array::from(v))
    }

    fn run(
        keys: &[ArrayRef],
        ts: Vec<Option<i64>>,
        created: Option<Vec<Option<i64>>>,
        start: Option<i64>,
        end: Option<i64>,
    ) -> Vec<u32> {
        let ts = i64s(ts);
        let created = created.map(i64s);
        latest_per_key(keys, &ts, created.as_ref(), start, end)
            .unwrap()
            .values()
            .to_vec()
    }

    /// The obvious O(n^2)-free reference: group rows, take the max Rank.
    fn reference(
        keys: &[Option<i64>],
        ts: &[Option<i64>],
        created: &[Option<i64>],
        start: i64,
        end: i64,
    ) -> Vec<u32> {
        use crate::ord::Rank;
        let mut best: std::collections::HashMap<i64, Rank> = Default::default();
        for i in 0..keys.len() {
            let (Some(k), Some(t)) = (keys[i], ts[i]) else {
                continue;
            };
            if t < start || t > end {
                continue;
            }
            let r = Rank {
                ts: t,
                created: created[i],
                row: i,
            };
            let e = best.entry(k).or_insert(r);
            if r > *e {
                *e = r;
            }
        }
        let mut v: Vec<u32> = best.values().map(|r| r.row as u32).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn picks_latest_then_created_then_row() {
        let k = i64s(vec![
            Some(1),
            Some(1),
            Some(2),
            Some(2),
            Some(3),
            Some(3),
            Some(3),
        ]);
        let ts = vec![
            Some(10),
            Some(20),
            Some(5),
            Some(5),
            Some(7),
            Some(7),
            Some(7),
        ];
        let created = vec![None, None, Some(2), Some(1), Some(1), None, Some(1)];
        let out = run(&[k], ts, Some(created), None, None);
        // key 1: row 1 (later ts); key 2: row 2 (larger created); key 3: row 6 (tie -> last)
        assert_eq!(out, vec![1, 2, 6]);
    }

    #[test]
    fn null_created_is_smallest() {
        let k = i64s(vec![Some(1), Some(1)]);
        let out = run(
            std::slice::from_ref(&k),
            vec![Some(5), Some(5)],
            Some(vec![Some(i64::MIN), None]),
            None,
            None,
        );
        assert_eq!(out, vec![0]);
        let out = run(&[k], vec![Some(5), Some(5)], None, None, None);
        assert_eq!(out, vec![1]);
    }

    #[test]
    fn window_is_inclusive_and_nulls_skip() {
        let k = i64s(vec![Some(1), Some(1), Some(1), None, Some(2), Some(3)]);
        let ts = vec![Some(10), Some(20), Some(30), Some(20), None, Some(15)];
        assert_eq!(
            run(
                std::slice::from_ref(&k),
                ts.clone(),
                None,
                Some(10),
                Some(20)
            ),
            vec![1, 5]
        );
        assert_eq!(
            run(std::slice::from_ref(&k), ts.clone(), None, Some(21), None),
            vec![2]
        );
        assert_eq!(
            run(std::slice::from_ref(&k), ts.clone(), None, None, Some(9)),
            vec![]
        );
        assert_eq!(run(&[k], ts, None, None, None), vec![2, 5]);
    }

    #[test]
    fn string_int32_timestamp_and_multi_keys() {
        let s: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a"),
            Some("b"),
            Some("a"),
            None,
            Some(""),
        ]));
        let ts = vec![Some(1), Some(1), Some(2), Some(9), Some(0)];
        assert_eq!(
            run(std::slice::from_ref(&s), ts.clone(), None, None, None),
            vec![1, 2, 4]
        );

        let i: ArrayRef = Arc::new(Int32Array::from(vec![7, 7, 8, 8, 7]));
        assert_eq!(
            run(std::slice::from_ref(&i), ts.clone(), None, None, None),
            vec![1, 3]
        );

        // (s, i): ("a",7) rows 0; ("b",7) row 1; ("a",8) row 2; null row 3; ("",7) row 4
        assert_eq!(
            run(&[s.clone(), i.clone()], ts.clone(), None, None, None),
            vec![0, 1, 2, 4]
        );
        // ("a", 7) twice
        let i2: ArrayRef = Arc::new(Int32Array::from(vec![7, 7, 7, 8, 7]));
        assert_eq!(run(&[s, i2], ts.clone(), None, None, None), vec![1, 2, 4]);

        // timestamps compare by whole second, as they serialize
        let t: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![
            1_000_000, 1_500_000, 2_000_000, 2_000_001, 3_000_000,
        ]));
        assert_eq!(run(&[t], ts, None, None, None), vec![1, 3, 4]);
    }

    #[test]
    fn timestamp_inputs() {
        let k = i64s(vec![Some(1), Some(1)]);
        let ts: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![2, 1]).with_timezone("UTC"));
        let out = latest_per_key(std::slice::from_ref(&k), &ts, None, None, None).unwrap();
        assert_eq!(out.values().to_vec(), vec![0]);
        let bad: ArrayRef = Arc::new(TimestampSecondArray::from(vec![2, 1]));
        assert!(matches!(
            latest_per_key(std::slice::from_ref(&k), &bad, None, None, None),
            Err(Error::UnsupportedType { .. })
        ));
        let short = i64s(vec![Some(1)]);
        assert!(matches!(
            latest_per_key(&[k], &short, None, None, None),
            Err(Error::Mismatch(_))
        ));
    }

    #[test]
    fn matches_reference_on_random_data() {
        let mut x: u64 = 0x1234_5678;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..20 {
            let n = 1 + (rnd() % 2000) as usize;
            let nk = 1 + rnd() % 50;
            let opt = |v: u64, p: u64| if v % 100 < p { None } else { Some(v as i64) };
            let keys: Vec<Option<i64>> = (0..n)
                .map(|_| opt(rnd(), 3).map(|v| v % nk as i64))
                .collect();
            let ts: Vec<Option<i64>> = (0..n).map(|_| opt(rnd(), 3).map(|v| v % 20)).collect();
            let created: Vec<Option<i64>> = (0..n).map(|_| opt(rnd(), 30).map(|v| v % 3)).collect();
            let (start, end) = if round % 2 == 0 {
                (3, 15)
            } else {
                (i64::MIN, i64::MAX)
            };
            let want = reference(&keys, &ts, &created, start, end);
            let got = run(
                &[i64s(keys.clone())],
                ts.clone(),
                Some(created.clone()),
                Some(start),
                Some(end),
            );
            assert_eq!(got, want);
            // the string and multi-column paths agree with the int path
            let s: ArrayRef = Arc::new(StringArray::from(
                keys.iter()
                    .map(|k| k.map(|k| format!("k{k}")))
                    .collect::<Vec<_>>(),
            ));
            let got_s = run(
                std::slice::from_ref(&s),
                ts.clone(),
                Some(created.clone()),
                Some(start),
                Some(end),
            );
            assert_eq!(got_s, want);
            let got_m = run(
                &[s, i64s(keys.clone())],
                ts.clone(),
                Some(created.clone()),
                Some(start),
                Some(end),
            );
            assert_eq!(got_m, want);
        }
    }

    /// Throughput check; run with `cargo test --release -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_latest_per_key() {
        let n = 10_000_000usize;
        for distinct in [1_000u64, 100_000, 1_000_000, 10_000_000] {
            let mut x: u64 = 42;
            let keys: Vec<i64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % distinct) as i64
                })
                .collect();
            let ts: Vec<i64> = (0..n as i64).map(|i| (i * 7919) % 1_000_000).collect();
            let k: ArrayRef = Arc::new(Int64Array::from(keys.clone()));
            let t: ArrayRef = Arc::new(Int64Array::from(ts));
            let t0 = Instant::now();
            let out = latest_per_key(&[k], &t, None, None, None).unwrap();
            let dt = t0.elapsed().as_secs_f64();
            println!(
                "int64 key, {distinct} distinct: {:.1} M rows/s ({} winners)",
                n as f64 / dt / 1e6,
                out.len()
            );
            if distinct == 100_000 {
                let s: ArrayRef = Arc::new(StringArray::from(
                    keys.iter()
                        .map(|k| format!("driver_{k}"))
                        .collect::<Vec<_>>(),
                ));
                let t0 = Instant::now();
                latest_per_key(std::slice::from_ref(&s), &t, None, None, None).unwrap();
                let dt = t0.elapsed().as_secs_f64();
                println!(
                    "string key, {distinct} distinct: {:.1} M rows/s",
                    n as f64 / dt / 1e6
                );
                let k: ArrayRef = Arc::new(Int64Array::from(keys.clone()));
                let t0 = Instant::now();
                latest_per_key(&[s, k], &t, None, None, None).unwrap();
                let dt = t0.elapsed().as_secs_f64();
                println!(
                    "string+int64 key, {distinct} distinct: {:.1} M rows/s",
                    n as f64 / dt / 1e6
                );
            }
        }
    }
}
