//! Criterion benches of `asof_join` (group `asof_join`): 1M entity rows against 1M or 10M
//! feature rows, int64 / string / composite keys, with and without ttl and created timestamps.
//!
//! `cargo bench -p banquet-core --bench asof` runs every scenario (`--benches`: every bench
//! file; a bare `cargo bench` also builds the unit tests as benches); a regex filters them
//! (`cargo bench -p banquet-core --bench asof -- string`). Throughput counts entity + feature
//! rows. Thread count follows `RAYON_NUM_THREADS`; `BANQUET_BENCH_CLOCK=cpu` measures process
//! CPU time instead of wall time (see benches/common).

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Array, ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use banquet_core::asof::asof_join;
use common::Rng;
use criterion::measurement::Measurement;
use criterion::{Criterion, Throughput};

const DAY_US: i64 = 86_400_000_000;

#[derive(Clone, Copy)]
enum Key {
    /// int64 keys drawn from 0..domain.
    Dense,
    /// int64 keys drawn from 0..domain, scattered over the whole i64 range.
    Sparse,
    /// "driver_000123"-style strings.
    String,
    /// (int64, string) pairs.
    Composite,
}

struct Side {
    keys: Vec<ArrayRef>,
    ts: TimestampMicrosecondArray,
    created: Option<TimestampMicrosecondArray>,
}

fn side(rng: &mut Rng, n: usize, domain: u64, key: Key, created: bool, sorted: bool) -> Side {
    let k: Vec<u64> = (0..n).map(|_| rng.below(domain)).collect();
    let mut ts: Vec<i64> = (0..n)
        .map(|_| rng.below(30 * DAY_US as u64) as i64)
        .collect();
    if sorted {
        ts.sort_unstable();
    }
    let ints = |f: fn(u64) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(k.iter().map(|&x| f(x))))
    };
    let strings = || -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            k.iter().map(|x| format!("driver_{x:06}")),
        ))
    };
    let keys = match key {
        Key::Dense => vec![ints(|x| x as i64)],
        Key::Sparse => vec![ints(|x| x.wrapping_mul(0x5851_f42d_4c95_7f2d) as i64)],
        Key::String => vec![strings()],
        Key::Composite => vec![ints(|x| (x % 97) as i64), strings()],
    };
    let created = created.then(|| {
        TimestampMicrosecondArray::from_iter_values(
            (0..n).map(|_| rng.below(4 * DAY_US as u64) as i64),
        )
        .with_timezone("UTC")
    });
    Side {
        keys,
        ts: TimestampMicrosecondArray::from(ts).with_timezone("UTC"),
        created,
    }
}

struct Case {
    name: &'static str,
    n_ent: usize,
    n_feat: usize,
    domain: u64,
    key: Key,
    created: bool,
    ttl: Option<i64>,
    feat_sorted: bool,
}

fn asof(c: &mut Criterion<impl Measurement>) {
    let m = 1_000_000;
    let base = Case {
        name: "",
        n_ent: m,
        n_feat: m,
        domain: 100_000,
        key: Key::Dense,
        created: false,
        ttl: None,
        feat_sorted: false,
    };
    let cases = [
        Case {
            name: "int64 1Mx1M 100k keys",
            ..base
        },
        Case {
            name: "int64 1Mx1M 100k keys ttl=1d",
            ttl: Some(DAY_US),
            ..base
        },
        Case {
            name: "int64 1Mx1M 100k keys +created",
            created: true,
            ..base
        },
        Case {
            name: "int64 1Mx1M 1M keys",
            domain: 1_000_000,
            ..base
        },
        Case {
            name: "int64 1Mx1M 1k keys",
            domain: 1_000,
            ..base
        },
        Case {
            name: "int64 1Mx1M 10 keys",
            domain: 10,
            ..base
        },
        Case {
            name: "int64 1Mx1M sorted feature ts",
            feat_sorted: true,
            ..base
        },
        Case {
            name: "int64 sparse 1Mx1M 100k keys",
            key: Key::Sparse,
            ..base
        },
        Case {
            name: "int64 1Mx10M 100k keys",
            n_feat: 10 * m,
            ..base
        },
        Case {
            name: "int64 sparse 1Mx10M 100k keys",
            n_feat: 10 * m,
            key: Key::Sparse,
            ..base
        },
        Case {
            name: "string 1Mx1M 100k keys",
            key: Key::String,
            ..base
        },
        Case {
            name: "string 1Mx10M 100k keys",
            n_feat: 10 * m,
            key: Key::String,
            ..base
        },
        Case {
            name: "int64+string 1Mx1M 100k keys",
            key: Key::Composite,
            ..base
        },
    ];
    let mut g = c.benchmark_group("asof_join");
    for case in &cases {
        g.throughput(Throughput::Elements((case.n_ent + case.n_feat) as u64));
        // ~0.2 s per 1M x 1M call on 2 cores, ~10x that against 10M feature rows
        let typical = Duration::from_millis(if case.n_feat >= 5_000_000 { 2000 } else { 250 });
        common::size_group(&mut g, typical);
        // built on first use, so a filtered-out case costs nothing; dropped after its case
        let mut data: Option<(Side, Side)> = None;
        g.bench_function(case.name, |b| {
            let (e, f) = data.get_or_insert_with(|| {
                let mut rng = Rng(42);
                let e = side(&mut rng, case.n_ent, case.domain, case.key, false, false);
                let f = side(
                    &mut rng,
                    case.n_feat,
                    case.domain,
                    case.key,
                    case.created,
                    case.feat_sorted,
                );
                (e, f)
            });
            b.iter(|| {
                black_box(
                    asof_join(
                        &e.keys,
                        &e.ts,
                        &f.keys,
                        &f.ts,
                        f.created.as_ref().map(|a| a as &dyn Array),
                        case.ttl,
                    )
                    .unwrap(),
                )
            });
        });
    }
    g.finish();
}

common::bench_main!(asof);
