//! Maps `banquet_core::Error` to Python exceptions. The rich hierarchy lives in
//! `banquet.errors`; the Python façade re-raises these with context the kernel cannot know.

use pyo3::create_exception;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

create_exception!(
    _core,
    KernelError,
    PyValueError,
    "An error raised by a banquet kernel."
);
create_exception!(
    _core,
    CorruptDataError,
    KernelError,
    "A stored blob could not be decoded."
);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("KernelError", py.get_type::<KernelError>())?;
    m.add("CorruptDataError", py.get_type::<CorruptDataError>())?;
    Ok(())
}

pub fn to_py(err: banquet_core::Error) -> PyErr {
    use banquet_core::Error;
    match err {
        Error::UnsupportedType { .. } => PyTypeError::new_err(err.to_string()),
        Error::Corrupt(_) => CorruptDataError::new_err(err.to_string()),
        Error::MissingTable(view) => store_error(format!(
            "the online store has no table for feature view '{view}'; run `banquet apply` \
             (and materialize) first"
        )),
        Error::Store(msg) => store_error(format!("SQLite online store: {msg}")),
        _ => KernelError::new_err(err.to_string()),
    }
}

/// `banquet.errors.StoreError(message)`: the online store's failures reach the user as the
/// same typed error whichever store raised them.
fn store_error(message: String) -> PyErr {
    Python::attach(|py| {
        match py
            .import("banquet.errors")
            .and_then(|m| m.getattr("StoreError"))
            .and_then(|cls| cls.call1((message.as_str(),)))
        {
            Ok(exc) => PyErr::from_value(exc),
            Err(_) => KernelError::new_err(message),
        }
    })
}
