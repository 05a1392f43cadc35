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
    /// An error from arrow-rs itself.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
