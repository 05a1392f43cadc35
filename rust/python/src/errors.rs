//! Maps `banquet_core::Error` to Python exceptions. The classes are banquet's own
//! (`banquet.errors`), so `except BanquetError` catches every kernel failure too; the Python
//! façade re-raises some with context the kernel cannot know.

use pyo3::prelude::*;

// The classes live in python/banquet/errors.py; `_core` re-exports them under its old names.
pyo3::import_exception!(banquet.errors, KernelError);
pyo3::import_exception!(banquet.errors, KernelTypeError);
pyo3::import_exception!(banquet.errors, CorruptDataError);
pyo3::import_exception!(banquet.errors, ResourceExhausted);
pyo3::import_exception!(banquet.errors, StoreError);
pyo3::import_exception!(banquet.errors, DataSourceError);
pyo3::import_exception!(banquet.errors, SourceFileNotFound);
pyo3::import_exception!(banquet.errors, SourceAccessDenied);
pyo3::import_exception!(banquet.errors, SourceUnreachable);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("KernelError", py.get_type::<KernelError>())?;
    m.add("CorruptDataError", py.get_type::<CorruptDataError>())?;
    Ok(())
}

pub fn to_py(err: banquet_core::Error) -> PyErr {
    use banquet_core::Error;
    match err {
        Error::UnsupportedType { .. } => KernelTypeError::new_err(err.to_string()),
        Error::Corrupt(_) => CorruptDataError::new_err(err.to_string()),
        Error::ResourceExhausted { .. } => ResourceExhausted::new_err(err.to_string()),
        Error::MissingTable(view) => StoreError::new_err(format!(
            "the online store has no table for feature view '{view}'; run `banquet apply` \
             (and materialize) first"
        )),
        Error::Store(msg) => StoreError::new_err(format!("SQLite online store: {msg}")),
        // the Parquet scan: each message names the path, never credentials
        Error::SourceNotFound(msg) => SourceFileNotFound::new_err(msg),
        Error::SourceDenied(msg) => SourceAccessDenied::new_err(msg),
        Error::SourceUnreachable(msg) => SourceUnreachable::new_err(msg),
        Error::Source(msg) => DataSourceError::new_err(msg),
        _ => KernelError::new_err(err.to_string()),
    }
}

/// [`to_py`] for a failure while reading feature view `view`'s stored values: the message
/// names the view, so a client learns which one to re-materialize.
pub fn to_py_in_view(err: banquet_core::Error, view: &str) -> PyErr {
    use banquet_core::Error;
    match err {
        Error::Corrupt(_) => {
            let msg = err.to_string();
            let fix = if msg.contains("re-materialize") {
                ""
            } else {
                "; re-materialize the view (`banquet materialize --overwrite`)"
            };
            CorruptDataError::new_err(format!("feature view '{view}': {msg}{fix}"))
        }
        other => to_py(other),
    }
}
