//! One error type for the whole crate; the binding crate maps each variant to a Python class.

use arrow_schema::{ArrowError, DataType};

/// Errors raised by the kernels.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A column has a type the kernel cannot handle.
    #[error("column '{column}' has type {found}, expected {expected}")]
    UnsupportedType {
        column: String,
        found: DataType,
        expected: String,
    },
    /// Two inputs that must line up do not (lengths, key counts, key types).
    #[error("{0}")]
    Mismatch(String),
    /// A blob or value that cannot be decoded.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// Any other invalid argument.
    #[error("{0}")]
    Invalid(String),
    /// A feature view has no table in the online store.
    #[error("the online store has no table for feature view '{0}'")]
    MissingTable(String),
    /// Any other failure of the online store (I/O, locks, constraints).
    #[error("{0}")]
    Store(String),
    /// The allocator refused memory the operation needed (an address-space or container
    /// limit); nothing was produced.
    #[error(
        "out of memory: {operation} could not allocate {} (the process's memory limit was \
         reached); pass less data per call (fewer entity rows, a shorter materialization \
         window) or raise the memory limit",
        human_bytes(*bytes)
    )]
    ResourceExhausted { operation: String, bytes: usize },
    /// A data source (file, directory, S3 bucket or object) that does not exist; the
    /// message names the path.
    #[error("{0}")]
    SourceNotFound(String),
    /// The storage refused access to a data source; the message names the path, never
    /// the credentials.
    #[error("{0}")]
    SourceDenied(String),
    /// The data source's storage endpoint cannot be reached.
    #[error("{0}")]
    SourceUnreachable(String),
    /// A data source that exists but cannot be read (not Parquet, corrupt, a file whose
    /// columns do not fit the dataset's schema); the message names the file.
    #[error("{0}")]
    Source(String),
    /// An error from arrow-rs itself.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

/// `1.5 GiB`, `300.0 MiB`, `12 bytes`: sizes in messages.
pub fn human_bytes(n: usize) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
