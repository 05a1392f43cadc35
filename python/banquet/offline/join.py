"""The point-in-time join of one feature view, in memory or partitioned on disk.

``join_view`` streams the view's rows from ``OfflineStore.scan_view`` (already cut to the
time window and, by the semi-join, to the entity rows' keys). While the rows read fit in the
request's memory budget it holds them and runs the whole as-of kernel once (the fastest
way: the kernel is parallel and partitions internally). Past the budget it switches to the
partitioned join: the rows held so far and every later batch are hash-partitioned by join
key into Arrow IPC files (``spill.Partitioner``), the entity rows (keys, timestamp, row id)
likewise, and each partition is joined on its own by ``_core.join_partition`` (the same
kernel: one rule, one implementation), its result (row id, features) written sorted by row
id. A partition still too large for the budget is split again with another hash seed.
``SpilledResult`` then hands out the features of consecutive entity-row ranges by merging the
partitions' sorted results, so the final output streams in input order without ever being
held whole.

Join first, features last (``join_two_pass``): when the source holds at least
``TWO_PASS_RATIO`` (32) times as many rows as there are entity rows, a plain view supporting it
(the file store's ``locate_view``) is read in two passes. Pass 1 scans the key and time
columns of the surviving rows with each row's locator; the same as-of kernel picks the
winning row per entity row; pass 2 decodes the feature columns of those winners only (at
most one row per entity row, a Parquet row selection per row group), instead of every
surviving row's. The output is the same arrays. Pass 1 must fit half the free budget: when it
does not, the view falls back to the one-pass path above (which can spill).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from banquet import _core
from banquet.entity_data import flat
from banquet.offline import window as agg_window
from banquet.offline.base import ViewRows, view_rows
from banquet.offline.spill import (
    Partitioner,
    SpillDir,
    flush_bytes,
    iter_file,
    one_batch,
    read_file,
    write_file,
)
from banquet.progress import Progress

if TYPE_CHECKING:
    from banquet.aggregation import Aggregation
    from banquet.feature_view import FeatureView
    from banquet.field import Field
    from banquet.offline.base import OfflineStore

# Partitions of a first spill; a partition found too large when joined is split again.
FAN_OUT = 16
MAX_SPLITS = 4  # levels of re-partitioning; one hot key cannot be split at all
MIN_SPLIT_BYTES = 1 << 20  # a smaller partition is joined as it is (splitting costs more)
RESULT_BATCH_ROWS = 8192  # rows per batch of a partition's result file
ROW_ID = pa.uint32()
# The two-pass join is chosen when the source has at least this many rows per entity row:
# then most surviving rows lose the as-of join and decoding their features is wasted. Below
# it, winners are a large share of the rows read and one pass is cheaper (measured at 10M
# rows x 1M entity rows, ratio 10: two passes took 1.4x the CPU of one; at ratio 100 and
# 1000 they win).
TWO_PASS_RATIO = 32


@dataclass
class Budget:
    """The memory a request may hold (``offline_store.memory_limit``) and what it holds."""

    limit: int
    used: int = 0

    def free(self) -> int:
        return max(self.limit - self.used, 0)


class MemoryResult:
    """A view joined in memory: one array per feature, one row per entity row."""

    def __init__(self, columns: list[pa.Array]) -> None:
        self.columns = columns

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.columns)

    def rows(self, lo: int, hi: int) -> list[pa.Array]:
        if not self.columns or (lo == 0 and hi == len(self.columns[0])):
            return self.columns
        return [c.slice(lo, hi - lo) for c in self.columns]


class _Run:
    """A cursor over one result file (row id, features), sorted by row id."""

    def __init__(self, path: Path) -> None:
        self._batches = iter_file(path)
        self._cur: pa.RecordBatch | None = None
        self._ids = np.empty(0, np.uint32)
        self._pos = 0

    def until(self, hi: int) -> list[pa.RecordBatch]:
        """The next rows whose row id is below ``hi``."""
        out: list[pa.RecordBatch] = []
        while True:
            if self._cur is None or self._pos >= self._cur.num_rows:
                self._cur = next(self._batches, None)
                self._pos = 0
                if self._cur is None:
                    return out
                self._ids = self._cur.column(0).to_numpy()
            end = int(np.searchsorted(self._ids, hi, side="left"))
            if end > self._pos:
                out.append(self._cur.slice(self._pos, end - self._pos))
                self._pos = end
            if end < self._cur.num_rows:
                return out


class SpilledResult:
    """A view joined partition by partition: its features for consecutive entity-row ranges,
    merged from the partitions' result files (each sorted by row id)."""

    def __init__(self, runs: list[Path], schema: pa.Schema) -> None:
        self._runs = [_Run(p) for p in runs]
        self._schema = schema
        self._next = 0

    def rows(self, lo: int, hi: int) -> list[pa.Array]:
        if lo != self._next:
            raise AssertionError(f"spilled rows are read in order: asked {lo}, at {self._next}")
        self._next = hi
        pieces = [b for run in self._runs for b in run.until(hi)]
        table = pa.Table.from_batches(pieces, schema=self._schema)
        if table.num_rows != hi - lo:
            raise AssertionError(f"rows {lo}..{hi}: {table.num_rows} joined rows")
        ids = flat(table.column(0)).to_numpy().astype(np.int64) - lo
        where = np.empty(hi - lo, np.int64)
        where[ids] = np.arange(hi - lo, dtype=np.int64)  # row lo + i is at where[i]
        order = pa.array(where.astype(np.uint32))
        return _core.take_rows(table.columns[1:], order)


