//! Criterion benches of `latest_per_key` (group `latest_per_key`): 1M and 4M rows, int64 /
//! string / composite keys, ttl of one day; throughput counts input rows.
//! `cargo bench -p banquet-core --bench latest [-- regex]` (see asof.rs for the options).

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use banquet_core::latest::latest_per_key;
use common::Rng;
use criterion::measurement::Measurement;
use criterion::{Criterion, Throughput};

const DAY_US: i64 = 86_400_000_000;

#[derive(Clone, Copy)]
enum Key {
    Int,
    String,
    /// (int64, string) pairs: the packed multi-column path.
    Composite,
}

fn keys(rng: &mut Rng, n: usize, domain: u64, key: Key) -> Vec<ArrayRef> {
    let k: Vec<u64> = (0..n).map(|_| rng.below(domain)).collect();
    let ints =
        || -> ArrayRef { Arc::new(Int64Array::from_iter_values(k.iter().map(|&x| x as i64))) };
    let strings = || -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            k.iter().map(|x| format!("driver_{x:06}")),
        ))
    };
    match key {
        Key::Int => vec![ints()],
        Key::String => vec![strings()],
        Key::Composite => vec![
            Arc::new(Int64Array::from_iter_values(
                k.iter().map(|&x| (x % 97) as i64),
            )),
            strings(),
        ],
    }
}

fn latest(c: &mut Criterion<impl Measurement>) {
    let m = 1_000_000;
    let cases: [(&str, usize, u64, Key, bool); 6] = [
        ("int64 1M rows 100k keys", m, 100_000, Key::Int, false),
        (
            "int64 1M rows 100k keys +created",
            m,
            100_000,
            Key::Int,
            true,
        ),
        ("int64 4M rows 1M keys", 4 * m, 1_000_000, Key::Int, false),
        ("string 1M rows 100k keys", m, 100_000, Key::String, false),
        (
            "string 4M rows 1M keys",
            4 * m,
            1_000_000,
            Key::String,
            false,
        ),
        (
            "int64+string 1M rows 100k keys",
            m,
            100_000,
            Key::Composite,
            false,
        ),
    ];
    let mut g = c.benchmark_group("latest_per_key");
    for (name, n, domain, key, created) in cases {
        g.throughput(Throughput::Elements(n as u64));
        // ~0.1-0.2 s per 1M rows on 2 cores, 0.4-0.8 s for 4M rows and 1M keys
        common::size_group(&mut g, Duration::from_millis(if n > m { 700 } else { 200 }));
        // built on first use, so a filtered-out case costs nothing; dropped after its case
        type Data = (Vec<ArrayRef>, ArrayRef, Option<ArrayRef>);
        let mut data: Option<Data> = None;
        g.bench_function(name, |b| {
            let (k, ts, cr) = data.get_or_insert_with(|| {
                let mut rng = Rng(42);
                let k = keys(&mut rng, n, domain, key);
                let ts: ArrayRef = Arc::new(TimestampMicrosecondArray::from_iter_values(
                    (0..n).map(|_| rng.below(30 * DAY_US as u64) as i64),
                ));
                let cr: Option<ArrayRef> = created.then(|| {
                    Arc::new(TimestampMicrosecondArray::from_iter_values(
                        (0..n).map(|_| rng.below(4 * DAY_US as u64) as i64),
                    )) as ArrayRef
                });
                (k, ts, cr)
            });
            b.iter(|| black_box(latest_per_key(k, ts, cr.as_ref(), Some(DAY_US), None).unwrap()));
        });
    }
    g.finish();
}

common::bench_main!(latest);
