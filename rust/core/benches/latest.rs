//! Timing harness for `latest_per_key` (no external bench framework), in the style of
//! `asof.rs`: `cargo bench -p banquet-core --bench latest [-- filter]`.

mod common;

use std::hint::black_box;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use banquet_core::latest::latest_per_key;
use common::{filter, time, Rng};

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

fn main() {
    let filter = filter();
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
    println!("latest_per_key");
    for (name, n, domain, key, created) in cases {
        if !(filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()))) {
            continue;
        }
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
        let iters = if n > m { 5 } else { 9 };
        time(name, iters, || {
            let w = latest_per_key(&k, &ts, cr.as_ref(), Some(DAY_US), None).unwrap();
            let note = format!("{} winners of {n}", w.len());
            black_box(w);
            note
        });
    }
}
