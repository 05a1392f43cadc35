//! Fallible allocation for the kernels' big buffers.
//!
//! Rust aborts the whole process when the allocator refuses memory (`handle_alloc_error`),
//! and under an address-space limit (`RLIMIT_AS`, a container's memory cap) it does refuse.
//! The kernels therefore ask for their large buffers through these helpers, which turn a
//! refusal into [`Error::ResourceExhausted`] (a Python `ResourceExhausted`), and check their
//! estimated peak working memory once before they start ([`check`]), which covers the
//! smaller allocations made along the way (hash tables, per-task scratch) as well.

use crate::error::{Error, Result};

/// Below this a probe is not worth its cost: a refusal this small means the process is
/// already failing everywhere.
const PROBE_MIN: usize = 16 << 20;

/// The error for an operation that needed `bytes` bytes the allocator would not give.
pub fn exhausted(operation: &str, bytes: usize) -> Error {
    Error::ResourceExhausted {
        operation: operation.to_string(),
        bytes,
    }
}

/// An empty vector with room for `n` elements, or [`Error::ResourceExhausted`].
pub fn with_capacity<T>(n: usize, operation: &str) -> Result<Vec<T>> {
    let mut out = Vec::new();
    out.try_reserve_exact(n)
        .map_err(|_| exhausted(operation, n.saturating_mul(size_of::<T>())))?;
    Ok(out)
}

/// A vector of `n` copies of `value`, or [`Error::ResourceExhausted`].
pub fn filled<T: Clone>(n: usize, value: T, operation: &str) -> Result<Vec<T>> {
    let mut out = with_capacity(n, operation)?;
    out.resize(n, value);
    Ok(out)
}

/// Makes room for `extra` more elements in `v`, or [`Error::ResourceExhausted`].
pub fn reserve<T>(v: &mut Vec<T>, extra: usize, operation: &str) -> Result<()> {
    v.try_reserve(extra)
        .map_err(|_| exhausted(operation, extra.saturating_mul(size_of::<T>())))
}

/// Checks that `bytes` could be allocated right now (allocated and released at once: the
/// pages are never touched, so this costs an `mmap`/`munmap` pair, and nothing below
/// 16 MiB). Kernels call it with their estimated peak before they start, so that a request
/// too large for the memory limit fails cleanly instead of aborting half-way.
pub fn check(operation: &str, bytes: usize) -> Result<()> {
    if bytes < PROBE_MIN {
        return Ok(());
    }
    let mut probe: Vec<u8> = Vec::new();
    probe
        .try_reserve_exact(bytes)
        .map_err(|_| exhausted(operation, bytes))?;
    // The pointer escapes, so the compiler cannot elide the allocation as unused.
    std::hint::black_box(probe.as_ptr());
    Ok(())
}

/// `a * b + c` bytes, saturating (an estimate that overflows is refused by [`check`]).
pub fn bytes(a: usize, b: usize, c: usize) -> usize {
    a.saturating_mul(b).saturating_add(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_typed_errors() {
        // More than any address space: the allocator refuses (capacity overflow or OOM).
        let err = with_capacity::<u64>(usize::MAX / 4, "test buffer").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::ResourceExhausted { .. }), "{msg}");
        assert!(msg.contains("test buffer"), "{msg}");
        assert!(check("probe", usize::MAX / 2).is_err());
        assert!(filled(usize::MAX / 8, 0u32, "x").is_err());
        let mut v = vec![1u8];
        assert!(reserve(&mut v, usize::MAX - 4, "grow").is_err());
    }

    #[test]
    fn small_requests_work() {
        assert_eq!(filled(3, 7u8, "x").unwrap(), vec![7, 7, 7]);
        assert!(with_capacity::<u8>(10, "x").unwrap().capacity() >= 10);
        check("small", 1 << 30).unwrap();
        check("tiny", 10).unwrap();
    }
}
