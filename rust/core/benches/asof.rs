//! Timing harness for `asof_join` (no external bench framework).
//!
//! `cargo bench -p banquet-core --bench asof` runs every scenario; pass a substring to
//! filter (`cargo bench -p banquet-core --bench asof -- string`). Thread count follows
//! `RAYON_NUM_THREADS`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Array, ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use banquet_core::asof::asof_join;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

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

/// User + system CPU time of the whole process (all threads), from /proc (Linux only).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
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
    let mut times: Vec<Duration> = Vec::with_capacity(iters);
    let mut matched = 0;
    let cpu0 = cpu_time();
    for _ in 0..iters {
        let t = Instant::now();
        let r = asof_join(
            &e.keys,
            &e.ts,
            &f.keys,
            &f.ts,
            f.created.as_ref().map(|a| a as &dyn Array),
            c.ttl,
        )
        .unwrap();
        times.push(t.elapsed());
        matched = r.len() - r.null_count();
        black_box(r);
    }
    let cpu = match (cpu0, cpu_time()) {
        (Some(a), Some(b)) => format!("{:>7.0} ms", (b - a).as_secs_f64() * 1e3 / iters as f64),
        _ => "-".to_string(),
    };
    times.sort();
    println!(
        "{:<36} min {:>7.1} ms  median {:>7.1} ms  cpu/iter {cpu}  ({} of {} matched)",
        c.name,
        times[0].as_secs_f64() * 1e3,
        times[iters / 2].as_secs_f64() * 1e3,
        matched,
        c.n_ent
    );
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
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