ViewResult = MemoryResult | SpilledResult


def window(ts: pa.Array, ttl: int | None) -> tuple[int | None, int | None]:
    """The feature rows any entity row can match: ``[min ts - ttl, max ts]``."""
    if len(ts) and ts.null_count < len(ts):
        lo_hi = pc.min_max(ts)
        hi = lo_hi["max"].value
        lo = None if ttl is None else lo_hi["min"].value - ttl
        return lo, hi
    return 0, 0  # nothing can match: read an empty range


def join_view(
    store: OfflineStore,
    view: FeatureView,
    features: list[Field],
    entity_keys: list[pa.Array],
    ts: pa.Array,
    budget: Budget,
    spill: SpillDir,
) -> ViewResult:
    """The view's features (raw source types, in ``features`` order) for every entity row.
    For an aggregated view: its windowed aggregates (``offline/window.py``), computed from
    the rows of the widest window before the latest entity time, in memory or per partition
    as for the plain join (one key partitioning, one budget)."""
    aggs: list[Aggregation] | None = None
    read = features
    reach = view.ttl_us
    if view.is_aggregated:  # the ttl is ignored: the windows govern
        aggs = agg_window.requested(view, features)
        read = agg_window.source_fields(view, aggs)
        reach = agg_window.max_window_us(aggs)
    lo, hi = window(ts, reach)
    reader = store.scan_view(view, read, lo, hi, entity_keys=entity_keys)
    parts: _FeatureSpill | None = None
    try:
        held, over = _hold(reader, budget)
        if not over:
            table = pa.Table.from_batches(held, schema=reader.schema)
            if aggs is not None:
                return _aggregate_in_memory(view, aggs, entity_keys, ts, table)
            return _join_in_memory(view, features, entity_keys, ts, table)
        parts = _FeatureSpill(view, read, entity_keys, spill, budget, aggs)
        for batch in held:
            parts.add(batch)
        held.clear()
        for batch in reader:
            parts.add(batch)
        parts.finish()
        return parts.join(ts)
    finally:
        if parts is not None:
            parts.close()
        reader.close()


def join_two_pass(
    store: OfflineStore,
    view: FeatureView,
    features: list[Field],
    entity_keys: list[pa.Array],
    ts: pa.Array,
    budget: Budget,
) -> MemoryResult | None:
    """The view joined by the two-pass path (see the module doc), or None when it does not
    apply (an aggregated view, a store without ``locate_view``, a source with too few rows
    per entity row) or pass 1 outgrew half the free budget: ``join_view`` then does it."""
    from banquet.offline.file import LOCATOR, FileOfflineStore

    if view.is_aggregated or not isinstance(store, FileOfflineStore):
        return None
    lo, hi = window(ts, view.ttl_us)
    located = store.locate_view(view, lo, hi, entity_keys, TWO_PASS_RATIO * len(ts))
    if located is None:
        return None
    reader = located.reader
    try:
        held, over = _hold(reader, budget)
        if over:
            return None
        table = pa.Table.from_batches(held, schema=reader.schema)
    finally:
        reader.close()
    del held
    idx, _ = _winners(view, entity_keys, ts, table)
    winners = flat(table.column(LOCATOR)).take(idx)
    del table
    return MemoryResult(located.take(features, winners))


def _hold(reader: pa.RecordBatchReader, budget: Budget) -> tuple[list[pa.RecordBatch], bool]:
    """The reader's batches while they fit in half the budget's free memory, and whether
    they outgrew it (the reader then stands after the batch that crossed the line, which is
    the last one held)."""
    held: list[pa.RecordBatch] = []
    size = 0
    for batch in reader:
        held.append(batch)
        size += batch.nbytes
        if size > budget.free() // 2:
            return held, True
    return held, False


