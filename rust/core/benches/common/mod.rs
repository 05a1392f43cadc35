//! What the criterion benches share: a seeded generator, the sampling settings sized for
//! kernels that take 50 ms to seconds per call, and an optional CPU-time clock.

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkGroup, Criterion, SamplingMode};

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

/// User + system CPU time of the whole process (every thread, so rayon's workers too).
/// On a machine shared with other work the wall time is partly waiting for a core; this
/// clock is not. Chosen with `BANQUET_BENCH_CLOCK=cpu`.
pub struct CpuTime;

impl Measurement for CpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        process_cpu_time()
    }
    fn end(&self, start: Duration) -> Duration {
        process_cpu_time().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // nanoseconds, as WallTime's: its formatter prints them
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

fn process_cpu_time() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Whether `BANQUET_BENCH_CLOCK=cpu` asks for process CPU time instead of wall time.
pub fn cpu_clock() -> bool {
    match std::env::var("BANQUET_BENCH_CLOCK").as_deref() {
        Ok("cpu") => true,
        Ok("wall") | Ok("") | Err(_) => false,
        Ok(other) => panic!("BANQUET_BENCH_CLOCK={other}: expected cpu or wall"),
    }
}

/// The defaults for every bench here (command-line flags such as `--sample-size` override
/// them): 10 samples, 1 s of warm-up. Criterion's own defaults (100 samples, linear
/// sampling) would run a 1 s kernel thousands of times.
pub fn criterion<M: Measurement>(c: Criterion<M>) -> Criterion<M> {
    c.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

/// Flat sampling (the same iteration count in every sample) and a measurement time that
/// fits 10 samples of a call of about `typical`, so a seconds-long case is not cut short
/// with a warning nor run for minutes.
pub fn size_group<M: Measurement>(g: &mut BenchmarkGroup<'_, M>, typical: Duration) {
    g.sampling_mode(SamplingMode::Flat);
    g.measurement_time((typical * 12).max(Duration::from_secs(2)));
}

/// `fn main` for a bench file: runs the given functions (each generic over the
/// measurement) on wall time, or on process CPU time with `BANQUET_BENCH_CLOCK=cpu`.
macro_rules! bench_main {
    ($($f:path),+ $(,)?) => {
        fn main() {
            if common::cpu_clock() {
                let mut c = common::criterion(
                    criterion::Criterion::default().with_measurement(common::CpuTime),
                );
                $($f(&mut c);)+
                c.final_summary();
            } else {
                let mut c = common::criterion(criterion::Criterion::default());
                $($f(&mut c);)+
                c.final_summary();
            }
        }
    };
}
pub(crate) use bench_main;
