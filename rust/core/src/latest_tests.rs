//! Unit tests of `latest.rs` (a file of their own to keep the module short).

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
        Vec::<u32>::new()
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
    let ts: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![2, 1]).with_timezone("UTC"));
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

#[test]
fn partitioned_path_matches_reference() {
    // enough distinct keys to pass SPILL_AT, so the partitioned reduction runs
    let n = 4 * SPILL_AT;
    let mut x: u64 = 0xDEAD_BEEF;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let opt = |v: u64, p: u64| if v % 100 < p { None } else { Some(v as i64) };
    let keys: Vec<Option<i64>> = (0..n)
        .map(|_| opt(rnd(), 2).map(|v| v % (4 * SPILL_AT as i64)))
        .collect();
    let ts: Vec<Option<i64>> = (0..n).map(|_| opt(rnd(), 2).map(|v| v % 7)).collect();
    let created: Vec<Option<i64>> = (0..n).map(|_| opt(rnd(), 40).map(|v| v % 2)).collect();
    for (start, end) in [(i64::MIN, i64::MAX), (1, 5)] {
        let want = reference(&keys, &ts, &created, start, end);
        let got = run(
            &[i64s(keys.clone())],
            ts.clone(),
            Some(created.clone()),
            Some(start),
            Some(end),
        );
        assert_eq!(got, want);
        let s: ArrayRef = Arc::new(StringArray::from(
            keys.iter()
                .map(|k| k.map(|k| format!("key-{k}")))
                .collect::<Vec<_>>(),
        ));
        let got = run(
            std::slice::from_ref(&s),
            ts.clone(),
            Some(created.clone()),
            Some(start),
            Some(end),
        );
        assert_eq!(got, want);
        let got = run(
            &[i64s(keys.clone()), s],
            ts.clone(),
            Some(created.clone()),
            Some(start),
            Some(end),
        );
        assert_eq!(got, want);
    }
}

/// Throughput check (best of 3); run with `cargo test --release -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_latest_per_key() {
    // CPU time of this thread (the machine is shared, wall time is noisy)
    fn cpu_ns() -> Option<u64> {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        s.split_whitespace().next()?.parse().ok()
    }
    fn best(f: impl Fn()) -> f64 {
        (0..3)
            .map(|_| {
                let (t0, c0) = (Instant::now(), cpu_ns());
                f();
                match (c0, cpu_ns()) {
                    (Some(a), Some(b)) => (b - a) as f64 / 1e9,
                    _ => t0.elapsed().as_secs_f64(),
                }
            })
            .fold(f64::MAX, f64::min)
    }
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
        let dt = best(|| {
            latest_per_key(std::slice::from_ref(&k), &t, None, None, None).unwrap();
        });
        println!(
            "int64 key, {distinct} distinct: {:.1} M rows/s",
            n as f64 / dt / 1e6
        );
        if distinct == 100_000 || distinct == 10_000_000 {
            let s: ArrayRef = Arc::new(StringArray::from(
                keys.iter()
                    .map(|k| format!("driver_{k}"))
                    .collect::<Vec<_>>(),
            ));
            let dt = best(|| {
                latest_per_key(std::slice::from_ref(&s), &t, None, None, None).unwrap();
            });
            println!(
                "string key, {distinct} distinct: {:.1} M rows/s",
                n as f64 / dt / 1e6
            );
            let both = [s, k];
            let dt = best(|| {
                latest_per_key(&both, &t, None, None, None).unwrap();
            });
            println!(
                "string+int64 key, {distinct} distinct: {:.1} M rows/s",
                n as f64 / dt / 1e6
            );
        }
    }
}
