//! Byte encoders of the online stores' wire formats, built straight from Arrow rows: the
//! Redis write calls (RESP), Postgres binary COPY data, and the Redis Cluster key slot.
//! They know nothing of Python, so `cargo test` covers them; the binding crate only hands
//! them the arrays and releases the GIL.

pub mod pgcopy;
pub mod resp;
pub mod rows;
pub mod slot;

pub use rows::Rows;
