"""Out-of-memory as a typed error at banquet's boundaries.

The Rust kernels raise ``ResourceExhausted`` themselves (they allocate fallibly). Memory
refused inside pyarrow (``pyarrow.ArrowMemoryError``) or Python (``MemoryError``) during one
of banquet's own operations is converted here, with the original chained, so callers catch
one class (``except BanquetError`` / ``except MemoryError`` both work) and learn which
operation ran out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from banquet.errors import ResourceExhausted


@contextmanager
def memory_bound(operation: str) -> Iterator[None]:
    """Re-raise a ``MemoryError`` (``ArrowMemoryError`` is one) from the block as
    ``ResourceExhausted`` naming ``operation``; the allocator's message, which carries the
    size it was asked for, is kept."""
    try:
        yield
    except ResourceExhausted:
        raise
    except MemoryError as e:
        detail = str(e) or type(e).__name__
        raise ResourceExhausted(
            f"out of memory: {operation} could not allocate what it needed ({detail}; the "
            "process's memory limit was reached); pass less data per call (fewer entity "
            "rows, a shorter materialization window) or raise the memory limit"
        ) from e