def _aggregate_in_memory(
    view: FeatureView,
    aggs: list[Aggregation],
    entity_keys: list[pa.Array],
    ts: pa.Array,
    table: pa.Table,
) -> MemoryResult:
    rows = view_rows(view, table)
    pairs = [_as_int64_if_widths_differ(ek, rk) for ek, rk in zip(entity_keys, rows.keys)]
    columns = {a.column: flat(rows.table.column(a.column)) for a in aggs}
    return MemoryResult(
        agg_window.aggregate(
            aggs,
            columns,
            [e for e, _ in pairs],
            ts,
            [r for _, r in pairs],
            rows.event_ts,
            rows.created_ts,
        )
    )


def _join_in_memory(
    view: FeatureView,
    features: list[Field],
    entity_keys: list[pa.Array],
    ts: pa.Array,
    table: pa.Table,
) -> MemoryResult:
    idx, rows = _winners(view, entity_keys, ts, table)
    # straight from the scan's chunks, on banquet's threads (no copy into one chunk first)
    return MemoryResult(_core.take_rows([rows.table.column(f.name) for f in features], idx))


def _winners(
    view: FeatureView, entity_keys: list[pa.Array], ts: pa.Array, table: pa.Table
) -> tuple[pa.Array, ViewRows]:
    """The as-of join of the entity rows with a view's rows (``table``, source columns
    renamed): for each entity row the index of its winning row in ``table`` (null: none),
    and the rows' typed keys and times (``view_rows``), which the one-pass path takes the
    features from."""
    rows = view_rows(view, table)
    pairs = [_as_int64_if_widths_differ(ek, rk) for ek, rk in zip(entity_keys, rows.keys)]
    idx = _core.asof_join(
        [e for e, _ in pairs],
        ts,
        [r for _, r in pairs],
        rows.event_ts,
        rows.created_ts,
        view.ttl_us,
    )
    return idx, rows


