//! What the timing harnesses share: a seeded generator, CPU time, and one timed scenario.

use std::time::{Duration, Instant};

/// splitmix64: fast, seeded, the same data on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// User + system CPU time of the whole process (all threads), from /proc (Linux only).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The scenario names given on the command line (flags such as `--bench` dropped).
pub fn filter() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect()
}

/// Runs `f` `iters` times and prints min / median wall time and CPU time per iteration;
/// `f` returns a short note about its result (printed once).
pub fn time(name: &str, iters: usize, mut f: impl FnMut() -> String) {
    let mut times = Vec::with_capacity(iters);
    let mut note = String::new();
    let cpu0 = cpu_time();
    for _ in 0..iters {
        let t = Instant::now();
        note = f();
        times.push(t.elapsed());
    }
    let cpu = match (cpu0, cpu_time()) {
        (Some(a), Some(b)) => format!("{:>7.0} ms", (b - a).as_secs_f64() * 1e3 / iters as f64),
        _ => "-".to_string(),
    };
    times.sort();
    println!(
        "{name:<36} min {:>7.1} ms  median {:>7.1} ms  cpu/iter {cpu}  ({note})",
        times[0].as_secs_f64() * 1e3,
        times[iters / 2].as_secs_f64() * 1e3,
    );
}
