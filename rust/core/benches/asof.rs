//! Timing harness for `asof_join` (no external bench framework).
//!
//! `cargo bench -p banquet-core --bench asof` runs every scenario; pass a substring to
//! filter (`cargo bench -p banquet-core --bench asof -- string`). Thread count follows
//! `RAYON_NUM_THREADS`.

mod common;

use std::hint::black_box;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use banquet_core::asof::asof_join;
use common::{filter, time, Rng};

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

fn run(c: &Case) {
    let mut rng = Rng(42);
    let e = side(&mut rng, c.n_ent, c.domain, c.key, false, false);
    let f = side(
        &mut rng,
        c.n_feat,
        c.domain,
        c.key,
        c.created,
        c.feat_sorted,
    );
    let iters = if c.n_feat >= 5_000_000 { 5 } else { 9 };
    time(c.name, iters, || {
        let r = asof_join(
            &e.keys,
            &e.ts,
            &f.keys,
            &f.ts,
            f.created.as_ref().map(|a| a as &dyn Array),
            c.ttl,
        )
        .unwrap();
        let matched = r.len() - r.null_count();
        black_box(r);
        format!("{matched} of {} matched", c.n_ent)
    });
}

fn main() {
    let filter = filter();
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
    println!("rayon threads: {}", rayon::current_num_threads());
    for c in &cases {
        if filter.is_empty() || filter.iter().any(|f| c.name.contains(f.as_str())) {
            run(c);
        }
    }
}