def _as_int64_if_widths_differ(a: pa.Array, b: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Integer keys of different widths (``integer`` vs ``bigint``) both joined as int64."""
    if a.type != b.type and pa.types.is_integer(a.type) and pa.types.is_integer(b.type):
        return a.cast(pa.int64()), b.cast(pa.int64())
    return a, b


def _widen(a: pa.Array) -> pa.Array:
    return a.cast(pa.int64()) if pa.types.is_integer(a.type) and a.type != pa.int64() else a


class _FeatureSpill:
    """One view's partitioned join: feature batches in, sorted result files out."""

    def __init__(
        self,
        view: FeatureView,
        features: list[Field],
        entity_keys: list[pa.Array],
        spill: SpillDir,
        budget: Budget,
        aggs: list[Aggregation] | None = None,
    ) -> None:
        self.view, self.features, self.spill, self.budget = view, features, spill, budget
        self.aggs = aggs  # an aggregated view: its aggregates instead of the as-of join
        self.entity_keys = [_widen(k) for k in entity_keys]
        self.n_keys = len(entity_keys)
        self.has_created = bool(view.batch_source.created_timestamp_column)
        self._parts: Partitioner | None = None
        self._schema: pa.Schema | None = None

    def _normalized(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """``[k0.., ts, created?, f0..]``: keys typed (integers as int64), times UTC µs."""
        rows = view_rows(self.view, batch)
        cols = [_widen(k) for k in rows.keys] + [rows.event_ts]
        names = [f"k{i}" for i in range(self.n_keys)] + ["ts"]
        if rows.created_ts is not None:
            cols.append(rows.created_ts)
            names.append("created")
        cols += [flat(rows.table.column(f.name)) for f in self.features]
        names += [f"f{i}" for i in range(len(self.features))]
        return pa.RecordBatch.from_arrays(cols, names=names)

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0 and self._parts is not None:
            return
        nb = self._normalized(batch)
        if self._parts is None:
            self._schema = nb.schema
            self._parts = Partitioner(
                self.spill,
                f"{self.view.name}-features",
                nb.schema,
                self.n_keys,
                FAN_OUT,
                flush_bytes=flush_bytes(self.budget.free(), FAN_OUT),
            )
        self._parts.add(nb)

    def finish(self) -> None:
        if self._parts is not None:
            self._parts.finish()

    def close(self) -> None:
        if self._parts is not None:
            self._parts.close()

    def join(self, ts: pa.Array) -> SpilledResult:
        assert self._parts is not None and self._schema is not None
        n = len(ts)
        entity = pa.RecordBatch.from_arrays(
            [*self.entity_keys, ts, pa.array(np.arange(n, dtype=np.uint32))],
            names=[*(f"k{i}" for i in range(self.n_keys)), "ts", "row_id"],
        )
        # null keys match nothing: their rows still need an output row, in any partition
        eparts = Partitioner(
            self.spill, f"{self.view.name}-entity", entity.schema, self.n_keys, FAN_OUT, null_to=0
        )
        try:
            for start in range(0, n, 1 << 20):
                eparts.add(entity.slice(start, 1 << 20))
            eparts.finish()
        finally:
            eparts.close()
        fparts = self._parts
        out_fields = [entity.schema.field("row_id")] + self._out_fields()
        out_schema = pa.schema(out_fields)
        runs: list[Path] = []
        interactive = sys.stderr.isatty()
        label = f"{self.view.name}: joining {FAN_OUT} partitions"
        with Progress(label, FAN_OUT, enabled=interactive) as bar:
            for p in range(FAN_OUT):
                runs += self._join_part(eparts.paths[p], fparts.paths[p], out_schema, 0)
                bar.advance(1)
        return SpilledResult(runs, out_schema)

    def _join_part(self, epath: Path, fpath: Path, schema: pa.Schema, depth: int) -> list[Path]:
        size = epath.stat().st_size + fpath.stat().st_size
        part_budget = max(self.budget.free() // 3, 1)
        if size > part_budget and size > MIN_SPLIT_BYTES and depth < MAX_SPLITS:
            return self._split(epath, fpath, schema, depth, size, part_budget)
        entity = one_batch(read_file(epath))
        if entity.num_rows == 0:
            return []
        features = one_batch(read_file(fpath))
        if self.aggs is None:
            joined = _core.join_partition(
                entity, features, self.n_keys, self.has_created, self.view.ttl_us
            )
        else:
            joined = self._aggregate_part(entity, features, schema)
        out = self.spill.new_file(f"{self.view.name}-result")
        joined = pa.RecordBatch.from_arrays(joined.columns, schema=schema)
        # small batches: the merge holds one batch per result file at a time
        step = RESULT_BATCH_ROWS
        write_file(out, schema, [joined.slice(i, step) for i in range(0, joined.num_rows, step)])
        return [out]

    def _out_fields(self) -> list[pa.Field]:
        assert self._schema is not None
        if self.aggs is None:
            return [
                self._schema.field(f"f{i}").with_nullable(True) for i in range(len(self.features))
            ]
        col_type = {f.name: self._schema.field(f"f{i}").type for i, f in enumerate(self.features)}
        return [
            pa.field(f"a{i}", agg_window.output_arrow_type(a, col_type[a.column]))
            for i, a in enumerate(self.aggs)
        ]

    def _aggregate_part(
        self, entity: pa.RecordBatch, features: pa.RecordBatch, schema: pa.Schema
    ) -> pa.RecordBatch:
        """One partition's aggregates: (row id, aggregates), in the entity rows' order (by
        row id, as partitioning kept them)."""
        assert self.aggs is not None
        n = self.n_keys
        columns = {f.name: features.column(f"f{i}") for i, f in enumerate(self.features)}
        outs = agg_window.aggregate(
            self.aggs,
            columns,
            [entity.column(i) for i in range(n)],
            entity.column("ts"),
            [features.column(i) for i in range(n)],
            features.column("ts"),
            features.column("created") if self.has_created else None,
        )
        typed = [o.cast(t) for o, t in zip(outs, schema.types[1:], strict=True)]
        return pa.RecordBatch.from_arrays([entity.column("row_id"), *typed], schema=schema)

    def _split(
        self, epath: Path, fpath: Path, schema: pa.Schema, depth: int, size: int, budget: int
    ) -> list[Path]:
        k = min(max(math.ceil(2 * size / budget), 2), 64)
        seed = depth + 1
        subs = []
        for path, stem, null_to in ((epath, "entity", 0), (fpath, "features", None)):
            with pa.OSFile(str(path), "rb") as source:
                reader = pa.ipc.open_stream(source)
                parts = Partitioner(
                    self.spill,
                    f"{self.view.name}-{stem}",
                    reader.schema,
                    self.n_keys,
                    k,
                    seed=seed,
                    null_to=null_to,
                )
                try:
                    for b in reader:
                        parts.add(b)
                    parts.finish()
                finally:
                    parts.close()
            subs.append(parts)
            path.unlink()  # its rows now live in the sub-partitions
        runs: list[Path] = []
        for p in range(k):
            runs += self._join_part(subs[0].paths[p], subs[1].paths[p], schema, depth + 1)
        return runs
