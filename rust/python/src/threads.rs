//! Where banquet's rayon work runs: sized by `BANQUET_THREADS`, and safe after `fork`.
//!
//! rayon's global pool is unusable in a forked child (gunicorn --preload, multiprocessing's
//! "fork"): the child inherits the pool's bookkeeping but not its threads, so the first
//! parallel step waits forever for workers that do not exist. Every kernel that uses rayon
//! runs through [`install`]. In the process that first runs one, banquet builds rayon's
//! global pool itself (this extension links its own copy of rayon, so no other library shares
//! it) and kernels run on the calling thread exactly as plain rayon would: small inputs never
//! leave it. In any other process (a forked child) they run inside a pool of that process,
//! built on its first use; a parent's pool is leaked there, never dropped (dropping it would
//! signal threads that are not there).
//!
//! `BANQUET_THREADS=1` means no pool at all: each calling thread becomes the one worker of a
//! pool of its own (rayon's `use_current_thread`, built on that thread's first kernel and
//! kept for its life), so parallel iterators run inline on the calling thread and no thread
//! is started, in the first process or a forked child.

use std::cell::Cell;
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

pyo3::import_exception!(banquet.errors, ConfigError);
pyo3::import_exception!(banquet.errors, ResourceExhausted);

const ENV: &str = "BANQUET_THREADS";

/// The process whose rayon global pool banquet built: `Some(None)` when the global pool was
/// already built by other code (then every process uses its own pool).
static GLOBAL: Mutex<Option<Option<u32>>> = Mutex::new(None);

/// A forked child's pool and the process that built it.
static POOL: Mutex<Option<(u32, Arc<ThreadPool>)>> = Mutex::new(None);

/// `BANQUET_THREADS` as read once in this process (a forked child inherits it).
static THREADS: OnceLock<usize> = OnceLock::new();

thread_local! {
    /// With `BANQUET_THREADS=1`: this thread's one-thread pool, whose worker is this thread.
    static SOLO: Cell<Option<&'static ThreadPool>> = const { Cell::new(None) };
}

/// Why no pool could be had.
pub enum PoolError {
    /// `BANQUET_THREADS` is not a whole number.
    BadSetting(String),
    /// The operating system refused to start the threads.
    Spawn(String),
}

impl From<PoolError> for PyErr {
    fn from(e: PoolError) -> PyErr {
        match e {
            PoolError::BadSetting(v) => ConfigError::new_err(format!(
                "{ENV}={v:?} is not a thread count; set it to a whole number (0 or unset = \
                 one thread per core, 1 = run the kernels sequentially, N = N threads)"
            )),
            PoolError::Spawn(msg) => ResourceExhausted::new_err(format!(
                "could not start banquet's worker threads ({msg}); set {ENV}=1 to run the \
                 kernels sequentially, or raise the process's thread limit"
            )),
        }
    }
}

/// Threads the pool should have: `BANQUET_THREADS`, read once per process (0 or unset = as
/// many as cores).
fn wanted() -> Result<usize, PoolError> {
    let Some(raw) = std::env::var_os(ENV) else {
        return Ok(cores());
    };
    let text = raw.to_string_lossy();
    match text.trim().parse::<usize>() {
        Ok(0) => Ok(cores()),
        Ok(n) => Ok(n),
        Err(_) if text.trim().is_empty() => Ok(cores()),
        Err(_) => Err(PoolError::BadSetting(text.into_owned())),
    }
}

/// [`wanted`], read once (a bad setting is not kept: each call reports it).
fn threads() -> Result<usize, PoolError> {
    if let Some(&n) = THREADS.get() {
        return Ok(n);
    }
    let n = wanted()?;
    Ok(*THREADS.get_or_init(|| n))
}

/// The calling thread's own one-thread pool (built on its first use, then kept: rayon
/// leaks a `use_current_thread` pool's registry anyway). Installing into it from this
/// thread runs the closure inline, and rayon's parallel iterators inside it stay here.
fn solo() -> Result<&'static ThreadPool, PoolError> {
    SOLO.with(|slot| {
        if let Some(pool) = slot.get() {
            return Ok(pool);
        }
        let pool = ThreadPoolBuilder::new()
            .num_threads(1)
            .use_current_thread()
            .build()
            .map_err(|e| PoolError::Spawn(e.to_string()))?;
        let pool: &'static ThreadPool = Box::leak(Box::new(pool));
        slot.set(Some(pool));
        Ok(pool)
    })
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// True when rayon's global pool is this process's (banquet built it here, sized by
/// `BANQUET_THREADS`); the first call in a process that never used rayon builds it.
fn global_is_ours(pid: u32) -> Result<bool, PoolError> {
    let mut owner = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    if owner.is_none() {
        let built = ThreadPoolBuilder::new()
            .num_threads(threads()?)
            .thread_name(|i| format!("banquet-{i}"))
            .build_global();
        *owner = Some(built.ok().map(|()| pid));
    }
    Ok(*owner == Some(Some(pid)))
}

/// This process's own pool, built on first use here (and so afresh in a forked child).
fn pool() -> Result<Arc<ThreadPool>, PoolError> {
    let pid = std::process::id();
    let mut slot = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, pool)) = slot.as_ref() {
        if *owner == pid {
            return Ok(Arc::clone(pool));
        }
    }
    // A new process: the pool above (if any) belongs to the parent and has no threads here.
    if let Some(stale) = slot.take() {
        std::mem::forget(stale);
    }
    let pool = ThreadPoolBuilder::new()
        .num_threads(threads()?)
        .thread_name(|i| format!("banquet-{i}"))
        .build()
        .map_err(|e| PoolError::Spawn(e.to_string()))?;
    let pool = Arc::new(pool);
    *slot = Some((pid, Arc::clone(&pool)));
    Ok(pool)
}

/// Runs `f` where this process's rayon work must go: on the calling thread with the global
/// pool when that pool is this process's (no extra hop), else inside this process's own pool
/// (one hop); with `BANQUET_THREADS=1`, inline on the calling thread, no pool thread at all.
/// Call it with the GIL released.
pub fn install<T, F>(f: F) -> Result<T, PoolError>
where
    T: Send,
    F: Send + FnOnce() -> T,
{
    if threads()? == 1 {
        return Ok(solo()?.install(f));
    }
    if global_is_ours(std::process::id())? {
        return Ok(f());
    }
    Ok(pool()?.install(f))
}

/// The number of threads banquet's kernels use in this process (builds its pool).
#[pyfunction]
fn thread_count(py: Python<'_>) -> PyResult<usize> {
    let n = py.detach(|| -> Result<usize, PoolError> {
        if threads()? == 1 {
            return Ok(1); // the calling thread (no pool is built for this question)
        }
        if global_is_ours(std::process::id())? {
            return Ok(rayon::current_num_threads());
        }
        Ok(pool()?.current_num_threads())
    })?;
    Ok(n)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(thread_count, m)?)
}
