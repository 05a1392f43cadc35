//! Bindings for banquet_core::values and banquet_core::latest (see python/banquet/_core.pyi for the contract).

use pyo3::prelude::*;

pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
