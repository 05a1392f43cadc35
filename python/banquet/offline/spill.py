"""Spilling rows to disk by key partition, for joins and reads larger than ``memory_limit``.

A ``SpillDir`` is one temporary folder (under ``offline_store.spill_dir``, default the
system temp folder) removed when its ``with`` block ends, however it ends: success, an
error, or Ctrl-C (``KeyboardInterrupt`` unwinds through it like any exception).
``Partitioner`` hash-partitions record batches by join key (``_core.partition_ids``, the
same hash for equal keys on both sides of a join) into one Arrow IPC stream file per
partition, keeping each partition's rows in their input order (the as-of tie-break "the
later feature row wins" depends on it) and buffering small pieces so a partition is written
in few, large messages.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.compute as pc

from banquet import _core

# Each partition's pending rows are written once they pass this many bytes (at most; callers
# pass less under a small memory limit: all partitions' pending rows are held at once).
FLUSH_BYTES = 4 << 20


def flush_bytes(budget: int, n: int) -> int:
    """The pending bytes per partition that keep ``n`` partitions' buffers near a quarter
    of ``budget`` (64 KiB at least: smaller writes cost more than they save)."""
    return max(64 << 10, min(FLUSH_BYTES, budget // (4 * n)))


def default_memory_limit() -> int:
    """A quarter of the machine's physical memory, or of the cgroup's memory limit when that
    is lower (a container's cap is what an out-of-memory kill enforces)."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = 8 << 30
    limit = physical
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limit = min(limit, int(text))
    return max(limit // 4, 64 << 20)


class SpillDir:
    """A temporary folder for spill files, created on first use, removed on exit. Views
    joined side by side share one (hence the lock)."""

    def __init__(self, parent: str | None) -> None:
        self.parent = parent
        self._path: Path | None = None
        self._count = 0
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        with self._lock:
            if self._path is None:
                if self.parent is not None:
                    Path(self.parent).mkdir(parents=True, exist_ok=True)
                self._path = Path(tempfile.mkdtemp(prefix="banquet-spill-", dir=self.parent))
            return self._path

    def new_file(self, stem: str) -> Path:
        with self._lock:
            self._count += 1
            n = self._count
        return self.path / f"{stem}-{n}.arrow"

    def __enter__(self) -> SpillDir:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)
            self._path = None


def write_file(path: Path, schema: pa.Schema, batches: list[pa.RecordBatch]) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for b in batches:
            writer.write_batch(b)


def read_file(path: Path) -> pa.Table:
    with pa.OSFile(str(path), "rb") as source:
        return pa.ipc.open_stream(source).read_all()


def one_batch(table: pa.Table) -> pa.RecordBatch:
    """The table's rows as one record batch (the kernels take batches)."""
    batches = table.combine_chunks().to_batches()
    if len(batches) == 1:
        return batches[0]
    if not batches:
        return pa.record_batch([pa.array([], f.type) for f in table.schema], schema=table.schema)
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


class Partitioner:
    """Record batches in, one IPC file per key partition out. ``n_keys``: the leading key
    columns of every batch. Rows with a null key go to partition ``null_to`` (None: dropped,
    they can match nothing)."""

    def __init__(
        self,
        spill: SpillDir,
        stem: str,
        schema: pa.Schema,
        n_keys: int,
        n: int,
        seed: int = 0,
        null_to: int | None = None,
        flush_bytes: int = FLUSH_BYTES,
    ) -> None:
        self.schema, self.n_keys, self.n, self.seed, self.null_to = schema, n_keys, n, seed, null_to
        self.flush_bytes = flush_bytes
        self.paths = [spill.new_file(f"{stem}-p{p}") for p in range(n)]
        self.bytes = [0] * n  # written and pending, per partition
        self.rows = [0] * n
        self._pending: list[list[pa.RecordBatch]] = [[] for _ in range(n)]
        self._pending_bytes = [0] * n
        self._writers: list[pa.ipc.RecordBatchStreamWriter | None] = [None] * n
        self._sinks: list[pa.NativeFile | None] = [None] * n

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        keys = batch.columns[: self.n_keys]
        ids = _core.partition_ids(keys, self.n, self.seed) if keys else None
        if ids is None:  # no join keys: one partition holds everything
            self._put(0, batch)
            return
        if self.null_to is not None:  # in the same pass, so the partition keeps row order
            ids = pc.if_else(pc.equal(ids, self.n), pa.scalar(self.null_to, pa.uint32()), ids)
        order, offsets = _core.partition_order(ids, self.n)
        grouped = batch.take(order)
        for p in range(self.n):  # offsets[n]..offsets[n + 1]: null keys, dropped
            lo, hi = offsets[p], offsets[p + 1]
            if hi > lo:
                self._put(p, grouped.slice(lo, hi - lo))

    def _put(self, p: int, piece: pa.RecordBatch) -> None:
        size = piece.nbytes
        self._pending[p].append(piece)
        self._pending_bytes[p] += size
        self.bytes[p] += size
        self.rows[p] += piece.num_rows
        if self._pending_bytes[p] >= self.flush_bytes:
            self._flush(p)

    def _flush(self, p: int) -> None:
        if not self._pending[p]:
            return
        writer = self._writers[p]
        if writer is None:
            sink = pa.OSFile(str(self.paths[p]), "wb")
            self._sinks[p] = sink
            writer = self._writers[p] = pa.ipc.new_stream(sink, self.schema)
        table = pa.Table.from_batches(self._pending[p], schema=self.schema).combine_chunks()
        writer.write_table(table)
        self._pending[p] = []
        self._pending_bytes[p] = 0

    def finish(self) -> None:
        """Write what is pending and close every file (a partition never written gets an
        empty file, so every partition can be read back)."""
        for p in range(self.n):
            self._flush(p)
            if self._writers[p] is None:
                write_file(self.paths[p], self.schema, [])
            else:
                self._writers[p].close()  # type: ignore[union-attr]
                self._sinks[p].close()  # type: ignore[union-attr]

    def close(self) -> None:
        """Close open files without writing (on an error; the spill folder goes anyway)."""
        for w, s in zip(self._writers, self._sinks):
            for f in (w, s):
                if f is not None:
                    with contextlib.suppress(OSError, pa.ArrowException):
                        f.close()

    def read(self, p: int) -> pa.Table:
        return read_file(self.paths[p])


def iter_file(path: Path) -> Iterator[pa.RecordBatch]:
    with pa.OSFile(str(path), "rb") as source:
        yield from pa.ipc.open_stream(source)
