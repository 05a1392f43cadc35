//! banquet-core: the pure-Rust kernels of the banquet feature store.
//!
//! Everything here speaks arrow-rs and nothing else: no Python, and no I/O except the
//! SQLite online store (`sqlite`). The PyO3 crate in `rust/python` is a thin layer over
//! these functions.

pub mod asof;
pub mod error;
pub mod gather;
pub mod keys;
pub mod latest;
pub mod mem;
pub mod ord;
pub mod partition;
pub mod scan;
pub mod sqlite;
pub mod tiles;
pub mod values;
pub mod window;
pub mod wire;

pub use error::{Error, Result};
