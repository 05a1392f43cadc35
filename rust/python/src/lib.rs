//! banquet._core: thin PyO3 bindings over banquet-core.
//!
//! Arrow crosses the boundary through the PyCapsule interface (pyo3-arrow), so any
//! Arrow-exporting object is accepted and results are zero-copy. Every kernel runs with the
//! GIL released (see `gil::run_detached`); the ones that use rayon run in banquet's own
//! per-process pool (`threads`), which survives `fork` and honours `BANQUET_THREADS`.

use pyo3::prelude::*;

mod asof;
mod codec;
mod errors;
mod gather;
mod gil;
mod keys;
mod online;
mod partition;
mod pgcopy;
mod resp;
mod rows;
mod scan;
mod sqlite;
mod threads;
mod tiles;
mod window;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    keys::register(m)?;
    asof::register(m)?;
    gather::register(m)?;
    codec::register(m)?;
    online::register(m)?;
    partition::register(m)?;
    pgcopy::register(m)?;
    resp::register(m)?;
    scan::register(m)?;
    sqlite::register(m)?;
    threads::register(m)?;
    tiles::register(m)?;
    window::register(m)?;
    Ok(())
}
