//! Bindings for banquet_core::asof (see python/banquet/_core.pyi for the contract).

use pyo3::prelude::*;

pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
