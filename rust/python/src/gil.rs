//! Run a kernel with the GIL released, then honour a pending Ctrl-C.

use pyo3::prelude::*;

use crate::errors::to_py;
use crate::threads;

/// Releases the GIL around `f` so other Python threads keep running while the kernel works,
/// then checks for signals so a long call can still be interrupted with Ctrl-C.
#[allow(dead_code)]
pub fn run_detached<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: Send + FnOnce() -> banquet_core::Result<T>,
{
    let out = py.detach(f);
    py.check_signals()?;
    out.map_err(to_py)
}

/// [`run_detached`] inside banquet's own rayon pool ([`threads::install`]): for kernels that
/// use rayon, so they keep working in a forked child and honour `BANQUET_THREADS`.
pub fn run_pooled<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: Send + FnOnce() -> banquet_core::Result<T>,
{
    let out = py.detach(|| threads::install(f));
    py.check_signals()?;
    out?.map_err(to_py)
}
